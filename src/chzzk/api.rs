//! Chzzk's HTTP API as far as recording needs it (notes 1.2–1.5): a channel's `live-detail`
//! (status, title, category, adult flag, open date, chat channel id and the HLS address inside
//! `livePlaybackJson`, a JSON string parsed a second time), the channel's display name, and
//! the chat access token. Answers are read with a size cap and every number through
//! [`remote::count`]; each refusal the notes describe has its own error.

use chrono::NaiveDateTime;
use recbot_commands::ChzzkId;
use serde_json::Value;
use url::Url;

use crate::remote;
use crate::secret::Secret;

/// A browser User-Agent: without one Chzzk "sometimes" drops the connection (notes 1.2).
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36";
/// Sent as a browser would (notes 1.2; Rekoda sends it).
const REFERER: &str = "https://chzzk.naver.com/";
/// Biggest answer read. A live-detail is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;
/// Longest text kept from a remote field (titles, names, messages in errors).
const MAX_TEXT: usize = 500;
/// `code` of the chat access token for an adult channel without adult cookies (notes 1.5).
const CODE_ADULT_CHAT: i64 = 42601;

#[derive(Debug, thiserror::Error)]
pub enum ChzzkError {
    #[error("cannot reach Chzzk: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Chzzk answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("Chzzk's answer is unusable: {0}")]
    Body(#[from] remote::BodyError),
    #[error("Chzzk sent an answer recbot cannot read: {0}")]
    Malformed(String),
    /// The envelope's `code` was 404 (or the channel info has no channel id).
    #[error("Chzzk has no channel {0}")]
    NoSuchChannel(String),
    /// `code` other than 200 with its message (often Korean).
    #[error("Chzzk refused the request (code {code}): {message}")]
    Refused { code: i64, message: String },
    /// `code: 200` with `content: null`: "no data" (notes 1.2; when exactly is [U]).
    #[error("Chzzk answered without content")]
    NoContent,
    /// Live, but 19+: `livePlaybackJson` is null without the cookies of an adult-verified
    /// account (notes 1.3), or the chat token's code 42601 (notes 1.5).
    #[error(
        "the stream is for adults only: recbot needs [chzzk] nid_aut and nid_ses of an \
         adult-verified Naver account{}",
        adult_status(.0)
    )]
    AdultOnly(Option<String>),
    /// Live without an address to play and not marked adult ("unavailable", notes 1.3).
    #[error("the stream is live but Chzzk offers no playable address")]
    Unavailable,
    /// Live, but no media with `mediaId` and `protocol` `HLS`.
    #[error("the stream offers no HLS media (only {0})")]
    NoHls(String),
}

fn adult_status(status: &Option<String>) -> String {
    match status {
        Some(s) => format!(" (Chzzk says {s})"),
        None => String::new(),
    }
}

impl ChzzkError {
    /// Worth trying again later: network trouble, 429 and 5xx. Other 4xx and refusals are
    /// not retried (notes 1.6: backoff only on 429 and 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            ChzzkError::Transport(_) | ChzzkError::Body(_) | ChzzkError::NoContent => true,
            ChzzkError::Status { status, .. } => *status == 429 || *status >= 500,
            ChzzkError::Refused { code, .. } => *code == 429 || *code >= 500,
            _ => false,
        }
    }
}

/// `live-detail`'s `status` (notes 1.3: live only when `OPEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveStatus {
    Open,
    Close,
    /// A blocked channel (Rekoda handles it).
    Block,
    Other(String),
}

/// One `live-detail`, as recording needs it. A `Close` answer still carries the previous
/// broadcast's id, title and dates (notes 1.3): they describe that one, not a live one.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveDetail {
    pub status: LiveStatus,
    /// The broadcast's id, new for each broadcast.
    pub live_id: Option<u64>,
    pub title: String,
    pub category: Option<String>,
    pub adult: bool,
    /// `YYYY-MM-DD HH:MM:SS`; the time zone is not stated anywhere, Korea time is likely [U].
    pub open_date: Option<NaiveDateTime>,
    /// The chat channel (6 characters in all samples); changes with each broadcast.
    pub chat_channel_id: Option<String>,
    /// The channel's display name (`channel.channelName`).
    pub channel_name: Option<String>,
    pub concurrent_users: Option<u64>,
    /// `null`, `ADULT`, `NOT_LOGIN_USER`, `NOT_REAL_NAME_AUTH`, `AGE_RESTRICTION`.
    pub user_adult_status: Option<String>,
    /// The HLS master playlist when live and playable.
    pub media: Option<Url>,
}

impl LiveDetail {
    pub fn is_live(&self) -> bool {
        self.status == LiveStatus::Open
    }

    /// The master playlist of a live broadcast, or why there is none: the adult, unavailable
    /// and no-HLS cases as their errors. `Ok(None)` when the channel is not live.
    pub fn playable(&self, raw: &LivePlayback) -> Result<Option<Url>, ChzzkError> {
        if !self.is_live() {
            return Ok(None);
        }
        match raw {
            LivePlayback::Absent if self.adult => {
                Err(ChzzkError::AdultOnly(self.user_adult_status.clone()))
            }
            LivePlayback::Absent => Err(ChzzkError::Unavailable),
            LivePlayback::Present { hls: Some(url), .. } => Ok(Some(url.clone())),
            LivePlayback::Present { hls: None, others } if others.is_empty() => {
                Err(ChzzkError::Unavailable)
            }
            LivePlayback::Present { hls: None, others } => {
                Err(ChzzkError::NoHls(others.join(", ")))
            }
        }
    }
}

/// What `livePlaybackJson` held.
#[derive(Debug, Clone, PartialEq)]
pub enum LivePlayback {
    /// `null` or missing.
    Absent,
    /// The `HLS`/`HLS` media's address if any, and the other media ids offered.
    Present {
        hls: Option<Url>,
        others: Vec<String>,
    },
}

/// The chat access token (notes 1.5, step 2). Not shown in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatToken(pub Secret);

impl std::fmt::Debug for ChatToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatToken([redacted])")
    }
}

/// An HTTP client for Chzzk's API: bounded connect and whole-request times (its answers are
/// small).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("a TLS-capable HTTP client")
}

/// Chzzk's API at the configured addresses.
#[derive(Debug, Clone)]
pub struct ChzzkApi {
    http: reqwest::Client,
    api_url: String,
    chat_api_url: String,
    /// `NID_AUT=…; NID_SES=…`, sent only to `api_url` and `chat_api_url`.
    cookie: Option<Secret>,
}

impl ChzzkApi {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        chat_api_url: &str,
        login: Option<(&Secret, &Secret)>,
    ) -> ChzzkApi {
        ChzzkApi {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            chat_api_url: chat_api_url.trim_end_matches('/').to_string(),
            cookie: login.map(|(aut, ses)| {
                Secret::new(format!(
                    "NID_AUT={}; NID_SES={}",
                    aut.expose(),
                    ses.expose()
                ))
            }),
        }
    }

    /// From `[chzzk]`.
    pub fn from_config(http: reqwest::Client, config: &crate::config::Chzzk) -> ChzzkApi {
        let login = config.nid_aut.as_ref().zip(config.nid_ses.as_ref());
        ChzzkApi::new(http, &config.api_url, &config.chat_api_url, login)
    }

    /// `GET /service/v2/channels/{id}/live-detail`, with the playback parsed.
    pub async fn live_detail(
        &self,
        id: &ChzzkId,
    ) -> Result<(LiveDetail, LivePlayback), ChzzkError> {
        let url = format!("{}/service/v2/channels/{id}/live-detail", self.api_url);
        let content = self.content(&url, &[], id.as_str()).await?;
        parse_live_detail(&content)
    }

    /// The channel's display name (`GET /service/v1/channels/{id}`); `NoSuchChannel` when
    /// Chzzk does not know it.
    pub async fn channel_name(&self, id: &ChzzkId) -> Result<String, ChzzkError> {
        let url = format!("{}/service/v1/channels/{id}", self.api_url);
        let content = self.content(&url, &[], id.as_str()).await?;
        if text(&content["channelId"]).is_none() {
            return Err(ChzzkError::NoSuchChannel(id.to_string()));
        }
        text(&content["channelName"])
            .ok_or_else(|| ChzzkError::Malformed("the channel has no channelName".into()))
    }

    /// The chat access token for `chat_channel_id` (notes 1.5, step 2).
    pub async fn chat_token(&self, chat_channel_id: &str) -> Result<ChatToken, ChzzkError> {
        let url = format!("{}/v1/chats/access-token", self.chat_api_url);
        let query = [("channelId", chat_channel_id), ("chatType", "STREAMING")];
        let content = match self.content(&url, &query, chat_channel_id).await {
            Err(ChzzkError::Refused {
                code: CODE_ADULT_CHAT,
                ..
            }) => return Err(ChzzkError::AdultOnly(None)),
            other => other?,
        };
        text(&content["accessToken"])
            .map(|t| ChatToken(Secret::new(t)))
            .ok_or_else(|| ChzzkError::Malformed("no accessToken".into()))
    }

    /// GET `url`, the envelope checked (`code` counts more than the HTTP status, notes 1.2),
    /// `content` returned.
    async fn content(
        &self,
        url: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Value, ChzzkError> {
        let mut request = self
            .http
            .get(url)
            .query(query)
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header(reqwest::header::REFERER, REFERER);
        if let Some(cookie) = &self.cookie {
            request = request.header(reqwest::header::COOKIE, cookie.expose());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = remote::body(response, MAX_BODY).await?;
        envelope(status, &body, what)
    }
}

/// The `{"code":200,"message":…,"content":…}` envelope → `content`. Chzzk answers errors
/// with HTTP 200, 400 or 404 and a `code`; anything that is not the envelope is reported
/// with the HTTP status (an anti-bot page, a proxy's error).
pub fn envelope(status: u16, body: &[u8], what: &str) -> Result<Value, ChzzkError> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(mut value) = parsed.filter(|v| v.get("code").is_some()) else {
        return Err(if (200..300).contains(&status) {
            ChzzkError::Malformed(format!("not Chzzk's JSON envelope: {}", snippet(body)))
        } else {
            ChzzkError::Status {
                status,
                detail: snippet(body),
            }
        });
    };
    let code = remote::code(&value["code"]).unwrap_or(-1);
    if code == 404 {
        return Err(ChzzkError::NoSuchChannel(what.chars().take(64).collect()));
    }
    if code != 200 {
        return Err(ChzzkError::Refused {
            code,
            message: text(&value["message"]).unwrap_or_default(),
        });
    }
    match value.get_mut("content").map(Value::take) {
        None | Some(Value::Null) => Err(ChzzkError::NoContent),
        Some(content) if content.is_object() => Ok(content),
        Some(_) => Err(ChzzkError::Malformed("content is not an object".into())),
    }
}

/// A live-detail's `content` → the detail and its playback.
pub fn parse_live_detail(content: &Value) -> Result<(LiveDetail, LivePlayback), ChzzkError> {
    let status = match content["status"].as_str() {
        Some("OPEN") => LiveStatus::Open,
        Some("CLOSE") => LiveStatus::Close,
        Some("BLOCK") => LiveStatus::Block,
        Some(other) => LiveStatus::Other(other.chars().take(32).collect()),
        None => return Err(ChzzkError::Malformed("live-detail has no status".into())),
    };
    let open_date = content["openDate"]
        .as_str()
        .and_then(|d| NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").ok());
    let category = text(&content["liveCategoryValue"]).or_else(|| text(&content["liveCategory"]));
    let playback = parse_playback(&content["livePlaybackJson"])?;
    let detail = LiveDetail {
        status,
        live_id: remote::count(&content["liveId"]),
        title: text(&content["liveTitle"]).unwrap_or_default(),
        category: category.filter(|c| !c.is_empty()),
        adult: content["adult"].as_bool().unwrap_or(false),
        open_date,
        chat_channel_id: text(&content["chatChannelId"]).filter(|c| is_chat_channel_id(c)),
        channel_name: text(&content["channel"]["channelName"]),
        concurrent_users: remote::count(&content["concurrentUserCount"]),
        user_adult_status: text(&content["userAdultStatus"]),
        media: None,
    };
    let media = detail.playable(&playback).ok().flatten();
    Ok((LiveDetail { media, ..detail }, playback))
}

/// `livePlaybackJson`: a JSON string holding `{"meta":…,"live":…,"media":[…]}`. The media
/// used is `mediaId == "HLS" && protocol == "HLS"`, as streamlink and Rekoda pick (not LLHLS).
pub fn parse_playback(value: &Value) -> Result<LivePlayback, ChzzkError> {
    let text = match value {
        Value::Null => return Ok(LivePlayback::Absent),
        Value::String(s) => s,
        _ => {
            return Err(ChzzkError::Malformed(
                "livePlaybackJson is not a string".into(),
            ))
        }
    };
    if text.len() > MAX_BODY {
        return Err(ChzzkError::Malformed(
            "livePlaybackJson is too large".into(),
        ));
    }
    let inner: Value = serde_json::from_str(text)
        .map_err(|e| ChzzkError::Malformed(format!("livePlaybackJson is not JSON: {e}")))?;
    let media = match &inner["media"] {
        Value::Array(m) => m,
        Value::Null => {
            return Ok(LivePlayback::Present {
                hls: None,
                others: Vec::new(),
            })
        }
        _ => {
            return Err(ChzzkError::Malformed(
                "livePlaybackJson media is not a list".into(),
            ))
        }
    };
    let mut others = Vec::new();
    for item in media.iter().take(16) {
        let id = item["mediaId"].as_str().unwrap_or("?");
        if id == "HLS" && item["protocol"].as_str() == Some("HLS") {
            let path = item["path"]
                .as_str()
                .ok_or_else(|| ChzzkError::Malformed("the HLS media has no path".into()))?;
            let url = Url::parse(path)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    ChzzkError::Malformed("the HLS media path is not an http(s) address".into())
                })?;
            return Ok(LivePlayback::Present {
                hls: Some(url),
                others,
            });
        }
        others.push(id.chars().take(32).collect());
    }
    Ok(LivePlayback::Present { hls: None, others })
}

/// A chat channel id as the notes saw them: short, letters, digits, `_` and `-`
/// (`N2R_XI`). kimcore refuses anything not 6 long; recbot only bounds it (up to 32), since
/// the length is not documented.
fn is_chat_channel_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The chat WebSocket address for `chat_channel_id`: `{n}` in the template is
/// `(sum of the id's character codes) mod 9 + 1`, as kimcore and chzzkpy choose it; whether
/// every server accepts every channel is [U], so this is load spreading only.
pub fn chat_server_url(template: &str, chat_channel_id: &str) -> String {
    let sum: u64 = chat_channel_id.chars().map(u64::from).sum();
    template.replace("{n}", &(sum % 9 + 1).to_string())
}

/// A string field, trimmed to [`MAX_TEXT`] characters; `None` when absent, null or not text.
fn text(value: &Value) -> Option<String> {
    value.as_str().map(|s| s.chars().take(MAX_TEXT).collect())
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MASTER: &str = "https://ex-nlive-streaming.navercdn.com/chzzk/lip2_kr/cflexnmss2u0005/abc/key_hls_playlist.m3u8?hdnts=st=1745577000~exp=1745637000~acl=*/abc/*~hmac=00";

    fn playback(media: Value) -> String {
        json!({"meta": {"liveId": "18553740"}, "live": {"status": "STARTED"}, "media": media})
            .to_string()
    }

    fn detail(status: &str, adult: bool, playback: Option<String>) -> Value {
        json!({
            "liveId": 18553740, "liveTitle": "t", "status": status, "openDate": "2026-04-25 19:49:02",
            "adult": adult, "chatChannelId": "N2RyfZ", "liveCategoryValue": "talk",
            "concurrentUserCount": -5, "channel": {"channelName": "Streamer"},
            "userAdultStatus": null, "livePlaybackJson": playback,
        })
    }

    #[test]
    fn open_detail_gives_the_hls_master_not_llhls() {
        let media = json!([
            {"mediaId": "LLHLS", "protocol": "HLS", "path": "https://x/ll.m3u8"},
            {"mediaId": "HLS", "protocol": "HLS", "path": MASTER},
        ]);
        let (d, _) = parse_live_detail(&detail("OPEN", false, Some(playback(media)))).unwrap();
        assert!(d.is_live());
        assert_eq!(d.media.as_ref().map(Url::as_str), Some(MASTER));
        assert_eq!(d.live_id, Some(18553740));
        assert_eq!(d.concurrent_users, None, "a negative count is unknown");
        assert_eq!(d.chat_channel_id.as_deref(), Some("N2RyfZ"));
        assert_eq!(d.channel_name.as_deref(), Some("Streamer"));
        assert_eq!(d.category.as_deref(), Some("talk"));
        assert_eq!(
            d.open_date.map(|t| t.to_string()).as_deref(),
            Some("2026-04-25 19:49:02")
        );
    }

    #[test]
    fn close_keeps_the_old_broadcast_but_is_not_live() {
        let ended = json!({"meta": {}, "live": {"status": "ENDED"}, "media": []}).to_string();
        let (d, p) = parse_live_detail(&detail("CLOSE", false, Some(ended))).unwrap();
        assert!(!d.is_live());
        assert_eq!(d.media, None);
        assert_eq!(d.live_id, Some(18553740));
        assert_eq!(d.playable(&p).unwrap(), None);
    }

    #[test]
    fn adult_unavailable_and_odd_media_are_named() {
        let (d, p) = parse_live_detail(&detail("OPEN", true, None)).unwrap();
        assert!(matches!(d.playable(&p), Err(ChzzkError::AdultOnly(_))));
        assert!(d.playable(&p).unwrap_err().to_string().contains("nid_aut"));
        let (d, p) = parse_live_detail(&detail("OPEN", false, None)).unwrap();
        assert!(matches!(d.playable(&p), Err(ChzzkError::Unavailable)));
        let dash = playback(json!([{"mediaId": "DASH", "protocol": "DASH", "path": "https://x"}]));
        let (d, p) = parse_live_detail(&detail("OPEN", false, Some(dash))).unwrap();
        assert!(matches!(d.playable(&p), Err(ChzzkError::NoHls(m)) if m == "DASH"));
        let bad =
            playback(json!([{"mediaId": "HLS", "protocol": "HLS", "path": "file:///etc/passwd"}]));
        assert!(parse_live_detail(&detail("OPEN", false, Some(bad))).is_err());
        let not_json = detail("OPEN", false, Some("{not json".into()));
        assert!(matches!(
            parse_live_detail(&not_json),
            Err(ChzzkError::Malformed(_))
        ));
        let (d, _) = parse_live_detail(&detail("BLOCK", false, None)).unwrap();
        assert_eq!(d.status, LiveStatus::Block);
    }

    #[test]
    fn envelope_trusts_code_over_http_status() {
        let ok = envelope(
            200,
            br#"{"code":200,"message":null,"content":{"a":1}}"#,
            "x",
        )
        .unwrap();
        assert_eq!(ok["a"], 1);
        assert!(matches!(
            envelope(404, br#"{"code":404,"message":"..."}"#, "abc"),
            Err(ChzzkError::NoSuchChannel(c)) if c == "abc"
        ));
        assert!(matches!(
            envelope(400, br#"{"code":400,"message":"bad"}"#, "x"),
            Err(ChzzkError::Refused { code: 400, .. })
        ));
        assert!(matches!(
            envelope(200, br#"{"code":200,"message":null,"content":null}"#, "x"),
            Err(ChzzkError::NoContent)
        ));
        let html = envelope(403, b"<html>Access Denied</html>", "x").unwrap_err();
        assert!(matches!(html, ChzzkError::Status { status: 403, .. }));
        assert!(!html.is_transient());
        assert!(envelope(503, b"busy", "x").unwrap_err().is_transient());
        assert!(matches!(
            envelope(200, b"[]", "x"),
            Err(ChzzkError::Malformed(_))
        ));
    }

    #[test]
    fn chat_servers_follow_the_notes_examples() {
        let t = "wss://kr-ss{n}.chat.naver.com/chat";
        assert_eq!(
            chat_server_url(t, "N13AdP"),
            "wss://kr-ss1.chat.naver.com/chat"
        );
        assert_eq!(
            chat_server_url(t, "N2RyfZ"),
            "wss://kr-ss2.chat.naver.com/chat"
        );
        assert_eq!(
            chat_server_url("ws://127.0.0.1:5/chat", "N2RyfZ"),
            "ws://127.0.0.1:5/chat"
        );
    }
}
