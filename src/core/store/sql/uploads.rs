//! The SQL of the upload queue and the quota ledger (`upload_jobs`, `upload_quota`), written once
//! for both engines: [`uploads_sql!`] expands the `UploadJobs` and `QuotaLedger` implementation
//! for one engine's backend type.

/// Expands `mod uploads` in an engine's module (`sqlite/mod.rs`, `postgres/mod.rs`): the
/// `UploadJobs` and `QuotaLedger` implementation for `$backend` (a type of that module), whose rows are `$db`'s.
macro_rules! uploads_sql {
    ($backend:ident, $db:ty, greatest = $greatest:literal) => {
        mod uploads {
            use std::path::PathBuf;

            use anyhow::{anyhow, Result};
            use chrono::{DateTime, NaiveDate, Utc};
            use recbot_commands::Login;
            use sqlx::Row;

            use super::$backend as Engine;
            use crate::core::store::storable_text;
            use crate::core::store::{
                Cleanup, JobState, NewUploadJob, QuotaLedger, UploadJob, UploadJobs, WaitReason,
            };

            /// A result row of this engine.
            type DbRow = <$db as sqlx::Database>::Row;

            #[async_trait::async_trait]
            impl UploadJobs for Engine {
                async fn insert_upload_job(&self, job: &NewUploadJob) -> Result<Option<i64>> {
                    self.insert_job(job, None).await
                }

                async fn upload_job(&self, id: i64) -> Result<Option<UploadJob>> {
                    let row = sqlx::query("SELECT * FROM upload_jobs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(job_from_row).transpose()
                }

                async fn save_upload_job(&self, job: &UploadJob) -> Result<()> {
                    sqlx::query(
                        "UPDATE upload_jobs SET state = $1, session_uri = $2, confirmed_bytes = $3,
                           total_bytes = $4, attempts = $5, next_attempt_at = $6, wait_reason = $7, video_id = $8,
                           last_error = $9, updated_at = $10, cleanup = $11, cleanup_at = $12, cleanup_until = $13,
                           cleanup_checks = $14
                         WHERE id = $15",
                    )
                    .bind(job.state.as_str())
                    .bind(&job.session_uri)
                    .bind(job.confirmed_bytes as i64)
                    .bind(job.total_bytes as i64)
                    .bind(job.attempts as i64)
                    .bind(job.next_attempt_at)
                    .bind(job.wait_reason.map(WaitReason::as_str))
                    .bind(&job.video_id)
                    .bind(job.last_error.as_deref().map(storable_text))
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

                async fn upload_jobs(&self, recent: i64) -> Result<Vec<UploadJob>> {
                    let rows = sqlx::query(
                        "SELECT * FROM (
                           SELECT * FROM upload_jobs WHERE state NOT IN ('finished', 'failed')
                         UNION ALL
                           SELECT * FROM (SELECT * FROM upload_jobs WHERE state IN ('finished', 'failed')
                                          ORDER BY updated_at DESC, id DESC LIMIT $1) AS recent_done
                         ) AS listed
                         ORDER BY state IN ('finished', 'failed'), id",
                    )
                    .bind(recent)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(job_from_row).collect()
                }

                async fn next_due_upload(
                    &self,
                    now: DateTime<Utc>,
                    node: Option<&str>,
                ) -> Result<Option<UploadJob>> {
                    let row = sqlx::query(
                        "SELECT * FROM upload_jobs
                         WHERE state IN ('uploading', 'queued', 'deferred')
                           AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                           AND post_job IS NULL
                           AND (node IS NULL OR node = $2 OR $3)
                         ORDER BY state = 'uploading' DESC, next_attempt_at IS NOT NULL, next_attempt_at, id
                         LIMIT 1",
                    )
                    .bind(now)
                    .bind(node.unwrap_or(""))
                    .bind(node.is_none())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(job_from_row).transpose()
                }

                async fn next_upload_wakeup(
                    &self,
                    node: Option<&str>,
                ) -> Result<Option<DateTime<Utc>>> {
                    let at: Option<DateTime<Utc>> = sqlx::query_scalar(
                        "SELECT MIN(next_attempt_at) FROM upload_jobs
                         WHERE state IN ('queued', 'deferred') AND next_attempt_at IS NOT NULL
                           AND (node IS NULL OR node = $1 OR $2)",
                    )
                    .bind(node.unwrap_or(""))
                    .bind(node.is_none())
                    .fetch_one(&self.pool)
                    .await?;
                    let cleanup: Option<DateTime<Utc>> = sqlx::query_scalar(
                        "SELECT MIN(cleanup_at) FROM upload_jobs
                         WHERE cleanup = 'waiting' AND cleanup_at IS NOT NULL
                           AND (node IS NULL OR node = $1 OR $2)",
                    )
                    .bind(node.unwrap_or(""))
                    .bind(node.is_none())
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(match (at, cleanup) {
                        (Some(a), Some(c)) => Some(a.min(c)),
                        (a, c) => a.or(c),
                    })
                }

                async fn next_due_cleanup(
                    &self,
                    now: DateTime<Utc>,
                    node: Option<&str>,
                ) -> Result<Option<UploadJob>> {
                    let row = sqlx::query(
                        "SELECT * FROM upload_jobs
                         WHERE state = 'finished' AND cleanup = 'waiting'
                           AND (cleanup_at IS NULL OR cleanup_at <= $1)
                           AND (node IS NULL OR node = $2 OR $3)
                         ORDER BY cleanup_at NULLS FIRST, id LIMIT 1",
                    )
                    .bind(now)
                    .bind(node.unwrap_or(""))
                    .bind(node.is_none())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(job_from_row).transpose()
                }

                async fn upload_hold(&self, now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
                    let row = sqlx::query(
                        "SELECT next_attempt_at, wait_reason FROM upload_jobs
                         WHERE state = 'deferred' AND wait_reason IN ('quota', 'upload_limit')
                           AND next_attempt_at > $1
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

                async fn requeue_upload_jobs(&self, state: JobState) -> Result<u64> {
                    let done = sqlx::query(
                        "UPDATE upload_jobs SET state = 'queued', next_attempt_at = NULL, wait_reason = NULL,
                           updated_at = $1 WHERE state = $2",
                    )
                    .bind(Utc::now())
                    .bind(state.as_str())
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn insert_upload_job_waiting_for_chat(
                    &self,
                    job: &NewUploadJob,
                    until: DateTime<Utc>,
                    why: &str,
                ) -> Result<Option<i64>> {
                    self.insert_job(job, Some((until, why))).await
                }

                async fn upload_counts(&self) -> Result<Vec<(JobState, u64)>> {
                    let rows: Vec<(String, i64)> =
                        sqlx::query_as("SELECT state, COUNT(*) FROM upload_jobs GROUP BY state")
                            .fetch_all(&self.pool)
                            .await?;
                    rows.into_iter()
                        .map(|(state, n)| Ok((JobState::parse(&state)?, n.max(0) as u64)))
                        .collect()
                }

                async fn upload_jobs_waiting_for_chat(&self) -> Result<Vec<UploadJob>> {
                    let rows = sqlx::query(
                        "SELECT * FROM upload_jobs WHERE state = 'deferred' AND wait_reason = 'chat_file'
                         ORDER BY id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(job_from_row).collect()
                }

                async fn release_chat_wait(&self, id: i64) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE upload_jobs SET state = 'queued', next_attempt_at = NULL, wait_reason = NULL,
                           last_error = NULL, updated_at = $1
                         WHERE id = $2 AND state = 'deferred' AND wait_reason = 'chat_file'",
                    )
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn extend_chat_wait(&self, id: i64, until: DateTime<Utc>) -> Result<()> {
                    sqlx::query(
                        "UPDATE upload_jobs SET next_attempt_at = $1, updated_at = $2
                         WHERE id = $3 AND state = 'deferred' AND wait_reason = 'chat_file'",
                    )
                    .bind(until)
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }

            #[async_trait::async_trait]
            impl QuotaLedger for Engine {
                async fn quota_used(&self, day: NaiveDate) -> Result<u32> {
                    let used: Option<i64> = sqlx::query_scalar("SELECT used FROM upload_quota WHERE day = $1")
                        .bind(day.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(used.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
                }

                async fn release_quota(&self, day: NaiveDate) -> Result<()> {
                    sqlx::query(
                        concat!(
                            "UPDATE upload_quota SET used = ",
                            $greatest,
                            "(used - 1, 0), updated_at = $1 WHERE day = $2"
                        ),
                    )
                    .bind(Utc::now())
                    .bind(day.to_string())
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn set_quota_used(&self, day: NaiveDate, used: u32) -> Result<()> {
                    sqlx::query(
                        concat!(
                            "INSERT INTO upload_quota (day, used, updated_at) VALUES ($1, $2, $3)
                             ON CONFLICT (day) DO UPDATE SET used = ",
                            $greatest,
                            "(upload_quota.used, excluded.used), updated_at = excluded.updated_at"
                        ),
                    )
                    .bind(day.to_string())
                    .bind(used as i64)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }

            impl Engine {
                /// One new job: queued, or deferred until `wait`'s time with wait reason `chat_file` and
                /// its text. `None` when a job for the same file already exists.
                async fn insert_job(
                    &self,
                    job: &NewUploadJob,
                    wait: Option<(DateTime<Utc>, &str)>,
                ) -> Result<Option<i64>> {
                    let now = Utc::now();
                    let (state, reason) = match wait {
                        Some(_) => (JobState::Deferred, Some(WaitReason::ChatFile)),
                        None => (JobState::Queued, None),
                    };
                    let id = sqlx::query_scalar(
                        "INSERT INTO upload_jobs (name, session_id, path, sidecar, state, total_bytes,
                           next_attempt_at, wait_reason, last_error, created_at, updated_at, post_job,
                           node)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                           (SELECT id FROM post_jobs WHERE video = $12 AND state = 'pending'), $13)
                         ON CONFLICT (path) DO NOTHING
                         RETURNING id",
                    )
                    .bind(job.login.as_ref().map(Login::as_str))
                    .bind(job.session)
                    .bind(job.path.to_string_lossy().as_ref())
                    .bind(
                        job.sidecar
                            .as_ref()
                            .map(|p| p.to_string_lossy().into_owned()),
                    )
                    .bind(state.as_str())
                    .bind(job.total_bytes as i64)
                    .bind(wait.map(|(until, _)| until))
                    .bind(reason.map(WaitReason::as_str))
                    .bind(wait.map(|(_, why)| storable_text(why)))
                    .bind(now)
                    .bind(now)
                    .bind(job.path.to_string_lossy().as_ref())
                    .bind(job.node.as_deref())
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(id)
                }
            }

            fn job_from_row(row: &DbRow) -> Result<UploadJob> {
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
        }
    };
}
pub(in crate::core::store) use uploads_sql;
