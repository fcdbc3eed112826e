//! When each Chzzk channel is checked next: the stepped backoff of `[chzzk] poll_schedule`
//! ([`StepBackoff`], one per channel; pure), the channels' next checks in one place
//! ([`Checks`]: which is due, when each is next, for `status`), and the [`Pacer`] that bounds
//! the total request rate whatever the number of channels (tokio time).
//!
//! Chzzk documents no rate limit; tools poll each channel every 10–60 s and an unofficial
//! doc warns that bulk calls risk IP blocks (notes 1.6), hence both the backoff and the pacer.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::PollStep;

/// A channel's position in the schedule: after each check that found it offline the wait
/// moves down the steps; after the last step it starts over; live or newly added → the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepBackoff {
    steps: Vec<PollStep>,
    /// The step the next miss is counted in, and the misses already counted in it.
    step: usize,
    used: u32,
}

impl StepBackoff {
    /// A schedule from the config (never empty: the config check refuses that; an empty one
    /// here waits a minute, so nothing spins).
    pub fn new(steps: &[PollStep]) -> StepBackoff {
        StepBackoff {
            steps: steps.to_vec(),
            step: 0,
            used: 0,
        }
    }

    /// The wait before the next check, after a check that found the channel offline.
    pub fn after_miss(&mut self) -> Duration {
        let Some(current) = self.steps.get(self.step) else {
            return Duration::from_secs(60);
        };
        let wait = current.wait;
        self.used += 1;
        if self.used >= current.count {
            self.used = 0;
            self.step = (self.step + 1) % self.steps.len();
        }
        wait
    }

    /// Back to the first step: the channel was live, or was just added.
    pub fn reset(&mut self) {
        self.step = 0;
        self.used = 0;
    }
}

/// Every watched channel's next check. Keys are whatever the caller names channels by.
#[derive(Debug)]
pub struct Checks<K> {
    steps: Vec<PollStep>,
    channels: HashMap<K, (StepBackoff, Instant)>,
}

impl<K: Eq + Hash + Clone> Checks<K> {
    pub fn new(steps: &[PollStep]) -> Checks<K> {
        Checks {
            steps: steps.to_vec(),
            channels: HashMap::new(),
        }
    }

    /// A channel added (or added again): checked now, from the top of the schedule.
    pub fn add(&mut self, key: K, now: Instant) {
        self.channels
            .insert(key, (StepBackoff::new(&self.steps), now));
    }

    pub fn remove(&mut self, key: &K) {
        self.channels.remove(key);
    }

    /// A check found the channel offline: its next check moves down the schedule. Returns
    /// when that is (`None` for a channel not watched).
    pub fn offline(&mut self, key: &K, now: Instant) -> Option<Instant> {
        let (backoff, next) = self.channels.get_mut(key)?;
        *next = now + backoff.after_miss();
        Some(*next)
    }

    /// The channel was live: back to the top; its next check is `after` from now (while it
    /// is live the recorder watches it; this is when detection looks again).
    pub fn live(&mut self, key: &K, now: Instant, after: Duration) -> Option<Instant> {
        let (backoff, next) = self.channels.get_mut(key)?;
        backoff.reset();
        *next = now + after;
        Some(*next)
    }

    /// A check that failed (network, 5xx): tried again after `after`, the step unchanged.
    pub fn failed(&mut self, key: &K, now: Instant, after: Duration) -> Option<Instant> {
        let (_, next) = self.channels.get_mut(key)?;
        *next = now + after;
        Some(*next)
    }

    /// When `key` is checked next (for `status`).
    pub fn next_check(&self, key: &K) -> Option<Instant> {
        self.channels.get(key).map(|(_, next)| *next)
    }

    /// The channel due first and when (ties: any of them).
    pub fn next_due(&self) -> Option<(K, Instant)> {
        self.channels
            .iter()
            .min_by_key(|(_, (_, next))| *next)
            .map(|(k, (_, next))| (k.clone(), *next))
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// The channels scheduled.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.channels.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// At most one request per `interval`, shared by every caller: each [`Pacer::ready`] takes
/// the next free slot and sleeps until it. A slot taken by a caller that was then cancelled
/// stays used (the rate errs on the slow side).
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: std::sync::Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            next: std::sync::Mutex::new(None),
        }
    }

    /// Waits for this caller's slot.
    pub async fn ready(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn default_schedule_steps_exactly_as_the_issue_states() {
        let mut b = StepBackoff::new(&PollStep::default_schedule());
        let waits: Vec<u64> = (0..66).map(|_| b.after_miss().as_secs() / 60).collect();
        let mut want = Vec::new();
        for (m, n) in [
            (1, 12),
            (3, 12),
            (10, 12),
            (15, 12),
            (30, 12),
            (40, 2),
            (50, 1),
        ] {
            want.extend(std::iter::repeat_n(m, n));
        }
        assert_eq!(want.len(), 63);
        assert_eq!(waits[..63], want[..]);
        assert_eq!(waits[63..], [1, 1, 1], "after 50 it starts over");
        for _ in 0..5 {
            b.after_miss();
        }
        b.reset();
        assert_eq!(b.after_miss(), minutes(1));
    }

    #[test]
    fn checks_step_down_and_reset_per_channel() {
        let steps = [
            PollStep {
                wait: minutes(1),
                count: 2,
            },
            PollStep {
                wait: minutes(5),
                count: 1,
            },
        ];
        let t0 = Instant::now();
        let mut checks = Checks::new(&steps);
        checks.add("a", t0);
        checks.add("b", t0 + minutes(10));
        assert_eq!(checks.next_due(), Some(("a", t0)));
        assert_eq!(checks.offline(&"a", t0), Some(t0 + minutes(1)));
        assert_eq!(checks.offline(&"a", t0 + minutes(1)), Some(t0 + minutes(2)));
        assert_eq!(checks.offline(&"a", t0 + minutes(2)), Some(t0 + minutes(7)));
        assert_eq!(checks.next_due(), Some(("a", t0 + minutes(7))));
        assert_eq!(
            checks.offline(&"a", t0 + minutes(7)),
            Some(t0 + minutes(8)),
            "start over"
        );
        checks.offline(&"a", t0 + minutes(8));
        checks.live(&"a", t0 + minutes(9), minutes(1));
        assert_eq!(
            checks.offline(&"a", t0 + minutes(20)),
            Some(t0 + minutes(21)),
            "reset by live"
        );
        assert_eq!(checks.failed(&"b", t0, minutes(3)), Some(t0 + minutes(3)));
        assert_eq!(checks.next_check(&"b"), Some(t0 + minutes(3)));
        checks.remove(&"b");
        assert_eq!(checks.offline(&"b", t0), None);
        assert_eq!(checks.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_bounds_the_rate_whatever_the_callers() {
        let pacer = Arc::new(Pacer::new(Duration::from_millis(500)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let pacer = pacer.clone();
            tasks.push(tokio::spawn(async move {
                pacer.ready().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        assert_eq!(times[0], Duration::ZERO);
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(500), "{times:?}");
        }
        assert_eq!(*times.last().unwrap(), Duration::from_millis(500 * 39));
        // Idle long enough, the next caller goes at once.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let before = Instant::now();
        pacer.ready().await;
        assert_eq!(Instant::now(), before);
    }
}
