//! Everything that talks to Twitch's HTTP services: the playback path (GQL token + usher
//! playlists), live detection, and tokens. Chat (IRC) lives in `chat/`.

pub mod app_token;
pub mod helix;
pub mod metadata;
pub mod playback;
pub mod watcher;
