//! `recbot cut` on a real recording (an ffmpeg clip written as a part with its index, as the
//! recorder does): the outputs play in ffprobe with the kept duration, a copy decodes, the
//! chat file follows, and hostile arguments are refused with nothing written.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use recbot::archive::index::{entry, finish_blocking, header, Entry};

const BIN: &str = env!("CARGO_BIN_EXE_recbot");

/// A 6 s clip of 1 s segments written as `rec.ts` (segments back to back) with its finished
/// index and a chat file of one line per second; returns the video and segment durations.
fn recording(dir: &Path, fmp4: bool) -> (PathBuf, Vec<f64>) {
    let clip = dir.join("clip");
    let playlist = support::media::hls_clip(&clip, 6, fmp4);
    let source = m3u8_rs::parse_media_playlist_res(&std::fs::read(&playlist).unwrap()).unwrap();
    let name = if fmp4 { "rec.mp4" } else { "rec.ts" };
    let mut data = Vec::new();
    let mut text = header(1.0);
    let mut init = source
        .segments
        .first()
        .and_then(|s| s.map.as_ref())
        .map(|m| std::fs::read(clip.join(&m.uri)).unwrap());
    let mut durations = Vec::new();
    for seg in &source.segments {
        let placed_init = init.take().map(|bytes| {
            data.extend_from_slice(&bytes);
            (0, bytes.len() as u64)
        });
        let bytes = std::fs::read(clip.join(&seg.uri)).unwrap();
        let e = Entry {
            offset: data.len() as u64,
            length: bytes.len() as u64,
            duration: seg.duration as f64,
            program_date_time: None,
            discontinuity: false,
            init: placed_init,
        };
        entry(&format!("{name}.part"), &e, &mut text);
        data.extend_from_slice(&bytes);
        durations.push(seg.duration as f64);
    }
    let video = dir.join(name);
    std::fs::write(&video, &data).unwrap();
    let index = dir.join("rec.m3u8");
    std::fs::write(&index, text).unwrap();
    finish_blocking(&index, &index, name, data.len() as u64).unwrap();
    let chat: String = (0..6)
        .map(|s| {
            format!(
                "{{\"offset_ms\":{0},\"video_ms\":{0},\"text\":\"s{s}\"}}\n",
                s * 1000 + 500
            )
        })
        .collect();
    std::fs::write(dir.join("rec.chat.jsonl"), chat).unwrap();
    std::fs::remove_dir_all(&clip).unwrap();
    (video, durations)
}

fn cut(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("cut").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    all.sort();
    all
}

#[test]
fn a_cut_plays_with_the_kept_duration_and_a_copy_decodes() {
    for fmp4 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (video, durations) = recording(dir.path(), fmp4);
        let whole = support::media::duration(&dir.path().join("rec.m3u8"));
        assert!((whole - 6.0).abs() <= 0.1, "{whole}");
        // Keep 1..5 s without 2..3 s: segments 1, 3 and 4.
        let kept: f64 = [1, 3, 4].iter().map(|n| durations[*n]).sum();
        let (ok, stdout, stderr) = cut(&[
            video.to_str().unwrap(),
            "--from",
            "00:00:01",
            "--to",
            "00:00:05",
            "--remove",
            "00:00:02-00:00:03",
            "--out",
            "part one",
        ]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("at segment boundaries"), "{stdout}");
        assert!(
            stdout.contains("0:00:01-0:00:02, 0:00:03-0:00:05"),
            "{stdout}"
        );
        let index = dir.path().join("part one.m3u8");
        let played = support::media::duration(&index);
        assert!(
            (played - kept).abs() <= 0.1,
            "fmp4 {fmp4}: {played} s, want {kept}"
        );
        assert!(support::media::decodes(&index), "fmp4 {fmp4}");
        let chat = std::fs::read_to_string(dir.path().join("part one.chat.jsonl")).unwrap();
        let texts: Vec<&str> = chat.lines().collect();
        assert_eq!(texts.len(), 3, "{chat}");
        assert!(
            texts[0].starts_with("{\"offset_ms\":1500,\"video_ms\":500,"),
            "{chat}"
        );
        assert!(
            texts[1].starts_with("{\"offset_ms\":3500,\"video_ms\":1500,"),
            "{chat}"
        );

        // --copy, from the index's path: a file of its own that decodes.
        let (ok, stdout, stderr) = cut(&[
            dir.path().join("rec.m3u8").to_str().unwrap(),
            "--from",
            "0:04",
            "--copy",
        ]);
        assert!(ok, "{stderr}");
        let ext = if fmp4 { "mp4" } else { "ts" };
        let copy = dir.path().join(format!("rec.cut-1.{ext}"));
        assert!(stdout.contains(copy.to_str().unwrap()), "{stdout}");
        assert!(support::media::decodes(&copy), "fmp4 {fmp4}");
        let want: f64 = durations[4..].iter().sum();
        let copy_index = dir.path().join("rec.cut-1.m3u8");
        let played = support::media::duration(&copy_index);
        assert!((played - want).abs() <= 0.1, "fmp4 {fmp4}: {played} s");
        assert_eq!(
            support::media::packets(&copy),
            support::media::packets(&copy_index),
            "fmp4 {fmp4}"
        );
        if !fmp4 {
            // (An fMP4 file's duration counts from the broadcast's start, not its own.)
            let copied = support::media::duration(&copy);
            assert!((copied - want).abs() <= 0.15, "{copied} s, want {want}");
        }
        let text = std::fs::read_to_string(&copy_index).unwrap();
        assert!(!text.contains(&format!("rec.{ext}")), "{text}");
    }
}

#[test]
fn hostile_arguments_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (video, _) = recording(dir.path(), false);
    let video = video.to_str().unwrap();
    let before = files(dir.path());
    for (args, why) in [
        (
            vec![video, "--from", "00:00:04", "--to", "00:00:02"],
            "before --to",
        ),
        (
            vec![video, "--from", "00:00:04", "--to", "00:00:04"],
            "before --to",
        ),
        (vec![video, "--from", "1:2:3:4"], "not a time"),
        (vec![video, "--from", "00:61:00"], "not a time"),
        (
            vec![video, "--remove", "00:00:03-00:00:01"],
            "ends before it starts",
        ),
        (vec![video, "--out", "../escape"], "not a path"),
        (vec![video, "--out", "a/b"], "not a path"),
        (vec![video, "--out", ".."], "must not start with"),
        (vec![video, "--out", ""], "empty"),
        (vec![video, "--out", "rec"], "taken"),
        (
            vec![video, "--from", "00:10:00"],
            "past the recording's end",
        ),
    ] {
        let (ok, _, stderr) = cut(&args);
        assert!(!ok, "{args:?} was accepted");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    let missing = dir.path().join("missing.ts");
    let (ok, _, stderr) = cut(&[missing.to_str().unwrap()]);
    assert!(!ok && stderr.contains("no recording at"), "{stderr}");
    assert_eq!(files(dir.path()), before);
}
