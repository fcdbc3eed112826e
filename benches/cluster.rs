//! `cargo bench --bench cluster`: what scaling out costs. For now the chat stream's part
//! (issue 15): chat lines published to NATS JetStream from one node. A real `nats-server`
//! (Debian's package) with JetStream on a free port, its store in a temporary folder; the
//! stream worker (`chat::stream`) fed the way the chat writer feeds it (batches of 10 lines of
//! about 420 bytes, each with its message id), as fast as it takes them (at most 20 000 lines
//! ahead of the acknowledgements, so they stay in memory: the spool is for outages). Prints lines per
//! second from the first batch to the last acknowledgement, and checks the stream holds every
//! line once. Target: ≥ 100 000 lines/s.
//!
//! `CLUSTER_BENCH_LINES` (default 300 000) changes the load. The PostgreSQL parts (leases,
//! convergence after a node dies) are measured here once the cluster lands.

#[path = "../tests/support/nats.rs"]
#[allow(dead_code)]
mod nats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use recbot::chat::stream::{self, StreamAuth, StreamSettings};
use recbot::chat::writer::Batch;
use recbot::metrics::Metrics;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const STREAM: &str = "RECBOT_CHAT";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A realistic logged PRIVMSG (about 420 bytes) of room `room` with message id `n`.
fn line(n: usize, room: usize) -> String {
    format!(
        r##"{{"recv_ms":{},"cmd":"PRIVMSG","channel":"room{room}","sent_ms":{},"login":"viewer{n}","user_id":"{}","display_name":"Viewer{n}","id":"b3c1a8f0-0000-4000-8000-{n:012}","text":"that play was insane, clip it {n}","tags":{{"badges":"subscriber/12","color":"#1E90FF","emotes":"","first-msg":"0","mod":"0","returning-chatter":"0","subscriber":"1","turbo":"0","user-type":""}},"raw":"@badges=subscriber/12 :viewer{n}!viewer{n}@viewer{n}.tmi.twitch.tv PRIVMSG #room{room} :that play was insane, clip it {n}"}}"##,
        1_764_000_000_000u64 + n as u64,
        1_764_000_000_000u64 + n as u64,
        10_000_000 + n
    )
}

fn main() {
    let lines = env_or("CLUSTER_BENCH_LINES", 300_000);
    let server = nats::NatsServer::start();
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (secs, published, stored) = runtime.block_on(publish(&server.url(), data.path(), lines));
    let rate = lines as f64 / secs;
    println!(
        "chat stream to JetStream: {lines} lines in {secs:.2} s = {rate:.0} lines/s \
         (target >= 100000){}",
        if rate >= 100_000.0 {
            ""
        } else {
            "  BELOW TARGET"
        }
    );
    println!(
        "  acknowledged {published}, stored in the stream {stored} (every line once: {})",
        stored == lines as u64
    );
    assert_eq!(stored, lines as u64, "every line stored once");
}

async fn publish(url: &str, data: &std::path::Path, lines: usize) -> (f64, u64, u64) {
    let metrics = Arc::new(Metrics::new());
    let (events, mut events_rx) = tokio::sync::mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let settings = StreamSettings {
        url: url.to_string(),
        stream_name: STREAM.into(),
        auth: StreamAuth::None,
        spool_dir: data.to_path_buf(),
        spool_bytes: 1 << 30,
        timeout: Duration::from_secs(5),
    };
    let tee = stream::start(settings, events, &tracker, cancel.clone(), metrics.clone());
    // Encoded before the clock starts: the bench measures publishing, not formatting.
    let batches: Vec<Arc<Batch>> = (0..lines)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(|chunk| {
            let mut batch = Batch::default();
            for &n in chunk {
                let room = n % 100;
                batch.buf.extend_from_slice(line(n, room).as_bytes());
                batch.buf.push(b'\n');
                batch.push_entry(
                    Arc::from(format!("room{room}")),
                    1_764_000_000_000 + n as i64,
                );
            }
            Arc::new(batch)
        })
        .collect();
    let start = Instant::now();
    let mut offered = 0u64;
    for batch in batches {
        // A steady stream kept in memory (below the worker's spill to the spool): at most
        // this many lines ahead of the acknowledgements.
        while offered > metrics.chat_stream_published.get() + 20_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        offered += batch.entries.len() as u64;
        tee.offer_waiting(batch).await;
    }
    while metrics.chat_stream_published.get() < lines as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "publishing stalled"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    while let Ok(e) = events_rx.try_recv() {
        println!("  event: {:?}", e.kind);
    }
    let published = metrics.chat_stream_published.get();
    drop(tee);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(STREAM).await.unwrap();
    let stored = s.info().await.unwrap().state.messages;
    (secs, published, stored)
}
