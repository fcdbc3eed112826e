//! Lenient readings of config values: strings that may be written as numbers or bools
//! (ids, environment values), and the recording quality.

use recbot_commands::Quality;
use serde::{Deserialize, Deserializer};

/// Accepts a string, or a number/bool written without quotes (IDs such as a Discord guild id
/// are numbers to most people, and environment values carry no type).
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Any::deserialize(d)? {
        Any::S(s) => s,
        Any::I(i) => i.to_string(),
        Any::F(f) => f.to_string(),
        Any::B(b) => b.to_string(),
    })
}

pub(super) fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    lenient_string(d).map(Some)
}

pub(super) fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_string")] String);
    Ok(Vec::<Wrap>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

pub(super) fn quality<'de, D: Deserializer<'de>>(d: D) -> Result<Quality, D::Error> {
    let s = String::deserialize(d)?;
    Quality::parse(&s).map_err(serde::de::Error::custom)
}

/// A comma list of video codecs (`"av1,h265,h264"`), as usher's `supported_codecs` takes it:
/// each one known, none twice, at least one.
pub(super) fn codec_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::rendition::Codec>, D::Error> {
    let s = String::deserialize(d)?;
    crate::rendition::Codec::parse_list(&s).map_err(serde::de::Error::custom)
}
