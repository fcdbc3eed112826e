//! Bilibili Live's HTTP API as far as recording needs it (notes 2.1–2.4, 2.6–2.8):
//! `room_init` (short id → real id, live status), the room's title and streamer name
//! (`getInfoByRoom`), the stream address (`getRoomPlayInfo`, HLS fMP4 preferred, then HLS
//! TS, then FLV), the danmaku servers and token (`getDanmuInfo`, WBI-signed) and the WBI key
//! itself (`/x/web-interface/nav`, cached, dropped on `-352`). Risk control (`-352`, HTTP
//! 412) is its own error with the pause the notes describe.

use std::sync::Mutex;
use std::time::Duration;

use recbot_commands::RoomId;
use serde_json::Value;
use tokio::time::Instant;

use super::wbi::WbiKey;
use crate::remote;
use crate::secret::Secret;

/// A desktop browser's UA: mandatory, stream addresses answer 403 without one (notes 2.2).
pub const USER_AGENT: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36";
/// getRoomPlayInfo without this Referer answered -352 in 2026 (notes 2.2).
pub const REFERER: &str = "https://live.bilibili.com/";
const ORIGIN: &str = "https://live.bilibili.com";
/// Biggest answer read; getRoomPlayInfo is the largest, a few tens of KiB.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// Longest text kept from a remote field.
const MAX_TEXT: usize = 500;
/// How long a WBI key is used: biliup caches it 2 h (blivedm ~12 h); keys rotate daily.
const WBI_KEY_TTL: Duration = Duration::from_secs(2 * 3600);
/// `web_location` biliup sends with signed live requests.
const WEB_LOCATION: &str = "444.8";
/// Pause after HTTP 412: BililiveRecorder opens its breaker for 2 minutes (notes 2.8).
pub const PAUSE_AFTER_412: Duration = Duration::from_secs(120);
/// Pause after `-352`: the notes give no figure for it; recbot uses the 1 minute of
/// BililiveRecorder's general breaker (notes 2.8), and the WBI key is fetched anew.
pub const PAUSE_AFTER_352: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BiliError {
    #[error("cannot reach Bilibili: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Bilibili answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("Bilibili's answer is unusable: {0}")]
    Body(#[from] remote::BodyError),
    #[error("Bilibili sent an answer recbot cannot read: {0}")]
    Malformed(String),
    /// `-352` (risk control: WBI, headers or cookies found wanting).
    #[error("Bilibili's risk control refused the request (-352)")]
    RiskControl,
    /// HTTP 412 / `-412`: the address is blocked for a while, from asking too often.
    #[error("Bilibili blocked requests from this address for now (412)")]
    Blocked,
    /// `60004` (room_init) or `19002000` (getInfoByRoom).
    #[error("Bilibili Live has no room {0}")]
    NoSuchRoom(u64),
    /// `19002005`.
    #[error("Bilibili Live room {0} is encrypted (password protected)")]
    Encrypted(u64),
    #[error("Bilibili refused the request (code {code}): {message}")]
    Refused { code: i64, message: String },
}

impl BiliError {
    /// How long every request to Bilibili should pause after this error (risk control).
    pub fn pause(&self) -> Option<Duration> {
        match self {
            BiliError::Blocked => Some(PAUSE_AFTER_412),
            BiliError::RiskControl => Some(PAUSE_AFTER_352),
            _ => None,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            BiliError::Transport(_) | BiliError::Body(_) => true,
            BiliError::Status { status, .. } => *status == 429 || *status >= 500,
            BiliError::RiskControl | BiliError::Blocked => true,
            _ => false,
        }
    }
}

/// `live_status`: 0 not live, 1 live, 2 rotation (replays; offline for recording) (notes 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStatus {
    Offline,
    Live,
    Rotation,
}

impl LiveStatus {
    fn from_value(v: &Value) -> LiveStatus {
        match remote::count(v) {
            Some(1) => LiveStatus::Live,
            Some(2) => LiveStatus::Rotation,
            _ => LiveStatus::Offline,
        }
    }
}

/// `room_init`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInit {
    /// The real room id (danmaku and getDanmuInfo need it).
    pub room_id: RoomId,
    pub short_id: Option<u64>,
    /// The streamer's mid.
    pub uid: Option<u64>,
    pub live_status: LiveStatus,
    /// Unix seconds; absent when not live (Bilibili sends `-62170012800` then).
    pub live_time: Option<u64>,
    pub locked: bool,
    pub encrypted: bool,
}

/// The room's title and streamer (`getInfoByRoom`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub title: String,
    pub streamer: Option<String>,
    pub area: Option<String>,
    pub live_status: LiveStatus,
}

/// How a stream is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamFormat {
    /// HLS with fMP4 segments (`http_hls` / `fmp4`): preferred.
    HlsFmp4,
    /// HLS with MPEG-TS segments (`http_hls` / `ts`).
    HlsTs,
    /// One long HTTP-FLV response (`http_stream` / `flv`): no segment numbers.
    Flv,
}

/// The stream chosen from getRoomPlayInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayStream {
    /// `host + base_url + extra`.
    pub url: String,
    pub format: StreamFormat,
    /// `avc` or `hevc`.
    pub codec: String,
    /// The quality served; may differ from the one asked for (notes 2.4: warn then).
    pub current_qn: Option<u64>,
    pub accept_qn: Vec<u64>,
    /// `expires=` of the address (Unix seconds), about an hour after issue.
    pub expires: Option<u64>,
}

/// One danmaku server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanmuHost {
    pub host: String,
    pub wss_port: Option<u16>,
    pub ws_port: Option<u16>,
}

/// getDanmuInfo's answer. The token is not shown in `Debug`.
#[derive(Debug, Clone)]
pub struct DanmuInfo {
    pub token: Secret,
    pub hosts: Vec<DanmuHost>,
}

/// Bilibili's API at the configured addresses.
#[derive(Debug)]
pub struct BiliApi {
    http: reqwest::Client,
    api_url: String,
    live_api_url: String,
    cookie: Option<Secret>,
    wbi: Mutex<Option<(WbiKey, Instant)>>,
}

impl BiliApi {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        live_api_url: &str,
        cookie: Option<Secret>,
    ) -> BiliApi {
        BiliApi {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            live_api_url: live_api_url.trim_end_matches('/').to_string(),
            cookie,
            wbi: Mutex::new(None),
        }
    }

    pub fn from_config(http: reqwest::Client, config: &crate::config::Bilibili) -> BiliApi {
        BiliApi::new(
            http,
            &config.api_url,
            &config.live_api_url,
            config.cookie.clone(),
        )
    }

    /// `room_init?id=`: a short or real id → the real one and the live status.
    pub async fn room_init(&self, room: RoomId) -> Result<RoomInit, BiliError> {
        let url = format!("{}/room/v1/Room/room_init", self.live_api_url);
        let id = room.to_string();
        let data = self.data(&url, &[("id", &id)], room.get()).await?;
        parse_room_init(&data)
    }

    /// `getInfoByRoom?room_id=`: title and the streamer's name (unsigned, as
    /// BililiveRecorder asks; whether WBI is required here is [U]).
    pub async fn room_info(&self, room: RoomId) -> Result<RoomInfo, BiliError> {
        let url = format!(
            "{}/xlive/web-room/v1/index/getInfoByRoom",
            self.live_api_url
        );
        let id = room.to_string();
        let data = self.data(&url, &[("room_id", &id)], room.get()).await?;
        Ok(RoomInfo {
            title: text(&data["room_info"]["title"]).unwrap_or_default(),
            streamer: text(&data["anchor_info"]["base_info"]["uname"]),
            area: text(&data["room_info"]["area_name"]),
            live_status: LiveStatus::from_value(&data["room_info"]["live_status"]),
        })
    }

    /// `getRoomPlayInfo` for the real room id at quality `qn` (10000 = source): the stream
    /// chosen by [`choose_stream`], or `None` when the room is not live (`playurl_info`
    /// null).
    pub async fn play_stream(
        &self,
        room: RoomId,
        qn: u64,
    ) -> Result<Option<PlayStream>, BiliError> {
        let url = format!(
            "{}/xlive/web-room/v2/index/getRoomPlayInfo",
            self.live_api_url
        );
        let (id, qn) = (room.to_string(), qn.to_string());
        let query = [
            ("room_id", id.as_str()),
            ("protocol", "0,1"),
            ("format", "0,1,2"),
            ("codec", "0,1"),
            ("qn", qn.as_str()),
            ("platform", "web"),
            ("ptype", "8"),
            ("dolby", "5"),
            ("panorama", "1"),
        ];
        let data = self.data(&url, &query, room.get()).await?;
        choose_stream(&data["playurl_info"])
    }

    /// `getDanmuInfo?id=&type=0`, WBI-signed: the danmaku token and servers.
    pub async fn danmu_info(&self, room: RoomId, now_unix: i64) -> Result<DanmuInfo, BiliError> {
        let key = self.wbi_key().await?;
        let id = room.to_string();
        let signed = key.sign(
            &[("id", &id), ("type", "0"), ("web_location", WEB_LOCATION)],
            now_unix,
        );
        let query: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = format!("{}/xlive/web-room/v1/index/getDanmuInfo", self.live_api_url);
        let data = self.data(&url, &query, room.get()).await?;
        parse_danmu_info(&data)
    }

    /// The WBI key: cached for [`WBI_KEY_TTL`], fetched from `nav` otherwise (it answers
    /// `-101` without login and still carries the keys).
    pub async fn wbi_key(&self) -> Result<WbiKey, BiliError> {
        if let Some((key, at)) = self.wbi.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < WBI_KEY_TTL {
                return Ok(key.clone());
            }
        }
        let url = format!("{}/x/web-interface/nav", self.api_url);
        let response = self.get(&url, &[]).send().await?;
        let status = response.status().as_u16();
        let body = remote::body(response, MAX_BODY).await?;
        let value = json_or_status(status, &body)?;
        let img = &value["data"]["wbi_img"];
        let (Some(img_url), Some(sub_url)) = (img["img_url"].as_str(), img["sub_url"].as_str())
        else {
            return Err(BiliError::Malformed("nav has no wbi_img".into()));
        };
        let key = WbiKey::from_urls(img_url, sub_url).map_err(BiliError::Malformed)?;
        *self.wbi.lock().unwrap_or_else(|e| e.into_inner()) = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    fn get(&self, url: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .get(url)
            .query(query)
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header(reqwest::header::REFERER, REFERER)
            .header(reqwest::header::ORIGIN, ORIGIN);
        if let Some(cookie) = &self.cookie {
            request = request.header(reqwest::header::COOKIE, cookie.expose());
        }
        request
    }

    /// GET, the `{"code":0,"data":…}` envelope checked, `data` returned. `-352` drops the
    /// cached WBI key (blivedm does the same).
    async fn data(&self, url: &str, query: &[(&str, &str)], room: u64) -> Result<Value, BiliError> {
        let response = self.get(url, query).send().await?;
        let status = response.status().as_u16();
        let body = remote::body(response, MAX_BODY).await?;
        let result = envelope(status, &body, room);
        if matches!(result, Err(BiliError::RiskControl)) {
            *self.wbi.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }
}

fn json_or_status(status: u16, body: &[u8]) -> Result<Value, BiliError> {
    if status == 412 {
        return Err(BiliError::Blocked);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("code").is_some() => Ok(v),
        _ if !(200..300).contains(&status) => Err(BiliError::Status {
            status,
            detail: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        }),
        _ => Err(BiliError::Malformed("not Bilibili's JSON envelope".into())),
    }
}

/// The envelope → `data`, each known code as its error.
pub fn envelope(status: u16, body: &[u8], room: u64) -> Result<Value, BiliError> {
    let mut value = json_or_status(status, body)?;
    match remote::code(&value["code"]) {
        Some(0) => Ok(value
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null)),
        Some(-352) => Err(BiliError::RiskControl),
        Some(-412) => Err(BiliError::Blocked),
        Some(60004 | 19002000) => Err(BiliError::NoSuchRoom(room)),
        Some(19002005) => Err(BiliError::Encrypted(room)),
        code => Err(BiliError::Refused {
            code: code.unwrap_or(i64::MIN),
            message: text(&value["message"])
                .or_else(|| text(&value["msg"]))
                .unwrap_or_default(),
        }),
    }
}

pub fn parse_room_init(data: &Value) -> Result<RoomInit, BiliError> {
    let room_id = remote::count(&data["room_id"])
        .and_then(|n| RoomId::from_number(n).ok())
        .ok_or_else(|| BiliError::Malformed("room_init has no usable room_id".into()))?;
    Ok(RoomInit {
        room_id,
        short_id: remote::count(&data["short_id"]).filter(|n| *n != 0),
        uid: remote::count(&data["uid"]).filter(|n| *n != 0),
        live_status: LiveStatus::from_value(&data["live_status"]),
        live_time: remote::count(&data["live_time"]).filter(|n| *n != 0),
        locked: data["is_locked"].as_bool().unwrap_or(false),
        encrypted: data["encrypted"].as_bool().unwrap_or(false),
    })
}

pub fn parse_danmu_info(data: &Value) -> Result<DanmuInfo, BiliError> {
    let token = text(&data["token"])
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BiliError::Malformed("getDanmuInfo has no token".into()))?;
    let hosts = data["host_list"]
        .as_array()
        .map(|list| {
            list.iter()
                .take(16)
                .filter_map(|h| {
                    let host = h["host"].as_str()?;
                    let port = |k: &str| remote::count(&h[k]).and_then(|p| u16::try_from(p).ok());
                    is_host_name(host).then(|| DanmuHost {
                        host: host.to_string(),
                        wss_port: port("wss_port"),
                        ws_port: port("ws_port"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(DanmuInfo {
        token: Secret::new(token),
        hosts,
    })
}

/// A plain host name (letters, digits, `.`, `-`): what may go into a `wss://{host}:{port}`.
fn is_host_name(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The stream to record from `playurl_info` (notes 2.4): HLS fMP4 first, then HLS TS, then
/// FLV; `avc` before `hevc` within each; the address `host + base_url + extra` from the first
/// `url_info` whose host is not a P2P node (`.mcdn.`, skipped as BililiveRecorder does).
/// `None` when `playurl_info` is null (offline).
pub fn choose_stream(playurl_info: &Value) -> Result<Option<PlayStream>, BiliError> {
    if playurl_info.is_null() {
        return Ok(None);
    }
    let streams = playurl_info["playurl"]["stream"]
        .as_array()
        .ok_or_else(|| BiliError::Malformed("playurl_info has no stream list".into()))?;
    let mut best: Option<PlayStream> = None;
    for stream in streams.iter().take(16) {
        let protocol = stream["protocol_name"].as_str().unwrap_or_default();
        for format in stream["format"].as_array().into_iter().flatten().take(16) {
            let kind = match (protocol, format["format_name"].as_str().unwrap_or_default()) {
                ("http_hls", "fmp4") => StreamFormat::HlsFmp4,
                ("http_hls", "ts") => StreamFormat::HlsTs,
                ("http_stream", "flv") => StreamFormat::Flv,
                _ => continue,
            };
            for codec in format["codec"].as_array().into_iter().flatten().take(16) {
                let Some(candidate) = candidate(codec, kind) else {
                    continue;
                };
                let rank = |s: &PlayStream| (s.format, s.codec != "avc");
                if best.as_ref().is_none_or(|b| rank(&candidate) < rank(b)) {
                    best = Some(candidate);
                }
            }
        }
    }
    best.map(Some)
        .ok_or_else(|| BiliError::Malformed("getRoomPlayInfo offers no HLS or FLV stream".into()))
}

fn candidate(codec: &Value, format: StreamFormat) -> Option<PlayStream> {
    let name = codec["codec_name"].as_str()?;
    if !matches!(name, "avc" | "hevc") {
        return None;
    }
    let base = codec["base_url"].as_str()?;
    let info = codec["url_info"]
        .as_array()?
        .iter()
        .take(32)
        .find(|u| u["host"].as_str().is_some_and(|h| !h.contains(".mcdn.")))?;
    let host = info["host"].as_str()?;
    let extra = info["extra"].as_str().unwrap_or_default();
    let url = join_url(host, base, extra)?;
    Some(PlayStream {
        expires: query_number(extra, "expires"),
        url,
        format,
        codec: name.to_string(),
        current_qn: remote::count(&codec["current_qn"]),
        accept_qn: codec["accept_qn"]
            .as_array()
            .map(|a| a.iter().take(32).filter_map(remote::count).collect())
            .unwrap_or_default(),
    })
}

/// `host + base_url + extra`; `base_url` usually ends in `?` and `extra` has no leading `?`,
/// but neither is assumed (notes 2.4). Only http(s) hosts.
fn join_url(host: &str, base: &str, extra: &str) -> Option<String> {
    let lower = host.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut url = format!("{}{}", host.trim_end_matches('/'), base);
    let extra = extra.trim_start_matches(['?', '&']);
    if !extra.is_empty() {
        if !url.ends_with(['?', '&']) {
            url.push(if url.contains('?') { '&' } else { '?' });
        }
        url.push_str(extra);
    }
    url::Url::parse(&url).ok().map(|_| url)
}

fn query_number(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| if v.len() <= 12 { v.parse().ok() } else { None })
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(|s| s.chars().take(MAX_TEXT).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn codec(name: &str, host: &str, base: &str, extra: &str) -> Value {
        json!({"codec_name": name, "current_qn": 10000, "accept_qn": [10000, 400, 250],
               "base_url": base, "url_info": [{"host": host, "extra": extra, "stream_ttl": 3600}]})
    }

    fn play(streams: Value) -> Value {
        json!({"conf_json": "{}", "playurl": {"cid": 1, "stream": streams}})
    }

    #[test]
    fn fmp4_is_preferred_then_ts_then_flv_and_avc_first() {
        let extra = "expires=1674103815&len=0&qn=10000&sign=abc";
        let flv = json!({"protocol_name": "http_stream", "format": [{"format_name": "flv",
            "codec": [codec("avc", "https://cn-a.bilivideo.com", "/live-bvc/1/live_1.flv?", extra)]}]});
        let hls = json!({"protocol_name": "http_hls", "format": [
            {"format_name": "ts", "codec": [codec("avc", "https://cn-a.bilivideo.com", "/live-bvc/1/live_1.m3u8?", extra)]},
            {"format_name": "fmp4", "codec": [
                codec("hevc", "https://cn-a.bilivideo.com", "/live-bvc/1/hevc/index.m3u8?", extra),
                codec("avc", "https://cn-a.bilivideo.com", "/live-bvc/1/live_1/index.m3u8?", extra)]}]});
        let s = choose_stream(&play(json!([flv.clone(), hls])))
            .unwrap()
            .unwrap();
        assert_eq!(s.format, StreamFormat::HlsFmp4);
        assert_eq!(s.codec, "avc");
        assert_eq!(
            s.url,
            format!("https://cn-a.bilivideo.com/live-bvc/1/live_1/index.m3u8?{extra}")
        );
        assert_eq!(s.expires, Some(1674103815));
        assert_eq!(s.accept_qn, [10000, 400, 250]);
        let only_flv = choose_stream(&play(json!([flv]))).unwrap().unwrap();
        assert_eq!(only_flv.format, StreamFormat::Flv);
        assert_eq!(choose_stream(&Value::Null).unwrap(), None, "offline");
        assert!(choose_stream(&play(json!([]))).is_err());
    }

    #[test]
    fn p2p_hosts_and_odd_addresses_are_skipped() {
        let c = json!({"codec_name": "avc", "base_url": "/a/index.m3u8", "url_info": [
            {"host": "https://xy1x2x3x4xy.mcdn.bilivideo.cn:4483", "extra": "a=1"},
            {"host": "https://cn-b.bilivideo.com/", "extra": "?a=1"}]});
        let hls = json!([{"protocol_name": "http_hls", "format": [{"format_name": "fmp4", "codec": [c]}]}]);
        let s = choose_stream(&play(hls)).unwrap().unwrap();
        assert_eq!(s.url, "https://cn-b.bilivideo.com/a/index.m3u8?a=1");
        let bad = json!([{"protocol_name": "http_hls", "format": [{"format_name": "fmp4",
            "codec": [codec("avc", "javascript:alert(1)", "/x", "")]}]}]);
        assert!(choose_stream(&play(bad)).is_err());
    }

    #[test]
    fn envelope_codes_become_errors() {
        assert_eq!(
            envelope(200, br#"{"code":0,"data":{"a":1}}"#, 1).unwrap()["a"],
            1
        );
        assert!(matches!(
            envelope(
                200,
                br#"{"code":-352,"message":"-352","data":{"v_voucher":"x"}}"#,
                1
            ),
            Err(BiliError::RiskControl)
        ));
        let blocked = envelope(412, br#"{"code":-412,"message":"x"}"#, 1).unwrap_err();
        assert!(matches!(blocked, BiliError::Blocked));
        assert_eq!(blocked.pause(), Some(PAUSE_AFTER_412));
        assert!(matches!(
            envelope(412, b"<html>", 1),
            Err(BiliError::Blocked)
        ));
        assert!(matches!(
            envelope(200, br#"{"code":60004,"msg":"x"}"#, 7),
            Err(BiliError::NoSuchRoom(7))
        ));
        assert!(matches!(
            envelope(200, br#"{"code":19002005}"#, 7),
            Err(BiliError::Encrypted(7))
        ));
        assert!(matches!(
            envelope(502, b"bad gateway", 7),
            Err(BiliError::Status { status: 502, .. })
        ));
        assert!(matches!(
            envelope(200, b"[1]", 7),
            Err(BiliError::Malformed(_))
        ));
    }

    #[test]
    fn room_init_and_danmu_info_are_read_safely() {
        let r = parse_room_init(
            &json!({"room_id": 14073662, "short_id": 76, "uid": 1, "live_status": 2,
            "live_time": -62170012800i64, "is_locked": false, "encrypted": false}),
        )
        .unwrap();
        assert_eq!(
            (r.room_id.get(), r.short_id, r.live_status, r.live_time),
            (14073662, Some(76), LiveStatus::Rotation, None)
        );
        assert!(parse_room_init(&json!({"room_id": 0})).is_err());
        assert!(parse_room_init(&json!({"room_id": "1e99"})).is_err());
        let info = parse_danmu_info(&json!({"token": "danmu-key-value", "host_list": [
            {"host": "zj-cn-live-comet.chat.bilibili.com", "port": 2243, "wss_port": 2245, "ws_port": 2244},
            {"host": "evil.com/../x", "wss_port": 443},
            {"host": "broadcastlv.chat.bilibili.com", "wss_port": 99999}]})).unwrap();
        assert_eq!(info.hosts.len(), 2);
        assert_eq!(info.hosts[0].wss_port, Some(2245));
        assert_eq!(info.hosts[1].wss_port, None, "a port beyond u16 is unknown");
        assert!(!format!("{info:?}").contains("danmu-key-value"));
        assert!(parse_danmu_info(&json!({"token": ""})).is_err());
    }
}
