//! The chat log's line format: one JSON object per received IRC line. [`encode`] writes it
//! straight into the writer's buffer (hot path: no allocation per tag, escapes done in one
//! pass); [`Record`] reads it back for `recbot logs` and the per-recording files.
//!
//! Fields: `recv_ms` (receive time, UTC ms), `sent_ms` (`tmi-sent-ts`), `cmd`, `channel`,
//! `login` (the user the line is about), `user_id`, `display_name`, `id`, `text`, `action`
//! (a /me line; `text` is then without the `ACTION` wrapper), `tags` (all tags, unescaped, in
//! wire order), `raw` (the line exactly as received, without CR LF), `error` (why the line is
//! not IRC; it is still logged), `raw_hex` (the exact bytes, only when they are not UTF-8).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::Deserialize;

use super::line::{action_text, is_login, Line};

/// What the connection needs to know about a line it just encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a> {
    /// The room's login when the line belongs to one.
    pub channel: Option<&'a str>,
    pub command: Option<&'a str>,
    /// `tmi-sent-ts` when present, else the receive time: what the line is dated by.
    pub time_ms: i64,
    /// Identifies the line across two connections (message `id`, else a hash of the raw line).
    pub key: u64,
    pub malformed: bool,
}

/// Appends the JSON line (with `\n`) for `text` received at `recv_ms`. `exact` holds the
/// received bytes when they were not valid UTF-8 (`text` is then their lossy form).
pub fn encode<'a>(
    text: &'a str,
    exact: Option<&[u8]>,
    recv_ms: i64,
    out: &mut Vec<u8>,
) -> Encoded<'a> {
    out.extend_from_slice(b"{\"recv_ms\":");
    push_int(out, recv_ms);
    let line = match Line::parse(text) {
        Ok(line) => line,
        Err(e) => {
            push_key(out, "error");
            push_str(out, e.to_string().as_bytes());
            finish(out, text, exact);
            return Encoded {
                channel: None,
                command: None,
                time_ms: recv_ms,
                key: hash(text.as_bytes()),
                malformed: true,
            };
        }
    };
    let mut special = Special::default();
    for (k, v) in line.tags() {
        match k {
            "id" => special.id = Some(v),
            "tmi-sent-ts" => special.sent = v.parse::<i64>().ok(),
            "user-id" => special.user_id = Some(v),
            "target-user-id" => special.target_user_id = Some(v),
            "display-name" => special.display_name = Some(v),
            "login" => special.login = Some(v),
            _ => {}
        }
    }
    if let Some(sent) = special.sent {
        push_key(out, "sent_ms");
        push_int(out, sent);
    }
    push_key(out, "cmd");
    push_str(out, line.command.as_bytes());
    let channel = line.channel();
    if let Some(c) = channel {
        push_key(out, "channel");
        push_str(out, c.as_bytes());
    } else if ROOM_COMMANDS.contains(&line.command) {
        // Logged in the server folder, flagged: nothing may name a folder but a login.
        push_key(out, "error");
        let target = line.first_param().unwrap_or("");
        let message = format!("{} target `{target}` is not a channel", line.command);
        push_str(out, message.as_bytes());
    }
    let is_chat_text = matches!(
        line.command,
        "PRIVMSG" | "USERNOTICE" | "NOTICE" | "CLEARMSG" | "WHISPER"
    );
    let (login, user_id) = match line.command {
        "CLEARCHAT" => (line.trailing.map(Tagged::Plain), special.target_user_id),
        "PRIVMSG" | "WHISPER" => (line.nick().map(Tagged::Plain), special.user_id),
        _ => (special.login.map(Tagged::Escaped), special.user_id),
    };
    if let Some(login) = login {
        push_key(out, "login");
        login.push(out);
    }
    if let Some(v) = user_id {
        push_key(out, "user_id");
        push_tag_value(out, v.as_bytes());
    }
    if let Some(v) = special.display_name {
        push_key(out, "display_name");
        push_tag_value(out, v.as_bytes());
    }
    if let Some(v) = special.id {
        push_key(out, "id");
        push_tag_value(out, v.as_bytes());
    }
    if is_chat_text {
        if let Some(t) = line.text() {
            push_key(out, "text");
            match action_text(t) {
                Some(action) => {
                    push_str(out, action.as_bytes());
                    out.extend_from_slice(b",\"action\":true");
                }
                None => push_str(out, t.as_bytes()),
            }
        }
    }
    if line.tags().next().is_some() {
        out.extend_from_slice(b",\"tags\":{");
        for (i, (k, v)) in line.tags().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, k.as_bytes());
            out.push(b':');
            push_tag_value(out, v.as_bytes());
        }
        out.push(b'}');
    }
    finish(out, text, exact);
    Encoded {
        channel,
        command: Some(line.command),
        time_ms: special.sent.unwrap_or(recv_ms),
        key: match special.id {
            Some(id) if !id.is_empty() => hash(id.as_bytes()),
            _ => hash(text.as_bytes()),
        },
        malformed: false,
    }
}

/// Appends a line that is logged raw with `error` as the reason (e.g. cut because too long).
pub fn encode_malformed<'a>(
    text: &'a str,
    exact: Option<&[u8]>,
    recv_ms: i64,
    error: &str,
    out: &mut Vec<u8>,
) -> Encoded<'a> {
    out.extend_from_slice(b"{\"recv_ms\":");
    push_int(out, recv_ms);
    push_key(out, "error");
    push_str(out, error.as_bytes());
    finish(out, text, exact);
    Encoded {
        channel: None,
        command: None,
        time_ms: recv_ms,
        key: hash(text.as_bytes()),
        malformed: true,
    }
}

/// Commands that always address a room.
const ROOM_COMMANDS: &[&str] = &[
    "PRIVMSG",
    "USERNOTICE",
    "CLEARCHAT",
    "CLEARMSG",
    "ROOMSTATE",
    "USERSTATE",
    "HOSTTARGET",
];

#[derive(Default)]
struct Special<'a> {
    id: Option<&'a str>,
    sent: Option<i64>,
    user_id: Option<&'a str>,
    target_user_id: Option<&'a str>,
    display_name: Option<&'a str>,
    login: Option<&'a str>,
}

enum Tagged<'a> {
    Plain(&'a str),
    Escaped(&'a str),
}

impl Tagged<'_> {
    fn push(&self, out: &mut Vec<u8>) {
        match self {
            Tagged::Plain(s) => push_str(out, s.as_bytes()),
            Tagged::Escaped(s) => push_tag_value(out, s.as_bytes()),
        }
    }
}

fn finish(out: &mut Vec<u8>, text: &str, exact: Option<&[u8]>) {
    push_key(out, "raw");
    push_str(out, text.as_bytes());
    if let Some(bytes) = exact {
        push_key(out, "raw_hex");
        out.push(b'"');
        for b in bytes {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Bytes that JSON strings cannot hold as they are.
const fn json_escapes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
}
static NEEDS_ESCAPE: [bool; 256] = json_escapes();

/// Appends `s` (UTF-8) as a JSON string.
fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if NEEDS_ESCAPE[b as usize] {
            out.extend_from_slice(&s[start..i]);
            push_escaped(out, b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Appends an IRCv3-escaped tag value, unescaped, as a JSON string (one pass).
fn push_tag_value(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'\\' {
            out.extend_from_slice(&s[start..i]);
            match s.get(i + 1) {
                Some(b':') => out.push(b';'),
                Some(b's') => out.push(b' '),
                Some(b'r') => out.extend_from_slice(b"\\r"),
                Some(b'n') => out.extend_from_slice(b"\\n"),
                Some(&other) if NEEDS_ESCAPE[other as usize] => push_escaped(out, other),
                Some(&other) if other < 0x80 => out.push(other),
                // A multi-byte character: the backslash goes, the character stays whole.
                Some(_) => {
                    start = i + 1;
                    i += 1;
                    continue;
                }
                None => {}
            }
            i += 2;
            start = i;
        } else if NEEDS_ESCAPE[b as usize] {
            out.extend_from_slice(&s[start..i]);
            push_escaped(out, b);
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&s[start.min(s.len())..]);
    out.push(b'"');
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

/// A logged line read back.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Record {
    pub recv_ms: i64,
    #[serde(default)]
    pub sent_ms: Option<i64>,
    #[serde(default)]
    pub cmd: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub action: bool,
    #[serde(default)]
    pub tags: HashMap<String, String>,
    #[serde(default)]
    pub raw: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub raw_hex: Option<String>,
    /// Only in per-recording files: milliseconds from the part's start.
    #[serde(default)]
    pub offset_ms: Option<i64>,
}

impl Record {
    /// What the line is dated by: `tmi-sent-ts`, else the receive time.
    pub fn time_ms(&self) -> i64 {
        self.sent_ms.unwrap_or(self.recv_ms)
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// Only the time of a logged line, for scanning files quickly.
#[derive(Debug, Deserialize)]
pub struct Stamp {
    pub recv_ms: i64,
    #[serde(default)]
    pub sent_ms: Option<i64>,
}

impl Stamp {
    pub fn time_ms(&self) -> i64 {
        self.sent_ms.unwrap_or(self.recv_ms)
    }
}

/// Whether `channel` may name a folder (what [`Line::channel`] guarantees).
pub fn valid_channel(channel: &str) -> bool {
    is_login(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_one(raw: &str) -> (serde_json::Value, Record) {
        let mut out = Vec::new();
        encode(raw, None, 1_000, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let record: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(record.raw, raw);
        (value, record)
    }

    #[test]
    fn privmsg_fields_and_unescaped_tags() {
        let raw = "@badge-info=;display-name=Some\\sUser;id=abc;room-id=1;system-msg=a\\sb\\:c\\\\d\\ne;\
                   tmi-sent-ts=1507246572675;user-id=42 :some!some@some.tmi.twitch.tv PRIVMSG #chan :hi \"there\"";
        let (v, r) = encode_one(raw);
        assert_eq!(r.cmd.as_deref(), Some("PRIVMSG"));
        assert_eq!(r.channel.as_deref(), Some("chan"));
        assert_eq!(r.login.as_deref(), Some("some"));
        assert_eq!(r.user_id.as_deref(), Some("42"));
        assert_eq!(r.display_name.as_deref(), Some("Some User"));
        assert_eq!(r.id.as_deref(), Some("abc"));
        assert_eq!(r.text.as_deref(), Some("hi \"there\""));
        assert_eq!(r.sent_ms, Some(1507246572675));
        assert_eq!(r.recv_ms, 1_000);
        assert_eq!(r.tag("system-msg"), Some("a b;c\\d\ne"));
        assert_eq!(r.tag("badge-info"), Some(""));
        // Tags keep their wire order in the file.
        let keys: Vec<_> = v["tags"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn actions_clearchat_usernotice() {
        let (_, r) = encode_one("@id=x :a!a@a PRIVMSG #c :\u{1}ACTION waves\u{1}");
        assert_eq!(r.text.as_deref(), Some("waves"));
        assert!(r.action);
        let (_, r) = encode_one(
            "@ban-duration=350;room-id=1;target-user-id=87654321;tmi-sent-ts=5 :tmi.twitch.tv CLEARCHAT #dallas :ronni",
        );
        assert_eq!(r.login.as_deref(), Some("ronni"));
        assert_eq!(r.user_id.as_deref(), Some("87654321"));
        assert_eq!(r.text, None);
        assert_eq!(r.time_ms(), 5);
        let (_, r) = encode_one(
            "@login=ronni;msg-id=resub;user-id=7 :tmi.twitch.tv USERNOTICE #dallas :Great stream",
        );
        assert_eq!(r.login.as_deref(), Some("ronni"));
        assert_eq!(r.text.as_deref(), Some("Great stream"));
        assert_eq!(r.time_ms(), 1_000, "no tmi-sent-ts: dated by receive time");
    }

    #[test]
    fn malformed_and_non_utf8_lines_are_kept() {
        let (_, r) = encode_one("@only-tags");
        assert_eq!(r.error.as_deref(), Some("tags but no command"));
        let (_, r) = encode_one(":jtv!jtv@jtv.tmi.twitch.tv PRIVMSG stuck_overflow :hosting");
        assert_eq!(
            r.error.as_deref(),
            Some("PRIVMSG target `stuck_overflow` is not a channel")
        );
        assert_eq!(r.channel, None);
        let (_, r) = encode_one("PRIVMSG #../../etc :x");
        assert!(r.error.unwrap().contains("not a channel"));
        let bytes = b"PRIVMSG #c :caf\xe9";
        let text = String::from_utf8_lossy(bytes);
        let mut out = Vec::new();
        encode(&text, Some(bytes), 5, &mut out);
        let r: Record = serde_json::from_slice(&out).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.raw_hex.as_deref(), Some(hex.as_str()));
        assert_eq!(r.text.as_deref(), Some("caf\u{fffd}"));
    }

    #[test]
    fn control_characters_and_odd_escapes_stay_valid_json() {
        for raw in [
            "@k=\\ PRIVMSG #c :x",
            "@k=a\\ PRIVMSG #c :x",
            "@k=\\\u{e9} PRIVMSG #c :\t\u{7f}\u{1}",
            "@k=\\\" PRIVMSG #c :\"\\",
        ] {
            let mut out = Vec::new();
            encode(raw, None, 1, &mut out);
            let r: Record = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{raw:?}: {e}: {}", String::from_utf8_lossy(&out)));
            assert_eq!(r.raw, raw);
            assert_eq!(
                r.tag("k").map(str::to_string),
                Some(
                    super::super::line::unescape_tag(raw[3..].split(' ').next().unwrap())
                        .into_owned()
                ),
                "{raw:?}"
            );
        }
    }
}
