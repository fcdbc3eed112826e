//! The upload queue (`upload_jobs`) and the local YouTube quota ledger (`upload_quota`). The
//! core writes both; the upload worker reads jobs through the core's [`crate::upload::JobSource`]
//! (implemented on a clone of the store). The row types live in `crate::work`.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use recbot_commands::Login;

use super::Store;
pub use crate::work::{Cleanup, JobState, UploadJob, WaitReason};

/// What a finished recording part brings to the queue.
#[derive(Debug, Clone)]
pub struct NewUploadJob {
    pub login: Option<Login>,
    pub session: Option<i64>,
    pub path: PathBuf,
    pub sidecar: Option<PathBuf>,
    pub total_bytes: u64,
    /// The node that queues it (`[cluster]`; `None` on a single node).
    pub node: Option<String>,
}

/// The stored upload queue: one job per file.
#[async_trait::async_trait]
pub trait UploadJobs: Send + Sync {
    /// Queues a file; `None` when a job for the same file already exists. A file with a
    /// pending post-processing job (`post_jobs`) is not due until that job releases it
    /// ([`super::PostJobs::release_post_wait`]); so for the chat-file variant below.
    async fn insert_upload_job(&self, job: &NewUploadJob) -> Result<Option<i64>>;

    async fn upload_job(&self, id: i64) -> Result<Option<UploadJob>>;

    /// Writes every mutable field of `job` (the core loads, changes and saves).
    async fn save_upload_job(&self, job: &UploadJob) -> Result<()>;

    /// Open jobs first (oldest first), then the `recent` most recently closed ones.
    async fn upload_jobs(&self, recent: i64) -> Result<Vec<UploadJob>>;

    /// The next job to work on at `now`: interrupted uploads first, then by due time and age.
    /// Paused, finished and failed jobs are never due.
    ///
    /// `node` (with several nodes): only jobs queued by that node or by no node.
    async fn next_due_upload(
        &self,
        now: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Option<UploadJob>>;

    /// When the earliest deferred job becomes due, or a finished one's files are to be checked.
    async fn next_upload_wakeup(&self, node: Option<&str>) -> Result<Option<DateTime<Utc>>>;

    /// A finished job whose files wait for YouTube's processing and whose check is due.
    async fn next_due_cleanup(
        &self,
        now: DateTime<Utc>,
        node: Option<&str>,
    ) -> Result<Option<UploadJob>>;

    /// The latest time until which a quota or upload-limit wait holds new uploads back.
    async fn upload_hold(&self, now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, WaitReason)>>;

    /// Jobs of `state` become queued again (paused ones after a new authorization); returns how
    /// many.
    async fn requeue_upload_jobs(&self, state: JobState) -> Result<u64>;

    /// Queues a file that waits for its chat file until `until` at the latest (state
    /// `deferred`, wait reason `chat_file`; `why` is shown by `uploads`); `None` when a job for
    /// the same file already exists. One statement, so the upload worker never sees the job as
    /// due before then.
    async fn insert_upload_job_waiting_for_chat(
        &self,
        job: &NewUploadJob,
        until: DateTime<Utc>,
        why: &str,
    ) -> Result<Option<i64>>;

    /// How many jobs are in each state (states without jobs left out), for `/metrics`.
    async fn upload_counts(&self) -> Result<Vec<(JobState, u64)>>;

    /// Every job still waiting for its chat file, oldest first.
    async fn upload_jobs_waiting_for_chat(&self) -> Result<Vec<UploadJob>>;

    /// Ends a job's wait for its chat file: queued now. `false` when it no longer waits (the
    /// wait ran out and the upload worker took it, or it was released already).
    async fn release_chat_wait(&self, id: i64) -> Result<bool>;

    /// A job still waiting for its chat file waits until `until` at the latest (asked again
    /// after a restart).
    async fn extend_chat_wait(&self, id: i64, until: DateTime<Utc>) -> Result<()>;
}

/// The local count of uploads per Pacific day (YouTube's quota resets at midnight Pacific).
#[async_trait::async_trait]
pub trait QuotaLedger: Send + Sync {
    /// Uploads counted on the Pacific day `day`.
    async fn quota_used(&self, day: NaiveDate) -> Result<u32>;

    /// Takes back one upload counted on `day` (never below zero): its request never reached
    /// YouTube's quota.
    async fn release_quota(&self, day: NaiveDate) -> Result<()>;

    /// Sets the count of `day` (at least what is stored: only a released reservation lowers
    /// it).
    async fn set_quota_used(&self, day: NaiveDate, used: u32) -> Result<()>;
}

/// The upload worker reads the queue straight from the database (a clone of the store; reads
/// only, the core stays the one writer), as one node sees it: with several nodes, the jobs
/// that node queued (the files it recorded) and jobs of no node.
#[derive(Debug, Clone)]
pub struct NodeQueue {
    pub store: Store,
    /// This node's id with several nodes; `None` on a single node (every job).
    pub node: Option<String>,
}

#[async_trait::async_trait]
impl crate::upload::JobSource for NodeQueue {
    async fn next_due_upload(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        UploadJobs::next_due_upload(&*self.store, now, self.node.as_deref()).await
    }

    async fn next_upload_wakeup(&self) -> Result<Option<DateTime<Utc>>> {
        UploadJobs::next_upload_wakeup(&*self.store, self.node.as_deref()).await
    }

    async fn next_due_cleanup(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        UploadJobs::next_due_cleanup(&*self.store, now, self.node.as_deref()).await
    }

    async fn upload_hold(&self, now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
        UploadJobs::upload_hold(&*self.store, now).await
    }
}
