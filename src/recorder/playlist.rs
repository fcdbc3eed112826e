//! Media playlists as the recorder needs them: parsed with m3u8-rs, plus a raw line scan for
//! what m3u8-rs drops on Twitch playlists (every `EXT-X-DATERANGE` — it keeps one per segment —
//! and the trailing `EXT-X-TWITCH-PREFETCH` lines), with each segment's media sequence number,
//! effective init map (`EXT-X-MAP`) and ad classification resolved. Pure: no I/O.

use chrono::{DateTime, TimeDelta, Utc};

/// Longest segment or target duration taken at face value, in seconds. Longer (or non-finite,
/// or negative) `EXTINF` values are replaced by the target duration: they come from broken or
/// hostile playlists, and would poison durations in sidecars and events.
pub const MAX_SEGMENT_SECS: f64 = 3600.0;
/// Longest `EXT-X-DATERANGE` duration believed (a week); longer ones are ignored.
const MAX_DATERANGE_SECS: f64 = 7.0 * 86400.0;
/// Biggest playlist accepted (bytes): Twitch's are a few KiB; a server sending more is broken.
pub const MAX_PLAYLIST_BYTES: usize = 4 * 1024 * 1024;
/// Longest playlist line accepted (bytes). Signed segment addresses and Twitch's date ranges
/// are at most a few KiB; a longer line is garbage, and would cost every parse.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most renditions (`EXT-X-STREAM-INF`) and alternative media (`EXT-X-MEDIA`) entries a master
/// playlist may list: real ones have a handful (Twitch about 6–10).
pub const MAX_MASTER_ENTRIES: usize = 1000;

/// A media playlist, reduced to what recording needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION` in seconds.
    pub target_duration: f64,
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    /// `EXT-X-ENDLIST`: no segment will be added.
    pub end_list: bool,
    /// `EXT-X-TWITCH-PREFETCH` addresses (upcoming segments; not recorded, see protocols §1.5).
    pub prefetch: Vec<String>,
    /// Every `EXT-X-DATERANGE`, in playlist order.
    pub dateranges: Vec<DateRange>,
    /// `EXT-X-TWITCH-ELAPSED-SECS`: seconds from the broadcast's start to the first listed
    /// segment (Twitch live playlists; absent elsewhere).
    pub elapsed_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `EXT-X-MEDIA-SEQUENCE` + index.
    pub sequence: u64,
    pub uri: String,
    pub duration: f64,
    pub title: Option<String>,
    pub discontinuity: bool,
    /// The init segment in force for this segment (fMP4), if any.
    pub map: Option<InitMap>,
    pub byte_range: Option<ByteRange>,
    pub program_date_time: Option<DateTime<Utc>>,
    /// A stitched-in advertisement (skipped when recording).
    pub ad: bool,
    /// Seconds from the broadcast's start to this segment's start: the playlist's
    /// `EXT-X-TWITCH-ELAPSED-SECS` plus the durations listed before it (ads included: they
    /// stand in for broadcast time). Where a VOD of the broadcast has this media.
    pub elapsed: Option<f64>,
}

/// An `EXT-X-MAP`: the fMP4 initialization segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitMap {
    pub uri: String,
    pub byte_range: Option<ByteRange>,
}

/// A resolved byte range: `length` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

impl ByteRange {
    /// The HTTP `Range` header value.
    pub fn header(&self) -> String {
        format!(
            "bytes={}-{}",
            self.offset,
            self.offset.saturating_add(self.length.saturating_sub(1))
        )
    }
}

/// One `EXT-X-DATERANGE` as written (attribute values unquoted).
#[derive(Debug, Clone, PartialEq)]
pub struct DateRange {
    pub id: Option<String>,
    pub class: Option<String>,
    pub start: Option<DateTime<Utc>>,
    /// `END-DATE`, else `START-DATE` + `DURATION`, else + `PLANNED-DURATION`; `None` = open.
    pub end: Option<DateTime<Utc>>,
    pub attributes: Vec<(String, String)>,
}

impl DateRange {
    /// Twitch marks stitched ads with this class or an id prefix (streamlink `_is_daterange_ad`).
    pub fn is_ad(&self) -> bool {
        self.class.as_deref() == Some("twitch-stitched-ad")
            || self
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with("stitched-ad-"))
    }

    /// One attribute's value; nothing outside the tests reads single attributes yet.
    #[cfg(test)]
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The reference meaning of one range (the index below must agree with it).
    #[cfg(test)]
    fn contains(&self, at: DateTime<Utc>) -> bool {
        match self.start {
            Some(start) if at >= start => self.end.is_none_or(|end| at < end),
            _ => false,
        }
    }
}

/// When stitched ads run: the union of the ad date ranges as sorted, disjoint half-open
/// intervals (`None` end: open), so classifying a segment is a binary search rather than a
/// scan of every date range — a playlist with many segments and many ranges stays
/// O((segments + ranges) · log ranges).
struct AdTimes {
    runs: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl AdTimes {
    fn new(dateranges: &[DateRange]) -> AdTimes {
        let mut spans: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = dateranges
            .iter()
            .filter(|d| d.is_ad())
            .filter_map(|d| Some((d.start?, d.end)))
            // An empty or inverted range contains nothing (as `DateRange::contains` says).
            .filter(|(start, end)| end.is_none_or(|end| end > *start))
            .collect();
        spans.sort_unstable_by_key(|(start, _)| *start);
        let mut runs: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
        for (start, end) in spans {
            match runs.last_mut() {
                // Overlapping or touching the previous run: extend it.
                Some((_, last_end)) if last_end.is_none_or(|e| start <= e) => {
                    *last_end = match (*last_end, end) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                _ => runs.push((start, end)),
            }
        }
        AdTimes { runs }
    }

    fn contains(&self, at: DateTime<Utc>) -> bool {
        // The last run starting at or before `at`.
        let after = self.runs.partition_point(|(start, _)| *start <= at);
        after > 0 && self.runs[after - 1].1.is_none_or(|end| at < end)
    }
}

/// What a playlist address returned.
#[derive(Debug, Clone)]
pub enum Parsed {
    Master(m3u8_rs::MasterPlaylist),
    Media(MediaPlaylist),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    #[error("not an HLS playlist (it does not start with #EXTM3U)")]
    NotHls,
    #[error("the playlist cannot be parsed")]
    Malformed,
    #[error("a master playlist was expected but this is a media playlist")]
    NotMaster,
    #[error("a media playlist was expected but this is a master playlist")]
    NotMedia,
    #[error("the stream is encrypted ({0}); recbot records only clear HLS")]
    Encrypted(String),
    #[error("the playlist is not usable: {0}")]
    Invalid(String),
}

/// Parses either kind of playlist.
pub fn parse(text: &[u8]) -> Result<Parsed, PlaylistError> {
    let trimmed = text.trim_ascii_start();
    let trimmed = trimmed.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(trimmed);
    if !trimmed.starts_with(b"#EXTM3U") {
        return Err(PlaylistError::NotHls);
    }
    if trimmed
        .split(|b| *b == b'\n')
        .any(|line| line.len() > MAX_LINE_BYTES)
    {
        return Err(PlaylistError::Invalid(format!(
            "a line is longer than {} KiB",
            MAX_LINE_BYTES / 1024
        )));
    }
    match m3u8_rs::parse_playlist_res(trimmed) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            for (count, what) in [
                (m.variants.len(), "renditions"),
                (m.alternatives.len(), "alternative media entries"),
            ] {
                if count > MAX_MASTER_ENTRIES {
                    return Err(PlaylistError::Invalid(format!(
                        "the master playlist lists {count} {what} (at most {MAX_MASTER_ENTRIES})"
                    )));
                }
            }
            Ok(Parsed::Master(m))
        }
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => Ok(Parsed::Media(reduce(m, trimmed)?)),
        Err(_) => Err(PlaylistError::Malformed),
    }
}

/// Parses a media playlist.
pub fn parse_media(text: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    match parse(text)? {
        Parsed::Media(m) => Ok(m),
        Parsed::Master(_) => Err(PlaylistError::NotMedia),
    }
}

fn reduce(m: m3u8_rs::MediaPlaylist, raw: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    let target_duration = check_limits(&m)?;
    let raw = String::from_utf8_lossy(raw);
    let (dateranges, prefetch, elapsed_secs) = scan(&raw);
    let ads = AdTimes::new(&dateranges);
    let mut elapsed = elapsed_secs;
    let mut segments = Vec::with_capacity(m.segments.len());
    let mut map: Option<InitMap> = None;
    // Where the previous sub-range of each resource ended, for ranges without an offset.
    let mut range_end: Option<(String, u64)> = None;
    for (i, s) in m.segments.into_iter().enumerate() {
        if let Some(key) = &s.key {
            if !matches!(key.method, m3u8_rs::KeyMethod::None) {
                return Err(PlaylistError::Encrypted(format!("{}", key.method)));
            }
        }
        if let Some(new) = &s.map {
            map = Some(InitMap {
                uri: new.uri.clone(),
                byte_range: new.byte_range.as_ref().map(|r| ByteRange {
                    offset: r.offset.unwrap_or(0),
                    length: r.length,
                }),
            });
        }
        let byte_range = segment_range(&s, &mut range_end)?;
        let pdt = s.program_date_time.map(|t| t.with_timezone(&Utc));
        let title = s.title.filter(|t| !t.is_empty());
        let ad = title.as_deref().is_some_and(|t| t.contains("Amazon"))
            || pdt.is_some_and(|at| ads.contains(at));
        let duration = segment_duration(s.duration, target_duration);
        let at = elapsed;
        elapsed = elapsed.map(|e| e + duration);
        segments.push(Segment {
            // Checked above: media_sequence + len fits.
            sequence: m.media_sequence + i as u64,
            uri: s.uri,
            duration,
            title,
            discontinuity: s.discontinuity,
            map: map.clone(),
            byte_range,
            program_date_time: pdt,
            ad,
            elapsed: at,
        });
    }
    Ok(MediaPlaylist {
        target_duration,
        media_sequence: m.media_sequence,
        segments,
        end_list: m.end_list,
        prefetch,
        dateranges,
        elapsed_secs,
    })
}

/// The target duration, once the playlist is within the limits: a target of at most an hour,
/// and every sequence number (and the one after the last) fitting in a u64.
fn check_limits(m: &m3u8_rs::MediaPlaylist) -> Result<f64, PlaylistError> {
    let target_duration = m.target_duration as f64;
    if target_duration > MAX_SEGMENT_SECS {
        return Err(PlaylistError::Invalid(format!(
            "target duration of {} s",
            m.target_duration
        )));
    }
    // Every sequence number, and the one after the last, must fit in a u64.
    if m.media_sequence
        .checked_add(m.segments.len() as u64)
        .is_none()
    {
        return Err(PlaylistError::Invalid(
            "media sequence numbers overflow".into(),
        ));
    }
    Ok(target_duration)
}

/// The byte range of `s`, if it has one. A range without an offset starts where the previous
/// sub-range of the same resource ended; `range_end` keeps that end.
fn segment_range(
    s: &m3u8_rs::MediaSegment,
    range_end: &mut Option<(String, u64)>,
) -> Result<Option<ByteRange>, PlaylistError> {
    let byte_range = s.byte_range.as_ref().map(|r| {
        let offset = r.offset.unwrap_or(match &*range_end {
            Some((uri, end)) if *uri == s.uri => *end,
            _ => 0,
        });
        ByteRange {
            offset,
            length: r.length,
        }
    });
    *range_end = match byte_range {
        Some(r) => Some((
            s.uri.clone(),
            r.offset
                .checked_add(r.length)
                .ok_or_else(|| PlaylistError::Invalid("byte range overflows".into()))?,
        )),
        None => None,
    };
    Ok(byte_range)
}

/// A segment's duration; one that is not a number of seconds within the limit counts as the
/// target duration.
fn segment_duration(duration: f32, target_duration: f64) -> f64 {
    let duration = f64::from(duration);
    if duration.is_finite() && (0.0..=MAX_SEGMENT_SECS).contains(&duration) {
        duration
    } else {
        target_duration
    }
}

/// The Twitch broadcast (stream) id that a master playlist names in its `#EXT-X-TWITCH-INFO`
/// header (`BROADCAST-ID="…"`), when it names one that looks like an id.
pub fn broadcast_id(master: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(master);
    let info = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("#EXT-X-TWITCH-INFO:"))?;
    attributes(info)
        .into_iter()
        .find(|(k, _)| k == "BROADCAST-ID")
        .map(|(_, v)| v)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The encryption a master playlist announces for all its renditions (`EXT-X-SESSION-KEY`
/// with a method other than `NONE`), if any.
pub fn master_encryption(master: &m3u8_rs::MasterPlaylist) -> Option<String> {
    master
        .session_key
        .iter()
        .find(|k| !matches!(k.0.method, m3u8_rs::KeyMethod::None))
        .map(|k| k.0.method.to_string())
}

/// Longest broadcast offset believed (a year of seconds); more is a broken header.
const MAX_ELAPSED_SECS: f64 = 366.0 * 86400.0;

/// The raw scan: all date ranges, prefetch addresses and the broadcast offset.
fn scan(raw: &str) -> (Vec<DateRange>, Vec<String>, Option<f64>) {
    let mut dateranges = Vec::new();
    let mut prefetch = Vec::new();
    let mut elapsed = None;
    for line in raw.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#EXT-X-DATERANGE:") {
            dateranges.push(daterange(rest));
        } else if let Some(uri) = line.strip_prefix("#EXT-X-TWITCH-PREFETCH:") {
            prefetch.push(uri.trim().to_string());
        } else if let Some(secs) = line.strip_prefix("#EXT-X-TWITCH-ELAPSED-SECS:") {
            elapsed = secs
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && (0.0..=MAX_ELAPSED_SECS).contains(s));
        }
    }
    (dateranges, prefetch, elapsed)
}

fn daterange(list: &str) -> DateRange {
    let attributes = attributes(list);
    let get = |k: &str| {
        attributes
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let date = |k: &str| {
        get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let secs = |k: &str| {
        get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && (0.0..=MAX_DATERANGE_SECS).contains(s))
    };
    let start = date("START-DATE");
    let end = date("END-DATE").or_else(|| {
        let length = secs("DURATION").or_else(|| secs("PLANNED-DURATION"))?;
        let length = TimeDelta::try_milliseconds((length * 1000.0).round() as i64)?;
        start?.checked_add_signed(length)
    });
    DateRange {
        id: get("ID"),
        class: get("CLASS"),
        start,
        end,
        attributes,
    }
}

/// An HLS attribute list (`KEY=value,KEY="quoted, with commas"`), values unquoted.
pub fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, next)) => (v.to_string(), next),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, next)) => (v.trim().to_string(), next),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWITCH: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-TWITCH-LIVE-SEQUENCE:1234
#EXT-X-TWITCH-ELAPSED-SECS:2000.0
#EXT-X-DATERANGE:ID=\"playlist-creation-1\",CLASS=\"timestamp\",START-DATE=\"2026-11-21T10:00:00.000Z\",END-ON-NEXT=YES,X-SERVER-TIME=\"1.0\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:00.000Z
#EXTINF:2.000,live
https://cdn/seg100.ts
#EXT-X-DATERANGE:ID=\"playlist-session-1\",CLASS=\"twitch-session\",START-DATE=\"2026-11-21T10:00:02.000Z\"
#EXT-X-DATERANGE:ID=\"stitched-ad-1-abc\",CLASS=\"twitch-stitched-ad\",START-DATE=\"2026-11-21T10:00:02.000Z\",DURATION=4.0,X-TV-TWITCH-AD-POD-FILLED-DURATION=\"4\"
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:02.000Z
#EXTINF:2.000,live
https://cdn/seg101.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:04.000Z
#EXTINF:2.000,Amazon|123
https://cdn/seg102.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:06.000Z
#EXTINF:2.000,live
https://cdn/seg103.ts
#EXT-X-TWITCH-PREFETCH:https://cdn/seg104.ts
#EXT-X-TWITCH-PREFETCH:https://cdn/seg105.ts
";

    #[test]
    fn twitch_playlist_with_everything_m3u8_rs_drops() {
        let p = parse_media(TWITCH.as_bytes()).unwrap();
        assert_eq!(p.target_duration, 2.0);
        assert_eq!(p.media_sequence, 100);
        let seqs: Vec<u64> = p.segments.iter().map(|s| s.sequence).collect();
        assert_eq!(seqs, [100, 101, 102, 103]);
        // Both date ranges before seg101 survive the raw scan (m3u8-rs keeps one).
        assert_eq!(p.dateranges.len(), 3);
        assert!(p.dateranges[2].is_ad());
        assert_eq!(
            p.dateranges[2].attribute("X-TV-TWITCH-AD-POD-FILLED-DURATION"),
            Some("4")
        );
        // seg101 and seg102 are inside the 4 s ad range; seg102 is also titled Amazon.
        let ads: Vec<bool> = p.segments.iter().map(|s| s.ad).collect();
        assert_eq!(ads, [false, true, true, false]);
        assert!(p.segments[1].discontinuity && p.segments[3].discontinuity);
        assert_eq!(
            p.prefetch,
            ["https://cdn/seg104.ts", "https://cdn/seg105.ts"]
        );
        assert!(!p.end_list);
        // Each segment's broadcast offset: the header's, plus what is listed before it.
        assert_eq!(p.elapsed_secs, Some(2000.0));
        let elapsed: Vec<Option<f64>> = p.segments.iter().map(|s| s.elapsed).collect();
        assert_eq!(
            elapsed,
            [Some(2000.0), Some(2002.0), Some(2004.0), Some(2006.0)]
        );
    }

    #[test]
    fn a_broken_or_missing_elapsed_header_gives_no_offsets() {
        for header in [
            "",
            "#EXT-X-TWITCH-ELAPSED-SECS:nan\n",
            "#EXT-X-TWITCH-ELAPSED-SECS:-5\n",
        ] {
            let text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n{header}#EXTINF:2.0,\na.ts\n");
            let p = parse_media(text.as_bytes()).unwrap();
            assert_eq!(p.elapsed_secs, None, "{header:?}");
            assert_eq!(p.segments[0].elapsed, None, "{header:?}");
        }
    }

    /// A playlist of `n` two-second segments, and `n` ad date ranges each covering the
    /// odd-numbered segments' start (1 s long, starting on the odd segments).
    fn huge_playlist(n: usize) -> String {
        let start = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |secs: usize| {
            (start + TimeDelta::seconds(secs as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut text = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n");
        // Out of order on purpose: classification must not rely on playlist order.
        for i in (0..n).rev() {
            let seg = if i % 2 == 1 { i } else { i + 1 };
            text.push_str(&format!(
                "#EXT-X-DATERANGE:ID=\"stitched-ad-{i}\",CLASS=\"twitch-stitched-ad\",\
                 START-DATE=\"{}\",DURATION=1.0\n",
                at(seg * 2)
            ));
        }
        for i in 0..n {
            text.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,live\nseg{i}.ts\n",
                at(i * 2)
            ));
        }
        text
    }

    #[tokio::test]
    async fn ad_classification_stays_linear_in_the_playlist_size() {
        // 20 000 segments × 20 000 date ranges: 4·10⁸ checks when each segment scans every
        // range (minutes in a debug build); a sorted index makes it milliseconds.
        let n = 20_000;
        let text = huge_playlist(n);
        let parsed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::task::spawn_blocking(move || parse_media(text.as_bytes())),
        )
        .await
        .expect("classifying 20 000 segments took more than 10 s")
        .unwrap()
        .unwrap();
        assert_eq!(parsed.segments.len(), n);
        assert_eq!(parsed.dateranges.len(), n);
        for s in &parsed.segments {
            assert_eq!(s.ad, s.sequence % 2 == 1, "segment {}", s.sequence);
        }
    }

    #[test]
    fn the_ad_index_agrees_with_scanning_every_range() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = |s: i64| t0 + TimeDelta::seconds(s);
        // Overlapping, touching, nested, empty, inverted, open, start-less and non-ad ranges.
        let spans: &[(Option<i64>, Option<i64>, bool)] = &[
            (Some(10), Some(20), true),
            (Some(15), Some(25), true),
            (Some(25), Some(30), true),
            (Some(40), Some(41), true),
            (Some(40), Some(60), true),
            (Some(45), Some(50), true),
            (Some(70), Some(70), true),
            (Some(80), Some(75), true),
            (Some(100), Some(120), false),
            (None, Some(200), true),
            (Some(150), None, true),
            (Some(140), Some(160), true),
        ];
        let ranges: Vec<DateRange> = spans
            .iter()
            .enumerate()
            .map(|(i, (start, end, ad))| DateRange {
                id: Some(if *ad {
                    format!("stitched-ad-{i}")
                } else {
                    format!("x-{i}")
                }),
                class: None,
                start: start.map(t),
                end: end.map(t),
                attributes: Vec::new(),
            })
            .collect();
        let index = AdTimes::new(&ranges);
        for s in -5..=210 {
            let scan = ranges.iter().any(|d| d.is_ad() && d.contains(t(s)));
            assert_eq!(index.contains(t(s)), scan, "at {s} s");
        }
        assert!(!AdTimes::new(&[]).contains(t0));
    }

    #[test]
    fn absurd_durations_are_refused_or_clamped_never_a_panic() {
        // A hostile origin's numbers reach `Duration::from_secs_f64` in the session: the
        // parser must keep them finite and small.
        for target in ["18446744073709551615", "99999999999", "3601", "-5", "1e308"] {
            let text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:{target}\n#EXTINF:2.0,\na.ts\n");
            match parse_media(text.as_bytes()) {
                Ok(p) => assert!(
                    (0.0..=MAX_SEGMENT_SECS).contains(&p.target_duration),
                    "{target}"
                ),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        for extinf in ["1e308", "-1", "NaN", "inf", "18446744073709551615"] {
            let text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:{extinf},\na.ts\n");
            if let Ok(p) = parse_media(text.as_bytes()) {
                for seg in &p.segments {
                    assert!((0.0..=MAX_SEGMENT_SECS).contains(&seg.duration), "{extinf}");
                }
            }
        }
    }

    #[test]
    fn absurd_masters_and_huge_lines_are_refused_with_the_reason() {
        let master = |n: usize| {
            let mut text = String::from("#EXTM3U\n");
            for i in 0..n {
                text.push_str(&format!(
                    "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION=1280x720\nv{i}.m3u8\n",
                    1000 + i
                ));
            }
            text
        };
        assert!(matches!(
            parse(master(MAX_MASTER_ENTRIES).as_bytes()),
            Ok(Parsed::Master(_))
        ));
        let err = parse(master(MAX_MASTER_ENTRIES + 1).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the playlist is not usable: the master playlist lists 1001 renditions (at most 1000)"
        );
        let mut alternatives = String::from("#EXTM3U\n");
        for i in 0..=MAX_MASTER_ENTRIES {
            alternatives.push_str(&format!(
                "#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID=\"g{i}\",NAME=\"n{i}\"\n"
            ));
        }
        alternatives.push_str("#EXT-X-STREAM-INF:BANDWIDTH=1,VIDEO=\"g0\"\nv.m3u8\n");
        let err = parse(alternatives.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("1001 alternative media entries"),
            "{err}"
        );
        // One segment address of 100 KiB, in a media playlist and in a master one.
        let long = "a".repeat(100 * 1024);
        for text in [
            format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{long}.ts\n"),
            format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{long}.m3u8\n"),
        ] {
            let err = parse(text.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                PlaylistError::Invalid("a line is longer than 64 KiB".into())
            );
        }
        // Long but sane lines pass.
        let fine = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{}.ts\n",
            "a".repeat(8 * 1024)
        );
        assert!(parse_media(fine.as_bytes()).is_ok());
    }

    #[test]
    fn ad_by_title_or_id_prefix_and_open_ranges() {
        let text = "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DATERANGE:ID=\"stitched-ad-9\",CLASS=\"other\",START-DATE=\"2026-11-21T10:00:02Z\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:00Z
#EXTINF:2.0,live
a.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:02Z
#EXTINF:2.0,live
b.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:09:02Z
#EXTINF:2.0,live
c.ts
#EXTINF:2.0,Amazon
d.ts
#EXT-X-ENDLIST
";
        let p = parse_media(text.as_bytes()).unwrap();
        let ads: Vec<bool> = p.segments.iter().map(|s| s.ad).collect();
        // An open range (no end) covers everything after its start.
        assert_eq!(ads, [false, true, true, true]);
        assert!(p.end_list);
    }

    #[test]
    fn fmp4_map_carries_forward_and_changes() {
        let text = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI=\"init-0.mp4\"
#EXTINF:2.0,
s0.mp4
#EXTINF:2.0,
s1.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init-1.mp4\"
#EXTINF:2.0,
s2.mp4
";
        let p = parse_media(text.as_bytes()).unwrap();
        let maps: Vec<&str> = p
            .segments
            .iter()
            .map(|s| s.map.as_ref().unwrap().uri.as_str())
            .collect();
        assert_eq!(maps, ["init-0.mp4", "init-0.mp4", "init-1.mp4"]);
        assert_eq!(p.media_sequence, 0);
    }

    #[test]
    fn byte_ranges_without_offset_follow_the_previous_one() {
        let text = "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-BYTERANGE:100@0
#EXTINF:2.0,
all.ts
#EXT-X-BYTERANGE:50
#EXTINF:2.0,
all.ts
";
        let p = parse_media(text.as_bytes()).unwrap();
        assert_eq!(
            p.segments[1].byte_range,
            Some(ByteRange {
                offset: 100,
                length: 50
            })
        );
        assert_eq!(p.segments[1].byte_range.unwrap().header(), "bytes=100-149");
    }

    #[test]
    fn broken_and_foreign_input_is_refused() {
        assert_eq!(
            parse_media(b"<html>nope</html>").unwrap_err(),
            PlaylistError::NotHls
        );
        assert_eq!(parse_media(b"").unwrap_err(), PlaylistError::NotHls);
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv.m3u8\n";
        assert_eq!(
            parse_media(master.as_bytes()).unwrap_err(),
            PlaylistError::NotMedia
        );
        let encrypted = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2.0,\na.ts\n";
        assert!(matches!(
            parse_media(encrypted.as_bytes()),
            Err(PlaylistError::Encrypted(_))
        ));
    }

    #[test]
    fn hostile_numbers_are_refused_or_replaced_never_a_panic() {
        // Absurd date-range durations are ignored (the range stays open) instead of
        // overflowing the end date.
        for d in ["1e13", "1e300", "inf", "NaN", "-5"] {
            let text = format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-DATERANGE:ID=\"x\",CLASS=\"c\",\
                 START-DATE=\"2026-11-21T10:00:00Z\",DURATION={d}\n\
                 #EXT-X-PROGRAM-DATE-TIME:2026-11-21T10:00:00Z\n#EXTINF:2.0,live\na.ts\n"
            );
            let p = parse_media(text.as_bytes()).unwrap();
            assert_eq!(p.dateranges[0].end, None, "{d}");
        }
        // Sequence numbers that would overflow are refused; the last ones that fit are not.
        let seq = |first: u64| {
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n\
                 #EXTINF:2.0,\na.ts\n#EXTINF:2.0,\nb.ts\n"
            )
        };
        assert!(matches!(
            parse_media(seq(u64::MAX - 1).as_bytes()),
            Err(PlaylistError::Invalid(_))
        ));
        let p = parse_media(seq(u64::MAX - 2).as_bytes()).unwrap();
        assert_eq!(p.segments[1].sequence, u64::MAX - 1);
        // Overlong or non-finite EXTINF durations become the target duration.
        let text = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1{},\na.ts\n#EXTINF:5000,\nb.ts\n\
             #EXTINF:1.5,\nc.ts\n",
            "0".repeat(400)
        );
        let p = parse_media(text.as_bytes()).unwrap();
        let durations: Vec<f64> = p.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [2.0, 2.0, 1.5]);
        // An absurd target duration and overflowing byte ranges are refused.
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999\n#EXTINF:2.0,\na.ts\n";
        assert!(matches!(
            parse_media(text.as_bytes()),
            Err(PlaylistError::Invalid(_))
        ));
        let text = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:10@{}\n#EXTINF:2.0,\na.ts\n",
            u64::MAX - 3
        );
        assert!(matches!(
            parse_media(text.as_bytes()),
            Err(PlaylistError::Invalid(_))
        ));
    }

    #[test]
    fn broadcast_id_from_twitch_info() {
        let master = "#EXTM3U\n#EXT-X-TWITCH-INFO:NODE=\"v\",BROADCAST-ID=\"44535804459\",\
                      STREAM-TIME=\"16967.2\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(
            broadcast_id(master.as_bytes()).as_deref(),
            Some("44535804459")
        );
        assert_eq!(
            broadcast_id(b"#EXTM3U\n#EXT-X-TWITCH-INFO:NODE=\"v\"\n"),
            None
        );
        assert_eq!(
            broadcast_id(b"#EXTM3U\n#EXT-X-TWITCH-INFO:BROADCAST-ID=\"../x\"\n"),
            None
        );
        assert_eq!(broadcast_id(b"#EXTM3U\n"), None);
    }

    #[test]
    fn attribute_lists() {
        assert_eq!(
            attributes(r#"ID="a,b",CLASS=x,DURATION=2.5"#),
            [
                ("ID".to_string(), "a,b".to_string()),
                ("CLASS".to_string(), "x".to_string()),
                ("DURATION".to_string(), "2.5".to_string())
            ]
        );
        assert!(attributes("").is_empty());
        assert_eq!(attributes("garbage").len(), 0);
    }
}
