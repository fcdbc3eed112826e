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
        match self
            .ask_within(within, |reply| OutboxRequest::Writable { reply })
            .await
        {
            Ok(Some(Ok(()))) => Vec::new(),
            Ok(Some(Err(error))) => vec![Unready::DatabaseNotWritable(error)],
            // The channel closed: the core task ended.
            Ok(None) => vec![Unready::CoreStopped],
            Err(_) => vec![Unready::CoreNotAnswering],
        }
    }
}

impl CoreHandle {
    /// Asks the core's loop `request` and waits at most `within`: `Err` when it did not
    /// answer in time, `Ok(None)` when the core has ended.
    pub(super) async fn ask_within<T>(
        &self,
        within: Duration,
        request: impl FnOnce(oneshot::Sender<T>) -> OutboxRequest,
    ) -> Result<Option<T>, tokio::time::error::Elapsed> {
        let (tx, rx) = oneshot::channel();
        let asked = async {
            self.outbox.send(request(tx)).await.ok()?;
            rx.await.ok()
        };
        tokio::time::timeout(within, asked).await
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
