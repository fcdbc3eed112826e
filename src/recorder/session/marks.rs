//! What a session notes besides video: gaps (each in the sidecar, folded in the notices)
//! and ad breaks.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::super::gaps::{cap, Notice, MAX_TEXT};
use super::super::playlist::Segment;
use super::Session;
use crate::archive::sidecar::{AdBreak, Gap};
use crate::event::EventKind;
use crate::metrics::MAX_GAP_SEGMENTS;

/// An ad break in progress.
#[derive(Debug)]
pub(super) struct AdRun {
    pub(super) at: DateTime<Utc>,
    pub(super) duration: f64,
}

impl Session {
    /// Notes a gap in the sidecar (each one) and reports it (folded: at most one notice per
    /// `gap_notice` interval, see [`GapNotices`]).
    /// `elapsed`: where the missing media starts in the broadcast, when known.
    pub(super) async fn gap(
        &mut self,
        first: u64,
        last: u64,
        seconds: f64,
        reason: String,
        elapsed: Option<f64>,
    ) {
        let reason = cap(&reason, MAX_TEXT);
        warn!(login = %self.spec.login, first, last, seconds, reason, "gap in the recording");
        let segments = last.saturating_sub(first).saturating_add(1);
        self.counters
            .segments_gap
            .inc_by(segments.min(MAX_GAP_SEGMENTS));
        let offset = self
            .part
            .as_ref()
            .map(|p| p.sidecar.duration_secs)
            .unwrap_or(0.0);
        let gap = Gap {
            at: Utc::now(),
            offset_secs: offset,
            first_sequence: first,
            last_sequence: last,
            seconds,
            reason: reason.clone(),
            elapsed_secs: elapsed,
        };
        match &mut self.part {
            Some(p) => p.sidecar.gaps.push(gap),
            None => self.pending_gaps.push(gap),
        }
        self.totals.gaps += 1;
        let gaps = self.totals.gaps;
        self.set_status(|s| s.gaps = gaps);
        if let Some(notice) = self.notices.gap(first, last, seconds, &reason) {
            self.notify_gap(notice).await;
        }
    }

    /// Where `seg` starts in the broadcast: the playlist's `EXT-X-TWITCH-ELAPSED-SECS`
    /// reckoning, else its program date-time minus the stream's start.
    pub(super) fn broadcast_offset(&self, seg: &Segment) -> Option<f64> {
        seg.elapsed.or_else(|| {
            let (at, started) = (seg.program_date_time?, self.spec.stream_started?);
            let secs = (at - started).num_milliseconds() as f64 / 1000.0;
            (secs >= 0.0).then_some(secs)
        })
    }

    async fn notify_gap(&self, n: Notice) {
        self.emit(EventKind::RecordingGap {
            first_sequence: n.first_sequence,
            last_sequence: n.last_sequence,
            seconds: n.seconds,
            reason: n.reason,
        })
        .await;
    }

    /// Sends the gaps held back since the last notice, if any.
    pub(super) async fn flush_notice(&mut self) {
        if let Some(notice) = self.notices.flush() {
            self.notify_gap(notice).await;
        }
    }

    pub(super) async fn close_ad_run(&mut self) {
        let Some(run) = self.ad.take() else {
            return;
        };
        let offset = self
            .part
            .as_ref()
            .map(|p| p.sidecar.duration_secs)
            .unwrap_or(0.0);
        let entry = AdBreak {
            at: run.at,
            offset_secs: offset,
            duration_secs: run.duration,
        };
        match &mut self.part {
            Some(p) => p.sidecar.ad_breaks.push(entry),
            None => self.pending_ads.push(entry),
        }
        self.totals.ad_breaks += 1;
        let n = self.totals.ad_breaks;
        self.set_status(|s| s.ad_breaks = n);
        self.emit(EventKind::AdBreak {
            duration_secs: run.duration,
        })
        .await;
    }
}
