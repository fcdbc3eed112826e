//! The front-ends' delivery state: per front-end cursor into the event log, and the chat
//! messages (threads, progress messages) it keeps using. Written only through the core.

use anyhow::Result;
use chrono::{Duration, Utc};
use sqlx::Row;

use super::Store;
use crate::event::Event;

/// A chat message a front-end refers back to: a broadcast's thread, an upload's progress
/// message, or one step of a notice that takes several posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    /// `thread:<room>:<session>`, `progress:<room>:<job>`, or `step:<seq>:<place>` for a
    /// post already made for notice `seq` (dropped once the cursor passes it).
    pub key: String,
    /// Where the message (or thread) lives.
    pub channel: String,
    /// Slack `ts`, Discord message or thread id.
    pub id: String,
}

/// A page of the event log (see [`Store::events_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    /// The readable events of the page with their ids, oldest first.
    pub events: Vec<(i64, Event)>,
    /// The last id of the page, readable or not; `None` when there was nothing after.
    pub scanned_to: Option<i64>,
}

/// Mappings older than this are dropped at start-up: no broadcast or upload lasts that long.
const MESSAGE_RETENTION_DAYS: i64 = 14;
/// Key prefix of the posts made for a notice not yet fully delivered.
const STEP_PREFIX: &str = "step:";

impl PostedMessage {
    /// The key recording the post made for notice `seq` at `place` (e.g. `room`, `thread`).
    pub fn step_key(seq: i64, place: &str) -> String {
        format!("{STEP_PREFIX}{seq}:{place}")
    }

    /// Whether `key` records a step (as opposed to a thread or progress message).
    pub fn is_step_key(key: &str) -> bool {
        key.starts_with(STEP_PREFIX)
    }
}

impl Store {
    /// The last event-log id `frontend` delivered, if it ever ran.
    pub async fn outbox_cursor(&self, frontend: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT delivered_seq FROM outbox_cursors WHERE frontend = ?")
                .bind(frontend)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records that `frontend` handled every notice up to `seq`, and the messages it opened
    /// doing so, in one transaction; the step records of the notices it finished are dropped.
    /// The cursor never moves backwards.
    pub async fn outbox_delivered(
        &self,
        frontend: &str,
        seq: i64,
        messages: &[PostedMessage],
    ) -> Result<()> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM outbox_messages WHERE frontend = ? AND key LIKE ?")
            .bind(frontend)
            .bind(format!("{STEP_PREFIX}%"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO outbox_cursors (frontend, delivered_seq, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (frontend) DO UPDATE SET
               delivered_seq = MAX(delivered_seq, excluded.delivered_seq),
               updated_at = excluded.updated_at",
        )
        .bind(frontend)
        .bind(seq)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        upsert_messages(&mut tx, frontend, messages).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records messages `frontend` posted without moving its cursor: one step of a notice
    /// that takes several posts, so a restart before the next step does not post it again.
    pub async fn outbox_posted(&self, frontend: &str, messages: &[PostedMessage]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_messages(&mut tx, frontend, messages).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The messages `frontend` still refers to (old ones are pruned first).
    pub async fn outbox_messages(&self, frontend: &str) -> Result<Vec<PostedMessage>> {
        sqlx::query("DELETE FROM outbox_messages WHERE frontend = ? AND created_at < ?")
            .bind(frontend)
            .bind(Utc::now() - Duration::days(MESSAGE_RETENTION_DAYS))
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT key, channel, message_id FROM outbox_messages WHERE frontend = ? ORDER BY key",
        )
        .bind(frontend)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PostedMessage {
                    key: r.try_get("key")?,
                    channel: r.try_get("channel")?,
                    id: r.try_get("message_id")?,
                })
            })
            .collect()
    }

    /// Up to `limit` rows of the event log after `after`, oldest first: their readable events
    /// with their ids (an unreadable row is logged and left out), and the last id looked at.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<LogPage> {
        let rows = sqlx::query("SELECT id, payload FROM events WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let scanned_to = match rows.last() {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        };
        Ok(LogPage {
            events: rows.iter().filter_map(super::readable_event).collect(),
            scanned_to,
        })
    }

    /// The id of the newest event of `kind` (e.g. this run's `ServiceStarted`).
    pub async fn last_event_id(&self, kind: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(id) FROM events WHERE kind = ?")
                .bind(kind)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

async fn upsert_messages(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    frontend: &str,
    messages: &[PostedMessage],
) -> Result<()> {
    let now = Utc::now();
    for m in messages {
        sqlx::query(
            "INSERT INTO outbox_messages (frontend, key, channel, message_id, created_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (frontend, key) DO UPDATE SET channel = excluded.channel,
               message_id = excluded.message_id, created_at = excluded.created_at",
        )
        .bind(frontend)
        .bind(&m.key)
        .bind(&m.channel)
        .bind(&m.id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[tokio::test]
    async fn cursor_and_messages_survive_reopening_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.outbox_cursor("slack").await.unwrap(), None);
        let thread = PostedMessage {
            key: "thread:C1:7".into(),
            channel: "C1".into(),
            id: "1700000000.000100".into(),
        };
        store
            .outbox_delivered("slack", 5, std::slice::from_ref(&thread))
            .await
            .unwrap();
        store.outbox_delivered("slack", 3, &[]).await.unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.outbox_cursor("slack").await.unwrap(), Some(5));
        assert_eq!(store.outbox_cursor("discord").await.unwrap(), None);
        assert_eq!(
            store.outbox_messages("slack").await.unwrap(),
            vec![thread.clone()]
        );
        assert!(store.outbox_messages("discord").await.unwrap().is_empty());

        // A step of notice 6 survives a restart until the cursor passes it.
        let step = PostedMessage {
            key: PostedMessage::step_key(6, "thread"),
            channel: "C1".into(),
            id: "1700000000.000200".into(),
        };
        store
            .outbox_posted("slack", std::slice::from_ref(&step))
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.outbox_cursor("slack").await.unwrap(), Some(5));
        assert_eq!(
            store.outbox_messages("slack").await.unwrap(),
            vec![step, thread.clone()]
        );
        store.outbox_delivered("slack", 6, &[]).await.unwrap();
        assert_eq!(store.outbox_messages("slack").await.unwrap(), vec![thread]);
    }

    #[tokio::test]
    async fn events_after_pages_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        for _ in 0..5 {
            store
                .append_event(&Event::now(None, EventKind::ServiceStopping))
                .await
                .unwrap();
        }
        let page = store.events_after(2, 2).await.unwrap();
        let ids: Vec<i64> = page.events.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [3, 4]);
        assert_eq!(page.scanned_to, Some(4));
        let page = store.events_after(5, 2).await.unwrap();
        assert!(page.events.is_empty());
        assert_eq!(page.scanned_to, None);
        assert_eq!(
            store.last_event_id("ServiceStopping").await.unwrap(),
            Some(5)
        );
        assert_eq!(store.last_event_id("ServiceStarted").await.unwrap(), None);
    }
}
