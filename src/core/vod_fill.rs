//! Core glue for filling gaps from Twitch VODs (invariant 17: the core sequences, a worker
//! does the I/O). A Twitch session that ends with gaps gets a pending fill in the store
//! (`vod_fills`) before its worker starts; a restart starts the pending ones again (the wait
//! for the VOD still counts from the first decision). Each `GapFilled` becomes an upload job
//! of its own (a part may be on YouTube already when the VOD is ready, so fills are never
//! appended); `VodFillDone` ends the pending fill.

use chrono::{TimeDelta, Utc};
use recbot_commands::{Login, Source};
use tracing::{error, info, warn};

use super::store::NewUploadJob;
use super::Core;
use crate::archive::after::Plan;
use crate::archive::layout::{is_fill_file, sidecar_of_fill};
use crate::archive::sidecar::Sidecar;
use crate::work::{Cleanup, JobState};

/// How many recent upload jobs are looked through for a finished fill's parts.
const AFTER_FILL_JOBS: i64 = 1000;
use crate::event::{Event, EventKind};
use crate::recorder::vod_fill::FillJob;

impl Core {
    /// Reactions to a session's end and to the fill worker's events (after they are
    /// persisted).
    pub(super) async fn react_vod_fill(&mut self, event: &Event) {
        let (Some(login), Some(session)) = (&event.login, event.session) else {
            return;
        };
        match &event.kind {
            EventKind::RecordingFinished { gaps, .. } => {
                self.decide_vod_fill(login, session, *gaps).await
            }
            EventKind::GapFilled { file, .. } => self.queue_fill_upload(event, login, file).await,
            EventKind::VodFillDone { .. } => {
                if let Err(e) = self.store.remove_vod_fill(session).await {
                    error!(session, error = %e, "cannot forget the finished VOD fill");
                }
                self.after_upload_once_filled(session).await;
            }
            _ => {}
        }
    }

    /// A Twitch session that ended with gaps gets its fill: persisted, then started.
    async fn decide_vod_fill(&mut self, login: &Login, session: i64, gaps: u32) {
        if !self.config.recording.vod_fill {
            return;
        }
        let stored_gaps = self
            .store
            .session_totals(session)
            .await
            .map(|t| t.gaps)
            .unwrap_or(0);
        if gaps == 0 && stored_gaps == 0 {
            return;
        }
        match self.store.watch(login).await {
            Ok(Some(w)) if w.source == Source::Twitch => {}
            Ok(_) => return,
            Err(e) => {
                error!(%login, error = %e, "cannot read the watch list; no VOD fill");
                return;
            }
        }
        match self
            .store
            .add_vod_fill(session, login.as_str(), Utc::now())
            .await
        {
            Ok(true) => self.start_vod_fill(login.clone(), session).await,
            Ok(false) => {}
            Err(e) => error!(session, error = %e, "cannot persist the VOD fill; not filling"),
        }
    }

    /// At start-up: the fills a stop or crash interrupted run again.
    pub(super) async fn resume_vod_fills(&mut self) {
        let rows = match self.store.vod_fills().await {
            Ok(rows) => rows,
            Err(e) => {
                error!(error = %e, "cannot read pending VOD fills");
                return;
            }
        };
        for row in rows {
            let Ok(login) = Login::parse(&row.login) else {
                warn!(login = %row.login, "a pending VOD fill names no valid login; dropped");
                let _ = self.store.remove_vod_fill(row.session).await;
                continue;
            };
            info!(%login, session = row.session, "resuming the VOD fill from before the restart");
            self.start_vod_fill(login, row.session).await;
        }
    }

    /// Hands the session's finished parts to the fill worker.
    async fn start_vod_fill(&mut self, login: Login, session: i64) {
        let created = match self.store.vod_fills().await {
            Ok(rows) => rows
                .into_iter()
                .find(|r| r.session == session)
                .map(|r| r.created_at),
            Err(e) => {
                error!(error = %e, "cannot read pending VOD fills");
                return;
            }
        };
        let (Some(created), Ok(parts), Ok(row)) = (
            created,
            self.store.parts_of(session).await,
            self.store.session(session).await,
        ) else {
            error!(session, "cannot read the session to fill");
            return;
        };
        let wait = TimeDelta::milliseconds(
            (self.config.recording.vod_fill_wait_minutes * 60_000.0) as i64,
        );
        let job = FillJob {
            login,
            session,
            stream_id: row.and_then(|r| r.stream_id),
            parts: parts
                .into_iter()
                .filter(|p| p.state == "finished")
                .map(|p| p.path)
                .collect(),
            deadline: created + wait,
        };
        if !self.recordings.recorder.start_fill(job) {
            // VOD fill was switched off since: the pending fill is dropped.
            let _ = self.store.remove_vod_fill(session).await;
        }
    }

    /// After-upload leaves a part alone while its fill may add files (`vod_fill_done`). Once
    /// the fill is over, a part whose uploads (its own and its fills') are all done has no
    /// upload left to take that step: its job's step is run again now, by the upload worker
    /// (as a cleanup due at once: processed on YouTube, then kept/moved/deleted together).
    async fn after_upload_once_filled(&mut self, session: i64) {
        if Plan::from_config(&self.config).is_none() {
            return;
        }
        let jobs = match self.store.upload_jobs(AFTER_FILL_JOBS).await {
            Ok(jobs) => jobs,
            Err(e) => {
                error!(session, error = %e, "cannot read upload jobs after the VOD fill");
                return;
            }
        };
        let now = Utc::now();
        let timeout = TimeDelta::milliseconds(
            (self.config.youtube.processing_timeout_hours * 3_600_000.0) as i64,
        );
        let mut woke = false;
        for mut job in jobs {
            let part = job.session == Some(session)
                && job.state == JobState::Finished
                && job.cleanup != Some(Cleanup::Waiting)
                && !is_fill_file(&job.path);
            let Some(sidecar) = job.sidecar.clone().filter(|_| part) else {
                continue;
            };
            match Sidecar::read(&sidecar).await {
                Ok(s) if s.all_uploaded() => {}
                // Moved already, or a fill's upload is still to come (it takes the step).
                _ => continue,
            }
            job.cleanup = Some(Cleanup::Waiting);
            job.cleanup_checks = 0;
            job.cleanup_at = Some(now);
            job.cleanup_until = Some(now + timeout);
            match self.store.save_upload_job(&job).await {
                Ok(()) => woke = true,
                Err(e) => error!(job = job.id, error = %e, "cannot schedule the after-upload step"),
            }
        }
        if woke {
            self.wake_uploads();
        }
    }

    /// A fill is uploaded as its own video when its login uploads (queued at once: it has
    /// no chat file of its own).
    async fn queue_fill_upload(&mut self, event: &Event, login: &Login, file: &std::path::Path) {
        if !self.config.youtube.enabled {
            return;
        }
        match self.store.watch(login).await {
            Ok(Some(w)) if w.upload => {}
            _ => return,
        }
        let bytes = tokio::fs::metadata(file)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let job = NewUploadJob {
            login: Some(login.clone()),
            session: event.session,
            path: file.to_path_buf(),
            sidecar: sidecar_of_fill(file),
            total_bytes: bytes,
            node: self.node_id(),
        };
        match self.store.insert_upload_job(&job).await {
            Ok(Some(id)) => self.announce_queued(login, event.session, id, file),
            Ok(None) => {}
            Err(e) => error!(file = %file.display(), error = %e, "cannot queue the fill's upload"),
        }
    }
}
