//! Everything that talks to Twitch's HTTP services: the playback path (GQL token + usher
//! playlists), live detection (Helix or probing), and tokens (the app token; user tokens by the
//! authorization-code and device flows, refreshed and validated hourly). Chat (IRC) lives in
//! `chat/`.

pub mod app_token;
pub mod helix;
pub mod metadata;
pub mod oauth;
pub mod playback;
pub mod watcher;
