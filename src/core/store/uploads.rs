//! The upload queue (`upload_jobs`) and the local YouTube quota ledger (`upload_quota`). The
//! core writes both; the upload worker reads jobs through the core's [`crate::upload::JobSource`]
//! (implemented on a clone of the store). The row types live in `crate::work`.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveDate, Utc};
use recbot_commands::Login;
use sqlx::Row;

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
}

impl Store {
    /// Queues a file; `None` when a job for the same file already exists.
    pub async fn insert_upload_job(&self, job: &NewUploadJob) -> Result<Option<i64>> {
        let now = Utc::now();
        let done = sqlx::query(
            "INSERT INTO upload_jobs (name, session_id, path, sidecar, state, total_bytes,
               created_at, updated_at)
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(job.login.as_ref().map(Login::as_str))
        .bind(job.session)
        .bind(job.path.to_string_lossy().as_ref())
        .bind(
            job.sidecar
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        )
        .bind(job.total_bytes as i64)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() > 0).then(|| done.last_insert_rowid()))
    }

    pub async fn upload_job(&self, id: i64) -> Result<Option<UploadJob>> {
        let row = sqlx::query("SELECT * FROM upload_jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Writes every mutable field of `job` (the core loads, changes and saves).
    pub async fn save_upload_job(&self, job: &UploadJob) -> Result<()> {
        sqlx::query(
            "UPDATE upload_jobs SET state = ?, session_uri = ?, confirmed_bytes = ?,
               total_bytes = ?, attempts = ?, next_attempt_at = ?, wait_reason = ?, video_id = ?,
               last_error = ?, updated_at = ?, cleanup = ?, cleanup_at = ?, cleanup_until = ?,
               cleanup_checks = ?
             WHERE id = ?",
        )
        .bind(job.state.as_str())
        .bind(&job.session_uri)
        .bind(job.confirmed_bytes as i64)
        .bind(job.total_bytes as i64)
        .bind(job.attempts as i64)
        .bind(job.next_attempt_at)
        .bind(job.wait_reason.map(WaitReason::as_str))
        .bind(&job.video_id)
        .bind(&job.last_error)
        .bind(Utc::now())
        .bind(job.cleanup.map(Cleanup::as_str))
        .bind(job.cleanup_at)
        .bind(job.cleanup_until)
        .bind(job.cleanup_checks as i64)
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Open jobs first (oldest first), then the `recent` most recently closed ones.
    pub async fn upload_jobs(&self, recent: i64) -> Result<Vec<UploadJob>> {
        let rows = sqlx::query(
            "SELECT * FROM (
               SELECT * FROM upload_jobs WHERE state NOT IN ('finished', 'failed')
             UNION ALL
               SELECT * FROM (SELECT * FROM upload_jobs WHERE state IN ('finished', 'failed')
                              ORDER BY updated_at DESC, id DESC LIMIT ?))
             ORDER BY state IN ('finished', 'failed'), id",
        )
        .bind(recent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The next job to work on at `now`: interrupted uploads first, then by due time and age.
    /// Paused, finished and failed jobs are never due.
    pub async fn next_due_upload(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        let row = sqlx::query(
            "SELECT * FROM upload_jobs
             WHERE state IN ('uploading', 'queued', 'deferred')
               AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
             ORDER BY state = 'uploading' DESC, next_attempt_at IS NOT NULL, next_attempt_at, id
             LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// When the earliest deferred job becomes due, or a finished one's files are to be checked.
    pub async fn next_upload_wakeup(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM upload_jobs
             WHERE state IN ('queued', 'deferred') AND next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let cleanup: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT MIN(cleanup_at) FROM upload_jobs
             WHERE cleanup = 'waiting' AND cleanup_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(match (at, cleanup) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        })
    }

    /// A finished job whose files wait for YouTube's processing and whose check is due.
    pub async fn next_due_cleanup(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        let row = sqlx::query(
            "SELECT * FROM upload_jobs
             WHERE state = 'finished' AND cleanup = 'waiting'
               AND (cleanup_at IS NULL OR cleanup_at <= ?)
             ORDER BY cleanup_at, id LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The latest time until which a quota or upload-limit wait holds new uploads back.
    pub async fn upload_hold(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
        let row = sqlx::query(
            "SELECT next_attempt_at, wait_reason FROM upload_jobs
             WHERE state = 'deferred' AND wait_reason IN ('quota', 'upload_limit')
               AND next_attempt_at > ?
             ORDER BY next_attempt_at DESC LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let until: DateTime<Utc> = row.try_get("next_attempt_at")?;
        let reason: Option<String> = row.try_get("wait_reason")?;
        Ok(reason
            .as_deref()
            .and_then(WaitReason::parse)
            .map(|r| (until, r)))
    }

    /// Jobs of `state` become queued again (paused ones after a new authorization); returns how
    /// many.
    pub async fn requeue_upload_jobs(&self, state: JobState) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE upload_jobs SET state = 'queued', next_attempt_at = NULL, wait_reason = NULL,
               updated_at = ? WHERE state = ?",
        )
        .bind(Utc::now())
        .bind(state.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Uploads counted on the Pacific day `day`.
    pub async fn quota_used(&self, day: NaiveDate) -> Result<u32> {
        let used: Option<i64> = sqlx::query_scalar("SELECT used FROM upload_quota WHERE day = ?")
            .bind(day.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(used.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
    }

    /// Takes back one upload counted on `day` (never below zero): its request never reached
    /// YouTube's quota.
    pub async fn release_quota(&self, day: NaiveDate) -> Result<()> {
        sqlx::query(
            "UPDATE upload_quota SET used = MAX(used - 1, 0), updated_at = ? WHERE day = ?",
        )
        .bind(Utc::now())
        .bind(day.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the count of `day` (at least what is stored: only a released reservation lowers
    /// it).
    pub async fn set_quota_used(&self, day: NaiveDate, used: u32) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_quota (day, used, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (day) DO UPDATE SET used = MAX(used, excluded.used),
               updated_at = excluded.updated_at",
        )
        .bind(day.to_string())
        .bind(used as i64)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

pub(super) fn job_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UploadJob> {
    let name: Option<String> = row.try_get("name")?;
    let state: String = row.try_get("state")?;
    let path: String = row.try_get("path")?;
    let sidecar: Option<String> = row.try_get("sidecar")?;
    let wait: Option<String> = row.try_get("wait_reason")?;
    let cleanup: Option<String> = row.try_get("cleanup")?;
    let count = |column: &str| -> Result<u64> {
        let v: i64 = row.try_get(column)?;
        Ok(v.max(0) as u64)
    };
    Ok(UploadJob {
        id: row.try_get("id")?,
        login: name
            .map(|n| Login::from_stored(&n).map_err(|e| anyhow!(e)))
            .transpose()?,
        session: row.try_get("session_id")?,
        path: PathBuf::from(path),
        sidecar: sidecar.map(PathBuf::from),
        state: JobState::parse(&state)?,
        session_uri: row.try_get("session_uri")?,
        confirmed_bytes: count("confirmed_bytes")?,
        total_bytes: count("total_bytes")?,
        attempts: count("attempts")?.min(u32::MAX as u64) as u32,
        next_attempt_at: row.try_get("next_attempt_at")?,
        wait_reason: wait.as_deref().and_then(WaitReason::parse),
        video_id: row.try_get("video_id")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        cleanup: cleanup.as_deref().and_then(Cleanup::parse),
        cleanup_at: row.try_get("cleanup_at")?,
        cleanup_until: row.try_get("cleanup_until")?,
        cleanup_checks: count("cleanup_checks")?.min(u32::MAX as u64) as u32,
    })
}

/// The upload worker reads the queue straight from the database (a clone of the store; reads
/// only, the core stays the one writer).
#[async_trait::async_trait]
impl crate::upload::JobSource for Store {
    async fn next_due_upload(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        Store::next_due_upload(self, now).await
    }

    async fn next_upload_wakeup(&self) -> Result<Option<DateTime<Utc>>> {
        Store::next_upload_wakeup(self).await
    }

    async fn next_due_cleanup(&self, now: DateTime<Utc>) -> Result<Option<UploadJob>> {
        Store::next_due_cleanup(self, now).await
    }

    async fn upload_hold(&self, now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
        Store::upload_hold(self, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn new_job(path: &str) -> NewUploadJob {
        NewUploadJob {
            login: Some(Login::parse("foo").unwrap()),
            session: Some(3),
            path: PathBuf::from(path),
            sidecar: Some(PathBuf::from(path).with_extension("json")),
            total_bytes: 1000,
        }
    }

    #[tokio::test]
    async fn jobs_are_queued_once_and_picked_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let a = store
            .insert_upload_job(&new_job("/r/a.ts"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.insert_upload_job(&new_job("/r/a.ts")).await.unwrap(),
            None
        );
        let b = store
            .insert_upload_job(&new_job("/r/b.ts"))
            .await
            .unwrap()
            .unwrap();
        let now = Utc::now();
        assert_eq!(store.next_due_upload(now).await.unwrap().unwrap().id, a);

        // A deferred job is not due before its time; an interrupted upload goes first.
        let mut job_a = store.upload_job(a).await.unwrap().unwrap();
        job_a.state = JobState::Deferred;
        job_a.wait_reason = Some(WaitReason::Quota);
        job_a.next_attempt_at = Some(now + Duration::hours(1));
        store.save_upload_job(&job_a).await.unwrap();
        assert_eq!(store.next_due_upload(now).await.unwrap().unwrap().id, b);
        assert_eq!(
            store.upload_hold(now).await.unwrap(),
            Some((job_a.next_attempt_at.unwrap(), WaitReason::Quota))
        );
        assert_eq!(
            store.next_upload_wakeup().await.unwrap(),
            job_a.next_attempt_at
        );
        let later = now + Duration::hours(2);
        assert_eq!(store.next_due_upload(later).await.unwrap().unwrap().id, b);

        let mut job_b = store.upload_job(b).await.unwrap().unwrap();
        job_b.state = JobState::Paused;
        store.save_upload_job(&job_b).await.unwrap();
        assert_eq!(store.next_due_upload(now).await.unwrap(), None);
        assert_eq!(
            store.requeue_upload_jobs(JobState::Paused).await.unwrap(),
            1
        );
        let back = store.upload_job(b).await.unwrap().unwrap();
        assert_eq!(back.state, JobState::Queued);
        assert_eq!(back.login.unwrap().as_str(), "foo");
        assert_eq!(back.session, Some(3));

        job_b.state = JobState::Finished;
        job_b.video_id = Some("vid".into());
        store.save_upload_job(&job_b).await.unwrap();
        let listed = store.upload_jobs(10).await.unwrap();
        assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(listed[1].video_id.as_deref(), Some("vid"));
    }

    #[tokio::test]
    async fn the_quota_ledger_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(store.quota_used(day).await.unwrap(), 0);
        store.set_quota_used(day, 2).await.unwrap();
        store.set_quota_used(day, 1).await.unwrap();
        assert_eq!(store.quota_used(day).await.unwrap(), 2);
        store.release_quota(day).await.unwrap();
        assert_eq!(store.quota_used(day).await.unwrap(), 1);
        store.release_quota(day).await.unwrap();
        store.release_quota(day).await.unwrap();
        assert_eq!(store.quota_used(day).await.unwrap(), 0);
        assert_eq!(store.quota_used(day.succ_opt().unwrap()).await.unwrap(), 0);
    }
}
