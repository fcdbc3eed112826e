//! Helix with the app token: `GET /streams` for up to 100 logins per request here, and
//! [`Helix::call`] for the other endpoints (`eventsub/`'s conduits and subscriptions), honouring
//! Twitch's rate-limit headers: when `Ratelimit-Remaining` reaches 0 the next requests wait for
//! `Ratelimit-Reset`; a 429 waits for the reset and retries (bounded). Requests for different
//! batches may run at the same time (`&self`); they share the token and the rate-limit state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use reqwest::StatusCode;
use serde::Deserialize;
use tracing::{debug, warn};

use super::app_token::{AppToken, AppTokenError};

/// Helix accepts at most this many `user_login` parameters per request.
pub const MAX_LOGINS_PER_REQUEST: usize = 100;
/// Longest wait for a rate-limit reset we accept from a header (it is a minute-long bucket).
const MAX_RESET_WAIT: Duration = Duration::from_secs(65);
/// 429s in a row before the request is given up (the next poll cycle tries again).
const MAX_429_RETRIES: u32 = 3;
/// The largest Helix answer read: a page of 100 streams, users or subscriptions is tens of
/// kilobytes; anything far beyond is not Helix.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// One live stream as Helix describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HelixStream {
    pub id: String,
    pub user_login: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub game_name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub viewer_count: u64,
    pub started_at: Option<DateTime<Utc>>,
    /// `live` for live streams (reruns and premieres are gone from Helix, but check anyway).
    #[serde(default, rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
struct StreamsResponse {
    data: Vec<HelixStream>,
}

#[derive(Deserialize)]
struct DataResponse<T> {
    data: Vec<T>,
}

/// One archived broadcast (`GET /videos?type=archive`), as far as the VOD fill needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HelixVideo {
    pub id: String,
    /// The broadcast it archives (`/streams` `id`); `null` for uploads and highlights.
    #[serde(default)]
    pub stream_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct HelixUser {
    id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HelixError {
    #[error(transparent)]
    Token(#[from] AppTokenError),
    #[error("cannot reach Helix: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Helix answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("Helix kept answering 429 (rate limited)")]
    RateLimited,
    #[error("Helix sent more than {MAX_BODY} bytes")]
    TooLarge,
    #[error("Helix sent an answer recbot cannot read: {0}")]
    Malformed(String),
}

/// A Helix answer: its status and its body (at most [`MAX_BODY`] bytes).
#[derive(Debug)]
pub struct HelixAnswer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl HelixAnswer {
    /// The answer itself when it is a success, else the error naming its status.
    pub fn ok(self) -> Result<HelixAnswer, HelixError> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(HelixError::Status {
            status: self.status.as_u16(),
            detail: self.detail(),
        })
    }

    /// The body as `T`, or a clear error.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HelixError> {
        serde_json::from_slice(&self.body).map_err(|e| HelixError::Malformed(e.to_string()))
    }

    /// The start of the body, for error messages (Helix errors are `{"message": …}`).
    pub fn detail(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect()
    }
}

/// The body of `response`, refused beyond [`MAX_BODY`].
async fn read_bounded(mut response: reqwest::Response) -> Result<bytes::Bytes, HelixError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(HelixError::TooLarge);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HelixError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[derive(Debug)]
pub struct Helix {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    /// Held while a token is fetched, so concurrent requests fetch one, not one each.
    token: tokio::sync::Mutex<AppToken>,
    /// Set when the bucket is empty: no request before this Unix time.
    blocked_until: Mutex<Option<u64>>,
    requests: AtomicU64,
}

impl Helix {
    pub fn new(http: reqwest::Client, helix_url: &str, client_id: &str, token: AppToken) -> Helix {
        Helix {
            http,
            base_url: helix_url.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            token: tokio::sync::Mutex::new(token),
            blocked_until: Mutex::new(None),
            requests: AtomicU64::new(0),
        }
    }

    /// Requests sent so far (for status and tests).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The live streams among `logins` (at most [`MAX_LOGINS_PER_REQUEST`]). Logins that are
    /// not live are simply absent.
    pub async fn streams(&self, logins: &[Login]) -> Result<Vec<HelixStream>, HelixError> {
        assert!(logins.len() <= MAX_LOGINS_PER_REQUEST, "caller batches");
        let mut query: Vec<(&str, &str)> =
            logins.iter().map(|l| ("user_login", l.as_str())).collect();
        query.push(("first", "100"));
        let answer = self
            .call(reqwest::Method::GET, "streams", &query, None)
            .await?;
        Ok(answer.ok()?.json::<StreamsResponse>()?.data)
    }

    /// `login`'s user id (`GET /users`); `None` when there is no such user.
    pub async fn user_id(&self, login: &Login) -> Result<Option<String>, HelixError> {
        let answer = self
            .call(
                reqwest::Method::GET,
                "users",
                &[("login", login.as_str())],
                None,
            )
            .await?;
        let users = answer.ok()?.json::<DataResponse<HelixUser>>()?.data;
        Ok(users.into_iter().next().map(|u| u.id))
    }

    /// The newest archived broadcasts (VODs) of user `user_id`, newest first.
    pub async fn archives(&self, user_id: &str) -> Result<Vec<HelixVideo>, HelixError> {
        let query = [
            ("user_id", user_id),
            ("type", "archive"),
            ("sort", "time"),
            ("first", "20"),
        ];
        let answer = self
            .call(reqwest::Method::GET, "videos", &query, None)
            .await?;
        Ok(answer.ok()?.json::<DataResponse<HelixVideo>>()?.data)
    }

    /// One Helix request to `{helix_url}/{path}` with the app token: a 401 renews the token
    /// once, a 429 waits for `Ratelimit-Reset` (bounded), the body is read up to
    /// [`MAX_BODY`]. Other statuses are the caller's to judge.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<HelixAnswer, HelixError> {
        let url = format!("{}/{path}", self.base_url);
        let mut refreshed = false;
        let mut limited = 0;
        loop {
            self.wait_for_bucket().await;
            let token = self.token.lock().await.get().await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .query(query)
                .header("Client-Id", &self.client_id)
                .bearer_auth(token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await?;
            self.note_rate_limit(response.headers());
            match response.status() {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    debug!("Helix rejected the app token; requesting a new one");
                    self.token.lock().await.invalidate();
                    refreshed = true;
                }
                StatusCode::TOO_MANY_REQUESTS if limited < MAX_429_RETRIES => {
                    limited += 1;
                    let reset = reset_at(response.headers()).unwrap_or_else(|| now_unix() + 1);
                    warn!(
                        reset,
                        "Helix rate limit hit; waiting for the bucket to refill"
                    );
                    self.block_until(Some(reset));
                }
                StatusCode::TOO_MANY_REQUESTS => return Err(HelixError::RateLimited),
                status => {
                    let body = read_bounded(response).await?;
                    return Ok(HelixAnswer { status, body });
                }
            }
        }
    }

    /// Waits until the bucket's reset (to the second, at most [`MAX_RESET_WAIT`]) when it is
    /// empty.
    async fn wait_for_bucket(&self) {
        let until = *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else { return };
        // `until` came from a header: a reset beyond what `SystemTime` holds is no reason to
        // panic (nor to wait for it).
        let wait = match UNIX_EPOCH.checked_add(Duration::from_secs(until)) {
            Some(reset) => reset.duration_since(SystemTime::now()).unwrap_or_default(),
            None => MAX_RESET_WAIT,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(MAX_RESET_WAIT)).await;
        }
        // Others waiting for the same reset find it passed.
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        if *blocked == Some(until) {
            *blocked = None;
        }
    }

    fn block_until(&self, until: Option<u64>) {
        *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    fn note_rate_limit(&self, headers: &reqwest::header::HeaderMap) {
        let remaining = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if remaining == Some(0) {
            self.block_until(reset_at(headers));
        }
    }
}

/// `Ratelimit-Reset` (Unix seconds), at most [`MAX_RESET_WAIT`] from now: the bucket refills
/// every minute, so a reset further away is wrong, and is reported.
fn reset_at(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let reset: u64 = headers
        .get("ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())?;
    let latest = now_unix().saturating_add(MAX_RESET_WAIT.as_secs());
    if reset > latest {
        warn!(
            reset,
            max_wait_secs = MAX_RESET_WAIT.as_secs(),
            "Helix sent a rate-limit reset far in the future; waiting at most the maximum"
        );
        return Some(latest);
    }
    Some(reset)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::secret::Secret;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    async fn helix(server: &MockServer) -> Helix {
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"access_token": "apptoken", "expires_in": 3600}),
                ),
            )
            .mount(server)
            .await;
        let http = reqwest::Client::new();
        let token = AppToken::new(
            http.clone(),
            &format!("{}/oauth2", server.uri()),
            "cid",
            Secret::new("secret"),
        );
        Helix::new(http, &format!("{}/helix", server.uri()), "cid", token)
    }

    fn logins(n: usize) -> Vec<Login> {
        (0..n)
            .map(|i| Login::parse(&format!("user{i}")).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn sends_repeated_user_login_parameters_with_both_credentials() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/helix/streams"))
            .and(header("Client-Id", "cid"))
            .and(header("Authorization", "Bearer apptoken"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "data": [{"id": "4711", "user_login": "user1", "user_name": "User1",
                          "game_name": "Chess", "title": "hi", "viewer_count": 5,
                          "started_at": "2026-11-21T10:00:00Z", "type": "live"}],
                "pagination": {}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let helix = helix(&server).await;
        let live = helix.streams(&logins(100)).await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id, "4711");
        assert_eq!(live[0].user_name, "User1");
        let requests = server.received_requests().await.unwrap();
        let get = requests
            .iter()
            .find(|r| r.method.as_str() == "GET")
            .unwrap();
        let params: Vec<_> = get
            .url
            .query_pairs()
            .filter(|(k, _)| k == "user_login")
            .collect();
        assert_eq!(params.len(), 100);
        assert_eq!(params[0].1, "user0");
    }

    struct FirstUnauthorized(Arc<AtomicUsize>);

    impl Respond for FirstUnauthorized {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                ResponseTemplate::new(401)
            } else {
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": []}))
            }
        }
    }

    #[tokio::test]
    async fn a_401_renews_the_token_once() {
        let server = MockServer::start().await;
        let calls = Arc::new(AtomicUsize::new(0));
        Mock::given(method("GET"))
            .respond_with(FirstUnauthorized(calls.clone()))
            .mount(&server)
            .await;
        let helix = helix(&server).await;
        assert!(helix.streams(&logins(3)).await.unwrap().is_empty());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let token_requests = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/oauth2/token")
            .count();
        assert_eq!(token_requests, 2);
    }

    struct LimitedOnce(Arc<AtomicUsize>);

    impl Respond for LimitedOnce {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            // Two seconds ahead on the Unix clock: more than one second from now.
            let reset = (now_unix() + 2).to_string();
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                ResponseTemplate::new(429)
                    .insert_header("Ratelimit-Limit", "800")
                    .insert_header("Ratelimit-Remaining", "0")
                    .insert_header("Ratelimit-Reset", reset.as_str())
            } else {
                ResponseTemplate::new(200)
                    .insert_header("Ratelimit-Remaining", "799")
                    .set_body_json(serde_json::json!({"data": []}))
            }
        }
    }

    #[tokio::test]
    async fn a_429_waits_for_the_reset_and_retries() {
        let server = MockServer::start().await;
        let calls = Arc::new(AtomicUsize::new(0));
        Mock::given(method("GET"))
            .respond_with(LimitedOnce(calls.clone()))
            .mount(&server)
            .await;
        let helix = helix(&server).await;
        let started = std::time::Instant::now();
        helix.streams(&logins(2)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The reset was more than one and at most two seconds away: it was waited for (not
        // retried at once), and not much longer.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
        assert!(waited <= Duration::from_secs(3), "{waited:?}");
        assert_eq!(helix.requests(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_far_in_the_future_is_clamped_not_a_panic() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("ratelimit-reset", u64::MAX.to_string().parse().unwrap());
        let reset = reset_at(&headers).unwrap();
        assert!(reset <= now_unix() + MAX_RESET_WAIT.as_secs(), "{reset}");
        // A stored reset beyond the calendar waits the maximum, then lets requests go.
        let helix = Helix::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/helix",
            "cid",
            AppToken::new(
                reqwest::Client::new(),
                "http://127.0.0.1:9",
                "cid",
                Secret::new("s"),
            ),
        );
        helix.block_until(Some(u64::MAX));
        let started = tokio::time::Instant::now();
        helix.wait_for_bucket().await;
        assert!(started.elapsed() <= MAX_RESET_WAIT);
        assert_eq!(*helix.blocked_until.lock().unwrap(), None);
    }

    #[tokio::test]
    async fn persistent_429_gives_up_after_bounded_retries() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Ratelimit-Reset", "0"))
            .mount(&server)
            .await;
        let helix = helix(&server).await;
        let err = helix.streams(&logins(1)).await.unwrap_err();
        assert!(matches!(err, HelixError::RateLimited), "{err}");
        assert_eq!(helix.requests(), u64::from(MAX_429_RETRIES) + 1);
    }
}
