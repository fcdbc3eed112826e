//! Where a platform room's lines and reports go: lines encoded into one batch per received
//! frame and queued for the writer under the room's folder, the room's status kept, and its
//! events sent (each report that must come once, once).

use std::sync::{Arc, Mutex};

use chrono::Utc;
use recbot_commands::{Login, Platform};

use super::RoomStatus;
use crate::chat::platform_line::PlatformLine;
use crate::chat::record::{encode_platform, encode_platform_unreadable};
use crate::chat::writer::{Batch, LineQueue};
use crate::event::EventKind;
use crate::work::Events;

pub(super) struct Sink {
    platform: Platform,
    /// The channel or room id written into every line.
    channel: String,
    folder: Arc<str>,
    login: Login,
    queue: LineQueue,
    events: Events,
    status: Arc<Mutex<RoomStatus>>,
    joined_once: bool,
    unreadable_reported: bool,
    pause_reported: bool,
}

impl Sink {
    pub(super) fn new(
        platform: Platform,
        channel: String,
        folder: Arc<str>,
        login: Login,
        queue: LineQueue,
        events: Events,
        status: Arc<Mutex<RoomStatus>>,
    ) -> Sink {
        Sink {
            platform,
            channel,
            folder,
            login,
            queue,
            events,
            status,
            joined_once: false,
            unreadable_reported: false,
            pause_reported: false,
        }
    }

    /// Writes `lines` (one frame's worth) as one batch.
    pub(super) async fn lines(&mut self, lines: &[PlatformLine]) {
        if lines.is_empty() {
            return;
        }
        let recv_ms = Utc::now().timestamp_millis();
        let mut batch = Batch::default();
        for line in lines {
            let time_ms = encode_platform(line, &self.channel, recv_ms, &mut batch.buf);
            batch.push_entry(self.folder.clone(), time_ms);
        }
        self.push(batch).await;
    }

    /// Logs a frame that cannot be read, raw with the reason; reported once per room.
    pub(super) async fn unreadable(&mut self, cmd: Option<&str>, raw: &str, error: &str) {
        let recv_ms = Utc::now().timestamp_millis();
        let mut batch = Batch::default();
        let time_ms = encode_platform_unreadable(
            self.platform,
            &self.channel,
            cmd,
            raw,
            error,
            recv_ms,
            &mut batch.buf,
        );
        batch.push_entry(self.folder.clone(), time_ms);
        self.update(|s| s.unreadable += 1);
        self.push(batch).await;
        if !self.unreadable_reported {
            self.unreadable_reported = true;
            self.emit(EventKind::ChatUnreadable {
                platform: self.platform.to_string(),
                reason: error.to_string(),
            })
            .await;
        }
    }

    async fn push(&mut self, batch: Batch) {
        let n = batch.entries.len() as u64;
        // Lines the writer could not take are counted by the queue (`ChatDropped`).
        if self.queue.push(batch).await {
            self.update(|s| {
                s.lines += n;
                s.last_line = Some(Utc::now());
            });
        }
    }

    /// The connection is up: `ChatJoined` the first time (reconnects show in the status).
    pub(super) async fn up(&mut self) {
        let again = self.joined_once;
        self.update(|s| {
            s.joined = true;
            s.paused = false;
            if again {
                s.reconnects += 1;
            }
        });
        if !self.joined_once {
            self.joined_once = true;
            self.emit(EventKind::ChatJoined { rooms: 1 }).await;
        }
    }

    /// The connection (or an attempt) failed with `reason`.
    pub(super) fn down(&mut self, reason: &str) {
        self.update(|s| {
            s.joined = false;
            s.last_error = Some(reason.to_string());
        });
    }

    /// Requests pause for the platform's risk control; `ChatPaused` once until
    /// [`Sink::unpaused`].
    pub(super) async fn paused(&mut self, seconds: u64, reason: &str) {
        self.down(reason);
        self.update(|s| s.paused = true);
        if !self.pause_reported {
            self.pause_reported = true;
            self.emit(EventKind::ChatPaused {
                platform: self.platform.to_string(),
                seconds,
                reason: reason.to_string(),
            })
            .await;
        }
    }

    /// A request worked again: the next risk-control answer is reported anew.
    pub(super) fn unpaused(&mut self) {
        self.pause_reported = false;
        self.update(|s| s.paused = false);
    }

    pub(super) async fn gave_up(&self, attempts: u32, reason: String) {
        self.update(|s| {
            s.joined = false;
            s.gave_up = true;
            s.last_error = Some(reason.clone());
        });
        self.emit(EventKind::ChatGaveUp {
            platform: self.platform.to_string(),
            attempts,
            reason,
        })
        .await;
    }

    fn update(&self, change: impl FnOnce(&mut RoomStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    async fn emit(&self, kind: EventKind) {
        self.events.emit(Some(self.login.clone()), kind).await;
    }
}
