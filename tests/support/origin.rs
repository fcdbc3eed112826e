//! A fake Twitch video origin on 127.0.0.1 for recorder tests and the benchmark: GQL playback
//! tokens, usher master playlists (with a `BROADCAST-ID`), live media playlists whose window
//! moves on the wall clock, and segments — with injectable trouble (ads, token expiry, GQL
//! errors, 403s that do not go away, outages switched on and off, playlists that hang,
//! encryption, failing segments, fMP4, ENDLIST or 404 at the end).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

/// How a stream's playlist ends once every segment is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Endlist,
    NotFound,
    /// Never ends (the benchmark stops it).
    Never,
}

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Segments in the broadcast.
    pub segments: u64,
    pub seg_duration: f64,
    /// Segments already published when the stream is (re)started.
    pub initial: u64,
    /// Segments listed in the playlist.
    pub window: u64,
    /// Bytes of filler after each segment's unique prefix.
    pub body_len: usize,
    pub end: End,
    /// Segments that are stitched ads.
    pub ads: Range<u64>,
    /// Mark ads with a twitch-stitched-ad DATERANGE instead of the `Amazon` title.
    pub ads_by_daterange: bool,
    pub fmp4: bool,
    /// Segments whose first request breaks off half-way.
    pub fail_once: Vec<u64>,
    /// Segments that always answer 500.
    pub fail_always: Vec<u64>,
    /// Segments that answer 503 to their first `n` requests.
    pub fail_times: Vec<(u64, u32)>,
    /// Segments that answer 404.
    pub not_found: Vec<u64>,
    /// Segments whose body never ends: one byte every 50 ms.
    pub trickle: Vec<u64>,
    /// Segments whose body never ends: 64 KiB chunks as fast as they are read.
    pub endless: Vec<u64>,
    /// A segment listed under a 20 KB address (under the 64 KiB line limit, so the playlist is read) that cannot be parsed.
    pub bad_uri: Option<u64>,
    /// While this many segments are published, the media playlist answers 503.
    pub outage: Option<Range<u64>>,
    /// Once this many segments are published, tokens issued before are refused with 403.
    pub expire_tokens_at: Option<u64>,
    /// First media sequence number.
    pub first_sequence: u64,
    /// While this many segments are published, GQL answers errors with this message.
    pub gql_errors: Option<(Range<u64>, &'static str)>,
    /// Once this many segments are published, the media playlist answers 403 whatever the
    /// token.
    pub forbid_from: Option<u64>,
    /// The `BROADCAST-ID` of the master playlist's `EXT-X-TWITCH-INFO`.
    pub broadcast_id: Option<String>,
    /// The media playlist announces AES-128 encryption.
    pub encrypted: bool,
    /// The usher master's `com.amazon.ivs.unavailable-media` list (JSON; sent base64 as
    /// `EXT-X-SESSION-DATA`): what Twitch withholds from this viewer.
    pub unavailable: Option<String>,
    /// The usher master offers only the `audio_only` rendition (every video one withheld).
    pub only_audio: bool,
    /// The usher master offers a 1440p60 HEVC source above its H.264 renditions.
    pub hevc_source: bool,
    /// With `hevc_source`: the 1440p60 source only for tokens of a logged-in viewer; others
    /// get it listed as withheld (`AUTHZ_NOT_LOGGED_IN`), as Twitch does.
    pub source_needs_login: bool,
    /// fMP4: from this segment on, a new init segment (`init-1.mp4`, other bytes) after a
    /// discontinuity, as when a broadcaster changes encoder settings.
    pub init_change_at: Option<u64>,
    /// fMP4: from this segment on, the same init bytes at a new address (`init.mp4?v=2`).
    pub init_moves_at: Option<u64>,
    /// Listed by the fake Helix `/streams` (id = this stream id) while live and not ended,
    /// for a real `recbot` process whose own watcher must see it; `None`: not listed.
    pub helix_id: Option<String>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            segments: 12,
            seg_duration: 0.25,
            initial: 4,
            window: 8,
            body_len: 3000,
            end: End::Endlist,
            ads: 0..0,
            ads_by_daterange: false,
            fmp4: false,
            fail_once: Vec::new(),
            fail_always: Vec::new(),
            fail_times: Vec::new(),
            not_found: Vec::new(),
            trickle: Vec::new(),
            endless: Vec::new(),
            bad_uri: None,
            outage: None,
            expire_tokens_at: None,
            first_sequence: 0,
            gql_errors: None,
            forbid_from: None,
            broadcast_id: None,
            encrypted: false,
            unavailable: None,
            only_audio: false,
            hevc_source: false,
            source_needs_login: false,
            init_change_at: None,
            init_moves_at: None,
            helix_id: None,
        }
    }
}

struct Stream {
    config: StreamConfig,
    started: Instant,
    /// Program date-time of segment 0 (a restarted stream gets later ones).
    pdt_base_ms: i64,
    live: bool,
    /// Tokens numbered below this are refused.
    valid_from: u64,
    expired: bool,
    failed_once: Vec<u64>,
    /// Requests answered 503 per segment (for `fail_times`).
    failed_times: HashMap<u64, u32>,
    /// Switched by the test: the media playlist answers 503.
    blocked: bool,
    /// Switched by the test: media playlist requests hang (30 s) before answering.
    hanging: bool,
}

impl Stream {
    fn published(&self) -> u64 {
        let c = &self.config;
        let elapsed = self.started.elapsed().as_secs_f64();
        (c.initial + (elapsed / c.seg_duration) as u64).min(c.segments)
    }
}

#[derive(Default)]
struct Inner {
    streams: HashMap<String, Stream>,
    tokens: u64,
    requests: HashMap<String, u64>,
    filler: Bytes,
    /// The query of the last usher request.
    usher_query: HashMap<String, String>,
    /// Viewer tokens GQL accepts, with the client id each must come with.
    viewers: HashMap<String, String>,
    /// The `Client-ID` and `Authorization` of every GQL request.
    gql_headers: Vec<(String, Option<String>)>,
    /// VODs by login (one per login: the broadcast's archive).
    vods: HashMap<String, Vod>,
}

/// A fake VOD of a login's broadcast (Twitch's archive): `segments` segments of
/// `seg_duration` seconds, `N.ts`, or `N-muted.ts` / `N-unmuted.ts` (which answers 403).
#[derive(Debug, Clone)]
pub struct Vod {
    pub id: String,
    pub stream_id: String,
    pub segments: u64,
    pub seg_duration: f64,
    pub muted: Vec<u64>,
    pub unmuted: Vec<u64>,
    /// Sub-only: usher answers 403 `vod_manifest_restricted`.
    pub restricted: bool,
    /// Still processing: not listed by Helix/GQL until this many looks (lists, playlists)
    /// have been answered; the playlist lists only `listed` segments until then.
    pub processing_looks: u64,
    pub listed: u64,
    /// When the broadcast started (the archive's `created_at`).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// fMP4: the playlist maps `init-0.mp4` ([`vod_init_bytes`]) and lists `N.mp4`.
    pub fmp4: bool,
}

/// The exact bytes of an fMP4 VOD's init segment.
pub fn vod_init_bytes(vod: &str) -> Vec<u8> {
    format!("VODINIT:{vod}|ftyp-moov").into_bytes()
}

/// The exact bytes of VOD segment `n` (its muted copy when `muted`).
pub fn vod_segment_bytes(vod: &str, n: u64, muted: bool) -> Vec<u8> {
    let kind = if muted { "VODMUTED" } else { "VOD" };
    let mut v = format!("{kind}:{vod}:{n:06}|").into_bytes();
    v.extend(std::iter::repeat_n(b'v', 2000));
    v
}

#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn pdt(base_ms: i64, index: u64, seg: f64) -> String {
    let ms = base_ms + (index as f64 * seg * 1000.0) as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The exact bytes of segment `seq` of `login` (what the recording must contain).
pub fn segment_bytes(login: &str, seq: u64, filler_len: usize) -> Vec<u8> {
    let mut v = prefix(login, seq, false).to_vec();
    v.extend(std::iter::repeat_n(b'.', filler_len));
    v
}

pub fn init_bytes(login: &str) -> Vec<u8> {
    format!("INIT:{login}|ftyp-moov").into_bytes()
}

/// The bytes of the init segment a stream changes to (`init_change_at`).
pub fn new_init_bytes(login: &str) -> Vec<u8> {
    format!("INIT-1:{login}|ftyp-moov-hevc").into_bytes()
}

fn prefix(login: &str, seq: u64, ad: bool) -> Bytes {
    let kind = if ad { "AD" } else { "SEG" };
    Bytes::from(format!("{kind}:{login}:{seq:08}|"))
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Origin::serve(listener)
    }

    /// Serves on `listener` from the current runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> Origin {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/gql", post(gql))
            .route("/oauth2/token", post(app_token))
            .route("/helix/users", get(helix_users))
            .route("/helix/videos", get(helix_videos))
            .route("/helix/streams", get(helix_streams))
            .route("/vod/v2/{file}", get(vod_master))
            .route("/vod/{id}/{variant}/{file}", get(vod_media))
            .route("/api/v2/channel/hls/{file}", get(usher))
            .route("/hls/{login}/master.m3u8", get(plain_master))
            .route("/hls/{login}/{variant}/{file}", get(media))
            .with_state(inner.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Origin { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Config text pointing recbot's Twitch endpoints here.
    pub fn twitch_config(&self) -> String {
        format!(
            "[twitch]\ngql_url = \"{0}/gql\"\nusher_url = \"{0}\"\n",
            self.url()
        )
    }

    /// Config text for Helix and the app token here (with app credentials).
    pub fn helix_config(&self) -> String {
        format!(
            "helix_url = \"{0}/helix\"\nid_url = \"{0}/oauth2\"\n",
            self.url()
        )
    }

    /// Publishes `login`'s VOD.
    pub fn publish_vod(&self, login: &str, vod: Vod) {
        self.inner.lock().unwrap().vods.insert(login.into(), vod);
    }

    /// Starts (or restarts, from its first segment) a live stream.
    pub fn go_live(&self, login: &str, config: StreamConfig) {
        let mut inner = self.inner.lock().unwrap();
        let filler_len = config.body_len;
        if inner.filler.len() < filler_len {
            inner.filler = Bytes::from(vec![b'.'; filler_len]);
        }
        inner.streams.insert(
            login.to_string(),
            Stream {
                pdt_base_ms: chrono::Utc::now().timestamp_millis()
                    - (config.initial as f64 * config.seg_duration * 1000.0) as i64,
                config,
                started: Instant::now(),
                live: true,
                valid_from: 0,
                expired: false,
                failed_once: Vec::new(),
                failed_times: HashMap::new(),
                blocked: false,
                hanging: false,
            },
        );
    }

    /// Makes the media playlist answer 503 (`on`) or work again.
    pub fn set_blocked(&self, login: &str, on: bool) {
        if let Some(s) = self.inner.lock().unwrap().streams.get_mut(login) {
            s.blocked = on;
        }
    }

    /// Makes media playlist requests hang for 30 s (`on`) or answer at once again.
    pub fn set_hanging(&self, login: &str, on: bool) {
        if let Some(s) = self.inner.lock().unwrap().streams.get_mut(login) {
            s.hanging = on;
        }
    }

    pub fn go_offline(&self, login: &str) {
        if let Some(s) = self.inner.lock().unwrap().streams.get_mut(login) {
            s.live = false;
        }
    }

    pub fn published(&self, login: &str) -> u64 {
        self.inner.lock().unwrap().streams[login].published()
    }

    /// GQL accepts `token` (sent as `Authorization: OAuth <token>`) with `client_id`.
    pub fn accept_viewer(&self, token: &str, client_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.viewers.insert(token.into(), client_id.into());
    }

    /// GQL no longer accepts `token` (revoked).
    pub fn revoke_viewer(&self, token: &str) {
        self.inner.lock().unwrap().viewers.remove(token);
    }

    /// `Client-ID` and `Authorization` of every GQL request so far.
    pub fn gql_headers(&self) -> Vec<(String, Option<String>)> {
        self.inner.lock().unwrap().gql_headers.clone()
    }

    /// The query parameters of the last usher request.
    pub fn usher_query(&self) -> HashMap<String, String> {
        self.inner.lock().unwrap().usher_query.clone()
    }

    /// Requests seen per kind: `gql`, `usher`, `playlist`, `segment`, `init`, `403`.
    pub fn requests(&self, kind: &str) -> u64 {
        *self.inner.lock().unwrap().requests.get(kind).unwrap_or(&0)
    }
}

fn count(inner: &mut Inner, kind: &str) {
    *inner.requests.entry(kind.to_string()).or_default() += 1;
}

async fn gql(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "gql");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (client, auth) = (
        header("client-id").unwrap_or_default(),
        header("authorization"),
    );
    inner.gql_headers.push((client.clone(), auth.clone()));
    // Twitch: a token only with its own client id, else 401 (streamlink's test fixture).
    let logged_in = match auth
        .as_deref()
        .map(|a| a.strip_prefix("OAuth ").unwrap_or(""))
    {
        None => false,
        Some(token) if inner.viewers.get(token) == Some(&client) => true,
        Some(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "Unauthorized", "status": 401,
                    "message": "The \"Authorization\" token is invalid."})),
            )
                .into_response()
        }
    };
    if body["variables"]["isVod"] == json!(true) {
        count(&mut inner, "vod-token");
        let id = body["variables"]["vodID"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let value = json!({"vod_id": id}).to_string();
        return Json(
            json!({"data": {"videoPlaybackAccessToken": {"value": value, "signature": "vodsig"}}}),
        )
        .into_response();
    }
    if body["operationName"] == json!("RecbotArchives") {
        count(&mut inner, "vod-list");
        let login = body["variables"]["login"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let edges: Vec<serde_json::Value> = listed_vod(&mut inner, &login)
            .map(|v| json!({"node": {"id": v.id, "createdAt": v.created_at.to_rfc3339(), "broadcastType": "ARCHIVE"}}))
            .into_iter()
            .collect();
        return Json(json!({"data": {"user": {"videos": {"edges": edges}}}})).into_response();
    }
    let login = body["variables"]["login"].as_str().unwrap_or("");
    let failing = inner.streams.get(login).and_then(|s| {
        s.config
            .gql_errors
            .as_ref()
            .filter(|(r, _)| r.contains(&s.published()))
            .map(|(_, message)| *message)
    });
    if let Some(message) = failing {
        count(&mut inner, "gql-error");
        return Json(json!({"errors": [{"message": message, "path": ["x"]}], "data": null}))
            .into_response();
    }
    inner.tokens += 1;
    let user_id = logged_in.then_some("4711");
    let value = json!({"channel": login, "n": inner.tokens, "user_id": user_id}).to_string();
    Json(json!({"data": {"streamPlaybackAccessToken": {"value": value, "signature": "sig"}}}))
        .into_response()
}

/// What usher withholds from a logged-out viewer when the source needs a login (the notes'
/// fixture).
pub const WITHHELD_SOURCE: &str = r#"[{"NAME":"1440p60","BANDWIDTH":7736560,"CODECS":"hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2","RESOLUTION":"2560x1440","FILTER_REASONS":[],"AUTHORIZATION_REASONS":["AUTHZ_NOT_LOGGED_IN"],"GROUP-ID":"chunked","FRAME-RATE":60}]"#;

fn token_number(params: &HashMap<String, String>) -> Option<u64> {
    if let Some(t) = params.get("t") {
        return t.parse().ok();
    }
    let token: serde_json::Value = serde_json::from_str(params.get("token")?).ok()?;
    token["n"].as_u64()
}

fn variants(login: &str, token: Option<u64>, broadcast: Option<&str>) -> String {
    variants_of(login, token, broadcast, None, false, false)
}

fn variants_of(
    login: &str,
    token: Option<u64>,
    broadcast: Option<&str>,
    unavailable: Option<&str>,
    only_audio: bool,
    hevc_source: bool,
) -> String {
    use base64::Engine;
    let t = token.map(|n| format!("?t={n}")).unwrap_or_default();
    let broadcast = broadcast
        .map(|b| format!(",BROADCAST-ID=\"{b}\""))
        .unwrap_or_default();
    let session_data = unavailable
        .map(|json| {
            format!(
                "#EXT-X-SESSION-DATA:DATA-ID=\"com.amazon.ivs.unavailable-media\",VALUE=\"{}\"\n",
                base64::engine::general_purpose::STANDARD.encode(json)
            )
        })
        .unwrap_or_default();
    if only_audio {
        return format!(
            "#EXTM3U\n\
             #EXT-X-TWITCH-INFO:NODE=\"fake\",SERVER-TIME=\"1.0\"{broadcast}\n\
             {session_data}\
             #EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS=\"mp4a.40.2\",STABLE-VARIANT-ID=\"audio_only\",IVS-NAME=\"audio_only\",IVS-VARIANT-SOURCE=\"transcode\"\n\
             /hls/{login}/audio_only/index.m3u8{t}\n"
        );
    }
    let (hevc, source_1080) = if hevc_source {
        (
            format!(
                "#EXT-X-STREAM-INF:BANDWIDTH=7736560,RESOLUTION=2560x1440,CODECS=\"hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2\",FRAME-RATE=60.000,STABLE-VARIANT-ID=\"1440p60\",IVS-VARIANT-SOURCE=\"source\"\n\
                 /hls/{login}/1440p60/index.m3u8{t}\n"
            ),
            "transcode",
        )
    } else {
        (String::new(), "source")
    };
    format!(
        "#EXTM3U\n\
         #EXT-X-TWITCH-INFO:NODE=\"fake\",SERVER-TIME=\"1.0\"{broadcast}\n\
         {session_data}{hevc}\
         #EXT-X-STREAM-INF:BANDWIDTH=6500000,RESOLUTION=1920x1080,CODECS=\"avc1.64002A,mp4a.40.2\",FRAME-RATE=60.000,IVS-NAME=\"1080p60\",IVS-VARIANT-SOURCE=\"{source_1080}\"\n\
         /hls/{login}/1080p60/index.m3u8{t}\n\
         #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS=\"avc1.4D401F,mp4a.40.2\",FRAME-RATE=30.000,IVS-NAME=\"720p30\",IVS-VARIANT-SOURCE=\"transcode\"\n\
         /hls/{login}/720p30/index.m3u8{t}\n"
    )
}

async fn usher(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "usher");
    inner.usher_query = params.clone();
    let login = file.trim_end_matches(".m3u8").to_string();
    let stream = inner
        .streams
        .get(&login)
        .filter(|s| s.live && !ended_404(s));
    let Some(stream) = stream else {
        return (
            StatusCode::NOT_FOUND,
            r#"[{"error":"not live","error_code":"transcode_does_not_exist","type":"error"}]"#,
        )
            .into_response();
    };
    let c = &stream.config;
    let logged_in = params
        .get("token")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .is_some_and(|t| t["user_id"].is_string());
    let withhold = c.hevc_source && c.source_needs_login && !logged_in;
    let unavailable = if withhold {
        Some(WITHHELD_SOURCE.to_string())
    } else {
        c.unavailable.clone()
    };
    variants_of(
        &login,
        token_number(&params),
        c.broadcast_id.as_deref(),
        unavailable.as_deref(),
        c.only_audio,
        c.hevc_source && !withhold,
    )
    .into_response()
}

async fn plain_master(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(login): Path<String>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "usher");
    let live = inner
        .streams
        .get(&login)
        .is_some_and(|s| s.live && !ended_404(s));
    if !live {
        return StatusCode::NOT_FOUND.into_response();
    }
    variants(&login, None, None).into_response()
}

fn ended_404(s: &Stream) -> bool {
    s.config.end == End::NotFound && s.published() >= s.config.segments
}

async fn media(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((login, variant, file)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let hang = file == "index.m3u8"
        && inner
            .lock()
            .unwrap()
            .streams
            .get(&login)
            .is_some_and(|s| s.hanging);
    if hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let mut inner = inner.lock().unwrap();
    if file == "index.m3u8" {
        count(&mut inner, "playlist");
        let token = token_number(&params);
        let Some(stream) = inner.streams.get_mut(&login) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if !stream.live || ended_404(stream) {
            return StatusCode::NOT_FOUND.into_response();
        }
        let published = stream.published();
        if let Some(at) = stream.config.expire_tokens_at {
            if published >= at && !stream.expired {
                stream.expired = true;
                stream.valid_from = token.unwrap_or(0) + 1;
            }
        }
        let forbidden = stream.config.forbid_from.is_some_and(|n| published >= n);
        if forbidden || token.is_some_and(|n| n < stream.valid_from) {
            count(&mut inner, "403");
            return StatusCode::FORBIDDEN.into_response();
        }
        if stream.blocked
            || stream
                .config
                .outage
                .as_ref()
                .is_some_and(|r| r.contains(&published))
        {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        return playlist(
            &login,
            &variant,
            &stream.config,
            stream.pdt_base_ms,
            published,
        )
        .into_response();
    }
    if file == "init.mp4" {
        count(&mut inner, "init");
        return Bytes::from(init_bytes(&login)).into_response();
    }
    if file == "init-1.mp4" {
        count(&mut inner, "init");
        return Bytes::from(new_init_bytes(&login)).into_response();
    }
    count(&mut inner, "segment");
    let Some(seq) = file.split('.').next().and_then(|n| n.parse::<u64>().ok()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let filler = inner.filler.clone();
    let Some(stream) = inner.streams.get_mut(&login) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let c = &stream.config;
    let index = seq - c.first_sequence;
    if index >= stream.published() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if c.fail_always.contains(&index) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if c.not_found.contains(&index) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some((_, n)) = c.fail_times.iter().find(|(i, _)| *i == index) {
        let n = *n;
        let seen = stream.failed_times.entry(index).or_default();
        if *seen < n {
            *seen += 1;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let c = &stream.config;
    if c.trickle.contains(&index) || c.endless.contains(&index) {
        let head = prefix(&login, seq, false);
        let trickle = c.trickle.contains(&index);
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
            futures::stream::unfold((), move |()| async move {
                if trickle {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok(Bytes::from_static(b"~")), ()))
                } else {
                    Some((Ok(Bytes::from(vec![b'~'; 64 * 1024])), ()))
                }
            }),
        );
        return Response::builder().body(Body::from_stream(body)).unwrap();
    }
    let head = prefix(&login, seq, c.ads.contains(&index));
    let tail = filler.slice(..c.body_len);
    let total = head.len() + tail.len();
    if c.fail_once.contains(&index) && !stream.failed_once.contains(&index) {
        stream.failed_once.push(index);
        let half = tail.slice(..tail.len() / 2);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(head),
            Ok(half),
            Err(std::io::Error::other("origin broke off")),
        ];
        return Response::builder()
            .header(header::CONTENT_LENGTH, total)
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap();
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(head), Ok(tail)];
    Response::builder()
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap()
}

fn playlist(login: &str, variant: &str, c: &StreamConfig, base: i64, published: u64) -> String {
    let first = published.saturating_sub(c.window);
    let target = c.seg_duration.ceil().max(1.0) as u64;
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-TWITCH-ELAPSED-SECS:{:.3}\n",
        c.first_sequence + first,
        first as f64 * c.seg_duration
    );
    if c.encrypted {
        out.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"/key\"\n");
    }
    let ext = if c.fmp4 { "mp4" } else { "ts" };
    let mut map_now: Option<&str> = None;
    for i in first..published {
        let seq = c.first_sequence + i;
        let ad = c.ads.contains(&i);
        if c.fmp4 {
            let map = if c.init_change_at.is_some_and(|n| i >= n) {
                "init-1.mp4"
            } else if c.init_moves_at.is_some_and(|n| i >= n) {
                "init.mp4?v=2"
            } else {
                "init.mp4"
            };
            if map_now != Some(map) {
                if map_now.is_some() && c.init_change_at == Some(i) {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                out.push_str(&format!(
                    "#EXT-X-MAP:URI=\"/hls/{login}/{variant}/{map}\"\n"
                ));
                map_now = Some(map);
            }
        }
        if ad && c.ads_by_daterange && i == c.ads.start {
            out.push_str(&format!(
                "#EXT-X-DATERANGE:ID=\"playlist-creation-{i}\",CLASS=\"timestamp\",START-DATE=\"{}\"\n\
                 #EXT-X-DATERANGE:ID=\"stitched-ad-{i}\",CLASS=\"twitch-stitched-ad\",START-DATE=\"{}\",DURATION={:.3}\n",
                pdt(base, i, c.seg_duration),
                pdt(base, i, c.seg_duration),
                (c.ads.end - c.ads.start) as f64 * c.seg_duration
            ));
        }
        if (ad && i == c.ads.start) || (i == c.ads.end && i > 0 && !c.ads.is_empty()) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let title = if ad && !c.ads_by_daterange {
            "Amazon|ad"
        } else {
            "live"
        };
        let uri = if c.bad_uri == Some(i) {
            format!("http://[{}", "x".repeat(20_000))
        } else {
            format!("/hls/{login}/{variant}/{seq}.{ext}")
        };
        out.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},{title}\n{uri}\n",
            pdt(base, i, c.seg_duration),
            c.seg_duration
        ));
    }
    if published >= c.segments && c.end == End::Endlist {
        out.push_str("#EXT-X-ENDLIST\n");
    } else if published < c.segments {
        out.push_str(&format!(
            "#EXT-X-TWITCH-PREFETCH:/hls/{login}/{variant}/{}.{ext}\n",
            c.first_sequence + published
        ));
    }
    out
}

/// Waits until `f` holds, polling; panics after `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The media sequence numbers of the segments in `data` (a recording of `login` made of
/// segments of `filler_len` filler bytes each), in file order.
pub fn sequences(login: &str, data: &[u8], filler_len: usize) -> Vec<u64> {
    let one = segment_bytes(login, 0, filler_len).len();
    assert_eq!(
        data.len() % one,
        0,
        "not whole segments: {} bytes",
        data.len()
    );
    data.chunks(one)
        .map(|seg| {
            let head =
                std::str::from_utf8(&seg[..seg.iter().position(|b| *b == b'|').unwrap()]).unwrap();
            head.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// The login's VOD when it is listed (counts a look while it is still processing).
fn listed_vod(inner: &mut Inner, login: &str) -> Option<Vod> {
    let vod = inner.vods.get_mut(login)?;
    if vod.processing_looks > 0 {
        vod.processing_looks -= 1;
        return None;
    }
    Some(vod.clone())
}

async fn app_token() -> Response {
    Json(json!({"access_token": "apptoken", "expires_in": 3600, "token_type": "bearer"}))
        .into_response()
}

async fn helix_users(Query(params): Query<HashMap<String, String>>) -> Response {
    let login = params.get("login").cloned().unwrap_or_default();
    Json(json!({"data": [{"id": format!("uid-{login}"), "login": login}]})).into_response()
}

/// Helix `/streams`: the streams with a `helix_id` that are live and not ended, started when
/// their segment 0 was.
async fn helix_streams(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "helix-streams");
    let data: Vec<serde_json::Value> = params
        .iter()
        .filter(|(k, _)| k == "user_login")
        .filter_map(|(_, login)| {
            let s = inner.streams.get(login)?;
            let id = s.config.helix_id.as_ref()?;
            let on = s.live && s.published() < s.config.segments;
            on.then(|| {
                let started = chrono::DateTime::from_timestamp_millis(s.pdt_base_ms).unwrap();
                json!({"id": id, "user_login": login, "user_name": login, "title": "t",
                    "game_name": "", "type": "live", "started_at": started.to_rfc3339()})
            })
        })
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn helix_videos(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "vod-list");
    let login = params
        .get("user_id")
        .and_then(|u| u.strip_prefix("uid-"))
        .unwrap_or("")
        .to_string();
    assert_eq!(params.get("type").map(String::as_str), Some("archive"));
    let older = json!({"id": "1", "stream_id": "older", "created_at": "2020-01-01T00:00:00Z"});
    let data: Vec<serde_json::Value> = listed_vod(&mut inner, &login)
        .map(|v| json!({"id": v.id, "stream_id": v.stream_id, "created_at": v.created_at.to_rfc3339()}))
        .into_iter()
        .chain(std::iter::once(older))
        .collect();
    Json(json!({"data": data})).into_response()
}

async fn vod_master(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    count(&mut inner, "vod-usher");
    let id = file.trim_end_matches(".m3u8").to_string();
    assert_eq!(params.get("sig").map(String::as_str), Some("vodsig"));
    let Some(vod) = inner.vods.values().find(|v| v.id == id) else {
        return (StatusCode::NOT_FOUND, "[]").into_response();
    };
    if vod.restricted {
        return (
            StatusCode::FORBIDDEN,
            r#"[{"url":"x","error":"No playlist for this video","error_code":"vod_manifest_restricted","type":"error"}]"#,
        )
            .into_response();
    }
    format!(
        "#EXTM3U\n\
         #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS=\"avc1.4D401F,mp4a.40.2\",FRAME-RATE=30.000,STABLE-VARIANT-ID=\"720p30\",IVS-NAME=\"720p30\",IVS-VARIANT-SOURCE=\"transcode\"\n\
         /vod/{id}/720p30/index-dvr.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=6500000,RESOLUTION=1920x1080,CODECS=\"avc1.64002A,mp4a.40.2\",FRAME-RATE=60.000,STABLE-VARIANT-ID=\"1080p60\",IVS-NAME=\"1080p60\",IVS-VARIANT-SOURCE=\"source\",IVS-GROUPS=\"landscape\"\n\
         /vod/{id}/chunked/index-dvr.m3u8\n"
    )
    .into_response()
}

async fn vod_media(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((id, variant, file)): Path<(String, String, String)>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let Some(vod) = inner.vods.values().find(|v| v.id == id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if file == "index-dvr.m3u8" {
        count(&mut inner, "vod-playlist");
        count(&mut inner, &format!("vod-playlist-{variant}"));
        let listed = vod.listed.min(vod.segments);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TWITCH-ELAPSED-SECS:0.000\n",
            vod.seg_duration.ceil()
        );
        let ext = if vod.fmp4 { "mp4" } else { "ts" };
        if vod.fmp4 {
            out.push_str("#EXT-X-MAP:URI=\"init-0.mp4\"\n");
        }
        for n in 0..listed {
            let name = if vod.unmuted.contains(&n) {
                format!("{n}-unmuted.{ext}")
            } else if vod.muted.contains(&n) {
                format!("{n}-muted.{ext}")
            } else {
                format!("{n}.{ext}")
            };
            out.push_str(&format!("#EXTINF:{:.3},\n{name}\n", vod.seg_duration));
        }
        if listed >= vod.segments {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        if let Some(v) = inner.vods.values_mut().find(|v| v.id == id) {
            // Each look lists more, as a VOD being processed does.
            v.listed = v.segments;
        }
        return out.into_response();
    }
    if vod.fmp4 && file == "init-0.mp4" {
        count(&mut inner, "vod-init");
        return Bytes::from(vod_init_bytes(&id)).into_response();
    }
    count(&mut inner, "vod-segment");
    let stem = file
        .strip_suffix(if vod.fmp4 { ".mp4" } else { ".ts" })
        .unwrap_or("");
    if stem.ends_with("-unmuted") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let (n, muted) = match stem.strip_suffix("-muted") {
        Some(n) => (n, true),
        None => (stem, false),
    };
    match n.parse::<u64>() {
        Ok(n) if n < vod.segments => Bytes::from(vod_segment_bytes(&id, n, muted)).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
