//! Delivering notices to a chat platform: which room an event goes to, one thread per
//! broadcast, upload progress edited in one message, retries that respect rate limits, and the
//! outbox (the event log after this front-end's cursor) replayed at start-up and after a lag.
//! Platform-neutral: Slack and Discord plug in a [`Poster`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tracing::{debug, error, info, warn};

use super::render;
use crate::core::store::PostedMessage;
use crate::core::{CoreHandle, Notice};
use crate::event::{Event, EventKind, Room};

/// Notices fetched from the log per request while catching up.
const CATCH_UP_PAGE: i64 = 200;
/// Longest wait a platform's `Retry-After` may impose before recbot tries again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Which chat platform a delivery serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Slack,
    Discord,
}

impl Platform {
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
}

/// Retry pacing for errors without a platform-given delay.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
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
        EventKind::LiveDetected { title, .. } | EventKind::StreamUpdated { title, .. } => {
            format!("{login} — {title}")
        }
        _ => format!("{login} — broadcast {session}"),
    };
    name.chars().take(100).collect()
}

/// An upload's progress notice that a later notice in the same batch makes obsolete.
fn superseded(notice: &Notice, later: &[Notice]) -> bool {
    let EventKind::UploadProgress { job, .. } = notice.event.kind else {
        return false;
    };
    later.iter().any(|n| {
        matches!(n.event.kind,
            EventKind::UploadProgress { job: j, .. }
            | EventKind::UploadFinished { job: j, .. }
            | EventKind::UploadFailed { job: j, .. } if j == job)
    })
}

/// The core is gone: nothing more can be recorded, so delivery stops (the log keeps the rest).
#[derive(Debug)]
struct Stopped;

/// How far one notice got, kept across retries so a retry does not post a step twice.
#[derive(Debug, Default)]
struct Attempt {
    steps_done: u8,
    starter: Option<MessageRef>,
    opened: Vec<PostedMessage>,
}

/// One platform's delivery task.
#[derive(Debug)]
pub struct Delivery<P> {
    platform: Platform,
    poster: Arc<P>,
    core: CoreHandle,
    events_room: Option<String>,
    backoff: Backoff,
    cursor: i64,
    /// Threads and progress messages, by outbox key.
    messages: HashMap<String, MessageRef>,
}

impl<P: Poster> Delivery<P> {
    pub fn new(
        platform: Platform,
        poster: Arc<P>,
        core: CoreHandle,
        events_room: Option<String>,
        backoff: Backoff,
    ) -> Delivery<P> {
        Delivery {
            platform,
            poster,
            core,
            events_room,
            backoff,
            cursor: 0,
            messages: HashMap::new(),
        }
    }

    /// Delivers the outbox, then every notice as it comes, until the core has stopped.
    /// `notices` is subscribed before the core starts, so nothing of this run is missed; what
    /// earlier runs left undelivered comes from the event log.
    pub async fn run(mut self, mut notices: broadcast::Receiver<Arc<Notice>>) {
        let name = self.platform.name();
        match self.core.outbox_open(name).await {
            Ok(state) => {
                self.cursor = state.cursor;
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
            }
            Err(e) => {
                error!(frontend = name, error = %e, "cannot read the outbox; events will not be posted");
                return;
            }
        }
        info!(frontend = name, cursor = self.cursor, "delivering events");
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            let notice = tokio::select! {
                biased;
                _ = self.core.stopped() => break,
                notice = notices.recv() => notice,
            };
            let result = match notice {
                Ok(notice) if notice.seq != 0 && notice.seq <= self.cursor => Ok(()),
                Ok(notice) => self.deliver(&notice).await,
                Err(RecvError::Lagged(n)) => {
                    info!(
                        frontend = name,
                        skipped = n,
                        "fell behind; catching up from the event log"
                    );
                    self.catch_up().await
                }
                Err(RecvError::Closed) => break,
            };
            if result.is_err() {
                break;
            }
        }
        debug!(frontend = name, "delivery stopped");
    }

    /// Delivers everything in the event log after the cursor.
    async fn catch_up(&mut self) -> Result<(), Stopped> {
        loop {
            let page = self
                .core
                .outbox_pending(self.cursor, CATCH_UP_PAGE)
                .await
                .map_err(|_| Stopped)?;
            let Some(scanned_to) = page.scanned_to else {
                return Ok(());
            };
            for (i, notice) in page.notices.iter().enumerate() {
                if !superseded(notice, &page.notices[i + 1..]) {
                    self.deliver(notice).await?;
                }
            }
            self.cursor = self.cursor.max(scanned_to);
        }
    }

    /// Posts one notice (retrying until it is posted or refused for good), then records it.
    async fn deliver(&mut self, notice: &Notice) -> Result<(), Stopped> {
        let Some(channel) = route(notice, self.platform, self.events_room.as_deref()) else {
            return Ok(());
        };
        let mut attempt = Attempt::default();
        let mut backoff = self.backoff.first;
        loop {
            match self.post_notice(notice, &channel, &mut attempt).await {
                Ok(()) => break,
                Err(PostError::Permanent(reason)) => {
                    error!(
                        frontend = self.platform.name(),
                        channel,
                        seq = notice.seq,
                        kind = notice.event.kind_name(),
                        reason,
                        "the platform refused this event; it stays in the event log only"
                    );
                    break;
                }
                Err(PostError::Retry { after, reason }) => {
                    let wait = match after {
                        Some(after) => after.min(MAX_RETRY_AFTER),
                        None => {
                            let wait = backoff;
                            backoff = (backoff * 2).min(self.backoff.max);
                            wait
                        }
                    };
                    warn!(
                        frontend = self.platform.name(),
                        seq = notice.seq,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "posting failed; trying again"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.core.stopped() => return Err(Stopped),
                    }
                }
            }
        }
        if notice.seq > 0 {
            self.core
                .outbox_delivered(self.platform.name(), notice.seq, attempt.opened)
                .await
                .map_err(|_| Stopped)?;
            self.cursor = self.cursor.max(notice.seq);
        }
        Ok(())
    }

    fn remember(&mut self, key: String, message: MessageRef, attempt: &mut Attempt) {
        attempt.opened.push(PostedMessage {
            key: key.clone(),
            channel: message.channel.clone(),
            id: message.id.clone(),
        });
        self.messages.insert(key, message);
    }

    fn thread_place(&self, channel: &str, session: Option<i64>) -> Place {
        let thread = session
            .and_then(|s| self.messages.get(&format!("thread:{channel}:{s}")))
            .map(|t| t.id.clone());
        Place {
            channel: channel.to_string(),
            thread,
        }
    }

    async fn post_notice(
        &mut self,
        notice: &Notice,
        channel: &str,
        attempt: &mut Attempt,
    ) -> Result<(), PostError> {
        let event = &notice.event;
        let text = render::event_line(event);
        if let EventKind::UploadProgress { job, .. } = event.kind {
            return self
                .progress(channel, job, event.session, &text, attempt)
                .await;
        }
        let Some(session) = event.session else {
            let place = self.thread_place(channel, None);
            self.poster.post(&place, &text).await?;
            return Ok(());
        };
        let opened_here = self
            .in_thread(channel, session, event, &text, attempt)
            .await?;
        // The video link is news for the room, not only for the thread's readers.
        if matches!(event.kind, EventKind::UploadFinished { .. })
            && !opened_here
            && attempt.steps_done < 3
        {
            self.poster
                .post(&self.thread_place(channel, None), &text)
                .await?;
            attempt.steps_done = 3;
        }
        Ok(())
    }

    /// Posts `text` in the session's thread, opening the thread with it when this is the
    /// session's first event here. Returns whether the text opened the thread (so it is
    /// already in the room itself).
    async fn in_thread(
        &mut self,
        channel: &str,
        session: i64,
        event: &Event,
        text: &str,
        attempt: &mut Attempt,
    ) -> Result<bool, PostError> {
        if attempt.steps_done >= 2 {
            return Ok(attempt.starter.is_some());
        }
        let key = format!("thread:{channel}:{session}");
        if attempt.starter.is_none() {
            if let Some(thread) = self.messages.get(&key) {
                let place = Place {
                    channel: channel.to_string(),
                    thread: Some(thread.id.clone()),
                };
                self.poster.post(&place, text).await?;
                attempt.steps_done = 2;
                return Ok(false);
            }
            let starter = self
                .poster
                .post(&self.thread_place(channel, None), text)
                .await?;
            attempt.starter = Some(starter);
            attempt.steps_done = 1;
        }
        let starter = attempt.starter.clone().expect("set above");
        match self
            .poster
            .start_thread(&starter, &thread_name(event, session))
            .await
        {
            Ok(thread) => {
                let thread = MessageRef {
                    channel: channel.to_string(),
                    id: thread,
                };
                self.remember(key, thread, attempt);
            }
            Err(PostError::Permanent(reason)) => {
                warn!(
                    frontend = self.platform.name(),
                    reason, "cannot open a thread; posting in the room"
                );
            }
            Err(retry) => return Err(retry),
        }
        attempt.steps_done = 2;
        Ok(true)
    }

    /// Edits the upload's progress message, or posts it (in the broadcast's thread when there
    /// is one) the first time.
    async fn progress(
        &mut self,
        channel: &str,
        job: i64,
        session: Option<i64>,
        text: &str,
        attempt: &mut Attempt,
    ) -> Result<(), PostError> {
        let key = format!("progress:{channel}:{job}");
        if let Some(message) = self.messages.get(&key).cloned() {
            match self.poster.edit(&message, text).await {
                Ok(()) => return Ok(()),
                Err(PostError::Permanent(reason)) => {
                    warn!(reason, "the progress message is gone; posting a new one");
                    self.messages.remove(&key);
                }
                Err(retry) => return Err(retry),
            }
        }
        let message = self
            .poster
            .post(&self.thread_place(channel, session), text)
            .await?;
        self.remember(key, message, attempt);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
