//! A fake Chzzk API on wiremock, built from the notes' checklist (platforms.md 1.7):
//! `live-detail` per channel id with a state a test flips (OPEN with an HLS master, CLOSE
//! keeping the previous broadcast, adult without cookies, `content: null`), channel info,
//! and the chat access token (`code 42601` for adult channels without cookies). Unknown ids
//! get `{"code":404}` with HTTP 404. Every request is recorded with the headers that matter.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The cookies the fake accepts for adult streams and chat.
pub const NID_AUT: &str = "fake-nid-aut";
pub const NID_SES: &str = "fake-nid-ses";

#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    /// Live; the HLS media's path (the LLHLS one is listed before it, as a trap).
    Open { master: String },
    /// Offline; the previous broadcast is still described.
    Close,
    /// Answers `content: null` with code 200.
    NoContent,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub live: Live,
    pub adult: bool,
    pub live_id: u64,
    pub title: String,
    pub name: String,
    pub chat_channel_id: String,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub cookie: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Default)]
pub struct ChzzkState {
    pub channels: HashMap<String, Channel>,
    pub requests: Vec<Seen>,
}

pub struct ChzzkFake {
    pub server: MockServer,
    pub state: Arc<Mutex<ChzzkState>>,
}

impl ChzzkFake {
    pub async fn start() -> ChzzkFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(ChzzkState::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        ChzzkFake { server, state }
    }

    /// `api_url` and `chat_api_url` for the config.
    pub fn api_url(&self) -> String {
        self.server.uri()
    }

    pub fn chat_api_url(&self) -> String {
        format!("{}/nng_main", self.server.uri())
    }

    /// Adds (or replaces) channel `id`, offline.
    pub fn add(&self, id: &str, name: &str) {
        self.state.lock().unwrap().channels.insert(
            id.to_string(),
            Channel {
                live: Live::Close,
                adult: false,
                live_id: 100,
                title: "previous broadcast".into(),
                name: name.into(),
                chat_channel_id: "N2RyfZ".into(),
            },
        );
    }

    /// Flips channel `id` to `live`; a new OPEN broadcast gets a new live id and chat id.
    pub fn set(&self, id: &str, live: Live) {
        let mut state = self.state.lock().unwrap();
        let channel = state.channels.get_mut(id).expect("channel added first");
        if matches!(live, Live::Open { .. }) && !matches!(channel.live, Live::Open { .. }) {
            channel.live_id += 1;
            channel.chat_channel_id = format!("N{:05}", channel.live_id % 100_000);
            channel.title = format!("broadcast {}", channel.live_id);
        }
        channel.live = live;
    }

    pub fn set_adult(&self, id: &str, adult: bool) {
        let mut state = self.state.lock().unwrap();
        state
            .channels
            .get_mut(id)
            .expect("channel added first")
            .adult = adult;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }
}

struct Responder(Arc<Mutex<ChzzkState>>);

fn envelope(http: u16, code: i64, content: Value) -> ResponseTemplate {
    ResponseTemplate::new(http)
        .set_body_json(json!({"code": code, "message": null, "content": content}))
}

fn has_login(cookie: Option<&str>) -> bool {
    cookie.is_some_and(|c| {
        c.contains(&format!("NID_AUT={NID_AUT}")) && c.contains(&format!("NID_SES={NID_SES}"))
    })
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cookie = header("cookie");
        let mut state = self.0.lock().unwrap();
        let path = request.url.path().to_string();
        state.requests.push(Seen {
            path: path.clone(),
            query: request.url.query().unwrap_or_default().to_string(),
            cookie: cookie.clone(),
            user_agent: header("user-agent"),
        });
        let login = has_login(cookie.as_deref());
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["service", "v2", "channels", id, "live-detail"] => match state.channels.get(*id) {
                Some(c) => live_detail(c, login),
                None => envelope(404, 404, Value::Null),
            },
            ["service", "v1", "channels", id] => match state.channels.get(*id) {
                Some(c) => envelope(
                    200,
                    200,
                    json!({"channelId": id, "channelName": c.name, "openLive": matches!(c.live, Live::Open{..})}),
                ),
                None => envelope(200, 200, json!({"channelId": null})),
            },
            ["nng_main", "v1", "chats", "access-token"] => {
                let wanted = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "channelId")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                match state
                    .channels
                    .values()
                    .find(|c| c.chat_channel_id == wanted)
                {
                    Some(c) if c.adult && !login => envelope(200, 42601, Value::Null),
                    Some(_) => envelope(
                        200,
                        200,
                        json!({"accessToken": "chat-access-token", "extraToken": "e", "realNameAuth": false}),
                    ),
                    None => envelope(400, 400, Value::Null),
                }
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

fn live_detail(c: &Channel, login: bool) -> ResponseTemplate {
    let (status, playback) = match &c.live {
        Live::NoContent => return envelope(200, 200, Value::Null),
        Live::Close => (
            "CLOSE",
            json!({"meta": {"liveId": c.live_id.to_string()}, "live": {"status": "ENDED"}, "media": []})
                .to_string()
                .into(),
        ),
        Live::Open { .. } if c.adult && !login => ("OPEN", Value::Null),
        Live::Open { master } => (
            "OPEN",
            json!({
                "meta": {"liveId": c.live_id.to_string(), "cdnInfo": {"cdnType": "GCDN"}},
                "live": {"status": "STARTED"},
                "media": [
                    {"mediaId": "LLHLS", "protocol": "HLS", "path": format!("{master}?ll=1"), "latency": "lowLatency"},
                    {"mediaId": "HLS", "protocol": "HLS", "path": master},
                ],
            })
            .to_string()
            .into(),
        ),
    };
    envelope(
        200,
        200,
        json!({
            "liveId": c.live_id, "liveTitle": c.title, "status": status,
            "openDate": "2026-04-25 19:49:02", "closeDate": null,
            "adult": c.adult, "chatChannelId": c.chat_channel_id,
            "liveCategoryValue": "talk", "concurrentUserCount": 1018,
            "channel": {"channelId": "x", "channelName": c.name},
            "userAdultStatus": if c.adult && !login { json!("NOT_LOGIN_USER") } else { Value::Null },
            "livePlaybackJson": playback,
        }),
    )
}

/// A fake Chzzk chat WebSocket (notes 1.7, item 5): expects CONNECT (cmd 100) first and
/// answers CONNECTED with a session id, answers the recent-chat request (5101) with
/// [`ChatServer::set_recent`]'s items and a client PING with PONG, records every PONG it
/// gets, and sends whatever a test pushes to the connections open now; a test can also
/// drop them.
pub struct ChatServer {
    /// `chat_ws_url` for the config (no `{n}`: one fixed address).
    pub url: String,
    state: Arc<Mutex<ChatState>>,
}

#[derive(Debug, Default, Clone)]
pub struct ChatSeen {
    /// The CONNECT frames, one per connection.
    pub connects: Vec<Value>,
    pub pongs: u32,
    pub pings: u32,
    pub recent_requests: u32,
}

#[derive(Default)]
struct ChatState {
    seen: ChatSeen,
    recent: Vec<Value>,
    open: Vec<tokio::sync::mpsc::UnboundedSender<Option<String>>>,
}

impl ChatServer {
    pub async fn start() -> ChatServer {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Ws;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/chat", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ChatState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let Some(Ok(Ws::Text(first))) = ws.next().await else {
                        return;
                    };
                    let connect: Value = serde_json::from_str(first.as_str()).unwrap_or_default();
                    if connect["cmd"] != 100 {
                        return;
                    }
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let sid = {
                        let mut s = state.lock().unwrap();
                        s.seen.connects.push(connect.clone());
                        s.open.push(tx);
                        format!("sid-{}", s.seen.connects.len())
                    };
                    let connected = json!({"svcid": "game", "ver": "1", "cmd": 10100, "retCode": 0,
                        "retMsg": "", "tid": "1", "cid": connect["cid"], "bdy": {"sid": sid, "auth": "READ"}});
                    if ws
                        .send(Ws::Text(connected.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    loop {
                        tokio::select! {
                            pushed = rx.recv() => match pushed {
                                Some(Some(frame)) => {
                                    if ws.send(Ws::Text(frame.into())).await.is_err() {
                                        return;
                                    }
                                }
                                // Dropped: no close handshake, as a failing server would.
                                Some(None) | None => return,
                            },
                            received = ws.next() => {
                                let text = match received {
                                    Some(Ok(Ws::Text(text))) => text,
                                    Some(Ok(_)) => continue,
                                    _ => return,
                                };
                                let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                                let answer = {
                                    let mut s = state.lock().unwrap();
                                    match v["cmd"].as_i64() {
                                        Some(10000) => {
                                            s.seen.pongs += 1;
                                            None
                                        }
                                        Some(0) => {
                                            s.seen.pings += 1;
                                            Some(json!({"cmd": 10000, "ver": "1"}))
                                        }
                                        Some(5101) => {
                                            s.seen.recent_requests += 1;
                                            Some(json!({"svcid": "game", "ver": "1", "cmd": 15101,
                                                "bdy": {"messageList": s.recent, "userCount": 3, "notice": null}}))
                                        }
                                        _ => None,
                                    }
                                };
                                if let Some(answer) = answer {
                                    if ws.send(Ws::Text(answer.to_string().into())).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        ChatServer { url, state }
    }

    /// Sends `frame` to every open connection.
    pub fn push(&self, frame: &str) {
        let mut s = self.state.lock().unwrap();
        s.open.retain(|tx| tx.send(Some(frame.to_string())).is_ok());
    }

    /// Drops every open connection.
    pub fn drop_connections(&self) {
        let mut s = self.state.lock().unwrap();
        for tx in s.open.drain(..) {
            let _ = tx.send(None);
        }
    }

    /// What recent chat (15101) answers with: items with the long keys.
    pub fn set_recent(&self, items: Vec<Value>) {
        self.state.lock().unwrap().recent = items;
    }

    pub fn seen(&self) -> ChatSeen {
        self.state.lock().unwrap().seen.clone()
    }
}

/// A live chat frame (93101) with one message per `(uid, nickname, text, msgTime)`.
pub fn chat_frame(cid: &str, messages: &[(&str, &str, &str, i64)]) -> String {
    let items: Vec<Value> = messages
        .iter()
        .map(|(uid, nick, msg, time)| {
            json!({"svcid": "game", "cid": cid, "mbrCnt": 5, "uid": uid,
                "profile": json!({"userIdHash": uid, "nickname": nick, "badge": null}).to_string(),
                "msg": msg, "msgTypeCode": 1, "msgStatusType": "NORMAL",
                "extras": json!({"chatType": "STREAMING", "emojis": {}}).to_string(),
                "ctime": time, "utime": time, "msgTime": time})
        })
        .collect();
    json!({"svcid": "game", "ver": "1", "cmd": 93101, "tid": "1", "cid": cid, "bdy": items})
        .to_string()
}

/// A donation frame (93102, `bdy.messageList`) of `amount` KRW; anonymous without a name.
pub fn donation_frame(
    cid: &str,
    uid: &str,
    nick: Option<&str>,
    text: &str,
    amount: u64,
    time: i64,
) -> String {
    let profile = match nick {
        Some(n) => Value::String(json!({"userIdHash": uid, "nickname": n}).to_string()),
        None => Value::Null,
    };
    json!({"svcid": "game", "ver": "1", "cmd": 93102, "cid": cid, "bdy": {"messageList": [
        {"uid": uid, "profile": profile, "msg": text, "msgTypeCode": 10, "msgTime": time,
         "extras": json!({"isAnonymous": nick.is_none(), "payType": "CURRENCY", "payAmount": amount,
                          "donationType": "CHAT"}).to_string()}]}})
    .to_string()
}
