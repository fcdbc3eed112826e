//! What the status page shows, gathered through the core as the JSON API gathers it: the
//! same commands (`status`, `list`, `status <login>`, `uploads`, `quota`, `disk`) run with the
//! viewer's origin, so the page shows exactly what its token may read, and the newest events
//! of the event log (the page's live updates resume after the newest one).

use futures::StreamExt;

use super::super::auth::Caller;
use super::super::AppState;
use crate::core::store::UploadJob;
use crate::core::{
    DiskReport, LoginStatus, Notice, QuotaReport, Said, ServiceStatus, StatusReport,
};
use crate::frontend::render;

/// Logins shown with their state; more are counted, not shown (each needs a `status`).
pub(super) const MAX_LOGINS: usize = 200;
/// `status <login>` asked at the same time.
const STATUS_AT_ONCE: usize = 4;
/// Event-log rows read for "recent events" (audit entries among them are left out).
const RECENT_EVENTS: i64 = 30;

/// A section's data, or the words of why it could not be read.
pub(super) type Part<T> = Result<T, String>;

/// The uploads section: the jobs, whether video links are shown, `[youtube] enabled`.
#[derive(Debug)]
pub(super) struct Uploads {
    pub jobs: Vec<UploadJob>,
    pub links: bool,
    pub enabled: bool,
}

/// Everything on the page.
#[derive(Debug)]
pub(super) struct PageData {
    pub caller: Caller,
    /// The session's CSRF token (its forms: log out, and retry for operators); `None` for a
    /// request with the bearer header (no session).
    pub csrf: Option<String>,
    pub service: Part<ServiceStatus>,
    pub logins: Part<Vec<LoginStatus>>,
    /// Watched logins left out (over [`MAX_LOGINS`]).
    pub more_logins: usize,
    /// Newest first.
    pub events: Part<Vec<Notice>>,
    /// The newest event-log id when the page was made: live updates start after it.
    pub after: i64,
    pub uploads: Part<Uploads>,
    pub quota: Part<QuotaReport>,
    pub disk: Part<DiskReport>,
}

/// Runs the read-only command `text` for `caller`; the refusal's words when refused.
async fn ask(state: &AppState, caller: &Caller, text: &str) -> Part<Said> {
    let command = recbot_commands::parse(text)
        .map_err(|e| render::refusal(&crate::core::Refusal::Unparsed(e)))?;
    match state.core.execute(command, caller.origin()).await.said {
        Said::Refused(why) => Err(render::refusal(&why)),
        said => Ok(said),
    }
}

/// The words for an answer of another kind than asked (not expected).
fn unexpected(command: &str) -> String {
    format!("`{command}` gave an unexpected answer")
}

pub(super) async fn gather(state: &AppState, caller: Caller, csrf: Option<String>) -> PageData {
    // The newest id first: every event after it comes through the live stream.
    let after = state.core.newest_event_id().await;
    let (service, (logins, more_logins), events, uploads, quota, disk) = futures::join!(
        service(state, &caller),
        logins(state, &caller),
        events(state, after.as_ref().ok().copied()),
        uploads(state, &caller),
        quota(state, &caller),
        disk(state, &caller),
    );
    PageData {
        caller,
        csrf,
        service,
        logins,
        more_logins,
        events,
        after: after.unwrap_or(0),
        uploads,
        quota,
        disk,
    }
}

async fn service(state: &AppState, caller: &Caller) -> Part<ServiceStatus> {
    match ask(state, caller, "status").await? {
        Said::Status(report) => match *report {
            StatusReport::Service(s) => Ok(s),
            StatusReport::Login(_) => Err(unexpected("status")),
        },
        _ => Err(unexpected("status")),
    }
}

/// Each watched login's `status` (at most [`MAX_LOGINS`]), and how many were left out.
async fn logins(state: &AppState, caller: &Caller) -> (Part<Vec<LoginStatus>>, usize) {
    let watches = match ask(state, caller, "list").await {
        Ok(Said::List { watches, .. }) => watches,
        Ok(_) => return (Err(unexpected("list")), 0),
        Err(why) => return (Err(why), 0),
    };
    let more = watches.len().saturating_sub(MAX_LOGINS);
    let statuses: Vec<Part<LoginStatus>> =
        futures::stream::iter(watches.into_iter().take(MAX_LOGINS))
            .map(|watch| async move {
                let text = format!("status {}", watch.name);
                match ask(state, caller, &text).await? {
                    Said::Status(report) => match *report {
                        StatusReport::Login(l) => Ok(l),
                        StatusReport::Service(_) => Err(unexpected(&text)),
                    },
                    _ => Err(unexpected(&text)),
                }
            })
            .buffered(STATUS_AT_ONCE)
            .collect()
            .await;
    // A login removed meanwhile is simply not shown.
    (
        Ok(statuses.into_iter().filter_map(Result::ok).collect()),
        more,
    )
}

/// The newest events up to `newest`, newest first.
async fn events(state: &AppState, newest: Option<i64>) -> Part<Vec<Notice>> {
    let failed = |e: anyhow::Error| format!("the event log cannot be read: {e}");
    let newest = match newest {
        Some(newest) => newest,
        None => return Err("the event log cannot be read".into()),
    };
    let from = (newest - RECENT_EVENTS).max(0);
    let page = state
        .core
        .outbox_pending(from, RECENT_EVENTS)
        .await
        .map_err(failed)?;
    let mut notices: Vec<Notice> = page
        .notices
        .into_iter()
        .filter(|n| n.seq <= newest)
        .collect();
    notices.reverse();
    Ok(notices)
}

async fn uploads(state: &AppState, caller: &Caller) -> Part<Uploads> {
    match ask(state, caller, "uploads").await? {
        Said::Uploads {
            jobs,
            links,
            enabled,
        } => Ok(Uploads {
            jobs,
            links,
            enabled,
        }),
        _ => Err(unexpected("uploads")),
    }
}

async fn quota(state: &AppState, caller: &Caller) -> Part<QuotaReport> {
    match ask(state, caller, "quota").await? {
        Said::Quota(q) => Ok(q),
        _ => Err(unexpected("quota")),
    }
}

async fn disk(state: &AppState, caller: &Caller) -> Part<DiskReport> {
    match ask(state, caller, "disk").await? {
        Said::Disk(d) => Ok(*d),
        _ => Err(unexpected("disk")),
    }
}
