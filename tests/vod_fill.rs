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
use support::origin::{vod_segment_bytes, Origin, StreamConfig, Vod};
use support::{is, Bot};

fn config(dir: &Path, origin: &Origin, fill: bool) -> Arc<Config> {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[recording]\nvod_fill = {fill}\nvod_fill_poll_secs = 0.2\n\
         vod_fill_wait_minutes = 0.5\n{}offline_grace_secs = 1\npoll_interval_secs = 1\n\
         client_id = \"cid\"\nclient_secret = \"secret\"\n{}",
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
    }
}

/// `foo` live with a segment (index 5 of 0.25 s ones: broadcast 1.25–1.5 s) that always
/// fails; the broadcast ends after 3 s.
async fn record_with_a_gap(dir: &Path, origin: &Origin, fill: bool) -> Bot {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("recbot=debug")
        .with_test_writer()
        .try_init();
    let mut bot = Bot::start(config(dir, origin, fill))
        .await
        .keeping_unmatched();
    bot.command("add foo").await;
    origin.go_live(
        "foo",
        StreamConfig {
            fail_always: vec![5],
            ..Default::default()
        },
    );
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
