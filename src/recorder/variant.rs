//! Renditions of a master playlist: naming them (Twitch usher v2 `IVS-NAME`, else its
//! `STABLE-VARIANT-ID`; the older `EXT-X-MEDIA` `NAME` of the `VIDEO` group; else resolution +
//! frame rate), reading their video codec from `CODECS`, and choosing one for a [`Quality`]
//! among the codecs `[recording] codecs` allows: `best`/`source` is the one marked source
//! (`IVS-VARIANT-SOURCE="source"`, the v1 `chunked` group), else the highest by resolution,
//! frame rate and bandwidth; a named quality the exact match or else the next lower one.
//! Renditions only in the `portrait` group (`IVS-GROUPS`, a vertical version of the stream)
//! are chosen only when nothing else is offered: by height alone a 1080×1920 portrait
//! rendition would beat the 1920×1080 source. Pure: no I/O.

use recbot_commands::Quality;

use crate::rendition::Codec;

/// One rendition, named.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// As written in the master playlist (may be relative to it).
    pub uri: String,
    /// `1080p60`, `720p30`, `audio_only`, …
    pub name: String,
    pub height: Option<u32>,
    pub width: Option<u32>,
    pub fps: Option<u32>,
    pub bandwidth: u64,
    /// The video codec from `CODECS`; `None` when not given (or not one recbot knows).
    pub codec: Option<Codec>,
    /// Marked as the broadcaster's original (`IVS-VARIANT-SOURCE="source"`, `(source)`).
    pub source: bool,
    pub audio_only: bool,
    /// Listed in `IVS-GROUPS` without `landscape`: the vertical version of the stream.
    pub portrait_only: bool,
}

impl Variant {
    /// Ordering key among video renditions: height, then frame rate, then bandwidth.
    pub(crate) fn rank(&self) -> (u32, u32, u64) {
        (
            self.height.unwrap_or(0),
            self.fps.unwrap_or(30),
            self.bandwidth,
        )
    }
}

/// Every playable rendition of `master` (I-frame-only streams left out).
pub fn variants(master: &m3u8_rs::MasterPlaylist) -> Vec<Variant> {
    // The first video alternative of each group, looked up once per rendition.
    let mut video_names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for a in &master.alternatives {
        if a.media_type == m3u8_rs::AlternativeMediaType::Video {
            video_names
                .entry(a.group_id.as_str())
                .or_insert(a.name.as_str());
        }
    }
    master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| {
            let attr = |k: &str| {
                v.other_attributes
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .map(|q| q.as_str().to_string())
            };
            let media_name = v
                .video
                .as_deref()
                .and_then(|group| video_names.get(group))
                .map(|name| name.to_string());
            let raw_name = attr("IVS-NAME")
                .or(media_name)
                .or_else(|| attr("STABLE-VARIANT-ID"));
            let marked_source = attr("IVS-VARIANT-SOURCE").as_deref() == Some("source")
                || raw_name.as_deref().is_some_and(|n| n.contains("source"))
                || v.video.as_deref() == Some("chunked");
            let codecs = v.codecs.as_deref().unwrap_or("");
            let codec = Codec::of_codecs_attribute(codecs);
            let audio_only = raw_name.as_deref() == Some("audio_only")
                || (v.resolution.is_none() && !codecs.is_empty() && codec.is_none());
            let portrait_only =
                attr("IVS-GROUPS").is_some_and(|g| !g.split(',').any(|g| g.trim() == "landscape"));
            let fps = v.frame_rate.map(|f| f.round() as u32);
            let height = v.resolution.map(|r| r.height as u32);
            let name = match raw_name {
                Some(n) => n.replace("(source)", "").trim().to_string(),
                None if audio_only => "audio_only".into(),
                None => match height {
                    Some(h) => format!("{h}p{}", fps.unwrap_or(30)),
                    None => format!("{}k", v.bandwidth / 1000),
                },
            };
            let (name_height, name_fps) = dimensions_of(&name);
            Variant {
                uri: v.uri.clone(),
                height: height.or(name_height),
                width: v.resolution.map(|r| r.width as u32),
                fps: fps.or(name_fps),
                name,
                bandwidth: v.bandwidth,
                codec,
                source: marked_source,
                audio_only,
                portrait_only,
            }
        })
        .collect()
}

/// `720p60` → (720, 60); `480p` → (480, 30).
fn dimensions_of(name: &str) -> (Option<u32>, Option<u32>) {
    let Some((h, rest)) = name.split_once('p') else {
        return (None, None);
    };
    let height = h.parse().ok();
    let fps = if rest.is_empty() {
        height.map(|_| 30)
    } else {
        rest.parse().ok()
    };
    (height, fps)
}

/// Whether `v` may be recorded under `codecs`: audio always, video when its codec is listed
/// (or unknown: a plain HLS source need not say).
pub fn allowed(v: &Variant, codecs: &[Codec]) -> bool {
    v.audio_only || v.codec.is_none_or(|c| codecs.contains(&c))
}

/// The rendition to record for `quality`, among those `codecs` allows; `None` only when there
/// is none. When no video rendition is allowed, the audio-only one (the caller says so).
pub fn select<'a>(
    variants: &'a [Variant],
    quality: Quality,
    codecs: &[Codec],
) -> Option<&'a Variant> {
    let landscape = variants
        .iter()
        .any(|v| !v.audio_only && !v.portrait_only && allowed(v, codecs));
    let video = move || {
        variants.iter().filter(move |v| {
            !v.audio_only && allowed(v, codecs) && (!landscape || !v.portrait_only)
        })
    };
    let audio = || variants.iter().find(|v| v.audio_only);
    let best = || {
        video()
            .filter(|v| v.source)
            .max_by_key(|v| v.rank())
            .or_else(|| video().max_by_key(|v| v.rank()))
            .or_else(audio)
    };
    if quality.is_best() {
        return best();
    }
    if quality.as_str() == "audio_only" {
        return audio().or_else(|| video().min_by_key(|v| v.rank()));
    }
    let Some((height, fps)) = quality.dimensions() else {
        return best();
    };
    let fits = |v: &&Variant| {
        let (h, f, _) = v.rank();
        (h, f) <= (height, fps)
    };
    // The exact rendition or the next lower one (the source among equals); when the stream
    // only has higher ones, the lowest of those (recording something beats recording nothing).
    video()
        .filter(fits)
        .max_by_key(|v| (v.rank().0, v.rank().1, v.source, v.bandwidth))
        .or_else(|| video().min_by_key(|v| v.rank()))
        .or_else(audio)
}

/// Whether `v` is better than `than`: a higher resolution or frame rate, or the source where
/// `than` is a transcode of the same size. Everything with video beats audio only; a
/// portrait-only rendition is never better than a landscape one.
pub fn better(v: &Variant, than: &Variant) -> bool {
    // A vertical version is another picture, not a better one.
    if v.audio_only || (v.portrait_only && !than.portrait_only) {
        return false;
    }
    if than.audio_only {
        return true;
    }
    let (a, b) = (v.rank(), than.rank());
    (a.0, a.1) > (b.0, b.1) || ((a.0, a.1) == (b.0, b.1) && v.source && !than.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USHER_V2: &str = r#"#EXTM3U
#EXT-X-TWITCH-INFO:NODE="video-edge-1",MANIFEST-NODE-TYPE="weaver_cluster",SERVER-TIME="1.0"
#EXT-X-STREAM-INF:BANDWIDTH=8000000,RESOLUTION=1920x1080,CODECS="avc1.64002A,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="source",IVS-NAME="1080p60",IVS-VARIANT-SOURCE="source"
https://weaver/1080p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="720p60",IVS-NAME="720p60",IVS-VARIANT-SOURCE="transcode"
https://weaver/720p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1400000,RESOLUTION=852x480,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=30.000,IVS-NAME="480p30",IVS-VARIANT-SOURCE="transcode"
https://weaver/480p30.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="mp4a.40.2",IVS-NAME="audio_only",IVS-VARIANT-SOURCE="transcode"
https://weaver/audio_only.m3u8
"#;

    const USHER_V1: &str = r#"#EXTM3U
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="chunked",NAME="1080p60 (source)",AUTOSELECT=YES,DEFAULT=YES
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080,CODECS="avc1.64002A,mp4a.40.2",VIDEO="chunked",FRAME-RATE=60.000
https://v1/chunked.m3u8
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="720p30",NAME="720p",AUTOSELECT=YES,DEFAULT=YES
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="avc1.4D401F,mp4a.40.2",VIDEO="720p30",FRAME-RATE=30.000
https://v1/720p30.m3u8
"#;

    const PLAIN: &str = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,FRAME-RATE=25
mid/index.m3u8
";

    fn master(text: &str) -> Vec<Variant> {
        match crate::recorder::playlist::parse(text.as_bytes()).unwrap() {
            crate::recorder::playlist::Parsed::Master(m) => variants(&m),
            other => panic!("{other:?}"),
        }
    }

    fn pick(vs: &[Variant], q: &str) -> String {
        select(vs, Quality::parse(q).unwrap(), &Codec::ALL)
            .unwrap()
            .name
            .clone()
    }

    #[test]
    fn names_come_from_ivs_name_media_name_or_resolution() {
        let names: Vec<String> = master(USHER_V2).into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["1080p60", "720p60", "480p30", "audio_only"]);
        let v1 = master(USHER_V1);
        assert_eq!(v1[0].name, "1080p60");
        assert!(v1[0].source);
        assert_eq!(v1[1].name, "720p");
        assert_eq!((v1[1].height, v1[1].fps), (Some(720), Some(30)));
        let names: Vec<String> = master(PLAIN).into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["360p30", "720p25"]);
    }

    #[test]
    fn quality_picks_exact_or_next_lower() {
        let vs = master(USHER_V2);
        for (quality, expected) in [
            ("best", "1080p60"),
            ("source", "1080p60"),
            ("1080p60", "1080p60"),
            ("1080p", "720p60"),
            ("720p60", "720p60"),
            ("720p", "480p30"),
            ("480p", "480p30"),
            ("360p", "480p30"),
            ("160p", "480p30"),
            ("audio_only", "audio_only"),
        ] {
            assert_eq!(pick(&vs, quality), expected, "{quality}");
        }
        let plain = master(PLAIN);
        assert_eq!(pick(&plain, "best"), "720p25");
        assert_eq!(pick(&plain, "720p60"), "720p25");
        assert_eq!(pick(&plain, "480p"), "360p30");
        assert_eq!(pick(&plain, "audio_only"), "360p30");
        assert!(select(&[], Quality::BEST, &Codec::ALL).is_none());
    }

    /// The notes' usher v2 fixture (streamlink's, 2026-03): no EXT-X-MEDIA, the source last.
    const USHER_V2_SOURCE_LAST: &str = r#"#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=3422999,RESOLUTION=1280x720,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="720p60",IVS-NAME="720p60",IVS-VARIANT-SOURCE="transcode"
https://v2/720p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1427999,RESOLUTION=852x480,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=30.000,STABLE-VARIANT-ID="480p30",IVS-NAME="480p",IVS-VARIANT-SOURCE="transcode"
https://v2/480p30.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="mp4a.40.2",STABLE-VARIANT-ID="audio_only",IVS-NAME="audio_only",IVS-VARIANT-SOURCE="transcode"
https://v2/audio_only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=9146586,RESOLUTION=1920x1080,CODECS="avc1.64002A,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="1080p60",IVS-NAME="1080p60",IVS-VARIANT-SOURCE="source"
https://v2/1080p60.m3u8
"#;

    /// A 1440p60 HEVC source with H.264 transcodes (the ladder of an enhanced broadcast), named
    /// only by STABLE-VARIANT-ID.
    const HEVC_SOURCE: &str = r#"#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=9500000,RESOLUTION=1920x1080,CODECS="avc1.64002A,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="1080p60",IVS-VARIANT-SOURCE="transcode"
https://hevc/1080p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=7736560,RESOLUTION=2560x1440,CODECS="hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="1440p60",IVS-VARIANT-SOURCE="source"
https://hevc/1440p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=60.000,STABLE-VARIANT-ID="720p60",IVS-VARIANT-SOURCE="transcode"
https://hevc/720p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1920x1080,CODECS="av01.0.08M.08,mp4a.40.2",FRAME-RATE=30.000,STABLE-VARIANT-ID="1080p30",IVS-VARIANT-SOURCE="transcode"
https://hevc/1080p30.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="mp4a.40.2",STABLE-VARIANT-ID="audio_only",IVS-VARIANT-SOURCE="transcode"
https://hevc/audio_only.m3u8
"#;

    fn pick_in(vs: &[Variant], q: &str, codecs: &[Codec]) -> String {
        select(vs, Quality::parse(q).unwrap(), codecs)
            .unwrap()
            .name
            .clone()
    }

    #[test]
    fn v2_source_listed_last_is_best() {
        let vs = master(USHER_V2_SOURCE_LAST);
        let names: Vec<&str> = vs.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["720p60", "480p", "audio_only", "1080p60"]);
        assert_eq!(vs[3].codec, Some(Codec::H264));
        assert!(vs[2].audio_only && vs[2].codec.is_none());
        assert_eq!(pick(&vs, "best"), "1080p60");
        assert_eq!(pick(&vs, "720p"), "480p");
    }

    #[test]
    fn the_source_wins_whatever_its_bandwidth_and_codecs_restrict_the_choice() {
        let vs = master(HEVC_SOURCE);
        let names: Vec<&str> = vs.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["1080p60", "1440p60", "720p60", "1080p30", "audio_only"]
        );
        assert_eq!(vs[1].codec, Some(Codec::H265));
        assert_eq!(
            (vs[1].width, vs[1].height, vs[1].fps),
            (Some(2560), Some(1440), Some(60))
        );
        assert!(vs[1].source && !vs[0].source);
        let all = Codec::ALL;
        // The source although a transcode has more bandwidth.
        assert_eq!(pick_in(&vs, "best", &all), "1440p60");
        assert_eq!(pick_in(&vs, "source", &all), "1440p60");
        assert_eq!(pick_in(&vs, "1080p60", &all), "1080p60");
        assert_eq!(pick_in(&vs, "1080p", &all), "1080p30");
        // Only H.264: the best H.264 transcode; a named quality within H.264.
        let h264 = [Codec::H264];
        assert_eq!(pick_in(&vs, "best", &h264), "1080p60");
        assert_eq!(pick_in(&vs, "1080p", &h264), "720p60");
        assert_eq!(pick_in(&vs, "720p60", &h264), "720p60");
        // No H.265: AV1 and H.264 only.
        let no_hevc = [Codec::Av1, Codec::H264];
        assert_eq!(pick_in(&vs, "best", &no_hevc), "1080p60");
        assert_eq!(pick_in(&vs, "1080p", &no_hevc), "1080p30");
        // Nothing allowed but AV1 where there is none at 1440p: AV1's one rendition.
        assert_eq!(pick_in(&vs, "best", &[Codec::Av1]), "1080p30");
        // Better: higher size or frame rate, or the source among equals.
        let by = |n: &str| vs.iter().find(|v| v.name == n).unwrap();
        assert!(better(by("1440p60"), by("1080p60")));
        assert!(better(by("1080p60"), by("1080p30")));
        assert!(!better(by("720p60"), by("1080p30")));
        assert!(better(by("720p60"), by("audio_only")));
        assert!(!better(by("audio_only"), by("720p60")));
    }

    #[test]
    fn portrait_renditions_are_chosen_only_when_nothing_else_is_offered() {
        const GROUPS: &str = r#"#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1080x1920,CODECS="avc1.64002A,mp4a.40.2",FRAME-RATE=60.000,IVS-NAME="1920p60",IVS-VARIANT-SOURCE="source",IVS-GROUPS="portrait"
https://v2/portrait.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080,CODECS="avc1.64002A,mp4a.40.2",FRAME-RATE=60.000,IVS-NAME="1080p60",IVS-VARIANT-SOURCE="source",IVS-GROUPS="landscape"
https://v2/landscape.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.4D401F,mp4a.40.2",FRAME-RATE=30.000,IVS-NAME="720p30",IVS-VARIANT-SOURCE="transcode",IVS-GROUPS="landscape,portrait"
https://v2/720p30.m3u8
"#;
        let vs = master(GROUPS);
        assert!(vs[0].portrait_only && !vs[1].portrait_only && !vs[2].portrait_only);
        assert_eq!(pick(&vs, "best"), "1080p60");
        assert_eq!(pick(&vs, "1440p60"), "1080p60");
        let only_portrait: Vec<Variant> = vs[..1].to_vec();
        assert_eq!(pick(&only_portrait, "best"), "1920p60");
    }

    #[test]
    fn with_no_allowed_video_only_audio_is_left() {
        let only_hevc = "#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=7736560,RESOLUTION=2560x1440,CODECS=\"hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2\",FRAME-RATE=60.000,IVS-NAME=\"1440p60\",IVS-VARIANT-SOURCE=\"source\"
https://x/1440p60.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS=\"mp4a.40.2\",IVS-NAME=\"audio_only\"
https://x/audio_only.m3u8
";
        let vs = master(only_hevc);
        assert_eq!(pick_in(&vs, "best", &[Codec::H264]), "audio_only");
        assert_eq!(pick_in(&vs, "720p", &[Codec::H264]), "audio_only");
        assert!(select(&vs[..1], Quality::BEST, &[Codec::H264]).is_none());
        assert_eq!(pick_in(&vs, "best", &Codec::ALL), "1440p60");
    }
}
