//! Where recbot may connect for `add hls` sources, with the guard on (`allow_private_sources =
//! false`): the command refuses loopback/private/metadata addresses (written or resolved) and
//! changes nothing; the guarded client refuses redirects to such addresses and segments that
//! point at them, each with its reason. Everything runs against local servers: the one "public"
//! origin is a local server listed in `allowed_sources` by address and port.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recbot::allowed_source::AllowedSource;
use recbot::config::Config;
use recbot::core::store::Store;
use recbot::core::{Core, CoreHandle, Origin as Who};
use recbot::event::{Event, EventKind};
use recbot::recorder::fetch::{self, FetchError, Http};
use recbot::recorder::source_guard::SourceGuard;
use recbot::recorder::{Recorder, RecordingSpec, SourceSpec};
use recbot_commands::{Login, Quality};
use support::Ask;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(dir: &Path, recording: &str) -> Arc<Config> {
    let text = recbot::config::testing::offline(&format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n[twitch]\noffline_grace_secs = 1\n\
         [recording]\nallow_private_sources = false\n{recording}",
        dir.to_str().unwrap()
    ));
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

/// `allowed_sources` listing just this server (address and port).
fn only(server: &MockServer) -> String {
    format!("allowed_sources = [\"{}\"]\n", server.address())
}

/// The guarded client allowing just `server`.
fn guarded(server: &MockServer) -> Http {
    Http::guarded(SourceGuard::new(
        false,
        vec![AllowedSource::parse(&server.address().to_string()).unwrap()],
    ))
}

struct Bot {
    core: CoreHandle,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Bot {
    async fn start(config: Arc<Config>) -> Bot {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (core, handle) = Core::open(config, shutdown.clone()).await.unwrap();
        core.spawn(&tracker).await.unwrap();
        Bot {
            core: handle,
            shutdown,
            tracker,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[tokio::test]
async fn add_hls_refuses_private_addresses_and_changes_nothing() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(config(dir.path(), &only(&server))).await;
    let other_port = server.address().port().wrapping_add(1).max(1);
    for (url, words) in [
        // A loopback port that is not the listed one.
        (
            format!("http://127.0.0.1:{other_port}/live.m3u8"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://127.0.0.2:{}/live.m3u8", server.address().port()),
            "127.0.0.2 is a loopback address",
        ),
        // A name that resolves to loopback: looked up off the core loop.
        (
            format!("http://localhost:{}/live.m3u8", server.address().port()),
            "`localhost` resolves to",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "cloud metadata",
        ),
        (
            "http://[::ffff:10.1.2.3]/live.m3u8".to_string(),
            "IPv4-mapped 10.1.2.3, a private",
        ),
        (
            "http://[fd00:ec2::254]/x.m3u8".to_string(),
            "cloud metadata",
        ),
        ("http://192.168.1.10/x.m3u8".to_string(), "private"),
    ] {
        let reply = bot
            .core
            .ask(&format!("add hls {url} studio"), Who::console())
            .await;
        assert!(!reply.ok, "{url}: {reply:?}");
        assert!(reply.text.contains(words), "{url}: {}", reply.text);
        assert!(reply.text.contains("Nothing was changed"), "{}", reply.text);
    }
    let list = bot.core.ask("list", Who::console()).await;
    assert!(!list.text.contains("studio"), "{}", list.text);
    // The listed origin is fine.
    let reply = bot
        .core
        .ask(
            &format!("add hls {}/live.m3u8 studio", server.uri()),
            Who::console(),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    bot.stop().await;
    // Only the allowed source was ever stored.
    let store = Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let watches = store.watches().await.unwrap();
    assert_eq!(watches.len(), 1, "{watches:?}");
    store.close().await;
}

#[tokio::test]
async fn add_hls_trusts_a_listed_name_on_its_port_only() {
    // `localhost` listed by name: trusted without looking its addresses up, the add applied.
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(config(dir.path(), "allowed_sources = [\"localhost\"]\n")).await;
    let reply = bot
        .core
        .ask(
            "add hls http://localhost:8080/live.m3u8 studio",
            Who::console(),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    // A listed name on another port than the one listed is refused.
    let dir2 = tempfile::tempdir().unwrap();
    let bot2 = Bot::start(config(
        dir2.path(),
        "allowed_sources = [\"localhost:8080\"]\n",
    ))
    .await;
    let reply = bot2
        .core
        .ask(
            "add hls http://localhost:9090/live.m3u8 cam",
            Who::console(),
        )
        .await;
    assert!(!reply.ok, "{reply:?}");
    assert!(reply.text.contains("port 8080 only"), "{}", reply.text);
    bot.stop().await;
    bot2.stop().await;
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

async fn redirect(server: &MockServer, from: &str, to: &str) {
    Mock::given(path(from))
        .respond_with(ResponseTemplate::new(302).insert_header("location", to))
        .mount(server)
        .await;
}

#[tokio::test]
async fn redirects_to_private_addresses_are_refused_with_the_reason() {
    let server = MockServer::start().await;
    let port = server.address().port();
    Mock::given(path("/ok.m3u8"))
        .respond_with(ResponseTemplate::new(200).set_body_string("#EXTM3U\n"))
        .mount(&server)
        .await;
    redirect(&server, "/moved", "/ok.m3u8").await;
    redirect(
        &server,
        "/to-loopback",
        &format!("http://127.0.0.2:{port}/ok.m3u8"),
    )
    .await;
    redirect(
        &server,
        "/to-metadata",
        "http://169.254.169.254/latest/meta-data/",
    )
    .await;
    redirect(
        &server,
        "/to-name",
        &format!("http://localhost:{port}/ok.m3u8"),
    )
    .await;
    redirect(&server, "/to-file", "file:///etc/passwd").await;
    for n in 0..10 {
        redirect(&server, &format!("/loop/{n}"), &format!("/loop/{}", n + 1)).await;
    }
    let http = guarded(&server);
    let cancel = CancellationToken::new();
    // A redirect within the allowed origin is followed.
    let body = fetch::get(
        &http,
        &url(&format!("{}/moved", server.uri())),
        None,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(&body[..], b"#EXTM3U\n");
    for (from, words) in [
        (
            "/to-loopback",
            "redirected: 127.0.0.2 is a loopback address",
        ),
        (
            "/to-metadata",
            "redirected: 169.254.169.254 is a cloud metadata address",
        ),
        // Checked by the resolver when connecting.
        ("/to-name", "`localhost` resolves to"),
        ("/loop/0", "more than 5 redirects"),
    ] {
        let err = fetch::get(
            &http,
            &url(&format!("{}{from}", server.uri())),
            None,
            &cancel,
        )
        .await
        .unwrap_err();
        let FetchError::Disallowed(why) = &err else {
            panic!("{from}: {err:?}");
        };
        assert!(why.contains(words), "{from}: {why}");
    }
    // reqwest never follows a redirect to another scheme: the 302 itself is the answer.
    let err = fetch::get(
        &http,
        &url(&format!("{}/to-file", server.uri())),
        None,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Status(302)), "{err:?}");
    // A written loopback address and a name resolving to one are refused before any request.
    let before = server.received_requests().await.unwrap().len();
    for (u, words) in [
        (format!("http://127.0.0.1:{}/ok.m3u8", port + 1), "loopback"),
        (
            format!("http://localhost:{port}/ok.m3u8"),
            "`localhost` resolves to",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/ok.m3u8"),
            "IPv4-mapped",
        ),
    ] {
        let err = fetch::get(&http, &url(&u), None, &cancel)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::Disallowed(why) if why.contains(words)),
            "{u}: {err:?}"
        );
    }
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

fn segment(n: u8) -> Vec<u8> {
    vec![n; 1000]
}

fn spec(url: String) -> RecordingSpec {
    RecordingSpec {
        login: Login::parse("studio").unwrap(),
        source: SourceSpec::Hls { url },
        quality: Quality::BEST,
        session: 1,
        stream_id: None,
        display_name: None,
        title: "guarded".into(),
        game: None,
        first_part: 1,
        resume: None,
        stream_started: None,
    }
}

/// Runs one recording of an `add hls` source to its end; its events.
async fn record(config: &Config, url: String) -> Vec<Event> {
    record_spec(config, spec(url)).await
}

async fn record_spec(config: &Config, spec: RecordingSpec) -> Vec<Event> {
    let (tx, mut rx) = mpsc::channel(1024);
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let recorder = Recorder::new(
        config,
        recbot::work::Events::new(tx),
        tracker.clone(),
        shutdown.clone(),
        recbot::recorder::ViewerLogin::anonymous(),
    );
    let _handle = recorder.start(spec);
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no RecordingFinished; saw {seen:#?}"))
            .unwrap();
        let done = matches!(event.kind, EventKind::RecordingFinished { .. });
        seen.push(event);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn segments_at_private_addresses_are_gaps_with_the_reason() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:2.0,\nseg0.ts\n\
         #EXTINF:2.0,\nhttp://169.254.169.254/latest/meta-data/iam\n\
         #EXTINF:2.0,\nhttp://127.0.0.2:{port}/seg2.ts\n\
         #EXTINF:2.0,\nhttp://localhost:{port}/seg3.ts\n\
         #EXTINF:2.0,\nseg4.ts\n#EXT-X-ENDLIST\n"
    );
    Mock::given(path("/live/index.m3u8"))
        .respond_with(ResponseTemplate::new(200).set_body_string(playlist))
        .mount(&server)
        .await;
    for n in [0u8, 2, 3, 4] {
        Mock::given(path(format!("/live/seg{n}.ts")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(segment(n)))
            .mount(&server)
            .await;
        Mock::given(path(format!("/seg{n}.ts")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(segment(n)))
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    // Every gap its own notice (not folded), so each reason can be checked.
    let config = config(
        dir.path(),
        &format!("{}gap_notice_secs = 0\n", only(&server)),
    );
    let events = record(&config, format!("{}/live/index.m3u8", server.uri())).await;
    let gaps: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RecordingGap {
                first_sequence,
                reason,
                ..
            } => Some((*first_sequence, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 3, "{events:#?}");
    for ((seq, reason), (expected, words)) in gaps.iter().zip([
        (1, "169.254.169.254 is a cloud metadata address"),
        (2, "127.0.0.2 is a loopback address"),
        (3, "`localhost` resolves to"),
    ]) {
        assert_eq!(*seq, expected, "{gaps:?}");
        assert!(reason.contains(words), "{seq}: {reason}");
    }
    let file = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RecordingPartFinished { file, .. } => Some(file.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no part: {events:#?}"));
    let mut want = segment(0);
    want.extend(segment(4));
    assert_eq!(std::fs::read(file).unwrap(), want);
    // Nothing but the allowed origin's own segments was asked for.
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .filter(|p| p.ends_with(".ts"))
        .collect();
    assert_eq!(asked, ["/live/seg0.ts", "/live/seg4.ts"]);
}

#[tokio::test]
async fn a_source_redirecting_to_loopback_fails_with_the_reason() {
    let server = MockServer::start().await;
    let port = server.address().port();
    redirect(
        &server,
        "/master.m3u8",
        &format!("http://127.0.0.2:{port}/x.m3u8"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &only(&server));
    let events = record(&config, format!("{}/master.m3u8", server.uri())).await;
    let reasons: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RecordingFailed { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{events:#?}");
    assert!(
        reasons[0].contains("redirected: 127.0.0.2 is a loopback address"),
        "{}",
        reasons[0]
    );
}

#[tokio::test]
async fn twitch_recordings_are_not_subject_to_the_guard() {
    use support::origin::{Origin, StreamConfig};
    // Twitch's endpoints (here a local fake) come from the config and are trusted.
    let origin = Origin::start().await;
    origin.go_live("foo", StreamConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let text = recbot::config::testing::offline(&format!(
        "[storage]\ndata_dir = {:?}\n{}offline_grace_secs = 1\n\
         [recording]\nallow_private_sources = false\n",
        dir.path().to_str().unwrap(),
        origin.twitch_config()
    ));
    let config = Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap();
    let mut twitch = spec(String::new());
    twitch.login = Login::parse("foo").unwrap();
    twitch.source = SourceSpec::Twitch;
    let events = record_spec(&config, twitch).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind_name()).collect();
    assert!(kinds.contains(&"RecordingPartFinished"), "{events:#?}");
    assert!(!kinds.contains(&"RecordingGap"), "{events:#?}");
    assert!(!kinds.contains(&"RecordingFailed"), "{events:#?}");
}

#[tokio::test]
async fn a_watched_source_at_a_refused_address_is_reported_with_the_reason() {
    use recbot::recorder::hls_source;
    // A source stored before the guard existed (or before the config changed): its poller
    // never connects and says why once.
    let server = MockServer::start().await;
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(hls_source::poll(
        hls_source::HlsSource {
            name: Login::parse("studio").unwrap(),
            url: format!("{}/live.m3u8", server.uri()),
            every: Duration::from_millis(20),
            http: Http::guarded(SourceGuard::default()),
            recording: hls_source::Recording::default(),
            events: recbot::work::Events::new(tx),
        },
        cancel.clone(),
    ));
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no event")
        .unwrap();
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let EventKind::LiveCheckFailed { reason, .. } = &event.kind else {
        panic!("{event:?}");
    };
    assert!(
        reason.contains("127.0.0.1 is a loopback address"),
        "{reason}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn add_hls_of_a_name_is_applied_after_its_addresses_passed() {
    // `localhost` is not listed by name, so it is looked up off the core loop; it resolves
    // into a listed network, and the add comes back to the core and is stored.
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(config(dir.path(), "allowed_sources = [\"127.0.0.0/8\"]\n")).await;
    let reply = bot
        .core
        .ask(
            "add hls http://localhost:8080/live.m3u8 studio upload=off",
            Who::console(),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    assert!(reply.text.contains("Watching studio"), "{}", reply.text);
    let list = bot.core.ask("list", Who::console()).await;
    assert!(list.text.contains("studio"), "{}", list.text);
    bot.stop().await;
}
