//! The chat log's line format: one JSON object per received IRC line. [`encode`] writes it
//! straight into the writer's buffer (hot path: no allocation per tag, escapes done in one
//! pass); [`Record`] reads it back for `recbot logs` and the per-recording files.
//!
//! Fields: `recv_ms` (receive time, UTC ms), `sent_ms` (`tmi-sent-ts`), `cmd`, `channel`,
//! `login` (the user the line is about), `user_id`, `display_name`, `id`, `text`, `action`
//! (a /me line; `text` is then without the `ACTION` wrapper), `tags` (all tags, unescaped, in
//! wire order), `raw` (the line exactly as received, without CR LF), `error` (why the line is
//! not IRC; it is still logged), `raw_hex` (the exact bytes, only when they are not UTF-8).
//!
//! Chat of other platforms (Chzzk chat, Bilibili danmaku) uses the same file and fields,
//! written by [`encode_platform`]: `platform` (`chzzk`, `bilibili`), `cmd` (Chzzk's number,
//! Bilibili's command), `channel` (the channel or real room id), `sent_ms`, `user_id`,
//! `display_name` (the nickname as sent), `text`, `amount` (`{"value","unit"}` of a
//! donation, super chat or gift) and `raw` (the message's JSON as received); a frame recbot
//! cannot read is kept in `raw` with `error` saying why ([`encode_platform_unreadable`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::Deserialize;

use recbot_commands::Platform;

use super::line::{action_text, Line};
use super::platform_line::PlatformLine;

/// What the connection needs to know about a line it just encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a> {
    /// The room's login when the line belongs to one.
    pub channel: Option<&'a str>,
    pub command: Option<&'a str>,
    /// `tmi-sent-ts` when present, else the receive time: what the line is dated by.
    pub time_ms: i64,
    /// The message `id` tag (escaped form).
    pub id: Option<&'a str>,
    pub raw: &'a str,
}

impl Encoded<'_> {
    /// Identifies a room line across two connections: its message `id`, else the raw line.
    /// Computed only while connections overlap, and never for control lines (a PING is the
    /// same on every connection, yet each must be answered).
    pub fn key(&self) -> u64 {
        match self.id {
            Some(id) if !id.is_empty() => hash(id.as_bytes()),
            _ => hash(self.raw.as_bytes()),
        }
    }
}

/// Appends the JSON line (with `\n`) for `text` received at `recv_ms`. `exact` holds the
/// received bytes when they were not valid UTF-8 (`text` is then their lossy form).
pub fn encode<'a>(
    text: &'a str,
    exact: Option<&[u8]>,
    recv_ms: i64,
    out: &mut Vec<u8>,
) -> Encoded<'a> {
    out.reserve(text.len() * 3 + 256);
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
                id: None,
                raw: text,
            };
        }
    };
    push_key(out, "cmd");
    push_str(out, line.command.as_bytes());
    let channel = push_channel(out, &line);
    let special = push_tags_of(out, &line);
    if let Some(sent) = special.sent {
        push_key(out, "sent_ms");
        push_int(out, sent);
    }
    push_who(out, &line, &special);
    push_chat_text(out, &line);
    finish(out, text, exact);
    Encoded {
        channel,
        command: Some(line.command),
        time_ms: special.sent.unwrap_or(recv_ms),
        id: special.id,
        raw: text,
    }
}

/// Writes `channel` (the room's login), or flags a room command whose target is none.
fn push_channel<'a>(out: &mut Vec<u8>, line: &Line<'a>) -> Option<&'a str> {
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
    channel
}

/// Writes `tags`; one pass over the tags: written out, and the ones with a field of their own
/// noted.
fn push_tags_of<'a>(out: &mut Vec<u8>, line: &Line<'a>) -> Special<'a> {
    let mut special = Special::default();
    let tags = line.tag_section();
    if !tags.is_empty() {
        out.extend_from_slice(b",\"tags\":{");
        if tags.starts_with(';')
            || tags.ends_with(';')
            || memchr::memmem::find(tags.as_bytes(), b";;").is_some()
        {
            // Empty tags: rare enough for the general path.
            for (i, (k, v)) in line.tags().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, k.as_bytes());
                out.push(b':');
                push_tag_value(out, v.as_bytes());
                special.note(k, v);
            }
        } else {
            push_tags(out, tags, &mut special);
        }
        out.push(b'}');
    }
    special
}

/// Writes `login`, `user_id`, `display_name` and `id`: who the line is about.
fn push_who(out: &mut Vec<u8>, line: &Line<'_>, special: &Special<'_>) {
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
}

/// Writes `text` (and `action` for a /me line) of the commands that carry chat text.
fn push_chat_text(out: &mut Vec<u8>, line: &Line<'_>) {
    let is_chat_text = matches!(
        line.command,
        "PRIVMSG" | "USERNOTICE" | "NOTICE" | "CLEARMSG" | "WHISPER"
    );
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
        id: None,
        raw: text,
    }
}

/// How far a platform's own send time may be from the receive time and still date a line
/// (recent chat on join is minutes old); beyond it the receive time does, so a wrong clock
/// on the platform's side cannot file a line under a far-off day.
const MAX_SENT_SKEW_MS: i64 = 24 * 3600 * 1000;

/// Appends the JSON line (with `\n`) for a chat message or command of another platform,
/// received at `recv_ms` in `channel`; returns the time the line is dated by (the platform's
/// send time when plausible, else `recv_ms`).
pub fn encode_platform(line: &PlatformLine, channel: &str, recv_ms: i64, out: &mut Vec<u8>) -> i64 {
    out.reserve(line.raw.len() * 2 + 256);
    out.extend_from_slice(b"{\"recv_ms\":");
    push_int(out, recv_ms);
    if let Some(sent) = line.time_ms {
        push_key(out, "sent_ms");
        push_int(out, sent);
    }
    push_platform_head(out, line.platform, Some(&line.cmd), channel);
    for (key, value) in [
        ("user_id", &line.user_id),
        ("display_name", &line.name),
        ("text", &line.text),
    ] {
        if let Some(v) = value {
            push_key(out, key);
            push_str(out, v.as_bytes());
        }
    }
    if let Some(amount) = &line.amount {
        out.extend_from_slice(b",\"amount\":{\"value\":");
        out.extend_from_slice(itoa::Buffer::new().format(amount.value).as_bytes());
        push_key(out, "unit");
        push_str(out, amount.unit.as_bytes());
        out.push(b'}');
    }
    push_key(out, "raw");
    push_str(out, line.raw.as_bytes());
    out.extend_from_slice(b"}\n");
    match line.time_ms {
        Some(sent) if sent.abs_diff(recv_ms) <= MAX_SENT_SKEW_MS as u64 => sent,
        _ => recv_ms,
    }
}

/// Appends the JSON line for a frame of another platform that recbot cannot read: kept
/// whole in `raw`, `error` saying why; dated by `recv_ms`.
pub fn encode_platform_unreadable(
    platform: Platform,
    channel: &str,
    cmd: Option<&str>,
    raw: &str,
    error: &str,
    recv_ms: i64,
    out: &mut Vec<u8>,
) -> i64 {
    out.extend_from_slice(b"{\"recv_ms\":");
    push_int(out, recv_ms);
    push_platform_head(out, platform, cmd, channel);
    push_key(out, "error");
    push_str(out, error.as_bytes());
    push_key(out, "raw");
    push_str(out, raw.as_bytes());
    out.extend_from_slice(b"}\n");
    recv_ms
}

fn push_platform_head(out: &mut Vec<u8>, platform: Platform, cmd: Option<&str>, channel: &str) {
    push_key(out, "platform");
    push_str(out, platform.as_str().as_bytes());
    if let Some(cmd) = cmd {
        push_key(out, "cmd");
        push_str(out, cmd.as_bytes());
    }
    push_key(out, "channel");
    push_str(out, channel.as_bytes());
}

/// Whether a logged line is a chat message shown in replays: a Twitch PRIVMSG, a Chzzk chat,
/// donation or recent-chat message, a Bilibili danmaku or super chat.
pub fn is_chat_message(platform: Option<&str>, cmd: &str) -> bool {
    match platform {
        None | Some("twitch") => cmd == "PRIVMSG",
        Some("chzzk") => matches!(cmd, "93101" | "93102" | "15101"),
        Some("bilibili") => matches!(cmd, "DANMU_MSG" | "SUPER_CHAT_MESSAGE"),
        Some(_) => false,
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

impl<'a> Special<'a> {
    fn note(&mut self, key: &str, value: &'a str) {
        match key {
            "id" => self.id = Some(value),
            "tmi-sent-ts" => self.sent = value.parse::<i64>().ok(),
            "user-id" => self.user_id = Some(value),
            "target-user-id" => self.target_user_id = Some(value),
            "display-name" => self.display_name = Some(value),
            "login" => self.login = Some(value),
            _ => {}
        }
    }
}

/// Writes a tag section without empty tags as the inside of a JSON object, in one scan:
/// `;` and the first `=` of each tag become the JSON punctuation, escapes are undone, and the
/// bytes between are copied in bulk.
fn push_tags<'a>(out: &mut Vec<u8>, tags: &'a str, special: &mut Special<'a>) {
    let s = tags.as_bytes();
    out.push(b'"');
    let (mut start, mut key_start, mut value_start) = (0, 0, 0);
    let mut in_key = true;
    let mut i = 0;
    loop {
        let j = next_tag_special(s, i);
        out.extend_from_slice(&s[start..j]);
        if j == s.len() {
            break;
        }
        match s[j] {
            b'=' if in_key => {
                out.extend_from_slice(b"\":\"");
                in_key = false;
                value_start = j + 1;
                start = j + 1;
            }
            b'=' => start = j, // part of the value: copied with the next span
            b';' => {
                if in_key {
                    out.extend_from_slice(b"\":\"");
                    special.note(&tags[key_start..j], "");
                } else {
                    special.note(&tags[key_start..value_start - 1], &tags[value_start..j]);
                }
                out.extend_from_slice(b"\",\"");
                in_key = true;
                key_start = j + 1;
                start = j + 1;
            }
            b'\\' if !in_key => {
                // Before `;` a lone backslash is dropped and the `;` still ends the tag.
                let next = s.get(j + 1).copied();
                start = if next != Some(b';') && push_tag_escape(out, next) {
                    (j + 2).min(s.len())
                } else {
                    j + 1
                };
            }
            other => {
                push_escaped(out, other);
                start = j + 1;
            }
        }
        i = (j + 1).max(start);
    }
    if in_key {
        out.extend_from_slice(b"\":\"");
        special.note(&tags[key_start..], "");
    } else {
        special.note(&tags[key_start..value_start - 1], &tags[value_start..]);
    }
    out.push(b'"');
}

/// Like `next_special`, also stopping at `;` and `=`.
#[inline]
fn next_tag_special(s: &[u8], mut from: usize) -> usize {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while from + 8 <= s.len() {
        let word = u64::from_le_bytes(s[from..from + 8].try_into().expect("8 bytes"));
        if special_in(word)
            || zero(word ^ (ONES * b';' as u64)) != 0
            || zero(word ^ (ONES * b'=' as u64)) != 0
        {
            break;
        }
        from += 8;
    }
    while from < s.len() && !NEEDS_ESCAPE[s[from] as usize] && s[from] != b';' && s[from] != b'=' {
        from += 1;
    }
    from
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `word` needs escaping in JSON (or is a tag escape `\\`):
/// a byte below 0x20, `"` or `\\`. Word-at-a-time, so plain text costs one test per 8 bytes.
#[inline]
fn special_in(word: u64) -> bool {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (control | zero(word ^ (ONES * b'"' as u64)) | zero(word ^ (ONES * b'\\' as u64))) != 0
}

/// The index of the first byte at or after `from` that needs attention (see `special_in`).
#[inline]
fn next_special(s: &[u8], mut from: usize) -> usize {
    while from + 8 <= s.len() {
        let word = u64::from_le_bytes(s[from..from + 8].try_into().expect("8 bytes"));
        if special_in(word) {
            break;
        }
        from += 8;
    }
    while from < s.len() && !NEEDS_ESCAPE[s[from] as usize] {
        from += 1;
    }
    from
}

/// Appends `s` (UTF-8) as a JSON string.
fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_special(s, start);
        out.extend_from_slice(&s[start..i]);
        if i == s.len() {
            break;
        }
        push_escaped(out, s[i]);
        start = i + 1;
    }
    out.push(b'"');
}

/// Appends an IRCv3-escaped tag value, unescaped, as a JSON string (one pass).
fn push_tag_value(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_special(s, start);
        out.extend_from_slice(&s[start..i]);
        if i == s.len() {
            break;
        }
        if s[i] != b'\\' {
            push_escaped(out, s[i]);
            start = i + 1;
            continue;
        }
        start = if push_tag_escape(out, s.get(i + 1).copied()) {
            (i + 2).min(s.len())
        } else {
            i + 1
        };
    }
    out.push(b'"');
}

/// Writes what the tag escape `\\` + `next` stands for (JSON-escaped). `false` when only the
/// backslash is used up: before a multi-byte character (which stays whole) or at the end.
fn push_tag_escape(out: &mut Vec<u8>, next: Option<u8>) -> bool {
    match next {
        Some(b':') => out.push(b';'),
        Some(b's') => out.push(b' '),
        Some(b'r') => out.extend_from_slice(b"\\r"),
        Some(b'n') => out.extend_from_slice(b"\\n"),
        Some(other) if NEEDS_ESCAPE[other as usize] => push_escaped(out, other),
        Some(other) if other < 0x80 => out.push(other),
        _ => return false,
    }
    true
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

/// A logged line read back (missing fields read as empty).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Record {
    pub recv_ms: i64,
    pub sent_ms: Option<i64>,
    pub cmd: Option<String>,
    pub channel: Option<String>,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub display_name: Option<String>,
    pub id: Option<String>,
    pub text: Option<String>,
    pub action: bool,
    pub tags: HashMap<String, String>,
    pub raw: String,
    pub error: Option<String>,
    pub raw_hex: Option<String>,
    /// Only in per-recording files: milliseconds from the part's start.
    pub offset_ms: Option<i64>,
    /// `chzzk` or `bilibili` for other platforms' chat; absent on Twitch lines.
    pub platform: Option<String>,
    /// A donation's, super chat's or gift's amount (other platforms).
    pub amount: Option<RecordAmount>,
}

/// `amount` of a logged line: the value in the platform's unit (`KRW`, `CNY`, `gold`,
/// `silver`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecordAmount {
    pub value: u64,
    pub unit: String,
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
    fn word_at_a_time_escaping_matches_a_plain_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let alphabet: Vec<char> = "ab \\\"\u{1}\u{1f}\t\n\r;:s=é테🙂\u{7f}".chars().collect();
        for _ in 0..5000 {
            let len = rng.random_range(0..40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut out = Vec::new();
            push_str(&mut out, text.as_bytes());
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text);
            out.clear();
            push_tag_value(&mut out, text.as_bytes());
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, super::super::line::unescape_tag(&text), "{text:?}");
        }
    }

    #[test]
    fn one_pass_tags_match_the_tag_iterator() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let alphabet: Vec<char> = "ab-=;\\s:\"\u{1}é테".chars().collect();
        let mut checked = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(1..30);
            let tags: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if tags.starts_with(';') || tags.ends_with(';') || tags.contains(";;") {
                continue;
            }
            let raw = format!("@{tags} PING");
            let Ok(line) = Line::parse(&raw) else {
                continue; // control characters: a malformed line
            };
            checked += 1;
            let mut fast = Vec::new();
            let mut special = Special::default();
            fast.push(b'{');
            push_tags(&mut fast, line.tag_section(), &mut special);
            fast.push(b'}');
            // serde_json keeps the last of duplicate keys; compare as lists instead.
            let mut slow = b"[".to_vec();
            for (i, (k, v)) in line.tags().enumerate() {
                if i > 0 {
                    slow.push(b',');
                }
                slow.push(b'[');
                push_str(&mut slow, k.as_bytes());
                slow.push(b',');
                push_tag_value(&mut slow, v.as_bytes());
                slow.push(b']');
            }
            slow.push(b']');
            let pairs: Vec<(String, String)> = serde_json::from_slice(&slow).unwrap();
            let fast_text = String::from_utf8(fast.clone()).unwrap();
            let mut de = serde_json::Deserializer::from_str(&fast_text);
            let fast_pairs =
                ordered_pairs(&mut de).unwrap_or_else(|e| panic!("{tags:?}: {e}: {fast_text}"));
            assert_eq!(fast_pairs, pairs, "{tags:?}");
        }
        assert!(checked > 3000, "{checked}");
    }

    /// The key/value pairs of a JSON object in order (duplicates kept).
    fn ordered_pairs(
        de: &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
    ) -> Result<Vec<(String, String)>, serde_json::Error> {
        use serde::de::{Deserializer, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    out.push(pair);
                }
                Ok(out)
            }
        }
        de.deserialize_map(V)
    }

    #[test]
    fn platform_lines_keep_their_fields_and_raw_json() {
        use crate::chat::platform_line::Amount;
        let raw = r#"{"uid":"u1","msg":"후원 \"hi\"\n","extras":"{\"payAmount\":1000}"}"#;
        let line = PlatformLine {
            platform: Platform::Chzzk,
            cmd: "93102".into(),
            user_id: Some("u1".into()),
            name: Some("치즈".into()),
            text: Some("후원 \"hi\"\n".into()),
            time_ms: Some(1_700_000_000_000),
            amount: Some(Amount {
                value: 1000,
                unit: "KRW",
            }),
            raw: raw.into(),
        };
        let mut out = Vec::new();
        let dated = encode_platform(&line, "abc", 1_700_000_000_500, &mut out);
        assert_eq!(dated, 1_700_000_000_000);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let r: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(r.platform.as_deref(), Some("chzzk"));
        assert_eq!(r.cmd.as_deref(), Some("93102"));
        assert_eq!(r.channel.as_deref(), Some("abc"));
        assert_eq!(r.user_id.as_deref(), Some("u1"));
        assert_eq!(r.display_name.as_deref(), Some("치즈"));
        assert_eq!(r.text, line.text);
        assert_eq!(r.sent_ms, Some(1_700_000_000_000));
        assert_eq!(
            r.amount,
            Some(RecordAmount {
                value: 1000,
                unit: "KRW".into()
            })
        );
        assert_eq!(r.raw, raw, "the message's JSON is kept as received");
        assert_eq!(r.time_ms(), 1_700_000_000_000);

        // A send time far from the receive time does not pick the day file.
        let mut odd = line.clone();
        odd.time_ms = Some(5);
        assert_eq!(
            encode_platform(&odd, "abc", 1_700_000_000_500, &mut Vec::new()),
            1_700_000_000_500
        );

        out.clear();
        let dated = encode_platform_unreadable(
            Platform::Bilibili,
            "23058",
            None,
            "{not json",
            "not JSON",
            9,
            &mut out,
        );
        assert_eq!(dated, 9);
        let r: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (
                r.platform.as_deref(),
                r.error.as_deref(),
                r.raw.as_str(),
                r.cmd
            ),
            (Some("bilibili"), Some("not JSON"), "{not json", None)
        );
        assert!(is_chat_message(Some("bilibili"), "DANMU_MSG"));
        assert!(!is_chat_message(Some("bilibili"), "SEND_GIFT"));
        assert!(is_chat_message(None, "PRIVMSG"));
        assert!(!is_chat_message(Some("chzzk"), "PRIVMSG"));
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
