//! The SQL of sessions and parts (`sessions`, `parts`), written once for both engines:
//! [`recordings_sql!`] expands the `Recordings` implementation for one engine's backend type.

/// Expands `mod recordings` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `Recordings` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! recordings_sql {
    ($backend:ident, $db:ty) => {
        mod recordings {
            use std::path::{Path, PathBuf};

            use anyhow::Result;
            use chrono::{DateTime, Utc};
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::storable_text;
            use crate::core::store::{PartRow, Recordings, SessionRow, SessionTotals};

            /// A result row of this engine.
            type DbRow = <$db as sqlx::Database>::Row;

            #[async_trait::async_trait]
            impl Recordings for Engine {
                async fn create_session(
                    &self,
                    name: &str,
                    stream_id: Option<&str>,
                    title: &str,
                    game: Option<&str>,
                    started_at: DateTime<Utc>,
                ) -> Result<i64> {
                    let id = sqlx::query_scalar(
                        "INSERT INTO sessions (name, stream_id, title, game, started_at)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(name)
                    .bind(stream_id.map(storable_text))
                    .bind(storable_text(title))
                    .bind(game.map(storable_text))
                    .bind(started_at)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(id)
                }

                async fn session(&self, id: i64) -> Result<Option<SessionRow>> {
                    let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(session_from_row).transpose()
                }

                async fn open_sessions(&self) -> Result<Vec<SessionRow>> {
                    let rows = sqlx::query("SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(session_from_row).collect()
                }

                async fn sessions_of(&self, name: &str, limit: i64) -> Result<Vec<SessionRow>> {
                    let rows = sqlx::query("SELECT * FROM sessions WHERE name = $1 ORDER BY id DESC LIMIT $2")
                        .bind(name)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(session_from_row).collect()
                }

                async fn sessions(
                    &self,
                    name: Option<&str>,
                    since: Option<DateTime<Utc>>,
                    limit: i64,
                ) -> Result<Vec<SessionRow>> {
                    let rows = sqlx::query(
                        "SELECT * FROM sessions WHERE ($1 IS NULL OR name = $1)
                           AND ($2 IS NULL OR started_at >= $2) ORDER BY id DESC LIMIT $3",
                    )
                    .bind(name)
                    .bind(since)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(session_from_row).collect()
                }

                async fn update_session_title(&self, id: i64, title: &str, game: Option<&str>) -> Result<()> {
                    sqlx::query("UPDATE sessions SET title = $1, game = $2 WHERE id = $3")
                        .bind(storable_text(title))
                        .bind(game.map(storable_text))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn learn_session_stream_id(&self, id: i64, stream_id: &str) -> Result<()> {
                    sqlx::query("UPDATE sessions SET stream_id = $1 WHERE id = $2 AND stream_id IS NULL")
                        .bind(storable_text(stream_id))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn end_session(&self, id: i64, ended_at: DateTime<Utc>) -> Result<()> {
                    sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                        .bind(ended_at)
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn start_part(
                    &self,
                    session: i64,
                    part_no: u32,
                    path: &Path,
                    started_at: DateTime<Utc>,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO parts (session_id, part_no, path, state, started_at)
                         VALUES ($1, $2, $3, 'recording', $4)
                         ON CONFLICT (session_id, part_no) DO UPDATE SET path = excluded.path,
                           state = 'recording', started_at = excluded.started_at",
                    )
                    .bind(session)
                    .bind(part_no as i64)
                    .bind(path.to_string_lossy())
                    .bind(started_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn finish_part(
                    &self,
                    session: i64,
                    part_no: u32,
                    path: &Path,
                    bytes: u64,
                    duration_secs: f64,
                    gaps: u32,
                    recovered: bool,
                    ended_at: DateTime<Utc>,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO parts (session_id, part_no, path, state, recovered, started_at, ended_at,
                           bytes, duration_secs, gaps)
                         VALUES ($1, $2, $3, 'finished', $4, $5, $5, $6, $7, $8)
                         ON CONFLICT (session_id, part_no) DO UPDATE SET path = excluded.path,
                           state = 'finished', recovered = excluded.recovered, ended_at = excluded.ended_at,
                           bytes = excluded.bytes, duration_secs = excluded.duration_secs, gaps = excluded.gaps",
                    )
                    .bind(session)
                    .bind(part_no as i64)
                    .bind(path.to_string_lossy())
                    .bind(recovered)
                    .bind(ended_at)
                    .bind(bytes as i64)
                    .bind(duration_secs)
                    .bind(gaps as i64)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn fail_part(&self, session: i64, part_no: u32, ended_at: DateTime<Utc>) -> Result<()> {
                    sqlx::query(
                        "UPDATE parts SET state = 'failed', ended_at = $1 WHERE session_id = $2 AND part_no = $3",
                    )
                    .bind(ended_at)
                    .bind(session)
                    .bind(part_no as i64)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn parts_in_progress(&self) -> Result<Vec<PartRow>> {
                    let rows = sqlx::query("SELECT * FROM parts WHERE state = 'recording' ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(part_from_row).collect()
                }

                async fn parts_of(&self, session: i64) -> Result<Vec<PartRow>> {
                    let rows = sqlx::query("SELECT * FROM parts WHERE session_id = $1 ORDER BY part_no")
                        .bind(session)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(part_from_row).collect()
                }

                async fn session_totals(&self, session: i64) -> Result<SessionTotals> {
                    // The CASTs: PostgreSQL sums BIGINTs as NUMERIC, which is not read as an
                    // i64; SQLite's integer sum is one already, and the CAST keeps it.
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS bytes,
                           COALESCE(SUM(duration_secs), 0.0) AS duration,
                           CAST(COALESCE(SUM(gaps), 0) AS BIGINT) AS gaps
                         FROM parts WHERE session_id = $1 AND state = 'finished'",
                    )
                    .bind(session)
                    .fetch_one(&self.pool)
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let bytes: i64 = row.try_get("bytes")?;
                    let gaps: i64 = row.try_get("gaps")?;
                    Ok(SessionTotals {
                        parts: n as u32,
                        bytes: bytes as u64,
                        duration_secs: row.try_get("duration")?,
                        gaps: gaps as u32,
                    })
                }
            }

            fn session_from_row(r: &DbRow) -> Result<SessionRow> {
                Ok(SessionRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    stream_id: r.try_get("stream_id")?,
                    title: r.try_get("title")?,
                    game: r.try_get("game")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                })
            }

            fn part_from_row(r: &DbRow) -> Result<PartRow> {
                let path: String = r.try_get("path")?;
                let part_no: i64 = r.try_get("part_no")?;
                Ok(PartRow {
                    session_id: r.try_get("session_id")?,
                    part_no: part_no as u32,
                    path: PathBuf::from(path),
                    state: r.try_get("state")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                    bytes: r.try_get::<i64, _>("bytes")?.max(0) as u64,
                    duration_secs: r.try_get("duration_secs")?,
                    gaps: r.try_get::<i64, _>("gaps")?.clamp(0, u32::MAX as i64) as u32,
                    recovered: r.try_get("recovered")?,
                })
            }
        }
    };
}
pub(in crate::core::store) use recordings_sql;
