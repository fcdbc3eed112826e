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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

use super::disk;
use super::fetch::{self, FetchError, MediaSource, Origin, Resolved, PLAYLIST_ATTEMPTS};
use super::gaps::{cap, GapNotices, MAX_TEXT};
use super::lookahead::{Lookahead, Ready};
use super::playlist::{self, InitMap, MediaPlaylist, Segment};
use super::writer::{Note, PartFile};
use super::{Control, LiveStatus, Recorder, RecordingSpec, SourceSpec, StopReason};
use crate::archive::layout::synced_note_path;
use crate::archive::layout::{self as naming, NameValues};
use crate::archive::sidecar::{AdBreak, Chapter, Gap, Position, Sidecar};
use crate::event::{Event, EventKind};

/// Shortest wait between two playlist reloads.
const MIN_RELOAD: Duration = Duration::from_millis(100);
/// Twitch cuts media playlists after about 24 h (403); fetch a new token before that.
const TOKEN_LIFETIME: Duration = Duration::from_secs(23 * 3600 + 40 * 60);
/// Backoff between refreshes (token + master playlist) that did not give a working playlist:
/// a playlist that keeps answering 403 must not make recbot hammer GQL and usher.
const REFRESH_BASE: Duration = Duration::from_millis(500);
const REFRESH_CAP: Duration = Duration::from_secs(30);
/// Tries to write a finished part's sidecar.
const SIDECAR_ATTEMPTS: u32 = 3;

/// Where the progress checkpoint of a part being written lives: `<final>.part.json`.
pub fn checkpoint_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".part.json");
    PathBuf::from(s)
}

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
    /// Cannot continue for a reason a retry will not fix.
    Failed(String),
    /// Asked to stop (shutdown or by the core).
    Stop,
}

/// Where the next segment is, so nothing is fetched twice across reloads and refreshes.
#[derive(Debug, Default, Clone)]
struct Cursor {
    next_seq: Option<u64>,
    last_pdt: Option<DateTime<Utc>>,
    last_duration: f64,
    /// The stream was gone (ENDLIST, 404, offline) and is back: a jump in the numbering is
    /// the time it was off the air, not video we missed.
    after_comeback: bool,
    /// Why a jump at the next playlist would be missing video (a stall, an outage, a
    /// restart of recbot), for the gap's reason.
    jump_reason: Option<&'static str>,
}

impl Cursor {
    /// A cursor continuing after `last` (a session continued after a restart).
    fn after(last: Option<Position>) -> Cursor {
        match last {
            Some(p) => Cursor {
                next_seq: p.sequence.checked_add(1),
                last_pdt: p.program_date_time,
                jump_reason: Some("was on the air while recbot was not recording (a restart)"),
                ..Cursor::default()
            },
            None => Cursor::default(),
        }
    }

    /// The last segment taken in, if any.
    fn position(&self) -> Option<Position> {
        self.next_seq
            .and_then(|n| n.checked_sub(1))
            .map(|sequence| Position {
                sequence,
                program_date_time: self.last_pdt,
            })
    }
}

/// The part being written.
#[derive(Debug)]
struct OpenPart {
    file: PartFile,
    /// Relative to recordings_dir, for messages.
    relative: String,
    sidecar: Sidecar,
    map_written: Option<InitMap>,
    /// `RecordingStarted` is sent once the first segment is on disk.
    announced: bool,
}

/// An ad break in progress.
#[derive(Debug)]
struct AdRun {
    at: DateTime<Utc>,
    duration: f64,
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
    origin: Origin,
    control: mpsc::Receiver<Control>,
    status: Arc<Mutex<LiveStatus>>,
    title: String,
    game: Option<String>,
    quality: String,
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
        let origin = match &spec.source {
            SourceSpec::Twitch => Origin::Twitch {
                playback: rec.playback.clone(),
                login: spec.login.clone(),
            },
            SourceSpec::Hls { url } => Origin::Hls {
                // Validated by the command parser; a bad one fails at the first request.
                url: Url::parse(url).unwrap_or_else(|_| Url::parse("http://invalid.").unwrap()),
            },
        };
        Session {
            title: spec.title.clone(),
            game: spec.game.clone(),
            next_part: spec.first_part.max(1),
            quality: spec.quality.to_string(),
            origin,
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
            queue: Lookahead::new(rec.http.clone(), rec.settings.limits.clone(), cancel),
            ahead: Cursor::default(),
            notices: GapNotices::new(rec.settings.gap_notice),
            stopping,
            unchecked_bytes: 0,
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

    async fn resolve(&mut self, cancel: &CancellationToken) -> Result<MediaSource, TakeEnd> {
        if let Some(found) = self.resolved.take() {
            return Ok(found);
        }
        match self
            .origin
            .resolve(&self.rec.http, self.spec.quality, cancel)
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

    /// Records from one resolved playlist until it ends. What is queued when it ends is taken
    /// in: to the end when the stream ended (each segment still gets its tries, failures are
    /// gaps), else only what is whole at the front (the rest is given up silently: the cursor
    /// stays before it, so a comeback or a restart finds it again or reports it missing).
    async fn take(&mut self, cancel: &CancellationToken) -> TakeEnd {
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
    async fn abandon_queue(&mut self) {
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
    async fn take_in(&mut self) -> Result<(), TakeEnd> {
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
            } => self.gap(first, last, seconds, reason).await,
            Ready::Ad(seg) => {
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
                self.gap(seg.sequence, seg.sequence, seg.duration, reason)
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

    /// Polls the playlist of one resolution until it ends, queueing its segments.
    async fn take_playlist(&mut self, cancel: &CancellationToken) -> TakeEnd {
        let mut media = match self.resolve(cancel).await {
            Ok(m) => m,
            Err(end) => return end,
        };
        self.quality = media.quality.clone();
        let mut resolved_at = Instant::now();
        let mut last_new = Instant::now();
        // 0: fine; 1: refreshed after a stall; 2: stall reported.
        let mut stall_stage = 0;
        let mut stall_limit = self.rec.settings.stall_timeout;
        let mut next_reload = Instant::now();
        let mut failures = 0u32;
        // Refreshes in a row that did not give a playlist that loads.
        let mut refreshes = 0u32;
        loop {
            let wake = self.queue.next_wake();
            let notice = self.notices.due_at();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.note_stop();
                    return TakeEnd::Stop;
                }
                Some(c) = self.control.recv() => {
                    if let Some(end) = self.control(c) {
                        return end;
                    }
                    continue;
                }
                _ = self.queue.next_finished(), if self.queue.downloading() => {
                    if let Err(end) = self.take_in().await {
                        return end;
                    }
                    continue;
                }
                _ = sleep_until_some(wake), if wake.is_some() => {
                    self.queue.start_due();
                    continue;
                }
                _ = sleep_until_some(notice), if notice.is_some() => {
                    self.flush_notice().await;
                    continue;
                }
                _ = tokio::time::sleep_until(next_reload) => {}
            }
            let started = Instant::now();
            let fetched = match fetch::get(&self.rec.http, &media.url, None, cancel).await {
                Ok(body) => playlist::parse_media(&body).map_err(FetchError::from),
                Err(e) => Err(e),
            };
            let mut refresh = false;
            // Why the playlist did not load, for the report when recording gives up.
            let mut last_error: Option<String> = None;
            match fetched {
                Err(FetchError::Cancelled) => {
                    self.note_stop();
                    return TakeEnd::Stop;
                }
                Err(FetchError::Playlist(e @ playlist::PlaylistError::Encrypted(_))) => {
                    return TakeEnd::Failed(e.to_string());
                }
                Ok(pl) => {
                    failures = 0;
                    refreshes = 0;
                    self.refused = None;
                    let new = self.process(&pl, &media.url);
                    self.queue.listed(
                        pl.segments.first().map(|s| s.sequence),
                        pl.segments.last().map(|s| s.sequence),
                        pl.end_list,
                    );
                    if let Err(end) = self.take_in().await {
                        return end;
                    }
                    if new {
                        last_new = Instant::now();
                        stall_stage = 0;
                    }
                    if pl.end_list {
                        return TakeEnd::Ended("the playlist ended (EXT-X-ENDLIST)".into());
                    }
                    let target = if pl.target_duration > 0.0 {
                        pl.target_duration
                    } else {
                        self.cursor.last_duration.max(1.0)
                    };
                    let target = Duration::from_secs_f64(target);
                    stall_limit = self.rec.settings.stall_timeout.max(target * 3);
                    let wait = if new { target } else { target / 2 };
                    next_reload = started + wait.max(MIN_RELOAD);
                }
                Err(e @ FetchError::Status(403 | 404 | 410)) => {
                    last_error = Some(e.to_string());
                    refresh = true;
                }
                Err(e) => {
                    last_error = Some(e.to_string());
                    failures += 1;
                    debug!(login = %self.spec.login, error = %e, failures, "playlist reload failed");
                    if failures >= PLAYLIST_ATTEMPTS {
                        failures = 0;
                        refresh = true;
                    } else {
                        next_reload = Instant::now()
                            + crate::backoff::exponential(
                                failures - 1,
                                fetch::RETRY_BASE,
                                fetch::RETRY_CAP,
                            );
                    }
                }
            }
            if resolved_at.elapsed() >= TOKEN_LIFETIME {
                refresh = true;
            }
            let stalled_for = last_new.elapsed();
            if let Some(since) = self.offline_since {
                if since.elapsed() >= self.rec.settings.offline_grace && last_new <= since {
                    return TakeEnd::Ended("offline past the grace period".into());
                }
            }
            if stalled_for >= stall_limit && stall_stage == 0 {
                info!(login = %self.spec.login, "no new segment for {stalled_for:?}; new token and playlist");
                stall_stage = 1;
                refresh = true;
            } else if stalled_for >= stall_limit * 2 && stall_stage == 1 {
                stall_stage = 2;
                self.emit(EventKind::RecordingStalled {
                    seconds: stalled_for.as_secs(),
                })
                .await;
            } else if stall_stage == 2
                && stalled_for >= stall_limit * 2 + self.rec.settings.offline_grace
            {
                // Refreshes refused all along: that is why, and a retry will not fix it.
                if let Some(reason) = self.refused.take() {
                    return TakeEnd::Failed(reason);
                }
                let answer = last_error
                    .as_ref()
                    .map(|e| format!(" (the playlist answers {e})"))
                    .unwrap_or_default();
                return TakeEnd::Stalled(format!(
                    "no new video for {}s{answer}",
                    stalled_for.as_secs()
                ));
            }
            if refresh {
                // The first refresh in a row is immediate (an expired token: no gap); more
                // back off, so a playlist that keeps failing is not hammered.
                let wait = match refreshes {
                    0 => Duration::ZERO,
                    n => crate::backoff::exponential(n - 1, REFRESH_BASE, REFRESH_CAP),
                };
                refreshes = refreshes.saturating_add(1);
                // A new token and master playlist; the cursor keeps the media sequence, so the
                // new playlist continues where the old one stopped.
                match self.resolve(cancel).await {
                    Ok(m) => {
                        debug!(login = %self.spec.login, refreshes, "playlist refreshed");
                        resolved_at = Instant::now();
                        self.refused = None;
                        media = m;
                        next_reload = Instant::now() + wait;
                    }
                    // A network blip or a passing refusal: keep polling the playlist we have;
                    // the stall watchdog bounds how long.
                    Err(TakeEnd::Unreachable(why)) => {
                        debug!(login = %self.spec.login, why, "refresh failed; polling on");
                        next_reload = Instant::now() + wait.max(Duration::from_secs(1));
                    }
                    // Twitch refusing a token can pass (a day of integrity checks): keep
                    // polling, and if it lasts, the stall watchdog fails with this reason.
                    Err(TakeEnd::Failed(why)) => {
                        let why = cap(&why, MAX_TEXT);
                        warn!(login = %self.spec.login, why, "refresh refused; polling on");
                        self.refused = Some(why);
                        next_reload = Instant::now() + wait.max(Duration::from_secs(1));
                    }
                    Err(end) => return end,
                }
            }
        }
    }

    /// Queues the segments of one playlist load not queued before (and what the playlist no
    /// longer offered, as missing); `true` when any was new.
    fn process(&mut self, pl: &MediaPlaylist, base: &Url) -> bool {
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
                    self.queue
                        .push_missing(next, seg.sequence - 1, seconds, reason.into());
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
            let missing = between - self.ahead.last_duration;
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

    /// Writes one whole segment (its init segment first when it changed), then the
    /// checkpoint; checks free space every so many bytes.
    async fn write_segment(
        &mut self,
        seg: &Segment,
        body: Vec<bytes::Bytes>,
        base: &Url,
    ) -> Result<(), TakeEnd> {
        if self.part.is_none() {
            self.open_part(seg.map.is_some()).await?;
        }
        let part = self.part.as_ref().expect("opened above");
        let mut init = None;
        if seg.map.is_some() && seg.map != part.map_written {
            let map = seg.map.clone().expect("checked");
            let result = match base.join(&map.uri) {
                Ok(url) => {
                    self.queue
                        .fetch_whole(&url, map.byte_range, seg.duration)
                        .await
                }
                Err(_) => Err(FetchError::Refused(format!(
                    "bad init address `{}`",
                    cap(&map.uri, MAX_TEXT)
                ))),
            };
            match result {
                Ok(bytes) => init = Some((map, bytes)),
                Err(e) => return self.segment_failed(seg, e, "its init segment ").await,
            }
        }
        let part = self.part.as_mut().expect("opened above");
        if seg.discontinuity && part.sidecar.segments > 0 {
            part.sidecar
                .discontinuities
                .push(part.sidecar.duration_secs);
        }
        let mark = part.file.len();
        let mut appended: std::io::Result<()> = Ok(());
        let map_written = init.as_ref().map(|(map, _)| map.clone());
        let chunks = init.into_iter().flat_map(|(_, b)| b).chain(body);
        for chunk in chunks {
            appended = part.file.append(chunk).await;
            if appended.is_err() {
                break;
            }
        }
        if let Err(e) = appended {
            let _ = part.file.truncate(mark).await;
            return self.segment_failed(seg, FetchError::Disk(e), "").await;
        }
        if map_written.is_some() {
            part.map_written = map_written;
        }
        let written = part.file.len() - mark;
        part.sidecar.segments += 1;
        part.sidecar.duration_secs += seg.duration;
        part.sidecar.bytes = part.file.len();
        part.sidecar.ended = Utc::now();
        part.sidecar.last_segment = self.cursor.position();
        // Whole segments go to the file at once, followed by the checkpoint that says so: a
        // killed process loses at most the segment being downloaded, however low the
        // bitrate, and recovery knows where the last whole segment ends.
        let note = serde_json::to_vec(&part.sidecar).ok().map(|bytes| Note {
            path: checkpoint_path(part.file.final_path()),
            bytes,
        });
        if let Err(e) = part.file.flush_and_note(note).await {
            part.sidecar.segments -= 1;
            part.sidecar.duration_secs -= seg.duration;
            return self.segment_failed(seg, FetchError::Disk(e), "").await;
        }
        if !part.announced {
            part.announced = true;
            let kind = EventKind::RecordingStarted {
                file: part.relative.clone(),
                quality: part.sidecar.quality.clone(),
                part: part.sidecar.part,
            };
            self.rec
                .events
                .send(Event::now(Some(self.spec.login.clone()), kind).in_session(self.spec.session))
                .await;
        }
        let part = self.part.as_mut().expect("open");
        let (bytes, duration) = (part.file.len(), part.sidecar.duration_secs);
        self.totals.duration += seg.duration;
        self.unchecked_bytes += written;
        let (done_bytes, total_duration) = (self.totals.bytes, self.totals.duration);
        self.set_status(|s| {
            s.bytes = done_bytes + bytes;
            s.duration_secs = total_duration;
        });
        if duration >= self.rec.settings.max_part.as_secs_f64() {
            // Roll at this segment boundary; the next segment opens the next part.
            self.finish_part().await;
        }
        self.check_disk().await
    }

    /// Every `disk_check_bytes` written: below `min_free_gb`, this recording stops at once
    /// (parts finished) and says so like the disk guard does, which stops the others too.
    async fn check_disk(&mut self) -> Result<(), TakeEnd> {
        // Once stopping, what is still whole in memory is written without checking again
        // (at most the look-ahead), so one stop is announced once.
        if self.unchecked_bytes < self.rec.settings.disk_check_bytes || self.stop.is_some() {
            return Ok(());
        }
        self.unchecked_bytes = 0;
        let settings = &self.rec.settings;
        let usage = match self.rec.disk_probe.usage(&settings.recordings_dir).await {
            Ok(u) => u,
            Err(e) => {
                debug!(error = %e, "cannot check free space");
                return Ok(());
            }
        };
        if disk::level(&usage, &settings.storage) != disk::Level::Stop {
            // Warnings and recoveries are the guard's to announce.
            return Ok(());
        }
        // A shortage already announced (by the guard or another recording) is not announced
        // again; this recording stops all the same.
        let announce = self.rec.disk_announced.measured(disk::Level::Stop);
        let (used_percent, free_gb) = (usage.used_percent(), usage.free_gb());
        warn!(login = %self.spec.login, free_gb, "the recordings disk is too full; recording stops");
        if announce {
            self.rec
                .events
                .emit(
                    None,
                    EventKind::DiskLow {
                        used_percent,
                        free_gb,
                        stopped_recording: true,
                    },
                )
                .await;
        }
        self.stop = Some(StopReason::Ended(disk::stop_reason(used_percent, free_gb)));
        Err(TakeEnd::Stop)
    }

    async fn segment_failed(
        &mut self,
        seg: &Segment,
        error: FetchError,
        what: &str,
    ) -> Result<(), TakeEnd> {
        match error {
            FetchError::Cancelled => {
                self.note_stop();
                Err(TakeEnd::Stop)
            }
            FetchError::Disk(e) => Err(TakeEnd::Failed(format!("cannot write the recording: {e}"))),
            e => {
                self.gap(
                    seg.sequence,
                    seg.sequence,
                    seg.duration,
                    format!("{what}could not be fetched ({e})"),
                )
                .await;
                Ok(())
            }
        }
    }

    async fn open_part(&mut self, fmp4: bool) -> Result<(), TakeEnd> {
        let started = Utc::now();
        let stream_id = self.stream_id();
        let values = NameValues {
            login: self.spec.login.as_str(),
            started,
            title: &self.title,
            game: self.game.as_deref(),
            stream_id: stream_id.as_deref(),
            part: self.next_part,
        };
        let relative = naming::render(&self.rec.settings.file_template, &values, fmp4)
            .map_err(|e| TakeEnd::Failed(format!("cannot name the recording: {e}")))?;
        let target = self.rec.settings.recordings_dir.join(&relative);
        let mut file = PartFile::create(target).await.map_err(|e| {
            TakeEnd::Failed(format!(
                "cannot create the recording file under {}: {e}",
                self.rec.settings.recordings_dir.display()
            ))
        })?;
        file.set_sync_interval(self.rec.settings.sync_interval);
        let relative = file
            .final_path()
            .strip_prefix(&self.rec.settings.recordings_dir)
            .unwrap_or(file.final_path())
            .display()
            .to_string();
        let sidecar = Sidecar {
            login: self.spec.login.to_string(),
            display_name: self.spec.display_name.clone(),
            source: match self.spec.source {
                SourceSpec::Twitch => "twitch".into(),
                SourceSpec::Hls { .. } => "hls".into(),
            },
            stream_id,
            session: self.spec.session,
            part: self.next_part,
            file: file
                .final_path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            quality: self.quality.clone(),
            started,
            ended: started,
            duration_secs: 0.0,
            segments: 0,
            bytes: 0,
            chapters: vec![Chapter {
                at: started,
                offset_secs: 0.0,
                title: self.title.clone(),
                game: self.game.clone(),
            }],
            gaps: std::mem::take(&mut self.pending_gaps),
            ad_breaks: std::mem::take(&mut self.pending_ads),
            discontinuities: Vec::new(),
            recovered: false,
            youtube_video_id: None,
            last_segment: self.cursor.position(),
        };
        // The checkpoint of an empty part: recovery then knows nothing in it is whole yet.
        // Through the file's note, so the checkpoints after each segment rewrite it in place.
        let note = serde_json::to_vec(&sidecar).ok().map(|bytes| Note {
            path: checkpoint_path(file.final_path()),
            bytes,
        });
        if let Err(e) = file.flush_and_note(note).await {
            debug!(error = %e, "cannot write the progress checkpoint");
        }
        let part_no = self.next_part;
        self.next_part += 1;
        info!(login = %self.spec.login, part = part_no, file = %relative, quality = %self.quality, "recording");
        let quality = self.quality.clone();
        let rel = relative.clone();
        self.set_status(|s| {
            s.recording = true;
            s.part = part_no;
            s.file = rel;
            s.quality = quality;
        });
        self.part = Some(OpenPart {
            file,
            relative,
            sidecar,
            map_written: None,
            announced: false,
        });
        Ok(())
    }

    /// Finishes the open part, if any: flush, fsync, rename, sidecar, event.
    async fn finish_part(&mut self) {
        let Some(part) = self.part.take() else {
            return;
        };
        let OpenPart {
            file,
            relative,
            mut sidecar,
            ..
        } = part;
        let checkpoint = checkpoint_path(file.final_path());
        if sidecar.segments == 0 {
            // Nothing made it in (the first segment failed): no empty files, and what was noted
            // goes to the next part.
            let part_path = file.part_path().to_path_buf();
            drop(file);
            let _ = tokio::fs::remove_file(&part_path).await;
            let _ = tokio::fs::remove_file(&checkpoint).await;
            let _ = tokio::fs::remove_file(synced_note_path(&checkpoint)).await;
            self.pending_gaps.append(&mut sidecar.gaps);
            self.pending_ads.append(&mut sidecar.ad_breaks);
            self.next_part -= 1;
            return;
        }
        sidecar.bytes = file.len();
        sidecar.ended = Utc::now();
        sidecar.last_segment = self.cursor.position();
        let final_path = match file.finish().await {
            Ok(p) => p,
            Err(e) => {
                // The .part stays where it is; start-up recovery finishes it.
                warn!(login = %self.spec.login, file = %relative, error = %e, "cannot finish the part");
                self.emit(EventKind::RecordingFailed {
                    reason: format!("cannot finish {relative}: {e}; it is kept as .part"),
                })
                .await;
                return;
            }
        };
        let sidecar_path = Sidecar::path_for(&final_path);
        self.totals.bytes += sidecar.bytes;
        let done_bytes = self.totals.bytes;
        self.set_status(|s| s.bytes = done_bytes);
        if let Err(e) = write_sidecar(&sidecar, &sidecar_path).await {
            // Without its sidecar the part cannot be uploaded or given its chat: it is not
            // announced as finished. Its row stays `recording` and the checkpoint stays, so
            // the next start-up writes the sidecar (marked recovered) and announces it.
            warn!(login = %self.spec.login, file = %relative, error = %e, "cannot write the sidecar");
            self.emit(EventKind::RecordingFailed {
                reason: format!(
                    "part {} ({relative}) is complete but its sidecar cannot be written ({e:#}); \
                     it is not uploaded until recbot restarts and finishes it",
                    sidecar.part
                ),
            })
            .await;
            return;
        }
        let _ = tokio::fs::remove_file(&checkpoint).await;
        self.totals.parts += 1;
        let parts = self.totals.parts;
        self.set_status(|s| s.parts = parts);
        self.emit(EventKind::RecordingPartFinished {
            part: sidecar.part,
            file: final_path,
            sidecar: sidecar_path,
            bytes: sidecar.bytes,
            duration_secs: sidecar.duration_secs,
            gaps: sidecar.gaps.len() as u32,
            recovered: false,
        })
        .await;
    }

    /// Notes a gap in the sidecar (each one) and reports it (folded: at most one notice per
    /// `gap_notice` interval, see [`GapNotices`]).
    async fn gap(&mut self, first: u64, last: u64, seconds: f64, reason: String) {
        let reason = cap(&reason, MAX_TEXT);
        warn!(login = %self.spec.login, first, last, seconds, reason, "gap in the recording");
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

    async fn notify_gap(&self, n: super::gaps::Notice) {
        self.emit(EventKind::RecordingGap {
            first_sequence: n.first_sequence,
            last_sequence: n.last_sequence,
            seconds: n.seconds,
            reason: n.reason,
        })
        .await;
    }

    /// Sends the gaps held back since the last notice, if any.
    async fn flush_notice(&mut self) {
        if let Some(notice) = self.notices.flush() {
            self.notify_gap(notice).await;
        }
    }

    async fn close_ad_run(&mut self) {
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

    /// After the playlist went away: probe for the stream until the grace period is over.
    /// `true` when it is back (same session, next part).
    async fn await_comeback(&mut self, cancel: &CancellationToken) -> bool {
        let grace = self.rec.settings.offline_grace;
        let deadline = Instant::now() + grace;
        let probe_every = (grace / 6).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.note_stop();
                    return false;
                }
                Some(c) = self.control.recv() => {
                    let live = c == Control::Live;
                    if self.control(c).is_some() {
                        return false;
                    }
                    if live {
                        return true;
                    }
                }
                _ = tokio::time::sleep(probe_every.min(deadline - now)) => {
                    let found = self
                        .origin
                        .resolve(&self.rec.http, self.spec.quality, cancel)
                        .await;
                    match found {
                        Ok(Resolved::Live(m, _)) => {
                            if let Err(TakeEnd::NewBroadcast(why)) = self.check_broadcast(&m) {
                                // Another broadcast is not this one coming back.
                                self.new_broadcast(&why);
                                return false;
                            }
                            if self.has_new_video(&m.url, cancel).await {
                                info!(login = %self.spec.login, "the stream is back; recording the next part");
                                self.resolved = Some(m);
                                self.offline_since = None;
                                return true;
                            }
                        }
                        Err(FetchError::Cancelled) => {
                            self.note_stop();
                            return false;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether the media playlist at `url` has segments not recorded yet (an ended playlist
    /// that still answers is not a comeback).
    async fn has_new_video(&self, url: &Url, cancel: &CancellationToken) -> bool {
        let Ok(body) = fetch::get(&self.rec.http, url, None, cancel).await else {
            return false;
        };
        let Ok(pl) = playlist::parse_media(&body) else {
            return false;
        };
        let Some(last) = pl.segments.last() else {
            return false;
        };
        match (
            self.cursor.next_seq,
            last.program_date_time,
            self.cursor.last_pdt,
        ) {
            (_, Some(at), Some(seen)) => at > seen,
            (Some(next), _, _) => last.sequence >= next || last.sequence + 1 < next,
            _ => true,
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

/// Writes a finished part's sidecar, trying again briefly when it fails.
async fn write_sidecar(sidecar: &Sidecar, path: &Path) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match sidecar.write(path).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt + 1 >= SIDECAR_ATTEMPTS => return Err(e),
            Err(e) => {
                debug!(error = %e, attempt, "cannot write the sidecar; retrying");
                tokio::time::sleep(crate::backoff::exponential(
                    attempt,
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                ))
                .await;
                attempt += 1;
            }
        }
    }
}
