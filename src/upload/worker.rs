//! The upload worker: takes the next due job from the queue, gets an access token, opens or
//! resumes its resumable session and streams the file in chunks, and reports every durable step
//! to the core (which persists, then announces) before taking the next one. One upload at a
//! time; it sleeps until a job is due or the core wakes it.
//!
//! With `after_upload = "delete"` a finished job's files wait for YouTube's processing
//! (`cleanup`); `progress` paces the progress notices.

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

use super::google::GoogleTokens;
use super::metadata;
use super::processing::VideoStatus;
use super::quota;
use super::resumable::{content_type, Resumable, Status, UploadError};
use super::JobSource;
use crate::archive::after::Plan;
use crate::archive::layout::is_fill_file;
use crate::archive::sidecar::Sidecar;
use crate::config::Config;
use crate::secret::Secret;
use crate::work::{Calls, JobUpdate, Reservation, TokenSource, UploadJob, WaitReason};

mod cleanup;
mod progress;
mod token;

pub use progress::ProgressPacer;
use token::TokenError;

/// Pause after the state database could not be read.
const STORE_RETRY: Duration = Duration::from_secs(5);

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
    /// `recbot_upload_bytes_total` counts what YouTube confirmed.
    metrics: Arc<crate::metrics::Metrics>,
}

/// How a job's turn ended.
enum Turn {
    /// Finished, failed, deferred or paused: on to the next job.
    Done,
    /// Shutdown: stop working.
    Cancelled,
}

/// Where one job's transfer stands: the state its rounds share.
struct Transfer {
    /// The file's size.
    total: u64,
    /// The resumable session, once opened.
    session: Option<String>,
    /// Bytes YouTube confirmed having.
    offset: u64,
    /// The next request asks YouTube where it stands instead of sending a chunk.
    must_ask: bool,
    /// `JobUpdate::Started` was reported.
    started: bool,
    /// Errors in a row.
    failures: u32,
    /// The next access token is refreshed first (after a 401).
    force_refresh: bool,
    /// A 401 was already answered by a refresh: the next one pauses uploads.
    refreshed: bool,
    pacer: ProgressPacer,
}

/// What opening a session led to.
enum Step {
    /// Opened: on to the first chunk.
    Again,
    /// The job's turn is over (a quota hold, shutdown).
    End(Turn),
    /// YouTube's answer, for the error handling every request shares.
    Answer(Result<Status, UploadError>),
}

impl UploadWorker {
    pub fn new(
        config: Arc<Config>,
        jobs: Arc<dyn JobSource>,
        stored: Arc<dyn TokenSource>,
        calls: Calls,
        wake: Arc<Notify>,
        cancel: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
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
            metrics,
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

    /// One turn of one job: until it finishes, fails, must wait, or shutdown. Prepared
    /// ([`Self::prepare`]), then each round gets an access token, opens a session when there
    /// is none ([`Self::open_session`]) or sends the next chunk ([`Self::send`]), and acts on
    /// the answer ([`Self::on_status`], [`Self::on_error`]); the last step is [`Self::finish`].
    async fn upload(&self, job: UploadJob) -> anyhow::Result<Turn> {
        let mut t = match self.prepare(&job).await? {
            Ok(t) => t,
            Err(turn) => return Ok(turn),
        };
        loop {
            let token = match self.cancellable(self.access_token(t.force_refresh)).await {
                None => return Ok(Turn::Cancelled),
                Some(Ok(token)) => token,
                Some(Err(TokenError::Auth(reason))) => return self.pause(job.id, reason).await,
                Some(Err(TokenError::Transient(reason))) => {
                    t.failures += 1;
                    match self.backoff(&job, t.failures, &reason).await? {
                        Some(turn) => return Ok(turn),
                        None => continue,
                    }
                }
            };
            t.force_refresh = false;
            let step = match t.session.clone() {
                None => match self.open_session(&job, &token, &mut t).await? {
                    Step::Again => continue,
                    Step::End(turn) => return Ok(turn),
                    Step::Answer(answer) => answer,
                },
                Some(uri) => match self.send(&job, &token, &uri, &mut t).await? {
                    None => return Ok(Turn::Cancelled),
                    Some(answer) => answer,
                },
            };
            let next = match step {
                Ok(Status::Incomplete { next }) => self.on_status(&job, &mut t, next).await?,
                Ok(Status::Complete { video_id }) => {
                    self.confirmed_all(&mut t);
                    Some(self.finish(&job, video_id).await?)
                }
                Err(e) => self.on_error(&job, &mut t, e).await?,
            };
            if let Some(turn) = next {
                return Ok(turn);
            }
        }
    }

    /// Before the first request: the file's size (an empty or unreadable file fails the job),
    /// a session opened for another size dropped, and the wait for a chat file that never
    /// came said.
    async fn prepare(&self, job: &UploadJob) -> anyhow::Result<Result<Transfer, Turn>> {
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
            Ok(_) => return self.fail(id, "the recording is empty").await.map(Err),
            Err(e) => {
                let why = format!("cannot read {}: {e}", job.path.display());
                return self.fail(id, &why).await.map(Err);
            }
        };
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
        let offset = job.confirmed_bytes;
        Ok(Ok(Transfer {
            total,
            must_ask: session.is_some(),
            session,
            offset,
            started: false,
            failures: 0,
            force_refresh: false,
            refreshed: false,
            pacer: ProgressPacer::new(offset, total, Instant::now()),
        }))
    }

    /// A new resumable session (one `videos.insert`, counted against the quota first).
    async fn open_session(
        &self,
        job: &UploadJob,
        token: &Secret,
        t: &mut Transfer,
    ) -> anyhow::Result<Step> {
        let id = job.id;
        let day = match self.hold_for_quota(id).await? {
            Ok(day) => day,
            Err(turn) => return Ok(Step::End(turn)),
        };
        let resource = self.resource(job).await;
        let open = self
            .youtube
            .open_session(token, &resource, t.total, content_type(&job.path));
        match self.cancellable(open).await {
            None => Ok(Step::End(Turn::Cancelled)),
            Some(Ok(uri)) => {
                info!(job = id, "upload session opened");
                self.calls
                    .job(JobUpdate::Session {
                        job: id,
                        uri: Some(uri.clone()),
                        total: t.total,
                    })
                    .await?;
                t.session = Some(uri);
                t.offset = 0;
                t.must_ask = false;
                t.pacer = ProgressPacer::new(0, t.total, Instant::now());
                Ok(Step::Again)
            }
            Some(Err(e)) => {
                if matches!(e, UploadError::Transient(_) | UploadError::Unauthorized) {
                    // YouTube did not take this `videos.insert`: the next attempt counts
                    // again, this one must not stay counted.
                    self.calls.release_quota(day).await?;
                }
                Ok(Step::Answer(Err(e)))
            }
        }
    }

    /// The next request on an open session: asks where YouTube stands (after an error or a
    /// restart) or sends the next chunk. `None`: shutdown.
    async fn send(
        &self,
        job: &UploadJob,
        token: &Secret,
        uri: &str,
        t: &mut Transfer,
    ) -> anyhow::Result<Option<Result<Status, UploadError>>> {
        if !t.started {
            t.started = true;
            self.calls
                .job(JobUpdate::Started {
                    job: job.id,
                    total: t.total,
                    from: t.offset,
                })
                .await?;
        }
        let request = async {
            if t.must_ask {
                self.youtube.status(token, uri, t.total).await
            } else {
                let chunk = self.config.youtube.chunk_bytes();
                self.youtube
                    .send_chunk(token, uri, &job.path, t.offset, t.total, chunk)
                    .await
            }
        };
        Ok(self.cancellable(request).await)
    }

    /// YouTube has the whole file: what it had not confirmed yet arrived now (counted).
    fn confirmed_all(&self, t: &mut Transfer) {
        self.metrics
            .upload_bytes
            .inc_by(t.total.saturating_sub(t.offset));
        t.offset = t.total;
    }

    /// YouTube has bytes up to `next`: progress reported (persisted before the next chunk), or
    /// a chunk it took none of counted as a failure. `Some`: the job's turn is over.
    async fn on_status(
        &self,
        job: &UploadJob,
        t: &mut Transfer,
        next: u64,
    ) -> anyhow::Result<Option<Turn>> {
        let sent_chunk = !t.must_ask;
        t.must_ask = false;
        t.refreshed = false;
        if sent_chunk && next <= t.offset {
            // The server took nothing of a whole chunk: as bad as an error.
            t.failures += 1;
            let reason = "YouTube accepted none of the bytes sent".to_string();
            if let Some(turn) = self.backoff(job, t.failures, &reason).await? {
                return Ok(Some(turn));
            }
            t.must_ask = true;
            return Ok(None);
        }
        if next > t.offset {
            t.failures = 0;
            self.metrics.upload_bytes.inc_by(next - t.offset);
        }
        if next != t.offset {
            let rate = t.pacer.on_progress(next, Instant::now());
            self.calls
                .job(JobUpdate::Progress {
                    job: job.id,
                    confirmed: next,
                    announce: rate,
                })
                .await?;
        }
        t.offset = next;
        Ok(None)
    }

    /// A request failed: back off and go on, open a new session, refresh the token once,
    /// or end the job's turn (`Some`: paused, deferred, failed).
    async fn on_error(
        &self,
        job: &UploadJob,
        t: &mut Transfer,
        error: UploadError,
    ) -> anyhow::Result<Option<Turn>> {
        let id = job.id;
        let yt = &self.config.youtube;
        match error {
            UploadError::Transient(reason) => {
                t.failures += 1;
                warn!(job = id, failures = t.failures, error = %reason, "upload request failed");
                if let Some(turn) = self.backoff(job, t.failures, &reason).await? {
                    return Ok(Some(turn));
                }
                t.must_ask = t.session.is_some();
                Ok(None)
            }
            UploadError::SessionGone(status) => {
                t.failures += 1;
                warn!(job = id, status, "upload session gone; opening a new one");
                let total = t.total;
                self.calls
                    .job(JobUpdate::Session {
                        job: id,
                        uri: None,
                        total,
                    })
                    .await?;
                t.session = None;
                t.offset = 0;
                t.must_ask = false;
                if t.failures > yt.retry_limit {
                    let reason = format!("YouTube dropped the upload session {} times", t.failures);
                    return self.backoff(job, t.failures, &reason).await;
                }
                Ok(None)
            }
            UploadError::Unauthorized if !t.refreshed => {
                t.refreshed = true;
                t.force_refresh = true;
                t.must_ask = t.session.is_some();
                Ok(None)
            }
            UploadError::Unauthorized => {
                let why = "YouTube refused a freshly refreshed access token (HTTP 401)";
                self.pause(id, why.into()).await.map(Some)
            }
            UploadError::QuotaExceeded => {
                let reset = quota::next_reset(Utc::now());
                let cause = "YouTube's daily upload quota is used up (quotaExceeded)";
                self.wait_for_reset(id, reset, cause).await.map(Some)
            }
            UploadError::UploadLimit => {
                let hours = yt.upload_limit_wait_hours;
                let until = Utc::now() + chrono::Duration::hours(hours as i64);
                let why = format!(
                    "the YouTube channel reached its upload limit (uploadLimitExceeded); \
                     trying again in {hours} h"
                );
                self.defer(id, until, WaitReason::UploadLimit, why)
                    .await
                    .map(Some)
            }
            UploadError::Rejected(reason) => {
                let why = format!("YouTube refused it: {reason}");
                self.fail(id, &why).await.map(Some)
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
            if let Err(e) = record_video_id(path, &job.path, &video_id).await {
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
        let fill = is_fill_file(&job.path);
        let (title, description) = match &sidecar {
            Some(s) if fill => (
                metadata::fill_title(&yt.title_template, s),
                metadata::fill_description(s, &job.file_name()),
            ),
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

/// Records the video id in the sidecar: the part's own, or (for a fill) its fill entry.
async fn record_video_id(path: &Path, video: &Path, video_id: &str) -> anyhow::Result<()> {
    let fill = is_fill_file(video).then(|| {
        video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Sidecar::update(path, |s| match &fill {
        Some(name) => {
            if let Some(f) = s.fills.iter_mut().find(|f| &f.file == name) {
                f.youtube_video_id = Some(video_id.to_string());
            }
        }
        None => s.youtube_video_id = Some(video_id.to_string()),
    })
    .await
    .map(|_| ())
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
}
