//! The compressed day file `DD.jsonl.zst`: what its bytes are, and walking them.
//!
//! A file is a sequence of independent zstd frames, one per write-out of a room's buffer
//! (whole lines only, at least every flush, so a crash loses at most what was not yet
//! written), each followed by a *mark*: a 24-byte zstd skippable frame holding the frame's
//! start offset and the latest line time in it. Plain `zstd -d` / `zstdcat` read the file
//! (skippable frames are skipped by every zstd decoder).
//!
//! Why independent frames rather than one zstd stream per file: a streaming compressor keeps
//! its window and tables per file (≥ 1 MB at level 3), which for a thousand rooms would be
//! gigabytes; independent frames share one compression context, and a room's 16 KiB buffer
//! still compresses about ten to one (the lines of a room look alike).
//!
//! The marks make the file checkable from its end without reading it: a writer reopening the
//! file reads the last 24 bytes and, if they are a mark pointing at a frame, continues after
//! them; otherwise (a crash cut the tail) it walks the file once and cuts it back to its last
//! whole frame. Readers walking backwards from mark to mark find where a time starts
//! (`recbot logs --since`) without decoding what comes before.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use zstd::zstd_safe;

/// The zstd frame magic number, as written (little-endian 0xFD2FB528).
pub const FRAME_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// The mark's magic: one of zstd's skippable frame magics (0x184D2A5E, little-endian).
pub const MARK_MAGIC: [u8; 4] = [0x5E, 0x2A, 0x4D, 0x18];
/// A mark: magic, payload length (16), frame start (u64), latest line time in ms (i64).
pub const MARK_LEN: usize = 24;
/// A frame with no known latest time (a frame whose mark was lost, marked on repair).
pub const UNKNOWN_TIME: i64 = i64::MAX;
/// Lines dated before a frame's latest time by more than this are not expected after it
/// (`tmi-sent-ts` against the order lines arrive in): the slack of a seek by time.
pub const SEEK_SLACK_MS: i64 = 60_000;
/// A frame longer than this (compressed or not) is taken for damage, not read.
const MAX_FRAME: usize = 8 << 20;
const READ_CHUNK: usize = 256 * 1024;

/// A frame's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub start: u64,
    pub latest_ms: i64,
}

impl Mark {
    pub fn bytes(&self) -> [u8; MARK_LEN] {
        let mut b = [0u8; MARK_LEN];
        b[..4].copy_from_slice(&MARK_MAGIC);
        b[4..8].copy_from_slice(&16u32.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b[16..24].copy_from_slice(&self.latest_ms.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8]) -> Option<Mark> {
        if b.len() != MARK_LEN || b[..4] != MARK_MAGIC || b[4..8] != 16u32.to_le_bytes() {
            return None;
        }
        Some(Mark {
            start: u64::from_le_bytes(b[8..16].try_into().ok()?),
            latest_ms: i64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// The one compression context of a writer, and its scratch space.
pub struct Encoder {
    cctx: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    pub fn new(level: i32) -> io::Result<Encoder> {
        let mut cctx = zstd::bulk::Compressor::new(level)?;
        // A checksum per frame: damage is found, not decoded into wrong lines.
        cctx.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))?;
        Ok(Encoder {
            cctx,
            scratch: Vec::new(),
        })
    }

    /// Appends to `out` the frame of `lines` (whole lines) starting at file offset `start`,
    /// and its mark.
    pub fn frame(
        &mut self,
        lines: &[u8],
        start: u64,
        latest_ms: i64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.reserve(zstd_safe::compress_bound(lines.len()));
        self.cctx.compress_to_buffer(lines, &mut self.scratch)?;
        out.extend_from_slice(&self.scratch);
        out.extend_from_slice(&Mark { start, latest_ms }.bytes());
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
        Ok(())
    }
}

/// One step of a walk through a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A whole frame `[start, end)`; its lines are in the walker's output buffer.
    Frame { start: u64, end: u64 },
    /// A mark (or another skippable frame) `[start, end)`.
    Mark {
        start: u64,
        end: u64,
        mark: Option<Mark>,
    },
    /// Bytes from `at` up to `next` are not a readable frame; the walk goes on at `next`.
    Damaged { at: u64, next: u64 },
    /// The file ends inside a frame starting at `at` (a cut tail: ignored by readers).
    CutTail { at: u64 },
}

/// Walks a compressed day file frame by frame, from any frame start.
pub struct Walker<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    dctx: zstd::bulk::Decompressor<'static>,
}

impl<R> std::fmt::Debug for Walker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walker")
            .field("offset", &(self.base + self.pos as u64))
            .finish_non_exhaustive()
    }
}

impl<R: Read> Walker<R> {
    /// A walk of `input`, whose first byte is at file offset `base`.
    pub fn new(input: R, base: u64) -> io::Result<Walker<R>> {
        Ok(Walker {
            input,
            buf: Vec::new(),
            pos: 0,
            base,
            eof: false,
            dctx: zstd::bulk::Decompressor::new()?,
        })
    }

    /// File offset of the next step.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `n` bytes available after `pos` unless the input ends first; returns
    /// how many are.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.buf.len() - self.pos < n && !self.eof {
            if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let have = self.buf.len();
            let want = READ_CHUNK.max(n - (have - self.pos));
            self.buf.resize(have + want, 0);
            let read = loop {
                match self.input.read(&mut self.buf[have..]) {
                    Ok(r) => break r,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(have + read);
            if read == 0 {
                self.eof = true;
            }
        }
        Ok(self.buf.len() - self.pos)
    }

    /// The next step; `None` at the end. After a `Frame`, `out` holds its lines.
    pub fn next(&mut self, out: &mut Vec<u8>) -> io::Result<Option<Step>> {
        let at = self.offset();
        let avail = self.fill(8)?;
        if avail == 0 {
            return Ok(None);
        }
        if avail < 8 {
            self.pos = self.buf.len();
            return Ok(Some(Step::CutTail { at }));
        }
        let head = &self.buf[self.pos..self.pos + 8];
        if head[0] & 0xF0 == 0x50 && head[1..4] == MARK_MAGIC[1..4] {
            let size = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default()) as usize;
            if size > MAX_FRAME {
                return Ok(Some(self.damaged(at)));
            }
            if self.fill(8 + size)? < 8 + size {
                self.pos = self.buf.len();
                return Ok(Some(Step::CutTail { at }));
            }
            let bytes = &self.buf[self.pos..self.pos + 8 + size];
            let mark = Mark::parse(bytes);
            self.pos += 8 + size;
            return Ok(Some(Step::Mark {
                start: at,
                end: self.offset(),
                mark,
            }));
        }
        if head[..4] != FRAME_MAGIC {
            return Ok(Some(self.damaged(at)));
        }
        let size = loop {
            match zstd_safe::find_frame_compressed_size(&self.buf[self.pos..]) {
                Ok(n) => break n,
                Err(_) if self.eof => {
                    // Another frame or mark after it: damage in the middle, read on from there.
                    let rest = &self.buf[self.pos + 1..];
                    if [FRAME_MAGIC, MARK_MAGIC]
                        .iter()
                        .any(|m| memchr::memmem::find(rest, m).is_some())
                    {
                        return Ok(Some(self.damaged(at)));
                    }
                    // Nothing after it: a cut tail.
                    self.pos = self.buf.len();
                    return Ok(Some(Step::CutTail { at }));
                }
                Err(_) if self.buf.len() - self.pos > MAX_FRAME => {
                    return Ok(Some(self.damaged(at)));
                }
                Err(_) => {
                    let have = self.buf.len() - self.pos;
                    self.fill(have + READ_CHUNK)?;
                }
            }
        };
        let frame = &self.buf[self.pos..self.pos + size];
        let content = match zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) if n as usize <= MAX_FRAME => n as usize,
            _ => return Ok(Some(self.damaged(at))),
        };
        out.clear();
        out.reserve(content);
        if self.dctx.decompress_to_buffer(frame, out).is_err() {
            return Ok(Some(self.damaged(at)));
        }
        self.pos += size;
        Ok(Some(Step::Frame {
            start: at,
            end: self.offset(),
        }))
    }

    /// Skips to the next frame or mark magic after `at` (or the end of the input).
    fn damaged(&mut self, at: u64) -> Step {
        self.pos += 1;
        loop {
            let hay = &self.buf[self.pos..];
            let found = [FRAME_MAGIC, MARK_MAGIC]
                .iter()
                .filter_map(|m| memchr::memmem::find(hay, m))
                .min();
            if let Some(i) = found {
                self.pos += i;
                break;
            }
            // Keep the last 3 bytes: a magic may straddle the refill.
            self.pos = self.buf.len().saturating_sub(3).max(self.pos);
            match self.fill(READ_CHUNK) {
                Ok(n) if n > 3 => continue,
                _ => {
                    self.pos = self.buf.len();
                    break;
                }
            }
        }
        Step::Damaged {
            at,
            next: self.offset(),
        }
    }
}

/// Whether the file's last bytes are a mark pointing at a frame: the file ends where a
/// write-out ended (nothing cut). Two small reads.
pub fn ends_whole(file: &File, len: u64) -> io::Result<bool> {
    if len < MARK_LEN as u64 {
        return Ok(false);
    }
    let mut tail = [0u8; MARK_LEN];
    file.read_exact_at(&mut tail, len - MARK_LEN as u64)?;
    let Some(mark) = Mark::parse(&tail) else {
        return Ok(false);
    };
    if mark.start + 8 > len - MARK_LEN as u64 {
        return Ok(false);
    }
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, mark.start)?;
    Ok(magic == FRAME_MAGIC)
}

/// What a walk of a whole file found: where its readable part ends, and whether the last
/// whole frame lost its mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sound {
    /// The end of the last whole frame or mark.
    pub end: u64,
    /// The start of the last whole frame when no mark follows it.
    pub unmarked: Option<u64>,
}

/// Walks a file (once, after a crash) to the end of its last whole frame.
pub fn sound_end(file: &File) -> io::Result<Sound> {
    let mut walker = Walker::new(file, 0)?;
    let mut out = Vec::new();
    let mut sound = Sound {
        end: 0,
        unmarked: None,
    };
    while let Some(step) = walker.next(&mut out)? {
        match step {
            Step::Frame { start, end } => {
                sound = Sound {
                    end,
                    unmarked: Some(start),
                }
            }
            Step::Mark { end, .. } => {
                sound = Sound {
                    end,
                    unmarked: None,
                }
            }
            Step::Damaged { .. } => {}
            Step::CutTail { .. } => break,
        }
    }
    Ok(sound)
}

/// Where to start reading for lines from `since_ms` on: the end of the last frame (walking
/// back from the end, mark to mark) whose lines are all older than `since_ms` by more than
/// [`SEEK_SLACK_MS`]; 0 when the marks do not lead there (reading from the start is always
/// right).
pub fn seek(file: &File, len: u64, since_ms: i64) -> io::Result<u64> {
    let mut end = len;
    let mut tail = [0u8; MARK_LEN];
    while end >= MARK_LEN as u64 {
        file.read_exact_at(&mut tail, end - MARK_LEN as u64)?;
        let Some(mark) = Mark::parse(&tail) else {
            return Ok(0);
        };
        if mark.start >= end - MARK_LEN as u64 {
            return Ok(0);
        }
        if mark.latest_ms < since_ms.saturating_sub(SEEK_SLACK_MS) {
            return Ok(end);
        }
        end = mark.start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests;
