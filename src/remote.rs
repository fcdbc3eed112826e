//! Numbers remote services send (token lifetimes, rate-limit waits) made safe to compute
//! with. A service that answers `expires_in: 1e30` or `Retry-After: 18446744073709551615` is
//! broken or hostile; recbot must neither panic on the arithmetic (`Instant + Duration`,
//! `SystemTime + Duration` and chrono's `+` all panic on overflow) nor wait for years. Values are
//! read as `f64` (so any JSON number parses), clamped into a sane range, and a clamp is logged.
//! Counts and ids in JSON answers ([`count`], [`code`]) and bodies ([`body`]) get the same care:
//! whole and bounded, or unknown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

/// Longest token lifetime recbot believes. Twitch's app tokens live about 60 days, user and
/// Google access tokens hours; a longer claim is used for at most this long, then renewed.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// `secs` from `service` (what it is: `what`) as a wait of at most `max`. Not a number or
/// negative is no wait; more than `max` is `max`, reported.
pub fn wait(service: &str, what: &str, secs: f64, max: Duration) -> Duration {
    if !secs.is_finite() || secs > max.as_secs_f64() {
        warn!(
            service,
            what,
            value = secs,
            max_secs = max.as_secs(),
            "a remote service asked for an absurd wait; waiting at most the maximum"
        );
        return max;
    }
    Duration::from_secs_f64(secs.max(0.0))
}

/// A token lifetime of `secs` from `service`, at most [`MAX_TOKEN_LIFETIME`] (reported when
/// clamped). `None` when it is not positive (no known expiry).
pub fn lifetime(service: &str, secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs <= 0.0 {
        return None;
    }
    Some(wait(service, "token lifetime", secs, MAX_TOKEN_LIFETIME))
}

/// When a token that `service` says lives `secs` from `now` expires (see [`lifetime`]).
pub fn expiry(service: &str, now: DateTime<Utc>, secs: f64) -> Option<DateTime<Utc>> {
    let lifetime = chrono::Duration::from_std(lifetime(service, secs)?).ok()?;
    now.checked_add_signed(lifetime)
}

/// Largest count or id believed from a remote JSON answer: 2^53, where JSON numbers stop
/// being exact in the JavaScript that produced them.
pub const MAX_COUNT: u64 = 1 << 53;

/// A non-negative whole number from a remote JSON value (`123`, `123.0`, `"123"`), at most
/// [`MAX_COUNT`]. Negative, fractional, absurd or non-numeric values are `None`: a viewer
/// count of `-1` or an id of `1e300` is unknown, not a number to compute with.
pub fn count(value: &serde_json::Value) -> Option<u64> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| {
                    f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f <= MAX_COUNT as f64
                })
                .map(|f| f as u64)
        })?,
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 20 => s.parse().ok()?,
        _ => return None,
    };
    (n <= MAX_COUNT).then_some(n)
}

/// A signed whole number (a remote error code such as `-352`) from a JSON value; `None`
/// when it is not one or beyond ±[`MAX_COUNT`].
pub fn code(value: &serde_json::Value) -> Option<i64> {
    let n = value.as_i64()?;
    (n.unsigned_abs() <= MAX_COUNT).then_some(n)
}

/// Why a remote body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer broke off: {0}")]
    Transport(#[from] reqwest::Error),
}

/// The body of `response`, refused beyond `max` bytes (a declared length is checked first, so
/// an endless body is cut off without reading it whole).
pub async fn body(mut response: reqwest::Response, max: usize) -> Result<bytes::Bytes, BodyError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_counts_are_whole_and_bounded() {
        use serde_json::json;
        for (v, want) in [
            (json!(18553740), Some(18553740)),
            (json!(12.0), Some(12)),
            (json!("18553740"), Some(18553740)),
            (json!(-1), None),
            (json!(1.5), None),
            (json!(1e300), None),
            (json!(u64::MAX), None),
            (json!("-3"), None),
            (json!("x"), None),
            (json!(null), None),
            (json!([1]), None),
        ] {
            assert_eq!(count(&v), want, "{v}");
        }
        assert_eq!(code(&json!(-352)), Some(-352));
        assert_eq!(code(&json!(i64::MIN)), None);
        assert_eq!(code(&json!("0")), None);
    }

    #[test]
    fn absurd_numbers_are_clamped() {
        let max = Duration::from_secs(600);
        for (secs, expected) in [
            (1.5, Duration::from_millis(1500)),
            (-3.0, Duration::ZERO),
            (600.0, max),
            (1e30, max),
            (u64::MAX as f64, max),
            (f64::INFINITY, max),
            (f64::NAN, max),
        ] {
            assert_eq!(wait("test", "retry", secs, max), expected, "{secs}");
        }
        assert_eq!(lifetime("test", 0.0), None);
        assert_eq!(lifetime("test", -1.0), None);
        assert_eq!(lifetime("test", 3600.0), Some(Duration::from_secs(3600)));
        assert_eq!(lifetime("test", 1e30), Some(MAX_TOKEN_LIFETIME));
        let now = Utc::now();
        let far = expiry("test", now, u64::MAX as f64).unwrap();
        assert_eq!((far - now).num_days(), 90);
    }
}
