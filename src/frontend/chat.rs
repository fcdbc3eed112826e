//! What the Slack and Discord front-ends share when answering commands: the 3-second ack
//! window (answer now when the core is quick, acknowledge and follow up otherwise), replay
//! protection for redelivered commands, and message-length limits.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::core::{CoreHandle, Origin, Reply};

/// How long a front-end waits for the core before acknowledging without the answer. Both
/// platforms give 3 s; the rest is the network's.
pub const ACK_WITHIN: Duration = Duration::from_millis(2200);

/// The acknowledgement shown while a slow command is still running.
pub const WORKING: &str = "Working on it; the answer follows here.";

/// What the person sees when a platform redelivers a command recbot already received.
pub const ALREADY_RECEIVED: &str =
    "This command was already received; its answer is (or will be) above.";

/// How many command ids are remembered for replay protection.
const RECENT_IDS: usize = 1024;

/// The ids of recently received commands (Slack trigger ids, Discord interaction ids), so a
/// redelivery after a missed ack window is not run twice.
#[derive(Debug)]
pub struct RecentIds {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds {
            order: VecDeque::with_capacity(RECENT_IDS),
            seen: HashSet::with_capacity(RECENT_IDS),
        }
    }
}

impl RecentIds {
    /// `true` the first time `id` is seen (among the last [`RECENT_IDS`]).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }
}

/// The core's answer now, or the still-running command to follow up on.
#[derive(Debug)]
pub enum Answered {
    Now(Reply),
    Later(JoinHandle<Reply>),
}

/// Submits `text` and waits up to `within` for the reply (zero: never wait, always follow
/// up). The command runs to completion on
/// `tracker` either way: a slow command is never cancelled or run twice.
pub async fn submit(
    core: &CoreHandle,
    tracker: &TaskTracker,
    text: String,
    origin: Origin,
    within: Duration,
) -> Answered {
    let core = core.clone();
    let mut task = tracker.spawn(async move { core.submit(&text, origin).await });
    if within.is_zero() {
        return Answered::Later(task);
    }
    match tokio::time::timeout(within, &mut task).await {
        Ok(reply) => Answered::Now(reply.unwrap_or_else(|_| failed())),
        Err(_) => Answered::Later(task),
    }
}

/// The reply when the task answering a command died.
pub fn failed() -> Reply {
    Reply::refused("recbot failed while answering; see the service log")
}

/// Cuts `text` to at most `max` characters, saying so.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(12)).collect();
    out.push_str("\n… (cut)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut ids = RecentIds::default();
        assert!(ids.first_time("a"));
        assert!(!ids.first_time("a"));
        for i in 0..RECENT_IDS {
            ids.first_time(&i.to_string());
        }
        assert!(ids.first_time("a"), "a was pushed out");
        assert!(!ids.first_time(&(RECENT_IDS - 1).to_string()));
    }

    #[test]
    fn clipping_keeps_short_text() {
        assert_eq!(clip("abc", 10), "abc");
        let long = clip(&"x".repeat(3000), 2000);
        assert!(long.chars().count() <= 2000 && long.ends_with("(cut)"));
    }
}
