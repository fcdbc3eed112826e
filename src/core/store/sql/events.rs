//! The SQL of the event log (`events`; migration 0005 indexes it by kind), written once for both
//! engines: [`events_sql!`] expands the `EventLog` implementation for one engine's backend type.

/// The newest events, oldest first (`$1`: how many).
pub(in crate::core::store) const RECENT: &str = "SELECT id, payload FROM (SELECT id, payload
    FROM events ORDER BY id DESC LIMIT $1) AS newest ORDER BY id";
/// The newest events of one login, oldest first (`$1`: login, `$2`: how many); an index
/// search on `events_by_name` (a SQLite test checks its plan).
pub(in crate::core::store) const RECENT_OF_LOGIN: &str = "SELECT id, payload FROM (SELECT id,
    payload FROM events WHERE name = $1 ORDER BY id DESC LIMIT $2) AS newest ORDER BY id";

/// Expands `mod events` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `EventLog` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! events_sql {
    ($backend:ident, $db:ty) => {
        mod events {
            use anyhow::{Context, Result};
            use recbot_commands::Login;
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::events::{self, log_payload};
            use crate::core::store::sql::events::{RECENT, RECENT_OF_LOGIN};
            use crate::core::store::{EventLog, LogPage};
            use crate::event::Event;

            /// A result row of this engine.
            type DbRow = <$db as sqlx::Database>::Row;

            #[async_trait::async_trait]
            impl EventLog for Engine {
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
                    // Two statements, not one with `$1 IS NULL OR name = $1`: SQLite plans a
                    // statement once, and a prepared statement in PostgreSQL may get a generic
                    // plan; either way that form cannot use `events_by_name` and scans the log.
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
            fn readable_event(row: &DbRow) -> Option<(i64, Event)> {
                events::readable_event(row.try_get("id"), row.try_get("payload"))
            }
        }
    };
}
pub(in crate::core::store) use events_sql;

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::core::store::Store;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &Store, sql: &str, binds: &[&str]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(&store.pool_for_tests()).await.unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn a_logins_recent_events_are_an_index_search_not_a_scan_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let plan = plan(&store, RECENT_OF_LOGIN, &["foo", "5"]).await;
        assert!(plan.contains("USING INDEX events_by_name"), "{plan}");
        assert!(!plan.contains("SCAN events"), "{plan}");
    }
}
