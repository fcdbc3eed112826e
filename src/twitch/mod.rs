//! Everything that talks to Twitch's HTTP services: the playback path (GQL token + usher
//! playlists), live detection (EventSub through a conduit, Helix or probing), and tokens (the app token; user tokens by the
//! authorization-code and device flows, refreshed and validated hourly). Chat (IRC) lives in
//! `chat/`.

pub(crate) mod app_token;
pub(crate) mod device;
pub mod eventsub;
pub(crate) mod helix;
pub(crate) mod metadata;
pub(crate) mod oauth;
pub(crate) mod playback;
pub(crate) mod viewer;
pub(crate) mod vod;
pub(crate) mod watcher;
