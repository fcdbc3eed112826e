use std::io::Write;

use super::*;

fn lines(range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .map(|i| format!("{{\"recv_ms\":{i},\"raw\":\"line {i} of a chat log\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Frames of lines 0..10, 10..20, 20..30 (latest times 9, 19, 29), with their marks.
fn three_frames() -> (Vec<u8>, Vec<u64>) {
    let mut encoder = Encoder::new(3).unwrap();
    let mut file = Vec::new();
    let mut starts = Vec::new();
    for k in 0..3 {
        starts.push(file.len() as u64);
        let start = file.len() as u64;
        let mut out = Vec::new();
        encoder
            .frame(
                &lines(k * 10..k * 10 + 10),
                start,
                k as i64 * 10 + 9,
                &mut out,
            )
            .unwrap();
        file.extend_from_slice(&out);
    }
    (file, starts)
}

/// Every line of `bytes` the walker hands out, and the steps.
fn walk(bytes: &[u8]) -> (Vec<u8>, Vec<Step>) {
    let mut walker = Walker::new(bytes, 0).unwrap();
    let (mut all, mut steps, mut out) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(step) = walker.next(&mut out).unwrap() {
        if let Step::Frame { .. } = step {
            all.extend_from_slice(&out);
        }
        steps.push(step);
    }
    (all, steps)
}

fn file_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl.zst");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    let file = File::open(&path).unwrap();
    (dir, file)
}

#[test]
fn plain_zstd_reads_the_file() {
    let (bytes, _) = three_frames();
    // Any zstd decoder (as `zstdcat` does) reads frames and skips the marks.
    assert_eq!(zstd::stream::decode_all(&bytes[..]).unwrap(), lines(0..30));
}

#[test]
fn a_cut_at_every_byte_of_the_last_frame_reads_every_whole_frame_before_it() {
    let (bytes, starts) = three_frames();
    let last = starts[2] as usize;
    let frame_end = bytes.len() - MARK_LEN;
    for cut in last..=bytes.len() {
        let (read, steps) = walk(&bytes[..cut]);
        let whole = cut >= frame_end;
        let expected = if whole { lines(0..30) } else { lines(0..20) };
        assert_eq!(read, expected, "cut at {cut}");
        assert!(
            !steps.iter().any(|s| matches!(s, Step::Damaged { .. })),
            "a cut tail is not damage: {cut} {steps:?}"
        );
        let (_dir, file) = file_of(&bytes[..cut]);
        let at_a_mark = cut == bytes.len() || cut == last;
        assert_eq!(ends_whole(&file, cut as u64).unwrap(), at_a_mark, "{cut}");
        let sound = sound_end(&file).unwrap();
        match cut {
            c if c == bytes.len() => assert_eq!(
                sound,
                Sound {
                    end: c as u64,
                    unmarked: None
                }
            ),
            c if c >= frame_end => assert_eq!(
                sound,
                Sound {
                    end: frame_end as u64,
                    unmarked: Some(starts[2])
                },
                "{c}"
            ),
            c => assert_eq!(
                sound,
                Sound {
                    end: last as u64,
                    unmarked: None
                },
                "{c}"
            ),
        }
    }
}

#[test]
fn damage_in_the_middle_is_reported_and_the_rest_is_read() {
    let (mut bytes, starts) = three_frames();
    // Garbage over the middle frame's body (its magic stays, its checksum fails).
    let middle = starts[1] as usize + 12;
    for b in &mut bytes[middle..middle + 8] {
        *b ^= 0x5a;
    }
    let (read, steps) = walk(&bytes);
    assert!(
        steps.iter().any(|s| matches!(s, Step::Damaged { .. })),
        "{steps:?}"
    );
    let mut expected = lines(0..10);
    expected.extend_from_slice(&lines(20..30));
    assert_eq!(read, expected);
}

#[test]
fn seeking_by_time_starts_after_the_frames_that_are_all_older() {
    let (bytes, starts) = three_frames();
    let (_dir, file) = file_of(&bytes);
    let len = bytes.len() as u64;
    let frame1_end = starts[1];
    // Times are ms here; the slack is a minute, so shift "since" by it.
    assert_eq!(seek(&file, len, 0).unwrap(), 0);
    assert_eq!(
        seek(&file, len, SEEK_SLACK_MS + 9).unwrap(),
        0,
        "frame 0 holds 9"
    );
    assert_eq!(seek(&file, len, SEEK_SLACK_MS + 10).unwrap(), frame1_end);
    assert_eq!(seek(&file, len, SEEK_SLACK_MS + 30).unwrap(), len);
    // What is read from there is the later frames, whole.
    let (read, _) = walk(&bytes[frame1_end as usize..]);
    assert_eq!(read, lines(10..30));
    // A file without marks (or a cut one) is read from the start.
    let (_dir2, cut) = file_of(&bytes[..bytes.len() - 1]);
    assert_eq!(seek(&cut, len - 1, SEEK_SLACK_MS + 30).unwrap(), 0);
}

#[test]
fn a_frame_cut_short_in_the_middle_is_damage_not_the_end() {
    let (bytes, starts) = three_frames();
    // The middle frame loses its last 5 bytes (its size no longer adds up); what follows it
    // is read, and the loss is reported.
    let cut_end = (starts[2] as usize) - MARK_LEN - 5;
    let mut damaged = bytes[..cut_end].to_vec();
    damaged.extend_from_slice(&bytes[starts[2] as usize - MARK_LEN..]);
    let (read, steps) = walk(&damaged);
    assert!(
        steps.iter().any(|s| matches!(s, Step::Damaged { .. })),
        "{steps:?}"
    );
    let mut expected = lines(0..10);
    expected.extend_from_slice(&lines(20..30));
    assert_eq!(read, expected);
}
