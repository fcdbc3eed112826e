//! Crash recovery: finishing parts a killed process left behind. A part being written is
//! `<name>.part` with a progress checkpoint `<name>.part.json` (the sidecar so far, rewritten
//! after every whole segment, with the stream position). At start-up each leftover is cut back
//! to the last whole segment the checkpoint knows (a segment half written when the process
//! died is dropped; the continued session fetches it again), fsynced, renamed to its final name
//! and given a sidecar marked `recovered`, with what the checkpoint and the state database know.
//! A leftover with no whole segment is removed.
//!
//! Its HLS index (`<name>.m3u8`, `archive::index`) is finished too: entries beyond the bytes
//! kept dropped, rewritten as `VOD` with the final name. An index that cannot be read is
//! removed and logged; it never stops recovery.
//!
//! Only what the recorder wrote is touched: a `.part` is finished when it has a checkpoint or a
//! database row (the caller checks the row, [`has_checkpoint_blocking`] the rest); any other
//! `.part` is left alone. Temporary files (sidecar, checkpoint, chat export, copies) end in
//! [`TEMP_SUFFIX`] and stale ones are removed at start-up ([`remove_stale_temps_blocking`]).
//!
//! After a power cut the latest checkpoint may claim more than reached the disk (it is not
//! fsynced after every segment); the durable one (`<checkpoint>.synced`, written only after the
//! data was fsynced) never does. The latest is used when the file holds all it claims, else the
//! durable one: the file is cut back by at most the tail written since the last sync.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::session::checkpoint_path;
use crate::archive::files::finalize_file;
use crate::archive::index::{self, index_file};
use crate::archive::layout::{numbered, synced_note_path, TEMP_SUFFIX};
use crate::archive::sidecar::{Chapter, Sidecar};

/// Temporary-file endings of earlier versions (sidecar, chat export, checkpoint), cleaned up
/// like [`TEMP_SUFFIX`] files. None ends in `.ts.part`/`.mp4.part`.
const LEGACY_TEMPS: [&str; 3] = [".json.part", ".chat.jsonl.part", ".part.json.tmp"];

/// What the state database knows about a part (when it knows it).
#[derive(Debug, Clone)]
pub struct Known {
    pub login: String,
    pub session: i64,
    pub part: u32,
    pub stream_id: Option<String>,
    pub title: Option<String>,
    pub game: Option<String>,
    pub started: DateTime<Utc>,
}

/// A part finished by recovery.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub file: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
}

/// Files still named `.part` under `dir` (blocking walk): candidates only, a recording's when
/// it has a checkpoint or a database row. Temporaries of earlier versions (`.json.part`,
/// `.chat.jsonl.part`) are never candidates.
pub fn find_parts_blocking(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => found.extend(find_parts_blocking(&path)),
            Ok(t) if t.is_file() => {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".part") && !is_temporary(&name) {
                    found.push(path);
                }
            }
            _ => {}
        }
    }
    found.sort();
    found
}

fn is_temporary(name: &str) -> bool {
    name.ends_with(TEMP_SUFFIX) || LEGACY_TEMPS.iter().any(|t| name.ends_with(t))
}

/// Removes the temporary files a crash left under `dir` (blocking walk, at start-up before
/// anything writes there): sidecars, checkpoints and chat files half written, copies half made.
/// Returns what was removed.
pub fn remove_stale_temps_blocking(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => removed.extend(remove_stale_temps_blocking(&path)),
            Ok(t) if t.is_file() => {
                let name = entry.file_name().to_string_lossy().into_owned();
                if (is_temporary(&name) || is_orphaned_durable_note(&path, &name))
                    && std::fs::remove_file(&path).is_ok()
                {
                    removed.push(path);
                }
            }
            _ => {}
        }
    }
    removed.sort();
    removed
}

/// A durable checkpoint (`x.ts.part.json.synced`) with neither its part (`x.ts.part`) nor its
/// latest checkpoint (`x.ts.part.json`) left: nothing will ever read it.
fn is_orphaned_durable_note(path: &Path, name: &str) -> bool {
    let Some(latest) = name.strip_suffix(".synced") else {
        return false;
    };
    let Some(part) = latest.strip_suffix(".json") else {
        return false;
    };
    part.ends_with(".part")
        && !path.with_file_name(part).exists()
        && !path.with_file_name(latest).exists()
}

/// Whether the recorder wrote `part`: it has a progress checkpoint, latest or durable
/// (blocking).
pub fn has_checkpoint_blocking(part: &Path) -> bool {
    let checkpoint = checkpoint_path(&final_path_of(part));
    checkpoint.is_file() || synced_note_path(&checkpoint).is_file()
}

/// `x.ts.part` → `x.ts`.
pub(crate) fn final_path_of(part: &Path) -> PathBuf {
    let s = part.to_string_lossy();
    PathBuf::from(s.strip_suffix(".part").unwrap_or(&s).to_string())
}

/// The progress checkpoint of a leftover (`.part` or finished without a sidecar), if readable.
pub async fn checkpoint_of(path: &Path) -> Option<Sidecar> {
    let intended = if path.to_string_lossy().ends_with(".part") {
        final_path_of(path)
    } else {
        path.to_path_buf()
    };
    let checkpoint = checkpoint_path(&intended);
    for path in [checkpoint.clone(), synced_note_path(&checkpoint)] {
        if let Ok(bytes) = tokio::fs::read(path).await {
            if let Ok(s) = serde_json::from_slice(&bytes) {
                return Some(s);
            }
        }
    }
    None
}

/// Finishes the recording at `path` — a `.part` file (renamed) or an already renamed file
/// that has no sidecar yet — and writes its sidecar, marked recovered. `None` when nothing of
/// it was worth keeping (not one whole segment): it is removed.
pub async fn recover(path: PathBuf, known: Option<Known>) -> io::Result<Option<Recovered>> {
    let finished = tokio::task::spawn_blocking(move || recover_blocking(&path, known.as_ref()))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))?;
    match finished {
        Some(done) => done.write_sidecar().await.map(Some),
        None => Ok(None),
    }
}

/// A leftover cut back and renamed (the blocking half of [`recover`]), its sidecar not
/// written yet.
struct AwaitingSidecar {
    file: PathBuf,
    checkpoint: PathBuf,
    sidecar: Sidecar,
}

impl AwaitingSidecar {
    async fn write_sidecar(self) -> io::Result<Recovered> {
        let sidecar_path = Sidecar::path_for(&self.file);
        self.sidecar
            .write(&sidecar_path)
            .await
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        let _ = tokio::fs::remove_file(&self.checkpoint).await;
        let _ = tokio::fs::remove_file(synced_note_path(&self.checkpoint)).await;
        Ok(Recovered {
            file: self.file,
            sidecar_path,
            sidecar: self.sidecar,
        })
    }
}

/// The blocking half of [`recover`]: cut back to the last whole segment, fsync, rename,
/// and the sidecar from the checkpoint (or from what the database knows).
fn recover_blocking(path: &Path, known: Option<&Known>) -> io::Result<Option<AwaitingSidecar>> {
    let is_part = path.to_string_lossy().ends_with(".part");
    let intended = if is_part {
        final_path_of(path)
    } else {
        path.to_path_buf()
    };
    let checkpoint = checkpoint_path(&intended);
    let durable_path = synced_note_path(&checkpoint);
    let meta = std::fs::metadata(path)?;
    let saved = saved_checkpoint(&checkpoint, &durable_path, meta.len());
    let Some(bytes) = cut_back(path, saved.as_ref(), meta.len(), &checkpoint, &durable_path)?
    else {
        let _ = std::fs::remove_file(index_file(&intended));
        return Ok(None);
    };
    let ended: DateTime<Utc> = meta
        .modified()
        .map(DateTime::from)
        .unwrap_or_else(|_| Utc::now());
    let file = if is_part {
        finish_leftover(path, &intended)?
    } else {
        intended.clone()
    };
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let index = finish_index(&intended, &file, bytes);
    let mut sidecar = match saved {
        Some(mut s) => {
            // A checkpoint from an older version lags behind the file by a few seconds, and
            // a file can have lost its end (a power cut): scale the duration at the
            // checkpoint's bitrate.
            if s.bytes > 0 && bytes != s.bytes {
                s.duration_secs *= bytes as f64 / s.bytes as f64;
            }
            s.bytes = bytes;
            s.ended = ended.max(s.started);
            s.file = file_name;
            s.recovered = true;
            if let Some(k) = known {
                s.session = k.session;
                s.part = k.part;
            }
            s
        }
        None => sidecar_without_checkpoint(known, &file, file_name, bytes, ended),
    };
    sidecar.index = index;
    Ok(Some(AwaitingSidecar {
        file,
        checkpoint,
        sidecar,
    }))
}

/// The checkpoint to trust for a file of `bytes`: the latest when the file holds all it
/// describes (a killed process: the page cache had it all), else the durable one (a power
/// cut: the latest outran the data).
fn saved_checkpoint(checkpoint: &Path, durable_path: &Path, bytes: u64) -> Option<Sidecar> {
    let read = |p: &Path| -> Option<Sidecar> {
        std::fs::read(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    };
    match (read(checkpoint), read(durable_path)) {
        (Some(latest), _) if latest.bytes <= bytes => Some(latest),
        (_, Some(durable)) if durable.bytes <= bytes => Some(durable),
        (latest, durable) => latest.or(durable),
    }
}

/// Cuts `path` back to the last whole segment `saved` knows. Returns the bytes kept, or
/// `None` when not one whole segment was left (the file and its checkpoints are removed).
fn cut_back(
    path: &Path,
    saved: Option<&Sidecar>,
    mut bytes: u64,
    checkpoint: &Path,
    durable_path: &Path,
) -> io::Result<Option<u64>> {
    // A checkpoint with a stream position is written after every whole segment: whatever
    // the file has beyond its byte count is a segment cut off by the crash. So is the
    // checkpoint written when the part opened (nothing in it yet; the first part of a
    // session has no position before its first segment).
    let exact = |s: &&Sidecar| s.last_segment.is_some() || (s.segments == 0 && s.bytes == 0);
    if let Some(s) = saved.filter(exact) {
        if bytes > s.bytes {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(s.bytes)?;
            bytes = s.bytes;
        }
        if bytes == 0 || s.segments == 0 {
            std::fs::remove_file(path)?;
            let _ = std::fs::remove_file(checkpoint);
            let _ = std::fs::remove_file(durable_path);
            return Ok(None);
        }
    }
    Ok(Some(bytes))
}

/// Finishes the index of the leftover meant to be `intended`, now `file` of `len` bytes: its
/// file name, or `None` when there is none or it cannot be finished (then it is removed).
fn finish_index(intended: &Path, file: &Path, len: u64) -> Option<String> {
    let from = index_file(intended);
    if !from.is_file() {
        return None;
    }
    let video = file.file_name()?.to_string_lossy().into_owned();
    let to = index_file(file);
    let finished = if index::usable_name(&video) {
        index::finish_blocking(&from, &to, &video, len)
    } else {
        Err(io::Error::other("the file name cannot stand in an index"))
    };
    match finished {
        Ok(done) => {
            if done.dropped > 0 {
                tracing::info!(index = %done.path.display(), dropped = done.dropped, "index entries past the recovered end dropped");
            }
            done.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        }
        Err(e) => {
            tracing::warn!(index = %from.display(), error = %e, "cannot finish the leftover's index; it is left out");
            let _ = std::fs::remove_file(&from);
            None
        }
    }
}

/// fsyncs the `.part` and renames it to its final name (numbered when that name is taken).
fn finish_leftover(path: &Path, intended: &Path) -> io::Result<PathBuf> {
    std::fs::File::open(path)?.sync_all()?;
    // Never overwrite: a file with the final name may exist (a crash after a rename).
    let mut target = intended.to_path_buf();
    let mut n = 2;
    while target.exists() {
        target = numbered(intended, n);
        n += 1;
    }
    finalize_file(path, &target)?;
    Ok(target)
}

/// The sidecar of a leftover with no readable checkpoint: what the database knows, the file's
/// size and times, the login from its folder.
fn sidecar_without_checkpoint(
    known: Option<&Known>,
    file: &Path,
    file_name: String,
    bytes: u64,
    ended: DateTime<Utc>,
) -> Sidecar {
    let started = known.map(|k| k.started).unwrap_or(ended);
    let login = known.map(|k| k.login.clone()).unwrap_or_else(|| {
        // `{login}/…` is the default layout; otherwise the name is unknown.
        file.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unknown".into())
    });
    Sidecar {
        login,
        display_name: None,
        source: "twitch".into(),
        platform: None,
        stream_id: known.and_then(|k| k.stream_id.clone()),
        session: known.map(|k| k.session).unwrap_or(0),
        part: known.map(|k| k.part).unwrap_or(1),
        file: file_name,
        quality: "unknown".into(),
        codec: None,
        width: None,
        height: None,
        frame_rate: None,
        withheld: Vec::new(),
        started,
        ended,
        // Unknown without a checkpoint: the wall-clock span is the best estimate.
        duration_secs: (ended - started).num_milliseconds().max(0) as f64 / 1000.0,
        segments: 0,
        bytes,
        chapters: known
            .and_then(|k| k.title.clone())
            .map(|title| {
                vec![Chapter {
                    at: started,
                    offset_secs: 0.0,
                    title,
                    game: known.and_then(|k| k.game.clone()),
                }]
            })
            .unwrap_or_default(),
        gaps: Vec::new(),
        ad_breaks: Vec::new(),
        discontinuities: Vec::new(),
        recovered: true,
        youtube_video_id: None,
        last_segment: None,
        elapsed_secs: None,
        fills: Vec::new(),
        vod_fill_done: false,
        subtitles: Vec::new(),
        summary: None,
        index: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leftover_parts_are_found_and_finished() {
        let dir = tempfile::tempdir().unwrap();
        let login_dir = dir.path().join("foo");
        std::fs::create_dir_all(&login_dir).unwrap();
        let part = login_dir.join("2026_x.ts.part");
        std::fs::write(&part, vec![1u8; 2000]).unwrap();
        // A checkpoint taken at 1000 bytes / 4 s.
        let mut checkpoint = serde_json::json!({
            "login": "foo", "source": "twitch", "session": 3, "part": 2, "file": "2026_x.ts",
            "quality": "720p60", "started": "2026-11-21T10:00:00Z", "ended": "2026-11-21T10:00:04Z",
            "duration_secs": 4.0, "segments": 2, "bytes": 1000, "stream_id": "99",
        });
        checkpoint["chapters"] =
            serde_json::json!([{"at": "2026-11-21T10:00:00Z", "offset_secs": 0.0, "title": "t"}]);
        std::fs::write(
            login_dir.join("2026_x.ts.part.json"),
            serde_json::to_vec(&checkpoint).unwrap(),
        )
        .unwrap();
        std::fs::write(login_dir.join("other.json.part"), b"{").unwrap();
        std::fs::write(login_dir.join("other.chat.jsonl.part"), b"{}").unwrap();
        std::fs::write(login_dir.join("bare.ts.part"), b"abc").unwrap();
        assert!(has_checkpoint_blocking(&part));
        assert!(!has_checkpoint_blocking(&login_dir.join("bare.ts.part")));

        let found = find_parts_blocking(dir.path());
        assert_eq!(
            found,
            [
                login_dir.join("2026_x.ts.part"),
                login_dir.join("bare.ts.part")
            ]
        );

        let r = recover(found[0].clone(), None).await.unwrap().unwrap();
        assert_eq!(r.file, login_dir.join("2026_x.ts"));
        assert!(!part.exists() && r.file.exists());
        assert!(!login_dir.join("2026_x.ts.part.json").exists());
        let s = Sidecar::read(&r.sidecar_path).await.unwrap();
        assert!(s.recovered);
        assert_eq!((s.session, s.part, s.bytes), (3, 2, 2000));
        assert_eq!(s.duration_secs, 8.0);
        assert_eq!(s.quality, "720p60");
        assert_eq!(s.chapters[0].title, "t");

        let known = Known {
            login: "foo".into(),
            session: 5,
            part: 1,
            stream_id: Some("7".into()),
            title: Some("from db".into()),
            game: None,
            started: Utc::now() - chrono::Duration::seconds(60),
        };
        let r = recover(found[1].clone(), Some(known))
            .await
            .unwrap()
            .unwrap();
        let s = r.sidecar;
        assert!(s.recovered);
        assert_eq!((s.login.as_str(), s.session, s.bytes), ("foo", 5, 3));
        assert_eq!(s.chapters[0].title, "from db");
        assert!(s.duration_secs >= 59.0);
    }

    fn checkpoint(bytes: u64, segments: u64, last: u64) -> serde_json::Value {
        serde_json::json!({
            "login": "foo", "source": "twitch", "session": 3, "part": 2, "file": "x.ts",
            "quality": "720p60", "started": "2026-11-21T10:00:00Z", "ended": "2026-11-21T10:00:04Z",
            "duration_secs": 4.0, "segments": segments, "bytes": bytes,
            "last_segment": {"sequence": last, "program_date_time": "2026-11-21T10:00:02Z"},
        })
    }

    #[tokio::test]
    async fn a_segment_cut_off_by_the_crash_is_trimmed_back() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.ts.part");
        // Two whole segments (1000 bytes, per the checkpoint), then half of the third.
        std::fs::write(&part, [vec![1u8; 1000], vec![2u8; 300]].concat()).unwrap();
        std::fs::write(
            dir.path().join("x.ts.part.json"),
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap(), vec![1u8; 1000]);
        assert_eq!(r.sidecar.bytes, 1000);
        assert_eq!(r.sidecar.duration_secs, 4.0);
        assert_eq!(r.sidecar.last_segment.unwrap().sequence, 41);

        // Killed during the first segment of a part: nothing to keep.
        let part = dir.path().join("y.ts.part");
        std::fs::write(&part, vec![3u8; 500]).unwrap();
        std::fs::write(
            dir.path().join("y.ts.part.json"),
            serde_json::to_vec(&checkpoint(0, 0, 41)).unwrap(),
        )
        .unwrap();
        assert!(recover(part.clone(), None).await.unwrap().is_none());
        assert!(!part.exists());
        assert!(!dir.path().join("y.ts").exists());
        assert!(!dir.path().join("y.ts.part.json").exists());

        // The same in the first part of a session: no position yet.
        let part = dir.path().join("z.ts.part");
        std::fs::write(&part, vec![3u8; 500]).unwrap();
        let mut fresh = checkpoint(0, 0, 0);
        fresh.as_object_mut().unwrap().remove("last_segment");
        std::fs::write(
            dir.path().join("z.ts.part.json"),
            serde_json::to_vec(&fresh).unwrap(),
        )
        .unwrap();
        assert!(recover(part.clone(), None).await.unwrap().is_none());
        assert!(!part.exists());
    }

    /// The index of a killed part lists a segment the checkpoint does not (appended after
    /// its bytes, before its checkpoint): recovery keeps the entries of the bytes kept, as a
    /// finished index naming the final file. A damaged index is removed; recovery goes on.
    #[tokio::test]
    async fn the_index_is_finished_with_the_part_and_never_stops_recovery() {
        use crate::archive::index::{entry, header, Entry};
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.ts.part");
        std::fs::write(&part, [vec![1u8; 1000], vec![2u8; 500]].concat()).unwrap();
        std::fs::write(
            dir.path().join("x.ts.part.json"),
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        let mut text = header(2.0);
        for (offset, length) in [(0, 600), (600, 400), (1000, 500)] {
            let e = Entry {
                offset,
                length,
                duration: 2.0,
                program_date_time: None,
                discontinuity: false,
                init: None,
            };
            entry("x.ts.part", &e, &mut text);
        }
        // A fourth entry torn by the kill.
        text.extend_from_slice(b"#EXT-X-BYTERANGE:500@1500\n#EXTINF:2,\nx.ts");
        let index = dir.path().join("x.m3u8");
        std::fs::write(&index, &text).unwrap();
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(r.sidecar.index.as_deref(), Some("x.m3u8"));
        let p = crate::archive::index::read_blocking(&index).unwrap();
        assert!(p.end_list);
        assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        let ranges: Vec<(u64, Option<u64>, String)> = p
            .segments
            .iter()
            .map(|s| {
                let r = s.byte_range.as_ref().unwrap();
                (r.length, r.offset, s.uri.clone())
            })
            .collect();
        assert_eq!(
            ranges,
            vec![
                (600, Some(0), "x.ts".into()),
                (400, Some(600), "x.ts".into())
            ]
        );

        // Damaged beyond reading: recovered all the same, without an index.
        let part = dir.path().join("y.ts.part");
        std::fs::write(&part, vec![1u8; 1000]).unwrap();
        std::fs::write(
            dir.path().join("y.ts.part.json"),
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("y.m3u8"), b"\x00\x01 not a playlist\n").unwrap();
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap().len(), 1000);
        assert_eq!(r.sidecar.index, None);
        assert!(!dir.path().join("y.m3u8").exists());
    }

    /// A power cut: the latest checkpoint (not fsynced) reached the disk, the data it describes
    /// did not all. The durable checkpoint, written after the data's fsync, is used: the file
    /// keeps exactly the bytes it describes, no fewer.
    #[tokio::test]
    async fn after_a_power_cut_the_durable_checkpoint_bounds_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.ts.part");
        let latest = dir.path().join("x.ts.part.json");
        let durable = dir.path().join("x.ts.part.json.synced");
        // 1500 bytes reached the disk; the latest checkpoint claims 3 segments (2000 bytes),
        // the durable one 2 (1000 bytes).
        std::fs::write(&part, [vec![1u8; 1000], vec![2u8; 500]].concat()).unwrap();
        std::fs::write(
            &latest,
            serde_json::to_vec(&checkpoint(2000, 3, 42)).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &durable,
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap(), vec![1u8; 1000]);
        assert_eq!((r.sidecar.bytes, r.sidecar.segments), (1000, 2));
        assert_eq!(r.sidecar.last_segment.unwrap().sequence, 41);
        assert!(!latest.exists() && !durable.exists());

        // A killed process: the file holds all the latest checkpoint says and more (a segment
        // being written). The latest wins; only the cut-off segment goes, not back to the
        // durable one.
        let part = dir.path().join("y.ts.part");
        let latest = dir.path().join("y.ts.part.json");
        std::fs::write(&part, [vec![1u8; 2000], vec![9u8; 300]].concat()).unwrap();
        std::fs::write(
            &latest,
            serde_json::to_vec(&checkpoint(2000, 3, 42)).unwrap(),
        )
        .unwrap();
        std::fs::write(
            synced_note_path(&latest),
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(std::fs::read(&r.file).unwrap(), vec![1u8; 2000]);
        assert_eq!(r.sidecar.last_segment.unwrap().sequence, 42);

        // Only the durable checkpoint is left (the latest lost): it is enough.
        let part = dir.path().join("z.ts.part");
        std::fs::write(&part, vec![1u8; 1200]).unwrap();
        let latest = dir.path().join("z.ts.part.json");
        std::fs::write(
            synced_note_path(&latest),
            serde_json::to_vec(&checkpoint(1000, 2, 41)).unwrap(),
        )
        .unwrap();
        assert!(has_checkpoint_blocking(&part));
        let r = recover(part, None).await.unwrap().unwrap();
        assert_eq!(r.sidecar.bytes, 1000);
    }

    #[test]
    fn stale_temporaries_are_removed_and_never_taken_for_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let login_dir = dir.path().join("foo");
        std::fs::create_dir_all(&login_dir).unwrap();
        let temps = [
            "a.json.recbot-tmp",
            "a.chat.jsonl.recbot-tmp",
            "a.ts.part.json.recbot-tmp",
            "a.ts.part.json.synced.recbot-tmp",
            "old.chat.jsonl.part",
            "old.json.part",
            "old.ts.part.json.tmp",
        ];
        for t in temps {
            std::fs::write(login_dir.join(t), b"x").unwrap();
        }
        std::fs::write(login_dir.join("gone.ts.part.json.synced"), b"{}").unwrap();
        let kept = [
            "a.ts",
            "a.json",
            "a.chat.jsonl",
            "b.ts.part",
            "b.ts.part.json",
            "b.ts.part.json.synced",
            "c.ts",
            "c.ts.part.json",
            "c.ts.part.json.synced",
        ];
        for k in kept {
            std::fs::write(login_dir.join(k), b"x").unwrap();
        }
        assert_eq!(
            find_parts_blocking(dir.path()),
            [login_dir.join("b.ts.part")]
        );
        let removed = remove_stale_temps_blocking(dir.path());
        assert_eq!(removed.len(), temps.len() + 1, "{removed:?}");
        assert!(removed.contains(&login_dir.join("gone.ts.part.json.synced")));
        let mut left: Vec<String> = std::fs::read_dir(&login_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = kept.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
    }
}
