//! When upload progress is worth announcing: at most once per 10 % of the file and once per
//! 30 s, with the rate since the transfer began.

use std::time::Duration;

use tokio::time::Instant;

/// Progress is announced at most once per this share of the file…
const PROGRESS_STEP_PERCENT: u64 = 10;
/// …and at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

/// Decides when progress is worth announcing: at most once per 10% of the file and once per
/// 30 s.
#[derive(Debug)]
pub struct ProgressPacer {
    total: u64,
    begin_bytes: u64,
    begin_at: Instant,
    last_bytes: u64,
    last_at: Instant,
}

impl ProgressPacer {
    pub fn new(confirmed: u64, total: u64, now: Instant) -> ProgressPacer {
        ProgressPacer {
            total,
            begin_bytes: confirmed,
            begin_at: now,
            last_bytes: confirmed,
            last_at: now,
        }
    }

    /// `Some(bytes per second)` when this progress should be announced.
    pub fn on_progress(&mut self, confirmed: u64, now: Instant) -> Option<f64> {
        let step = (self.total * PROGRESS_STEP_PERCENT / 100).max(1);
        if confirmed >= self.total
            || confirmed < self.last_bytes + step
            || now.duration_since(self.last_at) < PROGRESS_INTERVAL
        {
            return None;
        }
        self.last_bytes = confirmed;
        self.last_at = now;
        let secs = now.duration_since(self.begin_at).as_secs_f64();
        let sent = confirmed.saturating_sub(self.begin_bytes) as f64;
        Some(if secs > 0.0 { sent / secs } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_announced_at_most_every_tenth_and_half_minute() {
        let t0 = Instant::now();
        let total = 1000;
        let mut p = ProgressPacer::new(0, total, t0);
        // 10% quickly: too soon.
        assert_eq!(p.on_progress(100, t0 + Duration::from_secs(5)), None);
        // 30 s later but only 5%: too little... then 10% after 30 s: announced.
        let mut p2 = ProgressPacer::new(0, total, t0);
        assert_eq!(p2.on_progress(50, t0 + Duration::from_secs(40)), None);
        let rate = p2.on_progress(120, t0 + Duration::from_secs(40)).unwrap();
        assert!((rate - 3.0).abs() < 1e-9, "{rate}");
        // Next one needs another 10% and another 30 s.
        assert_eq!(p2.on_progress(300, t0 + Duration::from_secs(50)), None);
        assert!(p2.on_progress(300, t0 + Duration::from_secs(71)).is_some());
        // Completion is announced by UploadFinished instead.
        assert_eq!(p.on_progress(1000, t0 + Duration::from_secs(600)), None);
        // Over a long upload: never more than 10 announcements.
        let mut p3 = ProgressPacer::new(0, total, t0);
        let n = (1..=1000)
            .filter(|i| {
                p3.on_progress(*i, t0 + Duration::from_secs(*i * 60))
                    .is_some()
            })
            .count();
        assert!(n <= 10, "{n}");
    }
}
