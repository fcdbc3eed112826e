use super::*;
use crate::config::Config;
use crate::core::store::Store;
use crate::core::{CoreHandle, Notice, Origin};
use crate::frontend::render::Ask;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use wiremock::matchers::{body_string_contains, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A core whose Twitch and Google OAuth endpoints are `server`, whose replies wait
/// `reply_limit` for remote answers.
struct Running {
    handle: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

async fn start(server: &MockServer, reply_limit: Duration, youtube: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = crate::config::testing::offline(&format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n\
         [twitch]\nclient_id = \"app-id\"\nclient_secret = \"app-secret\"\nid_url = {:?}\n\
         [youtube]\nclient_id = \"yt-id\"\nclient_secret = \"yt-secret\"\n\
         token_url = {:?}\nauth_url = {:?}\n{youtube}\n",
        dir.path().to_str().unwrap(),
        format!("{}/oauth2", server.uri()),
        format!("{}/token", server.uri()),
        format!("{}/auth", server.uri()),
    ));
    let config = Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (mut core, handle) = Core::open(config.clone(), shutdown.clone()).await.unwrap();
    core.auth.reply_limit = reply_limit;
    let notices = handle.subscribe();
    core.spawn(&tracker).await.unwrap();
    Running {
        handle,
        notices,
        config,
        shutdown,
        tracker,
        _dir: dir,
    }
}

impl Running {
    async fn run(&self, text: &str) -> crate::frontend::render::Rendered {
        self.handle.ask(text, Origin::console()).await
    }

    /// The `state` of a fresh `auth twitch` link.
    async fn twitch_state(&self) -> String {
        let reply = self.run("auth twitch").await;
        let link = reply.text.lines().find(|l| l.starts_with("http")).unwrap();
        let url = url::Url::parse(link).unwrap();
        let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1;
        state.into_owned()
    }

    /// Pastes the address a fresh `auth twitch` link leads to, in a task of its own;
    /// returns (the address, the paste's reply) once `twitch` has been asked to exchange it.
    async fn paste_twitch_code(
        &self,
        twitch: &MockServer,
    ) -> (
        String,
        tokio::task::JoinHandle<crate::frontend::render::Rendered>,
    ) {
        let state = self.twitch_state().await;
        let address = format!("http://localhost:3000/?code=abcdefgh12345678&state={state}");
        let handle = self.handle.clone();
        let text = format!("code twitch {address}");
        let paste = tokio::spawn(async move { handle.ask(&text, Origin::console()).await });
        while twitch
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (address, paste)
    }

    /// The next notice whose event `pick` takes, within 10 s.
    async fn next<T>(&mut self, pick: impl Fn(&EventKind) -> Option<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notice = self.notices.recv().await.unwrap();
                if let Some(found) = pick(&notice.event.kind) {
                    return found;
                }
            }
        })
        .await
        .expect("the event within 10 s")
    }

    /// Shuts the core down: how long draining its workers took, and the access token it
    /// left stored for `service`.
    async fn stop(self, service: &str) -> (Duration, Option<String>) {
        let stopping = Instant::now();
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let took = stopping.elapsed();
        let store = Store::open(&self.config.storage.database_path())
            .await
            .unwrap();
        let token = store.token(service).await.unwrap();
        (took, token.map(|t| t.access_token.expose().to_string()))
    }
}

/// A fake whose `route` answers with `answer`.
async fn answering(route: &str, answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(route))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// A JSON answer that takes `delay`.
fn slow(status: u16, body: serde_json::Value, delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(body)
        .set_delay(delay)
}

fn twitch_token(delay: Duration) -> ResponseTemplate {
    let token = serde_json::json!({
        "access_token": "twitch-access-late", "refresh_token": "twitch-refresh",
        "expires_in": 14000, "scope": ["chat:read"],
    });
    slow(200, token, delay)
}

async fn mount_validate(server: &MockServer) {
    Mock::given(path("/oauth2/validate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"login": "recbotuser", "scopes": ["chat:read"]})),
        )
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_twitch_code_exchange_outlives_the_reply_limit_and_blocks_nothing() {
    // Twitch takes longer to exchange the code than the reply may wait, then accepts it.
    let twitch = answering("/oauth2/token", twitch_token(Duration::from_millis(1500))).await;
    mount_validate(&twitch).await;
    let mut bot = start(&twitch, Duration::from_millis(300), "").await;
    let (address, paste) = bot.paste_twitch_code(&twitch).await;
    // While id.twitch.tv has not answered, the core goes on answering commands.
    let asked = Instant::now();
    let list = bot.run("list").await;
    assert!(list.ok, "{list:?}");
    assert!(asked.elapsed() < Duration::from_millis(1000));
    // Pasting again meanwhile sends nothing: the first code's answer is awaited.
    let again = bot.run(&format!("code twitch {address}")).await;
    assert!(
        !again.ok && again.text.contains("still being exchanged"),
        "{again:?}"
    );
    assert_eq!(twitch.received_requests().await.unwrap().len(), 1);
    let reply = paste.await.unwrap();
    assert!(
        !reply.ok && reply.text.contains("posted as an event"),
        "{reply:?}"
    );
    // Twitch took the code after the reply gave up: the token is stored all the same.
    let account = bot
        .next(|kind| match kind {
            EventKind::AuthCompleted { account, .. } => Some(account.clone()),
            _ => None,
        })
        .await;
    assert_eq!(account.as_deref(), Some("recbotuser"));
    let (_, token) = bot.stop("twitch").await;
    assert_eq!(token.as_deref(), Some("twitch-access-late"));
}

#[tokio::test]
async fn a_twitch_refusal_after_the_reply_gave_up_is_posted() {
    let twitch = answering(
        "/oauth2/token",
        slow(
            400,
            serde_json::json!({
                "status": 400, "message": "Invalid authorization code"
            }),
            Duration::from_millis(600),
        ),
    )
    .await;
    let mut bot = start(&twitch, Duration::from_millis(200), "").await;
    let state = bot.twitch_state().await;
    let reply = bot
        .run(&format!(
            "code twitch http://localhost:3000/?code=wrong12345678&state={state}"
        ))
        .await;
    assert!(reply.text.contains("posted as an event"), "{reply:?}");
    let reason = bot
        .next(|kind| match kind {
            EventKind::AuthRequired {
                service, reason, ..
            } if service == "twitch" => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("Invalid authorization code"), "{reason}");
    assert!(!reason.contains("wrong12345678"), "{reason}");
    bot.stop("twitch").await;
}

#[tokio::test]
async fn shutdown_cancels_a_pending_twitch_code_exchange() {
    // Twitch never answers within the test: shutdown must not wait for it.
    let twitch = answering("/oauth2/token", twitch_token(Duration::from_secs(25))).await;
    let bot = start(&twitch, Duration::from_secs(20), "").await;
    let (_, paste) = bot.paste_twitch_code(&twitch).await;
    let (took, token) = bot.stop("twitch").await;
    // The core's drain gives up on workers after 8 s; the exchange stopped long before.
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let reply = paste.await.unwrap();
    assert!(!reply.ok && reply.text.contains("interrupted"), "{reply:?}");
    assert_eq!(token, None);
}

#[tokio::test]
async fn a_youtube_code_exchange_outlives_the_reply_limit_and_a_late_refusal_is_posted() {
    let google = MockServer::start().await;
    Mock::given(path("/token"))
        .and(body_string_contains("code=4%2F0Agood"))
        .respond_with(slow(
            200,
            serde_json::json!({
                "access_token": "ya29.late", "refresh_token": "1//late-refresh",
                "expires_in": 3599, "token_type": "Bearer",
            }),
            Duration::from_millis(800),
        ))
        .mount(&google)
        .await;
    Mock::given(path("/token"))
        .and(body_string_contains("code=4%2F0Abad"))
        .respond_with(slow(
            400,
            serde_json::json!({
                "error": "invalid_grant", "error_description": "Bad Request"
            }),
            Duration::from_millis(1500),
        ))
        .mount(&google)
        .await;
    let mut bot = start(&google, Duration::from_millis(300), "").await;
    let reply = bot.run("auth youtube").await;
    let link = reply.text.lines().find(|l| l.starts_with("http")).unwrap();
    let link = link.to_string();

    // A refusal nobody waits for any more goes to the room, with the link that still
    // takes codes.
    let reply = bot.run("code youtube 4/0Abad-code").await;
    assert!(reply.text.contains("posted as an event"), "{reply:?}");
    // Meanwhile another paste is refused, not queued behind it.
    let again = bot.run("code youtube 4/0Agood-code").await;
    assert!(
        !again.ok && again.text.contains("still being checked"),
        "{again:?}"
    );
    assert_eq!(google.received_requests().await.unwrap().len(), 1);
    let (reason, url) = bot
        .next(|kind| match kind {
            EventKind::AuthRequired {
                service,
                reason,
                url,
            } if service == "youtube" => Some((reason.clone(), url.clone())),
            _ => None,
        })
        .await;
    assert!(reason.contains("Google refused the code"), "{reason}");
    assert!(!reason.contains("4/0Abad"), "{reason}");
    // The link stays with the operator (it was the private reply to `auth youtube`).
    assert_eq!(url, None);
    assert!(!link.is_empty());

    // A success nobody waits for is stored and announced.
    let reply = bot.run("code youtube 4/0Agood-code").await;
    assert!(reply.text.contains("posted as an event"), "{reply:?}");
    bot.next(|kind| {
        matches!(kind, EventKind::AuthCompleted { service, .. } if service == "youtube")
            .then_some(())
    })
    .await;
    let (_, token) = bot.stop("youtube").await;
    assert_eq!(token.as_deref(), Some("ya29.late"));
}

#[tokio::test]
async fn an_absurd_youtube_token_lifetime_is_reported_not_a_lost_flow() {
    // yup-oauth2 would panic adding this lifetime to the clock.
    let google = answering(
        "/token",
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ya29.absurd", "refresh_token": "1//absurd",
            "expires_in": i64::MAX, "token_type": "Bearer",
        })),
    )
    .await;
    let bot = start(&google, Duration::from_secs(20), "").await;
    assert!(bot.run("auth youtube").await.ok);
    let reply = bot.run("code youtube 4/0Aabsurd-code").await;
    assert!(
        !reply.ok && reply.text.contains("lifetime is out of range"),
        "{reply:?}"
    );
    let (_, token) = bot.stop("youtube").await;
    assert_eq!(token, None);
}

#[tokio::test]
async fn a_youtube_code_sent_just_before_the_authorization_expires_is_still_stored() {
    let google = answering(
        "/token",
        slow(
            200,
            serde_json::json!({
                "access_token": "ya29.edge", "refresh_token": "1//edge-refresh",
                "expires_in": 3599, "token_type": "Bearer",
            }),
            Duration::from_millis(1200),
        ),
    )
    .await;
    // The authorization lasts 0.6 s; Google answers the code after that.
    let bot = start(
        &google,
        Duration::from_secs(20),
        "pending_auth_minutes = 0.01",
    )
    .await;
    assert!(bot.run("auth youtube").await.ok);
    let reply = bot.run("code youtube 4/0Aedge-code").await;
    assert!(
        reply.ok && reply.text.contains("YouTube is connected"),
        "{reply:?}"
    );
    let (_, token) = bot.stop("youtube").await;
    assert_eq!(token.as_deref(), Some("ya29.edge"));
}
