//! What was on air but is not recorded: the renditions usher withholds from this viewer
//! (`#EXT-X-SESSION-DATA:DATA-ID="com.amazon.ivs.unavailable-media"`, base64 JSON, sent with
//! `include_unavailable=true`) and the renditions `[recording] codecs` excludes — each only
//! when better than the one chosen. Pure: no I/O. The list is outside data: bounded, and
//! anything unreadable in it is ignored (logged at debug), never a failure.

use base64::Engine;
use serde_json::Value;

use super::variant::{self, Variant};
use crate::rendition::{Codec, Withheld, WithheldWhy};

const DATA_ID: &str = "com.amazon.ivs.unavailable-media";
/// Longest base64 value read (Twitch's are a few hundred bytes).
const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Entries read from the list, and withheld renditions reported.
const MAX_ENTRIES: usize = 32;
/// Longest name and reason code kept (they are shown to people).
const MAX_NAME: usize = 40;
const MAX_REASONS: usize = 4;

/// What the master playlist withholds and `codecs` excludes that is better than `chosen`,
/// best first, each name once.
pub fn better_than(
    master: &m3u8_rs::MasterPlaylist,
    variants: &[Variant],
    chosen: &Variant,
    codecs: &[Codec],
) -> Vec<Withheld> {
    let mut found: Vec<(Variant, WithheldWhy)> = unavailable(master)
        .into_iter()
        .filter(|(v, _)| variant::better(v, chosen))
        .collect();
    for v in variants {
        if !variant::allowed(v, codecs) && variant::better(v, chosen) {
            found.push((v.clone(), WithheldWhy::ExcludedCodec));
        }
    }
    found.sort_by_key(|(v, _)| std::cmp::Reverse((v.rank(), v.source)));
    let mut out: Vec<Withheld> = Vec::new();
    for (v, why) in found {
        if out.iter().any(|w| w.name == v.name) {
            continue;
        }
        out.push(Withheld {
            name: v.name,
            codec: v.codec,
            why,
        });
        if out.len() == MAX_ENTRIES {
            break;
        }
    }
    out
}

/// The video renditions the master's unavailable-media list names, with why each is
/// withheld. Both shapes Twitch has sent are read: v1 (`NAME`, `GROUP-ID`,
/// `AUTHORIZATION_REASONS`, `FILTER_REASONS`) and v2 (`STABLE-VARIANT-ID`, `IVS_NAME`,
/// `IVS-VARIANT-SOURCE`).
pub fn unavailable(master: &m3u8_rs::MasterPlaylist) -> Vec<(Variant, WithheldWhy)> {
    let Some(value) = master
        .session_data
        .iter()
        .find(|d| d.data_id == DATA_ID)
        .and_then(|d| match &d.field {
            m3u8_rs::SessionDataField::Value(v) => Some(v.as_str()),
            m3u8_rs::SessionDataField::Uri(_) => None,
        })
    else {
        return Vec::new();
    };
    match decode(value) {
        Ok(entries) => entries.iter().take(MAX_ENTRIES).filter_map(entry).collect(),
        Err(why) => {
            tracing::debug!(why, "ignoring the master playlist's unavailable-media list");
            Vec::new()
        }
    }
}

fn decode(value: &str) -> Result<Vec<Value>, String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!("longer than {MAX_VALUE_BYTES} bytes"));
    }
    let json = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(value.trim()))
        .map_err(|e| format!("not base64: {e}"))?;
    match serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))? {
        Value::Array(entries) => Ok(entries),
        _ => Err("not a JSON list".into()),
    }
}

/// One entry as a video rendition, or `None` (audio, unreadable).
fn entry(e: &Value) -> Option<(Variant, WithheldWhy)> {
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| e.get(*k).and_then(Value::as_str))
            .map(|s| clean(s, MAX_NAME))
            .filter(|s| !s.is_empty())
    };
    let name = text(&["IVS_NAME", "IVS-NAME", "NAME", "STABLE-VARIANT-ID"])?;
    let codecs = text(&["CODECS"]).unwrap_or_default();
    let codec = Codec::of_codecs_attribute(&codecs);
    let (width, height) = text(&["RESOLUTION"])
        .and_then(|r| {
            let (w, h) = r.split_once('x')?;
            Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
        })
        .unzip();
    let lower = name.to_ascii_lowercase();
    if height.is_none() && (codec.is_none() || lower.contains("audio")) {
        return None;
    }
    let fps = e
        .get("FRAME-RATE")
        .and_then(|f| f.as_f64().or_else(|| f.as_str()?.parse().ok()))
        .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
        .map(|f| f.round() as u32)
        .or_else(|| name.split_once('p').and_then(|(_, f)| f.parse().ok()))
        .or(Some(30));
    let source = text(&["IVS-VARIANT-SOURCE"]).is_some_and(|s| s == "source")
        || text(&["GROUP-ID"]).is_some_and(|g| g == "chunked");
    let reasons = |key: &str| -> Vec<String> {
        e.get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(|r| clean(r, MAX_NAME))
                    .filter(|r| !r.is_empty())
                    .take(MAX_REASONS)
                    .collect()
            })
            .unwrap_or_default()
    };
    let authorization = reasons("AUTHORIZATION_REASONS");
    let why = if authorization.iter().any(|r| r == "AUTHZ_NOT_LOGGED_IN") {
        WithheldWhy::NeedsLogin
    } else {
        let mut all = authorization;
        all.extend(reasons("FILTER_REASONS"));
        all.truncate(MAX_REASONS);
        WithheldWhy::Other { reasons: all }
    };
    let variant = Variant {
        uri: String::new(),
        name,
        height,
        width,
        fps,
        bandwidth: e.get("BANDWIDTH").and_then(Value::as_u64).unwrap_or(0),
        codec,
        source,
        audio_only: false,
        portrait_only: portrait_only(e.get("IVS-GROUPS")),
    };
    Some((variant, why))
}

/// `IVS-GROUPS` (a comma list, or a JSON list) without `landscape`: the vertical version.
fn portrait_only(groups: Option<&Value>) -> bool {
    let names: Vec<String> = match groups {
        Some(Value::String(s)) => s.split(',').map(|g| g.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return false,
    };
    !names.is_empty() && !names.iter().any(|g| g == "landscape")
}

/// Outside text made safe to keep: printable ASCII, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::playlist::{parse, Parsed};

    /// The notes' v1 fixture (TwitchDownloader's M3U8Tests, 2025-06), as usher sends it.
    const V1_JSON: &str = r#"[{"NAME":"1440p60","BANDWIDTH":7736560,"CODECS":"hev1.1.2.L150.90.0.0.0.0.0,mp4a.40.2","RESOLUTION":"2560x1440","FILTER_REASONS":[],"AUTHORIZATION_REASONS":["AUTHZ_NOT_LOGGED_IN"],"GROUP-ID":"chunked","FRAME-RATE":60},{"NAME":"Audio Only","BANDWIDTH":160000,"CODECS":"mp4a.40.2","FILTER_REASONS":["FR_AUDIO_DISALLOWED"],"AUTHORIZATION_REASONS":[],"GROUP-ID":"audio_only"}]"#;
    /// The v2 shape (keys of TwitchDownloader's UnavailableMedia, 2026-07).
    const V2_JSON: &str = r#"[{"STABLE-VARIANT-ID":"2160p60","IVS_NAME":"2160p60","IVS-GROUPS":"landscape","IVS-VARIANT-SOURCE":"source","BANDWIDTH":16000000,"CODECS":"av01.0.12M.10,mp4a.40.2","RESOLUTION":"3840x2160","FRAME-RATE":60.0,"AUTHORIZATION_REASONS":["AUTHZ_NOT_LOGGED_IN"],"FILTER_REASONS":[]},{"STABLE-VARIANT-ID":"1440p60","IVS_NAME":"1440p60","IVS-VARIANT-SOURCE":"transcode","CODECS":"hev1.1.2.L150","RESOLUTION":"2560x1440","FRAME-RATE":"60.000","AUTHORIZATION_REASONS":["AUTHZ_REGION_BLOCKED"],"FILTER_REASONS":["FR_X"]}]"#;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn master_with(value_attr: &str) -> m3u8_rs::MasterPlaylist {
        let text = format!(
            "#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"{DATA_ID}\",{value_attr}\n\
             #EXT-X-STREAM-INF:BANDWIDTH=9000000,RESOLUTION=1920x1080,CODECS=\"avc1.64002A,mp4a.40.2\",FRAME-RATE=60.000,IVS-NAME=\"1080p60\",IVS-VARIANT-SOURCE=\"transcode\"\n\
             https://x/1080p60.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS=\"hev1.1.2.L120,mp4a.40.2\",FRAME-RATE=60.000,IVS-NAME=\"1080p60 HEVC\",IVS-VARIANT-SOURCE=\"source\"\n\
             https://x/hevc.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS=\"avc1.4D401F,mp4a.40.2\",FRAME-RATE=60.000,IVS-NAME=\"720p60\"\n\
             https://x/720p60.m3u8\n"
        );
        match parse(text.as_bytes()).unwrap() {
            Parsed::Master(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn names(list: &[(Variant, WithheldWhy)]) -> Vec<(String, Option<u32>, Option<u32>)> {
        list.iter()
            .map(|(v, _)| (v.name.clone(), v.height, v.fps))
            .collect()
    }

    #[test]
    fn both_shapes_are_read_and_audio_is_left_out() {
        let v1 = unavailable(&master_with(&format!("VALUE=\"{}\"", b64(V1_JSON))));
        assert_eq!(names(&v1), [("1440p60".into(), Some(1440), Some(60))]);
        assert_eq!(v1[0].1, WithheldWhy::NeedsLogin);
        assert_eq!(v1[0].0.codec, Some(Codec::H265));
        assert!(v1[0].0.source, "the chunked group is the source");
        let v2 = unavailable(&master_with(&format!("VALUE=\"{}\"", b64(V2_JSON))));
        assert_eq!(
            names(&v2),
            [
                ("2160p60".into(), Some(2160), Some(60)),
                ("1440p60".into(), Some(1440), Some(60))
            ]
        );
        assert_eq!(v2[0].0.codec, Some(Codec::Av1));
        assert!(v2[0].0.source);
        assert_eq!(
            v2[1].1,
            WithheldWhy::Other {
                reasons: vec!["AUTHZ_REGION_BLOCKED".into(), "FR_X".into()]
            }
        );
    }

    #[test]
    fn hostile_or_broken_lists_are_ignored() {
        let huge = b64(&format!("[{}]", "{\"NAME\":\"x\"},".repeat(1500)));
        for attr in [
            "VALUE=\"%%%not base64%%%\"".to_string(),
            format!("VALUE=\"{}\"", b64("{not json")),
            format!("VALUE=\"{}\"", b64("{\"NAME\":\"1440p60\"}")),
            format!("VALUE=\"{}\"", b64("[1, \"x\", null, {\"NAME\": 5}]")),
            format!("VALUE=\"{huge}\""),
            "URI=\"https://elsewhere/list.json\"".to_string(),
        ] {
            let m = master_with(&attr);
            assert_eq!(m.variants.len(), 3, "{attr}");
            assert!(unavailable(&m).is_empty(), "{attr}");
        }
        // A malformed session-data tag does not break the master playlist either.
        let m = master_with("LANGUAGE=\"en\"");
        assert_eq!(m.variants.len(), 3);
        assert!(unavailable(&m).is_empty());
        // Names are cleaned and capped; entries are capped.
        let noisy = format!(
            "[{}]",
            vec![
                r#"{"NAME":"1440p60\u0007<script>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","RESOLUTION":"2560x1440"}"#;
                100
            ]
            .join(",")
        );
        let list = unavailable(&master_with(&format!("VALUE=\"{}\"", b64(&noisy))));
        assert_eq!(list.len(), MAX_ENTRIES);
        assert_eq!(list[0].0.name.len(), MAX_NAME);
        assert!(!list[0].0.name.contains('\u{7}'));
    }

    #[test]
    fn only_what_is_better_than_the_choice_is_reported() {
        let m = master_with(&format!("VALUE=\"{}\"", b64(V1_JSON)));
        let vs = variant::variants(&m);
        let h264 = [Codec::H264];
        let chosen = variant::select(&vs, recbot_commands::Quality::BEST, &h264).unwrap();
        assert_eq!(chosen.name, "1080p60");
        let withheld = better_than(&m, &vs, chosen, &h264);
        assert_eq!(
            withheld,
            [
                Withheld {
                    name: "1440p60".into(),
                    codec: Some(Codec::H265),
                    why: WithheldWhy::NeedsLogin
                },
                // The HEVC source of the same size, excluded by the config.
                Withheld {
                    name: "1080p60 HEVC".into(),
                    codec: Some(Codec::H265),
                    why: WithheldWhy::ExcludedCodec
                },
            ]
        );
        // Recording the HEVC source, only the 1440p60 is missed.
        let all = Codec::ALL;
        let chosen = variant::select(&vs, recbot_commands::Quality::BEST, &all).unwrap();
        assert_eq!(chosen.name, "1080p60 HEVC");
        let withheld = better_than(&m, &vs, chosen, &all);
        assert_eq!(withheld.len(), 1);
        assert_eq!(withheld[0].name, "1440p60");
        // Nothing withheld when nothing better is listed.
        let plain = master_with("VALUE=\"W10=\"");
        let vs = variant::variants(&plain);
        let chosen = variant::select(&vs, recbot_commands::Quality::BEST, &all).unwrap();
        assert!(better_than(&plain, &vs, chosen, &all).is_empty());
    }
}
