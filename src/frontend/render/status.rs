//! `status` and `disk` in words: the service's or a login's [`StatusReport`] (live
//! detection, the recording in progress, chat logging, recent events) and the
//! [`DiskReport`].

use super::events::event_line_for;
use super::replies::{describe_source, options};
use super::Markup;
use crate::chat::{ChatIdentity, ChatStatus};
use crate::core::{
    ChatLine, DiskLevel, DiskReport, EventSubNow, LiveDetection, LiveOf, LoginStatus, RecordingNow,
    ServiceStatus, StatusReport,
};
use crate::format::{duration, size};

/// `status` or `status <name>`; recent events worded for `markup`.
pub fn status(report: &StatusReport, markup: Markup) -> String {
    match report {
        StatusReport::Service(s) => service(s),
        StatusReport::Login(l) => login(l, markup),
    }
}

fn service(s: &ServiceStatus) -> String {
    let mut text = format!(
        "recbot {} up {}h {:02}m · watching {} ({} Twitch, {} HLS) · recording {} · \
         front-ends: {} · state schema v{}",
        s.version,
        s.up_secs / 3600,
        s.up_secs % 3600 / 60,
        s.watching,
        s.watching - s.hls,
        s.hls,
        s.recording,
        s.frontends.join(", "),
        s.schema
    );
    if let Some(live) = &s.live {
        text.push('\n');
        text.push_str(&live_detection(live));
    }
    {
        text.push('\n');
        text.push_str(&match &s.viewer {
            Some(login) => format!("twitch viewer: logged in as {login}"),
            None => "twitch viewer: logged out — renditions above 1080p are withheld \
                     (`auth twitch-viewer`)"
                .to_string(),
        });
    }
    if let Some(line) = s.chat.as_ref().and_then(chat_line) {
        text.push('\n');
        text.push_str(&line);
    }
    text
}

fn login(l: &LoginStatus, markup: Markup) -> String {
    let watch = &l.watch;
    let mut text = format!(
        "{} — {}, {}; events go to {}.",
        super::replies::named(watch, markup),
        describe_source(&watch.source),
        options(watch),
        watch.room
    );
    if let Some(live) = &l.live {
        text.push_str(&format!("\n{}", live_of(live)));
    }
    if let Some(recording) = &l.recording {
        text.push('\n');
        text.push_str(&recording_now(recording));
    }
    if let Some(secs) = l.next_check_secs {
        text.push_str(&format!("\nNext live check in {}.", duration(secs as f64)));
    }
    if let Some(line) = l.chat.as_ref().and_then(chat_line) {
        text.push('\n');
        text.push_str(&line);
    }
    if !l.recent.is_empty() {
        text.push_str("\nRecent:");
        for event in &l.recent {
            text.push_str(&format!(
                "\n  {} {}",
                event.at.format("%Y-%m-%d %H:%M:%S"),
                event_line_for(event, markup)
            ));
        }
    }
    text
}

/// `live detection: helix every 10 s, 2 of 5 live, last check 3s ago (1 requests)`; with
/// EventSub: `live detection: EventSub up (2000 of 2000 subscriptions, last notification 4s
/// ago), Helix safety net every 120 s, …`.
fn live_detection(d: &LiveDetection) -> String {
    let mut line = match &d.eventsub {
        Some(e) => format!(
            "live detection: {}, {} of {} live",
            eventsub_now(e, d.interval_secs),
            d.live,
            d.watched
        ),
        None => format!(
            "live detection: {} every {} s, {} of {} live",
            d.mode, d.interval_secs, d.live, d.watched
        ),
    };
    if let Some((ago, requests)) = d.last_check {
        line.push_str(&format!(
            ", last check {} ago ({} requests)",
            duration(ago),
            requests
        ));
    }
    if let Some(error) = &d.last_error {
        line.push_str(&format!(", failing: {error}"));
    }
    line
}

fn eventsub_now(e: &EventSubNow, interval_secs: u64) -> String {
    let mut subs = format!("{} of {} subscriptions", e.held, e.wanted);
    if e.full {
        subs.push_str(", cost limit reached");
    }
    match e.last_notification {
        Some(ago) => subs.push_str(&format!(", last notification {} ago", duration(ago))),
        None => subs.push_str(", no notification yet"),
    }
    if e.up {
        return format!("EventSub up ({subs}), Helix safety net every {interval_secs} s");
    }
    let why = e
        .last_error
        .as_deref()
        .map(|err| format!(": {err}"))
        .unwrap_or_default();
    format!("EventSub down{why} ({subs}); polling Helix every {interval_secs} s")
}

/// `live since 2026-01-01 10:00 UTC: "title" [game], 1234 viewers` for one login.
pub fn live_of(live: &LiveOf) -> String {
    match live {
        LiveOf::Unknown { error } => {
            format!("live status unknown: the last check failed ({error})")
        }
        LiveOf::NotLive { interval_secs } => {
            format!("not live (checked every {interval_secs} s)")
        }
        LiveOf::Live {
            started_at,
            title,
            game,
            viewers,
            peak_viewers,
        } => {
            let mut line = String::from("live");
            if let Some(started) = started_at {
                line.push_str(&format!(" since {} UTC", started.format("%Y-%m-%d %H:%M")));
            }
            line.push_str(&format!(": \"{title}\""));
            if let Some(game) = game {
                line.push_str(&format!(" [{game}]"));
            }
            if let Some(viewers) = viewers {
                line.push_str(&format!(", {viewers} viewers"));
            }
            if let Some(peak) = peak_viewers {
                line.push_str(&format!(" (peak {peak} this broadcast)"));
            }
            line
        }
    }
}

/// A login's recording in progress (or its offline grace), as `status <login>` says it.
pub fn recording_now(r: &RecordingNow) -> String {
    match r {
        RecordingNow::Waiting {
            session,
            bytes,
            gaps,
        } => format!(
            "Waiting for the stream to come back (session #{session}; {} recorded so far, {gaps} gap(s)).",
            size(*bytes)
        ),
        RecordingNow::Recording {
            part,
            quality,
            for_secs,
            duration_secs,
            bytes,
            bits_per_sec,
            gaps,
            ad_breaks,
            file,
        } => format!(
            "⏺ Recording part {part} ({quality}) for {}: {} of video, {}, {:.1} Mbit/s, {gaps} gap(s), {ad_breaks} ad break(s) cut → {file}",
            duration(*for_secs),
            duration(*duration_secs),
            size(*bytes),
            bits_per_sec / 1e6,
        ),
    }
}

/// The chat part of `status` (none for a login the chat logger does not know).
pub fn chat_line(chat: &ChatLine) -> Option<String> {
    match chat {
        ChatLine::Off => Some("chat: logging is off ([chat] enabled = false)".into()),
        ChatLine::NoAnswer => Some("chat: the chat logger did not answer in time".into()),
        ChatLine::Service(status) => Some(chat_service_line(status)),
        ChatLine::Login(status) => chat_login_line(status),
    }
}

/// Who the chat logger logs in as: `anonymous`, `as <login>`, or anonymous and why.
pub fn chat_identity(identity: &ChatIdentity) -> String {
    match identity {
        ChatIdentity::Anonymous => "anonymous".into(),
        ChatIdentity::NoAccount => {
            "anonymous: no Twitch account connected yet (`auth twitch`)".into()
        }
        ChatIdentity::Checking => "checking the connected Twitch account".into(),
        ChatIdentity::User(login) => format!("as {login}"),
        ChatIdentity::TokenUnusable(e) => {
            format!("anonymous: the Twitch token cannot be used ({e})")
        }
        ChatIdentity::Refused(reason) => {
            format!("anonymous: Twitch refused the account ({reason})")
        }
    }
}

/// The chat logger's line of the service status.
pub fn chat_service_line(s: &ChatStatus) -> String {
    let mut line = format!(
        "chat: {} of {} room(s) joined on {} connection(s) ({}), {} line(s) logged today",
        s.joined,
        s.wanted,
        s.connections,
        chat_identity(&s.identity),
        s.lines_today
    );
    if s.connections_up < s.connections {
        line.push_str(&format!(
            ", {} connection(s) down",
            s.connections - s.connections_up
        ));
    }
    if s.dropped > 0 {
        line.push_str(&format!(", {} line(s) dropped", s.dropped));
    }
    if let Some(disconnect) = last_disconnect(s) {
        line.push_str(&disconnect);
    }
    for (room, reason) in &s.refused {
        line.push_str(&format!("; {room} not joined: {reason}"));
    }
    line
}

/// The chat line of a login's status.
pub fn chat_login_line(s: &ChatStatus) -> Option<String> {
    let l = s.login.as_ref()?;
    let mut line = if !l.wanted {
        "chat: not logged".to_string()
    } else if l.joined {
        "chat: joined".to_string()
    } else if let Some(reason) = &l.refused {
        format!("chat: not joined ({reason})")
    } else {
        "chat: joining".to_string()
    };
    line.push_str(&format!(", {} line(s) logged today", l.lines_today));
    if let Some(disconnect) = last_disconnect(s) {
        line.push_str(&disconnect);
    }
    Some(line)
}

/// `; last disconnect 2026-01-01 10:00:00 UTC: reason`
fn last_disconnect(s: &ChatStatus) -> Option<String> {
    let (at, reason) = s.last_disconnect.as_ref()?;
    Some(format!(
        "; last disconnect {} UTC: {reason}",
        at.format("%Y-%m-%d %H:%M:%S")
    ))
}

/// `disk`: free space, folder sizes (with their paths for operators), recordings running, and
/// how old the measurement is when it came from the cache.
pub fn disk(d: &DiskReport) -> String {
    let level = match d.level {
        DiskLevel::Fine => "fine".to_string(),
        DiskLevel::Warn { percent } => format!("⚠ above the {percent}% warning level"),
        DiskLevel::Stop { min_free_gb } => {
            format!("❌ below {min_free_gb} GB free: recording is stopped")
        }
    };
    let place = |path: &Option<std::path::PathBuf>| match path {
        Some(path) => format!(" in {}", path.display()),
        None => String::new(),
    };
    let mut text = format!(
        "Disk: {:.0}% used, {} free of {} ({level}).\nRecordings: {}{}\nChat logs: {}{}\nRecording now: {}",
        d.used_percent,
        size(d.free_bytes),
        size(d.total_bytes),
        size(d.recordings_bytes),
        place(&d.recordings_dir),
        size(d.chat_bytes),
        place(&d.chat_dir),
        d.running,
    );
    if d.age_secs > 0 {
        text.push_str(&format!("\n(measured {} ago)", duration(d.age_secs as f64)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_shows_the_viewers_now_and_the_broadcasts_peak() {
        let live = |viewers, peak_viewers| LiveOf::Live {
            started_at: None,
            title: "t".into(),
            game: None,
            viewers,
            peak_viewers,
        };
        assert_eq!(
            live_of(&live(Some(812), Some(1204))),
            "live: \"t\", 812 viewers (peak 1204 this broadcast)"
        );
        assert_eq!(live_of(&live(Some(5), None)), "live: \"t\", 5 viewers");
    }
}
