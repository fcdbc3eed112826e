//! How many day files may be open at once: the configured cap, or one per room, within what
//! the process's open-file limit leaves after everything else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::{debug, info};

/// With `max_open_files = 0`: files kept open beyond one per room (the server folder, the
/// previous day's files around midnight)…
const AUTO_MARGIN: usize = 16;
/// …and at least this many.
const AUTO_MIN: usize = 64;
/// Descriptors left to the rest of the process (sockets, the database, recordings, uploads)
/// when the open-file limit is high; with a low limit, half of it.
const FD_RESERVE: u64 = 512;

/// How many day files may be open: raises the soft open-file limit to the hard one (chat
/// keeps a file per room open), then leaves room for everything else.
pub(super) fn fd_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                info!(limit = ?limit.maximum, "raised the open-file limit for the chat log files");
                limit = getrlimit(Resource::Nofile);
            }
            Err(e) => debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    let soft = limit.current.unwrap_or(1 << 20);
    let budget = soft.saturating_sub(FD_RESERVE).max(soft / 2).max(4);
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// The open-file cap: configured, or one file per room (plus a margin) within the budget.
#[derive(Debug, Clone)]
pub(super) struct Cap {
    pub(super) configured: usize,
    pub(super) rooms: Arc<AtomicUsize>,
    pub(super) budget: usize,
}

impl Cap {
    pub(super) fn get(&self) -> usize {
        let wanted = if self.configured > 0 {
            self.configured
        } else {
            (self.rooms.load(Ordering::Relaxed) + AUTO_MARGIN).max(AUTO_MIN)
        };
        wanted.min(self.budget).max(1)
    }
}
