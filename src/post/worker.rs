//! The post-processing worker: takes jobs from the core (bounded queue), runs at most
//! `[postprocess] max_jobs` at once, each one ffmpeg at low priority, and reports each as
//! events: `PostStarted`, `PostProgress` (at most every [`PROGRESS_EVERY`]), then
//! `PostFinished` or `PostFailed`. The core persists the jobs and decides what follows; a job
//! cut short by a shutdown reports nothing and is started over at the next start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recbot_commands::{Login, PostMode};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::job::{self, PostInput};
use crate::config::{Config, Postprocess};
use crate::event::{Event, EventKind};
use crate::work::Events;

/// How often a running job's progress becomes an event.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Jobs the core may hand over before it waits.
const QUEUE: usize = 64;

/// A job as the core hands it over (its row persisted first).
#[derive(Debug, Clone)]
pub struct PostRequest {
    pub job: i64,
    pub login: Option<Login>,
    pub session: Option<i64>,
    pub input: PostInput,
    /// The part's length, for progress (0 when unknown).
    pub total_secs: f64,
    /// The job's mode (a login's own `post=`, or `[postprocess] mode`).
    pub mode: PostMode,
}

/// The core's end of the worker.
#[derive(Debug, Clone)]
pub struct PostHandle {
    tx: mpsc::Sender<PostRequest>,
}

impl PostHandle {
    /// Hands a job over; waits while the queue is full.
    pub async fn submit(&self, request: PostRequest) {
        if self.tx.send(request).await.is_err() {
            tracing::warn!("post-processing job not started: the worker has stopped");
        }
    }
}

/// Starts the worker on `tracker`.
pub fn start(
    config: Arc<Config>,
    events: Events,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> PostHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    tracker.spawn(run(config, events, rx, tracker.clone(), cancel));
    PostHandle { tx }
}

async fn run(
    config: Arc<Config>,
    events: Events,
    mut rx: mpsc::Receiver<PostRequest>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.postprocess.max_jobs as usize));
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            request = rx.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        // Each job waits for its slot in its own task, so the queue never fills up and the
        // core never waits on it for long.
        let (config, events, cancel) = (config.clone(), events.clone(), cancel.clone());
        let slots = slots.clone();
        tracker.spawn(async move {
            let slot = tokio::select! {
                _ = cancel.cancelled() => return,
                slot = slots.acquire_owned() => slot.expect("the semaphore is never closed"),
            };
            one_job(&config, &events, request, &cancel).await;
            drop(slot);
        });
    }
}

/// One job from start to its last event.
async fn one_job(
    config: &Config,
    events: &Events,
    request: PostRequest,
    cancel: &CancellationToken,
) {
    let shown = |file: &Path| shown_path(config, file);
    // The job's own mode with the configured encoder settings.
    let settings = &Postprocess {
        mode: request.mode,
        ..config.postprocess.clone()
    };
    let event = |kind| {
        let mut e = Event::now(request.login.clone(), kind);
        e.session = request.session;
        e
    };
    events
        .send(event(EventKind::PostStarted {
            job: request.job,
            file: shown(&request.input.video),
            mode: settings.mode.as_str().into(),
        }))
        .await;
    // Progress goes out from the callback through a small queue, throttled, latest wins.
    let (progress_tx, mut progress_rx) = mpsc::channel(1);
    let mut last = Instant::now();
    let ran = job::run(settings, &request.input, cancel, |p| {
        if !p.end && last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            let _ = progress_tx.try_send(p);
        }
    });
    let forward = async {
        while let Some(p) = progress_rx.recv().await {
            events
                .send(event(EventKind::PostProgress {
                    job: request.job,
                    done_secs: p.out_secs,
                    total_secs: request.total_secs,
                    speed: p.speed,
                }))
                .await;
        }
    };
    let result = {
        tokio::pin!(ran);
        tokio::pin!(forward);
        loop {
            tokio::select! {
                result = &mut ran => break result,
                _ = &mut forward => {}
            }
        }
    };
    drop(progress_tx);
    let kind = match result {
        // Cut short by the shutdown: the job stays pending and starts over at the next start.
        // (A job that finished meanwhile is still reported: its part may be gone.)
        Err(_) if cancel.is_cancelled() => return,
        Ok(done) => EventKind::PostFinished {
            job: request.job,
            file: shown(&done.output),
            output: done.output,
            bytes: done.bytes,
            secs: done.duration_secs,
            speed: done.speed,
            original_removed: done.original_removed,
        },
        Err(failure) => EventKind::PostFailed {
            job: Some(request.job),
            file: Some(shown(&request.input.video)),
            reason: failure.why,
            ffmpeg_lines: failure.stderr,
        },
    };
    events.send(event(kind)).await;
}

/// A file as shown in chat: relative to the recordings folder when inside it.
fn shown_path(config: &Config, file: &Path) -> String {
    let recordings = config.storage.recordings_dir();
    file.strip_prefix(&recordings)
        .unwrap_or(file)
        .display()
        .to_string()
}
