//! The Discord front-end against local fakes: wiremock for the REST API (as serenity's proxy)
//! and a tokio-tungstenite gateway. Tests play the workers through `Core::events()`.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use recbot::config::Config;
use recbot::event::EventKind;
use recbot::frontend::delivery::RetryPacing;
use recbot::frontend::discord::{self, DiscordOptions};
use recbot::frontend::presence::{LinkState, Presence};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const APP: &str = "111";
const GUILD: &str = "222";
const CHANNEL: &str = "333";
const OPERATOR: &str = "555";
const ROLE: &str = "777";

/// Message and thread creation with increasing ids.
struct Ids(AtomicU32);

impl Respond for Ids {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({ "id": format!("{}", 9000 + n) }))
    }
}

async fn mount_rest(server: &MockServer, gateway: &str) {
    Mock::given(method("GET"))
        .and(path("/api/v10/gateway"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "url": gateway })))
        .mount(server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!(
            "/api/v10/applications/{APP}/guilds/{GUILD}/commands"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/interactions/\d+/[^/]+/callback$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/api/v10/webhooks/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "1" })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/api/v10/channels/\d+/messages(/\d+/threads)?$",
        ))
        .respond_with(Ids(AtomicU32::new(0)))
        .mount(server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/api/v10/channels/\d+/messages/\d+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "1" })))
        .mount(server)
        .await;
}

/// A fake gateway: hello, READY on identify, RESUMED (after replaying what the test asks) on
/// resume, heartbeat acks; the test sends dispatches and connection trouble.
struct FakeGateway {
    listener: TcpListener,
    /// The sequence number of the last dispatch, across connections (as Discord keeps it per
    /// session).
    seq: Arc<AtomicU64>,
}

/// What the test can make one gateway connection do.
enum Gw {
    /// Close with this close code.
    Close(u16),
    /// Op 7 RECONNECT: the bot should reconnect and resume.
    Reconnect,
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// One accepted gateway connection.
struct Conn {
    dispatch: mpsc::Sender<(String, Value)>,
    control: mpsc::Sender<Gw>,
    /// The bot's opening payload: op 2 IDENTIFY or op 6 RESUME.
    opened_with: Value,
}

impl FakeGateway {
    async fn bind() -> FakeGateway {
        FakeGateway {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            seq: Arc::default(),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.listener.local_addr().unwrap())
    }

    async fn accept(&self) -> Conn {
        self.accept_replaying(Vec::new()).await
    }

    /// Accepts the bot's connection and completes the handshake; on a resume, `replay` is
    /// sent before RESUMED (Discord replays the dispatches the bot missed).
    async fn accept_replaying(&self, replay: Vec<(String, Value)>) -> Conn {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("recbot connects to the gateway")
            .unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let hello = json!({"op": 10, "d": {"heartbeat_interval": 45000}, "s": null, "t": null});
        ws.send(Message::text(hello.to_string())).await.unwrap();
        let opened_with = loop {
            let frame = ws.next().await.unwrap().unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["op"] == 2 || v["op"] == 6 {
                assert_eq!(v["d"]["token"], "Bot test-token");
                break v;
            }
        };
        let seq = self.seq.clone();
        let frame = move |t: &str, d: Value| {
            let s = seq.fetch_add(1, Ordering::SeqCst) + 1;
            Message::text(json!({"op": 0, "s": s, "t": t, "d": d}).to_string())
        };
        if opened_with["op"] == 2 {
            let ready = json!({
                "v": 10,
                "user": {"id": APP, "username": "recbot", "discriminator": "0", "avatar": null, "bot": true},
                "guilds": [], "session_id": "s1", "resume_gateway_url": self.url(),
                "application": {"id": APP, "flags": 0},
            });
            ws.send(frame("READY", ready)).await.unwrap();
        } else {
            for (t, d) in replay {
                ws.send(frame(&t, d)).await.unwrap();
            }
            ws.send(frame("RESUMED", json!({}))).await.unwrap();
        }
        let (tx, mut rx) = mpsc::channel::<(String, Value)>(16);
        let (control, mut trouble) = mpsc::channel::<Gw>(4);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    dispatch = rx.recv() => {
                        let Some((t, d)) = dispatch else { break };
                        if ws.send(frame(&t, d)).await.is_err() { break }
                    }
                    // (A test that keeps no `control` leaves the connection alone.)
                    Some(what) = trouble.recv() => match what {
                        Gw::Close(code) => {
                            let close = CloseFrame { code: code.into(), reason: "".into() };
                            let _ = ws.close(Some(close)).await;
                            break;
                        }
                        Gw::Reconnect => {
                            let op7 = json!({"op": 7, "d": null, "s": null, "t": null});
                            let _ = ws.send(Message::text(op7.to_string())).await;
                        }
                        Gw::Drop => break,
                    },
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let v: Value = serde_json::from_str(&text).unwrap_or_default();
                            if v["op"] == 1 {
                                let _ = ws.send(Message::text(json!({"op": 11}).to_string())).await;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
            }
        });
        Conn {
            dispatch: tx,
            control,
            opened_with,
        }
    }
}

/// Chat logging is off: these tests check exactly what is posted, and a chat worker would
/// announce its (refused) connection attempts.
fn config(dir: &Path, api: &str, extra: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n[discord]\ntoken = \"test-token\"\napi_url = \"{api}\"\n\
         guild_id = \"{GUILD}\"\noperators = [\"{OPERATOR}\"]\noperator_roles = [\"{ROLE}\"]\n{extra}",
        dir.to_str().unwrap()
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

mod support;

use support::Bot;

async fn start(config: Arc<Config>, options: DiscordOptions) -> Bot {
    Bot::with_front_end(config, move |config, core, notices, shutdown, tracker| {
        discord::run(config, core, notices, shutdown, tracker, options)
    })
    .await
}

fn options() -> DiscordOptions {
    DiscordOptions {
        backoff: RetryPacing {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        ..DiscordOptions::default()
    }
}

/// An INTERACTION_CREATE for `/rec <sub> <options…>` by `user` with `roles`.
fn interaction(id: u32, user: &str, roles: &[&str], sub: &str, options: Value) -> Value {
    json!({
        "id": id.to_string(), "application_id": APP, "type": 2, "token": format!("tok{id}"),
        "version": 1, "guild_id": GUILD, "channel_id": CHANNEL, "locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {}, "attachment_size_limit": 26214400,
        "app_permissions": "2048",
        "data": {"id": "444", "name": "rec", "type": 1,
                 "options": [{"name": sub, "type": 1, "options": options}]},
        "member": {
            "user": {"id": user, "username": format!("u{user}"), "discriminator": "0", "avatar": null},
            "roles": roles, "joined_at": "2024-01-01T00:00:00+00:00", "deaf": false, "mute": false,
            "flags": 0, "permissions": "2048"
        }
    })
}

/// `/rec add login:foo` by an operator.
fn add_foo(id: u32) -> Value {
    interaction(
        id,
        OPERATOR,
        &[],
        "add",
        json!([{"name": "login", "type": 3, "value": "foo"}]),
    )
}

async fn send(dispatch: &mpsc::Sender<(String, Value)>, interaction: Value) {
    dispatch
        .send(("INTERACTION_CREATE".into(), interaction))
        .await
        .unwrap();
}

/// The content of an interaction answer.
fn content(reply: &Value) -> &str {
    reply["data"]["content"].as_str().unwrap()
}

async fn requests(server: &MockServer, m: &str, p: &str) -> Vec<Value> {
    let re = regex_lite(p);
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && re(r.url.path()))
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// Path patterns with `*` for one segment (no regex crate needed).
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let parts: Vec<String> = pattern.split('/').map(String::from).collect();
    move |p: &str| {
        let segs: Vec<&str> = p.split('/').collect();
        segs.len() == parts.len() && segs.iter().zip(&parts).all(|(s, p)| p == "*" || p == s)
    }
}

async fn wait_requests(server: &MockServer, m: &str, p: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let found = requests(server, m, p).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "expected {n} {m} {p}, got {:#?}",
        requests(server, m, p).await
    );
}

async fn answer(server: &MockServer, id: u32) -> Value {
    let p = format!("/api/v10/interactions/{id}/tok{id}/callback");
    wait_requests(server, "POST", &p, 1).await.remove(0)
}

/// A fake Discord (REST API, gateway) and a data folder for one test.
struct Fake {
    dir: tempfile::TempDir,
    rest: MockServer,
    gateway: FakeGateway,
}

impl Fake {
    /// The fakes, without the REST API's usual answers (a test mounts special ones first).
    async fn bare() -> Fake {
        Fake {
            dir: tempfile::tempdir().unwrap(),
            rest: MockServer::start().await,
            gateway: FakeGateway::bind().await,
        }
    }

    async fn new() -> Fake {
        let fake = Fake::bare().await;
        fake.mount().await;
        fake
    }

    async fn mount(&self) {
        mount_rest(&self.rest, &self.gateway.url()).await;
    }

    fn config(&self, extra: &str) -> Arc<Config> {
        config(self.dir.path(), &self.rest.uri(), extra)
    }

    /// recbot with `[discord]` plus `extra`, once it has connected to the gateway.
    async fn start(&self, extra: &str, options: DiscordOptions) -> (Bot, Conn) {
        let bot = start(self.config(extra), options).await;
        (bot, self.gateway.accept().await)
    }
}

#[tokio::test]
async fn rec_is_registered_and_commands_answered_with_operator_rights() {
    let fake = Fake::new().await;
    let rest = &fake.rest;
    let (bot, conn) = fake.start("", options()).await;
    let dispatch = conn.dispatch;

    let registered = wait_requests(
        rest,
        "PUT",
        &format!("/api/v10/applications/{APP}/guilds/{GUILD}/commands"),
        1,
    )
    .await;
    assert_eq!(registered[0][0]["name"], "rec");
    assert_eq!(registered[0][0]["default_member_permissions"], "2048");

    let started = Instant::now();
    let add = add_foo(1);
    send(&dispatch, add).await;
    let reply = answer(rest, 1).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(reply["type"], 4);
    assert!(content(&reply).contains("Watching foo"), "{reply}");
    assert!(reply["data"].get("flags").is_none(), "{reply}");

    // Not an operator: private refusal, nothing removed.
    let remove = json!([{"name": "login", "type": 3, "value": "foo"}]);
    dispatch
        .send((
            "INTERACTION_CREATE".into(),
            interaction(2, "666", &["1"], "remove", remove.clone()),
        ))
        .await
        .unwrap();
    let reply = answer(rest, 2).await;
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(content(&reply).contains("Only operators"));
    dispatch
        .send((
            "INTERACTION_CREATE".into(),
            interaction(3, "666", &[], "list", json!([])),
        ))
        .await
        .unwrap();
    let reply = answer(rest, 3).await;
    assert!(content(&reply).contains("Watching 1:"), "{reply}");

    // The code is an option, and the reply is private.
    let code = json!([{"name": "service", "type": 3, "value": "youtube"},
                      {"name": "code_or_url", "type": 3, "value": "4/0AbCdEfGh"}]);
    dispatch
        .send((
            "INTERACTION_CREATE".into(),
            interaction(4, OPERATOR, &[], "code", code),
        ))
        .await
        .unwrap();
    let reply = answer(rest, 4).await;
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(!reply.to_string().contains("4/0AbCdEfGh"));

    // An operator by role; a replayed dispatch of the same interaction is not run twice.
    dispatch
        .send((
            "INTERACTION_CREATE".into(),
            interaction(5, "666", &[ROLE], "remove", remove.clone()),
        ))
        .await
        .unwrap();
    let reply = answer(rest, 5).await;
    assert!(content(&reply).contains("Stopped watching foo"), "{reply}");
    dispatch
        .send((
            "INTERACTION_CREATE".into(),
            interaction(5, "666", &[ROLE], "remove", remove),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers = requests(rest, "POST", "/api/v10/interactions/5/tok5/callback").await;
    assert_eq!(answers.len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn a_slow_interaction_is_deferred_then_edited() {
    let fake = Fake::new().await;
    let rest = &fake.rest;
    let opts = DiscordOptions {
        ack_within: Duration::ZERO,
        ..options()
    };
    let (bot, conn) = fake.start("", opts).await;
    let dispatch = conn.dispatch;
    let add = add_foo(7);
    send(&dispatch, add).await;
    let deferred = answer(rest, 7).await;
    assert_eq!(deferred["type"], 5, "{deferred}");
    let edits = wait_requests(
        rest,
        "PATCH",
        &format!("/api/v10/webhooks/{APP}/tok7/messages/@original"),
        1,
    )
    .await;
    assert!(
        edits[0]["content"]
            .as_str()
            .unwrap()
            .contains("Watching foo"),
        "{edits:?}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn events_get_a_thread_progress_is_edited_and_429_is_waited_out() {
    let fake = Fake::bare().await;
    let rest = &fake.rest;
    // The first message post is rate limited (Discord sends Retry-After and retry_after).
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/channels/\d+/messages$"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0.5")
                .insert_header("x-ratelimit-scope", "user")
                .set_body_json(json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(rest)
        .await;
    fake.mount().await;
    let (bot, conn) = fake.start("events_room = \"888\"\n", options()).await;
    let dispatch = conn.dispatch;
    let add = add_foo(1);
    send(&dispatch, add).await;
    answer(rest, 1).await;
    bot.emit(
        "foo",
        Some(2),
        EventKind::LiveDetected {
            stream_id: None,
            display_name: None,
            started_at: None,
            title: "@everyone come watch <@123> [free](http://evil) `x`\u{202E}\x1b[2J".into(),
            game: Some("Chess".into()),
            viewers: None,
            latency_secs: None,
        },
    )
    .await;
    let threads = wait_requests(rest, "POST", "/api/v10/channels/*/messages/*/threads", 1).await;
    assert_eq!(
        threads[0]["name"],
        "foo — @everyone come watch <@123> [free](http://evil) 'x'[2J"
    );
    bot.emit(
        "foo",
        Some(2),
        EventKind::UploadProgress {
            job: 1,
            sent_bytes: 10,
            total_bytes: 100,
            bytes_per_sec: 0.0,
        },
    )
    .await;
    let in_thread = wait_requests(rest, "POST", "/api/v10/channels/9003/messages", 1).await;
    assert!(in_thread[0]["content"].as_str().unwrap().contains("10%"));
    bot.emit(
        "foo",
        Some(2),
        EventKind::UploadProgress {
            job: 1,
            sent_bytes: 90,
            total_bytes: 100,
            bytes_per_sec: 0.0,
        },
    )
    .await;
    let edits = wait_requests(rest, "PATCH", "/api/v10/channels/9003/messages/9004", 1).await;
    assert!(edits[0]["content"].as_str().unwrap().contains("90%"));
    bot.stop().await;

    let posts = requests(rest, "POST", "/api/v10/channels/*/messages").await;
    // The 429'd ServiceStarted was sent again, then the live notice in the login's room with
    // mentions disabled.
    assert_eq!(posts[0], posts[1]);
    assert!(posts[1]["content"].as_str().unwrap().contains("started"));
    assert!(posts[2]["content"]
        .as_str()
        .unwrap()
        .contains("foo is live"));
    assert_eq!(posts[2]["allowed_mentions"]["parse"], json!([]));
    // The title's mentions, markdown link, code span and terminal/RTL controls stay inert text.
    assert_eq!(
        posts[2]["content"],
        "🔴 foo is live: @\u{200B}everyone come watch \\<@\u{200B}123\\> \\[free\\]\\(http\\://evil\\) 'x'\\[2J [Chess]"
    );
    let rooms: Vec<String> = rest
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/messages"))
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(rooms[0], "/api/v10/channels/888/messages");
    assert_eq!(rooms[2], format!("/api/v10/channels/{CHANNEL}/messages"));
}

// --- Connection loss ---

/// `/rec list` by anyone.
fn list(id: u32) -> Value {
    interaction(id, "666", &[], "list", json!([]))
}

impl FakeGateway {
    /// Makes the connection fail as `trouble` says and accepts the bot's next connection,
    /// which must resume the session where it left off.
    async fn resume_after(&self, conn: Conn, trouble: Gw) -> Conn {
        let last = self.seq.load(Ordering::SeqCst);
        conn.control.send(trouble).await.unwrap();
        let conn = self.accept().await;
        assert_eq!(conn.opened_with["op"], 6, "{}", conn.opened_with);
        assert_eq!(conn.opened_with["d"]["session_id"], "s1");
        assert_eq!(conn.opened_with["d"]["seq"], last, "{}", conn.opened_with);
        conn
    }
}

#[tokio::test]
async fn the_gateway_is_resumed_after_a_close_a_reconnect_request_and_a_drop() {
    let fake = Fake::new().await;
    let (rest, gateway) = (&fake.rest, &fake.gateway);
    let (bot, conn) = fake.start("", options()).await;
    assert_eq!(conn.opened_with["op"], 2, "identify first");
    send(&conn.dispatch, add_foo(1)).await;
    assert!(content(&answer(rest, 1).await).contains("Watching foo"));

    // Discord closes the connection with 4000 (unknown error): resumable.
    let conn = gateway.resume_after(conn, Gw::Close(4000)).await;
    send(&conn.dispatch, list(2)).await;
    assert!(content(&answer(rest, 2).await).contains("Watching 1:"));

    // Discord asks for a reconnect (op 7).
    let conn = gateway.resume_after(conn, Gw::Reconnect).await;
    send(&conn.dispatch, list(3)).await;
    assert!(content(&answer(rest, 3).await).contains("Watching 1:"));

    // The connection drops without a close frame.
    let conn = gateway.resume_after(conn, Gw::Drop).await;
    send(&conn.dispatch, list(4)).await;
    assert!(content(&answer(rest, 4).await).contains("Watching 1:"));
    // READY came once: /rec was registered once.
    let registered = requests(
        rest,
        "PUT",
        &format!("/api/v10/applications/{APP}/guilds/{GUILD}/commands"),
    )
    .await;
    assert_eq!(registered.len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn an_interaction_replayed_after_a_resume_is_run_and_answered_once() {
    let fake = Fake::new().await;
    let (rest, gateway) = (&fake.rest, &fake.gateway);
    let (bot, conn) = fake.start("", options()).await;
    send(&conn.dispatch, add_foo(1)).await;
    answer(rest, 1).await;
    let remove = json!([{"name": "login", "type": 3, "value": "foo"}]);
    let remove = interaction(2, OPERATOR, &[], "remove", remove);
    send(&conn.dispatch, remove.clone()).await;
    assert!(content(&answer(rest, 2).await).contains("Stopped watching foo"));

    // The connection closes and Discord replays the interaction on the resumed session.
    conn.control.send(Gw::Close(4000)).await.unwrap();
    let conn = gateway
        .accept_replaying(vec![("INTERACTION_CREATE".into(), remove)])
        .await;
    assert_eq!(conn.opened_with["op"], 6);
    send(&conn.dispatch, list(3)).await;
    assert!(content(&answer(rest, 3).await).contains("Not watching anything"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answers = requests(rest, "POST", "/api/v10/interactions/2/tok2/callback").await;
    assert_eq!(answers.len(), 1, "{answers:#?}");
    bot.stop().await;
}

#[tokio::test]
async fn a_refused_token_stops_the_front_end_instead_of_retrying() {
    let fake = Fake::new().await;
    let gateway = &fake.gateway;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let bot = Bot::with_front_end(
        fake.config(""),
        move |config, core, notices, shutdown, tracker| async move {
            let result = discord::run(config, core, notices, shutdown, tracker, options()).await;
            let _ = tx.send(result);
            Ok(())
        },
    )
    .await;
    let conn = gateway.accept().await;
    // 4004: authentication failed.
    conn.control.send(Gw::Close(4004)).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the front-end gives up at once")
        .unwrap();
    let error = result.unwrap_err().to_string();
    assert!(error.contains("[discord] token"), "{error}");
    assert!(!error.contains("test-token"), "{error}");
    let again = tokio::time::timeout(Duration::from_millis(500), gateway.listener.accept()).await;
    assert!(again.is_err(), "no new connection with a refused token");
    bot.stop().await;
}

// --- Rate limits ---

/// A route with a bucket of one call per second, as Discord reports it in its headers; a
/// call before the reset gets a 429.
#[derive(Clone, Default)]
struct OnePerSecond(Arc<std::sync::Mutex<Window>>);

#[derive(Default)]
struct Window {
    reset_at: Option<Instant>,
    served: Vec<Instant>,
    refused: u32,
}

impl Respond for OnePerSecond {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut w = self.0.lock().unwrap();
        let now = Instant::now();
        if let Some(reset_at) = w.reset_at.filter(|r| *r > now) {
            w.refused += 1;
            let left = (reset_at - now).as_secs_f64();
            return ResponseTemplate::new(429)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset-after", format!("{left:.3}").as_str())
                .set_body_json(json!({"message": "You are being rate limited.",
                    "retry_after": left, "global": false}));
        }
        w.reset_at = Some(now + Duration::from_secs(1));
        w.served.push(now);
        let id = format!("{}", 7000 + w.served.len());
        ResponseTemplate::new(200)
            .insert_header("x-ratelimit-limit", "1")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset-after", "1.000")
            .insert_header("x-ratelimit-bucket", "abcd")
            .set_body_json(json!({ "id": id }))
    }
}

#[tokio::test]
async fn posts_wait_for_an_empty_bucket_to_reset_instead_of_running_into_a_429() {
    let fake = Fake::bare().await;
    let rest = &fake.rest;
    let bucket = OnePerSecond::default();
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/888/messages"))
        .respond_with(bucket.clone())
        .with_priority(1)
        .mount(rest)
        .await;
    fake.mount().await;
    let (bot, _conn) = fake.start("events_room = \"888\"\n", options()).await;
    // ServiceStarted, then two more for the events room right away.
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 60 })
        .await;
    wait_requests(rest, "POST", "/api/v10/channels/888/messages", 3).await;
    bot.stop().await;
    let window = bucket.0.lock().unwrap();
    assert_eq!(window.refused, 0, "no call ran into the 429");
    // (ServiceStopping may have been posted too, also after a wait.)
    assert!(window.served.len() >= 3);
    for pair in window.served.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(990),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn a_reset_bot_token_pauses_posting_until_it_works_again_and_skips_nothing() {
    let fake = Fake::bare().await;
    let rest = &fake.rest;
    Mock::given(method("POST"))
        .and(path("/api/v10/channels/888/messages"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "401: Unauthorized", "code": 0})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(rest)
        .await;
    fake.mount().await;
    let (bot, _conn) = fake.start("events_room = \"888\"\n", options()).await;
    bot.emit("foo", None, EventKind::RecordingStalled { seconds: 30 })
        .await;
    let posts = wait_requests(rest, "POST", "/api/v10/channels/888/messages", 4).await;
    bot.stop().await;
    // ServiceStarted was refused twice, then posted; the next notice came after it.
    for post in &posts[..3] {
        assert!(content_of(post).contains("started"), "{posts:#?}");
    }
    assert!(content_of(&posts[3]).contains("no new video"), "{posts:#?}");
}

fn content_of(post: &Value) -> &str {
    post["content"].as_str().unwrap()
}

#[tokio::test]
async fn a_thread_that_already_exists_for_the_message_is_used() {
    let fake = Fake::bare().await;
    let rest = &fake.rest;
    // E.g. recbot stopped after starting the thread and before recording it.
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/channels/\d+/messages/\d+/threads$"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "A thread has already been created for this message", "code": 160004
        })))
        .with_priority(1)
        .mount(rest)
        .await;
    fake.mount().await;
    let (bot, conn) = fake.start("", options()).await;
    send(&conn.dispatch, add_foo(1)).await;
    answer(rest, 1).await;
    bot.emit(
        "foo",
        Some(5),
        EventKind::LiveDetected {
            stream_id: None,
            display_name: None,
            started_at: None,
            title: "t".into(),
            game: None,
            viewers: None,
            latency_secs: None,
        },
    )
    .await;
    wait_requests(rest, "POST", "/api/v10/channels/*/messages/*/threads", 1).await;
    bot.emit("foo", Some(5), EventKind::RecordingStalled { seconds: 30 })
        .await;
    // The live message (the first message id) is the thread.
    let in_thread = wait_requests(rest, "POST", "/api/v10/channels/9001/messages", 1).await;
    assert!(in_thread[0]["content"]
        .as_str()
        .unwrap()
        .contains("no new video"));
    bot.stop().await;
}

#[tokio::test]
async fn interactions_from_another_server_or_a_dm_are_refused_without_effect() {
    let fake = Fake::new().await;
    let rest = &fake.rest;
    let (bot, conn) = fake.start("", options()).await;
    let dispatch = conn.dispatch;
    // An operator's user id, in another server the bot was added to.
    let mut foreign = add_foo(1);
    foreign["guild_id"] = json!("999999999999999999");
    send(&dispatch, foreign).await;
    let reply = answer(rest, 1).await;
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(
        content(&reply).contains("not the one recbot serves"),
        "{reply}"
    );
    // The same operator in a direct message (no guild, no member: the user at the top).
    let mut dm = add_foo(2);
    let fields = dm.as_object_mut().unwrap();
    fields.remove("guild_id");
    let member = fields.remove("member").unwrap();
    fields.insert("user".into(), member["user"].clone());
    fields.insert("context".into(), json!(1));
    send(&dispatch, dm).await;
    let reply = answer(rest, 2).await;
    assert_eq!(reply["data"]["flags"], 64, "{reply}");
    assert!(content(&reply).contains("direct messages"), "{reply}");
    // Nothing ran.
    send(&dispatch, interaction(3, "666", &[], "list", json!([]))).await;
    let reply = answer(rest, 3).await;
    assert!(content(&reply).contains("Not watching anything"), "{reply}");
    bot.stop().await;
}

/// Waits (bounded) until the Discord link is absent or not, as `absent` says; its state.
async fn link_until(presence: &Presence, absent: bool) -> Option<LinkState> {
    for _ in 0..500 {
        let now = presence.absent();
        if now.is_empty() != absent {
            return now.first().map(|a| a.state.clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the Discord link stayed {:?}", presence.absent());
}

#[tokio::test]
async fn readiness_follows_the_gateway_connection() {
    let fake = Fake::new().await;
    let presence = Presence::default();
    let opts = DiscordOptions {
        link: presence.link("Discord"),
        ..options()
    };
    // The front-end's own end (a refused token, below) is expected here.
    let bot = Bot::with_front_end(
        fake.config(""),
        move |config, core, notices, shutdown, tracker| async move {
            let _ = discord::run(config, core, notices, shutdown, tracker, opts).await;
            Ok(())
        },
    )
    .await;
    assert_eq!(presence.absent()[0].state, LinkState::Connecting);
    let conn = fake.gateway.accept().await;
    link_until(&presence, false).await;

    // A close: serenity resumes the session on its own (it does not tell when a
    // connection is lost, only when it is back).
    let conn = fake.gateway.resume_after(conn, Gw::Close(4000)).await;
    link_until(&presence, false).await;

    // A refused token ends the front-end: it stays down, saying why.
    conn.control.send(Gw::Close(4004)).await.unwrap();
    let state = link_until(&presence, true).await;
    let Some(LinkState::Down(why)) = state else {
        panic!("{state:?}")
    };
    assert!(why.contains("uthentication"), "{why}");
    bot.stop().await;
}

#[tokio::test]
async fn the_summary_chart_is_attached_to_a_message_in_the_broadcasts_thread() {
    let fake = Fake::new().await;
    let rest = &fake.rest;
    let chart = fake.dir.path().join("foo \"x\".summary.png");
    std::fs::write(&chart, b"\x89PNG bytes").unwrap();
    let (bot, conn) = fake.start("", options()).await;
    send(&conn.dispatch, add_foo(1)).await;
    answer(rest, 1).await;
    bot.emit("foo", Some(2), live_now()).await;
    // The live notice is message 9001 in the room; its thread is channel 9002.
    wait_requests(rest, "POST", "/api/v10/channels/*/messages/*/threads", 1).await;
    let summary = EventKind::SummaryReady {
        path: chart.clone(),
        samples: 1,
        chat_lines: 2,
    };
    bot.emit("foo", Some(2), summary).await;
    wait_requests(rest, "POST", "/api/v10/channels/9002/messages", 1).await;
    bot.stop().await;
    let upload = rest
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/api/v10/channels/9002/messages")
        .unwrap();
    let kind = upload.headers["content-type"].to_str().unwrap().to_string();
    let boundary = kind
        .strip_prefix("multipart/form-data; boundary=")
        .expect(&kind);
    let body = String::from_utf8_lossy(&upload.body);
    assert!(body.starts_with(&format!("--{boundary}\r\n")), "{body}");
    assert!(body.ends_with(&format!("--{boundary}--\r\n")), "{body}");
    assert!(body.contains("name=\"payload_json\""));
    // The file name is reduced to safe characters in the header.
    assert!(body.contains("name=\"files[0]\"; filename=\"foo__x_.summary.png\""));
    let png = b"\x89PNG bytes";
    assert!(upload.body.windows(png.len()).any(|w| w == png));
    let json_start = body.find('{').unwrap();
    let json_end = body[json_start..].find("\r\n").unwrap() + json_start;
    let payload: Value = serde_json::from_str(&body[json_start..json_end]).unwrap();
    assert!(payload["content"].as_str().unwrap().contains("summary"));
    assert_eq!(payload["attachments"][0]["id"], 0);
    assert_eq!(payload["allowed_mentions"]["parse"], json!([]));
}

fn live_now() -> EventKind {
    EventKind::LiveDetected {
        stream_id: None,
        display_name: None,
        started_at: None,
        title: "t".into(),
        game: None,
        viewers: None,
        latency_secs: None,
    }
}
