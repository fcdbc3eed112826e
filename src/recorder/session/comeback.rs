//! After the playlist went away: probing for the stream until the offline grace is over.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;
use url::Url;

use super::super::fetch::{self, FetchError, Resolved};
use super::super::playlist;
use super::super::Control;
use super::{Session, TakeEnd};

impl Session {
    /// After the playlist went away: probe for the stream until the grace period is over.
    /// `true` when it is back (same session, next part).
    pub(super) async fn await_comeback(&mut self, cancel: &CancellationToken) -> bool {
        let grace = self.rec.settings.offline_grace;
        let deadline = Instant::now() + grace;
        let probe_every = (grace / 6).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.note_stop();
                    return false;
                }
                Some(c) = self.control.recv() => {
                    let live = c == Control::Live;
                    if self.control(c).is_some() {
                        return false;
                    }
                    if live {
                        return true;
                    }
                }
                _ = tokio::time::sleep(probe_every.min(deadline - now)) => {
                    let found = self
                        .stream
                        .resolve(
                            &self.rec.http,
                            self.spec.quality,
                            &self.rec.settings.codecs,
                            cancel,
                        )
                        .await;
                    match found {
                        Ok(Resolved::Live(m, _)) => {
                            if let Err(TakeEnd::NewBroadcast(why)) = self.check_broadcast(&m) {
                                // Another broadcast is not this one coming back.
                                self.new_broadcast(&why);
                                return false;
                            }
                            if self.has_new_video(&m.url, cancel).await {
                                info!(login = %self.spec.login, "the stream is back; recording the next part");
                                self.resolved = Some(m);
                                self.offline_since = None;
                                return true;
                            }
                        }
                        Err(FetchError::Cancelled) => {
                            self.note_stop();
                            return false;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether the media playlist at `url` has segments not recorded yet (an ended playlist
    /// that still answers is not a comeback).
    async fn has_new_video(&self, url: &Url, cancel: &CancellationToken) -> bool {
        let Ok(body) = fetch::get(&self.rec.http, url, None, cancel).await else {
            return false;
        };
        let Ok(pl) = playlist::parse_media(&body) else {
            return false;
        };
        let Some(last) = pl.segments.last() else {
            return false;
        };
        match (
            self.cursor.next_seq,
            last.program_date_time,
            self.cursor.last_pdt,
        ) {
            (_, Some(at), Some(seen)) => at > seen,
            (Some(next), _, _) => last.sequence >= next || last.sequence + 1 < next,
            _ => true,
        }
    }
}
