//! Events as plain text, the same words on every front-end. Text that comes from outside
//! (stream titles and games, playlists' and services' error texts, chat names, typed commands)
//! is untrusted: [`untrusted`] neutralizes it for the front-end's markup before it is placed in
//! recbot's own words, so a title cannot clear a terminal, reorder a line, ping `@everyone` or
//! turn the rest of a message into code.

use crate::core::Notice;
use crate::event::{Event, EventKind};
pub use crate::format::{duration, size};

/// Which markup a front-end's messages are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// A terminal (the console) or a log: control characters only.
    Plain,
    /// Slack mrkdwn. `&`, `<` and `>` are escaped over the whole message by the Slack front-end.
    Slack,
    /// Discord markdown.
    Discord,
}

impl Markup {
    /// The markup replies to a command from `room` are read in.
    pub fn of(room: &crate::event::Room) -> Markup {
        match room {
            crate::event::Room::Console => Markup::Plain,
            crate::event::Room::Slack(_) => Markup::Slack,
            crate::event::Room::Discord(_) => Markup::Discord,
        }
    }
}

/// Untrusted text made harmless inside a message in `markup`:
/// - control characters (ANSI escapes' `ESC`, `\r`, `\x08`, C1) are dropped, line breaks and
///   tabs become spaces (one event, one line);
/// - bidirectional overrides and invisible format characters (RLO, LRI, zero-width space,
///   BOM, …) are dropped, so a title cannot reverse or hide what follows it;
/// - backticks become `'`, so a title cannot open a code span around recbot's own text;
/// - `@` is followed by a zero-width space in Slack and Discord (`@everyone`, `@here`,
///   `@channel` stay text);
/// - Discord: markdown characters are backslash-escaped (bold, spoilers, masked links
///   `[x](url)`, `<@123>` mentions, headings, quotes).
pub fn untrusted(text: &str, markup: Markup) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => {}
            '`' => out.push('\''),
            '@' if markup != Markup::Plain => {
                out.push('@');
                out.push('\u{200B}');
            }
            '\\' | '*' | '_' | '~' | '|' | '>' | '<' | '#' | '[' | ']' | '(' | ')' | ':'
                if markup == Markup::Discord =>
            {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A whole message (recbot's words and all) made safe for a terminal or chat: control
/// characters other than line breaks, and bidirectional/invisible format characters, dropped.
/// The last line of defence; fields were already neutralized by [`untrusted`].
/// The zero-width spaces [`untrusted`] put after `@` stay.
pub fn safe_text(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\u{200B}' || !(c.is_control() || is_invisible_format(c)))
        .collect()
}

/// Bidirectional controls and invisible characters that change how the rest of a line reads.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// One line describing an event, with its login when it has one (for the console and logs).
pub fn event_line(event: &Event) -> String {
    event_line_for(event, Markup::Plain)
}

/// One line describing an event, its untrusted parts neutralized for `markup`.
pub fn event_line_for(event: &Event, markup: Markup) -> String {
    let login = event.login.as_ref().map(|l| l.as_str()).unwrap_or("recbot");
    let u = |text: &str| untrusted(text, markup);
    let file_name = |file: &std::path::Path| {
        u(&file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    };
    match &event.kind {
        EventKind::ServiceStarted { version, watching } => {
            format!("recbot {version} started, watching {watching}")
        }
        EventKind::ServiceStopping => {
            "recbot is stopping: finishing files and saving state".to_string()
        }
        EventKind::WatchAdded { by, room, options } => {
            format!("{login} added by {} in {room} ({options})", u(by))
        }
        EventKind::WatchRemoved { by, room } => format!("{login} removed by {} in {room}", u(by)),
        EventKind::CommandRefused { by, room, command } => format!(
            "refused `{}` from {} in {room}: not an operator",
            u(command),
            u(by)
        ),
        EventKind::LiveDetected {
            title,
            game,
            latency_secs,
            ..
        } => {
            let mut line = format!("🔴 {login} is live: {}", u(title));
            if let Some(game) = game {
                line.push_str(&format!(" [{}]", u(game)));
            }
            if let Some(latency) = latency_secs {
                line.push_str(&format!(" (detected {} after start)", duration(*latency)));
            }
            line
        }
        EventKind::StreamUpdated { title, game } => match game {
            Some(game) => format!("{login} changed title/game: {} [{}]", u(title), u(game)),
            None => format!("{login} changed title: {}", u(title)),
        },
        EventKind::StreamOffline { .. } => format!("{login} is offline"),
        // With a login: one HLS source's checks (the Twitch watcher's are about every login).
        EventKind::LiveCheckFailed { reason, cycles } if event.login.is_some() => format!(
            "⚠ {login}: the source failed {cycles} checks in a row; checking less often until it answers: {}",
            u(reason)
        ),
        EventKind::LiveCheckFailed { reason, cycles } => format!(
            "⚠ live checks failed {cycles} times in a row; live streams may be missed: {}",
            u(reason)
        ),
        EventKind::LiveCheckRecovered if event.login.is_some() => {
            format!("{login}: the source answers again")
        }
        EventKind::LiveCheckRecovered => "live checks work again".to_string(),
        EventKind::RecordingStarted {
            file,
            quality,
            part,
        } => {
            let file = u(file);
            if *part > 1 {
                format!("⏺ {login}: recording part {part} ({quality}) to {file}")
            } else {
                format!("⏺ {login}: recording ({quality}) to {file}")
            }
        }
        EventKind::RecordingGap {
            first_sequence,
            last_sequence,
            seconds,
            reason,
        } => format!(
            "⚠ {login}: gap of {} in the recording (segments {first_sequence}–{last_sequence}): {}",
            duration(*seconds),
            u(reason)
        ),
        EventKind::AdBreak { duration_secs } => {
            format!("{login}: ad break of {} skipped", duration(*duration_secs))
        }
        EventKind::RecordingStalled { seconds } => format!(
            "⚠ {login}: no new video for {} although the stream is live; still trying",
            duration(*seconds as f64)
        ),
        EventKind::RecordingPartFinished {
            part,
            file,
            bytes,
            duration_secs,
            gaps,
            recovered,
            ..
        } => {
            let name = file_name(file);
            let mut line = format!(
                "{login}: part {part} finished: {name}, {}, {}",
                duration(*duration_secs),
                size(*bytes)
            );
            if *gaps > 0 {
                line.push_str(&format!(", {gaps} gap(s)"));
            }
            if *recovered {
                line.push_str(" (recovered after a crash)");
            }
            line
        }
        EventKind::RecordingFinished { parts: 0, .. } => {
            format!("⏹ {login}: recording ended without video")
        }
        EventKind::RecordingFinished {
            parts,
            duration_secs,
            bytes,
            gaps,
        } => format!(
            "⏹ {login}: recording finished: {}, {}, {parts} part(s), {gaps} gap(s)",
            duration(*duration_secs),
            size(*bytes)
        ),
        EventKind::RecordingFailed { reason } => {
            format!("❌ {login}: recording failed: {}", u(reason))
        }
        EventKind::DiskLow {
            used_percent,
            free_gb,
            stopped_recording,
        } => {
            let mut line = format!("⚠ disk {used_percent:.0}% full, {free_gb:.1} GB free");
            if *stopped_recording {
                line.push_str(": recording stopped (parts finalized) until space is freed");
            }
            line
        }
        EventKind::ChatJoined { rooms } => match &event.login {
            Some(login) if *rooms == 1 => format!("💬 {login}: logging chat"),
            _ => format!("💬 chat logging: joined {rooms} room(s)"),
        },
        EventKind::ChatDisconnected { reason } => {
            format!("chat connection lost: {}; reconnecting", u(reason))
        }
        EventKind::ChatReconnected { offline_secs } => {
            format!("chat reconnected after {}", duration(*offline_secs))
        }
        EventKind::ChatDropped { lines } => format!(
            "⚠ {login}: {lines} chat line(s) could not be written (disk too slow or failing)"
        ),
        EventKind::ChatSaved { part, file, lines } => {
            let name = file_name(file);
            format!("💬 {login}: chat of part {part} saved: {name} ({lines} line(s))")
        }
        EventKind::ChatSaveFailed { part, reason } => format!(
            "⚠ {login}: the chat of part {part} could not be saved beside it: {} (the day \
             logs still have it)",
            u(reason)
        ),
        // Never the consent link (events go to the public events room, and older event logs
        // may still carry one): the operator who runs `auth` gets it privately.
        EventKind::AuthRequired {
            service, reason, ..
        } => format!(
            "🔑 {service} needs authorization ({}): an operator should run `auth {service}` \
             (the link is sent to them privately)",
            u(reason)
        ),
        EventKind::AuthCompleted { service, account } => match account {
            Some(account) => format!("🔑 {service} connected as {}", u(account)),
            None => format!("🔑 {service} connected"),
        },
        EventKind::UploadQueued { job, file } => format!("upload #{job} queued: {}", u(file)),
        EventKind::UploadStarted {
            job,
            file,
            bytes,
            from_bytes,
        } => {
            let file = u(file);
            if *from_bytes > 0 && *bytes > 0 {
                format!(
                    "⬆ upload #{job} resumed at {:.0}%: {file} ({})",
                    *from_bytes as f64 * 100.0 / *bytes as f64,
                    size(*bytes)
                )
            } else {
                format!("⬆ upload #{job} started: {file} ({})", size(*bytes))
            }
        }
        EventKind::UploadProgress {
            job,
            sent_bytes,
            total_bytes,
            bytes_per_sec,
        } => {
            let percent = if *total_bytes > 0 {
                *sent_bytes as f64 * 100.0 / *total_bytes as f64
            } else {
                100.0
            };
            let mut line = format!(
                "⬆ upload #{job}: {percent:.0}% ({} of {})",
                size(*sent_bytes),
                size(*total_bytes)
            );
            if *bytes_per_sec > 0.0 {
                let left = total_bytes.saturating_sub(*sent_bytes) as f64 / bytes_per_sec;
                line.push_str(&format!(
                    ", {}/s, about {} left",
                    size(*bytes_per_sec as u64),
                    duration(left)
                ));
            }
            line
        }
        EventKind::UploadDeferred { job, reason, until } => format!(
            "upload #{job} waits until {} UTC: {}",
            until.format("%Y-%m-%d %H:%M"),
            u(reason)
        ),
        EventKind::UploadFinished { job, url, .. } => {
            format!("✅ {login}: upload #{job} finished: {url}")
        }
        EventKind::UploadFailed { job, reason } => format!(
            "❌ upload #{job} failed: {} (the file is kept; `retry {job}` re-queues it)",
            u(reason)
        ),
        EventKind::UploadFilesKept { job, file, reason } => format!(
            "⚠️ {login}: upload #{job}: {}, so {} is kept, not deleted",
            u(reason),
            u(file)
        ),
    }
}

/// A notice as the console shows it.
pub fn notice_line(notice: &Notice) -> String {
    event_line(&notice.event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str =
        "@everyone <@123> <!channel> **x** [a](http://e) `y`\x1b[2J\r\u{202E}txt\u{200B}\nz";

    fn live(title: &str) -> Event {
        Event::now(
            Some(recbot_commands::Login::parse("foo").unwrap()),
            EventKind::LiveDetected {
                stream_id: None,
                display_name: None,
                started_at: None,
                title: title.into(),
                game: Some("`game`".into()),
                viewers: None,
                latency_secs: None,
            },
        )
    }

    #[test]
    fn hostile_titles_are_inert_on_every_front_end() {
        let plain = event_line(&live(HOSTILE));
        assert_eq!(
            plain,
            "🔴 foo is live: @everyone <@123> <!channel> **x** [a](http://e) 'y'[2J txt z \
             ['game']"
        );
        let slack = event_line_for(&live(HOSTILE), Markup::Slack);
        assert_eq!(
            slack,
            "🔴 foo is live: @\u{200B}everyone <@\u{200B}123> <!channel> **x** [a](http://e) \
             'y'[2J txt z ['game']"
        );
        let discord = event_line_for(&live(HOSTILE), Markup::Discord);
        assert_eq!(
            discord,
            "🔴 foo is live: @\u{200B}everyone \\<@\u{200B}123\\> \\<!channel\\> \\*\\*x\\*\\* \
             \\[a\\]\\(http\\://e\\) 'y'\\[2J txt z ['game']"
        );
        for line in [&plain, &slack, &discord] {
            assert!(
                !line.contains(['\x1b', '\r', '\n', '\u{202E}', '`']),
                "{line:?}"
            );
        }
        // Reasons from remote services too.
        let failed = Event::now(
            None,
            EventKind::UploadFailed {
                job: 1,
                reason: "HTTP 400: \x1b]0;pwned\x07 @here".into(),
            },
        );
        let line = event_line_for(&failed, Markup::Discord);
        assert!(
            line.contains("HTTP 400\\: \\]0;pwned @\u{200B}here"),
            "{line}"
        );
    }

    #[test]
    fn safe_text_keeps_line_breaks_only() {
        assert_eq!(safe_text("a\x1b[2Jb\r\nc\u{202E}d\te"), "a[2Jb\ncde");
    }
}
