//! The CDN token in Chzzk's playlist addresses (notes 1.4): `hdnts=st=<unix>~exp=<unix>~acl=…
//! ~hmac=…` in the master's query, and `hdntl=exp=<unix>~…` inside variant paths (sometimes
//! percent-encoded, `exp%3d…%7e`). It expires (9 h in 2023, ~16.5–17 h in 2026); the playlist
//! must be fetched anew from `live-detail` before then. Rekoda and streamlink's fork refresh
//! when `now ≥ exp − 3 h` or when a playlist fetch answers HTTP ≥ 400, and continue with the
//! same quality (`\d+p` in the path; the last variant otherwise). Pure.

use chrono::{DateTime, Utc};

/// How long before `exp` the refresh is due (notes 1.4).
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::hours(3);

/// A playlist token's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistToken {
    pub start: Option<DateTime<Utc>>,
    pub expires: DateTime<Utc>,
}

impl PlaylistToken {
    /// The earliest-expiring token in `url` (query `hdnts` or path `hdntl`); `None` when it
    /// has none, or no readable `exp`.
    pub fn from_url(url: &str) -> Option<PlaylistToken> {
        let lower = url.to_ascii_lowercase();
        let mut best: Option<PlaylistToken> = None;
        for marker in ["hdnts=", "hdntl="] {
            let mut from = 0;
            while let Some(i) = lower[from..].find(marker) {
                let start = from + i + marker.len();
                from = start;
                let raw = &lower[start..];
                let end = raw.find(['&', '?', '#']).unwrap_or(raw.len());
                if let Some(token) = parse_fields(&raw[..end]) {
                    if best.is_none_or(|b| token.expires < b.expires) {
                        best = Some(token);
                    }
                }
            }
        }
        best
    }

    /// When to fetch a fresh address: [`REFRESH_MARGIN`] before expiry, but never earlier
    /// than two thirds into the token's life when its start is known (a short-lived token
    /// must not be "due" from the moment it was issued, and refreshed in a loop).
    pub fn refresh_at(&self) -> DateTime<Utc> {
        let margin = match self.start {
            Some(start) if start < self.expires => REFRESH_MARGIN.min((self.expires - start) / 3),
            _ => REFRESH_MARGIN,
        };
        self.expires - margin
    }

    pub fn refresh_due(&self, now: DateTime<Utc>) -> bool {
        now >= self.refresh_at()
    }
}

/// `st=…~exp=…~acl=…~hmac=…` (percent-encoded or not) → its times.
fn parse_fields(raw: &str) -> Option<PlaylistToken> {
    let decoded = raw
        .replace("%7e", "~")
        .replace("%3d", "=")
        .replace("%2f", "/");
    let mut start = None;
    let mut expires = None;
    for field in decoded.split('~') {
        if let Some(v) = field.strip_prefix("st=") {
            start = unix(v);
        } else if let Some(v) = field.strip_prefix("exp=") {
            expires = unix(v);
        }
    }
    Some(PlaylistToken {
        start,
        expires: expires?,
    })
}

/// Leading digits as Unix seconds; absurd values (beyond chrono's range) are `None`.
fn unix(v: &str) -> Option<DateTime<Utc>> {
    let digits: &str = &v[..v.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    DateTime::from_timestamp(digits.parse().ok()?, 0)
}

/// Whether the recorder should ask `live-detail` for a fresh address: the token is due, or
/// the last playlist fetch answered HTTP ≥ 400.
pub fn should_refresh(url: &str, now: DateTime<Utc>, last_status: Option<u16>) -> bool {
    last_status.is_some_and(|s| s >= 400)
        || PlaylistToken::from_url(url).is_some_and(|t| t.refresh_due(now))
}

/// The quality named in a playlist address: the first `<digits>p` standing alone between
/// separators in its path (`chunklist_360p.m3u8`, `_hls_720p_playlist`, `/480p/`).
pub fn quality_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.len() >= 2
                && w.len() <= 6
                && w.ends_with('p')
                && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_string)
}

/// Of a fresh master's variant addresses, the one with `old`'s quality, else the last one
/// (notes 1.4).
pub fn same_quality<'a>(old: &str, fresh: &'a [String]) -> Option<&'a String> {
    let wanted = quality_of(old);
    wanted
        .and_then(|q| {
            fresh
                .iter()
                .find(|f| quality_of(f).as_deref() == Some(q.as_str()))
        })
        .or(fresh.last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn master_query_token_is_read() {
        let url = "https://x/chzzk/lip2_kr/s/dir/key_hls_playlist.m3u8?hdnts=st=1745577000~exp=1745637000~acl=*/dir/*~hmac=ab12";
        let t = PlaylistToken::from_url(url).unwrap();
        assert_eq!(t.start, Some(at(1745577000)));
        assert_eq!(t.expires, at(1745637000));
        // 60 000 s of life: the margin is the full 3 h.
        assert_eq!(t.refresh_at(), at(1745637000 - 3 * 3600));
        assert!(!should_refresh(
            url,
            at(1745637000 - 3 * 3600 - 1),
            Some(200)
        ));
        assert!(should_refresh(url, at(1745637000 - 3 * 3600), None));
        assert!(should_refresh(url, at(1745577001), Some(403)));
    }

    #[test]
    fn path_tokens_plain_and_encoded_are_read() {
        let plain = "https://x/dir/hdntl=exp=1716000000~acl=*%2fdir%2f*~data=hdntl~hmac=ff/chunklist_360p.m3u8";
        assert_eq!(
            PlaylistToken::from_url(plain).unwrap().expires,
            at(1716000000)
        );
        let encoded = "https://x/dir/480p/hdntl=st%3d1760400000%7eexp%3d1760460000%7eacl%3d*%7edata%3dhdntl%7ehmac%3dab/480p_1_2_3_0_1695_0.m4v?type=hls";
        let t = PlaylistToken::from_url(encoded).unwrap();
        assert_eq!((t.start, t.expires), (Some(at(1760400000)), at(1760460000)));
        // Both kinds: the earlier expiry counts.
        let both = format!("{plain}?hdnts=exp=1716009999~hmac=1");
        assert_eq!(
            PlaylistToken::from_url(&both).unwrap().expires,
            at(1716000000)
        );
    }

    #[test]
    fn short_or_absurd_tokens_do_not_loop_or_panic() {
        let short = "https://x/a.m3u8?hdnts=st=1000~exp=1600~hmac=0";
        assert_eq!(
            PlaylistToken::from_url(short).unwrap().refresh_at(),
            at(1400)
        );
        for bad in [
            "https://x/a.m3u8",
            "https://x/a.m3u8?hdnts=st=1~hmac=0",
            "https://x/a.m3u8?hdnts=exp=~hmac=0",
            "https://x/a.m3u8?hdnts=exp=99999999999999999999999",
            "https://x/a.m3u8?hdnts=exp=-5",
            "hdnts=",
        ] {
            assert_eq!(PlaylistToken::from_url(bad), None, "{bad}");
            assert!(!should_refresh(bad, Utc::now(), None));
        }
    }

    #[test]
    fn the_same_quality_is_chosen_again() {
        assert_eq!(
            quality_of("https://x/d/hdntl=exp=1~x/chunklist_360p.m3u8").as_deref(),
            Some("360p")
        );
        assert_eq!(
            quality_of("https://x/d/d_hls_720p_playlist.m3u8?hdnts=1080p").as_deref(),
            Some("720p")
        );
        assert_eq!(
            quality_of("https://x/d/480p/480p_9_1_0_1.m4v").as_deref(),
            Some("480p")
        );
        assert_eq!(quality_of("https://x/d/audio.m3u8"), None);
        let fresh = vec![
            "https://y/a/chunklist_1080p.m3u8".to_string(),
            "https://y/a/chunklist_720p.m3u8".to_string(),
            "https://y/a/chunklist_360p.m3u8".to_string(),
        ];
        assert_eq!(
            same_quality("https://x/old/chunklist_720p.m3u8", &fresh),
            Some(&fresh[1])
        );
        assert_eq!(
            same_quality("https://x/old/audio.m3u8", &fresh),
            Some(&fresh[2])
        );
        assert_eq!(
            same_quality("https://x/old/chunklist_144p.m3u8", &fresh),
            Some(&fresh[2])
        );
        assert_eq!(same_quality("https://x/a", &[]), None);
    }
}
