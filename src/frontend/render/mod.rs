//! All text for people, the same words on every front-end: event lines (`events.rs`), command
//! replies (`replies.rs`) and `status` (`status.rs`); this file holds how outside text is
//! made safe. Text that comes from outside
//! (stream titles and games, playlists' and services' error texts, chat names, typed commands)
//! is untrusted: [`untrusted`] neutralizes it for the front-end's markup before it is placed in
//! recbot's own words, so a title cannot clear a terminal, reorder a line, ping `@everyone` or
//! turn the rest of a message into code.

mod cluster;
mod events;
mod replies;
mod status;

pub use cluster::cluster_table;
pub use events::{digest, event_line, event_line_for};
pub use replies::{describe_job, refusal, refused, reply, said, Rendered};
pub use status::{
    chat_identity, chat_line, chat_login_line, chat_service_line, disk, live_of, recording_now,
    status,
};

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
            crate::event::Room::Console | crate::event::Room::Http(_) => Markup::Plain,
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

/// For tests: a command's reply as the front-end of its room words it.
#[cfg(test)]
pub(crate) trait Ask {
    async fn ask(&self, text: &str, origin: crate::core::Origin) -> Rendered;
}

#[cfg(test)]
impl Ask for crate::core::CoreHandle {
    async fn ask(&self, text: &str, origin: crate::core::Origin) -> Rendered {
        let markup = Markup::of(&origin.room);
        reply(&self.submit(text, origin).await, markup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};

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
