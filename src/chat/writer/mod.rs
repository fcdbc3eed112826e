//! The chat log writer: owns the day files `{chat_dir}/{login}/{YYYY}/{MM}/{DD}.jsonl[.zst]` and the
//! bounded queue that feeds them. Connections hand over batches of encoded lines through a
//! [`LineQueue`]; when the writer falls behind for longer than the queue's patience, lines are
//! counted as dropped (reported as `ChatDropped`), never buffered without limit.
//!
//! File I/O runs on the blocking pool in short hops (the open files move in and out of
//! `spawn_blocking`), so the runtime never blocks and paused-time tests still advance.
//! Buffers reach the files at least every `flush_interval`, the disk every `fsync_interval`,
//! on day rotation and on shutdown.
//!
//! Reopening a day file costs a few system calls, never a read of the file: the lines a file
//! already held (after a restart) are counted once per day, off the write path. At most
//! `max_open_files` files are open (by default as many as there are rooms, within the
//! process's open-file limit); beyond that the least recently used one is closed, and its
//! fsync waits for the next sync tick.

mod budget;
mod counters;
mod days;
mod files;
mod queue;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, warn};

use budget::{fd_budget, Cap};
pub use counters::Counters;
use counters::Counting;
pub use days::{date_of_day, day_of, day_of_date, day_path, zst_path};
use files::Files;
use queue::Message;
pub use queue::{Batch, Entry, LineQueue};

use crate::chat::stream::StreamTee;

/// Folder for lines that belong to no room (server lines, malformed lines). Not a valid login,
/// so it can never collide with one.
pub const SERVER_FOLDER: &str = "tmi.twitch.tv";
/// Queued batches written in one trip to the blocking pool, at most.
const MAX_BATCHES_PER_TRIP: usize = 64;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub flush_interval: Duration,
    pub fsync_interval: Duration,
    pub queue_lines: usize,
    pub patience: Duration,
    /// Day files open at once; 0: one per room, within the process's open-file limit.
    pub max_open_files: usize,
    pub compression: Compression,
}

/// How day files are written: plain `DD.jsonl`, or `DD.jsonl.zst` (zstd frames, see
/// `chat::frames`) at a zstd level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd { level: i32 },
}

/// Creates the queue and the writer task (to be spawned on a tracker). The task ends once
/// every [`LineQueue`] clone is gone, after writing and fsyncing everything.
pub fn writer(
    settings: WriterSettings,
    metrics: Arc<crate::metrics::Metrics>,
) -> (
    LineQueue,
    Arc<Mutex<Counters>>,
    impl std::future::Future<Output = ()> + Send,
) {
    writer_with_stream(settings, metrics, None)
}

/// [`writer`], every batch it writes also handed to the chat stream (`chat::stream`) when
/// `stream` is set; the hand-off never waits.
pub fn writer_with_stream(
    settings: WriterSettings,
    metrics: Arc<crate::metrics::Metrics>,
    stream: Option<StreamTee>,
) -> (
    LineQueue,
    Arc<Mutex<Counters>>,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = mpsc::channel(settings.queue_lines);
    let dropped = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(Mutex::new(Counters::default()));
    let rooms = Arc::new(AtomicUsize::new(0));
    let queue = LineQueue {
        tx,
        permits: Arc::new(Semaphore::new(settings.queue_lines)),
        capacity: settings.queue_lines,
        patience: settings.patience,
        dropped: dropped.clone(),
        rooms: rooms.clone(),
    };
    let budget = fd_budget();
    if settings.max_open_files > budget {
        warn!(
            max_open_files = settings.max_open_files,
            budget, "max_open_files is above what the open-file limit allows; keeping fewer open"
        );
    }
    let cap = Cap {
        configured: settings.max_open_files,
        rooms,
        budget,
    };
    let files = Files::new(
        settings.dir.clone(),
        cap,
        counters.clone(),
        dropped,
        metrics,
        settings.compression,
    );
    (queue, counters, run(rx, files, settings, stream))
}

/// The writer task: writes queued lines, flushes on the flush tick, syncs and closes idle
/// files on the sync tick, and counts reopened files' earlier lines beside it.
async fn run(
    mut rx: mpsc::Receiver<Message>,
    mut files: Files,
    settings: WriterSettings,
    stream: Option<StreamTee>,
) {
    let mut flush = tokio::time::interval(settings.flush_interval);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(settings.fsync_interval);
    sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    let mut counting = Counting::default();
    loop {
        counting.start(&mut files.to_count, &files.counters);
        tokio::select! {
            _ = counting.finished(), if counting.running() => {}
            message = rx.recv() => match message {
                Some(Message::Lines(batch, permit)) => {
                    let interval = settings.flush_interval;
                    let first = (batch, permit);
                    files = write_lines(&mut rx, files, first, &mut last_flush, interval, &stream)
                        .await;
                }
                Some(Message::Flush(done)) => {
                    files = blocking(files, Files::flush_all).await;
                    let _ = done.send(());
                }
                None => break,
            },
            _ = flush.tick() => {
                files = blocking(files, Files::flush_all).await;
                last_flush = Instant::now();
            }
            _ = sync.tick() => {
                files = blocking(files, |f| {
                    f.flush_all();
                    f.sync_all();
                    f.close_idle();
                }).await;
            }
        }
    }
    let _ = blocking(files, Files::close_all).await;
    counting.stop().await;
    debug!("chat log writer stopped; every line is on disk");
}

/// Writes `first` and whatever else is already queued in the same trip to the blocking pool
/// (one thread hand-over per trip, not per batch); answers a flush request met on the way.
async fn write_lines(
    rx: &mut mpsc::Receiver<Message>,
    files: Files,
    first: (Batch, OwnedSemaphorePermit),
    last_flush: &mut Instant,
    flush_interval: Duration,
    stream: &Option<StreamTee>,
) -> Files {
    let mut batches = vec![first];
    let mut flush_after = None;
    while batches.len() < MAX_BATCHES_PER_TRIP {
        match rx.try_recv() {
            Ok(Message::Lines(b, p)) => batches.push((b, p)),
            Ok(Message::Flush(done)) => {
                flush_after = Some(done);
                break;
            }
            Err(_) => break,
        }
    }
    let due = last_flush.elapsed() >= flush_interval;
    let flush = due || flush_after.is_some();
    // Shared with the stream (no copy here); the permits go when the files have the lines.
    let batches: Vec<(Arc<Batch>, OwnedSemaphorePermit)> = batches
        .into_iter()
        .map(|(batch, permit)| (Arc::new(batch), permit))
        .collect();
    if let Some(stream) = stream {
        for (batch, _) in &batches {
            stream.offer(batch);
        }
    }
    let files = blocking(files, move |f| {
        for (batch, _) in &batches {
            f.append(batch);
        }
        // Under steady load the tick may lose the race with the queue.
        if flush {
            f.flush_all();
        }
        drop(batches);
    })
    .await;
    if flush {
        *last_flush = Instant::now();
    }
    if let Some(done) = flush_after {
        let _ = done.send(());
    }
    files
}

/// Runs `op` on the blocking pool with the files moved there and back.
async fn blocking<F>(mut files: Files, op: F) -> Files
where
    F: FnOnce(&mut Files) + Send + 'static,
{
    let fallback = files.empty_like();
    match crate::blocking::run(move || {
        op(&mut files);
        files
    })
    .await
    {
        Ok(files) => files,
        Err(e) => {
            error!(error = %e, "chat log writer step failed; reopening files");
            fallback
        }
    }
}
