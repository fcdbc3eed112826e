//! The vocabulary workers share with the core, kept at the bottom so that workers (twitch,
//! recorder, chat, upload) never import the core or the front-ends: the event sender
//! ([`Events`]), the acknowledged durable calls ([`Calls`]), stored tokens, quota reservations
//! and upload job updates. The core creates and serves these; workers only hold them.

mod events;

pub use events::Events;
