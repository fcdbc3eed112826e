use std::path::Path;

use super::*;
use crate::frontend::render::{Ask, Rendered};
use recbot_commands::Source;

pub(crate) fn test_config(dir: &Path) -> Arc<Config> {
    // Chat logging has its own tests against a local fake server (tests/chat.rs).
    let text = crate::config::testing::offline(&format!(
        "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n",
        dir.to_str().unwrap()
    ));
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

struct Running {
    core: CoreHandle,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    async fn start(dir: &Path) -> Running {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let core = Core::start(test_config(dir), shutdown.clone(), &tracker)
            .await
            .unwrap();
        Running {
            core,
            shutdown,
            tracker,
        }
    }

    async fn run(&self, text: &str) -> Rendered {
        self.core.ask(text, Origin::console()).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn guest() -> Origin {
    Origin {
        room: Room::Slack("C42".into()),
        user: "U999".into(),
        operator: false,
    }
}

async fn event_count(dir: &Path) -> i64 {
    let store = Store::open(&dir.join("recbot.sqlite")).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&store.pool_for_tests())
        .await
        .unwrap();
    store.close().await;
    n
}

#[tokio::test]
async fn add_list_remove_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let reply = bot.run("add Foo").await;
    assert!(reply.ok, "{reply:?}");
    assert!(reply.text.contains("Watching foo"), "{}", reply.text);
    let reply = bot
        .run("add hls https://example.com/live.m3u8 studio upload=off")
        .await;
    assert!(reply.ok, "{reply:?}");
    let list = bot.run("list").await.text;
    assert!(list.contains("Watching 2"), "{list}");
    assert!(
        list.contains("• foo — Twitch, quality best, upload on, chat on"),
        "{list}"
    );
    assert!(
        list.contains("• studio — HLS https://example.com/live.m3u8, quality best, upload off"),
        "{list}"
    );

    let reply = bot.run("remove foo").await;
    assert!(
        reply.ok && reply.text.contains("Stopped watching foo"),
        "{reply:?}"
    );
    let reply = bot.run("remove foo").await;
    assert!(!reply.ok && reply.text.contains("not watched"), "{reply:?}");
    bot.stop().await;

    let bot = Running::start(dir.path()).await;
    let list = bot.run("list").await.text;
    assert!(list.contains("Watching 1:"), "{list}");
    assert!(list.contains("studio") && !list.contains("foo"), "{list}");
    let status = bot.run("status studio").await.text;
    assert!(status.contains("studio — HLS"), "{status}");
    bot.stop().await;
}

#[tokio::test]
async fn public_replies_show_an_hls_url_without_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let url = "https://viewer:hunter2@cdn.example.com:8443/live/a.m3u8?token=SIGNED&exp=1#x";
    assert!(bot.run(&format!("add hls {url} studio")).await.ok);
    let list = bot.core.ask("list", guest()).await;
    let status = bot.core.ask("status studio", guest()).await;
    bot.stop().await;
    for reply in [&list, &status] {
        assert!(reply.ok, "{reply:?}");
        assert!(
            reply
                .text
                .contains("HLS https://cdn.example.com:8443/live/a.m3u8?…"),
            "{}",
            reply.text
        );
        for secret in ["viewer", "hunter2", "SIGNED", "exp="] {
            assert!(!reply.text.contains(secret), "{secret} in {}", reply.text);
        }
    }
    // The stored source is the whole URL: the recorder needs it.
    let store = Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let name = Login::from_stored("studio").unwrap();
    let watch = store.watch(&name).await.unwrap().unwrap();
    assert_eq!(watch.source, Source::Hls { url: url.into() });
    store.close().await;
}

#[tokio::test]
async fn add_again_updates_options_and_keeps_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    assert!(bot.run("add foo").await.ok);
    let again = bot.run("add foo").await;
    assert!(
        again.ok && again.text.contains("Already watching foo"),
        "{again:?}"
    );
    let updated = bot.run("add foo quality=720p60 chat=off").await;
    assert!(
        updated
            .text
            .contains("Updated foo: quality 720p60, upload on, chat off"),
        "{updated:?}"
    );
    let clash = bot.run("add hls https://example.com/x.m3u8 foo").await;
    assert!(
        !clash.ok && clash.text.contains("already watched as Twitch"),
        "{clash:?}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn hostile_commands_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    assert!(bot.run("add foo").await.ok);
    let before = bot.run("list").await.text;
    let flood = "a".repeat(10_000);
    for text in [
        "add ../../etc",
        "add foo/bar",
        "remove ../foo",
        "add foo\u{0}",
        "add \u{202e}oof",
        "add f\u{200b}oo",
        "add foo; rm -rf /",
        "add $(reboot)",
        "",
        "   ",
        flood.as_str(),
        "ad foo",
        "add foo quality=8k",
        "code youtube garbage!!",
    ] {
        let reply = bot.run(text).await;
        assert!(!reply.ok, "{text:?} was accepted: {reply:?}");
        assert!(reply.text.len() < 600, "{text:?}: reply too long");
    }
    assert_eq!(bot.run("list").await.text, before);
    bot.stop().await;
    assert!(!dir.path().join("etc").exists());
}

#[tokio::test]
async fn non_operators_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let events_before = {
        // ServiceStarted is the only event so far
        1
    };
    let reply = bot.core.ask("add foo", guest()).await;
    assert!(!reply.ok && reply.private, "{reply:?}");
    assert!(
        reply.text.contains("Only operators may run `add`"),
        "{reply:?}"
    );
    let reply = bot.core.ask("remove foo", guest()).await;
    assert!(!reply.ok);
    // Read-only commands are for everyone.
    let reply = bot.core.ask("list", guest()).await;
    assert!(
        reply.ok && reply.text.contains("Not watching anything"),
        "{reply:?}"
    );
    assert!(bot.core.ask("help", guest()).await.ok);
    bot.stop().await;

    let store = Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let events = store.recent_events(None, 100).await.unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CommandRefused { .. }))
        .collect();
    assert_eq!(refused.len(), 2, "{events:?}");
    match &refused[0].kind {
        EventKind::CommandRefused { by, room, command } => {
            assert_eq!(by, "U999");
            assert_eq!(room, &Room::Slack("C42".into()));
            assert_eq!(command, "add foo");
        }
        _ => unreachable!(),
    }
    assert!(store.watches().await.unwrap().is_empty());
    assert!(events.len() > events_before);
}

#[tokio::test]
async fn events_are_persisted_before_they_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let mut notices = bot.core.subscribe();
    bot.shutdown.cancel();
    let notice = loop {
        let notice = notices.recv().await.unwrap();
        if matches!(notice.event.kind, EventKind::ServiceStopping) {
            break notice;
        }
    };
    assert!(notice.seq > 0);
    bot.tracker.close();
    bot.tracker.wait().await;
    assert_eq!(event_count(dir.path()).await, notice.seq);
}

#[tokio::test]
async fn accounts_and_uploads_without_credentials_answer_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    for (text, expected) in [
        ("auth youtube", "[youtube] client_id and client_secret"),
        ("auth twitch", "[twitch] client_id and client_secret"),
        ("auth twitch device", "[twitch] client_id and client_secret"),
        (
            "code youtube 4/0AbCdEfGh",
            "No youtube authorization is waiting",
        ),
        // A bare code with no link pending would be exchanged, but there is no app to do it.
        (
            "code twitch abcdefgh1234",
            "[twitch] client_id and client_secret",
        ),
        (
            "code twitch http://localhost:3000/?code=abcdefgh1234&state=x",
            "No twitch authorization is waiting",
        ),
        ("retry 1", "There is no upload #1"),
    ] {
        let reply = bot.run(text).await;
        assert!(!reply.ok && reply.private, "{text}: {reply:?}");
        assert!(reply.text.contains(expected), "{text}: {reply:?}");
    }
    let uploads = bot.run("uploads").await;
    assert!(
        uploads.ok && uploads.text.contains("No uploads yet"),
        "{uploads:?}"
    );
    assert!(uploads.text.contains("disabled"), "{uploads:?}");
    let quota = bot.run("quota").await;
    assert!(
        quota.ok && quota.text.contains("0 used, 100 left of 100"),
        "{quota:?}"
    );
    assert!(quota.text.contains("UTC (00:00 P"), "{quota:?}");
    bot.stop().await;
}

#[tokio::test]
async fn the_drain_deadline_counts_from_the_shutdown_request_not_from_when_the_core_sees_it() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (mut core, handle) = Core::open(test_config(dir.path()), shutdown.clone())
        .await
        .unwrap();
    core.drain = Duration::from_secs(3);
    let events = core.events();
    let mut notices = handle.subscribe();
    // A worker that never finishes: shutdown waits for it until the deadline.
    core.workers.spawn(std::future::pending::<()>());
    core.spawn(&tracker).await.unwrap();
    while !matches!(
        notices.recv().await.unwrap().event.kind,
        EventKind::ServiceStarted { .. }
    ) {}

    // Another writer holds the database: the core's next write waits (a slow operation).
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("recbot.sqlite"))
        .busy_timeout(Duration::from_secs(5));
    let mut other = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    events
        .emit(None, EventKind::RecordingStalled { seconds: 1 })
        .await;
    // The core (woken by the event) runs before this task again: it is in the write now.
    tokio::task::yield_now().await;

    // Shutdown is requested while the core is in that write, which lasts 10 s more. The
    // clock is only stopped for this step: sqlx's own timers must run in real time.
    tokio::time::pause();
    let requested = tokio::time::Instant::now();
    shutdown.cancel();
    tracker.close();
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::time::resume();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    handle.stopped().await;
    let took = requested.elapsed();
    // The deadline (3 s after the request) had passed when the write ended: the core closed
    // the database at once instead of waiting 3 s more for the worker.
    assert!(took < Duration::from_secs(12), "{took:?}");
    // The event being written, and ServiceStopping, are in the log.
    let store = Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let kinds: Vec<String> = store
        .recent_events(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind_name().to_string())
        .collect();
    store.close().await;
    assert!(kinds.contains(&"RecordingStalled".into()), "{kinds:?}");
    assert!(kinds.contains(&"ServiceStopping".into()), "{kinds:?}");
}

#[tokio::test(start_paused = true)]
async fn an_operation_under_way_at_shutdown_finishes_and_the_request_time_is_noted() {
    let shutdown = CancellationToken::new();
    let start = tokio::time::Instant::now();
    let canceller = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        canceller.cancel();
    });
    let mut at = None;
    let slow = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        7
    };
    assert_eq!(
        noting(slow, &shutdown, &mut at).await,
        7,
        "finished, not abandoned"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(at, Some(start + Duration::from_millis(500)));
    // Noted once: a later operation keeps the first time.
    assert_eq!(noting(async { 8 }, &shutdown, &mut at).await, 8);
    assert_eq!(at, Some(start + Duration::from_millis(500)));
    // Nothing noted when shutdown is not requested during the operation.
    let mut quiet = None;
    noting(async {}, &CancellationToken::new(), &mut quiet).await;
    assert_eq!(quiet, None);
}

#[tokio::test]
async fn non_finite_numbers_are_replaced_before_the_event_is_stored_or_announced() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (core, handle) = Core::open(test_config(dir.path()), shutdown.clone())
        .await
        .unwrap();
    let events = core.events();
    let mut notices = handle.subscribe();
    core.spawn(&tracker).await.unwrap();
    let foo = Login::parse("foo").unwrap();
    events
        .emit(
            None,
            EventKind::DiskLow {
                used_percent: f64::NAN,
                free_gb: f64::INFINITY,
                stopped_recording: false,
            },
        )
        .await;
    events
        .emit(
            Some(foo.clone()),
            EventKind::RecordingGap {
                first_sequence: 1,
                last_sequence: 2,
                seconds: f64::NEG_INFINITY,
                reason: "x".into(),
            },
        )
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let notice = notices.recv().await.unwrap();
        if matches!(
            notice.event.kind,
            EventKind::DiskLow { .. } | EventKind::RecordingGap { .. }
        ) {
            seen.push(notice);
        }
    }
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    for notice in &seen {
        assert!(notice.seq > 0, "stored: {notice:?}");
        let line = crate::frontend::render::event_line(&notice.event);
        assert!(!line.contains("NaN") && !line.contains("inf"), "{line}");
        // JSON writes NaN and inf as null, which would not read back.
        let json = serde_json::to_string(&notice.event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, notice.event, "{json}");
    }
    assert!(matches!(
        seen[0].event.kind,
        EventKind::DiskLow { used_percent, free_gb, .. } if used_percent == 0.0 && free_gb == 0.0
    ));
    // The log reads back whole.
    let store = Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let logged = store.recent_events(Some(&foo), 10).await.unwrap();
    store.close().await;
    assert!(
        logged
            .iter()
            .any(|e| matches!(e.kind, EventKind::RecordingGap { seconds, .. } if seconds == 0.0)),
        "{logged:?}"
    );
}

#[test]
fn disk_does_not_hold_up_other_commands() {
    // One blocking thread, held by the test: `disk`'s folder walk waits for it, as it would
    // on a slow disk with many files.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let bot = Running::start(dir.path()).await;
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || {
            let _ = blocked.recv();
        });
        let core = bot.core.clone();
        let disk = tokio::spawn(async move { core.ask("disk", Origin::console()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let list = tokio::time::timeout(Duration::from_secs(3), bot.run("list"))
            .await
            .expect("the core answers while `disk` walks the folders");
        assert!(list.ok, "{list:?}");
        assert!(!disk.is_finished());
        release.send(()).unwrap();
        blocker.await.unwrap();
        let disk = tokio::time::timeout(Duration::from_secs(5), disk)
            .await
            .expect("`disk` answers once the walk is done")
            .unwrap();
        assert!(disk.ok && disk.text.contains("Recordings:"), "{disk:?}");
        bot.stop().await;
    });
}

#[tokio::test]
async fn concurrent_disk_requests_share_one_walk() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (core, handle) = Core::open(test_config(dir.path()), shutdown.clone())
        .await
        .unwrap();
    let reports = core.disk_reports();
    core.spawn(&tracker).await.unwrap();
    // A flood of `disk` from the room: one walk answers them all.
    let replies = futures::future::join_all((0..20).map(|_| handle.ask("disk", guest()))).await;
    for reply in &replies {
        assert!(reply.ok && reply.text.contains("Recordings:"), "{reply:?}");
    }
    assert_eq!(reports.walks(), 1);
    // Within `disk_report_secs` (60 s by default) the answer is reused.
    assert!(handle.ask("disk", Origin::console()).await.ok);
    assert_eq!(reports.walks(), 1);
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn disk_shows_absolute_paths_to_operators_only() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let shown = dir.path().to_str().unwrap();
    let guest_reply = bot.core.ask("disk", guest()).await;
    let operator_reply = bot.run("disk").await;
    bot.stop().await;
    assert!(guest_reply.ok, "{guest_reply:?}");
    assert!(
        guest_reply.text.contains("Recordings: ") && !guest_reply.text.contains(shown),
        "{}",
        guest_reply.text
    );
    assert!(
        operator_reply.text.contains(&format!("in {shown}")),
        "{}",
        operator_reply.text
    );
}

#[tokio::test]
async fn list_shows_who_added_what_to_operators_only() {
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(dir.path()).await;
    let operator = Origin {
        room: Room::Slack("C42".into()),
        user: "U0OPERATOR".into(),
        operator: true,
    };
    assert!(bot.core.ask("add foo", operator.clone()).await.ok);
    let guest_list = bot.core.ask("list", guest()).await;
    let operator_list = bot.core.ask("list", operator).await;
    bot.stop().await;
    assert!(guest_list.ok, "{guest_list:?}");
    assert!(guest_list.text.contains("• foo — Twitch"), "{guest_list:?}");
    for hidden in ["U0OPERATOR", "slack:C42", "added by"] {
        assert!(!guest_list.text.contains(hidden), "{}", guest_list.text);
    }
    assert!(
        operator_list
            .text
            .contains("added by U0OPERATOR in slack:C42"),
        "{}",
        operator_list.text
    );
}

#[tokio::test]
async fn uploads_show_links_of_videos_that_are_not_public_to_operators_only() {
    use super::store::NewUploadJob;
    for (privacy, guest_sees) in [("private", false), ("unlisted", false), ("public", true)] {
        let dir = tempfile::tempdir().unwrap();
        // A finished upload in the state database.
        let store = Store::open(&dir.path().join("recbot.sqlite"))
            .await
            .unwrap();
        let id = store
            .insert_upload_job(&NewUploadJob {
                login: Some(Login::parse("foo").unwrap()),
                session: None,
                path: dir.path().join("foo.ts"),
                sidecar: None,
                total_bytes: 10,
                node: None,
            })
            .await
            .unwrap()
            .unwrap();
        let mut job = store.upload_job(id).await.unwrap().unwrap();
        job.state = super::store::JobState::Finished;
        job.video_id = Some("SECRETVIDEO".into());
        store.save_upload_job(&job).await.unwrap();
        store.close().await;
        let text = crate::config::testing::offline(&format!(
            "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n[youtube]\nprivacy = {privacy:?}\n",
            dir.path().to_str().unwrap()
        ));
        let config =
            Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let core = Core::start(config, shutdown.clone(), &tracker)
            .await
            .unwrap();
        let guest_reply = core.ask("uploads", guest()).await;
        let operator_reply = core.ask("uploads", Origin::console()).await;
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(
            guest_reply.ok && guest_reply.text.contains("finished"),
            "{guest_reply:?}"
        );
        assert_eq!(
            guest_reply.text.contains("SECRETVIDEO"),
            guest_sees,
            "{privacy}: {}",
            guest_reply.text
        );
        assert!(
            operator_reply.text.contains("SECRETVIDEO"),
            "{privacy}: {}",
            operator_reply.text
        );
    }
}

#[tokio::test]
async fn status_shows_a_hostile_title_inert_for_the_room_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (core, handle) = Core::open(test_config(dir.path()), shutdown.clone())
        .await
        .unwrap();
    let events = core.events();
    let mut notices = handle.subscribe();
    core.spawn(&tracker).await.unwrap();
    assert!(handle.ask("add foo", Origin::console()).await.ok);
    events
        .emit(
            Some(Login::parse("foo").unwrap()),
            EventKind::StreamUpdated {
                title: "@everyone [free](http://evil) `x`\u{1b}[2J\u{202E}".into(),
                game: None,
            },
        )
        .await;
    while !matches!(
        notices.recv().await.unwrap().event.kind,
        EventKind::StreamUpdated { .. }
    ) {}
    let discord = Origin {
        room: Room::Discord("42".into()),
        user: "7".into(),
        operator: false,
    };
    let from_discord = handle.ask("status foo", discord).await;
    let from_console = handle.ask("status foo", Origin::console()).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    assert!(
        from_discord
            .text
            .contains("changed title: @\u{200B}everyone \\[free\\]\\(http\\://evil\\) 'x'\\[2J"),
        "{}",
        from_discord.text
    );
    assert!(
        from_console
            .text
            .contains("changed title: @everyone [free](http://evil) 'x'[2J"),
        "{}",
        from_console.text
    );
    for text in [&from_discord.text, &from_console.text] {
        assert!(!text.contains(['\u{1b}', '\u{202E}', '`']), "{text:?}");
    }
}
