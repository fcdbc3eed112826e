//! Upload jobs waiting for their part's chat file (state `deferred`, wait reason `chat_file`,
//! `next_attempt_at` the end of the wait): the core inserts a finished part's job in this
//! state when the part's chat file is being written, and releases it when the chat logger
//! answers. Kept apart from `uploads.rs`: the only SQL of the chat-file wait.

use anyhow::Result;
use chrono::{DateTime, Utc};
use recbot_commands::Login;

use super::uploads::{job_from_row, NewUploadJob};
use super::Store;
use crate::work::UploadJob;

impl Store {
    /// Queues a file that waits for its chat file until `until` at the latest (`why` is shown
    /// by `uploads`); `None` when a job for the same file already exists. One statement, so the
    /// upload worker never sees the job as due before then.
    pub async fn insert_upload_job_waiting_for_chat(
        &self,
        job: &NewUploadJob,
        until: DateTime<Utc>,
        why: &str,
    ) -> Result<Option<i64>> {
        let now = Utc::now();
        let done = sqlx::query(
            "INSERT INTO upload_jobs (name, session_id, path, sidecar, state, total_bytes,
               next_attempt_at, wait_reason, last_error, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'deferred', ?, ?, 'chat_file', ?, ?, ?)
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
        .bind(until)
        .bind(why)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() > 0).then(|| done.last_insert_rowid()))
    }

    /// Every job still waiting for its chat file, oldest first.
    pub async fn upload_jobs_waiting_for_chat(&self) -> Result<Vec<UploadJob>> {
        let rows = sqlx::query(
            "SELECT * FROM upload_jobs WHERE state = 'deferred' AND wait_reason = 'chat_file'
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Ends a job's wait for its chat file: queued now. `false` when it no longer waits (the
    /// wait ran out and the upload worker took it, or it was released already).
    pub async fn release_chat_wait(&self, id: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE upload_jobs SET state = 'queued', next_attempt_at = NULL, wait_reason = NULL,
               last_error = NULL, updated_at = ?
             WHERE id = ? AND state = 'deferred' AND wait_reason = 'chat_file'",
        )
        .bind(Utc::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A job still waiting for its chat file waits until `until` at the latest (asked again
    /// after a restart).
    pub async fn extend_chat_wait(&self, id: i64, until: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE upload_jobs SET next_attempt_at = ?, updated_at = ?
             WHERE id = ? AND state = 'deferred' AND wait_reason = 'chat_file'",
        )
        .bind(until)
        .bind(Utc::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::work::{JobState, WaitReason};

    /// A job waiting for its chat file is never due before its wait ends (then the upload
    /// worker takes it without the chat file), is due at once when released, and holds back
    /// no other upload.
    #[tokio::test]
    async fn a_job_waiting_for_its_chat_file_is_due_only_when_released_or_its_wait_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("recbot.sqlite"))
            .await
            .unwrap();
        let job = |name: &str| NewUploadJob {
            login: Some(Login::parse("foo").unwrap()),
            session: Some(1),
            path: PathBuf::from(format!("/r/foo/{name}.ts")),
            sidecar: Some(PathBuf::from(format!("/r/foo/{name}.json"))),
            total_bytes: 10,
        };
        let now = Utc::now();
        let until = now + chrono::Duration::seconds(300);
        let a = store
            .insert_upload_job_waiting_for_chat(&job("a"), until, "waiting for its chat file")
            .await
            .unwrap()
            .unwrap();
        let again = store
            .insert_upload_job_waiting_for_chat(&job("a"), until, "x")
            .await
            .unwrap();
        assert_eq!(again, None, "one job per file");
        let row = store.upload_job(a).await.unwrap().unwrap();
        assert_eq!(row.state, JobState::Deferred);
        assert_eq!(row.wait_reason, Some(WaitReason::ChatFile));
        assert_eq!(row.last_error.as_deref(), Some("waiting for its chat file"));
        assert_eq!(store.next_due_upload(now).await.unwrap(), None);
        assert_eq!(store.upload_hold(now).await.unwrap(), None);
        assert_eq!(store.next_upload_wakeup().await.unwrap(), Some(until));
        // The wait ends: due without the chat file.
        let due = store.next_due_upload(until).await.unwrap().unwrap();
        assert_eq!(due.id, a);
        let waiting = store.upload_jobs_waiting_for_chat().await.unwrap();
        assert_eq!(waiting.iter().map(|j| j.id).collect::<Vec<_>>(), [a]);

        // Released by the chat logger's answer: queued, due now, released once.
        let b = store
            .insert_upload_job_waiting_for_chat(&job("b"), until, "w")
            .await
            .unwrap()
            .unwrap();
        assert!(store.release_chat_wait(b).await.unwrap());
        assert!(!store.release_chat_wait(b).await.unwrap());
        let row = store.upload_job(b).await.unwrap().unwrap();
        assert_eq!(
            (
                row.state,
                row.wait_reason,
                row.next_attempt_at,
                row.last_error
            ),
            (JobState::Queued, None, None, None)
        );
        assert_eq!(store.next_due_upload(now).await.unwrap().unwrap().id, b);

        // Asked again after a restart: the wait moves.
        let later = until + chrono::Duration::seconds(60);
        store.extend_chat_wait(a, later).await.unwrap();
        assert_eq!(
            store.upload_job(a).await.unwrap().unwrap().next_attempt_at,
            Some(later)
        );
        store.close().await;
    }
}
