//! Live detection for non-Twitch HLS sources (`add hls <url> <name>`): while the source is not
//! being recorded, its playlist is polled every poll interval; it is live while it answers with
//! video not recorded yet, which is announced as `LiveDetected` (and `StreamOffline` when it
//! stops answering) so the core records it exactly like a Twitch stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recbot_commands::{Login, Quality};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::fetch::{self, Origin, Resolved};
use super::playlist;
use crate::core::Events;
use crate::event::EventKind;

/// Logins being recorded right now (kept by the core; pollers pause for them).
pub type Recording = Arc<Mutex<HashSet<Login>>>;

/// What one poll saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Answering; the address of its newest segment.
    Live(String),
    Offline,
}

async fn probe(http: &reqwest::Client, url: &Url, cancel: &CancellationToken) -> Seen {
    let origin = Origin::Hls { url: url.clone() };
    let Ok(Resolved::Live(media)) = origin.resolve(http, Quality::BEST, cancel).await else {
        return Seen::Offline;
    };
    let Ok(body) = fetch::get(http, &media.url, None).await else {
        return Seen::Offline;
    };
    match playlist::parse_media(&body) {
        Ok(pl) => match pl.segments.last() {
            Some(last) => Seen::Live(last.uri.clone()),
            None => Seen::Offline,
        },
        Err(_) => Seen::Offline,
    }
}

/// Polls one HLS source until `cancel`.
pub async fn poll(
    name: Login,
    url: String,
    every: Duration,
    http: reqwest::Client,
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
    let mut announced = false;
    let mut was_recording = false;
    // The newest segment when the last recording ended: the same playlist still answering
    // (an ended or stuck one) is not a new broadcast.
    let mut recorded_up_to: Option<String> = None;
    loop {
        let busy = recording.lock().map(|r| r.contains(&name)).unwrap_or(false);
        if busy {
            was_recording = true;
        } else {
            match probe(&http, &url, &cancel).await {
                Seen::Live(last) if was_recording => {
                    recorded_up_to = Some(last);
                    was_recording = false;
                }
                Seen::Live(last) if recorded_up_to.as_ref() != Some(&last) => {
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
                Seen::Live(_) => {}
                Seen::Offline => {
                    was_recording = false;
                    if announced {
                        announced = false;
                        events
                            .emit(
                                Some(name.clone()),
                                EventKind::StreamOffline { stream_id: None },
                            )
                            .await;
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
