//! Small values kept between runs, by key: what the service learnt from outside and must not
//! lose on a restart (the EventSub conduit id). Not configuration: operators never set these.

use anyhow::Result;

/// The key of the EventSub conduit id.
pub const EVENTSUB_CONDUIT: &str = "eventsub_conduit_id";

/// Values by key.
#[async_trait::async_trait]
pub trait Settings: Send + Sync {
    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Inserts or replaces the value of `key`.
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
}
