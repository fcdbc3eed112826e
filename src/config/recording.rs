//! `[recording]`: quality, file names, parts, segment limits and where HLS sources may be.

use recbot_commands::Quality;
use serde::Deserialize;

use super::fail;
use super::lenient::quality;
use crate::rendition::Codec;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    #[serde(deserialize_with = "quality")]
    pub quality: Quality,
    /// Video codecs a rendition may have to be recorded (`best` and named qualities choose
    /// among these); a better rendition in another codec is reported as withheld.
    pub codecs: Vec<Codec>,
    /// Relative to recordings_dir; `{login}`, `{started:<strftime>}` (UTC), `{title}`, …
    pub file_template: String,
    /// Roll to a new part after this long (YouTube accepts at most 12 h).
    pub max_part_hours: f64,
    /// No new segment for max(this, 3 × target duration) → new token and playlist; still
    /// nothing after as long again → `RecordingStalled`.
    pub stall_timeout_secs: u64,
    /// The part's data and its progress checkpoint are fsynced at least this often (data
    /// first): a power cut loses at most this much of a recording.
    pub sync_interval_secs: u64,
    /// `add hls` sources (and every address their playlists and redirects lead to) may be
    /// on loopback, private, link-local and other non-public addresses.
    pub allow_private_sources: bool,
    /// Non-public places `add hls` sources may still be read from: `host`, `host:port`,
    /// IP addresses (with or without a port) and networks (`10.0.0.0/8`).
    pub allowed_sources: Vec<crate::allowed_source::AllowedSource>,
    /// A segment may hold at most 2 × its duration (or the target duration, if longer) at
    /// this bitrate (Mbit/s); a longer body is aborted and reported as a gap.
    pub max_segment_mbps: f64,
    /// And never more than this many MiB, whatever its duration.
    pub max_segment_mb: u64,
    /// A segment download may take at most this many times the target duration …
    pub segment_time_factor: f64,
    /// … but never less than this many seconds.
    pub segment_min_secs: f64,
    /// Gaps reported within this many seconds of the last gap notice are folded into one
    /// notice (the sidecar still lists each gap).
    pub gap_notice_secs: u64,
    /// When a Twitch session ends with gaps, fetch what is missing from the broadcast's VOD.
    pub vod_fill: bool,
    /// How long to wait for the VOD to be listed and to cover the gaps (it is still
    /// processing right after the stream) before giving up.
    pub vod_fill_wait_minutes: f64,
    /// How often to look again while waiting.
    pub vod_fill_poll_secs: f64,
    /// Write an HLS index (`<name>.m3u8`, byte ranges into the part) beside each part, so
    /// players can play and seek recordings (also in progress) and `recbot cut` can cut them.
    pub index: bool,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            quality: Quality::BEST,
            codecs: Codec::ALL.to_vec(),
            file_template: "{login}/{started:%Y-%m-%d_%H-%M-%S}_{title}.ts".into(),
            max_part_hours: 11.5,
            stall_timeout_secs: 30,
            sync_interval_secs: 30,
            allow_private_sources: false,
            allowed_sources: Vec::new(),
            max_segment_mbps: 100.0,
            max_segment_mb: 256,
            segment_time_factor: 4.0,
            segment_min_secs: 20.0,
            gap_notice_secs: 60,
            vod_fill: true,
            vod_fill_wait_minutes: 120.0,
            vod_fill_poll_secs: 60.0,
            index: true,
        }
    }
}

impl Recording {
    /// The `[recording]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !(self.max_part_hours.is_finite() && self.max_part_hours > 0.0) {
            return fail("recording.max_part_hours", "must be more than 0 hours");
        }
        if self.codecs.is_empty() {
            return fail(
                "recording.codecs",
                "must list at least one of \"av1\", \"h265\", \"h264\"",
            );
        }
        if !self.file_template.contains("{login}") && !self.file_template.contains("{started") {
            return fail(
                "recording.file_template",
                "must contain {login} or {started:…} so recordings get distinct names",
            );
        }
        if let Err(e) = crate::archive::layout::validate_template(&self.file_template) {
            return Err(("recording.file_template".into(), e));
        }
        if self.stall_timeout_secs == 0 {
            return fail("recording.stall_timeout_secs", "must be at least 1 second");
        }
        if !(1..=3600).contains(&self.sync_interval_secs) {
            return fail(
                "recording.sync_interval_secs",
                "must be between 1 and 3600 seconds",
            );
        }
        self.validate_segment_limits()?;
        self.validate_vod_fill()
    }

    fn validate_vod_fill(&self) -> Result<(), (String, String)> {
        if !(self.vod_fill_wait_minutes.is_finite()
            && (0.0..=7.0 * 24.0 * 60.0).contains(&self.vod_fill_wait_minutes))
        {
            return fail(
                "recording.vod_fill_wait_minutes",
                "must be between 0 and 10080 minutes (a week)",
            );
        }
        if !(self.vod_fill_poll_secs.is_finite()
            && self.vod_fill_poll_secs >= 0.05
            && self.vod_fill_poll_secs <= 3600.0)
        {
            return fail(
                "recording.vod_fill_poll_secs",
                "must be between 0.05 and 3600 seconds",
            );
        }
        Ok(())
    }

    /// The `check-config` line on filling gaps from Twitch VODs.
    fn vod_fill_summary(&self) -> String {
        if self.vod_fill {
            format!(
                "on for Twitch logins: waiting up to {} min for the VOD, looking every {} s",
                self.vod_fill_wait_minutes, self.vod_fill_poll_secs
            )
        } else {
            "off (vod_fill = false): gaps stay gaps".to_string()
        }
    }

    fn validate_segment_limits(&self) -> Result<(), (String, String)> {
        if !(self.max_segment_mbps.is_finite() && self.max_segment_mbps > 0.0) {
            return fail("recording.max_segment_mbps", "must be more than 0 Mbit/s");
        }
        if self.max_segment_mb == 0 {
            return fail("recording.max_segment_mb", "must be at least 1 MiB");
        }
        if !(self.segment_time_factor.is_finite() && self.segment_time_factor >= 1.0) {
            return fail(
                "recording.segment_time_factor",
                "must be at least 1 (a segment needs its own duration to arrive live)",
            );
        }
        if !(self.segment_min_secs.is_finite()
            && self.segment_min_secs > 0.0
            && self.segment_min_secs <= 3600.0)
        {
            return fail(
                "recording.segment_min_secs",
                "must be more than 0 and at most 3600 seconds",
            );
        }
        Ok(())
    }

    /// The `check-config` lines on recording, segments and HLS sources.
    pub(super) fn summary(&self) -> String {
        let hls_sources = if self.allow_private_sources {
            "any address (allow_private_sources = true)".to_string()
        } else if self.allowed_sources.is_empty() {
            "public addresses only".to_string()
        } else {
            format!(
                "public addresses, and {}",
                self.allowed_sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "recording:       quality {} in {}, parts of at most {} h, names {}\n\
             segments:        at most {} MiB and {} Mbit/s each, {} x the target duration (at least {} s); \
             fsync every {} s; gap notices at most every {} s\n\
             hls sources:     {hls_sources}\n\
             vod fill:        {}\n\
             index:           {}\n",
            self.quality,
            self.codecs
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.max_part_hours,
            self.file_template,
            self.max_segment_mb,
            self.max_segment_mbps,
            self.segment_time_factor,
            self.segment_min_secs,
            self.sync_interval_secs,
            self.gap_notice_secs,
            self.vod_fill_summary(),
            if self.index {
                "an HLS index (<name>.m3u8) beside each part"
            } else {
                "off (no <name>.m3u8 beside parts)"
            },
        )
    }
}
