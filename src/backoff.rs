//! Waits between retries: exponential growth with a cap, and jitter so that many recordings,
//! uploads, chat connections or front-end routes failing together do not retry in step. Every
//! retry loop takes its waits from here: the stateless [`exponential`] where the caller counts
//! its attempts, the stateful [`Backoff`] where a loop keeps going and starts over after a
//! healthy run.

use std::time::Duration;

use rand::Rng;

/// How much of a wait is left to chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniformly between zero and all of the wait: spreads a crowd of reconnecting clients
    /// (chat shards) the most.
    Full,
    /// Between half and all of the wait: never much faster than the schedule.
    Half,
}

impl Jitter {
    /// `wait` with this jitter, drawing from `rng`.
    pub fn apply(self, wait: Duration, rng: &mut impl Rng) -> Duration {
        match self {
            Jitter::Full => wait.mul_f64(rng.random_range(0.0..=1.0)),
            Jitter::Half => jitter_with(wait, rng),
        }
    }
}

/// Between half and all of `wait`.
pub fn jitter(wait: Duration) -> Duration {
    jitter_with(wait, &mut rand::rng())
}

/// [`jitter`] drawing from `rng`.
pub fn jitter_with(wait: Duration, rng: &mut impl Rng) -> Duration {
    let half = wait / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// `base × 2^attempt` (attempt 0 is the first retry), at most `cap`, without jitter.
pub fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.min(30)).min(cap)
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
    jitter_with(ceiling(attempt, base, cap), rng)
}

/// A retry loop's waits: `initial × 2^attempt` up to `max`, jittered, counting its own
/// attempts, back to the first step on [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: Jitter,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, jitter: Jitter) -> Backoff {
        Backoff {
            initial,
            max,
            jitter,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        ceiling(self.attempt, self.initial, self.max)
    }

    /// The next delay, drawing from `rng`; counts an attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        self.jitter.apply(ceiling, rng)
    }

    /// The pause before the next attempt; `healthy` when the last attempt worked for a while
    /// (so an outage days later starts again from the first step).
    pub fn pause(&mut self, healthy: bool) -> Duration {
        if healthy {
            self.reset();
        }
        self.next_delay(&mut rand::rng())
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Jitter::Full,
        );
        let ceilings: Vec<u64> = (0..10)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay(&mut rng);
                assert!(d <= c);
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        for _ in 0..100 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(60));
        }
        // Full jitter: delays spread over the whole range, not clustered at the cap.
        let delays: Vec<f64> = (0..200)
            .map(|_| b.next_delay(&mut rng).as_secs_f64())
            .collect();
        assert!(delays.iter().any(|d| *d < 15.0) && delays.iter().any(|d| *d > 45.0));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }
}
