//! Taking in what the look-ahead hands over, in media-sequence order: segments written,
//! ads noted, gaps reported; and queueing what each playlist load lists that is new.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use url::Url;

use super::super::lookahead::Ready;
use super::super::playlist::{MediaPlaylist, Segment};
use super::cursor::Cursor;
use super::marks::AdRun;
use super::{sleep_until_some, Session, TakeEnd};

impl Session {
    /// Records from one resolved playlist until it ends. What is queued when it ends is taken
    /// in: to the end when the stream ended (each segment still gets its tries, failures are
    /// gaps), else only what is whole at the front (the rest is given up silently: the cursor
    /// stays before it, so a comeback or a restart finds it again or reports it missing).
    pub(super) async fn take(&mut self, cancel: &CancellationToken) -> TakeEnd {
        self.ahead = Cursor {
            after_comeback: std::mem::take(&mut self.cursor.after_comeback),
            jump_reason: self.cursor.jump_reason.take(),
            ..self.cursor.clone()
        };
        let end = self.take_playlist(cancel).await;
        match end {
            TakeEnd::Ended(why) => match self.complete_queue(cancel).await {
                Some(end) => end,
                None => TakeEnd::Ended(why),
            },
            end => {
                self.abandon_queue().await;
                end
            }
        }
    }

    /// Takes in what is whole at the front of the queue and drops the rest.
    pub(super) async fn abandon_queue(&mut self) {
        for ready in self.queue.abandon() {
            if let Err(end) = self.take_one(ready).await {
                debug!(login = %self.spec.login, ?end, "a segment whole before the end could not be written");
                break;
            }
        }
    }

    /// The stream ended: every queued segment is taken in, in order (downloads in progress
    /// finish, failures are gaps). A stop or shutdown meanwhile ends it at once.
    async fn complete_queue(&mut self, cancel: &CancellationToken) -> Option<TakeEnd> {
        self.queue.end();
        loop {
            if let Err(end) = self.take_in().await {
                self.abandon_queue().await;
                return Some(end);
            }
            if self.queue.is_empty() {
                return None;
            }
            let wake = self.queue.next_wake();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.note_stop();
                    self.abandon_queue().await;
                    return Some(TakeEnd::Stop);
                }
                Some(c) = self.control.recv() => {
                    if let Some(end) = self.control(c) {
                        self.abandon_queue().await;
                        return Some(end);
                    }
                }
                _ = self.queue.next_finished(), if self.queue.downloading() => {}
                _ = sleep_until_some(wake), if wake.is_some() => {}
                // Nothing to wait for should not happen; look again rather than hang.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Takes in the resolved front of the queue, in order, and starts the downloads due.
    pub(super) async fn take_in(&mut self) -> Result<(), TakeEnd> {
        while let Some(ready) = self.queue.pop_ready() {
            self.take_one(ready).await?;
        }
        self.queue.start_due();
        Ok(())
    }

    /// Takes in one resolved entry: the cursor moves past it, and it is written, noted as an
    /// ad, or reported as a gap.
    async fn take_one(&mut self, ready: Ready) -> Result<(), TakeEnd> {
        match ready {
            Ready::Missing {
                first,
                last,
                seconds,
                reason,
                elapsed,
            } => self.gap(first, last, seconds, reason, elapsed).await,
            Ready::Ad(seg) => {
                self.counters.segments_ad.inc();
                self.cursor_past(&seg);
                let at = seg.program_date_time.unwrap_or_else(Utc::now);
                self.ad.get_or_insert(AdRun { at, duration: 0.0 }).duration += seg.duration;
            }
            Ready::Body(seg, body, base) => {
                self.cursor_past(&seg);
                self.close_ad_run().await;
                self.write_segment(&seg, body, &base).await?;
            }
            Ready::Gap(seg, reason) => {
                self.cursor_past(&seg);
                self.close_ad_run().await;
                let elapsed = self.broadcast_offset(&seg);
                self.gap(seg.sequence, seg.sequence, seg.duration, reason, elapsed)
                    .await;
            }
        }
        Ok(())
    }

    fn cursor_past(&mut self, seg: &Segment) {
        self.cursor.next_seq = Some(seg.sequence + 1);
        if let Some(at) = seg.program_date_time {
            self.cursor.last_pdt = Some(at);
        }
        self.cursor.last_duration = seg.duration;
    }

    /// Queues the segments of one playlist load not queued before (and what the playlist no
    /// longer offered, as missing); `true` when any was new.
    pub(super) fn process(&mut self, pl: &MediaPlaylist, base: &Url) -> bool {
        self.target_duration = pl.target_duration;
        if let (Some(next), Some(last)) = (self.ahead.next_seq, pl.segments.last()) {
            if last.sequence + 1 < next {
                // The numbering went backwards (a restarted stream or another origin):
                // from here on, recognize what was written by its program date-time.
                warn!(login = %self.spec.login, next, last = last.sequence, "media sequence restarted");
                self.ahead.next_seq = None;
            }
        }
        if std::mem::take(&mut self.ahead.after_comeback) {
            let first = pl.segments.first().map(|s| s.sequence);
            if let (Some(next), Some(first)) = (self.ahead.next_seq, first) {
                if first > next {
                    // Start at the oldest segment on offer (what was written before is still
                    // recognized by its program date-time).
                    self.ahead.next_seq = None;
                }
            }
        }
        let jump_reason = self.ahead.jump_reason.take();
        let mut new = false;
        for seg in &pl.segments {
            match (
                self.ahead.next_seq,
                seg.program_date_time,
                self.ahead.last_pdt,
            ) {
                (Some(next), _, _) if seg.sequence < next => continue,
                (None, Some(at), Some(last)) if at <= last => continue,
                _ => {}
            }
            new = true;
            if let Some(next) = self.ahead.next_seq {
                if seg.sequence > next {
                    let seconds = self.missing_seconds(seg, next, pl.target_duration);
                    let reason = jump_reason
                        .unwrap_or("fell out of the playlist window before it could be fetched");
                    // The missing media ends where this segment starts.
                    let elapsed = self.broadcast_offset(seg).map(|at| (at - seconds).max(0.0));
                    self.queue.push_missing(
                        next,
                        seg.sequence - 1,
                        seconds,
                        reason.into(),
                        elapsed,
                    );
                }
            }
            self.ahead.next_seq = Some(seg.sequence + 1);
            if let Some(at) = seg.program_date_time {
                self.ahead.last_pdt = Some(at);
            }
            self.ahead.last_duration = seg.duration;
            self.queue.push_segment(seg, base, pl.target_duration);
        }
        new
    }

    /// Seconds of video from segment `next` up to `seg`: from the program date-times when the
    /// playlist has them, else counted in segment (or target) durations.
    fn missing_seconds(&self, seg: &Segment, next: u64, target: f64) -> f64 {
        if let (Some(at), Some(last)) = (seg.program_date_time, self.ahead.last_pdt) {
            let between = (at - last).num_milliseconds() as f64 / 1000.0;
            let missing = missing_after(between, self.ahead.last_duration, seg.sequence - next);
            if missing > 0.0 {
                return missing;
            }
        }
        let per = if self.ahead.last_duration > 0.0 {
            self.ahead.last_duration
        } else {
            target
        };
        (seg.sequence - next) as f64 * per
    }
}

/// Seconds missing between the last segment taken (lasting `last_duration`, 0 when unknown)
/// and the next one there is, which starts `between` seconds after it; `count` segments are
/// missing. When the last duration is unknown (a checkpoint from before it was kept, after a
/// restart) `between` spans it and the missing ones, taken as equally long.
fn missing_after(between: f64, last_duration: f64, count: u64) -> f64 {
    if last_duration > 0.0 {
        between - last_duration
    } else {
        let count = count as f64;
        between * count / (count + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::missing_after;

    #[test]
    fn missing_time_leaves_out_the_last_segment_taken() {
        // Segment 7 (2 s) taken, 8..=12 missing, 13 starts 12 s after 7.
        assert_eq!(missing_after(12.0, 2.0, 5), 10.0);
        // The same without 7's duration (an older checkpoint): the six are equally long.
        assert_eq!(missing_after(12.0, 0.0, 5), 10.0);
    }
}
