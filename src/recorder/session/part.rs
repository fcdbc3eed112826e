//! The part being written: opening it (name, file, first checkpoint), writing each whole
//! segment (its init segment first in a new fMP4 part) followed by its checkpoint, a new part
//! when the init segment changes (never two inits in one file), the free-space check while
//! writing, and finishing it (fsync, rename, index, sidecar, `RecordingPartFinished`). The
//! part's HLS index (`index.rs`) gets an entry with each segment's checkpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};
use url::Url;

use super::super::disk;
use super::super::fetch::FetchError;
use super::super::gaps::{cap, MAX_TEXT};
use super::super::playlist::{InitMap, Segment};
use super::super::writer::{Note, PartFile};
use super::super::StopReason;
use super::index::{PartIndex, Placed};
use super::{Session, TakeEnd};
use crate::archive::layout::synced_note_path;
use crate::archive::layout::{self as naming, NameValues};
use crate::archive::sidecar::{Chapter, Position, Sidecar};
use crate::event::{Event, EventKind};

/// Tries to write a finished part's sidecar.
const SIDECAR_ATTEMPTS: u32 = 3;

/// Where the progress checkpoint of a part being written lives: `<final>.part.json`.
pub fn checkpoint_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".part.json");
    PathBuf::from(s)
}

/// The part being written.
#[derive(Debug)]
pub(super) struct OpenPart {
    pub(super) file: PartFile,
    /// Relative to recordings_dir, for messages.
    pub(super) relative: String,
    pub(super) sidecar: Sidecar,
    pub(super) map_written: Option<InitMap>,
    /// The bytes of the init segment at the file's start (fMP4): a new address serving the
    /// same bytes is the same init.
    pub(super) init: Option<Vec<bytes::Bytes>>,
    /// `RecordingStarted` is sent once the first segment is on disk.
    pub(super) announced: bool,
    /// The part's HLS index, unless `[recording] index` is off or it could not be created.
    pub(super) index: Option<PartIndex>,
}

impl Session {
    /// Writes one whole segment (its init segment first when it changed), then the
    /// checkpoint; checks free space every so many bytes.
    pub(super) async fn write_segment(
        &mut self,
        seg: &Segment,
        body: Vec<bytes::Bytes>,
        base: &Url,
    ) -> Result<(), TakeEnd> {
        if self.part.is_none() {
            self.open_part(seg.map.is_some()).await?;
        }
        let init = match self.init_segment(seg, base).await {
            Ok(init) => init,
            Err(e) => return self.segment_failed(seg, e, "its init segment ").await,
        };
        let init = self.roll_on_new_init(seg, init).await?;
        let written = match self.append_segment(seg, init, body).await {
            Ok(written) => written,
            Err(e) => return self.segment_failed(seg, FetchError::Disk(e), "").await,
        };
        self.announce_part().await;
        self.count_segment(written);
        let part = self.part.as_mut().expect("open");
        let (bytes, duration) = (part.file.len(), part.sidecar.duration_secs);
        self.totals.duration += seg.duration;
        self.unchecked_bytes += written;
        let (done_bytes, total_duration) = (self.totals.bytes, self.totals.duration);
        self.set_status(|s| {
            s.bytes = done_bytes + bytes;
            s.duration_secs = total_duration;
        });
        if duration >= self.rec.settings.max_part.as_secs_f64() {
            // Roll at this segment boundary; the next segment opens the next part.
            self.finish_part().await;
        }
        self.check_disk().await
    }

    /// A segment written (`written` bytes with its init segment): counted, and the session's
    /// first one tells how long after the stream's start (as the platform reports it) the
    /// recording began.
    fn count_segment(&mut self, written: u64) {
        self.counters.segments_ok.inc();
        self.counters.recorded_bytes.inc_by(written);
        if std::mem::replace(&mut self.detection_noted, true) {
            return;
        }
        if let Some(started) = self.spec.stream_started {
            let secs = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
            // A clock that disagrees with the platform's says nothing.
            if secs.is_finite() && secs >= 0.0 {
                self.counters.live_detection.observe(secs);
            }
        }
    }

    /// The init segment to write before `seg`, when it has one the open part has not got yet.
    async fn init_segment(
        &mut self,
        seg: &Segment,
        base: &Url,
    ) -> Result<Option<(InitMap, Vec<bytes::Bytes>)>, FetchError> {
        let part = self.part.as_ref().expect("opened by write_segment");
        if seg.map.is_none() || seg.map == part.map_written {
            return Ok(None);
        }
        let map = seg.map.clone().expect("checked");
        let bytes = match base.join(&map.uri) {
            Ok(url) => {
                self.queue
                    .fetch_whole(&url, map.byte_range, seg.duration)
                    .await?
            }
            Err(_) => {
                return Err(FetchError::Refused(format!(
                    "bad init address `{}`",
                    cap(&map.uri, MAX_TEXT)
                )))
            }
        };
        Ok(Some((map, bytes)))
    }

    /// A segment whose init segment differs from the one the open part starts with (new
    /// bytes, or fMP4 and MPEG-TS switching) cannot go into the same file: the part ends and
    /// the next begins, with the new init. The same bytes at a new address change nothing.
    async fn roll_on_new_init(
        &mut self,
        seg: &Segment,
        init: Option<(InitMap, Vec<bytes::Bytes>)>,
    ) -> Result<Option<(InitMap, Vec<bytes::Bytes>)>, TakeEnd> {
        let part = self.part.as_mut().expect("opened by write_segment");
        if part.sidecar.segments == 0 {
            return Ok(init);
        }
        let changed = match &init {
            Some((map, bytes)) => {
                if part
                    .init
                    .as_deref()
                    .is_some_and(|old| same_content(old, bytes))
                {
                    part.map_written = Some(map.clone());
                    return Ok(None);
                }
                true
            }
            None => seg.map.is_none() && part.map_written.is_some(),
        };
        if !changed {
            return Ok(init);
        }
        info!(login = %self.spec.login, sequence = seg.sequence, "the stream's init segment changed: a new part begins with it");
        // The cursor is already past `seg`, which goes into the next part.
        let last = part.sidecar.last_segment;
        self.finish_part_at(last).await;
        self.open_part(seg.map.is_some()).await?;
        Ok(init)
    }

    /// Appends `init` and `body` to the open part, then writes the checkpoint that says they
    /// are there. Returns the bytes written; on an error the part is as before.
    async fn append_segment(
        &mut self,
        seg: &Segment,
        init: Option<(InitMap, Vec<bytes::Bytes>)>,
        body: Vec<bytes::Bytes>,
    ) -> std::io::Result<u64> {
        let cursor = self.cursor.position();
        let elapsed = self.broadcast_offset(seg);
        let part = self.part.as_mut().expect("opened by write_segment");
        if seg.discontinuity && part.sidecar.segments > 0 {
            part.sidecar
                .discontinuities
                .push(part.sidecar.duration_secs);
        }
        let mark = part.file.len();
        let mut appended: std::io::Result<()> = Ok(());
        let map_written = init.as_ref().map(|(map, _)| map.clone());
        let init_bytes = init.as_ref().map(|(_, bytes)| bytes.clone());
        let init_len: u64 = init_bytes.iter().flatten().map(|b| b.len() as u64).sum();
        let had_init = init_bytes.is_some();
        let chunks = init.into_iter().flat_map(|(_, b)| b).chain(body);
        for chunk in chunks {
            appended = part.file.append(chunk).await;
            if appended.is_err() {
                break;
            }
        }
        if let Err(e) = appended {
            let _ = part.file.truncate(mark).await;
            return Err(e);
        }
        if map_written.is_some() {
            part.map_written = map_written;
            part.init = init_bytes;
        }
        let written = part.file.len() - mark;
        if let Some(index) = part.index.as_mut() {
            let placed = Placed {
                init: had_init.then_some((mark, init_len)),
                offset: mark + init_len,
                length: written - init_len,
            };
            index.segment(&mut part.file, &part.sidecar, seg, placed);
        }
        if part.sidecar.segments == 0 {
            part.sidecar.elapsed_secs = elapsed;
        }
        part.sidecar.segments += 1;
        part.sidecar.duration_secs += seg.duration;
        part.sidecar.bytes = part.file.len();
        part.sidecar.ended = Utc::now();
        part.sidecar.last_segment = cursor;
        // Whole segments go to the file at once, followed by the checkpoint that says so: a
        // killed process loses at most the segment being downloaded, however low the
        // bitrate, and recovery knows where the last whole segment ends.
        let note = serde_json::to_vec(&part.sidecar).ok().map(|bytes| Note {
            path: checkpoint_path(part.file.final_path()),
            bytes,
        });
        if let Err(e) = part.file.flush_and_note(note).await {
            part.sidecar.segments -= 1;
            part.sidecar.duration_secs -= seg.duration;
            return Err(e);
        }
        Ok(written)
    }

    /// `RecordingStarted`, once the open part's first segment is on disk.
    async fn announce_part(&mut self) {
        let part = self.part.as_mut().expect("open");
        if part.announced {
            return;
        }
        part.announced = true;
        let kind = EventKind::RecordingStarted {
            file: part.relative.clone(),
            quality: part.sidecar.quality.clone(),
            part: part.sidecar.part,
        };
        self.rec
            .events
            .send(Event::now(Some(self.spec.login.clone()), kind).in_session(self.spec.session))
            .await;
    }

    /// Every `disk_check_bytes` written: below `min_free_gb`, this recording stops at once
    /// (parts finished) and says so like the disk guard does, which stops the others too.
    async fn check_disk(&mut self) -> Result<(), TakeEnd> {
        // Once stopping, what is still whole in memory is written without checking again
        // (at most the look-ahead), so one stop is announced once.
        if self.unchecked_bytes < self.rec.settings.disk_check_bytes || self.stop.is_some() {
            return Ok(());
        }
        self.unchecked_bytes = 0;
        let settings = &self.rec.settings;
        let usage = match self.rec.disk_probe.usage(&settings.recordings_dir).await {
            Ok(u) => u,
            Err(e) => {
                debug!(error = %e, "cannot check free space");
                return Ok(());
            }
        };
        if disk::level(&usage, &settings.storage) != disk::Level::Stop {
            // Warnings and recoveries are the guard's to announce.
            return Ok(());
        }
        // A shortage already announced (by the guard or another recording) is not announced
        // again; this recording stops all the same.
        let announce = self.rec.disk_announced.measured(disk::Level::Stop);
        let (used_percent, free_gb) = (usage.used_percent(), usage.free_gb());
        warn!(login = %self.spec.login, free_gb, "the recordings disk is too full; recording stops");
        if announce {
            self.rec
                .events
                .emit(
                    None,
                    EventKind::DiskLow {
                        used_percent,
                        free_gb,
                        stopped_recording: true,
                    },
                )
                .await;
        }
        self.stop = Some(StopReason::Ended(disk::stop_reason(used_percent, free_gb)));
        Err(TakeEnd::Stop)
    }

    async fn segment_failed(
        &mut self,
        seg: &Segment,
        error: FetchError,
        what: &str,
    ) -> Result<(), TakeEnd> {
        match error {
            FetchError::Cancelled => {
                self.note_stop();
                Err(TakeEnd::Stop)
            }
            FetchError::Disk(e) => Err(TakeEnd::Failed(format!("cannot write the recording: {e}"))),
            e => {
                let elapsed = self.broadcast_offset(seg);
                self.gap(
                    seg.sequence,
                    seg.sequence,
                    seg.duration,
                    format!("{what}could not be fetched ({e})"),
                    elapsed,
                )
                .await;
                Ok(())
            }
        }
    }

    async fn open_part(&mut self, fmp4: bool) -> Result<(), TakeEnd> {
        let started = Utc::now();
        let stream_id = self.stream_id();
        let values = NameValues {
            login: &self.spec.login.path_safe(),
            started,
            title: &self.title,
            game: self.game.as_deref(),
            stream_id: stream_id.as_deref(),
            part: self.next_part,
        };
        let relative = naming::render(&self.rec.settings.file_template, &values, fmp4)
            .map_err(|e| TakeEnd::Failed(format!("cannot name the recording: {e}")))?;
        let target = self.rec.settings.recordings_dir.join(&relative);
        let mut file = PartFile::create(target).await.map_err(|e| {
            TakeEnd::Failed(format!(
                "cannot create the recording file under {}: {e}",
                self.rec.settings.recordings_dir.display()
            ))
        })?;
        file.set_sync_interval(self.rec.settings.sync_interval);
        let relative = file
            .final_path()
            .strip_prefix(&self.rec.settings.recordings_dir)
            .unwrap_or(file.final_path())
            .display()
            .to_string();
        let sidecar = self.new_sidecar(&file, started, stream_id);
        let index = if self.rec.settings.index {
            PartIndex::open(&mut file, self.target_duration, &sidecar).await
        } else {
            None
        };
        // The checkpoint of an empty part: recovery then knows nothing in it is whole yet.
        // Through the file's note, so the checkpoints after each segment rewrite it in place.
        let note = serde_json::to_vec(&sidecar).ok().map(|bytes| Note {
            path: checkpoint_path(file.final_path()),
            bytes,
        });
        if let Err(e) = file.flush_and_note(note).await {
            debug!(error = %e, "cannot write the progress checkpoint");
        }
        let part_no = self.next_part;
        self.next_part += 1;
        info!(login = %self.spec.login, part = part_no, file = %relative, quality = %self.quality, "recording");
        let quality = self.quality.clone();
        let rel = relative.clone();
        self.set_status(|s| {
            s.recording = true;
            s.part = part_no;
            s.file = rel;
            s.quality = quality;
        });
        self.part = Some(OpenPart {
            file,
            relative,
            sidecar,
            map_written: None,
            init: None,
            announced: false,
            index,
        });
        Ok(())
    }

    /// The sidecar of a part just created: nothing in it yet, the current chapter, and the
    /// gaps and ad breaks noted while no part was open.
    fn new_sidecar(
        &mut self,
        file: &PartFile,
        started: DateTime<Utc>,
        stream_id: Option<String>,
    ) -> Sidecar {
        Sidecar {
            login: self.spec.login.to_string(),
            display_name: self.spec.display_name.clone(),
            source: self.spec.source.platform().into(),
            platform: Some(self.spec.source.platform().into()),
            stream_id,
            session: self.spec.session,
            part: self.next_part,
            file: file
                .final_path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            quality: self.quality.clone(),
            codec: self.format.codec,
            width: self.format.resolution.map(|(w, _)| w),
            height: self.format.resolution.map(|(_, h)| h),
            frame_rate: self.format.fps,
            withheld: self.withheld.clone(),
            started,
            ended: started,
            duration_secs: 0.0,
            segments: 0,
            bytes: 0,
            chapters: vec![Chapter {
                at: started,
                offset_secs: 0.0,
                title: self.title.clone(),
                game: self.game.clone(),
            }],
            gaps: std::mem::take(&mut self.pending_gaps),
            ad_breaks: std::mem::take(&mut self.pending_ads),
            discontinuities: Vec::new(),
            recovered: false,
            youtube_video_id: None,
            last_segment: self.cursor.position(),
            elapsed_secs: None,
            fills: Vec::new(),
            vod_fill_done: false,
            subtitles: Vec::new(),
            summary: None,
            index: None,
        }
    }

    /// Finishes the open part, if any: flush, fsync, rename, sidecar, event.
    pub(super) async fn finish_part(&mut self) {
        self.finish_part_at(self.cursor.position()).await;
    }

    /// [`Session::finish_part`], the part's last segment being `last`.
    async fn finish_part_at(&mut self, last: Option<Position>) {
        let Some(part) = self.part.take() else {
            return;
        };
        let OpenPart {
            mut file,
            relative,
            mut sidecar,
            index,
            ..
        } = part;
        let checkpoint = checkpoint_path(file.final_path());
        if sidecar.segments == 0 {
            // Nothing made it in (the first segment failed): no empty files, and what was noted
            // goes to the next part.
            let part_path = file.part_path().to_path_buf();
            drop(file);
            if let Some(index) = index {
                index.discard().await;
            }
            let _ = tokio::fs::remove_file(&part_path).await;
            let _ = tokio::fs::remove_file(&checkpoint).await;
            let _ = tokio::fs::remove_file(synced_note_path(&checkpoint)).await;
            self.pending_gaps.append(&mut sidecar.gaps);
            self.pending_ads.append(&mut sidecar.ad_breaks);
            self.next_part -= 1;
            return;
        }
        sidecar.bytes = file.len();
        sidecar.ended = Utc::now();
        sidecar.last_segment = last;
        // The index's last gathered lines, before it is rewritten from the file.
        if let Err(e) = file.flush_index().await {
            debug!(login = %self.spec.login, file = %relative, error = %e, "cannot append the last index lines");
        }
        let index_lost = file.index_lost();
        let final_path = match file.finish().await {
            Ok(p) => p,
            Err(e) => {
                // The .part stays where it is; start-up recovery finishes it.
                warn!(login = %self.spec.login, file = %relative, error = %e, "cannot finish the part");
                self.emit(EventKind::RecordingFailed {
                    reason: format!("cannot finish {relative}: {e}; it is kept as .part"),
                })
                .await;
                return;
            }
        };
        if let Some(index) = index {
            sidecar.index = index.finish(index_lost, &final_path, sidecar.bytes).await;
        }
        let sidecar_path = Sidecar::path_for(&final_path);
        self.totals.bytes += sidecar.bytes;
        let done_bytes = self.totals.bytes;
        self.set_status(|s| s.bytes = done_bytes);
        if let Err(e) = write_sidecar(&sidecar, &sidecar_path).await {
            // Without its sidecar the part cannot be uploaded or given its chat: it is not
            // announced as finished. Its row stays `recording` and the checkpoint stays, so
            // the next start-up writes the sidecar (marked recovered) and announces it.
            warn!(login = %self.spec.login, file = %relative, error = %e, "cannot write the sidecar");
            self.emit(EventKind::RecordingFailed {
                reason: format!(
                    "part {} ({relative}) is complete but its sidecar cannot be written ({e:#}); \
                     it is not uploaded until recbot restarts and finishes it",
                    sidecar.part
                ),
            })
            .await;
            return;
        }
        let _ = tokio::fs::remove_file(&checkpoint).await;
        self.totals.parts += 1;
        let parts = self.totals.parts;
        self.set_status(|s| s.parts = parts);
        self.emit(EventKind::RecordingPartFinished {
            part: sidecar.part,
            file: final_path,
            sidecar: sidecar_path,
            bytes: sidecar.bytes,
            duration_secs: sidecar.duration_secs,
            gaps: sidecar.gaps.len() as u32,
            recovered: false,
        })
        .await;
    }
}

/// Whether two chunked bodies hold the same bytes.
fn same_content(a: &[bytes::Bytes], b: &[bytes::Bytes]) -> bool {
    a.iter()
        .flat_map(|c| c.iter())
        .eq(b.iter().flat_map(|c| c.iter()))
}

/// Writes a finished part's sidecar, trying again briefly when it fails.
async fn write_sidecar(sidecar: &Sidecar, path: &Path) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match sidecar.write(path).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt + 1 >= SIDECAR_ATTEMPTS => return Err(e),
            Err(e) => {
                debug!(error = %e, attempt, "cannot write the sidecar; retrying");
                tokio::time::sleep(crate::backoff::exponential(
                    attempt,
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                ))
                .await;
                attempt += 1;
            }
        }
    }
}
