//! The HLS index beside a recording, `<name>.m3u8` ([`index_file`]): the part's segments as
//! `#EXT-X-BYTERANGE`s into the part file, so any HLS player can play and seek a recording,
//! even one in progress.
//!
//! While the part is written the index is an `EVENT` playlist pointing at the `.part` file:
//! [`header`] when the part opens, then one [`entry`] appended after each whole segment (the
//! writer appends it after the segment's bytes, in the same trip to the blocking pool, and
//! fsyncs it with the data). When the part is finished — or recovered after a crash — the
//! index is rewritten once ([`finish_blocking`]: `.recbot-tmp`, fsync, rename) as a `VOD`
//! playlist with `#EXT-X-ENDLIST`, pointing at the final name, keeping only the entries whose
//! bytes the file holds. Everything is written with m3u8-rs; the index is parsed back with it
//! ([`read_blocking`], also used by `recbot cut`).
//!
//! The index is a convenience: none of its failures stops or changes a recording.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use m3u8_rs::{ByteRange, Map, MediaPlaylist, MediaPlaylistType, MediaSegment};

use super::files::finalize_file;
pub use super::layout::index_file;
use super::layout::temp_path_of;

/// `EXT-X-VERSION`: byte ranges need 4, `EXT-X-MAP` in a media playlist 6.
const VERSION: usize = 6;

/// An index larger than this is not read (a recording's is a few MB at most: ~100 bytes per
/// segment, 12 h of 2 s segments ≈ 2 MB).
pub const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// The header m3u8-rs writes before the segments of a playlist with nothing else set: cut off
/// an [`entry`] written through a one-segment playlist.
const BARE_HEADER: &[u8] = b"#EXTM3U\n#EXT-X-TARGETDURATION:0\n";

/// One segment written to the part.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where the segment's bytes start in the part, and how many.
    pub offset: u64,
    pub length: u64,
    pub duration: f64,
    /// The segment's own program date-time, when the source gave one.
    pub program_date_time: Option<DateTime<Utc>>,
    /// Playback does not continue smoothly from the entry before (the source said so, or an
    /// ad break was cut out or a gap occurred in between).
    pub discontinuity: bool,
    /// The init segment (fMP4) written just before this segment, as (offset, length): given
    /// with the part's first entry (a part holds one init segment, at its start).
    pub init: Option<(u64, u64)>,
}

/// The target duration written for segments of at most `longest` seconds (whole seconds, at
/// least 1, as the EXTINF rounding rule needs).
pub fn target_duration(longest: f64) -> u64 {
    if longest.is_finite() && longest > 1.0 {
        longest.ceil().min(u32::MAX as f64) as u64
    } else {
        1
    }
}

/// The `EVENT` header of a part's index while it is recorded; `target_secs` from the source
/// playlist (corrected by [`finish_blocking`] from the segments themselves).
pub fn header(target_secs: f64) -> Vec<u8> {
    let playlist = MediaPlaylist {
        version: Some(VERSION),
        target_duration: target_duration(target_secs),
        playlist_type: Some(MediaPlaylistType::Event),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(128);
    // Writing to a Vec cannot fail.
    let _ = playlist.write_to(&mut out);
    out
}

/// Appends `entry`'s lines (`#EXT-X-MAP`, `#EXT-X-BYTERANGE`, `#EXT-X-DISCONTINUITY`,
/// `#EXT-X-PROGRAM-DATE-TIME`, `#EXTINF`, the URI) to `out`, `uri` naming the part file.
/// m3u8-rs writes segments only as part of a playlist, so this writes a one-segment playlist
/// and keeps its segment.
pub fn entry(uri: &str, entry: &Entry, out: &mut Vec<u8>) {
    let playlist = MediaPlaylist {
        segments: vec![segment(uri, entry)],
        ..Default::default()
    };
    let start = out.len();
    let _ = playlist.write_to(out);
    if out[start..].starts_with(BARE_HEADER) {
        out.drain(start..start + BARE_HEADER.len());
    }
}

fn segment(uri: &str, e: &Entry) -> MediaSegment {
    MediaSegment {
        uri: uri.to_string(),
        duration: e.duration as f32,
        byte_range: Some(ByteRange {
            length: e.length,
            offset: Some(e.offset),
        }),
        discontinuity: e.discontinuity,
        map: e.init.map(|(offset, length)| Map {
            uri: uri.to_string(),
            byte_range: Some(ByteRange {
                length,
                offset: Some(offset),
            }),
            ..Default::default()
        }),
        program_date_time: e.program_date_time.map(|t| t.fixed_offset()),
        ..Default::default()
    }
}

/// Whether `name` can stand as a URI in an index as it is (players take a relative URI as a
/// file name; quotes and control characters would break the playlist's syntax).
pub fn usable_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() || c == '"')
}

/// Creates `path` with `header` (blocking), replacing a stale file of that name: the index is
/// named after a part whose own name was free.
pub fn create_blocking(path: &Path, header: &[u8]) -> io::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(header)?;
    Ok(file)
}

/// Reads and parses the index at `path` (blocking). A torn last entry (a crash while it was
/// appended) is left out; anything else unreadable is an error.
pub fn read_blocking(path: &Path) -> io::Result<MediaPlaylist> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_INDEX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the index is larger than {MAX_INDEX_BYTES} bytes"),
        ));
    }
    parse(&std::fs::read(path)?)
}

/// [`read_blocking`]'s parsing.
pub fn parse(bytes: &[u8]) -> io::Result<MediaPlaylist> {
    let whole = complete_entries(bytes);
    m3u8_rs::parse_media_playlist_res(whole)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not an HLS index: {e}")))
}

/// `bytes` up to the end of its last complete line that is a URI (so up to its last whole
/// entry), or all of it when it has no such line (a header alone); a finished index (ending
/// in `#EXT-X-ENDLIST`) whole.
fn complete_entries(bytes: &[u8]) -> &[u8] {
    if bytes.trim_ascii_end().ends_with(b"#EXT-X-ENDLIST") {
        return bytes;
    }
    let mut end = None;
    let mut start = 0;
    while let Some(n) = bytes[start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[start..start + n];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() && !line.starts_with(b"#") {
            end = Some(start + n + 1);
        }
        start += n + 1;
    }
    match end {
        Some(end) => &bytes[..end],
        None => &bytes[..start],
    }
}

/// What [`finish_blocking`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub path: PathBuf,
    pub segments: usize,
    /// Entries left out: their bytes are not (all) in the file.
    pub dropped: usize,
}

/// Rewrites the index at `from` as a finished (`VOD`, `#EXT-X-ENDLIST`) index at `to`, every
/// URI naming `video` (the part's final file name), keeping the entries whose bytes lie within
/// the file's first `len` bytes (blocking; `.recbot-tmp`, fsync, rename; `from` removed when
/// it is another file). An index with no such entry is removed and is an error.
pub fn finish_blocking(from: &Path, to: &Path, video: &str, len: u64) -> io::Result<Finished> {
    let mut playlist = read_blocking(from)?;
    let total = playlist.segments.len();
    let mut map: Option<Map> = None;
    let mut kept = Vec::with_capacity(total);
    for mut seg in playlist.segments.drain(..) {
        if seg.map.is_some() {
            map = seg.map.clone();
        }
        let inside = |r: &Option<ByteRange>| {
            r.as_ref()
                .and_then(|r| r.offset.map(|o| o.saturating_add(r.length) <= len))
                .unwrap_or(false)
        };
        let map_inside = map
            .as_ref()
            .is_none_or(|m| m.byte_range.is_none() || inside(&m.byte_range));
        if !inside(&seg.byte_range) || !map_inside {
            break;
        }
        seg.uri = video.to_string();
        if let Some(m) = seg.map.as_mut() {
            m.uri = video.to_string();
        }
        kept.push(seg);
    }
    if kept.is_empty() {
        let _ = std::fs::remove_file(from);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the index lists no segment the file holds",
        ));
    }
    let longest = kept.iter().map(|s| s.duration as f64).fold(0.0, f64::max);
    playlist.segments = kept;
    playlist.version = Some(VERSION);
    playlist.target_duration = target_duration(longest);
    playlist.playlist_type = Some(MediaPlaylistType::Vod);
    playlist.end_list = true;
    write_durably(to, &playlist)?;
    if from != to {
        let _ = std::fs::remove_file(from);
    }
    Ok(Finished {
        path: to.to_path_buf(),
        segments: playlist.segments.len(),
        dropped: total - playlist.segments.len(),
    })
}

/// Writes `playlist` to `path` through its `.recbot-tmp`, fsynced, renamed (blocking).
pub fn write_durably(path: &Path, playlist: &MediaPlaylist) -> io::Result<()> {
    let tmp = temp_path_of(path);
    let result = (|| {
        let mut file = io::BufWriter::new(File::create(&tmp)?);
        playlist.write_to(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        finalize_file(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(offset: u64, length: u64, discontinuity: bool, init: Option<(u64, u64)>) -> Entry {
        Entry {
            offset,
            length,
            duration: 2.002,
            program_date_time: Some("2026-12-03T10:00:00.5Z".parse().unwrap()),
            discontinuity,
            init,
        }
    }

    #[test]
    fn entries_are_what_m3u8_rs_writes_and_parse_back() {
        let mut text = header(2.0);
        entry("a.mp4.part", &e(100, 900, false, Some((0, 100))), &mut text);
        entry("a.mp4.part", &e(1000, 500, true, None), &mut text);
        let s = String::from_utf8(text.clone()).unwrap();
        assert!(s.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"), "{s}");
        assert!(s.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{s}");
        assert!(
            s.contains("#EXT-X-MAP:URI=\"a.mp4.part\",BYTERANGE=\"100@0\"\n"),
            "{s}"
        );
        assert!(s.contains("#EXT-X-BYTERANGE:900@100\n"), "{s}");
        assert!(s.contains("#EXT-X-BYTERANGE:500@1000\n#EXT-X-DISCONTINUITY\n"));
        assert!(s.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:00.500Z\n"));
        assert_eq!(s.matches("#EXTM3U").count(), 1);
        let p = parse(&text).unwrap();
        assert_eq!(p.segments.len(), 2);
        assert_eq!(
            p.segments[1].byte_range.as_ref().unwrap().offset,
            Some(1000)
        );
        assert!(p.segments[1].discontinuity && !p.segments[0].discontinuity);
        assert!(!p.end_list);
    }

    #[test]
    fn a_torn_last_entry_is_left_out() {
        let mut text = header(2.0);
        entry("a.ts.part", &e(0, 10, false, None), &mut text);
        let whole = text.len();
        entry("a.ts.part", &e(10, 10, false, None), &mut text);
        for cut in whole..text.len() {
            let p = parse(&text[..cut]).unwrap();
            assert_eq!(p.segments.len(), 1, "cut at {cut}");
        }
        assert_eq!(parse(&text).unwrap().segments.len(), 2);
        assert!(parse(&header(2.0)).unwrap().segments.is_empty());
        assert!(parse(b"garbage\n").is_err());
    }

    #[test]
    fn finishing_keeps_what_the_file_holds_and_names_the_final_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.m3u8");
        let mut text = header(2.0);
        entry("a.mp4.part", &e(100, 900, false, Some((0, 100))), &mut text);
        let mut long = e(1000, 500, false, None);
        long.duration = 4.2;
        entry("a.mp4.part", &long, &mut text);
        entry("a.mp4.part", &e(1500, 500, false, None), &mut text);
        std::fs::write(&from, &text).unwrap();
        let to = dir.path().join("a (2).m3u8");
        let done = finish_blocking(&from, &to, "a (2).mp4", 1600).unwrap();
        assert_eq!((done.segments, done.dropped), (2, 1));
        assert!(!from.exists());
        let s = std::fs::read_to_string(&to).unwrap();
        assert!(s.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{s}");
        assert!(s.ends_with("#EXT-X-ENDLIST\n"), "{s}");
        assert!(s.contains("#EXT-X-TARGETDURATION:5\n"), "{s}");
        assert!(s.contains("URI=\"a (2).mp4\""), "{s}");
        assert!(!s.contains(".part"), "{s}");
        // Nothing whole: the index goes.
        std::fs::write(&from, &text).unwrap();
        assert!(finish_blocking(&from, &from, "a.mp4", 50).is_err());
        assert!(!from.exists());
        assert!(!temp_path_of(&to).exists());
    }

    #[test]
    fn names_with_quotes_or_controls_are_not_used() {
        assert!(usable_name("2026-01-01_a title (2).ts"));
        assert!(!usable_name("a\"b.ts") && !usable_name("a\nb.ts") && !usable_name(""));
        assert_eq!(target_duration(2.0), 2);
        assert_eq!(target_duration(2.002), 3);
        assert_eq!(target_duration(f64::NAN), 1);
    }
}
