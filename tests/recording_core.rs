//! The core's recording chain against a local origin, with the test playing the live watcher
//! (LiveDetected / StreamUpdated / StreamOffline through `Core::events()`): sessions and parts
//! persisted, offline grace, new stream ids, crash recovery, HLS sources, the disk guard and
//! the `status`/`disk` commands.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::core::store::Store;
use recbot::event::EventKind;
use recbot_commands::Login;
use support::origin::{segment_bytes, End, Origin, StreamConfig};
use support::{is, same_bytes, Bot};

/// The test plays the live watcher, so the real one must stay silent: with Helix credentials
/// and (from `testing::offline`) a Helix that does not answer, its checks fail and it emits
/// nothing about logins.
const PLAYED_WATCHER: &str = "client_id = \"cid\"\nclient_secret = \"secret\"\n";

fn config(dir: &Path, origin: &Origin, storage: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n{storage}\n{}offline_grace_secs = 1\npoll_interval_secs = 1\n{PLAYED_WATCHER}",
        dir.to_str().unwrap(),
        origin.twitch_config()
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

/// A bot on `origin`; `storage`: extra `[storage]` keys. Independent notices may arrive in
/// any order here, so the ones a wait passes over stay for later waits.
async fn start(dir: &Path, origin: &Origin, storage: &str) -> Bot {
    // Shown only when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    Bot::start(config(dir, origin, storage))
        .await
        .keeping_unmatched()
}

/// A bot watching `foo`, told that `foo` is live (stream `s1`) with `stream` on the origin.
async fn recording_foo(dir: &Path, origin: &Origin, stream: StreamConfig) -> Bot {
    let mut bot = start(dir, origin, "").await;
    bot.command("add foo").await;
    origin.go_live("foo", stream);
    bot.live("foo", "s1", "t").await;
    bot.wait_for("LiveDetected", is("LiveDetected")).await;
    bot
}

fn endless() -> StreamConfig {
    StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    }
}

async fn store(dir: &Path) -> Store {
    Store::open(&dir.join("recbot.sqlite")).await.unwrap()
}

#[tokio::test]
async fn live_detected_records_and_persists_the_session_and_its_parts() {
    records_and_persists_the_session_and_its_parts("").await;
}

/// The same on a PostgreSQL state database: nothing is kept in SQLite.
#[tokio::test]
async fn live_detected_records_and_persists_the_session_and_its_parts_on_postgres() {
    let url = support::postgres::new_database().await;
    let dir =
        records_and_persists_the_session_and_its_parts(&format!("database_url = {url:?}")).await;
    assert!(!dir.path().join("recbot.sqlite").exists());
}

/// One recording with the `[storage]` keys `storage`, then a restart: what was recorded and
/// watched is still in the state database.
async fn records_and_persists_the_session_and_its_parts(storage: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let mut bot = start(dir.path(), &origin, storage).await;
    bot.command("add foo").await;
    origin.go_live(
        "foo",
        StreamConfig {
            segments: 24,
            ..Default::default()
        },
    );
    bot.live("foo", "s1", "a ../../x\0/ title").await;
    let live = bot.wait_for("LiveDetected", is("LiveDetected")).await;
    let session = live.session.expect("LiveDetected carries its session");
    let started = bot
        .wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    assert_eq!(started.session, Some(session));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = bot.command("status foo").await;
    assert!(status.contains("Recording part 1 (1080p60)"), "{status}");
    let overall = bot.command("status").await;
    assert!(overall.contains("recording 1"), "{overall}");
    bot.send(
        "foo",
        EventKind::StreamUpdated {
            title: "second title".into(),
            game: None,
        },
    )
    .await;
    let part = bot
        .wait_for("RecordingPartFinished", is("RecordingPartFinished"))
        .await;
    assert_eq!(part.session, Some(session));
    let EventKind::RecordingPartFinished {
        file,
        sidecar,
        bytes,
        ..
    } = &part.kind
    else {
        unreachable!()
    };
    // The hostile title stayed inside one file name under recordings/foo/.
    assert_eq!(file.parent().unwrap(), dir.path().join("recordings/foo"));
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("_a .._.._x_ title.ts"), "{name}");
    let data = std::fs::read(file).unwrap();
    let want: Vec<u8> = (0..24)
        .flat_map(|s| segment_bytes("foo", s, 3000))
        .collect();
    same_bytes(&data, &want);
    assert_eq!(*bytes, data.len() as u64);
    let s = Sidecar::read(sidecar).await.unwrap();
    assert_eq!(s.session, session);
    let titles: Vec<&str> = s.chapters.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["a ../../x\0/ title", "second title"]);
    let done = bot
        .wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    assert_eq!(done.session, Some(session));
    bot.stop().await;

    // Restarted: the watch and the recording are still there.
    let bot = start(dir.path(), &origin, storage).await;
    let list = bot.command("list").await;
    assert!(list.contains("foo"), "{list}");
    let config = bot.config.clone();
    bot.stop().await;
    let store = support::open_store(&config).await;
    let row = store.session(session).await.unwrap().unwrap();
    assert_eq!(row.stream_id.as_deref(), Some("s1"));
    assert_eq!(row.title.as_deref(), Some("second title"));
    assert!(row.ended_at.is_some());
    let parts = store.parts_of(session).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].state, "finished");
    assert_eq!(&parts[0].path, file);
    let totals = store.session_totals(session).await.unwrap();
    assert_eq!(totals.bytes, data.len() as u64);
    let finished = store.recent_events(None, 100).await.unwrap();
    assert!(finished
        .iter()
        .any(|e| matches!(e.kind, EventKind::RecordingFinished { .. })));
    store.close().await;
    dir
}

#[tokio::test]
async fn same_stream_back_within_grace_is_a_new_part_a_new_id_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 8,
        end: End::NotFound,
        ..Default::default()
    };
    let mut bot = recording_foo(dir.path(), &origin, stream).await;
    let first = bot.wait_for("part 1", is("RecordingPartFinished")).await;
    let session = first.session.unwrap();
    // The stream dropped (404); the watcher notices, then sees the same stream id again.
    bot.send(
        "foo",
        EventKind::StreamOffline {
            stream_id: Some("s1".into()),
        },
    )
    .await;
    origin.go_live(
        "foo",
        StreamConfig {
            first_sequence: 100,
            ..endless()
        },
    );
    bot.live("foo", "s1", "t").await;
    let live_again = bot.wait_for("LiveDetected", is("LiveDetected")).await;
    assert_eq!(live_again.session, Some(session));
    let part2 = bot
        .wait_for("part 2", |e| {
            matches!(e.kind, EventKind::RecordingStarted { part: 2, .. })
        })
        .await;
    assert_eq!(part2.session, Some(session));

    // A new stream id: the old session ends, a new one starts with part 1.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bot.live("foo", "s2", "new broadcast").await;
    let new_live = bot.wait_for("new LiveDetected", is("LiveDetected")).await;
    let new_session = new_live.session.unwrap();
    assert_ne!(new_session, session);
    let old_done = bot
        .wait_for("old session finished", |e| {
            e.kind_name() == "RecordingFinished" && e.session == Some(session)
        })
        .await;
    match old_done.kind {
        EventKind::RecordingFinished { parts, .. } => assert_eq!(parts, 2),
        _ => unreachable!(),
    }
    bot.wait_for("new part 1", |e| {
        matches!(e.kind, EventKind::RecordingStarted { part: 1, .. })
            && e.session == Some(new_session)
    })
    .await;
    bot.stop().await;
    let store = store(dir.path()).await;
    assert_eq!(store.parts_of(session).await.unwrap().len(), 2);
    assert!(store
        .session(session)
        .await
        .unwrap()
        .unwrap()
        .ended_at
        .is_some());
    // Stopped by shutdown: the new session stays open, its part finished.
    let open = store.open_sessions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, new_session);
    let parts = store.parts_of(new_session).await.unwrap();
    assert_eq!(parts[0].state, "finished");
}

#[tokio::test]
async fn a_crash_leftover_is_finished_and_the_session_continues() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    // What a killed recbot leaves: an open session, a part row in `recording` state, the
    // `.part` file and its checkpoint.
    let final_path: PathBuf = dir.path().join("recordings/foo/2026-11-21_10-00-00_t.ts");
    let session = {
        let store = store(dir.path()).await;
        let s = store
            .create_session("foo", Some("s9"), "t", None, Utc::now())
            .await
            .unwrap();
        store
            .start_part(s, 1, &final_path, Utc::now())
            .await
            .unwrap();
        store.close().await;
        s
    };
    std::fs::create_dir_all(final_path.parent().unwrap()).unwrap();
    std::fs::write(
        dir.path()
            .join("recordings/foo/2026-11-21_10-00-00_t.ts.part"),
        vec![9u8; 5000],
    )
    .unwrap();
    // A stray .part nobody knows about (no checkpoint, no row) was not written by the
    // recorder: it is left alone.
    std::fs::write(dir.path().join("recordings/foo/stray.ts.part"), b"xyz").unwrap();

    let mut bot = start(dir.path(), &origin, "").await;
    bot.command("add foo").await;
    let mut recovered = Vec::new();
    for _ in 0..1 {
        let e = bot
            .wait_for("recovered part", |e| {
                matches!(
                    e.kind,
                    EventKind::RecordingPartFinished {
                        recovered: true,
                        ..
                    }
                )
            })
            .await;
        recovered.push(e);
    }
    let ours = recovered
        .iter()
        .find(|e| e.session == Some(session))
        .expect("the known part is recovered in its session");
    let EventKind::RecordingPartFinished {
        file,
        sidecar,
        bytes,
        part,
        ..
    } = &ours.kind
    else {
        unreachable!()
    };
    assert_eq!((file, *bytes, *part), (&final_path, 5000, 1));
    let s = Sidecar::read(sidecar).await.unwrap();
    assert!(s.recovered);
    assert_eq!(s.stream_id.as_deref(), Some("s9"));
    assert!(dir.path().join("recordings/foo/stray.ts.part").exists());
    assert!(!dir.path().join("recordings/foo/stray.ts").exists());

    // Still live with the same stream id: record on into part 2 of the same session.
    origin.go_live("foo", StreamConfig::default());
    bot.live("foo", "s9", "t").await;
    let started = bot
        .wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    assert_eq!(started.session, Some(session));
    assert!(matches!(
        started.kind,
        EventKind::RecordingStarted { part: 2, .. }
    ));
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    bot.stop().await;
    let store = store(dir.path()).await;
    let parts = store.parts_of(session).await.unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.state == "finished"));
}

/// A chat export's temporary file left by a crash (`<name>.chat.jsonl.part` in earlier
/// versions, `.recbot-tmp` now) beside a recorder's leftover, for a login with `upload=on`:
/// only the recording is finished and queued; the chat file gets no sidecar, no notice, no
/// upload job, and is removed as a stale temporary.
#[tokio::test]
async fn a_leftover_chat_export_is_not_taken_for_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    {
        let store = store(dir.path()).await;
        store
            .put_watch(&recbot::core::store::Watch {
                name: Login::parse("foo").unwrap(),
                source: recbot_commands::Source::Twitch,
                quality: recbot_commands::Quality::BEST,
                upload: true,
                chat: true,
                post: None,
                display_name: None,
                room: recbot::event::Room::Console,
                added_by: "test".into(),
                added_at: Utc::now(),
            })
            .await
            .unwrap();
        store.close().await;
    }
    let folder = dir.path().join("recordings/foo");
    std::fs::create_dir_all(&folder).unwrap();
    let chat_line = br#"{"offset_ms":0,"video_ms":0,"raw":"PRIVMSG #foo :hi"}"#;
    let old_temp = folder.join("2026-11-21_10-00-00_t.chat.jsonl.part");
    let new_temp = folder.join("2026-11-21_10-00-00_t.chat.jsonl.recbot-tmp");
    std::fs::write(&old_temp, chat_line).unwrap();
    std::fs::write(&new_temp, chat_line).unwrap();
    // The recorder's own leftover, with its checkpoint: the sign that recovery ran.
    let video = folder.join("2026-11-21_11-00-00_u.ts");
    std::fs::write(
        folder.join("2026-11-21_11-00-00_u.ts.part"),
        vec![7u8; 1000],
    )
    .unwrap();
    let checkpoint = serde_json::json!({
        "login": "foo", "source": "twitch", "session": 0, "part": 1,
        "file": "2026-11-21_11-00-00_u.ts", "quality": "720p60",
        "started": "2026-11-21T11:00:00Z", "ended": "2026-11-21T11:00:04Z",
        "duration_secs": 4.0, "segments": 2, "bytes": 1000,
        "last_segment": {"sequence": 41},
    });
    std::fs::write(
        folder.join("2026-11-21_11-00-00_u.ts.part.json"),
        serde_json::to_vec(&checkpoint).unwrap(),
    )
    .unwrap();

    let youtube = "[youtube]\nenabled = true\nclient_id = \"y\"\nclient_secret = \"z\"\n";
    let mut bot = start(dir.path(), &origin, youtube).await;
    let queued = bot.wait_for("UploadQueued", is("UploadQueued")).await;
    let EventKind::UploadQueued { file, .. } = &queued.kind else {
        unreachable!()
    };
    assert!(file.ends_with("2026-11-21_11-00-00_u.ts"), "{file}");
    // Every start-up notice has been published once the core answers a command.
    bot.command("status").await;
    while let Ok(n) = bot.notices.try_recv() {
        bot.seen.push(n);
    }
    for n in &bot.seen {
        let text = format!("{:?}", n.event.kind);
        assert!(
            !text.contains("10-00-00_t"),
            "a notice about the leftover chat file: {text}"
        );
    }
    bot.stop().await;
    let store = store(dir.path()).await;
    let jobs = store.upload_jobs(100).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].path, video);
    assert!(
        !old_temp.exists() && !new_temp.exists(),
        "stale temporaries removed"
    );
    assert!(!folder.join("2026-11-21_10-00-00_t.chat.jsonl").exists());
    assert!(!folder.join("2026-11-21_10-00-00_t.chat.json").exists());
    store.close().await;
}

#[tokio::test]
async fn an_open_session_nobody_continues_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let session = {
        let store = store(dir.path()).await;
        let s = store
            .create_session("foo", Some("old"), "t", None, Utc::now())
            .await
            .unwrap();
        store.close().await;
        s
    };
    let mut bot = start(dir.path(), &origin, "").await;
    // Resume window = grace (1 s) + 2 × poll interval (1 s).
    let done = bot
        .wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    assert_eq!(done.session, Some(session));
    bot.stop().await;
    let store = store(dir.path()).await;
    assert!(store.open_sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn hls_sources_are_polled_recorded_once_and_removed_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.go_live("studio", StreamConfig::default());
    let mut bot = start(dir.path(), &origin, "").await;
    bot.command(&format!(
        "add hls {}/hls/studio/master.m3u8 studio",
        origin.url()
    ))
    .await;
    let live = bot.wait_for("LiveDetected", is("LiveDetected")).await;
    assert!(live.session.is_some());
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    // The ended playlist still answers: it is not recorded again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    while let Ok(n) = bot.notices.try_recv() {
        assert_ne!(n.event.kind_name(), "RecordingStarted", "{:?}", n.event);
    }
    bot.seen.clear();
    // A live one, removed while recording: finished and kept.
    origin.go_live("other", endless());
    bot.command(&format!(
        "add hls {}/hls/other/720p30/index.m3u8 other",
        origin.url()
    ))
    .await;
    bot.wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    bot.command("remove other").await;
    let part = bot.wait_for("part", is("RecordingPartFinished")).await;
    let EventKind::RecordingPartFinished { file, .. } = &part.kind else {
        unreachable!()
    };
    assert!(file.exists());
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    bot.stop().await;
}

#[tokio::test]
async fn disk_command_and_the_free_space_floor() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let bot = start(dir.path(), &origin, "").await;
    let report = bot.command("disk").await;
    assert!(
        report.contains("Recordings:") && report.contains("free of"),
        "{report}"
    );
    bot.stop().await;

    // Less free space than the floor: DiskLow at start-up, and nothing is recorded.
    let mut bot = start(dir.path(), &origin, "min_free_gb = 1000000000").await;
    let low = bot.wait_for("DiskLow", is("DiskLow")).await;
    assert!(matches!(
        low.kind,
        EventKind::DiskLow {
            stopped_recording: true,
            ..
        }
    ));
    bot.command("add foo").await;
    origin.go_live("foo", StreamConfig::default());
    bot.live("foo", "s1", "t").await;
    let failed = bot.wait_for("RecordingFailed", is("RecordingFailed")).await;
    let EventKind::RecordingFailed { reason } = &failed.kind else {
        unreachable!()
    };
    assert!(reason.contains("not recording: only"), "{reason}");
    assert!(bot.command("disk").await.contains("recording is stopped"));
    bot.stop().await;
    assert!(!dir.path().join("recordings/foo").exists());
}

#[tokio::test]
async fn disk_low_stops_recordings_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let mut bot = recording_foo(dir.path(), &origin, endless()).await;
    bot.wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    // Play the disk guard: below the floor.
    bot.events
        .emit(
            None,
            EventKind::DiskLow {
                used_percent: 99.0,
                free_gb: 0.5,
                stopped_recording: true,
            },
        )
        .await;
    let part = bot.wait_for("part", is("RecordingPartFinished")).await;
    let EventKind::RecordingPartFinished { file, .. } = &part.kind else {
        unreachable!()
    };
    assert!(file.exists());
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    assert!(!bot.command("status").await.contains("recording 1"));
    bot.stop().await;
}

#[tokio::test]
async fn after_a_crash_the_session_goes_on_after_the_recovered_part_with_a_new_number() {
    crash_then_go_on(true).await;
}

#[tokio::test]
async fn after_a_crash_a_leftover_that_cannot_be_finished_keeps_its_number_too() {
    crash_then_go_on(false).await;
}

/// A crash leftover of part 2, finished at start-up (`finishable`) or not (its sidecar
/// cannot be written), then the session goes on.
async fn crash_then_go_on(finishable: bool) {
    use recbot::archive::sidecar::Position;
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let len = StreamConfig::default().body_len;
    let folder = dir.path().join("recordings/foo");
    std::fs::create_dir_all(&folder).unwrap();
    // Part 1 finished and stored; part 2 was being written when recbot was killed, before
    // the core stored its start: only its .part file and checkpoint tell of it. The
    // checkpoint says two whole segments (4 and 5); the file also holds half of segment 6.
    let first = folder.join("2026-11-21_10-00-00_t.ts");
    let second = folder.join("2026-11-21_10-00-30_t.ts");
    let session = {
        let store = store(dir.path()).await;
        let s = store
            .create_session("foo", Some("s9"), "t", None, Utc::now())
            .await
            .unwrap();
        store
            .finish_part(s, 1, &first, 10, 1.0, 0, false, Utc::now())
            .await
            .unwrap();
        store.close().await;
        s
    };
    std::fs::write(&first, b"0123456789").unwrap();
    let whole: Vec<u8> = (4..6).flat_map(|s| segment_bytes("foo", s, len)).collect();
    let torn = &segment_bytes("foo", 6, len)[..100];
    std::fs::write(
        folder.join("2026-11-21_10-00-30_t.ts.part"),
        [whole.as_slice(), torn].concat(),
    )
    .unwrap();
    let checkpoint = checkpoint_of_part_2(
        session,
        2,
        whole.len() as u64,
        Some(Position {
            sequence: 5,
            program_date_time: None,
            duration_secs: None,
        }),
    );
    std::fs::write(
        folder.join("2026-11-21_10-00-30_t.ts.part.json"),
        serde_json::to_vec(&checkpoint).unwrap(),
    )
    .unwrap();

    if !finishable {
        // Where the sidecar must go, a folder that cannot be replaced.
        std::fs::create_dir_all(Sidecar::path_for(&second).join("x")).unwrap();
    }

    let mut bot = start(dir.path(), &origin, "").await;
    bot.command("add foo").await;
    if finishable {
        let recovered = bot
            .wait_for("recovered part", |e| {
                matches!(
                    e.kind,
                    EventKind::RecordingPartFinished {
                        recovered: true,
                        ..
                    }
                )
            })
            .await;
        assert_eq!(recovered.session, Some(session));
        assert!(matches!(
            recovered.kind,
            EventKind::RecordingPartFinished { part: 2, .. }
        ));
    } else {
        bot.wait_for("RecordingFailed", is("RecordingFailed")).await;
    }
    // The torn segment is cut off.
    same_bytes(&std::fs::read(&second).unwrap(), &whole);

    // Still live (segments 0..8 offered): part 3 (not 2 again), from segment 6 on (not 0,
    // not 4).
    let stream = StreamConfig {
        initial: 8,
        ..Default::default()
    };
    let total = stream.segments;
    origin.go_live("foo", stream);
    bot.live("foo", "s9", "t").await;
    let started = bot
        .wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    assert_eq!(started.session, Some(session));
    assert!(
        matches!(started.kind, EventKind::RecordingStarted { part: 3, .. }),
        "{started:?}"
    );
    let finished = bot
        .wait_for("part 3", |e| {
            matches!(e.kind, EventKind::RecordingPartFinished { part: 3, .. })
        })
        .await;
    let EventKind::RecordingPartFinished { file, .. } = &finished.kind else {
        unreachable!()
    };
    let want: Vec<u8> = (6..total)
        .flat_map(|s| segment_bytes("foo", s, len))
        .collect();
    same_bytes(&std::fs::read(file).unwrap(), &want);
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    bot.stop().await;
    let store = store(dir.path()).await;
    let parts = store.parts_of(session).await.unwrap();
    let numbers: Vec<u32> = parts.iter().map(|p| p.part_no).collect();
    if finishable {
        assert_eq!(numbers, [1, 2, 3], "{parts:?}");
        assert_eq!(parts[1].path, second);
    } else {
        // Part 2 is stored once a later start finishes it.
        assert_eq!(numbers, [1, 3], "{parts:?}");
    }
    assert!(parts.iter().all(|p| p.state == "finished"), "{parts:?}");
}

#[tokio::test]
async fn a_stored_part_whose_leftover_has_no_whole_segment_is_removed_and_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let folder = dir.path().join("recordings/foo");
    std::fs::create_dir_all(&folder).unwrap();
    let second = folder.join("2026-11-21_10-00-30_t.ts");
    let session = {
        let store = store(dir.path()).await;
        let s = store
            .create_session("foo", Some("s9"), "t", None, Utc::now())
            .await
            .unwrap();
        store.start_part(s, 2, &second, Utc::now()).await.unwrap();
        store.close().await;
        s
    };
    // Killed half-way through the part's first segment: the checkpoint written when the
    // part opened says nothing is in it yet.
    let part_file = part_of(&second);
    std::fs::write(&part_file, b"half a segm").unwrap();
    let opened = checkpoint_of_part_2(session, 0, 0, None);
    std::fs::write(
        folder.join("2026-11-21_10-00-30_t.ts.part.json"),
        serde_json::to_vec(&opened).unwrap(),
    )
    .unwrap();

    let bot = start(dir.path(), &origin, "").await;
    // Recovery runs before the core takes commands.
    bot.command("list").await;
    bot.stop().await;
    assert!(!part_file.exists());
    let store = store(dir.path()).await;
    let parts = store.parts_of(session).await.unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0].state, "failed", "{parts:?}");
    assert!(store.parts_in_progress().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_crash_leftover_whose_sidecar_cannot_be_written_is_reported_then_finished_later() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let final_path: PathBuf = dir.path().join("recordings/foo/2026-11-21_10-00-00_t.ts");
    let session = {
        let store = store(dir.path()).await;
        let s = store
            .create_session("foo", Some("s9"), "t", None, Utc::now())
            .await
            .unwrap();
        store
            .start_part(s, 1, &final_path, Utc::now())
            .await
            .unwrap();
        store.close().await;
        s
    };
    std::fs::create_dir_all(final_path.parent().unwrap()).unwrap();
    std::fs::write(part_of(&final_path), vec![9u8; 5000]).unwrap();
    // Where the sidecar must go, a folder that cannot be replaced.
    let blocker = Sidecar::path_for(&final_path).join("x");
    std::fs::create_dir_all(&blocker).unwrap();

    let mut bot = start(dir.path(), &origin, "").await;
    let failed = bot.wait_for("RecordingFailed", is("RecordingFailed")).await;
    let EventKind::RecordingFailed { reason } = &failed.kind else {
        unreachable!()
    };
    assert!(reason.contains("left by a crash"), "{reason}");
    assert_eq!(failed.login.as_ref().map(|l| l.as_str()), Some("foo"));
    bot.stop().await;
    assert!(
        !bot_saw_recovered(&store(dir.path()).await, session).await,
        "announced as finished without its sidecar"
    );

    // Once the sidecar can be written, the next start finishes it.
    std::fs::remove_dir_all(Sidecar::path_for(&final_path)).unwrap();
    let mut bot = start(dir.path(), &origin, "").await;
    let recovered = bot
        .wait_for("recovered part", |e| {
            matches!(
                e.kind,
                EventKind::RecordingPartFinished {
                    recovered: true,
                    ..
                }
            )
        })
        .await;
    assert_eq!(recovered.session, Some(session));
    bot.stop().await;
    assert!(bot_saw_recovered(&store(dir.path()).await, session).await);
    assert_eq!(std::fs::metadata(&final_path).unwrap().len(), 5000);
}

/// The progress checkpoint of foo's part 2 (`2026-11-21_10-00-30_t.ts`) in `session`.
fn checkpoint_of_part_2(
    session: i64,
    segments: u64,
    bytes: u64,
    last_segment: Option<recbot::archive::sidecar::Position>,
) -> Sidecar {
    let now = Utc::now();
    Sidecar {
        login: "foo".into(),
        source: "twitch".into(),
        stream_id: Some("s9".into()),
        session,
        part: 2,
        file: "2026-11-21_10-00-30_t.ts".into(),
        quality: "1080p60".into(),
        started: now,
        ended: now,
        duration_secs: segments as f64 * 0.25,
        segments,
        bytes,
        last_segment,
        ..Default::default()
    }
}

fn part_of(final_path: &Path) -> PathBuf {
    let mut p = final_path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// Whether the session's part 1 is stored as finished.
async fn bot_saw_recovered(store: &Store, session: i64) -> bool {
    let parts = store.parts_of(session).await.unwrap();
    store.close().await;
    parts
        .iter()
        .any(|p| p.part_no == 1 && p.state == "finished")
}

#[tokio::test]
async fn remove_interrupts_a_trickling_segment_download_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    // Segment 6 trickles one byte every 50 ms, for as long as it is read.
    let stream = StreamConfig {
        trickle: vec![6],
        ..endless()
    };
    let mut bot = recording_foo(dir.path(), &origin, stream).await;
    bot.wait_for("RecordingStarted", is("RecordingStarted"))
        .await;
    // Segment 6 is published half a second after the start; its download hangs by then.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let asked = std::time::Instant::now();
    bot.command("remove foo").await;
    let part = bot.wait_for("part", is("RecordingPartFinished")).await;
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );
    let EventKind::RecordingPartFinished { file, bytes, .. } = &part.kind else {
        unreachable!()
    };
    // Whole segments only (the trickling one is not in it), and nothing grows after.
    assert_eq!(std::fs::metadata(file).unwrap().len(), *bytes);
    let seqs = support::origin::sequences("foo", &std::fs::read(file).unwrap(), 3000);
    assert_eq!(seqs, (0..6).collect::<Vec<u64>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::metadata(file).unwrap().len(), *bytes);
    bot.stop().await;
}

/// `cut` from chat: the latest session's part holding the span is cut beside it (an index of
/// the kept segments), and what cannot be cut is refused with nothing written.
#[tokio::test]
async fn the_cut_command_cuts_the_part_holding_the_span() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    // 12 segments of 0.25 s: a 3 s part.
    let mut bot = recording_foo(dir.path(), &origin, StreamConfig::default()).await;
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    let folder = dir.path().join("recordings/foo");
    let before = std::fs::read_dir(&folder).unwrap().count();
    let refused = [
        (
            "cut foo 0:00:01 0:00:10",
            "No one finished part holds that span",
        ),
        ("cut foo 0:00:01 0:00:02 999", "no session #999"),
        ("cut bar 0:00:01 0:00:02", "bar has no recorded session yet"),
        ("cut foo 0:00:02 0:00:01", "must come before"),
    ];
    for (command, why) in refused {
        let reply = bot.run(command).await;
        assert!(
            !reply.ok && reply.text.contains(why),
            "{command}: {reply:?}"
        );
    }
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), before);

    let reply = bot.command("cut foo 0:00:00.6 0:00:01.4").await;
    // 0.6 s lies in segment 2 (0.5–0.75), 1.4 s in segment 5 (1.25–1.5).
    assert!(reply.contains("kept 0:00:00.5–0:00:01.5"), "{reply}");
    assert!(reply.contains("at segment boundaries"), "{reply}");
    let index = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".cut-1.m3u8"))
        .unwrap_or_else(|| panic!("no cut index: {reply}"));
    assert!(
        reply.contains(index.file_name().unwrap().to_str().unwrap()),
        "{reply}"
    );
    let cut = recbot::archive::index::read_blocking(&index).unwrap();
    let video = folder.join(&cut.segments[0].uri);
    let data = std::fs::read(video).unwrap();
    for (seg, seq) in cut.segments.iter().zip(2..6) {
        let r = seg.byte_range.as_ref().unwrap();
        let at = r.offset.unwrap() as usize;
        same_bytes(
            &data[at..at + r.length as usize],
            &segment_bytes("foo", seq, 3000),
        );
    }
    assert_eq!(cut.segments.len(), 4);
    bot.stop().await;
}
