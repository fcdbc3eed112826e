//! Everything that talks to Twitch's servers. `oauth`: user tokens (authorization code and
//! device flows, refresh, hourly validation).

pub mod oauth;
