//! [`Events`]: where workers send what happened. The core receives, persists and announces.

use recbot_commands::Login;
use tokio::sync::mpsc;
use tracing::warn;

use crate::event::{Event, EventKind};

/// Where workers send events. Cloned into every worker.
#[derive(Debug, Clone)]
pub struct Events {
    tx: mpsc::Sender<Event>,
}

impl Events {
    /// A sender on `tx`: the core's event queue, or a plain channel for workers driven without
    /// a core (tests, benchmarks).
    pub fn new(tx: mpsc::Sender<Event>) -> Events {
        Events { tx }
    }

    /// Sends an event to the core, waiting while its queue is full (so nothing is dropped).
    pub async fn emit(&self, login: Option<Login>, kind: EventKind) {
        self.send(Event::now(login, kind)).await
    }

    /// Sends a built event (e.g. one tagged with its session, [`Event::in_session`]).
    pub async fn send(&self, event: Event) {
        if self.tx.send(event).await.is_err() {
            warn!("event dropped: the core has stopped");
        }
    }
}
