//! The disk guard: free space of the recordings disk (statvfs on the blocking pool), checked
//! before each recording starts and every `[storage] disk_check_secs`. Crossing
//! `warn_usage_percent` posts `DiskLow`; falling below `min_free_gb` posts `DiskLow` with
//! `stopped_recording`, on which the core stops every recording cleanly (parts finalized).
//! Recordings check too while they write; whoever notices a shortage first announces it, once
//! ([`Announced`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Storage;
use crate::event::EventKind;
use crate::work::Events;

/// Space on the filesystem holding a folder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    /// Available to recbot (not counting blocks reserved for root).
    pub free_bytes: u64,
}

impl DiskUsage {
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        (self.total_bytes - self.free_bytes.min(self.total_bytes)) as f64 * 100.0
            / self.total_bytes as f64
    }

    pub fn free_gb(&self) -> f64 {
        self.free_bytes as f64 / 1e9
    }
}

/// How full the disk is, against the configured limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Fine,
    /// Fuller than `warn_usage_percent`.
    Warn,
    /// Less than `min_free_gb` free: do not record.
    Stop,
}

/// The worst disk level already announced, shared by the guard and every recording, so that
/// one shortage makes one `DiskLow` whoever notices it first (the guard's timer or a
/// recording while it writes).
#[derive(Debug, Clone, Default)]
pub struct Announced(Arc<AtomicU8>);

impl Announced {
    /// The disk is at `now`, measured: a level better than what was announced is remembered,
    /// so that a later shortage is announced again. True when `now` is worse than what was
    /// announced: the caller posts it (and it counts as announced).
    pub fn measured(&self, now: Level) -> bool {
        let now = now as u8;
        self.0.fetch_min(now, Ordering::SeqCst);
        self.0.fetch_max(now, Ordering::SeqCst) < now
    }
}

pub fn level(usage: &DiskUsage, storage: &Storage) -> Level {
    if usage.free_gb() < storage.min_free_gb {
        Level::Stop
    } else if usage.used_percent() >= f64::from(storage.warn_usage_percent) {
        Level::Warn
    } else {
        Level::Fine
    }
}

/// statvfs of `path`, or of its nearest existing ancestor (blocking).
pub(crate) fn usage_blocking(path: &Path) -> io::Result<DiskUsage> {
    let mut probe: PathBuf = path.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            probe = PathBuf::from(".");
            break;
        }
    }
    let s = rustix::fs::statvfs(&probe)?;
    let block = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Ok(DiskUsage {
        total_bytes: s.f_blocks.saturating_mul(block),
        free_bytes: s.f_bavail.saturating_mul(block),
    })
}

pub async fn usage(path: &Path) -> io::Result<DiskUsage> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || usage_blocking(&path))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

/// Why recordings stop when the disk is too full (the same text from the guard's stop and
/// from a recording that finds it while writing).
pub fn stop_reason(used_percent: f64, free_gb: f64) -> String {
    format!("the recordings disk is {used_percent:.0}% full ({free_gb:.1} GB free)")
}

/// How a recording measures free space while it writes: statvfs, or (tests) anything else.
#[derive(Clone)]
pub struct Probe(Arc<ProbeFn>);

type ProbeFn = dyn Fn(&Path) -> io::Result<DiskUsage> + Send + Sync;

impl Probe {
    /// statvfs of the folder (the real thing).
    pub(crate) fn statvfs() -> Probe {
        Probe(Arc::new(usage_blocking))
    }

    pub fn new(f: impl Fn(&Path) -> io::Result<DiskUsage> + Send + Sync + 'static) -> Probe {
        Probe(Arc::new(f))
    }

    /// Free space of the disk holding `path`, measured on the blocking pool.
    pub async fn usage(&self, path: &Path) -> io::Result<DiskUsage> {
        let (f, path) = (self.0.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || f(&path))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

/// Bytes of all files under `dir` (blocking; unreadable entries are skipped).
pub fn folder_size_blocking(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_size_blocking(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// The periodic check: posts `DiskLow` each time the disk gets into a worse level (warn, then
/// stop) than was announced (by it or by a recording), and again after it recovered and got
/// worse again.
pub async fn guard(
    storage: Storage,
    events: Events,
    announced: Announced,
    cancel: CancellationToken,
) {
    let every = Duration::from_secs(storage.disk_check_secs.max(1));
    let dir = storage.recordings_dir();
    loop {
        match usage(&dir).await {
            Ok(u) => {
                let now = level(&u, &storage);
                if announced.measured(now) {
                    events
                        .emit(
                            None,
                            EventKind::DiskLow {
                                used_percent: u.used_percent(),
                                free_gb: u.free_gb(),
                                stopped_recording: now == Level::Stop,
                            },
                        )
                        .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "cannot check free space"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_limits() {
        let storage = Storage::default(); // warn at 85 %, stop below 2 GB
        let gb = 1_000_000_000u64;
        let check = |total: u64, free: u64| {
            level(
                &DiskUsage {
                    total_bytes: total,
                    free_bytes: free,
                },
                &storage,
            )
        };
        assert_eq!(check(100 * gb, 50 * gb), Level::Fine);
        assert_eq!(check(100 * gb, 15 * gb), Level::Warn);
        assert_eq!(check(100 * gb, gb), Level::Stop);
        assert_eq!(check(3 * gb, gb), Level::Stop);
        let u = DiskUsage {
            total_bytes: 200,
            free_bytes: 50,
        };
        assert_eq!(u.used_percent(), 75.0);
    }

    #[tokio::test]
    async fn real_disk_and_folder_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("y"), [0u8; 24]).unwrap();
        assert_eq!(folder_size_blocking(dir.path()), 1024);
        let u = usage(&dir.path().join("not/yet/made")).await.unwrap();
        assert!(u.total_bytes > 0 && u.free_bytes <= u.total_bytes);
    }

    #[test]
    fn a_shortage_is_announced_once_whoever_notices_it() {
        let announced = Announced::default();
        let guard = announced.clone();
        assert!(!guard.measured(Level::Fine));
        // A recording notices first: it announces; the guard's next readings do not.
        assert!(announced.measured(Level::Stop));
        assert!(!guard.measured(Level::Stop));
        assert!(!announced.measured(Level::Stop));
        // Space freed, then a warning, then a new shortage: each announced once.
        assert!(!guard.measured(Level::Fine));
        assert!(guard.measured(Level::Warn));
        assert!(!guard.measured(Level::Warn));
        assert!(announced.measured(Level::Stop));
        assert!(!guard.measured(Level::Stop));
        // Better but not fine: a later shortage is announced again.
        assert!(!guard.measured(Level::Warn));
        assert!(guard.measured(Level::Stop));
    }

    #[tokio::test]
    async fn guard_reports_crossings() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage {
            data_dir: dir.path().to_path_buf(),
            min_free_gb: 1e12,
            ..Storage::default()
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(guard(
            storage,
            Events::new(tx),
            Announced::default(),
            cancel.clone(),
        ));
        let e = rx.recv().await.unwrap();
        match e.kind {
            EventKind::DiskLow {
                stopped_recording, ..
            } => assert!(stopped_recording),
            other => panic!("{other:?}"),
        }
        cancel.cancel();
        task.await.unwrap();
    }
}
