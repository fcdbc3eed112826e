//! Shared pieces of the integration tests: a running core (the one test [`Bot`], in `bot.rs`),
//! recording parts on disk, and local fakes of YouTube's upload endpoint, Google's token
//! endpoint and Twitch's id endpoints.

#![allow(dead_code)]

pub mod bilibili;
pub mod binary;
mod bot;
pub mod browser;
pub mod chzzk;
pub mod media;
pub mod nats;
pub mod origin;
/// The test PostgreSQL server, the library's own harness file shared as it is.
#[path = "../../src/core/store/postgres/testing.rs"]
pub mod postgres;
pub mod smtp;
pub mod tls;
pub mod twitch;
pub mod twitch_irc;
pub mod youtube_state;
pub mod youtube_tcp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{TimeZone, Utc};
use recbot::archive::sidecar::{Chapter, Sidecar};
use recbot::config::Config;
use recbot::core::store::{Store, StoredToken};
use recbot::event::EventKind;
use recbot::secret::Secret;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[allow(unused_imports)] // `Ask` is for the tests that talk to a core handle directly.
pub use bot::{is, Ask, Bot};
use youtube_state::{State, Step};

pub const CLIENT_ID: &str = "fake-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-client-secret-value";
pub const TWITCH_CLIENT_ID: &str = "twitchclientid123";
pub const TWITCH_CLIENT_SECRET: &str = "twitch-client-secret-value";

/// A config for `dir` with fast retries, plus `extra` TOML lines per section.
pub fn config(dir: &Path, youtube: &str, twitch: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n\
         [youtube]\nclient_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\n\
         chunk_size_mib = 1\nretry_initial_ms = 20\nretry_max_secs = 1\n{youtube}\n\
         [twitch]\n{twitch}\n",
        dir.to_str().unwrap()
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

/// The next `AuthRequired`: (service, reason, consent link).
pub async fn auth_required(bot: &mut Bot) -> (String, String, Option<String>) {
    match bot.wait_for("AuthRequired", is("AuthRequired")).await.kind {
        EventKind::AuthRequired {
            service,
            reason,
            url,
        } => (service, reason, url),
        _ => unreachable!(),
    }
}

/// The token stored for `service`.
pub async fn stored_token(config: &Config, service: &str) -> StoredToken {
    let store = open_store(config).await;
    let token = store.token(service).await.unwrap().expect("a stored token");
    store.close().await;
    token
}

/// Stores a token before the core starts.
pub async fn store_token(dir: &Path, service: &str, access: &str, refresh: &str, expires_in: i64) {
    let store = Store::open(&dir.join("recbot.sqlite")).await.unwrap();
    store
        .put_token(
            service,
            &StoredToken {
                access_token: Secret::new(access),
                refresh_token: Some(Secret::new(refresh)),
                expires_at: Some(Utc::now() + chrono::Duration::seconds(expires_in)),
                scopes: "scope".into(),
                client_id: None,
                account: None,
            },
        )
        .await
        .unwrap();
    store.close().await;
}

/// The state database `config` names (SQLite or PostgreSQL).
pub async fn open_store(config: &Config) -> Store {
    Store::open_config(&config.storage).await.unwrap()
}

/// A finished recording part on disk with its sidecar.
#[derive(Debug, Clone)]
pub struct Part {
    pub login: String,
    pub file: PathBuf,
    pub sidecar: PathBuf,
    pub bytes: u64,
}

/// The byte at `offset` of every test recording: the fake can check what arrives.
pub fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

pub async fn write_part(config: &Config, login: &str, name: &str, bytes: u64) -> Part {
    let dir = config.storage.recordings_dir().join(login);
    tokio::fs::create_dir_all(&dir).await.unwrap();
    let file = dir.join(format!("{name}.ts"));
    let data: Vec<u8> = (0..bytes).map(pattern).collect();
    tokio::fs::write(&file, data).await.unwrap();
    let started = Utc.with_ymd_and_hms(2026, 11, 21, 18, 5, 0).unwrap();
    let chapter = |offset: f64, title: &str, game: &str| Chapter {
        at: started + chrono::Duration::seconds(offset as i64),
        offset_secs: offset,
        title: title.into(),
        game: Some(game.into()),
    };
    let sidecar = Sidecar {
        login: login.into(),
        display_name: Some(format!("{}TV", login.to_uppercase())),
        source: "twitch".into(),
        stream_id: Some("123".into()),
        session: 1,
        part: 1,
        file: format!("{name}.ts"),
        quality: "1080p60".into(),
        started,
        ended: started + chrono::Duration::hours(2),
        duration_secs: 7200.0,
        segments: 3600,
        bytes,
        chapters: vec![
            chapter(0.0, "Speedrun <day 3>", "Celeste"),
            chapter(1800.0, "Speedrun <day 3>", "Chess"),
            chapter(4000.0, "Q&A", "Just Chatting"),
        ],
        ..Default::default()
    };
    let sidecar_path = Sidecar::path_for(&file);
    sidecar.write(&sidecar_path).await.unwrap();
    Part {
        login: login.into(),
        file,
        sidecar: sidecar_path,
        bytes,
    }
}

/// YouTube's upload endpoint on wiremock, driven by [`State`].
pub struct YoutubeMock {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
    /// With [`YoutubeMock::start_media`]: the chunks' bytes as they arrived.
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl YoutubeMock {
    /// Every chunk is checked against [`pattern`] (the files of [`write_part`]).
    pub async fn start(token: &str) -> YoutubeMock {
        Self::started(token, true).await
    }

    /// For real media files: chunks are kept in `received` instead of checked.
    #[allow(dead_code)]
    pub async fn start_media(token: &str) -> YoutubeMock {
        Self::started(token, false).await
    }

    async fn started(token: &str, checks_pattern: bool) -> YoutubeMock {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::new(&server.uri(), token)));
        let received = Arc::new(Mutex::new(Vec::new()));
        for path in [youtube_state::UPLOAD_PATH, youtube_state::VIDEOS_PATH] {
            let responder = UploadResponder {
                state: state.clone(),
                checks_pattern,
                received: received.clone(),
            };
            Mock::given(wiremock::matchers::path(path))
                .respond_with(responder)
                .mount(&server)
                .await;
        }
        YoutubeMock {
            server,
            state,
            received,
        }
    }

    pub fn upload_url(&self) -> String {
        format!("{}{}", self.server.uri(), youtube_state::UPLOAD_PATH)
    }

    /// `[youtube] api_url` for this fake (`videos.list`).
    pub fn api_url(&self) -> String {
        format!("{}/youtube/v3", self.server.uri())
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

struct UploadResponder {
    state: Arc<Mutex<State>>,
    checks_pattern: bool,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Respond for UploadResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let target = match req.url.query() {
            Some(q) => format!("{}?{q}", req.url.path()),
            None => req.url.path().to_string(),
        };
        let mut state = self.state.lock().unwrap();
        let answer = match state.request(req.method.as_str(), &target, &header, &req.body) {
            Step::Answer(answer) => answer,
            Step::ReadChunk {
                session,
                start,
                len,
            } => {
                assert_eq!(req.body.len() as u64, len);
                if !self.checks_pattern {
                    self.received.lock().unwrap().extend_from_slice(&req.body);
                }
                for (i, b) in req.body.iter().enumerate().filter(|_| self.checks_pattern) {
                    assert_eq!(
                        *b,
                        pattern(start + i as u64),
                        "byte {} differs",
                        start + i as u64
                    );
                }
                state.chunk_received(session, start, len, &header)
            }
        };
        let mut template = ResponseTemplate::new(answer.status).set_delay(answer.delay);
        for (k, v) in answer.headers {
            template = template.insert_header(k, v.as_str());
        }
        template.set_body_string(answer.body)
    }
}

/// Google's token endpoint: one valid authorization code, one valid refresh token.
pub struct GoogleFake {
    pub server: MockServer,
    pub state: Arc<Mutex<GoogleState>>,
}

#[derive(Debug, Default)]
pub struct GoogleState {
    pub code: String,
    pub refresh_token: String,
    pub revoked: bool,
    /// Access tokens handed out: `ya29.fresh1`, `ya29.fresh2`, …
    pub issued: u32,
    /// Every form received.
    pub forms: Vec<Vec<(String, String)>>,
}

impl GoogleFake {
    pub async fn start(code: &str, refresh_token: &str) -> GoogleFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(GoogleState {
            code: code.into(),
            refresh_token: refresh_token.into(),
            ..GoogleState::default()
        }));
        Mock::given(wiremock::matchers::path("/token"))
            .respond_with(GoogleResponder(state.clone()))
            .mount(&server)
            .await;
        GoogleFake { server, state }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.uri())
    }

    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/auth", self.server.uri())
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, GoogleState> {
        self.state.lock().unwrap()
    }
}

pub fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

struct GoogleResponder(Arc<Mutex<GoogleState>>);

impl Respond for GoogleResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let form = form(&req.body);
        let mut s = self.0.lock().unwrap();
        s.forms.push(form.clone());
        let refused = |description: &str| {
            ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_grant", "error_description": description
            }))
        };
        if field(&form, "client_id") != Some(CLIENT_ID)
            || field(&form, "client_secret") != Some(CLIENT_SECRET)
        {
            return ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": "invalid_client"}));
        }
        match field(&form, "grant_type") {
            Some("authorization_code") if field(&form, "code") == Some(s.code.as_str()) => {
                s.code = "used".into();
                s.issued += 1;
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": format!("ya29.fresh{}", s.issued),
                    "refresh_token": s.refresh_token,
                    "expires_in": 3599,
                    "token_type": "Bearer",
                    "scope": "https://www.googleapis.com/auth/youtube.upload",
                }))
            }
            Some("authorization_code") => refused("Bad Request"),
            Some("refresh_token")
                if !s.revoked
                    && field(&form, "refresh_token") == Some(s.refresh_token.as_str()) =>
            {
                s.issued += 1;
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": format!("ya29.fresh{}", s.issued),
                    "expires_in": 3599,
                    "token_type": "Bearer",
                }))
            }
            Some("refresh_token") => refused("Token has been expired or revoked."),
            _ => ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"error": "unsupported_grant_type"})),
        }
    }
}

/// Every log line of this test binary, as the service would write them (recbot's filter at
/// `trace`, dependency crates capped as in production).
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(recbot::logging::filter(Some("trace")))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish()
            .try_init()
            .expect("the only subscriber");
        logs
    })
    .clone()
}

/// Panics when any of `secrets` appears in the captured logs.
pub fn assert_not_logged(secrets: &[&str]) {
    let logs = capture_logs();
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!text.is_empty(), "nothing was logged");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} was logged:\n{text}");
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Byte-exact comparison that reports where the contents part instead of printing them.
#[track_caller]
pub fn same_bytes(actual: &[u8], want: &[u8]) {
    if actual != want {
        let at = actual
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(want.len()));
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.min(b.len())..(at + 24).min(b.len())]).into_owned()
        };
        panic!(
            "contents differ: {} bytes vs {} expected, first difference at {at}: {:?} vs {:?}",
            actual.len(),
            want.len(),
            show(actual),
            show(want)
        );
    }
}
