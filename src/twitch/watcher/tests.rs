use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;
use crate::event::Event;

fn login(s: &str) -> Login {
    Login::parse(s).unwrap()
}

fn live(id: &str, title: &str) -> Option<Observed> {
    Some(Observed {
        stream_id: Some(id.into()),
        display_name: Some("Foo".into()),
        title: Some(title.into()),
        game: Some("Chess".into()),
        viewers: Some(10),
        started_at: Some("2026-11-21T10:00:00Z".parse().unwrap()),
    })
}

fn observe(pairs: Vec<(&str, Option<Observed>)>) -> Observations {
    pairs.into_iter().map(|(l, o)| (login(l), o)).collect()
}

fn names(events: &[(Login, EventKind)]) -> Vec<&'static str> {
    events.iter().map(|(_, k)| k.name()).collect()
}

#[test]
fn diff_reports_each_stream_once_and_each_change() {
    let mut known = BTreeMap::new();
    let now: DateTime<Utc> = "2026-11-21T10:00:04.5Z".parse().unwrap();
    let events = diff(
        &mut known,
        observe(vec![("foo", live("1", "hello")), ("bar", None)]),
        now,
    );
    assert_eq!(names(&events), ["LiveDetected"]);
    match &events[0].1 {
        EventKind::LiveDetected {
            stream_id,
            display_name,
            latency_secs,
            ..
        } => {
            assert_eq!(stream_id.as_deref(), Some("1"));
            assert_eq!(display_name.as_deref(), Some("Foo"));
            assert_eq!(*latency_secs, Some(4.5));
        }
        other => panic!("{other:?}"),
    }
    // Same stream, same facts: nothing to say.
    assert!(diff(&mut known, observe(vec![("foo", live("1", "hello"))]), now).is_empty());
    // Title changed.
    let events = diff(
        &mut known,
        observe(vec![("foo", live("1", "new title"))]),
        now,
    );
    assert_eq!(names(&events), ["StreamUpdated"]);
    // A probe that learnt nothing but liveness keeps the known facts, reports nothing.
    let events = diff(
        &mut known,
        observe(vec![("foo", Some(Observed::default()))]),
        now,
    );
    assert!(events.is_empty());
    assert_eq!(known[&login("foo")].title, "new title");
    // A new stream id is a new stream.
    let events = diff(&mut known, observe(vec![("foo", live("2", "again"))]), now);
    assert_eq!(names(&events), ["StreamOffline", "LiveDetected"]);
    // Offline.
    let events = diff(&mut known, observe(vec![("foo", None)]), now);
    assert_eq!(names(&events), ["StreamOffline"]);
    assert!(known.is_empty());
    // A login missing from the observations (its check failed) keeps its state.
    diff(&mut known, observe(vec![("foo", live("3", "x"))]), now);
    assert!(diff(&mut known, Observations::new(), now).is_empty());
    assert!(known.contains_key(&login("foo")));
}

fn config_for(server: &MockServer, helix: bool) -> Config {
    // Probing keeps its GQL device id under data_dir: somewhere of the tests' own.
    let data = std::env::temp_dir().join("recbot-watcher-tests");
    let mut text = format!(
        "[storage]\ndata_dir = {data:?}\n[twitch]\nhelix_url = \"{0}/helix\"\nid_url = \"{0}/oauth2\"\ngql_url = \"{0}/gql\"\n\
         usher_url = \"{0}\"\npoll_interval_secs = 1\n",
        server.uri()
    );
    if helix {
        text.push_str("client_id = \"cid\"\nclient_secret = \"secret\"\n");
    }
    Config::from_text(&text, std::path::Path::new("/tmp/recbot.toml"), &[]).unwrap()
}

fn watcher(config: &Config) -> (Watcher, mpsc::Receiver<Event>) {
    let http = reqwest::Client::new();
    let detector = Detector::new(config, http);
    let (tx, rx) = mpsc::channel(64);
    let events = Events::new(tx);
    let (status, _) = watch::channel(WatcherStatus::default());
    let watcher = Watcher {
        detector,
        known: BTreeMap::new(),
        events,
        status,
        failed_cycles: 0,
        reported_failure: false,
        recheck_at: HashMap::new(),
        intervals: Intervals {
            poll: Duration::from_secs(10),
            safety_net: Duration::from_secs(120),
        },
        pushing: false,
        eventsub_up: false,
        pushed_at: HashMap::new(),
        checks: 0,
        checked: None,
    };
    (watcher, rx)
}

async fn mount_token(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "apptoken", "expires_in": 3600})),
        )
        .mount(server)
        .await;
}

/// Helix fake: answers with the logins listed as live, records how many logins each request
/// carried.
struct FakeHelix {
    live: Vec<&'static str>,
    batches: Mutex<Vec<usize>>,
}

impl Respond for &'static FakeHelix {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked: Vec<String> = request
            .url
            .query_pairs()
            .filter(|(k, _)| k == "user_login")
            .map(|(_, v)| v.into_owned())
            .collect();
        self.batches.lock().unwrap().push(asked.len());
        let data: Vec<_> = asked
            .iter()
            .filter(|l| self.live.contains(&l.as_str()))
            .map(|l| {
                json!({"id": format!("id-{l}"), "user_login": l, "user_name": l.to_uppercase(),
                       "game_name": "Chess", "title": "on air", "viewer_count": 3,
                       "started_at": "2026-11-21T10:00:00Z", "type": "live"})
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("Ratelimit-Remaining", "700")
            .set_body_json(json!({"data": data, "pagination": {}}))
    }
}

/// A token endpoint and a Helix fake that reports `live` as live.
async fn helix_server(live: Vec<&'static str>) -> (MockServer, &'static FakeHelix) {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let fake: &'static FakeHelix = Box::leak(Box::new(FakeHelix {
        live,
        batches: Mutex::new(Vec::new()),
    }));
    Mock::given(method("GET"))
        .and(path("/helix/streams"))
        .respond_with(fake)
        .mount(&server)
        .await;
    (server, fake)
}

#[tokio::test]
async fn helix_checks_250_logins_in_3_requests() {
    let (server, fake) = helix_server(vec!["user7", "user180"]).await;
    let config = config_for(&server, true);
    let (mut watcher, mut rx) = watcher(&config);
    let logins: Vec<Login> = (0..250).map(|i| login(&format!("user{i}"))).collect();
    watcher.cycle(&logins, true).await;
    let mut batches = fake.batches.lock().unwrap().clone();
    batches.sort();
    assert_eq!(batches, vec![50, 100, 100]);
    let mut live = Vec::new();
    while let Ok(event) = rx.try_recv() {
        assert_eq!(event.kind.name(), "LiveDetected");
        live.push(event.login.unwrap().to_string());
    }
    live.sort();
    assert_eq!(live, ["user180", "user7"]);
    assert_eq!(watcher.status.borrow().last_check_requests, 3);
    assert_eq!(watcher.status.borrow().live.len(), 2);

    // 10 000 logins cost 100 requests per cycle.
    fake.batches.lock().unwrap().clear();
    let many: Vec<Login> = (0..10_000).map(|i| login(&format!("u{i}"))).collect();
    watcher.cycle(&many, true).await;
    assert_eq!(fake.batches.lock().unwrap().len(), 100);
}

#[tokio::test]
async fn probing_without_credentials_uses_usher_and_gql_metadata() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/gql"))
        .respond_with(|request: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            if body["operationName"] == "PlaybackAccessToken" {
                ResponseTemplate::new(200).set_body_json(json!({"data": {
                    "streamPlaybackAccessToken": {"value": "v", "signature": "s"}}}))
            } else {
                assert_eq!(body["variables"]["l0"], "onair");
                ResponseTemplate::new(200).set_body_json(json!({"data": {"u0": {
                    "displayName": "OnAir", "stream": {"id": "555", "title": "probe title",
                    "createdAt": "2026-11-21T10:00:00Z", "viewersCount": 1,
                    "game": {"name": "Art"}}}}}))
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/channel/hls/onair.m3u8"))
        .respond_with(ResponseTemplate::new(200).set_body_string("#EXTM3U\n"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2/channel/hls/idle"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let config = config_for(&server, false);
    let (mut watcher, mut rx) = watcher(&config);
    assert_eq!(watcher.detector.mode(), "probe");
    watcher
        .cycle(&[login("idle1"), login("onair"), login("idle2")], true)
        .await;
    let event = rx.try_recv().unwrap();
    assert_eq!(event.login.unwrap().as_str(), "onair");
    match event.kind {
        EventKind::LiveDetected {
            stream_id,
            title,
            game,
            display_name,
            ..
        } => {
            assert_eq!(stream_id.as_deref(), Some("555"));
            assert_eq!(title, "probe title");
            assert_eq!(game.as_deref(), Some("Art"));
            assert_eq!(display_name.as_deref(), Some("OnAir"));
        }
        other => panic!("{other:?}"),
    }
    assert!(rx.try_recv().is_err());
    // 3 logins × (token + usher) + 1 metadata batch.
    assert_eq!(watcher.status.borrow().last_check_requests, 7);
}

#[tokio::test]
async fn failing_checks_are_reported_once_and_their_recovery_too() {
    let server = MockServer::start().await;
    let calls = Box::leak(Box::new(AtomicUsize::new(0)));
    // The token endpoint refuses three times (wrong secret), then works.
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(move |_: &Request| {
            if calls.fetch_add(1, Ordering::SeqCst) < 4 {
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "invalid client secret"}))
            } else {
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "t", "expires_in": 60}))
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/helix/streams"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&server)
        .await;
    let config = config_for(&server, true);
    let (mut watcher, mut rx) = watcher(&config);
    let logins = [login("foo")];
    for _ in 0..4 {
        watcher.cycle(&logins, true).await;
    }
    let failed = rx.try_recv().unwrap();
    match failed.kind {
        EventKind::LiveCheckFailed { reason, cycles } => {
            assert_eq!(cycles, 3);
            assert!(reason.contains("client_secret"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rx.try_recv().is_err(), "reported once, not every cycle");
    assert!(watcher.status.borrow().last_error.is_some());
    watcher.cycle(&logins, true).await;
    assert_eq!(rx.try_recv().unwrap().kind, EventKind::LiveCheckRecovered);
    assert!(watcher.status.borrow().last_error.is_none());
}

#[tokio::test]
async fn the_running_watcher_checks_new_logins_at_once_and_polls() {
    let (server, fake) = helix_server(vec!["foo"]).await;
    let config = config_for(&server, true);
    let (tx, mut rx) = mpsc::channel(16);
    let events = Events::new(tx);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = spawn(&config, events, None, shutdown.clone(), &tracker);
    // Let the first (empty) cycle pass, then add a login: it must be checked well before the
    // next poll.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    handle.set_wanted(vec![login("foo"), login("bar")]);
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.kind.name(), "LiveDetected");
    assert!(started.elapsed() < Duration::from_millis(900));
    // The next full poll includes both logins.
    tokio::time::timeout(Duration::from_secs(3), async {
        while !fake.batches.lock().unwrap().contains(&2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let status = handle.status();
    assert_eq!(status.mode, "helix");
    assert_eq!(status.watched, 2);
    assert!(status.live.contains_key(&login("foo")));
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_recheck_reports_a_still_live_stream_again_once_due() {
    let (server, _) = helix_server(vec!["foo"]).await;
    let config = config_for(&server, true);
    let (mut watcher, mut rx) = watcher(&config);
    let logins = [login("foo")];
    watcher.cycle(&logins, true).await;
    assert_eq!(rx.try_recv().unwrap().kind.name(), "LiveDetected");
    watcher.cycle(&logins, true).await;
    assert!(rx.try_recv().is_err(), "once per stream");
    // Not due yet: nothing.
    watcher.recheck_at.insert(
        login("foo"),
        (None, Instant::now() + Duration::from_secs(3600)),
    );
    watcher.cycle(&logins, true).await;
    assert!(rx.try_recv().is_err());
    // Due, but for another stream than the one live now (that one is already reported):
    // nothing.
    watcher
        .recheck_at
        .insert(login("foo"), (Some("older".into()), Instant::now()));
    watcher.cycle(&logins, true).await;
    assert!(rx.try_recv().is_err());
    assert!(watcher.recheck_at.is_empty());
    // Due for this stream: it is reported again, once.
    watcher
        .recheck_at
        .insert(login("foo"), (Some("id-foo".into()), Instant::now()));
    watcher.cycle(&logins, true).await;
    let again = rx.try_recv().unwrap();
    match again.kind {
        EventKind::LiveDetected { stream_id, .. } => {
            assert_eq!(stream_id.as_deref(), Some("id-foo"))
        }
        other => panic!("{other:?}"),
    }
    watcher.cycle(&logins, true).await;
    assert!(rx.try_recv().is_err());
    assert!(watcher.recheck_at.is_empty());
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_slow_cycle() {
    // Helix takes 20 s to answer (a rate-limit wait or a slow network would do the same).
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/helix/streams"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": []}))
                .set_delay(Duration::from_secs(20)),
        )
        .mount(&server)
        .await;
    let config = config_for(&server, true);
    let (tx, _rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = spawn(&config, Events::new(tx), None, shutdown.clone(), &tracker);
    handle.set_wanted(vec![login("foo")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .expect("the watcher stops within 2 s of shutdown");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn helix_batches_run_side_by_side() {
    // Each answer takes 300 ms: 8 batches one after another would take 2.4 s.
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path("/helix/streams"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let config = config_for(&server, true);
    let (mut watcher, _rx) = watcher(&config);
    let logins: Vec<Login> = (0..800).map(|i| login(&format!("u{i}"))).collect();
    let started = std::time::Instant::now();
    watcher.cycle(&logins, true).await;
    let took = started.elapsed();
    assert_eq!(watcher.status.borrow().last_check_requests, 8);
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn each_check_publishes_which_asked_logins_are_live() {
    let (server, _fake) = helix_server(vec!["user1"]).await;
    let config = config_for(&server, true);
    let (mut watcher, _rx) = watcher(&config);
    let status = watcher.status.subscribe();
    let logins = vec![login("user1"), login("user2")];
    watcher.cycle(&logins, true).await;
    let first = status.borrow().checked.clone().expect("a check");
    assert_eq!((first.seq, first.live.clone()), (1, vec![login("user1")]));
    assert_eq!(status.borrow().live[&login("user1")].viewers, Some(3));
    // A check of only the offline login: a new check, with nobody live in it.
    watcher.cycle(&[login("user2")], false).await;
    let second = status.borrow().checked.clone().expect("a check");
    assert_eq!(second.seq, 2);
    assert!(second.live.is_empty());
    assert!(second.at >= first.at);
}
