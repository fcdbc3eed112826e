//! `[postprocess]`: what ffmpeg does to a finished part before its upload (nothing, a remux to
//! MP4, or a transcode), where ffmpeg and ffprobe are, the encoder settings, and how many jobs
//! run at once at which CPU priority.

use std::path::PathBuf;

use serde::Deserialize;

use super::fail;

/// What happens to a finished part before its upload (one type with `add … post=`).
pub use recbot_commands::PostMode;

/// How a transcode spends its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateControl {
    /// Constant rate factor (`crf`).
    Crf,
    /// Constant quantizer (`cq`).
    Cq,
    /// Average bitrate (`bitrate_kbps`).
    Abr,
    /// Variable bitrate capped by `bitrate_kbps` with `bufsize_kbps`.
    Vbr,
    /// Constant bitrate (`bitrate_kbps`, min = max).
    Cbr,
}

impl RateControl {
    pub fn as_str(self) -> &'static str {
        match self {
            RateControl::Crf => "crf",
            RateControl::Cq => "cq",
            RateControl::Abr => "abr",
            RateControl::Vbr => "vbr",
            RateControl::Cbr => "cbr",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    X264,
    X265,
}

impl Encoder {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoder::X264 => "x264",
            Encoder::X265 => "x265",
        }
    }

    /// ffmpeg's name of the encoder.
    pub fn ffmpeg_codec(self) -> &'static str {
        match self {
            Encoder::X264 => "libx264",
            Encoder::X265 => "libx265",
        }
    }
}

/// The presets x264 and x265 share.
const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postprocess {
    /// `none` (default): parts are uploaded as recorded.
    pub mode: PostMode,
    /// The ffmpeg program (a name looked up in `PATH`, or a path).
    pub ffmpeg: PathBuf,
    /// The ffprobe program that verifies each output.
    pub ffprobe: PathBuf,
    pub rate_control: RateControl,
    pub encoder: Encoder,
    /// `rate_control = "crf"`: 0 (lossless) to 51.
    pub crf: u8,
    /// `rate_control = "cq"`: the constant quantizer, 0 to 51.
    pub cq: u8,
    /// `abr`/`vbr`/`cbr`: the target (`abr`, `cbr`) or ceiling (`vbr`) in kbit/s.
    pub bitrate_kbps: u32,
    /// The rate-control buffer in kbit/s (`vbr`/`cbr`); default twice `bitrate_kbps`.
    pub bufsize_kbps: Option<u32>,
    pub preset: String,
    /// Jobs running at once (each one ffmpeg).
    pub max_jobs: u32,
    /// CPU priority of ffmpeg (`nice -n`), 0 to 19, so recording never starves.
    pub nice: u8,
    /// Keep the recorded part beside the verified MP4 (else it is removed once verified).
    pub keep_original: bool,
}

impl Default for Postprocess {
    fn default() -> Self {
        Postprocess {
            mode: PostMode::None,
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            rate_control: RateControl::Crf,
            encoder: Encoder::X264,
            crf: 23,
            cq: 23,
            bitrate_kbps: 6000,
            bufsize_kbps: None,
            preset: "veryfast".into(),
            max_jobs: 1,
            nice: 10,
            keep_original: true,
        }
    }
}

impl Postprocess {
    /// The rate-control buffer: `bufsize_kbps`, or twice the bitrate.
    pub fn bufsize(&self) -> u32 {
        self.bufsize_kbps
            .unwrap_or(self.bitrate_kbps.saturating_mul(2))
    }

    /// The `[postprocess]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.ffmpeg.as_os_str().is_empty() {
            return fail("postprocess.ffmpeg", "must name the ffmpeg program");
        }
        if self.ffprobe.as_os_str().is_empty() {
            return fail("postprocess.ffprobe", "must name the ffprobe program");
        }
        if self.crf > 51 {
            return fail("postprocess.crf", "must be between 0 and 51");
        }
        if self.cq > 51 {
            return fail("postprocess.cq", "must be between 0 and 51");
        }
        if !(100..=200_000).contains(&self.bitrate_kbps) {
            return fail(
                "postprocess.bitrate_kbps",
                "must be between 100 and 200000 kbit/s",
            );
        }
        if let Some(b) = self.bufsize_kbps {
            if !(100..=400_000).contains(&b) {
                return fail(
                    "postprocess.bufsize_kbps",
                    "must be between 100 and 400000 kbit/s",
                );
            }
        }
        if !PRESETS.contains(&self.preset.as_str()) {
            return fail(
                "postprocess.preset",
                "must be one of ultrafast, superfast, veryfast, faster, fast, medium, slow, \
                 slower, veryslow",
            );
        }
        if !(1..=8).contains(&self.max_jobs) {
            return fail("postprocess.max_jobs", "must be between 1 and 8");
        }
        if self.nice > 19 {
            return fail(
                "postprocess.nice",
                "must be between 0 (normal) and 19 (lowest)",
            );
        }
        Ok(())
    }

    /// What a transcode does, as `check-config` and the README say it.
    fn transcode_summary(&self) -> String {
        let rate = match self.rate_control {
            RateControl::Crf => format!("crf {}", self.crf),
            RateControl::Cq => format!("cq {}", self.cq),
            RateControl::Abr => format!("abr {} kbit/s", self.bitrate_kbps),
            rc => format!(
                "{} {} kbit/s, buffer {} kbit/s",
                rc.as_str(),
                self.bitrate_kbps,
                self.bufsize()
            ),
        };
        format!(
            "{} {rate}, preset {}, audio copied",
            self.encoder.as_str(),
            self.preset
        )
    }

    /// The `check-config` line (whether ffmpeg runs is checked and said by `check-config`
    /// itself, only when the mode needs it).
    pub(super) fn summary(&self) -> String {
        let what = match self.mode {
            PostMode::None => return "post-process:    none (parts uploaded as recorded)\n".into(),
            PostMode::Remux => "remux to MP4 (copy, faststart)".to_string(),
            PostMode::Transcode => format!("transcode to MP4 ({})", self.transcode_summary()),
        };
        format!(
            "post-process:    {what}; {} job(s) at nice {}; original {}\n",
            self.max_jobs,
            self.nice,
            if self.keep_original {
                "kept"
            } else {
                "removed once verified"
            },
        )
    }
}
