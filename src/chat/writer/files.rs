//! The open day files: buffers, rotation at midnight, least-recently-used eviction within the
//! open-file cap, flush/fsync/idle close, and the repair on reopening (a cut line of a plain
//! file, a cut frame of a compressed one). A compressed file gets one zstd frame and its
//! mark per write-out of its buffer (`chat::frames`), from the writer's one compression
//! context.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, error, warn};

use prometheus_client::metrics::counter::Counter;

use super::budget::Cap;
use super::counters::{CountJob, Counters};
use super::days::{date_of_day, day_path, zst_path};
use super::queue::Batch;
use super::Compression;
use super::SERVER_FOLDER;
use crate::chat::frames::{self, Encoder, Mark, UNKNOWN_TIME};
use crate::chat::names::RoomMap;
use crate::metrics::Metrics;

/// A file buffer is written out when it grows past this.
const FILE_BUFFER: usize = 16 * 1024;
/// A file nobody wrote to for this long is closed (after its data reached the disk).
const IDLE_CLOSE: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(super) struct Files {
    dir: PathBuf,
    pub(super) open: RoomMap<Arc<str>, DayFile>,
    cap: Cap,
    /// Bumped on every use of a file, for the least-recently-used eviction.
    used: u64,
    /// Files closed (evicted) before their data was fsynced; the next sync tick does it.
    pub(super) unsynced_closed: HashSet<PathBuf>,
    /// Files whose earlier lines are to be counted (off the write path).
    pub(super) to_count: Vec<CountJob>,
    pub(super) counters: Arc<Mutex<Counters>>,
    dropped: Arc<AtomicU64>,
    /// When a write error was last logged (one line per minute is enough).
    error_logged: Option<std::time::Instant>,
    /// `recbot_chat_lines_total`: each room's counter, looked up once.
    lines: LineCounters,
    compression: Compression,
    sink: Sink,
}

/// Where write-outs are prepared: the compression context (none for plain files) and the
/// frame being written.
#[derive(Debug, Default)]
pub(super) struct Sink {
    encoder: Option<Encoder>,
    out: Vec<u8>,
}

/// Each room's `recbot_chat_lines_total` counter, kept until the metrics drop a login's
/// series (a login no longer watched): then looked up again.
#[derive(Debug)]
struct LineCounters {
    metrics: Arc<Metrics>,
    generation: u64,
    rooms: HashMap<Arc<str>, Counter>,
}

impl LineCounters {
    fn add(&mut self, room: &Arc<str>, n: u64) {
        if room.as_ref() == SERVER_FOLDER {
            return; // Not a login.
        }
        let generation = self.metrics.dropped_generation();
        if generation != self.generation {
            self.generation = generation;
            self.rooms.clear();
        }
        if let Some(counter) = self.rooms.get(room) {
            counter.inc_by(n);
            return;
        }
        let counter = self.metrics.login(room).chat_lines;
        counter.inc_by(n);
        self.rooms.insert(room.clone(), counter);
    }
}

#[derive(Debug)]
pub(super) struct DayFile {
    day: i32,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    buffered_lines: u64,
    /// The latest line time in `buf` (a compressed file's mark holds it).
    latest_ms: i64,
    /// Written as zstd frames (`DD.jsonl.zst`).
    compressed: bool,
    /// The file's length: where the next frame starts.
    len: u64,
    unsynced: bool,
    last_write: std::time::Instant,
    /// [`Files::used`] when last used.
    last_used: u64,
}

impl Files {
    pub(super) fn new(
        dir: PathBuf,
        cap: Cap,
        counters: Arc<Mutex<Counters>>,
        dropped: Arc<AtomicU64>,
        metrics: Arc<Metrics>,
        compression: Compression,
    ) -> Files {
        let encoder = match compression {
            Compression::None => None,
            Compression::Zstd { level } => match Encoder::new(level) {
                Ok(e) => Some(e),
                Err(e) => {
                    error!(error = %e, level, "cannot set up zstd; writing plain day files");
                    None
                }
            },
        };
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
            lines: LineCounters {
                generation: metrics.dropped_generation(),
                metrics,
                rooms: HashMap::new(),
            },
            compression,
            sink: Sink {
                encoder,
                out: Vec::new(),
            },
        }
    }

    pub(super) fn empty_like(&self) -> Files {
        Files::new(
            self.dir.clone(),
            self.cap.clone(),
            self.counters.clone(),
            self.dropped.clone(),
            self.lines.metrics.clone(),
            self.compression,
        )
    }

    pub(super) fn append(&mut self, batch: &Batch) {
        let mut start = 0;
        let mut counts: Vec<(Arc<str>, i32, u64)> = Vec::new();
        for entry in &batch.entries {
            let bytes = &batch.buf[start..entry.end];
            start = entry.end;
            match self.file(&entry.folder, entry.day) {
                Ok(()) => {
                    let f = self.open.get_mut(&entry.folder).expect("just opened");
                    f.buf.extend_from_slice(bytes);
                    f.buffered_lines += 1;
                    f.latest_ms = f.latest_ms.max(entry.time_ms);
                    if f.buf.len() >= FILE_BUFFER {
                        let result = f.write_out(&mut self.sink);
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
        for (folder, _, n) in &counts {
            self.lines.add(folder, *n);
        }
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for (folder, day, n) in counts {
            counters.add(&folder, day, n);
        }
    }

    /// The open file of `folder` for `day`, rotating or opening as needed.
    fn file(&mut self, folder: &Arc<str>, day: i32) -> std::io::Result<()> {
        let reopen = match self.open.get(folder) {
            Some(f) => f.day != day,
            None => true,
        };
        if reopen {
            self.reopen(folder, day)?;
        }
        self.used += 1;
        if let Some(f) = self.open.get_mut(folder) {
            f.last_used = self.used;
        }
        Ok(())
    }

    fn reopen(&mut self, folder: &Arc<str>, day: i32) -> std::io::Result<()> {
        if let Some(mut old) = self.open.remove(folder) {
            if day > old.day {
                // Day rotation: the old day's file is complete; put it on disk now.
                let result = old.close(&mut self.sink);
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
        let compressed = self.sink.encoder.is_some();
        let opened = DayFile::open(&self.dir, folder, day, compressed)?;
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if !counters.known(folder, day) {
            let mut files = vec![(opened.file.path.clone(), opened.existing_len)];
            // The day's file of the other kind (written before the compression changed).
            let date = date_of_day(day);
            let other = match compressed {
                true => day_path(&self.dir, folder, date),
                false => zst_path(&self.dir, folder, date),
            };
            if let Ok(meta) = std::fs::metadata(&other) {
                files.push((other, meta.len()));
            }
            files.retain(|(_, len)| *len > 0);
            counters.start(folder, day, files.is_empty());
            if !files.is_empty() {
                self.to_count.push(CountJob {
                    folder: folder.clone(),
                    day,
                    files,
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
        let result = f.write_out(&mut self.sink);
        self.check(result, folder);
        if f.unsynced {
            self.unsynced_closed.insert(f.path.clone());
        }
    }

    pub(super) fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (folder, f) in &mut self.open {
            // A quiet room gives its buffer back; a busy one keeps it.
            let quiet = f.buf.len() < FILE_BUFFER / 2;
            if let Err(e) = f.write_out(&mut self.sink) {
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

    pub(super) fn sync_all(&mut self) {
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

    pub(super) fn close_idle(&mut self) {
        let idle: Vec<Arc<str>> = self
            .open
            .iter()
            .filter(|(_, f)| f.last_write.elapsed() >= IDLE_CLOSE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            if let Some(mut f) = self.open.remove(&key) {
                let result = f.close(&mut self.sink);
                self.check(result, &key);
            }
        }
    }

    pub(super) fn close_all(&mut self) {
        for (folder, mut f) in std::mem::take(&mut self.open) {
            let result = f.close(&mut self.sink);
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

pub(super) struct Opened {
    file: DayFile,
    /// Bytes already in the file (with a cut last line completed).
    existing_len: u64,
}

impl DayFile {
    pub(super) fn open(
        dir: &Path,
        folder: &str,
        day: i32,
        compressed: bool,
    ) -> std::io::Result<Opened> {
        let date = date_of_day(day);
        let path = match compressed {
            true => zst_path(dir, folder, date),
            false => day_path(dir, folder, date),
        };
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
        if len > 0 && compressed {
            len = repair_frames(&mut file, &path, len)?;
        } else if len > 0 {
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
                latest_ms: i64::MIN,
                compressed,
                len,
                unsynced: false,
                last_write: std::time::Instant::now(),
                last_used: 0,
            },
            existing_len: len,
        })
    }

    /// Writes the buffer out (a compressed file: as one frame and its mark); on failure the
    /// buffered lines are lost (returned for counting).
    fn write_out(&mut self, sink: &mut Sink) -> Result<(), (u64, std::io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = match sink.encoder.as_mut().filter(|_| self.compressed) {
            Some(encoder) => {
                sink.out.clear();
                let written = encoder
                    .frame(&self.buf, self.len, self.latest_ms, &mut sink.out)
                    .and_then(|()| self.file.write_all(&sink.out))
                    .map(|()| sink.out.len());
                if sink.out.capacity() > 4 * FILE_BUFFER {
                    sink.out = Vec::new();
                }
                written
            }
            None => self.file.write_all(&self.buf).map(|()| self.buf.len()),
        };
        // Where the next frame starts (after a failed write, wherever the file now ends).
        self.len = match &result {
            Ok(n) => self.len + *n as u64,
            Err(_) => self.file.metadata().map_or(self.len, |m| m.len()),
        };
        let lines = self.buffered_lines;
        self.buf.clear();
        self.buffered_lines = 0;
        self.latest_ms = i64::MIN;
        if self.buf.capacity() > 4 * FILE_BUFFER {
            self.buf = Vec::new();
        }
        self.last_write = std::time::Instant::now();
        self.unsynced = true;
        result.map(drop).map_err(|e| (lines, e))
    }

    fn close(&mut self, sink: &mut Sink) -> Result<(), (u64, std::io::Error)> {
        self.write_out(sink)?;
        if self.unsynced {
            self.file.sync_data().map_err(|e| (0, e))?;
            self.unsynced = false;
        }
        debug!(path = %self.path.display(), "chat log closed");
        Ok(())
    }
}

/// A compressed file that does not end in a whole frame and its mark (a crash cut it) is cut
/// back to its last whole frame, which gets a mark if it lost its own; returns the new
/// length. A file that ends whole costs two small reads.
fn repair_frames(file: &mut File, path: &Path, len: u64) -> std::io::Result<u64> {
    if frames::ends_whole(file, len)? {
        return Ok(len);
    }
    let sound = frames::sound_end(file)?;
    warn!(
        path = %path.display(),
        cut = len - sound.end,
        "chat log ended in a cut frame; cutting it off and going on after the last whole one"
    );
    file.set_len(sound.end)?;
    let mut len = sound.end;
    if let Some(start) = sound.unmarked {
        let mark = Mark {
            start,
            latest_ms: UNKNOWN_TIME,
        };
        file.write_all(&mark.bytes())?;
        len += frames::MARK_LEN as u64;
    }
    Ok(len)
}
