//! Gaps filled from the Twitch VOD, against the local origin's fake Helix `/videos`, GQL
//! `videoPlaybackAccessToken` and usher `/vod/v2`: a failed segment's gap filled byte-exact
//! (its `-unmuted` segment read as `-muted`, after the VOD was still processing), listed in
//! the sidecar and announced; a sub-only VOD said and the gap kept; `vod_fill = false`
//! fetches nothing.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::event::EventKind;
use support::origin::{eventually, vod_init_bytes, vod_segment_bytes, Origin, StreamConfig, Vod};
use support::{is, Bot};

fn config(dir: &Path, origin: &Origin, fill: bool) -> Arc<Config> {
    config_with(dir, origin, fill, "")
}

/// The same with `more` (whole sections) at the end.
fn config_with(dir: &Path, origin: &Origin, fill: bool, more: &str) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[recording]\nvod_fill = {fill}\nvod_fill_poll_secs = 0.2\n\
         vod_fill_wait_minutes = 0.5\n{}offline_grace_secs = 1\npoll_interval_secs = 1\n\
         client_id = \"cid\"\nclient_secret = \"secret\"\n{}\n{more}",
        dir.to_str().unwrap(),
        origin.twitch_config(),
        origin.helix_config(),
    );
    let text = recbot::config::testing::offline(&text);
    Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap())
}

fn vod(origin_started: chrono::DateTime<Utc>) -> Vod {
    Vod {
        id: "2000".into(),
        stream_id: "s1".into(),
        segments: 4,
        seg_duration: 1.0,
        muted: vec![],
        unmuted: vec![],
        restricted: false,
        processing_looks: 0,
        listed: 4,
        created_at: origin_started,
        fmp4: false,
    }
}

/// `foo` live with a segment (index 5 of 0.25 s ones: broadcast 1.25–1.5 s) that always
/// fails; the broadcast ends after 3 s.
async fn record_with_a_gap(dir: &Path, origin: &Origin, fill: bool) -> Bot {
    let stream = StreamConfig {
        fail_always: vec![5],
        ..Default::default()
    };
    record(config(dir, origin, fill), origin, stream).await
}

/// `foo` live with `stream` until the session ends.
async fn record(config: Arc<Config>, origin: &Origin, stream: StreamConfig) -> Bot {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    let mut bot = Bot::start(config).await.keeping_unmatched();
    bot.command("add foo").await;
    origin.go_live("foo", stream);
    bot.live("foo", "s1", "t").await;
    bot.wait_for("RecordingFinished", is("RecordingFinished"))
        .await;
    bot
}

fn part_sidecar(dir: &Path) -> Sidecar {
    let folder = dir.join("recordings/foo");
    let name = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".json"))
        .expect("a sidecar");
    serde_json::from_slice(&std::fs::read(folder.join(name)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_gap_is_filled_from_the_vod_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.publish_vod(
        "foo",
        Vod {
            // Still processing: not listed for the first looks, then a short playlist.
            processing_looks: 2,
            listed: 1,
            unmuted: vec![1],
            ..vod(Utc::now())
        },
    );
    let mut bot = record_with_a_gap(dir.path(), &origin, true).await;
    let filled = bot.wait_for("GapFilled", is("GapFilled")).await;
    let EventKind::GapFilled {
        file,
        muted,
        vod_id,
        seconds,
        ..
    } = &filled.kind
    else {
        unreachable!()
    };
    assert_eq!(vod_id, "2000");
    assert!(*muted, "the -unmuted segment is fetched as its muted copy");
    assert_eq!(*seconds, 1.0);
    // Exactly the VOD segment covering broadcast 1.25–1.5 s: segment 1, its muted copy.
    assert_eq!(
        std::fs::read(file).unwrap(),
        vod_segment_bytes("2000", 1, true)
    );
    assert!(file.to_string_lossy().ends_with(".fill-1.ts"), "{file:?}");
    let sidecar = part_sidecar(dir.path());
    assert_eq!(sidecar.gaps.len(), 1);
    assert!((sidecar.gaps[0].elapsed_secs.unwrap() - 1.25).abs() < 1e-6);
    assert_eq!(sidecar.fills.len(), 1);
    assert_eq!(sidecar.fills[0].vod_id, "2000");
    assert!(sidecar.fills[0].muted);
    assert_eq!(
        (sidecar.fills[0].from_secs, sidecar.fills[0].to_secs),
        (1.0, 2.0)
    );
    // The source rendition, like the part; only the covering segment was fetched.
    assert!(origin.requests("vod-playlist-chunked") >= 1);
    assert_eq!(origin.requests("vod-playlist-720p30"), 0);
    assert_eq!(origin.requests("vod-segment"), 1);
    // The pending fill is forgotten once it is over (`VodFillDone`, audit-only).
    let store = recbot::core::store::Store::open(&dir.path().join("recbot.sqlite"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.vod_fills().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fill stays pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_only_vod_is_said_and_the_gap_stays() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.publish_vod(
        "foo",
        Vod {
            restricted: true,
            ..vod(Utc::now())
        },
    );
    let mut bot = record_with_a_gap(dir.path(), &origin, true).await;
    let failed = bot.wait_for("VodFillFailed", is("VodFillFailed")).await;
    let EventKind::VodFillFailed { reason, gaps, .. } = &failed.kind else {
        unreachable!()
    };
    assert!(reason.contains("subscriber-only"), "{reason}");
    assert!(reason.contains("vod_manifest_restricted"), "{reason}");
    assert_eq!(*gaps, 1);
    let line = recbot::frontend::render::event_line(&failed);
    assert!(line.contains("could not be filled from the VOD"), "{line}");
    let sidecar = part_sidecar(dir.path());
    assert_eq!(sidecar.gaps.len(), 1);
    assert!(sidecar.fills.is_empty());
    assert_eq!(origin.requests("vod-segment"), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_vod_fill_off_nothing_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.publish_vod("foo", vod(Utc::now()));
    let bot = record_with_a_gap(dir.path(), &origin, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    for kind in ["vod-list", "vod-token", "vod-usher", "vod-segment"] {
        assert_eq!(origin.requests(kind), 0, "{kind}");
    }
    assert_eq!(part_sidecar(dir.path()).gaps.len(), 1);
    bot.stop().await;
}

/// The VOD segments (of `seg` seconds, numbered from 0) overlapping the broadcast span
/// `from..to`, worked out here independently of recbot's alignment.
fn vod_segments_over(from: f64, to: f64, seg: f64) -> std::ops::RangeInclusive<u64> {
    let first = (from / seg + 1e-6).floor() as u64;
    let last = ((to / seg) - 1e-6).ceil() as u64 - 1;
    first..=last
}

fn names_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The issue's crash case end to end: a real `recbot` process recording `foo` (seen live by
/// its own Helix watcher) is killed with SIGKILL mid-broadcast and started again while the
/// broadcast goes on. Part 1 is recovered from its `.part`, the session continues in part 2,
/// and the segments the live playlist dropped meanwhile are a gap placed in the broadcast.
/// Once the broadcast ends the gap is filled from the VOD: the fill file is byte for byte the
/// VOD segments covering exactly the missing segments' broadcast time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_broadcast_is_filled_from_the_vod_byte_exact() {
    use support::binary::Running;
    use support::origin::segment_bytes;

    let origin = Origin::start().await;
    // Long enough (20 s live, a 20 s VOD) that a slow restart on a loaded machine still finds
    // the broadcast on air and the gap inside the VOD; short enough that the fill (after the
    // broadcast ends) comes within the line wait.
    let stream = StreamConfig {
        segments: 80,
        helix_id: Some("s1".into()),
        ..Default::default()
    };
    let (seg, body_len) = (stream.seg_duration, stream.body_len);
    origin.go_live("foo", stream);
    // The VOD: 1 s segments (Twitch's are 10 s), fully processed.
    origin.publish_vod(
        "foo",
        Vod {
            segments: 20,
            listed: 20,
            ..vod(Utc::now())
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recbot.toml");
    std::fs::write(
        &config,
        recbot::config::testing::offline(&format!(
            "[storage]\ndata_dir = {:?}\n[recording]\nvod_fill = true\nvod_fill_poll_secs = 0.2\n\
             vod_fill_wait_minutes = 0.5\n{}poll_interval_secs = 1\noffline_grace_secs = 1\n\
             client_id = \"cid\"\nclient_secret = \"secret\"\n{}",
            dir.path().join("data"),
            origin.twitch_config(),
            origin.helix_config(),
        )),
    )
    .unwrap();
    let folder = dir.path().join("data/recordings/foo");

    let mut bot = Running::start(&config);
    bot.wait_for("started, watching 0").await;
    bot.send("add foo");
    bot.wait_for("⏺ foo: recording").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    bot.child.kill().unwrap(); // SIGKILL
    bot.child.wait().unwrap();
    assert!(
        names_in(&folder).iter().any(|n| n.ends_with(".ts.part")),
        "{:?}",
        names_in(&folder)
    );
    // Down for longer than the live playlist's 2 s window: what it listed meanwhile is lost.
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let mut bot = Running::start(&config);
    let line = bot.wait_for("(recovered after a crash)").await;
    assert!(line.contains("foo: part 1 finished"), "{line}");
    bot.wait_for("⏺ foo: recording part 2").await;
    let line = bot.wait_for("filled from the VOD").await;
    assert!(line.contains("part 2"), "{line}");
    bot.child.kill().unwrap();
    bot.child.wait().unwrap();

    let names = names_in(&folder);
    let sidecar_of = |part: u32| -> Sidecar {
        names
            .iter()
            .filter(|n| n.ends_with(".json"))
            .map(|n| serde_json::from_slice::<Sidecar>(&std::fs::read(folder.join(n)).unwrap()))
            .map(Result::unwrap)
            .find(|s| s.part == part)
            .unwrap_or_else(|| panic!("no sidecar of part {part} in {names:?}"))
    };
    let (first, second) = (sidecar_of(1), sidecar_of(2));
    assert!(first.recovered);
    // Part 1 holds whole segments from the first on, up to its last_segment.
    let last = first
        .last_segment
        .expect("part 1 says where it stopped")
        .sequence;
    let want: Vec<u8> = (0..=last)
        .flat_map(|s| segment_bytes("foo", s, body_len))
        .collect();
    assert!(
        std::fs::read(folder.join(&first.file)).unwrap() == want,
        "part 1 differs"
    );
    // Part 2 goes on after a jump: the segments in between are its gap, placed in the
    // broadcast where they were (segment n starts at n × 0.25 s).
    let recorded = std::fs::read(folder.join(&second.file)).unwrap();
    let resumed = support::origin::sequences("foo", &recorded, body_len)[0];
    assert!(
        resumed > last + 1,
        "no segment was lost: {last} then {resumed}"
    );
    assert_eq!(second.gaps.len(), 1, "{:?}", second.gaps);
    let gap = &second.gaps[0];
    assert_eq!(
        (gap.first_sequence, gap.last_sequence),
        (last + 1, resumed - 1)
    );
    let (from, to) = ((last + 1) as f64 * seg, resumed as f64 * seg);
    assert!((gap.elapsed_secs.unwrap() - from).abs() < 1e-3, "{gap:?}");
    assert!((gap.seconds - (to - from)).abs() < 1e-3, "{gap:?}");
    // The fill: exactly the VOD segments over that span, in order, byte for byte.
    assert_eq!(second.fills.len(), 1, "{:?}", second.fills);
    let fill = &second.fills[0];
    let covering = vod_segments_over(from, to, 1.0);
    let want: Vec<u8> = covering
        .clone()
        .flat_map(|n| vod_segment_bytes("2000", n, false))
        .collect();
    let got = std::fs::read(folder.join(&fill.file)).unwrap();
    assert!(
        got == want,
        "fill differs: {} bytes, want VOD segments {covering:?}",
        got.len()
    );
    assert_eq!(fill.bytes, want.len() as u64);
    assert_eq!(
        (fill.from_secs, fill.to_secs),
        (*covering.start() as f64, (*covering.end() + 1) as f64)
    );
    assert!(fill.file.ends_with(".fill-1.ts"), "{}", fill.file);
    assert!(!fill.muted);
    assert_eq!(origin.requests("vod-segment"), covering.count() as u64);
}

async fn open_store(dir: &Path) -> recbot::core::store::Store {
    recbot::core::store::Store::open(&dir.join("recbot.sqlite"))
        .await
        .unwrap()
}

/// Every event of `kind` in the event log.
async fn logged(dir: &Path, kind: &str) -> Vec<recbot::event::Event> {
    let store = open_store(dir).await;
    let page = store.events_after(0, 10_000).await.unwrap();
    store.close().await;
    page.events
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.kind_name() == kind)
        .collect()
}

/// A fill still waiting for its VOD when recbot stops is kept in the store, resumed by the
/// next start and completed there, once: one fill file, one download, one `GapFilled`; a
/// further restart does nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_vod_is_processing_resumes_the_fill_once() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    // No VOD listed yet: the fill waits.
    let bot = record_with_a_gap(dir.path(), &origin, true).await;
    eventually(Duration::from_secs(10), || origin.requests("vod-list") >= 1).await;
    bot.stop().await;
    let store = open_store(dir.path()).await;
    let pending = store.vod_fills().await.unwrap();
    store.close().await;
    assert_eq!(pending.len(), 1, "the pending fill is kept: {pending:?}");
    assert!(part_sidecar(dir.path()).fills.is_empty());
    assert_eq!(origin.requests("vod-segment"), 0);

    origin.publish_vod("foo", vod(Utc::now()));
    let mut bot = Bot::start(config(dir.path(), &origin, true))
        .await
        .keeping_unmatched();
    let filled = bot.wait_for("GapFilled", is("GapFilled")).await;
    assert_eq!(filled.session, Some(pending[0].session));
    let EventKind::GapFilled { file, .. } = &filled.kind else {
        unreachable!()
    };
    assert_eq!(
        std::fs::read(file).unwrap(),
        vod_segment_bytes("2000", 1, false)
    );
    // `VodFillDone` (audit-only, not posted) forgets the pending fill.
    let store = open_store(dir.path()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.vod_fills().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fill stays pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    bot.stop().await;

    // Started once more: nothing is pending, nothing is fetched again.
    let seen = origin.requests("vod-list");
    let bot = Bot::start(config(dir.path(), &origin, true)).await;
    bot.command("list").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    bot.stop().await;
    assert_eq!(origin.requests("vod-list"), seen);
    assert_eq!(origin.requests("vod-segment"), 1);
    assert_eq!(logged(dir.path(), "GapFilled").await.len(), 1);
    let sidecar = part_sidecar(dir.path());
    assert_eq!(sidecar.fills.len(), 1, "{:?}", sidecar.fills);
    let fills: Vec<String> = names_in(&dir.path().join("recordings/foo"))
        .into_iter()
        .filter(|n| n.contains(".fill-"))
        .collect();
    assert_eq!(fills.len(), 1, "{fills:?}");
}

/// An fMP4 broadcast's gap is filled from an fMP4 VOD: `<part>.fill-1.mp4`, the VOD's init
/// segment first, then the covering segment (its `-muted.mp4` copy), byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fmp4_gap_is_filled_init_segment_first_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.publish_vod(
        "foo",
        Vod {
            fmp4: true,
            muted: vec![1],
            ..vod(Utc::now())
        },
    );
    let stream = StreamConfig {
        fmp4: true,
        fail_always: vec![5],
        ..Default::default()
    };
    let mut bot = record(config(dir.path(), &origin, true), &origin, stream).await;
    let filled = bot.wait_for("GapFilled", is("GapFilled")).await;
    let EventKind::GapFilled { file, muted, .. } = &filled.kind else {
        unreachable!()
    };
    assert!(file.to_string_lossy().ends_with(".fill-1.mp4"), "{file:?}");
    assert!(*muted);
    let want = [vod_init_bytes("2000"), vod_segment_bytes("2000", 1, true)].concat();
    assert!(std::fs::read(file).unwrap() == want, "the fill differs");
    let sidecar = part_sidecar(dir.path());
    assert!(sidecar.file.ends_with(".mp4"), "{}", sidecar.file);
    assert_eq!(sidecar.fills.len(), 1);
    assert!(sidecar.fills[0].file.ends_with(".fill-1.mp4"));
    assert_eq!(sidecar.fills[0].bytes, want.len() as u64);
    assert_eq!(origin.requests("vod-init"), 1);
    assert_eq!(origin.requests("vod-segment"), 1);
    bot.stop().await;
}

/// A fill is its own upload: queued when `GapFilled` is stored, titled like its part with
/// " (filled from VOD)". With `after_upload = "move"` the part waits for its fill (the VOD
/// is ready only after the part's upload), then part, fill and sidecar move together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_is_uploaded_as_its_own_video_and_moves_with_its_part() {
    use support::youtube_tcp::TcpYoutube;
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let yt = TcpYoutube::start("ya29.valid").await;
    let google = support::GoogleFake::start("unused", "1//r").await;
    support::store_token(dir.path(), "youtube", "ya29.valid", "1//r", 3600).await;
    let youtube = format!(
        "[youtube]\nenabled = true\nclient_id = \"c.apps.googleusercontent.com\"\n\
         client_secret = \"s\"\nupload_url = {:?}\napi_url = {:?}\ntoken_url = {:?}\n\
         auth_url = {:?}\nafter_upload = \"move\"\nchunk_size_mib = 1\n\
         [chat]\nsave_timeout_secs = 1\n",
        yt.upload_url(),
        yt.upload_url()
            .replace("/upload/youtube/v3/videos", "/youtube/v3"),
        google.token_url(),
        google.auth_url(),
    );
    let stream = StreamConfig {
        fail_always: vec![5],
        ..Default::default()
    };
    // No VOD yet: the part is uploaded before its gap can be filled.
    let config = config_with(dir.path(), &origin, true, &youtube);
    let mut bot = record(config, &origin, stream).await;
    let queued = |fill: bool| move |e: &recbot::event::Event| matches!(&e.kind, EventKind::UploadQueued { file, .. } if file.contains(".fill-") == fill);
    let job_of = |e: &recbot::event::Event| match e.kind {
        EventKind::UploadQueued { job, .. } => job,
        _ => unreachable!(),
    };
    let part_job = job_of(&bot.wait_for("the part's upload", queued(false)).await);
    bot.wait_for(
        "the part uploaded",
        |e| matches!(e.kind, EventKind::UploadFinished { job, .. } if job == part_job),
    )
    .await;
    let recordings = dir.path().join("recordings/foo");
    let uploaded = dir.path().join("uploaded/foo");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sidecar = part_sidecar(dir.path());
    assert!(sidecar.youtube_video_id.is_some());
    assert!(
        recordings.join(&sidecar.file).exists(),
        "moved before its fill: {:?}",
        names_in(&recordings)
    );

    origin.publish_vod("foo", vod(Utc::now()));
    let filled = bot.wait_for("GapFilled", is("GapFilled")).await;
    let EventKind::GapFilled { file, .. } = &filled.kind else {
        unreachable!()
    };
    let fill_name = file.file_name().unwrap().to_owned();
    let fill_job = job_of(&bot.wait_for("the fill's upload", queued(true)).await);
    let done = bot
        .wait_for(
            "the fill uploaded",
            |e| matches!(e.kind, EventKind::UploadFinished { job, .. } if job == fill_job),
        )
        .await;
    let EventKind::UploadFinished { video_id, .. } = &done.kind else {
        unreachable!()
    };
    let sidecar_name = format!("{}.json", sidecar.file.trim_end_matches(".ts"));
    eventually(Duration::from_secs(10), || {
        uploaded.join(&sidecar_name).exists() && uploaded.join(&fill_name).exists()
    })
    .await;
    bot.stop().await;
    for name in [
        &sidecar.file,
        &sidecar_name,
        &fill_name.to_string_lossy().into_owned(),
    ] {
        assert!(uploaded.join(name).exists(), "{name} not moved");
        assert!(!recordings.join(name).exists(), "{name} left behind");
    }
    assert_eq!(
        std::fs::read(uploaded.join(&fill_name)).unwrap(),
        vod_segment_bytes("2000", 1, false)
    );
    let moved: Sidecar =
        serde_json::from_slice(&std::fs::read(uploaded.join(&sidecar_name)).unwrap()).unwrap();
    assert_eq!(moved.fills[0].youtube_video_id.as_ref(), Some(video_id));
    assert_ne!(moved.youtube_video_id.as_ref(), Some(video_id));
    let state = yt.state.lock().unwrap();
    assert_eq!(state.metadata.len(), 2);
    let title = |i: usize| {
        state.metadata[i]["snippet"]["title"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(title(1), format!("{} (filled from VOD)", title(0)));
    assert_eq!(state.sessions[1].received, moved.fills[0].bytes);
}
