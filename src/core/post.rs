//! Core glue for post-processing (`[postprocess]`): at start-up ffmpeg is checked (a missing
//! one is reported once, and parts are then uploaded as recorded) and the worker started with
//! the jobs left pending (each starts over); a finished part becomes a persisted job before the
//! worker gets it, and its upload job (inserted next) waits for it; `PostFinished` hands the
//! verified MP4 to that upload, `PostFailed` releases it with the part as recorded.

use tracing::{error, info, warn};

use super::store::PostJob;
use super::Core;
use crate::archive::sidecar::Sidecar;
use crate::event::{Event, EventKind};
use crate::post::ffmpeg;
use crate::post::worker::{self, PostRequest};
use crate::post::PostHandle;
use crate::post::PostInput;
use recbot_commands::{Login, PostMode};

/// The post-processing worker as the core sees it: started when a part first needs it (at
/// start-up when `[postprocess] mode` runs ffmpeg or jobs are pending; otherwise for the first
/// part of a login added with `post=`), or known not to run.
#[derive(Debug, Default)]
pub(super) enum PostWorker {
    #[default]
    NotStarted,
    Running(PostHandle),
    /// ffmpeg does not run (reported once); parts are uploaded as recorded.
    Unavailable(String),
}

impl Core {
    /// Start-up: with a mode that runs ffmpeg, or with jobs left pending, checks ffmpeg and
    /// starts the worker, which gets the pending jobs again (each starts over). Without a
    /// working ffmpeg pending jobs end as failed, so their uploads go ahead.
    pub(super) async fn start_post(&mut self) {
        let pending = match self.store.pending_post_jobs().await {
            Ok(jobs) => jobs,
            Err(e) => {
                error!(error = %e, "cannot read the pending post-processing jobs");
                Vec::new()
            }
        };
        if !self.config.postprocess.mode.needs_ffmpeg() && pending.is_empty() {
            return;
        }
        if let Err(why) = self.post_worker().await {
            for job in pending {
                self.post_ended(job.id, None, Some(&why)).await;
            }
            return;
        }
        for job in pending {
            info!(job = job.id, video = %job.video.display(), "post-processing started over");
            self.submit_post(&job).await;
        }
    }

    /// The running worker, started (after checking that ffmpeg runs) on first need; the
    /// reason it cannot run otherwise, reported once as `PostFailed`.
    async fn post_worker(&mut self) -> Result<PostHandle, String> {
        match &self.post {
            PostWorker::Running(handle) => return Ok(handle.clone()),
            PostWorker::Unavailable(why) => return Err(why.clone()),
            PostWorker::NotStarted => {}
        }
        let settings = &self.config.postprocess;
        match ffmpeg::version(&settings.ffmpeg).await {
            Ok(version) => {
                info!(%version, mode = settings.mode.as_str(), "post-processing on");
                let handle = worker::start(
                    self.config.clone(),
                    self.events(),
                    &self.workers,
                    self.shutdown.child_token(),
                );
                self.post = PostWorker::Running(handle.clone());
                Ok(handle)
            }
            Err(why) => {
                error!(%why, "post-processing is off: ffmpeg does not run");
                let kind = EventKind::PostFailed {
                    job: None,
                    file: None,
                    reason: why.clone(),
                    ffmpeg_lines: Vec::new(),
                };
                // Through the event queue: published after `ServiceStarted`.
                self.events().send(Event::now(None, kind)).await;
                self.post = PostWorker::Unavailable(why.clone());
                Err(why)
            }
        }
    }

    /// The mode for a part of `login`: its own `post=`, or `[postprocess] mode`.
    async fn post_mode(&self, login: Option<&Login>) -> PostMode {
        let own = match login {
            Some(login) => match self.store.watch(login).await {
                Ok(watch) => watch.and_then(|w| w.post),
                Err(e) => {
                    warn!(%login, error = %e, "cannot read the login's post-processing mode");
                    None
                }
            },
            None => None,
        };
        own.unwrap_or(self.config.postprocess.mode)
    }

    /// Reaction: a finished part gets its post-processing job (persisted, then handed to the
    /// worker), before its upload job is inserted (which then waits for it).
    pub(super) async fn queue_post(&mut self, event: &Event) {
        let EventKind::RecordingPartFinished { file, sidecar, .. } = &event.kind else {
            return;
        };
        let mode = self.post_mode(event.login.as_ref()).await;
        if !mode.needs_ffmpeg() || self.post_worker().await.is_err() {
            return;
        }
        let inserted = self
            .store
            .insert_post_job(
                event.login.as_ref(),
                event.session,
                file,
                Some(sidecar),
                mode,
            )
            .await;
        let id = match inserted {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                error!(file = %file.display(), error = %e, "cannot save the post-processing job; the part is uploaded as recorded");
                return;
            }
        };
        let job = PostJob {
            id,
            login: event.login.clone(),
            session: event.session,
            video: file.clone(),
            sidecar: Some(sidecar.clone()),
            mode: Some(mode),
            state: super::store::PostState::Pending,
            output: None,
            last_error: None,
        };
        self.submit_post(&job).await;
    }

    async fn submit_post(&mut self, job: &PostJob) {
        let PostWorker::Running(post) = &self.post else {
            return;
        };
        let post = post.clone();
        let total_secs = match &job.sidecar {
            Some(path) => Sidecar::read(path).await.map_or(0.0, |s| s.duration_secs),
            None => 0.0,
        };
        post.submit(PostRequest {
            job: job.id,
            login: job.login.clone(),
            session: job.session,
            input: PostInput {
                video: job.video.clone(),
                sidecar: job.sidecar.clone(),
            },
            total_secs,
            // A job from before modes were stored follows the configured one.
            mode: job.mode.unwrap_or(self.config.postprocess.mode),
        })
        .await;
    }

    /// Reaction: a job ended; its upload takes the MP4, or the part as recorded.
    pub(super) async fn post_answered(&mut self, event: &Event) {
        match &event.kind {
            EventKind::PostFinished {
                job, output, bytes, ..
            } => self.post_ended(*job, Some((output, *bytes)), None).await,
            EventKind::PostFailed {
                job: Some(job),
                reason,
                ..
            } => self.post_ended(*job, None, Some(reason)).await,
            _ => {}
        }
    }

    async fn post_ended(
        &mut self,
        job: i64,
        output: Option<(&std::path::PathBuf, u64)>,
        error: Option<&str>,
    ) {
        let path = output.map(|(p, _)| p.as_path());
        if let Err(e) = self.store.end_post_job(job, path, error).await {
            error!(job, error = %e, "cannot save the end of a post-processing job");
        }
        let file = output.map(|(p, bytes)| (p.as_path(), bytes));
        match self.store.release_post_wait(job, file).await {
            Ok(0) => {}
            Ok(_) => self.wake_uploads(),
            Err(e) => {
                warn!(job, error = %e, "cannot release the upload waiting for post-processing")
            }
        }
    }
}
