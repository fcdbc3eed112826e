//! Chained reactions: what the core does next because of an event (live → record, part
//! finished → upload and chat slice) or because the watch list changed (tell workers the new
//! wanted sets). One place, so the chains can be tested without the workers' I/O.

use super::Core;
use crate::event::Event;

impl Core {
    /// Runs after `event` is persisted and before it is announced.
    pub(super) async fn react(&mut self, event: &Event) {
        // The recording state first: a `RecordingFinished` closes its session there, and what
        // the ended recording knew (its stream id, whether a new broadcast replaced it) is the
        // input of the live recheck.
        let ended = self.react_recording(event).await;
        self.react_live(event, ended);
        // A finished part becomes an upload job and a chat file; the two do not depend on
        // each other (the after-upload step copes with either finishing first).
        self.queue_upload(event).await;
        self.chat_react(event).await;
    }

    /// Runs after an `add`/`remove` was persisted, and once at start-up: workers reconcile
    /// what they run with the watch list.
    pub(super) async fn watches_changed(&mut self) {
        // Each reads the watch list from the store itself; the order does not matter.
        self.update_watcher().await;
        self.reconcile_recordings().await;
        self.chat_watches_changed().await;
    }
}
