//! The core's facts for `/metrics`, as data ([`CoreGauges`]): gathered at scrape time by one
//! request to the core's loop (watch list, live logins, recordings, upload counts, quota,
//! outbox cursors), not tracked a second time; free space is measured after the loop answered.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use recbot_commands::Source;

use super::outbox::OutboxRequest;
use super::reply::RecordingNow;
use super::{Core, CoreHandle};
use crate::metrics::CoreGauges;
use crate::upload::quota;

impl CoreHandle {
    /// The core's gauges now, or `None` when the core has stopped or did not answer within
    /// `within`.
    pub async fn gauges(&self, within: Duration) -> Option<CoreGauges> {
        let asked = self.ask_within(within, |reply| OutboxRequest::Gauges { reply });
        let (mut gauges, recordings) = match asked.await {
            Ok(Some(Ok(answer))) => answer,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %format!("{e:#}"), "metrics: cannot read the core's state");
                return None;
            }
            _ => return None,
        };
        // statvfs, off the core's loop (on the blocking pool).
        gauges.disk_free_bytes = crate::recorder::disk::usage(&recordings)
            .await
            .ok()
            .map(|u| u.free_bytes);
        Some(gauges)
    }
}

impl Core {
    /// The gauges the core knows (all but free space) and the recordings folder to measure.
    pub(super) async fn gauges(&self) -> Result<(CoreGauges, PathBuf)> {
        let watches = self.store.watches().await?;
        let live = self
            .watcher
            .as_ref()
            .map(|w| w.with_status(|s| s.live.keys().cloned().collect::<Vec<_>>()));
        let watched = watches
            .iter()
            .map(|w| {
                let on = match w.source {
                    Source::Twitch => live.as_ref().is_some_and(|l| l.contains(&w.name)),
                    Source::Hls { .. } | Source::Chzzk | Source::Bilibili => matches!(
                        self.recording_now(&w.name),
                        Some(RecordingNow::Recording { .. })
                    ),
                };
                (w.name.as_str().to_string(), on)
            })
            .collect();
        let uploads = self
            .store
            .upload_counts()
            .await?
            .into_iter()
            .map(|(state, n)| (state.as_str(), n))
            .collect();
        let day = quota::pacific_day(chrono::Utc::now());
        let gauges = CoreGauges {
            watched,
            recordings_active: self.recordings_running() as u64,
            uploads,
            quota_used: u64::from(self.store.quota_used(day).await?),
            outbox_backlog: self.outbox_backlog().await?,
            disk_free_bytes: None,
        };
        Ok((gauges, self.config.storage.recordings_dir()))
    }

    /// Event-log entries after each outbox reader's cursor (a reader that never ran has none
    /// yet: it starts at this run's `ServiceStarted`).
    async fn outbox_backlog(&self) -> Result<Vec<(String, u64)>> {
        // The names the readers open their cursors with (`frontend/delivery.rs`, `email.rs`,
        // `webhook.rs`).
        let mut readers: Vec<String> = Vec::new();
        if self.config.slack.is_configured() {
            readers.push("slack".into());
        }
        if self.config.discord.is_configured() {
            readers.push("discord".into());
        }
        if self.config.email.is_configured() {
            readers.push("email".into());
        }
        readers.extend(self.config.webhooks.iter().map(|w| w.outbox_key()));
        let newest = self.store.newest_event_id().await?;
        let mut backlog = Vec::with_capacity(readers.len());
        for reader in readers {
            let cursor = self.store.outbox_cursor(&reader).await?;
            let behind = cursor.map_or(0, |c| newest.saturating_sub(c).max(0) as u64);
            backlog.push((reader, behind));
        }
        Ok(backlog)
    }
}
