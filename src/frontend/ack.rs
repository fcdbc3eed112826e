//! What the Slack and Discord front-ends share when answering commands: the 3-second ack
//! window (answer now when the core is quick, acknowledge and follow up otherwise), replay
//! protection for redelivered commands, and message-length limits.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::core::{CoreHandle, Origin, Refusal, Reply};

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

/// What a front-end remembers about a command id it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    /// Never seen (it is now remembered as running).
    New,
    /// Seen and still running, or answered in a way not worth repeating.
    Running,
    /// Seen and acknowledged with this answer.
    Answered(T),
}

/// The ids of recently received commands (Slack trigger ids, Discord interaction ids), so a
/// redelivery (a missed ack window, a replay after a reconnect) is not run twice. With `T` the
/// acknowledgement given, a redelivery can be answered again without running anything.
#[derive(Debug)]
pub struct RecentIds<T = ()> {
    order: VecDeque<String>,
    seen: HashMap<String, Option<T>>,
}

impl<T> Default for RecentIds<T> {
    fn default() -> Self {
        RecentIds {
            order: VecDeque::with_capacity(RECENT_IDS),
            seen: HashMap::with_capacity(RECENT_IDS),
        }
    }
}

impl<T: Clone> RecentIds<T> {
    /// `true` the first time `id` is seen (among the last [`RECENT_IDS`]).
    pub fn first_time(&mut self, id: &str) -> bool {
        matches!(self.check(id), Seen::New)
    }

    /// Whether `id` was seen, remembering it when it was not.
    pub fn check(&mut self, id: &str) -> Seen<T> {
        if let Some(answer) = self.seen.get(id) {
            return match answer {
                Some(answer) => Seen::Answered(answer.clone()),
                None => Seen::Running,
            };
        }
        if self.order.len() == RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string(), None);
        Seen::New
    }

    /// Records the acknowledgement given for `id` (if it is still remembered).
    pub fn answered(&mut self, id: &str, answer: T) {
        if let Some(slot) = self.seen.get_mut(id) {
            *slot = Some(answer);
        }
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
    Reply::refused(Refusal::AnswerLost)
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
        let mut ids = RecentIds::<()>::default();
        assert!(ids.first_time("a"));
        assert!(!ids.first_time("a"));
        for i in 0..RECENT_IDS {
            ids.first_time(&i.to_string());
        }
        assert!(ids.first_time("a"), "a was pushed out");
        assert!(!ids.first_time(&(RECENT_IDS - 1).to_string()));
    }

    #[test]
    fn a_redelivery_gets_the_answer_once_there_is_one() {
        let mut ids = RecentIds::<String>::default();
        assert_eq!(ids.check("t1"), Seen::New);
        assert_eq!(ids.check("t1"), Seen::Running);
        ids.answered("t1", "added".into());
        assert_eq!(ids.check("t1"), Seen::Answered("added".into()));
        // An id already forgotten is not resurrected by a late answer.
        ids.answered("t2", "x".into());
        assert_eq!(ids.check("t2"), Seen::New);
    }

    #[test]
    fn clipping_keeps_short_text() {
        assert_eq!(clip("abc", 10), "abc");
        let long = clip(&"x".repeat(3000), 2000);
        assert!(long.chars().count() <= 2000 && long.ends_with("(cut)"));
    }
}
