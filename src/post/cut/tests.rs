use std::path::Path;

use super::*;
use crate::archive::index::{entry, header, Entry};

#[test]
fn times_are_read_strictly() {
    assert_eq!(parse_time("01:02:03").unwrap(), 3723.0);
    assert_eq!(parse_time("2:03.5").unwrap(), 123.5);
    assert_eq!(parse_time("90").unwrap(), 90.0);
    assert_eq!(parse_time("0:00:00").unwrap(), 0.0);
    for bad in [
        "",
        ":",
        "1::2",
        "01:60:00",
        "00:00:60",
        "-1",
        "1:2:3:4",
        "1e3",
        "abc",
        ".5",
        "5.",
        "0x10",
        "1:2.5:3",
        " 1",
        "1 ",
        "999999999:00:00",
    ] {
        assert!(parse_time(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_range("00:00:10-00:00:20").unwrap(), (10.0, 20.0));
    assert!(parse_range("00:00:20-00:00:10").is_err());
    assert!(parse_range("00:00:20").is_err());
}

#[test]
fn spans_and_pieces_follow_segment_boundaries() {
    // A span that ends inside a segment keeps it whole.
    let req = Request {
        from: Some(1.5),
        to: Some(7.0),
        remove: vec![(3.2, 4.1)],
        ..Default::default()
    };
    let spans = kept_spans(10.0, &req).unwrap();
    assert_eq!(spans, vec![(1.5, 3.2), (4.1, 7.0)]);
    let pieces = plan(&[1.0; 10], &spans);
    // Segments 1..=3 (1.5 s is inside segment 1, 3.2 inside 3), then 4..=6.
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    assert_eq!((pieces[0].first, pieces[0].last), (1, 6));
    let req = Request {
        remove: vec![(3.0, 5.0)],
        ..Default::default()
    };
    let pieces = plan(&[1.0; 10], &kept_spans(10.0, &req).unwrap());
    assert_eq!(pieces.len(), 2);
    assert_eq!(
        (pieces[0].first, pieces[0].last, pieces[0].end),
        (0, 2, 3.0)
    );
    assert_eq!(
        (pieces[1].first, pieces[1].start, pieces[1].out_start),
        (5, 5.0, 3.0)
    );
    assert_eq!(cut_ms(&pieces, 2_500), Some(2_500));
    assert_eq!(cut_ms(&pieces, 4_000), None);
    assert_eq!(cut_ms(&pieces, 6_250), Some(4_250));
    // Refusals.
    let no = |from, to| Request {
        from,
        to,
        ..Default::default()
    };
    assert!(kept_spans(10.0, &no(Some(5.0), Some(5.0))).is_err());
    assert!(kept_spans(10.0, &no(Some(6.0), Some(5.0))).is_err());
    assert!(kept_spans(10.0, &no(Some(10.0), None)).is_err());
    let all_gone = Request {
        remove: vec![(0.0, 10.0)],
        ..Default::default()
    };
    assert!(kept_spans(10.0, &all_gone).is_err());
}

#[test]
fn chat_lines_move_with_their_piece() {
    let pieces = plan(&[1.0; 10], &[(0.0, 2.0), (5.0, 6.0)]);
    let line = r#"{"offset_ms":9000,"video_ms":5500,"t":"2026-01-01T00:00:00Z","text":"hi"}"#;
    assert_eq!(
        cut_chat_line(&pieces, line).unwrap(),
        r#"{"offset_ms":9000,"video_ms":2500,"t":"2026-01-01T00:00:00Z","text":"hi"}"#
    );
    let cut_out = r#"{"offset_ms":1,"video_ms":3000,"text":"x"}"#;
    assert_eq!(cut_chat_line(&pieces, cut_out), None);
    assert_eq!(cut_chat_line(&pieces, "garbage"), None);
    assert_eq!(
        cut_chat_line(&pieces, r#"{"offset_ms":1,"video_ms":x}"#),
        None
    );
}

/// A finished recording of ten 1 s segments of 100 bytes each (segment n all bytes n).
fn recording(dir: &Path) -> std::path::PathBuf {
    let video = dir.join("rec.ts");
    let bytes: Vec<u8> = (0..10u8).flat_map(|n| vec![n; 100]).collect();
    std::fs::write(&video, bytes).unwrap();
    let mut text = header(1.0);
    for n in 0..10u64 {
        let e = Entry {
            offset: n * 100,
            length: 100,
            duration: 1.0,
            program_date_time: None,
            discontinuity: false,
            init: None,
        };
        entry("rec.ts.part", &e, &mut text);
    }
    let from = dir.join("rec.m3u8");
    std::fs::write(&from, text).unwrap();
    crate::archive::index::finish_blocking(&from, &from, "rec.ts", 1000).unwrap();
    let chat = (0..10)
        .map(|n| {
            format!(
                "{{\"offset_ms\":{0},\"video_ms\":{0},\"n\":{n}}}\n",
                n * 1000 + 500
            )
        })
        .collect::<String>();
    std::fs::write(dir.join("rec.chat.jsonl"), chat).unwrap();
    video
}

#[test]
fn a_copy_holds_the_kept_bytes_and_its_index_and_chat_follow() {
    let dir = tempfile::tempdir().unwrap();
    let video = recording(dir.path());
    let req = Request {
        from: Some(1.0),
        to: Some(6.0),
        remove: vec![(2.0, 4.0)],
        copy: true,
        out: Some("clip".into()),
    };
    let w = cut_blocking(&video, &req).unwrap();
    assert_eq!(w.kept, vec![(1.0, 2.0), (4.0, 6.0)]);
    assert_eq!(w.duration_secs, 3.0);
    let copy = std::fs::read(w.video.as_ref().unwrap()).unwrap();
    let want: Vec<u8> = [1u8, 4, 5].iter().flat_map(|n| vec![*n; 100]).collect();
    assert_eq!(copy, want);
    let p = crate::archive::index::read_blocking(&w.index).unwrap();
    let flags: Vec<bool> = p.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(flags, [false, true, false]);
    assert!(p.segments.iter().all(|s| s.uri == "clip.ts"));
    let chat = std::fs::read_to_string(w.chat.as_ref().unwrap()).unwrap();
    let ms: Vec<&str> = chat
        .lines()
        .map(|l| &l[..l.find(",\"n\"").unwrap()])
        .collect();
    assert_eq!(
        ms,
        [
            "{\"offset_ms\":1500,\"video_ms\":500",
            "{\"offset_ms\":4500,\"video_ms\":1500",
            "{\"offset_ms\":5500,\"video_ms\":2500",
        ]
    );
    // Without --copy: the default name, ranges into the recording.
    let w = cut_blocking(&dir.path().join("rec.m3u8"), &Request::default()).unwrap();
    assert_eq!(w.index, dir.path().join("rec.cut-1.m3u8"));
    let p = crate::archive::index::read_blocking(&w.index).unwrap();
    assert_eq!(p.segments.len(), 10);
    assert!(p.segments.iter().all(|s| s.uri == "rec.ts"));
}

#[test]
fn hostile_requests_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let video = recording(dir.path());
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let out = |name: &str| Request {
        out: Some(name.into()),
        copy: true,
        ..Default::default()
    };
    for (req, why) in [
        (out("../x"), "not a path"),
        (out("a/b"), "not a path"),
        (out(".."), "start with"),
        (out(""), "empty"),
        (out("rec"), "taken"),
        (out("a\"b"), "quotes"),
        (
            Request {
                from: Some(5.0),
                to: Some(2.0),
                ..Default::default()
            },
            "before --to",
        ),
        (
            Request {
                from: Some(50.0),
                ..Default::default()
            },
            "past the recording's end",
        ),
    ] {
        let e = cut_blocking(&video, &req).unwrap_err();
        assert!(format!("{e:#}").contains(why), "{req:?}: {e:#}");
    }
    let e = cut_blocking(&dir.path().join("missing.ts"), &Request::default()).unwrap_err();
    assert!(format!("{e:#}").contains("no recording at"), "{e:#}");
    // An index pointing outside its folder.
    let evil = dir.path().join("evil.m3u8");
    std::fs::write(&evil, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-BYTERANGE:10@0\n#EXTINF:1,\n../rec.ts\n#EXT-X-ENDLIST\n").unwrap();
    let e = cut_blocking(&evil, &Request::default()).unwrap_err();
    assert!(format!("{e:#}").contains("not a file beside it"), "{e:#}");
    std::fs::remove_file(&evil).unwrap();
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(before, after);
}
