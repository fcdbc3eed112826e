//! The watch list: which logins are recorded, from where, and where their events are posted.

use anyhow::Result;
use chrono::{DateTime, Utc};
use recbot_commands::{Login, PostMode, Quality, Source};

use crate::event::Room;

/// One entry of the watch list: the desired state for a login.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub name: Login,
    pub source: Source,
    pub quality: Quality,
    pub upload: bool,
    pub chat: bool,
    /// `add … post=`: this login's post-processing; `None` follows `[postprocess] mode`.
    pub post: Option<PostMode>,
    /// The channel's display name, looked up when it was added (Chzzk); `None` when the
    /// platform was not asked (Twitch, HLS).
    pub display_name: Option<String>,
    /// Where it was added; its events are posted there.
    pub room: Room,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// The stored watch list.
#[async_trait::async_trait]
pub trait WatchList: Send + Sync {
    /// Every entry, by login.
    async fn watches(&self) -> Result<Vec<Watch>>;

    async fn watch(&self, name: &Login) -> Result<Option<Watch>>;

    /// Inserts or replaces the watch entry (a replaced entry keeps its room, who added it and
    /// when).
    async fn put_watch(&self, w: &Watch) -> Result<()>;

    /// Removes the entry; `false` when there was none.
    async fn delete_watch(&self, name: &Login) -> Result<bool>;
}
