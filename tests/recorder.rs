//! The recorder against a local origin (GQL, usher, live playlists and segments on 127.0.0.1):
//! what ends up on disk is byte-exactly the served segments, in order, once each, with every
//! loss reported.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use recbot::archive::sidecar::Sidecar;
use recbot::config::Config;
use recbot::event::{Event, EventKind};
use recbot::recorder::{Control, Recorder, RecordingSpec, SourceSpec, StopReason};
use recbot::work::Events;
use recbot_commands::{Login, Quality};
use support::origin::{init_bytes, new_init_bytes, segment_bytes, End, Origin, StreamConfig};
use support::same_bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Bench {
    dir: tempfile::TempDir,
    recorder: Recorder,
    events: mpsc::Receiver<Event>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// The client for `add hls` sources, allowed to read the local origin.
fn local_sources() -> recbot::recorder::fetch::Http {
    recbot::recorder::fetch::Http::guarded(recbot::recorder::source_guard::SourceGuard::new(
        true,
        vec![],
    ))
}

fn config(dir: &Path, origin: &Origin, storage: &str, extra: &str) -> Config {
    let text = format!(
        "[storage]\ndata_dir = {:?}\n{storage}{}offline_grace_secs = 1\n{extra}",
        dir.to_str().unwrap(),
        origin.twitch_config()
    );
    let text = recbot::config::testing::offline(&text);
    Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap()
}

fn bench(origin: &Origin, extra: &str) -> Bench {
    bench_with(origin, "", extra)
}

/// A bench with lines added to `[storage]` too.
fn bench_with(origin: &Origin, storage: &str, extra: &str) -> Bench {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path(), origin, storage, extra));
    let (tx, events) = mpsc::channel(1024);
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let recorder = Recorder::new(
        &config,
        Events::new(tx),
        tracker.clone(),
        shutdown.clone(),
        recbot::recorder::ViewerLogin::anonymous(),
    );
    Bench {
        dir,
        recorder,
        events,
        tracker,
        shutdown,
    }
}

fn spec(login: &str) -> RecordingSpec {
    RecordingSpec {
        login: Login::parse(login).unwrap(),
        source: SourceSpec::Twitch,
        quality: Quality::BEST,
        session: 7,
        stream_id: Some("1001".into()),
        display_name: Some("Foo".into()),
        title: "first title".into(),
        game: Some("Chess".into()),
        first_part: 1,
        resume: None,
        stream_started: None,
    }
}

impl Bench {
    fn recordings(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    /// Collects events until `RecordingFinished` (30 s at most).
    async fn until_finished(&mut self) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), self.events.recv())
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
}

fn expected(login: &str, seqs: impl IntoIterator<Item = u64>, len: usize) -> Vec<u8> {
    seqs.into_iter()
        .flat_map(|s| segment_bytes(login, s, len))
        .collect()
}

fn finished_parts(events: &[Event]) -> Vec<(u32, PathBuf, PathBuf)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RecordingPartFinished {
                part,
                file,
                sidecar,
                ..
            } => Some((*part, file.clone(), sidecar.clone())),
            _ => None,
        })
        .collect()
}

/// What `f` extracts from the events it matches.
fn pick<T>(events: &[Event], f: impl Fn(&EventKind) -> Option<T>) -> Vec<T> {
    events.iter().filter_map(|e| f(&e.kind)).collect()
}

fn gaps(events: &[Event]) -> Vec<(u64, u64, f64, String)> {
    pick(events, |k| match k {
        EventKind::RecordingGap {
            first_sequence,
            last_sequence,
            seconds,
            reason,
        } => Some((*first_sequence, *last_sequence, *seconds, reason.clone())),
        _ => None,
    })
}

fn count(events: &[Event], name: &str) -> usize {
    events.iter().filter(|e| e.kind_name() == name).count()
}

async fn record(
    origin: &Origin,
    login: &str,
    stream: StreamConfig,
    extra: &str,
) -> (Bench, Vec<Event>) {
    origin.go_live(login, stream);
    let mut b = bench(origin, extra);
    let _handle = b.recorder.start(spec(login));
    let events = b.until_finished().await;
    (b, events)
}

#[tokio::test]
async fn starts_at_the_oldest_segment_and_writes_each_once_until_endlist() {
    let origin = Origin::start().await;
    let stream = StreamConfig::default();
    let (total, len) = (stream.segments, stream.body_len);
    let (b, events) = record(&origin, "foo", stream, "").await;
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let (_, file, sidecar_path) = &parts[0];
    assert!(file.starts_with(b.recordings().join("foo")), "{file:?}");
    assert_eq!(file.extension().unwrap(), "ts");
    // Segment 0 was published before the recording started: it is there, and so is every
    // later one, once, in order.
    same_bytes(
        &std::fs::read(file).unwrap(),
        &expected("foo", 0..total, len),
    );
    let sidecar = Sidecar::read(sidecar_path).await.unwrap();
    assert_eq!(sidecar.segments, total);
    assert_eq!(sidecar.bytes, std::fs::metadata(file).unwrap().len());
    assert!((sidecar.duration_secs - total as f64 * 0.25).abs() < 1e-6);
    assert_eq!(sidecar.quality, "1080p60");
    assert_eq!(sidecar.session, 7);
    assert_eq!(sidecar.part, 1);
    assert_eq!(sidecar.stream_id.as_deref(), Some("1001"));
    assert_eq!(sidecar.chapters[0].title, "first title");
    assert!(!sidecar.recovered);
    assert!(events.iter().all(|e| e.session == Some(7)));
    match &events.last().unwrap().kind {
        EventKind::RecordingFinished {
            parts, bytes, gaps, ..
        } => {
            assert_eq!((*parts, *gaps), (1, 0));
            assert_eq!(*bytes, sidecar.bytes);
        }
        other => panic!("{other:?}"),
    }
    // No leftovers: no .part, no checkpoint.
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_404_ends_the_recording() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        end: End::NotFound,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    // Segments published after the last reload before the 404 were never listed; all
    // listed ones are there, from the first, in order.
    let data = std::fs::read(&parts[0].1).unwrap();
    let one = segment_bytes("foo", 0, len).len();
    let n = (data.len() / one) as u64;
    assert!(n >= total - 5, "only {n} segments");
    same_bytes(&data, &expected("foo", 0..n, len));
    assert_eq!(count(&events, "RecordingGap"), 0);
}

#[tokio::test]
async fn ads_are_cut_out_and_reported() {
    for by_daterange in [false, true] {
        let origin = Origin::start().await;
        let stream = StreamConfig {
            ads: 5..8,
            ads_by_daterange: by_daterange,
            ..Default::default()
        };
        let (total, len) = (stream.segments, stream.body_len);
        let (_b, events) = record(&origin, "foo", stream, "").await;
        let parts = finished_parts(&events);
        let data = std::fs::read(&parts[0].1).unwrap();
        let live = (0..total).filter(|s| !(5..8).contains(s));
        assert_eq!(
            data,
            expected("foo", live, len),
            "by daterange: {by_daterange}"
        );
        let breaks = pick(&events, |k| match k {
            EventKind::AdBreak { duration_secs } => Some(*duration_secs),
            _ => None,
        });
        assert_eq!(breaks.len(), 1, "{events:#?}");
        assert!((breaks[0] - 0.75).abs() < 1e-6);
        let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
        assert_eq!(sidecar.ad_breaks.len(), 1);
        assert!((sidecar.ad_breaks[0].offset_secs - 1.25).abs() < 1e-6);
        // The discontinuity after the break is noted where the file jumps.
        assert_eq!(sidecar.discontinuities, [1.25]);
        assert_eq!(count(&events, "RecordingGap"), 0);
    }
}

#[tokio::test]
async fn fmp4_init_segment_is_written_once_and_the_file_is_mp4() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fmp4: true,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let parts = finished_parts(&events);
    let (_, file, _) = &parts[0];
    assert_eq!(file.extension().unwrap(), "mp4");
    let mut want = init_bytes("foo");
    want.extend(expected("foo", 0..total, len));
    same_bytes(&std::fs::read(file).unwrap(), &want);
    assert_eq!(origin.requests("init"), 1);
}

#[tokio::test]
async fn a_new_init_segment_mid_stream_ends_the_part_and_starts_one_with_it() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fmp4: true,
        init_change_at: Some(6),
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 2, "{events:#?}");
    // Each file: one init, at its start, then its segments; none lost, none twice.
    let mut first = init_bytes("foo");
    first.extend(expected("foo", 0..6, len));
    let mut second = new_init_bytes("foo");
    second.extend(expected("foo", 6..total, len));
    assert_eq!((parts[0].0, parts[1].0), (1, 2));
    for ((_, file, _), want) in parts.iter().zip([first, second]) {
        assert_eq!(file.extension().unwrap(), "mp4");
        same_bytes(&std::fs::read(file).unwrap(), &want);
    }
    assert_eq!(count(&events, "RecordingStarted"), 2);
}

#[tokio::test]
async fn the_same_init_at_a_new_address_keeps_the_part() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fmp4: true,
        init_moves_at: Some(6),
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let mut want = init_bytes("foo");
    want.extend(expected("foo", 0..total, len));
    same_bytes(&std::fs::read(&parts[0].1).unwrap(), &want);
    // The new address was fetched to compare, and not written.
    assert_eq!(origin.requests("init"), 2);
}

#[tokio::test]
async fn broken_segment_downloads_are_cut_back_and_retried() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fail_once: vec![2, 6, 9],
        body_len: 300_000,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    let data = std::fs::read(&finished_parts(&events)[0].1).unwrap();
    assert!(data == expected("foo", 0..total, len), "content differs");
}

#[tokio::test]
async fn a_segment_that_keeps_failing_is_a_reported_gap() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fail_always: vec![6],
        window: 30,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let gaps = gaps(&events);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].0, gaps[0].1), (6, 6));
    assert!(gaps[0].3.contains("HTTP 500"), "{}", gaps[0].3);
    let parts = finished_parts(&events);
    let data = std::fs::read(&parts[0].1).unwrap();
    same_bytes(&data, &expected("foo", (0..total).filter(|s| *s != 6), len));
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert_eq!(sidecar.gaps.len(), 1);
    assert!((sidecar.gaps[0].offset_secs - 1.5).abs() < 1e-6);
}

#[tokio::test]
async fn window_overrun_is_reported_as_a_gap() {
    let origin = Origin::start().await;
    // The playlist is unavailable while segments 6..=15 are published; with a window of 6
    // segments (1.5 s, reloads every 1 s) some of them are gone before it answers again.
    let stream = StreamConfig {
        segments: 24,
        window: 6,
        outage: Some(6..16),
        ..Default::default()
    };
    let (len, total) = (stream.body_len, stream.segments);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let gaps = gaps(&events);
    assert_eq!(gaps.len(), 1, "{events:#?}");
    let (first, last, seconds, _) = gaps[0].clone();
    assert!(first >= 2 && last >= first && last <= 15, "{gaps:?}");
    assert!((seconds - (last - first + 1) as f64 * 0.25).abs() < 1e-6);
    let data = std::fs::read(&finished_parts(&events)[0].1).unwrap();
    let kept = (0..total).filter(|s| !(first..=last).contains(s));
    same_bytes(&data, &expected("foo", kept, len));
}

#[tokio::test]
async fn a_403_gets_a_new_token_and_continues_without_a_gap() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 16,
        expire_tokens_at: Some(8),
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    assert!(origin.requests("403") >= 1);
    assert!(origin.requests("gql") >= 2);
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..total, len),
    );
}

#[tokio::test]
async fn parts_roll_at_segment_boundaries_without_losing_one() {
    let origin = Origin::start().await;
    let stream = StreamConfig::default();
    let (total, len) = (stream.segments, stream.body_len);
    // 0.75 s parts = three 0.25 s segments each.
    let extra = format!("[recording]\nmax_part_hours = {}\n", 0.75 / 3600.0);
    let (_b, events) = record(&origin, "foo", stream, &extra).await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 4, "{events:#?}");
    let mut all = Vec::new();
    for (i, (no, file, sidecar)) in parts.iter().enumerate() {
        assert_eq!(*no, i as u32 + 1);
        let sidecar = Sidecar::read(sidecar).await.unwrap();
        assert_eq!(sidecar.segments, 3);
        assert_eq!(sidecar.part, *no);
        all.extend(std::fs::read(file).unwrap());
    }
    same_bytes(&all, &expected("foo", 0..total, len));
    let started = pick(&events, |k| match k {
        EventKind::RecordingStarted { part, .. } => Some(*part),
        _ => None,
    });
    assert_eq!(started, [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_stream_back_within_the_grace_period_continues_in_a_new_part() {
    let origin = Origin::start().await;
    let first = StreamConfig {
        end: End::NotFound,
        segments: 6,
        ..Default::default()
    };
    origin.go_live("foo", first.clone());
    let mut b = bench(&origin, "");
    let _handle = b.recorder.start(spec("foo"));
    // Wait for part 1 to be finished, then bring the stream back (new numbering).
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), b.events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(e.kind, EventKind::RecordingPartFinished { .. }) {
            break;
        }
    }
    origin.go_live(
        "foo",
        StreamConfig {
            first_sequence: 500,
            ..Default::default()
        },
    );
    let events = b.until_finished().await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    assert_eq!(parts[0].0, 2);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 500..512, 3000),
    );
    // The jump in numbering is time off the air, not a gap.
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    match &events.last().unwrap().kind {
        EventKind::RecordingFinished { parts, .. } => assert_eq!(*parts, 2),
        other => panic!("{other:?}"),
    }
    assert!(events.iter().all(|e| e.session == Some(7)));
}

#[tokio::test]
async fn hls_sources_record_master_or_media_playlists() {
    let origin = Origin::start().await;
    for path in ["/hls/studio/master.m3u8", "/hls/studio/720p30/index.m3u8"] {
        let stream = StreamConfig::default();
        let (total, len) = (stream.segments, stream.body_len);
        origin.go_live("studio", stream);
        let mut b = bench(&origin, "");
        let mut s = spec("studio");
        s.source = SourceSpec::Hls {
            url: format!("{}{path}", origin.url()),
        };
        s.stream_id = None;
        s.quality = Quality::parse("720p").unwrap();
        let _handle = b.recorder.start(s);
        let events = b.until_finished().await;
        let parts = finished_parts(&events);
        assert_eq!(parts.len(), 1, "{path}: {events:#?}");
        same_bytes(
            &std::fs::read(&parts[0].1).unwrap(),
            &expected("studio", 0..total, len),
        );
        let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
        assert_eq!(sidecar.source, "hls");
        let quality = if path.contains("master") {
            "720p30"
        } else {
            "source"
        };
        assert_eq!(sidecar.quality, quality);
    }
}

#[tokio::test]
async fn stop_and_shutdown_finish_the_part() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    };
    origin.go_live("foo", stream.clone());
    let mut b = bench(&origin, "");
    let handle = b.recorder.start(spec("foo"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(handle.status().recording);
    assert!(handle.status().bytes > 0);
    assert!(handle.send(Control::Stop(StopReason::Ended("removed".into()))));
    let events = b.until_finished().await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1);
    let data = std::fs::read(&parts[0].1).unwrap();
    let n = data.len() / segment_bytes("foo", 0, stream.body_len).len();
    assert!(n >= 4);
    same_bytes(&data, &expected("foo", 0..n as u64, stream.body_len));

    // Shutdown: the part is finished too, but the session is not (no RecordingFinished).
    let mut s = spec("foo");
    s.session = 8;
    let _h = b.recorder.start(s);
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.shutdown.cancel();
    b.tracker.close();
    tokio::time::timeout(Duration::from_secs(8), b.tracker.wait())
        .await
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(e) = b.events.try_recv() {
        rest.push(e);
    }
    assert_eq!(finished_parts(&rest).len(), 1, "{rest:#?}");
    assert_eq!(count(&rest, "RecordingFinished"), 0);
}

#[tokio::test]
async fn a_stalled_playlist_is_refreshed_then_reported() {
    let origin = Origin::start().await;
    // Eight segments, then the playlist keeps answering without new ones (no ENDLIST).
    let stream = StreamConfig {
        segments: 8,
        end: End::Never,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let extra = "[recording]\nstall_timeout_secs = 1\n";
    let (_b, events) = record(&origin, "foo", stream, extra).await;
    // Limit max(1 s, 3 × 1 s target): a new token and playlist first, then the report.
    assert!(origin.requests("gql") >= 2, "no refresh");
    let stalled = pick(&events, |k| match k {
        EventKind::RecordingStalled { seconds } => Some(*seconds),
        _ => None,
    });
    assert_eq!(stalled.len(), 1, "{events:#?}");
    assert!(stalled[0] >= 6, "{stalled:?}");
    let parts = finished_parts(&events);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..total, len),
    );
}

impl Bench {
    /// Waits (20 s at most) for an event matching `f`, keeping the ones before it.
    async fn until(&mut self, seen: &mut Vec<Event>, f: impl Fn(&EventKind) -> bool) -> Event {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("not seen; saw {seen:#?}"))
                .unwrap();
            if f(&event.kind) {
                return event;
            }
            seen.push(event);
        }
    }

    async fn shutdown(self) -> Vec<Event> {
        let Bench {
            mut events,
            tracker,
            shutdown,
            ..
        } = self;
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(8), tracker.wait())
            .await
            .expect("recordings stop soon after shutdown");
        let mut rest = Vec::new();
        while let Ok(e) = events.try_recv() {
            rest.push(e);
        }
        rest
    }
}

#[tokio::test]
async fn gql_errors_during_a_refresh_do_not_end_the_recording() {
    // Twitch's everyday hiccup, and a refusal that goes away (a day of integrity checks).
    for message in ["service timeout", "failed integrity check"] {
        let origin = Origin::start().await;
        // The token expires after 8 segments, and for the next 6 GQL answers only errors.
        let stream = StreamConfig {
            segments: 24,
            window: 40,
            expire_tokens_at: Some(8),
            gql_errors: Some((8..14, message)),
            ..Default::default()
        };
        let (total, len) = (stream.segments, stream.body_len);
        let (_b, events) = record(&origin, "foo", stream, "").await;
        assert!(origin.requests("gql-error") >= 1, "no GQL error was served");
        assert_eq!(
            count(&events, "RecordingFailed"),
            0,
            "{message}: {events:#?}"
        );
        assert_eq!(count(&events, "RecordingGap"), 0, "{message}: {events:#?}");
        let parts = finished_parts(&events);
        assert_eq!(parts.len(), 1, "{message}: {events:#?}");
        same_bytes(
            &std::fs::read(&parts[0].1).unwrap(),
            &expected("foo", 0..total, len),
        );
    }
}

#[tokio::test]
async fn a_playlist_that_keeps_answering_403_is_not_hammered() {
    let origin = Origin::start().await;
    // From 8 segments on, every playlist request is refused, whatever the token.
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        forbid_from: Some(8),
        ..Default::default()
    };
    let len = stream.body_len;
    let extra = "[recording]\nstall_timeout_secs = 1\n";
    let (_b, events) = record(&origin, "foo", stream, extra).await;
    // The take ends when the stall watchdog gives up (3 s limit, twice, plus 1 s grace) and
    // the comeback probes for 1 s: about 8 s of refreshing. Without a backoff that is
    // thousands of token requests.
    let tokens = origin.requests("gql");
    assert!(tokens <= 40, "{tokens} token requests");
    assert!(
        origin.requests("403") <= 60,
        "{} 403s",
        origin.requests("403")
    );
    // What was read before the 403s is there, in order.
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let data = std::fs::read(&parts[0].1).unwrap();
    let seqs = support::origin::sequences("foo", &data, len);
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() >= 4, "{seqs:?}");
    // Giving up is said, with why.
    let reasons = pick(&events, |k| match k {
        EventKind::RecordingFailed { reason } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reasons.len(), 1, "{events:#?}");
    assert!(
        reasons[0].contains("gave up") && reasons[0].contains("HTTP 403"),
        "{}",
        reasons[0]
    );
}

#[tokio::test]
async fn an_outage_longer_than_the_window_is_a_reported_gap_not_a_silent_restart() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    };
    let len = stream.body_len;
    origin.go_live("foo", stream);
    let mut b = bench(&origin, "[recording]\nstall_timeout_secs = 1\n");
    let handle = b.recorder.start(spec("foo"));
    let mut seen = Vec::new();
    b.until(&mut seen, |k| {
        matches!(k, EventKind::RecordingStarted { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The playlist is unreachable for longer than its window (2 s): the stall watchdog ends
    // the take and finishes part 1.
    origin.set_blocked("foo", true);
    let part1 = b
        .until(&mut seen, |k| {
            matches!(k, EventKind::RecordingPartFinished { part: 1, .. })
        })
        .await;
    origin.set_blocked("foo", false);
    let gap = b
        .until(&mut seen, |k| matches!(k, EventKind::RecordingGap { .. }))
        .await;
    b.until(&mut seen, |k| {
        matches!(k, EventKind::RecordingStarted { part: 2, .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.send(Control::Stop(StopReason::Ended("enough".into())));
    let events = b.until_finished().await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let first = std::fs::read(&finished_parts(&[part1])[0].1).unwrap();
    let second = std::fs::read(&parts[0].1).unwrap();
    let (first, second) = (
        support::origin::sequences("foo", &first, len),
        support::origin::sequences("foo", &second, len),
    );
    let EventKind::RecordingGap {
        first_sequence,
        last_sequence,
        seconds,
        reason,
    } = gap.kind
    else {
        unreachable!()
    };
    // Part 2 goes on where part 1 stopped, after the reported gap: nothing twice, nothing
    // missing without a report.
    assert_eq!(first_sequence, first.last().unwrap() + 1, "{first:?}");
    assert_eq!(second[0], last_sequence + 1, "{second:?}");
    let missed = (last_sequence - first_sequence + 1) as f64;
    assert!(
        (seconds - missed * 0.25).abs() < 0.01,
        "{seconds} s for {missed}"
    );
    assert!(reason.contains("no longer offered"), "{reason}");
}

#[tokio::test]
async fn a_new_broadcast_id_is_not_taken_for_the_stream_coming_back() {
    let origin = Origin::start().await;
    origin.go_live(
        "foo",
        StreamConfig {
            end: End::NotFound,
            segments: 6,
            broadcast_id: Some("b1".into()),
            ..Default::default()
        },
    );
    let mut b = bench(&origin, "");
    let mut s = spec("foo");
    // Live detection did not know the stream id yet.
    s.stream_id = None;
    let handle = b.recorder.start(s);
    let mut seen = Vec::new();
    let part = b
        .until(&mut seen, |k| {
            matches!(k, EventKind::RecordingPartFinished { .. })
        })
        .await;
    // Learnt from the master playlist.
    assert_eq!(handle.stream_id().as_deref(), Some("b1"));
    let sidecar = Sidecar::read(&finished_parts(&[part])[0].2).await.unwrap();
    assert_eq!(sidecar.stream_id.as_deref(), Some("b1"));
    // Within the grace period, another broadcast starts.
    origin.go_live(
        "foo",
        StreamConfig {
            first_sequence: 500,
            broadcast_id: Some("b2".into()),
            ..Default::default()
        },
    );
    let events = b.until_finished().await;
    assert_eq!(count(&events, "RecordingStarted"), 0, "{events:#?}");
    match &events.last().unwrap().kind {
        EventKind::RecordingFinished { parts, .. } => assert_eq!(*parts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&events, "RecordingFailed"), 0, "{events:#?}");
    assert!(handle.status().new_broadcast);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_hanging_playlist_request() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    };
    origin.go_live("foo", stream);
    let mut b = bench(&origin, "");
    let _handle = b.recorder.start(spec("foo"));
    let mut seen = Vec::new();
    b.until(&mut seen, |k| {
        matches!(k, EventKind::RecordingStarted { .. })
    })
    .await;
    origin.set_hanging("foo", true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let rest = b.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(finished_parts(&rest).len(), 1, "{rest:#?}");
}

#[tokio::test]
async fn a_part_whose_sidecar_cannot_be_written_is_reported_not_announced() {
    let origin = Origin::start().await;
    let stream = StreamConfig::default();
    origin.go_live("foo", stream);
    let mut b = bench(
        &origin,
        "[recording]\nfile_template = \"{login}/fixed.ts\"\n",
    );
    // Where the sidecar must go, a folder that cannot be replaced.
    std::fs::create_dir_all(b.recordings().join("foo/fixed.json/x")).unwrap();
    let _handle = b.recorder.start(spec("foo"));
    let events = b.until_finished().await;
    assert!(finished_parts(&events).is_empty(), "{events:#?}");
    let reasons = pick(&events, |k| match k {
        EventKind::RecordingFailed { reason } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reasons.len(), 1, "{events:#?}");
    assert!(reasons[0].contains("sidecar"), "{}", reasons[0]);
    // The recording is complete, and its checkpoint stays for the next start-up.
    assert!(b.recordings().join("foo/fixed.ts").exists());
    assert!(b.recordings().join("foo/fixed.ts.part.json").exists());
}

#[tokio::test]
async fn an_hls_source_that_cannot_be_recorded_is_not_announced_every_poll() {
    use recbot::recorder::hls_source;
    let origin = Origin::start().await;
    origin.go_live(
        "studio",
        StreamConfig {
            segments: 1000,
            end: End::Never,
            ..Default::default()
        },
    );
    origin.go_live(
        "locked",
        StreamConfig {
            segments: 1000,
            end: End::Never,
            encrypted: true,
            ..Default::default()
        },
    );
    let (tx, mut rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Nothing ever records them (the disk is full, say): the core reports a failure for
    // every announcement.
    let recording = hls_source::Recording::default();
    for name in ["studio", "locked"] {
        tracker.spawn(hls_source::poll(
            hls_source::HlsSource {
                name: Login::parse(name).unwrap(),
                url: format!("{}/hls/{name}/720p30/index.m3u8", origin.url()),
                every: Duration::from_millis(100),
                http: local_sources(),
                recording: recording.clone(),
                events: Events::new(tx.clone()),
            },
            cancel.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let of = |name: &str, kind: &str| {
        events
            .iter()
            .filter(|e| e.login.as_ref().is_some_and(|l| l.as_str() == name))
            .filter(|e| e.kind_name() == kind)
            .count()
    };
    // Every 2 polls without a backoff (about 12 times); with it, announced again after
    // 0.3–0.6 s, then 0.6–1.2 s, …
    let announced = of("studio", "LiveDetected");
    assert!((2..=4).contains(&announced), "{announced}: {events:#?}");
    // Encrypted: said once, never announced.
    assert_eq!(of("locked", "LiveDetected"), 0, "{events:#?}");
    assert_eq!(of("locked", "RecordingFailed"), 1, "{events:#?}");
    let reason = pick(&events, |k| match k {
        EventKind::RecordingFailed { reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason[0].contains("encrypted"), "{reason:?}");
}

#[tokio::test]
async fn a_session_continued_after_a_restart_goes_on_after_its_last_segment() {
    use recbot::archive::sidecar::Position;
    // Still offered: segments 0..4; the previous run took up to 1. Then the window has moved
    // past what the previous run took: 6..10 offered, up to 1 taken.
    for (initial, window, first, gap) in [(4, 8, 2, None), (10, 4, 6, Some((2, 5)))] {
        let origin = Origin::start().await;
        let stream = StreamConfig {
            segments: initial + 4,
            initial,
            window,
            ..Default::default()
        };
        let (total, len) = (stream.segments, stream.body_len);
        origin.go_live("foo", stream);
        let mut b = bench(&origin, "");
        let mut s = spec("foo");
        s.first_part = 3;
        s.resume = Some(Position {
            sequence: 1,
            program_date_time: None,
            duration_secs: None,
        });
        let _handle = b.recorder.start(s);
        let events = b.until_finished().await;
        let parts = finished_parts(&events);
        assert_eq!(parts.len(), 1, "{events:#?}");
        assert_eq!(parts[0].0, 3);
        // Nothing the previous run has is fetched again.
        same_bytes(
            &std::fs::read(&parts[0].1).unwrap(),
            &expected("foo", first..total, len),
        );
        // What went by meanwhile is a reported gap, said to be the restart.
        let found = gaps(&events);
        match gap {
            None => assert!(found.is_empty(), "{found:?}"),
            Some((from, to)) => {
                assert_eq!(found.len(), 1, "{found:?}");
                assert_eq!((found[0].0, found[0].1), (from, to));
                assert!(found[0].3.contains("restart"), "{}", found[0].3);
            }
        }
        assert_eq!(count(&events, "RecordingFailed"), 0, "{events:#?}");
    }
}

#[tokio::test]
async fn an_hls_source_that_keeps_failing_is_polled_less_often_and_reported_once() {
    use recbot::recorder::hls_source;
    let origin = Origin::start().await;
    // Every playlist request is refused.
    let failing = StreamConfig {
        segments: 1000,
        end: End::Never,
        forbid_from: Some(0),
        ..Default::default()
    };
    origin.go_live("studio", failing);
    let (tx, mut rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(hls_source::poll(
        hls_source::HlsSource {
            name: Login::parse("studio").unwrap(),
            url: format!("{}/hls/studio/720p30/index.m3u8", origin.url()),
            every: Duration::from_millis(100),
            http: local_sources(),
            recording: hls_source::Recording::default(),
            events: Events::new(tx),
        },
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // Every 100 ms that would be about 30 requests; backing off (100–200 ms, then
    // 200–400 ms, …) it is 5 to 7.
    let asked = origin.requests("403");
    assert!((3..=10).contains(&asked), "{asked} requests");
    // It answers again: said once, and the source is live.
    origin.go_live(
        "studio",
        StreamConfig {
            segments: 1000,
            end: End::Never,
            ..Default::default()
        },
    );
    let mut events = Vec::new();
    // The wait after the last failure can be up to 6.4 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    while !events
        .iter()
        .any(|e: &Event| e.kind_name() == "LiveDetected")
    {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("not live again; saw {events:#?}"))
            .unwrap();
        events.push(e);
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let failed = pick(&events, |k| match k {
        EventKind::LiveCheckFailed { reason, cycles } => Some((reason.clone(), *cycles)),
        _ => None,
    });
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert!(failed[0].0.contains("403"), "{failed:?}");
    assert_eq!(failed[0].1, 3);
    assert_eq!(count(&events, "LiveCheckRecovered"), 1, "{events:#?}");
    assert!(events
        .iter()
        .all(|e| e.login.as_ref().unwrap().as_str() == "studio"));
}

#[tokio::test]
async fn an_encrypted_stream_is_refused_not_recorded() {
    let origin = Origin::start().await;
    for hls in [false, true] {
        origin.go_live(
            "foo",
            StreamConfig {
                encrypted: true,
                ..Default::default()
            },
        );
        let mut b = bench(&origin, "");
        let mut s = spec("foo");
        if hls {
            s.source = SourceSpec::Hls {
                url: format!("{}/hls/foo/720p30/index.m3u8", origin.url()),
            };
        }
        let _handle = b.recorder.start(s);
        let events = b.until_finished().await;
        assert!(finished_parts(&events).is_empty(), "{events:#?}");
        assert_eq!(count(&events, "RecordingStarted"), 0, "{events:#?}");
        let reasons = pick(&events, |k| match k {
            EventKind::RecordingFailed { reason } => Some(reason.clone()),
            _ => None,
        });
        assert_eq!(reasons.len(), 1, "{events:#?}");
        assert!(
            reasons[0].contains("encrypted") && reasons[0].contains("AES-128"),
            "{}",
            reasons[0]
        );
        assert!(!b.recordings().join("foo").exists() || is_empty(&b.recordings().join("foo")));
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn a_segment_answering_503_while_it_is_listed_is_retried_not_a_gap() {
    let origin = Origin::start().await;
    // Segment 5 answers 503 five times (one more than the old fixed number of tries) while
    // it stays in a 6-segment window (3 s).
    let stream = StreamConfig {
        segments: 16,
        seg_duration: 0.5,
        window: 6,
        fail_times: vec![(5, 5)],
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    assert_eq!(count(&events, "RecordingGap"), 0, "{events:#?}");
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..total, len),
    );
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert!(sidecar.gaps.is_empty());
    assert_eq!(sidecar.segments, total);
}

#[tokio::test]
async fn a_segment_failing_until_it_leaves_the_window_is_one_gap_and_nothing_after_is_lost() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 20,
        window: 6,
        fail_always: vec![5],
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let gaps = gaps(&events);
    assert_eq!(gaps.len(), 1, "{events:#?}");
    assert_eq!((gaps[0].0, gaps[0].1), (5, 5));
    assert!(
        gaps[0].3.contains("while it was listed") && gaps[0].3.contains("HTTP 500"),
        "{}",
        gaps[0].3
    );
    let parts = finished_parts(&events);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", (0..total).filter(|s| *s != 5), len),
    );
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert_eq!(sidecar.gaps.len(), 1);
    assert!((sidecar.gaps[0].offset_secs - 1.25).abs() < 1e-6);
}

#[tokio::test]
async fn endless_and_trickling_segments_are_cut_off_as_gaps_and_the_rest_is_kept() {
    let origin = Origin::start().await;
    // Target duration 1 s: a segment may take 1 s and hold 1 MiB (the floor above 2 × 1 s
    // at 1 Mbit/s).
    let stream = StreamConfig {
        segments: 16,
        endless: vec![3],
        trickle: vec![8],
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let extra =
        "[recording]\nmax_segment_mbps = 1.0\nsegment_time_factor = 1.0\nsegment_min_secs = 0.5\n";
    let (_b, events) = record(&origin, "foo", stream, extra).await;
    let gaps = gaps(&events);
    assert_eq!(gaps.len(), 2, "{events:#?}");
    assert_eq!((gaps[0].0, gaps[0].1), (3, 3));
    assert!(gaps[0].3.contains("larger than"), "{}", gaps[0].3);
    assert_eq!((gaps[1].0, gaps[1].1), (8, 8));
    assert!(gaps[1].3.contains("took longer than"), "{}", gaps[1].3);
    let parts = finished_parts(&events);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", (0..total).filter(|s| *s != 3 && *s != 8), len),
    );
}

#[tokio::test]
async fn stop_interrupts_a_trickling_download_within_a_second() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        trickle: vec![6],
        ..Default::default()
    };
    let one = segment_bytes("foo", 0, stream.body_len).len() as u64;
    origin.go_live("foo", stream.clone());
    let mut b = bench(&origin, "");
    let handle = b.recorder.start(spec("foo"));
    // Segments 0..6 are written; 6 trickles (the default limit lets it for 20 s).
    support::origin::eventually(Duration::from_secs(10), || handle.status().bytes >= 6 * one).await;
    // Meanwhile the three after it are downloaded ahead, and no more however many are listed.
    support::origin::eventually(Duration::from_secs(10), || origin.requests("segment") >= 10).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(origin.requests("segment"), 10);
    assert_eq!(handle.status().bytes, 6 * one);
    let asked = std::time::Instant::now();
    assert!(handle.send(Control::Stop(StopReason::Ended("removed".into()))));
    let mut events = Vec::new();
    let finished = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            let e = b.events.recv().await.unwrap();
            let done = matches!(e.kind, EventKind::RecordingFinished { .. });
            events.push(e);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(
        finished.is_ok(),
        "not finished 1.5 s after the stop: {events:#?}"
    );
    assert!(asked.elapsed() < Duration::from_millis(1500));
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let file = &parts[0].1;
    same_bytes(&std::fs::read(file).unwrap(), &expected("foo", 0..6, 3000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::metadata(file).unwrap().len(), 6 * one);
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Shutdown interrupts it as quickly: the part is finished, the session stays open.
    origin.go_live("foo", stream.clone());
    let mut s = spec("foo");
    s.session = 8;
    let handle = b.recorder.start(s);
    support::origin::eventually(Duration::from_secs(10), || handle.status().bytes >= 6 * one).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = std::time::Instant::now();
    b.shutdown.cancel();
    b.tracker.close();
    tokio::time::timeout(Duration::from_millis(1500), b.tracker.wait())
        .await
        .expect("shutdown waited for the trickling segment");
    assert!(asked.elapsed() < Duration::from_millis(1500));
    let mut rest = Vec::new();
    while let Ok(e) = b.events.try_recv() {
        rest.push(e);
    }
    let parts = finished_parts(&rest);
    assert_eq!(parts.len(), 1, "{rest:#?}");
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..6, 3000),
    );
    assert_eq!(count(&rest, "RecordingFinished"), 0);
}

/// A 1000 GB disk with 500 GB free, and 0.5 GB once `full` is set; each check counted.
fn filling_disk(
    full: Arc<std::sync::atomic::AtomicBool>,
    probes: Arc<std::sync::atomic::AtomicU32>,
) -> recbot::recorder::disk::Probe {
    recbot::recorder::disk::Probe::new(move |_| {
        probes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let gb = 1_000_000_000u64;
        let free = if full.load(std::sync::atomic::Ordering::SeqCst) {
            gb / 2
        } else {
            500 * gb
        };
        Ok(recbot::recorder::disk::DiskUsage {
            total_bytes: 1000 * gb,
            free_bytes: free,
        })
    })
}

#[tokio::test]
async fn free_space_running_out_while_writing_stops_the_recording_at_once() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    };
    let one = segment_bytes("foo", 0, stream.body_len).len() as u64;
    origin.go_live("foo", stream.clone());
    let mut b = bench_with(&origin, "disk_check_mb = 0\nmin_free_gb = 2.0\n", "");
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let probe = filling_disk(full.clone(), probes.clone());
    b.recorder = b.recorder.clone().with_disk_probe(probe);
    let handle = b.recorder.start(spec("foo"));
    support::origin::eventually(Duration::from_secs(10), || handle.status().bytes >= 3 * one).await;
    // Checked after every segment (disk_check_mb = 0).
    assert!(probes.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    let events = b.until_finished().await;
    let low: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::DiskLow {
                    stopped_recording: true,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(low.len(), 1, "{events:#?}");
    assert!(low[0].login.is_none());
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let data = std::fs::read(&parts[0].1).unwrap();
    let n = data.len() as u64 / one;
    assert!(n >= 3, "{n}");
    same_bytes(&data, &expected("foo", 0..n, 3000));
    // Stopped for the disk, not for shutdown: the session is closed, nothing failed.
    assert_eq!(count(&events, "RecordingFailed"), 0, "{events:#?}");
    assert!(handle.is_finished() || !handle.status().recording);
}

#[tokio::test]
async fn two_recordings_running_out_of_space_together_post_one_disk_notice() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 1000,
        end: End::Never,
        ..Default::default()
    };
    let one = segment_bytes("foo", 0, stream.body_len).len() as u64;
    origin.go_live("foo", stream.clone());
    origin.go_live("bar", stream.clone());
    let mut b = bench_with(&origin, "disk_check_mb = 0\nmin_free_gb = 2.0\n", "");
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = filling_disk(full.clone(), Arc::default());
    b.recorder = b.recorder.clone().with_disk_probe(probe);
    let foo = b.recorder.start(spec("foo"));
    let bar = b.recorder.start(spec("bar"));
    support::origin::eventually(Duration::from_secs(10), || {
        foo.status().bytes >= 2 * one && bar.status().bytes >= 2 * one
    })
    .await;
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    // Both stop by themselves (nothing here relays the notice to the other), and only the
    // first to notice posts it.
    let mut events = b.until_finished().await;
    events.extend(b.until_finished().await);
    let low = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::DiskLow { .. }))
        .count();
    assert_eq!(low, 1, "{events:#?}");
    assert_eq!(finished_parts(&events).len(), 2, "{events:#?}");
}

#[tokio::test]
async fn a_source_losing_every_segment_sends_folded_gap_notices_and_capped_reasons() {
    let origin = Origin::start().await;
    // Segments 2..22 answer 404 (a gap each at once), segment 10 has a 20 KB address.
    let stream = StreamConfig {
        segments: 24,
        not_found: (2..22).collect(),
        bad_uri: Some(10),
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let started = std::time::Instant::now();
    let (_b, events) = record(&origin, "foo", stream, "[recording]\ngap_notice_secs = 2\n").await;
    let elapsed = started.elapsed().as_secs_f64();
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", (0..total).filter(|s| !(2..22).contains(s)), len),
    );
    // The sidecar lists every gap, each reason capped.
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert_eq!(sidecar.gaps.len(), 20, "{:#?}", sidecar.gaps);
    assert!(sidecar.gaps.iter().all(|g| g.reason.chars().count() <= 300));
    let bad = &sidecar.gaps[8];
    assert_eq!(bad.first_sequence, 10);
    assert!(bad.reason.ends_with('…'), "{}", bad.reason);
    // Notices: one at the first gap, then at most one per 2 s, and a last one at the end;
    // together they carry every gap's seconds.
    let notices = gaps(&events);
    assert!(
        !notices.is_empty() && notices.len() as f64 <= 2.0 + elapsed / 2.0,
        "{} notices in {elapsed} s: {notices:#?}",
        notices.len()
    );
    assert!(notices.len() < 10);
    let seconds: f64 = notices.iter().map(|n| n.2).sum();
    assert!((seconds - 20.0 * 0.25).abs() < 1e-6, "{notices:#?}");
    assert!(
        notices.iter().all(|n| n.3.chars().count() <= 400),
        "{notices:#?}"
    );
    assert_eq!((notices[0].0, notices.last().unwrap().1), (2, 21));
}

/// What usher withholds from a logged-out viewer (the notes' fixture, TwitchDownloader's).
const WITHHELD_1440: &str = r#"[{"NAME":"1440p60","BANDWIDTH":7736560,"CODECS":"hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2","RESOLUTION":"2560x1440","FILTER_REASONS":[],"AUTHORIZATION_REASONS":["AUTHZ_NOT_LOGGED_IN"],"GROUP-ID":"chunked","FRAME-RATE":60},{"NAME":"Audio Only","BANDWIDTH":160000,"CODECS":"mp4a.40.2","FILTER_REASONS":["FR_AUDIO_DISALLOWED"],"AUTHORIZATION_REASONS":[],"GROUP-ID":"audio_only"}]"#;

fn withheld_events(events: &[Event]) -> Vec<(String, Vec<recbot::rendition::Withheld>, bool)> {
    pick(events, |k| match k {
        EventKind::RenditionWithheld {
            recorded,
            withheld,
            audio_only,
        } => Some((recorded.clone(), withheld.clone(), *audio_only)),
        _ => None,
    })
}

#[tokio::test]
async fn usher_is_asked_for_every_codec_and_what_it_withholds_is_said_once_and_kept() {
    use recbot::rendition::{Codec, Withheld, WithheldWhy};
    let origin = Origin::start().await;
    let first = StreamConfig {
        end: End::NotFound,
        segments: 6,
        unavailable: Some(WITHHELD_1440.into()),
        ..Default::default()
    };
    origin.go_live("foo", first);
    let mut b = bench(&origin, "");
    let _handle = b.recorder.start(spec("foo"));
    let mut events = Vec::new();
    // Part 1, then the stream comes back (a second take of the same session: the master is
    // read again, and withholds the same).
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), b.events.recv())
            .await
            .unwrap()
            .unwrap();
        let done = matches!(e.kind, EventKind::RecordingPartFinished { .. });
        events.push(e);
        if done {
            break;
        }
    }
    let query = origin.usher_query();
    assert_eq!(query["supported_codecs"], "av1,h265,h264");
    assert_eq!(query["include_unavailable"], "true");
    assert_eq!(query["player_backend"], "mediaplayer");
    origin.go_live(
        "foo",
        StreamConfig {
            first_sequence: 500,
            segments: 6,
            unavailable: Some(WITHHELD_1440.into()),
            ..Default::default()
        },
    );
    events.extend(b.until_finished().await);
    assert!(origin.requests("usher") >= 2);
    let told = withheld_events(&events);
    let want = vec![Withheld {
        name: "1440p60".into(),
        codec: Some(Codec::H265),
        why: WithheldWhy::NeedsLogin,
    }];
    assert_eq!(
        told,
        [("1080p60".to_string(), want.clone(), false)],
        "{events:#?}"
    );
    let notice = events
        .iter()
        .find(|e| e.kind_name() == "RenditionWithheld")
        .unwrap();
    assert_eq!(notice.session, Some(7));
    assert_eq!(
        recbot::frontend::render::event_line(notice),
        "foo: recording 1080p60; 1440p60 HEVC is on air but needs `auth twitch-viewer`"
    );
    // Both parts' sidecars say what was missed, and what was recorded.
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 2, "{events:#?}");
    for (_, _, sidecar) in &parts {
        let sidecar = Sidecar::read(sidecar).await.unwrap();
        assert_eq!(sidecar.withheld, want);
        assert_eq!(sidecar.quality, "1080p60");
        assert_eq!(sidecar.codec, Some(Codec::H264));
        assert_eq!((sidecar.width, sidecar.height), (Some(1920), Some(1080)));
        assert_eq!(sidecar.frame_rate, Some(60));
    }
}

#[tokio::test]
async fn nothing_withheld_nothing_said() {
    let origin = Origin::start().await;
    let (_b, events) = record(&origin, "foo", StreamConfig::default(), "").await;
    assert!(withheld_events(&events).is_empty(), "{events:#?}");
    let sidecar = Sidecar::read(&finished_parts(&events)[0].2).await.unwrap();
    assert!(sidecar.withheld.is_empty());
}

#[tokio::test]
async fn an_hevc_source_is_recorded_unless_the_config_excludes_its_codec() {
    use recbot::rendition::{Codec, Withheld, WithheldWhy};
    // Every codec allowed (the default): the 1440p60 HEVC source, nothing to report.
    let origin = Origin::start().await;
    let stream = StreamConfig {
        hevc_source: true,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream.clone(), "").await;
    assert!(withheld_events(&events).is_empty(), "{events:#?}");
    let parts = finished_parts(&events);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..total, len),
    );
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert_eq!(sidecar.quality, "1440p60");
    assert_eq!(sidecar.codec, Some(Codec::H265));
    assert_eq!((sidecar.height, sidecar.frame_rate), (Some(1440), Some(60)));

    // `[recording] codecs = ["h264"]`: the best H.264 rendition, and the source is reported
    // as excluded by the config.
    let origin = Origin::start().await;
    let (_b, events) = record(&origin, "foo", stream, "[recording]\ncodecs = [\"h264\"]\n").await;
    let want = vec![Withheld {
        name: "1440p60".into(),
        codec: Some(Codec::H265),
        why: WithheldWhy::ExcludedCodec,
    }];
    assert_eq!(
        withheld_events(&events),
        [("1080p60".to_string(), want.clone(), false)]
    );
    let notice = events
        .iter()
        .find(|e| e.kind_name() == "RenditionWithheld")
        .unwrap();
    assert_eq!(
        recbot::frontend::render::event_line(notice),
        "foo: recording 1080p60; 1440p60 HEVC is on air but is excluded by [recording] codecs"
    );
    let sidecar = Sidecar::read(&finished_parts(&events)[0].2).await.unwrap();
    assert_eq!(sidecar.quality, "1080p60");
    assert_eq!(sidecar.codec, Some(Codec::H264));
    assert_eq!(sidecar.withheld, want);
}

#[tokio::test]
async fn audio_only_because_every_video_rendition_is_withheld_is_a_loud_warning() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        unavailable: Some(WITHHELD_1440.replace("hev1.1.2.L150.90.0.0.0.0.0", "avc1.640034")),
        only_audio: true,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let told = withheld_events(&events);
    assert_eq!(told.len(), 1, "{events:#?}");
    assert_eq!(told[0].0, "audio_only");
    assert!(told[0].2, "audio only");
    let notice = events
        .iter()
        .find(|e| e.kind_name() == "RenditionWithheld")
        .unwrap();
    assert_eq!(
        recbot::frontend::render::event_line(notice),
        "⚠ foo: recording AUDIO ONLY: 1440p60 H.264 is on air but needs `auth twitch-viewer`"
    );
    // Never "recording best": the start notice names what is recorded.
    let started = pick(&events, |k| match k {
        EventKind::RecordingStarted { quality, .. } => Some(quality.clone()),
        _ => None,
    });
    assert_eq!(started, ["audio_only"]);
    // It is announced before recording starts.
    let at = |name: &str| events.iter().position(|e| e.kind_name() == name).unwrap();
    assert!(at("RenditionWithheld") < at("RecordingStarted"));
    let parts = finished_parts(&events);
    same_bytes(
        &std::fs::read(&parts[0].1).unwrap(),
        &expected("foo", 0..total, len),
    );
    let sidecar = Sidecar::read(&parts[0].2).await.unwrap();
    assert_eq!(sidecar.quality, "audio_only");
    assert_eq!(sidecar.withheld.len(), 1);
    assert_eq!(sidecar.codec, None);
}

/// The segments of a part's index: (offset, length, discontinuity, URI).
fn index_entries(index: &Path) -> (m3u8_rs::MediaPlaylist, Vec<(u64, u64, bool, String)>) {
    let playlist = recbot::archive::index::read_blocking(index).unwrap();
    let entries = playlist
        .segments
        .iter()
        .map(|s| {
            let r = s.byte_range.as_ref().expect("a byte range");
            (
                r.offset.expect("an explicit offset"),
                r.length,
                s.discontinuity,
                s.uri.clone(),
            )
        })
        .collect();
    (playlist, entries)
}

#[tokio::test]
async fn the_index_lists_every_segment_byte_exactly_with_discontinuities_at_cuts() {
    use m3u8_rs::MediaPlaylistType;
    use recbot::archive::layout::index_file;
    let origin = Origin::start().await;
    let stream = StreamConfig {
        segments: 24,
        ads: 3..5,
        fail_always: vec![8],
        window: 30,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    origin.go_live("foo", stream);
    let mut b = bench(&origin, "");
    let _handle = b.recorder.start(spec("foo"));
    // While recording: an EVENT index pointing at the `.part`, each entry already in it.
    let folder = b.recordings().join("foo");
    let mut during = None;
    support::origin::eventually(Duration::from_secs(10), || {
        let Some(index) = std::fs::read_dir(&folder).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "m3u8"))
        }) else {
            return false;
        };
        let Ok(p) = recbot::archive::index::read_blocking(&index) else {
            return false;
        };
        let ready = p.segments.len() >= 2 && p.playlist_type == Some(MediaPlaylistType::Event);
        if ready {
            let part = folder.join(&p.segments[0].uri);
            during = Some((p, std::fs::read(part).unwrap_or_default()));
        }
        ready
    })
    .await;
    let (p, data) = during.unwrap();
    assert!(!p.end_list);
    assert!(
        p.segments[0].uri.ends_with(".ts.part"),
        "{:?}",
        p.segments[0]
    );
    // Entries are appended in batches: the ads (3, 4) and the lost segment (8) are not in it.
    let recorded = (0..total).filter(|n| !(3..5).contains(n) && *n != 8);
    for (s, seq) in p.segments.iter().zip(recorded) {
        let r = s.byte_range.as_ref().unwrap();
        let at = r.offset.unwrap() as usize;
        same_bytes(
            &data[at..at + r.length as usize],
            &segment_bytes("foo", seq, len),
        );
    }

    let events = b.until_finished().await;
    let parts = finished_parts(&events);
    assert_eq!(parts.len(), 1, "{events:#?}");
    let (_, file, sidecar) = &parts[0];
    let index = index_file(file);
    let (p, entries) = index_entries(&index);
    assert_eq!(p.playlist_type, Some(MediaPlaylistType::Vod));
    assert!(p.end_list);
    let data = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let written: Vec<u64> = (0..total)
        .filter(|s| !(3..5).contains(s) && *s != 8)
        .collect();
    assert_eq!(entries.len(), written.len());
    let mut end = 0;
    for ((offset, length, discontinuity, uri), seq) in entries.iter().zip(&written) {
        assert_eq!(*offset, end, "entries follow each other");
        let bytes = &data[*offset as usize..(offset + length) as usize];
        same_bytes(bytes, &segment_bytes("foo", *seq, len));
        assert_eq!(uri, name);
        // Right after the ad break and after the gap, and nowhere else.
        assert_eq!(*discontinuity, *seq == 5 || *seq == 9, "segment {seq}");
        end = offset + length;
    }
    assert_eq!(end, data.len() as u64);
    assert!(p.segments.iter().all(|s| s.program_date_time.is_some()));
    let sidecar = Sidecar::read(sidecar).await.unwrap();
    assert_eq!(
        sidecar.index.as_deref(),
        index.file_name().and_then(|n| n.to_str())
    );
}

#[tokio::test]
async fn an_fmp4_index_maps_the_init_segment_at_the_start_of_the_part() {
    let origin = Origin::start().await;
    let stream = StreamConfig {
        fmp4: true,
        ..Default::default()
    };
    let (total, len) = (stream.segments, stream.body_len);
    let (_b, events) = record(&origin, "foo", stream, "").await;
    let parts = finished_parts(&events);
    let file = &parts[0].1;
    let (p, entries) = index_entries(&recbot::archive::index::index_file(file));
    let init = init_bytes("foo").len() as u64;
    let map = p.segments[0].map.as_ref().expect("EXT-X-MAP");
    assert_eq!(map.uri, file.file_name().unwrap().to_str().unwrap());
    let r = map.byte_range.as_ref().unwrap();
    assert_eq!((r.length, r.offset), (init, Some(0)));
    assert!(p.segments[1..].iter().all(|s| s.map.is_none()));
    assert_eq!(entries.len() as u64, total);
    assert_eq!(entries[0].0, init);
    let one = segment_bytes("foo", 0, len).len() as u64;
    assert!(entries.iter().all(|e| e.1 == one));
}

#[tokio::test]
async fn no_index_when_it_is_turned_off() {
    let origin = Origin::start().await;
    let (_b, events) = record(
        &origin,
        "foo",
        StreamConfig::default(),
        "[recording]\nindex = false\n",
    )
    .await;
    let parts = finished_parts(&events);
    assert!(!recbot::archive::index::index_file(&parts[0].1).exists());
    assert_eq!(Sidecar::read(&parts[0].2).await.unwrap().index, None);
}

/// A real clip (ffmpeg, HLS of 1 s segments) recorded as an `add hls` source: its index plays
/// in ffprobe exactly like the part itself.
#[tokio::test]
async fn the_index_of_a_real_recording_plays_like_the_part() {
    for fmp4 in [false, true] {
        let clips = tempfile::tempdir().unwrap();
        support::media::hls_clip(clips.path(), 4, fmp4);
        let url = support::media::serve_dir(clips.path().to_path_buf()).await;
        let origin = Origin::start().await;
        let mut b = bench(&origin, "");
        let mut s = spec("studio");
        s.source = SourceSpec::Hls {
            url: format!("{url}/index.m3u8"),
        };
        s.stream_id = None;
        let _handle = b.recorder.start(s);
        let events = b.until_finished().await;
        let parts = finished_parts(&events);
        assert_eq!(parts.len(), 1, "{events:#?}");
        let file = &parts[0].1;
        let index = recbot::archive::index::index_file(file);
        let (whole, indexed) = (
            support::media::duration(file),
            support::media::duration(&index),
        );
        assert!(
            (whole - indexed).abs() <= 0.1,
            "fmp4 {fmp4}: part {whole} s, index {indexed} s"
        );
        assert!((indexed - 4.0).abs() <= 0.2, "fmp4 {fmp4}: {indexed} s");
        assert_eq!(
            support::media::packets(file),
            support::media::packets(&index),
            "fmp4 {fmp4}"
        );
    }
}
