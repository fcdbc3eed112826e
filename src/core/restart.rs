//! What a restart finds, at start-up: the disk guard starts, parts a crash (or `kill -9`)
//! left as `.part` are finished and announced (their part numbers are not reused), and
//! sessions left open wait for live detection to report the same stream within the resume
//! window (then they continue after their last recorded segment) and are closed otherwise.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use recbot_commands::Login;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::recording::Dormant;
use super::store::{PartRow, Store};
use super::Core;
use crate::archive::layout::part_path_of;
use crate::archive::sidecar::{Position, Sidecar};
use crate::event::{Event, EventKind};
use crate::recorder::{disk, recovery};
use crate::work::Events;

impl Core {
    /// At start-up: the disk guard starts, parts a crash left behind are finished, and sessions
    /// left open wait (a short while) to be continued.
    pub(super) async fn start_recording(&mut self) {
        self.recordings.tracker.spawn(disk::guard(
            self.config.storage.clone(),
            self.recordings.events.clone(),
            self.recordings.recorder.disk_announced(),
            self.recordings.shutdown.child_token(),
        ));
        let recovered = match self.recover_parts().await {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "crash recovery failed");
                HashMap::new()
            }
        };
        if let Err(e) = self.await_open_sessions(&recovered).await {
            error!(error = %e, "cannot read open sessions");
        }
    }

    /// Finishes the parts a crash left behind; returns, per session, the newest part
    /// recovered and where it stopped (their `RecordingPartFinished` is not stored yet).
    async fn recover_parts(&mut self) -> anyhow::Result<HashMap<i64, (u32, Option<Position>)>> {
        let mut recovered = HashMap::new();
        let mut files = self.leftover_parts().await?;
        for row in self.store.parts_in_progress().await? {
            let found = self.recover_row(row, &mut files).await?;
            note(&mut recovered, found);
        }
        for file in files {
            // Without a database row only a checkpoint says the recorder wrote it; anything
            // else named `.part` (a download, an older version's temporary) is not touched.
            let probe = file.clone();
            let ours =
                tokio::task::spawn_blocking(move || recovery::has_checkpoint_blocking(&probe))
                    .await
                    .unwrap_or(false);
            if !ours {
                warn!(path = %file.display(), "left alone: a .part file recbot's recorder did not write (no checkpoint, no database row)");
                continue;
            }
            let found = self.recover_one(file, None, None).await;
            note(&mut recovered, found);
        }
        Ok(recovered)
    }

    /// The `.part` files in the recordings folder, once the temporary files a crash left
    /// there and in the uploaded folder are removed.
    async fn leftover_parts(&self) -> anyhow::Result<HashSet<PathBuf>> {
        let scan = self.config.storage.recordings_dir();
        let uploaded = self.config.uploaded_dir();
        let files = tokio::task::spawn_blocking(move || {
            // Nothing writes there yet: every temporary file is a crash's leftover.
            for stale in recovery::remove_stale_temps_blocking(&scan)
                .into_iter()
                .chain(recovery::remove_stale_temps_blocking(&uploaded))
            {
                info!(path = %stale.display(), "removed a temporary file left by a crash");
            }
            recovery::find_parts_blocking(&scan)
        })
        .await?;
        Ok(files.into_iter().collect())
    }

    /// Finishes (or announces, or marks failed) a part the database says was being recorded;
    /// its `.part` file is taken out of `files`.
    async fn recover_row(
        &mut self,
        row: PartRow,
        files: &mut HashSet<PathBuf>,
    ) -> anyhow::Result<Option<(i64, u32, Option<Position>)>> {
        let session = self.store.session(row.session_id).await?;
        let known = session.as_ref().map(|s| recovery::Known {
            login: s.name.clone(),
            session: s.id,
            part: row.part_no,
            stream_id: s.stream_id.clone(),
            title: s.title.clone(),
            game: s.game.clone(),
            started: row.started_at,
        });
        let part_file = part_path_of(&row.path);
        let sidecar_path = Sidecar::path_for(&row.path);
        let target = if files.remove(&part_file) {
            Some(part_file)
        } else if row.path.exists() && !sidecar_path.exists() {
            Some(row.path.clone())
        } else {
            None
        };
        let login = session
            .as_ref()
            .and_then(|s| Login::from_stored(&s.name).ok());
        if let Some(target) = target {
            return Ok(self.recover_one(target, known, login).await);
        }
        if row.path.exists() {
            // Finished on disk, but the crash came before the core heard of it.
            match Sidecar::read(&sidecar_path).await {
                Ok(s) => self.announce_recovered(
                    login,
                    row.session_id,
                    row.path.clone(),
                    sidecar_path,
                    &s,
                ),
                Err(e) => warn!(error = %e, "unreadable sidecar"),
            }
        } else {
            warn!(path = %row.path.display(), "a part being recorded before the restart is gone");
            self.store
                .fail_part(row.session_id, row.part_no, Utc::now())
                .await?;
        }
        Ok(None)
    }

    /// Finishes one leftover; returns its session, part and last position when it belongs to
    /// a known session.
    async fn recover_one(
        &mut self,
        path: PathBuf,
        known: Option<recovery::Known>,
        login: Option<Login>,
    ) -> Option<(i64, u32, Option<Position>)> {
        let from_db = known.is_some();
        let row = known.as_ref().map(|k| (k.session, k.part));
        match recovery::recover(path.clone(), known).await {
            Ok(Some(r)) => {
                let session = r.sidecar.session;
                // Without a database row, trust the checkpoint only for a session we know.
                let known_session = from_db
                    || (session > 0 && self.store.session(session).await.ok().flatten().is_some());
                let login = login.or_else(|| Login::from_stored(&r.sidecar.login).ok());
                info!(file = %r.file.display(), "recovered a part left by a crash");
                let session = if known_session { session } else { 0 };
                self.announce_recovered(login, session, r.file, r.sidecar_path, &r.sidecar);
                (session > 0).then_some((session, r.sidecar.part, r.sidecar.last_segment))
            }
            Ok(None) => {
                info!(path = %path.display(), "removed a part left by a crash with no whole segment");
                // Its row would otherwise say `recording` until the next start.
                if let Some((session, part)) = row {
                    if let Err(e) = self.store.fail_part(session, part, Utc::now()).await {
                        error!(error = %e, "cannot mark an empty leftover part failed");
                    }
                }
                None
            }
            Err(e) => {
                error!(path = %path.display(), error = %e, "cannot recover a part left by a crash");
                // It stays for the next start; meanwhile its number is taken (a part of the
                // same number would be stored over it) and its segments are not fetched again.
                let taken = match recovery::checkpoint_of(&path).await {
                    Some(c) if c.session > 0 => {
                        let known =
                            from_db || self.store.session(c.session).await.ok().flatten().is_some();
                        known.then_some((c.session, c.part, c.last_segment))
                    }
                    _ => None,
                };
                self.follow_up(Event::now(
                    login,
                    EventKind::RecordingFailed {
                        reason: format!(
                            "cannot finish {} left by a crash ({e}); it is kept and tried again at the next start",
                            path.display()
                        ),
                    },
                ));
                taken
            }
        }
    }

    fn announce_recovered(
        &mut self,
        login: Option<Login>,
        session: i64,
        file: PathBuf,
        sidecar_path: PathBuf,
        s: &Sidecar,
    ) {
        let event = Event::now(
            login,
            EventKind::RecordingPartFinished {
                part: s.part,
                file,
                sidecar: sidecar_path,
                bytes: s.bytes,
                duration_secs: s.duration_secs,
                gaps: s.gaps.len() as u32,
                recovered: true,
            },
        );
        self.follow_up(if session > 0 {
            event.in_session(session)
        } else {
            event
        });
    }

    /// Sessions left open by the previous run wait for live detection to report the same
    /// stream; each is closed when the resume window passes without that. `recovered`: the
    /// newest part crash recovery just finished per session (not in the database yet).
    async fn await_open_sessions(
        &mut self,
        recovered: &HashMap<i64, (u32, Option<Position>)>,
    ) -> anyhow::Result<()> {
        let window = self.resume_window();
        for s in self.store.open_sessions().await? {
            let Ok(login) = Login::from_stored(&s.name) else {
                continue;
            };
            let parts = self.store.parts_of(s.id).await?;
            let stored = parts.iter().map(|p| p.part_no).max().unwrap_or(0);
            let newest = parts
                .iter()
                .filter(|p| p.state == "finished")
                .max_by_key(|p| p.part_no);
            let (next_part, resume) = match recovered.get(&s.id) {
                Some((part, position)) if *part >= stored => (*part + 1, *position),
                _ => {
                    // Where the newest finished part stopped, from its sidecar.
                    let position = match &newest {
                        Some(p) => Sidecar::read(&Sidecar::path_for(&p.path))
                            .await
                            .ok()
                            .and_then(|s| s.last_segment),
                        None => None,
                    };
                    (stored + 1, position)
                }
            };
            if let Ok(mut d) = self.recordings.dormant.lock() {
                d.insert(
                    login.clone(),
                    Dormant {
                        session: s.id,
                        stream_id: s.stream_id.clone(),
                        next_part,
                        resume,
                    },
                );
            }
            self.recordings.tracker.spawn(expire_dormant(
                login,
                s.id,
                window,
                self.recordings.dormant.clone(),
                self.store.clone(),
                self.recordings.events.clone(),
                self.recordings.shutdown.child_token(),
            ));
        }
        Ok(())
    }
}

/// Keeps, per session, the newest part recovered and where it stopped.
fn note(
    recovered: &mut HashMap<i64, (u32, Option<Position>)>,
    found: Option<(i64, u32, Option<Position>)>,
) {
    if let Some((session, part, position)) = found {
        let entry = recovered.entry(session).or_insert((0, None));
        if part >= entry.0 {
            *entry = (part, position);
        }
    }
}

/// Closes a session left open by the previous run once the resume window has passed without
/// live detection reporting the same stream.
async fn expire_dormant(
    login: Login,
    session: i64,
    after: Duration,
    dormant: Arc<Mutex<HashMap<Login, Dormant>>>,
    store: Store,
    events: Events,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(after) => {}
    }
    let still = dormant
        .lock()
        .ok()
        .map(|mut d| match d.get(&login) {
            Some(x) if x.session == session => d.remove(&login).is_some(),
            _ => false,
        })
        .unwrap_or(false);
    if !still {
        return;
    }
    let totals = store.session_totals(session).await.unwrap_or_default();
    let event = Event::now(
        Some(login),
        EventKind::RecordingFinished {
            parts: totals.parts,
            duration_secs: totals.duration_secs,
            bytes: totals.bytes,
            gaps: totals.gaps,
        },
    )
    .in_session(session);
    events.send(event).await;
}
