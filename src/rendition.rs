//! Renditions as the workers, the config and the front-ends name them: the video codecs Twitch
//! serves ([`Codec`]), and a rendition that was on air but not recorded ([`Withheld`], with
//! why). Data only: the words for people are in `frontend/render/`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A video codec, as config and usher's `supported_codecs` spell it (`h264`, `h265`, `av1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Av1,
    H265,
    H264,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::Av1, Codec::H265, Codec::H264];

    /// `h264`, `h265`, `av1` (the config's and usher's names).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Av1 => "av1",
            Codec::H265 => "h265",
            Codec::H264 => "h264",
        }
    }

    pub fn parse(name: &str) -> Option<Codec> {
        match name.trim().to_ascii_lowercase().as_str() {
            "av1" => Some(Codec::Av1),
            "h265" => Some(Codec::H265),
            "h264" => Some(Codec::H264),
            _ => None,
        }
    }

    /// The video codec of an HLS `CODECS` attribute (`avc1.64002A,mp4a.40.2` → h264;
    /// `hvc1`/`hev1` → h265; `av01` → av1); `None` when it names no video codec recbot knows.
    pub fn of_codecs_attribute(codecs: &str) -> Option<Codec> {
        codecs.split(',').find_map(|c| {
            let family = c.trim().split('.').next().unwrap_or("");
            match family.to_ascii_lowercase().as_str() {
                "avc1" | "avc3" => Some(Codec::H264),
                "hvc1" | "hev1" => Some(Codec::H265),
                "av01" => Some(Codec::Av1),
                _ => None,
            }
        })
    }

    /// Parses a comma list (`av1,h265,h264`): every entry a codec, no repeats, at least one.
    pub fn parse_list(list: &str) -> Result<Vec<Codec>, String> {
        let mut codecs = Vec::new();
        for name in list.split(',') {
            let codec = Codec::parse(name).ok_or_else(|| {
                format!(
                    "`{}` is not a codec: use a comma list of av1, h265 and h264",
                    name.trim()
                )
            })?;
            if codecs.contains(&codec) {
                return Err(format!("`{}` is listed twice", codec.as_str()));
            }
            codecs.push(codec);
        }
        Ok(codecs)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rendition that was on air but is not the one recorded, because it is better than it and
/// recbot could not or would not take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    /// `1440p60`, as usher names it.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    pub why: WithheldWhy,
}

/// Why a better rendition was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WithheldWhy {
    /// Twitch withholds it from logged-out viewers (`AUTHZ_NOT_LOGGED_IN`).
    NeedsLogin,
    /// Its codec is not in `[recording] codecs`.
    ExcludedCodec,
    /// Twitch withholds it for another reason (its reason codes, as sent, capped).
    Other { reasons: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_from_names_and_attributes() {
        for (attr, codec) in [
            ("avc1.64002A,mp4a.40.2", Some(Codec::H264)),
            ("mp4a.40.2,hev1.1.2.L150.90.0.0.0.0.0", Some(Codec::H265)),
            ("hvc1.2.4.L153.B0", Some(Codec::H265)),
            ("av01.0.12M.10,mp4a.40.2", Some(Codec::Av1)),
            ("mp4a.40.2", None),
            ("", None),
        ] {
            assert_eq!(Codec::of_codecs_attribute(attr), codec, "{attr}");
        }
        assert_eq!(
            Codec::parse_list("av1, H265,h264").unwrap(),
            [Codec::Av1, Codec::H265, Codec::H264]
        );
        for bad in ["", "h264,,av1", "vp9", "h264,h264"] {
            assert!(Codec::parse_list(bad).is_err(), "{bad}");
        }
    }
}
