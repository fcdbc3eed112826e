//! The HTTP API with a real client: bearer tokens and roles, the JSON API on the core's command
//! path (audit origin `http:<name>`), problem details for hostile input, the event stream over
//! SSE and WebSocket resumed without loss or repeat, and the probes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use recbot::config::Config;
use recbot::core::store::Store;
use recbot::event::{EventKind, Room};
use recbot::frontend::http::Listener;
use recbot::frontend::presence::{LinkState, Presence};
use serde_json::{json, Value};
use support::Bot;
use tokio_util::sync::CancellationToken;

const OPERATOR: &str = "operator-token-0001";
const VIEWER: &str = "viewer-token-000001";
/// How long a read from the server may take before the test fails.
const WITHIN: Duration = Duration::from_secs(10);

/// A bot with the HTTP API on a free port; the server has its own shutdown token, so it can
/// outlive the core (for `/readyz`).
struct Api {
    bot: Bot,
    addr: SocketAddr,
    server: CancellationToken,
    client: reqwest::Client,
    /// The chat front-ends `/readyz` asks about (none unless a test links one).
    presence: Presence,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        Api::start_in(tempfile::tempdir().unwrap()).await
    }

    /// In `dir` (state seeded there already, e.g. under `data/recbot.sqlite`).
    async fn start_in(dir: tempfile::TempDir) -> Api {
        let text = format!(
            "[storage]\ndata_dir = {:?}\n\
             [http]\nlisten = \"127.0.0.1:0\"\nheartbeat_secs = 0.2\n\
             [[http.tokens]]\nname = \"ops\"\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n\
             [[http.tokens]]\nname = \"dash\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n",
            dir.path().join("data").to_str().unwrap()
        );
        let text = recbot::config::testing::offline(&text);
        let config =
            Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());
        let listener = Listener::bind(&config.http).await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let mut bot = Bot::start(config).await;
        // Streams opened from here on start after it.
        bot.wait_for("ServiceStarted", support::is("ServiceStarted"))
            .await;
        let server = CancellationToken::new();
        let presence = Presence::default();
        let listener = listener.with_presence(presence.clone());
        tokio::spawn(listener.serve(bot.core.clone(), server.clone()));
        Api {
            bot,
            addr,
            server,
            client: reqwest::Client::new(),
            presence,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        with_token(self.client.get(self.url(path)), token)
    }

    fn post(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        with_token(self.client.post(self.url(path)), token)
    }

    fn delete(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        with_token(self.client.delete(self.url(path)), token)
    }

    /// `GET /api/v1/logins` as the operator: the logins watched.
    async fn logins(&self) -> Vec<String> {
        let (status, body) = json_of(self.get("/api/v1/logins", Some(OPERATOR))).await;
        assert_eq!(status, 200, "{body}");
        body["logins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["login"].as_str().unwrap().to_string())
            .collect()
    }

    /// Plays the chat logger: `lines` dropped for `login` (an event with no reaction).
    async fn emit(&self, login: &str, lines: u64) {
        self.bot.send(login, EventKind::ChatDropped { lines }).await;
    }

    async fn stop(self) {
        self.bot.stop().await;
        self.server.cancel();
    }
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Status and JSON body of a request.
async fn json_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// A problem-details answer: asserts its status and media type, returns its `detail`.
async fn problem(request: reqwest::RequestBuilder, status: u16) -> String {
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:recbot:problem:"));
    assert!(body["title"].is_string(), "{body}");
    body["detail"].as_str().unwrap().to_string()
}

/// An open SSE response read event by event.
struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// Heartbeat comments seen so far.
    heartbeats: usize,
}

impl Sse {
    async fn open(api: &Api, query: &str, last_event_id: Option<i64>) -> Sse {
        let mut request = api.get(&format!("/api/v1/events{query}"), Some(VIEWER));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            heartbeats: 0,
        }
    }

    /// The next event: its SSE id and its JSON.
    async fn next(&mut self) -> (i64, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.heartbeats += 1;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                match id {
                    Some(id) => return (id, serde_json::from_str(&data).unwrap()),
                    None => continue,
                }
            }
            let chunk = tokio::time::timeout(WITHIN, self.body.next())
                .await
                .expect("an SSE event within 10 s")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn take(&mut self, n: usize) -> Vec<(i64, Value)> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }
}

/// The `lines` of `ChatDropped` events, in order.
fn lines(events: &[(i64, Value)]) -> Vec<u64> {
    events
        .iter()
        .map(|(_, e)| {
            assert_eq!(e["type"], "ChatDropped", "{e}");
            e["lines"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn tokens_decide_who_may_read_and_who_may_change() {
    let api = Api::start().await;
    let health = api.get("/healthz", None).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let (status, ready) = json_of(api.get("/readyz", None)).await;
    assert_eq!((status, &ready["ready"]), (200, &json!(true)), "{ready}");

    // No token, an unknown one, a near miss: 401 with the challenge.
    for token in [
        None,
        Some("not-a-token-at-all-x"),
        Some("operator-token-000"),
    ] {
        let response = api.get("/api/v1/logins", token).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // The viewer reads, but may not change anything: 403 with chat's words, nothing added.
    let (status, _) = json_of(api.get("/api/v1/logins", Some(VIEWER))).await;
    assert_eq!(status, 200);
    let detail = problem(
        api.post("/api/v1/logins", Some(VIEWER))
            .json(&json!({ "login": "foo" })),
        403,
    )
    .await;
    assert!(detail.contains("Only operators may run `add`"), "{detail}");
    problem(api.delete("/api/v1/logins/foo", Some(VIEWER)), 403).await;
    problem(api.post("/api/v1/auth/youtube", Some(VIEWER)), 403).await;
    assert!(api.logins().await.is_empty());
    // Refused like a non-operator in chat: audited with the token's name.
    let store = Store::open(&api.bot.config.storage.database_path())
        .await
        .unwrap();
    let refused: Vec<String> = store
        .events_after(0, 100)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::CommandRefused { by, room, command } => {
                assert_eq!(
                    (by.as_str(), room),
                    ("http:dash", Room::Http("dash".into()))
                );
                Some(command)
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused, ["add foo", "remove foo", "auth youtube"]);
    store.close().await;
    api.stop().await;
}

#[tokio::test]
async fn logins_are_added_listed_and_removed_through_the_core_with_the_token_as_origin() {
    let api = Api::start().await;
    let (status, added) = json_of(api.post("/api/v1/logins", Some(OPERATOR)).json(&json!({
        "login": "https://www.twitch.tv/Foo", "quality": "720p60", "upload": false
    })))
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["added"], true);
    assert_eq!(added["login"]["login"], "foo");
    assert_eq!(added["login"]["quality"], "720p60");
    assert_eq!(added["login"]["upload"], false);
    assert_eq!(added["login"]["added_by"], "http:ops");
    assert_eq!(added["login"]["room"], "http:ops");
    // The same again: nothing new.
    let (status, again) = json_of(
        api.post("/api/v1/logins", Some(OPERATOR))
            .json(&json!({ "login": "foo", "quality": "720p60", "upload": false })),
    )
    .await;
    assert_eq!((status, &again["added"]), (200, &json!(false)), "{again}");
    assert_eq!(api.logins().await, ["foo"]);
    // Viewers see the list without who added it.
    let (_, seen) = json_of(api.get("/api/v1/logins", Some(VIEWER))).await;
    assert!(seen["logins"][0].get("added_by").is_none(), "{seen}");
    let (status, one) = json_of(api.get("/api/v1/logins/foo", Some(VIEWER))).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["login"]["login"], "foo");
    assert!(one["text"].as_str().unwrap().contains("foo"), "{one}");

    let (status, removed) = json_of(api.delete("/api/v1/logins/FOO", Some(OPERATOR))).await;
    assert_eq!(
        (status, &removed["removed"]),
        (200, &json!("foo")),
        "{removed}"
    );
    assert!(api.logins().await.is_empty());
    let detail = problem(api.delete("/api/v1/logins/foo", Some(OPERATOR)), 404).await;
    assert!(detail.contains("foo"), "{detail}");
    problem(api.get("/api/v1/logins/foo", Some(OPERATOR)), 404).await;

    // The audit log names the token.
    let store = Store::open(&api.bot.config.storage.database_path())
        .await
        .unwrap();
    let log = store.events_after(0, 100).await.unwrap().events;
    let audit: Vec<_> = log
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::WatchAdded { by, room, .. } | EventKind::WatchRemoved { by, room } => {
                Some((e.kind_name(), by.clone(), room.clone()))
            }
            _ => None,
        })
        .collect();
    let ops = Room::Http("ops".into());
    assert_eq!(
        audit,
        [
            ("WatchAdded", "http:ops".to_string(), ops.clone()),
            ("WatchAdded", "http:ops".to_string(), ops.clone()),
            ("WatchRemoved", "http:ops".to_string(), ops)
        ]
    );
    let refused = log.iter().any(
        |(_, e)| matches!(&e.kind, EventKind::CommandRefused { by, .. } if by.starts_with("http:")),
    );
    assert!(!refused);
    store.close().await;
    api.stop().await;
}

#[tokio::test]
async fn hostile_input_gets_chats_refusal_as_a_problem_and_changes_nothing() {
    let api = Api::start().await;
    let add = |body: Value| api.post("/api/v1/logins", Some(OPERATOR)).json(&body);
    let detail = problem(add(json!({ "login": "foo/../../etc" })), 400).await;
    assert!(detail.contains("is not a valid Twitch login"), "{detail}");
    let detail = problem(add(json!({ "login": "foo\u{202E}" })), 400).await;
    assert!(detail.contains("invisible character"), "{detail}");
    let detail = problem(add(json!({ "login": "foo", "quality": "9000p" })), 400).await;
    assert!(detail.contains("not a valid quality"), "{detail}");
    // A value cannot smuggle in a second word (an option) either.
    problem(add(json!({ "login": "foo upload=on" })), 400).await;
    let detail = problem(
        add(json!({ "hls_url": "file:///etc/passwd", "name": "x" })),
        400,
    )
    .await;
    assert!(detail.contains("http(s)"), "{detail}");
    problem(
        add(json!({ "login": "foo", "hls_url": "https://a.b/c.m3u8" })),
        400,
    )
    .await;
    problem(add(json!({ "login": "foo", "owner": "me" })), 400).await;
    let detail = problem(
        api.post("/api/v1/logins", Some(OPERATOR))
            .header("content-type", "application/json")
            .body("{\"login\": "),
        400,
    )
    .await;
    assert!(detail.contains("not valid"), "{detail}");
    let endless = api
        .post("/api/v1/logins", Some(OPERATOR))
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(endless.status(), 413);
    problem(api.post("/api/v1/uploads/abc/retry", Some(OPERATOR)), 400).await;
    problem(api.post("/api/v1/uploads/7/retry", Some(OPERATOR)), 404).await;
    problem(api.get("/api/v1/nothing", Some(OPERATOR)), 404).await;
    assert!(api.logins().await.is_empty());
    // Read-only operations answer JSON.
    for path in [
        "/api/v1/uploads",
        "/api/v1/quota",
        "/api/v1/disk",
        "/api/v1/status",
    ] {
        let (status, body) = json_of(api.get(path, Some(VIEWER))).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_object(), "{path}: {body}");
    }
    api.stop().await;
}

#[tokio::test]
async fn the_event_stream_resumes_after_a_dropped_connection_without_loss_or_repeat() {
    let api = Api::start().await;
    let mut sse = Sse::open(&api, "", None).await;
    for n in 1..=3 {
        api.emit("foo", n).await;
    }
    let first = sse.take(3).await;
    assert_eq!(lines(&first), [1, 2, 3]);
    assert_eq!(first[0].1["login"], "foo");
    assert_eq!(first[0].1["id"], first[0].0);
    drop(sse);
    // Produced while nobody listens.
    for n in 4..=6 {
        api.emit("foo", n).await;
    }
    let last_id = first[2].0;
    let mut sse = Sse::open(&api, "", Some(last_id)).await;
    // Live ones, some possibly while the replay is still running.
    for n in 7..=8 {
        api.emit("foo", n).await;
    }
    let second = sse.take(5).await;
    assert_eq!(lines(&second), [4, 5, 6, 7, 8]);
    let ids: Vec<i64> = first.iter().chain(&second).map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Nothing more is pending: the next event is the next one produced; heartbeats flowed.
    api.emit("foo", 9).await;
    assert_eq!(lines(&sse.take(1).await), [9]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.emit("foo", 10).await;
    assert_eq!(lines(&sse.take(1).await), [10]);
    assert!(sse.heartbeats >= 1, "no heartbeat comment");
    // `?after=` resumes like the header.
    let mut again = Sse::open(&api, &format!("?after={}", ids[5]), None).await;
    assert_eq!(lines(&again.take(2).await), [7, 8]);
    // A bad id is refused.
    problem(api.get("/api/v1/events?after=x", Some(VIEWER)), 400).await;
    api.stop().await;
}

#[tokio::test]
async fn the_event_stream_filters_by_login() {
    let api = Api::start().await;
    let mut bar = Sse::open(&api, "?login=bar&after=0", None).await;
    for (login, n) in [("foo", 1), ("bar", 2), ("foo", 3), ("bar", 4), ("bar", 5)] {
        api.emit(login, n).await;
    }
    let got = bar.take(3).await;
    assert_eq!(lines(&got), [2, 4, 5]);
    assert!(got.iter().all(|(_, e)| e["login"] == "bar"));
    problem(api.get("/api/v1/events?login=a/b", Some(VIEWER)), 400).await;
    api.stop().await;
}

#[tokio::test]
async fn the_websocket_carries_the_same_events_resumably() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let api = Api::start().await;
    for n in 1..=3 {
        api.emit("foo", n).await;
    }
    let mut sse = Sse::open(&api, "?after=0&login=foo", None).await;
    let from_sse = sse.take(3).await;

    let url = format!("ws://{}/api/v1/ws?after=0&login=foo", api.addr);
    let unauthorized = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(
        unauthorized.is_err(),
        "a WebSocket without a token is refused"
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {VIEWER}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for (id, event) in &from_sse {
        let got = ws_next(&mut socket).await;
        assert_eq!(&got, event);
        assert_eq!(got["id"], *id);
    }
    api.emit("foo", 4).await;
    assert_eq!(ws_next(&mut socket).await["lines"], 4);
    drop(socket);
    api.stop().await;
}

#[tokio::test]
async fn readyz_says_which_chat_front_end_is_not_connected() {
    let api = Api::start().await;
    let discord = api.presence.link("Discord");
    let response = api.get("/readyz", None).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("Discord is not connected yet"), "{body}");
    discord.report(LinkState::Down("the gateway closed".into()));
    let (status, body) = json_of(api.get("/readyz", None)).await;
    assert_eq!(status, 503);
    assert!(body["reasons"][0]
        .as_str()
        .unwrap()
        .ends_with(": the gateway closed"));
    discord.report(LinkState::Connected);
    let (status, body) = json_of(api.get("/readyz", None)).await;
    assert_eq!((status, &body["reasons"]), (200, &json!([])), "{body}");
    api.server.cancel();
    api.bot.stop().await;
}

#[tokio::test]
async fn readyz_says_why_once_the_core_has_stopped() {
    let api = Api::start().await;
    let (status, _) = json_of(api.get("/readyz", None)).await;
    assert_eq!(status, 200);
    let (client, url, server) = (api.client.clone(), api.url(""), api.server.clone());
    api.bot.stop().await;
    let response = client.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("stopped"), "{body}");
    let health = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.cancel();
}

/// The next event a WebSocket sends (heartbeats skipped).
async fn ws_next<S>(socket: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(WITHIN, socket.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "heartbeat" {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn recordings_list_sessions_with_their_parts() {
    use chrono::{Duration as Span, Utc};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let start = Utc::now() - Span::hours(5);
    let (old, new) = {
        let store = Store::open(&data.join("recbot.sqlite")).await.unwrap();
        let old = store
            .create_session("foo", Some("s1"), "Old", None, start)
            .await
            .unwrap();
        let file = data.join("recordings/foo/old-1.ts");
        store.start_part(old, 1, &file, start).await.unwrap();
        store
            .finish_part(old, 1, &file, 1000, 60.5, 2, false, start)
            .await
            .unwrap();
        store
            .end_session(old, start + Span::hours(1))
            .await
            .unwrap();
        let later = start + Span::hours(3);
        let new = store
            .create_session("bar", Some("s2"), "New", Some("Chess"), later)
            .await
            .unwrap();
        for n in 1..=2 {
            let file = data.join(format!("recordings/bar/new-{n}.ts"));
            store.start_part(new, n, &file, later).await.unwrap();
            store
                .finish_part(new, n, &file, 500, 30.0, 0, n == 2, later)
                .await
                .unwrap();
        }
        store.close().await;
        (old, new)
    };
    let api = Api::start_in(dir).await;

    let (status, all) = json_of(api.get("/api/v1/recordings", Some(VIEWER))).await;
    assert_eq!(status, 200, "{all}");
    let ids: Vec<i64> = all["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [new, old], "newest first");
    let bar = &all["recordings"][0];
    assert_eq!(bar["login"], "bar");
    assert_eq!(
        bar["totals"],
        json!({"parts": 2, "bytes": 1000, "duration_secs": 60.0, "gaps": 0})
    );
    assert_eq!(bar["parts"][1]["file"], "new-2.ts");
    assert_eq!(bar["parts"][1]["recovered"], true);
    assert!(
        bar["parts"][0].get("path").is_none(),
        "no folders for viewers"
    );

    let (_, foo) = json_of(api.get("/api/v1/recordings?login=foo", Some(OPERATOR))).await;
    assert_eq!(foo["recordings"].as_array().unwrap().len(), 1, "{foo}");
    let part = &foo["recordings"][0]["parts"][0];
    assert_eq!((&part["bytes"], &part["gaps"]), (&json!(1000), &json!(2)));
    assert!(part["path"].as_str().unwrap().ends_with("old-1.ts"));
    let since = (start + Span::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, recent) =
        json_of(api.get(&format!("/api/v1/recordings?since={since}"), Some(VIEWER))).await;
    assert_eq!(
        recent["recordings"].as_array().unwrap().len(),
        1,
        "{recent}"
    );
    assert_eq!(recent["recordings"][0]["id"], new);
    let (_, one) = json_of(api.get("/api/v1/recordings?limit=1", Some(VIEWER))).await;
    assert_eq!(one["recordings"].as_array().unwrap().len(), 1);

    let (status, single) =
        json_of(api.get(&format!("/api/v1/recordings/{old}"), Some(VIEWER))).await;
    assert_eq!((status, &single["title"]), (200, &json!("Old")), "{single}");
    problem(api.get("/api/v1/recordings/999", Some(VIEWER)), 404).await;
    problem(api.get("/api/v1/recordings/x", Some(VIEWER)), 400).await;
    problem(api.get("/api/v1/recordings?limit=0", Some(VIEWER)), 400).await;
    problem(
        api.get("/api/v1/recordings?since=yesterday", Some(VIEWER)),
        400,
    )
    .await;
    problem(api.get("/api/v1/recordings?login=../x", Some(VIEWER)), 400).await;
    problem(api.get("/api/v1/recordings", None), 401).await;
    api.stop().await;
}

// The OpenAPI document (`/api/v1/openapi.json`).

/// Every route the API has: the list, with the document itself.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/logins"),
    ("post", "/api/v1/logins"),
    ("get", "/api/v1/logins/{login}"),
    ("delete", "/api/v1/logins/{login}"),
    ("get", "/api/v1/recordings"),
    ("get", "/api/v1/recordings/{session}"),
    ("get", "/api/v1/uploads"),
    ("post", "/api/v1/uploads/{id}/retry"),
    ("get", "/api/v1/quota"),
    ("get", "/api/v1/disk"),
    ("get", "/api/v1/status"),
    ("post", "/api/v1/auth/{service}"),
    ("post", "/api/v1/auth/{service}/code"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/ws"),
    ("get", "/api/v1/openapi.json"),
];

const METHODS: [&str; 6] = ["get", "post", "put", "delete", "patch", "options"];

/// The document, fetched without a token.
async fn openapi(api: &Api) -> Value {
    let response = api.get("/api/v1/openapi.json", None).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// The documented (method, path) pairs.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                operations.push((method.clone(), path.clone()));
            }
        }
    }
    operations.sort();
    operations
}

/// A documented path with plausible values for its parameters.
fn filled(path: &str) -> String {
    path.replace("{login}", "foo")
        .replace("{session}", "1")
        .replace("{id}", "1")
        .replace("{service}", "youtube")
}

/// Whether a request reached a handler: not a 405, not the router's fallback (a handler's
/// own 404, such as `not-watched`, is an answer of that route).
async fn reaches_a_handler(api: &Api, method: &str, path: &str) -> Result<u16, String> {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let response = with_token(api.client.request(method, api.url(path)), Some(OPERATOR))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // Only the headers are awaited: `/events` is an endless stream.
    let fallback = if status == 404 {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["type"] == "urn:recbot:problem:not-found"
    } else {
        false
    };
    match status {
        405 => Err(format!("{path}: 405")),
        _ if fallback => Err(format!("{path}: the router's 404")),
        status => Ok(status),
    }
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let api = Api::start().await;
    let doc = openapi(&api).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let documented = operations(&doc);
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    // A login to read and remove.
    let (status, _) = json_of(
        api.post("/api/v1/logins", Some(OPERATOR))
            .json(&json!({ "login": "foo" })),
    )
    .await;
    assert_eq!(status, 201);
    // Every documented operation is served (removal last, so the others see the login) ...
    let mut documented = documented;
    documented.sort_by_key(|(method, _)| method == "delete");
    for (method, path) in &documented {
        reaches_a_handler(&api, method, &filled(path))
            .await
            .unwrap();
    }
    assert!(api.logins().await.is_empty(), "the DELETE was served");
    // ... and nothing else: the other methods of those paths are not allowed ...
    for (_, path) in &documented {
        let methods = doc["paths"][path].as_object().unwrap();
        for method in METHODS.iter().filter(|m| !methods.contains_key(**m)) {
            let answer = reaches_a_handler(&api, method, &filled(path)).await;
            assert!(answer.is_err(), "{method} {path} is served undocumented");
        }
    }
    // ... and paths beside them are the router's 404 (the status page's are not the API).
    for path in [
        "/api/v1/nothing",
        "/api/v1/logins/foo/bar",
        "/api/v1/openapi.yaml",
        "/api/v2/logins",
        "/openapi.json",
    ] {
        assert!(
            reaches_a_handler(&api, "get", path).await.is_err(),
            "{path}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn every_ref_in_the_openapi_document_resolves() {
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(target)) = object.get("$ref") {
                    found.push(target);
                }
                object.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let api = Api::start().await;
    let doc = openapi(&api).await;
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 40, "{}", found.len());
    for target in found {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    // Every operation's security scheme is declared.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["token"]["scheme"], "bearer");
    assert_eq!(schemes["metrics_token"]["scheme"], "bearer");
    for (method, path) in operations(&doc) {
        for requirement in doc["paths"][&path][&method]["security"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: {name}");
            }
        }
    }
    api.stop().await;
}

/// Where `value` breaks `schema` (resolved in `doc`): missing required properties, wrong
/// types, date-times that are not RFC 3339; nested properties and items too.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(target) = schema["$ref"].as_str() {
        let resolved = doc.pointer(target.strip_prefix('#').unwrap()).unwrap();
        return violations(doc, resolved, value, at, out);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        // `Option<Struct>`: null or the struct.
        if value.is_null() && options.iter().any(|o| o["type"] == "null") {
            return;
        }
        let inner = options.iter().find(|o| o["type"] != "null").unwrap();
        return violations(doc, inner, value, at, out);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: {kind}, the schema says {types:?}"));
        return;
    }
    if let (Some(text), Some("date-time")) = (value.as_str(), schema["format"].as_str()) {
        if chrono::DateTime::parse_from_rfc3339(text).is_err() {
            out.push(format!("{at}: {text:?} is not a date-time"));
        }
    }
    if let Value::Object(object) = value {
        for key in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(key.as_str().unwrap()) {
                out.push(format!("{at}: no `{key}`"));
            }
        }
        for (key, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(inner) = object.get(key) {
                violations(doc, property, inner, &format!("{at}.{key}"), out);
            }
        }
    }
    if let Value::Array(items) = value {
        for (i, item) in items.iter().enumerate() {
            violations(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
        }
    }
}

/// Asserts that what `method path` answered with `status` fits its documented body.
fn assert_fits(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let content = response["content"].as_object().expect("a documented body");
    let (_, media) = content.iter().next().unwrap();
    let mut out = Vec::new();
    violations(doc, &media["schema"], body, "body", &mut out);
    assert!(
        out.is_empty(),
        "{method} {path} {status}: {out:?}\n{body:#}"
    );
}

#[tokio::test]
async fn the_bodies_served_have_what_the_openapi_document_requires() {
    use chrono::Utc;
    use recbot::core::store::NewUploadJob;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    {
        let store = Store::open(&data.join("recbot.sqlite")).await.unwrap();
        let now = Utc::now();
        let session = store
            .create_session("foo", Some("s1"), "Title", None, now)
            .await
            .unwrap();
        let file = data.join("recordings/foo-1.ts");
        std::fs::write(&file, b"video").unwrap();
        store.start_part(session, 1, &file, now).await.unwrap();
        store
            .finish_part(session, 1, &file, 5, 2.0, 0, false, now)
            .await
            .unwrap();
        store
            .insert_upload_job(&NewUploadJob {
                login: Some(recbot_commands::Login::parse("foo").unwrap()),
                session: Some(session),
                path: file,
                sidecar: None,
                total_bytes: 5,
                node: None,
            })
            .await
            .unwrap();
        store.close().await;
    }
    let api = Api::start_in(dir).await;
    let doc = openapi(&api).await;
    let (status, added) = json_of(api.post("/api/v1/logins", Some(OPERATOR)).json(&json!({
        "hls_url": "http://127.0.0.1:9/live.m3u8", "name": "bar", "upload": false
    })))
    .await;
    assert_fits(&doc, "post", "/api/v1/logins", status, &added);
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["login"]["hls_url"], "http://127.0.0.1:9/live.m3u8");
    for token in [OPERATOR, VIEWER] {
        for path in [
            "/api/v1/logins",
            "/api/v1/status",
            "/api/v1/quota",
            "/api/v1/uploads",
            "/api/v1/disk",
            "/api/v1/recordings",
        ] {
            let (status, body) = json_of(api.get(path, Some(token))).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_fits(&doc, "get", path, status, &body);
        }
    }
    // Not empty lists: their items were checked too.
    let (_, uploads) = json_of(api.get("/api/v1/uploads", Some(VIEWER))).await;
    assert_eq!(uploads["uploads"][0]["state"], "queued", "{uploads}");
    let (_, recordings) = json_of(api.get("/api/v1/recordings", Some(VIEWER))).await;
    assert_eq!(recordings["recordings"][0]["parts"][0]["bytes"], 5);
    let (status, one) = json_of(api.get("/api/v1/logins/bar", Some(VIEWER))).await;
    assert_fits(&doc, "get", "/api/v1/logins/{login}", status, &one);
    let (status, gone) = json_of(api.delete("/api/v1/logins/bar", Some(OPERATOR))).await;
    assert_fits(&doc, "delete", "/api/v1/logins/{login}", status, &gone);
    // Problems fit the problem schema; a wrong type is caught.
    let (status, missing) = json_of(api.get("/api/v1/logins/bar", Some(VIEWER))).await;
    assert_eq!(status, 404);
    assert_fits(&doc, "get", "/api/v1/logins/{login}", status, &missing);
    let mut out = Vec::new();
    let schema = json!({ "$ref": "#/components/schemas/Problem" });
    violations(
        &doc,
        &schema,
        &json!({ "type": "x", "status": "404" }),
        "p",
        &mut out,
    );
    assert_eq!(out.len(), 3, "{out:?}");
    let (status, ready) = json_of(api.get("/readyz", None)).await;
    assert_fits(&doc, "get", "/readyz", status, &ready);
    api.stop().await;
}
