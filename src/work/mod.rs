//! The vocabulary workers share with the core, kept at the bottom so that workers (twitch,
//! recorder, chat, upload) never import the core or the front-ends: the event sender
//! ([`Events`]), the acknowledged durable calls ([`Calls`], with their [`Reservation`]), stored
//! tokens and how a worker reads them ([`StoredToken`], [`TokenSource`]), upload job rows and
//! the updates the upload worker reports ([`UploadJob`], [`JobUpdate`]). The core creates and
//! serves these (its store implements [`TokenSource`]); workers only hold them. Nothing here
//! imports `core` or `frontend`.

mod calls;
mod events;
mod jobs;
mod tokens;

pub(crate) use calls::Call;
pub use calls::{Calls, Reservation};
pub use events::Events;
pub use jobs::{Cleanup, CleanupOutcome, JobState, JobUpdate, UploadJob, WaitReason};
pub use tokens::{StoredToken, TokenSource};
