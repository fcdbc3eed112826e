//! One IRC line as received, split without copying: tags, prefix, command, parameters. This
//! is the hot path (every chat line passes through it), so nothing here allocates; tag values
//! stay escaped until [`unescape_tag`] or the record encoder reads them.

use std::borrow::Cow;
use std::fmt;

/// A parsed line borrowing from the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub raw: &'a str,
    /// The tag section without `@` (`""` when the line has none).
    tags: &'a str,
    /// The prefix without `:`.
    pub prefix: Option<&'a str>,
    pub command: &'a str,
    /// Middle parameters, space separated.
    middle: &'a str,
    /// The parameter after ` :`, which may contain spaces.
    pub trailing: Option<&'a str>,
}

/// Why a line is not IRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    Empty,
    TagsWithoutCommand,
    PrefixWithoutCommand,
    BadCommand,
    ControlCharacter(u8),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => f.write_str("empty line"),
            LineError::TagsWithoutCommand => f.write_str("tags but no command"),
            LineError::PrefixWithoutCommand => f.write_str("prefix but no command"),
            LineError::BadCommand => {
                f.write_str("the command is neither letters nor a three-digit numeric")
            }
            LineError::ControlCharacter(b) => {
                write!(f, "control character 0x{b:02x} outside the text")
            }
        }
    }
}

impl std::error::Error for LineError {}

impl<'a> Line<'a> {
    /// Splits `raw` (without its CR LF).
    pub fn parse(raw: &'a str) -> Result<Line<'a>, LineError> {
        let mut rest = raw;
        let mut tags = "";
        if let Some(after) = rest.strip_prefix('@') {
            let (t, r) = split_space(after).ok_or(LineError::TagsWithoutCommand)?;
            tags = t;
            rest = r.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, r) = split_space(after).ok_or(LineError::PrefixWithoutCommand)?;
            prefix = Some(p);
            rest = r.trim_start_matches(' ');
        }
        if rest.is_empty() {
            return Err(if tags.is_empty() && prefix.is_none() {
                LineError::Empty
            } else if prefix.is_some() {
                LineError::PrefixWithoutCommand
            } else {
                LineError::TagsWithoutCommand
            });
        }
        let (command, params) = match split_space(rest) {
            Some((c, p)) => (c, p),
            None => (rest, ""),
        };
        let valid_command = command.bytes().all(|b| b.is_ascii_alphabetic())
            || (command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit()));
        if !valid_command {
            return Err(LineError::BadCommand);
        }
        let (middle, trailing) = if let Some(t) = params.strip_prefix(':') {
            ("", Some(t))
        } else {
            match trailing_start(params.as_bytes()) {
                Some(i) => (&params[..i], Some(&params[i + 2..])),
                None => (params, None),
            }
        };
        // Control bytes are legal only in the text (the /me form uses U+0001 there).
        if let Some(b) = first_control(&raw.as_bytes()[..raw.len() - trailing.map_or(0, str::len)])
        {
            return Err(LineError::ControlCharacter(b));
        }
        Ok(Line {
            raw,
            tags,
            prefix,
            command,
            middle: middle.trim_matches(' '),
            trailing,
        })
    }

    /// The tag section as received, without `@`.
    pub fn tag_section(&self) -> &'a str {
        self.tags
    }

    /// The tags in wire order, values still escaped.
    pub fn tags(&self) -> Tags<'a> {
        Tags { rest: self.tags }
    }

    /// The escaped value of one tag.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        self.tags().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The nickname of the prefix (`nick!user@host` → `nick`).
    pub fn nick(&self) -> Option<&'a str> {
        let prefix = self.prefix?;
        match prefix.split_once('!') {
            Some((nick, _)) => Some(nick),
            None if prefix.contains('.') => None, // a server name
            None => Some(prefix),
        }
    }

    /// Middle parameters (not the trailing one).
    pub fn middle(&self) -> impl Iterator<Item = &'a str> {
        self.middle.split(' ').filter(|p| !p.is_empty())
    }

    /// The first parameter.
    pub fn first_param(&self) -> Option<&'a str> {
        self.middle().next().or(self.trailing)
    }

    /// The last parameter: the trailing one, or else the last middle one (`PRIVMSG #c Kappa`).
    pub fn last_param(&self) -> Option<&'a str> {
        self.trailing.or_else(|| self.middle().last())
    }

    /// The room the line is about: the first parameter when it is `#<login>`, without `#`,
    /// and only when it is a well-formed lowercase login (so it is safe as a folder name).
    pub fn channel(&self) -> Option<&'a str> {
        let name = self.middle().next()?.strip_prefix('#')?;
        is_login(name).then_some(name)
    }

    /// The text of a chat line (the last parameter), unless that is the channel itself.
    pub fn text(&self) -> Option<&'a str> {
        match self.trailing {
            Some(t) => Some(t),
            None => {
                let mut params = self.middle();
                params.next()?;
                params.last()
            }
        }
    }
}

/// `s` split at its first space (which is not kept).
fn split_space(s: &str) -> Option<(&str, &str)> {
    let i = memchr::memchr(b' ', s.as_bytes())?;
    Some((&s[..i], &s[i + 1..]))
}

/// Where ` :` (the start of the trailing parameter) is, looking only at colons.
fn trailing_start(params: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &params[from..]) {
        let at = from + i;
        if at > 0 && params[at - 1] == b' ' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

/// The first byte below 0x20, checking 8 bytes at a time.
fn first_control(s: &[u8]) -> Option<u8> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = 0;
    while i + 8 <= s.len() {
        let word = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        if word.wrapping_sub(ONES * 0x20) & !word & (ONES * 0x80) != 0 {
            break;
        }
        i += 8;
    }
    s[i..].iter().copied().find(|b| *b < 0x20)
}

/// `[a-z0-9_]{1,25}`: Twitch logins as they appear on the wire.
pub fn is_login(s: &str) -> bool {
    (1..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Iterator over `key=value` pairs of a tag section. A tag without `=` has an empty value.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (tag, rest) = match memchr(b';', self.rest.as_bytes()) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            if tag.is_empty() {
                continue;
            }
            return Some(match memchr(b'=', tag.as_bytes()) {
                Some(i) => (&tag[..i], &tag[i + 1..]),
                None => (tag, ""),
            });
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

/// IRCv3 tag value unescaping: `\:` → `;`, `\s` → space, `\\` → `\`, `\r`, `\n`; any other
/// escaped character stands for itself and a lone trailing `\` is dropped.
pub fn unescape_tag(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// `\x01ACTION text\x01` (the /me form) → `text`.
pub fn action_text(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("\u{1}ACTION ")?;
    Some(inner.strip_suffix('\u{1}').unwrap_or(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_tagged_privmsg() {
        let raw = "@badge-info=;color=#0D4200;display-name=ronni;emotes=25:0-4;id=b34c \
                   :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa";
        let line = Line::parse(raw).unwrap();
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.prefix, Some("ronni!ronni@ronni.tmi.twitch.tv"));
        assert_eq!(line.nick(), Some("ronni"));
        assert_eq!(line.channel(), Some("ronni"));
        assert_eq!(line.text(), Some("Kappa Keepo Kappa"));
        assert_eq!(line.tag("display-name"), Some("ronni"));
        assert_eq!(line.tag("badge-info"), Some(""));
        assert_eq!(line.tag("emotes"), Some("25:0-4"));
        assert_eq!(line.tag("nope"), None);
        let keys: Vec<_> = line.tags().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["badge-info", "color", "display-name", "emotes", "id"]
        );
    }

    #[test]
    fn table_of_shapes() {
        // (raw, command, channel, text, first param)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "PING :tmi.twitch.tv",
                "PING",
                None,
                Some("tmi.twitch.tv"),
                Some("tmi.twitch.tv"),
            ),
            (":tmi.twitch.tv RECONNECT", "RECONNECT", None, None, None),
            (
                "PRIVMSG #c Kappa",
                "PRIVMSG",
                Some("c"),
                Some("Kappa"),
                Some("#c"),
            ),
            (
                ":a!a@a JOIN #dallas",
                "JOIN",
                Some("dallas"),
                None,
                Some("#dallas"),
            ),
            (
                ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands",
                "CAP",
                None,
                Some("twitch.tv/tags twitch.tv/commands"),
                Some("*"),
            ),
            (
                ":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!",
                "001",
                None,
                Some("Welcome, GLHF!"),
                Some("justinfan1"),
            ),
            (
                "@a=b   :x!x@x   PRIVMSG   #c   :  spaced",
                "PRIVMSG",
                Some("c"),
                Some("  spaced"),
                Some("#c"),
            ),
            (
                "PRIVMSG #../etc :x",
                "PRIVMSG",
                None,
                Some("x"),
                Some("#../etc"),
            ),
            (
                "PRIVMSG #UPPER :x",
                "PRIVMSG",
                None,
                Some("x"),
                Some("#UPPER"),
            ),
            (
                ":jtv!jtv@jtv.tmi.twitch.tv PRIVMSG stuck_overflow :hosting",
                "PRIVMSG",
                None,
                Some("hosting"),
                Some("stuck_overflow"),
            ),
            (
                "PRIVMSG #c :\u{1}ACTION waves\u{1}",
                "PRIVMSG",
                Some("c"),
                Some("\u{1}ACTION waves\u{1}"),
                Some("#c"),
            ),
        ];
        for (raw, command, channel, text, first) in cases {
            let line = Line::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(line.command, *command, "{raw}");
            assert_eq!(line.channel(), *channel, "{raw}");
            assert_eq!(line.text(), *text, "{raw}");
            assert_eq!(line.first_param(), *first, "{raw}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        let cases: &[(&str, LineError)] = &[
            ("", LineError::Empty),
            ("@only-tags", LineError::TagsWithoutCommand),
            ("@a=b ", LineError::TagsWithoutCommand),
            (":prefix.only", LineError::PrefixWithoutCommand),
            (":prefix ", LineError::PrefixWithoutCommand),
            ("PRIV-MSG #c :x", LineError::BadCommand),
            ("12 #c", LineError::BadCommand),
            ("PRIVMSG #c\u{7} :x", LineError::ControlCharacter(7)),
            ("@a=\u{0} PING", LineError::ControlCharacter(0)),
        ];
        for (raw, expected) in cases {
            assert_eq!(Line::parse(raw).unwrap_err(), *expected, "{raw:?}");
        }
        // Odd but legal: never panics on any prefix of a real line.
        let real = "@a=b;c :n!n@n PRIVMSG #c :hi there";
        for end in 0..real.len() {
            let _ = Line::parse(&real[..end]);
        }
    }

    #[test]
    fn tags_unescape() {
        for (escaped, plain) in [
            (
                "ronni\\shas\\ssubscribed\\sfor\\s6\\smonths!",
                "ronni has subscribed for 6 months!",
            ),
            ("a\\:b", "a;b"),
            ("back\\\\slash", "back\\slash"),
            ("line\\nbreak\\r", "line\nbreak\r"),
            ("unknown\\qescape", "unknownqescape"),
            ("trailing\\", "trailing"),
            ("테스트계정420", "테스트계정420"),
        ] {
            assert_eq!(unescape_tag(escaped), plain);
        }
        assert!(matches!(unescape_tag("plain"), Cow::Borrowed(_)));
        let line = Line::parse("@flag;empty=;k=v;;x=1 PING").unwrap();
        let tags: Vec<_> = line.tags().collect();
        assert_eq!(tags, [("flag", ""), ("empty", ""), ("k", "v"), ("x", "1")]);
    }

    #[test]
    fn actions() {
        assert_eq!(action_text("\u{1}ACTION -tags\u{1}"), Some("-tags"));
        assert_eq!(
            action_text("\u{1}ACTION unterminated"),
            Some("unterminated")
        );
        assert_eq!(action_text("plain"), None);
    }
}
