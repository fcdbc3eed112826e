//! Core side of live detection: starts the watcher, keeps its wanted set equal to the watched
//! Twitch logins, and shows what it knows in `status`.

use std::time::Duration;

use recbot_commands::{Login, Source};
use tracing::{error, info};

use super::Core;
use crate::event::{Event, EventKind};
use crate::frontend::render;
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
    let first = FIRST_RECHECK.max(poll_interval);
    first
        .saturating_mul(2u32.saturating_pow(restarts.min(16)))
        .min(MAX_RECHECK)
}

impl Core {
    pub(super) fn start_watcher(&mut self) {
        let shutdown = self.shutdown.child_token();
        let handle = watcher::spawn(&self.config, self.events(), shutdown, &self.workers);
        self.watcher = Some(handle);
    }

    /// Tells the watcher the current Twitch logins (HLS sources are the recorder's).
    pub(super) async fn update_watcher(&mut self) {
        let Some(watcher) = &self.watcher else { return };
        match self.store.watches().await {
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
    pub(super) fn react_live(&mut self, event: &Event) {
        let (Some(login), Some(watcher)) = (&event.login, &self.watcher) else {
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
            EventKind::RecordingFinished { .. } | EventKind::RecordingFailed { .. } => {
                if !watcher.status().live.contains_key(login) {
                    return;
                }
                let restarts = self.live_restarts.entry(login.clone()).or_insert(0);
                let interval = Duration::from_secs(self.config.twitch.poll_interval_secs());
                let delay = recheck_delay(*restarts, interval);
                *restarts += 1;
                info!(%login, delay_secs = delay.as_secs(), "recording ended while still live; checking again later");
                watcher.recheck(login.clone(), delay);
            }
            _ => {}
        }
    }

    /// `live detection: helix every 10 s, 2 of 5 live, last check 3 s ago (1 request)`
    pub(super) fn live_status_line(&self) -> Option<String> {
        let status = self.watcher.as_ref()?.status();
        let mut line = format!(
            "live detection: {} every {} s, {} of {} live",
            status.mode,
            status.interval_secs,
            status.live.len(),
            status.watched
        );
        if let Some(at) = status.last_check {
            let ago = (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0;
            line.push_str(&format!(
                ", last check {} ago ({} requests)",
                render::duration(ago),
                status.last_check_requests
            ));
        }
        if let Some(error) = status.last_error {
            line.push_str(&format!(", failing: {error}"));
        }
        Some(line)
    }

    /// `live since 10:00 UTC: "title" [game], 1234 viewers` for one login.
    pub(super) fn live_status_of(&self, login: &Login) -> Option<String> {
        let status = self.watcher.as_ref()?.status();
        let Some(info) = status.live.get(login) else {
            return Some(match &status.last_error {
                Some(error) => format!("live status unknown: the last check failed ({error})"),
                None => format!("not live (checked every {} s)", status.interval_secs),
            });
        };
        let mut line = String::from("live");
        if let Some(started) = info.started_at {
            line.push_str(&format!(" since {} UTC", started.format("%Y-%m-%d %H:%M")));
        }
        line.push_str(&format!(": \"{}\"", info.title));
        if let Some(game) = &info.game {
            line.push_str(&format!(" [{game}]"));
        }
        if let Some(viewers) = info.viewers {
            line.push_str(&format!(", {viewers} viewers"));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recheck_delays_double_up_to_half_an_hour() {
        let ten = Duration::from_secs(10);
        let got: Vec<u64> = (0..7).map(|n| recheck_delay(n, ten).as_secs()).collect();
        assert_eq!(got, [120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(recheck_delay(0, Duration::from_secs(300)).as_secs(), 300);
        assert_eq!(recheck_delay(u32::MAX, ten), MAX_RECHECK);
    }
}
