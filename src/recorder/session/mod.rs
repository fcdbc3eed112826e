//! One recording session of one login: the task that resolves the stream, polls its media
//! playlist on the wall clock, queues each new segment for download ([`Lookahead`]: retried
//! while listed, a bounded look-ahead) and writes each exactly once in media-sequence order
//! into the current part, skips ads, reports gaps (folded into one notice per interval),
//! checks free space while writing, stops within moments when its handle asks (its own
//! cancellation token), refreshes the token on 403 or a stall (backing
//! off while refreshes keep failing), rolls parts, finishes each part (rename + sidecar +
//! `RecordingPartFinished`), waits out the offline grace period for the stream to come back
//! (the same broadcast: a different `BROADCAST-ID` ends the session), and reports
//! `RecordingFinished` at the end. After every segment the progress checkpoint records the
//! bytes and the stream position, so a crash loses nothing written and a restart neither
//! repeats nor silently skips segments.
//!
//! Its jobs, one file each: the session's lifecycle and its reactions to control messages
//! (here), the playlist loop ([`poll`]), taking in what the look-ahead hands over
//! ([`take`]), the stall watchdog ([`stall`]), waiting for a comeback ([`comeback`]), the
//! part being written ([`part`]) and the gaps and ad breaks noted in it ([`marks`]).

mod comeback;
mod cursor;
mod index;
mod marks;
mod part;
mod poll;
mod stall;
mod take;

use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

use super::fetch::{FetchError, MediaSource, Resolved, StreamSource};
use super::gaps::{cap, GapNotices, MAX_TEXT};
use super::lookahead::Lookahead;
use super::{Control, LiveStatus, Recorder, RecordingSpec, SourceSpec, StopReason};
use crate::archive::sidecar::{AdBreak, Chapter, Gap};
use crate::event::{Event, EventKind};
use crate::metrics::LoginCounters;
use crate::rendition::{Codec, Withheld};
use cursor::Cursor;
use marks::AdRun;
pub(super) use part::checkpoint_path;
use part::OpenPart;

/// How a stretch of recording (one resolve → end of playlist) ended.
#[derive(Debug)]
enum TakeEnd {
    /// The stream went off the air (ENDLIST, 404, offline): wait for a comeback; a jump in the
    /// numbering after it is time off the air.
    Ended(String),
    /// No new video for too long although nothing said the stream ended: wait for a comeback;
    /// what the playlist no longer offers after it is a gap.
    Stalled(String),
    /// The source could not be reached (after retries); like `Stalled`. During a refresh the
    /// old playlist address is kept and polling goes on instead.
    Unreachable(String),
    /// A different broadcast (`BROADCAST-ID`) replaced the one being recorded: this session
    /// is over; the new broadcast is a new session.
    NewBroadcast(String),
    /// A new token offers another rendition than the one recorded (the viewer login came or
    /// changed): the part ends and the next take records the new rendition (already resolved
    /// in `resolved`) in a new part.
    RenditionChanged(String),
    /// Cannot continue for a reason a retry will not fix.
    Failed(String),
    /// Asked to stop (shutdown or by the core).
    Stop,
}

/// A rendition's video codec, size and frame rate, as the master playlist gave them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Format {
    codec: Option<Codec>,
    resolution: Option<(u32, u32)>,
    fps: Option<u32>,
}

#[derive(Debug, Default)]
struct Totals {
    parts: u32,
    bytes: u64,
    duration: f64,
    gaps: u32,
    ad_breaks: u32,
}

pub(super) struct Session {
    rec: Recorder,
    spec: RecordingSpec,
    stream: StreamSource,
    control: mpsc::Receiver<Control>,
    status: Arc<Mutex<LiveStatus>>,
    title: String,
    game: Option<String>,
    quality: String,
    /// The recorded rendition's video codec, size and frame rate (for the sidecar).
    format: Format,
    /// Better renditions on air that are not recorded (for the sidecar), as of the last take.
    withheld: Vec<Withheld>,
    /// `RenditionWithheld` was sent (once per session).
    withheld_told: bool,
    next_part: u32,
    part: Option<OpenPart>,
    /// Gaps and ad breaks noted while no part was open; they go into the next part.
    pending_gaps: Vec<Gap>,
    pending_ads: Vec<AdBreak>,
    ad: Option<AdRun>,
    cursor: Cursor,
    totals: Totals,
    offline_since: Option<Instant>,
    /// A media playlist found while waiting for a comeback, used by the next take.
    resolved: Option<MediaSource>,
    /// The first `BROADCAST-ID` the master playlist named; a different one later is another
    /// broadcast.
    broadcast: Option<String>,
    /// Why the last refresh was refused, while refreshes keep being refused.
    refused: Option<String>,
    stop: Option<StopReason>,
    failure: Option<String>,
    /// Segments listed but not taken in yet (downloading, waiting for another try, or whole
    /// and waiting for the ones before them).
    queue: Lookahead,
    /// Like `cursor`, for what is queued: the next playlist continues after it.
    ahead: Cursor,
    notices: GapNotices,
    /// Why the handle asked to stop, read when the session's token fires.
    stopping: Arc<Mutex<Option<StopReason>>>,
    /// Bytes written since free space was last checked.
    unchecked_bytes: u64,
    /// This login's metrics (looked up once per session).
    counters: LoginCounters,
    /// `recbot_live_detection_seconds` was observed (at the session's first segment).
    detection_noted: bool,
    /// The media playlist's target duration, as last loaded (a new part's index header).
    target_duration: f64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("login", &self.spec.login)
            .field("session", &self.spec.session)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(super) fn new(
        rec: Recorder,
        spec: RecordingSpec,
        control: mpsc::Receiver<Control>,
        status: Arc<Mutex<LiveStatus>>,
        stopping: Arc<Mutex<Option<StopReason>>>,
        cancel: CancellationToken,
    ) -> Session {
        let stream = match &spec.source {
            SourceSpec::Twitch => StreamSource::Twitch {
                playback: rec.playback.clone(),
                login: spec.login.clone(),
            },
            SourceSpec::Hls { url } => StreamSource::Hls {
                // Validated by the command parser; a bad one fails at the first request.
                url: Url::parse(url).unwrap_or_else(|_| Url::parse("http://invalid.").unwrap()),
            },
            SourceSpec::Chzzk => match spec.login.chzzk_id() {
                Some(id) => StreamSource::Chzzk {
                    api: rec.chzzk.clone(),
                    id,
                },
                // Not a Chzzk key (cannot happen: the core makes Chzzk specs of Chzzk
                // keys): an address that fails at the first request.
                None => StreamSource::Hls {
                    url: Url::parse("http://invalid.").unwrap(),
                },
            },
        };
        let counters = rec.metrics.login(spec.login.as_str());
        Session {
            title: spec.title.clone(),
            game: spec.game.clone(),
            next_part: spec.first_part.max(1),
            quality: spec.quality.to_string(),
            format: Format::default(),
            withheld: Vec::new(),
            withheld_told: false,
            stream,
            control,
            status,
            part: None,
            pending_gaps: Vec::new(),
            pending_ads: Vec::new(),
            ad: None,
            cursor: Cursor::after(spec.resume),
            totals: Totals::default(),
            offline_since: None,
            resolved: None,
            broadcast: None,
            refused: None,
            stop: None,
            failure: None,
            queue: Lookahead::new(rec.http.clone(), rec.settings.limits.clone(), cancel)
                .timed(counters.segment_fetch.clone()),
            ahead: Cursor::default(),
            notices: GapNotices::new(rec.settings.gap_notice),
            stopping,
            unchecked_bytes: 0,
            counters,
            // A session continued after a restart: its first segment says nothing of detection.
            detection_noted: spec.resume.is_some() || spec.first_part > 1,
            target_duration: 0.0,
            rec,
            spec,
        }
    }

    pub(super) async fn run(mut self, cancel: CancellationToken) {
        info!(login = %self.spec.login, session = self.spec.session, "recording session starts");
        loop {
            let end = self.take(&cancel).await;
            self.close_ad_run().await;
            self.finish_part().await;
            self.set_status(|s| s.recording = false);
            let off_air = matches!(end, TakeEnd::Ended(_));
            match end {
                TakeEnd::Stop => break,
                TakeEnd::Failed(reason) => {
                    self.failure = Some(reason);
                    break;
                }
                TakeEnd::NewBroadcast(why) => {
                    self.new_broadcast(&why);
                    break;
                }
                TakeEnd::RenditionChanged(why) => {
                    info!(login = %self.spec.login, why, "a new part begins with the new rendition");
                }
                TakeEnd::Ended(why) | TakeEnd::Stalled(why) | TakeEnd::Unreachable(why) => {
                    debug!(login = %self.spec.login, why, "stream gone; waiting for it to come back");
                    if !self.await_comeback(&cancel).await {
                        // Nothing said the stream ended: recording gave up on a stream that
                        // may well go on. Say so (the core checks the login again later).
                        let gave_up = !off_air
                            && self.stop.is_none()
                            && self.offline_since.is_none()
                            && !self.status.lock().is_ok_and(|s| s.new_broadcast);
                        if gave_up {
                            self.failure = Some(format!("gave up recording: {why}"));
                        }
                        break;
                    }
                    // Only time off the air explains a jump in the numbering; after a stall
                    // or an outage, what the playlist no longer offers was missed.
                    self.cursor.after_comeback = off_air;
                    if !off_air {
                        self.cursor.jump_reason =
                            Some("was no longer offered when the stream could be read again");
                    }
                }
            }
        }
        self.finish_session().await;
    }

    fn emit_event(&self, kind: EventKind) -> Event {
        Event::now(Some(self.spec.login.clone()), kind).in_session(self.spec.session)
    }

    async fn emit(&self, kind: EventKind) {
        self.rec.events.send(self.emit_event(kind)).await;
    }

    /// The session's token fired: a stop the handle asked for (its reason), else shutdown.
    fn note_stop(&mut self) {
        if self.stop.is_none() {
            let asked = self.stopping.lock().ok().and_then(|mut s| s.take());
            self.stop = Some(asked.unwrap_or(StopReason::Shutdown));
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut LiveStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// The stream id as known now (the core may have learnt it since the start).
    fn stream_id(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.stream_id.clone())
    }

    fn new_broadcast(&mut self, why: &str) {
        info!(login = %self.spec.login, session = self.spec.session, why, "a new broadcast; this session ends");
        self.set_status(|s| s.new_broadcast = true);
    }

    /// Notes the broadcast a resolved playlist belongs to. A different one than before is a
    /// new broadcast; the first one seen tells the stream id when it was not known yet.
    fn check_broadcast(&mut self, media: &MediaSource) -> Result<(), TakeEnd> {
        let Some(seen) = &media.broadcast_id else {
            return Ok(());
        };
        match &self.broadcast {
            Some(first) if first != seen => {
                return Err(TakeEnd::NewBroadcast(format!(
                    "broadcast {seen} replaced {first}"
                )))
            }
            Some(_) => {}
            None => self.broadcast = Some(seen.clone()),
        }
        let known = self.stream_id();
        match known {
            None => {
                debug!(login = %self.spec.login, stream_id = %seen, "stream id learnt from the master playlist");
                self.set_status(|s| s.stream_id = Some(seen.clone()));
            }
            Some(id) if id != *seen => {
                warn!(login = %self.spec.login, stream_id = %id, broadcast_id = %seen, "live detection and the master playlist name different streams");
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Applies a control message; returns an end when it asks to stop.
    fn control(&mut self, c: Control) -> Option<TakeEnd> {
        match c {
            Control::Update { title, game } => {
                if let Some(part) = &mut self.part {
                    part.sidecar.chapters.push(Chapter {
                        at: Utc::now(),
                        offset_secs: part.sidecar.duration_secs,
                        title: title.clone(),
                        game: game.clone(),
                    });
                }
                self.title = title;
                self.game = game;
                None
            }
            Control::Offline => {
                self.offline_since.get_or_insert_with(Instant::now);
                None
            }
            Control::Live => {
                self.offline_since = None;
                None
            }
            Control::Stop(reason) => {
                self.stop = Some(reason);
                Some(TakeEnd::Stop)
            }
        }
    }

    /// Takes `media` as the rendition recorded from now on: its name and format go into the
    /// parts' sidecars, with what better is on air and not recorded; the first time that is
    /// anything (or only audio is recorded although video was asked for), the session says
    /// so, once.
    async fn adopt(&mut self, media: &MediaSource) {
        self.quality = media.quality.clone();
        self.format = Format {
            codec: media.codec,
            resolution: media.resolution,
            fps: media.fps,
        };
        self.withheld = media.withheld.clone();
        if self.withheld_told || (media.withheld.is_empty() && !media.audio_only) {
            return;
        }
        self.withheld_told = true;
        if media.audio_only {
            warn!(login = %self.spec.login, withheld = media.withheld.len(), "recording audio only: no video rendition can be recorded");
        } else {
            info!(login = %self.spec.login, quality = %media.quality, withheld = media.withheld.len(), "better renditions are on air than the one recorded");
        }
        self.emit(EventKind::RenditionWithheld {
            recorded: media.quality.clone(),
            withheld: media.withheld.clone(),
            audio_only: media.audio_only,
        })
        .await;
    }

    async fn resolve(&mut self, cancel: &CancellationToken) -> Result<MediaSource, TakeEnd> {
        if let Some(found) = self.resolved.take() {
            return Ok(found);
        }
        match self
            .stream
            .resolve(
                &self.rec.http,
                self.spec.quality,
                &self.rec.settings.codecs,
                cancel,
            )
            .await
        {
            Ok(Resolved::Live(m, _)) => {
                self.check_broadcast(&m)?;
                Ok(m)
            }
            Ok(Resolved::Offline) => Err(TakeEnd::Ended("the stream is offline".into())),
            Err(FetchError::Cancelled) => {
                self.note_stop();
                Err(TakeEnd::Stop)
            }
            Err(FetchError::Refused(reason) | FetchError::Disallowed(reason)) => {
                Err(TakeEnd::Failed(reason))
            }
            Err(e) => Err(TakeEnd::Unreachable(format!(
                "cannot reach the stream: {e}"
            ))),
        }
    }

    async fn finish_session(&mut self) {
        self.flush_notice().await;
        if self.stop == Some(StopReason::Shutdown) {
            info!(login = %self.spec.login, "recording stopped for shutdown; the session continues after a restart");
            return;
        }
        let new_broadcast = self.status.lock().is_ok_and(|s| s.new_broadcast);
        // A part without its sidecar still holds video (it is finished at the next start).
        let nothing = self.totals.parts == 0
            && self.totals.bytes == 0
            && self.spec.first_part <= 1
            && !new_broadcast;
        let reason = self.failure.take().or_else(|| {
            nothing.then(|| match &self.stop {
                Some(StopReason::Ended(why)) => {
                    format!("stopped before anything was recorded: {why}")
                }
                _ => "the stream was announced live but its playlist never delivered video".into(),
            })
        });
        if let Some(reason) = reason {
            // Reasons may quote what a source sent (an address, an error text): capped.
            let reason = cap(&reason, MAX_TEXT);
            self.emit(EventKind::RecordingFailed { reason }).await;
        }
        // RecordingFinished always closes the session, also when nothing was recorded.
        let kind = EventKind::RecordingFinished {
            parts: self.totals.parts,
            duration_secs: self.totals.duration,
            bytes: self.totals.bytes,
            gaps: self.totals.gaps,
        };
        self.emit(kind).await;
        info!(login = %self.spec.login, session = self.spec.session, "recording session ended");
    }
}

/// Sleeps until `at` (a branch of `select!` only enabled when there is one).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
