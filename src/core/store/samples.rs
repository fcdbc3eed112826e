//! Stream samples: what live detection saw of a recorded broadcast at each live check
//! (viewers, title, game), kept per session for its summary chart and for `status` (the
//! session's peak).

use anyhow::Result;
use chrono::{DateTime, Utc};

/// A row of `stream_samples`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSample {
    pub session: i64,
    pub at: DateTime<Utc>,
    /// `None` when the check could not learn it (a probe without GQL's answer).
    pub viewers: Option<u64>,
    pub title: String,
    pub game: Option<String>,
}

/// The stored samples.
#[async_trait::async_trait]
pub trait StreamSamples: Send + Sync {
    async fn add_stream_sample(&self, sample: &StreamSample) -> Result<()>;

    /// The samples of `session`, oldest first.
    async fn stream_samples(&self, session: i64) -> Result<Vec<StreamSample>>;

    /// The highest viewer count sampled in `session` (`None` before any count).
    async fn peak_viewers(&self, session: i64) -> Result<Option<u64>>;
}
