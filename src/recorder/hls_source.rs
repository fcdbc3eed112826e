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

use super::fetch::{self, FetchError, Origin, Resolved};
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
    let origin = Origin::Hls { url: url.clone() };
    let media = match origin.resolve(http, Quality::BEST, cancel).await {
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

/// Polls one HLS source until `cancel`.
pub async fn poll(
    name: Login,
    url: String,
    every: Duration,
    http: fetch::Http,
    recording: Recording,
    events: Events,
    cancel: CancellationToken,
) {
    let Ok(url) = Url::parse(&url) else {
        events
            .emit(
                Some(name),
                EventKind::RecordingFailed {
                    reason: format!("`{url}` is not a valid address"),
                },
            )
            .await;
        return;
    };
    let first_recheck = every.saturating_mul(FIRST_RECHECK_POLLS);
    let mut announced = false;
    let mut was_recording = false;
    let mut busy_since: Option<Instant> = None;
    // The newest segment when the last recording ended: the same playlist still answering
    // (an ended or stuck one) is not a new broadcast.
    let mut recorded_up_to: Option<String> = None;
    // Recordings that ended while the source went on, and when it may be announced again.
    let mut restarts = 0u32;
    let mut quiet_until: Option<Instant> = None;
    let mut reported: Option<String> = None;
    // Failed polls in a row, and whether that was reported.
    let mut failures = 0u32;
    let mut reported_failing = false;
    loop {
        let busy = recording.lock().map(|r| r.contains(&name)).unwrap_or(false);
        if busy {
            was_recording = true;
            busy_since.get_or_insert_with(Instant::now);
        } else {
            let seen = tokio::select! {
                _ = cancel.cancelled() => return,
                seen = probe(&http, &url, &cancel) => seen,
            };
            if !matches!(seen, Seen::Failing(_)) {
                failures = 0;
                if reported_failing {
                    reported_failing = false;
                    events
                        .emit(Some(name.clone()), EventKind::LiveCheckRecovered)
                        .await;
                }
            }
            if announced && matches!(seen, Seen::Offline | Seen::Failing(_)) {
                announced = false;
                events
                    .emit(
                        Some(name.clone()),
                        EventKind::StreamOffline { stream_id: None },
                    )
                    .await;
            }
            match seen {
                Seen::Live { last, ended } if was_recording => {
                    recorded_up_to = Some(last);
                    was_recording = false;
                    let lasted = busy_since.take().map(|t| t.elapsed());
                    if !ended {
                        // The recording (or the attempt to start it) ended while the source
                        // goes on: wait before trying again, longer each time.
                        if lasted.is_some_and(|d| d >= HEALTHY) {
                            restarts = 0;
                        }
                        let delay =
                            crate::backoff::exponential(restarts, first_recheck, MAX_RECHECK);
                        tracing::info!(login = %name, delay_secs = delay.as_secs(), "recording ended while the source goes on; announcing it again later");
                        quiet_until = Some(Instant::now() + delay);
                        restarts = restarts.saturating_add(1);
                    }
                }
                Seen::Live { last, .. } if recorded_up_to.as_ref() != Some(&last) => {
                    if quiet_until.is_some_and(|t| Instant::now() < t) {
                        // Still waiting out the backoff.
                    } else {
                        quiet_until = None;
                        reported = None;
                        recorded_up_to = None;
                        announced = true;
                        events
                            .emit(
                                Some(name.clone()),
                                EventKind::LiveDetected {
                                    stream_id: None,
                                    display_name: None,
                                    title: name.to_string(),
                                    game: None,
                                    viewers: None,
                                    started_at: None,
                                    latency_secs: None,
                                },
                            )
                            .await;
                        // Give the core a moment to start the recording before looking again.
                        was_recording = true;
                    }
                }
                Seen::Live { .. } => {}
                Seen::Offline => {
                    was_recording = false;
                    busy_since = None;
                    restarts = 0;
                    quiet_until = None;
                    reported = None;
                }
                Seen::Failing(reason) => {
                    failures = failures.saturating_add(1);
                    tracing::debug!(login = %name, reason, failures, "the HLS source cannot be read");
                    was_recording = false;
                    busy_since = None;
                    if failures >= FAILURES_BEFORE_REPORT && !reported_failing {
                        reported_failing = true;
                        events
                            .emit(
                                Some(name.clone()),
                                EventKind::LiveCheckFailed {
                                    reason,
                                    cycles: failures,
                                },
                            )
                            .await;
                    }
                }
                Seen::Unrecordable(reason) => {
                    was_recording = false;
                    if reported.as_ref() != Some(&reason) {
                        tracing::warn!(login = %name, reason, "the HLS source cannot be recorded");
                        events
                            .emit(
                                Some(name.clone()),
                                EventKind::RecordingFailed {
                                    reason: reason.clone(),
                                },
                            )
                            .await;
                        reported = Some(reason);
                    }
                }
            }
        }
        // A source that keeps failing is asked less and less often.
        let wait = match failures {
            0 => every,
            n => every.max(crate::backoff::exponential(n, every, MAX_FAILING_POLL)),
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
