//! The per-recording chat file: `<recording name>.chat.jsonl` beside a finished part, holding
//! the logged lines of the part's time span (from its sidecar), each with `offset_ms` (from
//! the part's start, wall clock) and `video_ms` (the position in the file: ad breaks and gaps
//! cut out of the recording are subtracted, so chat stays in sync with the video).
//!
//! Both kinds of day file are read (`day_files`); in a compressed one from the part's start
//! on (the frames' marks lead there).
//! The chat replay subtitles (`subtitles.rs`) are written from it, beside it, when asked.
//!
//! The file is always written beside the recording: the core starts a part's upload only once
//! its chat file is written (or failed), so `after_upload` moves or deletes it with the video.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::day_files::{self, Item};
use super::record::Stamp;
use super::subtitles::{self, SubtitleSettings};
use super::writer::{date_of_day, day_of, LineQueue};
use crate::archive::files::finalize_file;
use crate::archive::layout::{chat_file, temp_path_of};
use crate::archive::sidecar::Sidecar;
use tracing::warn;

/// A written per-recording chat file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub lines: u64,
    /// The replay subtitles written beside it.
    pub subtitles: Vec<PathBuf>,
    /// Why the replay subtitles could not be written (the chat file is saved all the same).
    pub replay_failed: Option<String>,
}

/// Flushes the writer, then writes the part's chat file (atomically: `.recbot-tmp`, fsync,
/// rename) beside the recording, then its replay subtitles; subtitles that cannot be written
/// are reported in [`Saved::replay_failed`], and the chat file stays saved.
pub async fn save_part(
    queue: &LineQueue,
    chat_dir: &Path,
    sidecar_path: &Path,
    replay: &SubtitleSettings,
) -> Result<Saved> {
    let sidecar = Sidecar::read(sidecar_path).await?;
    // A Twitch login, or a platform key (`chzzk:<id>`) whose day files are in its path-safe
    // folder (`chzzk-<id>`).
    let Ok(folder) = recbot_commands::Login::from_stored(&sidecar.login).map(|l| l.path_safe())
    else {
        bail!(
            "the sidecar names `{}`, which is not a login",
            sidecar.login
        );
    };
    if sidecar.ended < sidecar.started {
        bail!("the sidecar's part ends before it starts");
    }
    queue.flush().await;
    let video = sidecar_path.with_file_name(
        Path::new(&sidecar.file)
            .file_name()
            .unwrap_or_else(|| sidecar.file.as_ref()),
    );
    // The name after-upload looks for when it moves or deletes the video.
    let dest = chat_file(&video);
    let span = Span::of(&sidecar);
    let dir = chat_dir.to_path_buf();
    let login = folder;
    let out = dest.clone();
    let replay = replay.clone();
    let (lines, subtitles) = tokio::task::spawn_blocking(move || {
        let lines = write_span(&dir, &login, &span, &out)?;
        Ok::<_, anyhow::Error>((lines, subtitles::write_beside(&video, &out, &replay)))
    })
    .await
    .context("the chat file writer stopped")??;
    let (subtitles, replay_failed) = match subtitles {
        Ok(written) => (written, None),
        Err(e) => {
            let reason = format!("{e:#}");
            warn!(error = %reason, file = %dest.display(), "cannot write the chat replay subtitles");
            (Vec::new(), Some(reason))
        }
    };
    subtitles::list_in_sidecar(sidecar_path, &subtitles).await;
    Ok(Saved {
        path: dest,
        lines,
        subtitles,
        replay_failed,
    })
}

/// A part's wall-clock span and what was cut out of its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start_ms: i64,
    pub end_ms: i64,
    /// (wall-clock start, length) of every cut, in ms, sorted.
    pub cuts: Vec<(i64, i64)>,
}

impl Span {
    pub fn of(sidecar: &Sidecar) -> Span {
        let mut cuts: Vec<(i64, i64)> = sidecar
            .ad_breaks
            .iter()
            .map(|a| (a.at.timestamp_millis(), (a.duration_secs * 1000.0) as i64))
            .chain(
                sidecar
                    .gaps
                    .iter()
                    .map(|g| (g.at.timestamp_millis(), (g.seconds * 1000.0) as i64)),
            )
            .filter(|(_, len)| *len > 0)
            .collect();
        cuts.sort();
        Span {
            start_ms: sidecar.started.timestamp_millis(),
            end_ms: sidecar.ended.timestamp_millis(),
            cuts,
        }
    }

    /// Position in the recording of wall time `t`: its offset minus what was cut before it
    /// (a line during a cut sits where the cut is).
    pub fn video_ms(&self, t: i64) -> i64 {
        let mut cut_before = 0;
        for (at, len) in &self.cuts {
            if *at >= t {
                break;
            }
            cut_before += (t - at).min(*len);
        }
        (t - self.start_ms - cut_before).max(0)
    }
}

fn write_span(dir: &Path, login: &str, span: &Span, dest: &Path) -> Result<u64> {
    // Not `.part`: crash recovery would take a leftover for a recording.
    let tmp = temp_path_of(dest);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let mut lines = 0u64;
    for day in day_of(span.start_ms)..=day_of(span.end_ms) {
        for path in day_files::files_of(dir, login, date_of_day(day)) {
            let mut failed = None;
            day_files::read(&path, Some(span.start_ms), &mut |item| {
                // Damage or a cut or foreign line is skipped here; the day file keeps it.
                let Item::Line(line) = item else {
                    return Ok(true);
                };
                match write_line(&mut out, span, line) {
                    Ok(true) => lines += 1,
                    Ok(false) => {}
                    Err(e) => {
                        failed = Some(e);
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .with_context(|| format!("cannot read {}", path.display()))?;
            if let Some(e) = failed {
                return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
            }
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()?;
    drop(file);
    finalize_file(&tmp, dest)
        .with_context(|| format!("cannot rename {} into place", tmp.display()))?;
    Ok(lines)
}

/// Writes `line` with its offsets if it is a logged line within the span.
fn write_line(out: &mut impl Write, span: &Span, line: &[u8]) -> std::io::Result<bool> {
    let Ok(stamp) = serde_json::from_slice::<Stamp>(line) else {
        return Ok(false);
    };
    let t = stamp.time_ms();
    if t < span.start_ms || t > span.end_ms || line.first() != Some(&b'{') {
        return Ok(false);
    }
    write!(
        out,
        "{{\"offset_ms\":{},\"video_ms\":{},",
        t - span.start_ms,
        span.video_ms(t)
    )?;
    out.write_all(&line[1..])?;
    out.write_all(b"\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chzzk and Bilibili lines of the day files go into a part's chat file with their
    /// offsets, and its chat messages into the replay.
    #[test]
    fn other_platforms_lines_are_exported_and_replayed() {
        use crate::chat::platform_line::{Amount, PlatformLine};
        use crate::chat::record::{encode_platform, Record};
        use crate::chat::writer::day_path;
        use recbot_commands::Platform;

        let dir = tempfile::tempdir().unwrap();
        let start = 1_700_000_000_000;
        let line = |platform, cmd: &str, text: Option<&str>, at: i64, amount| PlatformLine {
            platform,
            cmd: cmd.into(),
            user_id: Some("u1".into()),
            name: Some("치즈".into()),
            text: text.map(str::to_string),
            time_ms: Some(at),
            amount,
            raw: format!("{{\"at\":{at}}}"),
        };
        let mut day = Vec::new();
        for l in [
            line(
                Platform::Chzzk,
                "93101",
                Some("before"),
                start - 1_000,
                None,
            ),
            line(Platform::Chzzk, "93101", Some("안녕"), start + 2_000, None),
            line(
                Platform::Chzzk,
                "93102",
                Some("후원"),
                start + 3_000,
                Some(Amount {
                    value: 1000,
                    unit: "KRW",
                }),
            ),
            line(
                Platform::Bilibili,
                "SEND_GIFT",
                Some("gift x1"),
                start + 4_000,
                None,
            ),
            line(
                Platform::Bilibili,
                "DANMU_MSG",
                Some("hello"),
                start + 5_000,
                None,
            ),
        ] {
            encode_platform(&l, "c", l.time_ms.unwrap(), &mut day);
        }
        let path = day_path(dir.path(), "somefolder", date_of_day(day_of(start)));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &day).unwrap();
        let span = Span {
            start_ms: start,
            end_ms: start + 60_000,
            cuts: vec![],
        };
        let dest = dir.path().join("part.chat.jsonl");
        assert_eq!(
            write_span(dir.path(), "somefolder", &span, &dest).unwrap(),
            4
        );
        let text = std::fs::read_to_string(&dest).unwrap();
        let records: Vec<Record> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records[0].offset_ms, Some(2_000));
        assert_eq!(records[1].amount.as_ref().map(|a| a.value), Some(1000));
        assert_eq!(records[1].platform.as_deref(), Some("chzzk"));
        assert_eq!(records[3].raw, format!("{{\"at\":{}}}", start + 5_000));
        let messages = subtitles::read_messages(text.as_bytes()).unwrap();
        let shown: Vec<(i64, &str, &str)> = messages
            .iter()
            .map(|m| (m.video_ms, m.name.as_str(), m.text.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (2_000, "치즈", "안녕"),
                (3_000, "치즈", "후원"),
                (5_000, "치즈", "hello")
            ],
            "chat, donations and danmaku replayed; gifts not"
        );
    }

    #[test]
    fn video_positions_skip_cuts() {
        let span = Span {
            start_ms: 1_000,
            end_ms: 100_000,
            cuts: vec![(11_000, 5_000), (31_000, 2_000)],
        };
        assert_eq!(span.video_ms(1_000), 0);
        assert_eq!(span.video_ms(11_000), 10_000);
        assert_eq!(span.video_ms(13_000), 10_000, "during the ad break");
        assert_eq!(span.video_ms(16_000), 10_000);
        assert_eq!(span.video_ms(21_000), 15_000);
        assert_eq!(span.video_ms(40_000), 32_000);
    }
}
