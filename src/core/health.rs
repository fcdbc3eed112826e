//! Whether the core can serve right now, as data (`/readyz` words it): taking commands, its
//! loop answering, the state database writable.

use std::time::Duration;

use tokio::sync::oneshot;

use super::outbox::OutboxRequest;
use super::{Core, CoreHandle};

/// Why the core is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unready {
    /// Shutting down or stopped: commands are no longer taken.
    CoreStopped,
    /// The core's loop did not answer within the probe's limit (busy or stuck).
    CoreNotAnswering,
    /// The state database cannot take a write (the error).
    DatabaseNotWritable(String),
}

impl CoreHandle {
    /// What keeps the core from serving; empty when it is ready. Waits at most `within` for
    /// the core's loop.
    pub async fn health(&self, within: Duration) -> Vec<Unready> {
        if self.requests.is_closed() || self.stopped.is_cancelled() {
            return vec![Unready::CoreStopped];
        }
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.outbox
                .send(OutboxRequest::Writable { reply: tx })
                .await
                .ok()?;
            rx.await.ok()
        };
        match tokio::time::timeout(within, asked).await {
            Ok(Some(Ok(()))) => Vec::new(),
            Ok(Some(Err(error))) => vec![Unready::DatabaseNotWritable(error)],
            // The channel closed: the core task ended.
            Ok(None) => vec![Unready::CoreStopped],
            Err(_) => vec![Unready::CoreNotAnswering],
        }
    }
}

impl Core {
    pub(super) async fn check_writable(&self) -> Result<(), String> {
        self.store
            .check_writable()
            .await
            .map_err(|e| format!("{e:#}"))
    }
}

/// How long `/readyz` waits for the core by default.
pub const HEALTH_WITHIN: Duration = Duration::from_secs(2);
