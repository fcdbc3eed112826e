//! Upload throughput and memory: a 10 MiB and then a 2 GiB recording go through the real core
//! and upload worker (token from the state database, resumable session, 16 MiB chunks streamed
//! from disk, offset persisted after every chunk) to a local resumable-upload fake on a plain
//! TcpListener that counts bytes without keeping them. Prints throughput and peak RSS
//! (`VmHWM`) after each, so flat memory shows as the same figure for both sizes.
//!
//! `cargo bench --bench upload`; `UPLOAD_BENCH_MIB=4096` changes the large size. The files are
//! sparse (reading them costs no disk I/O), so the figure is recbot's, not the disk's.

#[path = "../tests/support/youtube_state.rs"]
mod youtube_state;
#[path = "../tests/support/youtube_tcp.rs"]
mod youtube_tcp;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use recbot::config::Config;
use recbot::core::store::{NewUploadJob, Store, StoredToken};
use recbot::core::Core;
use recbot::event::EventKind;
use recbot::secret::Secret;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use youtube_tcp::TcpYoutube;

const MIB: u64 = 1024 * 1024;
const TOKEN: &str = "ya29.bench";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let large = std::env::var("UPLOAD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let fake = TcpYoutube::start(TOKEN).await;
        println!("upload benchmark: core + worker → local resumable-upload fake (loopback)");
        println!("baseline peak RSS: {:.1} MB", peak_rss_mb());
        for (round, mib) in [(1, 10u64), (2, large)] {
            let bytes = mib * MIB;
            let (secs, sent) = upload(dir.path(), &fake, round, bytes).await;
            assert_eq!(sent, bytes, "the fake received every byte once");
            println!(
                "{mib:>6} MiB: {secs:>6.2} s, {:>7.1} MB/s ({:.1} MiB/s), peak RSS {:.1} MB",
                bytes as f64 / secs / 1e6,
                bytes as f64 / secs / MIB as f64,
                peak_rss_mb()
            );
        }
        let s = fake.state.lock().unwrap();
        println!(
            "fake: {} sessions, {} chunk requests, {} bytes re-sent",
            s.sessions.len(),
            s.puts.len(),
            s.resent
        );
    });
}

/// Queues one sparse file of `bytes`, runs a core until YouTube has it; returns the seconds
/// from UploadStarted to UploadFinished and the bytes the fake received for it.
async fn upload(dir: &Path, fake: &TcpYoutube, round: u32, bytes: u64) -> (f64, u64) {
    let data = dir.join(format!("data{round}"));
    let file = data.join("recordings/bench/part.ts");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::File::create(&file)
        .unwrap()
        .set_len(bytes)
        .unwrap();
    let text = format!(
        "[storage]\ndata_dir = {:?}\n[console]\nenabled = false\n[youtube]\nenabled = true\n\
         client_id = \"cid\"\nclient_secret = \"csecret\"\nupload_url = {:?}\n",
        data.to_str().unwrap(),
        fake.upload_url()
    );
    let config = Arc::new(Config::from_text(&text, &dir.join("recbot.toml"), &[]).unwrap());
    let store = Store::open(&config.storage.database_path()).await.unwrap();
    store
        .put_token(
            "youtube",
            &StoredToken {
                access_token: Secret::new(TOKEN),
                refresh_token: None,
                expires_at: None,
                scopes: String::new(),
                client_id: None,
                account: None,
            },
        )
        .await
        .unwrap();
    store
        .insert_upload_job(&NewUploadJob {
            login: None,
            session: None,
            path: file.clone(),
            sidecar: None,
            total_bytes: bytes,
            node: None,
        })
        .await
        .unwrap();
    store.close().await;

    let before = fake.state.lock().unwrap().bytes;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (core, handle) = Core::open(config, shutdown.clone()).await.unwrap();
    let mut notices = handle.subscribe();
    core.spawn(&tracker).await.unwrap();
    let mut started = Instant::now();
    loop {
        let notice = notices.recv().await.unwrap();
        match &notice.event.kind {
            EventKind::UploadStarted { .. } => started = Instant::now(),
            EventKind::UploadFinished { .. } => break,
            EventKind::UploadFailed { reason, .. } | EventKind::UploadDeferred { reason, .. } => {
                panic!("upload did not go through: {reason}")
            }
            _ => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    let sent = fake.state.lock().unwrap().bytes - before;
    (secs, sent)
}

/// `VmHWM` from /proc/self/status, in MB; 0 where there is no /proc.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0 / 1e6)
        .unwrap_or(0.0)
}
