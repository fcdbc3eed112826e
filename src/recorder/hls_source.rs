//! Live detection for non-Twitch HLS sources (`add hls <url> <name>`): while the source is not
//! being recorded, its playlist is polled every poll interval; it is live while it answers with
//! video not recorded yet, which is announced as `LiveDetected` (and `StreamOffline` when it
//! stops answering) so the core records it exactly like a Twitch stream.
//!
//! When a recording ends while the playlist goes on (the recording failed, was refused, or
//! stalled out), the source is announced again only after a growing, jittered delay, so a
//! source that cannot be recorded (full disk, a broken server) is not retried every poll. An
//! encrypted playlist is reported once, not announced. A source that cannot be reached (or
//! answers garbage) is polled less and less often, up to every ten minutes, and reported once
//! with `LiveCheckFailed` after three failed polls in a row (`LiveCheckRecovered` when it
//! answers again).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recbot_commands::{Login, Quality};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::fetch::{self, FetchError, Resolved, StreamSource};
use super::playlist::{self, PlaylistError};
use crate::event::EventKind;
use crate::work::Events;

/// Logins being recorded right now (kept by the core; pollers pause for them).
pub type Recording = Arc<Mutex<HashSet<Login>>>;

/// The first wait before a source whose recording ended while it went on is announced again,
/// in poll intervals; it doubles with every such end, up to [`MAX_RECHECK`].
const FIRST_RECHECK_POLLS: u32 = 6;
const MAX_RECHECK: Duration = Duration::from_secs(30 * 60);
/// A recording at least this long means recording works; the backoff starts over.
const HEALTHY: Duration = Duration::from_secs(300);
/// The longest wait between polls of a source that keeps failing.
const MAX_FAILING_POLL: Duration = Duration::from_secs(10 * 60);
/// Failed polls in a row before the source is reported.
const FAILURES_BEFORE_REPORT: u32 = 3;

/// What one poll saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Answering: the address of its newest segment, and whether the playlist is ended
    /// (`EXT-X-ENDLIST`: it will not go on).
    Live {
        last: String,
        ended: bool,
    },
    Offline,
    /// Not answering (a network error, a server error) or answering garbage.
    Failing(String),
    /// Answering, but not something recbot can record (encrypted).
    Unrecordable(String),
}

async fn probe(http: &fetch::Http, url: &Url, cancel: &CancellationToken) -> Seen {
    let source = StreamSource::Hls { url: url.clone() };
    let media = match source
        .resolve(http, Quality::BEST, &crate::rendition::Codec::ALL, cancel)
        .await
    {
        // The address was the media playlist: resolving read it already.
        Ok(Resolved::Live(_, Some(playlist))) => Ok(*playlist),
        Ok(Resolved::Live(media, None)) => {
            let body = match fetch::get(http, &media.url, None, cancel).await {
                Ok(body) => body,
                Err(FetchError::Status(404 | 410)) => return Seen::Offline,
                Err(e) => return Seen::Failing(e.to_string()),
            };
            playlist::parse_media(&body)
        }
        Ok(Resolved::Offline) => return Seen::Offline,
        Err(FetchError::Playlist(e @ PlaylistError::Encrypted(_))) => {
            return Seen::Unrecordable(e.to_string())
        }
        Err(e) => return Seen::Failing(e.to_string()),
    };
    match media {
        Ok(pl) => match pl.segments.last() {
            Some(last) => Seen::Live {
                last: last.uri.clone(),
                ended: pl.end_list,
            },
            None => Seen::Offline,
        },
        Err(e @ PlaylistError::Encrypted(_)) => Seen::Unrecordable(e.to_string()),
        Err(e) => Seen::Failing(e.to_string()),
    }
}

/// One HLS source to poll, and where its poller reports.
#[derive(Debug, Clone)]
pub struct HlsSource {
    /// The name it was added as (`add hls <url> <name>`).
    pub name: Login,
    /// Its playlist address (master or media), as stored.
    pub url: String,
    /// The poll interval while it answers.
    pub every: Duration,
    pub http: fetch::Http,
    /// Logins being recorded right now: the poller pauses while its source is.
    pub recording: Recording,
    pub events: Events,
}

/// Polls one HLS source until `cancel`.
pub async fn poll(source: HlsSource, cancel: CancellationToken) {
    let Ok(url) = Url::parse(&source.url) else {
        source
            .events
            .emit(
                Some(source.name),
                EventKind::RecordingFailed {
                    reason: format!("`{}` is not a valid address", source.url),
                },
            )
            .await;
        return;
    };
    let mut poller = Poller::new(source, url);
    loop {
        let busy = poller
            .source
            .recording
            .lock()
            .map(|r| r.contains(&poller.source.name))
            .unwrap_or(false);
        if busy {
            poller.was_recording = true;
            poller.busy_since.get_or_insert_with(Instant::now);
        } else {
            let seen = tokio::select! {
                _ = cancel.cancelled() => return,
                seen = probe(&poller.source.http, &poller.url, &cancel) => seen,
            };
            poller.saw(seen).await;
        }
        // A source that keeps failing is asked less and less often.
        let every = poller.source.every;
        let wait = match poller.failures {
            0 => every,
            n => every.max(crate::backoff::exponential(n, every, MAX_FAILING_POLL)),
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What one source's poller remembers between polls.
#[derive(Debug)]
struct Poller {
    source: HlsSource,
    url: Url,
    first_recheck: Duration,
    /// `LiveDetected` was sent and no `StreamOffline` since.
    announced: bool,
    was_recording: bool,
    busy_since: Option<Instant>,
    /// The newest segment when the last recording ended: the same playlist still answering
    /// (an ended or stuck one) is not a new broadcast.
    recorded_up_to: Option<String>,
    /// Recordings that ended while the source went on, and when it may be announced again.
    restarts: u32,
    quiet_until: Option<Instant>,
    /// Why it cannot be recorded, as last reported.
    reported: Option<String>,
    /// Failed polls in a row, and whether that was reported.
    failures: u32,
    reported_failing: bool,
}

impl Poller {
    fn new(source: HlsSource, url: Url) -> Poller {
        Poller {
            first_recheck: source.every.saturating_mul(FIRST_RECHECK_POLLS),
            source,
            url,
            announced: false,
            was_recording: false,
            busy_since: None,
            recorded_up_to: None,
            restarts: 0,
            quiet_until: None,
            reported: None,
            failures: 0,
            reported_failing: false,
        }
    }

    async fn emit(&self, kind: EventKind) {
        self.source
            .events
            .emit(Some(self.source.name.clone()), kind)
            .await;
    }

    /// Acts on what one poll saw (while the source is not being recorded).
    async fn saw(&mut self, seen: Seen) {
        if !matches!(seen, Seen::Failing(_)) {
            self.failures = 0;
            if self.reported_failing {
                self.reported_failing = false;
                self.emit(EventKind::LiveCheckRecovered).await;
            }
        }
        if self.announced && matches!(seen, Seen::Offline | Seen::Failing(_)) {
            self.announced = false;
            self.emit(EventKind::StreamOffline { stream_id: None })
                .await;
        }
        match seen {
            Seen::Live { last, ended } if self.was_recording => self.recording_ended(last, ended),
            Seen::Live { last, .. } if self.recorded_up_to.as_ref() != Some(&last) => {
                self.live().await;
            }
            Seen::Live { .. } => {}
            Seen::Offline => {
                self.was_recording = false;
                self.busy_since = None;
                self.restarts = 0;
                self.quiet_until = None;
                self.reported = None;
            }
            Seen::Failing(reason) => self.failing(reason).await,
            Seen::Unrecordable(reason) => self.unrecordable(reason).await,
        }
    }

    /// The first poll after a recording (or the attempt to start one) ended.
    fn recording_ended(&mut self, last: String, ended: bool) {
        self.recorded_up_to = Some(last);
        self.was_recording = false;
        let lasted = self.busy_since.take().map(|t| t.elapsed());
        if !ended {
            // The recording (or the attempt to start it) ended while the source
            // goes on: wait before trying again, longer each time.
            if lasted.is_some_and(|d| d >= HEALTHY) {
                self.restarts = 0;
            }
            let delay = crate::backoff::exponential(self.restarts, self.first_recheck, MAX_RECHECK);
            tracing::info!(login = %self.source.name, delay_secs = delay.as_secs(), "recording ended while the source goes on; announcing it again later");
            self.quiet_until = Some(Instant::now() + delay);
            self.restarts = self.restarts.saturating_add(1);
        }
    }

    /// Video not recorded yet: announced, unless still waiting out the backoff.
    async fn live(&mut self) {
        if self.quiet_until.is_some_and(|t| Instant::now() < t) {
            // Still waiting out the backoff.
            return;
        }
        self.quiet_until = None;
        self.reported = None;
        self.recorded_up_to = None;
        self.announced = true;
        self.emit(EventKind::LiveDetected {
            stream_id: None,
            display_name: None,
            title: self.source.name.to_string(),
            game: None,
            viewers: None,
            started_at: None,
            latency_secs: None,
        })
        .await;
        // Give the core a moment to start the recording before looking again.
        self.was_recording = true;
    }

    async fn failing(&mut self, reason: String) {
        self.failures = self.failures.saturating_add(1);
        let failures = self.failures;
        tracing::debug!(login = %self.source.name, reason, failures, "the HLS source cannot be read");
        self.was_recording = false;
        self.busy_since = None;
        if self.failures >= FAILURES_BEFORE_REPORT && !self.reported_failing {
            self.reported_failing = true;
            self.emit(EventKind::LiveCheckFailed {
                reason,
                cycles: failures,
            })
            .await;
        }
    }

    async fn unrecordable(&mut self, reason: String) {
        self.was_recording = false;
        if self.reported.as_ref() != Some(&reason) {
            tracing::warn!(login = %self.source.name, reason, "the HLS source cannot be recorded");
            self.emit(EventKind::RecordingFailed {
                reason: reason.clone(),
            })
            .await;
            self.reported = Some(reason);
        }
    }
}
