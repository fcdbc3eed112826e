//! Post-processing jobs (`[postprocess]`): one per finished part, pending until ffmpeg's
//! output is verified or the job failed, and the upload job that waits for it (an upload job
//! inserted for a part with a pending job waits for it: one statement, so the upload worker
//! never sees it due before).

use std::path::PathBuf;

use anyhow::Result;
use recbot_commands::{Login, PostMode};

/// Where a post-processing job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostState {
    /// Waiting or running (started over after a restart).
    Pending,
    Finished,
    Failed,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Pending => "pending",
            PostState::Finished => "finished",
            PostState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<PostState> {
        match s {
            "pending" => Ok(PostState::Pending),
            "finished" => Ok(PostState::Finished),
            "failed" => Ok(PostState::Failed),
            other => anyhow::bail!("unknown post-processing state `{other}`"),
        }
    }
}

/// A row of `post_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostJob {
    pub id: i64,
    pub login: Option<Login>,
    pub session: Option<i64>,
    /// The recorded part.
    pub video: PathBuf,
    pub sidecar: Option<PathBuf>,
    /// The mode it was started with (`None`: a job from before modes were stored, which
    /// follows `[postprocess] mode`).
    pub mode: Option<PostMode>,
    pub state: PostState,
    /// The verified MP4 (finished jobs).
    pub output: Option<PathBuf>,
    pub last_error: Option<String>,
}

/// The post-processing jobs.
#[async_trait::async_trait]
pub trait PostJobs: Send + Sync {
    /// A pending job for `video`; `None` when the part has one already.
    async fn insert_post_job(
        &self,
        login: Option<&Login>,
        session: Option<i64>,
        video: &std::path::Path,
        sidecar: Option<&std::path::Path>,
        mode: PostMode,
    ) -> Result<Option<i64>>;

    async fn post_job(&self, id: i64) -> Result<Option<PostJob>>;

    /// The pending jobs, oldest first (to start again at start-up).
    async fn pending_post_jobs(&self) -> Result<Vec<PostJob>>;

    /// The job ended: finished with its `output`, or failed with `error`.
    async fn end_post_job(
        &self,
        id: i64,
        output: Option<&std::path::Path>,
        error: Option<&str>,
    ) -> Result<()>;

    /// The upload jobs waiting for `post` wait no more; with `file` (the MP4 and its size)
    /// they upload it instead of the part. The number of upload jobs released.
    async fn release_post_wait(
        &self,
        post: i64,
        file: Option<(&std::path::Path, u64)>,
    ) -> Result<u64>;
}
