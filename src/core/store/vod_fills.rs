//! Pending VOD fills: the sessions whose gaps the core asked to fill from the Twitch VOD and
//! whose fill has not ended yet (a restart resumes them).

use anyhow::Result;
use chrono::{DateTime, Utc};

/// A row of `vod_fills`.
#[derive(Debug, Clone, PartialEq)]
pub struct VodFillRow {
    pub session: i64,
    pub login: String,
    /// When the fill was decided (the wait for the VOD counts from here, across restarts).
    pub created_at: DateTime<Utc>,
}

/// The pending VOD fills.
#[async_trait::async_trait]
pub trait VodFills: Send + Sync {
    /// Records a pending fill; `false` when the session has one already (kept as it was).
    async fn add_vod_fill(
        &self,
        session: i64,
        login: &str,
        created_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Every pending fill, oldest first.
    async fn vod_fills(&self) -> Result<Vec<VodFillRow>>;

    /// The fill of `session` is over.
    async fn remove_vod_fill(&self, session: i64) -> Result<()>;
}
