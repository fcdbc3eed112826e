//! Lines per folder and UTC day, for `status`: what this process wrote, plus what the files
//! already held (counted off the write path, beside the writer).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use tracing::debug;

use super::SERVER_FOLDER;
use crate::chat::day_files::count_lines_upto;
use crate::chat::names::RoomMap;

/// Lines written per folder and UTC day, for `status`.
#[derive(Debug, Default)]
pub struct Counters {
    per_folder: RoomMap<Arc<str>, Count>,
}

/// The latest day of one folder.
#[derive(Debug, Clone, Copy)]
struct Count {
    day: i32,
    lines: u64,
    /// The lines the file held before this process wrote to it are included.
    complete: bool,
}

impl Counters {
    /// Lines of `day` in `folder`'s file; `None` while the lines it held before this process
    /// opened it are still being counted (or it was never opened today).
    pub fn lines(&self, folder: &str, day: i32) -> Option<u64> {
        self.per_folder
            .get(folder)
            .filter(|c| c.day == day && c.complete)
            .map(|c| c.lines)
    }

    /// Lines of `day` over every room (not the server folder).
    pub fn total(&self, day: i32) -> u64 {
        self.per_folder
            .iter()
            .filter(|(f, c)| c.day == day && f.as_ref() != SERVER_FOLDER)
            .map(|(_, c)| c.lines)
            .sum()
    }

    /// Whether `folder`'s count for `day` is started (or a later day's is, which makes
    /// `day`'s irrelevant).
    pub(super) fn known(&self, folder: &str, day: i32) -> bool {
        self.per_folder.get(folder).is_some_and(|c| c.day >= day)
    }

    /// Starts the count of `day`; `complete` when the file held nothing before.
    pub(super) fn start(&mut self, folder: &Arc<str>, day: i32, complete: bool) {
        let fresh = Count {
            day,
            lines: 0,
            complete,
        };
        let entry = self.per_folder.entry(folder.clone()).or_insert(fresh);
        if entry.day < day {
            *entry = fresh;
        }
    }

    pub(super) fn add(&mut self, folder: &Arc<str>, day: i32, n: u64) {
        let entry = self.per_folder.entry(folder.clone()).or_insert(Count {
            day,
            lines: 0,
            complete: false,
        });
        if entry.day < day {
            *entry = Count {
                day,
                lines: 0,
                complete: false,
            };
        }
        if entry.day == day {
            entry.lines += n;
        }
    }

    /// The lines the file held before this process wrote to it, once counted.
    pub(super) fn add_existing(&mut self, folder: &Arc<str>, day: i32, n: u64) {
        if let Some(entry) = self.per_folder.get_mut(folder) {
            if entry.day == day && !entry.complete {
                entry.lines += n;
                entry.complete = true;
            }
        }
    }
}

/// A day whose earlier lines are still to be counted: the first `len` bytes of each file
/// (its plain and its compressed file).
#[derive(Debug)]
pub(super) struct CountJob {
    pub(super) folder: Arc<str>,
    pub(super) day: i32,
    pub(super) files: Vec<(PathBuf, u64)>,
}

/// The count of reopened files' earlier lines running beside the writer (one at a time).
#[derive(Debug, Default)]
pub(super) struct Counting {
    task: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Counting {
    /// Starts counting the files waiting in `jobs`, unless a count is running.
    pub(super) fn start(&mut self, jobs: &mut Vec<CountJob>, counters: &Arc<Mutex<Counters>>) {
        if self.task.is_none() && !jobs.is_empty() {
            let jobs = std::mem::take(jobs);
            let counters = counters.clone();
            let stop = self.stop.clone();
            self.task = Some(tokio::task::spawn_blocking(move || {
                count_existing(jobs, &counters, &stop)
            }));
        }
    }

    pub(super) fn running(&self) -> bool {
        self.task.is_some()
    }

    /// Resolves when the running count ends (cancel-safe: the task stays until it has).
    pub(super) async fn finished(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
        }
        self.task = None;
    }

    /// Stops a running count (on shutdown, where its figures no longer matter).
    pub(super) async fn stop(self) {
        if let Some(task) = self.task {
            self.stop.store(true, Ordering::Relaxed);
            let _ = task.await;
        }
    }
}

/// Counts what the files held before this process wrote to them (runs beside the writer).
fn count_existing(jobs: Vec<CountJob>, counters: &Mutex<Counters>, stop: &AtomicBool) {
    for job in jobs {
        let mut lines = 0;
        for (path, len) in &job.files {
            match count_lines_upto(path, *len, stop) {
                Ok(Some(n)) => lines += n,
                Ok(None) => return,
                Err(e) => {
                    debug!(path = %path.display(), error = %e, "cannot count the chat log's lines")
                }
            }
        }
        counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_existing(&job.folder, job.day, lines);
    }
}
