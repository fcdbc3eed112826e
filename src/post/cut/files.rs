//! A cut on disk (blocking): the recording's finished index read and checked (every entry a
//! byte range of the one video file beside it), the outputs named inside the recording's
//! folder (never over an existing file), then written through `.recbot-tmp` + fsync + rename:
//! the copy first (`--copy`), then the index, then the chat file. When one fails, those
//! already written are removed: nothing half made stays.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use m3u8_rs::{ByteRange, Map, MediaPlaylist, MediaSegment};

use super::{clock, cut_chat_line, kept_spans, plan, Piece, Request};
use crate::archive::files::finalize_file;
use crate::archive::index::{self, index_file};
use crate::archive::layout::{chat_file, temp_path_of};

/// What a cut wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub index: PathBuf,
    /// `--copy`: the new video file.
    pub video: Option<PathBuf>,
    /// The chat file cut to the same spans, when the recording has one.
    pub chat: Option<PathBuf>,
    pub chat_lines: u64,
    /// The spans of the recording actually kept (at segment boundaries), in seconds.
    pub kept: Vec<(f64, f64)>,
    /// The cut's duration.
    pub duration_secs: f64,
}

/// A finished recording and its index.
struct Recording {
    video: PathBuf,
    playlist: MediaPlaylist,
    /// The init segment (fMP4) every entry plays with.
    map: Option<Map>,
}

/// Cuts the recording at `path` (its video or its index) as `request` says (blocking).
pub fn cut_blocking(path: &Path, request: &Request) -> Result<Written> {
    if request.from.zip(request.to).is_some_and(|(f, t)| f >= t) {
        bail!("--from must come before --to");
    }
    let rec = open(path)?;
    let durations: Vec<f64> = rec
        .playlist
        .segments
        .iter()
        .map(|s| s.duration as f64)
        .collect();
    let total: f64 = durations.iter().sum();
    let spans = kept_spans(total, request).map_err(|e| anyhow!(e))?;
    let pieces = plan(&durations, &spans);
    if pieces.is_empty() {
        bail!("nothing is left to keep");
    }
    let outputs = Outputs::name(&rec.video, request)?;
    let mut made = Vec::new();
    let result = write_all(&rec, &pieces, &outputs, request.copy, &mut made);
    if result.is_err() {
        for file in made {
            let _ = std::fs::remove_file(file);
        }
    }
    let (chat, chat_lines) = result?;
    Ok(Written {
        index: outputs.index,
        video: request.copy.then_some(outputs.video),
        chat,
        chat_lines,
        kept: pieces.iter().map(|p| (p.start, p.end)).collect(),
        duration_secs: pieces.iter().map(|p| p.end - p.start).sum(),
    })
}

fn write_all(
    rec: &Recording,
    pieces: &[Piece],
    outputs: &Outputs,
    copy: bool,
    made: &mut Vec<PathBuf>,
) -> Result<(Option<PathBuf>, u64)> {
    let playlist = if copy {
        made.push(outputs.video.clone());
        copy_video(rec, pieces, &outputs.video).context("cannot write the copy")?
    } else {
        let name = file_name(&rec.video);
        joined(rec, rec.map.clone(), pieces, |seg| {
            (name.clone(), seg.byte_range.clone())
        })
    };
    made.push(outputs.index.clone());
    index::write_durably(&outputs.index, &playlist).context("cannot write the index")?;
    let source = chat_file(&rec.video);
    if !source.is_file() {
        return Ok((None, 0));
    }
    made.push(outputs.chat.clone());
    let lines = cut_chat(&source, &outputs.chat, pieces).context("cannot write the chat file")?;
    Ok((Some(outputs.chat.clone()), lines))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads the recording at `path` (video or index) and checks its index.
fn open(path: &Path) -> Result<Recording> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("no recording at {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    let index_path = if path.extension().is_some_and(|e| e == "m3u8") {
        path.to_path_buf()
    } else {
        index_file(path)
    };
    let playlist = index::read_blocking(&index_path).with_context(|| {
        format!(
            "cannot read the recording's index {} (recordings get one while `[recording] index` is on)",
            index_path.display()
        )
    })?;
    if !playlist.end_list {
        bail!("the recording is still being written (its index has no end yet)");
    }
    let folder = index_path.parent().unwrap_or(Path::new("."));
    let uri = match playlist.segments.first() {
        Some(s) => s.uri.clone(),
        None => bail!("the recording's index lists no segment"),
    };
    if !index::usable_name(&uri) || uri.contains('/') || uri == ".." {
        bail!("the index names `{uri}`, which is not a file beside it");
    }
    let video = folder.join(&uri);
    let len = std::fs::metadata(&video)
        .with_context(|| format!("the index's video {} is missing", video.display()))?
        .len();
    let map = playlist.segments[0].map.clone();
    check_entries(&playlist, &uri, map.as_ref(), len)?;
    Ok(Recording {
        video,
        playlist,
        map,
    })
}

/// Every entry a byte range within the video's `len` bytes of the file `uri`, one init
/// segment at most (on the first entry).
fn check_entries(playlist: &MediaPlaylist, uri: &str, map: Option<&Map>, len: u64) -> Result<()> {
    let within = |r: Option<&ByteRange>| {
        r.and_then(|r| {
            r.offset
                .map(|o| o.checked_add(r.length).is_some_and(|e| e <= len))
        })
        .unwrap_or(false)
    };
    if let Some(m) = map {
        if m.uri != uri || !within(m.byte_range.as_ref()) {
            bail!("the index's init segment is not a byte range of {uri}");
        }
    }
    for (n, seg) in playlist.segments.iter().enumerate() {
        if seg.uri != uri || !within(seg.byte_range.as_ref()) {
            bail!("entry {} of the index is not a byte range of {uri}", n + 1);
        }
        if n > 0 && seg.map.is_some() {
            bail!("the index changes its init segment; it cannot be cut");
        }
        if !(seg.duration.is_finite() && seg.duration >= 0.0) {
            bail!("entry {} of the index has a bad duration", n + 1);
        }
    }
    Ok(())
}

/// The cut's index: the pieces' segments, each piece after the first starting with a
/// discontinuity, the init segment `map` on the first; `place` gives each segment's URI and
/// range.
fn joined(
    rec: &Recording,
    map: Option<Map>,
    pieces: &[Piece],
    mut place: impl FnMut(&MediaSegment) -> (String, Option<ByteRange>),
) -> MediaPlaylist {
    let mut segments = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        for (i, seg) in rec.playlist.segments[piece.first..=piece.last]
            .iter()
            .enumerate()
        {
            let (uri, byte_range) = place(seg);
            segments.push(MediaSegment {
                uri,
                byte_range,
                map: None,
                discontinuity: seg.discontinuity || (n > 0 && i == 0),
                ..seg.clone()
            });
        }
    }
    if let Some(first) = segments.first_mut() {
        first.discontinuity = false;
        first.map = map;
    }
    let longest = segments
        .iter()
        .map(|s| s.duration as f64)
        .fold(0.0, f64::max);
    MediaPlaylist {
        version: rec.playlist.version,
        target_duration: index::target_duration(longest),
        playlist_type: Some(m3u8_rs::MediaPlaylistType::Vod),
        end_list: true,
        segments,
        ..Default::default()
    }
}

/// Writes the init segment and the kept segments' bytes to `dest`; returns its index.
fn copy_video(rec: &Recording, pieces: &[Piece], dest: &Path) -> Result<MediaPlaylist> {
    let tmp = temp_path_of(dest);
    let result = (|| -> Result<MediaPlaylist> {
        let mut source = File::open(&rec.video)?;
        let mut out = BufWriter::new(File::create(&tmp)?);
        let name = file_name(dest);
        let mut at = 0;
        let mut map = rec.map.clone();
        if let Some(m) = map.as_mut() {
            let r = m.byte_range.clone().expect("checked");
            copy_range(&mut source, &mut out, &r)?;
            m.uri = name.clone();
            m.byte_range = Some(ByteRange {
                length: r.length,
                offset: Some(0),
            });
            at = r.length;
        }
        let mut failed = None;
        let playlist = joined(rec, map, pieces, |seg| {
            let r = seg.byte_range.clone().expect("checked");
            if failed.is_none() {
                failed = copy_range(&mut source, &mut out, &r).err();
            }
            let placed = ByteRange {
                length: r.length,
                offset: Some(at),
            };
            at += r.length;
            (name.clone(), Some(placed))
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        finalize_file(&tmp, dest)?;
        Ok(playlist)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn copy_range(source: &mut File, out: &mut impl Write, r: &ByteRange) -> io::Result<()> {
    source.seek(SeekFrom::Start(r.offset.unwrap_or(0)))?;
    let copied = io::copy(&mut source.take(r.length), out)?;
    if copied != r.length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the recording is shorter than its index says",
        ));
    }
    Ok(())
}

/// Writes the chat lines of the kept pieces, `video_ms` as in the cut; returns how many.
fn cut_chat(source: &Path, dest: &Path, pieces: &[Piece]) -> Result<u64> {
    let tmp = temp_path_of(dest);
    let result = (|| -> Result<u64> {
        let reader = BufReader::new(File::open(source)?);
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut lines = 0;
        for line in reader.lines() {
            if let Some(moved) = cut_chat_line(pieces, &line?) {
                out.write_all(moved.as_bytes())?;
                out.write_all(b"\n")?;
                lines += 1;
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        finalize_file(&tmp, dest)?;
        Ok(lines)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where a cut's files go: beside the recording, named `<out>.m3u8`, `<out>.<ext>`,
/// `<out>.chat.jsonl`.
struct Outputs {
    index: PathBuf,
    video: PathBuf,
    chat: PathBuf,
}

impl Outputs {
    fn name(video: &Path, request: &Request) -> Result<Outputs> {
        let folder = video.parent().unwrap_or(Path::new("."));
        let ext = video
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ts".into());
        let at = |name: &str| Outputs {
            index: folder.join(format!("{name}.m3u8")),
            video: folder.join(format!("{name}.{ext}")),
            chat: folder.join(format!("{name}.chat.jsonl")),
        };
        let taken = |o: &Outputs| [&o.index, &o.video, &o.chat].iter().any(|p| p.exists());
        if let Some(name) = &request.out {
            check_out_name(name)?;
            let outputs = at(name);
            if taken(&outputs) {
                bail!("`{name}` is taken: a file of that name is already beside the recording");
            }
            return Ok(outputs);
        }
        let stem = video
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        (1..1000)
            .map(|n| at(&format!("{stem}.cut-{n}")))
            .find(|o| !taken(o))
            .ok_or_else(|| anyhow!("no free name for the cut; give one with --out"))
    }
}

/// An output name: one plain file name (no folders, no `..`), no extension needed.
fn check_out_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(anyhow!("--out `{}`: {why}", name.escape_debug()));
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("must be a name, not a path (the cut goes beside the recording)");
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return bad("must not start with `.`");
    }
    if !index::usable_name(name) || name.len() > 200 {
        return bad("has quotes, control characters or is too long");
    }
    Ok(())
}

/// The cut described for people: what was kept (at segment boundaries) and written.
pub fn describe(written: &Written) -> String {
    let spans: Vec<String> = written
        .kept
        .iter()
        .map(|(a, b)| format!("{}-{}", clock(*a), clock(*b)))
        .collect();
    let mut out = format!(
        "kept {} ({}), at segment boundaries\nwrote {}\n",
        spans.join(", "),
        clock(written.duration_secs),
        written.index.display()
    );
    if let Some(video) = &written.video {
        out.push_str(&format!("wrote {}\n", video.display()));
    }
    if let Some(chat) = &written.chat {
        out.push_str(&format!(
            "wrote {} ({} lines)\n",
            chat.display(),
            written.chat_lines
        ));
    }
    out
}
