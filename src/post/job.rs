//! One post-processing job on disk: a finished part in, `<name>.mp4` beside it out (written as
//! a `.recbot-tmp` file, started over from nothing each time, verified with ffprobe, fsynced and
//! renamed), and then the part itself kept or removed (`keep_original`; with it its HLS index,
//! which names it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::chapters;
use super::ffmpeg::{self, RunFailure};
use super::progress::Progress;
use crate::archive::files;
use crate::archive::layout::{post_file, temp_path_of, TEMP_SUFFIX};
use crate::archive::sidecar::Sidecar;
use crate::blocking;
use crate::config::Postprocess;

/// How far the output's duration may be from the recording's, in seconds.
pub const DURATION_TOLERANCE_SECS: f64 = 1.0;

/// A part to post-process.
#[derive(Debug, Clone, PartialEq)]
pub struct PostInput {
    pub video: PathBuf,
    /// The part's sidecar: its duration (what the output must last) and chapters.
    pub sidecar: Option<PathBuf>,
}

/// A verified output.
#[derive(Debug, Clone, PartialEq)]
pub struct PostDone {
    pub output: PathBuf,
    pub bytes: u64,
    pub duration_secs: f64,
    /// Media seconds per wall-clock second.
    pub speed: f64,
    /// Whether the part was removed (`keep_original = false`).
    pub original_removed: bool,
}

/// Runs the job: the output, verified, in place; or why not (a half-written output is removed).
pub async fn run(
    settings: &Postprocess,
    input: &PostInput,
    cancel: &CancellationToken,
    on_progress: impl FnMut(Progress),
) -> Result<PostDone, RunFailure> {
    let fail = |why: String| RunFailure {
        why,
        stderr: Vec::new(),
    };
    let output = post_file(&input.video);
    let temp = temp_path_of(&output);
    let meta = chapters_path(&output);
    let started = Instant::now();
    let (expected, chapter_text) = expectations(settings, input).await.map_err(fail)?;
    // A run cut short (crash, restart) left a partial output: start over.
    files::remove(&temp)
        .await
        .map_err(|e| fail(format!("{e:#}")))?;
    if let Some(text) = &chapter_text {
        tokio::fs::write(&meta, text)
            .await
            .map_err(|e| fail(format!("cannot write the chapters file: {e}")))?;
    }
    let args = ffmpeg::command_line(
        settings,
        &input.video,
        chapter_text.as_ref().map(|_| meta.as_path()),
        &temp,
    );
    let ran = ffmpeg::run(&settings.ffmpeg, &args, settings.nice, cancel, on_progress).await;
    let _ = files::remove(&meta).await;
    let verified = match ran {
        Ok(()) => verify(settings, &temp, expected).await.map_err(fail),
        Err(failure) => Err(failure),
    };
    let duration_secs = match verified {
        Ok(d) => d,
        Err(failure) => {
            let _ = files::remove(&temp).await;
            return Err(failure);
        }
    };
    let bytes = finish(&temp, &output).await.map_err(fail)?;
    let original_removed = !settings.keep_original;
    if original_removed {
        files::remove(&input.video)
            .await
            .map_err(|e| fail(format!("the MP4 is verified, but the part stays: {e:#}")))?;
        // The part's HLS index names the part: without it, the index plays nothing.
        let _ = files::remove(&crate::archive::layout::index_file(&input.video)).await;
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-3);
    Ok(PostDone {
        output,
        bytes,
        duration_secs,
        speed: duration_secs / elapsed,
        original_removed,
    })
}

/// `<name>.mp4` → `<name>.mp4.ffmeta.recbot-tmp`: the chapters handed to ffmpeg.
fn chapters_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".ffmeta");
    s.push(TEMP_SUFFIX);
    PathBuf::from(s)
}

/// How long the output must last (the sidecar's duration, else ffprobe's of the part) and the
/// chapters it gets (a remux or transcode of a part with a sidecar).
async fn expectations(
    settings: &Postprocess,
    input: &PostInput,
) -> Result<(f64, Option<String>), String> {
    let sidecar = match &input.sidecar {
        Some(path) => Sidecar::read(path).await.ok(),
        None => None,
    };
    match sidecar {
        Some(s) if s.duration_secs > 0.0 => {
            let text = chapters::ffmetadata(&s.chapters, s.duration_secs);
            Ok((s.duration_secs, text))
        }
        _ => {
            let probed = ffmpeg::probe(&settings.ffprobe, &input.video)
                .await
                .map_err(|e| format!("cannot read the recording: {e}"))?;
            Ok((probed.duration_secs, None))
        }
    }
}

/// The output's duration, when it is within [`DURATION_TOLERANCE_SECS`] of `expected`.
async fn verify(settings: &Postprocess, output: &Path, expected: f64) -> Result<f64, String> {
    let probed = ffmpeg::probe(&settings.ffprobe, output).await?;
    if (probed.duration_secs - expected).abs() > DURATION_TOLERANCE_SECS {
        return Err(format!(
            "the output lasts {:.1} s but the recording {:.1} s; the recording is kept as it is",
            probed.duration_secs, expected
        ));
    }
    Ok(probed.duration_secs)
}

/// fsync, rename into place durably; the output's size.
async fn finish(temp: &Path, output: &Path) -> Result<u64, String> {
    let (temp, output) = (temp.to_path_buf(), output.to_path_buf());
    blocking::io(move || {
        let file = std::fs::File::open(&temp)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        drop(file);
        files::finalize_file(&temp, &output)?;
        Ok(bytes)
    })
    .await
    .map_err(|e| format!("cannot put the MP4 in place: {e}"))
}
