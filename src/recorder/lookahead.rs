//! The segments between the playlist and the part file. Every segment a playlist load brings
//! is queued in media-sequence order and downloaded into memory: the next one to write plus a
//! bounded look-ahead ([`LOOKAHEAD`] segments, [`LOOKAHEAD_BYTES`]), so one slow segment does
//! not let the following ones fall out of the playlist window. A segment whose download fails
//! transiently is tried again (backoff with jitter) for as long as the latest playlist still
//! lists it; it becomes a gap only once it has left the window or the stream has ended. A
//! non-transient failure (404/410, a refused address, a body over its caps) is a gap at once.
//! Each download is capped in bytes and in wall-clock time. The session takes the queue's
//! front strictly in order ([`Lookahead::pop_ready`]), so segments reach the file in
//! media-sequence order, each once; nothing of a segment touches the file before it is whole.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::fetch::{self, FetchError};
use super::gaps::{cap, MAX_TEXT};
use super::playlist::{ByteRange, Segment};
use crate::config::Recording;

/// Segments downloaded ahead of the next one to write, at most.
pub const LOOKAHEAD: usize = 3;
/// Bytes held by downloads ahead of the next one to write, at most (the next one itself is
/// only bounded by its own cap: it is never held back).
pub const LOOKAHEAD_BYTES: u64 = 16 * 1024 * 1024;
/// First wait before a failed segment is tried again; the waits double up to half the
/// target duration (at least [`RETRY_CAP_MIN`]), so a segment gets several tries while it
/// is listed.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP_MIN: Duration = Duration::from_millis(250);
const RETRY_CAP_MAX: Duration = Duration::from_secs(4);
/// A body may hold this many times its duration at the maximum bitrate.
const BYTES_SLACK: f64 = 2.0;
/// Whatever the playlist says about durations, a segment may hold this much (below the
/// absolute ceiling).
const MIN_SEGMENT_BYTES: u64 = 1024 * 1024;

/// How big and how slow one segment may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Mbit/s.
    pub max_mbps: f64,
    /// Absolute ceiling, bytes.
    pub max_bytes: u64,
    pub time_factor: f64,
    pub min_time: Duration,
}

impl Limits {
    pub fn from_config(r: &Recording) -> Limits {
        Limits {
            max_mbps: r.max_segment_mbps,
            max_bytes: r.max_segment_mb.saturating_mul(1024 * 1024),
            time_factor: r.segment_time_factor,
            min_time: Duration::from_secs_f64(r.segment_min_secs),
        }
    }

    /// Largest body for a segment of `seconds` in a playlist with `target` duration.
    pub fn bytes_for(&self, seconds: f64, target: f64) -> u64 {
        let seconds = seconds.max(target).clamp(0.0, 3600.0);
        let by_rate = BYTES_SLACK * seconds * self.max_mbps * 125_000.0;
        (by_rate as u64).max(MIN_SEGMENT_BYTES).min(self.max_bytes)
    }

    /// Longest download for a segment in a playlist with `target` duration.
    pub fn time_for(&self, target: f64) -> Duration {
        let target = if target.is_finite() {
            target.clamp(0.0, 3600.0)
        } else {
            0.0
        };
        Duration::from_secs_f64(target * self.time_factor).max(self.min_time)
    }
}

/// What the session takes from the front of the queue, in order.
#[derive(Debug)]
pub enum Ready {
    /// Segments the playlist no longer offered (a jump in the numbering).
    Missing {
        first: u64,
        last: u64,
        seconds: f64,
        reason: String,
        /// Broadcast offset where the missing media starts, when known.
        elapsed: Option<f64>,
    },
    /// An ad: nothing to download.
    Ad(Segment),
    /// A whole segment body, and the address of the playlist that listed it.
    Body(Segment, Vec<Bytes>, Url),
    /// A segment that could not be fetched; the reason is capped.
    Gap(Segment, String),
}

#[derive(Debug)]
enum State {
    Waiting {
        attempt: u32,
        not_before: Instant,
        last_error: Option<String>,
    },
    Running {
        attempt: u32,
    },
    Done(Vec<Bytes>, u64),
    Failed(String),
}

// `Missing` is rare and small; boxing the common variant would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Item {
    Missing {
        first: u64,
        last: u64,
        seconds: f64,
        reason: String,
        elapsed: Option<f64>,
    },
    Segment {
        seg: Segment,
        base: Url,
        url: Result<Url, String>,
        target: f64,
        state: State,
    },
}

/// Why a download stopped without a body.
#[derive(Debug)]
enum Fail {
    /// The look-ahead budget is used up: try again when there is room.
    NoRoom,
    Error(FetchError),
}

type Outcome = (u64, Result<(Vec<Bytes>, u64), Fail>);

/// The queue of one take (empty between takes).
#[derive(Debug)]
pub struct Lookahead {
    items: VecDeque<Item>,
    tasks: JoinSet<Outcome>,
    /// Bytes in memory: downloads in progress and bodies not written yet.
    held: Arc<AtomicU64>,
    /// Sequence number of the next segment to write: its download is never held back.
    head: Arc<AtomicU64>,
    /// Sequence numbers the latest playlist lists.
    listed: Option<RangeInclusive<u64>>,
    /// The stream ended: the window no longer moves, so a segment gets
    /// [`fetch::SEGMENT_ATTEMPTS`] tries in all.
    ended: bool,
    http: fetch::Http,
    limits: Limits,
    cancel: CancellationToken,
    /// Where the time of each whole segment download goes (live recordings).
    fetch_seconds: Option<Histogram>,
}

impl Lookahead {
    pub fn new(http: fetch::Http, limits: Limits, cancel: CancellationToken) -> Lookahead {
        Lookahead {
            items: VecDeque::new(),
            tasks: JoinSet::new(),
            held: Arc::default(),
            head: Arc::new(AtomicU64::new(u64::MAX)),
            listed: None,
            ended: false,
            http,
            limits,
            cancel,
            fetch_seconds: None,
        }
    }

    /// Observes how long each segment that arrives whole took to download.
    pub fn timed(mut self, fetch_seconds: Histogram) -> Lookahead {
        self.fetch_seconds = Some(fetch_seconds);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues segments `first..=last` as missing: `seconds` of media from broadcast offset
    /// `elapsed` (when known).
    pub fn push_missing(
        &mut self,
        first: u64,
        last: u64,
        seconds: f64,
        reason: String,
        elapsed: Option<f64>,
    ) {
        self.items.push_back(Item::Missing {
            first,
            last,
            seconds,
            reason,
            elapsed,
        });
    }

    /// Queues a segment of a playlist at `base` with `target` duration.
    pub fn push_segment(&mut self, seg: &Segment, base: &Url, target: f64) {
        let url = base
            .join(&seg.uri)
            .map_err(|_| format!("bad segment address `{}`", cap(&seg.uri, MAX_TEXT)));
        let state = match (&url, seg.ad) {
            (Err(e), false) => State::Failed(e.clone()),
            _ => State::Waiting {
                attempt: 0,
                not_before: Instant::now(),
                last_error: None,
            },
        };
        self.items.push_back(Item::Segment {
            seg: seg.clone(),
            base: base.clone(),
            url,
            target,
            state,
        });
    }

    /// After a playlist load: which segments it lists, and whether the stream ended. A
    /// segment waiting for another try that is no longer listed (or has had its tries after
    /// the end) is a gap.
    pub fn listed(&mut self, first: Option<u64>, last: Option<u64>, ended: bool) {
        self.listed = first.zip(last).map(|(f, l)| f..=l);
        self.ended |= ended;
        let (listed, over) = (self.listed.clone(), self.ended);
        for item in &mut self.items {
            let Item::Segment { seg, state, .. } = item else {
                continue;
            };
            if let State::Waiting {
                attempt,
                last_error: Some(e),
                ..
            } = state
            {
                let gone = !listed.as_ref().is_some_and(|r| r.contains(&seg.sequence));
                if gone || (over && *attempt >= fetch::SEGMENT_ATTEMPTS) {
                    *state = State::Failed(gave_up(*attempt, e, over));
                }
            }
        }
    }

    /// The stream ended (or the take is being completed): tries are counted from now on.
    pub fn end(&mut self) {
        self.ended = true;
        let listed = self.listed.as_ref().map(|r| (*r.start(), *r.end()));
        self.listed(listed.map(|r| r.0), listed.map(|r| r.1), true);
    }

    /// The front of the queue when it is resolved (a body, a gap, an ad, missing segments).
    pub fn pop_ready(&mut self) -> Option<Ready> {
        let ready = match self.items.pop_front()? {
            Item::Missing {
                first,
                last,
                seconds,
                reason,
                elapsed,
            } => Ready::Missing {
                first,
                last,
                seconds,
                reason,
                elapsed,
            },
            Item::Segment { seg, .. } if seg.ad => Ready::Ad(seg),
            Item::Segment {
                seg,
                base,
                state: State::Done(body, len),
                ..
            } => {
                self.held.fetch_sub(len, Ordering::Relaxed);
                Ready::Body(seg, body, base)
            }
            Item::Segment {
                seg,
                state: State::Failed(reason),
                ..
            } => Ready::Gap(seg, reason),
            pending => {
                self.items.push_front(pending);
                return None;
            }
        };
        self.note_head();
        Some(ready)
    }

    /// Tells the downloads which segment is written next (it is never held back).
    fn note_head(&self) {
        let head = self.items.iter().find_map(|i| match i {
            Item::Segment { seg, .. } if !seg.ad => Some(seg.sequence),
            _ => None,
        });
        self.head.store(head.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Starts the downloads that are due and have room: the next segment to write always,
    /// the ones after it while fewer than [`LOOKAHEAD`] are ahead and the byte budget lasts.
    pub fn start_due(&mut self) {
        self.note_head();
        let now = Instant::now();
        let mut index = 0usize;
        for item in &mut self.items {
            let Item::Segment {
                seg,
                url,
                target,
                state,
                ..
            } = item
            else {
                continue;
            };
            if seg.ad {
                continue;
            }
            if index > LOOKAHEAD {
                break;
            }
            index += 1;
            let State::Waiting {
                attempt,
                not_before,
                ..
            } = state
            else {
                continue;
            };
            if *not_before > now {
                continue;
            }
            let ahead = index > 1;
            if ahead && self.held.load(Ordering::Relaxed) >= LOOKAHEAD_BYTES {
                continue;
            }
            let Ok(url) = url.clone() else {
                continue;
            };
            let job = Job {
                http: self.http.clone(),
                url,
                range: seg.byte_range,
                max_bytes: self.limits.bytes_for(seg.duration, *target),
                max_time: self.limits.time_for(*target),
                seq: seg.sequence,
                head: self.head.clone(),
                held: self.held.clone(),
                cancel: self.cancel.clone(),
                timer: self.fetch_seconds.clone(),
            };
            *state = State::Running { attempt: *attempt };
            self.tasks.spawn(job.run());
        }
    }

    /// When a waiting retry is due (for the session's timer).
    pub fn next_wake(&self) -> Option<Instant> {
        // The same segments `start_due` may start: the next one, and LOOKAHEAD after it while
        // the budget lasts (a full budget is freed by a write, which calls `start_due`; a
        // wake for them now would only spin).
        let room = self.held.load(Ordering::Relaxed) < LOOKAHEAD_BYTES;
        let startable = if room { LOOKAHEAD + 1 } else { 1 };
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Segment { seg, state, .. } if !seg.ad => Some(state),
                _ => None,
            })
            .take(startable)
            .filter_map(|state| match state {
                State::Waiting { not_before, .. } => Some(*not_before),
                _ => None,
            })
            .min()
    }

    pub fn downloading(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// The next download to end; pending forever while none runs (for `select!`).
    pub async fn next_finished(&mut self) {
        let Some(joined) = self.tasks.join_next().await else {
            return std::future::pending().await;
        };
        let Ok((seq, result)) = joined else {
            // Aborted (the queue was abandoned) or a panic: nothing to file.
            return;
        };
        let over = self.ended;
        let listed = self.listed.clone();
        let Some((state, target)) = self.items.iter_mut().find_map(|i| match i {
            Item::Segment {
                seg, state, target, ..
            } if seg.sequence == seq => Some((state, *target)),
            _ => None,
        }) else {
            return;
        };
        let State::Running { attempt } = *state else {
            return;
        };
        *state = match result {
            Ok((body, len)) => State::Done(body, len),
            Err(Fail::NoRoom) => State::Waiting {
                attempt,
                not_before: Instant::now(),
                last_error: None,
            },
            Err(Fail::Error(e)) => {
                let error = cap(&e.to_string(), MAX_TEXT);
                let still_listed = listed.as_ref().is_some_and(|r| r.contains(&seq));
                if matches!(e, FetchError::Cancelled) {
                    State::Failed("cancelled".into())
                } else if !e.transient() {
                    State::Failed(format!("could not be fetched ({error})"))
                } else if !still_listed || (over && attempt + 1 >= fetch::SEGMENT_ATTEMPTS) {
                    State::Failed(gave_up(attempt + 1, &error, over))
                } else {
                    tracing::debug!(
                        seq,
                        attempt,
                        error,
                        "segment download failed; trying again while it is listed"
                    );
                    let target = if target.is_finite() { target } else { 2.0 };
                    let half = Duration::from_secs_f64(target.clamp(0.0, 60.0) / 2.0);
                    let wait = crate::backoff::exponential(
                        attempt,
                        RETRY_BASE,
                        half.clamp(RETRY_CAP_MIN, RETRY_CAP_MAX),
                    );
                    State::Waiting {
                        attempt: attempt + 1,
                        not_before: Instant::now() + wait,
                        last_error: Some(error),
                    }
                }
            }
        };
    }

    /// Drops everything not resolved and stops the downloads (a take that is over). Returns
    /// what was still resolved at the front, in order, for the session to take in first.
    pub fn abandon(&mut self) -> Vec<Ready> {
        let mut ready = Vec::new();
        while let Some(r) = self.pop_ready() {
            ready.push(r);
        }
        self.items.clear();
        // Dropping the set aborts every download; a download still counting on another
        // thread counts into the old totals, not the next take's.
        self.tasks = JoinSet::new();
        self.held = Arc::default();
        self.head = Arc::new(AtomicU64::new(u64::MAX));
        self.listed = None;
        self.ended = false;
        ready
    }

    /// Downloads a resource outside the queue (an init segment) whole, with the limits of a
    /// segment in a playlist with `target` duration, trying a transient failure again a few
    /// times.
    pub async fn fetch_whole(
        &self,
        url: &Url,
        range: Option<ByteRange>,
        target: f64,
    ) -> Result<Vec<Bytes>, FetchError> {
        let mut attempt = 0;
        loop {
            let job = Job {
                http: self.http.clone(),
                url: url.clone(),
                range,
                max_bytes: self.limits.bytes_for(target, target),
                max_time: self.limits.time_for(target),
                seq: 0,
                // Its own head and budget: never held back.
                head: Arc::new(AtomicU64::new(0)),
                held: Arc::default(),
                cancel: self.cancel.clone(),
                timer: None,
            };
            match job.run().await.1 {
                Ok((body, _)) => return Ok(body),
                // Its own head: a download that is the head is never held back.
                Err(Fail::NoRoom) => {
                    return Err(FetchError::Refused("no room to download it".into()))
                }
                Err(Fail::Error(e)) if e.transient() && attempt + 1 < fetch::SEGMENT_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "init segment download failed; retrying");
                    fetch::sleep_or_cancel(
                        crate::backoff::exponential(attempt, RETRY_BASE, RETRY_CAP_MAX),
                        &self.cancel,
                    )
                    .await?;
                    attempt += 1;
                }
                Err(Fail::Error(e)) => return Err(e),
            }
        }
    }
}

fn gave_up(tries: u32, error: &str, ended: bool) -> String {
    let when = if ended {
        "before the stream ended"
    } else {
        "while it was listed in the playlist"
    };
    format!("could not be fetched {when} ({tries} tries, the last: {error})")
}

/// One download of one segment into memory.
struct Job {
    http: fetch::Http,
    url: Url,
    range: Option<ByteRange>,
    max_bytes: u64,
    max_time: Duration,
    seq: u64,
    head: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
    cancel: CancellationToken,
    /// Observes the download's time when it arrives whole.
    timer: Option<Histogram>,
}

impl Job {
    async fn run(self) -> Outcome {
        let started = Instant::now();
        let mut got = 0u64;
        let result = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Fail::Error(FetchError::Cancelled)),
            r = tokio::time::timeout(self.max_time, self.read(&mut got)) => match r {
                Ok(r) => r,
                Err(_) => Err(Fail::Error(FetchError::Refused(format!(
                    "took longer than {:.0} s, the limit for one segment",
                    self.max_time.as_secs_f64()
                )))),
            },
        };
        match (&result, &self.timer) {
            (Err(_), _) => {
                self.held.fetch_sub(got, Ordering::Relaxed);
            }
            (Ok(_), Some(timer)) => timer.observe(started.elapsed().as_secs_f64()),
            (Ok(_), None) => {}
        }
        (self.seq, result)
    }

    async fn read(&self, got: &mut u64) -> Result<(Vec<Bytes>, u64), Fail> {
        let too_big = || {
            Fail::Error(FetchError::Refused(format!(
                "larger than {:.1} MB, the limit for one segment",
                self.max_bytes as f64 / 1e6
            )))
        };
        let mut response = fetch::open_resource(&self.http, &self.url, self.range)
            .await
            .map_err(Fail::Error)?;
        let expected = response.content_length();
        if expected.is_some_and(|n| n > self.max_bytes) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = fetch::next_chunk(&mut response)
            .await
            .map_err(Fail::Error)?
        {
            let n = chunk.len() as u64;
            *got += n;
            let held = self.held.fetch_add(n, Ordering::Relaxed) + n;
            if *got > self.max_bytes {
                return Err(too_big());
            }
            if self.head.load(Ordering::Relaxed) != self.seq && held > LOOKAHEAD_BYTES {
                return Err(Fail::NoRoom);
            }
            body.push(chunk);
        }
        if expected.is_some_and(|n| n != *got) {
            return Err(Fail::Error(FetchError::Transport(
                "body shorter than announced".into(),
            )));
        }
        Ok((body, *got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(sequence: u64) -> Segment {
        Segment {
            sequence,
            uri: format!("{sequence}.ts"),
            duration: 2.0,
            title: None,
            discontinuity: false,
            map: None,
            byte_range: None,
            program_date_time: None,
            ad: false,
            elapsed: None,
        }
    }

    #[tokio::test]
    async fn downloads_start_for_the_next_segment_and_a_bounded_look_ahead() {
        let limits = Limits {
            max_mbps: 100.0,
            max_bytes: 1024 * 1024,
            time_factor: 4.0,
            min_time: Duration::from_secs(20),
        };
        // A closed port: the downloads fail, but only how many start is looked at here.
        let base = Url::parse("http://127.0.0.1:9/live/index.m3u8").unwrap();
        let mut q = Lookahead::new(
            fetch::Http::twitch(reqwest::Client::new()),
            limits,
            CancellationToken::new(),
        );
        for s in 10..16 {
            q.push_segment(&segment(s), &base, 2.0);
        }
        q.push_segment(
            &Segment {
                uri: format!("http://[{}", "x".repeat(10_000)),
                ..segment(16)
            },
            &base,
            2.0,
        );
        // The look-ahead budget is used up: only the next segment starts, and no timer is
        // set for the others (it would only spin).
        q.held.store(LOOKAHEAD_BYTES, Ordering::Relaxed);
        q.start_due();
        assert_eq!(q.tasks.len(), 1);
        assert_eq!(q.next_wake(), None);
        // Room again: three more, not the rest.
        q.held.store(0, Ordering::Relaxed);
        q.start_due();
        assert_eq!(q.tasks.len(), 1 + LOOKAHEAD);
        assert_eq!(
            q.next_wake(),
            None,
            "the others wait for the next one to be written"
        );
        assert!(q.pop_ready().is_none(), "the next segment is not whole yet");
        assert!(q.abandon().is_empty());
        assert!(!q.downloading() && q.is_empty());
        // A bad address is a gap at once, in order, with the address capped.
        q.push_segment(
            &Segment {
                uri: format!("http://[{}", "x".repeat(10_000)),
                ..segment(20)
            },
            &base,
            2.0,
        );
        match q.pop_ready() {
            Some(Ready::Gap(seg, reason)) => {
                assert_eq!(seg.sequence, 20);
                assert!(reason.chars().count() < MAX_TEXT + 30, "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_scale_with_the_duration_and_have_a_ceiling_and_a_floor() {
        let l = Limits {
            max_mbps: 100.0,
            max_bytes: 256 * 1024 * 1024,
            time_factor: 4.0,
            min_time: Duration::from_secs(20),
        };
        // 2 s at 100 Mbit/s, twice over: 50 MB.
        assert_eq!(l.bytes_for(2.0, 2.0), 50_000_000);
        assert_eq!(l.bytes_for(1.0, 2.0), 50_000_000);
        assert_eq!(l.bytes_for(3600.0, 2.0), 256 * 1024 * 1024);
        assert_eq!(l.bytes_for(f64::NAN, f64::NAN), 1024 * 1024);
        assert_eq!(l.time_for(2.0), Duration::from_secs(20));
        assert_eq!(l.time_for(10.0), Duration::from_secs(40));
        assert_eq!(l.time_for(f64::INFINITY), Duration::from_secs(20));
        assert_eq!(l.time_for(1e12), Duration::from_secs(4 * 3600));
    }
}
