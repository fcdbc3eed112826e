//! A fake Bilibili API on wiremock, built from the notes' checklist (platforms.md 2.9):
//! `room_init` (short → real ids, `60004` for unknown rooms), `nav` with the WBI image keys,
//! `getInfoByRoom`, `getRoomPlayInfo` (`playurl_info: null` offline; fMP4, TS and FLV
//! entries or FLV only; `-352` without Referer or UA) and `getDanmuInfo` (checks `w_rid`,
//! `-352` when wrong or missing). Modes for `-352` everywhere and HTTP 412. Every request is
//! recorded.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use recbot::bilibili::wbi::WbiKey;

#[path = "../../src/bilibili/danmaku/brotli_stored.rs"]
mod brotli_stored;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The WBI keys the fake's `nav` hands out (the notes' test keys).
pub const IMG_KEY: &str = "7cd084941338484aae1ad9425b84077c";
pub const SUB_KEY: &str = "4932caff0ff746eab6f01bf08b70ac45";
pub const DANMU_TOKEN: &str = "fake-danmu-token";

#[derive(Debug, Clone)]
pub struct Room {
    pub short_id: Option<u64>,
    pub live: bool,
    pub title: String,
    pub streamer: String,
    /// Offer HLS (fMP4 and TS) besides FLV; off: FLV only, as overseas viewers get.
    pub hls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Every API answer is `-352`.
    RiskControl,
    /// Every answer is HTTP 412 with `-412`.
    Blocked,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Debug, Default)]
pub struct BiliState {
    /// By real room id.
    pub rooms: HashMap<u64, Room>,
    pub mode: Mode,
    pub requests: Vec<Seen>,
    /// Where the danmaku servers are said to be (host, ws port).
    pub danmu_host: (String, u16),
}

pub struct BiliFake {
    pub server: MockServer,
    pub state: Arc<Mutex<BiliState>>,
}

impl BiliFake {
    pub async fn start() -> BiliFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(BiliState {
            danmu_host: ("127.0.0.1".into(), 9),
            ..BiliState::default()
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        BiliFake { server, state }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn add(&self, real: u64, short: Option<u64>, streamer: &str) {
        self.state.lock().unwrap().rooms.insert(
            real,
            Room {
                short_id: short,
                live: false,
                title: "a title".into(),
                streamer: streamer.into(),
                hls: true,
            },
        );
    }

    pub fn update(&self, real: u64, change: impl FnOnce(&mut Room)) {
        change(
            self.state
                .lock()
                .unwrap()
                .rooms
                .get_mut(&real)
                .expect("room added first"),
        );
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }
}

struct Responder(Arc<Mutex<BiliState>>);

fn ok(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": 0, "message": "0", "ttl": 1, "data": data}))
}

fn code(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": code, "message": message, "data": null}))
}

fn risk() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"code": -352, "message": "-352", "data": {"v_voucher": "voucher_fake"}}),
    )
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
        let query: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let seen = Seen {
            path: request.url.path().to_string(),
            query: query.clone(),
            referer: header("referer"),
            user_agent: header("user-agent"),
            cookie: header("cookie"),
        };
        let mut state = self.0.lock().unwrap();
        state.requests.push(seen.clone());
        match state.mode {
            Mode::RiskControl => return risk(),
            Mode::Blocked => {
                return ResponseTemplate::new(412)
                    .set_body_json(json!({"code": -412, "message": "请求被拦截"}))
            }
            Mode::Normal => {}
        }
        let number = |name: &str| param(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let find = |id: u64| {
            state
                .rooms
                .iter()
                .find(|(real, r)| **real == id || r.short_id == Some(id))
                .map(|(real, r)| (*real, r.clone()))
        };
        match seen.path.as_str() {
            "/x/web-interface/nav" => ResponseTemplate::new(200).set_body_json(json!({
                "code": -101, "message": "账号未登录", "ttl": 1,
                "data": {"isLogin": false, "wbi_img": {
                    "img_url": format!("https://i0.hdslb.com/bfs/wbi/{IMG_KEY}.png"),
                    "sub_url": format!("https://i0.hdslb.com/bfs/wbi/{SUB_KEY}.png")}}
            })),
            "/room/v1/Room/room_init" => match find(number("id")) {
                Some((real, r)) => ok(json!({
                    "room_id": real, "short_id": r.short_id.unwrap_or(0), "uid": 9,
                    "live_status": u8::from(r.live), "is_hidden": false, "is_locked": false,
                    "live_time": if r.live { 1_700_000_000i64 } else { -62170012800 },
                    "encrypted": false, "pwd_verified": false,
                })),
                None => code(60004, "直播间不存在"),
            },
            "/xlive/web-room/v1/index/getInfoByRoom" => match find(number("room_id")) {
                Some((real, r)) => ok(json!({
                    "room_info": {"room_id": real, "title": r.title, "live_status": u8::from(r.live), "area_name": "聊天"},
                    "anchor_info": {"base_info": {"uname": r.streamer}},
                })),
                None => code(19002000, "获取初始化数据失败"),
            },
            "/xlive/web-room/v2/index/getRoomPlayInfo" => {
                if seen.referer.is_none() || seen.user_agent.is_none() {
                    return risk();
                }
                match find(number("room_id")) {
                    Some((real, r)) => ok(json!({
                        "room_id": real, "live_status": u8::from(r.live),
                        "playurl_info": if r.live { play_info(real, r.hls) } else { Value::Null },
                    })),
                    None => code(60004, "直播间不存在"),
                }
            }
            "/xlive/web-room/v1/index/getDanmuInfo" => {
                if !signed_correctly(&query) {
                    return risk();
                }
                let (host, port) = state.danmu_host.clone();
                ok(json!({"group": "live", "token": DANMU_TOKEN, "host_list": [
                    {"host": host, "port": port, "wss_port": port, "ws_port": port}]}))
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

/// `w_rid` matches the other parameters under the fake's keys.
fn signed_correctly(query: &[(String, String)]) -> bool {
    let Some(w_rid) = query.iter().find(|(k, _)| k == "w_rid").map(|(_, v)| v) else {
        return false;
    };
    if !query.iter().any(|(k, _)| k == "wts") {
        return false;
    }
    let rest: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| k != "w_rid")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let key = WbiKey::from_keys(IMG_KEY, SUB_KEY).unwrap();
    key.w_rid(&rest) == *w_rid
}

fn codec(name: &str, base: &str) -> Value {
    json!({"codec_name": name, "current_qn": 10000, "accept_qn": [10000, 400],
           "base_url": base, "url_info": [
               {"host": "https://xy0x0x0x0xy.mcdn.bilivideo.cn:486", "extra": "expires=1&p2p=1", "stream_ttl": 3600},
               {"host": "https://cn-fake.bilivideo.com", "extra": "expires=1900000000&qn=10000&sign=fake", "stream_ttl": 3600}]})
}

fn play_info(room: u64, hls: bool) -> Value {
    let flv = json!({"protocol_name": "http_stream", "format": [{"format_name": "flv",
        "codec": [codec("avc", &format!("/live-bvc/1/live_{room}.flv?"))]}]});
    let mut streams = vec![flv];
    if hls {
        streams.push(json!({"protocol_name": "http_hls", "format": [
            {"format_name": "ts", "codec": [codec("avc", &format!("/live-bvc/1/live_{room}.m3u8?"))]},
            {"format_name": "fmp4", "codec": [
                codec("hevc", &format!("/live-bvc/1/live_{room}_hevc/index.m3u8?")),
                codec("avc", &format!("/live-bvc/1/live_{room}/index.m3u8?"))]}]}));
    }
    json!({"conf_json": "{}", "playurl": {"cid": room, "g_qn_desc": [], "stream": streams}})
}

/// A fake danmaku WebSocket server (notes 2.9, item 6): requires the auth packet first,
/// answers it with `auth_code`, then pushes `push` (binary frames as given), answers each
/// heartbeat with op 3 (declared length 20, plus the echo), and closes after
/// `close_after_heartbeats` heartbeats when set. What it received is recorded.
pub struct DanmakuServer {
    pub url: String,
    pub seen: Arc<Mutex<DanmakuSeen>>,
}

#[derive(Debug, Default, Clone)]
pub struct DanmakuSeen {
    pub auth: Vec<Value>,
    pub user_agents: Vec<String>,
    pub heartbeats: u32,
}

#[derive(Debug, Clone)]
pub struct DanmakuScript {
    pub auth_code: i64,
    /// The first this many auths are refused with `-101` (a stale token), whatever
    /// `auth_code` says.
    pub refuse_first: u32,
    pub push: Vec<Vec<u8>>,
    pub answer_heartbeats: bool,
    pub close_after_heartbeats: Option<u32>,
}

impl DanmakuServer {
    // The handshake callback's error type is tungstenite's, large by its design.
    #[allow(clippy::result_large_err)]
    pub async fn start(script: DanmakuScript) -> DanmakuServer {
        use futures::{SinkExt, StreamExt};
        use recbot::bilibili::danmaku::{
            encode, packets, OP_AUTH, OP_AUTH_REPLY, OP_HEARTBEAT, OP_HEARTBEAT_REPLY, VER_PLAIN,
        };
        use tokio_tungstenite::tungstenite::Message as Ws;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/sub", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(DanmakuSeen::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let callback =
                        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                            if let Some(ua) = req
                                .headers()
                                .get("user-agent")
                                .and_then(|v| v.to_str().ok())
                            {
                                record.lock().unwrap().user_agents.push(ua.to_string());
                            }
                            Ok(resp)
                        };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await
                    else {
                        return;
                    };
                    let first =
                        tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
                    let Ok(Some(Ok(Ws::Binary(first)))) = first else {
                        return;
                    };
                    let Some(auth) = packets(&first)
                        .ok()
                        .and_then(|p| p.into_iter().find(|p| p.op == OP_AUTH))
                    else {
                        return;
                    };
                    record
                        .lock()
                        .unwrap()
                        .auth
                        .push(serde_json::from_slice(&auth.body).unwrap_or(Value::Null));
                    let code = if record.lock().unwrap().auth.len() as u32 <= script.refuse_first {
                        -101
                    } else {
                        script.auth_code
                    };
                    let reply = json!({"code": code}).to_string();
                    if ws
                        .send(Ws::Binary(
                            encode(OP_AUTH_REPLY, VER_PLAIN, 1, reply.as_bytes()).into(),
                        ))
                        .await
                        .is_err()
                        || code != 0
                    {
                        return;
                    }
                    for frame in &script.push {
                        let _ = ws.send(Ws::Binary(frame.clone().into())).await;
                    }
                    while let Some(Ok(message)) = ws.next().await {
                        let Ws::Binary(bytes) = message else { continue };
                        if !packets(&bytes).is_ok_and(|p| p.iter().any(|p| p.op == OP_HEARTBEAT)) {
                            continue;
                        }
                        let beats = {
                            let mut seen = record.lock().unwrap();
                            seen.heartbeats += 1;
                            seen.heartbeats
                        };
                        if script.close_after_heartbeats.is_some_and(|n| beats >= n) {
                            let _ = ws.close(None).await;
                            return;
                        }
                        if script.answer_heartbeats {
                            let mut reply =
                                encode(OP_HEARTBEAT_REPLY, VER_PLAIN, 1, &777u32.to_be_bytes());
                            reply.extend_from_slice(b"[object Object]");
                            let _ = ws.send(Ws::Binary(reply.into())).await;
                        }
                    }
                });
            }
        });
        DanmakuServer { url, seen }
    }

    pub fn seen(&self) -> DanmakuSeen {
        self.seen.lock().unwrap().clone()
    }
}

/// A danmaku message holding `jsons` as plain packets (op 5, version 0).
pub fn plain_packets(jsons: &[&str]) -> Vec<u8> {
    use recbot::bilibili::danmaku::{encode, OP_MESSAGE, VER_JSON};
    jsons
        .iter()
        .flat_map(|j| encode(OP_MESSAGE, VER_JSON, 0, j.as_bytes()))
        .collect()
}

/// A zlib batch (version 2) of `jsons`.
pub fn zlib_batch(jsons: &[&str]) -> Vec<u8> {
    use recbot::bilibili::danmaku::{encode, OP_MESSAGE, VER_ZLIB};
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&plain_packets(jsons)).unwrap();
    encode(OP_MESSAGE, VER_ZLIB, 0, &e.finish().unwrap())
}

/// A brotli batch (version 3) of `jsons`, as uncompressed meta-blocks (RFC 7932 9.2): a
/// valid brotli stream without a brotli compressor.
pub fn brotli_batch(jsons: &[&str]) -> Vec<u8> {
    use recbot::bilibili::danmaku::{encode, OP_MESSAGE, VER_BROTLI};
    encode(
        OP_MESSAGE,
        VER_BROTLI,
        0,
        &brotli_stored::brotli_stored(&plain_packets(jsons)),
    )
}
