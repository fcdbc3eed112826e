//! Core side of the summary charts: stream samples persisted at each live check of a login
//! being recorded (what the watcher saw: viewers, title, game), and, when a session ends, the
//! chart worker (`summary/`) started with what the state database knows of it. Samples also
//! give `status` the session's peak.

use recbot_commands::Login;
use tracing::error;

use super::store::StreamSample;
use super::Core;
use crate::archive::after::Plan;
use crate::event::{Event, EventKind};
use crate::summary::{PartFile, Sample, SummaryJob};

impl Core {
    /// The watcher's status changed: when it made a new check, one sample per live login it
    /// checked that has a recording session now. Nothing for offline logins or logins not
    /// being recorded; a check seen twice (the status changes for other reasons too) is
    /// sampled once.
    pub(super) async fn sample_live(&mut self) {
        let Some(watcher) = &self.watcher else { return };
        let checked = watcher.with_status(|s| {
            let c = s.checked.as_ref()?;
            let live: Vec<_> = c
                .live
                .iter()
                .filter_map(|l| Some((l.clone(), s.live.get(l)?.clone())))
                .collect();
            Some((c.seq, c.at, live))
        });
        let Some((seq, at, live)) = checked else {
            return;
        };
        if seq <= self.sampled_check {
            return;
        }
        self.sampled_check = seq;
        for (login, info) in live {
            let Some(session) = self.session_of(&login) else {
                continue;
            };
            let sample = StreamSample {
                session,
                at,
                viewers: info.viewers,
                title: info.title,
                game: info.game,
            };
            if let Err(e) = self.store.add_stream_sample(&sample).await {
                error!(%login, error = %e, "cannot persist a stream sample");
            }
        }
    }

    /// The peak of viewers of `login`'s session being recorded: its samples' highest, or
    /// `now` when higher (a check not sampled yet).
    pub(super) async fn peak_viewers(&self, login: &Login, now: Option<u64>) -> Option<u64> {
        let session = self.session_of(login)?;
        let sampled = match self.store.peak_viewers(session).await {
            Ok(peak) => peak,
            Err(e) => {
                error!(%login, error = %e, "cannot read the session's peak viewers");
                None
            }
        };
        sampled.max(now)
    }

    /// The session `login`'s running recording belongs to.
    fn session_of(&self, login: &Login) -> Option<i64> {
        self.recordings.session_of(login)
    }

    /// A session ended (`RecordingFinished`): its chart is made by a worker, from its finished
    /// parts and samples. Runs after the session's end was persisted.
    pub(super) async fn react_summary(&mut self, event: &Event) {
        let (EventKind::RecordingFinished { .. }, Some(session), Some(login)) =
            (&event.kind, event.session, &event.login)
        else {
            return;
        };
        if !self.config.summary.enabled {
            return;
        }
        match self.summary_job(login, session, event).await {
            Ok(Some(job)) => {
                self.workers.spawn(crate::summary::run(job, self.events()));
            }
            Ok(None) => {}
            Err(e) => {
                error!(%login, session, error = %format!("{e:#}"), "cannot read the session for its summary chart");
                self.follow_up(
                    Event::now(
                        Some(login.clone()),
                        EventKind::SummaryFailed {
                            reason: format!("cannot read the session: {e:#}"),
                        },
                    )
                    .in_session(session),
                );
            }
        }
    }

    /// What the chart worker needs; `None` when the session recorded nothing.
    async fn summary_job(
        &self,
        login: &Login,
        session: i64,
        event: &Event,
    ) -> anyhow::Result<Option<SummaryJob>> {
        let Some(row) = self.store.session(session).await? else {
            return Ok(None);
        };
        let parts: Vec<PartFile> = self
            .store
            .parts_of(session)
            .await?
            .into_iter()
            .filter(|p| p.state == "finished")
            .map(|p| PartFile {
                number: p.part_no,
                path: p.path,
                started: p.started_at,
            })
            .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        let samples = self
            .store
            .stream_samples(session)
            .await?
            .into_iter()
            .map(|s| Sample {
                at: s.at,
                viewers: s.viewers,
                title: s.title,
                game: s.game,
            })
            .collect();
        let chat_dir = match self.chat.is_some() && self.logs_chat(login).await {
            true => Some(self.config.storage.chat_dir()),
            false => None,
        };
        Ok(Some(SummaryJob {
            login: login.clone(),
            session,
            title: row.title.unwrap_or_default(),
            started: row.started_at,
            ended: row.ended_at.unwrap_or(event.at),
            parts,
            samples,
            chat_dir,
            after: Plan::from_config(&self.config),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tests::test_config;
    use crate::recorder::RecordingHandle;
    use crate::twitch::watcher::{Checked, LiveInfo, WatcherHandle};
    use chrono::Utc;
    use tokio_util::sync::CancellationToken;

    fn info(viewers: u64, title: &str) -> LiveInfo {
        LiveInfo {
            stream_id: Some("s1".into()),
            display_name: None,
            title: title.into(),
            game: Some("Chess".into()),
            viewers: Some(viewers),
            started_at: None,
        }
    }

    #[tokio::test]
    async fn one_sample_per_live_check_of_a_recorded_login_and_none_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let (mut core, _handle) = Core::open(test_config(dir.path()), CancellationToken::new())
            .await
            .unwrap();
        let (watcher, status, _rechecks) = WatcherHandle::detached();
        core.watcher = Some(watcher);
        let (foo, bar) = (Login::parse("foo").unwrap(), Login::parse("bar").unwrap());
        let session = core
            .store
            .create_session("foo", None, "t", None, Utc::now())
            .await
            .unwrap();
        core.recordings
            .insert_for_tests(foo.clone(), RecordingHandle::detached(session));
        // foo (recorded) and bar (live, not recorded) checked.
        let check = |seq: u64, viewers: u64, title: &str| {
            status.send_modify(|s| {
                s.live.insert(foo.clone(), info(viewers, title));
                s.live.insert(bar.clone(), info(9_999, "bar"));
                s.checked = Some(Checked {
                    seq,
                    at: Utc::now(),
                    live: vec![foo.clone(), bar.clone()],
                });
            })
        };
        check(1, 10, "a");
        core.sample_live().await;
        // The status changed, but not by a new check: no second sample.
        status.send_modify(|s| s.interval_secs = 5);
        core.sample_live().await;
        check(2, 30, "b");
        core.sample_live().await;
        // A check in which foo was not live (offline, or not asked about): nothing.
        status.send_modify(|s| {
            s.checked = Some(Checked {
                seq: 3,
                at: Utc::now(),
                live: vec![bar.clone()],
            })
        });
        core.sample_live().await;
        let samples = core.store.stream_samples(session).await.unwrap();
        let seen: Vec<(Option<u64>, &str)> = samples
            .iter()
            .map(|s| (s.viewers, s.title.as_str()))
            .collect();
        assert_eq!(seen, [(Some(10), "a"), (Some(30), "b")]);
        assert_eq!(samples[0].game.as_deref(), Some("Chess"));
        // `status foo` shows the peak: the samples', or the count now when higher.
        assert_eq!(core.peak_viewers(&foo, Some(20)).await, Some(30));
        assert_eq!(core.peak_viewers(&foo, Some(50)).await, Some(50));
        assert_eq!(core.peak_viewers(&bar, Some(50)).await, None);
    }
}
