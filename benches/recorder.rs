//! Recorder benchmark: an in-process origin serves N concurrent live streams of ~6.5 Mbit/s
//! (2 s segments) to one recorder for T seconds; prints the recorder's CPU seconds per
//! stream-minute, peak RSS, bytes, gaps and the time from live detection to the first segment
//! on disk.
//!
//! `cargo bench --bench recorder [-- STREAMS SECONDS MODE]` (or `RECBOT_BENCH_STREAMS`,
//! `RECBOT_BENCH_SECONDS`, `RECBOT_BENCH_MODE`); defaults 100 streams for 40 s, mode `plain`.
//!
//! Modes: `plain` is the recorder alone. `core` also runs the core (the state database, the
//! event log) on the same runtime and hands it every recorder event, as the service does.
//! `http` is `core` plus the HTTP listener with a client following `/api/v1/events` (SSE)
//! and scraping `/metrics` every second, on a thread of its own (`client`, not counted):
//! `http` against `core` is what the listener costs while recording. `RECBOT_BENCH_INDEX=off`
//! records without the HLS index beside each part (`[recording] index = false`), to measure
//! what writing it costs. `streamlink` records the same streams with one streamlink process
//! each instead of the recorder (`RECBOT_BENCH_STREAMLINK` names the program, default
//! `streamlink`) and prints their CPU and peak RSS from /proc, for the side-by-side ratio.
//!
//! The origin runs on its own single-threaded runtime (thread `origin`); the recorder on a
//! runtime whose worker and blocking threads are all named `rec` (blocking threads kept alive so
//! none exits with its CPU time). The recorder's CPU is the sum of utime + stime of the `rec`
//! threads from /proc/self/task/*/stat; the origin's and the whole process's are printed too.
//! Peak RSS (VmHWM) is the whole process, origin included.

#[path = "../tests/support/origin.rs"]
mod origin;

use std::sync::Arc;
use std::time::Duration;

use origin::{End, Origin, StreamConfig};
use recbot::config::Config;
use recbot::event::EventKind;
use recbot::recorder::{Control, Recorder, RecordingSpec, SourceSpec, StopReason};
use recbot::work::Events;
use recbot_commands::{Login, Quality};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 6.5 Mbit/s × 2 s.
const SEGMENT_BYTES: usize = 1_625_000;
const SEGMENT_SECS: f64 = 2.0;

fn arg(n: usize, env: &str, default: u64) -> u64 {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .or_else(|| std::env::var(env).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process's threads whose name starts with `prefix` (all when empty).
fn thread_cpu(prefix: &str) -> f64 {
    let (user, system) = thread_cpu_split(prefix);
    user + system
}

/// (user, system) CPU seconds of the threads whose name starts with `prefix`.
fn thread_cpu_split(prefix: &str) -> (f64, f64) {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let (mut user, mut system) = (0u64, 0u64);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid … field 14 utime, 15 stime; comm may contain spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        if !comm.starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        user += utime;
        system += stime;
    }
    (user as f64 / ticks, system as f64 / ticks)
}

/// What runs beside the recorder (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Core,
    Http,
    Streamlink,
}

fn mode() -> Mode {
    let word = std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(3)
        .or_else(|| std::env::var("RECBOT_BENCH_MODE").ok())
        .unwrap_or_else(|| "plain".into());
    match word.as_str() {
        "plain" => Mode::Plain,
        "core" => Mode::Core,
        "http" => Mode::Http,
        "streamlink" => Mode::Streamlink,
        other => panic!("unknown mode {other:?}: plain, core, http or streamlink"),
    }
}

const BENCH_TOKEN: &str = "bench-viewer-token-0123456789abcdef0123456789";

/// Follows the event stream and scrapes `/metrics` once a second until `stop`, on its own
/// thread and runtime; returns (events seen, scrapes, metrics bytes of the last scrape, its
/// own CPU seconds).
fn client(
    base: String,
    stop: CancellationToken,
) -> std::thread::JoinHandle<(u64, u64, usize, f64)> {
    std::thread::Builder::new()
        .name("client".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use futures::StreamExt;
                let http = reqwest::Client::new();
                let events = http
                    .get(format!("{base}/api/v1/events"))
                    .bearer_auth(BENCH_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap();
                let mut body = events.bytes_stream();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let (mut seen, mut scrapes, mut last) = (0u64, 0u64, 0usize);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        chunk = body.next() => match chunk {
                            Some(Ok(bytes)) => {
                                seen += bytes.windows(3).filter(|w| w == b"id:").count() as u64
                            }
                            _ => break,
                        },
                        _ = tick.tick() => {
                            let answer = http.get(format!("{base}/metrics")).send().await.unwrap();
                            let status = answer.status();
                            let text = answer.text().await.unwrap();
                            assert!(
                                // Per-login series are pruned here (the bench's logins are not on
                                // the watch list); the fetch histogram is service-wide.
                                status.is_success()
                                    && text.contains("recbot_segment_fetch_seconds_count"),
                                "/metrics answered {status}: {}",
                                &text[..text.len().min(600)]
                            );
                            scrapes += 1;
                            last = text.len();
                        }
                    }
                }
                // Read before the thread exits: a finished thread leaves /proc/self/task.
                (seen, scrapes, last, thread_cpu("client"))
            })
        })
        .unwrap()
}

fn process_cpu() -> f64 {
    proc_cpu("self")
}

/// utime + stime (all threads) of process `pid` (`self` for this one), in seconds.
fn proc_cpu(pid: &str) -> f64 {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let close = stat.rfind(')').unwrap_or(0);
    let fields: Vec<&str> = stat.get(close + 2..).unwrap_or("").split(' ').collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(11) + get(12)) as f64 / ticks
}

fn peak_rss_mb() -> f64 {
    proc_peak_rss_mb("self")
}

/// Peak RSS (VmHWM) of process `pid`, in MB.
fn proc_peak_rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// One bench stream: 6.5 Mbit/s in 2 s segments, three on offer at the start, never ending.
fn bench_stream() -> StreamConfig {
    StreamConfig {
        segments: u64::MAX / 4,
        seg_duration: SEGMENT_SECS,
        initial: 3,
        window: 6,
        body_len: SEGMENT_BYTES,
        end: End::Never,
        ..Default::default()
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let streams = arg(1, "RECBOT_BENCH_STREAMS", 100);
    let seconds = arg(2, "RECBOT_BENCH_SECONDS", 40);
    let mode = mode();
    println!(
        "recorder benchmark: {streams} live streams of {:.1} Mbit/s ({SEGMENT_SECS} s segments) for {seconds} s, mode {mode:?}",
        SEGMENT_BYTES as f64 * 8.0 / SEGMENT_SECS / 1e6
    );

    let origin_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = origin_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let origin = origin_rt.block_on(async { Origin::serve(listener) });
    let origin_thread = {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("origin".into())
            .spawn(move || {
                origin_rt.block_on(async move {
                    while rx.try_recv().is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                })
            })
            .unwrap();
        (tx, handle)
    };

    let dir = tempfile::tempdir().unwrap();
    if mode == Mode::Streamlink {
        streamlink(&origin, streams, seconds, dir.path());
        let _ = origin_thread.0.send(());
        let _ = origin_thread.1.join();
        return;
    }
    let http = if mode == Mode::Http {
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[[http.tokens]]\nname = \"bench\"\n\
             token = \"{BENCH_TOKEN}\"\nrole = \"viewer\"\n"
        )
    } else {
        "[http]\nlisten = \"\"\n".into()
    };
    let index = std::env::var("RECBOT_BENCH_INDEX").as_deref() != Ok("off");
    println!(
        "HLS index beside each part: {}",
        if index { "on" } else { "off" }
    );
    let text = format!(
        "[storage]\ndata_dir = {:?}\n{}{http}[recording]\nindex = {index}\n",
        dir.path().to_str().unwrap(),
        origin.twitch_config()
    );
    let config = Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rec")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let cpu_rec_before = thread_cpu("rec");
    let split_before = thread_cpu_split("rec");
    let cpu_origin_before = thread_cpu("origin");
    let cpu_all_before = process_cpu();
    let client_stop = CancellationToken::new();

    let (bytes, gaps, first_bytes, finished, cpu_rec_at_stop, client_thread) = rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(4096);
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        // The core (and the listener) as the service runs them, fed the recorder's events.
        let core = match mode {
            Mode::Plain | Mode::Streamlink => None,
            Mode::Core | Mode::Http => Some(
                recbot::core::Core::start(config.clone(), shutdown.clone(), &tracker)
                    .await
                    .unwrap(),
            ),
        };
        let mut client_thread = None;
        if let (Mode::Http, Some(core)) = (mode, &core) {
            let listener = recbot::frontend::http::Listener::bind(&config.http)
                .await
                .unwrap()
                .unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tracker.spawn(listener.serve(core.clone(), shutdown.clone()));
            client_thread = Some(client(base, client_stop.clone()));
        }
        let mut recorder = Recorder::new(
            &config,
            Events::new(tx),
            tracker.clone(),
            shutdown.clone(),
            recbot::recorder::ViewerLogin::anonymous(),
        );
        if let Some(core) = &core {
            recorder = recorder.with_metrics(core.metrics().clone());
        }
        let mut handles = Vec::new();
        let mut detected = Vec::new();
        for i in 0..streams {
            let login = format!("bench{i}");
            origin.go_live(&login, bench_stream());
            // The moment live detection would report it.
            detected.push(chrono::Utc::now());
            handles.push(recorder.start(RecordingSpec {
                login: Login::parse(&login).unwrap(),
                source: SourceSpec::Twitch,
                quality: Quality::BEST,
                session: i as i64 + 1,
                stream_id: Some(i.to_string()),
                display_name: None,
                title: "bench".into(),
                game: None,
                first_part: 1,
                resume: None,
                stream_started: None,
            }));
            // Spread the streams' segment boundaries over one segment duration.
            tokio::time::sleep(Duration::from_secs_f64(SEGMENT_SECS / streams as f64)).await;
        }
        let mut first_bytes = vec![None; streams as usize];
        let (mut bytes, mut gaps, mut finished) = (0u64, 0u64, 0u64);
        let stop_at = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut stopping = false;
        let mut cpu_at_stop = 0.0;
        loop {
            let next = if stopping {
                tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .ok()
                    .flatten()
            } else {
                tokio::select! {
                    e = rx.recv() => e,
                    _ = tokio::time::sleep_until(stop_at) => {
                        cpu_at_stop = thread_cpu("rec");
                        for h in &handles {
                            h.send(Control::Stop(StopReason::Ended("benchmark over".into())));
                        }
                        stopping = true;
                        continue;
                    }
                }
            };
            let Some(e) = next else { break };
            if let Some(core) = &core {
                core.report(e.clone()).await;
            }
            let i: usize = e.login.as_ref().unwrap().as_str()[5..].parse().unwrap();
            match e.kind {
                // Sent once the part's first segment is completely on disk; its timestamp is
                // taken when it is sent, so the delay of this loop does not count.
                EventKind::RecordingStarted { .. } if first_bytes[i].is_none() => {
                    let delay = e.at - detected[i];
                    first_bytes[i] = Some(delay.num_microseconds().unwrap_or(0) as f64 / 1e6);
                }
                EventKind::RecordingGap { .. } => gaps += 1,
                EventKind::RecordingFinished { bytes: b, .. } => {
                    bytes += b;
                    finished += 1;
                    if finished == streams {
                        break;
                    }
                }
                _ => {}
            }
        }
        client_stop.cancel();
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        (
            bytes,
            gaps,
            first_bytes,
            finished,
            cpu_at_stop,
            client_thread,
        )
    });
    let client_seen = client_thread.map(|t| t.join().unwrap());
    let cpu_rec = thread_cpu("rec") - cpu_rec_before;
    let split = thread_cpu_split("rec");
    let (cpu_user, cpu_system) = (split.0 - split_before.0, split.1 - split_before.1);
    let cpu_recording = cpu_rec_at_stop - cpu_rec_before;
    let cpu_origin = thread_cpu("origin") - cpu_origin_before;
    let cpu_all = process_cpu() - cpu_all_before;
    let _ = origin_thread.0.send(());
    let _ = origin_thread.1.join();

    let stream_minutes = streams as f64 * seconds as f64 / 60.0;
    let mut latencies: Vec<f64> = first_bytes.iter().flatten().copied().collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let max_latency = latencies.last().copied().unwrap_or(f64::NAN);
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!("streams finished:          {finished} of {streams}");
    println!(
        "recorded:                  {:.2} GB ({:.1} MB/s)",
        bytes as f64 / 1e9,
        bytes as f64 / 1e6 / seconds as f64
    );
    println!("gaps:                      {gaps}");
    println!(
        "recorder CPU while recording: {cpu_recording:.2} s = {:.4} CPU-s per stream-minute (target <= 0.07)",
        cpu_recording / stream_minutes
    );
    println!(
        "recorder CPU incl. finishing: {cpu_rec:.2} s = {:.4} CPU-s per stream-minute (fsync of every \
         part's still-dirty pages is charged to the recorder)",
        cpu_rec / stream_minutes
    );
    println!("recorder CPU split:        {cpu_user:.2} s user, {cpu_system:.2} s system (kernel)");
    println!("origin CPU (not counted):  {cpu_origin:.2} s; whole process {cpu_all:.2} s");
    let mut client_cpu = 0.0;
    if let Some((seen, scrapes, last, cpu)) = client_seen {
        client_cpu = cpu;
        println!(
            "HTTP client (not counted): {seen} events over SSE, {scrapes} /metrics scrapes ({last} bytes each)"
        );
    }
    if mode != Mode::Plain {
        let service = cpu_all - cpu_origin - client_cpu;
        println!(
            "service CPU (all threads but origin and client, incl. the database's): {service:.2} s = {:.4} CPU-s per stream-minute",
            service / stream_minutes
        );
    }
    println!(
        "peak RSS (whole process):  {:.1} MB (target < 150 MB for 100 streams)",
        peak_rss_mb()
    );
    println!(
        "live detection -> first segment on disk: median {median:.2} s, max {max_latency:.2} s (target <= 3 s); {} of {streams} started",
        latencies.len()
    );
}

/// One streamlink process per stream against the origin's plain HLS master, for `seconds`;
/// prints their CPU (utime + stime of each process, all its threads, read from /proc just
/// before it is stopped) and the largest peak RSS.
fn streamlink(origin: &Origin, streams: u64, seconds: u64, dir: &std::path::Path) {
    let program = std::env::var("RECBOT_BENCH_STREAMLINK").unwrap_or_else(|_| "streamlink".into());
    let mut children = Vec::new();
    for i in 0..streams {
        let login = format!("bench{i}");
        origin.go_live(&login, bench_stream());
        let child = std::process::Command::new(&program)
            .args(["--hls-live-edge", "3", "--loglevel", "error", "-o"])
            .arg(dir.join(format!("{login}.ts")))
            .arg(format!(
                "hlsvariant://{}/hls/{login}/master.m3u8",
                origin.url()
            ))
            .arg("best")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        children.push(child);
        std::thread::sleep(Duration::from_secs_f64(SEGMENT_SECS / streams as f64));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    let (mut cpu, mut peak, mut bytes) = (0.0, 0.0f64, 0u64);
    for (i, child) in children.iter_mut().enumerate() {
        let pid = child.id().to_string();
        cpu += proc_cpu(&pid);
        peak = peak.max(proc_peak_rss_mb(&pid));
        let _ = child.kill();
        let _ = child.wait();
        bytes += std::fs::metadata(dir.join(format!("bench{i}.ts")))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let stream_minutes = streams as f64 * seconds as f64 / 60.0;
    println!(
        "recorded:                  {:.2} GB ({:.1} MB/s)",
        bytes as f64 / 1e9,
        bytes as f64 / 1e6 / seconds as f64
    );
    println!(
        "streamlink CPU:            {cpu:.2} s = {:.4} CPU-s per stream-minute ({streams} processes)",
        cpu / stream_minutes
    );
    println!("streamlink peak RSS:       {peak:.1} MB per process (largest)");
}
