//! Pushed live detection end to end: a bot with app credentials against the fake Helix
//! (`/users`, `/streams`, `/eventsub/conduits`, `/eventsub/subscriptions`) and the fake EventSub
//! WebSocket (tests/support/twitch.rs), recording from the fake origin.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recbot::config::Config;
use recbot::core::store::{Watch, EVENTSUB_CONDUIT};
use recbot::event::{Event, EventKind, Room};
use recbot_commands::{Login, Quality, Source};
use support::origin::{eventually, End, Origin, StreamConfig};
use support::twitch::HelixFake;
use support::{is, open_store, Bot};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, origin: Option<&Origin>, fake: &HelixFake, twitch: &str) -> Arc<Config> {
    let origin = origin
        .map(Origin::twitch_config)
        .unwrap_or("[twitch]\n".into());
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n{origin}{}",
        dir.to_str().unwrap(),
        fake.config(&format!("eventsub_changes_per_sec = 1000\n{twitch}"))
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

async fn start(config: Arc<Config>) -> Bot {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    Bot::start(config).await.keeping_unmatched()
}

/// Waits until both subscriptions of every login are held and the shard is enabled.
async fn subscribed(fake: &HelixFake, logins: &[&str]) {
    eventually(WAIT, || {
        let s = fake.state();
        s.shard_enabled
            && logins
                .iter()
                .all(|l| s.subscribed(l, "stream.online") && s.subscribed(l, "stream.offline"))
    })
    .await;
}

fn of<'a>(login: &'a str, name: &'static str) -> impl Fn(&Event) -> bool + 'a {
    move |e| e.kind_name() == name && e.login.as_ref().map(|l| l.as_str()) == Some(login)
}

#[tokio::test]
async fn online_records_at_once_offline_ends_it_and_helix_is_polled_only_at_the_safety_net() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let fake = HelixFake::start(10, 10_000).await;
    let twitch = "poll_interval_secs = 1\nsafety_net_interval_secs = 30\noffline_grace_secs = 1\n";
    let mut bot = start(config(dir.path(), Some(&origin), &fake, twitch)).await;
    bot.command("add foo").await;
    subscribed(&fake, &["foo"]).await;
    // Let the first poll cycles (start, add) pass: from here on only the safety net polls.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls_before = fake.state().n("streams");
    let up_at = Instant::now();
    origin.go_live(
        "foo",
        StreamConfig {
            segments: 1000,
            end: End::Never,
            ..Default::default()
        },
    );
    let pushed_at = Instant::now();
    assert!(fake.online("foo", "s1", "pushed title", 1));
    let live = bot
        .wait_for("LiveDetected", of("foo", "LiveDetected"))
        .await;
    let EventKind::LiveDetected { stream_id, .. } = &live.kind else {
        unreachable!()
    };
    assert_eq!(stream_id.as_deref(), Some("s1"));
    eventually(WAIT, || origin.requests("segment") > 0).await;
    let latency = pushed_at.elapsed();
    eprintln!("detection latency, stream.online to first segment request: {latency:?}");
    assert!(latency < Duration::from_secs(10), "{latency:?}");
    bot.wait_for("RecordingStarted", of("foo", "RecordingStarted"))
        .await;
    // Title and game came from one Helix check of foo.
    let updated = bot
        .wait_for("StreamUpdated", of("foo", "StreamUpdated"))
        .await;
    assert!(
        matches!(&updated.kind, EventKind::StreamUpdated { title, .. } if title == "pushed title")
    );
    let status = bot.command("status").await;
    assert!(
        status.contains("EventSub up (2 of 2 subscriptions"),
        "{status}"
    );
    assert!(status.contains("safety net every 30 s"), "{status}");
    assert!(fake.offline("foo"));
    origin.go_offline("foo");
    bot.wait_for("StreamOffline", of("foo", "StreamOffline"))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Polling every second would have made at least 3 requests; the safety net (30 s) made
    // none, only the one check for the title.
    let polls = fake.state().n("streams") - polls_before;
    assert!(
        polls <= 1,
        "{polls} /streams requests in {:?}",
        up_at.elapsed()
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_requested_reconnect_loses_nothing_and_subscribes_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 10_000).await;
    let mut bot = start(config(dir.path(), None, &fake, "")).await;
    bot.command("add foo").await;
    bot.command("add bar").await;
    subscribed(&fake, &["foo", "bar"]).await;
    let (creates, patches) = {
        let s = fake.state();
        (s.n("create"), s.n("patch"))
    };
    // A notification on the old socket after session_reconnect is still taken.
    assert!(fake.reconnect_then_online("foo", "s1"));
    bot.wait_for("LiveDetected", of("foo", "LiveDetected"))
        .await;
    eventually(WAIT, || fake.state().connections == 2).await;
    // One on the new socket too.
    eventually(WAIT, || fake.online("bar", "s2", "t", 1)).await;
    bot.wait_for("LiveDetected", of("bar", "LiveDetected"))
        .await;
    {
        let s = fake.state();
        assert_eq!((s.n("create"), s.n("patch")), (creates, patches));
        assert_eq!(s.subs.len(), 4);
    }
    bot.stop().await;
}

#[tokio::test]
async fn a_dropped_socket_gets_a_new_session_and_one_check_of_every_login() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 10_000).await;
    // Polls are far apart: only the check after the drop can find bar.
    let twitch = "poll_interval_secs = 60\nsafety_net_interval_secs = 60\n";
    let mut bot = start(config(dir.path(), None, &fake, twitch)).await;
    bot.command("add foo").await;
    bot.command("add bar").await;
    subscribed(&fake, &["foo", "bar"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls_before = fake.state().n("streams");
    fake.drop_socket();
    // bar goes live while no socket listens: its notification is lost.
    fake.live_quietly("bar", "s9", "in the gap");
    let live = bot
        .wait_for("LiveDetected", of("bar", "LiveDetected"))
        .await;
    assert!(
        matches!(&live.kind, EventKind::LiveDetected { stream_id, .. } if stream_id.as_deref() == Some("s9"))
    );
    {
        let s = fake.state();
        assert_eq!(s.connections, 2);
        assert_eq!(s.n("patch"), 2, "shard 0 assigned to the new session");
        assert!(s.shard_enabled);
        // One request for both logins.
        assert_eq!(s.n("streams") - polls_before, 1);
    }
    bot.stop().await;
}

#[tokio::test]
async fn keepalive_silence_counts_as_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(1, 10_000).await;
    let bot = start(config(dir.path(), None, &fake, "")).await;
    bot.command("add foo").await;
    subscribed(&fake, &["foo"]).await;
    fake.silence();
    eventually(WAIT, || {
        let s = fake.state();
        s.connections == 2 && s.n("patch") == 2 && s.shard_enabled
    })
    .await;
    bot.stop().await;
}

#[tokio::test]
async fn a_duplicate_notification_is_reported_once_and_a_revocation_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 10_000).await;
    let mut bot = start(config(dir.path(), None, &fake, "")).await;
    bot.command("add foo").await;
    bot.command("add bar").await;
    subscribed(&fake, &["foo", "bar"]).await;
    assert!(fake.online("foo", "s1", "t", 2));
    bot.wait_for("LiveDetected", of("foo", "LiveDetected"))
        .await;
    // bar's notification comes after foo's duplicate: once bar is reported, foo's duplicate
    // was seen (and dropped).
    assert!(fake.online("bar", "s2", "t", 1));
    bot.wait_for("LiveDetected", of("bar", "LiveDetected"))
        .await;
    let store = open_store(&bot.config).await;
    let foo = Login::parse("foo").unwrap();
    let detected = store
        .recent_events(Some(&foo), 50)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind_name() == "LiveDetected")
        .count();
    assert_eq!(detected, 1);
    store.close().await;
    assert!(fake.revoke("foo", "stream.offline", "authorization_revoked"));
    let revoked = bot
        .wait_for("EventSubRevoked", of("foo", "EventSubRevoked"))
        .await;
    assert!(matches!(
        &revoked.kind,
        EventKind::EventSubRevoked { subscription, reason }
            if subscription == "stream.offline" && reason == "authorization_revoked"
    ));
    // Not made again: Twitch revoked it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!fake.state().subscribed("foo", "stream.offline"));
    bot.stop().await;
}

#[tokio::test]
async fn the_conduit_is_reused_after_a_restart_and_recreated_when_twitch_forgot_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 10_000).await;
    let config = config(dir.path(), None, &fake, "");
    let bot = start(config.clone()).await;
    bot.command("add foo").await;
    subscribed(&fake, &["foo"]).await;
    bot.stop().await;
    let stored = |config: Arc<Config>| async move {
        let store = open_store(&config).await;
        let id = store.setting(EVENTSUB_CONDUIT).await.unwrap();
        store.close().await;
        id
    };
    assert_eq!(stored(config.clone()).await.as_deref(), Some("conduit-1"));
    // Restart: the same conduit and subscriptions, nothing created.
    let bot = start(config.clone()).await;
    eventually(WAIT, || {
        let s = fake.state();
        s.connections == 2 && s.shard_enabled && s.n("list") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let s = fake.state();
        assert_eq!((s.n("conduit-create"), s.n("create")), (1, 2));
        assert_eq!(s.shard.as_ref().unwrap().0, "conduit-1");
    }
    bot.stop().await;
    // Twitch deleted the conduit (all shards disabled for 72 h) and its subscriptions.
    {
        let mut s = fake.state();
        s.conduits.clear();
        s.subs.clear();
    }
    let bot = start(config.clone()).await;
    subscribed(&fake, &["foo"]).await;
    assert_eq!(fake.state().n("conduit-create"), 2);
    assert_eq!(fake.state().shard.as_ref().unwrap().0, "conduit-2");
    bot.stop().await;
    assert_eq!(stored(config).await.as_deref(), Some("conduit-2"));
}

#[tokio::test]
async fn removed_logins_lose_their_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 10_000).await;
    let bot = start(config(dir.path(), None, &fake, "")).await;
    bot.command("add foo").await;
    bot.command("add bar").await;
    subscribed(&fake, &["foo", "bar"]).await;
    bot.command("remove bar").await;
    eventually(WAIT, || {
        let s = fake.state();
        s.subs.len() == 2 && s.n("delete") == 2
    })
    .await;
    assert!(fake.state().subscribed("foo", "stream.online"));
    bot.stop().await;
}

fn watch(login: &str) -> Watch {
    Watch {
        name: Login::parse(login).unwrap(),
        source: Source::Twitch,
        quality: Quality::BEST,
        upload: false,
        chat: false,
        post: None,
        display_name: None,
        room: Room::Console,
        added_by: "test".into(),
        added_at: chrono::Utc::now(),
    }
}

/// All 1000 logins' ids are known and the cost limit's 1500 subscriptions are held.
fn bot_status_ready(fake: &HelixFake) -> bool {
    let s = fake.state();
    s.users.len() == 1000 && s.subs.len() == 1500
}

#[tokio::test]
async fn a_thousand_logins_converge_within_the_cost_limit_and_cost_no_extra_polling() {
    let dir = tempfile::tempdir().unwrap();
    let fake = HelixFake::start(10, 1500).await;
    let twitch = "poll_interval_secs = 1\nsafety_net_interval_secs = 3\n";
    let config = config(dir.path(), None, &fake, twitch);
    // Watched before the start (adding 1000 by command takes long in a debug build).
    let store = open_store(&config).await;
    for i in 0..1000 {
        store
            .put_watch(&watch(&format!("user{i:04}")))
            .await
            .unwrap();
    }
    store.close().await;
    let started = Instant::now();
    let mut bot = start(config).await;
    // Generous: 1500 creates plus lookups take seconds, more when the machine is busy.
    eventually(Duration::from_secs(120), || bot_status_ready(&fake)).await;
    let full = bot
        .wait_for("EventSubLimitReached", is("EventSubLimitReached"))
        .await;
    assert!(matches!(
        full.kind,
        EventKind::EventSubLimitReached { held: 1500, .. }
    ));
    eprintln!(
        "1000 logins: 1500 subscriptions (the cost limit) in {:?}",
        started.elapsed()
    );
    {
        let s = fake.state();
        assert_eq!(s.subs.len(), 1500);
        // Never a create beyond the limit; ids looked up 100 at a time.
        assert_eq!(s.n("create"), 1500);
        assert!(s.n("users") <= 20, "{}", s.n("users"));
    }
    let status = bot.command("status").await;
    assert!(
        status.contains("1500 of 2000 subscriptions, cost limit reached"),
        "{status}"
    );
    // Helix polled at the safety net's 3 s, not the 1 s poll interval: over 6.5 s at most
    // three cycles of 10 requests (a 1 s poll would make six or more).
    let before = fake.state().n("streams");
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let polls = fake.state().n("streams") - before;
    assert!(polls <= 30, "{polls} /streams requests in 6.5 s");
    bot.stop().await;
}
