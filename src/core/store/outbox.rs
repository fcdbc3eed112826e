//! The front-ends' delivery state: per front-end cursor into the event log, and the chat
//! messages (threads, progress messages) it keeps using. Written only through the core.

use anyhow::Result;

/// A chat message a front-end refers back to: a broadcast's thread, an upload's progress
/// message, or one step of a notice that takes several posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    /// `thread:<room>:<session>`, `progress:<room>:<job>` (`progress:<room>:post-<job>` for post-processing), or `step:<seq>:<place>` for a
    /// post already made for notice `seq` (dropped once the cursor passes it).
    pub key: String,
    /// Where the message (or thread) lives.
    pub channel: String,
    /// Slack `ts`, Discord message or thread id.
    pub id: String,
}

/// Mappings older than this are dropped at start-up: no broadcast or upload lasts that long.
pub(super) const MESSAGE_RETENTION_DAYS: i64 = 14;
/// Key prefix of the posts made for a notice not yet fully delivered.
pub(super) const STEP_PREFIX: &str = "step:";

impl PostedMessage {
    /// The key recording the post made for notice `seq` at `place` (e.g. `room`, `thread`).
    pub fn step_key(seq: i64, place: &str) -> String {
        format!("{STEP_PREFIX}{seq}:{place}")
    }

    /// Whether `key` records a step (as opposed to a thread or progress message).
    pub fn is_step_key(key: &str) -> bool {
        key.starts_with(STEP_PREFIX)
    }
}

/// The stored delivery state of each front-end (named `slack`, `discord`, ...).
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// The last event-log id `frontend` delivered, if it ever ran.
    async fn outbox_cursor(&self, frontend: &str) -> Result<Option<i64>>;

    /// Records that `frontend` handled every notice up to `seq`, and the messages it opened
    /// doing so, in one transaction; the step records of the notices it finished are dropped.
    /// The cursor never moves backwards.
    async fn outbox_delivered(
        &self,
        frontend: &str,
        seq: i64,
        messages: &[PostedMessage],
    ) -> Result<()>;

    /// Records messages `frontend` posted without moving its cursor: one step of a notice
    /// that takes several posts, so a restart before the next step does not post it again.
    async fn outbox_posted(&self, frontend: &str, messages: &[PostedMessage]) -> Result<()>;

    /// The messages `frontend` still refers to, by key (those older than 14 days are pruned
    /// first).
    async fn outbox_messages(&self, frontend: &str) -> Result<Vec<PostedMessage>>;
}
