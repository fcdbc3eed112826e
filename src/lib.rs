//! recbot: watches Twitch channels, records their live streams, logs their chat and uploads
//! the recordings to YouTube, driven from Slack, Discord or a console.
//!
//! See ARCHITECTURE.md for the map. The binary (`main.rs`) only parses the command line and
//! wires these parts together.

pub mod allowed_source;
pub mod archive;
pub mod backoff;
pub mod bilibili;
pub mod blocking;
pub mod chat;
pub mod chzzk;
pub mod config;
pub mod core;
pub mod event;
pub(crate) mod format;
pub mod frontend;
pub mod logging;
pub mod metrics;
pub mod post;
pub mod recorder;
pub mod remote;
pub mod rendition;
pub mod secret;
pub mod summary;
pub mod title_template;
pub mod twitch;
pub mod upload;
pub mod work;
