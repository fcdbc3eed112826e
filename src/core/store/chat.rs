//! Store queries for chat logging: the last event of a kind (the last chat disconnect for
//! `status`, also across restarts).

use anyhow::{Context, Result};
use sqlx::Row;

use super::Store;
use crate::event::Event;

impl Store {
    /// The newest event of `kind` (an `EventKind` name), if any.
    pub async fn last_event_of_kind(&self, kind: &str) -> Result<Option<Event>> {
        let row = sqlx::query("SELECT payload FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1")
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let payload: String = row.try_get("payload")?;
        serde_json::from_str(&payload)
            .map(Some)
            .context("unreadable event in the log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[tokio::test]
    async fn finds_the_newest_event_of_a_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        assert!(store
            .last_event_of_kind("ChatDisconnected")
            .await
            .unwrap()
            .is_none());
        for reason in ["first", "second"] {
            let kind = EventKind::ChatDisconnected {
                reason: reason.into(),
            };
            store.append_event(&Event::now(None, kind)).await.unwrap();
            store
                .append_event(&Event::now(None, EventKind::ChatDropped { lines: 1 }))
                .await
                .unwrap();
        }
        let last = store
            .last_event_of_kind("ChatDisconnected")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            last.kind,
            EventKind::ChatDisconnected {
                reason: "second".into()
            }
        );
    }
}
