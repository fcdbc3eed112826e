//! The playlist loop of one resolution: reload on the wall clock, queue what is new, refresh
//! the token and playlist when it fails, expires or stalls.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::super::fetch::{self, FetchError, MediaSource, PLAYLIST_ATTEMPTS};
use super::super::gaps::{cap, MAX_TEXT};
use super::super::playlist::{self, MediaPlaylist};
use super::stall::StallStage;
use super::{sleep_until_some, Session, TakeEnd};

/// Shortest wait between two playlist reloads.
const MIN_RELOAD: Duration = Duration::from_millis(100);
/// Twitch cuts media playlists after about 24 h (403); fetch a new token before that.
const TOKEN_LIFETIME: Duration = Duration::from_secs(23 * 3600 + 40 * 60);
/// Shortest time between two renewals of a token that states its expiry.
const TOKEN_RECHECK: Duration = Duration::from_secs(2);
/// Backoff between refreshes (token + master playlist) that did not give a working playlist:
/// a playlist that keeps answering 403 must not make recbot hammer GQL and usher.
const REFRESH_BASE: Duration = Duration::from_millis(500);
const REFRESH_CAP: Duration = Duration::from_secs(30);

/// The state of polling one resolution, from one reload to the next.
#[derive(Debug)]
pub(super) struct PlaylistPoll {
    /// The media playlist polled; a refresh replaces it.
    media: MediaSource,
    /// When `media` was resolved (its token expires).
    resolved_at: Instant,
    /// When the last load listed a segment not seen before.
    pub(super) last_new: Instant,
    pub(super) stall: StallStage,
    /// How long without a new segment counts as a stall (grows with the target duration).
    pub(super) stall_limit: Duration,
    next_reload: Instant,
    /// Failed reloads in a row (not counting 403/404/410, which refresh at once).
    failures: u32,
    /// Refreshes in a row that did not give a playlist that loads.
    refreshes: u32,
}

/// The same rendition: its name and format (a refresh may give another address for it).
fn same_rendition(a: &MediaSource, b: &MediaSource) -> bool {
    (&a.quality, a.codec, a.resolution, a.fps) == (&b.quality, b.codec, b.resolution, b.fps)
}

impl PlaylistPoll {
    fn new(media: MediaSource, stall_limit: Duration) -> PlaylistPoll {
        let now = Instant::now();
        PlaylistPoll {
            media,
            resolved_at: now,
            last_new: now,
            stall: StallStage::Fine,
            stall_limit,
            next_reload: now,
            failures: 0,
            refreshes: 0,
        }
    }
}

/// What one reload asks for besides queueing its segments.
#[derive(Debug, Default)]
struct Reloaded {
    /// A new token and master playlist are needed.
    refresh: bool,
    /// Why the playlist did not load, for the report when recording gives up.
    last_error: Option<String>,
}

impl Session {
    /// Polls the playlist of one resolution until it ends, queueing its segments.
    pub(super) async fn take_playlist(&mut self, cancel: &CancellationToken) -> TakeEnd {
        let media = match self.resolve(cancel).await {
            Ok(m) => m,
            Err(end) => return end,
        };
        self.adopt(&media).await;
        let mut poll = PlaylistPoll::new(media, self.rec.settings.stall_timeout);
        loop {
            if let Err(end) = self.poll_once(&mut poll, cancel).await {
                return end;
            }
        }
    }

    /// Waits for the next reload, reloads, and refreshes when that is needed.
    async fn poll_once(
        &mut self,
        poll: &mut PlaylistPoll,
        cancel: &CancellationToken,
    ) -> Result<(), TakeEnd> {
        self.until_reload(poll.next_reload, cancel).await?;
        let started = Instant::now();
        let fetched = match fetch::get(&self.rec.http, &poll.media.url, None, cancel).await {
            Ok(body) => playlist::parse_media(&body).map_err(FetchError::from),
            Err(e) => Err(e),
        };
        let mut reloaded = self.reloaded(poll, fetched, started).await?;
        if poll.resolved_at.elapsed() >= TOKEN_LIFETIME {
            reloaded.refresh = true;
        }
        // A token that states its expiry (Chzzk's) is renewed before it: the same rendition
        // at a fresh address, continued at the next segment. Not more often than
        // TOKEN_RECHECK, in case the fresh one is due as well.
        if poll
            .media
            .refresh_at
            .is_some_and(|at| chrono::Utc::now() >= at)
            && poll.resolved_at.elapsed() >= TOKEN_RECHECK
        {
            debug!(login = %self.spec.login, "the playlist token is due; renewing it");
            reloaded.refresh = true;
        }
        // A viewer login that came (or changed) may unlock better renditions: ask again now.
        // One that went keeps the playlist already signed, until it must be refreshed anyway.
        let viewer = self.stream.viewer();
        if viewer.is_some() && viewer != poll.media.viewer {
            debug!(login = %self.spec.login, "the Twitch viewer login changed; asking for the renditions again");
            reloaded.refresh = true;
        }
        if self
            .watch_stall(poll, reloaded.last_error.as_deref())
            .await?
        {
            reloaded.refresh = true;
        }
        if reloaded.refresh {
            self.refresh(poll, cancel).await?;
        }
        Ok(())
    }

    /// Serves control messages, finished downloads, look-ahead retries and gap notices until
    /// the reload is due.
    async fn until_reload(
        &mut self,
        next_reload: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), TakeEnd> {
        loop {
            let wake = self.queue.next_wake();
            let notice = self.notices.due_at();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.note_stop();
                    return Err(TakeEnd::Stop);
                }
                Some(c) = self.control.recv() => {
                    if let Some(end) = self.control(c) {
                        return Err(end);
                    }
                }
                _ = self.queue.next_finished(), if self.queue.downloading() => {
                    self.take_in().await?;
                }
                _ = sleep_until_some(wake), if wake.is_some() => {
                    self.queue.start_due();
                }
                _ = sleep_until_some(notice), if notice.is_some() => {
                    self.flush_notice().await;
                }
                _ = tokio::time::sleep_until(next_reload) => return Ok(()),
            }
        }
    }

    /// Acts on one reload: a loaded playlist is queued and taken in and sets the next reload;
    /// a failure is retried with backoff or asks for a refresh.
    async fn reloaded(
        &mut self,
        poll: &mut PlaylistPoll,
        fetched: Result<MediaPlaylist, FetchError>,
        started: Instant,
    ) -> Result<Reloaded, TakeEnd> {
        let mut reloaded = Reloaded::default();
        match fetched {
            Err(FetchError::Cancelled) => {
                self.note_stop();
                return Err(TakeEnd::Stop);
            }
            Err(FetchError::Playlist(e @ playlist::PlaylistError::Encrypted(_))) => {
                return Err(TakeEnd::Failed(e.to_string()));
            }
            Ok(pl) => {
                poll.failures = 0;
                poll.refreshes = 0;
                self.refused = None;
                let new = self.process(&pl, &poll.media.url);
                self.queue.listed(
                    pl.segments.first().map(|s| s.sequence),
                    pl.segments.last().map(|s| s.sequence),
                    pl.end_list,
                );
                self.take_in().await?;
                if new {
                    poll.last_new = Instant::now();
                    poll.stall = StallStage::Fine;
                }
                if pl.end_list {
                    return Err(TakeEnd::Ended("the playlist ended (EXT-X-ENDLIST)".into()));
                }
                let target = if pl.target_duration > 0.0 {
                    pl.target_duration
                } else {
                    self.cursor.last_duration.max(1.0)
                };
                let target = Duration::from_secs_f64(target);
                poll.stall_limit = self.rec.settings.stall_timeout.max(target * 3);
                let wait = if new { target } else { target / 2 };
                poll.next_reload = started + wait.max(MIN_RELOAD);
            }
            Err(e @ FetchError::Status(403 | 404 | 410)) => {
                reloaded.last_error = Some(e.to_string());
                reloaded.refresh = true;
            }
            Err(e) => {
                reloaded.last_error = Some(e.to_string());
                poll.failures += 1;
                let failures = poll.failures;
                debug!(login = %self.spec.login, error = %e, failures, "playlist reload failed");
                if poll.failures >= PLAYLIST_ATTEMPTS {
                    poll.failures = 0;
                    reloaded.refresh = true;
                } else {
                    poll.next_reload = Instant::now()
                        + crate::backoff::exponential(
                            poll.failures - 1,
                            fetch::RETRY_BASE,
                            fetch::RETRY_CAP,
                        );
                }
            }
        }
        Ok(reloaded)
    }

    /// A new token and master playlist; the cursor keeps the media sequence, so the new
    /// playlist continues where the old one stopped.
    async fn refresh(
        &mut self,
        poll: &mut PlaylistPoll,
        cancel: &CancellationToken,
    ) -> Result<(), TakeEnd> {
        // The first refresh in a row is immediate (an expired token: no gap); more
        // back off, so a playlist that keeps failing is not hammered.
        let wait = match poll.refreshes {
            0 => Duration::ZERO,
            n => crate::backoff::exponential(n - 1, REFRESH_BASE, REFRESH_CAP),
        };
        poll.refreshes = poll.refreshes.saturating_add(1);
        let refreshes = poll.refreshes;
        match self.resolve(cancel).await {
            Ok(m) if !same_rendition(&m, &poll.media) => {
                let why = format!("{} offered instead of {}", m.quality, poll.media.quality);
                self.resolved = Some(m);
                return Err(TakeEnd::RenditionChanged(why));
            }
            Ok(m) => {
                debug!(login = %self.spec.login, refreshes, "playlist refreshed");
                poll.resolved_at = Instant::now();
                self.refused = None;
                poll.media = m;
                poll.next_reload = Instant::now() + wait;
            }
            // A network blip or a passing refusal: keep polling the playlist we have;
            // the stall watchdog bounds how long.
            Err(TakeEnd::Unreachable(why)) => {
                debug!(login = %self.spec.login, why, "refresh failed; polling on");
                poll.next_reload = Instant::now() + wait.max(Duration::from_secs(1));
            }
            // Twitch refusing a token can pass (a day of integrity checks): keep
            // polling, and if it lasts, the stall watchdog fails with this reason.
            Err(TakeEnd::Failed(why)) => {
                let why = cap(&why, MAX_TEXT);
                warn!(login = %self.spec.login, why, "refresh refused; polling on");
                self.refused = Some(why);
                poll.next_reload = Instant::now() + wait.max(Duration::from_secs(1));
            }
            Err(end) => return Err(end),
        }
        Ok(())
    }
}
