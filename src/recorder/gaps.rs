//! Gap notices: a source that loses every segment must not flood chat or the database, so
//! gaps reported within `[recording] gap_notice_secs` of the last notice are folded into one
//! notice with the totals (the sidecar still lists each gap). Also caps the texts (reasons,
//! addresses from a playlist) that go into events, sidecars and log lines.

use std::time::Duration;

use tokio::time::Instant;

/// Longest reason or address text kept in an event, a sidecar or a log line, in chars.
pub const MAX_TEXT: usize = 300;

/// `text` cut to at most `max` chars (on a char boundary), with an ellipsis when cut.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            // Room for the ellipsis within `max`.
            let keep = max.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end])
        }
    }
}

/// One gap notice: what the `RecordingGap` event says.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub seconds: f64,
    pub reason: String,
}

/// Gaps held back since the last notice.
#[derive(Debug, Clone)]
struct Folded {
    first: u64,
    last: u64,
    seconds: f64,
    count: u32,
    reason: String,
}

/// Decides which gaps become notices now and folds the rest.
#[derive(Debug)]
pub struct GapNotices {
    every: Duration,
    last_notice: Option<Instant>,
    held: Option<Folded>,
}

impl GapNotices {
    pub fn new(every: Duration) -> GapNotices {
        GapNotices {
            every,
            last_notice: None,
            held: None,
        }
    }

    /// A gap happened: the notice to send now, if it is time for one; else it is held.
    pub fn gap(&mut self, first: u64, last: u64, seconds: f64, reason: &str) -> Option<Notice> {
        let now = Instant::now();
        let due = self
            .last_notice
            .is_none_or(|at| now.duration_since(at) >= self.every);
        if due && self.held.is_none() {
            self.last_notice = Some(now);
            return Some(Notice {
                first_sequence: first,
                last_sequence: last,
                seconds,
                reason: cap(reason, MAX_TEXT),
            });
        }
        let held = self.held.get_or_insert(Folded {
            first,
            last,
            seconds: 0.0,
            count: 0,
            reason: String::new(),
        });
        held.first = held.first.min(first);
        held.last = held.last.max(last);
        held.seconds += seconds;
        held.count += 1;
        held.reason = cap(reason, MAX_TEXT);
        if due {
            return self.flush();
        }
        None
    }

    /// When the held gaps are due as a notice.
    pub fn due_at(&self) -> Option<Instant> {
        self.held.as_ref()?;
        Some(
            self.last_notice
                .map_or_else(Instant::now, |at| at + self.every),
        )
    }

    /// The held gaps as one notice (now, whatever the interval: the session is ending, or
    /// [`GapNotices::due_at`] has come).
    pub fn flush(&mut self) -> Option<Notice> {
        let held = self.held.take()?;
        self.last_notice = Some(Instant::now());
        let reason = if held.count == 1 {
            held.reason
        } else {
            format!(
                "{} gaps folded into this notice; the last: {}",
                held.count, held.reason
            )
        };
        Some(Notice {
            first_sequence: held.first,
            last_sequence: held.last,
            seconds: held.seconds,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_on_a_char_boundary_with_an_ellipsis() {
        assert_eq!(cap("short", 300), "short");
        let long = "é".repeat(100_000);
        let capped = cap(&long, 300);
        assert_eq!(capped.chars().count(), 300);
        assert!(capped.ends_with('…'));
        assert_eq!(cap("abcdef", 6), "abcdef");
        assert_eq!(cap("abcdefg", 6), "abcde…");
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_within_the_interval_are_folded_into_one_notice() {
        let mut n = GapNotices::new(Duration::from_secs(60));
        let first = n.gap(1, 1, 2.0, "HTTP 404").unwrap();
        assert_eq!(first.first_sequence, 1);
        assert!(n.due_at().is_none());
        for s in 2..=10 {
            assert!(n.gap(s, s, 2.0, &"x".repeat(100_000)).is_none());
        }
        let due = n.due_at().unwrap();
        assert_eq!(due - Instant::now(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(61)).await;
        // The next gap after the interval carries the held ones with it.
        let folded = n.gap(11, 11, 2.0, "HTTP 404").unwrap();
        assert_eq!((folded.first_sequence, folded.last_sequence), (2, 11));
        assert_eq!(folded.seconds, 20.0);
        assert!(folded.reason.starts_with("10 gaps"), "{}", folded.reason);
        assert!(folded.reason.len() < 400);
        assert!(n.flush().is_none());
        assert!(n.gap(12, 12, 2.0, "again").is_none());
        let last = n.flush().unwrap();
        assert_eq!((last.first_sequence, last.seconds), (12, 2.0));
        assert_eq!(last.reason, "again");
    }
}
