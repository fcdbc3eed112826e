//! Where the next segment is, so nothing is fetched twice across reloads and refreshes.

use chrono::{DateTime, Utc};

use crate::archive::sidecar::Position;

/// Where the next segment is, so nothing is fetched twice across reloads and refreshes.
#[derive(Debug, Default, Clone)]
pub(super) struct Cursor {
    pub(super) next_seq: Option<u64>,
    pub(super) last_pdt: Option<DateTime<Utc>>,
    pub(super) last_duration: f64,
    /// The stream was gone (ENDLIST, 404, offline) and is back: a jump in the numbering is
    /// the time it was off the air, not video we missed.
    pub(super) after_comeback: bool,
    /// Why a jump at the next playlist would be missing video (a stall, an outage, a
    /// restart of recbot), for the gap's reason.
    pub(super) jump_reason: Option<&'static str>,
}

impl Cursor {
    /// A cursor continuing after `last` (a session continued after a restart).
    pub(super) fn after(last: Option<Position>) -> Cursor {
        match last {
            Some(p) => Cursor {
                next_seq: p.sequence.checked_add(1),
                last_pdt: p.program_date_time,
                last_duration: p.duration_secs.unwrap_or(0.0),
                jump_reason: Some("was on the air while recbot was not recording (a restart)"),
                ..Cursor::default()
            },
            None => Cursor::default(),
        }
    }

    /// The last segment taken in, if any.
    pub(super) fn position(&self) -> Option<Position> {
        self.next_seq
            .and_then(|n| n.checked_sub(1))
            .map(|sequence| Position {
                sequence,
                program_date_time: self.last_pdt,
                duration_secs: (self.last_duration > 0.0).then_some(self.last_duration),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continued_session_knows_how_long_the_last_segment_was() {
        let mut before = Cursor::after(None);
        before.next_seq = Some(8);
        before.last_duration = 2.0;
        let kept = before.position().unwrap();
        assert_eq!((kept.sequence, kept.duration_secs), (7, Some(2.0)));
        let after = Cursor::after(Some(kept));
        assert_eq!((after.next_seq, after.last_duration), (Some(8), 2.0));
        // An older checkpoint without it: unknown, not a guess.
        let old = Position {
            duration_secs: None,
            ..kept
        };
        assert_eq!(Cursor::after(Some(old)).last_duration, 0.0);
    }
}
