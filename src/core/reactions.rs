//! Chained reactions: what the core does next because of an event (live → record, part
//! finished → chat file → upload → after-upload) or because the watch list changed (tell
//! workers the new wanted sets). One place, so the chains can be tested without the workers'
//! I/O.

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
        // A Chzzk login's chat room runs while it is recorded (its chat channel and token are
        // the broadcast's).
        self.platform_chat_follows(event).await;
        // A finished part, in this order: (1) its upload job is persisted, waiting for the
        // part's chat file when the chat logger writes one (else queued at once); (2) the chat
        // logger is asked for the chat file; (3) its answer, `ChatSaved` or `ChatSaveFailed`
        // (a later event), releases the job; (4) the upload worker uploads it and applies
        // `after_upload` to video, sidecar and chat file together as the job's last step. The
        // job is persisted before the chat logger is asked, so an answer always finds it.
        // With `[postprocess]`, the part's post-processing job is persisted and started first:
        // its upload job, inserted next, waits for it too; `PostFinished` hands it the MP4 and
        // `PostFailed` the part as recorded.
        self.queue_post(event).await;
        self.post_answered(event).await;
        let chat_file = self.writes_chat_file(event).await;
        let job = self.queue_upload(event, chat_file).await;
        if chat_file {
            self.ask_chat_file(event, job).await;
        }
        self.chat_file_answered(event).await;
        // A session's end may start its VOD fill (persisted first); a fill's `GapFilled`
        // becomes its own upload job; `VodFillDone` ends the pending fill.
        self.react_vod_fill(event).await;
        // A session's end starts its summary chart (a worker; nothing waits for it).
        self.react_summary(event).await;
    }

    /// Runs after an `add`/`remove` was persisted, and once at start-up: workers reconcile
    /// what they run with the watch list.
    pub(super) async fn watches_changed(&mut self) {
        // With several nodes: a login added here is taken (or a removed one released) now.
        if let Some(node) = &self.node {
            node.wake();
        }
        // Each reads the watch list from the store itself; the order does not matter.
        self.update_watcher().await;
        self.update_chzzk().await;
        self.reconcile_recordings().await;
        self.chat_watches_changed().await;
    }
}
