//! Twitch's limits and our politeness, shared by every connection of the account: the JOIN
//! rate ([`JoinLimiter`]), the pace of new connections ([`ConnectGate`]) and reconnect delays
//! ([`Backoff`], exponential with full jitter).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// At most `limit` JOINs in any window of `window`, for all connections together. The window
/// it enforces is 10 % longer than configured, so network jitter cannot squeeze two bursts
/// into one of Twitch's windows.
#[derive(Debug)]
pub struct JoinLimiter {
    limit: usize,
    window: Duration,
    /// When each of the last (at most `limit`) JOINs was sent.
    sent: Mutex<VecDeque<Instant>>,
}

impl JoinLimiter {
    pub fn new(limit: usize, window: Duration) -> JoinLimiter {
        JoinLimiter {
            limit: limit.max(1),
            window: window + window / 10,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until at least one JOIN is allowed, then takes up to `want`. Cancel-safe:
    /// nothing is taken unless the future completes.
    pub async fn take(&self, want: usize) -> usize {
        loop {
            match self.take_or_wait(want) {
                Ok(n) => return n,
                Err(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// `Ok(n)`: took `n` (≥ 1, or 0 when `want` is 0); `Err(t)`: none free before `t`.
    fn take_or_wait(&self, want: usize) -> Result<usize, Instant> {
        if want == 0 {
            return Ok(0);
        }
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            sent.pop_front();
        }
        let free = self.limit - sent.len();
        if free == 0 {
            return Err(*sent.front().expect("full") + self.window);
        }
        let n = want.min(free);
        sent.extend(std::iter::repeat_n(now, n));
        Ok(n)
    }
}

/// At most one new connection per `interval`, whoever opens it.
#[derive(Debug)]
pub struct ConnectGate {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl ConnectGate {
    pub fn new(interval: Duration) -> ConnectGate {
        ConnectGate {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's turn. A cancelled wait still uses its slot (never too fast).
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Reconnect delays: uniformly random between 0 and `min(max, initial × 2^attempt)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rng.random_range(0.0..=1.0))
    }

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

    #[tokio::test(start_paused = true)]
    async fn joins_never_exceed_the_window() {
        let limiter = JoinLimiter::new(20, Duration::from_secs(10));
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < 100 {
            let n = limiter.take(7).await;
            assert!((1..=7).contains(&n));
            times.extend(std::iter::repeat_n(Instant::now(), n));
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(10))
                .count();
            assert!(
                in_window <= 20,
                "{in_window} JOINs within 10 s at {:?}",
                *t - start
            );
        }
        // 100 JOINs at 20 per 11 s: the 81st waits for the fifth window.
        assert!(times[99] - start >= Duration::from_secs(44));
        assert!(limiter.take_or_wait(1).is_err(), "the window is full");
    }

    #[tokio::test(start_paused = true)]
    async fn connections_are_spaced() {
        let gate = ConnectGate::new(Duration::from_secs(2));
        let start = Instant::now();
        for i in 0..4 {
            gate.wait().await;
            assert_eq!(Instant::now() - start, Duration::from_secs(2 * i));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = Instant::now();
        gate.wait().await;
        assert_eq!(Instant::now(), now, "no wait after a quiet period");
    }

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
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
