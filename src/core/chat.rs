//! Core glue for chat logging: starts the chat worker, tells it which rooms are wanted (watches
//! with source Twitch and chat on), hands it the Twitch user token and asks it for the chat
//! file of every finished recording part (`status.rs` asks it for its status). The worker never
//! reads the database; what it needs comes from here.
//!
//! A part's upload job waits for the part's chat file ([`ChatWaits`]): persisted as deferred
//! with wait reason `chat_file` until `[chat] save_timeout_secs` from now, released (queued)
//! when the chat logger answers `ChatSaved` or `ChatSaveFailed`. When no answer comes, the
//! upload worker takes the job once that time is due and says the chat file is missing. At
//! start-up the waits left are asked again, or released when chat logging is now off.

use std::path::{Path, PathBuf};

use chrono::Utc;
use recbot_commands::{Login, Source};
use tracing::{error, info, warn};

use super::Core;
use crate::archive::layout::chat_file;
use crate::archive::sidecar::Sidecar;
use crate::chat::{self, ChatSettings};
use crate::config::ChatLogin;
use crate::event::{Event, EventKind};
use crate::secret::Secret;
use crate::work::UploadJob;

/// Sources whose chat can be logged: Twitch IRC, Chzzk chat, Bilibili danmaku (not HLS).
pub(super) fn logs_chat_of(source: &Source) -> bool {
    matches!(source, Source::Twitch | Source::Chzzk | Source::Bilibili)
}

/// What `uploads` says of a job waiting for its chat file.
pub(super) const WAITING_FOR_CHAT: &str = "waiting for its chat file";

/// A finished part whose chat file was asked for and whose upload job waits for it.
#[derive(Debug, Clone, PartialEq)]
struct ChatWait {
    login: Login,
    session: Option<i64>,
    part: u32,
    /// Where the chat logger writes it (`ChatSaved` names it).
    chat_file: PathBuf,
    job: i64,
}

/// The upload jobs waiting for the chat logger's answer, in the order they were asked.
#[derive(Debug, Default)]
pub(super) struct ChatWaits(Vec<ChatWait>);

impl ChatWaits {
    /// The wait an answer is about: the one for its chat file (`ChatSaved`), else the oldest
    /// for its login, session and part (`ChatSaveFailed` names no file).
    fn take(
        &mut self,
        login: &Login,
        session: Option<i64>,
        part: u32,
        file: Option<&Path>,
    ) -> Option<ChatWait> {
        let at = file
            .and_then(|f| self.0.iter().position(|w| w.chat_file == f))
            .or_else(|| {
                self.0
                    .iter()
                    .position(|w| &w.login == login && w.session == session && w.part == part)
            })?;
        Some(self.0.remove(at))
    }

    fn take_job(&mut self, job: i64) -> Option<ChatWait> {
        let at = self.0.iter().position(|w| w.job == job)?;
        Some(self.0.remove(at))
    }
}

impl Core {
    /// Starts the chat worker unless `[chat] enabled = false`.
    pub(super) async fn start_chat(&mut self) {
        if !self.config.chat.enabled {
            return;
        }
        let settings = match ChatSettings::from_config(&self.config) {
            Ok(settings) => settings,
            Err(e) => {
                error!(error = %format!("{e:#}"), "chat logging cannot start");
                return;
            }
        };
        let token = self.twitch_user_token().await;
        self.chat = Some(chat::start(
            settings,
            token,
            self.events_tx.clone(),
            &self.workers,
            self.shutdown.child_token(),
            self.metrics.clone(),
        ));
    }

    async fn twitch_user_token(&self) -> Option<Secret> {
        if self.config.chat.login != ChatLogin::User {
            return None;
        }
        match self.store.token("twitch").await {
            Ok(token) => token.map(|t| t.access_token),
            Err(e) => {
                warn!(error = %e, "cannot read the Twitch token; chat stays anonymous");
                None
            }
        }
    }

    /// The wanted rooms follow the watch list.
    pub(super) async fn chat_watches_changed(&mut self) {
        let Some(chat) = &self.chat else { return };
        match self.owned_watches().await {
            Ok(watches) => {
                let wanted = watches
                    .into_iter()
                    .filter(|w| w.chat && logs_chat_of(&w.source))
                    .filter(|w| w.source != Source::Chzzk || self.is_recording(&w.name))
                    .map(|w| w.name)
                    .collect();
                chat.set_wanted(wanted).await;
            }
            Err(e) => error!(error = %e, "cannot read the watch list for chat logging"),
        }
    }

    /// A Chzzk login started or stopped being recorded: its chat room follows.
    pub(super) async fn platform_chat_follows(&mut self, event: &Event) {
        let chzzk = event
            .login
            .as_ref()
            .is_some_and(|l| l.platform() == recbot_commands::Platform::Chzzk);
        if chzzk
            && matches!(
                event.kind,
                EventKind::LiveDetected { .. } | EventKind::RecordingFinished { .. }
            )
        {
            self.chat_watches_changed().await;
        }
    }

    /// Whether a finished part (`RecordingPartFinished`) gets a chat file: the chat logger
    /// runs and its login logs chat.
    pub(super) async fn writes_chat_file(&self, event: &Event) -> bool {
        if self.chat.is_none() || !matches!(event.kind, EventKind::RecordingPartFinished { .. }) {
            return false;
        }
        match &event.login {
            Some(login) => self.logs_chat(login).await,
            None => false,
        }
    }

    pub(super) async fn logs_chat(&self, login: &Login) -> bool {
        matches!(
            self.store.watch(login).await,
            Ok(Some(w)) if w.chat && logs_chat_of(&w.source)
        )
    }

    /// Part finished → its chat file beside it; `job`, the part's upload job (inserted waiting
    /// for its chat file), waits for the answer.
    pub(super) async fn ask_chat_file(&mut self, event: &Event, job: Option<i64>) {
        let Some(chat) = self.chat.clone() else {
            return;
        };
        let EventKind::RecordingPartFinished {
            part,
            file,
            sidecar,
            ..
        } = &event.kind
        else {
            return;
        };
        let Some(login) = &event.login else { return };
        if let Some(job) = job {
            self.chat_waits.0.push(ChatWait {
                login: login.clone(),
                session: event.session,
                part: *part,
                chat_file: chat_file(file),
                job,
            });
        }
        chat.save_part(login.clone(), *part, sidecar.clone(), event.session)
            .await;
    }

    /// The chat logger answered about a part's chat file (written or not): the part's upload
    /// job, when it still waits, is queued.
    pub(super) async fn chat_file_answered(&mut self, event: &Event) {
        let (part, file) = match &event.kind {
            EventKind::ChatSaved { part, file, .. } => (*part, Some(file.as_path())),
            EventKind::ChatSaveFailed { part, .. } => (*part, None),
            _ => return,
        };
        let Some(login) = &event.login else { return };
        if let Some(wait) = self.chat_waits.take(login, event.session, part, file) {
            self.release_chat_wait(wait.job).await;
        }
    }

    /// The upload worker started a job whose chat file never came (its wait of `[chat]
    /// save_timeout_secs` ran out): the wait ends, and `ChatSaveFailed` says the part goes
    /// without its chat file. `None` after a restart (the part number is no longer known; the
    /// upload worker's log says it).
    pub(super) fn chat_wait_ran_out(&mut self, job: &UploadJob) -> Option<Event> {
        let wait = self.chat_waits.take_job(job.id)?;
        let reason = format!(
            "not written within [chat] save_timeout_secs ({} s); the recording was uploaded \
             without it",
            self.config.chat.save_timeout_secs
        );
        let kind = EventKind::ChatSaveFailed {
            part: wait.part,
            reason,
        };
        let mut event = Event::now(Some(wait.login), kind);
        event.session = wait.session;
        Some(event)
    }

    async fn release_chat_wait(&mut self, job: i64) {
        match self.store.release_chat_wait(job).await {
            Ok(true) => self.wake_uploads(),
            // The wait ran out before: the upload worker has it already.
            Ok(false) => {}
            Err(e) => error!(job, error = %e, "cannot queue the upload waiting for its chat file"),
        }
    }

    /// Start-up: the upload jobs still waiting for their chat file are asked for again (the
    /// chat file is written atomically, so a second write is harmless), each with a new wait
    /// of `[chat] save_timeout_secs`; released at once when chat logging is now off for the
    /// login (or altogether) or the part's sidecar cannot be read. A wait that ran out while
    /// recbot was stopped is left to the upload worker, which takes the job as due (and says
    /// the chat file is missing), as it would have had recbot been running.
    pub(super) async fn resume_chat_waits(&mut self) {
        let jobs = match self.store.upload_jobs_waiting_for_chat().await {
            Ok(jobs) => jobs,
            Err(e) => {
                error!(error = %e, "cannot read the uploads waiting for their chat file");
                return;
            }
        };
        let now = Utc::now();
        for job in jobs {
            if job.next_attempt_at.is_some_and(|until| until <= now) {
                continue;
            }
            match self.chat_wait_of(&job).await {
                Some(wait) => {
                    let until = Utc::now() + chat_save_timeout(&self.config);
                    if let Err(e) = self.store.extend_chat_wait(job.id, until).await {
                        error!(job = job.id, error = %e, "cannot extend the wait for a chat file");
                    }
                    let chat = self.chat.clone().expect("chat_wait_of checked it runs");
                    let sidecar = job.sidecar.clone().unwrap_or_default();
                    let (login, part, session) = (wait.login.clone(), wait.part, wait.session);
                    self.chat_waits.0.push(wait);
                    chat.save_part(login, part, sidecar, session).await;
                }
                None => {
                    info!(job = job.id, "no chat file to wait for (chat logging is off or the sidecar is gone); upload queued");
                    self.release_chat_wait(job.id).await;
                }
            }
        }
    }

    /// What to ask the chat logger again for a job left waiting, if it still writes the chat
    /// file (the part number comes from the sidecar).
    async fn chat_wait_of(&self, job: &UploadJob) -> Option<ChatWait> {
        let (login, sidecar) = (job.login.as_ref()?, job.sidecar.as_ref()?);
        if self.chat.is_none() || !self.logs_chat(login).await {
            return None;
        }
        let part = match Sidecar::read(sidecar).await {
            Ok(s) => s.part,
            Err(e) => {
                warn!(job = job.id, error = %format!("{e:#}"), "cannot ask again for a chat file");
                return None;
            }
        };
        Some(ChatWait {
            login: login.clone(),
            session: job.session,
            part,
            chat_file: chat_file(&job.path),
            job: job.id,
        })
    }

    /// A Twitch user token was stored (a new authorization or a refresh): with
    /// `login = "user"` the chat logs in with it from its next connection on.
    pub(super) async fn chat_token_changed(&self) {
        if let Some(chat) = &self.chat {
            if self.config.chat.login == ChatLogin::User {
                chat.set_user_token(self.twitch_user_token().await).await;
            }
        }
    }
}
/// `[chat] save_timeout_secs` (validated: positive, at most a day).
pub(super) fn chat_save_timeout(config: &crate::config::Config) -> chrono::Duration {
    chrono::Duration::milliseconds((config.chat.save_timeout_secs * 1000.0) as i64)
}
