//! Recorded sessions with their parts, read from the store for the HTTP API's
//! `/recordings` (read-only; served by the core's loop like the outbox's reads).

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::outbox::{CoreStopped, OutboxRequest};
use super::store::{PartRow, SessionRow};
use super::{Core, CoreHandle};

/// Most sessions one request returns.
pub const MAX_SESSIONS: i64 = 200;

/// Which sessions: newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    pub login: Option<recbot_commands::Login>,
    pub since: Option<DateTime<Utc>>,
    /// At most [`MAX_SESSIONS`].
    pub limit: i64,
}

/// A session and its parts, by number.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub session: SessionRow,
    pub parts: Vec<PartRow>,
}

impl CoreHandle {
    /// The sessions `query` asks for, with their parts.
    pub async fn sessions(&self, query: SessionQuery) -> Result<Vec<SessionView>> {
        let (tx, rx) = oneshot::channel();
        self.outbox
            .send(OutboxRequest::Sessions { query, reply: tx })
            .await
            .map_err(|_| CoreStopped)?;
        rx.await.map_err(|_| CoreStopped)?
    }

    /// One session with its parts; `None` when there is no such session.
    pub async fn session(&self, id: i64) -> Result<Option<SessionView>> {
        let (tx, rx) = oneshot::channel();
        self.outbox
            .send(OutboxRequest::Session { id, reply: tx })
            .await
            .map_err(|_| CoreStopped)?;
        rx.await.map_err(|_| CoreStopped)?
    }
}

impl Core {
    pub(super) async fn read_sessions(&self, query: &SessionQuery) -> Result<Vec<SessionView>> {
        let limit = query.limit.clamp(1, MAX_SESSIONS);
        let login = query.login.as_ref().map(|l| l.as_str());
        let rows = self.store.sessions(login, query.since, limit).await?;
        let mut views = Vec::with_capacity(rows.len());
        for session in rows {
            let parts = self.store.parts_of(session.id).await?;
            views.push(SessionView { session, parts });
        }
        Ok(views)
    }

    pub(super) async fn read_session(&self, id: i64) -> Result<Option<SessionView>> {
        let Some(session) = self.store.session(id).await? else {
            return Ok(None);
        };
        let parts = self.store.parts_of(id).await?;
        Ok(Some(SessionView { session, parts }))
    }
}
