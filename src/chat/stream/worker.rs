//! The stream worker: takes the writer's batches from the hand-off, keeps them in memory
//! (bounded) while NATS answers, publishes them a chunk at a time (one chunk in flight, its
//! acknowledgements awaited together), and spools them while it does not. Once it answers
//! again the spool is sent first, in order, its offset committed after each acknowledged
//! chunk; new lines keep going to the spool until it is empty, so the order holds.
//!
//! One task does it all: the hand-off is read between every step (file work is short hops to
//! the blocking pool), so the writer never waits for NATS.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::line::Line;
use super::nats::{self, Nats, Ready, MAX_IN_FLIGHT};
use super::spool::Spool;
use super::StreamSettings;
use crate::backoff::{Backoff, Jitter};
use crate::chat::writer::Batch;
use crate::event::{Event, EventKind};
use crate::metrics::Metrics;

/// Lines published in one chunk, at most.
const CHUNK_LINES: usize = 2048;
/// Spool bytes read for one chunk, about.
const CHUNK_BYTES: u64 = 1024 * 1024;
/// Lines kept in memory while a chunk is in flight, at most (in bytes); beyond it they go to
/// the spool, as when NATS is away.
const MEMORY_BYTES: usize = 16 * 1024 * 1024;
/// `ChatStreamDropped` at most this often.
const DROP_REPORT: Duration = Duration::from_secs(10);
/// While still behind, `ChatStreamBehind` again this often.
const BEHIND_REPORT: Duration = Duration::from_secs(300);

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A chunk on its way, and where its lines came from.
struct Flight {
    done: Boxed<(Vec<Line>, Result<(), String>)>,
    /// `Some(end)`: read from the spool up to `end` (committed once acknowledged).
    spool_end: Option<u64>,
}

pub(super) struct Worker {
    settings: StreamSettings,
    rx: mpsc::Receiver<Arc<Batch>>,
    handoff_dropped: Arc<AtomicU64>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    metrics: Arc<Metrics>,
    /// `None` only while it is on the blocking pool, or when it could not be opened.
    spool: Option<Spool>,
    /// Lines not yet published, in order (only while the spool is empty).
    memory: VecDeque<Line>,
    memory_bytes: usize,
    nats: Option<Nats>,
    /// The last connection attempt or chunk failed: lines go to the spool until a chunk
    /// goes through.
    down: bool,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Lines left out of the stream by the spool (the hand-off counts its own).
    spool_dropped: u64,
    dropped_counted: u64,
    dropped_reported: u64,
    last_drop_report: Option<Instant>,
    /// When `ChatStreamBehind` was last sent during this time behind.
    behind_since: Option<Instant>,
}

impl Worker {
    pub fn new(
        settings: StreamSettings,
        rx: mpsc::Receiver<Arc<Batch>>,
        handoff_dropped: Arc<AtomicU64>,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Worker {
        let initial = Duration::from_millis(200);
        let max = settings.timeout.max(Duration::from_secs(10));
        Worker {
            settings,
            rx,
            handoff_dropped,
            events,
            cancel,
            metrics,
            spool: None,
            memory: VecDeque::new(),
            memory_bytes: 0,
            nats: None,
            down: false,
            backoff: Backoff::new(initial, max, Jitter::Half),
            retry_at: None,
            spool_dropped: 0,
            dropped_counted: 0,
            dropped_reported: 0,
            last_drop_report: None,
            behind_since: None,
        }
    }

    pub async fn run(mut self) {
        let dir = self.settings.spool_dir.clone();
        let limit = self.settings.spool_bytes;
        match crate::blocking::io(move || Spool::open(&dir, limit)).await {
            Ok(spool) => {
                if spool.waiting() > 0 {
                    info!(
                        waiting = spool.waiting(),
                        "chat stream: lines left in the spool"
                    );
                }
                self.spool = Some(spool);
            }
            Err(e) => {
                warn!(error = %e, "chat stream: cannot open the spool; lines NATS does not take are left out")
            }
        }
        if self.waiting() > 0 {
            self.report_behind().await;
        }
        let mut connecting: Option<Boxed<Ready>> =
            Some(Box::pin(nats::ready(self.settings.clone(), None)));
        let mut flight: Option<Flight> = None;
        let mut stopping = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if flight.is_none() && !stopping {
                flight = self.next_flight().await;
            }
            tokio::select! {
                _ = self.cancel.cancelled(), if !stopping => {
                    // No new chunk nor connection; the writer's last lines still come.
                    stopping = true;
                    connecting = None;
                }
                batch = self.rx.recv() => match batch {
                    Some(batch) => self.accept(&batch).await,
                    None => break,
                },
                (lines, result) = async { flight.as_mut().unwrap().done.as_mut().await },
                    if flight.is_some() =>
                {
                    let spool_end = flight.take().and_then(|f| f.spool_end);
                    self.landed(lines, spool_end, result).await;
                }
                result = async { connecting.as_mut().unwrap().as_mut().await },
                    if connecting.is_some() =>
                {
                    connecting = None;
                    self.connected(result).await;
                }
                _ = tick.tick() => {
                    let due = self.retry_at.is_some_and(|at| Instant::now() >= at);
                    if due && connecting.is_none() && flight.is_none() && !stopping {
                        self.retry_at = None;
                        let existing = self.nats.take();
                        connecting = Some(Box::pin(nats::ready(self.settings.clone(), existing)));
                    }
                    self.report_drops(false).await;
                }
            }
        }
        // The writer is gone: a chunk still out gets its time, the rest waits in the spool
        // for the next start.
        if let Some(f) = flight.take() {
            let wait = self.settings.timeout.min(Duration::from_secs(3));
            match tokio::time::timeout(wait, f.done).await {
                Ok((lines, result)) => self.landed(lines, f.spool_end, result).await,
                Err(_) if f.spool_end.is_none() => {
                    warn!("chat stream: the last chunk was not acknowledged before stopping");
                }
                Err(_) => {}
            }
        }
        let memory: Vec<Line> = self.memory.drain(..).collect();
        self.memory_bytes = 0;
        self.spool_lines(memory).await;
        self.report_drops(true).await;
    }

    /// Lines waiting in the spool.
    fn waiting(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::waiting)
    }

    /// The next chunk to send: the spool first, then memory; none while NATS is away.
    async fn next_flight(&mut self) -> Option<Flight> {
        if self.down {
            return None;
        }
        let js = self.nats.as_ref()?.context();
        if self.waiting() > 0 {
            let (lines, end) = match self
                .on_spool(|s| s.read_chunk(CHUNK_BYTES, CHUNK_LINES))
                .await?
            {
                Ok(chunk) => chunk,
                Err(e) => {
                    warn!(error = %e, "chat stream: cannot read the spool");
                    self.set_down();
                    return None;
                }
            };
            return Some(Flight {
                done: Box::pin(nats::publish(js, lines)),
                spool_end: Some(end),
            });
        }
        if self.memory.is_empty() {
            return None;
        }
        let n = self.memory.len().min(CHUNK_LINES).min(MAX_IN_FLIGHT);
        let lines: Vec<Line> = self.memory.drain(..n).collect();
        self.memory_bytes -= lines.iter().map(Line::spooled_len).sum::<usize>();
        Some(Flight {
            done: Box::pin(nats::publish(js, lines)),
            spool_end: None,
        })
    }

    /// A batch from the writer: to memory while NATS answers and nothing is spooled, else
    /// (or when memory is full) to the spool.
    async fn accept(&mut self, batch: &Batch) {
        let lines = Line::of_batch(batch);
        if self.down || self.waiting() > 0 {
            self.spool_lines(lines).await;
            return;
        }
        self.memory_bytes += lines.iter().map(Line::spooled_len).sum::<usize>();
        self.memory.extend(lines);
        if self.memory_bytes > MEMORY_BYTES {
            let memory: Vec<Line> = self.memory.drain(..).collect();
            self.memory_bytes = 0;
            self.spool_lines(memory).await;
        }
    }

    /// A chunk's acknowledgements are in, or it failed.
    async fn landed(
        &mut self,
        lines: Vec<Line>,
        spool_end: Option<u64>,
        result: Result<(), String>,
    ) {
        let n = lines.len() as u64;
        match result {
            Ok(()) => {
                self.metrics.chat_stream_published.inc_by(n);
                self.backoff.reset();
                if let Some(end) = spool_end {
                    if let Some(Err(e)) = self.on_spool(move |s| s.commit(end, n)).await {
                        warn!(error = %e, "chat stream: cannot note the spool's progress");
                    }
                    if self.waiting() == 0 && self.behind_since.take().is_some() {
                        info!("chat stream: the spool is sent; publishing directly again");
                    }
                }
            }
            Err(why) => {
                warn!(reason = %why, lines = n, "chat stream: NATS did not take a chunk; spooling");
                self.set_down();
                if spool_end.is_none() {
                    // They came before everything in memory and in the spool.
                    let dropped = self.on_spool(move |s| s.prepend(&lines)).await;
                    match dropped {
                        Some(Ok(left_out)) => {
                            self.metrics.chat_stream_spooled.inc_by(n - left_out);
                            self.spool_dropped += left_out;
                        }
                        Some(Err(e)) => {
                            warn!(error = %e, "chat stream: cannot write the spool");
                            self.spool_dropped += n;
                        }
                        None => self.spool_dropped += n,
                    }
                    let memory: Vec<Line> = self.memory.drain(..).collect();
                    self.memory_bytes = 0;
                    self.spool_lines(memory).await;
                }
                self.report_behind().await;
            }
        }
    }

    /// The outcome of a connection attempt (or of checking the one there is).
    async fn connected(&mut self, result: Ready) {
        match result {
            Ok(nats) => {
                if self.down {
                    info!(waiting = self.waiting(), "chat stream: NATS answers again");
                }
                self.nats = Some(nats);
                self.down = false;
            }
            Err((existing, why)) => {
                warn!(reason = %why, "chat stream: NATS cannot be reached; spooling");
                self.nats = existing;
                self.set_down();
                let memory: Vec<Line> = self.memory.drain(..).collect();
                self.memory_bytes = 0;
                self.spool_lines(memory).await;
                self.report_behind().await;
            }
        }
    }

    fn set_down(&mut self) {
        self.down = true;
        let wait = self.backoff.next_delay(&mut rand::rng());
        self.retry_at = Some(Instant::now() + wait);
    }

    async fn spool_lines(&mut self, lines: Vec<Line>) {
        if lines.is_empty() {
            return;
        }
        let n = lines.len() as u64;
        let left_out = self.on_spool(move |s| s.append(&lines)).await.unwrap_or(n);
        self.metrics.chat_stream_spooled.inc_by(n - left_out);
        self.spool_dropped += left_out;
        if self.behind_since.is_none() && n > left_out {
            self.report_behind().await;
        }
    }

    /// Runs `op` on the spool on the blocking pool; `None` when there is no spool.
    async fn on_spool<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Option<T> {
        let mut spool = self.spool.take()?;
        let back = crate::blocking::run(move || {
            let out = op(&mut spool);
            (spool, out)
        })
        .await;
        match back {
            Ok((spool, out)) => {
                self.spool = Some(spool);
                Some(out)
            }
            Err(e) => {
                warn!(error = %e, "chat stream: the spool was lost; lines NATS does not take are left out");
                None
            }
        }
    }

    /// `ChatStreamBehind` with the lines waiting: when spooling starts, and again every
    /// [`BEHIND_REPORT`] while it goes on.
    async fn report_behind(&mut self) {
        let due = self
            .behind_since
            .is_none_or(|at| at.elapsed() >= BEHIND_REPORT);
        if !due || self.waiting() == 0 {
            return;
        }
        self.behind_since = Some(Instant::now());
        let waiting = self.waiting();
        let _ = self
            .events
            .send(Event::now(None, EventKind::ChatStreamBehind { waiting }))
            .await;
    }

    /// Counts lines left out (spool full, hand-off full) and reports them at most every
    /// [`DROP_REPORT`] (`last`: now, whatever the time).
    async fn report_drops(&mut self, last: bool) {
        let total = self.spool_dropped + self.handoff_dropped.load(Ordering::Relaxed);
        if total > self.dropped_counted {
            self.metrics
                .chat_stream_dropped
                .inc_by(total - self.dropped_counted);
            self.dropped_counted = total;
        }
        let lines = total - self.dropped_reported;
        if lines == 0 {
            return;
        }
        let due = last
            || self
                .last_drop_report
                .is_none_or(|at| at.elapsed() >= DROP_REPORT);
        if !due {
            return;
        }
        self.dropped_reported = total;
        self.last_drop_report = Some(Instant::now());
        warn!(
            lines,
            "chat stream: lines left out of the stream (spool full)"
        );
        let _ = self
            .events
            .send(Event::now(None, EventKind::ChatStreamDropped { lines }))
            .await;
    }
}
