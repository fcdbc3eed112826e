//! Renditions of a master playlist: naming them (Twitch usher v2 `IVS-NAME`, the older
//! `EXT-X-MEDIA` `NAME` of the `VIDEO` group, else resolution + frame rate) and choosing one
//! for a [`Quality`]: `best`/`source` is the highest (the one marked source when marked), a
//! named quality the exact match or else the next lower one. Pure: no I/O.

use recbot_commands::Quality;

/// One rendition, named.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// As written in the master playlist (may be relative to it).
    pub uri: String,
    /// `1080p60`, `720p30`, `audio_only`, …
    pub name: String,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub bandwidth: u64,
    /// Marked as the broadcaster's original (`IVS-VARIANT-SOURCE="source"`, `(source)`).
    pub source: bool,
    pub audio_only: bool,
}

impl Variant {
    /// Ordering key among video renditions: height, then frame rate, then bandwidth.
    fn rank(&self) -> (u32, u32, u64) {
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
            let raw_name = attr("IVS-NAME").or(media_name);
            let marked_source = attr("IVS-VARIANT-SOURCE").as_deref() == Some("source")
                || raw_name.as_deref().is_some_and(|n| n.contains("source"))
                || v.video.as_deref() == Some("chunked");
            let codecs = v.codecs.as_deref().unwrap_or("");
            let audio_only = raw_name.as_deref() == Some("audio_only")
                || (v.resolution.is_none()
                    && !codecs.is_empty()
                    && !codecs.contains("avc")
                    && !codecs.contains("hvc")
                    && !codecs.contains("hev")
                    && !codecs.contains("av01"));
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
                fps: fps.or(name_fps),
                name,
                bandwidth: v.bandwidth,
                source: marked_source,
                audio_only,
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

/// The rendition to record for `quality`; `None` only when there is none at all.
pub fn select(variants: &[Variant], quality: Quality) -> Option<&Variant> {
    let video = || variants.iter().filter(|v| !v.audio_only);
    let best = || {
        video()
            .find(|v| v.source)
            .or_else(|| video().max_by_key(|v| v.rank()))
            .or_else(|| variants.first())
    };
    if quality.is_best() {
        return best();
    }
    if quality.as_str() == "audio_only" {
        return variants
            .iter()
            .find(|v| v.audio_only)
            .or_else(|| video().min_by_key(|v| v.rank()));
    }
    let Some((height, fps)) = quality.dimensions() else {
        return best();
    };
    let fits = |v: &&Variant| {
        let (h, f, _) = v.rank();
        (h, f) <= (height, fps)
    };
    // The exact rendition or the next lower one; when the stream only has higher ones, the
    // lowest of those (recording something beats recording nothing).
    video()
        .filter(fits)
        .max_by_key(|v| v.rank())
        .or_else(|| video().min_by_key(|v| v.rank()))
        .or_else(|| variants.first())
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
        select(vs, Quality::parse(q).unwrap()).unwrap().name.clone()
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
        assert!(select(&[], Quality::BEST).is_none());
    }
}
