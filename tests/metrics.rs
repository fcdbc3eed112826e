//! `GET /metrics` with a real client against a service that records: the local origin plays
//! Twitch (its Helix lists the stream, so the real live watcher sees it and reports when it
//! started), the fake IRC server the chat, the TCP YouTube fake the uploads, and a webhook that
//! cannot be reached an outbox reader that falls behind. Every metric of the README's table
//! is present, and each one the scenario exercises moves by what happened on disk and on the
//! wire. `metrics_token` guards the endpoint when set.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot::config::Config;
use recbot::event::EventKind;
use recbot::frontend::http::Listener;
use support::origin::{Origin, StreamConfig};
use support::twitch_irc::FakeTwitch;
use support::youtube_tcp::TcpYoutube;
use support::{is, store_token, Bot, GoogleFake};
use tokio_util::sync::CancellationToken;

const METRICS_TOKEN: &str = "metrics-token-00001";

/// Every metric the README lists, as the text format names its samples.
const EVERY_METRIC: [&str; 20] = [
    "recbot_up",
    "recbot_logins_watched",
    "recbot_live",
    "recbot_recordings_active",
    "recbot_recorded_bytes_total",
    "recbot_segments_total",
    "recbot_segment_fetch_seconds_count",
    "recbot_live_detection_seconds_count",
    "recbot_chat_lines_total",
    "recbot_chat_dropped_total",
    "recbot_chat_connections",
    "recbot_irc_reconnects_total",
    "recbot_chat_stream_published_total",
    "recbot_chat_stream_spooled_total",
    "recbot_chat_stream_dropped_total",
    "recbot_upload_bytes_total",
    "recbot_uploads",
    "recbot_youtube_quota_used",
    "recbot_outbox_backlog",
    "recbot_disk_free_bytes",
];

/// One scrape: every sample by its name and labels as printed (`name{a="b"}`).
#[derive(Debug)]
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a sample line");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Scrape(samples)
    }

    /// The sample's value; panics when it is missing.
    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {:#?}", self.0))
    }

    /// Whether some sample of metric `name` is there (any labels).
    fn has(&self, name: &str) -> bool {
        self.0
            .keys()
            .any(|k| k == name || k.starts_with(&format!("{name}{{")))
    }
}

struct Service {
    bot: Bot,
    addr: SocketAddr,
    server: CancellationToken,
    client: reqwest::Client,
}

impl Service {
    async fn start(config: Arc<Config>) -> Service {
        let listener = Listener::bind(&config.http).await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        // The webhook reads the outbox like a chat front-end; its receiver is never there.
        let bot = Bot::with_front_end(config, |config, core, notices, _, tracker| async move {
            recbot::frontend::webhook::run(config, core, notices, tracker).await
        })
        .await
        .keeping_unmatched();
        let server = CancellationToken::new();
        tokio::spawn(listener.serve(bot.core.clone(), server.clone()));
        Service {
            bot,
            addr,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// `GET /metrics` (with `token` as the bearer): status, content type, body.
    async fn get(&self, token: Option<&str>) -> (u16, String, String) {
        let mut request = self.client.get(format!("http://{}/metrics", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let (status, kind, body) = self.get(None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
        Scrape::parse(&body)
    }

    async fn stop(self) {
        self.bot.stop().await;
        self.server.cancel();
    }
}

fn config(
    dir: &Path,
    origin: &Origin,
    irc: &FakeTwitch,
    yt: &TcpYoutube,
    google: &GoogleFake,
) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {dir:?}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [youtube]\nenabled = true\nclient_id = \"yt-client\"\nclient_secret = \"yt-secret\"\n\
         chunk_size_mib = 1\nretry_initial_ms = 20\nretry_max_secs = 1\n\
         upload_url = {upload:?}\napi_url = {api:?}\ntoken_url = {token:?}\nauth_url = {auth:?}\n\
         {twitch}{helix}client_id = \"cid\"\nclient_secret = \"secret\"\n\
         offline_grace_secs = 1\npoll_interval_secs = 1\n\
         irc_host = \"127.0.0.1\"\nirc_port = {port}\nirc_tls = false\n\
         [chat]\nconnect_interval_secs = 0.01\nbackoff_initial_secs = 0.02\nbackoff_max_secs = 0.2\n\
         flush_interval_secs = 0.05\nsave_timeout_secs = 5\n\
         [[webhooks]]\nname = \"sink\"\nurl = \"http://127.0.0.1:9/hook\"\n\
         secret = \"webhook-secret-0001\"\nretry_initial_ms = 50\nretry_max_secs = 1\n",
        dir = dir.to_str().unwrap(),
        upload = yt.upload_url(),
        api = yt.upload_url().replace("/upload/youtube/v3/videos", "/youtube/v3"),
        token = google.token_url(),
        auth = google.auth_url(),
        twitch = origin.twitch_config(),
        helix = origin.helix_config(),
        port = irc.port,
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

/// Bytes of the finished recording parts of `login`.
fn part_bytes(dir: &Path, login: &str) -> u64 {
    std::fs::read_dir(dir.join("recordings").join(login))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Lines in `login`'s chat day files.
fn chat_lines(dir: &Path, login: &str) -> u64 {
    let mut lines = 0;
    let mut stack = vec![dir.join("chat").join(login)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(".jsonl") {
                // Plain or zstd day files alike.
                lines += recbot::chat::day_files::count_lines(&path).unwrap();
            }
        }
    }
    lines
}

fn privmsg(room: &str, id: &str, text: &str) -> String {
    format!(
        "@badge-info=;badges=;color=;display-name=Viewer;emotes=;id={id};mod=0;room-id=1;\
         subscriber=0;tmi-sent-ts={};turbo=0;user-id=42;user-type= \
         :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #{room} :{text}",
        Utc::now().timestamp_millis()
    )
}

/// Polls `/metrics` until `done` holds (10 s at most).
async fn scrape_until(service: &Service, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = service.scrape().await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never showed: {scrape:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_present_and_moves_with_a_recording() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let irc = FakeTwitch::bind().await;
    let yt = TcpYoutube::start("ya29.valid-access").await;
    let google = GoogleFake::start("unused", "1//refresh-secret").await;
    store_token(
        dir.path(),
        "youtube",
        "ya29.valid-access",
        "1//refresh-secret",
        3600,
    )
    .await;
    let mut service = Service::start(config(dir.path(), &origin, &irc, &yt, &google)).await;
    service
        .bot
        .wait_for("ServiceStarted", is("ServiceStarted"))
        .await;

    let before = service.scrape().await;
    assert_eq!(before.get("recbot_up"), 1.0);
    assert_eq!(before.get("recbot_logins_watched"), 0.0);
    assert!(before.get("recbot_disk_free_bytes") > 0.0);
    assert!(
        !before.has("recbot_live"),
        "no login, no series: {before:#?}"
    );

    service.bot.command("add foo").await;
    let conn = irc.next_conn().await;
    irc.wait_until("JOIN #foo", |s| s.rooms[conn.id].contains("foo"))
        .await;
    // Every metric is there once a login is watched, its counters at zero.
    let watched = scrape_until(&service, "chat connection", |s| {
        s.get("recbot_chat_connections") == 1.0
    })
    .await;
    for name in EVERY_METRIC {
        assert!(watched.has(name), "{name} missing: {watched:#?}");
    }
    assert_eq!(watched.get("recbot_logins_watched"), 1.0);
    assert_eq!(watched.get("recbot_live{login=\"foo\"}"), 0.0);
    assert_eq!(
        watched.get("recbot_recorded_bytes_total{login=\"foo\"}"),
        0.0
    );
    for state in [
        "queued",
        "uploading",
        "deferred",
        "paused",
        "finished",
        "failed",
    ] {
        assert_eq!(
            watched.get(&format!("recbot_uploads{{state=\"{state}\"}}")),
            0.0
        );
    }
    for i in 0..3 {
        conn.send(&privmsg("foo", &format!("m{i}"), "hello")).await;
    }

    // 24 segments of 0.25 s, all listed (no timing can lose one): two ads and one that is
    // not found (a gap); Helix lists the stream while it is on the air.
    origin.go_live(
        "foo",
        StreamConfig {
            segments: 24,
            window: 24,
            ads: 8..10,
            not_found: vec![14],
            helix_id: Some("s1".into()),
            ..Default::default()
        },
    );
    service
        .bot
        .wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    let live = service.scrape().await;
    assert_eq!(live.get("recbot_live{login=\"foo\"}"), 1.0);
    assert_eq!(live.get("recbot_recordings_active"), 1.0);
    assert!(live.get("recbot_segments_total{login=\"foo\",result=\"ok\"}") >= 1.0);

    // The IRC server drops the connection: the chat logger connects again.
    conn.close().await;
    let again = irc.next_conn().await;
    irc.wait_until("JOIN #foo again", |s| s.rooms[again.id].contains("foo"))
        .await;
    again.send(&privmsg("foo", "m3", "back")).await;

    service
        .bot
        .wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    service
        .bot
        .wait_for("UploadFinished", is("UploadFinished"))
        .await;
    // The broadcast's summary chart, beside its first part: a PNG of the chart's size.
    let summary = service
        .bot
        .wait_for("SummaryReady", is("SummaryReady"))
        .await;
    let EventKind::SummaryReady { path, .. } = &summary.kind else {
        unreachable!()
    };
    assert!(path.starts_with(dir.path()), "{path:?}");
    assert!(path.to_string_lossy().ends_with(".summary.png"));
    let png = png::Decoder::new(std::io::Cursor::new(std::fs::read(path).unwrap()))
        .read_info()
        .unwrap();
    assert_eq!((png.info().width, png.info().height), (1280, 640));
    let after = scrape_until(&service, "live 0 and the upload counted", |s| {
        s.get("recbot_live{login=\"foo\"}") == 0.0
            && s.get("recbot_uploads{state=\"finished\"}") == 1.0
            && s.get("recbot_chat_lines_total{login=\"foo\"}") as u64
                == chat_lines(dir.path(), "foo")
    })
    .await;
    let recorded = part_bytes(dir.path(), "foo");
    assert!(recorded > 0);
    let seg = |result: &str| {
        after.get(&format!(
            "recbot_segments_total{{login=\"foo\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(seg("ok"), 21.0, "24 less two ads and one missing");
    assert_eq!(seg("ad"), 2.0);
    assert_eq!(seg("gap"), 1.0);
    assert_eq!(
        after.get("recbot_recorded_bytes_total{login=\"foo\"}"),
        recorded as f64
    );
    assert_eq!(
        after.get("recbot_segment_fetch_seconds_count"),
        21.0,
        "one per segment written"
    );
    assert!(after.get("recbot_segment_fetch_seconds_sum") > 0.0);
    // Helix said the stream started when its first segment was made; the first segment was
    // written within the watcher's poll interval and a playlist load of that.
    assert_eq!(after.get("recbot_live_detection_seconds_count"), 1.0);
    let detection = after.get("recbot_live_detection_seconds_sum");
    assert!(detection > 0.0 && detection < 10.0, "{detection}");
    assert_eq!(after.get("recbot_recordings_active"), 0.0);
    // Four messages and the two JOIN echoes, as in the day file.
    assert!(after.get("recbot_chat_lines_total{login=\"foo\"}") >= 6.0);
    assert_eq!(after.get("recbot_chat_dropped_total"), 0.0);
    assert_eq!(after.get("recbot_irc_reconnects_total"), 1.0);
    assert_eq!(after.get("recbot_chat_connections"), 1.0);
    // The part went up whole (YouTube has it all), and counted against today's quota.
    assert_eq!(after.get("recbot_upload_bytes_total"), recorded as f64);
    assert_eq!(yt.state.lock().unwrap().bytes, recorded);
    assert_eq!(after.get("recbot_youtube_quota_used"), 1.0);
    // The webhook's receiver is not there: every event since the start waits for it.
    assert!(after.get("recbot_outbox_backlog{frontend=\"webhook:sink\"}") >= 10.0);

    // A login removed is no longer exported.
    service.bot.command("remove foo").await;
    let removed = service.scrape().await;
    assert_eq!(removed.get("recbot_logins_watched"), 0.0);
    assert!(
        !removed.0.keys().any(|k| k.contains("login=\"foo\"")),
        "{removed:#?}"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_metrics_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\nmetrics_token = \"{METRICS_TOKEN}\"\n",
        dir.path().to_str().unwrap()
    );
    let text = recbot::config::testing::offline(&text);
    let config = Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());
    let service = Service::start(config).await;
    for token in [
        None,
        Some("metrics-token-00002"),
        Some("metrics-token-0000"),
    ] {
        let (status, _, body) = service.get(token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(!body.contains("recbot_up"), "{body}");
        assert!(!body.contains(METRICS_TOKEN), "{body}");
    }
    let (status, kind, body) = service.get(Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert_eq!(Scrape::parse(&body).get("recbot_up"), 1.0);
    service.stop().await;
}
