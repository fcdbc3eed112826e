//! Reading a login's day: its plain `DD.jsonl` (written before compression, or with
//! `[chat] compression = "none"`) and its compressed `DD.jsonl.zst`, line by line, for every
//! reader (`recbot logs`, per-recording chat files, line counts). A cut tail of a compressed
//! file is ignored (the writer cuts it off on reopening); damage elsewhere is reported as
//! such and the lines after it are read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;

use super::frames::{self, Step, Walker};
use super::writer::{day_path, zst_path};

/// What a reader is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// One line, without its `\n` (a cut last line of a plain file comes as it is).
    Line(&'a [u8]),
    /// Part of a compressed file could not be read.
    Damaged,
}

/// The day's files that exist, in the order they were written (plain first).
pub fn files_of(dir: &Path, folder: &str, date: NaiveDate) -> Vec<PathBuf> {
    [day_path(dir, folder, date), zst_path(dir, folder, date)]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

/// Hands every line of `path` to `each`; in a compressed file, from about `since_ms` on
/// (earlier lines may come too: the caller filters). `each` returning `false` stops.
pub fn read(
    path: &Path,
    since_ms: Option<i64>,
    each: &mut dyn FnMut(Item<'_>) -> io::Result<bool>,
) -> io::Result<()> {
    let file = File::open(path)?;
    if !is_compressed(path) {
        for line in BufReader::with_capacity(256 * 1024, file).split(b'\n') {
            if !each(Item::Line(&line?))? {
                break;
            }
        }
        return Ok(());
    }
    let len = file.metadata()?.len();
    let start = match since_ms {
        Some(ms) => frames::seek(&file, len, ms)?,
        None => 0,
    };
    let mut input = &file;
    io::Seek::seek(&mut input, io::SeekFrom::Start(start))?;
    let mut walker = Walker::new(input, start)?;
    let mut out = Vec::new();
    while let Some(step) = walker.next(&mut out)? {
        match step {
            Step::Frame { .. } => {
                for line in out.split(|b| *b == b'\n') {
                    if !line.is_empty() && !each(Item::Line(line))? {
                        return Ok(());
                    }
                }
            }
            Step::Damaged { .. } => {
                if !each(Item::Damaged)? {
                    return Ok(());
                }
            }
            Step::Mark { .. } | Step::CutTail { .. } => {}
        }
    }
    Ok(())
}

/// Lines in a day file (either kind).
pub fn count_lines(path: &Path) -> io::Result<u64> {
    let never = AtomicBool::new(false);
    count_lines_upto(path, u64::MAX, &never).map(Option::unwrap_or_default)
}

/// Lines in the first `len` bytes of a day file; `None` when `stop` was set meanwhile.
pub fn count_lines_upto(path: &Path, len: u64, stop: &AtomicBool) -> io::Result<Option<u64>> {
    let file = File::open(path)?.take(len);
    let mut n = 0u64;
    if is_compressed(path) {
        let mut walker = Walker::new(file, 0)?;
        let mut out = Vec::new();
        while let Some(step) = walker.next(&mut out)? {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if let Step::Frame { .. } = step {
                n += memchr::memchr_iter(b'\n', &out).count() as u64;
            }
        }
        return Ok(Some(n));
    }
    let mut file = file;
    let mut buf = vec![0u8; 256 * 1024];
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

/// Lines of a login's day over both of its files.
pub fn count_day(dir: &Path, folder: &str, date: NaiveDate) -> u64 {
    files_of(dir, folder, date)
        .iter()
        .map(|p| count_lines(p).unwrap_or(0))
        .sum()
}
