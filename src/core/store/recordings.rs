//! Sessions (one live broadcast of a login) and their parts (recording files), as the core
//! persists them from the recorder's events.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};

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
    /// Set when the part finished (0 before).
    pub bytes: u64,
    pub duration_secs: f64,
    pub gaps: u32,
    /// Finished from a crash's leftovers.
    pub recovered: bool,
}

/// What a session recorded, summed over its finished parts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionTotals {
    pub parts: u32,
    pub bytes: u64,
    pub duration_secs: f64,
    pub gaps: u32,
}

/// The stored sessions and parts.
#[async_trait::async_trait]
pub trait Recordings: Send + Sync {
    /// A new session, not ended; returns its id.
    async fn create_session(
        &self,
        name: &str,
        stream_id: Option<&str>,
        title: &str,
        game: Option<&str>,
        started_at: DateTime<Utc>,
    ) -> Result<i64>;

    async fn session(&self, id: i64) -> Result<Option<SessionRow>>;

    /// Sessions not ended (a crash or shutdown interrupted them), oldest first.
    async fn open_sessions(&self) -> Result<Vec<SessionRow>>;

    /// The newest sessions of `name`, newest first.
    async fn sessions_of(&self, name: &str, limit: i64) -> Result<Vec<SessionRow>>;

    /// The newest `limit` sessions (of `name` when given) started at or after `since` (when
    /// given), newest first: the HTTP API's `/recordings`.
    async fn sessions(
        &self,
        name: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<SessionRow>>;

    async fn update_session_title(&self, id: i64, title: &str, game: Option<&str>) -> Result<()>;

    /// Records a session's stream id once it is known (live detection can lag behind the
    /// recording); a known id is never replaced.
    async fn learn_session_stream_id(&self, id: i64, stream_id: &str) -> Result<()>;

    /// Ends the session (an ended session keeps its first end time).
    async fn end_session(&self, id: i64, ended_at: DateTime<Utc>) -> Result<()>;

    /// A part began (state `recording`; a part of the same number is started over).
    async fn start_part(
        &self,
        session: i64,
        part_no: u32,
        path: &Path,
        started_at: DateTime<Utc>,
    ) -> Result<()>;

    /// A part is complete on disk (inserted when it was never recorded as started, e.g. a
    /// recovered file whose start was not persisted before a crash).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;

    /// A part whose file is gone (nothing to finish).
    async fn fail_part(&self, session: i64, part_no: u32, ended_at: DateTime<Utc>) -> Result<()>;

    /// Parts still marked as being recorded (left by a crash), in the order they were started.
    async fn parts_in_progress(&self) -> Result<Vec<PartRow>>;

    /// The parts of `session`, by number.
    async fn parts_of(&self, session: i64) -> Result<Vec<PartRow>>;

    /// What the finished parts of `session` add up to.
    async fn session_totals(&self, session: i64) -> Result<SessionTotals>;
}
