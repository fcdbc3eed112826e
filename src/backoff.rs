//! Waits between retries: exponential growth with a cap, and jitter (between half and all of
//! the wait) so that many recordings, uploads or front-end routes failing together do not
//! retry in step. Every retry loop takes its waits from here.

use std::time::Duration;

use rand::Rng;

/// Between half and all of `wait`.
pub fn jitter(wait: Duration) -> Duration {
    jitter_with(wait, &mut rand::rng())
}

/// [`jitter`] drawing from `rng`.
pub fn jitter_with(wait: Duration, rng: &mut impl Rng) -> Duration {
    let half = wait / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// `base × 2^attempt` (attempt 0 is the first retry), at most `cap`, jittered.
pub fn exponential(attempt: u32, base: Duration, cap: Duration) -> Duration {
    exponential_with(attempt, base, cap, &mut rand::rng())
}

/// [`exponential`] drawing from `rng`.
pub fn exponential_with(
    attempt: u32,
    base: Duration,
    cap: Duration,
    rng: &mut impl Rng,
) -> Duration {
    jitter_with(base.saturating_mul(1u32 << attempt.min(30)).min(cap), rng)
}
