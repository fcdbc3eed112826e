//! Replies to commands: what the core [`Said`] (or why it refused) in recbot's words, the
//! same on every front-end. Outside text in a reply (file names, services' error texts in
//! `uploads`) is neutralized for the markup of the room that asked.

use chrono::{DateTime, Utc};
use recbot_commands::Source;

use super::status::{disk, status};
use super::{untrusted, Markup};
use crate::core::store::{Cleanup, JobState, UploadJob, Watch};
use crate::core::{video_url, AuthLink, Connected, Minutes, QuotaReport, Refusal, Reply, Said};
use crate::format::size;
use crate::upload::quota;

/// A reply as a front-end shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Show only to the person who asked (ephemeral where the platform allows).
    pub private: bool,
    /// `false` when the command was refused or failed.
    pub ok: bool,
}

/// A reply in the words of `markup`'s front-end.
pub fn reply(reply: &Reply, markup: Markup) -> Rendered {
    Rendered {
        text: said(&reply.said, markup),
        private: reply.private,
        ok: reply.ok,
    }
}

/// A refusal a front-end makes itself (before or without the core), as a private reply.
pub fn refused(text: impl Into<String>) -> Rendered {
    Rendered {
        text: text.into(),
        private: true,
        ok: false,
    }
}

/// What a command did or found, in words.
pub fn said(said: &Said, markup: Markup) -> String {
    match said {
        Said::Help(topic) => recbot_commands::help(*topic),
        Said::Added {
            watch,
            updated,
            uploads_disabled,
        } => {
            let mut text = if *updated {
                format!("Updated {}: {}.", named(watch, markup), options(watch))
            } else {
                format!(
                    "Watching {} ({}). Its events will be posted here.",
                    named(watch, markup),
                    options(watch)
                )
            };
            if *uploads_disabled {
                text.push_str(
                    " Note: YouTube uploads are disabled in the config ([youtube] enabled).",
                );
            }
            text
        }
        Said::AlreadyWatching(watch) => {
            format!(
                "Already watching {} ({}).",
                named(watch, markup),
                options(watch)
            )
        }
        Said::Removed(name) => {
            format!("Stopped watching {name}. Its recordings and chat logs are kept.")
        }
        Said::List { watches, operator } => list(watches, *operator, markup),
        Said::Status(report) => status(report, markup),
        Said::Disk(report) => disk(report),
        Said::Uploads {
            jobs,
            links,
            enabled,
        } => uploads(jobs, *links, *enabled, markup),
        Said::Requeued { id, enabled } => {
            let mut text = format!("Upload #{id} is queued again.");
            if !enabled {
                text.push_str(" Note: uploads are disabled in the config ([youtube] enabled).");
            }
            text
        }
        Said::Quota(report) => quota_text(report),
        Said::Cut(report) => cut_text(report, markup),
        Said::AuthLink(link) => auth_link(link),
        Said::Connected(Connected::Youtube) => {
            "YouTube is connected: finished recordings will be uploaded.".to_string()
        }
        Said::Connected(Connected::Twitch { login, unmatched }) => {
            let note = if *unmatched { UNMATCHED_NOTE } else { "" };
            match login {
                Some(login) => format!("Twitch is connected as {login}.{note}"),
                None => format!("Twitch is connected.{note}"),
            }
        }
        Said::Connected(Connected::TwitchViewer { login }) => format!(
            "The Twitch viewer login is connected as {login}: recordings get every rendition a \
             logged-in viewer gets (above 1080p too) from their next playlist refresh."
        ),
        Said::Refused(why) => refusal(why),
    }
}

/// Added to the reply when a bare Twitch code was exchanged with no link pending to match it.
const UNMATCHED_NOTE: &str = " (No `auth twitch` link was pending, so the bare code could not \
     be checked against one; it was taken because an operator sent it.)";

/// A watch's options: `quality best, upload on, chat on`.
pub(super) fn options(watch: &Watch) -> String {
    crate::format::watch_options(
        &watch.source,
        watch.quality,
        watch.upload,
        watch.chat,
        watch.post,
    )
}

/// A watched channel as replies name it: its display name first when the platform gave one
/// (`Some Streamer (chzzk:<id>)`, the name neutralized: it is the platform's text), else its
/// watch-list name.
pub(super) fn named(watch: &Watch, markup: Markup) -> String {
    match &watch.display_name {
        Some(display) => format!("{} ({})", super::untrusted(display, markup), watch.name),
        None => watch.name.to_string(),
    }
}

/// A source as replies show it. Anyone in the room may read `list` and `status`, so an HLS
/// URL is shown without what may be a credential: no `user:pass@`, no query (a signed URL's
/// `?token=…`), no fragment.
pub(super) fn describe_source(source: &Source) -> String {
    match source {
        Source::Twitch => "Twitch".into(),
        Source::Hls { url } => format!("HLS {}", public_url(url)),
        Source::Chzzk => "Chzzk".into(),
        Source::Bilibili => "Bilibili Live".into(),
    }
}

/// A platform as people call it.
fn platform_title(platform: recbot_commands::Platform) -> &'static str {
    match platform {
        recbot_commands::Platform::Twitch => "Twitch",
        recbot_commands::Platform::Chzzk => "Chzzk",
        recbot_commands::Platform::Bilibili => "Bilibili",
        recbot_commands::Platform::Hls => "HLS",
    }
}

/// Scheme, host, port and path of `url` (`?…` marks a query left out).
fn public_url(url: &str) -> String {
    let Ok(url) = url::Url::parse(url) else {
        return "(URL not shown)".into();
    };
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    shown
}

/// `list`: who added a login and from which room only for operators (user ids are the key
/// to the operators list).
fn list(watches: &[Watch], operator: bool, markup: Markup) -> String {
    if watches.is_empty() {
        return "Not watching anything yet. Add a channel with `add <login>`.".to_string();
    }
    let mut text = format!("Watching {}:", watches.len());
    for w in watches {
        let added = if operator {
            format!(
                "added by {} in {}, {}",
                w.added_by,
                w.room,
                w.added_at.format("%Y-%m-%d")
            )
        } else {
            format!("added {}", w.added_at.format("%Y-%m-%d"))
        };
        text.push_str(&format!(
            "\n• {} — {}, {} ({added})",
            named(w, markup),
            describe_source(&w.source),
            options(w),
        ));
    }
    text
}

/// `uploads`: one line per job.
fn uploads(jobs: &[UploadJob], links: bool, enabled: bool, markup: Markup) -> String {
    let mut text = if jobs.is_empty() {
        "No uploads yet: finished recordings of logins with upload=on are queued here.".to_string()
    } else {
        let open = jobs.iter().filter(|j| j.state.is_open()).count();
        let mut text = format!("Uploads ({open} open):");
        for job in jobs {
            text.push_str(&format!("\n{}", describe_job(job, links, markup)));
        }
        text
    };
    if !enabled {
        text.push_str("\nUploads are disabled in the config ([youtube] enabled = false).");
    }
    text
}

/// One job's line; `link`: show a finished job's video address.
pub fn describe_job(job: &UploadJob, link: bool, markup: Markup) -> String {
    let who = job.login.as_ref().map(|l| l.as_str()).unwrap_or("?");
    let head = format!(
        "#{} {} {}",
        job.id,
        who,
        untrusted(&job.file_name(), markup)
    );
    // YouTube's (or a proxy's) words.
    let error = |fallback: &str| untrusted(job.last_error.as_deref().unwrap_or(fallback), markup);
    let percent = |done: u64| {
        if job.total_bytes > 0 {
            done as f64 * 100.0 / job.total_bytes as f64
        } else {
            0.0
        }
    };
    let state = match job.state {
        JobState::Queued if job.confirmed_bytes > 0 => format!(
            "queued, {:.0}% already on YouTube",
            percent(job.confirmed_bytes)
        ),
        JobState::Queued => format!("queued ({})", size(job.total_bytes)),
        JobState::Uploading => format!(
            "uploading {:.0}% ({} of {})",
            percent(job.confirmed_bytes),
            size(job.confirmed_bytes),
            size(job.total_bytes)
        ),
        JobState::Deferred => format!(
            "waiting until {}: {}",
            until(job.next_attempt_at),
            error("")
        ),
        JobState::Paused => format!(
            "paused until YouTube is authorized again (`auth youtube`): {}",
            error("")
        ),
        JobState::Finished => {
            let shown = if link {
                video_url(job.video_id.as_deref().unwrap_or_default())
            } else {
                "the video is not public: operators see its link".into()
            };
            match job.cleanup {
                Some(Cleanup::Waiting) => {
                    format!("finished: {shown} (files deleted once YouTube has processed it)")
                }
                Some(Cleanup::Kept) => format!("finished: {shown} (files kept: {})", error("")),
                _ if link => format!("finished: {shown}"),
                _ => format!("finished ({shown})"),
            }
        }
        JobState::Failed => format!("failed: {} (`retry {}`)", error("unknown reason"), job.id),
    };
    format!("{head} — {state}")
}

/// When a waiting job is tried again, as `quota` and `uploads` say it.
fn until(at: Option<DateTime<Utc>>) -> String {
    at.map(quota::describe).unwrap_or_else(|| "later".into())
}

fn quota_text(q: &QuotaReport) -> String {
    let mut text = format!(
        "YouTube uploads today (Pacific date {}): {} used, {} left of {} \
         (daily_upload_limit). Next reset: {}.",
        q.day,
        q.used,
        q.left,
        q.limit,
        quota::describe(q.next_reset)
    );
    if let Some(until) = q.held_until {
        text.push_str(&format!(
            "\nNew uploads wait until {}: the channel reached YouTube's upload limit.",
            quota::describe(until)
        ));
    }
    if !q.enabled {
        text.push_str("\nUploads are disabled in the config ([youtube] enabled = false).");
    }
    text
}

/// A pending authorization's lifetime: `10 minutes`, `0.1 minutes`.
fn minutes(m: Minutes) -> String {
    if m.0.fract() == 0.0 {
        format!("{} minutes", m.0)
    } else {
        format!("{:.1} minutes", m.0)
    }
}

fn auth_link(link: &AuthLink) -> String {
    match link {
        AuthLink::Youtube { url, minutes: m } => format!(
            "Open this link, sign in with the YouTube channel's account and \
             approve:\n{url}\nYour browser then fails to load a 127.0.0.1 \
             address: copy that whole address (or its `code=` value) and send \
             `code youtube <address or code>` within {}.",
            minutes(*m)
        ),
        AuthLink::Twitch {
            url,
            redirect_uri,
            minutes: m,
        } => format!(
            "Open this link, sign in with the Twitch account recbot should use and \
             authorize:\n{url}\nYour browser then fails to load {redirect_uri}: copy that whole \
             address and send `code twitch <address>` within {}.",
            minutes(*m)
        ),
        AuthLink::TwitchDevice {
            verification_uri,
            user_code,
            expires_at,
        } => format!(
            "Open {verification_uri} and enter the code {user_code} (until {} UTC). recbot waits \
             for your approval and posts when Twitch is connected; nothing needs pasting.",
            expires_at.format("%H:%M")
        ),
    }
}

/// Why nothing was done, in words.
pub fn refusal(why: &Refusal) -> String {
    match why {
        Refusal::Unparsed(e) => e.to_string(),
        Refusal::ShuttingDown => "recbot is shutting down; try again when it is back".into(),
        Refusal::StoppedBeforeAnswer => {
            "recbot stopped before answering; the command may not have been applied".into()
        }
        Refusal::ShuttingDownUnchanged => "recbot is shutting down; nothing was changed".into(),
        Refusal::StoppedBeforeAdd => {
            "recbot stopped before adding the source; nothing was changed".into()
        }
        Refusal::AnswerLost => "recbot failed while answering; see the service log".into(),
        Refusal::NotOperator { command } => format!(
            "Only operators may run `{command}`. Ask an operator, or have your user id added to \
             the operators list in recbot's config."
        ),
        Refusal::Failed { command, error } => format!(
            "`{command}` failed: {error}. Nothing was changed; see the service log for details."
        ),
        Refusal::SourceRefused { name, why } => {
            format!("Not adding {name}: {why}. Nothing was changed.")
        }
        Refusal::WatchedAs { name, source } => format!(
            "`{name}` is already watched as {}; `remove {name}` first to change the source.",
            describe_source(source)
        ),
        Refusal::NotWatched(name) => format!("`{name}` is not watched; `list` shows what is."),
        Refusal::NoSuchChannel(name) => format!(
            "{} has no channel `{}`: check the id or address. Nothing was changed.",
            platform_title(name.platform()),
            name
        ),
        Refusal::ChannelLookupFailed { name, error } => format!(
            "Not adding {name}: {} could not be asked about the channel ({error}). Nothing was \
             changed; try again later.",
            platform_title(name.platform())
        ),
        Refusal::PlatformNotAvailable(platform) => format!(
            "{} recording is not available yet. Nothing was changed.",
            platform_title(*platform)
        ),
        Refusal::DiskFailed { error: Some(e) } => format!("`disk` failed: {e}"),
        Refusal::DiskFailed { error: None } => {
            "`disk` failed; an operator can see why in the service log".into()
        }
        Refusal::NoSuchUpload(_)
        | Refusal::AlreadyUploaded { .. }
        | Refusal::UploadWaits { .. }
        | Refusal::UploadWaitsForChatFile { .. }
        | Refusal::UploadPaused(_)
        | Refusal::UploadBusy { .. }
        | Refusal::UploadFileGone { .. } => refusal_of_retry(why),
        Refusal::AuthFailed { .. }
        | Refusal::AuthInterrupted { .. }
        | Refusal::YoutubeClientMissing
        | Refusal::TwitchClientMissing
        | Refusal::NothingAwaited(_)
        | Refusal::AuthExpired { .. }
        | Refusal::DeviceFlowPending
        | Refusal::ViewerTokenRefused(_)
        | Refusal::StillChecking
        | Refusal::StillExchanging
        | Refusal::CodeRefused(_)
        | Refusal::AuthEnded
        | Refusal::StateMismatch
        | Refusal::StateMissing
        | Refusal::BareCode
        | Refusal::TwitchRefusedCode(_)
        | Refusal::TwitchUnavailable(_)
        | Refusal::TokenNotSaved(_)
        | Refusal::ExchangeInterrupted
        | Refusal::NoRemoteAnswer(_) => refusal_of_auth(why),
        Refusal::NoSession {
            name,
            session: Some(id),
        } => format!("{name} has no session #{id}; `status {name}` shows its latest."),
        Refusal::NoSession {
            name,
            session: None,
        } => format!("{name} has no recorded session yet."),
        Refusal::SpanNotInOnePart {
            recorded,
            part_ends,
            in_progress,
        } => {
            let ends: Vec<String> = part_ends.iter().map(|e| clock(*e)).collect();
            let mut text = format!(
                "No one finished part holds that span: the session's finished parts hold {}",
                clock(*recorded)
            );
            if ends.len() > 1 {
                text.push_str(&format!(" (parts end at {})", ends.join(", ")));
            }
            text.push_str(". Cut within one part");
            if *in_progress {
                text.push_str("; the part being recorded can be cut once it is finished");
            }
            text.push('.');
            text
        }
        Refusal::CutFailed(why) => format!("Cannot cut: {why}. Nothing was written."),
    }
}

/// `H:MM:SS` (tenths when not whole): a time in a recording.
fn clock(secs: f64) -> String {
    crate::post::cut::clock(secs)
}

/// `cut`: the span kept (session time), the part, the files written.
fn cut_text(r: &crate::core::CutReport, markup: Markup) -> String {
    let spans: Vec<String> = r
        .kept
        .iter()
        .map(|(a, b)| {
            format!(
                "{}–{}",
                clock(a + r.part_offset_secs),
                clock(b + r.part_offset_secs)
            )
        })
        .collect();
    let mut text = format!(
        "Cut {} (session #{}, part {}): kept {} ({}), at segment boundaries.",
        r.name,
        r.session,
        r.part,
        spans.join(", "),
        clock(r.duration_secs)
    );
    for file in &r.files {
        text.push_str(&format!(
            "\n{}",
            untrusted(&file.display().to_string(), markup)
        ));
    }
    if r.chat_lines > 0 {
        text.push_str(&format!("\n({} chat lines)", r.chat_lines));
    }
    text
}

/// The group functions are only called by [`refusal`] with a refusal of their group.
fn not_in_group(group: &str, why: &Refusal) -> ! {
    unreachable!("{why:?} is not a refusal of {group}")
}

/// The refusals of `retry`.
fn refusal_of_retry(why: &Refusal) -> String {
    match why {
        Refusal::NoSuchUpload(id) => format!("There is no upload #{id}; `uploads` lists them."),
        Refusal::AlreadyUploaded { id, url } => {
            format!("Upload #{id} is already on YouTube: {url}")
        }
        Refusal::UploadWaits { id, until: at } => format!(
            "Upload #{id} waits for YouTube until {}; YouTube would refuse it before then.",
            until(*at)
        ),
        Refusal::UploadWaitsForChatFile { id, until: at } => format!(
            "Upload #{id} waits for its chat file to be written{}; it starts by itself then.",
            at.map(|at| format!(" (at most until {})", quota::describe(at)))
                .unwrap_or_default()
        ),
        Refusal::UploadPaused(id) => {
            format!("Upload #{id} waits for a new YouTube authorization: run `auth youtube`.")
        }
        Refusal::UploadBusy { id, state } => format!("Upload #{id} is already {}.", state.as_str()),
        Refusal::UploadFileGone { id, path } => format!(
            "The file of upload #{id} is gone ({}); nothing to upload.",
            path.display()
        ),
        other => not_in_group("retry", other),
    }
}

/// The refusals of `auth` and `code`.
fn refusal_of_auth(why: &Refusal) -> String {
    match why {
        Refusal::AuthFailed { command, error } => format!("`{command}` failed: {error}"),
        Refusal::AuthInterrupted { command } => format!("`{command}` was interrupted; try again"),
        Refusal::YoutubeClientMissing => {
            "YouTube needs an OAuth client first: set [youtube] client_id and client_secret \
             (a Google \"Desktop app\" client; see README \"Connect YouTube\")."
                .into()
        }
        Refusal::TwitchClientMissing => {
            "Twitch needs an app first: set [twitch] client_id and client_secret (a Confidential \
             app whose OAuth redirect URL is [twitch] redirect_uri; see README \"Connect Twitch\")."
                .into()
        }
        Refusal::NothingAwaited(service) => format!(
            "No {service} authorization is waiting for a code. Run `auth {service}` first, \
             then paste the code from that link."
        ),
        Refusal::AuthExpired {
            service,
            started,
            minutes: m,
        } => format!(
            "The {service} authorization started at {} UTC has expired. Run `auth \
             {service}` again and paste the new code within {}.",
            started.format("%H:%M"),
            minutes(*m)
        ),
        Refusal::ViewerTokenRefused(why) => {
            format!("That viewer token was not stored: {why}. Nothing was changed.")
        }
        Refusal::DeviceFlowPending => {
            "The pending Twitch authorization uses the device flow: approve it with the \
             activation code at the link recbot posted; no code needs pasting."
                .into()
        }
        Refusal::StillChecking => {
            "The previous code is still being checked; wait for its answer.".into()
        }
        Refusal::StillExchanging => {
            "The previous code is still being exchanged with Twitch; wait for its answer.".into()
        }
        Refusal::CodeRefused(e) => e.clone(),
        Refusal::AuthEnded => "The authorization ended before the code was checked (it expired \
             or was replaced); run `auth youtube` again."
            .into(),
        Refusal::StateMismatch => {
            "That address belongs to another authorization (its `state` does not match the \
             newest `auth twitch` link). Open the newest link and paste the address it leads to."
                .into()
        }
        Refusal::StateMissing => {
            "That address has no `state`, so it cannot be told from an old or foreign one. \
             Paste the whole address the newest `auth twitch` link led to (it ends with \
             `&state=…`)."
                .into()
        }
        Refusal::BareCode => {
            "A bare code carries no `state`, so it cannot be checked against the pending `auth \
             twitch` link. Paste the whole address that link led to (it ends with `&state=…`); \
             a bare code is only taken when no link is pending."
                .into()
        }
        Refusal::TwitchRefusedCode(e) => format!(
            "Twitch refused the code ({e}): it is wrong, was already used or has expired. Open \
             the link again and paste the new address."
        ),
        Refusal::TwitchUnavailable(e) => {
            format!("{e}. Nothing was changed; paste the address again.")
        }
        Refusal::TokenNotSaved(e) => format!("the token could not be saved: {e}"),
        Refusal::ExchangeInterrupted => "The code exchange was interrupted (shutdown).".into(),
        // `60s`, or `300ms` for the short limits of tests.
        Refusal::NoRemoteAnswer(limit) => format!(
            "No answer from the remote service within {limit:?}; the outcome will be posted as \
             an event."
        ),
        other => not_in_group("auth", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{DiskLevel, DiskReport};
    use recbot_commands::{Login, Service};

    fn check(said: Said, expected: &str) {
        assert_eq!(super::said(&said, Markup::Plain), expected, "{said:?}");
    }

    #[test]
    fn replies_are_worded_as_before() {
        let foo = Login::parse("foo").unwrap();
        check(
            Said::Removed(foo.clone()),
            "Stopped watching foo. Its recordings and chat logs are kept.",
        );
        check(
            Said::Refused(Refusal::NotWatched(foo.clone())),
            "`foo` is not watched; `list` shows what is.",
        );
        check(
            Said::Refused(Refusal::WatchedAs {
                name: foo,
                source: Source::Hls {
                    url: "https://user:pw@example.com:8443/live.m3u8?token=s3cret#x".into(),
                },
            }),
            "`foo` is already watched as HLS https://example.com:8443/live.m3u8?…; `remove foo` \
             first to change the source.",
        );
        check(
            Said::Refused(Refusal::AuthExpired {
                service: Service::Twitch,
                started: DateTime::from_timestamp(3600 * 10 + 60 * 5, 0).unwrap(),
                minutes: Minutes(0.1),
            }),
            "The twitch authorization started at 10:05 UTC has expired. Run `auth twitch` again \
             and paste the new code within 0.1 minutes.",
        );
        check(
            Said::Refused(Refusal::NoRemoteAnswer(std::time::Duration::from_millis(
                300,
            ))),
            "No answer from the remote service within 300ms; the outcome will be posted as an \
             event.",
        );
        check(
            Said::Connected(Connected::Twitch {
                login: Some("bar".into()),
                unmatched: false,
            }),
            "Twitch is connected as bar.",
        );
        check(
            Said::Requeued {
                id: 3,
                enabled: false,
            },
            "Upload #3 is queued again. Note: uploads are disabled in the config ([youtube] \
             enabled).",
        );
        // `retry` of a job waiting for its chat file says what it waits for, not YouTube.
        check(
            Said::Refused(Refusal::UploadWaitsForChatFile { id: 4, until: None }),
            "Upload #4 waits for its chat file to be written; it starts by itself then.",
        );
    }

    #[test]
    fn disk_report_as_before() {
        let report = DiskReport {
            used_percent: 91.4,
            free_bytes: 1_500_000_000,
            total_bytes: 20_000_000_000,
            level: DiskLevel::Warn { percent: 85 },
            recordings_bytes: 340_000_000,
            recordings_dir: Some("/data/rec".into()),
            chat_bytes: 12_000,
            chat_dir: None,
            running: 2,
            age_secs: 65,
        };
        check(
            Said::Disk(Box::new(report)),
            "Disk: 91% used, 1.50 GB free of 20.00 GB (⚠ above the 85% warning level).\n\
             Recordings: 340 MB in /data/rec\nChat logs: 12 KB\nRecording now: 2\n\
             (measured 1m 05s ago)",
        );
    }
}
