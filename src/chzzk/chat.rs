//! Chzzk chat's WebSocket frames (notes 1.5), pure: the frames recbot sends (CONNECT with
//! the access token, PONG, PING, the recent-chat request) and what received frames mean by
//! their `cmd` number: PING (answer PONG), CONNECTED (`retCode` 0 and a `bdy.sid`), chat
//! and donations (93101/93102, short keys; `bdy` an array or `{"messageList":[…]}`), recent
//! chat (15101, long camelCase keys) → chat lines. `profile` and `extras` are JSON strings
//! inside the JSON and are parsed a second time; `profile` may be `null` (anonymous donor)
//! or `"{}"` (system message). Hostile frames are errors or skipped items, never panics.

use recbot_commands::Platform;
use serde_json::{json, Value};

use crate::chat::platform_line::{Amount, PlatformLine};
use crate::remote;
use crate::secret::Secret;

pub const CMD_PING: i64 = 0;
pub const CMD_PONG: i64 = 10000;
pub const CMD_CONNECT: i64 = 100;
pub const CMD_CONNECTED: i64 = 10100;
pub const CMD_REQUEST_RECENT_CHAT: i64 = 5101;
pub const CMD_RECENT_CHAT: i64 = 15101;
pub const CMD_CHAT: i64 = 93101;
pub const CMD_DONATION: i64 = 93102;
/// `msgTypeCode` of a donation (notes 1.5).
const TYPE_DONATION: u64 = 10;
/// Biggest frame read; a recent-chat answer of 50 messages is tens of KiB.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Most messages taken from one frame.
pub const MAX_ITEMS: usize = 1000;
/// Longest text kept from one field.
const MAX_TEXT: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatFrameError {
    #[error("a Chzzk chat frame is larger than {MAX_FRAME} bytes")]
    TooLarge,
    #[error("a Chzzk chat frame is not JSON: {0}")]
    NotJson(String),
    #[error("a Chzzk chat frame has no cmd number")]
    NoCmd,
}

/// What a received frame means.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The server's PING: answer with [`pong_frame`].
    Ping,
    Pong,
    /// CONNECTED with `retCode` 0 and the session id.
    Connected {
        sid: String,
    },
    /// CONNECTED refused (non-zero `retCode`, or no `bdy.sid`).
    ConnectRefused {
        ret_code: Option<i64>,
        message: String,
    },
    /// Chat, donations or recent chat, as lines (items that are not objects skipped).
    Chat(Vec<PlatformLine>),
    /// Any other command (kick, block, blind, notice, penalty, mission events…).
    Other {
        cmd: i64,
    },
}

/// CONNECT, sent right after the socket opens; read-only (`auth: READ`, `uid: null`).
pub fn connect_frame(chat_channel_id: &str, access_token: &Secret) -> String {
    json!({"ver": "2", "svcid": "game", "cid": chat_channel_id, "cmd": CMD_CONNECT, "tid": 1,
           "bdy": {"accTkn": access_token.expose(), "auth": "READ", "devType": 2001, "uid": null}})
    .to_string()
}

/// The answer to every server PING.
pub fn pong_frame() -> String {
    json!({"cmd": CMD_PONG, "ver": "2"}).to_string()
}

/// A client PING (kimcore sends one after 20 s without a frame).
pub fn ping_frame() -> String {
    json!({"cmd": CMD_PING, "ver": "2"}).to_string()
}

/// Asks for the last `count` messages after CONNECTED.
pub fn recent_chat_frame(chat_channel_id: &str, sid: &str, count: u32) -> String {
    json!({"ver": "2", "svcid": "game", "cid": chat_channel_id, "cmd": CMD_REQUEST_RECENT_CHAT,
           "tid": 2, "sid": sid, "bdy": {"recentMessageCount": count}})
    .to_string()
}

/// A received text frame → what it means.
pub fn parse_frame(text: &str) -> Result<Frame, ChatFrameError> {
    if text.len() > MAX_FRAME {
        return Err(ChatFrameError::TooLarge);
    }
    let v: Value =
        serde_json::from_str(text).map_err(|e| ChatFrameError::NotJson(e.to_string()))?;
    let cmd = remote::code(&v["cmd"]).ok_or(ChatFrameError::NoCmd)?;
    Ok(match cmd {
        CMD_PING => Frame::Ping,
        CMD_PONG => Frame::Pong,
        CMD_CONNECTED => connected(&v),
        CMD_CHAT | CMD_DONATION | CMD_RECENT_CHAT => {
            let items = match &v["bdy"] {
                Value::Array(items) => items.as_slice(),
                body => body["messageList"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice),
            };
            let lines = items
                .iter()
                .take(MAX_ITEMS)
                .filter(|i| i.is_object())
                .map(|item| line(cmd, item))
                .collect();
            Frame::Chat(lines)
        }
        other => Frame::Other { cmd: other },
    })
}

fn connected(v: &Value) -> Frame {
    let ret_code = remote::code(&v["retCode"]);
    match (ret_code, text(&v["bdy"]["sid"])) {
        (Some(0), Some(sid)) if !sid.is_empty() => Frame::Connected { sid },
        _ => Frame::ConnectRefused {
            ret_code,
            message: text(&v["retMsg"]).unwrap_or_default(),
        },
    }
}

/// One message item; live items use short keys (`uid`, `msg`, `msgTime`, `msgTypeCode`),
/// recent-chat items long ones (`userId`, `content`, `messageTime`, `messageTypeCode`).
fn line(cmd: i64, item: &Value) -> PlatformLine {
    let field = |short: &str, long: &str| {
        let v = &item[short];
        if v.is_null() {
            &item[long]
        } else {
            v
        }
    };
    let profile = nested(&item["profile"]);
    let extras = nested(&item["extras"]);
    let kind = remote::count(field("msgTypeCode", "messageTypeCode"));
    let amount = if kind == Some(TYPE_DONATION) {
        remote::count(&extras["payAmount"]).map(|value| Amount { value, unit: "KRW" })
    } else {
        None
    };
    let time_ms = remote::count(field("msgTime", "messageTime"))
        .or_else(|| remote::count(field("ctime", "createTime")))
        .and_then(|t| i64::try_from(t).ok());
    PlatformLine {
        platform: Platform::Chzzk,
        cmd: cmd.to_string(),
        user_id: text(field("uid", "userId")),
        name: text(&profile["nickname"]),
        text: text(field("msg", "content")),
        time_ms,
        amount,
        // Re-serialized from the parsed item: the same JSON values, not necessarily the
        // same bytes (key order is kept; numbers beyond u64/i64 become floats).
        raw: item.to_string(),
    }
}

/// A JSON string holding JSON (`profile`, `extras`) → its value; `Null` otherwise.
fn nested(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if s.len() <= MAX_FRAME => serde_json::from_str(s).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(|s| s.chars().take(MAX_TEXT).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The notes' captured 93101 frame (Buddha, 2026), shortened as there.
    const CHAT: &str = r#"{"svcid":"game","ver":"1","cmd":93101,"tid":"3541-1769585096169-55","cid":"N2G4yj","bdy":[{"svcid":"game","cid":"N2G4yj","mbrCnt":2169,"uid":"0f0c13f6","profile":"{\"userIdHash\":\"0f0c13f6\",\"nickname\":\"치즈\",\"profileImageUrl\":\"\",\"userRoleCode\":\"common_user\",\"badge\":null,\"title\":null,\"verifiedMark\":false,\"activityBadges\":[],\"streamingProperty\":{\"nicknameColor\":{\"colorCode\":\"CC000\"},\"activatedAchievementBadgeIds\":[]},\"viewerBadges\":[]}","msg":"안녕하세요","msgTypeCode":1,"msgStatusType":"NORMAL","extras":"{\"osType\":\"AOS\",\"chatType\":\"STREAMING\",\"streamingChannelId\":\"17aa\",\"emojis\":{},\"extraToken\":\"x\"}","ctime":1769585095674,"utime":1769585095674,"msgTid":null,"cuid":null,"msgTime":1769585095674}]}"#;

    #[test]
    fn chat_frames_become_lines() {
        let Frame::Chat(lines) = parse_frame(CHAT).unwrap() else {
            panic!()
        };
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l.platform, Platform::Chzzk);
        assert_eq!(l.cmd, "93101");
        assert_eq!(l.user_id.as_deref(), Some("0f0c13f6"));
        assert_eq!(l.name.as_deref(), Some("치즈"));
        assert_eq!(l.text.as_deref(), Some("안녕하세요"));
        assert_eq!(l.time_ms, Some(1769585095674));
        assert_eq!(l.amount, None);
        let raw: Value = serde_json::from_str(&l.raw).unwrap();
        let frame: Value = serde_json::from_str(CHAT).unwrap();
        assert_eq!(raw, frame["bdy"][0], "the item is kept whole");
    }

    #[test]
    fn donations_anonymous_and_system_items_are_kept() {
        let frame = json!({"cmd": 93102, "bdy": {"messageList": [
            {"uid": "anonymous", "profile": null, "msg": "후원", "msgTypeCode": 10, "msgTime": 5,
             "extras": "{\"isAnonymous\":true,\"payType\":\"CURRENCY\",\"payAmount\":1000,\"donationType\":\"CHAT\"}"},
            {"uid": "SYSTEM_MESSAGE", "profile": "{}", "msg": "공지", "msgTypeCode": 30, "msgTime": 6},
            "not an object",
            {"uid": 7, "profile": "{broken", "msg": 5, "msgTypeCode": 10, "extras": "{\"payAmount\":-3}", "msgTime": -1}
        ]}})
        .to_string();
        let Frame::Chat(lines) = parse_frame(&frame).unwrap() else {
            panic!()
        };
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0].amount,
            Some(Amount {
                value: 1000,
                unit: "KRW"
            })
        );
        assert_eq!(
            (lines[0].user_id.as_deref(), lines[0].name.as_deref()),
            (Some("anonymous"), None)
        );
        assert_eq!(
            (lines[1].user_id.as_deref(), lines[1].amount.clone()),
            (Some("SYSTEM_MESSAGE"), None)
        );
        assert_eq!(
            (
                lines[2].user_id.clone(),
                lines[2].text.clone(),
                lines[2].amount.clone(),
                lines[2].time_ms
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn recent_chat_uses_long_keys() {
        let frame = json!({"cmd": 15101, "bdy": {"messageList": [
            {"userId": "u1", "content": "옛날", "messageTypeCode": 1, "messageTime": 1700000000000i64,
             "profile": "{\"nickname\":\"n\"}"}], "userCount": 3, "notice": null}})
        .to_string();
        let Frame::Chat(lines) = parse_frame(&frame).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                lines[0].user_id.as_deref(),
                lines[0].text.as_deref(),
                lines[0].name.as_deref(),
                lines[0].time_ms
            ),
            (Some("u1"), Some("옛날"), Some("n"), Some(1_700_000_000_000))
        );
        assert_eq!(lines[0].cmd, "15101");
    }

    #[test]
    fn control_frames_and_what_recbot_sends() {
        assert_eq!(parse_frame(r#"{"cmd":0}"#), Ok(Frame::Ping));
        assert_eq!(parse_frame(&pong_frame()), Ok(Frame::Pong));
        assert_eq!(pong_frame(), r#"{"cmd":10000,"ver":"2"}"#);
        let ok = r#"{"svcid":"game","ver":"1","cmd":10100,"retCode":0,"retMsg":"","tid":"1","cid":"N2RyfZ","bdy":{"sid":"s-1","auth":"READ"}}"#;
        assert_eq!(parse_frame(ok), Ok(Frame::Connected { sid: "s-1".into() }));
        let no_sid = r#"{"cmd":10100,"retCode":0,"bdy":{}}"#;
        assert!(matches!(
            parse_frame(no_sid),
            Ok(Frame::ConnectRefused {
                ret_code: Some(0),
                ..
            })
        ));
        let refused = r#"{"cmd":10100,"retCode":-1,"retMsg":"bad token"}"#;
        assert!(
            matches!(parse_frame(refused), Ok(Frame::ConnectRefused { ret_code: Some(-1), message }) if message == "bad token")
        );
        assert_eq!(
            parse_frame(r#"{"cmd":94008,"bdy":{}}"#),
            Ok(Frame::Other { cmd: 94008 })
        );
        assert_eq!(parse_frame(r#"{"cmd":"x"}"#), Err(ChatFrameError::NoCmd));
        assert!(matches!(parse_frame("{"), Err(ChatFrameError::NotJson(_))));
        assert_eq!(
            parse_frame(&" ".repeat(MAX_FRAME + 1)),
            Err(ChatFrameError::TooLarge)
        );
        let token = Secret::new("acc-token");
        let connect: Value = serde_json::from_str(&connect_frame("N2RyfZ", &token)).unwrap();
        assert_eq!(
            connect,
            json!({"ver":"2","svcid":"game","cid":"N2RyfZ","cmd":100,"tid":1,
            "bdy":{"accTkn":"acc-token","auth":"READ","devType":2001,"uid":null}})
        );
        let recent: Value = serde_json::from_str(&recent_chat_frame("N2RyfZ", "s-1", 50)).unwrap();
        assert_eq!(
            (
                recent["cmd"].as_i64(),
                recent["sid"].as_str(),
                recent["bdy"]["recentMessageCount"].as_u64()
            ),
            (Some(5101), Some("s-1"), Some(50))
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = br#"{}[]":,0123456789cmdbdyuidmsgprofile\ -93101"#;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 120) as usize;
            let mut s = String::new();
            let mut y = x;
            for _ in 0..len {
                y ^= y << 13;
                y ^= y >> 7;
                y ^= y << 17;
                s.push(alphabet[(y % alphabet.len() as u64) as usize] as char);
            }
            let _ = parse_frame(&s);
            let wrapped = format!(
                r#"{{"cmd":93101,"bdy":[{{"profile":"{}","extras":"{}","msg":{s:?}}}]}}"#,
                s.replace('"', ""),
                s.replace('"', "")
            );
            let _ = parse_frame(&wrapped);
        }
    }
}
