//! Real media for the index and cut tests: small clips made by ffmpeg (`testsrc` + `sine`),
//! segmented as HLS and served from a folder on 127.0.0.1, and what ffprobe says of a file or
//! playlist.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes a `secs` s clip (H.264 + AAC, a keyframe every second) as an HLS VOD of 1 s segments
/// in `dir` (`index.m3u8`, `seg<n>.ts`; fMP4 `seg<n>.m4s` + `init.mp4`). Returns the playlist.
pub fn hls_clip(dir: &Path, secs: u32, fmp4: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let playlist = dir.join("index.m3u8");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"]);
    if fmp4 {
        cmd.args([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ])
        .arg("-hls_segment_filename")
        .arg(dir.join("seg%d.m4s"));
    } else {
        cmd.arg("-hls_segment_filename").arg(dir.join("seg%d.ts"));
    }
    let status = cmd
        .arg(&playlist)
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(status.success());
    playlist
}

/// Serves the files of `dir` at `http://127.0.0.1:<port>/<name>` until the test ends.
pub async fn serve_dir(dir: PathBuf) -> String {
    use axum::extract::Path as UrlPath;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(move |UrlPath(name): UrlPath<String>| {
            let dir = dir.clone();
            async move {
                if name.contains('/') || name.contains("..") {
                    return Err(StatusCode::NOT_FOUND);
                }
                tokio::fs::read(dir.join(name))
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The HLS demuxer's option to read segments of any name (a recording in progress is a
/// `.part`), for playlists only: other demuxers refuse it.
fn hls_options(input: &Path) -> &'static [&'static str] {
    if input.extension().is_some_and(|e| e == "m3u8") {
        &["-allowed_extensions", "ALL"]
    } else {
        &[]
    }
}

fn ffprobe(args: &[&str], input: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(hls_options(input))
        .args(args)
        .arg(input)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The duration ffprobe gives `input` (a media file or an HLS playlist), in seconds.
pub fn duration(input: &Path) -> f64 {
    let args = ["-show_entries", "format=duration", "-of", "csv=p=0"];
    let text = ffprobe(&args, input);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}: {text:?}", input.display()))
}

/// Packets read from each stream of `input`, in stream order (an HLS playlist's streams are
/// listed again under its program: counted once).
pub fn packets(input: &Path) -> Vec<u64> {
    let args = [
        "-count_packets",
        "-show_entries",
        "stream=index,nb_read_packets",
        "-of",
        "csv=p=0",
    ];
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for line in ffprobe(&args, input).lines() {
        let mut fields = line.trim().trim_end_matches(',').split(',');
        let (Some(index), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (index, count) = (index.parse().unwrap(), count.parse().unwrap());
        if !counts.iter().any(|(i, _)| *i == index) {
            counts.push((index, count));
        }
    }
    counts.into_iter().map(|(_, c)| c).collect()
}

/// Whether ffmpeg decodes all of `input` without an error.
pub fn decodes(input: &Path) -> bool {
    Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(hls_options(input))
        .arg("-i")
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .map(|o| o.status.success() && o.stderr.is_empty())
        .unwrap_or(false)
}
