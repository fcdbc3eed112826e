//! The core's side of the front-ends' outbox: chat front-ends replay the event log after their
//! delivery cursor and ask the core (the only writer) to record what they delivered, which
//! threads and progress messages they opened, and each step of a notice that takes several
//! posts. See `frontend/delivery.rs` for the other side. A front-end is keyed by a name:
//! `slack`, `discord`, or one per configured receiver (`webhook:<name>`), each with its own
//! cursor.

use std::collections::HashMap;

use anyhow::Result;
use recbot_commands::Login;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::store::PostedMessage;
use super::{Core, CoreHandle, Notice};
use crate::event::Room;

/// Outbox requests waiting for the core.
const OUTBOX_QUEUE: usize = 16;

/// The error of an outbox call when the core has stopped, as opposed to one the store gave
/// (which may pass; the front-end tries again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the core has stopped")]
pub struct CoreStopped;

/// Where a front-end resumes: its cursor and the messages it refers back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxState {
    /// Every notice up to this event-log id was handled.
    pub cursor: i64,
    pub messages: Vec<PostedMessage>,
}

/// A page of the event log to deliver.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Postable notices (audit entries left out), oldest first.
    pub notices: Vec<Notice>,
    /// The last event-log id looked at (an unreadable row included); `None` when there was
    /// nothing after `after`.
    pub scanned_to: Option<i64>,
}

#[derive(Debug)]
pub(super) enum OutboxRequest {
    Open {
        frontend: String,
        reply: oneshot::Sender<Result<OutboxState>>,
    },
    Pending {
        after: i64,
        limit: i64,
        reply: oneshot::Sender<Result<Pending>>,
    },
    Delivered {
        frontend: String,
        seq: i64,
        messages: Vec<PostedMessage>,
        reply: oneshot::Sender<Result<()>>,
    },
    Posted {
        frontend: String,
        messages: Vec<PostedMessage>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// The newest event-log id (a live event stream starts after it).
    Newest { reply: oneshot::Sender<Result<i64>> },
    /// `/recordings` (see `history.rs`).
    Sessions {
        query: super::history::SessionQuery,
        reply: oneshot::Sender<Result<Vec<super::history::SessionView>>>,
    },
    Session {
        id: i64,
        reply: oneshot::Sender<Result<Option<super::history::SessionView>>>,
    },
    /// `/readyz`: can the database take a write (see `health.rs`)?
    Writable {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// `/metrics`: the core's gauges and the recordings folder (see `gauges.rs`).
    Gauges {
        reply: oneshot::Sender<Result<(crate::metrics::CoreGauges, std::path::PathBuf)>>,
    },
}

pub(super) fn channel() -> (mpsc::Sender<OutboxRequest>, mpsc::Receiver<OutboxRequest>) {
    mpsc::channel(OUTBOX_QUEUE)
}

impl CoreHandle {
    /// Where `frontend` resumes delivery. A front-end that never ran starts with the current
    /// run (from its `ServiceStarted`), not with the whole history.
    pub async fn outbox_open(&self, frontend: impl Into<String>) -> Result<OutboxState> {
        let frontend = frontend.into();
        self.outbox_call(|reply| OutboxRequest::Open { frontend, reply })
            .await
    }

    /// The next `limit` events after event-log id `after` as notices addressed to their
    /// login's current room (audit entries left out).
    pub async fn outbox_pending(&self, after: i64, limit: i64) -> Result<Pending> {
        self.outbox_call(|reply| OutboxRequest::Pending {
            after,
            limit,
            reply,
        })
        .await
    }

    /// The newest event-log id: a stream subscribed before asking starts after it.
    pub async fn newest_event_id(&self) -> Result<i64> {
        self.outbox_call(|reply| OutboxRequest::Newest { reply })
            .await
    }

    /// Persists that `frontend` delivered everything up to `seq`, with the messages it opened.
    pub async fn outbox_delivered(
        &self,
        frontend: impl Into<String>,
        seq: i64,
        messages: Vec<PostedMessage>,
    ) -> Result<()> {
        let frontend = frontend.into();
        self.outbox_call(|reply| OutboxRequest::Delivered {
            frontend,
            seq,
            messages,
            reply,
        })
        .await
    }

    /// Persists messages `frontend` posted for a notice it has not finished (one step of
    /// several), before it takes the next step.
    pub async fn outbox_posted(
        &self,
        frontend: impl Into<String>,
        messages: Vec<PostedMessage>,
    ) -> Result<()> {
        let frontend = frontend.into();
        self.outbox_call(|reply| OutboxRequest::Posted {
            frontend,
            messages,
            reply,
        })
        .await
    }

    async fn outbox_call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> OutboxRequest,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.outbox
            .send(request(tx))
            .await
            .map_err(|_| CoreStopped)?;
        rx.await.map_err(|_| CoreStopped)?
    }
}

impl Core {
    pub(super) async fn outbox_request(&mut self, request: OutboxRequest) {
        match request {
            OutboxRequest::Open { frontend, reply } => {
                let _ = reply.send(self.outbox_open(&frontend).await);
            }
            OutboxRequest::Pending {
                after,
                limit,
                reply,
            } => {
                let _ = reply.send(self.outbox_pending(after, limit).await);
            }
            OutboxRequest::Delivered {
                frontend,
                seq,
                messages,
                reply,
            } => {
                let result = self.store.outbox_delivered(&frontend, seq, &messages).await;
                if let Err(e) = &result {
                    error!(error = %e, frontend = %frontend, seq, "cannot record a delivery");
                }
                let _ = reply.send(result);
            }
            OutboxRequest::Posted {
                frontend,
                messages,
                reply,
            } => {
                let result = self.store.outbox_posted(&frontend, &messages).await;
                if let Err(e) = &result {
                    error!(error = %e, frontend = %frontend, "cannot record a posted step");
                }
                let _ = reply.send(result);
            }
            OutboxRequest::Newest { reply } => {
                let _ = reply.send(self.store.newest_event_id().await);
            }
            OutboxRequest::Sessions { query, reply } => {
                let _ = reply.send(self.read_sessions(&query).await);
            }
            OutboxRequest::Session { id, reply } => {
                let _ = reply.send(self.read_session(id).await);
            }
            OutboxRequest::Writable { reply } => {
                let _ = reply.send(self.check_writable().await);
            }
            OutboxRequest::Gauges { reply } => {
                let _ = reply.send(self.gauges().await);
            }
        }
    }

    async fn outbox_open(&mut self, frontend: &str) -> Result<OutboxState> {
        let cursor = match self.store.outbox_cursor(frontend).await? {
            Some(cursor) => cursor,
            None => {
                // First run of this front-end: start at this run's ServiceStarted, and persist
                // that so a crash before the first delivery does not skip this run.
                let started = self.store.last_event_id("ServiceStarted").await?;
                let cursor = started.map_or(0, |id| id - 1);
                self.store.outbox_delivered(frontend, cursor, &[]).await?;
                cursor
            }
        };
        Ok(OutboxState {
            cursor,
            messages: self.store.outbox_messages(frontend).await?,
        })
    }

    async fn outbox_pending(&mut self, after: i64, limit: i64) -> Result<Pending> {
        let mut notices = Vec::new();
        let page = self.store.events_after(after, limit).await?;
        // A page is mostly a few logins' events: look each login's room up once.
        let mut rooms: HashMap<Login, Option<Room>> = HashMap::new();
        for (seq, event) in page.events {
            if event.kind.is_audit_only() {
                continue;
            }
            let room = match &event.login {
                Some(login) => match rooms.get(login) {
                    Some(room) => room.clone(),
                    None => match self.store.watch(login).await {
                        Ok(watch) => {
                            let room = watch.map(|w| w.room);
                            rooms.insert(login.clone(), room.clone());
                            room
                        }
                        // As `room_of`: no room this time, asked again for the next event.
                        Err(_) => None,
                    },
                },
                None => None,
            };
            notices.push(Notice { seq, event, room });
        }
        Ok(Pending {
            notices,
            scanned_to: page.scanned_to,
        })
    }
}
