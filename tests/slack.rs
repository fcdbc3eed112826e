//! The Slack front-end against local fakes: wiremock for the Web API and response URLs, a
//! tokio-tungstenite server for Socket Mode, signed requests for HTTP mode. Tests play the
//! workers by sending events through `Core::events()`.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use recbot::config::Config;
use recbot::event::EventKind;
use recbot::frontend::delivery::RetryPacing;
use recbot::frontend::presence::{LinkState, Presence};
use recbot::frontend::slack::{self, SlackOptions};
use serde_json::{json, Value};
use sha2::Sha256;
use slack_morphism::prelude::{
    SlackApiMethodRateTier, SlackApiRateControlConfig, SlackApiRateControlLimit,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// `chat.postMessage` that hands out increasing `ts` values.
struct Posted(AtomicU32);

impl Respond for Posted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channel": body["channel"],
            "ts": format!("1700000000.{n:06}"),
            "message": { "text": body["text"], "ts": format!("1700000000.{n:06}") }
        }))
    }
}

async fn mount_web_api(server: &MockServer, ws_url: &str) {
    Mock::given(method("POST"))
        .and(path("/api/apps.connections.open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "url": ws_url})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(Posted(AtomicU32::new(0)))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C1", "ts": "1", "text": "x", "message": {"text": "x"}
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/respond"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
    mount_uploads(server).await;
    // Who the bot token belongs to: workspace T1, app A1 (through its bot B1).
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "url": "https://t.slack.com/", "team": "T", "user": "recbot",
            "team_id": "T1", "user_id": "UBOT", "bot_id": "B1"
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/bots.info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "bot": {"id": "B1", "app_id": "A1", "name": "recbot", "deleted": false}
        })))
        .mount(server)
        .await;
}

/// Slack's external file upload: the upload URL handed out (on this fake), the bytes taken
/// there (Slack answers plain text), and the completion sharing the file.
async fn mount_uploads(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/files.getUploadURLExternal"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "upload_url": format!("{}/upload/F1", server.uri()), "file_id": "F1"
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/F1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK - 1"))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.completeUploadExternal"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "files": [{"id": "F1", "title": "chart"}]
        })))
        .mount(server)
        .await;
}

/// Chat logging is off: these tests check exactly what is posted, and a chat worker would
/// announce its (refused) connection attempts.
fn config(dir: &Path, api: &str, extra: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n[slack]\napp_token = \"xapp-1-test\"\nbot_token = \"xoxb-test\"\n\
         api_url = \"{api}/api\"\noperators = [\"UOP\"]\n{extra}",
        dir.to_str().unwrap()
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

mod support;

use support::Bot;

async fn start(config: Arc<Config>, options: SlackOptions) -> Bot {
    Bot::with_front_end(config, move |config, core, notices, shutdown, tracker| {
        slack::run(config, core, notices, shutdown, tracker, options)
    })
    .await
}

/// Options where every command is answered through the response URL.
fn slow() -> SlackOptions {
    SlackOptions {
        ack_within: Duration::ZERO,
        ..options()
    }
}

fn options() -> SlackOptions {
    SlackOptions {
        connections: 1,
        reconnect_every: Duration::from_secs(1),
        backoff: RetryPacing {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        ..SlackOptions::default()
    }
}

/// A fake Socket Mode endpoint.
struct FakeSocket {
    listener: TcpListener,
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

impl FakeSocket {
    async fn bind() -> FakeSocket {
        FakeSocket {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/link", self.listener.local_addr().unwrap())
    }

    async fn accept(&self) -> Ws {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("recbot connects to Socket Mode")
            .unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let hello = json!({"type": "hello", "num_connections": 1,
            "connection_info": {"app_id": "A1"}, "debug_info": {"host": "fake"}});
        ws.send(Message::text(hello.to_string())).await.unwrap();
        ws
    }
}

fn command_payload(user: &str, text: &str, trigger: &str, respond: &str) -> Value {
    json!({
        "token": "x", "team_id": "T1", "team_domain": "t", "channel_id": "C1",
        "channel_name": "general", "user_id": user, "user_name": user, "command": "/rec",
        "text": text, "api_app_id": "A1", "response_url": respond, "trigger_id": trigger,
    })
}

/// A slash command envelope (`env-<trigger>`).
fn envelope(user: &str, text: &str, trigger: &str, respond: &str) -> Value {
    json!({
        "envelope_id": format!("env-{trigger}"),
        "type": "slash_commands",
        "accepts_response_payload": true,
        "payload": command_payload(user, text, trigger, respond),
    })
}

/// Sends a slash command envelope and returns the ack and how long it took.
async fn command(
    ws: &mut Ws,
    user: &str,
    text: &str,
    trigger: &str,
    respond: &str,
) -> (Value, Duration) {
    deliver(ws, &envelope(user, text, trigger, respond)).await
}

/// Sends an envelope and returns its ack and how long it took.
async fn deliver(ws: &mut Ws, envelope: &Value) -> (Value, Duration) {
    let sent = Instant::now();
    ws.send(Message::text(envelope.to_string())).await.unwrap();
    loop {
        let ack = next_ack(ws).await;
        if ack["envelope_id"] == envelope["envelope_id"] {
            return (ack, sent.elapsed());
        }
    }
}

/// The next acknowledgement recbot sends (5 s at most).
async fn next_ack(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an ack within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            let ack: Value = serde_json::from_str(&text).unwrap();
            if ack["envelope_id"].is_string() {
                return ack;
            }
        }
    }
}

/// The text of an ack's payload.
fn text(ack: &Value) -> &str {
    ack["payload"]["text"].as_str().unwrap()
}

/// The text of a posted body.
fn body_text(body: &Value) -> &str {
    body["text"].as_str().unwrap()
}

/// Requests the fake received at `p`, as JSON bodies.
async fn bodies(server: &MockServer, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn wait_bodies(server: &MockServer, p: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let found = bodies(server, p).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "expected {n} requests to {p}, got {:#?}",
        bodies(server, p).await
    );
}

/// A fake Slack (Web API, response URLs, Socket Mode) and a data folder for one test.
struct Fake {
    dir: tempfile::TempDir,
    web: MockServer,
    socket: FakeSocket,
    /// A response URL the fake answers.
    respond: String,
}

impl Fake {
    /// The fakes, without the Web API's usual answers (a test mounts special ones first).
    async fn bare() -> Fake {
        let web = MockServer::start().await;
        let respond = format!("{}/respond", web.uri());
        Fake {
            dir: tempfile::tempdir().unwrap(),
            web,
            socket: FakeSocket::bind().await,
            respond,
        }
    }

    async fn new() -> Fake {
        let fake = Fake::bare().await;
        fake.mount().await;
        fake
    }

    async fn mount(&self) {
        mount_web_api(&self.web, &self.socket.url()).await;
    }

    fn config(&self, extra: &str) -> Arc<Config> {
        config(self.dir.path(), &self.web.uri(), extra)
    }

    /// recbot with `[slack]` plus `extra`, once it has connected to Socket Mode.
    async fn start(&self, extra: &str, options: SlackOptions) -> (Bot, Ws) {
        let bot = start(self.config(extra), options).await;
        (bot, self.socket.accept().await)
    }
}

#[tokio::test]
async fn socket_mode_commands_are_acked_with_the_reply_and_rights_are_enforced() {
    let fake = Fake::new().await;
    let respond = &fake.respond;
    let (bot, mut ws) = fake.start("", options()).await;

    let (ack, took) = command(&mut ws, "UOP", "add foo", "t1", respond).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(ack["payload"]["response_type"], "in_channel", "{ack}");
    assert!(text(&ack).contains("Watching foo"), "{ack}");

    // Not an operator: refused privately, nothing changes.
    let (ack, _) = command(&mut ws, "UGUEST", "remove foo", "t2", respond).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    assert!(text(&ack).contains("Only operators"), "{ack}");
    let (ack, _) = command(&mut ws, "UGUEST", "list", "t3", respond).await;
    assert!(text(&ack).contains("Watching 1:"), "{ack}");

    // auth/code answers are private; usage placeholders are escaped for mrkdwn.
    let (ack, _) = command(&mut ws, "UOP", "auth youtube", "t4", respond).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    let (ack, _) = command(&mut ws, "UOP", "remove", "t5", respond).await;
    assert!(text(&ack).contains("remove &lt;login&gt;"), "{ack}");

    // A redelivered command (same trigger) is not run twice: it gets the first answer again.
    let (first, _) = command(&mut ws, "UOP", "remove foo", "t6", respond).await;
    assert!(text(&first).contains("Stopped watching foo"));
    let (again, _) = command(&mut ws, "UOP", "remove foo", "t6", respond).await;
    assert_eq!(again["payload"], first["payload"]);
    let (ack, _) = command(&mut ws, "UGUEST", "list", "t7", respond).await;
    assert!(text(&ack).contains("Not watching anything"), "{ack}");
    bot.stop().await;
}

#[tokio::test]
async fn slacks_escaping_of_the_command_text_is_undone_before_it_runs() {
    let fake = Fake::new().await;
    let (bot, mut ws) = fake.start("", options()).await;
    // Slack sends `&`, `<` and `>` of the typed text as entities.
    let typed = "https://cdn.example.com/live/x.m3u8?a=1&b=2&sig=3";
    let sent = "add hls https://cdn.example.com/live/x.m3u8?a=1&amp;b=2&amp;sig=3 studio";
    let (ack, _) = command(&mut ws, "UOP", sent, "x1", &fake.respond).await;
    assert!(text(&ack).contains("Watching studio"), "{ack}");
    bot.stop().await;
    let store = recbot::core::store::Store::open(&fake.dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let name = recbot_commands::Login::from_stored("studio").unwrap();
    let watch = store.watch(&name).await.unwrap().unwrap();
    store.close().await;
    assert_eq!(
        watch.source,
        recbot_commands::Source::Hls { url: typed.into() }
    );
}

#[tokio::test]
async fn a_slow_command_is_acked_first_and_answered_through_the_response_url() {
    let fake = Fake::new().await;
    let (web, respond) = (&fake.web, &fake.respond);
    let (bot, mut ws) = fake.start("", slow()).await;
    let (ack, _) = command(&mut ws, "UOP", "add foo", "s1", respond).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral");
    assert!(text(&ack).contains("Working on it"), "{ack}");
    let follow = wait_bodies(web, "/respond", 1).await;
    assert_eq!(follow[0]["response_type"], "in_channel");
    assert!(body_text(&follow[0]).contains("Watching foo"), "{follow:?}");
    // Refusals follow up privately.
    let (ack, _) = command(&mut ws, "UGUEST", "remove foo", "s2", respond).await;
    assert!(text(&ack).contains("Working on it"), "{ack}");
    let follow = wait_bodies(web, "/respond", 2).await;
    assert_eq!(follow[1]["response_type"], "ephemeral");
    assert!(body_text(&follow[1]).contains("Only operators"));
    bot.stop().await;
}

#[tokio::test]
async fn commands_that_queued_behind_a_slow_one_are_still_acked_in_time() {
    use sqlx::Connection;
    let fake = Fake::new().await;
    let (web, respond) = (&fake.web, &fake.respond);
    let window = Duration::from_millis(1000);
    let options = SlackOptions {
        ack_within: window,
        ..options()
    };
    let (bot, mut ws) = fake.start("", options).await;
    // Another writer holds the database: the core is slow to answer.
    let db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(fake.dir.path().join("recbot.sqlite"))
        .busy_timeout(Duration::from_secs(5));
    let mut other = sqlx::SqliteConnection::connect_with(&db).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    // Two commands arrive together on the one connection: slack-morphism runs the second's
    // callback only after the first's has returned.
    let sent = Instant::now();
    for (text, trigger) in [("add foo", "q1"), ("add bar", "q2")] {
        let envelope = envelope("UOP", text, trigger, respond);
        ws.send(Message::text(envelope.to_string())).await.unwrap();
    }
    let mut acked = Vec::new();
    while acked.len() < 2 {
        let ack = next_ack(&mut ws).await;
        acked.push((ack, sent.elapsed()));
    }
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    // Both within the window counted from their arrival (plus scheduling slack), not the
    // second one a whole window after the first.
    for (ack, took) in &acked {
        assert!(text(ack).contains("Working on it"), "{ack}");
        assert!(*took < window + window / 2, "{took:?} {ack}");
    }
    let follow = wait_bodies(web, "/respond", 2).await;
    let said: Vec<&str> = follow.iter().map(body_text).collect();
    assert!(said.iter().any(|t| t.contains("Watching foo")), "{said:?}");
    assert!(said.iter().any(|t| t.contains("Watching bar")), "{said:?}");
    bot.stop().await;
}

/// The service log's lines while it is alive (on this thread: `#[tokio::test]` runs every
/// task of the test on it).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = recbot::logging::subscriber(
            recbot::logging::LogFormat::Human,
            Some("info"),
            move || writer.clone(),
        );
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_failing_response_url_is_not_written_to_the_log() {
    let log = Captured::default();
    let _guard = log.install();
    let fake = Fake::new().await;
    let web = &fake.web;
    let (bot, mut ws) = fake.start("", slow()).await;
    // The response URL is gone (404): the answer goes through chat.postMessage instead.
    let gone = format!("{}/hooks/T1/B2/response-secret", web.uri());
    let (ack, _) = command(&mut ws, "UOP", "add foo", "g1", &gone).await;
    assert!(text(&ack).contains("Working on it"), "{ack}");
    let posts = wait_bodies(web, "/api/chat.postMessage", 1).await;
    let answer = posts.iter().find(|p| body_text(p).contains("Watching foo"));
    assert!(answer.is_some(), "{posts:#?}");
    bot.stop().await;
    let text = log.text();
    assert!(text.contains("the response URL failed"), "{text}");
    assert!(!text.contains("response-secret"), "{text}");
}

fn live() -> EventKind {
    EventKind::LiveDetected {
        stream_id: Some("1".into()),
        display_name: None,
        started_at: None,
        // Hostile: a mention, a broadcast, a code span, a terminal escape, an RTL override.
        title: "Any% <race> <!channel> <@U1> @here `x`\u{202E}\x1b[2J\r".into(),
        game: None,
        viewers: None,
        latency_secs: None,
    }
}

fn progress(sent: u64) -> EventKind {
    EventKind::UploadProgress {
        job: 4,
        sent_bytes: sent,
        total_bytes: 100,
        bytes_per_sec: 0.0,
    }
}

#[tokio::test]
async fn events_go_to_the_room_in_one_thread_with_progress_edited_in_place() {
    let fake = Fake::new().await;
    let (web, respond) = (&fake.web, &fake.respond);
    let (bot, mut ws) = fake.start("events_room = \"CEV\"\n", options()).await;
    command(&mut ws, "UOP", "add foo", "e1", respond).await;
    bot.emit("foo", Some(9), live()).await;
    wait_bodies(web, "/api/chat.postMessage", 2).await;
    bot.emit("foo", Some(9), progress(25)).await;
    wait_bodies(web, "/api/chat.postMessage", 3).await;
    bot.emit("foo", Some(9), progress(75)).await;
    // (Let the edit through: progress outdated by the next notice of a burst is folded.)
    wait_bodies(web, "/api/chat.update", 1).await;
    bot.emit(
        "foo",
        Some(9),
        EventKind::UploadFinished {
            job: 4,
            video_id: "v".into(),
            url: "https://youtu.be/v".into(),
        },
    )
    .await;
    let posts = wait_bodies(web, "/api/chat.postMessage", 5).await;
    let updates = wait_bodies(web, "/api/chat.update", 1).await;
    bot.stop().await;

    // 1: ServiceStarted to the events room.
    assert_eq!(posts[0]["channel"], "CEV");
    assert!(body_text(&posts[0]).contains("started"));
    // 2: live, in the room it was added from, opening the thread; text escaped.
    assert_eq!(posts[1]["channel"], "C1");
    assert!(posts[1].get("thread_ts").is_none());
    assert_eq!(
        posts[1]["text"],
        "🔴 foo is live: Any% &lt;race&gt; &lt;!channel&gt; &lt;@\u{200B}U1&gt; @\u{200B}here 'x'[2J "
    );
    let thread = "1700000000.000002";
    // 3: progress in the thread, then edited in place.
    assert_eq!(posts[2]["thread_ts"], thread);
    assert!(body_text(&posts[2]).contains("25%"));
    assert_eq!(updates[0]["ts"], "1700000000.000003");
    assert_eq!(updates[0]["channel"], "C1");
    assert!(body_text(&updates[0]).contains("75%"));
    // 4: the video link in the thread and in the room.
    assert_eq!(posts[3]["thread_ts"], thread);
    assert!(posts[4].get("thread_ts").is_none());
    assert!(body_text(&posts[4]).contains("youtu.be/v"));
    let auth = web
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/api/chat.postMessage")
        .unwrap();
    assert_eq!(auth.headers["authorization"], "Bearer xoxb-test");
}

#[tokio::test]
async fn rate_limited_posts_wait_for_retry_after_and_are_not_dropped() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    let started = Instant::now();
    let (bot, _ws) = fake.start("events_room = \"CEV\"\n", options()).await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    let posts = wait_bodies(web, "/api/chat.postMessage", 3).await;
    bot.stop().await;
    // The first attempt (ServiceStarted) got the 429; it was retried after Retry-After.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(posts[0]["text"], posts[1]["text"]);
    assert!(body_text(&posts[1]).contains("started"));
    assert!(body_text(&posts[2]).contains("no new video"));
}

#[tokio::test]
async fn a_revoked_token_pauses_posting_until_it_works_again_and_skips_nothing() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    let (bot, _ws) = fake.start("events_room = \"CEV\"\n", options()).await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    let posts = wait_bodies(web, "/api/chat.postMessage", 4).await;
    bot.stop().await;
    // ServiceStarted was refused twice, then posted; the next notice came after it.
    for post in &posts[..3] {
        assert!(body_text(post).contains("started"), "{posts:#?}");
    }
    assert!(body_text(&posts[3]).contains("no new video"), "{posts:#?}");
}

#[tokio::test]
async fn a_web_api_call_without_an_answer_is_abandoned_and_tried_again() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    // A half-open connection: the first post never gets its answer.
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3600)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    // (Longer than chat.postMessage's pacing, one a second: the abandoned call used a slot.)
    let opts = SlackOptions {
        post_timeout: Duration::from_millis(1500),
        ..options()
    };
    let (bot, _ws) = fake.start("events_room = \"CEV\"\n", opts).await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    let posts = wait_bodies(web, "/api/chat.postMessage", 3).await;
    bot.stop().await;
    assert!(body_text(&posts[0]).contains("started"), "{posts:#?}");
    assert_eq!(posts[0], posts[1], "tried again");
    assert!(body_text(&posts[2]).contains("no new video"), "{posts:#?}");
}

#[tokio::test]
async fn notices_from_an_outage_are_posted_after_a_restart() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    // Slack's Web API is down for posting during the first run.
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    let (bot, mut ws) = fake.start("", options()).await;
    command(&mut ws, "UOP", "add foo", "o1", &fake.respond).await;
    bot.emit("foo", Some(3), live()).await;
    bot.emit("foo", Some(3), EventKind::RecordingStalled { seconds: 30 })
        .await;
    wait_bodies(web, "/api/chat.postMessage", 2).await;
    bot.stop().await;
    drop(ws);

    // Slack is back; recbot restarts.
    web.reset().await;
    fake.mount().await;
    let (bot, _ws) = fake.start("", options()).await;
    let posts = wait_bodies(web, "/api/chat.postMessage", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bot.stop().await;
    let posts_now = bodies(web, "/api/chat.postMessage").await;
    assert_eq!(posts_now.len(), 2, "{posts_now:#?}");
    assert_eq!(posts[0]["channel"], "C1");
    assert!(body_text(&posts[0]).contains("is live"));
    assert_eq!(posts[1]["thread_ts"], "1700000000.000001");
    assert!(body_text(&posts[1]).contains("no new video"));
}

// --- Connection loss ---

/// How many times recbot asked for a Socket Mode URL.
async fn opens(server: &MockServer) -> usize {
    bodies_any(server, "/api/apps.connections.open").await
}

async fn bodies_any(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

#[tokio::test]
async fn socket_mode_reconnects_after_a_disconnect_envelope_a_close_and_a_dropped_connection() {
    let fake = Fake::new().await;
    let (web, socket, respond) = (&fake.web, &fake.socket, &fake.respond);
    let (bot, mut ws) = fake.start("", options()).await;
    let (ack, _) = command(&mut ws, "UOP", "add foo", "c1", respond).await;
    assert!(text(&ack).contains("Watching foo"), "{ack}");
    assert_eq!(opens(web).await, 1);

    // Slack asks the app to reconnect (it closes the old connection some seconds later).
    let disconnect = json!({"type": "disconnect", "reason": "refresh_requested",
        "debug_info": {"host": "fake"}});
    ws.send(Message::text(disconnect.to_string()))
        .await
        .unwrap();
    let mut ws2 = socket.accept().await;
    assert_eq!(opens(web).await, 2, "a fresh apps.connections.open");
    let (ack, _) = command(&mut ws2, "UGUEST", "list", "c2", respond).await;
    assert!(text(&ack).contains("Watching 1:"), "{ack}");
    drop(ws);

    // The server closes the websocket.
    ws2.close(None).await.unwrap();
    let mut ws3 = socket.accept().await;
    assert_eq!(opens(web).await, 3);
    let (ack, _) = command(&mut ws3, "UGUEST", "list", "c3", respond).await;
    assert!(text(&ack).contains("Watching 1:"), "{ack}");

    // The connection drops without a close, and the first apps.connections.open after it
    // fails: the next attempt comes after `reconnect_every`.
    Mock::given(method("POST"))
        .and(path("/api/apps.connections.open"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "internal_error"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(web)
        .await;
    let dropped = Instant::now();
    drop(ws3);
    let mut ws4 = socket.accept().await;
    assert!(dropped.elapsed() >= Duration::from_millis(900));
    assert_eq!(opens(web).await, 5, "one failed open, then one that worked");
    let (ack, took) = command(&mut ws4, "UOP", "remove foo", "c4", respond).await;
    assert!(took < Duration::from_secs(3));
    assert!(text(&ack).contains("Stopped watching foo"), "{ack}");
    bot.stop().await;
}

#[tokio::test]
async fn an_envelope_redelivered_after_a_missed_ack_is_acknowledged_again_but_run_once() {
    let fake = Fake::new().await;
    let (web, socket, respond) = (&fake.web, &fake.socket, &fake.respond);
    let (bot, mut ws) = fake.start("", options()).await;
    let add = envelope("UOP", "add foo", "r1", respond);
    let (first, _) = deliver(&mut ws, &add).await;
    assert!(text(&first).contains("Watching foo"), "{first}");

    // The ack was lost with the connection; Slack redelivers the envelope on the next one.
    drop(ws);
    let mut ws = socket.accept().await;
    let mut again = add.clone();
    again["retry_attempt"] = json!(1);
    again["retry_reason"] = json!("timeout");
    let (ack, _) = deliver(&mut ws, &again).await;
    // The first answer again ("Already watching" would mean it ran twice).
    assert_eq!(ack["payload"], first["payload"]);

    // A slow command's redelivery is not run either; its answer comes separately.
    bot.stop().await;
    let (bot, mut ws) = fake.start("", slow()).await;
    let remove = envelope("UOP", "remove foo", "r2", respond);
    let (ack, _) = deliver(&mut ws, &remove).await;
    assert!(text(&ack).contains("Working on it"), "{ack}");
    let follow = wait_bodies(web, "/respond", 1).await;
    assert!(body_text(&follow[0]).contains("Stopped watching foo"));
    drop(ws);
    let mut ws = socket.accept().await;
    let (ack, _) = deliver(&mut ws, &remove).await;
    assert!(text(&ack).contains("already received"), "{ack}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bodies(web, "/respond").await.len(), 1, "run once");
    bot.stop().await;
}

/// Answers `chat.update` and notes when each call arrived.
#[derive(Clone)]
struct TimedUpdates(Arc<std::sync::Mutex<Vec<Instant>>>);

impl Respond for TimedUpdates {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C1", "ts": "1", "text": "x", "message": {"text": "x"}
        }))
    }
}

#[tokio::test]
async fn chat_update_is_paced_by_its_slack_tier() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    let updates = TimedUpdates(Arc::default());
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(updates.clone())
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    // Tier 3 (chat.update's) scaled down to 2 calls a second, so the test is short; the
    // real table is 50 a minute.
    let mut tiers = std::collections::HashMap::new();
    tiers.insert(
        SlackApiMethodRateTier::Tier3,
        SlackApiRateControlLimit::new(2, Duration::from_secs(1)),
    );
    let opts = SlackOptions {
        rate_control: SlackApiRateControlConfig::new().with_tiers_limits(tiers),
        ..options()
    };
    let (bot, mut ws) = fake.start("", opts).await;
    command(&mut ws, "UOP", "add foo", "p1", &fake.respond).await;
    bot.emit("foo", None, progress(1)).await;
    wait_bodies(web, "/api/chat.postMessage", 1).await;
    // One update at a time (a burst would be folded into one edit).
    for sent in 2..=9 {
        bot.emit("foo", None, progress(sent)).await;
        wait_bodies(web, "/api/chat.update", sent as usize - 1).await;
    }
    bot.stop().await;
    let times = updates.0.lock().unwrap().clone();
    assert_eq!(times.len(), 8);
    // Two at once, then one per 500 ms: the eighth comes about 3 s after the first.
    let span = times[7] - times[0];
    assert!(span >= Duration::from_secs(2), "{span:?}");
}

// --- HTTP mode ---

fn sign(body: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn http_mode_accepts_signed_requests_and_rejects_forged_and_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let web = MockServer::start().await;
    mount_web_api(&web, "ws://127.0.0.1:1/unused").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = config(
        dir.path(),
        &web.uri(),
        &format!("listen = \"{addr}\"\nsigning_secret = \"{SECRET}\"\n"),
    );
    let opts = SlackOptions {
        http_listener: Some(listener),
        ..options()
    };
    let bot = start(cfg, opts).await;
    let url = format!("http://{addr}/slack/commands");
    let respond = format!("{}/respond", web.uri());
    let form = |user: &str, text: &str, trigger: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                command_payload(user, text, trigger, &respond)
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            )
            .finish()
    };
    let http = reqwest::Client::new();
    let send = |body: String, signature: Option<String>, ts: i64| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(signature) = signature {
            request = request
                .header("x-slack-signature", signature)
                .header("x-slack-request-timestamp", ts.to_string());
        }
        request.send()
    };

    let body = form("UOP", "add foo", "h1");
    let reply = send(body.clone(), Some(sign(&body, now())), now())
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["response_type"], "in_channel");
    assert!(body_text(&reply).contains("Watching foo"), "{reply}");

    // Forged: signed with another secret, or the body changed after signing.
    let body = form("UOP", "remove foo", "h2");
    let mut forged = sign(&body, now());
    forged.replace_range(forged.len() - 4.., "0000");
    assert_eq!(
        send(body.clone(), Some(forged), now())
            .await
            .unwrap()
            .status(),
        401
    );
    let tampered = form("UOP", "remove foo", "h3");
    let signature = sign(&form("UOP", "list", "h3"), now());
    assert_eq!(
        send(tampered, Some(signature), now())
            .await
            .unwrap()
            .status(),
        401
    );
    // Replayed: a valid signature over an old timestamp.
    let old = now() - 600;
    assert_eq!(
        send(body.clone(), Some(sign(&body, old)), old)
            .await
            .unwrap()
            .status(),
        401
    );
    // Unsigned.
    assert_eq!(send(body, None, now()).await.unwrap().status(), 401);

    // Signed, but from another workspace or for another app (the fake's auth.test and
    // bots.info say T1 and A1): refused, nothing run.
    for (key, value, trigger) in [("team_id", "T2", "h5"), ("api_app_id", "A2", "h6")] {
        let mut fields = command_payload("UOP", "remove foo", trigger, &respond);
        fields[key] = json!(value);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                fields
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            )
            .finish();
        let reply: Value = send(body.clone(), Some(sign(&body, now())), now())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["response_type"], "ephemeral", "{reply}");
        assert!(body_text(&reply).contains("nothing was run"), "{reply}");
    }

    // None of the refused requests changed anything.
    let body = form("UGUEST", "list", "h4");
    let reply: Value = send(body.clone(), Some(sign(&body, now())), now())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body_text(&reply).contains("Watching 1:"), "{reply}");

    // Slack's URL verification on the events endpoint.
    let challenge =
        json!({"type": "url_verification", "challenge": "abc", "token": "x"}).to_string();
    let reply = http
        .post(format!("http://{addr}/slack/events"))
        .header("x-slack-signature", sign(&challenge, now()))
        .header("x-slack-request-timestamp", now().to_string())
        .body(challenge)
        .send()
        .await
        .unwrap();
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["challenge"], "abc");
    bot.stop().await;
}

#[tokio::test]
async fn the_binary_runs_slack_from_the_config_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let web = MockServer::start().await;
    let socket = FakeSocket::bind().await;
    mount_web_api(&web, &socket.url()).await;
    let config = dir.path().join("recbot.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"data\"\n[http]\nlisten = \"\"\n[slack]\napp_token = \"xapp-1-bin\"\n\
             bot_token = \"xoxb-bin\"\napi_url = \"{}/api\"\noperators = [\"UOP\"]\n\
             events_room = \"CEV\"\n",
            web.uri()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recbot"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ws = socket.accept().await;
    let respond = format!("{}/respond", web.uri());
    let (ack, _) = command(&mut ws, "UOP", "add foo", "b1", &respond).await;
    assert!(text(&ack).contains("Watching foo"), "{ack}");
    let posts = wait_bodies(&web, "/api/chat.postMessage", 1).await;
    assert_eq!(posts[0]["channel"], "CEV");

    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "recbot did not stop within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("xoxb-bin") && !stderr.contains("xapp-1-bin"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_command_from_another_workspace_is_refused_without_effect() {
    let fake = Fake::new().await;
    let respond = fake.respond.clone();
    let (bot, mut ws) = fake.start("", options()).await;
    // An operator's user id, but in workspace T2 (recbot's token belongs to T1).
    let mut foreign = envelope("UOP", "add foo", "w1", &respond);
    foreign["payload"]["team_id"] = json!("T2");
    let (ack, _) = deliver(&mut ws, &foreign).await;
    assert!(text(&ack).contains("not the one recbot serves"), "{ack}");
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    // Nothing was added.
    let (ack, _) = command(&mut ws, "UOP", "list", "w2", &respond).await;
    assert!(text(&ack).contains("Not watching anything"), "{ack}");
    bot.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_slacks_hello() {
    let fake = Fake::new().await;
    let presence = Presence::default();
    let opts = SlackOptions {
        link: presence.link("Slack"),
        ..options()
    };
    let bot = start(fake.config(""), opts).await;
    assert_eq!(presence.absent()[0].state, LinkState::Connecting);
    let _ws = fake.socket.accept().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !presence.absent().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", presence.absent());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bot.stop().await;
}

/// Requests the fake received at `p`.
async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

#[tokio::test]
async fn the_summary_chart_is_uploaded_into_the_broadcasts_thread_after_a_failed_try() {
    let fake = Fake::bare().await;
    let web = &fake.web;
    // The upload host fails once (HTTP 500): the whole upload is tried again.
    Mock::given(method("POST"))
        .and(path("/upload/F1"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(web)
        .await;
    fake.mount().await;
    let chart = fake.dir.path().join("foo.summary.png");
    std::fs::write(&chart, b"\x89PNG not really").unwrap();
    let (bot, mut ws) = fake.start("", options()).await;
    command(&mut ws, "UOP", "add foo", "e1", &fake.respond).await;
    bot.emit("foo", Some(9), live()).await;
    wait_bodies(web, "/api/chat.postMessage", 1).await;
    let summary = EventKind::SummaryReady {
        path: chart.clone(),
        samples: 2,
        chat_lines: 5,
    };
    bot.emit("foo", Some(9), summary).await;
    let completed = wait_bodies(web, "/api/files.completeUploadExternal", 1).await;
    bot.stop().await;
    // The live notice (the first post, ts ….000001) opened the thread.
    assert_eq!(completed[0]["channel_id"], "C1");
    assert_eq!(completed[0]["thread_ts"], "1700000000.000001");
    assert_eq!(completed[0]["files"][0]["id"], "F1");
    assert!(completed[0]["initial_comment"]
        .as_str()
        .unwrap()
        .contains("summary"));
    let asked = requests_to(web, "/api/files.getUploadURLExternal").await;
    assert_eq!(asked.len(), 2, "asked again after the failed upload");
    let query: std::collections::HashMap<_, _> = asked[1].url.query_pairs().into_owned().collect();
    assert_eq!(query["filename"], "foo.summary.png");
    assert_eq!(query["length"], "15");
    let uploads = requests_to(web, "/upload/F1").await;
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[1].body, b"\x89PNG not really");
    // The bot token goes to the Web API only, never to the upload URL.
    assert!(uploads
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
}
