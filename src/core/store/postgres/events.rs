//! The event log in PostgreSQL (`events`; migration 0005 indexes it by kind).

use anyhow::{Context, Result};
use recbot_commands::Login;
use sqlx::Row;

use super::PostgresBackend;
use crate::core::store::events::{self, log_payload};
use crate::core::store::{EventLog, LogPage};
use crate::event::Event;

/// The newest events, oldest first (`?1`: how many).
const RECENT: &str = "SELECT id, payload FROM (SELECT id, payload FROM events
    ORDER BY id DESC LIMIT $1) AS newest ORDER BY id";
/// The newest events of one login, oldest first (`?1`: login, `?2`: how many); an index
/// search on `events_by_name`.
const RECENT_OF_LOGIN: &str = "SELECT id, payload FROM (SELECT id, payload FROM events
    WHERE name = $1 ORDER BY id DESC LIMIT $2) AS newest ORDER BY id";

#[async_trait::async_trait]
impl EventLog for PostgresBackend {
    async fn append_event(&self, event: &Event) -> Result<i64> {
        let payload = log_payload(event)?;
        let id = sqlx::query_scalar(
            "INSERT INTO events (at, kind, name, payload) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(event.at)
        .bind(event.kind_name())
        .bind(event.login.as_ref().map(Login::as_str))
        .bind(payload)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn recent_events(&self, name: Option<&Login>, limit: i64) -> Result<Vec<Event>> {
        // Two statements, as for SQLite: a prepared `$1 IS NULL OR name = $1` may get a
        // generic plan that scans the whole log instead of searching `events_by_name`.
        let rows = match name {
            Some(name) => {
                sqlx::query(RECENT_OF_LOGIN)
                    .bind(name.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(RECENT)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .filter_map(readable_event)
            .map(|(_, e)| e)
            .collect())
    }

    async fn events_after(&self, after: i64, limit: i64) -> Result<LogPage> {
        let rows = sqlx::query("SELECT id, payload FROM events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let scanned_to = match rows.last() {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        };
        Ok(LogPage {
            events: rows.iter().filter_map(readable_event).collect(),
            scanned_to,
        })
    }

    async fn last_event_id(&self, kind: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(id) FROM events WHERE kind = $1")
                .bind(kind)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn newest_event_id(&self) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(id.unwrap_or(0))
    }

    async fn last_event_of_kind(&self, kind: &str) -> Result<Option<Event>> {
        let row =
            sqlx::query("SELECT payload FROM events WHERE kind = $1 ORDER BY id DESC LIMIT 1")
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

/// The id and event of an event-log row (`id`, `payload`); see [`events::readable_event`].
fn readable_event(row: &sqlx::postgres::PgRow) -> Option<(i64, Event)> {
    events::readable_event(row.try_get("id"), row.try_get("payload"))
}
