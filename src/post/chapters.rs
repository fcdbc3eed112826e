//! A part's title/game history (the sidecar's chapters) as an ffmetadata file, so the MP4 gets
//! one chapter per title or game. Pure.

use crate::archive::sidecar::Chapter;

/// The ffmetadata text of `chapters` in a part of `duration_secs`, the first one starting at
/// 0; `None` when no chapter falls inside the part. A single chapter is written too: players
/// show it as the part's title.
pub fn ffmetadata(chapters: &[Chapter], duration_secs: f64) -> Option<String> {
    let total_ms = (duration_secs.max(0.0) * 1000.0).round() as u64;
    let mut starts: Vec<(u64, String)> = chapters
        .iter()
        .map(|c| {
            let at = (c.offset_secs.max(0.0) * 1000.0).round() as u64;
            let name = match &c.game {
                Some(game) if !game.is_empty() => format!("{} ({game})", c.title),
                _ => c.title.clone(),
            };
            (at.min(total_ms), name)
        })
        .collect();
    starts.sort_by_key(|(at, _)| *at);
    // Two changes at the same instant: the later one names the chapter.
    starts.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 = std::mem::take(&mut later.1);
            true
        } else {
            false
        }
    });
    starts.retain(|(at, _)| *at < total_ms);
    if starts.is_empty() {
        return None;
    }
    starts[0].0 = 0;
    let mut text = String::from(";FFMETADATA1\n");
    for (i, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(total_ms, |(next, _)| *next);
        text.push_str(&format!(
            "[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={}\n",
            escape(name)
        ));
    }
    Some(text)
}

/// ffmetadata's escaping: `=`, `;`, `#`, `\` and line breaks behind a backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '=' | ';' | '#' | '\\' | '\n' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn chapter(offset_secs: f64, title: &str, game: Option<&str>) -> Chapter {
        Chapter {
            at: Utc::now(),
            offset_secs,
            title: title.into(),
            game: game.map(Into::into),
        }
    }

    #[test]
    fn chapters_cover_the_part_in_order() {
        let text = ffmetadata(
            &[
                chapter(2.5, "second", Some("Chess")),
                chapter(0.4, "first; #1 = best\\", None),
            ],
            4.0,
        )
        .unwrap();
        assert_eq!(
            text,
            ";FFMETADATA1\n\
             [CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2500\ntitle=first\\; \\#1 \\= best\\\\\n\
             [CHAPTER]\nTIMEBASE=1/1000\nSTART=2500\nEND=4000\ntitle=second (Chess)\n"
        );
    }

    #[test]
    fn nothing_to_mark_writes_nothing() {
        assert_eq!(ffmetadata(&[], 10.0), None);
        // A change after the part's end marks nothing in it.
        assert_eq!(ffmetadata(&[chapter(12.0, "late", None)], 10.0), None);
        let line_break = ffmetadata(&[chapter(0.0, "a\nb", None)], 1.0).unwrap();
        assert!(line_break.contains("title=a\\\nb\n"));
    }
}
