//! A finished broadcast's summary chart (`<first part>.summary.png`): a worker. The core hands
//! it what the state database knows of the session ([`SummaryJob`]: its parts and stream
//! samples); it reads the parts' sidecars (ad breaks, gaps, title/game history) and counts
//! the chat lines per minute from the day files (`chat::per_minute`), draws the chart
//! (`chart.rs`) on the blocking pool, writes it beside the first part (`.recbot-tmp`, fsync,
//! rename), names it in that part's sidecar and says `SummaryReady` (or `SummaryFailed`,
//! once). Nothing waits for it: uploads go on whatever happens here.

pub mod chart;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use recbot_commands::Login;
use tracing::{info, warn};

use crate::archive::after::Plan;
use crate::archive::files::finalize_file;
use crate::archive::layout::{summary_file, temp_path_of};
use crate::archive::sidecar::Sidecar;
use crate::event::{Event, EventKind};
use crate::work::Events;
use chart::{Figures, Shade};

/// One live check's look at the broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub viewers: Option<u64>,
    pub title: String,
    pub game: Option<String>,
}

/// A session's part, as the state database has it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartFile {
    pub number: u32,
    /// The final file as recorded (its sidecar is beside it).
    pub path: PathBuf,
    pub started: DateTime<Utc>,
}

/// What the core knows of a finished session.
#[derive(Debug, Clone)]
pub struct SummaryJob {
    pub login: Login,
    pub session: i64,
    pub title: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// By number; the chart goes beside the first.
    pub parts: Vec<PartFile>,
    pub samples: Vec<Sample>,
    /// The chat folder when the login's chat is logged.
    pub chat_dir: Option<PathBuf>,
    /// After-upload, when it moves or deletes: where the first part may be by now.
    pub after: Option<Plan>,
}

/// Makes the chart of `job` and reports it (an event either way).
pub async fn run(job: SummaryJob, events: Events) {
    let (login, session) = (job.login.clone(), job.session);
    let kind = match make(job).await {
        Ok((path, samples, chat_lines)) => {
            info!(%login, session, file = %path.display(), "summary chart written");
            EventKind::SummaryReady {
                path,
                samples,
                chat_lines,
            }
        }
        Err(e) => {
            warn!(%login, session, error = %format!("{e:#}"), "no summary chart");
            EventKind::SummaryFailed {
                reason: format!("{e:#}"),
            }
        }
    };
    events
        .send(Event::now(Some(login), kind).in_session(session))
        .await;
}

/// Gathers, draws and writes; returns the chart's path, the samples and chat lines shown.
async fn make(job: SummaryJob) -> Result<(PathBuf, u32, u64)> {
    let first = job.parts.first().context("the session has no part")?;
    let video = where_now(&first.path, job.after.as_ref()).await;
    let mut sidecars = Vec::new();
    for part in &job.parts {
        // A part moved or deleted after its upload has no sidecar to read here any more.
        let at = where_now(&part.path, job.after.as_ref()).await;
        if let Ok(s) = Sidecar::read(&Sidecar::path_for(&at)).await {
            sidecars.push(s);
        }
    }
    let dest = summary_file(&video);
    let samples = job.samples.len() as u32;
    let lines = crate::blocking::run(move || -> Result<u64> {
        let (figures, lines) = figures(&job, &sidecars)?;
        let png = chart::render(&figures)?;
        write(&dest, &png)?;
        Ok(lines)
    })
    .await??;
    let path = summary_file(&video);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let sidecar = Sidecar::path_for(&video);
    if let Err(e) = Sidecar::update(&sidecar, |s| s.summary = name).await {
        warn!(error = %format!("{e:#}"), sidecar = %sidecar.display(), "cannot list the summary chart in the sidecar");
    }
    Ok((path, samples, lines))
}

/// Where a recorded file is now: where it was recorded, or where after-upload moved it; where
/// it was recorded when it is in neither place (deleted: the chart stays as the broadcast's
/// only trace, beside where it was).
async fn where_now(recorded: &Path, after: Option<&Plan>) -> PathBuf {
    let exists = |p: &Path| {
        let p = Sidecar::path_for(p);
        async move { tokio::fs::try_exists(&p).await.unwrap_or(false) }
    };
    if exists(recorded).await {
        return recorded.to_path_buf();
    }
    if let Some(moved) = after
        .filter(|p| !p.deletes())
        .map(|p| p.moved_path(recorded))
    {
        if exists(&moved).await {
            return moved;
        }
    }
    recorded.to_path_buf()
}

/// The chart's figures from the job and the parts' sidecars (blocking: reads the day files).
fn figures(job: &SummaryJob, sidecars: &[Sidecar]) -> Result<(Figures, u64)> {
    let (chat_per_minute, lines) = match &job.chat_dir {
        Some(dir) => crate::chat::per_minute::lines_per_minute(
            dir,
            job.login.as_str(),
            job.started.timestamp_millis(),
            job.ended.timestamp_millis(),
        )
        .context("cannot count the chat lines")?,
        None => (Vec::new(), 0),
    };
    let mut shaded = Vec::new();
    let mut history: Vec<(DateTime<Utc>, String, Option<String>)> = Vec::new();
    for s in sidecars {
        shaded.extend(
            s.ad_breaks
                .iter()
                .map(|a| (a.at, a.duration_secs, Shade::AdBreak)),
        );
        shaded.extend(s.gaps.iter().map(|g| (g.at, g.seconds, Shade::Gap)));
        history.extend(
            s.chapters
                .iter()
                .map(|c| (c.at, c.title.clone(), c.game.clone())),
        );
    }
    history.extend(
        job.samples
            .iter()
            .map(|s| (s.at, s.title.clone(), s.game.clone())),
    );
    history.sort_by_key(|h| h.0);
    let mut changes: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut last: Option<(String, Option<String>)> = None;
    for (at, title, game) in history {
        let now = (title, game);
        if last.as_ref() != Some(&now) {
            let text = match &now.1 {
                Some(game) => format!("{game}: {}", now.0),
                None => now.0.clone(),
            };
            changes.push((at, text));
            last = Some(now);
        }
    }
    let figures = Figures {
        heading: format!("{} — {}", job.login, job.title),
        start: job.started,
        end: job.ended.max(job.started),
        chat_per_minute,
        viewers: job
            .samples
            .iter()
            .filter_map(|s| Some((s.at, s.viewers?)))
            .collect(),
        changes,
        shaded,
        parts: job.parts.iter().map(|p| (p.started, p.number)).collect(),
    };
    Ok((figures, lines))
}

/// Writes `bytes` to `dest` atomically (`.recbot-tmp`, fsync, rename).
fn write(dest: &Path, bytes: &[u8]) -> Result<()> {
    // Not `.part`: crash recovery would take a leftover for a recording.
    let tmp = temp_path_of(dest);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    finalize_file(&tmp, dest).with_context(|| format!("cannot rename {} into place", tmp.display()))
}

#[cfg(test)]
mod tests;
