//! One line of the chat stream: its subject, its `Nats-Msg-Id` and its JSON (the day file's
//! line without the newline), taken from the writer's batches; and its form in the spool,
//! `<subject> <id> <json>\n` (neither subject nor id holds a space, JSON no raw newline).

use async_nats::Subject;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::chat::writer::{Batch, SERVER_FOLDER};

/// The subjects of the stream, as it is created when missing.
pub const SUBJECTS: &str = "recbot.chat.>";
/// The subject token of lines that belong to no room (the handshake, PINGs, malformed lines).
const SERVER_TOKEN: &str = "_server";
/// A message id longer than this is replaced by the line's hash.
const MAX_ID: usize = 128;

/// A line on its way to JetStream.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub subject: Subject,
    pub id: String,
    pub payload: Bytes,
}

impl Line {
    /// The lines of a batch, in order (the batch's bytes copied once).
    pub fn of_batch(batch: &Batch) -> Vec<Line> {
        let all = Bytes::copy_from_slice(&batch.buf);
        let mut start = 0;
        let mut lines = Vec::with_capacity(batch.entries.len());
        let mut last_folder: Option<(&str, Subject)> = None;
        for entry in &batch.entries {
            let end = entry.end;
            let mut json = all.slice(start..end);
            start = end;
            if json.last() == Some(&b'\n') {
                json.truncate(json.len() - 1);
            }
            // Batches come from one read of one connection: mostly one room.
            let subject = match &last_folder {
                Some((folder, subject)) if *folder == &*entry.folder => subject.clone(),
                _ => {
                    let subject = Subject::from(subject_of(&entry.folder));
                    last_folder = Some((&entry.folder, subject.clone()));
                    subject
                }
            };
            lines.push(Line {
                subject,
                id: message_id(&json),
                payload: json,
            });
        }
        lines
    }

    /// The bytes this line takes in the spool.
    pub fn spooled_len(&self) -> usize {
        self.subject.len() + self.id.len() + self.payload.len() + 3
    }

    /// Appends the spool record of this line.
    pub fn spool_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.subject.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.id.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.payload);
        out.push(b'\n');
    }

    /// Reads a spool record (without its newline); `None` for a damaged one.
    pub fn from_spool(record: &[u8]) -> Option<Line> {
        let mut parts = record.splitn(3, |b| *b == b' ');
        let subject = std::str::from_utf8(parts.next()?).ok()?;
        let id = std::str::from_utf8(parts.next()?).ok()?;
        let payload = parts.next()?;
        if !subject.starts_with("recbot.chat.") || id.is_empty() {
            return None;
        }
        Some(Line {
            subject: Subject::from(subject),
            id: id.to_string(),
            payload: Bytes::copy_from_slice(payload),
        })
    }
}

/// The subject of a day-file folder: `recbot.chat.<platform>.<login>`. A Twitch folder is the
/// bare login; another platform's is `<platform>:<id>` (the watch list's stable key); lines of
/// no room go to `recbot.chat.twitch._server`. Anything but letters, digits, `_` and `-` in a
/// token becomes `_`, so a name can never add a token or a wildcard.
pub fn subject_of(folder: &str) -> String {
    let (platform, name) = if folder == SERVER_FOLDER {
        ("twitch", SERVER_TOKEN)
    } else {
        folder.split_once(':').unwrap_or(("twitch", folder))
    };
    let mut subject = String::with_capacity(13 + platform.len() + name.len());
    subject.push_str("recbot.chat.");
    push_token(&mut subject, platform);
    subject.push('.');
    push_token(&mut subject, name);
    subject
}

fn push_token(out: &mut String, token: &str) {
    if token.is_empty() {
        out.push('_');
        return;
    }
    out.extend(token.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
}

/// The `Nats-Msg-Id` of a JSON line: its `id` (the platform's message id) when it has a plain
/// one, else `h-` and the first 128 bits of its SHA-256 in hex. Both are the same every time
/// the line is sent, which is what JetStream's deduplication needs.
pub fn message_id(json: &[u8]) -> String {
    if let Some(id) = plain_id(json) {
        return id.to_string();
    }
    let digest = Sha256::digest(json);
    format!("h-{}", hex::encode(&digest[..16]))
}

/// The value of the first `"id"` key, when it needs no unescaping and is a usable header value
/// (visible ASCII, no space, at most [`MAX_ID`]). A key is a `"` after `{` or `,`: inside a
/// JSON string a quote is escaped, so chat text cannot fake one.
fn plain_id(json: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"id\":\"";
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&json[from..], KEY) {
        let at = from + at;
        from = at + KEY.len();
        if at == 0 || !matches!(json[at - 1], b'{' | b',') {
            continue;
        }
        let rest = &json[from..];
        let end = memchr::memchr(b'"', rest)?;
        let value = &rest[..end];
        let usable = !value.is_empty()
            && value.len() <= MAX_ID
            && value.iter().all(|b| b.is_ascii_graphic() && *b != b'\\');
        return usable.then(|| std::str::from_utf8(value).ok()).flatten();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn subjects_name_platform_and_login_and_never_add_a_token() {
        assert_eq!(subject_of("somechannel"), "recbot.chat.twitch.somechannel");
        assert_eq!(subject_of(SERVER_FOLDER), "recbot.chat.twitch._server");
        assert_eq!(subject_of("chzzk:abc123"), "recbot.chat.chzzk.abc123");
        assert_eq!(subject_of("bilibili:2*1.>"), "recbot.chat.bilibili.2_1__");
        assert_eq!(subject_of(""), "recbot.chat.twitch._");
    }

    #[test]
    fn the_message_id_is_the_lines_id_else_a_stable_hash() {
        let with_id = br#"{"recv_ms":1,"cmd":"PRIVMSG","id":"885196de-cb67-427a-baa8-82f9b0fcd05f","text":"hi"}"#;
        assert_eq!(message_id(with_id), "885196de-cb67-427a-baa8-82f9b0fcd05f");
        let without = br#"{"recv_ms":1,"cmd":"PING","raw":"PING :tmi.twitch.tv"}"#;
        let hashed = message_id(without);
        assert!(hashed.starts_with("h-") && hashed.len() == 34, "{hashed}");
        assert_eq!(hashed, message_id(without), "the same every time");
        assert_ne!(hashed, message_id(br#"{"recv_ms":2,"cmd":"PING"}"#));
        // Chat text cannot pose as the key: its quotes are escaped.
        let faked = br#"{"recv_ms":1,"cmd":"PRIVMSG","text":"x\",\"id\":\"evil"}"#;
        assert!(message_id(faked).starts_with("h-"));
        // An id with a space or an escape is not a usable header value.
        assert!(message_id(br#"{"id":"a b"}"#).starts_with("h-"));
        assert!(message_id(br#"{"id":"a\"b"}"#).starts_with("h-"));
    }

    #[test]
    fn a_batch_becomes_lines_and_back_through_the_spool() {
        let mut batch = Batch::default();
        batch
            .buf
            .extend_from_slice(b"{\"id\":\"m1\",\"text\":\"a\"}\n");
        batch.push_entry(Arc::from("foo"), 0);
        batch.buf.extend_from_slice(b"{\"cmd\":\"PING\"}\n");
        batch.push_entry(Arc::from(SERVER_FOLDER), 0);
        let lines = Line::of_batch(&batch);
        assert_eq!(lines.len(), 2);
        assert_eq!(&lines[0].payload[..], b"{\"id\":\"m1\",\"text\":\"a\"}");
        assert_eq!(lines[0].id, "m1");
        assert_eq!(lines[1].subject.as_str(), "recbot.chat.twitch._server");
        let mut spooled = Vec::new();
        lines[0].spool_to(&mut spooled);
        assert_eq!(spooled.len(), lines[0].spooled_len());
        let back = Line::from_spool(&spooled[..spooled.len() - 1]).unwrap();
        assert_eq!(back.subject.as_str(), "recbot.chat.twitch.foo");
        assert_eq!(back.id, "m1");
        assert_eq!(back.payload, lines[0].payload);
    }
}
