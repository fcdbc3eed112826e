//! [`JobSource`]: what the upload worker reads of the upload queue and the quota ledger. The
//! worker defines it and the core implements it (on its store), so the worker never knows the
//! core's database; every change the worker makes still goes through `Calls`.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::work::{UploadJob, WaitReason};

/// Reads of the queue the upload worker makes between jobs. Reads only: the core is the one
/// writer.
#[async_trait::async_trait]
pub trait JobSource: Send + Sync + std::fmt::Debug {
    /// The next job to work on at `now`: interrupted uploads first, then by due time and age.
    async fn next_due_upload(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>>;

    /// When the earliest deferred job becomes due, or a finished one's files are to be checked.
    async fn next_upload_wakeup(&self) -> Result<Option<DateTime<Utc>>>;

    /// The next finished job whose files wait for YouTube's processing and are due a check.
    async fn next_due_cleanup(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>>;

    /// A hold on every new upload (quota used up, channel upload limit) still in force at
    /// `now`: until when, and why.
    async fn upload_hold(&self, now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, WaitReason)>>;
}
