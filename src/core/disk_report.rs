//! The `disk` command's measurements: free space and the sizes of the recordings and chat
//! folders. Walking the folders reads every entry (tens of thousands of chat files on a slow
//! disk), so it runs on the blocking pool, at most one walk at a time, and its result is kept
//! for `[storage] disk_report_secs`: a flood of `disk` commands shares one walk instead of
//! competing with the recorder for the disk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Storage;
use crate::recorder::disk::{self, DiskUsage};

/// One measurement of the disk.
#[derive(Debug, Clone)]
pub(super) struct DiskFigures {
    pub usage: DiskUsage,
    pub recordings: PathBuf,
    pub recordings_bytes: u64,
    pub chat: PathBuf,
    pub chat_bytes: u64,
    /// When the walk finished.
    pub at: Instant,
}

/// The shared, cached measurement. Cheap to clone (one per `disk` answer task).
#[derive(Debug, Clone)]
pub(super) struct DiskReports {
    storage: Storage,
    max_age: Duration,
    /// Held during a walk: requests arriving meanwhile wait for it and take its result.
    last: Arc<Mutex<Option<DiskFigures>>>,
    /// Walks made so far (status and tests).
    walks: Arc<AtomicU64>,
}

impl DiskReports {
    pub(super) fn new(storage: &Storage) -> DiskReports {
        DiskReports {
            storage: storage.clone(),
            max_age: Duration::from_secs(storage.disk_report_secs),
            last: Arc::default(),
            walks: Arc::default(),
        }
    }

    /// A measurement no older than `max_age`, or one made after this call began (so requests
    /// that queued behind a walk share it even with caching off).
    pub(super) async fn figures(&self) -> anyhow::Result<DiskFigures> {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(figures) = last.as_ref() {
            if figures.at >= asked || figures.at.elapsed() <= self.max_age {
                return Ok(figures.clone());
            }
        }
        let figures = self.walk().await?;
        *last = Some(figures.clone());
        Ok(figures)
    }

    async fn walk(&self) -> anyhow::Result<DiskFigures> {
        self.walks.fetch_add(1, Ordering::Relaxed);
        let recordings = self.storage.recordings_dir();
        let chat = self.storage.chat_dir();
        let usage = disk::usage(&recordings).await?;
        let (r, c) = (recordings.clone(), chat.clone());
        let (recordings_bytes, chat_bytes) = tokio::task::spawn_blocking(move || {
            (
                disk::folder_size_blocking(&r),
                disk::folder_size_blocking(&c),
            )
        })
        .await?;
        Ok(DiskFigures {
            usage,
            recordings,
            recordings_bytes,
            chat,
            chat_bytes,
            at: Instant::now(),
        })
    }

    /// Folder walks made so far.
    #[cfg(test)]
    pub(super) fn walks(&self) -> u64 {
        self.walks.load(Ordering::Relaxed)
    }
}
