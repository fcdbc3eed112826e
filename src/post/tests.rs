//! Post-processing against the real ffmpeg and ffprobe (installed by `.ci/run` when missing) on
//! tiny generated clips: 160×90, a sine tone, a couple of seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::ffmpeg::probe;
use super::job::{run, PostInput};
use super::Progress;
use crate::archive::layout::temp_path_of;
use crate::archive::sidecar::{Chapter, Sidecar};
use crate::config::{PostMode, Postprocess, RateControl};

/// A clip of `secs` seconds: MPEG-TS (starting at ffmpeg's usual 1.4 s), or fragmented MP4
/// that starts 2 s in, as Twitch's fMP4 starts at the broadcast's offset (HLS fMP4 segments
/// of 1 s, the init segment and the segments from the third on put together, as the recorder
/// writes them).
fn clip(dir: &Path, name: &str, secs: u32, fmp4: bool) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &(secs + if fmp4 { 2 } else { 0 }).to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-b:a", "64k"]);
    let hls = dir.join("hls");
    if fmp4 {
        std::fs::create_dir_all(&hls).unwrap();
        cmd.args(["-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4"])
            .args(["-hls_playlist_type", "vod"])
            .arg(hls.join("s.m3u8"));
    } else {
        cmd.args(["-f", "mpegts"]).arg(&out);
    }
    let status = cmd.status().expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg made no test clip");
    if fmp4 {
        let mut bytes = std::fs::read(hls.join("init.mp4")).unwrap();
        for n in 2..secs + 2 {
            bytes.extend(std::fs::read(hls.join(format!("s{n}.m4s"))).unwrap());
        }
        std::fs::write(&out, bytes).unwrap();
    }
    out
}

async fn sidecar(video: &Path, secs: f64, chapters: Vec<Chapter>) -> PathBuf {
    let path = Sidecar::path_for(video);
    let s = Sidecar {
        duration_secs: secs,
        chapters,
        file: video.file_name().unwrap().to_string_lossy().into(),
        ..Sidecar::default()
    };
    s.write(&path).await.unwrap();
    path
}

fn chapter(offset_secs: f64, title: &str) -> Chapter {
    Chapter {
        at: Utc::now(),
        offset_secs,
        title: title.into(),
        game: Some("Just Chatting".into()),
    }
}

fn settings(mode: PostMode) -> Postprocess {
    Postprocess {
        mode,
        preset: "ultrafast".into(),
        bitrate_kbps: 300,
        ..Postprocess::default()
    }
}

async fn post(
    settings: &Postprocess,
    video: &Path,
    sidecar: Option<PathBuf>,
) -> (Result<super::PostDone, super::RunFailure>, Vec<Progress>) {
    let mut seen = Vec::new();
    let input = PostInput {
        video: video.to_path_buf(),
        sidecar,
    };
    let done = run(settings, &input, &CancellationToken::new(), |p| {
        seen.push(p)
    })
    .await;
    (done, seen)
}

#[tokio::test]
async fn a_ts_part_is_remuxed_to_a_faststart_mp4_from_zero_with_chapters() {
    let dir = tempfile::tempdir().unwrap();
    let ts = clip(dir.path(), "part.ts", 3, false);
    let side = sidecar(
        &ts,
        3.0,
        vec![chapter(0.0, "first"), chapter(1.5, "second")],
    )
    .await;
    let before = probe(Path::new("ffprobe"), &ts).await.unwrap();
    assert!(before.start_secs > 1.0, "the TS starts late: {before:?}");

    let (done, seen) = post(&settings(PostMode::Remux), &ts, Some(side)).await;
    let done = done.unwrap();
    assert_eq!(done.output, dir.path().join("part.mp4"));
    assert!(ts.exists(), "keep_original = true keeps the part");
    assert!(!done.original_removed);
    assert!(!temp_path_of(&done.output).exists());
    let after = probe(Path::new("ffprobe"), &done.output).await.unwrap();
    assert!(after.start_secs.abs() < 0.1, "starts at 0: {after:?}");
    assert!((after.duration_secs - 3.0).abs() < 0.2, "{after:?}");
    assert_eq!(after.chapters, 2);
    assert_eq!(done.bytes, std::fs::metadata(&done.output).unwrap().len());
    assert!(
        seen.last().is_some_and(|p| p.end),
        "progress ends: {seen:?}"
    );
    // +faststart: the index (moov) comes before the media (mdat).
    let bytes = std::fs::read(&done.output).unwrap();
    let at = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(at(b"moov") < at(b"mdat"));
}

#[tokio::test]
async fn an_fmp4_part_starting_at_the_broadcast_offset_is_remuxed_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = clip(dir.path(), "part.mp4", 2, true);
    let before = probe(Path::new("ffprobe"), &mp4).await.unwrap();
    assert!(before.start_secs >= 1.9, "{before:?}");
    let side = sidecar(&mp4, 2.0, Vec::new()).await;
    let removing = Postprocess {
        keep_original: false,
        ..settings(PostMode::Remux)
    };
    let done = post(&removing, &mp4, Some(side)).await.0.unwrap();
    assert_eq!(done.output, dir.path().join("part.post.mp4"));
    assert!(done.original_removed && !mp4.exists());
    let after = probe(Path::new("ffprobe"), &done.output).await.unwrap();
    assert!(after.start_secs.abs() < 0.1, "{after:?}");
    assert!((after.duration_secs - 2.0).abs() < 0.2, "{after:?}");
    assert_eq!(after.chapters, 0);
}

#[tokio::test]
async fn every_rate_control_transcodes() {
    let dir = tempfile::tempdir().unwrap();
    let ts = clip(dir.path(), "part.ts", 2, false);
    for rc in [
        RateControl::Crf,
        RateControl::Cq,
        RateControl::Abr,
        RateControl::Vbr,
        RateControl::Cbr,
    ] {
        let s = Postprocess {
            rate_control: rc,
            ..settings(PostMode::Transcode)
        };
        let done = post(&s, &ts, None)
            .await
            .0
            .unwrap_or_else(|f| panic!("{rc:?}: {f:?}"));
        let after = probe(Path::new("ffprobe"), &done.output).await.unwrap();
        assert!((after.duration_secs - 2.0).abs() < 0.2, "{rc:?}: {after:?}");
        std::fs::remove_file(&done.output).unwrap();
    }
}

#[tokio::test]
async fn an_output_of_the_wrong_length_is_refused_and_the_part_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ts = clip(dir.path(), "part.ts", 2, false);
    // The sidecar says the recording lasts 9 s: a 2 s output cannot be it.
    let side = sidecar(&ts, 9.0, Vec::new()).await;
    let removing = Postprocess {
        keep_original: false,
        ..settings(PostMode::Remux)
    };
    let failed = post(&removing, &ts, Some(side)).await.0.unwrap_err();
    assert!(
        failed.why.contains("lasts 2.0 s but the recording 9.0 s"),
        "{failed:?}"
    );
    assert!(ts.exists(), "never removed unverified");
    let output = dir.path().join("part.mp4");
    assert!(!output.exists() && !temp_path_of(&output).exists());
}

#[tokio::test]
async fn a_run_cut_short_starts_over_into_its_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let ts = clip(dir.path(), "part.ts", 2, false);
    // What a killed ffmpeg left behind.
    let output = dir.path().join("part.mp4");
    std::fs::write(temp_path_of(&output), b"half an mp4").unwrap();
    let done = post(&settings(PostMode::Remux), &ts, None).await.0.unwrap();
    let after = probe(Path::new("ffprobe"), &done.output).await.unwrap();
    assert!((after.duration_secs - 2.0).abs() < 0.2, "{after:?}");
    assert!(!temp_path_of(&output).exists());
}

#[tokio::test]
async fn ffmpeg_errors_come_back_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("part.ts");
    std::fs::write(&bad, b"not a video at all").unwrap();
    // No sidecar: the expected duration comes from ffprobe, which cannot read it.
    let failed = post(&settings(PostMode::Remux), &bad, None)
        .await
        .0
        .unwrap_err();
    assert!(
        failed.why.contains("cannot read the recording"),
        "{failed:?}"
    );
    let side = sidecar(&bad, 2.0, Vec::new()).await;
    let failed = post(&settings(PostMode::Remux), &bad, Some(side))
        .await
        .0
        .unwrap_err();
    assert!(failed.why.starts_with("ffmpeg exited with"), "{failed:?}");
    assert!(
        !failed.stderr.is_empty() && failed.stderr.len() <= 10,
        "{failed:?}"
    );
    let missing = Postprocess {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..settings(PostMode::Remux)
    };
    let failed = post(&missing, &bad, Some(Sidecar::path_for(&bad)))
        .await
        .0
        .unwrap_err();
    assert!(
        failed.why.contains("cannot run `/nonexistent/ffmpeg`"),
        "{failed:?}"
    );
    assert!(bad.exists());
}
