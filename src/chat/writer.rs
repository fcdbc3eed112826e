//! The chat log writer: owns the day files `{chat_dir}/{login}/{YYYY}/{MM}/{DD}.jsonl` and the
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

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use super::names::RoomMap;

/// Folder for lines that belong to no room (server lines, malformed lines). Not a valid login,
/// so it can never collide with one.
pub const SERVER_FOLDER: &str = "tmi.twitch.tv";

/// A file buffer is written out when it grows past this.
const FILE_BUFFER: usize = 16 * 1024;
/// Queued batches written in one trip to the blocking pool, at most.
const MAX_BATCHES_PER_TRIP: usize = 64;
/// A file nobody wrote to for this long is closed (after its data reached the disk).
const IDLE_CLOSE: Duration = Duration::from_secs(300);
/// With `max_open_files = 0`: files kept open beyond one per room (the server folder, the
/// previous day's files around midnight)…
const AUTO_MARGIN: usize = 16;
/// …and at least this many.
const AUTO_MIN: usize = 64;
/// Descriptors left to the rest of the process (sockets, the database, recordings, uploads)
/// when the open-file limit is high; with a low limit, half of it.
const FD_RESERVE: u64 = 512;

/// Days since 1970-01-01 (UTC) of a time in ms.
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(86_400_000) as i32
}

pub fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default()
}

pub fn day_of_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// `{dir}/{folder}/{YYYY}/{MM}/{DD}.jsonl`.
pub fn day_path(dir: &Path, folder: &str, date: NaiveDate) -> PathBuf {
    dir.join(folder)
        .join(format!("{:04}", date.year()))
        .join(format!("{:02}", date.month()))
        .join(format!("{:02}.jsonl", date.day()))
}

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
    pub end: usize,
}

impl Batch {
    pub fn push_entry(&mut self, folder: Arc<str>, time_ms: i64) {
        self.entries.push(Entry {
            folder,
            day: day_of(time_ms),
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
enum Message {
    Lines(Batch, OwnedSemaphorePermit),
    /// Write every buffer out, then answer.
    Flush(oneshot::Sender<()>),
}

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
    fn known(&self, folder: &str, day: i32) -> bool {
        self.per_folder.get(folder).is_some_and(|c| c.day >= day)
    }

    /// Starts the count of `day`; `complete` when the file held nothing before.
    fn start(&mut self, folder: &Arc<str>, day: i32, complete: bool) {
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

    fn add(&mut self, folder: &Arc<str>, day: i32, n: u64) {
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
    fn add_existing(&mut self, folder: &Arc<str>, day: i32, n: u64) {
        if let Some(entry) = self.per_folder.get_mut(folder) {
            if entry.day == day && !entry.complete {
                entry.lines += n;
                entry.complete = true;
            }
        }
    }
}

/// The sending side, cloned into every connection.
#[derive(Debug, Clone)]
pub struct LineQueue {
    tx: mpsc::Sender<Message>,
    permits: Arc<Semaphore>,
    capacity: usize,
    /// How long a connection waits for room in the queue before dropping its lines.
    patience: Duration,
    dropped: Arc<AtomicU64>,
    /// Rooms being logged, which sizes the open-file cap.
    rooms: Arc<AtomicUsize>,
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
}

/// Creates the queue and the writer task (to be spawned on a tracker). The task ends once
/// every [`LineQueue`] clone is gone, after writing and fsyncing everything.
pub fn writer(
    settings: WriterSettings,
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
    let files = Files::new(settings.dir.clone(), cap, counters.clone(), dropped);
    (queue, counters, run(rx, files, settings))
}

/// How many day files may be open: raises the soft open-file limit to the hard one (chat
/// keeps a file per room open), then leaves room for everything else.
fn fd_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                info!(limit = ?limit.maximum, "raised the open-file limit for the chat log files");
                limit = getrlimit(Resource::Nofile);
            }
            Err(e) => debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    let soft = limit.current.unwrap_or(1 << 20);
    let budget = soft.saturating_sub(FD_RESERVE).max(soft / 2).max(4);
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// The open-file cap: configured, or one file per room (plus a margin) within the budget.
#[derive(Debug, Clone)]
struct Cap {
    configured: usize,
    rooms: Arc<AtomicUsize>,
    budget: usize,
}

impl Cap {
    fn get(&self) -> usize {
        let wanted = if self.configured > 0 {
            self.configured
        } else {
            (self.rooms.load(Ordering::Relaxed) + AUTO_MARGIN).max(AUTO_MIN)
        };
        wanted.min(self.budget).max(1)
    }
}

async fn run(mut rx: mpsc::Receiver<Message>, mut files: Files, settings: WriterSettings) {
    let mut flush = tokio::time::interval(settings.flush_interval);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(settings.fsync_interval);
    sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    let stop_counting = Arc::new(AtomicBool::new(false));
    let mut counting: Option<JoinHandle<()>> = None;
    loop {
        if counting.is_none() && !files.to_count.is_empty() {
            let jobs = std::mem::take(&mut files.to_count);
            let counters = files.counters.clone();
            let stop = stop_counting.clone();
            counting = Some(tokio::task::spawn_blocking(move || {
                count_existing(jobs, &counters, &stop)
            }));
        }
        tokio::select! {
            _ = async { counting.as_mut().expect("checked").await }, if counting.is_some() => {
                counting = None;
            }
            message = rx.recv() => match message {
                Some(Message::Lines(batch, permit)) => {
                    // Whatever else is already queued goes in the same trip to the blocking
                    // pool (one thread hand-over per trip, not per batch).
                    let mut batches = vec![(batch, permit)];
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
                    let due = last_flush.elapsed() >= settings.flush_interval;
                    let flush = due || flush_after.is_some();
                    files = blocking(files, move |f| {
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
                        last_flush = Instant::now();
                    }
                    if let Some(done) = flush_after {
                        let _ = done.send(());
                    }
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
    if let Some(counting) = counting {
        stop_counting.store(true, Ordering::Relaxed);
        let _ = counting.await;
    }
    debug!("chat log writer stopped; every line is on disk");
}

/// A day file whose earlier lines are still to be counted: the first `len` bytes of `path`.
#[derive(Debug)]
struct CountJob {
    folder: Arc<str>,
    day: i32,
    path: PathBuf,
    len: u64,
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

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    open: RoomMap<Arc<str>, DayFile>,
    cap: Cap,
    /// Bumped on every use of a file, for the least-recently-used eviction.
    used: u64,
    /// Files closed (evicted) before their data was fsynced; the next sync tick does it.
    unsynced_closed: HashSet<PathBuf>,
    /// Files whose earlier lines are to be counted (off the write path).
    to_count: Vec<CountJob>,
    counters: Arc<Mutex<Counters>>,
    dropped: Arc<AtomicU64>,
    /// When a write error was last logged (one line per minute is enough).
    error_logged: Option<std::time::Instant>,
}

#[derive(Debug)]
struct DayFile {
    day: i32,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    buffered_lines: u64,
    unsynced: bool,
    last_write: std::time::Instant,
    /// [`Files::used`] when last used.
    last_used: u64,
}

impl Files {
    fn new(
        dir: PathBuf,
        cap: Cap,
        counters: Arc<Mutex<Counters>>,
        dropped: Arc<AtomicU64>,
    ) -> Files {
        Files {
            dir,
            open: RoomMap::default(),
            cap,
            used: 0,
            unsynced_closed: HashSet::new(),
            to_count: Vec::new(),
            counters,
            dropped,
            error_logged: None,
        }
    }

    fn empty_like(&self) -> Files {
        Files::new(
            self.dir.clone(),
            self.cap.clone(),
            self.counters.clone(),
            self.dropped.clone(),
        )
    }

    fn append(&mut self, batch: &Batch) {
        let mut start = 0;
        let mut counts: Vec<(Arc<str>, i32, u64)> = Vec::new();
        for entry in &batch.entries {
            let bytes = &batch.buf[start..entry.end];
            start = entry.end;
            match self.file(&entry.folder, entry.day) {
                Ok(f) => {
                    f.buf.extend_from_slice(bytes);
                    f.buffered_lines += 1;
                    if f.buf.len() >= FILE_BUFFER {
                        let result = f.write_out();
                        self.check(result, &entry.folder);
                    }
                    match counts.last_mut() {
                        Some((folder, day, n)) if *folder == entry.folder && *day == entry.day => {
                            *n += 1
                        }
                        _ => counts.push((entry.folder.clone(), entry.day, 1)),
                    }
                }
                Err(e) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.report(&entry.folder, &e);
                }
            }
        }
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for (folder, day, n) in counts {
            counters.add(&folder, day, n);
        }
    }

    /// The open file of `folder` for `day`, rotating or opening as needed.
    fn file(&mut self, folder: &Arc<str>, day: i32) -> std::io::Result<&mut DayFile> {
        let reopen = match self.open.get(folder) {
            Some(f) => f.day != day,
            None => true,
        };
        if reopen {
            self.reopen(folder, day)?;
        }
        self.used += 1;
        let f = self.open.get_mut(folder).expect("just opened");
        f.last_used = self.used;
        Ok(f)
    }

    fn reopen(&mut self, folder: &Arc<str>, day: i32) -> std::io::Result<()> {
        if let Some(mut old) = self.open.remove(folder) {
            if day > old.day {
                // Day rotation: the old day's file is complete; put it on disk now.
                let result = old.close();
                self.check(result, folder);
            } else {
                // A late line of an earlier day; the current file is reopened next.
                self.close_unsynced(folder, old);
            }
        }
        let cap = self.cap.get();
        while self.open.len() >= cap && !self.open.is_empty() {
            self.evict();
        }
        let opened = DayFile::open(&self.dir, folder, day)?;
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if !counters.known(folder, day) {
            let empty = opened.existing_len == 0;
            counters.start(folder, day, empty);
            if !empty {
                self.to_count.push(CountJob {
                    folder: folder.clone(),
                    day,
                    path: opened.file.path.clone(),
                    len: opened.existing_len,
                });
            }
        }
        drop(counters);
        self.open.insert(folder.clone(), opened.file);
        Ok(())
    }

    /// Closes the least recently used file.
    fn evict(&mut self) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            if let Some(f) = self.open.remove(&key) {
                self.close_unsynced(&key, f);
            }
        }
    }

    /// Writes `f` out and closes it; its fsync is left to the next sync tick, so a busy
    /// writer with more rooms than open files does not wait for the disk on every switch.
    fn close_unsynced(&mut self, folder: &str, mut f: DayFile) {
        let result = f.write_out();
        self.check(result, folder);
        if f.unsynced {
            self.unsynced_closed.insert(f.path.clone());
        }
    }

    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (folder, f) in &mut self.open {
            // A quiet room gives its buffer back; a busy one keeps it.
            let quiet = f.buf.len() < FILE_BUFFER / 2;
            if let Err(e) = f.write_out() {
                failed.push((folder.clone(), e));
            }
            if quiet {
                f.buf = Vec::new();
            }
        }
        for (folder, e) in failed {
            self.check(Err(e), &folder);
        }
    }

    fn sync_all(&mut self) {
        let mut failed = Vec::new();
        for (folder, f) in &mut self.open {
            if f.unsynced {
                match f.file.sync_data() {
                    Ok(()) => f.unsynced = false,
                    Err(e) => failed.push((folder.to_string(), e)),
                }
            }
        }
        for path in std::mem::take(&mut self.unsynced_closed) {
            // fsync through a new descriptor reaches the data written through the closed one.
            if let Err(e) = File::open(&path).and_then(|f| f.sync_data()) {
                failed.push((path.display().to_string(), e));
            }
        }
        for (folder, e) in failed {
            self.report(&folder, &e);
        }
    }

    fn close_idle(&mut self) {
        let idle: Vec<Arc<str>> = self
            .open
            .iter()
            .filter(|(_, f)| f.last_write.elapsed() >= IDLE_CLOSE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            if let Some(mut f) = self.open.remove(&key) {
                let result = f.close();
                self.check(result, &key);
            }
        }
    }

    fn close_all(&mut self) {
        for (folder, mut f) in std::mem::take(&mut self.open) {
            let result = f.close();
            self.check(result, &folder);
        }
        self.sync_all();
    }

    /// A failed write loses the buffered lines: count them and say so.
    fn check(&mut self, result: Result<(), (u64, std::io::Error)>, folder: &str) {
        if let Err((lines, e)) = result {
            self.dropped.fetch_add(lines, Ordering::Relaxed);
            self.report(folder, &e);
        }
    }

    fn report(&mut self, folder: &str, e: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .error_logged
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60))
        {
            self.error_logged = Some(now);
            error!(folder, error = %e, dir = %self.dir.display(), "cannot write the chat log");
        }
    }
}

struct Opened {
    file: DayFile,
    /// Bytes already in the file (with a cut last line completed).
    existing_len: u64,
}

impl DayFile {
    fn open(dir: &Path, folder: &str, day: i32) -> std::io::Result<Opened> {
        let path = day_path(dir, folder, date_of_day(day));
        if let Some(parent) = path.parent() {
            // Owner-only: chat logs are not for other users of the machine.
            crate::archive::files::create_private_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut len = file.metadata()?.len();
        if len > 0 {
            // A crash may have cut the last line; start ours on a fresh line.
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                warn!(path = %path.display(), "chat log ended in a cut line; starting a new one");
                file.write_all(b"\n")?;
                len += 1;
            }
        }
        Ok(Opened {
            file: DayFile {
                day,
                path,
                file,
                buf: Vec::new(),
                buffered_lines: 0,
                unsynced: false,
                last_write: std::time::Instant::now(),
                last_used: 0,
            },
            existing_len: len,
        })
    }

    /// Writes the buffer out; on failure the buffered lines are lost (returned for counting).
    fn write_out(&mut self) -> Result<(), (u64, std::io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buf);
        let lines = self.buffered_lines;
        self.buf.clear();
        self.buffered_lines = 0;
        if self.buf.capacity() > 4 * FILE_BUFFER {
            self.buf = Vec::new();
        }
        self.last_write = std::time::Instant::now();
        self.unsynced = true;
        result.map_err(|e| (lines, e))
    }

    fn close(&mut self) -> Result<(), (u64, std::io::Error)> {
        self.write_out()?;
        if self.unsynced {
            self.file.sync_data().map_err(|e| (0, e))?;
            self.unsynced = false;
        }
        debug!(path = %self.path.display(), "chat log closed");
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_folders_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let chat = dir.path().join("chat");
        DayFile::open(&chat, "foo", day_of(1_764_000_000_000)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&chat), 0o700);
        let mut folder = day_path(&chat, "foo", date_of_day(day_of(1_764_000_000_000)));
        while folder.pop() && folder != chat {
            assert_eq!(mode(&folder), 0o700, "{}", folder.display());
        }
    }

    fn settings(dir: &Path, queue_lines: usize) -> WriterSettings {
        WriterSettings {
            dir: dir.to_path_buf(),
            flush_interval: Duration::from_millis(50),
            fsync_interval: Duration::from_millis(200),
            queue_lines,
            patience: Duration::from_millis(100),
            max_open_files: 2,
        }
    }

    fn batch(lines: &[(&str, i64, &str)]) -> Batch {
        let mut b = Batch::default();
        for (folder, ms, text) in lines {
            b.buf.extend_from_slice(text.as_bytes());
            b.buf.push(b'\n');
            b.push_entry(Arc::from(*folder), *ms);
        }
        b
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn days_and_paths() {
        let date = NaiveDate::from_ymd_opt(2017, 10, 5).unwrap();
        let day = day_of(1507246572675);
        assert_eq!(date_of_day(day), date);
        assert_eq!(day_of_date(date), day);
        assert_eq!(day_of(-1), -1);
        assert_eq!(
            day_path(Path::new("/c"), "ronni", date),
            PathBuf::from("/c/ronni/2017/10/05.jsonl")
        );
    }

    #[tokio::test]
    async fn writes_rotates_evicts_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, counters, task) = writer(settings(dir.path(), 1000));
        let task = tokio::spawn(task);
        let d0 = 20_000 * DAY;
        assert!(
            queue
                .push(batch(&[
                    ("a", d0 + 5, "a1"),
                    ("b", d0 + 6, "b1"),
                    ("a", d0 + DAY - 1, "a2"),
                    ("a", d0 + DAY, "a3 next day"),
                    ("c", d0, "c1 evicts one"),
                    ("a", d0 + DAY + 1, "a4"),
                ]))
                .await
        );
        queue.flush().await;
        let read = |folder: &str, day: i32| {
            std::fs::read_to_string(day_path(dir.path(), folder, date_of_day(day)))
                .unwrap_or_default()
        };
        let day0 = day_of(d0);
        assert_eq!(read("a", day0), "a1\na2\n");
        assert_eq!(read("a", day0 + 1), "a3 next day\na4\n");
        assert_eq!(read("b", day0), "b1\n");
        assert_eq!(read("c", day0), "c1 evicts one\n");
        {
            let c = counters.lock().unwrap();
            assert_eq!(c.lines("a", day0 + 1), Some(2));
            assert_eq!(c.lines("b", day0), Some(1));
        }
        drop(queue);
        task.await.unwrap();
        assert_eq!(read("a", day0 + 1), "a3 next day\na4\n");
    }

    #[tokio::test]
    async fn reopening_repairs_a_cut_line_and_counts_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000;
        let path = day_path(dir.path(), "a", date_of_day(day));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old1\nold2\ncut-of").unwrap();
        let (queue, counters, task) = writer(settings(dir.path(), 1000));
        let task = tokio::spawn(task);
        queue.push(batch(&[("a", day as i64 * DAY, "new")])).await;
        // The lines that were there are counted beside the writer.
        wait_for_count(&counters, "a", day, 4).await;
        drop(queue);
        task.await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "old1\nold2\ncut-of\nnew\n"
        );
    }

    async fn wait_for_count(counters: &Mutex<Counters>, folder: &str, day: i32, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = counters.lock().unwrap().lines(folder, day);
            if got == Some(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{folder}: counted {got:?}, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `rooms` day files of `day` already holding `lines` lines each.
    fn existing(dir: &Path, rooms: usize, day: i32, lines: usize) -> Vec<String> {
        let old = "o".repeat(99) + "\n";
        (0..rooms)
            .map(|r| {
                let folder = format!("room{r}");
                let path = day_path(dir, &folder, date_of_day(day));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, old.repeat(lines)).unwrap();
                folder
            })
            .collect()
    }

    #[tokio::test]
    async fn more_rooms_than_open_files_loses_and_recounts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000;
        let rooms = existing(dir.path(), 8, day, 1000);
        let mut s = settings(dir.path(), 64);
        s.max_open_files = 4;
        let (queue, counters, task) = writer(s);
        let task = tokio::spawn(task);
        // Round robin over twice as many rooms as open files: every line reopens a file.
        for i in 0..400 {
            let folder = rooms[i % rooms.len()].as_str();
            let text = format!("new{i}");
            assert!(
                queue
                    .push(batch(&[(folder, day as i64 * DAY, &text)]))
                    .await
            );
        }
        queue.flush().await;
        assert_eq!(queue.dropped(), 0);
        for (r, folder) in rooms.iter().enumerate() {
            wait_for_count(&counters, folder, day, 1050).await;
            let text =
                std::fs::read_to_string(day_path(dir.path(), folder, date_of_day(day))).unwrap();
            let new: Vec<&str> = text.lines().skip(1000).collect();
            let expected: Vec<String> = (0..50).map(|k| format!("new{}", k * 8 + r)).collect();
            assert_eq!(new, expected, "{folder}");
        }
        drop(queue);
        task.await.unwrap();
    }

    #[test]
    fn reopening_reads_nothing_and_closes_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000;
        let rooms = existing(dir.path(), 8, day, 10);
        let cap = Cap {
            configured: 4,
            rooms: Arc::default(),
            budget: 1000,
        };
        let counters = Arc::new(Mutex::new(Counters::default()));
        let mut files = Files::new(dir.path().to_path_buf(), cap, counters, Arc::default());
        let at = day as i64 * DAY;
        for i in 0..400 {
            files.append(&batch(&[(rooms[i % 8].as_str(), at, "x")]));
        }
        assert_eq!(files.open.len(), 4);
        // Each file's earlier lines are counted once per day, not on every reopen…
        assert_eq!(files.to_count.len(), 8);
        // …and a closed file's fsync waits for the sync tick instead of the next line.
        assert!(!files.unsynced_closed.is_empty());
        files.sync_all();
        assert!(files.unsynced_closed.is_empty());
        // Least recently *used*, not least recently written out (buffers are still unwritten).
        files.close_all();
        for folder in ["a", "b", "c", "d", "a", "e"] {
            files.append(&batch(&[(folder, at, "y")]));
        }
        let mut open: Vec<&str> = files.open.keys().map(|k| k.as_ref()).collect();
        open.sort();
        assert_eq!(open, ["a", "c", "d", "e"]);
    }

    #[tokio::test]
    async fn timer_flushes_without_being_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _, task) = writer(settings(dir.path(), 1000));
        let task = tokio::spawn(task);
        let day = 20_000;
        queue.push(batch(&[("a", day as i64 * DAY, "x")])).await;
        let path = day_path(dir.path(), "a", date_of_day(day));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap_or_default() != "x\n" {
            assert!(Instant::now() < deadline, "not flushed by the timer");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(queue);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        // The writer task is never run: the disk "cannot keep up" at all.
        let (queue, _, _task) = writer(settings(dir.path(), 100));
        let lines: Vec<(&str, i64, &str)> = (0..60).map(|_| ("a", 0, "x")).collect();
        assert!(queue.push(batch(&lines)).await);
        assert_eq!(queue.dropped(), 0);
        assert!(!queue.push(batch(&lines)).await, "over capacity");
        assert_eq!(queue.dropped(), 60);
        assert!(
            queue.push(batch(&lines[..40])).await,
            "what fits still goes"
        );
        assert_eq!(queue.dropped(), 60);
    }

    #[tokio::test]
    async fn an_unwritable_folder_counts_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the login's folder should be.
        std::fs::write(dir.path().join("a"), "not a folder").unwrap();
        let (queue, _, task) = writer(settings(dir.path(), 1000));
        let task = tokio::spawn(task);
        queue
            .push(batch(&[("a", 0, "x"), ("a", 1, "y"), ("b", 2, "z")]))
            .await;
        queue.flush().await;
        assert_eq!(queue.dropped(), 2);
        drop(queue);
        task.await.unwrap();
        assert_eq!(
            std::fs::read_to_string(day_path(dir.path(), "b", date_of_day(0))).unwrap(),
            "z\n"
        );
    }
}
