//! Twitch chat logging: IRC connections supervised by recbot (sharding, Twitch's limits,
//! keepalive, RECONNECT, backoff), every received line written to per-login day files, the
//! per-recording chat file with its replay subtitles, the `recbot logs` reader, and the chat
//! stream on NATS JetStream.

pub(crate) mod conn;
pub mod day_files;
pub(crate) mod export;
pub mod frames;
pub(crate) mod limits;
pub mod line;
pub mod logs;
pub(crate) mod names;
pub(crate) mod per_minute;
pub mod platform_line;
pub mod platform_room;
pub(crate) mod pool;
pub mod record;
pub mod shard;
pub mod stream;
pub mod subtitles;
pub mod transport;
pub mod writer;

pub use pool::{start, ChatHandle, ChatIdentity, ChatSettings, ChatStatus};
