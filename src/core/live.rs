//! Core side of live detection: starts the watcher, keeps its wanted set equal to the watched
//! Twitch logins, and reports what it knows for `status`.

use std::time::Duration;

use recbot_commands::{Login, Source};
use tracing::{error, info};

use super::recording::EndedRecording;
use super::reply::{EventSubNow, LiveDetection, LiveOf};
use super::store::EVENTSUB_CONDUIT;
use super::Core;
use crate::event::{Event, EventKind};
use crate::twitch::eventsub::EventSubLink;
use crate::twitch::watcher;

/// First wait before a stream whose recording ended is looked at again; long enough for
/// Helix's live status (which can lag a minute) to have caught up with a stream that ended.
const FIRST_RECHECK: Duration = Duration::from_secs(120);
/// Longest wait between such rechecks (a stream recbot cannot record: subscriber-only, disk
/// full).
const MAX_RECHECK: Duration = Duration::from_secs(30 * 60);
/// A part at least this long means recording worked; the recheck backoff starts over.
const HEALTHY_PART_SECS: f64 = 300.0;

/// How long to wait before the `restarts`-th recheck of a stream still live after its
/// recording ended: doubling from `max(FIRST_RECHECK, poll interval)` up to `MAX_RECHECK`.
pub(super) fn recheck_delay(restarts: u32, poll_interval: Duration) -> Duration {
    crate::backoff::ceiling(restarts, FIRST_RECHECK.max(poll_interval), MAX_RECHECK)
}

impl Core {
    /// Starts the watcher; in EventSub mode with the conduit id stored before (a restart
    /// reuses the conduit and its subscriptions).
    pub(super) async fn start_watcher(&mut self) {
        let shutdown = self.shutdown.child_token();
        let conduit_id = match self.store.setting(EVENTSUB_CONDUIT).await {
            Ok(id) => id,
            Err(e) => {
                error!(error = %e, "cannot read the stored EventSub conduit id; making a new one");
                None
            }
        };
        let link = EventSubLink {
            calls: self.calls(),
            conduit_id,
        };
        let handle = watcher::spawn(
            &self.config,
            self.events(),
            Some(link),
            shutdown,
            &self.workers,
        );
        self.watcher = Some(handle);
    }

    /// Starts Chzzk's live detection (idle until a Chzzk channel is watched).
    pub(super) fn start_chzzk(&mut self) {
        let handle = crate::chzzk::detect::spawn(
            self.chzzk_api.clone(),
            &self.config.chzzk.poll_schedule,
            self.events(),
            self.shutdown.child_token(),
            &self.workers,
        );
        self.chzzk = Some(handle);
    }

    /// Tells Chzzk's live detection the watched Chzzk channels.
    pub(super) async fn update_chzzk(&mut self) {
        let Some(chzzk) = &self.chzzk else { return };
        match self.owned_watches().await {
            Ok(watches) => chzzk.set_wanted(
                watches
                    .into_iter()
                    .filter(|w| w.source == Source::Chzzk)
                    .map(|w| (w.name, w.added_at))
                    .collect(),
            ),
            Err(e) => error!(error = %e, "cannot read the watch list for Chzzk live detection"),
        }
    }

    /// Tells the watcher the current Twitch logins (HLS sources are the recorder's).
    pub(super) async fn update_watcher(&mut self) {
        let Some(watcher) = &self.watcher else { return };
        match self.owned_watches().await {
            Ok(watches) => watcher.set_wanted(
                watches
                    .into_iter()
                    .filter(|w| w.source == Source::Twitch)
                    .map(|w| w.name)
                    .collect(),
            ),
            Err(e) => error!(error = %e, "cannot read the watch list for the live watcher"),
        }
    }

    /// A recording ended or failed while the watcher still sees the stream live (the playlist
    /// vanished for longer than the grace period, Twitch refused it, the disk was full): ask
    /// the watcher to report it again later, with a growing delay, so recording resumes if
    /// the stream really goes on — without a tight loop on streams that cannot be recorded.
    /// One recheck per session end (its `RecordingFailed` is followed by `RecordingFinished`),
    /// none while a newer session of the login records, and at once when the recording ended
    /// because a new broadcast replaced it. `ended` is what `react_recording` returned for this
    /// event: what the recording of a `RecordingFinished` knew.
    pub(super) fn react_live(&mut self, event: &Event, ended: Option<EndedRecording>) {
        let Some(login) = &event.login else {
            return;
        };
        match &event.kind {
            EventKind::StreamOffline { .. } => {
                self.live_restarts.remove(login);
            }
            EventKind::RecordingPartFinished { duration_secs, .. }
                if *duration_secs >= HEALTHY_PART_SECS =>
            {
                self.live_restarts.remove(login);
            }
            EventKind::RecordingFinished { .. } => {
                self.recheck_after_end(login, event.session, ended.unwrap_or_default());
            }
            // A recording that never got a session (disk full, the session could not be
            // saved) has no RecordingFinished to come.
            EventKind::RecordingFailed { .. } if event.session.is_none() => {
                self.recheck_after_end(login, None, EndedRecording::default());
            }
            _ => {}
        }
    }

    fn recheck_after_end(&mut self, login: &Login, session: Option<i64>, ended: EndedRecording) {
        let Some(watcher) = &self.watcher else {
            return;
        };
        if !watcher.with_status(|s| s.live.contains_key(login)) {
            return;
        }
        if self.recordings.records_other_session(login, session) {
            // A newer broadcast of the login is being recorded: the watcher already reported
            // it, and the old one has nothing to come back to.
            return;
        }
        if ended.new_broadcast {
            // Not a failure: the new broadcast is looked at in the next check, whatever
            // stream the watcher knows.
            info!(%login, "a new broadcast replaced the recorded one; checking again now");
            watcher.recheck(login.clone(), None, Duration::ZERO);
            return;
        }
        let (stream, restarts) = self.live_restarts.entry(login.clone()).or_insert((None, 0));
        // Counted per broadcast: another stream's troubles do not delay this one.
        if let Some(id) = &ended.stream_id {
            if stream.as_ref().is_some_and(|s| s != id) {
                *restarts = 0;
            }
            *stream = Some(id.clone());
        }
        let interval = Duration::from_secs(self.config.twitch.poll_interval_secs());
        let delay = recheck_delay(*restarts, interval);
        *restarts += 1;
        info!(%login, delay_secs = delay.as_secs(), "recording ended while still live; checking again later");
        watcher.recheck(login.clone(), ended.stream_id, delay);
    }

    /// The live watcher as `status` shows it.
    pub(super) fn live_detection(&self) -> Option<LiveDetection> {
        let status = self.watcher.as_ref()?.status();
        let last_check = status.last_check.map(|at| {
            let ago = (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0;
            (ago, status.last_check_requests)
        });
        let eventsub = status.eventsub.map(|e| EventSubNow {
            up: e.up,
            held: e.held,
            wanted: e.wanted,
            full: e.full,
            last_notification: e
                .last_notification
                .map(|at| (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0),
            last_error: e.last_error,
        });
        Some(LiveDetection {
            mode: status.mode,
            interval_secs: status.interval_secs,
            live: status.live.len(),
            watched: status.watched,
            last_check,
            last_error: status.last_error,
            eventsub,
        })
    }

    /// One login's live state as `status <login>` shows it.
    pub(super) fn live_of(&self, login: &Login) -> Option<LiveOf> {
        let status = self.watcher.as_ref()?.status();
        let Some(info) = status.live.get(login) else {
            return Some(match status.last_error {
                Some(error) => LiveOf::Unknown { error },
                None => LiveOf::NotLive {
                    interval_secs: status.interval_secs,
                },
            });
        };
        Some(LiveOf::Live {
            started_at: info.started_at,
            title: info.title.clone(),
            game: info.game.clone(),
            viewers: info.viewers,
            peak_viewers: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tests::test_config;
    use crate::twitch::watcher::{LiveInfo, WatcherHandle};
    use tokio_util::sync::CancellationToken;

    fn finished() -> EventKind {
        EventKind::RecordingFinished {
            parts: 1,
            duration_secs: 10.0,
            bytes: 100,
            gaps: 0,
        }
    }

    #[tokio::test]
    async fn one_recheck_per_session_end_and_none_while_a_newer_session_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut core, _handle) = Core::open(test_config(dir.path()), CancellationToken::new())
            .await
            .unwrap();
        let (watcher, status, mut rechecks) = WatcherHandle::detached();
        let foo = Login::parse("foo").unwrap();
        status.send_modify(|s| {
            s.live.insert(
                foo.clone(),
                LiveInfo {
                    stream_id: Some("s1".into()),
                    display_name: None,
                    title: "t".into(),
                    game: None,
                    viewers: None,
                    started_at: None,
                },
            );
        });
        core.watcher = Some(watcher);
        // A recording failed: RecordingFailed, then RecordingFinished of the same session.
        let failed = EventKind::RecordingFailed {
            reason: "refused".into(),
        };
        core.react_live(&Event::now(Some(foo.clone()), failed).in_session(5), None);
        core.react_live(
            &Event::now(Some(foo.clone()), finished()).in_session(5),
            None,
        );
        let (login, _, _) = rechecks.try_recv().expect("a recheck");
        assert_eq!(login, foo);
        assert!(rechecks.try_recv().is_err(), "one recheck, not two");
        assert_eq!(core.live_restarts[&foo].1, 1);
        // A failure before any session existed (disk full) has no RecordingFinished to come.
        let refused = EventKind::RecordingFailed {
            reason: "disk full".into(),
        };
        core.react_live(&Event::now(Some(foo.clone()), refused), None);
        assert!(rechecks.try_recv().is_ok());
        assert_eq!(core.live_restarts[&foo].1, 2);
        // A newer session records foo when the old one's end arrives: no recheck.
        core.recordings
            .insert_for_tests(foo.clone(), crate::recorder::RecordingHandle::detached(6));
        core.react_live(
            &Event::now(Some(foo.clone()), finished()).in_session(5),
            None,
        );
        assert!(rechecks.try_recv().is_err());
        assert_eq!(core.live_restarts[&foo].1, 2);
        // Session 6's own end (its handle is still the active one). It ended because another
        // broadcast replaced it: checked again at once,
        // whatever stream is known, without counting as a failed restart.
        core.react_live(
            &Event::now(Some(foo.clone()), finished()).in_session(6),
            Some(EndedRecording {
                stream_id: Some("s1".into()),
                new_broadcast: true,
            }),
        );
        let (login, stream, due) = rechecks.try_recv().expect("a recheck");
        assert_eq!((login, stream), (foo.clone(), None));
        assert!(due <= tokio::time::Instant::now());
        assert_eq!(core.live_restarts[&foo].1, 2);
        // A normal end: the recheck names the stream that ended, later.
        core.react_live(
            &Event::now(Some(foo.clone()), finished()).in_session(6),
            Some(EndedRecording {
                stream_id: Some("s1".into()),
                new_broadcast: false,
            }),
        );
        let (_, stream, due) = rechecks.try_recv().expect("a recheck");
        assert_eq!(stream.as_deref(), Some("s1"));
        assert!(due > tokio::time::Instant::now());
        assert_eq!(core.live_restarts[&foo].1, 3);
        // Another broadcast's end: counted from the start again.
        core.react_live(
            &Event::now(Some(foo.clone()), finished()).in_session(6),
            Some(EndedRecording {
                stream_id: Some("s2".into()),
                new_broadcast: false,
            }),
        );
        let (_, stream, due) = rechecks.try_recv().expect("a recheck");
        assert_eq!(stream.as_deref(), Some("s2"));
        let first = recheck_delay(
            0,
            Duration::from_secs(core.config.twitch.poll_interval_secs()),
        );
        assert!(due <= tokio::time::Instant::now() + first);
        assert_eq!(core.live_restarts[&foo], (Some("s2".into()), 1));
    }

    #[test]
    fn recheck_delays_double_up_to_half_an_hour() {
        let ten = Duration::from_secs(10);
        let got: Vec<u64> = (0..7).map(|n| recheck_delay(n, ten).as_secs()).collect();
        assert_eq!(got, [120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(recheck_delay(0, Duration::from_secs(300)).as_secs(), 300);
        assert_eq!(recheck_delay(u32::MAX, ten), MAX_RECHECK);
    }
}
