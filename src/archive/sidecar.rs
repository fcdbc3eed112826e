//! The sidecar: `<name>.json` next to every finished recording part, describing it (who, when,
//! what was on air, what is missing). The uploader builds titles, descriptions and chapters from
//! it and records the YouTube video id in it; the chat logger takes the part's time span from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::layout::temp_path_of;
use crate::rendition::{Codec, Withheld};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// Watch-list name (Twitch login or HLS source name).
    pub login: String,
    /// The broadcaster's display name when known (Twitch `user_name`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// `twitch`, `hls` or `chzzk`.
    pub source: String,
    /// The platform the part was recorded from (`twitch`, `chzzk`, `hls`); absent in
    /// sidecars from before platforms and in recovered parts whose source is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Twitch stream id; `None` for HLS sources or when it could not be learnt.
    #[serde(default)]
    pub stream_id: Option<String>,
    /// Row id in the `sessions` table.
    pub session: i64,
    /// 1-based part number within the session.
    pub part: u32,
    /// File name of the recording (no folder).
    pub file: String,
    /// The rendition recorded (`1080p60`, `audio_only`, …).
    pub quality: String,
    /// Its video codec, size and frame rate, as the master playlist described it (absent
    /// for audio only, media playlists given directly, and older sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u32>,
    /// Better renditions that were on air but not recorded, and why (needs a logged-in
    /// viewer, excluded by `[recording] codecs`, …), best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Withheld>,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// Seconds of media in the file (sum of segment durations written).
    pub duration_secs: f64,
    pub segments: u64,
    pub bytes: u64,
    /// Title/game history; the first entry is the state at the part's start.
    #[serde(default)]
    pub chapters: Vec<Chapter>,
    #[serde(default)]
    pub gaps: Vec<Gap>,
    #[serde(default)]
    pub ad_breaks: Vec<AdBreak>,
    /// Media offsets (seconds) where an `EXT-X-DISCONTINUITY` was written.
    #[serde(default)]
    pub discontinuities: Vec<f64>,
    /// The part was finalized at start-up from a `.part` left by a crash.
    #[serde(default)]
    pub recovered: bool,
    /// Set by the uploader once YouTube confirmed the upload.
    #[serde(default)]
    pub youtube_video_id: Option<String>,
    /// The last segment this part took in: a session continued after a restart goes on after
    /// it instead of repeating what is already here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<Position>,
    /// Seconds from the broadcast's start to the part's first segment (Twitch's
    /// `EXT-X-TWITCH-ELAPSED-SECS`, else program date-time − the stream's start), when known:
    /// where the part sits in the broadcast's VOD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_secs: Option<f64>,
    /// Gaps filled from the broadcast's VOD, each a file beside this part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fills: Vec<Fill>,
    /// The VOD fill is over for this part (filled or given up): until then a Twitch part with
    /// gaps stays where it is after its upload (see [`Sidecar::awaits_vod_fill`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vod_fill_done: bool,
    /// The chat replay subtitles written beside this part (file names, `<name>.chat.ass`
    /// and/or `.chat.vtt`), set by the chat logger with the chat file; after-upload finds
    /// them by name like the chat file, so this is for people and other tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subtitles: Vec<String>,
    /// The broadcast's summary chart (`<name>.summary.png`), in the first part's sidecar only
    /// (file name), set once it is written; after-upload finds it by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The HLS index written beside this part (`<name>.m3u8`, file name), when there is one;
    /// after-upload finds it by name like the chat file, so this is for people and tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// A place in the stream: the media sequence number of a segment (written, or skipped as an
/// ad), its program date-time when the playlist gave one, and its duration (absent in older
/// sidecars).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_date_time: Option<DateTime<Utc>>,
    /// How long the segment lasts: a session continued after a restart measures what it
    /// missed from this segment's end, not its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
}

/// Seconds in the broadcast (from its start), as Twitch's VOD of it counts them.
pub type BroadcastSecs = f64;

/// A title/game state from `at` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    pub at: DateTime<Utc>,
    /// Seconds from the part's start.
    pub offset_secs: f64,
    pub title: String,
    #[serde(default)]
    pub game: Option<String>,
}

/// Media that is missing from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub at: DateTime<Utc>,
    /// Seconds from the part's start where the gap sits.
    pub offset_secs: f64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub seconds: f64,
    pub reason: String,
    /// Where the missing media starts in the broadcast, when known (Twitch): what a fill from
    /// the VOD covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_secs: Option<BroadcastSecs>,
}

/// A gap's media, fetched afterwards from the broadcast's VOD into its own file beside the
/// part (`<part name>.fill-<n>.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    /// File name (no folder), beside the part.
    pub file: String,
    /// Index of the gap in `gaps` it fills.
    pub gap: usize,
    /// The broadcast time the file covers (whole VOD segments, so it may start a little
    /// before the gap and end a little after it).
    pub from_secs: BroadcastSecs,
    pub to_secs: BroadcastSecs,
    /// The Twitch VOD (video id) it came from.
    pub vod_id: String,
    /// Some of it is Twitch's muted copy (`-muted` segments: the audio is silenced).
    pub muted: bool,
    pub bytes: u64,
    /// Set by the uploader once YouTube confirmed the fill's own video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub youtube_video_id: Option<String>,
}

/// An ad break that was cut out (the file jumps over it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdBreak {
    pub at: DateTime<Utc>,
    pub offset_secs: f64,
    pub duration_secs: f64,
}

impl Sidecar {
    /// `dir/name.ts` → `dir/name.json`.
    pub fn path_for(recording: &Path) -> PathBuf {
        recording.with_extension("json")
    }

    pub async fn read(path: &Path) -> Result<Sidecar> {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read sidecar {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("sidecar {} is not valid", path.display()))
    }

    /// Writes atomically: to `<path>.recbot-tmp` (never `.part`, which crash recovery would
    /// take for a recording), fsynced, then renamed over `path`.
    pub async fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        let tmp = temp_path_of(path);
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(&json).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("cannot rename {} into place", tmp.display()))?;
        Ok(())
    }

    /// Gaps in seconds, summed.
    pub fn gap_seconds(&self) -> f64 {
        self.gaps.iter().map(|g| g.seconds).sum()
    }

    /// Reads, changes and writes the sidecar at `path`, one change at a time in this process:
    /// the uploader (video ids) and the VOD fill (fills) both change finished parts'
    /// sidecars, and neither may lose the other's change.
    pub async fn update(path: &Path, change: impl FnOnce(&mut Sidecar)) -> Result<Sidecar> {
        let _one_at_a_time = UPDATES.lock().await;
        let mut sidecar = Sidecar::read(path).await?;
        change(&mut sidecar);
        sidecar.write(path).await?;
        Ok(sidecar)
    }

    /// Whether the part and every fill beside it are on YouTube (what after-upload waits for
    /// before it keeps, moves or deletes them together).
    pub fn all_uploaded(&self) -> bool {
        self.youtube_video_id.is_some() && self.fills.iter().all(|f| f.youtube_video_id.is_some())
    }

    /// Whether a VOD fill may still add files beside this part (a Twitch part with gaps whose
    /// fill is not over), when VOD fill is on: after-upload leaves it alone until then, so the
    /// fill finds the part's sidecar and part and fills go together.
    pub fn awaits_vod_fill(&self) -> bool {
        self.source == "twitch" && !self.gaps.is_empty() && !self.vod_fill_done
    }
}

/// Serializes [`Sidecar::update`] (sidecar changes are rare; one lock for all is enough).
static UPDATES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("2026-11-21_10-00-00_title.ts");
        let path = Sidecar::path_for(&rec);
        assert_eq!(path, dir.path().join("2026-11-21_10-00-00_title.json"));
        let now = Utc::now();
        let sidecar = Sidecar {
            login: "foo".into(),
            display_name: Some("Foo".into()),
            source: "twitch".into(),
            stream_id: Some("123".into()),
            session: 7,
            part: 1,
            file: "2026-11-21_10-00-00_title.ts".into(),
            quality: "1080p60".into(),
            started: now,
            ended: now,
            duration_secs: 12.0,
            segments: 6,
            bytes: 4096,
            chapters: vec![Chapter {
                at: now,
                offset_secs: 0.0,
                title: "hello".into(),
                game: Some("Chess".into()),
            }],
            last_segment: Some(Position {
                sequence: 41,
                program_date_time: Some(now),
                duration_secs: Some(2.0),
            }),
            codec: Some(Codec::H265),
            width: Some(2560),
            height: Some(1440),
            frame_rate: Some(60),
            withheld: vec![Withheld {
                name: "2160p60".into(),
                codec: Some(Codec::Av1),
                why: crate::rendition::WithheldWhy::NeedsLogin,
            }],
            ..Default::default()
        };
        sidecar.write(&path).await.unwrap();
        assert!(!dir
            .path()
            .join("2026-11-21_10-00-00_title.json.recbot-tmp")
            .exists());
        assert_eq!(Sidecar::read(&path).await.unwrap(), sidecar);
    }

    #[test]
    fn sidecars_written_before_the_rendition_fields_still_read() {
        let old = r#"{"login":"foo","source":"twitch","session":1,"part":1,"file":"a.ts",
            "quality":"1080p60","started":"2026-11-21T10:00:00Z","ended":"2026-11-21T11:00:00Z",
            "duration_secs":3600.0,"segments":1800,"bytes":1}"#;
        let sidecar: Sidecar = serde_json::from_str(old).unwrap();
        assert!(sidecar.withheld.is_empty() && sidecar.codec.is_none());
        // And nothing new is written for a recording without them.
        let json = serde_json::to_string(&sidecar).unwrap();
        assert!(
            !json.contains("withheld") && !json.contains("codec"),
            "{json}"
        );
    }
}
