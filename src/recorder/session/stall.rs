//! The stall watchdog of the playlist loop, and the end of the offline grace: when no new
//! segment came for too long, first a refresh, then a `RecordingStalled` notice, then the
//! take ends (failed with the refusal's reason when refreshes were refused all along).

use tracing::info;

use super::poll::PlaylistPoll;
use super::{Session, TakeEnd};
use crate::event::EventKind;

/// How far the stall watchdog has gone since the last new segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StallStage {
    /// New segments keep coming.
    Fine,
    /// None for `stall_limit`: the token and playlist were refreshed.
    Refreshed,
    /// None for twice `stall_limit`: `RecordingStalled` was sent.
    Reported,
}

impl Session {
    /// After a reload: ends the take when the core said offline and the grace is over, or
    /// when the stall went on past its last stage. `Ok(true)` asks for a refresh.
    /// `last_error` is why the last reload failed, if it did.
    pub(super) async fn watch_stall(
        &mut self,
        poll: &mut PlaylistPoll,
        last_error: Option<&str>,
    ) -> Result<bool, TakeEnd> {
        let stalled_for = poll.last_new.elapsed();
        if let Some(since) = self.offline_since {
            if since.elapsed() >= self.rec.settings.offline_grace && poll.last_new <= since {
                return Err(TakeEnd::Ended("offline past the grace period".into()));
            }
        }
        let limit = poll.stall_limit;
        match poll.stall {
            StallStage::Fine if stalled_for >= limit => {
                info!(login = %self.spec.login, "no new segment for {stalled_for:?}; new token and playlist");
                poll.stall = StallStage::Refreshed;
                return Ok(true);
            }
            StallStage::Refreshed if stalled_for >= limit * 2 => {
                poll.stall = StallStage::Reported;
                self.emit(EventKind::RecordingStalled {
                    seconds: stalled_for.as_secs(),
                })
                .await;
            }
            StallStage::Reported if stalled_for >= limit * 2 + self.rec.settings.offline_grace => {
                // Refreshes refused all along: that is why, and a retry will not fix it.
                if let Some(reason) = self.refused.take() {
                    return Err(TakeEnd::Failed(reason));
                }
                let answer = last_error
                    .map(|e| format!(" (the playlist answers {e})"))
                    .unwrap_or_default();
                return Err(TakeEnd::Stalled(format!(
                    "no new video for {}s{answer}",
                    stalled_for.as_secs()
                )));
            }
            _ => {}
        }
        Ok(false)
    }
}
