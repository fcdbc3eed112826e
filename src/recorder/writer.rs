//! The file being recorded: `<final name>.part`, appended to through a small buffer (bodies are
//! streamed, never held whole), truncated back when a segment download fails half-way, and
//! finally flushed, fsynced and renamed to its final name. File I/O runs on the blocking pool
//! with the file and buffer moved in and out, so the runtime threads never block and nothing
//! is copied twice. A write on the blocking pool is collected by whichever call comes next
//! when the caller stopped waiting for it (a cancelled download), so the file is never lost.
//! Each flush can also replace a small note next to the file (the progress checkpoint) in the
//! same trip to the blocking pool, after the data it describes. A note that fits in one page
//! is rewritten in place (one `pwrite` into a file kept open, padded with spaces to its
//! previous length): a killed process cannot tear a one-page write, and it costs a fifth of
//! the create + write + rename a larger note still gets (measured in the recorder benchmark,
//! where a note follows every segment of 100 streams).
//!
//! That note guards against a killed process only: the page cache survives a kill, not a power
//! cut, and the kernel may write the note's page back before the data it describes. So at a
//! bounded interval (`[recording] sync_interval_secs`, wall clock, ≈ media time for a live
//! stream) a flush also fsyncs the data, then writes the same note durably to a second file
//! (`<note>.synced`: temporary file, fsync, rename, folder fsync). The durable note therefore
//! only ever describes fsynced data; recovery falls back to it when the latest note claims more
//! than the file holds, so a power cut loses at most the unsynced tail.
//!
//! Write-behind: after each write the file's pages from the previous write on are given to
//! `posix_fadvise(DONTNEED)`, which on Linux starts their writeback at once (rather than when
//! the dirty limits force it on whichever thread is writing) and drops those already written
//! back: each range is advised twice, once to start its writeback, once (a write later) to
//! drop it. So 100 recordings do not fill memory with dirty and cached pages that the writing
//! threads must then reclaim. It changes nothing about durability: writeback started is not a
//! sync, the note and the durable note keep their rules. (`sync_file_range` would split the
//! two steps but has no safe binding here; `fadvise` does both.)
//!
//! The part's HLS index (`archive::index`), when it has one, rides along: its lines for a
//! segment are queued ([`PartFile::queue_index`]) and, once the segment's data is written,
//! appended to the index file in the same trip, before the checkpoint — gathered for up to
//! [`INDEX_BATCH`] segments or [`INDEX_EVERY`] (a write to a second file per segment was a
//! measurable share of the recorder's kernel time), always when the data is fsynced, and when
//! the part is finished. So the index of a part in progress lags its data by at most that, and
//! never lists data that is not written. The index is not fsynced while recording (an fsync of
//! a second file at every sync cost more than all its writes): a killed process loses nothing
//! of it (the page cache survives), a power cut at most its entries since the last writeback,
//! which only shortens the index recovery finishes; the finished index is written durably. An
//! index that cannot be written is dropped ([`PartFile::index_lost`]), never the recording.
//!
//! Temporary files recbot writes beside recordings end in [`TEMP_SUFFIX`](crate::archive::layout::TEMP_SUFFIX), never in `.part`:
//! recovery finishes only `.part` files, and removes stale temporaries at start-up.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::archive::files::{
    create_private_dir_all, finalize_file, write_atomically, write_durably,
};
use crate::archive::layout::{numbered, part_path_of, synced_note_path};
use crate::blocking;

/// Bytes gathered before one (vectored) write to the file. Each complete segment is written
/// anyway (crash safety), so this only splits segments larger than it; above a typical
/// segment (6.5 Mbit/s × 2 s ≈ 1.6 MB) it saves blocking-pool round trips and context switches
/// (measured: a quarter fewer, about 15 % less recorder CPU than with 512 KiB). Only streams
/// mid-download hold a buffer, so memory stays well below streams × this.
pub const FLUSH_AT: usize = 2 * 1024 * 1024;

/// A small file replaced whole after the data of a flush. Readers must accept trailing
/// whitespace (JSON does).
#[derive(Debug, Clone)]
pub struct Note {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Index lines of written segments are appended at least this often (and at every sync)…
pub const INDEX_EVERY: Duration = Duration::from_secs(10);
/// … and once this many segments are gathered.
pub const INDEX_BATCH: u32 = 5;

/// Default of `[recording] sync_interval_secs`: data and checkpoint fsynced at least this often.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Largest note rewritten in place: a write within one page at offset 0 is done whole or not
/// at all when the process is killed.
const NOTE_IN_PLACE_MAX: usize = 4096;

/// The note file kept open between flushes, and how long it is.
#[derive(Debug)]
struct NoteFile {
    path: PathBuf,
    file: File,
    len: usize,
}

/// What a write on the blocking pool hands back.
struct Written {
    file: File,
    note: Option<NoteFile>,
    index: Option<File>,
    index_failed: bool,
    /// Lines of written segments not appended yet.
    index_ready: Vec<u8>,
    chunks: Vec<Bytes>,
    bytes: u64,
    result: io::Result<()>,
    /// Whether this write fsynced the data (and then wrote the durable note).
    synced: bool,
}

#[derive(Debug)]
pub struct PartFile {
    final_path: PathBuf,
    part_path: PathBuf,
    /// `None` while a blocking write has it (see `in_flight`), or after such a write panicked.
    file: Option<File>,
    /// The note written by the last flush, open for the next one (also out while a write is).
    note: Option<NoteFile>,
    /// A write on the blocking pool, not collected yet.
    in_flight: Option<JoinHandle<Written>>,
    /// Bytes in that write.
    pending: u64,
    /// Received chunks not written yet (kept as they came: no copy before the write).
    buf: Vec<Bytes>,
    buffered: usize,
    on_disk: u64,
    /// Bytes known to be on the disk itself (fsynced), a prefix of `on_disk`.
    synced: u64,
    /// Write-behind: where the next advice starts (the start of the last write; what is
    /// before it was advised twice).
    behind: u64,
    /// Data and note are fsynced when a note comes this long after the last sync.
    sync_every: Duration,
    /// When the data was last fsynced; `None` before the first note (which is always synced,
    /// so a part's durable note exists from its start).
    last_sync: Option<tokio::time::Instant>,
    /// fsyncs of the data so far (figures and tests).
    syncs: u64,
    /// The durable note, once one was written: removed when the part is finished.
    durable: Option<PathBuf>,
    /// The part's HLS index, open for appending (also out while a write is).
    index: Option<File>,
    /// Index lines to append after the next flush's data.
    index_lines: Vec<u8>,
    /// Index lines of segments whose data is written, waiting for their append.
    index_ready: Vec<u8>,
    /// When index lines were last appended.
    index_appended: Option<tokio::time::Instant>,
    /// Segments whose index lines were gathered since.
    index_gathered: u32,
    /// An index was given and a write to it failed: it is incomplete.
    index_lost: bool,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl PartFile {
    /// Creates the folders and `<final>.part`. When the final name (or its `.part`) is taken,
    /// ` (2)`, ` (3)`, … is added before the extension: nothing is ever overwritten.
    pub async fn create(final_path: PathBuf) -> io::Result<PartFile> {
        let (final_path, part_path, file) = blocking::io(move || {
            if let Some(dir) = final_path.parent() {
                create_private_dir_all(dir)?;
            }
            for n in 1..1000u32 {
                let candidate = numbered(&final_path, n);
                if candidate.exists() {
                    continue;
                }
                let part = part_path_of(&candidate);
                match OpenOptions::new().append(true).create_new(true).open(&part) {
                    Ok(file) => return Ok((candidate, part, file)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(io::Error::other("no free file name after 999 tries"))
        })
        .await?;
        Ok(PartFile {
            final_path,
            part_path,
            file: Some(file),
            note: None,
            in_flight: None,
            pending: 0,
            buf: Vec::with_capacity(64),
            buffered: 0,
            on_disk: 0,
            synced: 0,
            behind: 0,
            sync_every: DEFAULT_SYNC_INTERVAL,
            last_sync: None,
            syncs: 0,
            durable: None,
            index: None,
            index_lines: Vec::new(),
            index_ready: Vec::new(),
            index_appended: None,
            index_gathered: 0,
            index_lost: false,
        })
    }

    /// How often (at most this long apart) a flush with a note also fsyncs the data and writes
    /// the durable note (`[recording] sync_interval_secs`).
    pub fn set_sync_interval(&mut self, every: Duration) {
        self.sync_every = every;
    }

    /// Gives the part its HLS index (opened, header written): lines queued with
    /// [`PartFile::queue_index`] are appended to it.
    pub fn set_index(&mut self, index: File) {
        self.index = Some(index);
    }

    /// Lines for the index, appended after the data of the next flush with a note (the
    /// segment's checkpoint) when that data is written; dropped when it is not.
    pub fn queue_index(&mut self, lines: impl FnOnce(&mut Vec<u8>)) {
        if self.index.is_some() || self.in_flight.is_some() {
            lines(&mut self.index_lines);
        }
    }

    /// Whether a write to the index failed (it was closed and misses entries since).
    pub fn index_lost(&self) -> bool {
        self.index_lost
    }

    /// Bytes fsynced to the disk so far.
    pub fn synced(&self) -> u64 {
        self.synced
    }

    /// How many times the data was fsynced.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    /// Bytes written so far (on disk, being written, and buffered).
    pub fn len(&self) -> u64 {
        self.on_disk + self.pending + self.buffered as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub async fn append(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.buffered += data.len();
        self.buf.push(data);
        if self.buffered >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the buffered chunks to the file (not fsynced).
    pub async fn flush(&mut self) -> io::Result<()> {
        self.flush_and_note(None).await
    }

    /// [`PartFile::flush`], then (when the data is written) replaces `note` — in the same trip
    /// to the blocking pool. A note that cannot be written is skipped: it is advisory. When a
    /// sync is due (see [`PartFile::set_sync_interval`]) the data is fsynced first and the note
    /// is also written durably to [`synced_note_path`]: data, then the durable note, then the
    /// latest note, so no durable note ever describes data that is not on the disk.
    pub async fn flush_and_note(&mut self, note: Option<Note>) -> io::Result<()> {
        self.settle().await?;
        if self.buf.is_empty() && note.is_none() {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        let sync = note.is_some()
            && self
                .last_sync
                .is_none_or(|at| now.duration_since(at) >= self.sync_every);
        let mut file = self.take_file()?;
        let mut note_file = self.note.take();
        let mut index = self.index.take();
        let index_lines = if note.is_some() {
            std::mem::take(&mut self.index_lines)
        } else {
            Vec::new()
        };
        let mut index_ready = std::mem::take(&mut self.index_ready);
        if !index_lines.is_empty() {
            self.index_gathered += 1;
        }
        let index_due = note.is_some()
            && (sync
                || self.index_gathered >= INDEX_BATCH
                || self
                    .index_appended
                    .is_none_or(|at| now.duration_since(at) >= INDEX_EVERY));
        if index_due {
            self.index_appended = Some(now);
            self.index_gathered = 0;
        }
        let chunks = std::mem::take(&mut self.buf);
        self.pending = std::mem::take(&mut self.buffered) as u64;
        let bytes = self.pending;
        if sync {
            self.last_sync = Some(now);
            self.durable = note.as_ref().map(|n| synced_note_path(&n.path));
        }
        let behind = self.behind.min(self.on_disk);
        self.behind = self.on_disk;
        let end = self.on_disk + bytes;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let mut result = write_all_vectored(&mut file, &chunks);
            if result.is_ok() {
                write_behind(&file, behind, end);
            }
            let mut synced = false;
            if sync && result.is_ok() {
                result = file.sync_data();
                synced = result.is_ok();
            }
            let mut index_failed = false;
            if result.is_ok() {
                index_ready.extend_from_slice(&index_lines);
                if index_due {
                    index_failed = !append_index(&mut index, &index_ready);
                    index_ready.clear();
                }
            }
            if let (Ok(()), Some(note)) = (&result, note) {
                if synced {
                    let durable = synced_note_path(&note.path);
                    if let Err(e) = write_durably(&durable, &note.bytes) {
                        tracing::debug!(error = %e, path = %durable.display(), "cannot write the durable note");
                    }
                }
                note_file = match replace_note(note_file, &note) {
                    Ok(open) => open,
                    Err(e) => {
                        tracing::debug!(error = %e, path = %note.path.display(), "cannot write the note");
                        None
                    }
                };
            }
            Written {
                file,
                note: note_file,
                index,
                index_failed,
                index_ready,
                chunks,
                bytes,
                result,
                synced,
            }
        }));
        self.settle().await
    }

    /// Collects the write on the blocking pool, if any: the file comes back, and the write's
    /// result is returned. Cancel-safe: when the caller stops waiting, the write stays here to
    /// be collected by the next call.
    async fn settle(&mut self) -> io::Result<()> {
        let Some(handle) = self.in_flight.as_mut() else {
            return Ok(());
        };
        let joined = handle.await;
        self.in_flight = None;
        self.pending = 0;
        let written = joined.map_err(|e| io::Error::other(format!("file task failed: {e}")))?;
        let Written {
            file,
            note,
            index,
            index_failed,
            index_ready,
            mut chunks,
            bytes,
            result,
            synced,
        } = written;
        self.note = note;
        self.index = index;
        self.index_lost |= index_failed;
        self.index_ready = index_ready;
        match &result {
            Ok(()) => self.on_disk += bytes,
            // How much of it reached the file is unknown: measure it.
            Err(_) => self.on_disk = file.metadata().map(|m| m.len()).unwrap_or(self.on_disk),
        }
        if synced {
            self.synced = self.on_disk;
            self.syncs += 1;
        }
        self.file = Some(file);
        if self.buf.is_empty() {
            chunks.clear();
            self.buf = chunks;
        }
        result
    }

    /// Cuts the file back to `len` bytes (what it had before a failed segment).
    pub async fn truncate(&mut self, len: u64) -> io::Result<()> {
        // A failed write is what is being cut back; only a lost file stops this.
        if let Err(e) = self.settle().await {
            tracing::debug!(error = %e, "a write before the cut failed");
        }
        if len >= self.on_disk {
            let mut keep = (len - self.on_disk) as usize;
            let mut kept = Vec::with_capacity(self.buf.len());
            for chunk in self.buf.drain(..) {
                if keep == 0 {
                    break;
                }
                let n = chunk.len().min(keep);
                kept.push(chunk.slice(..n));
                keep -= n;
            }
            self.buffered = kept.iter().map(Bytes::len).sum();
            self.buf = kept;
            return Ok(());
        }
        self.buf.clear();
        self.buffered = 0;
        let file = self.take_file()?;
        let file = blocking::io(move || {
            // Opened for appending: the next write goes to the new end.
            file.set_len(len)?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        self.on_disk = len;
        self.synced = self.synced.min(len);
        self.behind = self.behind.min(len);
        Ok(())
    }

    /// Appends the index lines still gathered (see [`INDEX_EVERY`]): before the part is
    /// finished, whose index is then rewritten from the file.
    pub async fn flush_index(&mut self) -> io::Result<()> {
        self.settle().await?;
        if self.index_ready.is_empty() {
            return Ok(());
        }
        let (mut index, lines) = (self.index.take(), std::mem::take(&mut self.index_ready));
        let (index, failed) = blocking::io(move || {
            let failed = !append_index(&mut index, &lines);
            Ok((index, failed))
        })
        .await?;
        self.index = index;
        self.index_lost |= failed;
        self.index_appended = Some(tokio::time::Instant::now());
        self.index_gathered = 0;
        Ok(())
    }

    /// Flushes, fsyncs, renames to the final name and fsyncs the folder. Returns the final
    /// path. The durable note goes (the whole file is on the disk now); the latest note is the
    /// caller's to remove once the sidecar is written.
    pub async fn finish(mut self) -> io::Result<PathBuf> {
        self.flush().await?;
        let file = self.take_file()?;
        let durable = self.durable.take();
        let (part, final_path) = (self.part_path.clone(), self.final_path.clone());
        blocking::io(move || {
            file.sync_all()?;
            // All clean now: the rest of the part leaves the page cache too.
            write_behind(&file, 0, u64::MAX);
            drop(file);
            finalize_file(&part, &final_path)?;
            if let Some(durable) = durable {
                let _ = std::fs::remove_file(durable);
            }
            Ok(())
        })
        .await?;
        Ok(self.final_path)
    }

    fn take_file(&mut self) -> io::Result<File> {
        self.file
            .take()
            .ok_or_else(|| io::Error::other("the recording file was lost after a failed write"))
    }
}

/// Appends index lines of written segments: false when that failed, and the index is closed
/// for good (an index missing an entry in the middle would play the wrong bytes).
fn append_index(index: &mut Option<File>, lines: &[u8]) -> bool {
    let Some(file) = index.as_mut() else {
        return true;
    };
    let ok = lines.is_empty() || file.write_all(lines).is_ok();
    if !ok {
        tracing::debug!("cannot append to the recording's index; it is left out");
        *index = None;
    }
    ok
}

/// `posix_fadvise(DONTNEED)` on `[from, to)` (see the module's write-behind): starts the
/// writeback of its dirty pages and drops its clean ones. Advisory: errors are ignored.
fn write_behind(file: &File, from: u64, to: u64) {
    let len = std::num::NonZeroU64::new(to.saturating_sub(from)).filter(|_| to != u64::MAX);
    if to > from {
        let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
    }
}

/// `write_all` for a list of chunks, in as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let (mut i, mut offset) = (0, 0);
    while i < chunks.len() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity((chunks.len() - i).min(1024));
        slices.push(IoSlice::new(&chunks[i][offset..]));
        slices.extend(chunks[i + 1..].iter().take(1023).map(|c| IoSlice::new(c)));
        let mut n = match file.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 && i < chunks.len() {
            let left = chunks[i].len() - offset;
            if n >= left {
                n -= left;
                i += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Replaces the note (blocking): in place in the open file when it fits in a page, else by
/// [`write_atomically`] (which replaces the file the handle points at, so the handle goes).
/// Returns the file to keep open.
fn replace_note(open: Option<NoteFile>, note: &Note) -> io::Result<Option<NoteFile>> {
    if note.bytes.len() > NOTE_IN_PLACE_MAX {
        write_atomically(&note.path, &note.bytes)?;
        return Ok(None);
    }
    let mut open = match open {
        Some(open) if open.path == note.path => open,
        _ => {
            // Written whole once, so the file never holds a partial first version.
            write_atomically(&note.path, &note.bytes)?;
            let file = OpenOptions::new().write(true).open(&note.path)?;
            return Ok(Some(NoteFile {
                path: note.path.clone(),
                file,
                len: note.bytes.len(),
            }));
        }
    };
    if note.bytes.len() >= open.len {
        open.file.write_all_at(&note.bytes, 0)?;
    } else {
        let mut padded = Vec::with_capacity(open.len);
        padded.extend_from_slice(&note.bytes);
        padded.resize(open.len, b' ');
        open.file.write_all_at(&padded, 0)?;
    }
    open.len = open.len.max(note.bytes.len());
    Ok(Some(open))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::layout::TEMP_SUFFIX;

    #[tokio::test]
    async fn notes_are_replaced_whole_in_place_or_by_rename_when_large() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(dir.path().join("rec.ts")).await.unwrap();
        let path = dir.path().join("rec.ts.part.json");
        let mut flush_note = async |json: serde_json::Value| {
            part.append(Bytes::from_static(b"x")).await.unwrap();
            let bytes = serde_json::to_vec(&json).unwrap();
            part.flush_and_note(Some(Note {
                path: path.clone(),
                bytes,
            }))
            .await
            .unwrap();
            let read: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(read, json);
        };
        flush_note(serde_json::json!({ "segments": 1, "title": "a longer first title" })).await;
        let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let first = inode();
        // Shorter: padded over the old text, same file.
        flush_note(serde_json::json!({ "segments": 2 })).await;
        assert_eq!(inode(), first, "rewritten in place");
        let text = std::fs::read(&path).unwrap();
        assert!(
            text.ends_with(b"  "),
            "{:?}",
            String::from_utf8_lossy(&text)
        );
        // Larger than a page: replaced by rename, then in place again in the new file.
        flush_note(serde_json::json!({ "segments": 3, "chapters": "c".repeat(5000) })).await;
        let renamed = inode();
        assert_ne!(renamed, first);
        flush_note(serde_json::json!({ "segments": 4 })).await;
        assert_ne!(inode(), renamed, "a fresh file after a large note");
        let small = inode();
        flush_note(serde_json::json!({ "segments": 5 })).await;
        assert_eq!(inode(), small);
        assert_eq!(
            std::fs::read(dir.path().join("rec.ts.part")).unwrap(),
            b"xxxxx"
        );
    }

    #[tokio::test]
    async fn appends_truncates_back_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/rec.ts");
        let mut part = PartFile::create(target.clone()).await.unwrap();
        assert_eq!(part.part_path(), dir.path().join("a/b/rec.ts.part"));
        let big = Bytes::from(vec![7u8; FLUSH_AT * 2 + 5]);
        part.append(Bytes::from_static(b"hello")).await.unwrap();
        let mark = part.len();
        part.append(big).await.unwrap();
        part.append(Bytes::from_static(b"half a segm"))
            .await
            .unwrap();
        // The failed segment is cut back, both from the disk and the buffer.
        part.truncate(mark).await.unwrap();
        assert_eq!(part.len(), 5);
        part.append(Bytes::from_static(b" wo")).await.unwrap();
        part.append(Bytes::from_static(b"rld")).await.unwrap();
        let mark = part.len();
        part.append(Bytes::from_static(b"xyz")).await.unwrap();
        part.append(Bytes::from_static(b"123")).await.unwrap();
        part.truncate(mark + 2).await.unwrap();
        part.truncate(mark).await.unwrap();
        assert_eq!(part.len(), 11);
        let done = part.finish().await.unwrap();
        assert_eq!(done, target);
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert!(!dir.path().join("a/b/rec.ts.part").exists());

        // The name is taken now: the next recording gets "(2)".
        let part = PartFile::create(target.clone()).await.unwrap();
        assert_eq!(part.final_path(), dir.path().join("a/b/rec (2).ts"));
        let done = part.finish().await.unwrap();
        assert!(done.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
    }

    /// Notes after every segment; the data is fsynced at most `sync_interval` apart, and the
    /// durable note written then describes exactly the fsynced bytes, never the later ones.
    #[tokio::test(start_paused = true)]
    async fn the_durable_note_describes_only_fsynced_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(dir.path().join("rec.ts")).await.unwrap();
        part.set_sync_interval(Duration::from_secs(30));
        let latest = dir.path().join("rec.ts.part.json");
        let durable = synced_note_path(&latest);
        let note = |part: &PartFile| Note {
            path: latest.clone(),
            bytes: serde_json::to_vec(&serde_json::json!({ "bytes": part.len() })).unwrap(),
        };
        let read = |p: &Path| -> u64 {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["bytes"].as_u64().unwrap()
        };
        // The part's opening note is synced at once: a durable note exists from the start.
        part.flush_and_note(Some(note(&part))).await.unwrap();
        assert_eq!((part.syncs(), part.synced(), read(&durable)), (1, 0, 0));
        // Segments every 2 s: noted each time, synced only when 30 s have passed.
        let segment = Bytes::from(vec![5u8; 1000]);
        for i in 1..=20u64 {
            tokio::time::advance(Duration::from_secs(2)).await;
            part.append(segment.clone()).await.unwrap();
            part.flush_and_note(Some(note(&part))).await.unwrap();
            assert_eq!(
                read(&latest),
                i * 1000,
                "the latest note follows every segment"
            );
            let durable_bytes = read(&durable);
            assert_eq!(
                durable_bytes,
                part.synced(),
                "durable = fsynced, after segment {i}"
            );
            assert!(durable_bytes <= i * 1000);
        }
        // At 30 s (segment 15) the second sync; segment 20 (40 s) is not due yet.
        assert_eq!(part.syncs(), 2);
        assert_eq!(read(&durable), 15_000);
        assert_eq!(read(&latest), 20_000);
        // A plain flush (a large segment) neither syncs nor notes.
        tokio::time::advance(Duration::from_secs(60)).await;
        part.append(segment.clone()).await.unwrap();
        part.flush().await.unwrap();
        assert_eq!(part.syncs(), 2);
        // Finishing syncs everything and removes the durable note.
        let done = part.finish().await.unwrap();
        assert_eq!(std::fs::read(done).unwrap().len(), 21_000);
        assert!(!durable.exists());
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(TEMP_SUFFIX)));
    }

    /// A runtime whose blocking pool has one thread, which the test can hold, so that a
    /// write waits on the pool while its caller gives up.
    fn one_blocking_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_flush_abandoned_half_way_keeps_the_file_and_its_bytes() {
        one_blocking_thread().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("rec.ts");
            let mut part = PartFile::create(target.clone()).await.unwrap();
            part.append(Bytes::from_static(b"hello")).await.unwrap();
            let (release, blocked) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || {
                let _ = blocked.recv();
            });
            // The flush waits for the pool; its caller is cancelled meanwhile.
            let abandoned =
                tokio::time::timeout(std::time::Duration::from_millis(50), part.flush()).await;
            assert!(abandoned.is_err());
            assert_eq!(part.len(), 5);
            release.send(()).unwrap();
            blocker.await.unwrap();
            part.append(Bytes::from_static(b" world")).await.unwrap();
            let note = dir.path().join("rec.note");
            part.flush_and_note(Some(Note {
                path: note.clone(),
                bytes: b"11".to_vec(),
            }))
            .await
            .unwrap();
            assert_eq!(std::fs::read(&note).unwrap(), b"11");
            let done = part.finish().await.unwrap();
            assert_eq!(std::fs::read(done).unwrap(), b"hello world");
        });
    }

    #[test]
    fn a_cut_back_after_an_abandoned_flush_waits_for_it() {
        one_blocking_thread().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("rec.ts");
            let mut part = PartFile::create(target.clone()).await.unwrap();
            part.append(Bytes::from_static(b"kept")).await.unwrap();
            part.flush().await.unwrap();
            let mark = part.len();
            part.append(Bytes::from_static(b"half a segment"))
                .await
                .unwrap();
            let (release, blocked) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || {
                let _ = blocked.recv();
            });
            let abandoned =
                tokio::time::timeout(std::time::Duration::from_millis(50), part.flush()).await;
            assert!(abandoned.is_err());
            release.send(()).unwrap();
            blocker.await.unwrap();
            part.truncate(mark).await.unwrap();
            assert_eq!(part.len(), 4);
            let done = part.finish().await.unwrap();
            assert_eq!(std::fs::read(done).unwrap(), b"kept");
        });
    }
}
