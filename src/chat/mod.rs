//! Twitch chat logging: IRC connections supervised by recbot (sharding, Twitch's limits,
//! keepalive, RECONNECT, backoff), every received line written to per-login day files, the
//! per-recording chat file, and the `recbot logs` reader.

pub mod line;
pub mod record;
pub mod writer;
pub mod limits;
pub mod logs;
pub mod transport;
pub mod conn;
pub mod shard;
pub mod export;
pub mod pool;

pub use pool::{start, ChatHandle, ChatSettings, ChatStatus};
