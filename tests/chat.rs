//! The chat logger against a local Twitch-like IRC server (tests/support/twitch_irc.rs) fed
//! with the real lines of tests/data/irc-samples.txt: login and CAP handshake, every line
//! logged byte-exact with unescaped tags, malformed lines, RECONNECT with overlap, drops and
//! backoff, PING timeouts, the JOIN limit with 500 logins, day rotation, per-recording chat
//! files, the user login, the `logs` command and the core's wiring.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use recbot::chat::day_files::Item;
use recbot::chat::record::Record;
use recbot::chat::subtitles::SubtitleSettings;
use recbot::chat::transport::Dialer;
use recbot::chat::{start, ChatHandle, ChatSettings};
use recbot::config::{ChatLogin, SubtitleFormat};
use recbot::event::{Event, EventKind};
use recbot::frontend::render::chat_identity;
use recbot::metrics::Metrics;
use recbot::secret::Secret;
use recbot_commands::Login;
use support::twitch_irc::{samples, FakeTwitch, ServerConn};
use support::Ask;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use support::twitch_irc::chat_settings as settings;

struct Chat {
    handle: ChatHandle,
    /// What the chat worker counted (`/metrics`).
    metrics: Arc<Metrics>,
    events: mpsc::Receiver<Event>,
    seen: Vec<Event>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Chat {
    fn start(settings: ChatSettings, token: Option<Secret>) -> Chat {
        let (tx, events) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        let handle = start(
            settings,
            token,
            tx,
            &tracker,
            cancel.clone(),
            metrics.clone(),
        );
        Chat {
            handle,
            metrics,
            events,
            seen: Vec::new(),
            cancel,
            tracker,
        }
    }

    async fn want(&self, logins: &[&str]) {
        let logins = logins.iter().map(|l| Login::parse(l).unwrap()).collect();
        self.handle.set_wanted(logins).await;
    }

    /// The next event matching `pred` (30 s of tokio time at most); keeps the others.
    async fn event(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                _ => panic!("no {what} event; saw {:#?}", self.seen),
            }
        }
    }

    fn drain_events(&mut self) -> Vec<Event> {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        self.seen.clone()
    }

    async fn stop(self) -> Vec<Event> {
        self.cancel.cancel();
        self.tracker.close();
        let mut events = self.events;
        let mut seen = self.seen;
        let wait = self.tracker.wait();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                Some(e) = events.recv() => seen.push(e),
            }
        }
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        seen
    }
}

/// Every logged record under `dir`, with its file.
fn records(dir: &Path) -> Vec<(PathBuf, Record)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl" || e == "zst") {
                // Both kinds of day file, through the readers' own module.
                recbot::chat::day_files::read(&path, None, &mut |item| {
                    let Item::Line(line) = item else {
                        panic!("{}: damaged", path.display())
                    };
                    let record: Record = serde_json::from_slice(line).unwrap_or_else(|e| {
                        panic!("{}: {e}: {}", path.display(), String::from_utf8_lossy(line))
                    });
                    out.push((path.clone(), record));
                    Ok(true)
                })
                .unwrap();
            }
        }
    }
    out
}

async fn wait_records(
    dir: &Path,
    what: &str,
    check: impl Fn(&[(PathBuf, Record)]) -> bool,
) -> Vec<(PathBuf, Record)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = records(dir);
        if check(&all) {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts the logger on `s` for `rooms` and waits until its first connection joined them.
async fn joined(fake: &FakeTwitch, s: ChatSettings, rooms: &[&str]) -> (Chat, ServerConn) {
    let chat = Chat::start(s, None);
    chat.want(rooms).await;
    let conn = fake.next_conn().await;
    fake.wait_until("rooms joined", |st| {
        rooms.iter().all(|r| st.rooms[conn.id].contains(*r))
    })
    .await;
    (chat, conn)
}

fn ids_in(records: &[(PathBuf, Record)], room: &str) -> Vec<String> {
    records
        .iter()
        .filter(|(_, r)| r.channel.as_deref() == Some(room) && r.cmd.as_deref() == Some("PRIVMSG"))
        .filter_map(|(_, r)| r.id.clone())
        .collect()
}

fn privmsg(room: &str, id: &str, ts: i64, text: &str) -> String {
    format!(
        "@badge-info=;badges=;color=;display-name=Viewer;emotes=;id={id};mod=0;room-id=1;subscriber=0;\
         tmi-sent-ts={ts};turbo=0;user-id=42;user-type= :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #{room} :{text}"
    )
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

const SAMPLE_ROOMS: &[&str] = &[
    "ronni",
    "pajlada",
    "retoon",
    "forsen",
    "cdawgva",
    "dallas",
    "forstycup",
    "othertestchannel",
    "xqcow",
    "sodapoppin",
    "dunkorslam",
    "bar",
    "randers",
];

#[tokio::test]
async fn handshake_then_every_sample_line_is_logged_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut chat = Chat::start(settings(fake.dialer(), dir.path()), None);
    chat.want(SAMPLE_ROOMS).await;
    let conn = fake.next_conn().await;
    {
        let s = fake.state.lock().unwrap();
        let sent = &s.received[conn.id];
        assert_eq!(sent[0], "CAP REQ :twitch.tv/tags twitch.tv/commands");
        let nick = sent[1].strip_prefix("NICK ").expect("NICK second");
        let digits = nick.strip_prefix("justinfan").expect("anonymous nick");
        assert!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "{nick}"
        );
        assert!(
            !sent.iter().any(|l| l.starts_with("PASS")),
            "anonymous: no PASS"
        );
    }
    fake.wait_until("all rooms joined", |s| {
        s.rooms[conn.id].len() == SAMPLE_ROOMS.len()
    })
    .await;
    let joined = chat
        .event("ChatJoined", |e| {
            matches!(e.kind, EventKind::ChatJoined { .. })
        })
        .await;
    assert_eq!(
        joined.kind,
        EventKind::ChatJoined {
            rooms: SAMPLE_ROOMS.len()
        }
    );

    let samples: Vec<Vec<u8>> = samples()
        .into_iter()
        .filter(|l| l.as_slice() != b":tmi.twitch.tv RECONNECT")
        .collect();
    assert_eq!(samples.len(), 33, "the sample file changed");
    let long = [b"PRIVMSG #ronni :".as_slice(), &vec![b'x'; 70_000]].concat();
    let malformed: Vec<Vec<u8>> = vec![
        b"@only-tags".to_vec(),
        b":prefix.only".to_vec(),
        b"PRIVMSG #ronni :caf\xe9 \xff".to_vec(),
        b"PRIVMSG #../../etc :hostile".to_vec(),
        long,
        b"@id=after-long;tmi-sent-ts=1507246572675 :a!a@a PRIVMSG #ronni :still here".to_vec(),
    ];
    for line in samples.iter().chain(&malformed) {
        conn.send_bytes(line).await;
    }
    let all = wait_records(dir.path(), "every line", |all| {
        all.iter().any(|(_, r)| r.raw.ends_with("still here"))
    })
    .await;

    // Every sample line is on disk exactly once, byte for byte.
    for sample in &samples {
        let text = std::str::from_utf8(sample).unwrap();
        let found: Vec<_> = all.iter().filter(|(_, r)| r.raw == text).collect();
        // The CAP ACK also came in the login handshake.
        let expected = if text.contains(" CAP * ACK ") { 2 } else { 1 };
        assert_eq!(found.len(), expected, "{text}: {found:?}");
        assert!(
            found[0].1.error.is_none() || text.contains("stuck_overflow"),
            "{text}"
        );
    }
    // Answered the server's PING.
    fake.wait_until("PONG", |s| {
        s.received[conn.id]
            .iter()
            .any(|l| l.starts_with("PONG ") && l.ends_with("tmi.twitch.tv"))
    })
    .await;

    let by_raw = |needle: &str| -> &(PathBuf, Record) {
        all.iter()
            .find(|(_, r)| r.raw.contains(needle))
            .unwrap_or_else(|| panic!("{needle}"))
    };
    // Dated by tmi-sent-ts, one folder per login.
    let (path, first) = by_raw("Kappa Keepo Kappa");
    assert_eq!(path, &dir.path().join("ronni/2017/10/05.jsonl.zst"));
    assert_eq!(first.sent_ms, Some(1507246572675));
    assert_eq!(first.display_name.as_deref(), Some("ronni"));
    assert_eq!(first.user_id.as_deref(), Some("1337"));
    assert_eq!(
        first.id.as_deref(),
        Some("b34ccfc7-4977-403a-8a94-33c6bac34fb8")
    );
    assert_eq!(first.tag("emotes"), Some("25:0-4,12-16/1902:6-10"));
    assert!(first.recv_ms > 1_700_000_000_000);
    // Tags unescaped.
    let resub = &by_raw("Great stream -- keep it up!").1;
    assert_eq!(
        resub.tag("system-msg"),
        Some("ronni has subscribed for 6 months!")
    );
    assert_eq!(resub.login.as_deref(), Some("ronni"));
    assert_eq!(resub.text.as_deref(), Some("Great stream -- keep it up!"));
    let raid = &by_raw("msg-id=raid").1;
    assert_eq!(
        raid.tag("system-msg"),
        Some("15 raiders from TestChannel have joined\n!")
    );
    let gift = &by_raw("msg-id=subgift").1;
    assert_eq!(
        gift.tag("msg-param-sub-plan-name"),
        Some("House of Nyoro~n")
    );
    let korean = &by_raw("테스트계정420").1;
    assert_eq!(korean.display_name.as_deref(), Some("테스트계정420"));
    assert_eq!(korean.login.as_deref(), Some("testaccount_420"));
    let action = &by_raw("ACTION -tags").1;
    assert!(action.action);
    assert_eq!(action.text.as_deref(), Some("-tags"));
    let ban = &by_raw("CLEARCHAT #dallas :ronni").1;
    assert_eq!(ban.user_id.as_deref(), Some("87654321"));
    // Server lines go to the server folder.
    let (path, _) = by_raw("CAP * ACK");
    assert!(
        path.starts_with(dir.path().join("tmi.twitch.tv")),
        "{}",
        path.display()
    );
    // Malformed lines: kept raw, with the reason, never crash anything.
    assert_eq!(
        by_raw("@only-tags").1.error.as_deref(),
        Some("tags but no command")
    );
    assert!(by_raw(":prefix.only").1.error.is_some());
    let latin1 = &by_raw("caf").1;
    let hex: String = b"PRIVMSG #ronni :caf\xe9 \xff"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(latin1.raw_hex.as_deref(), Some(hex.as_str()));
    let (path, hostile) = by_raw("hostile");
    assert!(hostile.error.as_deref().unwrap().contains("not a channel"));
    assert!(path.starts_with(dir.path().join("tmi.twitch.tv")));
    assert!(!dir.path().parent().unwrap().join("etc").exists());
    let cut = all
        .iter()
        .find(|(_, r)| r.raw.starts_with("PRIVMSG #ronni :xxx"))
        .unwrap();
    assert_eq!(cut.1.raw.len(), 64 * 1024);
    assert_eq!(cut.1.error.as_deref(), Some("line longer than 64 KiB; cut"));
    assert_eq!(
        by_raw("stuck_overflow").1.error.as_deref(),
        Some("PRIVMSG target `stuck_overflow` is not a channel")
    );

    let events = chat.stop().await;
    assert!(
        !events.iter().any(|e| matches!(
            e.kind,
            EventKind::ChatDisconnected { .. } | EventKind::ChatDropped { .. }
        )),
        "{events:#?}"
    );
}

#[tokio::test]
async fn reconnect_opens_the_new_connection_first_and_loses_or_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let chat = Chat::start(settings(fake.dialer(), dir.path()), None);
    chat.want(&["a", "b"]).await;
    let old = fake.next_conn().await;
    fake.wait_until("joined on the first connection", |s| {
        s.rooms[old.id].len() == 2
    })
    .await;
    let t = now_ms();
    for i in 1..=3 {
        old.send(&privmsg("a", &format!("m{i}"), t + i, "before"))
            .await;
    }
    old.send(":tmi.twitch.tv RECONNECT").await;
    // Still delivered on the old connection while the new one joins.
    old.send(&privmsg("a", "m4", t + 4, "during")).await;
    let new = fake.next_conn().await;
    assert_ne!(new.id, old.id);
    fake.wait_until("joined on the new connection", |s| {
        s.rooms[new.id].len() == 2
    })
    .await;
    // Twitch sends to both while both are in the room.
    for i in 5..=8 {
        let line = privmsg("a", &format!("m{i}"), t + i, "both");
        old.send(&line).await;
        new.send(&line).await;
        let line = privmsg("b", &format!("b{i}"), t + i, "both");
        new.send(&line).await;
        old.send(&line).await;
    }
    // The client PINGs the old connection and closes it at the PONG.
    fake.wait_until("old connection closed", |s| !s.open[old.id])
        .await;
    assert!(fake.state.lock().unwrap().received[old.id]
        .iter()
        .any(|l| l.starts_with("PING")));
    for i in 9..=10 {
        new.send(&privmsg("a", &format!("m{i}"), t + i, "after"))
            .await;
    }
    let all = wait_records(dir.path(), "m10", |all| {
        ids_in(all, "a").contains(&"m10".to_string())
    })
    .await;
    let a = ids_in(&all, "a");
    let expected: Vec<String> = (1..=10).map(|i| format!("m{i}")).collect();
    assert_eq!(a, expected, "every message once, in order");
    let b = ids_in(&all, "b");
    assert_eq!(b, (5..=8).map(|i| format!("b{i}")).collect::<Vec<_>>());
    let events = chat.stop().await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ChatDisconnected { .. })),
        "a RECONNECT with overlap is no outage: {events:#?}"
    );
}

/// Lines connection `conn` sent to the fake that start with `prefix`.
fn sent(fake: &FakeTwitch, conn: usize, prefix: &str) -> usize {
    fake.state.lock().unwrap().received[conn]
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn server_pings_are_answered_on_both_connections_of_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), dir.path());
    s.timing.ping_timeout = Duration::from_millis(300);
    let (chat, old) = joined(&fake, s, &["a"]).await;
    // The new connection's JOIN is never confirmed: the overlap lasts.
    fake.set_behavior(|b| b.echo_joins = false);
    old.send(":tmi.twitch.tv RECONNECT").await;
    let new = fake.next_conn().await;
    // Twitch PINGs each connection with the same line; each must be answered on its own.
    old.send("PING :tmi.twitch.tv").await;
    fake.wait_until("PONG on the old connection", |st| {
        st.received[old.id].iter().any(|l| l.starts_with("PONG"))
    })
    .await;
    new.send("PING :tmi.twitch.tv").await;
    fake.wait_until("PONG on the new connection", |st| {
        st.received[new.id].iter().any(|l| l.starts_with("PONG"))
    })
    .await;
    // A room line carried by both is logged once.
    let roomstate = "@emote-only=0;room-id=1;slow=0 :tmi.twitch.tv ROOMSTATE #a";
    old.send(roomstate).await;
    new.send(roomstate).await;

    // The new connection fails and no other can be opened: the old one is the only one again.
    fake.set_behavior(|b| b.ack_caps = false);
    new.close().await;
    fake.wait_until("a refused replacement", |st| st.accepted.len() > new.id + 1)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    old.send("PING :tmi.twitch.tv").await;
    fake.wait_until("the second PING on the old connection answered", |st| {
        st.received[old.id]
            .iter()
            .filter(|l| l.starts_with("PONG"))
            .count()
            == 2
    })
    .await;
    // Past the grace after the hand-back nothing is taken for a duplicate any more.
    old.send(roomstate).await;
    wait_records(dir.path(), "the second ROOMSTATE", |all| {
        all.iter()
            .filter(|(_, r)| r.cmd.as_deref() == Some("ROOMSTATE"))
            .count()
            == 2
    })
    .await;
    assert_eq!(sent(&fake, new.id, "PONG"), 1);
    chat.stop().await;
}

#[tokio::test]
async fn keepalive_pongs_after_a_reconnect_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), dir.path());
    // Our PINGs come well inside the time the overlap's duplicates are watched for.
    s.timing.ping_interval = Duration::from_millis(200);
    s.timing.ping_timeout = Duration::from_millis(1500);
    let (chat, old) = joined(&fake, s, &["a"]).await;
    old.send(":tmi.twitch.tv RECONNECT").await;
    let new = fake.next_conn().await;
    fake.wait_until("old connection closed", |st| !st.open[old.id])
        .await;
    // Every PING on the new connection gets the same PONG the old one got.
    fake.wait_until("4 keepalive PINGs on the new connection", |st| {
        st.received[new.id]
            .iter()
            .filter(|l| l.starts_with("PING"))
            .count()
            >= 4
    })
    .await;
    {
        let st = fake.state.lock().unwrap();
        assert!(st.open[new.id], "the new connection was dropped");
        assert_eq!(st.accepted.len(), 2, "no third connection");
    }
    let events = chat.stop().await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ChatDisconnected { .. })),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_dropped_socket_reconnects_with_backoff_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), dir.path());
    s.connect_interval = Duration::from_millis(100);
    s.timing.backoff_max = Duration::from_millis(300);
    let (mut chat, first) = joined(&fake, s, &["a"]).await;
    first.close().await;
    let lost = chat
        .event("ChatDisconnected", |e| {
            matches!(e.kind, EventKind::ChatDisconnected { .. })
        })
        .await;
    let EventKind::ChatDisconnected { reason } = lost.kind else {
        unreachable!()
    };
    assert!(reason.contains("closed the connection"), "{reason}");
    let second = fake.next_conn().await;
    fake.wait_until("re-joined", |s| s.rooms[second.id].contains("a"))
        .await;
    chat.event("ChatReconnected", |e| {
        matches!(e.kind, EventKind::ChatReconnected { .. })
    })
    .await;
    // `/metrics`: one reconnect, one connection up again.
    assert_eq!(chat.metrics.irc_reconnects.get(), 1);
    assert_eq!(chat.metrics.chat_connections.get(), 1);

    // Now the server refuses every login for a while: attempts continue, spaced by the
    // backoff (full jitter, capped at 300 ms here) and never closer than the connect interval
    // (100 ms; the server may see them a little closer than the client sent them), with one
    // ChatDisconnected for the outage.
    fake.set_behavior(|b| b.ack_caps = false);
    let before = fake.state.lock().unwrap().accepted.len();
    second.close().await;
    fake.wait_until("8 refused attempts", |s| s.accepted.len() >= before + 8)
        .await;
    let accepted = fake.state.lock().unwrap().accepted.clone();
    for pair in accepted[before..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(60),
            "connect interval kept: {gap:?}"
        );
        assert!(
            gap <= Duration::from_millis(300 + 100 + 500),
            "backoff capped: {gap:?}"
        );
    }
    fake.set_behavior(|b| b.ack_caps = true);
    let back = chat
        .event("ChatReconnected", |e| {
            matches!(e.kind, EventKind::ChatReconnected { .. })
        })
        .await;
    let EventKind::ChatReconnected { offline_secs } = back.kind else {
        unreachable!()
    };
    assert!(offline_secs > 0.0);
    let events = chat.stop().await;
    let outages: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ChatDisconnected { .. }))
        .collect();
    assert_eq!(
        outages.len(),
        2,
        "one per outage, not one per attempt: {outages:#?}"
    );
    let EventKind::ChatDisconnected { reason } = &outages[1].kind else {
        unreachable!()
    };
    assert!(
        reason.contains("CAP") || reason.contains("closed"),
        "{reason}"
    );
}

#[tokio::test]
async fn no_pong_within_the_timeout_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), dir.path());
    s.timing.ping_interval = Duration::from_millis(100);
    s.timing.ping_timeout = Duration::from_millis(150);
    let (mut chat, _first) = joined(&fake, s, &["a"]).await;
    fake.wait_until("keepalive PINGs", |s| s.pings_from_client >= 2)
        .await;
    fake.set_behavior(|b| b.answer_pings = false);
    let lost = chat
        .event("ChatDisconnected", |e| {
            matches!(e.kind, EventKind::ChatDisconnected { .. })
        })
        .await;
    let EventKind::ChatDisconnected { reason } = lost.kind else {
        unreachable!()
    };
    assert!(reason.contains("no PONG within 0.15 s"), "{reason}");
    fake.set_behavior(|b| b.answer_pings = true);
    let next = fake.next_conn().await;
    fake.wait_until("re-joined", |s| s.rooms[next.id].contains("a"))
        .await;
    chat.event("ChatReconnected", |e| {
        matches!(e.kind, EventKind::ChatReconnected { .. })
    })
    .await;
    chat.stop().await;
}

#[tokio::test]
async fn lines_that_cannot_be_written_are_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    // The chat folder is a file: no line can be written (a failing disk).
    let not_a_folder = dir.path().join("chat");
    std::fs::write(&not_a_folder, "").unwrap();
    let fake = FakeTwitch::bind().await;
    let (mut chat, conn) = joined(&fake, settings(fake.dialer(), &not_a_folder), &["a"]).await;
    for i in 0..5 {
        conn.send(&privmsg("a", &format!("d{i}"), now_ms(), "lost"))
            .await;
    }
    let dropped = chat
        .event("ChatDropped", |e| {
            matches!(e.kind, EventKind::ChatDropped { .. })
        })
        .await;
    let EventKind::ChatDropped { lines } = dropped.kind else {
        unreachable!()
    };
    assert!(lines >= 1);
    let status = chat.handle.status(None).await.unwrap();
    assert!(status.dropped >= lines, "{status:?}");
    assert!(recbot::frontend::render::chat_service_line(&status).contains("line(s) dropped"));
    let metrics = chat.metrics.clone();
    let events = chat.stop().await;
    let total: u64 = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ChatDropped { lines } => Some(lines),
            _ => None,
        })
        .sum();
    // The handshake lines, the JOIN echo and the five messages: all counted by the end.
    assert!(total >= 6, "{total}");
    // `/metrics` counts the same lines, and no line as logged.
    assert_eq!(metrics.chat_dropped.get(), total);
    assert_eq!(metrics.login("a").chat_lines.get(), 0);
}

#[tokio::test]
async fn joined_rooms_are_joined_again_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), dir.path());
    s.timing.rejoin_interval = Duration::from_millis(200);
    let chat = Chat::start(s, None);
    chat.want(&["a", "b"]).await;
    let conn = fake.next_conn().await;
    fake.wait_until("each room joined 3 times on one connection", |s| {
        ["a", "b"].iter().all(|room| {
            s.joins
                .iter()
                .filter(|(_, c, r)| *c == conn.id && r == room)
                .count()
                >= 3
        })
    })
    .await;
    assert_eq!(
        fake.state.lock().unwrap().accepted.len(),
        1,
        "no reconnect needed"
    );
    chat.stop().await;
}

/// 500 logins with Twitch's default limits (20 JOINs per 10 s, one connection per 2 s, 90
/// rooms per connection), in paused time: the fake records when every JOIN arrived.
#[tokio::test(start_paused = true)]
async fn joins_never_exceed_twitchs_limit_with_500_logins() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::in_memory();
    let mut s = settings(fake.dialer(), dir.path());
    s.connect_interval = Duration::from_secs(2);
    s.join_limit = 20;
    s.join_window = Duration::from_secs(10);
    s.timing.ping_interval = Duration::from_secs(60);
    s.timing.ping_timeout = Duration::from_secs(10);
    s.writer.flush_interval = Duration::from_secs(1);
    s.writer.fsync_interval = Duration::from_secs(10);
    let mut chat = Chat::start(s, None);
    let logins: Vec<String> = (0..500).map(|i| format!("login_{i:03}")).collect();
    let refs: Vec<&str> = logins.iter().map(String::as_str).collect();
    chat.want(&refs).await;
    fake.wait_until("500 rooms joined", |s| s.joins.len() >= 500)
        .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (joins, accepted) = {
        let s = fake.state.lock().unwrap();
        (s.joins.clone(), s.accepted.clone())
    };
    assert_eq!(joins.len(), 500, "each room joined once");
    let distinct: HashSet<&String> = joins.iter().map(|(_, _, r)| r).collect();
    assert_eq!(distinct.len(), 500);
    for (i, (t, _, _)) in joins.iter().enumerate() {
        let in_window = joins[i..]
            .iter()
            .take_while(|(u, _, _)| *u - *t < Duration::from_secs(10))
            .count();
        assert!(in_window <= 20, "{in_window} JOINs within 10 s");
    }
    let span = joins.last().unwrap().0 - joins[0].0;
    assert!(
        span >= Duration::from_secs(240),
        "500 JOINs at 20/10 s take 4 min+: {span:?}"
    );
    assert_eq!(accepted.len(), 6, "ceil(500 / 90) connections");
    for pair in accepted.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(2));
    }
    let mut per_conn: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, c, _) in &joins {
        *per_conn.entry(*c).or_default() += 1;
    }
    assert!(per_conn.values().all(|n| *n <= 90), "{per_conn:?}");
    let announced: usize = chat
        .drain_events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ChatJoined { rooms } => Some(rooms),
            _ => None,
        })
        .sum();
    assert_eq!(announced, 500);
    let status = chat.handle.status(None).await.unwrap();
    assert_eq!(
        (status.wanted, status.joined, status.connections),
        (500, 500, 6)
    );

    // Removing logins parts their rooms at once (PART is not rate limited).
    chat.want(&refs[..250]).await;
    fake.wait_until("250 PARTs", |s| s.parts.len() == 250).await;
    let parted: HashSet<String> = fake
        .state
        .lock()
        .unwrap()
        .parts
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert!(parted.iter().all(|r| r.as_str() >= "login_250"));
    let status = chat.handle.status(None).await.unwrap();
    assert_eq!((status.wanted, status.joined), (250, 250));
    chat.stop().await;
}

#[tokio::test]
async fn days_rotate_at_utc_midnight_by_tmi_sent_ts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let (chat, conn) = joined(&fake, settings(fake.dialer(), dir.path()), &["a"]).await;
    let midnight = Utc
        .with_ymd_and_hms(2025, 3, 2, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    conn.send(&privmsg("a", "late", midnight - 1, "last of the day"))
        .await;
    conn.send(&privmsg("a", "early", midnight, "first of the next"))
        .await;
    conn.send("@id=nots :v!v@v PRIVMSG #a :no tmi-sent-ts")
        .await;
    let all = wait_records(dir.path(), "three lines", |all| ids_in(all, "a").len() == 3).await;
    let file_of = |id: &str| {
        all.iter()
            .find(|(_, r)| r.id.as_deref() == Some(id))
            .unwrap()
            .0
            .clone()
    };
    assert_eq!(file_of("late"), dir.path().join("a/2025/03/01.jsonl.zst"));
    assert_eq!(file_of("early"), dir.path().join("a/2025/03/02.jsonl.zst"));
    let today = Utc::now().format("a/%Y/%m/%d.jsonl.zst").to_string();
    assert_eq!(
        file_of("nots"),
        dir.path().join(today),
        "dated by receive time"
    );
    let status = chat
        .handle
        .status(Some(Login::parse("a").unwrap()))
        .await
        .unwrap();
    let login = status.login.unwrap();
    assert!(login.joined && login.wanted);
    assert!(
        login.lines_today >= 2,
        "JOIN echo and the undated line: {login:?}"
    );
    chat.stop().await;
}

#[tokio::test]
async fn a_finished_part_gets_its_chat_with_offsets() {
    use recbot::archive::sidecar::{AdBreak, Sidecar};
    let dir = tempfile::tempdir().unwrap();
    let chat_dir = dir.path().join("chat");
    let fake = FakeTwitch::bind().await;
    let (mut chat, conn) = joined(&fake, settings(fake.dialer(), &chat_dir), &["a"]).await;
    let start = Utc.with_ymd_and_hms(2025, 3, 1, 23, 59, 50).unwrap();
    let at = |secs: i64| start.timestamp_millis() + secs * 1000;
    for (id, secs) in [
        ("before", -1),
        ("s1", 1),
        ("ad", 10),
        ("s20", 20),
        ("after", 41),
    ] {
        conn.send(&privmsg("a", id, at(secs), id)).await;
    }
    wait_records(&chat_dir, "5 lines", |all| ids_in(all, "a").len() == 5).await;
    let recordings = dir.path().join("recordings/a");
    std::fs::create_dir_all(&recordings).unwrap();
    let sidecar = Sidecar {
        login: "a".into(),
        source: "twitch".into(),
        session: 7,
        part: 2,
        file: "2025-03-01_23-59-50_title.ts".into(),
        quality: "best".into(),
        started: start,
        ended: start + chrono::Duration::seconds(40),
        duration_secs: 35.0,
        segments: 18,
        bytes: 1,
        ad_breaks: vec![AdBreak {
            at: start + chrono::Duration::seconds(8),
            offset_secs: 8.0,
            duration_secs: 5.0,
        }],
        ..Default::default()
    };
    let sidecar_path = recordings.join("2025-03-01_23-59-50_title.json");
    sidecar.write(&sidecar_path).await.unwrap();
    let login = Login::parse("a").unwrap();
    chat.handle
        .save_part(login.clone(), 2, sidecar_path.clone(), Some(7))
        .await;
    let saved = chat
        .event("ChatSaved", |e| {
            matches!(e.kind, EventKind::ChatSaved { .. })
        })
        .await;
    assert_eq!(saved.session, Some(7));
    assert_eq!(saved.login, Some(login.clone()));
    let path = recordings.join("2025-03-01_23-59-50_title.chat.jsonl");
    assert_eq!(
        saved.kind,
        EventKind::ChatSaved {
            part: 2,
            file: path.clone(),
            lines: 3
        }
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(Option<String>, Option<i64>)> =
        lines.iter().map(|r| (r.id.clone(), r.offset_ms)).collect();
    assert_eq!(
        got,
        [
            (Some("s1".into()), Some(1000)),
            (Some("ad".into()), Some(10_000)),
            (Some("s20".into()), Some(20_000)),
        ],
        "the span crosses UTC midnight: both day files are read"
    );
    let video: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["video_ms"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        video,
        [1000, 8000, 15_000],
        "the ad break is cut out of the video"
    );
    assert!(lines.iter().all(|r| r.raw.contains("PRIVMSG #a")));
    assert!(!recordings
        .join("2025-03-01_23-59-50_title.chat.jsonl.recbot-tmp")
        .exists());
    assert!(!recordings
        .join("2025-03-01_23-59-50_title.chat.jsonl.part")
        .exists());
    // `subtitles = []`: no replay beside it, none listed.
    for ext in ["ass", "vtt"] {
        let name = format!("2025-03-01_23-59-50_title.chat.{ext}");
        assert!(!recordings.join(name).exists());
    }
    let listed = Sidecar::read(&sidecar_path).await.unwrap().subtitles;
    assert!(listed.is_empty(), "{listed:?}");

    // A sidecar that names no valid login writes nothing and says why.
    let bad = recordings.join("bad.json");
    let mut evil = sidecar.clone();
    evil.login = "../etc".into();
    evil.write(&bad).await.unwrap();
    chat.handle.save_part(login, 3, bad, None).await;
    let failed = chat
        .event("ChatSaveFailed", |e| {
            matches!(e.kind, EventKind::ChatSaveFailed { .. })
        })
        .await;
    let EventKind::ChatSaveFailed { part, reason } = failed.kind else {
        unreachable!()
    };
    assert_eq!(part, 3);
    assert!(reason.contains("not a login"), "{reason}");
    chat.stop().await;
}

/// A finished part with chat gets its replay beside the chat file, in both formats when
/// asked: each message from its `video_ms` (the ad break cut out), names in their colour,
/// hostile text as text; the sidecar lists both files.
#[tokio::test]
async fn a_finished_part_gets_its_chat_replay_as_subtitles() {
    use recbot::archive::sidecar::{AdBreak, Sidecar};
    let dir = tempfile::tempdir().unwrap();
    let chat_dir = dir.path().join("chat");
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), &chat_dir);
    s.replay = SubtitleSettings {
        formats: vec![SubtitleFormat::Ass, SubtitleFormat::Vtt],
        show_ms: 4000,
        lines: 8,
    };
    let (mut chat, conn) = joined(&fake, s, &["a"]).await;
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let at = |secs: i64| start.timestamp_millis() + secs * 1000;
    conn.send(&privmsg("a", "s1", at(1), "hello")).await;
    let coloured = format!(
        "@color=#1E90FF;display-name=Blue;id=s20;tmi-sent-ts={} :blue!blue@blue.tmi.twitch.tv \
         PRIVMSG #a :{{\\b1}}bold --> <i>x</i> \\N",
        at(20)
    );
    conn.send(&coloured).await;
    wait_records(&chat_dir, "2 lines", |all| ids_in(all, "a").len() == 2).await;
    let recordings = dir.path().join("recordings/a");
    std::fs::create_dir_all(&recordings).unwrap();
    let sidecar = Sidecar {
        login: "a".into(),
        source: "twitch".into(),
        file: "p.ts".into(),
        started: start,
        ended: start + chrono::Duration::seconds(60),
        ad_breaks: vec![AdBreak {
            at: start + chrono::Duration::seconds(8),
            offset_secs: 8.0,
            duration_secs: 5.0,
        }],
        ..Default::default()
    };
    let sidecar_path = recordings.join("p.json");
    sidecar.write(&sidecar_path).await.unwrap();
    chat.handle
        .save_part(Login::parse("a").unwrap(), 1, sidecar_path.clone(), None)
        .await;
    chat.event("ChatSaved", |e| {
        matches!(e.kind, EventKind::ChatSaved { .. })
    })
    .await;
    let ass = std::fs::read_to_string(recordings.join("p.chat.ass")).unwrap();
    let dialogues: Vec<&str> = ass.lines().filter(|l| l.starts_with("Dialogue:")).collect();
    assert_eq!(
        dialogues,
        [
            "Dialogue: 0,0:00:01.00,0:00:05.00,Chat,,0,0,0,,{\\c&HFF70A9&}Viewer{\\r}: hello",
            "Dialogue: 0,0:00:15.00,0:00:19.00,Chat,,0,0,0,,{\\c&HFF901E&}Blue{\\r}: \
             \\{\\\u{2060}b1\\}bold --> <i>x</i> \\\u{2060}N",
        ],
        "the 5 s ad break before the second message is cut out"
    );
    let vtt = std::fs::read_to_string(recordings.join("p.chat.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    assert!(vtt.contains("::cue(.c1e90ff) { color: #1e90ff; }"), "{vtt}");
    assert!(
        vtt.contains(
            "00:00:15.000 --> 00:00:19.000 line:2% position:2% align:left size:34%\n\
             <c.c1e90ff>Blue</c>: {\\b1}bold --&gt; &lt;i&gt;x&lt;/i&gt; \\N\n"
        ),
        "{vtt}"
    );
    assert_eq!(
        Sidecar::read(&sidecar_path).await.unwrap().subtitles,
        ["p.chat.ass", "p.chat.vtt"]
    );
    let mut names: Vec<String> = std::fs::read_dir(&recordings)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["p.chat.ass", "p.chat.jsonl", "p.chat.vtt", "p.json"],
        "no temporary file is left"
    );
    chat.stop().await;
}

/// Replay subtitles that cannot be written (a directory stands where the `.chat.ass` goes):
/// the chat file is saved (`ChatSaved`, which the upload waits for), then `ChatReplayFailed`
/// says why; the sidecar lists no subtitles.
#[tokio::test]
async fn a_replay_that_cannot_be_written_is_reported_after_the_chat_file_is_saved() {
    use recbot::archive::sidecar::Sidecar;
    let dir = tempfile::tempdir().unwrap();
    let chat_dir = dir.path().join("chat");
    let fake = FakeTwitch::bind().await;
    let mut s = settings(fake.dialer(), &chat_dir);
    s.replay = SubtitleSettings {
        formats: vec![SubtitleFormat::Ass],
        show_ms: 4000,
        lines: 8,
    };
    let (mut chat, conn) = joined(&fake, s, &["a"]).await;
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    conn.send(&privmsg(
        "a",
        "r1",
        start.timestamp_millis() + 1000,
        "hello",
    ))
    .await;
    wait_records(&chat_dir, "1 line", |all| ids_in(all, "a").len() == 1).await;
    let recordings = dir.path().join("recordings/a");
    std::fs::create_dir_all(recordings.join("p.chat.ass")).unwrap();
    let sidecar = Sidecar {
        login: "a".into(),
        source: "twitch".into(),
        file: "p.ts".into(),
        started: start,
        ended: start + chrono::Duration::seconds(60),
        ..Default::default()
    };
    let sidecar_path = recordings.join("p.json");
    sidecar.write(&sidecar_path).await.unwrap();
    chat.handle
        .save_part(Login::parse("a").unwrap(), 3, sidecar_path.clone(), Some(9))
        .await;
    let saved = chat
        .event("ChatSaved", |e| {
            matches!(e.kind, EventKind::ChatSaved { .. })
        })
        .await;
    assert!(matches!(
        saved.kind,
        EventKind::ChatSaved {
            part: 3,
            lines: 1,
            ..
        }
    ));
    let failed = chat
        .event("ChatReplayFailed", |e| {
            matches!(e.kind, EventKind::ChatReplayFailed { .. })
        })
        .await;
    let EventKind::ChatReplayFailed { part, reason } = &failed.kind else {
        unreachable!()
    };
    assert_eq!((*part, failed.session), (3, Some(9)));
    assert!(reason.contains("p.chat.ass"), "{reason}");
    assert!(recordings.join("p.chat.jsonl").is_file());
    assert!(Sidecar::read(&sidecar_path)
        .await
        .unwrap()
        .subtitles
        .is_empty());
    chat.stop().await;
}

/// A chat that logs in as the account whose token (`user-token-1`) `id` checks, with room `a`
/// wanted.
async fn user_chat(fake: &FakeTwitch, dir: &Path, id: &wiremock::MockServer) -> Chat {
    let mut s = settings(fake.dialer(), dir);
    s.login = ChatLogin::User;
    s.id_url = format!("{}/oauth2", id.uri());
    let chat = Chat::start(s, Some(Secret::new("user-token-1")));
    chat.want(&["a"]).await;
    chat
}

#[tokio::test]
async fn a_slow_account_check_holds_up_neither_status_nor_shutdown() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    // Twitch takes a minute to say whose token it is (the check gives up after 15 s).
    let id = MockServer::start().await;
    Mock::given(path("/oauth2/validate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"login": "mybot"}))
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&id)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let chat = user_chat(&fake, dir.path(), &id).await;
    let status = tokio::time::timeout(Duration::from_secs(3), chat.handle.status(None))
        .await
        .expect("status answers while the account is checked")
        .unwrap();
    assert!(
        chat_identity(&status.identity).contains("checking"),
        "{status:?}"
    );
    assert_eq!(status.wanted, 1);
    // A new token while the first check runs: still no wait.
    chat.handle
        .set_user_token(Some(Secret::new("user-token-2")))
        .await;
    tokio::time::timeout(Duration::from_secs(3), chat.handle.status(None))
        .await
        .expect("status answers after a token change")
        .unwrap();
    // No connection logs in before it is known as whom.
    assert!(fake.state.lock().unwrap().accepted.is_empty());
    tokio::time::timeout(Duration::from_secs(3), chat.stop())
        .await
        .expect("shutdown does not wait for the check");
}

#[tokio::test]
async fn the_account_check_follows_no_redirect_with_the_token() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    // The id endpoint redirects: the token must not be sent on to wherever it points.
    let id = MockServer::start().await;
    Mock::given(path("/oauth2/validate"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/elsewhere/validate"))
        .mount(&id)
        .await;
    Mock::given(path("/elsewhere/validate"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"login": "mybot"})),
        )
        .mount(&id)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let chat = user_chat(&fake, dir.path(), &id).await;
    let conn = fake.next_conn().await;
    let nick = fake.state.lock().unwrap().received[conn.id][1].clone();
    assert!(nick.starts_with("NICK justinfan"), "{nick}");
    let requests = id.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.url.path() == "/oauth2/validate"),
        "followed the redirect: {:?}",
        requests
            .iter()
            .map(|r| r.url.path().to_string())
            .collect::<Vec<_>>()
    );
    chat.stop().await;
}

#[tokio::test]
async fn user_login_sends_the_token_and_falls_back_to_anonymous_when_refused() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/oauth2/validate"))
        .and(header("Authorization", "OAuth user-token-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "client_id": "x", "login": "mybot", "scopes": ["chat:read"], "user_id": "1", "expires_in": 1000
        })))
        .mount(&id)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let mut chat = user_chat(&fake, dir.path(), &id).await;
    let conn = fake.next_conn().await;
    {
        let st = fake.state.lock().unwrap();
        let sent = &st.received[conn.id];
        assert_eq!(sent[0], "CAP REQ :twitch.tv/tags twitch.tv/commands");
        assert_eq!(sent[1], "PASS oauth:user-token-1", "PASS before NICK");
        assert_eq!(sent[2], "NICK mybot");
    }
    let status = chat.handle.status(None).await.unwrap();
    assert_eq!(chat_identity(&status.identity), "as mybot");
    // The account is refused on the next login: chat goes on anonymously and says so.
    fake.set_behavior(|b| b.refuse_pass = true);
    conn.close().await;
    chat.event(
        "AuthRequired",
        |e| matches!(&e.kind, EventKind::AuthRequired { service, .. } if service == "twitch"),
    )
    .await;
    let next = fake.next_conn().await;
    let nick = fake.state.lock().unwrap().received[next.id][1].clone();
    assert!(nick.starts_with("NICK justinfan"), "{nick}");
    fake.wait_until("joined anonymously", |s| s.rooms[next.id].contains("a"))
        .await;
    let status = chat.handle.status(None).await.unwrap();
    let identity = chat_identity(&status.identity);
    assert!(
        identity.starts_with("anonymous: Twitch refused"),
        "{identity}"
    );
    let events = chat.stop().await;
    assert!(!format!("{events:?}").contains("user-token-1"));
}

#[tokio::test]
async fn tls_connections_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind_tls().await;
    // The public roots do not know the test CA: refused, and said why.
    let untrusted = Dialer::new("localhost", fake.port, true).unwrap();
    let mut chat = Chat::start(settings(untrusted, dir.path()), None);
    chat.want(&["a"]).await;
    let lost = chat
        .event("ChatDisconnected", |e| {
            matches!(e.kind, EventKind::ChatDisconnected { .. })
        })
        .await;
    let EventKind::ChatDisconnected { reason } = lost.kind else {
        unreachable!()
    };
    assert!(reason.contains("certificate"), "{reason}");
    chat.stop().await;
    // Trusting the test CA: logged in over TLS, lines logged.
    let trusted =
        Dialer::with_roots("localhost", fake.port, Some(FakeTwitch::test_roots())).unwrap();
    assert!(trusted.describe().ends_with("(TLS)"));
    let (chat, conn) = joined(&fake, settings(trusted, dir.path()), &["a"]).await;
    conn.send(&privmsg("a", "tls1", now_ms(), "over TLS")).await;
    wait_records(dir.path(), "the line", |all| ids_in(all, "a") == ["tls1"]).await;
    chat.stop().await;
}

#[test]
fn logs_command_renders_and_filters_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recbot.toml");
    std::fs::write(&config, "[storage]\ndata_dir = \"data\"\n").unwrap();
    let day = dir.path().join("data/chat/ronni/2017/10/05.jsonl");
    std::fs::create_dir_all(day.parent().unwrap()).unwrap();
    let mut buf = Vec::new();
    for (raw, recv) in [
        ("@display-name=ronni;id=1;tmi-sent-ts=1507246572675;user-id=1 :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa", 0),
        ("@display-name=randers;tmi-sent-ts=1507246632675 :randers!randers@randers.tmi.twitch.tv PRIVMSG #ronni :\u{1}ACTION waves\u{1}", 0),
        ("@ban-duration=350;room-id=1;target-user-id=2;tmi-sent-ts=1507246692675 :tmi.twitch.tv CLEARCHAT #ronni :randers", 0),
        ("@login=ronni;msg-id=resub;system-msg=ronni\\shas\\ssubscribed\\sfor\\s6\\smonths!;tmi-sent-ts=1507246752675 :tmi.twitch.tv USERNOTICE #ronni :Great stream", 0),
        ("@login=randers;target-msg-id=x;tmi-sent-ts=1507246812675 :tmi.twitch.tv CLEARMSG #ronni :waves", 0),
        (":justinfan1!justinfan1@justinfan1.tmi.twitch.tv JOIN #ronni", 1507246000000i64),
    ] {
        recbot::chat::record::encode(raw, None, if recv == 0 { 1507246572999 } else { recv }, &mut buf);
    }
    std::fs::write(&day, &buf).unwrap();
    let logs = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recbot"))
            .arg("logs")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = logs(&["ronni", "--date", "2017-10-05"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "[23:36:12] ronni: Kappa Keepo Kappa\n\
         [23:37:12] * randers waves\n\
         [23:38:12] ✖ randers was timed out for 350 s\n\
         [23:39:12] ★ ronni has subscribed for 6 months! — ronni: Great stream\n\
         [23:40:12] ✖ a message from randers was deleted: waves\n"
    );
    let (_, out, _) = logs(&["@Ronni", "--date", "2017-10-05", "--user", "RANDERS"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let (_, out, _) = logs(&["ronni", "--date", "2017-10-05", "--grep", "kappa"]);
    assert_eq!(out, "[23:36:12] ronni: Kappa Keepo Kappa\n");
    let (_, out, _) = logs(&[
        "ronni",
        "--date",
        "2017-10-05",
        "--since",
        "23:37",
        "--until",
        "23:38",
    ]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (_, out, _) = logs(&["ronni", "--date", "2017-10-05", "--json", "--grep", "kappa"]);
    let record: Record = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(record.id.as_deref(), Some("1"));
    let (code, _, err) = logs(&["ronni", "--date", "05.10.2017"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let (code, _, err) = logs(&["../etc", "--date", "2017-10-05"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a valid"), "{err}");
    let (code, _, err) = logs(&["ronni", "--date", "2017-10-06"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no chat log for ronni on 2017-10-06"), "{err}");

    // The same day compressed (a frame per line, as a quiet room's flushes give), with a
    // cut frame at its end: read alike, the cut tail ignored.
    let mut encoder = recbot::chat::frames::Encoder::new(3).unwrap();
    let mut zst = Vec::new();
    for line in buf.split_inclusive(|b| *b == b'\n') {
        let record: Record = serde_json::from_slice(line).unwrap();
        let start = zst.len() as u64;
        encoder
            .frame(line, start, record.sent_ms.unwrap_or(0), &mut zst)
            .unwrap();
    }
    let whole = zst.len();
    let start = whole as u64;
    encoder
        .frame(b"{\"lost\":1}\n", start, 0, &mut zst)
        .unwrap();
    zst.truncate(whole + 10);
    std::fs::write(day.with_extension("jsonl.zst"), &zst).unwrap();
    std::fs::remove_file(&day).unwrap();
    let (code, out, err) = logs(&["ronni", "--date", "2017-10-05"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(!out.contains("damaged"), "{out}");
    let (_, out, _) = logs(&[
        "ronni",
        "--date",
        "2017-10-05",
        "--since",
        "23:39",
        "--until",
        "23:40",
    ]);
    assert_eq!(
        out,
        "[23:39:12] ★ ronni has subscribed for 6 months! — ronni: Great stream\n\
         [23:40:12] ✖ a message from randers was deleted: waves\n"
    );
}

/// The core wires it all: the watch list drives the rooms, status shows chat, a finished part
/// gets its chat file, and removing the login parts the room.
#[tokio::test]
async fn the_core_drives_the_chat_logger() {
    use recbot::archive::sidecar::Sidecar;
    use recbot::core::{Core, Origin};
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTwitch::bind().await;
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[twitch]\nirc_host = \"127.0.0.1\"\nirc_port = {}\nirc_tls = false\n\
         [chat]\nconnect_interval_secs = 0.01\nbackoff_initial_secs = 0.02\nbackoff_max_secs = 0.2\nflush_interval_secs = 0.05\n",
        dir.path().to_str().unwrap(),
        fake.port
    );
    let config = Arc::new(
        recbot::config::Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap(),
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (core, handle) = Core::open(config, shutdown.clone()).await.unwrap();
    let events = core.events();
    let mut notices = handle.subscribe();
    core.spawn(&tracker).await.unwrap();
    let reply = handle.ask("add foo", Origin::console()).await;
    assert!(reply.ok, "{reply:?}");
    let conn = fake.next_conn().await;
    fake.wait_until("JOIN #foo", |s| s.rooms[conn.id].contains("foo"))
        .await;
    let joined = next_notice(&mut notices, "ChatJoined", |k| {
        matches!(k, EventKind::ChatJoined { .. })
    })
    .await;
    assert_eq!(joined.event.login.as_ref().map(Login::as_str), Some("foo"));
    assert_eq!(joined.room, Some(recbot::event::Room::Console));
    conn.send(&privmsg("foo", "x1", now_ms(), "hello")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = handle.ask("status foo", Origin::console()).await.text;
    assert!(
        status.contains("chat: joined, 2 line(s) logged today"),
        "{status}"
    );
    let status = handle.ask("status", Origin::console()).await.text;
    assert!(
        status.contains("chat: 1 of 1 room(s) joined on 1 connection(s) (anonymous)"),
        "{status}"
    );

    let start = Utc::now() - chrono::Duration::seconds(60);
    let sidecar = Sidecar {
        login: "foo".into(),
        source: "twitch".into(),
        session: 1,
        part: 1,
        file: "rec.ts".into(),
        quality: "best".into(),
        started: start,
        ended: DateTime::<Utc>::from_timestamp_millis(now_ms() + 1000).unwrap(),
        duration_secs: 60.0,
        segments: 30,
        bytes: 1,
        ..Default::default()
    };
    let sidecar_path = dir.path().join("rec.json");
    sidecar.write(&sidecar_path).await.unwrap();
    events
        .emit(
            Some(Login::parse("foo").unwrap()),
            EventKind::RecordingPartFinished {
                part: 1,
                file: dir.path().join("rec.ts"),
                sidecar: sidecar_path,
                bytes: 1,
                duration_secs: 60.0,
                gaps: 0,
                recovered: false,
            },
        )
        .await;
    let saved = next_notice(&mut notices, "ChatSaved", |k| {
        matches!(k, EventKind::ChatSaved { .. })
    })
    .await;
    let EventKind::ChatSaved { lines, file, .. } = &saved.event.kind else {
        unreachable!()
    };
    assert_eq!(*lines, 2, "the JOIN echo and the PRIVMSG");
    assert!(std::fs::read_to_string(file)
        .unwrap()
        .contains("\"id\":\"x1\""));

    let reply = handle.ask("remove foo", Origin::console()).await;
    assert!(reply.ok);
    fake.wait_until("PART #foo", |s| s.parts.iter().any(|(_, r)| r == "foo"))
        .await;
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .unwrap();
}

async fn next_notice(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<recbot::core::Notice>>,
    what: &str,
    pred: fn(&EventKind) -> bool,
) -> Arc<recbot::core::Notice> {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} notice"))
            .unwrap();
        if pred(&n.event.kind) {
            return n;
        }
    }
}
