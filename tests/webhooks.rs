//! Webhooks against a local receiver (axum): signed, in order, retried with the same delivery
//! id, filtered, refusals skipped and reported once, and resumed after a restart from the
//! webhook's own cursor.

mod support;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::frontend::{render, webhook};
use serde_json::Value;
use sha2::Sha256;
use support::{is, Bot};

const SECRET: &str = "whsec-test-value-123";
/// Answer code meaning "answer nothing for 3 s" (longer than the webhook's timeout).
const HANG: u16 = 0;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: Value,
    raw: Vec<u8>,
    status: u16,
}

impl Got {
    fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap()
    }

    fn id(&self) -> i64 {
        self.body["id"].as_i64().unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }

    /// The `lines` of a `ChatDropped` (the tests number their events with it).
    fn lines(&self) -> Option<u64> {
        (self.kind() == "ChatDropped").then(|| self.body["fields"]["lines"].as_u64().unwrap())
    }
}

#[derive(Debug, Default)]
struct Script {
    /// (event type, answer): the first request of that type gets that answer, once.
    answers: VecDeque<(String, u16)>,
    /// Every request answered 503 while set.
    down: bool,
    got: Vec<Got>,
}

type Shared = Arc<Mutex<Script>>;

async fn receive(State(script): State<Shared>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let body: Value = serde_json::from_slice(&raw).expect("a JSON body");
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let status = {
        let mut s = script.lock().unwrap();
        let status = match s.answers.iter().position(|(k, _)| *k == kind) {
            _ if s.down => 503,
            Some(i) => s.answers.remove(i).unwrap().1,
            None => 200,
        };
        s.got.push(Got {
            headers,
            body,
            raw: raw.to_vec(),
            status,
        });
        status
    };
    if status == HANG {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).unwrap()
}

/// A receiver on a local port: its URL and its script.
async fn receiver() -> (String, Shared) {
    let script = Shared::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, script)
}

fn config(dir: &Path, url: &str, extra: &str) -> Arc<Config> {
    let hook = format!(
        "[[webhooks]]\nname = \"ops\"\nurl = {url:?}\nsecret = {SECRET:?}\n\
         timeout_secs = 1\nretry_initial_ms = 20\nretry_max_secs = 1\n{extra}"
    );
    support::config(dir, "", &hook)
}

async fn start(config: Arc<Config>) -> Bot {
    Bot::with_front_end(config, |config, core, notices, _, tracker| {
        webhook::run(config, core, notices, tracker)
    })
    .await
}

/// Plays the chat worker: `lines` dropped (the tests' numbered events).
async fn dropped(bot: &Bot, lines: u64) {
    let event = Event::now(None, EventKind::ChatDropped { lines });
    bot.events.send(event).await;
}

/// Waits (at most 15 s) until what the receiver got satisfies `done`.
async fn until(script: &Shared, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    for _ in 0..1500 {
        {
            let s = script.lock().unwrap();
            if done(&s.got) {
                return s.got.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = script.lock().unwrap().got.clone();
    let seen: Vec<_> = got
        .iter()
        .map(|g| (g.kind().to_string(), g.status))
        .collect();
    panic!("the receiver never got {what}; got {seen:?}")
}

/// Delivered (2xx) `ChatDropped` numbers, in arrival order.
fn delivered_lines(got: &[Got]) -> Vec<u64> {
    got.iter()
        .filter(|g| g.status == 200)
        .filter_map(Got::lines)
        .collect()
}

/// Checks `X-Recbot-Signature` the way a receiver would.
fn signature_ok(got: &Got) -> bool {
    let header = got.header("x-recbot-signature");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("bad signature header {header}"));
    let unix: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - unix).abs() < 60, "{t}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.raw);
    mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

#[tokio::test]
async fn deliveries_are_signed_complete_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    let bot = start(config(dir.path(), &url, "")).await;
    for n in 1..=3 {
        dropped(&bot, n).await;
    }
    let got = until(&script, "three events", |g| delivered_lines(g).len() == 3).await;
    assert_eq!(
        got[0].kind(),
        "ServiceStarted",
        "a first run starts with its run"
    );
    assert_eq!(delivered_lines(&got), [1, 2, 3]);
    let ids: Vec<i64> = got.iter().map(Got::id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in log order: {ids:?}");
    for g in &got {
        assert!(signature_ok(g), "the signature matches the body");
        assert_eq!(g.header("content-type"), "application/json");
        assert_eq!(g.header("x-recbot-event"), g.kind());
        assert_eq!(g.header("x-recbot-delivery"), g.id().to_string());
        assert!(g.body["time"].is_string() && g.body.get("session").is_some());
        assert!(!String::from_utf8_lossy(&g.raw).contains(SECRET));
    }
    assert!(got[1].body["login"].is_null());
    // A tampered body fails the check a receiver makes.
    let mut forged = got[1].clone();
    forged.raw.push(b' ');
    assert!(!signature_ok(&forged));
    bot.stop().await;
}

#[tokio::test]
async fn failures_are_retried_with_the_same_delivery_id_before_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    script.lock().unwrap().answers = VecDeque::from([
        ("ChatDropped".to_string(), 500),
        ("ChatDropped".to_string(), HANG),
        ("ChatDropped".to_string(), 429),
    ]);
    let bot = start(config(dir.path(), &url, "")).await;
    dropped(&bot, 1).await;
    dropped(&bot, 2).await;
    let got = until(&script, "both events", |g| delivered_lines(g) == [1, 2]).await;
    let tries: Vec<(u64, u16, i64)> = got
        .iter()
        .filter_map(|g| Some((g.lines()?, g.status, g.id())))
        .collect();
    let first = tries[0].2;
    assert_eq!(
        tries.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
        [(1, 500), (1, HANG), (1, 429), (1, 200), (2, 200)],
        "the second event waits for the first"
    );
    assert!(tries[..4].iter().all(|t| t.2 == first), "{tries:?}");
    assert!(tries[4].2 > first);
    bot.stop().await;
}

#[tokio::test]
async fn only_the_listed_events_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    let bot = start(config(dir.path(), &url, "events = [\"ChatDropped\"]\n")).await;
    let other = EventKind::ChatDisconnected {
        reason: "test".into(),
    };
    bot.events.send(Event::now(None, other)).await;
    dropped(&bot, 1).await;
    let got = until(&script, "the listed event", |g| !g.is_empty()).await;
    // The unlisted event came first in the log; delivery is in order, so it was passed over.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got_now = script.lock().unwrap().got.clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got_now.iter().map(Got::kind).collect::<Vec<_>>(),
        ["ChatDropped"]
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_refusal_is_skipped_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    script.lock().unwrap().answers = VecDeque::from([("ChatDropped".to_string(), 404)]);
    let mut bot = start(config(dir.path(), &url, "")).await;
    dropped(&bot, 1).await;
    dropped(&bot, 2).await;
    let report = bot.wait_for("the refusal", is("WebhookRefused")).await;
    let got = until(&script, "the later event and the report", |g| {
        delivered_lines(g) == [2] && g.iter().any(|g| g.kind() == "WebhookRefused")
    })
    .await;
    let refused: Vec<&Got> = got.iter().filter(|g| g.lines() == Some(1)).collect();
    assert_eq!(refused.len(), 1, "a refusal is not retried");
    assert_eq!(refused[0].status, 404);
    let EventKind::WebhookRefused {
        webhook,
        delivery,
        event,
        status,
    } = &report.kind
    else {
        unreachable!()
    };
    assert_eq!(
        (webhook.as_str(), *delivery, event.as_str(), *status),
        ("ops", refused[0].id(), "ChatDropped", 404)
    );
    let line = render::event_line(&report);
    assert!(line.contains("webhook ops refused event"), "{line}");
    assert!(line.contains("HTTP 404"), "{line}");
    // Nothing else is reported about it (the receiver took the report itself).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reports = 0;
    while let Ok(notice) = bot.notices.try_recv() {
        reports += usize::from(notice.event.kind_name() == "WebhookRefused");
    }
    assert_eq!(reports, 0, "reported once");
    bot.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_after_the_last_delivered_event() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    let config = config(dir.path(), &url, "");

    let bot = start(config.clone()).await;
    dropped(&bot, 1).await;
    dropped(&bot, 2).await;
    until(&script, "the first run's events", |g| {
        delivered_lines(g) == [1, 2]
    })
    .await;
    bot.stop().await;

    // The receiver is down for the whole second run: its events wait in the log.
    script.lock().unwrap().down = true;
    let mut bot = start(config.clone()).await;
    dropped(&bot, 3).await;
    dropped(&bot, 4).await;
    // The first run's last event (in flight at its stop) holds every later one back; after
    // eight failed tries the trouble is reported once in chat.
    let failing = bot.wait_for("the report", is("DeliveryFailing")).await;
    let line = render::event_line(&failing);
    assert!(
        line.contains("delivery to webhook ops failed 8 times"),
        "{line}"
    );
    assert!(line.contains("HTTP 503"), "{line}");
    bot.stop().await;

    script.lock().unwrap().down = false;
    let bot = start(config).await;
    dropped(&bot, 5).await;
    let got = until(&script, "every event", |g| delivered_lines(g).len() >= 5).await;
    bot.stop().await;
    // At-least-once: the event in flight when a run stops (delivered, its cursor not yet
    // stored) comes again first in the next run; nothing else repeats, nothing is lost.
    let mut lines = delivered_lines(&got);
    lines.dedup();
    assert_eq!(lines, [1, 2, 3, 4, 5], "no loss, in order");
    let ok: Vec<&Got> = got.iter().filter(|g| g.status == 200).collect();
    let started = ok.iter().filter(|g| g.kind() == "ServiceStarted").count();
    assert_eq!(started, 3, "each run's start, the down run's too");
    // A repeat is only ever the in-flight event again, right after itself.
    for (i, g) in ok.iter().enumerate() {
        let again = ok[i + 1..].iter().any(|later| later.id() == g.id());
        assert!(
            !again || ok[i + 1].id() == g.id(),
            "{} twice, not as the event in flight at a stop",
            g.kind()
        );
        assert!(ok[..i].iter().all(|e| e.id() <= g.id()), "in order");
    }
}

#[tokio::test]
async fn stale_upload_progress_is_not_sent_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (url, script) = receiver().await;
    script.lock().unwrap().down = true;
    let bot = start(config(dir.path(), &url, "")).await;
    until(&script, "a try while down", |g| !g.is_empty()).await;
    for sent_bytes in [10, 20, 30] {
        let progress = EventKind::UploadProgress {
            job: 5,
            sent_bytes,
            total_bytes: 100,
            bytes_per_sec: 1.0,
        };
        bot.send("foo", progress).await;
    }
    dropped(&bot, 1).await;
    // Persisted before the receiver comes back (they are in the log, after ServiceStarted).
    tokio::time::sleep(Duration::from_millis(200)).await;
    script.lock().unwrap().down = false;
    let got = until(&script, "the events after the outage", |g| {
        delivered_lines(g) == [1]
    })
    .await;
    let progress: Vec<u64> = got
        .iter()
        .filter(|g| g.status == 200 && g.kind() == "UploadProgress")
        .map(|g| g.body["fields"]["sent_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(progress, [30], "only the latest progress of the job");
    bot.stop().await;
}
