//! Twitch's limits and our politeness, shared by every connection of the account: the JOIN
//! rate ([`JoinLimiter`]) and the pace of new connections ([`ConnectGate`]). Reconnect delays
//! are a [`crate::backoff::Backoff`] with full jitter.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
