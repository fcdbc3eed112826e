//! Delivering notices to a chat platform: which room an event goes to, one thread per
//! broadcast, upload progress edited in one message (a burst folded into one edit), retries
//! that respect rate limits, and the outbox (the event log after this front-end's cursor)
//! replayed at start-up and after a lag. A notice that takes several posts (the thread's first
//! message, then the thread; the video link in the thread, then in the room) records each
//! post with the core before the next, so a restart in between posts nothing twice.
//! Platform-neutral: Slack and Discord plug in a [`Poster`].

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tracing::{debug, error, info, warn};

use super::render;
use crate::backoff::{self, Jitter};
use crate::core::store::PostedMessage;
use crate::core::{CoreHandle, CoreStopped, Notice};
use crate::event::{Event, EventKind, Room};

/// Notices fetched from the log per request while catching up.
const CATCH_UP_PAGE: i64 = 200;
/// Longest wait a platform's `Retry-After` may impose before recbot tries again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How long one platform call (a post, an edit) may take. Slack's client sets no timeout of
/// its own, and a half-open connection would otherwise hold every later notice for the run;
/// a call that takes longer is abandoned and tried again.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// While credentials are refused, tries are this many times further apart than the longest
/// backoff (with the default backoff: from 1 minute up to 10).
const PAUSED_BACKOFF_FACTOR: u32 = 10;

/// Which chat platform a delivery serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Slack,
    Discord,
}

impl Platform {
    /// The markup its messages are read in (untrusted text is neutralized for it).
    pub fn markup(self) -> render::Markup {
        match self {
            Platform::Slack => render::Markup::Slack,
            Platform::Discord => render::Markup::Discord,
        }
    }

    /// The front-end's name in the outbox tables.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Discord => "discord",
        }
    }

    /// The platform channel id of `room`, when it is one of this platform's rooms.
    pub fn channel_of(self, room: &Room) -> Option<&str> {
        match (self, room) {
            (Platform::Slack, Room::Slack(id)) | (Platform::Discord, Room::Discord(id)) => Some(id),
            _ => None,
        }
    }
}

/// Where to post: a channel, optionally inside a thread of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub channel: String,
    /// Slack: the thread's root `ts`; Discord: the thread's channel id.
    pub thread: Option<String>,
}

/// A posted message, to edit it or start a thread from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// The channel (or Discord thread) the message is in.
    pub channel: String,
    pub id: String,
}

/// Why a post did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum PostError {
    /// Rate limited, unreachable or a server error: try again (after `after`, when the
    /// platform said how long).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The platform refused for good (unknown channel, missing permission, message deleted).
    Permanent(String),
    /// The platform refused recbot's credentials (token revoked, reset or expired): nothing
    /// can be posted until a human fixes them, so posting pauses (retrying slowly) instead of
    /// skipping notices.
    Unauthorized(String),
}

/// One chat platform's posting calls. Text is recbot's plain rendering; the poster formats
/// and escapes it for its platform.
pub trait Poster: Send + Sync + 'static {
    fn post(
        &self,
        place: &Place,
        text: &str,
    ) -> impl Future<Output = Result<MessageRef, PostError>> + Send;

    /// Turns `starter` (a message in a room) into the start of a thread named `name`; returns
    /// the thread reference for [`Place::thread`].
    fn start_thread(
        &self,
        starter: &MessageRef,
        name: &str,
    ) -> impl Future<Output = Result<String, PostError>> + Send;

    fn edit(
        &self,
        message: &MessageRef,
        text: &str,
    ) -> impl Future<Output = Result<(), PostError>> + Send;

    /// Posts the file `name` (`bytes`, a PNG) at `place` with `text` as its comment (Slack:
    /// an external upload shared in the channel/thread; Discord: a message with the file
    /// attached).
    fn upload_file(
        &self,
        place: &Place,
        name: &str,
        bytes: Vec<u8>,
        text: &str,
    ) -> impl Future<Output = Result<MessageRef, PostError>> + Send;
}

/// Largest file posted (a summary chart is about 100 KB): a bigger one is refused, not read.
pub const MAX_UPLOAD_BYTES: u64 = 8 * 1024 * 1024;

/// Retry pacing for errors without a platform-given delay.
#[derive(Debug, Clone, Copy)]
pub struct RetryPacing {
    pub first: Duration,
    pub max: Duration,
}

impl RetryPacing {
    /// A retry loop's waits with these settings: doubling, half jitter, back to `first` after
    /// a healthy run.
    pub fn pacer(self) -> backoff::Backoff {
        backoff::Backoff::new(self.first, self.max, Jitter::Half)
    }
}

impl Default for RetryPacing {
    fn default() -> Self {
        RetryPacing {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// The platform channel a notice goes to, if any: a login's events to the room it was added
/// from when that room is on this platform, otherwise to `events_room`; service-wide events
/// and events without a login to `events_room`.
pub fn route(notice: &Notice, platform: Platform, events_room: Option<&str>) -> Option<String> {
    let own_room = notice
        .room
        .as_ref()
        .and_then(|room| platform.channel_of(room));
    match own_room {
        Some(channel) if notice.event.login.is_some() && !notice.event.kind.is_service_wide() => {
            Some(channel.to_string())
        }
        _ => events_room.map(str::to_string),
    }
}

/// A thread's name: the login and the broadcast title when known.
fn thread_name(event: &Event, session: i64) -> String {
    let login = event.login.as_ref().map_or("recbot", |l| l.as_str());
    let name = match &event.kind {
        // A thread name shows no markup, but control and bidirectional characters would
        // still garble it.
        EventKind::LiveDetected { title, .. } | EventKind::StreamUpdated { title, .. } => {
            format!(
                "{login} — {}",
                render::untrusted(title, render::Markup::Plain)
            )
        }
        _ => format!("{login} — broadcast {session}"),
    };
    name.chars().take(100).collect()
}

/// An upload's progress notice that a later notice in the same batch makes obsolete (also
/// used by webhooks).
pub(crate) fn superseded<N: Borrow<Notice>>(notice: &Notice, later: &[N]) -> bool {
    match notice.event.kind {
        EventKind::UploadProgress { job, .. } => later.iter().any(|n| {
            matches!(n.borrow().event.kind,
                EventKind::UploadProgress { job: j, .. }
                | EventKind::UploadFinished { job: j, .. }
                | EventKind::UploadFailed { job: j, .. } if j == job)
        }),
        EventKind::PostProgress { job, .. } => later.iter().any(|n| {
            matches!(n.borrow().event.kind,
                EventKind::PostProgress { job: j, .. }
                | EventKind::PostFinished { job: j, .. }
                | EventKind::PostFailed { job: Some(j), .. } if j == job)
        }),
        _ => false,
    }
}

/// The core is gone: nothing more can be recorded, so delivery stops (the log keeps the rest).
#[derive(Debug)]
pub(crate) struct Stopped;

/// Waits until `notices` says there is something new (every notice queued meanwhile is
/// taken too: readers that work from the log only need the wake-up); `false` once the core
/// has stopped or the notices have ended.
pub(crate) async fn woken(
    core: &CoreHandle,
    notices: &mut broadcast::Receiver<Arc<Notice>>,
) -> bool {
    let woken = tokio::select! {
        biased;
        _ = core.stopped() => return false,
        notice = notices.recv() => notice,
    };
    if let Err(RecvError::Closed) = woken {
        return false;
    }
    while let Ok(_) | Err(TryRecvError::Lagged(_)) = notices.try_recv() {}
    true
}

/// Runs an outbox call until the core answers it, for every reader of the outbox (chat
/// front-ends, webhooks, e-mail). A store error is logged and tried again after `pacer`'s
/// pauses (a full disk or a locked database may pass; giving up would stop delivery for the
/// rest of the run, silently); only the core's end stops it. `who` names the reader in the log.
pub(crate) async fn until_answered<T, F, Fut>(
    core: &CoreHandle,
    mut pacer: backoff::Backoff,
    who: &str,
    what: &'static str,
    mut call: F,
) -> Result<T, Stopped>
where
    F: FnMut(CoreHandle) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    loop {
        let e = match call(core.clone()).await {
            Ok(value) => return Ok(value),
            Err(e) if e.is::<CoreStopped>() => return Err(Stopped),
            Err(e) => e,
        };
        let wait = pacer.pause(false);
        error!(
            reader = who,
            error = %format!("{e:#}"),
            wait_ms = wait.as_millis() as u64,
            "cannot {what} in the state database; delivery waits and tries again"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = core.stopped() => return Err(Stopped),
        }
    }
}

impl From<Stopped> for Failed {
    fn from(_: Stopped) -> Failed {
        Failed::Stopped
    }
}

/// Why a notice is not posted (yet).
#[derive(Debug)]
enum Failed {
    Post(PostError),
    Stopped,
}

impl From<PostError> for Failed {
    fn from(e: PostError) -> Failed {
        Failed::Post(e)
    }
}

/// Notices taken from the broadcast at once: what piled up while the last one was posted.
const LIVE_BATCH: usize = 64;

/// One platform's delivery task.
#[derive(Debug)]
pub struct Delivery<P> {
    platform: Platform,
    poster: Arc<P>,
    core: CoreHandle,
    events_room: Option<String>,
    backoff: RetryPacing,
    post_timeout: Duration,
    /// Every notice up to here was handled (posted, refused for good, or not for this
    /// platform).
    cursor: i64,
    /// Set while the platform refuses recbot's credentials (logged once per pause).
    paused: bool,
    /// The cursor as last stored with the core; behind `cursor` while only notices for
    /// other platforms were passed over.
    stored: i64,
    /// Threads, progress messages and the steps already posted for the notice being
    /// delivered, by outbox key.
    messages: HashMap<String, MessageRef>,
}

impl<P: Poster> Delivery<P> {
    pub fn new(
        platform: Platform,
        poster: Arc<P>,
        core: CoreHandle,
        events_room: Option<String>,
        backoff: RetryPacing,
    ) -> Delivery<P> {
        Delivery {
            platform,
            poster,
            core,
            events_room,
            backoff,
            post_timeout: POST_TIMEOUT,
            cursor: 0,
            paused: false,
            stored: 0,
            messages: HashMap::new(),
        }
    }

    /// How long one platform call may take before it is abandoned and tried again
    /// (default [`POST_TIMEOUT`]).
    pub fn with_post_timeout(mut self, timeout: Duration) -> Delivery<P> {
        self.post_timeout = timeout;
        self
    }

    /// One platform call, bounded by `post_timeout` (a call without an answer counts as a
    /// failure worth retrying) and abandoned when the core stops.
    async fn call<T>(&self, call: impl Future<Output = Result<T, PostError>>) -> Result<T, Failed> {
        tokio::select! {
            result = tokio::time::timeout(self.post_timeout, call) => match result {
                Ok(result) => result.map_err(Failed::Post),
                Err(_) => Err(Failed::Post(PostError::Retry {
                    after: None,
                    reason: format!("no answer within {} s", self.post_timeout.as_secs_f32()),
                })),
            },
            _ = self.core.stopped() => Err(Failed::Stopped),
        }
    }

    /// Delivers the outbox, then every notice as it comes, until the core has stopped.
    /// `notices` is subscribed before the core starts, so nothing of this run is missed; what
    /// earlier runs left undelivered comes from the event log.
    pub async fn run(mut self, mut notices: broadcast::Receiver<Arc<Notice>>) {
        let name = self.platform.name();
        let opened = self
            .with_core("read the outbox", |core| async move {
                core.outbox_open(name).await
            })
            .await;
        let Ok(state) = opened else {
            debug!(frontend = name, "the core stopped before delivery began");
            return;
        };
        self.cursor = state.cursor;
        self.stored = state.cursor;
        self.messages = state
            .messages
            .into_iter()
            .map(|m| {
                let message = MessageRef {
                    channel: m.channel,
                    id: m.id,
                };
                (m.key, message)
            })
            .collect();
        info!(frontend = name, cursor = self.cursor, "delivering events");
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            let first = tokio::select! {
                biased;
                _ = self.core.stopped() => break,
                notice = notices.recv() => notice,
            };
            let mut batch = Vec::new();
            let mut lagged = None;
            let mut closed = false;
            match first {
                Ok(notice) => batch.push(notice),
                Err(RecvError::Lagged(n)) => lagged = Some(n),
                Err(RecvError::Closed) => break,
            }
            // What piled up while the last notice was posted (rate limits pace posting) is
            // taken at once, so a burst of upload progress becomes one edit per upload.
            while lagged.is_none() && batch.len() < LIVE_BATCH {
                match notices.try_recv() {
                    Ok(notice) => batch.push(notice),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => lagged = Some(n),
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
            if self.deliver_all(&batch).await.is_err() {
                break;
            }
            if let Some(n) = lagged {
                info!(
                    frontend = name,
                    skipped = n,
                    "fell behind; catching up from the event log"
                );
                if self.catch_up().await.is_err() {
                    break;
                }
            }
            if closed {
                break;
            }
        }
        debug!(frontend = name, "delivery stopped");
    }

    /// Runs an outbox call until the core answers it ([`until_answered`]).
    async fn with_core<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, Stopped>
    where
        F: FnMut(CoreHandle) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let pacer = self.backoff.pacer();
        until_answered(&self.core, pacer, self.platform.name(), what, call).await
    }

    /// Delivers everything in the event log after the cursor.
    async fn catch_up(&mut self) -> Result<(), Stopped> {
        loop {
            let after = self.cursor;
            let page = self
                .with_core("read the event log", |core| async move {
                    core.outbox_pending(after, CATCH_UP_PAGE).await
                })
                .await?;
            let Some(scanned_to) = page.scanned_to else {
                return Ok(());
            };
            self.deliver_all(&page.notices).await?;
            // Stored per page, so that notices none of which is for this platform are not
            // paged through again at every start.
            self.cursor = self.cursor.max(scanned_to);
            self.store_cursor().await?;
        }
    }

    /// Stores the cursor when it moved past notices that were not posted.
    async fn store_cursor(&mut self) -> Result<(), Stopped> {
        if self.cursor <= self.stored {
            return Ok(());
        }
        let (name, cursor) = (self.platform.name(), self.cursor);
        self.with_core("record a delivery", |core| async move {
            core.outbox_delivered(name, cursor, Vec::new()).await
        })
        .await?;
        self.stored = cursor;
        Ok(())
    }

    /// Delivers `notices` in order, leaving out those already delivered and progress that a
    /// later notice of the batch makes obsolete.
    async fn deliver_all<N: Borrow<Notice>>(&mut self, notices: &[N]) -> Result<(), Stopped> {
        for (i, notice) in notices.iter().enumerate() {
            let notice = notice.borrow();
            if notice.seq != 0 && notice.seq <= self.cursor {
                continue;
            }
            if !superseded(notice, &notices[i + 1..]) {
                self.deliver(notice).await?;
            }
        }
        Ok(())
    }

    /// Posts one notice (retrying until it is posted or refused for good), then records it.
    async fn deliver(&mut self, notice: &Notice) -> Result<(), Stopped> {
        let Some(channel) = route(notice, self.platform, self.events_room.as_deref()) else {
            // Not for this platform. Stored now and then, not for each such notice.
            self.cursor = self.cursor.max(notice.seq);
            if self.cursor - self.stored >= CATCH_UP_PAGE {
                self.store_cursor().await?;
            }
            return Ok(());
        };
        let mut opened = Vec::new();
        self.post_until_done(notice, &channel, &mut opened).await?;
        if self.paused {
            self.paused = false;
            info!(
                frontend = self.platform.name(),
                "the platform accepts recbot's token again; posting resumes"
            );
        }
        if notice.seq > 0 {
            let (name, seq) = (self.platform.name(), notice.seq);
            self.with_core("record a delivery", |core| {
                let opened = opened.clone();
                async move { core.outbox_delivered(name, seq, opened).await }
            })
            .await?;
            self.cursor = self.cursor.max(notice.seq);
            self.stored = self.stored.max(notice.seq);
        }
        self.messages
            .retain(|key, _| !PostedMessage::is_step_key(key));
        Ok(())
    }

    /// Posts `notice` in `channel` until it is posted or refused for good: a refused token
    /// pauses posting (nothing skipped), a failed post is tried again after a pause.
    async fn post_until_done(
        &mut self,
        notice: &Notice,
        channel: &str,
        opened: &mut Vec<PostedMessage>,
    ) -> Result<(), Stopped> {
        let mut pacer = self.backoff.pacer();
        let mut paused = RetryPacing {
            first: self.backoff.max,
            max: (self.backoff.max * PAUSED_BACKOFF_FACTOR).min(MAX_RETRY_AFTER),
        }
        .pacer();
        loop {
            match self.post_notice(notice, channel, opened).await {
                Ok(()) => return Ok(()),
                Err(Failed::Stopped) => return Err(Stopped),
                Err(Failed::Post(PostError::Unauthorized(reason))) => {
                    let wait = paused.pause(false);
                    self.token_refused(&reason, wait);
                    self.wait_or_stop(wait).await?;
                }
                Err(Failed::Post(PostError::Permanent(reason))) => {
                    error!(
                        frontend = self.platform.name(),
                        channel,
                        seq = notice.seq,
                        kind = notice.event.kind_name(),
                        reason,
                        "the platform refused this event; it stays in the event log only"
                    );
                    return Ok(());
                }
                Err(Failed::Post(PostError::Retry { after, reason })) => {
                    let wait = match after {
                        Some(after) => after.min(MAX_RETRY_AFTER),
                        None => pacer.pause(false),
                    };
                    warn!(
                        frontend = self.platform.name(),
                        seq = notice.seq,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "posting failed; trying again"
                    );
                    self.wait_or_stop(wait).await?;
                }
            }
        }
    }

    /// Notes that the platform refuses the token: loudly the first time, quietly after.
    fn token_refused(&mut self, reason: &str, wait: Duration) {
        if !self.paused {
            self.paused = true;
            error!(
                frontend = self.platform.name(),
                reason,
                "the platform refuses recbot's token; posting is paused (nothing \
                 is skipped) until it is accepted again: check the token in the \
                 config and restart"
            );
        } else {
            debug!(
                frontend = self.platform.name(),
                reason,
                wait_ms = wait.as_millis() as u64,
                "token still refused"
            );
        }
    }

    /// Waits `wait`, or less when the core stops.
    async fn wait_or_stop(&self, wait: Duration) -> Result<(), Stopped> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.core.stopped() => Err(Stopped),
        }
    }

    fn remember(&mut self, key: String, message: MessageRef, opened: &mut Vec<PostedMessage>) {
        opened.push(PostedMessage {
            key: key.clone(),
            channel: message.channel.clone(),
            id: message.id.clone(),
        });
        self.messages.insert(key, message);
    }

    fn thread_place(&self, channel: &str, session: Option<i64>) -> Place {
        let thread = session
            .and_then(|s| self.messages.get(&thread_key(channel, s)))
            .map(|t| t.id.clone());
        Place {
            channel: channel.to_string(),
            thread,
        }
    }

    /// Posts `text` at `place` as step `name` of notice `seq`, unless that step was already
    /// posted (before a retry, or before a restart). With `durable`, the post is recorded
    /// with the core before this returns, because another step follows it.
    async fn step(
        &mut self,
        seq: i64,
        name: &str,
        place: &Place,
        text: &str,
        durable: bool,
    ) -> Result<MessageRef, Failed> {
        let key = PostedMessage::step_key(seq, name);
        if let Some(done) = self.messages.get(&key) {
            debug!(seq, step = name, "already posted before; not again");
            return Ok(done.clone());
        }
        let message = self.call(self.poster.post(place, text)).await?;
        if durable && seq > 0 {
            let record = PostedMessage {
                key: key.clone(),
                channel: message.channel.clone(),
                id: message.id.clone(),
            };
            let name = self.platform.name();
            self.with_core("record a posted step", |core| {
                let record = record.clone();
                async move { core.outbox_posted(name, vec![record]).await }
            })
            .await?;
        }
        self.messages.insert(key, message.clone());
        Ok(message)
    }

    /// Posts a notice: in the room, in its broadcast's thread (opening the thread with the
    /// broadcast's first event), or as the upload's progress message.
    async fn post_notice(
        &mut self,
        notice: &Notice,
        channel: &str,
        opened: &mut Vec<PostedMessage>,
    ) -> Result<(), Failed> {
        let event = &notice.event;
        let seq = notice.seq;
        let text = render::event_line_for(event, self.platform.markup());
        // Progress messages are edited in place: one per upload, one per post-processing job.
        let progress = match event.kind {
            EventKind::UploadProgress { job, .. } => Some(job.to_string()),
            EventKind::PostProgress { job, .. } => Some(format!("post-{job}")),
            _ => None,
        };
        if let Some(id) = progress {
            return self
                .progress(channel, &id, event.session, &text, opened)
                .await;
        }
        if let EventKind::SummaryReady { path, .. } = &event.kind {
            // In the broadcast's thread when there is one here, else in the room.
            let place = self.thread_place(channel, event.session);
            return self.upload(seq, &place, path, &text).await;
        }
        let room = self.thread_place(channel, None);
        let Some(session) = event.session else {
            self.step(seq, "room", &room, &text, false).await?;
            return Ok(());
        };
        let key = thread_key(channel, session);
        if self.messages.contains_key(&key) {
            // The video link is news for the room, not only for the thread's readers.
            let link = matches!(event.kind, EventKind::UploadFinished { .. });
            let thread = self.thread_place(channel, Some(session));
            self.step(seq, "thread", &thread, &text, link).await?;
            if link {
                self.step(seq, "room", &room, &text, false).await?;
            }
            return Ok(());
        }
        // The session's first event here opens its thread (and so is in the room itself).
        let starter = self.step(seq, "room", &room, &text, true).await?;
        let name = thread_name(event, session);
        match self.call(self.poster.start_thread(&starter, &name)).await {
            Ok(thread) => {
                let thread = MessageRef {
                    channel: channel.to_string(),
                    id: thread,
                };
                self.remember(key, thread, opened);
            }
            Err(Failed::Post(PostError::Permanent(reason))) => {
                warn!(
                    frontend = self.platform.name(),
                    reason, "cannot open a thread; posting in the room"
                );
            }
            Err(other) => return Err(other),
        }
        Ok(())
    }

    /// Posts the file at `path` with `text` as step `file` of notice `seq` (not again after a
    /// restart once recorded). A file gone meanwhile (deleted by after-upload or a person) or
    /// too big is refused for good: logged, and the notice is done; other read errors are
    /// tried again like a failed post.
    async fn upload(
        &mut self,
        seq: i64,
        place: &Place,
        path: &std::path::Path,
        text: &str,
    ) -> Result<(), Failed> {
        let key = PostedMessage::step_key(seq, "file");
        if self.messages.contains_key(&key) {
            return Ok(());
        }
        let bytes = read_upload(path).await?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "summary.png".into());
        let message = self
            .call(self.poster.upload_file(place, &name, bytes, text))
            .await?;
        self.messages.insert(key, message);
        Ok(())
    }

    /// Edits the upload's progress message, or posts it (in the broadcast's thread when there
    /// is one) the first time.
    async fn progress(
        &mut self,
        channel: &str,
        id: &str,
        session: Option<i64>,
        text: &str,
        opened: &mut Vec<PostedMessage>,
    ) -> Result<(), Failed> {
        let key = format!("progress:{channel}:{id}");
        if let Some(message) = self.messages.get(&key).cloned() {
            match self.call(self.poster.edit(&message, text)).await {
                Ok(()) => return Ok(()),
                Err(Failed::Post(PostError::Permanent(reason))) => {
                    warn!(reason, "the progress message is gone; posting a new one");
                    self.messages.remove(&key);
                }
                Err(other) => return Err(other),
            }
        }
        let place = self.thread_place(channel, session);
        let message = self.call(self.poster.post(&place, text)).await?;
        self.remember(key, message, opened);
        Ok(())
    }
}

/// The bytes of a file to post: missing or too big is for good, other errors are retried.
async fn read_upload(path: &std::path::Path) -> Result<Vec<u8>, PostError> {
    let shown = path.display();
    let size = match tokio::fs::metadata(path).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PostError::Permanent(format!("the file {shown} is gone")));
        }
        Err(e) => {
            return Err(PostError::Retry {
                after: None,
                reason: format!("cannot read {shown}: {e}"),
            })
        }
    };
    if size > MAX_UPLOAD_BYTES {
        return Err(PostError::Permanent(format!(
            "the file {shown} is too big to post ({size} bytes)"
        )));
    }
    tokio::fs::read(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PostError::Permanent(format!("the file {shown} is gone")),
        _ => PostError::Retry {
            after: None,
            reason: format!("cannot read {shown}: {e}"),
        },
    })
}

/// The outbox key of a broadcast's thread in `channel`.
fn thread_key(channel: &str, session: i64) -> String {
    format!("thread:{channel}:{session}")
}

#[cfg(test)]
mod tests;
