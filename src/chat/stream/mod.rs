//! The chat stream (`[chat] stream_url`, issue 15): every line the chat writer logs is also
//! published to NATS JetStream, the same JSON as in the day files, on subject
//! `recbot.chat.<platform>.<login>` with a stable `Nats-Msg-Id` (the line's message id, else
//! a hash of the line) so JetStream keeps a line sent twice once.
//!
//! The writer hands each batch over with [`StreamTee::offer`], which never waits: a full
//! hand-off leaves the lines out of the stream (counted), never out of the day files. The
//! worker (`worker.rs`) publishes asynchronously and awaits the acknowledgements a batch at a
//! time (bounded in flight); what is not acknowledged is sent again (at least once). While
//! NATS cannot be reached, lines go to a bounded spool file under `data_dir` (`spool.rs`),
//! sent in order once it answers; a full spool leaves lines out of the stream, counted and
//! reported (`ChatStreamDropped`). Spooling is reported as `ChatStreamBehind`.
//!
//! Imports no `core` nor `frontend`: the core hears of it through events only.

mod line;
mod nats;
mod spool;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::writer::Batch;
use crate::config::Config;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::secret::Secret;

pub use line::{message_id, subject_of, SUBJECTS};
pub use spool::{OFFSET_FILE, SPOOL_FILE};

/// Batches waiting between the writer and the stream worker, at most.
const HANDOFF_BATCHES: usize = 1024;

/// Where and how the chat stream publishes, from `[chat]`.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `nats://host:4222` (checked by the config).
    pub url: String,
    pub stream_name: String,
    pub auth: StreamAuth,
    /// The folder of the spool (`data_dir`).
    pub spool_dir: PathBuf,
    pub spool_bytes: u64,
    /// Connecting, a JetStream request, one batch's acknowledgements: at most this long.
    pub timeout: Duration,
}

/// How recbot authenticates to NATS.
#[derive(Debug, Clone)]
pub enum StreamAuth {
    None,
    Token(Secret),
    UserPassword(String, Secret),
}

impl StreamSettings {
    /// The chat stream's settings, or `None` when `[chat] stream_url` is unset (no stream).
    pub fn from_config(config: &Config) -> Option<StreamSettings> {
        let c = &config.chat;
        let url = c.stream_url.clone()?;
        let auth = match (&c.stream_token, &c.stream_user, &c.stream_password) {
            (Some(token), _, _) => StreamAuth::Token(token.clone()),
            (None, Some(user), Some(password)) => {
                StreamAuth::UserPassword(user.clone(), password.clone())
            }
            _ => StreamAuth::None,
        };
        Some(StreamSettings {
            url,
            stream_name: c.stream_name.clone(),
            auth,
            spool_dir: config.storage.data_dir.clone(),
            spool_bytes: c.stream_spool_bytes,
            timeout: Duration::from_secs_f64(c.stream_timeout_secs),
        })
    }
}

/// The writer's side of the hand-off: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct StreamTee {
    tx: mpsc::Sender<Arc<Batch>>,
    /// Lines the hand-off had no room for (reported with the spool's drops).
    dropped: Arc<AtomicU64>,
}

impl StreamTee {
    /// Hands a batch the writer logs to the stream; when the worker is that far behind, its
    /// lines are left out of the stream (counted), and the writer goes on at once.
    pub fn offer(&self, batch: &Arc<Batch>) {
        if batch.is_empty() {
            return;
        }
        if self.tx.try_send(batch.clone()).is_err() {
            self.dropped
                .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
        }
    }

    /// Hands a batch over, waiting for room (benchmarks feeding the stream as fast as it
    /// goes; the writer uses [`StreamTee::offer`]).
    pub async fn offer_waiting(&self, batch: Arc<Batch>) {
        if !batch.is_empty() {
            let _ = self.tx.send(batch).await;
        }
    }
}

/// Starts the stream worker on `tracker`. It ends once every [`StreamTee`] clone is gone
/// (the writer ended), after putting what it could not send into the spool; from the
/// cancellation on it starts no new publishing.
pub fn start(
    settings: StreamSettings,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    metrics: Arc<Metrics>,
) -> StreamTee {
    let (tx, rx) = mpsc::channel(HANDOFF_BATCHES);
    let dropped = Arc::new(AtomicU64::new(0));
    let worker = worker::Worker::new(settings, rx, dropped.clone(), events, cancel, metrics);
    tracker.spawn(worker.run());
    StreamTee { tx, dropped }
}
