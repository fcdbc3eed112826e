//! Twitch's playback path, as the web player uses it: a playback access token from GQL (the
//! `PlaybackAccessToken` persisted query), then the usher master playlist signed with it. Used
//! by the recorder to start and refresh recordings, and by the watcher to probe liveness
//! without credentials (usher answers 404 while a channel is offline).
//!
//! The client id, the query hash and the codecs are config values: Twitch changes them. The
//! requests look like the web player's: a browser User-Agent and a stable device id on GQL,
//! and usher asked with the v2 endpoint's parameters, `include_unavailable=true` among them
//! (so the master says what it withholds: `com.amazon.ivs.unavailable-media`).

use std::fmt;
use std::time::Duration;

use recbot_commands::Login;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::device::DeviceId;
use super::viewer::{ViewerCredential, ViewerLogin};

/// Browser user agent: GQL refuses some non-browser agents (streamlink#6574).
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
const PLAYER_ORIGIN: &str = "https://player.twitch.tv";
/// Biggest GQL answer or master playlist read (bytes); Twitch's are a few KiB.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// GQL error messages that mean "no" rather than "not now" (compared in lower case). Anything
/// else — Twitch's everyday `service timeout`, `service error`, `service unavailable` — is a
/// passing failure worth retrying.
const GQL_REFUSALS: &[&str] = &[
    "integrity",
    "restricted",
    "unauthorized",
    "forbidden",
    "banned",
    "persistedquerynotfound",
    "not allowed",
];

/// Used when Twitch no longer knows the configured persisted-query hash.
const INLINE_QUERY: &str = "query PlaybackAccessToken_Template($login: String!, $isLive: Boolean!, $vodID: ID!, $isVod: Boolean!, $playerType: String!, $platform: String!) { streamPlaybackAccessToken(channelName: $login, params: {platform: $platform, playerBackend: \"mediaplayer\", playerType: $playerType}) @include(if: $isLive) { value signature __typename } videoPlaybackAccessToken(id: $vodID, params: {platform: $platform, playerBackend: \"mediaplayer\", playerType: $playerType}) @include(if: $isVod) { value signature __typename } }";

/// Where and how to reach the playback path.
#[derive(Debug, Clone)]
pub struct Playback {
    http: reqwest::Client,
    gql_url: String,
    gql_client_id: String,
    gql_query_hash: String,
    usher_url: String,
    /// `av1,h265,h264`, from `[twitch] supported_codecs`.
    supported_codecs: String,
    device: DeviceId,
    /// The viewer login sent with token requests (`auth twitch-viewer`); anonymous without.
    viewer: ViewerLogin,
}

/// A signed playback token. Short-lived and bound to one channel; not shown in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    value: String,
    signature: String,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// What usher said about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// Live: the master playlist and the address it was fetched from (variant URIs in it may
    /// be relative to that address).
    Live { url: Url, playlist: String },
    /// Not live (or no such channel).
    Offline,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("cannot reach {service}: {source}")]
    Transport {
        service: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} answered HTTP {status}: {detail}")]
    Status {
        service: &'static str,
        status: u16,
        detail: String,
    },
    /// A GQL error that refuses the request (integrity check, restricted, unknown query).
    #[error("Twitch GQL refused the playback token request: {0}")]
    Gql(String),
    /// A GQL error that is a passing failure (`service timeout`), or an unreadable answer.
    #[error("Twitch GQL failed to answer: {0}")]
    GqlFailed(String),
    #[error("the stream is restricted (subscriber-only or geo-blocked): {0}")]
    Restricted(String),
    #[error("{service} sent an answer larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { service: &'static str },
}

impl PlaybackError {
    /// Worth retrying later (network trouble, Twitch 5xx, GQL's passing errors), as opposed to
    /// a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            PlaybackError::Transport { .. }
            | PlaybackError::GqlFailed(_)
            | PlaybackError::TooLarge { .. } => true,
            PlaybackError::Status { status, .. } => *status >= 500 || *status == 429,
            PlaybackError::Gql(_) | PlaybackError::Restricted(_) => false,
        }
    }

    /// GQL refused the viewer login itself (`401`, "The Authorization token is invalid"), as
    /// opposed to the stream or the request.
    pub fn refuses_login(&self) -> bool {
        match self {
            PlaybackError::Status { status, .. } => *status == 401,
            PlaybackError::Gql(m) => {
                let m = m.to_ascii_lowercase();
                m.contains("unauthorized") || m.contains("token is invalid")
            }
            _ => false,
        }
    }

    /// Sorts a GQL `errors[].message` into a refusal or a passing failure.
    fn from_gql(message: String) -> PlaybackError {
        let lower = message.to_ascii_lowercase();
        if GQL_REFUSALS.iter().any(|r| lower.contains(r)) {
            PlaybackError::Gql(message)
        } else {
            PlaybackError::GqlFailed(message)
        }
    }
}

#[derive(Deserialize)]
struct GqlResponse {
    data: Option<serde_json::Value>,
    #[serde(default)]
    errors: Vec<GqlError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GqlData {
    stream_playback_access_token: Option<GqlToken>,
    video_playback_access_token: Option<GqlToken>,
}

/// What usher said about a VOD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VodMaster {
    /// Its master playlist, and the address it came from (without the signed query).
    Ready { url: Url, playlist: String },
    /// GQL has no token for it yet (a fresh VOD) or usher does not know it yet.
    NotYet,
    /// Usher answered 404: deleted (or never there).
    Gone,
}

#[derive(Deserialize)]
struct GqlToken {
    value: String,
    signature: String,
}

#[derive(Deserialize)]
struct GqlError {
    message: String,
}

impl Playback {
    pub fn new(http: reqwest::Client, twitch: &crate::config::Twitch) -> Playback {
        Playback {
            http,
            gql_url: twitch.gql_url.clone(),
            gql_client_id: twitch.gql_client_id.clone(),
            gql_query_hash: twitch.gql_query_hash.clone(),
            usher_url: twitch.usher_url.trim_end_matches('/').to_string(),
            supported_codecs: twitch.supported_codecs_param(),
            device: DeviceId::default(),
            viewer: ViewerLogin::anonymous(),
        }
    }

    /// Whose viewer login token requests go out as now (`None`: logged out).
    pub fn viewer_name(&self) -> Option<String> {
        self.viewer.current().map(|c| c.login.clone())
    }

    /// Asks for playback tokens as this viewer login whenever it has a credential.
    pub fn with_viewer(mut self, viewer: ViewerLogin) -> Playback {
        self.viewer = viewer;
        self
    }

    /// Keeps the GQL device id in `file` (`<data_dir>/twitch-device-id`), the same on every
    /// start; without it, each process makes up its own.
    pub fn with_device_file(mut self, file: std::path::PathBuf) -> Playback {
        self.device = DeviceId::kept_in(file);
        self
    }

    /// A playback token for `login`'s live stream; `None` when Twitch has none to give (the
    /// channel is offline or does not exist).
    pub async fn access_token(&self, login: &Login) -> Result<Option<AccessToken>, PlaybackError> {
        let variables = json!({
            "isLive": true, "login": login.as_str(), "isVod": false, "vodID": "",
            "playerType": "embed", "platform": "site",
        });
        self.token_for(variables).await
    }

    /// A playback token for VOD `vod_id` (the same query, `isVod`); `None` when Twitch has
    /// none to give yet (a fresh VOD can briefly have none) or the VOD does not exist.
    pub async fn vod_access_token(
        &self,
        vod_id: &str,
    ) -> Result<Option<AccessToken>, PlaybackError> {
        let variables = json!({
            "isLive": false, "login": "", "isVod": true, "vodID": vod_id,
            "playerType": "embed", "platform": "site",
        });
        self.token_for(variables).await
    }

    /// A token as the viewer login when there is one (renditions above 1080p, live and VOD),
    /// else logged out. A refused login must not stop the recording: it is withdrawn and the
    /// token asked for logged out.
    async fn token_for(
        &self,
        variables: serde_json::Value,
    ) -> Result<Option<AccessToken>, PlaybackError> {
        if let Some(credential) = self.viewer.current() {
            match self.token_as(&variables, Some(&credential)).await {
                Err(e) if e.refuses_login() => self.viewer.refused(&credential),
                other => return other,
            }
        }
        self.token_as(&variables, None).await
    }

    /// The persisted query with `variables`, and the inline query when Twitch no longer knows
    /// the configured hash; as `viewer` (its token with its own client id), or logged out.
    async fn token_as(
        &self,
        variables: &serde_json::Value,
        viewer: Option<&ViewerCredential>,
    ) -> Result<Option<AccessToken>, PlaybackError> {
        let persisted = json!({
            "operationName": "PlaybackAccessToken",
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": self.gql_query_hash}},
            "variables": variables,
        });
        match self.gql(&persisted, viewer).await {
            Err(PlaybackError::Gql(message)) if message.contains("PersistedQueryNotFound") => {
                let inline = json!({
                    "operationName": "PlaybackAccessToken_Template",
                    "query": INLINE_QUERY,
                    "variables": variables,
                });
                self.gql(&inline, viewer).await
            }
            other => other,
        }
    }

    async fn gql(
        &self,
        body: &serde_json::Value,
        viewer: Option<&ViewerCredential>,
    ) -> Result<Option<AccessToken>, PlaybackError> {
        let data = self.gql_data(body, viewer).await?;
        let data: Option<GqlData> = data.and_then(|d| serde_json::from_value(d).ok());
        Ok(data
            .and_then(|d| {
                d.stream_playback_access_token
                    .or(d.video_playback_access_token)
            })
            .map(|t| AccessToken {
                value: t.value,
                signature: t.signature,
            }))
    }

    /// Posts `body` to GQL (with the player's headers, as `viewer` or logged out); its
    /// `data`, or its first error.
    pub(super) async fn gql_data(
        &self,
        body: &serde_json::Value,
        viewer: Option<&ViewerCredential>,
    ) -> Result<Option<serde_json::Value>, PlaybackError> {
        let mut request = self
            .http
            .post(&self.gql_url)
            .header("X-Device-Id", self.device.get().await)
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .json(body);
        // Twitch takes a token only with the client id it was issued to.
        request = match viewer {
            Some(v) => request
                .header("Client-ID", &v.client_id)
                .header("Authorization", format!("OAuth {}", v.token.expose())),
            None => request.header("Client-ID", &self.gql_client_id),
        };
        let (status, text) = fetch_text(request, "Twitch GQL").await?;
        if !status.is_success() {
            return Err(PlaybackError::Status {
                service: "Twitch GQL",
                status: status.as_u16(),
                detail: excerpt(&text),
            });
        }
        // An unreadable answer is usually a proxy's or load balancer's error page: passing.
        let parsed: GqlResponse = serde_json::from_str(&text)
            .map_err(|e| PlaybackError::GqlFailed(format!("unreadable answer ({e})")))?;
        if let Some(error) = parsed.errors.first() {
            return Err(PlaybackError::from_gql(error.message.clone()));
        }
        Ok(parsed.data)
    }

    /// The usher address of `login`'s master playlist, signed with `token`.
    pub fn master_url(&self, login: &Login, token: &AccessToken) -> Url {
        let url = Url::parse(&format!(
            "{}/api/v2/channel/hls/{}.m3u8",
            self.usher_url,
            login.as_str()
        ))
        .expect("usher_url is validated as an http(s) address and logins are [a-z0-9_]");
        let mut url = self.signed(url, token);
        // The live endpoint's further parameters as the web player sends them.
        url.query_pairs_mut()
            .append_pair("reassignments_supported", "true")
            .append_pair("transcode_mode", "cbr_v1")
            .append_pair("cdm", "wv")
            .append_pair("fast_bread", "true");
        url
    }

    /// The usher address of VOD `vod_id`'s master playlist (`/vod/v2/{id}.m3u8`), signed
    /// with `token`.
    pub fn vod_master_url(&self, vod_id: &str, token: &AccessToken) -> Url {
        let url = Url::parse(&format!("{}/vod/v2/{vod_id}.m3u8", self.usher_url))
            .expect("usher_url is validated and VOD ids are checked to be digits");
        self.signed(url, token)
    }

    /// `url` with the v2 endpoints' parameters the web player sends for live and VOD alike
    /// (notes: twitch-hls-client, streamlink, TwitchDownloader) and `token`'s signature.
    /// `include_unavailable` makes usher list what it withholds.
    fn signed(&self, mut url: Url, token: &AccessToken) -> Url {
        url.query_pairs_mut()
            .append_pair("platform", "web")
            .append_pair("p", &rand::random_range(0..10_000_000u32).to_string())
            .append_pair("play_session_id", &play_session_id())
            .append_pair("player_backend", "mediaplayer")
            .append_pair("allow_source", "true")
            .append_pair("allow_audio_only", "true")
            .append_pair("playlist_include_framerate", "true")
            .append_pair("include_unavailable", "true")
            .append_pair("supported_codecs", &self.supported_codecs)
            .append_pair("sig", &token.signature)
            .append_pair("token", &token.value);
        url
    }

    /// VOD `vod_id`'s master playlist: a token, then usher. A 403 (sub-only:
    /// `vod_manifest_restricted`, `unauthorized_entitlements`) is `Restricted`.
    pub async fn vod_master_playlist(&self, vod_id: &str) -> Result<VodMaster, PlaybackError> {
        let Some(token) = self.vod_access_token(vod_id).await? else {
            return Ok(VodMaster::NotYet);
        };
        let url = self.vod_master_url(vod_id, &token);
        Ok(match self.usher_master(url).await? {
            Some((url, playlist)) => VodMaster::Ready { url, playlist },
            None => VodMaster::Gone,
        })
    }

    /// Resolves `login` to its master playlist: a fresh token, then usher. `Offline` when
    /// Twitch has no token for it or usher answers 404.
    pub async fn master_playlist(&self, login: &Login) -> Result<Master, PlaybackError> {
        let Some(token) = self.access_token(login).await? else {
            return Ok(Master::Offline);
        };
        let url = self.master_url(login, &token);
        Ok(match self.usher_master(url).await? {
            Some((url, playlist)) => Master::Live { url, playlist },
            None => Master::Offline,
        })
    }

    /// GETs a signed usher master playlist: the playlist and its address without the signed
    /// query, `None` on 404 (offline, or no such VOD); 403 is `Restricted` (geo-blocked,
    /// subscriber-only).
    async fn usher_master(&self, url: Url) -> Result<Option<(Url, String)>, PlaybackError> {
        let request = self
            .http
            .get(url.clone())
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header(reqwest::header::REFERER, PLAYER_ORIGIN)
            .header(reqwest::header::ORIGIN, PLAYER_ORIGIN)
            .timeout(Duration::from_secs(20));
        let (status, text) = fetch_text(request, "Twitch usher").await?;
        match status {
            s if s.is_success() => Ok(Some((redact_query(url), text))),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::FORBIDDEN => Err(PlaybackError::Restricted(usher_error(&text))),
            s => Err(PlaybackError::Status {
                service: "Twitch usher",
                status: s.as_u16(),
                detail: usher_error(&text),
            }),
        }
    }
}

/// A new playback session id per master request, as the web player makes one per playback.
fn play_session_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric
        .sample_string(&mut rand::rng(), 32)
        .to_ascii_lowercase()
}

/// Sends `request` and reads the whole (small: JSON or a master playlist) answer, at most
/// [`MAX_ANSWER_BYTES`].
async fn fetch_text(
    request: reqwest::RequestBuilder,
    service: &'static str,
) -> Result<(StatusCode, String), PlaybackError> {
    // reqwest's errors name the URL, and usher's carries the signed token (`sig=…&token=…`):
    // it would end up in logs, status lines and chat.
    let transport = |source: reqwest::Error| PlaybackError::Transport {
        service,
        source: source.without_url(),
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(PlaybackError::TooLarge { service });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(PlaybackError::TooLarge { service });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The master playlist's address without its signed query (variant URIs on Twitch are
/// absolute; the base only matters for other HLS servers and for messages).
fn redact_query(mut url: Url) -> Url {
    url.set_query(None);
    url
}

/// Usher errors are `[{"type":"error","error":"…","error_code":"…"}]`.
fn usher_error(body: &str) -> String {
    #[derive(Deserialize)]
    struct UsherError {
        error: Option<String>,
        error_code: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Vec<UsherError>>(body) {
        Ok(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| {
                let code = e
                    .error_code
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                format!("{} {}", e.error.clone().unwrap_or_default(), code)
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => excerpt(body),
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn playback(server: &MockServer) -> Playback {
        let twitch = crate::config::Twitch {
            gql_url: format!("{}/gql", server.uri()),
            usher_url: server.uri(),
            ..Default::default()
        };
        Playback::new(reqwest::Client::new(), &twitch)
    }

    fn login(s: &str) -> Login {
        Login::parse(s).unwrap()
    }

    fn token_body(value: &str) -> serde_json::Value {
        json!({"data": {"streamPlaybackAccessToken": {"value": value, "signature": "sig123"}}})
    }

    #[tokio::test]
    async fn live_channel_resolves_to_its_master_playlist() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/gql"))
            .and(header("Client-ID", "kimne78kx3ncx6brgo4mv6wki5h1ko"))
            .and(body_partial_json(json!({
                "operationName": "PlaybackAccessToken",
                "variables": {"login": "foo", "isLive": true, "playerType": "embed"},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("{\"c\":1}")))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/channel/hls/foo.m3u8"))
            .and(query_param("sig", "sig123"))
            .and(query_param("token", "{\"c\":1}"))
            .and(query_param("allow_source", "true"))
            .and(query_param("supported_codecs", "av1,h265,h264"))
            .and(query_param("include_unavailable", "true"))
            .and(query_param("player_backend", "mediaplayer"))
            .and(query_param("playlist_include_framerate", "true"))
            .and(header("Referer", "https://player.twitch.tv"))
            .respond_with(ResponseTemplate::new(200).set_body_string("#EXTM3U\n"))
            .expect(1)
            .mount(&server)
            .await;
        match playback(&server)
            .master_playlist(&login("foo"))
            .await
            .unwrap()
        {
            Master::Live { url, playlist } => {
                assert_eq!(playlist, "#EXTM3U\n");
                assert!(url.query().is_none(), "signed query kept: {url}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn gql_carries_a_browser_agent_and_the_kept_device_id_and_usher_the_codecs() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/gql"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("v")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/channel/hls/foo.m3u8"))
            .respond_with(ResponseTemplate::new(200).set_body_string("#EXTM3U\n"))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(crate::twitch::device::FILE_NAME);
        let twitch = crate::config::Twitch {
            gql_url: format!("{}/gql", server.uri()),
            usher_url: server.uri(),
            supported_codecs: vec![crate::rendition::Codec::H265, crate::rendition::Codec::H264],
            ..Default::default()
        };
        // Two instances (the recorder's and the watcher's) on the same file.
        for _ in 0..2 {
            let p = Playback::new(reqwest::Client::new(), &twitch).with_device_file(file.clone());
            p.master_playlist(&login("foo")).await.unwrap();
            p.master_playlist(&login("foo")).await.unwrap();
        }
        let kept = std::fs::read_to_string(&file).unwrap();
        assert_eq!(kept.len(), 32, "{kept}");
        let requests = server.received_requests().await.unwrap();
        let gql: Vec<_> = requests
            .iter()
            .filter(|r| r.method.as_str() == "POST")
            .collect();
        assert_eq!(gql.len(), 4);
        for r in gql {
            assert_eq!(
                r.headers.get("x-device-id").unwrap().to_str().unwrap(),
                kept
            );
            let agent = r.headers.get("user-agent").unwrap().to_str().unwrap();
            assert!(agent.starts_with("Mozilla/5.0"), "{agent}");
        }
        let mut sessions = std::collections::HashSet::new();
        for r in requests.iter().filter(|r| r.method.as_str() == "GET") {
            let q: std::collections::HashMap<_, _> = r.url.query_pairs().into_owned().collect();
            assert_eq!(q["supported_codecs"], "h265,h264");
            assert_eq!(q["include_unavailable"], "true");
            assert_eq!(q["platform"], "web");
            assert_eq!(q["play_session_id"].len(), 32);
            sessions.insert(q["play_session_id"].clone());
        }
        assert_eq!(
            sessions.len(),
            4,
            "a new playback session per master request"
        );
    }

    #[tokio::test]
    async fn offline_when_no_token_or_usher_404() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"variables": {"login": "gone"}})))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"data": {"streamPlaybackAccessToken": null}})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"variables": {"login": "idle"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("v")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/channel/hls/idle.m3u8"))
            .respond_with(ResponseTemplate::new(404).set_body_string(
                r#"[{"url":"x","error":"twirp error not_found: transcode does not exist","error_code":"transcode_does_not_exist","type":"error"}]"#,
            ))
            .mount(&server)
            .await;
        let p = playback(&server);
        assert_eq!(
            p.master_playlist(&login("gone")).await.unwrap(),
            Master::Offline
        );
        assert_eq!(
            p.master_playlist(&login("idle")).await.unwrap(),
            Master::Offline
        );
    }

    #[tokio::test]
    async fn unknown_query_hash_falls_back_to_the_inline_query() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"operationName": "PlaybackAccessToken"}),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"errors": [{"message": "PersistedQueryNotFound"}]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"operationName": "PlaybackAccessToken_Template"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("v2")))
            .expect(1)
            .mount(&server)
            .await;
        let token = playback(&server)
            .access_token(&login("foo"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.value, "v2");
        assert!(!format!("{token:?}").contains("v2"));
    }

    #[tokio::test]
    async fn refusals_and_failures_are_told_apart() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"variables": {"login": "broken"}})))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"errors": [{"message": "service timeout"}]})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"variables": {"login": "subs"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("v")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/channel/hls/subs.m3u8"))
            .respond_with(ResponseTemplate::new(403).set_body_string(
                r#"[{"error":"Content Restricted In Region","error_code":"content_geoblocked","type":"error"}]"#,
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"variables": {"login": "down"}})))
            .respond_with(ResponseTemplate::new(503).set_body_string("upstream"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"variables": {"login": "checked"}}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"errors": [{"message": "failed integrity check", "path": []}]}),
            ))
            .mount(&server)
            .await;
        let p = playback(&server);
        // Twitch's everyday GQL hiccup is worth retrying, not a refusal.
        let err = p.master_playlist(&login("broken")).await.unwrap_err();
        assert!(
            matches!(err, PlaybackError::GqlFailed(ref m) if m == "service timeout"),
            "{err}"
        );
        assert!(err.is_transient());
        let err = p.master_playlist(&login("checked")).await.unwrap_err();
        assert!(matches!(err, PlaybackError::Gql(_)), "{err}");
        assert!(!err.is_transient());
        let err = p.master_playlist(&login("subs")).await.unwrap_err();
        assert!(err.to_string().contains("content_geoblocked"), "{err}");
        let err = p.master_playlist(&login("down")).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn transport_errors_do_not_reveal_the_signed_usher_address() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("secretvalue")))
            .mount(&server)
            .await;
        // Usher on a port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let usher = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let twitch = crate::config::Twitch {
            gql_url: format!("{}/gql", server.uri()),
            usher_url: usher,
            ..Default::default()
        };
        let p = Playback::new(reqwest::Client::new(), &twitch);
        let err = p.master_playlist(&login("foo")).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        for text in [err.to_string(), format!("{err:?}"), format!("{err:#}")] {
            assert!(
                !text.contains("secretvalue") && !text.contains("sig123") && !text.contains("sig="),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_answers_are_refused_not_read_whole() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_body("v")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_string("#".repeat(MAX_ANSWER_BYTES + 1)),
            )
            .mount(&server)
            .await;
        let err = playback(&server)
            .master_playlist(&login("foo"))
            .await
            .unwrap_err();
        assert!(matches!(err, PlaybackError::TooLarge { .. }), "{err}");
    }
}
