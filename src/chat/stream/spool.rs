//! The spool: lines for the stream while NATS cannot be reached, in order, in
//! `<data_dir>/chat-stream.spool` (records `<subject> <id> <json>\n`), with the read offset of
//! what JetStream acknowledged in `chat-stream.spool.offset` (written atomically after each
//! acknowledged chunk; a lost offset only means lines sent again, which JetStream drops as
//! repeats). The file never grows past its limit: a line that does not fit is left out
//! (counted by the caller); once everything is read the file is emptied, and once half of the
//! limit is behind the offset the rest is moved to the front. A record cut by a crash is cut
//! off when the spool is opened.
//!
//! Blocking: called on the blocking pool only.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::line::Line;
use crate::archive::files::write_atomically;

/// The spool's file name under `data_dir`.
pub const SPOOL_FILE: &str = "chat-stream.spool";
/// Its read offset's file name.
pub const OFFSET_FILE: &str = "chat-stream.spool.offset";

#[derive(Debug)]
pub(super) struct Spool {
    path: PathBuf,
    offset_path: PathBuf,
    file: File,
    /// The file's length.
    len: u64,
    /// Where the first line not yet acknowledged starts.
    offset: u64,
    /// Lines from `offset` to the end.
    waiting: u64,
    limit: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, cuts a torn last record, and counts what waits.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Spool> {
        crate::archive::files::create_private_dir_all(dir)?;
        let path = dir.join(SPOOL_FILE);
        let offset_path = dir.join(OFFSET_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut len = file.metadata()?.len();
        let whole = whole_records_end(&mut file, len)?;
        if whole != len {
            warn!(
                cut = len - whole,
                "chat stream spool: cutting a torn last record"
            );
            file.set_len(whole)?;
            len = whole;
        }
        let offset = match std::fs::read_to_string(&offset_path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0).min(len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut spool = Spool {
            path,
            offset_path,
            file,
            len,
            offset,
            waiting: 0,
            limit,
        };
        spool.waiting = spool.count_from(offset)?;
        if spool.waiting == 0 && spool.len > 0 {
            spool.empty()?;
        }
        Ok(spool)
    }

    /// Lines waiting to be sent.
    pub fn waiting(&self) -> u64 {
        self.waiting
    }

    /// Appends `lines` in order; returns how many did not fit (or could not be written).
    pub fn append(&mut self, lines: &[Line]) -> u64 {
        let mut out = Vec::new();
        let mut kept = 0u64;
        let mut len = self.len;
        for line in lines {
            let n = line.spooled_len() as u64;
            if len + n > self.limit {
                continue;
            }
            line.spool_to(&mut out);
            len += n;
            kept += 1;
        }
        let left_out = lines.len() as u64 - kept;
        if out.is_empty() {
            return left_out;
        }
        let written = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&out));
        match written {
            Ok(()) => {
                self.len = len;
                self.waiting += kept;
                left_out
            }
            Err(e) => {
                warn!(error = %e, "chat stream spool: cannot write; lines left out of the stream");
                // A partly written record would be read as damaged: cut back.
                let _ = self.file.set_len(self.len);
                lines.len() as u64
            }
        }
    }

    /// Puts `lines` before everything waiting (they were sent but not acknowledged, and came
    /// before what the spool holds). What does not fit within the limit is left out
    /// (returned), the newest first.
    pub fn prepend(&mut self, lines: &[Line]) -> io::Result<u64> {
        let room = self.limit.saturating_sub(self.len - self.offset);
        let mut head = Vec::new();
        let mut kept = 0u64;
        for line in lines {
            let n = line.spooled_len() as u64;
            if head.len() as u64 + n > room {
                break;
            }
            line.spool_to(&mut head);
            kept += 1;
        }
        let waiting = self.waiting + kept;
        self.rewrite(&head)?;
        self.waiting = waiting;
        Ok(lines.len() as u64 - kept)
    }

    /// Reads the next lines after the offset, about `max_bytes` of them (at least one whole
    /// record) and at most `max_lines`; returns them with the offset after the last one.
    pub fn read_chunk(&mut self, max_bytes: u64, max_lines: usize) -> io::Result<(Vec<Line>, u64)> {
        let mut want = max_bytes.max(1);
        loop {
            let end = (self.offset + want).min(self.len);
            let bytes = self.read_range(self.offset, end)?;
            let whole = match memchr::memrchr(b'\n', &bytes) {
                Some(i) => i + 1,
                None if end < self.len => {
                    want *= 2; // One record longer than the chunk.
                    continue;
                }
                None => 0,
            };
            let mut lines = Vec::new();
            let mut taken = 0;
            for (records, record) in bytes[..whole].split_inclusive(|b| *b == b'\n').enumerate() {
                if records == max_lines.max(1) {
                    break;
                }
                taken += record.len();
                match Line::from_spool(&record[..record.len() - 1]) {
                    Some(line) => lines.push(line),
                    None => warn!("chat stream spool: skipping a damaged record"),
                }
            }
            return Ok((lines, self.offset + taken as u64));
        }
    }

    /// Marks everything before `end` (holding `lines` lines) as acknowledged.
    pub fn commit(&mut self, end: u64, lines: u64) -> io::Result<()> {
        self.offset = end.min(self.len);
        self.waiting = self.waiting.saturating_sub(lines);
        if self.offset >= self.len {
            return self.empty();
        }
        if self.offset >= self.limit / 2 {
            return self.rewrite(&[]);
        }
        write_atomically(&self.offset_path, self.offset.to_string().as_bytes())
    }

    /// Everything read: an empty file, offset 0.
    fn empty(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.offset = 0;
        self.waiting = 0;
        write_atomically(&self.offset_path, b"0")
    }

    /// Replaces the file by `head` and what waits after the offset (copied, not read into
    /// memory), read from the start. The offset goes to 0 before the new file is renamed in:
    /// a crash between the two sends lines again (repeats JetStream drops), never reads from
    /// the middle of a record.
    fn rewrite(&mut self, head: &[u8]) -> io::Result<()> {
        let tmp = self.path.with_file_name(format!("{SPOOL_FILE}.tmp"));
        let mut out = File::create(&tmp)?;
        out.write_all(head)?;
        self.file.seek(SeekFrom::Start(self.offset))?;
        let copied = io::copy(&mut (&self.file).take(self.len - self.offset), &mut out)?;
        drop(out);
        write_atomically(&self.offset_path, b"0")?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = head.len() as u64 + copied;
        self.offset = 0;
        Ok(())
    }

    fn read_range(&mut self, from: u64, to: u64) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; to.saturating_sub(from) as usize];
        self.file.seek(SeekFrom::Start(from))?;
        self.file.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    fn count_from(&mut self, from: u64) -> io::Result<u64> {
        self.file.seek(SeekFrom::Start(from))?;
        let mut reader = BufReader::new(&self.file);
        let mut lines = 0;
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(lines);
            }
            lines += memchr::memchr_iter(b'\n', buf).count() as u64;
            let n = buf.len();
            reader.consume(n);
        }
    }
}

/// Where the last whole record of a file of `len` bytes ends (0 when there is none).
fn whole_records_end(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::Subject;
    use bytes::Bytes;

    fn line(n: usize) -> Line {
        Line {
            subject: Subject::from("recbot.chat.twitch.foo"),
            id: format!("m{n}"),
            payload: Bytes::from(format!(
                "{{\"id\":\"m{n}\",\"text\":\"{}\"}}",
                "x".repeat(40)
            )),
        }
    }

    fn ids(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.id.clone()).collect()
    }

    #[test]
    fn lines_come_back_in_order_across_a_reopen_and_only_unacknowledged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.append(&(0..10).map(line).collect::<Vec<_>>()), 0);
        assert_eq!(spool.waiting(), 10);
        let (first, end) = spool.read_chunk(200, 100).unwrap();
        assert!(!first.is_empty() && first.len() < 10);
        spool.commit(end, first.len() as u64).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.waiting(), 10 - first.len() as u64);
        let (rest, end) = spool.read_chunk(1 << 20, 100).unwrap();
        let mut all = ids(&first);
        all.extend(ids(&rest));
        assert_eq!(all, ids(&(0..10).map(line).collect::<Vec<_>>()));
        spool.commit(end, rest.len() as u64).unwrap();
        assert_eq!(spool.waiting(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join(SPOOL_FILE))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn the_limit_leaves_lines_out_and_a_torn_record_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let one = line(0).spooled_len() as u64;
        let mut spool = Spool::open(dir.path(), one * 3).unwrap();
        assert_eq!(spool.append(&(0..5).map(line).collect::<Vec<_>>()), 2);
        assert_eq!(spool.waiting(), 3);
        drop(spool);
        let path = dir.path().join(SPOOL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"recbot.chat.twitch.foo m9 {\"cut").unwrap();
        let mut spool = Spool::open(dir.path(), one * 3).unwrap();
        assert_eq!(spool.waiting(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), one * 3);
        // Unacknowledged lines go back in front, within the limit.
        let (lines, _) = spool.read_chunk(one, 100).unwrap();
        assert_eq!(ids(&lines), ["m0"]);
        let (all, _) = spool.read_chunk(1 << 20, 100).unwrap();
        assert_eq!(ids(&all), ["m0", "m1", "m2"]);
        let (_, end) = spool.read_chunk(one * 2, 100).unwrap();
        spool.commit(end, 2).unwrap();
        assert_eq!(spool.prepend(&[line(7), line(8)]).unwrap(), 0);
        let (all, _) = spool.read_chunk(1 << 20, 100).unwrap();
        assert_eq!(ids(&all), ["m7", "m8", "m2"]);
        assert_eq!(spool.waiting(), 3);
    }
}
