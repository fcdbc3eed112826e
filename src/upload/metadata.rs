//! What a recording becomes on YouTube: the title from `[youtube] title_template`, and a
//! description with the stream's facts and chapters (`00:00 title`) from the sidecar's
//! title/game history. Pure functions of the sidecar.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::archive::sidecar::Sidecar;
use crate::config::Privacy;
use crate::format;
use crate::title_template::{pieces, Piece};

/// YouTube's limit for titles, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// YouTube's limit for descriptions, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 5000;
/// YouTube ignores chapters shorter than this.
const MIN_CHAPTER_SECS: f64 = 10.0;
/// `{started}` without a format.
const DEFAULT_STARTED_FORMAT: &str = "%Y-%m-%d %H:%M";

/// The video title: the template filled from the sidecar, `<`/`>` and control characters
/// removed, at most 100 characters. Later parts of a broadcast get ` (part N)` unless the
/// template places `{part}` itself.
pub fn title(template: &str, sidecar: &Sidecar) -> String {
    let mut text = String::new();
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Placeholder { name, format } => {
                text.push_str(&placeholder(name, format, sidecar))
            }
        }
    }
    let suffix = if sidecar.part > 1 && !template.contains("{part}") {
        format!(" (part {})", sidecar.part)
    } else {
        String::new()
    };
    let mut title = clean(&text);
    if title.is_empty() {
        title = clean(&sidecar.login);
    }
    let room = MAX_TITLE_CHARS - suffix.chars().count();
    if title.chars().count() > room {
        title = title
            .chars()
            .take(room)
            .collect::<String>()
            .trim_end()
            .to_string();
    }
    title + &suffix
}

/// What a fill's title ends with (README: "VOD fill").
pub const FILL_SUFFIX: &str = " (filled from VOD)";

/// The title of a gap filled from the VOD: the part's title with [`FILL_SUFFIX`], within
/// YouTube's limit.
pub fn fill_title(template: &str, sidecar: &Sidecar) -> String {
    let title = title(template, sidecar);
    let room = MAX_TITLE_CHARS - FILL_SUFFIX.chars().count();
    let mut title: String = title.chars().take(room).collect();
    title.truncate(title.trim_end().len());
    title + FILL_SUFFIX
}

/// The description of a fill: what it is, then the part's.
pub fn fill_description(sidecar: &Sidecar, file_name: &str) -> String {
    let fill = sidecar.fills.iter().find(|f| f.file == file_name);
    let mut text = String::from("A gap in the live recording, filled from the Twitch VOD");
    if let Some(f) = fill {
        let _ = write!(
            text,
            " {} ({} to {} into the broadcast)",
            clean(&f.vod_id),
            format::duration(f.from_secs),
            format::duration(f.to_secs)
        );
        if f.muted {
            text.push_str("; Twitch muted some of its audio");
        }
    }
    text.push_str(".\n\n");
    let mut out = text + &description(sidecar);
    if out.len() > MAX_DESCRIPTION_BYTES {
        let mut cut = MAX_DESCRIPTION_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The description: facts about the stream and the part, then YouTube chapters.
pub fn description(sidecar: &Sidecar) -> String {
    let who = sidecar.display_name.as_deref().unwrap_or(&sidecar.login);
    let mut text = match sidecar.source.as_str() {
        "twitch" => format!(
            "{who} live on Twitch: https://www.twitch.tv/{}\n",
            sidecar.login
        ),
        "chzzk" => format!(
            "{who} live on Chzzk: https://chzzk.naver.com/live/{}\n",
            sidecar
                .login
                .strip_prefix("chzzk:")
                .unwrap_or(&sidecar.login)
        ),
        _ => format!("{who}: recorded from an HLS stream\n"),
    };
    if let Some(first) = sidecar.chapters.first() {
        let _ = writeln!(text, "Title: {}", first.title);
        if let Some(game) = &first.game {
            let _ = writeln!(text, "Category: {game}");
        }
    }
    let _ = write!(
        text,
        "Started {} · {} · {}",
        sidecar.started.format("%Y-%m-%d %H:%M UTC"),
        format::duration(sidecar.duration_secs),
        sidecar.quality
    );
    if sidecar.part > 1 {
        let _ = write!(text, " · part {}", sidecar.part);
    }
    text.push('\n');
    if !sidecar.gaps.is_empty() {
        let _ = writeln!(
            text,
            "Missing: {} gap(s), {} in total",
            sidecar.gaps.len(),
            format::duration(sidecar.gap_seconds())
        );
    }
    if !sidecar.ad_breaks.is_empty() {
        let _ = writeln!(text, "Ad breaks cut out: {}", sidecar.ad_breaks.len());
    }
    if sidecar.recovered {
        text.push_str("Recovered after a crash of the recorder.\n");
    }
    let chapters = chapters(sidecar);
    let footer = "\nRecorded by recbot.";
    if !chapters.is_empty() {
        text.push_str("\nChapters:\n");
        let long = sidecar.duration_secs >= 3600.0;
        for (offset, label) in chapters {
            let line = format!("{} {}\n", timestamp(offset, long), label);
            if clean_multiline(&text).len() + line.len() + footer.len() > MAX_DESCRIPTION_BYTES {
                break;
            }
            text.push_str(&line);
        }
    }
    text.push_str(footer);
    let mut text = clean_multiline(&text);
    if text.len() > MAX_DESCRIPTION_BYTES {
        let mut end = MAX_DESCRIPTION_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Chapters as (seconds from the start, label): the first at 0, none shorter than 10 s (a
/// quick succession of changes keeps the last state), no repeats, none past the end.
pub fn chapters(sidecar: &Sidecar) -> Vec<(u64, String)> {
    let mut history: Vec<_> = sidecar.chapters.iter().collect();
    history.sort_by(|a, b| a.offset_secs.total_cmp(&b.offset_secs));
    let mut out: Vec<(f64, String)> = Vec::new();
    for chapter in history {
        let label = match &chapter.game {
            Some(game) if !game.is_empty() => format!("{} [{game}]", chapter.title),
            _ => chapter.title.clone(),
        };
        let label = clean(&label);
        if label.is_empty() {
            continue;
        }
        let offset = chapter.offset_secs.max(0.0);
        if out.is_empty() {
            out.push((0.0, label));
            continue;
        }
        if sidecar.duration_secs > 0.0 && offset >= sidecar.duration_secs {
            break;
        }
        let last = out.last_mut().expect("not empty");
        if offset - last.0 < MIN_CHAPTER_SECS {
            last.1 = label;
        } else {
            out.push((offset, label));
        }
        // A change that returned to the previous state merges the two.
        if out.len() >= 2 && out[out.len() - 1].1 == out[out.len() - 2].1 {
            out.pop();
        }
    }
    out.into_iter().map(|(o, l)| (o as u64, l)).collect()
}

/// `00:00`, `12:34`, `1:02:03` (hours only in videos of an hour or more).
pub fn timestamp(secs: u64, long: bool) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if long && h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{:02}:{s:02}", h * 60 + m)
    }
}

/// The `video` resource sent when the upload session is opened. `privacyStatus` is always
/// explicit: since late 2026 a missing value means public.
pub fn video_resource(title: &str, description: &str, privacy: Privacy) -> serde_json::Value {
    serde_json::json!({
        "snippet": { "title": title, "description": description },
        "status": { "privacyStatus": privacy.as_str() },
    })
}

/// A title when the sidecar cannot be read: login and file name.
pub fn fallback_title(login: Option<&str>, file_name: &str) -> String {
    let text = match login {
        Some(login) => format!("{login} {file_name}"),
        None => file_name.to_string(),
    };
    clean(&text).chars().take(MAX_TITLE_CHARS).collect()
}

fn placeholder(name: &str, format: Option<&str>, s: &Sidecar) -> String {
    let first = s.chapters.first();
    match name {
        "display_name" => s.display_name.clone().unwrap_or_else(|| s.login.clone()),
        "login" => s.login.clone(),
        "title" => first.map(|c| c.title.clone()).unwrap_or_default(),
        "game" => first.and_then(|c| c.game.clone()).unwrap_or_default(),
        "part" => s.part.to_string(),
        "stream_id" => s.stream_id.clone().unwrap_or_default(),
        "started" => strftime(s.started, format.unwrap_or(DEFAULT_STARTED_FORMAT)),
        other => format!("{{{other}}}"),
    }
}

/// Formats without chrono's panic on invalid formats (the config check refuses them anyway).
fn strftime(at: DateTime<Utc>, format: &str) -> String {
    let mut out = String::new();
    if write!(out, "{}", at.format(format)).is_err() {
        out.clear();
        let _ = write!(out, "{}", at.format(DEFAULT_STARTED_FORMAT));
    }
    out
}

/// One line: no `<`/`>`, no control or invisible characters, single spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !matches!(c, '<' | '>') && !is_invisible(*c))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn clean_multiline(text: &str) -> String {
    text.lines().map(clean).collect::<Vec<_>>().join("\n")
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::sidecar::{Chapter, Gap};
    use chrono::TimeZone;

    fn sidecar(chapters: &[(f64, &str, Option<&str>)]) -> Sidecar {
        let started = Utc.with_ymd_and_hms(2026, 11, 21, 18, 5, 0).unwrap();
        Sidecar {
            login: "foo".into(),
            display_name: Some("Foo".into()),
            source: "twitch".into(),
            stream_id: Some("42".into()),
            session: 1,
            part: 1,
            file: "a.ts".into(),
            quality: "1080p60".into(),
            started,
            ended: started,
            duration_secs: 2.0 * 3600.0,
            segments: 100,
            bytes: 1,
            chapters: chapters
                .iter()
                .map(|(o, t, g)| Chapter {
                    at: started,
                    offset_secs: *o,
                    title: t.to_string(),
                    game: g.map(str::to_string),
                })
                .collect(),
            ..Default::default()
        }
    }

    const DEFAULT: &str = "{display_name} {started:%Y-%m-%d %H:%M} {title}";

    #[test]
    fn titles() {
        let s = sidecar(&[(0.0, "Speedrun <any%> day 3", Some("Celeste"))]);
        assert_eq!(
            title(DEFAULT, &s),
            "Foo 2026-11-21 18:05 Speedrun any% day 3"
        );
        assert_eq!(title("{login} {game} #{part}", &s), "foo Celeste #1");
        assert_eq!(title("{started}", &s), "2026-11-21 18:05");
        let mut later = s.clone();
        later.part = 3;
        assert_eq!(
            title(DEFAULT, &later),
            "Foo 2026-11-21 18:05 Speedrun any% day 3 (part 3)"
        );
        // Long titles are cut to 100 characters, keeping the part suffix.
        let long = sidecar(&[(0.0, &"é".repeat(300), None)]);
        let mut long = long;
        long.part = 2;
        let t = title(DEFAULT, &long);
        assert_eq!(t.chars().count(), 100, "{t}");
        assert!(t.ends_with(" (part 2)"));
        // No chapters, no display name: still a title.
        let mut bare = sidecar(&[]);
        bare.display_name = None;
        assert_eq!(title("{title}", &bare), "foo");
        assert_eq!(title("{display_name}\n\u{202e}x", &bare), "foo x");
    }

    #[test]
    fn chapters_follow_youtube_rules() {
        let s = sidecar(&[
            (3.0, "Intro", None),
            (65.0, "Ranked", Some("Chess")),
            (70.0, "Ranked!", Some("Chess")),
            (600.0, "Ranked!", Some("Chess")),
            (3725.0, "Q&A", Some("Just Chatting")),
            (9000.0, "after the end", None),
        ]);
        assert_eq!(
            chapters(&s),
            vec![
                (0, "Intro".to_string()),
                (65, "Ranked! [Chess]".to_string()),
                (3725, "Q&A [Just Chatting]".to_string()),
            ]
        );
        let d = description(&s);
        assert!(
            d.contains(
                "\nChapters:\n00:00 Intro\n01:05 Ranked! [Chess]\n1:02:05 Q&A [Just Chatting]\n"
            ),
            "{d}"
        );
        assert!(
            d.starts_with("Foo live on Twitch: https://www.twitch.tv/foo\nTitle: Intro\n"),
            "{d}"
        );
        assert!(
            d.contains("Started 2026-11-21 18:05 UTC · 2h 00m · 1080p60"),
            "{d}"
        );
        assert_eq!(timestamp(59, false), "00:59");
        assert_eq!(timestamp(3599, false), "59:59");
        assert_eq!(timestamp(3600, true), "1:00:00");
    }

    #[test]
    fn a_fill_is_titled_as_its_part_with_a_suffix() {
        let s = sidecar(&[(0.0, &"x".repeat(300), None)]);
        let t = fill_title("{title}", &s);
        assert!(t.ends_with(FILL_SUFFIX), "{t}");
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
        let short = sidecar(&[(0.0, "Speedrun", None)]);
        assert_eq!(fill_title("{title}", &short), "Speedrun (filled from VOD)");
        assert!(fill_description(&short, "a.fill-1.ts").starts_with("A gap in the live recording"));
    }

    #[test]
    fn descriptions_state_what_is_missing_and_stay_within_limits() {
        let mut s = sidecar(&[(0.0, "a <b>", None)]);
        s.gaps.push(Gap {
            at: s.started,
            offset_secs: 5.0,
            first_sequence: 1,
            last_sequence: 3,
            seconds: 6.0,
            reason: "timeout".into(),
            elapsed_secs: None,
        });
        s.recovered = true;
        let d = description(&s);
        assert!(d.contains("Missing: 1 gap(s), 6s in total"), "{d}");
        assert!(d.contains("Recovered after a crash"), "{d}");
        assert!(!d.contains('<') && !d.contains('>'), "{d}");
        let many: Vec<(f64, String, Option<&str>)> = (0..2000)
            .map(|i| {
                (
                    i as f64 * 20.0,
                    format!("chapter {i} {}", "x".repeat(40)),
                    None,
                )
            })
            .collect();
        let refs: Vec<(f64, &str, Option<&str>)> =
            many.iter().map(|(o, t, g)| (*o, t.as_str(), *g)).collect();
        let mut big = sidecar(&refs);
        big.duration_secs = 50_000.0;
        let d = description(&big);
        assert!(d.len() <= MAX_DESCRIPTION_BYTES, "{}", d.len());
        assert!(d.ends_with("Recorded by recbot."));
    }

    #[test]
    fn the_resource_always_states_privacy() {
        let v = video_resource("t", "d", Privacy::Unlisted);
        assert_eq!(v["status"]["privacyStatus"], "unlisted");
        assert_eq!(v["snippet"]["title"], "t");
    }
}
