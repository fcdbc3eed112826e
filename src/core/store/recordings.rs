//! Sessions (one live broadcast of a login) and their parts (recording files), as the core
//! persists them from the recorder's events.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Store;

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: i64,
    pub name: String,
    pub stream_id: Option<String>,
    pub title: Option<String>,
    pub game: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A row of `parts`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRow {
    pub session_id: i64,
    pub part_no: u32,
    /// The final file name (absolute); `<path>.part` while recording.
    pub path: PathBuf,
    /// `recording` | `finished` | `failed`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// What a session recorded, summed over its finished parts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionTotals {
    pub parts: u32,
    pub bytes: u64,
    pub duration_secs: f64,
    pub gaps: u32,
}

fn session_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<SessionRow> {
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

fn part_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<PartRow> {
    let path: String = r.try_get("path")?;
    let part_no: i64 = r.try_get("part_no")?;
    Ok(PartRow {
        session_id: r.try_get("session_id")?,
        part_no: part_no as u32,
        path: PathBuf::from(path),
        state: r.try_get("state")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
    })
}

impl Store {
    pub async fn create_session(
        &self,
        name: &str,
        stream_id: Option<&str>,
        title: &str,
        game: Option<&str>,
        started_at: DateTime<Utc>,
    ) -> Result<i64> {
        let id = sqlx::query(
            "INSERT INTO sessions (name, stream_id, title, game, started_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(stream_id)
        .bind(title)
        .bind(game)
        .bind(started_at)
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    pub async fn session(&self, id: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Sessions not ended (a crash or shutdown interrupted them).
    pub async fn open_sessions(&self) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// The newest sessions of `name`, newest first.
    pub async fn sessions_of(&self, name: &str, limit: i64) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE name = ? ORDER BY id DESC LIMIT ?")
            .bind(name)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn update_session_title(
        &self,
        id: i64,
        title: &str,
        game: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE sessions SET title = ?, game = ? WHERE id = ?")
            .bind(title)
            .bind(game)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a session's stream id once it is known (live detection can lag behind the
    /// recording); a known id is never replaced.
    pub async fn learn_session_stream_id(&self, id: i64, stream_id: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET stream_id = ? WHERE id = ? AND stream_id IS NULL")
            .bind(stream_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, id: i64, ended_at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL")
            .bind(ended_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A part began (state `recording`).
    pub async fn start_part(
        &self,
        session: i64,
        part_no: u32,
        path: &Path,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO parts (session_id, part_no, path, state, started_at)
             VALUES (?, ?, ?, 'recording', ?)
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

    /// A part is complete on disk (inserted when it was never recorded as started, e.g. a
    /// recovered file whose start was not persisted before a crash).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_part(
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
             VALUES (?1, ?2, ?3, 'finished', ?4, ?5, ?5, ?6, ?7, ?8)
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

    /// A part whose file is gone (nothing to finish).
    pub async fn fail_part(
        &self,
        session: i64,
        part_no: u32,
        ended_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE parts SET state = 'failed', ended_at = ? WHERE session_id = ? AND part_no = ?",
        )
        .bind(ended_at)
        .bind(session)
        .bind(part_no as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Parts still marked as being recorded (left by a crash).
    pub async fn parts_in_progress(&self) -> Result<Vec<PartRow>> {
        let rows = sqlx::query("SELECT * FROM parts WHERE state = 'recording' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(part_from_row).collect()
    }

    pub async fn parts_of(&self, session: i64) -> Result<Vec<PartRow>> {
        let rows = sqlx::query("SELECT * FROM parts WHERE session_id = ? ORDER BY part_no")
            .bind(session)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(part_from_row).collect()
    }

    pub async fn session_totals(&self, session: i64) -> Result<SessionTotals> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes,
               COALESCE(SUM(duration_secs), 0.0) AS duration, COALESCE(SUM(gaps), 0) AS gaps
             FROM parts WHERE session_id = ? AND state = 'finished'",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_and_parts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let now = Utc::now();
        let s = store
            .create_session("foo", Some("42"), "hi", Some("Chess"), now)
            .await
            .unwrap();
        assert_eq!(store.open_sessions().await.unwrap().len(), 1);
        store
            .start_part(s, 1, Path::new("/r/a.ts"), now)
            .await
            .unwrap();
        store
            .start_part(s, 2, Path::new("/r/b.ts"), now)
            .await
            .unwrap();
        assert_eq!(store.parts_in_progress().await.unwrap().len(), 2);
        store
            .finish_part(s, 1, Path::new("/r/a.ts"), 100, 2.0, 1, false, now)
            .await
            .unwrap();
        // A recovered part that was never recorded as started.
        store
            .finish_part(s, 3, Path::new("/r/c.ts"), 50, 1.0, 0, true, now)
            .await
            .unwrap();
        store.fail_part(s, 2, now).await.unwrap();
        assert!(store.parts_in_progress().await.unwrap().is_empty());
        let totals = store.session_totals(s).await.unwrap();
        assert_eq!(
            totals,
            SessionTotals {
                parts: 2,
                bytes: 150,
                duration_secs: 3.0,
                gaps: 1
            }
        );
        let states: Vec<String> = store
            .parts_of(s)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.state)
            .collect();
        assert_eq!(states, ["finished", "failed", "finished"]);
        store.update_session_title(s, "new", None).await.unwrap();
        let unknown = store
            .create_session("bar", None, "t", None, now)
            .await
            .unwrap();
        store.learn_session_stream_id(unknown, "77").await.unwrap();
        store.learn_session_stream_id(unknown, "78").await.unwrap();
        store.learn_session_stream_id(s, "99").await.unwrap();
        let learnt = store.session(unknown).await.unwrap().unwrap();
        assert_eq!(learnt.stream_id.as_deref(), Some("77"));
        assert_eq!(
            store
                .session(s)
                .await
                .unwrap()
                .unwrap()
                .stream_id
                .as_deref(),
            Some("42")
        );
        store.end_session(unknown, now).await.unwrap();
        store.end_session(s, now).await.unwrap();
        let row = store.session(s).await.unwrap().unwrap();
        assert_eq!(row.title.as_deref(), Some("new"));
        assert!(row.ended_at.is_some());
        assert!(store.open_sessions().await.unwrap().is_empty());
        assert_eq!(store.sessions_of("foo", 5).await.unwrap().len(), 1);
    }
}
