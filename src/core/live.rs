//! Core side of live detection: starts the watcher, keeps its wanted set equal to the watched
//! Twitch logins, and shows what it knows in `status`.

use recbot_commands::{Login, Source};
use tracing::error;

use super::Core;
use crate::frontend::render;
use crate::twitch::watcher;

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
