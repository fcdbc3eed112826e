//! The bounded queue between connections and the writer: batches of encoded lines, the permits
//! that bound them, and the count of lines dropped when the writer falls behind.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::days::day_of;

/// Encoded lines from one read of one connection, and where each goes.
#[derive(Debug, Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    pub entries: Vec<Entry>,
}

/// One line of a [`Batch`]: `buf[previous end..end]`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The room's login, or [`SERVER_FOLDER`].
    pub folder: Arc<str>,
    pub day: i32,
    /// What the line is dated by (`tmi-sent-ts`, else the receive time), in ms.
    pub time_ms: i64,
    pub end: usize,
}

impl Batch {
    pub fn push_entry(&mut self, folder: Arc<str>, time_ms: i64) {
        self.entries.push(Entry {
            folder,
            day: day_of(time_ms),
            time_ms,
            end: self.buf.len(),
        });
    }

    /// Drops the bytes of a line encoded after the last entry (e.g. a duplicate).
    pub fn discard_tail(&mut self) {
        let end = self.entries.last().map_or(0, |e| e.end);
        self.buf.truncate(end);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
pub(super) enum Message {
    Lines(Batch, OwnedSemaphorePermit),
    /// Write every buffer out, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending side, cloned into every connection.
#[derive(Debug, Clone)]
pub struct LineQueue {
    pub(super) tx: mpsc::Sender<Message>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) capacity: usize,
    /// How long a connection waits for room in the queue before dropping its lines.
    pub(super) patience: Duration,
    pub(super) dropped: Arc<AtomicU64>,
    /// Rooms being logged, which sizes the open-file cap.
    pub(super) rooms: Arc<AtomicUsize>,
}

impl LineQueue {
    /// Tells the writer how many rooms are logged (with `max_open_files = 0`, each keeps its
    /// file open).
    pub fn set_rooms(&self, rooms: usize) {
        self.rooms.store(rooms, Ordering::Relaxed);
    }

    /// Queues a batch; waits up to the queue's patience when the writer is behind, then
    /// drops the batch and counts its lines. Returns `false` when the lines were dropped.
    pub async fn push(&self, batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        let lines = batch.entries.len();
        let want = lines.min(self.capacity) as u32;
        let permit = match self.permits.clone().try_acquire_many_owned(want) {
            Ok(p) => Some(p),
            Err(_) => {
                tokio::time::timeout(self.patience, self.permits.clone().acquire_many_owned(want))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        let Some(permit) = permit else {
            self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            return false;
        };
        if self.tx.send(Message::Lines(batch, permit)).await.is_err() {
            self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Resolves once everything queued before it is in the files (not necessarily on disk).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Lines dropped so far (queue full or a write failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
