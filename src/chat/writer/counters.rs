//! Lines per folder and UTC day, for `status`: what this process wrote, plus what the files
//! already held (counted off the write path, beside the writer).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use tracing::debug;

use super::SERVER_FOLDER;
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

/// A day file whose earlier lines are still to be counted: the first `len` bytes of `path`.
#[derive(Debug)]
pub(super) struct CountJob {
    pub(super) folder: Arc<str>,
    pub(super) day: i32,
    pub(super) path: PathBuf,
    pub(super) len: u64,
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
        match count_lines_upto(&job.path, job.len, stop) {
            Ok(Some(n)) => counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_existing(&job.folder, job.day, n),
            Ok(None) => return,
            Err(e) => {
                debug!(path = %job.path.display(), error = %e, "cannot count the chat log's lines")
            }
        }
    }
}

/// Lines in a file.
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    let never = AtomicBool::new(false);
    count_lines_upto(path, u64::MAX, &never).map(Option::unwrap_or_default)
}

/// Lines in the first `len` bytes of a file; `None` when `stop` was set meanwhile.
fn count_lines_upto(path: &Path, len: u64, stop: &AtomicBool) -> std::io::Result<Option<u64>> {
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let read = file.read(&mut buf)?;
        if read == 0 {
            return Ok(Some(n));
        }
        n += memchr::memchr_iter(b'\n', &buf[..read]).count() as u64;
    }
}
