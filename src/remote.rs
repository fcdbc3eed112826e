//! Numbers remote services send (token lifetimes, rate-limit waits) made safe to compute
//! with. A service that answers `expires_in: 1e30` or `Retry-After: 18446744073709551615` is
//! broken or hostile; recbot must neither panic on the arithmetic (`Instant + Duration`,
//! `SystemTime + Duration` and chrono's `+` all panic on overflow) nor wait for years. Values are
//! read as `f64` (so any JSON number parses), clamped into a sane range, and a clamp is logged.

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

#[cfg(test)]
mod tests {
    use super::*;

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
