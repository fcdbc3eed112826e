//! The upload worker: takes the next due job from the queue, gets an access token, opens or
//! resumes its resumable session and streams the file in chunks, and reports every durable step
//! to the core (which persists, then announces) before taking the next one. One upload at a
//! time; it sleeps until a job is due or the core wakes it.
//!
//! With `after_upload = "delete"` a finished job's files wait (persisted, so across restarts)
//! until YouTube reports the video processed: between uploads the worker asks `videos.list`
//! for every due one, with a doubling wait, deletes the files once it is processed, and keeps
//! them (announced) when YouTube rejected it or never finished within the configured time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use recbot_commands::Service;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::google::{GoogleTokens, RefreshError};
use super::metadata;
use super::processing::{CheckError, Processing, VideoStatus};
use super::quota;
use super::resumable::{content_type, Resumable, Status, UploadError};
use super::JobSource;
use crate::archive::after::Plan;
use crate::archive::sidecar::Sidecar;
use crate::config::Config;
use crate::secret::Secret;
use crate::work::{
    Calls, CleanupOutcome, JobUpdate, Reservation, TokenSource, UploadJob, WaitReason,
};

/// Progress is announced at most once per this share of the file…
const PROGRESS_STEP_PERCENT: u64 = 10;
/// …and at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(30);
/// A valid access token is refreshed this long before it expires.
const TOKEN_MARGIN_SECS: i64 = 60;
/// Pause after the state database could not be read.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// Longest wait between two checks of a video's processing.
const PROCESSING_CHECK_MAX: Duration = Duration::from_secs(3600);

/// The worker and what it needs.
#[derive(Debug)]
pub struct UploadWorker {
    config: Arc<Config>,
    /// The queue, read between jobs.
    jobs: Arc<dyn JobSource>,
    /// The stored YouTube token.
    stored: Arc<dyn TokenSource>,
    calls: Calls,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    youtube: Resumable,
    videos: VideoStatus,
    tokens: GoogleTokens,
}

/// How a job's turn ended.
enum Turn {
    /// Finished, failed, deferred or paused: on to the next job.
    Done,
    /// Shutdown: stop working.
    Cancelled,
}

/// Why no access token is at hand.
enum TokenError {
    /// A human must authorize again.
    Auth(String),
    Transient(String),
}

impl UploadWorker {
    pub fn new(
        config: Arc<Config>,
        jobs: Arc<dyn JobSource>,
        stored: Arc<dyn TokenSource>,
        calls: Calls,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) -> anyhow::Result<UploadWorker> {
        let youtube = Resumable::new(
            &config.youtube.upload_url,
            Duration::from_secs(config.youtube.chunk_timeout_secs),
        )?;
        let tokens = GoogleTokens::new(&config.youtube)?;
        let videos = VideoStatus::new(&config.youtube.api_url)?;
        Ok(UploadWorker {
            config,
            jobs,
            stored,
            calls,
            wake,
            cancel,
            youtube,
            videos,
            tokens,
        })
    }

    pub async fn run(self) {
        info!("upload worker started");
        while !self.cancel.is_cancelled() {
            // Videos whose files wait for YouTube's processing first: each is one short request.
            match self.jobs.next_due_cleanup(Utc::now()).await {
                Ok(Some(job)) => {
                    let id = job.id;
                    match self.cleanup(job).await {
                        Ok(Turn::Done) => continue,
                        Ok(Turn::Cancelled) => break,
                        Err(e) => {
                            warn!(job = id, error = %e, "processing check interrupted");
                            self.idle(Some(Utc::now() + STORE_RETRY)).await;
                            continue;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => error!(error = %e, "cannot read the files waiting for YouTube"),
            }
            let job = match self.jobs.next_due_upload(Utc::now()).await {
                Ok(job) => job,
                Err(e) => {
                    error!(error = %e, "cannot read the upload queue");
                    self.idle(Some(Utc::now() + STORE_RETRY)).await;
                    continue;
                }
            };
            match job {
                Some(job) => {
                    let id = job.id;
                    match self.upload(job).await {
                        Ok(Turn::Done) => {}
                        Ok(Turn::Cancelled) => break,
                        // Only the core's acknowledgement can fail here: it is stopping.
                        Err(e) => {
                            warn!(job = id, error = %e, "upload interrupted");
                            self.idle(Some(Utc::now() + STORE_RETRY)).await;
                        }
                    }
                }
                None => {
                    let next = self.jobs.next_upload_wakeup().await.ok().flatten();
                    self.idle(next).await;
                }
            }
        }
        info!("upload worker stopped");
    }

    /// Sleeps until `until`, a wake-up from the core, or shutdown.
    async fn idle(&self, until: Option<DateTime<Utc>>) {
        let sleep = match until {
            Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            // Nothing scheduled: a wake-up will come with the next job.
            None => Duration::from_secs(24 * 3600),
        };
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }

    /// One turn of one job: until it finishes, fails, must wait, or shutdown.
    async fn upload(&self, job: UploadJob) -> anyhow::Result<Turn> {
        let id = job.id;
        if job.wait_reason == Some(WaitReason::ChatFile) {
            // The core releases the job when the chat logger answers; it never did.
            warn!(
                job = id,
                file = %job.path.display(),
                "the part's chat file was not written within [chat] save_timeout_secs; \
                 uploading without it (a chat file written later stays where it is)"
            );
        }
        let total = match tokio::fs::metadata(&job.path).await {
            Ok(meta) if meta.len() > 0 => meta.len(),
            Ok(_) => return self.fail(id, "the recording is empty").await,
            Err(e) => {
                return self
                    .fail(id, &format!("cannot read {}: {e}", job.path.display()))
                    .await
            }
        };
        let yt = &self.config.youtube;
        let mut session = job.session_uri.clone();
        if session.is_some() && job.total_bytes != total {
            // The file changed size since its session was opened: that session cannot finish.
            self.calls
                .job(JobUpdate::Session {
                    job: id,
                    uri: None,
                    total,
                })
                .await?;
            session = None;
        }
        let mut offset = job.confirmed_bytes;
        let mut must_ask = session.is_some();
        let mut started = false;
        let mut failures = 0u32;
        let mut force_refresh = false;
        let mut refreshed = false;
        let mut pacer = ProgressPacer::new(offset, total, Instant::now());
        loop {
            let token = match self.cancellable(self.access_token(force_refresh)).await {
                None => return Ok(Turn::Cancelled),
                Some(Ok(token)) => token,
                Some(Err(TokenError::Auth(reason))) => return self.pause(id, reason).await,
                Some(Err(TokenError::Transient(reason))) => {
                    failures += 1;
                    match self.backoff(&job, failures, &reason).await? {
                        Some(turn) => return Ok(turn),
                        None => continue,
                    }
                }
            };
            force_refresh = false;
            let step = match &session {
                None => {
                    let day = match self.hold_for_quota(id).await? {
                        Ok(day) => day,
                        Err(turn) => return Ok(turn),
                    };
                    let resource = self.resource(&job).await;
                    let open = self.youtube.open_session(
                        &token,
                        &resource,
                        total,
                        content_type(&job.path),
                    );
                    match self.cancellable(open).await {
                        None => return Ok(Turn::Cancelled),
                        Some(Ok(uri)) => {
                            info!(job = id, "upload session opened");
                            self.calls
                                .job(JobUpdate::Session {
                                    job: id,
                                    uri: Some(uri.clone()),
                                    total,
                                })
                                .await?;
                            session = Some(uri);
                            offset = 0;
                            must_ask = false;
                            pacer = ProgressPacer::new(0, total, Instant::now());
                            continue;
                        }
                        Some(Err(e)) => {
                            if matches!(e, UploadError::Transient(_) | UploadError::Unauthorized) {
                                // YouTube did not take this `videos.insert`: the next attempt
                                // counts again, this one must not stay counted.
                                self.calls.release_quota(day).await?;
                            }
                            Err(e)
                        }
                    }
                }
                Some(uri) => {
                    if !started {
                        started = true;
                        self.calls
                            .job(JobUpdate::Started {
                                job: id,
                                total,
                                from: offset,
                            })
                            .await?;
                    }
                    let request = async {
                        if must_ask {
                            self.youtube.status(&token, uri, total).await
                        } else {
                            let chunk = yt.chunk_bytes();
                            self.youtube
                                .send_chunk(&token, uri, &job.path, offset, total, chunk)
                                .await
                        }
                    };
                    match self.cancellable(request).await {
                        None => return Ok(Turn::Cancelled),
                        Some(step) => step,
                    }
                }
            };
            match step {
                Ok(Status::Incomplete { next }) => {
                    let sent_chunk = !must_ask;
                    must_ask = false;
                    refreshed = false;
                    if sent_chunk && next <= offset {
                        // The server took nothing of a whole chunk: as bad as an error.
                        failures += 1;
                        let reason = "YouTube accepted none of the bytes sent".to_string();
                        if let Some(turn) = self.backoff(&job, failures, &reason).await? {
                            return Ok(turn);
                        }
                        must_ask = true;
                        continue;
                    }
                    if next > offset {
                        failures = 0;
                    }
                    if next != offset {
                        let rate = pacer.on_progress(next, Instant::now());
                        self.calls
                            .job(JobUpdate::Progress {
                                job: id,
                                confirmed: next,
                                announce: rate,
                            })
                            .await?;
                    }
                    offset = next;
                }
                Ok(Status::Complete { video_id }) => {
                    return self.finish(&job, video_id).await;
                }
                Err(UploadError::Transient(reason)) => {
                    failures += 1;
                    warn!(job = id, failures, error = %reason, "upload request failed");
                    if let Some(turn) = self.backoff(&job, failures, &reason).await? {
                        return Ok(turn);
                    }
                    must_ask = session.is_some();
                }
                Err(UploadError::SessionGone(status)) => {
                    failures += 1;
                    warn!(job = id, status, "upload session gone; opening a new one");
                    self.calls
                        .job(JobUpdate::Session {
                            job: id,
                            uri: None,
                            total,
                        })
                        .await?;
                    session = None;
                    offset = 0;
                    must_ask = false;
                    if failures > yt.retry_limit {
                        let reason = format!("YouTube dropped the upload session {failures} times");
                        if let Some(turn) = self.backoff(&job, failures, &reason).await? {
                            return Ok(turn);
                        }
                    }
                }
                Err(UploadError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    force_refresh = true;
                    must_ask = session.is_some();
                }
                Err(UploadError::Unauthorized) => {
                    return self
                        .pause(
                            id,
                            "YouTube refused a freshly refreshed access token (HTTP 401)".into(),
                        )
                        .await;
                }
                Err(UploadError::QuotaExceeded) => {
                    let reset = quota::next_reset(Utc::now());
                    let cause = "YouTube's daily upload quota is used up (quotaExceeded)";
                    return self.wait_for_reset(id, reset, cause).await;
                }
                Err(UploadError::UploadLimit) => {
                    let hours = yt.upload_limit_wait_hours;
                    let until = Utc::now() + chrono::Duration::hours(hours as i64);
                    return self
                        .defer(
                            id,
                            until,
                            WaitReason::UploadLimit,
                            format!(
                                "the YouTube channel reached its upload limit \
                                 (uploadLimitExceeded); trying again in {hours} h"
                            ),
                        )
                        .await;
                }
                Err(UploadError::Rejected(reason)) => {
                    return self
                        .fail(id, &format!("YouTube refused it: {reason}"))
                        .await;
                }
            }
        }
    }

    /// Before a new session (one `videos.insert` of the quota): waits out a quota or upload
    /// limit hold (`Err`: the job's turn is over), and counts the upload against today's
    /// ledger (`Ok`: on this Pacific day).
    async fn hold_for_quota(&self, id: i64) -> anyhow::Result<Result<NaiveDate, Turn>> {
        if let Some((until, reason)) = self.jobs.upload_hold(Utc::now()).await? {
            let turn = match reason {
                WaitReason::Quota => {
                    let cause = "YouTube's daily upload quota is used up";
                    self.wait_for_reset(id, until, cause).await?
                }
                _ => {
                    let why = "the YouTube channel reached its upload limit (uploadLimitExceeded)";
                    self.defer(id, until, reason, why.into()).await?
                }
            };
            return Ok(Err(turn));
        }
        match self.calls.reserve_quota().await? {
            Reservation::Counted(day) => Ok(Ok(day)),
            Reservation::Full(reset) => {
                let limit = self.config.youtube.daily_upload_limit;
                let cause = format!("today's {limit} uploads (daily_upload_limit) are used");
                self.wait_for_reset(id, reset, &cause).await.map(Err)
            }
        }
    }

    /// The stored access token, refreshed when it expires within a minute (or when `force`).
    async fn access_token(&self, force: bool) -> Result<Secret, TokenError> {
        let stored = self
            .stored
            .token(Service::Youtube)
            .await
            .map_err(|e| TokenError::Transient(format!("cannot read the stored token: {e}")))?;
        let Some(stored) = stored else {
            return Err(TokenError::Auth("YouTube is not connected yet".into()));
        };
        let fresh = stored
            .expires_at
            .is_none_or(|at| at - chrono::Duration::seconds(TOKEN_MARGIN_SECS) > Utc::now());
        if fresh && !force {
            return Ok(stored.access_token);
        }
        let Some(refresh) = stored.refresh_token.as_ref() else {
            return Err(TokenError::Auth(
                "the YouTube access token expired and Google gave no refresh token".into(),
            ));
        };
        match self.tokens.refresh(refresh).await {
            Ok(token) => {
                debug!("YouTube access token refreshed");
                let access = token.access_token.clone();
                self.calls
                    .save_token(Service::Youtube, token)
                    .await
                    .map_err(|e| TokenError::Transient(format!("{e:#}")))?;
                Ok(access)
            }
            Err(RefreshError::Revoked(reason)) => Err(TokenError::Auth(format!(
                "Google refused the refresh token ({reason}): it was revoked, or it expired \
                 (apps whose consent screen is in Testing mode get 7-day refresh tokens)"
            ))),
            Err(RefreshError::Transient(reason)) => Err(TokenError::Transient(reason)),
        }
    }

    /// Waits with exponential backoff and jitter after the `failures`-th error in a row; after
    /// `retry_limit` of them the job waits `retry_wait_minutes` instead (or fails once it has
    /// done so `max_attempts` times). `None`: try again now.
    async fn backoff(
        &self,
        job: &UploadJob,
        failures: u32,
        reason: &str,
    ) -> anyhow::Result<Option<Turn>> {
        let yt = &self.config.youtube;
        if failures > yt.retry_limit {
            if job.attempts + 1 >= yt.max_attempts {
                return self
                    .fail(
                        job.id,
                        &format!(
                            "gave up after {} rounds of {} errors in a row; last: {reason}",
                            yt.max_attempts, yt.retry_limit
                        ),
                    )
                    .await
                    .map(Some);
            }
            let until = Utc::now() + chrono::Duration::minutes(yt.retry_wait_minutes as i64);
            let why = format!("{} errors in a row; last: {reason}", yt.retry_limit);
            return self
                .defer(job.id, until, WaitReason::Retry, why)
                .await
                .map(Some);
        }
        let delay = backoff_delay(
            failures,
            Duration::from_millis(yt.retry_initial_ms),
            Duration::from_secs(yt.retry_max_secs),
            &mut rand::rng(),
        );
        debug!(job = job.id, ?delay, "backing off");
        tokio::select! {
            _ = self.cancel.cancelled() => Ok(Some(Turn::Cancelled)),
            _ = tokio::time::sleep(delay) => Ok(None),
        }
    }

    async fn defer(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: WaitReason,
        why: String,
    ) -> anyhow::Result<Turn> {
        info!(job = id, %until, why = %why, "upload deferred");
        self.calls
            .job(JobUpdate::Deferred {
                job: id,
                until,
                reason,
                why,
            })
            .await?;
        Ok(Turn::Done)
    }

    /// Defers until the quota's reset at `reset`, saying when in UTC and Pacific time.
    async fn wait_for_reset(
        &self,
        id: i64,
        reset: DateTime<Utc>,
        cause: &str,
    ) -> anyhow::Result<Turn> {
        let why = format!(
            "{cause}; the quota resets at midnight Pacific time, {}",
            quota::describe(reset)
        );
        self.defer(id, reset, WaitReason::Quota, why).await
    }

    async fn pause(&self, id: i64, reason: String) -> anyhow::Result<Turn> {
        warn!(job = id, reason = %reason, "uploads paused until YouTube is authorized again");
        self.calls
            .job(JobUpdate::Paused {
                job: id,
                why: reason.clone(),
            })
            .await?;
        self.calls.auth_needed(Service::Youtube, reason).await;
        Ok(Turn::Done)
    }

    async fn fail(&self, id: i64, reason: &str) -> anyhow::Result<Turn> {
        warn!(job = id, reason, "upload failed");
        self.calls
            .job(JobUpdate::Failed {
                job: id,
                why: reason.to_string(),
            })
            .await?;
        Ok(Turn::Done)
    }

    /// YouTube has the video: record its id in the sidecar, persist and announce, then keep,
    /// move or delete the files (never before this point).
    async fn finish(&self, job: &UploadJob, video_id: String) -> anyhow::Result<Turn> {
        info!(job = job.id, video_id = %video_id, "upload finished");
        if let Some(path) = &job.sidecar {
            if let Err(e) = record_video_id(path, &video_id).await {
                warn!(job = job.id, error = %e, "cannot record the video id in the sidecar");
            }
        }
        self.calls
            .job(JobUpdate::Finished {
                job: job.id,
                video_id,
            })
            .await?;
        // Video, sidecar and the recording's chat file. Deleting waits until YouTube has
        // processed the video (the core marked the job as waiting with its finish).
        if let Some(plan) = Plan::from_config(&self.config).filter(|p| !p.deletes()) {
            plan.apply(&job.path, job.sidecar.as_deref()).await;
        }
        Ok(Turn::Done)
    }

    /// One due check of a finished video whose files wait for YouTube's processing: delete
    /// them once processed, keep them (announced) when YouTube refused the video or the wait
    /// ran out, else ask again later (the wait doubles, with jitter, up to an hour).
    async fn cleanup(&self, job: UploadJob) -> anyhow::Result<Turn> {
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

    /// The `video` resource from the sidecar (or from the file name when it cannot be read).
    async fn resource(&self, job: &UploadJob) -> serde_json::Value {
        let yt = &self.config.youtube;
        let sidecar = match &job.sidecar {
            Some(path) => match Sidecar::read(path).await {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(job = job.id, error = %e, "uploading without the sidecar's details");
                    None
                }
            },
            None => None,
        };
        let (title, description) = match &sidecar {
            Some(s) => (
                metadata::title(&yt.title_template, s),
                metadata::description(s),
            ),
            None => (
                metadata::fallback_title(job.login.as_ref().map(|l| l.as_str()), &job.file_name()),
                "Recorded by recbot.".to_string(),
            ),
        };
        metadata::video_resource(&title, &description, yt.privacy)
    }

    /// Runs `work` unless shutdown comes first (`None`).
    async fn cancellable<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            out = work => Some(out),
        }
    }
}

/// Exponential backoff with jitter: half of `initial × 2^(failures-1)` (capped at `max`) plus
/// a random part up to the other half.
pub fn backoff_delay(
    failures: u32,
    initial: Duration,
    max: Duration,
    rng: &mut impl Rng,
) -> Duration {
    crate::backoff::exponential_with(failures.saturating_sub(1), initial, max, rng)
}

/// Decides when progress is worth announcing: at most once per 10% of the file and once per
/// 30 s.
#[derive(Debug)]
pub struct ProgressPacer {
    total: u64,
    begin_bytes: u64,
    begin_at: Instant,
    last_bytes: u64,
    last_at: Instant,
}

impl ProgressPacer {
    pub fn new(confirmed: u64, total: u64, now: Instant) -> ProgressPacer {
        ProgressPacer {
            total,
            begin_bytes: confirmed,
            begin_at: now,
            last_bytes: confirmed,
            last_at: now,
        }
    }

    /// `Some(bytes per second)` when this progress should be announced.
    pub fn on_progress(&mut self, confirmed: u64, now: Instant) -> Option<f64> {
        let step = (self.total * PROGRESS_STEP_PERCENT / 100).max(1);
        if confirmed >= self.total
            || confirmed < self.last_bytes + step
            || now.duration_since(self.last_at) < PROGRESS_INTERVAL
        {
            return None;
        }
        self.last_bytes = confirmed;
        self.last_at = now;
        let secs = now.duration_since(self.begin_at).as_secs_f64();
        let sent = confirmed.saturating_sub(self.begin_bytes) as f64;
        Some(if secs > 0.0 { sent / secs } else { 0.0 })
    }
}

async fn record_video_id(path: &Path, video_id: &str) -> anyhow::Result<()> {
    let mut sidecar = Sidecar::read(path).await?;
    sidecar.youtube_video_id = Some(video_id.to_string());
    sidecar.write(path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_bounded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let initial = Duration::from_millis(1000);
        let max = Duration::from_secs(60);
        for failures in 1..=40 {
            let d = backoff_delay(failures, initial, max, &mut rng);
            let ceiling = (initial * 2u32.pow((failures - 1).min(10))).min(max);
            assert!(d >= ceiling / 2 && d <= ceiling, "{failures}: {d:?}");
        }
        let draws: Vec<_> = (0..5)
            .map(|_| backoff_delay(3, initial, max, &mut rng))
            .collect();
        assert!(
            draws.windows(2).any(|w| w[0] != w[1]),
            "no jitter: {draws:?}"
        );
    }

    #[test]
    fn progress_is_announced_at_most_every_tenth_and_half_minute() {
        let t0 = Instant::now();
        let total = 1000;
        let mut p = ProgressPacer::new(0, total, t0);
        // 10% quickly: too soon.
        assert_eq!(p.on_progress(100, t0 + Duration::from_secs(5)), None);
        // 30 s later but only 5%: too little... then 10% after 30 s: announced.
        let mut p2 = ProgressPacer::new(0, total, t0);
        assert_eq!(p2.on_progress(50, t0 + Duration::from_secs(40)), None);
        let rate = p2.on_progress(120, t0 + Duration::from_secs(40)).unwrap();
        assert!((rate - 3.0).abs() < 1e-9, "{rate}");
        // Next one needs another 10% and another 30 s.
        assert_eq!(p2.on_progress(300, t0 + Duration::from_secs(50)), None);
        assert!(p2.on_progress(300, t0 + Duration::from_secs(71)).is_some());
        // Completion is announced by UploadFinished instead.
        assert_eq!(p.on_progress(1000, t0 + Duration::from_secs(600)), None);
        // Over a long upload: never more than 10 announcements.
        let mut p3 = ProgressPacer::new(0, total, t0);
        let n = (1..=1000)
            .filter(|i| {
                p3.on_progress(*i, t0 + Duration::from_secs(*i * 60))
                    .is_some()
            })
            .count();
        assert!(n <= 10, "{n}");
    }
}
