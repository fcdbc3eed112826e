//! The vocabulary workers share with the core, kept at the bottom so that workers (twitch,
//! recorder, chat, upload) never import the core or the front-ends: the event sender
//! ([`Events`]), the acknowledged durable calls ([`Calls`]), stored tokens, quota reservations
//! and upload job updates. The core creates and serves these; workers only hold them.

mod calls;
mod events;
pub(crate) mod jobs;
mod tokens;

pub(crate) use calls::Call;
pub use calls::{Calls, Reservation};
pub use events::Events;
pub use jobs::{CleanupOutcome, JobUpdate, UploadJob, WaitReason};
pub use tokens::{StoredToken, TokenSource};
