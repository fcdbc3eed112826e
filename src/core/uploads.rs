//! Core glue for the upload queue: a finished recording part becomes a job (persisted, then
//! `UploadQueued`), the upload worker's job updates are persisted and then announced, `uploads`
//! / `retry` / `quota` answer from the queue and the ledger, and at start-up the worker resumes
//! whatever was left.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use chrono::Utc;
use recbot_commands::{Login, Service};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use super::reply::{QuotaReport, Refusal};
use super::store::{Cleanup, JobState, NewUploadJob, NodeQueue, UploadJob, WaitReason};
use super::{Core, Origin, Reply, Said};
use crate::config::{AfterUpload, Privacy};
use crate::event::{Event, EventKind};
use crate::upload::quota;
use crate::upload::worker::UploadWorker;
use crate::work::{CleanupOutcome, JobUpdate, Reservation};

/// Jobs finished or failed that `uploads` still shows.
const RECENT_JOBS: i64 = 10;

/// The core's side of the upload worker.
#[derive(Debug, Default)]
pub(super) struct UploadState {
    /// Wakes the worker when a job was queued, re-queued or resumed.
    wake: Arc<Notify>,
}

impl Core {
    /// A job was saved: `UploadQueued` follows, and the worker is woken (also for a job that
    /// waits: the worker's next wake-up includes the wait's end).
    pub(super) fn announce_queued(
        &mut self,
        login: &Login,
        session: Option<i64>,
        id: i64,
        file: &Path,
    ) {
        let kind = EventKind::UploadQueued {
            job: id,
            file: self.shown_path(file),
        };
        let mut queued = Event::now(Some(login.clone()), kind);
        queued.session = session;
        self.follow_up(queued);
        self.wake_uploads();
    }

    /// Start-up reconciliation: jobs interrupted mid-upload are picked up first by the worker
    /// (their session is resumed); paused jobs are tried again when a token is stored.
    pub(super) async fn resume_uploads(&mut self) -> Result<()> {
        let open = self
            .store
            .upload_jobs(0)
            .await?
            .iter()
            .filter(|j| j.state.is_open())
            .count();
        if !self.config.youtube.enabled {
            if open > 0 {
                warn!(
                    open,
                    "upload jobs are waiting but [youtube] enabled = false"
                );
            }
            return Ok(());
        }
        if self.store.token(Service::Youtube.as_str()).await?.is_some() {
            self.store.requeue_upload_jobs(JobState::Paused).await?;
        }
        let worker = UploadWorker::new(
            self.config.clone(),
            Arc::new(NodeQueue {
                store: self.store.clone(),
                node: self.node_id(),
            }),
            Arc::new(self.store.clone()),
            self.calls(),
            self.uploads.wake.clone(),
            self.shutdown.child_token(),
            self.metrics.clone(),
        )?;
        self.workers.spawn(worker.run());
        info!(open, "upload queue resumed");
        Ok(())
    }

    pub(super) fn wake_uploads(&self) {
        self.uploads.wake.notify_one();
    }

    /// Reaction: a finished part of a login with `upload=on` becomes a job, which waits for
    /// the part's chat file when `chat_file` (the chat logger is asked for it next and its
    /// answer releases the job; see `chat.rs`). Returns the new job.
    pub(super) async fn queue_upload(&mut self, event: &Event, chat_file: bool) -> Option<i64> {
        let EventKind::RecordingPartFinished {
            file,
            sidecar,
            bytes,
            ..
        } = &event.kind
        else {
            return None;
        };
        if !self.config.youtube.enabled {
            return None;
        }
        let login = event.login.as_ref()?;
        match self.store.watch(login).await {
            Ok(Some(watch)) if watch.upload => {}
            Ok(Some(_)) => return None,
            Ok(None) => {
                info!(%login, "not uploading a part of a login no longer watched");
                return None;
            }
            Err(e) => {
                error!(%login, error = %e, "cannot read the watch list; part not queued");
                return None;
            }
        }
        let job = NewUploadJob {
            login: Some(login.clone()),
            session: event.session,
            path: file.clone(),
            sidecar: Some(sidecar.clone()),
            total_bytes: *bytes,
            node: self.node_id(),
        };
        let inserted = if chat_file {
            let until = Utc::now() + super::chat::chat_save_timeout(&self.config);
            let why = super::chat::WAITING_FOR_CHAT;
            self.store
                .insert_upload_job_waiting_for_chat(&job, until, why)
                .await
        } else {
            self.store.insert_upload_job(&job).await
        };
        match inserted {
            Ok(Some(id)) => {
                self.announce_queued(login, event.session, id, file);
                Some(id)
            }
            Ok(None) => {
                debug!(file = %file.display(), "part already queued");
                None
            }
            Err(e) => {
                error!(file = %file.display(), error = %e, "cannot queue the upload");
                None
            }
        }
    }

    /// Applies a worker's update: persist, then announce.
    pub(super) async fn update_job(&mut self, update: JobUpdate) -> Result<()> {
        let id = job_of(&update);
        let mut job = self
            .store
            .upload_job(id)
            .await?
            .ok_or_else(|| anyhow!("upload job {id} does not exist"))?;
        let kind = match update {
            JobUpdate::Started { total, from, .. } => {
                if job.wait_reason == Some(WaitReason::ChatFile) {
                    job.wait_reason = None;
                    if let Some(event) = self.chat_wait_ran_out(&job) {
                        self.follow_up(event);
                    }
                }
                job.state = JobState::Uploading;
                job.total_bytes = total;
                Some(EventKind::UploadStarted {
                    job: id,
                    file: self.shown_path(&job.path),
                    bytes: total,
                    from_bytes: from,
                })
            }
            JobUpdate::Session { uri, total, .. } => {
                job.session_uri = uri;
                job.total_bytes = total;
                job.confirmed_bytes = 0;
                None
            }
            JobUpdate::Progress {
                confirmed,
                announce,
                ..
            } => {
                job.confirmed_bytes = confirmed;
                announce.map(|rate| EventKind::UploadProgress {
                    job: id,
                    sent_bytes: confirmed,
                    total_bytes: job.total_bytes,
                    bytes_per_sec: rate,
                })
            }
            JobUpdate::Deferred {
                until, reason, why, ..
            } => Some(self.job_deferred(&mut job, until, reason, why).await?),
            JobUpdate::Paused { why, .. } => {
                self.job_paused(&mut job, why).await?;
                None
            }
            JobUpdate::Finished { video_id, .. } => Some(self.job_finished(&mut job, video_id)),
            JobUpdate::Cleanup { outcome, .. } => self.job_cleanup(&mut job, outcome),
            JobUpdate::Failed { why, .. } => {
                job.state = JobState::Failed;
                job.next_attempt_at = None;
                job.wait_reason = None;
                job.last_error = Some(why.clone());
                Some(EventKind::UploadFailed {
                    job: id,
                    reason: why,
                })
            }
        };
        self.store.save_upload_job(&job).await?;
        if let Some(kind) = kind {
            self.publish(job_event(&job, kind)).await;
        }
        Ok(())
    }

    /// The job waits until `until`; a spent quota is written into the ledger too.
    async fn job_deferred(
        &mut self,
        job: &mut UploadJob,
        until: chrono::DateTime<Utc>,
        reason: WaitReason,
        why: String,
    ) -> Result<EventKind> {
        job.state = JobState::Deferred;
        job.next_attempt_at = Some(until);
        job.wait_reason = Some(reason);
        if reason == WaitReason::Retry {
            job.attempts += 1;
        }
        if reason == WaitReason::Quota {
            // YouTube says the day's quota is gone: the ledger agrees until the reset.
            let day = quota::pacific_day(Utc::now());
            let limit = self.config.youtube.daily_upload_limit;
            self.store.set_quota_used(day, limit).await?;
        }
        job.last_error = Some(why.clone());
        Ok(EventKind::UploadDeferred {
            job: job.id,
            reason: why,
            until,
        })
    }

    /// The job waits for a new authorization, and so does every queued job.
    async fn job_paused(&mut self, job: &mut UploadJob, why: String) -> Result<()> {
        job.state = JobState::Paused;
        job.last_error = Some(why);
        self.store.save_upload_job(job).await?;
        let others = self.store.upload_jobs(0).await?;
        for mut other in others.into_iter().filter(|j| j.state == JobState::Queued) {
            other.state = JobState::Paused;
            self.store.save_upload_job(&other).await?;
        }
        Ok(())
    }

    /// The video is on YouTube; with `after_upload = "delete"` the files' deletion is planned.
    fn job_finished(&self, job: &mut UploadJob, video_id: String) -> EventKind {
        job.state = JobState::Finished;
        job.session_uri = None;
        job.confirmed_bytes = job.total_bytes;
        job.next_attempt_at = None;
        job.wait_reason = None;
        job.last_error = None;
        job.video_id = Some(video_id.clone());
        if self.config.youtube.after_upload == AfterUpload::Delete {
            // The only copy goes once YouTube has processed the video; persisted with
            // the finish, so a restart goes on waiting.
            let now = Utc::now();
            let yt = &self.config.youtube;
            job.cleanup = Some(Cleanup::Waiting);
            job.cleanup_checks = 0;
            job.cleanup_at = Some(now + secs(yt.processing_check_secs));
            job.cleanup_until = Some(now + secs(yt.processing_timeout_hours * 3600.0));
        }
        EventKind::UploadFinished {
            job: job.id,
            url: video_url(&video_id),
            video_id,
        }
    }

    /// A step of the files' deletion after the upload.
    fn job_cleanup(&self, job: &mut UploadJob, outcome: CleanupOutcome) -> Option<EventKind> {
        match outcome {
            CleanupOutcome::Later { at, checks } => {
                job.cleanup_at = Some(at);
                job.cleanup_checks = checks;
                None
            }
            CleanupOutcome::Deleted => {
                job.cleanup = Some(Cleanup::Done);
                job.cleanup_at = None;
                None
            }
            CleanupOutcome::Kept { why } => {
                job.cleanup = Some(Cleanup::Kept);
                job.cleanup_at = None;
                job.last_error = Some(why.clone());
                Some(EventKind::UploadFilesKept {
                    job: job.id,
                    file: self.shown_path(&job.path),
                    reason: why,
                })
            }
        }
    }

    /// Counts one upload against today's Pacific-day ledger, or says when it resets.
    pub(super) async fn reserve_quota(&mut self) -> Result<Reservation> {
        let now = Utc::now();
        let day = quota::pacific_day(now);
        let used = self.store.quota_used(day).await?;
        if used >= self.config.youtube.daily_upload_limit {
            return Ok(Reservation::Full(quota::next_reset(now)));
        }
        self.store.set_quota_used(day, used + 1).await?;
        Ok(Reservation::Counted(day))
    }

    /// `uploads`. Anyone in the room may read it; links to videos that are not public
    /// (`[youtube] privacy` private or unlisted) are for operators.
    pub(super) async fn uploads_list(&self, operator: bool) -> Result<Reply> {
        Ok(Reply::ok(Said::Uploads {
            jobs: self.store.upload_jobs(RECENT_JOBS).await?,
            links: operator || self.config.youtube.privacy == Privacy::Public,
            enabled: self.config.youtube.enabled,
        }))
    }

    /// `retry <id>`: a failed job (or one waiting after errors) goes back into the queue.
    pub(super) async fn retry(&mut self, id: u64, origin: &Origin) -> Result<Reply> {
        let Some(mut job) = self.store.upload_job(id as i64).await? else {
            return Ok(Reply::refused(Refusal::NoSuchUpload(id)));
        };
        match (job.state, job.wait_reason) {
            (JobState::Failed, _) | (JobState::Deferred, Some(WaitReason::Retry)) => {}
            (JobState::Finished, _) => {
                return Ok(Reply::refused(Refusal::AlreadyUploaded {
                    id,
                    url: video_url(job.video_id.as_deref().unwrap_or_default()),
                }))
            }
            (JobState::Deferred, Some(WaitReason::ChatFile)) => {
                return Ok(Reply::refused(Refusal::UploadWaitsForChatFile {
                    id,
                    until: job.next_attempt_at,
                }))
            }
            (JobState::Deferred, _) => {
                return Ok(Reply::refused(Refusal::UploadWaits {
                    id,
                    until: job.next_attempt_at,
                }))
            }
            (JobState::Paused, _) => return Ok(Reply::refused(Refusal::UploadPaused(id))),
            (JobState::Queued | JobState::Uploading, _) => {
                return Ok(Reply::refused(Refusal::UploadBusy {
                    id,
                    state: job.state,
                }))
            }
        }
        if !tokio::fs::try_exists(&job.path).await.unwrap_or(false) {
            return Ok(Reply::refused(Refusal::UploadFileGone {
                id,
                path: job.path,
            }));
        }
        job.state = JobState::Queued;
        job.attempts = 0;
        job.next_attempt_at = None;
        job.wait_reason = None;
        job.last_error = None;
        self.store.save_upload_job(&job).await?;
        info!(job = id, by = %origin.user, "upload re-queued");
        let kind = EventKind::UploadQueued {
            job: job.id,
            file: self.shown_path(&job.path),
        };
        self.publish(job_event(&job, kind)).await;
        self.wake_uploads();
        Ok(Reply::ok(Said::Requeued {
            id,
            enabled: self.config.youtube.enabled,
        }))
    }

    /// `quota`
    pub(super) async fn quota(&self) -> Result<Reply> {
        let now = Utc::now();
        let day = quota::pacific_day(now);
        let used = self.store.quota_used(day).await?;
        let limit = self.config.youtube.daily_upload_limit;
        let held_until = match self.store.upload_hold(now).await? {
            Some((until, WaitReason::UploadLimit)) => Some(until),
            _ => None,
        };
        Ok(Reply::ok(Said::Quota(QuotaReport {
            day,
            used,
            left: quota::left(used, limit),
            limit,
            next_reset: quota::next_reset(now),
            held_until,
            enabled: self.config.youtube.enabled,
        })))
    }

    /// A file as shown in chat: relative to the recordings folder when inside it.
    pub(super) fn shown_path(&self, file: &Path) -> String {
        let recordings = self.config.storage.recordings_dir();
        file.strip_prefix(&recordings)
            .unwrap_or(file)
            .display()
            .to_string()
    }
}

/// The job an update is about.
fn job_of(update: &JobUpdate) -> i64 {
    match update {
        JobUpdate::Started { job, .. }
        | JobUpdate::Session { job, .. }
        | JobUpdate::Progress { job, .. }
        | JobUpdate::Deferred { job, .. }
        | JobUpdate::Paused { job, .. }
        | JobUpdate::Finished { job, .. }
        | JobUpdate::Failed { job, .. }
        | JobUpdate::Cleanup { job, .. } => *job,
    }
}

/// An event about a job, with its login and broadcast.
fn job_event(job: &UploadJob, kind: EventKind) -> Event {
    let mut event = Event::now(job.login.clone(), kind);
    event.session = job.session;
    event
}

/// A non-negative, finite number of seconds as a duration (config values are validated).
fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s.max(0.0) * 1000.0).min(1e12) as i64)
}

/// A YouTube video's address.
pub fn video_url(video_id: &str) -> String {
    format!("https://youtu.be/{video_id}")
}
