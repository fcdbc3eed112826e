//! `after_upload = "delete"`: a finished job's files wait (persisted, so across restarts)
//! until YouTube reports the video processed. Between uploads the worker asks `videos.list`
//! for every due one, with a doubling wait, deletes the files once it is processed, and keeps
//! them (announced) when YouTube rejected it or never finished within the configured time.

use std::time::Duration;

use chrono::Utc;
use tracing::{debug, info, warn};

use super::{TokenError, Turn, UploadWorker};
use crate::archive::after::Plan;
use crate::upload::processing::{CheckError, Processing};
use crate::work::{CleanupOutcome, JobUpdate, UploadJob};

/// Longest wait between two checks of a video's processing.
const PROCESSING_CHECK_MAX: Duration = Duration::from_secs(3600);

impl UploadWorker {
    /// One due check of a finished video whose files wait for YouTube's processing: delete
    /// them once processed, keep them (announced) when YouTube refused the video or the wait
    /// ran out, else ask again later (the wait doubles, with jitter, up to an hour).
    pub(super) async fn cleanup(&self, job: UploadJob) -> anyhow::Result<Turn> {
        let yt = &self.config.youtube;
        let checked = match &job.video_id {
            Some(video_id) => match self.cancellable(self.processing_of(video_id)).await {
                None => return Ok(Turn::Cancelled),
                Some(checked) => checked,
            },
            None => Ok(Processing::Refused("YouTube gave no video id".into())),
        };
        let now = Utc::now();
        let outcome = match checked {
            Ok(Processing::Processed) => {
                match Plan::from_config(&self.config) {
                    Some(plan) if plan.deletes() => {
                        plan.apply(&job.path, job.sidecar.as_deref()).await;
                        info!(
                            job = job.id,
                            "YouTube processed the video; its files are deleted"
                        );
                    }
                    // after_upload changed since the upload: do what it says now.
                    Some(plan) => plan.apply(&job.path, job.sidecar.as_deref()).await,
                    None => {}
                }
                CleanupOutcome::Deleted
            }
            Ok(Processing::Refused(why)) => {
                warn!(job = job.id, why = %why, "YouTube refused the video; its files are kept");
                CleanupOutcome::Kept { why }
            }
            Ok(Processing::Pending(state)) | Err(state) => {
                if job.cleanup_until.is_some_and(|until| now >= until) {
                    let why = format!(
                        "YouTube had not finished processing the video after {} h ({state})",
                        yt.processing_timeout_hours
                    );
                    warn!(job = job.id, why = %why, "files kept");
                    CleanupOutcome::Kept { why }
                } else {
                    let checks = job.cleanup_checks.saturating_add(1);
                    let wait = crate::backoff::exponential(
                        checks,
                        Duration::from_secs_f64(yt.processing_check_secs),
                        PROCESSING_CHECK_MAX,
                    );
                    debug!(job = job.id, state = %state, ?wait, "video not processed yet");
                    let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    CleanupOutcome::Later { at, checks }
                }
            }
        };
        self.calls
            .job(JobUpdate::Cleanup {
                job: job.id,
                outcome,
            })
            .await?;
        Ok(Turn::Done)
    }

    /// Where YouTube is with `video_id`; `Err` says why it could not be asked (try later).
    async fn processing_of(&self, video_id: &str) -> Result<Processing, String> {
        let mut force = false;
        loop {
            let token = match self.access_token(force).await {
                Ok(token) => token,
                Err(TokenError::Auth(reason) | TokenError::Transient(reason)) => {
                    return Err(reason)
                }
            };
            match self.videos.check(&token, video_id).await {
                Ok(p) => return Ok(p),
                Err(CheckError::Unauthorized) if !force => force = true,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
