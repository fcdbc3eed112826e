//! The open part's HLS index (`archive::index`, `[recording] index`): created with the part
//! (`EVENT`, pointing at the `.part` file), one entry queued on the part's writer after each
//! whole segment (appended after its bytes, fsynced with them: no extra trip or fsync per
//! segment), rewritten once as `VOD` with the final name when the part is finished. A failure
//! leaves the index out (logged), never the recording.

use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use super::super::playlist::Segment;
use super::super::writer::PartFile;
use crate::archive::index::{self, index_file, Entry};
use crate::archive::sidecar::Sidecar;
use crate::blocking;

/// The index of the part being written.
#[derive(Debug)]
pub(super) struct PartIndex {
    path: PathBuf,
    /// The `.part` file's name: the entries' URI while recording.
    uri: String,
    /// Gaps and ad breaks the part's sidecar listed at the last entry: more at the next one
    /// means something was cut out in between (`#EXT-X-DISCONTINUITY`).
    marks: usize,
}

/// Where a segment went in the part file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    /// The init segment written just before it, (offset, length).
    pub(super) init: Option<(u64, u64)>,
    pub(super) offset: u64,
    pub(super) length: u64,
}

fn marks(sidecar: &Sidecar) -> usize {
    sidecar.gaps.len() + sidecar.ad_breaks.len()
}

impl PartIndex {
    /// Creates the index of the part `file` (header with the source's target duration) and
    /// gives it to the file's writer; `None` (logged) when it cannot be.
    pub(super) async fn open(
        file: &mut PartFile,
        target_secs: f64,
        sidecar: &Sidecar,
    ) -> Option<PartIndex> {
        let path = index_file(file.final_path());
        let uri = file
            .part_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| index::usable_name(n))?;
        let header = index::header(target_secs);
        let at = path.clone();
        match blocking::io(move || index::create_blocking(&at, &header)).await {
            Ok(created) => file.set_index(created),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot create the recording's index; it is left out");
                return None;
            }
        }
        Some(PartIndex {
            path,
            uri,
            marks: marks(sidecar),
        })
    }

    /// Queues the entry of `seg`, written at `placed`, on the part's writer (appended after
    /// its bytes by the flush that writes its checkpoint). `sidecar` is the part's as it was
    /// before this segment.
    pub(super) fn segment(
        &mut self,
        file: &mut PartFile,
        sidecar: &Sidecar,
        seg: &Segment,
        placed: Placed,
    ) {
        let now = marks(sidecar);
        let cut = now > self.marks;
        self.marks = now;
        let entry = Entry {
            offset: placed.offset,
            length: placed.length,
            duration: seg.duration,
            program_date_time: seg.program_date_time,
            discontinuity: sidecar.segments > 0 && (seg.discontinuity || cut),
            init: placed.init,
        };
        let uri = &self.uri;
        file.queue_index(|out| index::entry(uri, &entry, out));
    }

    /// Rewrites the index of the part just finished as `final_path`'s (`len` bytes): its file
    /// name for the sidecar, or `None` when it is left out (`lost`: a write to it failed).
    pub(super) async fn finish(self, lost: bool, final_path: &Path, len: u64) -> Option<String> {
        if lost {
            warn!(path = %self.path.display(), "the recording's index missed entries; it is left out");
            self.discard().await;
            return None;
        }
        let video = final_path.file_name()?.to_string_lossy().into_owned();
        if !index::usable_name(&video) {
            self.discard().await;
            return None;
        }
        let to = index_file(final_path);
        let from = self.path.clone();
        let written = blocking::io(move || index::finish_blocking(&from, &to, &video, len)).await;
        match written {
            Ok(done) => done
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot finish the recording's index; it is left out");
                self.discard().await;
                None
            }
        }
    }

    /// Removes the index (its part is gone, or the index is incomplete).
    pub(super) async fn discard(self) {
        if let Err(e) = tokio::fs::remove_file(&self.path).await {
            debug!(path = %self.path.display(), error = %e, "cannot remove the index");
        }
    }
}
