//! Chat lines per minute of a span of a login's chat, counted from its day files (plain and
//! compressed alike, `day_files`) when asked: the summary chart's chat curve. Counted at
//! render time rather than kept while lines are written: the day files already hold every
//! line with its time, so nothing new is stored and nothing can disagree with the logs.

use std::io;
use std::path::Path;

use super::day_files::{self, Item};
use super::record::Stamp;
use super::writer::{date_of_day, day_of};

/// Longest span counted (a week of minutes): bounds the vector whatever the times say.
const MAX_MINUTES: i64 = 7 * 24 * 60;

/// Lines of `login` sent in `[start_ms, end_ms]`, per minute from `start_ms` (index 0 is the
/// first minute), and their total. Lines that do not parse (damage, foreign lines) are
/// skipped, as `recbot logs` and the chat files skip them.
pub fn lines_per_minute(
    chat_dir: &Path,
    login: &str,
    start_ms: i64,
    end_ms: i64,
) -> io::Result<(Vec<u32>, u64)> {
    let end_ms = end_ms.min(start_ms + MAX_MINUTES * 60_000);
    if end_ms < start_ms {
        return Ok((Vec::new(), 0));
    }
    let minutes = ((end_ms - start_ms) / 60_000 + 1) as usize;
    let mut counts = vec![0u32; minutes];
    let mut total = 0u64;
    for day in day_of(start_ms)..=day_of(end_ms) {
        for path in day_files::files_of(chat_dir, login, date_of_day(day)) {
            day_files::read(&path, Some(start_ms), &mut |item| {
                let Item::Line(line) = item else {
                    return Ok(true);
                };
                let Ok(stamp) = serde_json::from_slice::<Stamp>(line) else {
                    return Ok(true);
                };
                let t = stamp.time_ms();
                if (start_ms..=end_ms).contains(&t) {
                    let slot = &mut counts[((t - start_ms) / 60_000) as usize];
                    *slot = slot.saturating_add(1);
                    total += 1;
                }
                Ok(true)
            })?;
        }
    }
    Ok((counts, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::writer::day_path;
    use chrono::{TimeZone, Utc};

    #[test]
    fn counts_lines_per_minute_within_the_span_only() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 21, 23, 58, 0).unwrap();
        let start_ms = start.timestamp_millis();
        // Lines on both days of a span across midnight, one before and one after it, and a
        // damaged line.
        let at = |ms: i64| format!("{{\"recv_ms\":{},\"raw\":\"x\"}}\n", start_ms + ms);
        let day1 = day_path(dir.path(), "foo", start.date_naive());
        std::fs::create_dir_all(day1.parent().unwrap()).unwrap();
        let text = [at(-1), at(0), at(59_999), at(60_000), "not json\n".into()].concat();
        std::fs::write(&day1, text).unwrap();
        let next = start + chrono::Duration::minutes(3);
        let day2 = day_path(dir.path(), "foo", next.date_naive());
        std::fs::create_dir_all(day2.parent().unwrap()).unwrap();
        std::fs::write(&day2, [at(180_000), at(240_001)].concat()).unwrap();
        let (counts, total) =
            lines_per_minute(dir.path(), "foo", start_ms, start_ms + 240_000).unwrap();
        assert_eq!(counts, [2, 1, 0, 1, 0]);
        assert_eq!(total, 4);
        // An end before the start: nothing, not a panic.
        assert_eq!(lines_per_minute(dir.path(), "foo", 10, 0).unwrap().1, 0);
    }
}
