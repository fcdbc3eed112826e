//! Filling a finished Twitch session's gaps from the broadcast's VOD: the worker side of a
//! fill job (the core decides when one runs and keeps it until `VodFillDone`). It reads the
//! parts' sidecars for gaps placed in the broadcast (`elapsed_secs`), finds the VOD, waits
//! (bounded) while it is still processing, chooses the rendition the part was recorded in,
//! and downloads only the VOD segments covering each gap — through the recorder's HTTP with
//! a segment's size and time caps, each retry bounded — into `<part>.fill-<n>.ts` (or `.mp4`,
//! init segment first) beside the part: `.part`, fsynced, renamed. Each fill is listed in the
//! part's sidecar, then announced (`GapFilled`); what could not be filled is said
//! (`VodFillFailed`) and stays a gap.
//!
//! Muted VOD segments: Twitch lists `N-muted.ts` (a copy with the audio silenced) and
//! sometimes `N-unmuted.ts`, which is refused; the latter is read as the former, and a fill
//! with any of them is marked muted.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use recbot_commands::{Login, Quality};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use url::Url;

use super::fetch::{self, FetchError, Http};
use super::lookahead::{Limits, Lookahead};
use super::playlist::{self, MediaPlaylist, Parsed, Segment};
use super::variant;
use crate::archive::files::finalize_file;
use crate::archive::layout::{fill_file, part_path_of};
use crate::archive::sidecar::{Fill, Sidecar};
use crate::event::{Event, EventKind};
use crate::rendition::Codec;
use crate::twitch::playback::VodMaster;
use crate::twitch::vod::{VodError, Vods};
use crate::work::Events;

/// A segment edge this close to a gap's edge does not count as overlapping it (float sums).
const EDGE: f64 = 1e-3;

/// One session's fill, as the core hands it over.
#[derive(Debug, Clone)]
pub struct FillJob {
    pub login: Login,
    pub session: i64,
    pub stream_id: Option<String>,
    /// The session's finished parts (final paths), in order.
    pub parts: Vec<PathBuf>,
    /// Waiting for the VOD ends here.
    pub deadline: DateTime<Utc>,
}

/// What every fill shares.
#[derive(Debug, Clone)]
pub struct VodFill {
    pub vods: Arc<Vods>,
    pub http: Http,
    pub limits: Limits,
    pub codecs: Vec<Codec>,
    pub poll: Duration,
    pub events: Events,
}

/// A gap still to fill: which part, which gap, its span in the broadcast.
#[derive(Debug, Clone)]
struct Wanted {
    part: PathBuf,
    sidecar: PathBuf,
    part_no: u32,
    gap: usize,
    quality: String,
    from: f64,
    to: f64,
    fmp4: bool,
}

/// How a fill job ended, for its last events.
#[derive(Debug, Default)]
struct Tally {
    filled: u32,
    unfilled: u32,
    unfilled_secs: f64,
    why: Option<String>,
}

impl Tally {
    fn miss(&mut self, seconds: f64, why: impl Into<String>) {
        self.unfilled += 1;
        self.unfilled_secs += seconds;
        self.why.get_or_insert_with(|| why.into());
    }
}

impl VodFill {
    /// Runs `job` to its end (then `VodFillDone`), or until `cancel` (shutdown: the job stays
    /// with the core and runs again after the restart; what is filled is not fetched again).
    pub async fn run(self, job: FillJob, cancel: CancellationToken) {
        let mut tally = Tally::default();
        let (mut wanted, started) = self.wanted(&job, &mut tally).await;
        if !wanted.is_empty() {
            info!(login = %job.login, session = job.session, gaps = wanted.len(), "filling gaps from the VOD");
            if self
                .fill_all(&job, started, &mut wanted, &mut tally, &cancel)
                .await
                .is_none()
            {
                return;
            }
        }
        self.mark_done(&job).await;
        if tally.unfilled > 0 {
            let reason = tally.why.take().unwrap_or_default();
            self.emit(
                &job,
                EventKind::VodFillFailed {
                    reason,
                    gaps: tally.unfilled,
                    seconds: tally.unfilled_secs,
                },
            )
            .await;
        }
        self.emit(
            &job,
            EventKind::VodFillDone {
                filled: tally.filled,
                unfilled: tally.unfilled,
            },
        )
        .await;
    }

    /// Notes in each part's sidecar that its fill is over (after-upload waits for it).
    async fn mark_done(&self, job: &FillJob) {
        for part in &job.parts {
            let path = Sidecar::path_for(part);
            if let Err(e) = Sidecar::update(&path, |s| s.vod_fill_done = true).await {
                warn!(part = %part.display(), error = %format!("{e:#}"), "cannot note the VOD fill as over");
            }
        }
    }

    async fn emit(&self, job: &FillJob, kind: EventKind) {
        let event = Event::now(Some(job.login.clone()), kind).in_session(job.session);
        self.events.send(event).await;
    }

    /// The gaps to fill (not filled before), and the broadcast's estimated start.
    async fn wanted(
        &self,
        job: &FillJob,
        tally: &mut Tally,
    ) -> (Vec<Wanted>, Option<DateTime<Utc>>) {
        let mut wanted = Vec::new();
        let mut started = None;
        for part in &job.parts {
            let sidecar_path = Sidecar::path_for(part);
            let sidecar = match Sidecar::read(&sidecar_path).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(part = %part.display(), error = %format!("{e:#}"), "cannot read a part's sidecar; its gaps are not filled");
                    continue;
                }
            };
            if let Some(elapsed) = sidecar.elapsed_secs {
                let back = chrono::TimeDelta::milliseconds((elapsed * 1000.0) as i64);
                started.get_or_insert(sidecar.started - back);
            }
            for (i, gap) in sidecar.gaps.iter().enumerate() {
                if sidecar.fills.iter().any(|f| f.gap == i) || gap.seconds <= 0.0 {
                    continue;
                }
                let Some(from) = gap.elapsed_secs else {
                    tally.miss(gap.seconds, "its place in the broadcast is not known");
                    continue;
                };
                wanted.push(Wanted {
                    part: part.clone(),
                    sidecar: sidecar_path.clone(),
                    part_no: sidecar.part,
                    gap: i,
                    quality: sidecar.quality.clone(),
                    from,
                    to: from + gap.seconds,
                    fmp4: part.extension().is_some_and(|e| e == "mp4"),
                });
            }
        }
        (wanted, started)
    }

    /// Looks for the VOD until every wanted gap is filled or given up, or the deadline
    /// passes. `None` when cancelled.
    async fn fill_all(
        &self,
        job: &FillJob,
        started: Option<DateTime<Utc>>,
        wanted: &mut Vec<Wanted>,
        tally: &mut Tally,
        cancel: &CancellationToken,
    ) -> Option<()> {
        let mut vod: Option<String> = None;
        loop {
            let round = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = self.round(job, started, &mut vod, wanted, tally) => r,
            };
            let waiting_for = match round {
                Ok(None) => return Some(()),
                Ok(Some(why)) => why,
                Err(why) => {
                    for w in wanted.drain(..) {
                        tally.miss(w.to - w.from, why.clone());
                    }
                    return Some(());
                }
            };
            if Utc::now() >= job.deadline {
                for w in wanted.drain(..) {
                    tally.miss(
                        w.to - w.from,
                        format!("gave up waiting for the VOD: {waiting_for}"),
                    );
                }
                return Some(());
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// One look at the VOD: fills what it covers. `Ok(None)`: nothing left to fill;
    /// `Ok(Some(why))`: wait and look again; `Err(why)`: the VOD cannot be had.
    async fn round(
        &self,
        job: &FillJob,
        started: Option<DateTime<Utc>>,
        vod: &mut Option<String>,
        wanted: &mut Vec<Wanted>,
        tally: &mut Tally,
    ) -> Result<Option<String>, String> {
        let vods = &self.vods;
        let id = match vod.clone() {
            Some(id) => id,
            None => match vods.find(&job.login, job.stream_id.as_deref(), started).await {
                Ok(Some(id)) => vod.insert(id).clone(),
                Ok(None) => return Ok(Some("no VOD of this broadcast is listed (are past broadcasts stored on the channel?)".into())),
                Err(VodError::Passing(e)) => return Ok(Some(e)),
                Err(VodError::Unavailable(e)) => return Err(e),
            },
        };
        let (base, master) = match vods.master(&id).await {
            Ok(VodMaster::Ready { url, playlist }) => (url, playlist),
            Ok(VodMaster::NotYet) => return Ok(Some(format!("VOD {id} has no playlist yet"))),
            Ok(VodMaster::Gone) => return Err(format!("VOD {id} is gone (deleted)")),
            Err(VodError::Passing(e)) => return Ok(Some(e)),
            Err(VodError::Unavailable(e)) => return Err(e),
        };
        let mut pending = Vec::new();
        for w in std::mem::take(wanted) {
            match self.fill_one(job, &id, &base, &master, &w).await {
                Ok(true) => tally.filled += 1,
                Ok(false) => pending.push(w),
                Err(why) => tally.miss(w.to - w.from, why),
            }
        }
        *wanted = pending;
        Ok((!wanted.is_empty()).then(|| format!("VOD {id} does not cover the gaps yet")))
    }

    /// Fills `w` from VOD `id` when its playlist covers it (`Ok(false)`: not yet).
    async fn fill_one(
        &self,
        job: &FillJob,
        id: &str,
        base: &Url,
        master: &str,
        w: &Wanted,
    ) -> Result<bool, String> {
        let cancel = CancellationToken::new();
        let url = self.rendition(base, master, &w.quality)?;
        let body = match fetch::get(&self.http, &url, None, &cancel).await {
            Ok(body) => body,
            Err(e) if e.transient() => return Ok(false),
            Err(FetchError::Status(403)) => {
                return Err(format!("the VOD playlist of {id} is refused (HTTP 403)"))
            }
            Err(e) => return Err(format!("cannot read the VOD playlist: {e}")),
        };
        let pl = playlist::parse_media(&body).map_err(|e| e.to_string())?;
        let starts = starts(&pl);
        let range = covering(&starts, &pl.segments, w.from, w.to);
        let last_end = pl
            .segments
            .last()
            .zip(starts.last())
            .map(|(s, at)| at + s.duration);
        let covered = pl.end_list || last_end.is_some_and(|end| end + EDGE >= w.to);
        if range.is_empty() || !covered {
            return Ok(false);
        }
        let segments = &pl.segments[range.clone()];
        let (from, to) = (
            starts[range.start],
            starts[range.end - 1] + segments.last().map(|s| s.duration).unwrap_or(0.0),
        );
        let target = pl.target_duration.max(1.0);
        let (file, bytes, muted) = self
            .download(&url, segments, w, target)
            .await
            .map_err(|e| format!("VOD segments could not be fetched ({e})"))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fill = Fill {
            file: name,
            gap: w.gap,
            from_secs: from,
            to_secs: to,
            vod_id: id.to_string(),
            muted,
            bytes,
            youtube_video_id: None,
        };
        Sidecar::update(&w.sidecar, |s| {
            s.fills.retain(|f| f.gap != w.gap);
            s.fills.push(fill);
        })
        .await
        .map_err(|e| format!("cannot list the fill in the sidecar: {e:#}"))?;
        info!(login = %job.login, part = w.part_no, file = %file.display(), from, to, muted, "gap filled from the VOD");
        self.emit(
            job,
            EventKind::GapFilled {
                part: w.part_no,
                file,
                seconds: to - from,
                muted,
                vod_id: id.to_string(),
            },
        )
        .await;
        Ok(true)
    }

    /// The media playlist of the rendition named `quality` (the part's), else the best the
    /// codecs allow.
    fn rendition(&self, base: &Url, master: &str, quality: &str) -> Result<Url, String> {
        let master = match playlist::parse(master.as_bytes()) {
            Ok(Parsed::Master(m)) => m,
            Ok(Parsed::Media(_)) => return Ok(base.clone()),
            Err(e) => return Err(format!("the VOD's master playlist is unusable: {e}")),
        };
        let variants = variant::variants(&master);
        let chosen = variants
            .iter()
            .find(|v| v.name == quality)
            .or_else(|| variant::select(&variants, Quality::BEST, &self.codecs))
            .ok_or("the VOD offers no rendition recbot may record")?;
        base.join(&chosen.uri)
            .map_err(|_| "the VOD's rendition address is unusable".to_string())
    }

    /// Downloads `segments` (their init segment first, for fMP4) into the fill file of `w`:
    /// `.part`, fsynced, renamed. Returns the file, its size, and whether any was muted.
    async fn download(
        &self,
        playlist: &Url,
        segments: &[Segment],
        w: &Wanted,
        target: f64,
    ) -> Result<(PathBuf, u64, bool), FetchError> {
        let fmp4 = w.fmp4 || segments.iter().any(|s| s.map.is_some());
        let path = fill_file(&w.part, w.gap + 1, fmp4);
        let part = part_path_of(&path);
        let fetcher = Lookahead::new(
            self.http.clone(),
            self.limits.clone(),
            CancellationToken::new(),
        );
        let mut file = tokio::fs::File::create(&part).await?;
        let written = async {
            let mut bytes = 0u64;
            let mut muted = false;
            if let Some(map) = segments.first().and_then(|s| s.map.clone()) {
                let url = join(playlist, &map.uri)?;
                for chunk in fetcher.fetch_whole(&url, map.byte_range, target).await? {
                    file.write_all(&chunk).await?;
                    bytes += chunk.len() as u64;
                }
            }
            for seg in segments {
                let (uri, is_muted) = unmuted_as_muted(&seg.uri);
                muted |= is_muted;
                let url = join(playlist, &uri)?;
                for chunk in fetcher.fetch_whole(&url, seg.byte_range, target).await? {
                    file.write_all(&chunk).await?;
                    bytes += chunk.len() as u64;
                }
            }
            file.sync_all().await?;
            Ok::<_, FetchError>((bytes, muted))
        }
        .await;
        drop(file);
        let (bytes, muted) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
        };
        let (from, to) = (part.clone(), path.clone());
        crate::blocking::io(move || finalize_file(&from, &to)).await?;
        Ok((path, bytes, muted))
    }
}

fn join(base: &Url, uri: &str) -> Result<Url, FetchError> {
    base.join(uri)
        .map_err(|_| FetchError::Refused("a VOD segment address is unusable".into()))
}

/// Where each listed VOD segment starts in the broadcast: the playlist's own reckoning when it
/// has one, else the durations summed from 0 (a VOD starts with the broadcast).
fn starts(pl: &MediaPlaylist) -> Vec<f64> {
    let mut at = 0.0;
    pl.segments
        .iter()
        .map(|s| {
            let start = s.elapsed.unwrap_or(at);
            at = start + s.duration;
            start
        })
        .collect()
}

/// The segments (indexes into `segments`, whose starts are `starts`) overlapping the
/// broadcast span `from..to`: whole 10 s VOD segments, so the fill may begin a little before
/// the gap and end a little after it. A segment that only touches an edge is left out.
fn covering(starts: &[f64], segments: &[Segment], from: f64, to: f64) -> Range<usize> {
    let overlaps = |i: usize| {
        let (start, end) = (starts[i], starts[i] + segments[i].duration);
        start < to - EDGE && end > from + EDGE
    };
    let Some(first) = (0..segments.len()).find(|&i| overlaps(i)) else {
        return 0..0;
    };
    let last = (first..segments.len())
        .take_while(|&i| overlaps(i))
        .last()
        .unwrap_or(first);
    first..last + 1
}

/// `N-unmuted.ts` (listed, but refused by Twitch) is fetched as `N-muted.ts`; whether the
/// segment is a muted copy.
fn unmuted_as_muted(uri: &str) -> (String, bool) {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, path),
    };
    let name = name.replacen("-unmuted.", "-muted.", 1);
    let muted = name.contains("-muted.");
    let mut out = match dir {
        Some(d) => format!("{d}/{name}"),
        None => name,
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    (out, muted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vod(n: usize, seconds: f64) -> (Vec<f64>, Vec<Segment>) {
        let text: String = std::iter::once(format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
            seconds.ceil()
        ))
        .chain((0..n).map(|i| format!("#EXTINF:{seconds:.3},\n{i}.ts\n")))
        .collect();
        let pl = playlist::parse_media(text.as_bytes()).unwrap();
        (starts(&pl), pl.segments)
    }

    #[test]
    fn a_gap_maps_to_the_vod_segments_covering_it() {
        let (starts, segs) = vod(10, 10.0);
        // Inside one segment.
        assert_eq!(covering(&starts, &segs, 12.0, 18.0), 1..2);
        // Across a boundary: both.
        assert_eq!(covering(&starts, &segs, 15.0, 25.0), 1..3);
        // Exactly on the boundaries: only the segments inside, not the neighbours touching.
        assert_eq!(covering(&starts, &segs, 20.0, 40.0), 2..4);
        // Float sums a hair off a boundary still round to the whole segments.
        assert_eq!(covering(&starts, &segs, 19.9999, 30.0001), 2..3);
        // From the very start, and past the end of what is listed (only what is listed).
        assert_eq!(covering(&starts, &segs, 0.0, 3.0), 0..1);
        assert_eq!(covering(&starts, &segs, 95.0, 130.0), 9..10);
        // Nothing listed there yet.
        assert_eq!(covering(&starts, &segs, 100.0, 110.0), 0..0);
        assert_eq!(covering(&[], &[], 1.0, 2.0), 0..0);
    }

    #[test]
    fn segment_starts_follow_the_listed_durations() {
        let (at, _) = vod(4, 10.0);
        assert_eq!(at, [0.0, 10.0, 20.0, 30.0]);
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-TWITCH-ELAPSED-SECS:100.0\n\
                    #EXTINF:10.0,\n10.ts\n#EXTINF:4.5,\n11.ts\n#EXTINF:10.0,\n12.ts\n";
        let pl = playlist::parse_media(text.as_bytes()).unwrap();
        assert_eq!(starts(&pl), [100.0, 110.0, 114.5]);
    }

    #[test]
    fn unmuted_segments_are_fetched_as_their_muted_copy() {
        assert_eq!(unmuted_as_muted("3.ts"), ("3.ts".into(), false));
        assert_eq!(unmuted_as_muted("3-muted.ts"), ("3-muted.ts".into(), true));
        assert_eq!(
            unmuted_as_muted("3-unmuted.ts"),
            ("3-muted.ts".into(), true)
        );
        assert_eq!(
            unmuted_as_muted("a-unmuted.x/3-unmuted.ts?t=1"),
            ("a-unmuted.x/3-muted.ts?t=1".into(), true)
        );
    }
}
