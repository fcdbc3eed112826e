//! The danmaku push protocol's bytes (notes 2.7), pure: packets with their 16-byte
//! big-endian header (total length, header length, protocol version, operation, sequence),
//! several per WebSocket message; version 2 (zlib) and 3 (brotli) bodies holding further
//! packets; the auth and heartbeat packets recbot sends; and the commands inside (`cmd`,
//! `:suffix` stripped) as chat lines or live/offline.
//!
//! Everything here meets hostile input: a short header, a length beyond the frame, a
//! compressed body that decompresses to gigabytes or nests compressed bodies endlessly —
//! each is a [`DanmakuError`], never a panic, and no allocation grows past the caps below.

use std::io::Read;

use recbot_commands::Platform;
use serde_json::{json, Value};

use crate::chat::platform_line::{Amount, PlatformLine};
use crate::remote;
use crate::secret::Secret;

pub const HEADER_LEN: usize = 16;
/// Operations that matter (notes 2.7).
pub const OP_HEARTBEAT: u32 = 2;
pub const OP_HEARTBEAT_REPLY: u32 = 3;
pub const OP_MESSAGE: u32 = 5;
pub const OP_AUTH: u32 = 7;
pub const OP_AUTH_REPLY: u32 = 8;
/// Protocol versions: 0 JSON, 1 heartbeat/auth (plain), 2 zlib batch, 3 brotli batch.
pub const VER_JSON: u16 = 0;
pub const VER_PLAIN: u16 = 1;
pub const VER_ZLIB: u16 = 2;
pub const VER_BROTLI: u16 = 3;
/// Biggest WebSocket message read (a batch is a few KiB to tens of KiB).
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Most bytes all compressed bodies of one message may decompress to together.
pub const MAX_DECOMPRESSED: usize = 4 * 1024 * 1024;
/// Compressed bodies hold plain packets; one more level is tolerated, no more.
pub const MAX_NESTING: usize = 2;
/// Most packets taken from one message, however small they are.
pub const MAX_PACKETS: usize = 10_000;
/// What the web client sends as the heartbeat's body (notes 2.7).
const HEARTBEAT_BODY: &[u8] = b"[object Object]";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DanmakuError {
    #[error("a danmaku packet is cut short: {0} bytes left, a header is 16")]
    ShortHeader(usize),
    #[error("a danmaku packet claims {claimed} bytes but only {left} are there")]
    Truncated { claimed: usize, left: usize },
    #[error("a danmaku packet has a bad header (length {length}, header length {header})")]
    BadHeader { length: usize, header: usize },
    #[error("a danmaku message is larger than {MAX_FRAME} bytes")]
    TooLarge,
    #[error("a danmaku batch decompresses to more than {MAX_DECOMPRESSED} bytes")]
    TooMuchData,
    #[error("danmaku batches are nested more than {MAX_NESTING} deep")]
    TooDeep,
    #[error("a danmaku message holds more than {MAX_PACKETS} packets")]
    TooManyPackets,
    #[error("a danmaku batch does not decompress ({0})")]
    BadCompression(&'static str),
    #[error("a danmaku packet uses unknown protocol version {0}")]
    UnknownVersion(u16),
}

/// One packet, header read, body not yet interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub version: u16,
    pub op: u32,
    pub seq: u32,
    pub body: Vec<u8>,
}

/// What one packet means.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// op 3: the popularity number (the echoed heartbeat after it is ignored).
    HeartbeatReply { popularity: u32 },
    /// op 8: `{"code":0}` is success; anything else means a new token and reconnect.
    AuthReply { code: Option<i64> },
    /// op 5: one command, `cmd` with its `:suffix` stripped, and the JSON text as received.
    Command { cmd: String, raw: String },
    /// op 5 whose body is not a JSON object with `cmd` (kept for the log, as received).
    Unreadable { raw: String },
    /// Any other operation.
    Other { op: u32 },
}

/// A packet's bytes: header then body.
pub fn encode(op: u32, version: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let total = u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// What the auth packet says (notes 2.7: within 5 s of connecting).
#[derive(Debug, Clone)]
pub struct Auth<'a> {
    /// 0 as a guest; otherwise the mid whose cookie fetched the token, or the server closes.
    pub uid: u64,
    /// The real room id.
    pub room_id: u64,
    /// From getDanmuInfo; left out when that failed (as blivedm does).
    pub key: Option<&'a Secret>,
    /// The `buvid3` cookie, when there is one.
    pub buvid: Option<&'a str>,
    /// 3 asks for brotli batches, 2 for zlib.
    pub protover: u16,
}

/// The auth packet (op 7, version 1).
pub fn auth_packet(auth: &Auth<'_>) -> Vec<u8> {
    let mut body = json!({
        "uid": auth.uid, "roomid": auth.room_id, "protover": auth.protover,
        "platform": "web", "type": 2,
    });
    if let Some(key) = auth.key {
        body["key"] = Value::String(key.expose().to_string());
    }
    if let Some(buvid) = auth.buvid {
        body["buvid"] = Value::String(buvid.to_string());
    }
    encode(OP_AUTH, VER_PLAIN, 1, body.to_string().as_bytes())
}

/// The heartbeat packet (op 2, version 1), sent every 30 s.
pub fn heartbeat_packet() -> Vec<u8> {
    encode(OP_HEARTBEAT, VER_PLAIN, 1, HEARTBEAT_BODY)
}

/// The packets one message holds, compressed batches opened (recursively, within the caps).
pub fn packets(frame: &[u8]) -> Result<Vec<Packet>, DanmakuError> {
    if frame.len() > MAX_FRAME {
        return Err(DanmakuError::TooLarge);
    }
    let mut out = Vec::new();
    let mut budget = MAX_DECOMPRESSED;
    split_into(frame, 0, &mut budget, &mut out)?;
    Ok(out)
}

/// What each packet of one message means.
pub fn decode(frame: &[u8]) -> Result<Vec<Message>, DanmakuError> {
    Ok(packets(frame)?.into_iter().map(interpret).collect())
}

fn split_into(
    mut bytes: &[u8],
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<Packet>,
) -> Result<(), DanmakuError> {
    while !bytes.is_empty() {
        if bytes.len() < HEADER_LEN {
            return Err(DanmakuError::ShortHeader(bytes.len()));
        }
        let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let header = u16::from_be_bytes([bytes[4], bytes[5]]) as usize;
        let version = u16::from_be_bytes([bytes[6], bytes[7]]);
        let op = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let seq = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if header < HEADER_LEN || length < header {
            return Err(DanmakuError::BadHeader { length, header });
        }
        if length > bytes.len() {
            return Err(DanmakuError::Truncated {
                claimed: length,
                left: bytes.len(),
            });
        }
        let body = &bytes[header..length];
        match version {
            VER_ZLIB | VER_BROTLI if op == OP_MESSAGE => {
                if depth >= MAX_NESTING {
                    return Err(DanmakuError::TooDeep);
                }
                let inner = decompress(version, body, budget)?;
                split_into(&inner, depth + 1, budget, out)?;
            }
            VER_JSON | VER_PLAIN | VER_ZLIB | VER_BROTLI => {
                if out.len() >= MAX_PACKETS {
                    return Err(DanmakuError::TooManyPackets);
                }
                out.push(Packet {
                    version,
                    op,
                    seq,
                    body: body.to_vec(),
                });
            }
            other => return Err(DanmakuError::UnknownVersion(other)),
        }
        // op 3: the declared length covers the popularity; the echoed heartbeat after it
        // is not a packet (notes 2.7).
        if op == OP_HEARTBEAT_REPLY {
            return Ok(());
        }
        bytes = &bytes[length..];
    }
    Ok(())
}

/// A batch's body decompressed, at most `budget` bytes (which it uses up).
fn decompress(version: u16, body: &[u8], budget: &mut usize) -> Result<Vec<u8>, DanmakuError> {
    let limit = *budget as u64 + 1;
    let mut out = Vec::new();
    let result = if version == VER_ZLIB {
        flate2::read::ZlibDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|_| DanmakuError::BadCompression("zlib"))
    } else {
        brotli_decompressor::Decompressor::new(body, 4096)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|_| DanmakuError::BadCompression("brotli"))
    };
    result?;
    if out.len() > *budget {
        return Err(DanmakuError::TooMuchData);
    }
    *budget -= out.len();
    Ok(out)
}

fn interpret(packet: Packet) -> Message {
    match packet.op {
        OP_HEARTBEAT_REPLY => {
            let b = &packet.body;
            let popularity = if b.len() >= 4 {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                0
            };
            Message::HeartbeatReply { popularity }
        }
        OP_AUTH_REPLY => {
            let code = serde_json::from_slice::<Value>(&packet.body)
                .ok()
                .and_then(|v| remote::code(&v["code"]));
            Message::AuthReply { code }
        }
        OP_MESSAGE => {
            let raw = String::from_utf8_lossy(&packet.body).into_owned();
            let cmd = serde_json::from_slice::<Value>(&packet.body)
                .ok()
                .and_then(|v| v["cmd"].as_str().map(command_name));
            match cmd {
                Some(cmd) => Message::Command { cmd, raw },
                None => Message::Unreadable { raw },
            }
        }
        op => Message::Other { op },
    }
}

/// `DANMU_MSG:4:0:2:2:2:0` → `DANMU_MSG`, at most 64 characters.
fn command_name(cmd: &str) -> String {
    cmd.split(':')
        .next()
        .unwrap_or(cmd)
        .chars()
        .take(64)
        .collect()
}

/// What a command means for live detection and the chat log.
#[derive(Debug, Clone, PartialEq)]
pub enum Danmaku {
    /// `LIVE`: the stream started (several may arrive).
    Live { room: Option<u64> },
    /// `PREPARING`: the stream ended (`round: 1`: rotation started, also offline).
    Preparing { room: Option<u64> },
    /// `ROOM_CHANGE`: a new title (a chapter, later).
    RoomChange { title: String },
    /// A chat line: `DANMU_MSG`, `SEND_GIFT`, `SUPER_CHAT_MESSAGE`, `GUARD_BUY`.
    Chat(PlatformLine),
    /// Anything else (logged raw by the caller, not parsed).
    Other,
}

/// A command (`cmd` and its JSON text as received) → what it means.
pub fn command(cmd: &str, raw: &str) -> Danmaku {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return Danmaku::Other;
    };
    let line = |user_id: Option<String>, name, text, time_ms, amount| {
        Danmaku::Chat(PlatformLine {
            platform: Platform::Bilibili,
            cmd: cmd.to_string(),
            user_id,
            name,
            text,
            time_ms,
            amount,
            raw: raw.to_string(),
        })
    };
    let data = &v["data"];
    match cmd {
        "LIVE" => Danmaku::Live {
            room: remote::count(&v["roomid"]),
        },
        "PREPARING" => Danmaku::Preparing {
            room: remote::count(&v["roomid"]),
        },
        "ROOM_CHANGE" => Danmaku::RoomChange {
            title: text(&data["title"]).unwrap_or_default(),
        },
        "DANMU_MSG" => {
            let info = &v["info"];
            let time_ms = remote::count(&info[0][4]).and_then(|t| i64::try_from(t).ok());
            line(
                id(&info[2][0]),
                text(&info[2][1]),
                text(&info[1]),
                time_ms,
                None,
            )
        }
        "SEND_GIFT" => {
            let unit = if data["coin_type"].as_str() == Some("silver") {
                "silver"
            } else {
                "gold"
            };
            let amount = remote::count(&data["total_coin"]).map(|value| Amount { value, unit });
            let what = format!(
                "{} x{}",
                text(&data["giftName"]).unwrap_or_default(),
                remote::count(&data["num"]).unwrap_or(1)
            );
            let time_ms = seconds_to_ms(&data["timestamp"]);
            line(
                id(&data["uid"]),
                text(&data["uname"]),
                Some(what),
                time_ms,
                amount,
            )
        }
        "SUPER_CHAT_MESSAGE" => {
            let amount = remote::count(&data["price"]).map(|value| Amount { value, unit: "CNY" });
            let time_ms = seconds_to_ms(&data["start_time"]);
            let name = text(&data["user_info"]["uname"]);
            line(
                id(&data["uid"]),
                name,
                text(&data["message"]),
                time_ms,
                amount,
            )
        }
        "GUARD_BUY" => {
            let amount = remote::count(&data["price"]).map(|value| Amount {
                value,
                unit: "gold",
            });
            let what = text(&data["gift_name"]);
            let time_ms = seconds_to_ms(&data["start_time"]);
            line(
                id(&data["uid"]),
                text(&data["username"]),
                what,
                time_ms,
                amount,
            )
        }
        _ => Danmaku::Other,
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(|s| s.chars().take(2000).collect())
}

/// A user id as text; `0` (a masked guest view, notes 2.7) is kept as sent.
fn id(v: &Value) -> Option<String> {
    remote::count(v).map(|n| n.to_string())
}

fn seconds_to_ms(v: &Value) -> Option<i64> {
    remote::count(v).and_then(|s| i64::try_from(s.checked_mul(1000)?).ok())
}

#[cfg(test)]
mod brotli_stored;
#[cfg(test)]
mod tests;
