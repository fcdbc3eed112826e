//! `status` and `status <name>`: what the core knows is gathered on its loop; the chat
//! logger's part and the recent events are added by a worker task, so that a flood of
//! `status` holds up neither the core nor the chat logger. The answer is a
//! [`StatusReport`]; the front-ends word it.

use std::time::Duration;

use recbot_commands::{Login, Source};
use tracing::error;

use super::reply::{ChatLine, LiveOf, LoginStatus, Refusal, ServiceStatus, StatusReport};
use super::store::Store;
use super::{Answer, Core, Reply, Said};
use crate::event::EventKind;

/// `status` replies finished at the same time; the others wait their turn.
static STATUS_QUERIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Recent events shown by `status <name>`.
const RECENT_EVENTS: i64 = 5;

impl Core {
    /// `status [name]`: the core's part now, the chat logger's line and the recent events
    /// from a worker task (at most [`STATUS_QUERIES`] at a time).
    pub(super) async fn status(&self, name: Option<Login>) -> Answer {
        let report = match name {
            None => self.service_status().await.map(Ok),
            Some(name) => self.login_status(name).await,
        };
        let report = match report {
            Ok(Ok(report)) => report,
            Ok(Err(refused)) => return Answer::Now(refused),
            Err(e) => {
                error!(error = %e, command = "status", "command failed");
                return Answer::Now(Reply::refused(Refusal::Failed {
                    command: "status",
                    error: format!("{e:#}"),
                }));
            }
        };
        let chat = self.chat.clone();
        let store = self.store.clone();
        Answer::Later(Box::pin(async move {
            let _permit = STATUS_QUERIES.acquire().await;
            Reply::ok(Said::Status(Box::new(finish(report, chat, store).await)))
        }))
    }

    /// The core's part of `status <name>` (or the refusal of an unknown name).
    async fn login_status(&self, name: Login) -> anyhow::Result<Result<StatusReport, Reply>> {
        let Some(watch) = self.store.watch(&name).await? else {
            return Ok(Err(Reply::refused(Refusal::NotWatched(name))));
        };
        let mut live = match watch.source {
            Source::Twitch => self.live_of(&watch.name),
            Source::Hls { .. } | Source::Chzzk | Source::Bilibili => None,
        };
        let next_check_secs = match watch.source {
            Source::Chzzk => self
                .chzzk
                .as_ref()
                .and_then(|d| d.next_check(&watch.name))
                .map(|d| d.as_secs()),
            _ => None,
        };
        if let Some(LiveOf::Live {
            viewers,
            peak_viewers,
            ..
        }) = &mut live
        {
            *peak_viewers = self.peak_viewers(&name, *viewers).await;
        }
        let recording = self.recording_now(&name);
        Ok(Ok(StatusReport::Login(LoginStatus {
            watch,
            live,
            recording,
            next_check_secs,
            chat: None,
            recent: Vec::new(),
        })))
    }

    /// The core's part of `status` (the chat line is added by [`finish`]).
    async fn service_status(&self) -> anyhow::Result<StatusReport> {
        let watches = self.store.watches().await?;
        let hls = watches
            .iter()
            .filter(|w| matches!(w.source, Source::Hls { .. }))
            .count();
        let mut frontends = Vec::new();
        if self.config.console_enabled() {
            frontends.push("console");
        }
        if self.config.slack.is_configured() {
            frontends.push("slack");
        }
        if self.config.discord.is_configured() {
            frontends.push("discord");
        }
        if self.config.http.address().is_some() {
            frontends.push("http");
        }
        Ok(StatusReport::Service(ServiceStatus {
            version: env!("CARGO_PKG_VERSION"),
            up_secs: self.started.elapsed().as_secs(),
            watching: watches.len(),
            hls,
            recording: self.recordings_running(),
            frontends,
            schema: self.store.schema_version().await?,
            live: self.live_detection(),
            viewer: self.auth.viewer_login().current().map(|c| c.login.clone()),
            chat: None,
        }))
    }
}

/// Adds what the core's loop does not know: the chat logger's line (service-wide, or of a
/// login that logs chat) and a login's recent events.
async fn finish(
    mut report: StatusReport,
    chat: Option<crate::chat::ChatHandle>,
    store: Store,
) -> StatusReport {
    match &mut report {
        StatusReport::Service(s) => s.chat = Some(chat_line(chat, store, None).await),
        StatusReport::Login(l) => {
            let name = l.watch.name.clone();
            if l.watch.chat && matches!(l.watch.source, Source::Twitch) {
                l.chat = Some(chat_line(chat, store.clone(), Some(name.clone())).await);
            }
            match store.recent_events(Some(&name), RECENT_EVENTS).await {
                Ok(recent) => l.recent = recent,
                Err(e) => error!(error = %e, "status: cannot read recent events"),
            }
        }
    }
    report
}

/// The chat part of `status` (service-wide, or of one login), asked of the chat worker (at
/// most 2 s) and the event log (the last disconnect, also from before this start).
async fn chat_line(
    chat: Option<crate::chat::ChatHandle>,
    store: Store,
    login: Option<Login>,
) -> ChatLine {
    let Some(chat) = &chat else {
        return ChatLine::Off;
    };
    // A reply must never wait long on a worker.
    let asked = tokio::time::timeout(Duration::from_secs(2), chat.status(login.clone()));
    let Ok(Some(mut status)) = asked.await else {
        return ChatLine::NoAnswer;
    };
    if status.last_disconnect.is_none() {
        if let Ok(Some(event)) = store.last_event_of_kind("ChatDisconnected").await {
            if let EventKind::ChatDisconnected { reason } = event.kind {
                status.last_disconnect = Some((event.at, reason));
            }
        }
    }
    match login {
        Some(_) => ChatLine::Login(status),
        None => ChatLine::Service(status),
    }
}
