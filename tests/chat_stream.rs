//! The chat stream on a real NATS JetStream server (`tests/support/nats.rs`): the chat writer
//! with its stream tee and the stream worker, lines pushed as connections push them. Every
//! line arrives once and in order (JetStream's deduplication by `Nats-Msg-Id` proven by
//! pushing the same lines again), an outage in the middle loses nothing (spooled, then sent
//! once the server is back on the same port and store), a full spool leaves lines out of the
//! stream only (reported with the count; the day files have every line), and a bad
//! `stream_url` is refused by the config check. Last, the chat worker as the service starts
//! it, against the fake Twitch IRC server: with a stream configured, what it logs is
//! published.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recbot::chat::stream::{self, StreamAuth, StreamSettings, SPOOL_FILE};
use recbot::chat::writer::{self, Batch, Compression, LineQueue, WriterSettings};
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::metrics::Metrics;
use support::nats::NatsServer;
use support::twitch_irc::FakeTwitch;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const STREAM: &str = "RECBOT_CHAT";

/// A chat writer teeing into a stream worker, as the chat pool starts them.
struct Logger {
    queue: Option<LineQueue>,
    events: mpsc::Receiver<Event>,
    seen: Vec<Event>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Logger {
    fn start(url: &str, dir: &Path, spool_bytes: u64) -> Logger {
        let settings = StreamSettings {
            url: url.to_string(),
            stream_name: STREAM.into(),
            auth: StreamAuth::None,
            spool_dir: dir.join("data"),
            spool_bytes,
            timeout: Duration::from_millis(700),
        };
        let (tx, events) = mpsc::channel(1024);
        let metrics = Arc::new(Metrics::new());
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let tee = stream::start(settings, tx, &tracker, cancel.clone(), metrics.clone());
        let writer_settings = WriterSettings {
            dir: dir.join("chat"),
            flush_interval: Duration::from_millis(20),
            fsync_interval: Duration::from_millis(200),
            queue_lines: 100_000,
            patience: Duration::from_secs(2),
            max_open_files: 16,
            compression: Compression::None,
        };
        let (queue, _, task) =
            writer::writer_with_stream(writer_settings, metrics.clone(), Some(tee));
        tracker.spawn(task);
        Logger {
            queue: Some(queue),
            events,
            seen: Vec::new(),
            metrics,
            cancel,
            tracker,
        }
    }

    /// Pushes lines `from..to` of room `foo` (every tenth one a PING without id), in batches
    /// of 10 like a connection's reads.
    async fn push(&self, from: usize, to: usize) {
        let queue = self.queue.as_ref().unwrap();
        for chunk in (from..to).collect::<Vec<_>>().chunks(10) {
            let mut batch = Batch::default();
            for &n in chunk {
                batch.buf.extend_from_slice(line(n).as_bytes());
                batch.buf.push(b'\n');
                batch.push_entry(Arc::from("foo"), 1_764_000_000_000 + n as i64);
            }
            assert!(queue.push(batch).await, "the writer took the lines");
        }
        queue.flush().await;
    }

    /// Waits (at most 30 s) for an event matching `want`, keeping the others.
    async fn wait_event(&mut self, what: &str, want: impl Fn(&EventKind) -> bool) -> EventKind {
        if let Some(e) = self.seen.iter().find(|e| want(&e.kind)) {
            return e.kind.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what}; seen {:?}", self.seen))
                .expect("events open");
            self.seen.push(event.clone());
            if want(&event.kind) {
                return event.kind;
            }
        }
    }

    /// Stops the writer and the stream worker the way the service does.
    async fn stop(mut self) -> Vec<Event> {
        self.cancel.cancel();
        self.queue = None;
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("writer and stream stop");
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        self.seen
    }
}

/// Line `n` as the day files hold it: a PRIVMSG with its message id, or (every tenth) a PING,
/// which has none (its `Nats-Msg-Id` is then the line's hash).
fn line(n: usize) -> String {
    if n % 10 == 9 {
        format!(
            r#"{{"recv_ms":{},"cmd":"PING","raw":"PING :tmi.twitch.tv #{n}"}}"#,
            1_764_000_000_000u64 + n as u64
        )
    } else {
        format!(
            r#"{{"recv_ms":{},"cmd":"PRIVMSG","channel":"foo","id":"msg-{n}","text":"line {n} {}","raw":"@id=msg-{n} :x!x@x PRIVMSG #foo :line {n}"}}"#,
            1_764_000_000_000u64 + n as u64,
            "x".repeat(120)
        )
    }
}

/// The `Nats-Msg-Id` recbot gives line `n`.
fn id_of(n: usize) -> String {
    stream::message_id(line(n).as_bytes())
}

/// Every message of the stream in order: (subject, Nats-Msg-Id, payload).
async fn stored(url: &str) -> Vec<(String, String, String)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(STREAM).await.unwrap();
    let info = s.info().await.unwrap();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return out;
    }
    for seq in first..=last {
        let m = s.get_raw_message(seq).await.unwrap();
        let id = m.headers.get("Nats-Msg-Id").unwrap().as_str().to_string();
        out.push((
            m.subject.to_string(),
            id,
            String::from_utf8(m.payload.to_vec()).unwrap(),
        ));
    }
    out
}

/// Waits (at most 30 s) until the stream holds `n` messages.
async fn wait_stored(url: &str, n: usize) -> Vec<(String, String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = match tokio::time::timeout(Duration::from_secs(2), count(url)).await {
            Ok(Some(c)) => c,
            _ => 0,
        };
        if got >= n as u64 {
            return stored(url).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream holds {got} of {n} lines"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(url: &str) -> Option<u64> {
    let client = async_nats::connect(url).await.ok()?;
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(STREAM).await.ok()?;
    Some(s.info().await.ok()?.state.messages)
}

/// Lines in the plain day files of `foo`.
fn day_file_lines(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.join("chat").join("foo")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += std::fs::read_to_string(&p).unwrap().lines().count();
            }
        }
    }
    n
}

fn assert_in_order(stored: &[(String, String, String)], to: usize) {
    let ids: Vec<&str> = stored.iter().map(|(_, id, _)| id.as_str()).collect();
    let want: Vec<String> = (0..to).map(id_of).collect();
    assert_eq!(ids, want, "every line once, in order");
    for (n, (subject, _, payload)) in stored.iter().enumerate() {
        assert_eq!(subject, "recbot.chat.twitch.foo");
        assert_eq!(payload, &line(n), "the day file's JSON");
    }
}

#[tokio::test]
async fn every_line_arrives_once_and_repeats_are_dropped_by_message_id() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let logger = Logger::start(&nats.url(), dir.path(), 1 << 20);
    logger.push(0, 300).await;
    let got = wait_stored(&nats.url(), 300).await;
    assert_in_order(&got, 300);
    // The same lines again (a reconnect overlap, a resend): JetStream keeps them once.
    logger.push(0, 300).await;
    logger.push(300, 310).await;
    let got = wait_stored(&nats.url(), 310).await;
    assert_in_order(&got, 310);
    assert_eq!(
        day_file_lines(dir.path()),
        610,
        "the day files keep every line logged"
    );
    let metrics = logger.metrics.clone();
    let events = logger.stop().await;
    assert!(metrics.chat_stream_published.get() >= 610);
    assert_eq!(metrics.chat_stream_dropped.get(), 0);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ChatStreamBehind { .. })),
        "never behind: {events:?}"
    );
}

#[tokio::test]
async fn a_nats_restart_in_the_middle_loses_nothing() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&nats.url(), dir.path(), 1 << 20);
    logger.push(0, 200).await;
    wait_stored(&nats.url(), 200).await;
    nats.stop();
    logger.push(200, 500).await;
    let behind = logger
        .wait_event("ChatStreamBehind", |k| {
            matches!(k, EventKind::ChatStreamBehind { .. })
        })
        .await;
    let EventKind::ChatStreamBehind { waiting } = behind else {
        unreachable!()
    };
    assert!(waiting > 0, "lines wait in the spool");
    assert!(logger.metrics.chat_stream_spooled.get() > 0);
    // More lines while it is down go behind the spooled ones.
    logger.push(500, 600).await;
    nats.restart();
    let got = wait_stored(&nats.url(), 600).await;
    assert_in_order(&got, 600);
    assert_eq!(day_file_lines(dir.path()), 600);
    let spool = dir.path().join("data").join(SPOOL_FILE);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&spool).unwrap().len() > 0 {
        assert!(std::time::Instant::now() < deadline, "the spool is emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Lines after the outage go straight on.
    logger.push(600, 650).await;
    assert_in_order(&wait_stored(&nats.url(), 650).await, 650);
    let metrics = logger.metrics.clone();
    logger.stop().await;
    assert_eq!(metrics.chat_stream_dropped.get(), 0);
}

#[tokio::test]
async fn a_full_spool_leaves_lines_out_of_the_stream_only_and_says_how_many() {
    // A server that is not there: everything goes to the spool, which holds 64 KiB.
    let mut nats = NatsServer::start();
    nats.stop();
    let dir = tempfile::tempdir().unwrap();
    let mut logger = Logger::start(&nats.url(), dir.path(), 64 * 1024);
    logger.push(0, 1000).await;
    let mut reported = 0;
    while reported < 1 {
        let kind = logger
            .wait_event("ChatStreamDropped", |k| {
                matches!(k, EventKind::ChatStreamDropped { .. })
            })
            .await;
        let EventKind::ChatStreamDropped { lines } = kind else {
            unreachable!()
        };
        reported += lines;
    }
    let metrics = logger.metrics.clone();
    let events = logger.stop().await;
    let dropped: u64 = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ChatStreamDropped { lines } => Some(lines),
            _ => None,
        })
        .sum();
    let spool = std::fs::read_to_string(dir.path().join("data").join(SPOOL_FILE)).unwrap();
    let spooled = spool.lines().count() as u64;
    assert!(spool.len() <= 64 * 1024, "the spool keeps its limit");
    assert!(
        spooled > 100 && dropped > 0,
        "spooled {spooled}, dropped {dropped}"
    );
    assert_eq!(
        spooled + dropped,
        1000,
        "each line spooled or counted as left out"
    );
    assert_eq!(metrics.chat_stream_dropped.get(), dropped);
    assert_eq!(
        day_file_lines(dir.path()),
        1000,
        "the day files have every line"
    );
    // What waits is sent in order once a server is there (the next start).
    nats.restart();
    let logger = Logger::start(&nats.url(), dir.path(), 64 * 1024);
    let got = wait_stored(&nats.url(), spooled as usize).await;
    assert_in_order(&got, spooled as usize);
    logger.stop().await;
}

#[test]
fn a_bad_stream_url_is_refused_by_the_config_check() {
    let parse = |chat: &str| {
        Config::from_text(
            &format!("[chat]\n{chat}\n"),
            Path::new("/etc/recbot/recbot.toml"),
            &[],
        )
    };
    for bad in [
        "stream_url = \"http://127.0.0.1:4222\"",
        "stream_url = \"nats://user:secret@127.0.0.1:4222\"",
        "stream_url = \"nats://\"",
        "stream_url = \"nats://127.0.0.1:4222/path\"",
        "stream_url = \"nats://127.0.0.1:4222\"\nstream_name = \"a.b\"",
        "stream_url = \"nats://127.0.0.1:4222\"\nstream_user = \"u\"",
        "stream_url = \"nats://127.0.0.1:4222\"\nstream_spool_bytes = 100",
        "stream_url = \"nats://127.0.0.1:4222\"\nstream_timeout_secs = 0",
    ] {
        let err = parse(bad).expect_err(bad).to_string();
        assert!(err.contains("chat.stream_"), "{bad}: {err}");
        assert!(
            !err.contains("secret@"),
            "no credentials in the error: {err}"
        );
    }
    let off = parse("").unwrap();
    assert!(
        off.summary().contains("chat stream:     off"),
        "{}",
        off.summary()
    );
    let on = parse(
        "stream_url = \"nats://127.0.0.1:4222\"\nstream_user = \"recbot\"\n\
         stream_password = \"hunter2-password\"",
    )
    .unwrap();
    let summary = on.summary();
    assert!(
        summary.contains(
            "chat stream:     NATS JetStream nats://127.0.0.1:4222, user and password, stream \
             RECBOT_CHAT (subjects recbot.chat.>), spool at most 256 MiB"
        ),
        "{summary}"
    );
    assert!(!summary.contains("hunter2"));
}

#[tokio::test]
async fn the_chat_worker_publishes_what_it_logs_when_a_stream_is_configured() {
    use recbot::chat::ChatSettings;
    use recbot_commands::Login;

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let settings = ChatSettings {
        stream: Some(StreamSettings {
            url: nats.url(),
            stream_name: STREAM.into(),
            auth: StreamAuth::None,
            spool_dir: dir.path().join("data"),
            spool_bytes: 1 << 20,
            timeout: Duration::from_secs(2),
        }),
        ..support::twitch_irc::chat_settings(fake.dialer(), &dir.path().join("chat"))
    };
    let (tx, _events) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = recbot::chat::start(
        settings,
        None,
        tx,
        &tracker,
        cancel.clone(),
        Arc::new(Metrics::new()),
    );
    handle
        .set_wanted(vec![Login::parse("somechannel").unwrap()])
        .await;
    let conn = fake.next_conn().await;
    fake.wait_until("room joined", |st| {
        st.rooms[conn.id].contains("somechannel")
    })
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..20 {
        conn.send(&format!(
            "@badge-info=;badges=;color=;display-name=Viewer;emotes=;id=live-{i};mod=0;\
             room-id=1;subscriber=0;tmi-sent-ts={now};turbo=0;user-id=42;user-type= \
             :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #somechannel :hello {i}"
        ))
        .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let ids: Vec<String> = match count(&nats.url()).await {
            Some(n) if n > 0 => stored(&nats.url())
                .await
                .into_iter()
                .filter(|(subject, _, _)| subject == "recbot.chat.twitch.somechannel")
                .map(|(_, id, _)| id)
                .filter(|id| id.starts_with("live-"))
                .collect(),
            _ => Vec::new(),
        };
        if ids.len() >= 20 {
            break ids;
        }
        assert!(std::time::Instant::now() < deadline, "published: {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let want: Vec<String> = (0..20).map(|i| format!("live-{i}")).collect();
    assert_eq!(ids, want);
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("the chat worker stops");
}
