//! ffmpeg and ffprobe as child processes: whether ffmpeg runs (`-version`), the command line of
//! a remux or a transcode, running it with `-progress pipe:1` (progress blocks out, the last
//! error lines kept), and ffprobe's view of a finished file.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, ProgressParser};
use crate::config::{PostMode, Postprocess, RateControl};

/// ffmpeg's error lines kept for `PostFailed`.
const STDERR_LINES: usize = 10;
/// Longest error line kept, in characters.
const STDERR_LINE_CHARS: usize = 300;

/// Why a run of ffmpeg failed: what went wrong and ffmpeg's last error lines.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub why: String,
    pub stderr: Vec<String>,
}

/// `ffmpeg -version`'s first line (`ffmpeg version 7.1.1 …`), or why it does not run. For
/// `check-config`, which has no runtime (blocking).
pub fn version_blocking(program: &Path) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .output();
    version_of(program, out)
}

/// [`version_blocking`] for the running service.
pub async fn version(program: &Path) -> Result<String, String> {
    let out = Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    version_of(program, out)
}

fn version_of(
    program: &Path,
    out: std::io::Result<std::process::Output>,
) -> Result<String, String> {
    let shown = program.display();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or_default();
            // `ffmpeg version N Copyright …`: the words before the copyright.
            let short = first.split(" Copyright").next().unwrap_or(first).trim();
            Ok(short.chars().take(80).collect())
        }
        Ok(out) => Err(format!(
            "`{shown} -version` failed ({}); is [postprocess] ffmpeg an ffmpeg program?",
            out.status
        )),
        Err(e) => Err(format!(
            "cannot run `{shown}` ({e}); install ffmpeg (Debian: apt-get install ffmpeg) or set \
             [postprocess] ffmpeg to its path"
        )),
    }
}

/// The command line (without the program) that makes `output` from `input`: `-c copy` for a
/// remux, the configured encoder for a transcode; audio is always copied. Timestamps start at
/// 0 in the output (Twitch fMP4 starts at the broadcast's offset); `chapters`, an ffmetadata
/// file, adds its chapters. Only video and audio are kept (a TS's ID3 data stream has no place
/// in an MP4). The format is named, since `output` is a temporary name.
pub fn command_line(
    settings: &Postprocess,
    input: &Path,
    chapters: Option<&Path>,
    output: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]);
    push(&["-progress", "pipe:1", "-y", "-i"]);
    args.push(input.into());
    if let Some(chapters) = chapters {
        args.extend(["-f".into(), "ffmetadata".into(), "-i".into()]);
        args.push(chapters.into());
        args.extend(["-map_chapters".into(), "1".into()]);
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-map", "0:v?", "-map", "0:a?", "-c:a", "copy"]);
    match settings.mode {
        PostMode::Transcode => push_encoder(settings, &mut args),
        PostMode::Remux | PostMode::None => push(&["-c:v", "copy"]),
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-avoid_negative_ts", "make_zero", "-movflags", "+faststart"]);
    push(&["-f", "mp4"]);
    args.push(output.into());
    args
}

/// The video encoder's arguments for `[postprocess] rate_control`.
fn push_encoder(settings: &Postprocess, args: &mut Vec<OsString>) {
    let kbps = |n: u32| format!("{n}k");
    let mut v: Vec<String> = vec![
        "-c:v".into(),
        settings.encoder.ffmpeg_codec().into(),
        "-preset".into(),
        settings.preset.clone(),
    ];
    let bitrate = kbps(settings.bitrate_kbps);
    let bufsize = kbps(settings.bufsize());
    match settings.rate_control {
        RateControl::Crf => v.extend(["-crf".into(), settings.crf.to_string()]),
        RateControl::Cq => v.extend(["-qp".into(), settings.cq.to_string()]),
        RateControl::Abr => v.extend(["-b:v".into(), bitrate]),
        // Quality-driven, capped: the CRF within a bitrate ceiling.
        RateControl::Vbr => v.extend([
            "-crf".into(),
            settings.crf.to_string(),
            "-maxrate".into(),
            bitrate,
            "-bufsize".into(),
            bufsize,
        ]),
        RateControl::Cbr => v.extend([
            "-b:v".into(),
            bitrate.clone(),
            "-minrate".into(),
            bitrate.clone(),
            "-maxrate".into(),
            bitrate,
            "-bufsize".into(),
            bufsize,
        ]),
    }
    args.extend(v.into_iter().map(OsString::from));
}

/// Runs `program args` at CPU priority `nice`, calling `on_progress` with each progress block,
/// until ffmpeg exits. Cancelled, the child is killed (and reaped). Ok only when ffmpeg exited
/// with success.
pub async fn run(
    program: &Path,
    args: &[OsString],
    nice: u8,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(Progress),
) -> Result<(), RunFailure> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RunFailure {
            why: format!("cannot run `{}`: {e}", program.display()),
            stderr: Vec::new(),
        })?;
    lower_priority(child.id(), nice);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let progress = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut parser = ProgressParser::default();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(p) = parser.line(&line) {
                on_progress(p);
            }
        }
    };
    let run = async {
        let (_, last, status) = tokio::join!(progress, last_lines(stderr), child.wait());
        (last, status)
    };
    tokio::select! {
        (last, status) = run => match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(RunFailure { why: format!("ffmpeg exited with {s}"), stderr: last }),
            Err(e) => Err(RunFailure { why: format!("cannot wait for ffmpeg: {e}"), stderr: last }),
        },
        _ = cancel.cancelled() => Err(RunFailure {
            why: "stopped (recbot is shutting down)".into(),
            stderr: Vec::new(),
        }),
    }
}

/// ffmpeg's last [`STDERR_LINES`] lines on stderr, each cut to [`STDERR_LINE_CHARS`].
async fn last_lines(stderr: impl AsyncRead + Unpin) -> Vec<String> {
    let mut kept = VecDeque::with_capacity(STDERR_LINES);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if kept.len() == STDERR_LINES {
            kept.pop_front();
        }
        kept.push_back(line.chars().take(STDERR_LINE_CHARS).collect());
    }
    kept.into()
}

/// Lowers the child's CPU priority; a failure (no such process any more) only costs priority.
fn lower_priority(pid: Option<u32>, nice: u8) {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let (Some(pid), true) = (pid, nice > 0) {
        if let Err(e) = rustix::process::setpriority_process(Some(pid), i32::from(nice)) {
            tracing::debug!(error = %e, "cannot lower ffmpeg's priority");
        }
    }
}

/// What ffprobe says of a media file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub duration_secs: f64,
    pub start_secs: f64,
    pub chapters: usize,
}

#[derive(Deserialize)]
struct ProbeJson {
    format: ProbeFormat,
    #[serde(default)]
    chapters: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
    start_time: Option<String>,
}

/// ffprobe's duration, start and chapter count of `file`.
pub async fn probe(ffprobe: &Path, file: &Path) -> Result<Probed, String> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_format",
            "-show_chapters",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `{}`: {e}", ffprobe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default().trim();
        return Err(format!(
            "ffprobe cannot read the output ({}): {last}",
            out.status
        ));
    }
    let json: ProbeJson = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("ffprobe's answer is not what was expected: {e}"))?;
    let number = |s: Option<String>| {
        s.and_then(|s| s.parse::<f64>().ok())
            .filter(|d| d.is_finite())
    };
    Ok(Probed {
        duration_secs: number(json.format.duration).ok_or("ffprobe found no duration")?,
        start_secs: number(json.format.start_time).unwrap_or(0.0),
        chapters: json.chapters.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn line(settings: &Postprocess) -> String {
        let args = command_line(settings, Path::new("in.ts"), None, Path::new("out.tmp"));
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn remux_copies_and_names_the_format() {
        let settings = Postprocess {
            mode: PostMode::Remux,
            ..Postprocess::default()
        };
        let l = line(&settings);
        assert!(l.contains("-i in.ts"), "{l}");
        assert!(l.contains("-c:a copy") && l.contains("-c:v copy"), "{l}");
        assert!(l.contains("-movflags +faststart"), "{l}");
        assert!(l.ends_with("-f mp4 out.tmp"), "{l}");
        assert!(
            l.contains("-progress pipe:1") && l.contains("-nostats"),
            "{l}"
        );
    }

    #[test]
    fn each_rate_control_has_its_arguments() {
        let base = Postprocess {
            mode: PostMode::Transcode,
            bitrate_kbps: 800,
            ..Postprocess::default()
        };
        let with = |rc| {
            line(&Postprocess {
                rate_control: rc,
                ..base.clone()
            })
        };
        assert!(with(RateControl::Crf).contains("-crf 23"));
        assert!(with(RateControl::Cq).contains("-qp 23"));
        assert!(with(RateControl::Abr).contains("-b:v 800k"));
        assert!(with(RateControl::Vbr).contains("-maxrate 800k -bufsize 1600k"));
        assert!(with(RateControl::Cbr).contains("-minrate 800k -maxrate 800k"));
        assert!(with(RateControl::Crf).contains("-c:v libx264 -preset veryfast"));
        let x265 = Postprocess {
            encoder: crate::config::Encoder::X265,
            ..base
        };
        assert!(line(&x265).contains("-c:v libx265"));
    }

    #[tokio::test]
    async fn a_missing_ffmpeg_says_so() {
        let missing = PathBuf::from("/nonexistent/ffmpeg");
        let err = version(&missing).await.unwrap_err();
        assert!(err.contains("cannot run `/nonexistent/ffmpeg`"), "{err}");
        assert!(err.contains("[postprocess] ffmpeg"), "{err}");
        assert_eq!(version_blocking(&missing).unwrap_err(), err);
    }
}
