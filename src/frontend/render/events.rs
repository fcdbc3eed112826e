//! Event lines: one line per [`Event`], the same words on every front-end, one function per
//! group of events (service and watch list, live detection, recording, disk, chat, auth,
//! uploads, webhook and mail refusals), and the e-mail digest of several events.

use std::path::Path;

use super::{untrusted, Markup};
use crate::event::{Event, EventKind};
use crate::format::{duration, size};
use crate::rendition::{Codec, Withheld, WithheldWhy};

/// One line describing an event, with its login when it has one (for the console and logs).
pub fn event_line(event: &Event) -> String {
    event_line_for(event, Markup::Plain)
}

/// One line describing an event, its untrusted parts neutralized for `markup`.
pub fn event_line_for(event: &Event, markup: Markup) -> String {
    let w = Words {
        login: event.login.as_ref().map(|l| l.as_str()).unwrap_or("recbot"),
        has_login: event.login.is_some(),
        markup,
    };
    use EventKind as K;
    let kind = &event.kind;
    match kind {
        K::ServiceStarted { .. }
        | K::ServiceStopping
        | K::WatchAdded { .. }
        | K::WatchRemoved { .. }
        | K::CommandRefused { .. } => service_line(&w, kind),
        K::LiveDetected { .. }
        | K::StreamUpdated { .. }
        | K::StreamOffline { .. }
        | K::LiveCheckFailed { .. }
        | K::LiveCheckRecovered
        | K::LiveAdultOnly { .. } => live_line(&w, kind),
        K::EventSubDown { .. }
        | K::EventSubUp
        | K::EventSubRevoked { .. }
        | K::EventSubLimitReached { .. } => eventsub_line(&w, kind),
        K::RecordingStarted { .. }
        | K::RenditionWithheld { .. }
        | K::RecordingGap { .. }
        | K::AdBreak { .. }
        | K::RecordingStalled { .. }
        | K::RecordingPartFinished { .. }
        | K::RecordingFinished { .. }
        | K::RecordingFailed { .. } => recording_line(&w, kind),
        K::GapFilled { .. } | K::VodFillFailed { .. } | K::VodFillDone { .. } => {
            vod_fill_line(&w, kind)
        }
        K::DiskLow {
            used_percent,
            free_gb,
            stopped_recording,
        } => {
            let mut line = format!("⚠ disk {used_percent:.0}% full, {free_gb:.1} GB free");
            if *stopped_recording {
                line.push_str(": recording stopped (parts finalized) until space is freed");
            }
            line
        }
        K::ChatJoined { .. }
        | K::ChatDisconnected { .. }
        | K::ChatReconnected { .. }
        | K::ChatDropped { .. }
        | K::ChatStreamBehind { .. }
        | K::ChatStreamDropped { .. }
        | K::ChatSaved { .. }
        | K::ChatSaveFailed { .. }
        | K::ChatReplayFailed { .. }
        | K::ChatGaveUp { .. }
        | K::ChatUnreadable { .. }
        | K::ChatPaused { .. } => chat_line(&w, kind),
        K::AuthRequired { .. } | K::AuthCompleted { .. } => auth_line(&w, kind),
        K::UploadQueued { .. }
        | K::UploadStarted { .. }
        | K::UploadProgress { .. }
        | K::UploadDeferred { .. }
        | K::UploadFinished { .. }
        | K::UploadFailed { .. }
        | K::UploadFilesKept { .. } => upload_line(&w, kind),
        K::PostStarted { .. }
        | K::PostProgress { .. }
        | K::PostFinished { .. }
        | K::PostFailed { .. } => post_line(&w, kind),
        K::SummaryReady {
            path,
            samples,
            chat_lines,
        } => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            format!(
                "📈 summary of the broadcast: {} ({samples} viewer samples, {chat_lines} chat \
                 lines)",
                w.u(&name)
            )
        }
        K::SummaryFailed { reason } => format!(
            "⚠ the broadcast's summary chart could not be made: {} (the recording is not \
             affected)",
            w.u(reason)
        ),
        K::WebhookRefused {
            webhook,
            delivery,
            event,
            status,
        } => format!(
            "⚠ webhook {} refused event #{delivery} ({event}) with HTTP {status}: it was \
             skipped for that webhook (the event log keeps it); check the receiver",
            w.u(webhook)
        ),
        K::DeliveryFailing {
            to,
            attempts,
            reason,
        } => format!(
            "⚠ delivery to {} failed {attempts} times in a row ({}): events wait and are sent \
             once it works again (nothing is skipped)",
            w.u(to),
            w.u(reason)
        ),
        K::EmailRefused {
            code,
            reason,
            events,
            ..
        } => format!(
            "⚠ the mail server refused a mail of {events} event(s) with {code} ({}): they were \
             not mailed (the event log keeps them); check [email] in the config",
            w.u(reason)
        ),
    }
}

/// What every event line needs: its login (or `recbot`) and how outside text is neutralized.
struct Words<'a> {
    login: &'a str,
    /// The event is about one login (not service-wide).
    has_login: bool,
    markup: Markup,
}

impl Words<'_> {
    /// Outside text, neutralized.
    fn u(&self, text: &str) -> String {
        untrusted(text, self.markup)
    }

    /// A file's name (not its folders), neutralized.
    fn file_name(&self, file: &Path) -> String {
        self.u(&file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    }
}

/// The group functions are only called by [`event_line_for`] with an event of their group.
fn not_in_group(group: &str, kind: &EventKind) -> ! {
    unreachable!("{} is not a {group} event", kind.name())
}

fn service_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::ServiceStarted { version, watching } => {
            format!("recbot {version} started, watching {watching}")
        }
        EventKind::ServiceStopping => {
            "recbot is stopping: finishing files and saving state".to_string()
        }
        EventKind::WatchAdded { by, room, options } => {
            format!("{login} added by {} in {room} ({options})", w.u(by))
        }
        EventKind::WatchRemoved { by, room } => {
            format!("{login} removed by {} in {room}", w.u(by))
        }
        EventKind::CommandRefused { by, room, command } => format!(
            "refused `{}` from {} in {room}: not an operator",
            w.u(command),
            w.u(by)
        ),
        other => not_in_group("service", other),
    }
}

fn live_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::LiveDetected {
            title,
            game,
            latency_secs,
            ..
        } => {
            // EventSub reports a stream before its title is known (a StreamUpdated follows).
            let mut line = match title.is_empty() {
                true => format!("🔴 {login} is live"),
                false => format!("🔴 {login} is live: {}", w.u(title)),
            };
            if let Some(game) = game {
                line.push_str(&format!(" [{}]", w.u(game)));
            }
            if let Some(latency) = latency_secs {
                line.push_str(&format!(" (detected {} after start)", duration(*latency)));
            }
            line
        }
        EventKind::StreamUpdated { title, game } => match game {
            Some(game) => format!("{login} changed title/game: {} [{}]", w.u(title), w.u(game)),
            None => format!("{login} changed title: {}", w.u(title)),
        },
        EventKind::StreamOffline { .. } => format!("{login} is offline"),
        // With a login: one HLS source's checks (the Twitch watcher's are about every login).
        EventKind::LiveCheckFailed { reason, cycles } if w.has_login => format!(
            "⚠ {login}: the source failed {cycles} checks in a row; checking less often until it answers: {}",
            w.u(reason)
        ),
        EventKind::LiveCheckFailed { reason, cycles } => format!(
            "⚠ live checks failed {cycles} times in a row; live streams may be missed: {}",
            w.u(reason)
        ),
        EventKind::LiveCheckRecovered if w.has_login => {
            format!("{login}: the source answers again")
        }
        EventKind::LiveCheckRecovered => "live checks work again".to_string(),
        EventKind::LiveAdultOnly { title, status } => {
            let said = status
                .as_ref()
                .map(|s| format!(" (the platform says {})", w.u(s)))
                .unwrap_or_default();
            format!(
                "🔞 {login} is live but the stream is for adults only: not recorded. Set \
                 [chzzk] nid_aut and nid_ses (cookies of an adult-verified Naver account) to \
                 record it{said}. Title: {}",
                w.u(title)
            )
        }
        other => not_in_group("live", other),
    }
}

/// EventSub (pushed live detection) going down, coming back, and what it cannot watch.
fn eventsub_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::EventSubDown {
            reason,
            polling_secs,
        } => format!(
            "⚠ EventSub is down; checking Helix every {polling_secs} s meanwhile: {}",
            w.u(reason)
        ),
        EventKind::EventSubUp => "EventSub works again; live streams are pushed".to_string(),
        EventKind::EventSubRevoked {
            subscription,
            reason,
        } => format!(
            "⚠ {login}: Twitch revoked the {} subscription ({}); only the slower Helix checks \
             watch it now",
            w.u(subscription),
            w.u(reason)
        ),
        EventKind::EventSubLimitReached { held, wanted } => format!(
            "⚠ EventSub's subscription limit is reached: {held} of {wanted} subscriptions held; \
             the other logins are found by the slower Helix checks only"
        ),
        other => not_in_group("eventsub", other),
    }
}

fn recording_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::RecordingStarted {
            file,
            quality,
            part,
        } => {
            let file = w.u(file);
            if *part > 1 {
                format!("⏺ {login}: recording part {part} ({quality}) to {file}")
            } else {
                format!("⏺ {login}: recording ({quality}) to {file}")
            }
        }
        EventKind::RenditionWithheld {
            recorded,
            withheld,
            audio_only,
        } => withheld_line(w, recorded, withheld, *audio_only),
        EventKind::RecordingGap {
            first_sequence,
            last_sequence,
            seconds,
            reason,
        } => format!(
            "⚠ {login}: gap of {} in the recording (segments {first_sequence}–{last_sequence}): {}",
            duration(*seconds),
            w.u(reason)
        ),
        EventKind::AdBreak { duration_secs } => {
            format!("{login}: ad break of {} skipped", duration(*duration_secs))
        }
        EventKind::RecordingStalled { seconds } => format!(
            "⚠ {login}: no new video for {} although the stream is live; still trying",
            duration(*seconds as f64)
        ),
        EventKind::RecordingPartFinished {
            part,
            file,
            bytes,
            duration_secs,
            gaps,
            recovered,
            ..
        } => {
            let name = w.file_name(file);
            let mut line = format!(
                "{login}: part {part} finished: {name}, {}, {}",
                duration(*duration_secs),
                size(*bytes)
            );
            if *gaps > 0 {
                line.push_str(&format!(", {gaps} gap(s)"));
            }
            if *recovered {
                line.push_str(" (recovered after a crash)");
            }
            line
        }
        EventKind::RecordingFinished { parts: 0, .. } => {
            format!("⏹ {login}: recording ended without video")
        }
        EventKind::RecordingFinished {
            parts,
            duration_secs,
            bytes,
            gaps,
        } => format!(
            "⏹ {login}: recording finished: {}, {}, {parts} part(s), {gaps} gap(s)",
            duration(*duration_secs),
            size(*bytes)
        ),
        EventKind::RecordingFailed { reason } => {
            format!("❌ {login}: recording failed: {}", w.u(reason))
        }
        other => not_in_group("recording", other),
    }
}

fn vod_fill_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::GapFilled {
            part,
            file,
            seconds,
            muted,
            vod_id,
        } => {
            let mut line = format!(
                "🩹 {login}: gap of {} filled from the VOD (part {part}, {}, video {})",
                duration(*seconds),
                w.file_name(file),
                w.u(vod_id)
            );
            if *muted {
                line.push_str("; Twitch muted some of its audio");
            }
            line
        }
        EventKind::VodFillFailed {
            reason,
            gaps,
            seconds,
        } => format!(
            "⚠ {login}: {gaps} gap(s), {} in all, could not be filled from the VOD: {}",
            duration(*seconds),
            w.u(reason)
        ),
        EventKind::VodFillDone { filled, unfilled } => {
            format!("{login}: VOD fill done: {filled} gap(s) filled, {unfilled} not")
        }
        other => not_in_group("VOD fill", other),
    }
}

/// `recording 1080p60; 1440p60 HEVC is on air but needs `auth twitch-viewer``, or a loud
/// warning when only audio is recorded.
fn withheld_line(w: &Words, recorded: &str, withheld: &[Withheld], audio_only: bool) -> String {
    let login = w.login;
    let missed = withheld
        .iter()
        .map(|r| {
            let name = match r.codec {
                Some(codec) => format!("{} {}", w.u(&r.name), codec_name(codec)),
                None => w.u(&r.name),
            };
            let why = match &r.why {
                WithheldWhy::NeedsLogin => "needs `auth twitch-viewer`".to_string(),
                WithheldWhy::ExcludedCodec => "is excluded by [recording] codecs".to_string(),
                WithheldWhy::Other { reasons } if reasons.is_empty() => {
                    "is withheld by Twitch".to_string()
                }
                WithheldWhy::Other { reasons } => {
                    format!("is withheld by Twitch ({})", w.u(&reasons.join(", ")))
                }
            };
            format!("{name} is on air but {why}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    match (audio_only, missed.is_empty()) {
        (true, true) => format!(
            "⚠ {login}: recording AUDIO ONLY: the stream offers no video rendition recbot may \
             record"
        ),
        (true, false) => format!("⚠ {login}: recording AUDIO ONLY: {missed}"),
        (false, _) => format!("{login}: recording {}; {missed}", w.u(recorded)),
    }
}

/// How people call a codec.
fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Av1 => "AV1",
        Codec::H265 => "HEVC",
        Codec::H264 => "H.264",
    }
}

fn chat_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::ChatJoined { rooms } if w.has_login && *rooms == 1 => {
            format!("💬 {login}: logging chat")
        }
        EventKind::ChatJoined { rooms } => format!("💬 chat logging: joined {rooms} room(s)"),
        EventKind::ChatDisconnected { reason } => {
            format!("chat connection lost: {}; reconnecting", w.u(reason))
        }
        EventKind::ChatReconnected { offline_secs } => {
            format!("chat reconnected after {}", duration(*offline_secs))
        }
        EventKind::ChatDropped { lines } => format!(
            "⚠ {login}: {lines} chat line(s) could not be written (disk too slow or failing)"
        ),
        EventKind::ChatStreamBehind { waiting } => format!(
            "⚠ the chat stream cannot reach NATS: chat lines are spooled on disk ({waiting} \
             waiting) and sent once it answers (the day files are not affected)"
        ),
        EventKind::ChatStreamDropped { lines } => format!(
            "⚠ the chat stream's spool is full: {lines} chat line(s) left out of the stream \
             (the day files keep them)"
        ),
        EventKind::ChatSaved { part, file, lines } => {
            let name = w.file_name(file);
            format!("💬 {login}: chat of part {part} saved: {name} ({lines} line(s))")
        }
        EventKind::ChatSaveFailed { part, reason } => format!(
            "⚠ {login}: the chat of part {part} could not be saved beside it: {} (the day \
             logs still have it)",
            w.u(reason)
        ),
        EventKind::ChatReplayFailed { part, reason } => format!(
            "⚠ {login}: the chat replay subtitles of part {part} could not be written: {} (its \
             chat file is saved)",
            w.u(reason)
        ),
        EventKind::ChatGaveUp {
            platform,
            attempts,
            reason,
        } => format!(
            "⚠ {login}: stopped logging the {} chat after {attempts} failed attempt(s): {}",
            platform_title(platform),
            w.u(reason)
        ),
        EventKind::ChatUnreadable { platform, reason } => format!(
            "⚠ {login}: the {} chat sent something recbot cannot read ({}); it is kept raw in \
             the chat log and logging goes on",
            platform_title(platform),
            w.u(reason)
        ),
        EventKind::ChatPaused {
            platform,
            seconds,
            reason,
        } => format!(
            "⚠ {login}: {} refused the chat requests ({}); pausing them for {}",
            platform_title(platform),
            w.u(reason),
            duration(*seconds as f64)
        ),
        other => not_in_group("chat", other),
    }
}

/// How a platform word of an event is shown.
fn platform_title(platform: &str) -> &str {
    match platform {
        "chzzk" => "Chzzk",
        "bilibili" => "Bilibili Live",
        "twitch" => "Twitch",
        other => other,
    }
}

fn auth_line(w: &Words, kind: &EventKind) -> String {
    match kind {
        // Never the consent link (events go to the public events room, and older event logs
        // may still carry one): the operator who runs `auth` gets it privately.
        EventKind::AuthRequired {
            service, reason, ..
        } => format!(
            "🔑 {service} needs authorization ({}): an operator should run `auth {service}` \
             (the link is sent to them privately)",
            w.u(reason)
        ),
        EventKind::AuthCompleted { service, account } => match account {
            Some(account) => format!("🔑 {service} connected as {}", w.u(account)),
            None => format!("🔑 {service} connected"),
        },
        other => not_in_group("auth", other),
    }
}

fn upload_line(w: &Words, kind: &EventKind) -> String {
    let login = w.login;
    match kind {
        EventKind::UploadQueued { job, file } => format!("upload #{job} queued: {}", w.u(file)),
        EventKind::UploadStarted {
            job,
            file,
            bytes,
            from_bytes,
        } => {
            let file = w.u(file);
            if *from_bytes > 0 && *bytes > 0 {
                format!(
                    "⬆ upload #{job} resumed at {:.0}%: {file} ({})",
                    *from_bytes as f64 * 100.0 / *bytes as f64,
                    size(*bytes)
                )
            } else {
                format!("⬆ upload #{job} started: {file} ({})", size(*bytes))
            }
        }
        EventKind::UploadProgress {
            job,
            sent_bytes,
            total_bytes,
            bytes_per_sec,
        } => upload_progress(*job, *sent_bytes, *total_bytes, *bytes_per_sec),
        EventKind::UploadDeferred { job, reason, until } => format!(
            "upload #{job} waits until {} UTC: {}",
            until.format("%Y-%m-%d %H:%M"),
            w.u(reason)
        ),
        EventKind::UploadFinished { job, url, .. } => {
            format!("✅ {login}: upload #{job} finished: {url}")
        }
        EventKind::UploadFailed { job, reason } => format!(
            "❌ upload #{job} failed: {} (the file is kept; `retry {job}` re-queues it)",
            w.u(reason)
        ),
        EventKind::UploadFilesKept { job, file, reason } => format!(
            "⚠️ {login}: upload #{job}: {}, so {} is kept, not deleted",
            w.u(reason),
            w.u(file)
        ),
        other => not_in_group("upload", other),
    }
}

fn post_line(w: &Words, kind: &EventKind) -> String {
    match kind {
        EventKind::PostStarted { job, file, mode } => {
            let what = if mode == "transcode" {
                "transcoding"
            } else {
                "remuxing"
            };
            format!(
                "🎞 post-processing #{job}: {what} {} to MP4; its upload waits",
                w.u(file)
            )
        }
        EventKind::PostProgress {
            job,
            done_secs,
            total_secs,
            speed,
        } => {
            let mut line = format!("🎞 post-processing #{job}: {} done", duration(*done_secs));
            if *total_secs > 0.0 {
                let percent = (done_secs / total_secs * 100.0).clamp(0.0, 100.0);
                line = format!(
                    "🎞 post-processing #{job}: {percent:.0}% ({} of {})",
                    duration(*done_secs),
                    duration(*total_secs)
                );
            }
            if let Some(speed) = speed.filter(|s| *s > 0.0) {
                line.push_str(&format!(", {speed:.1}× real time"));
                if *total_secs > *done_secs {
                    let left = (total_secs - done_secs) / speed;
                    line.push_str(&format!(", about {} left", duration(left)));
                }
            }
            line
        }
        EventKind::PostFinished {
            job,
            file,
            bytes,
            secs,
            speed,
            original_removed,
            ..
        } => format!(
            "🎞 post-processing #{job} finished: {} ({}, {}, {speed:.1}× real time){}",
            w.u(file),
            size(*bytes),
            duration(*secs),
            if *original_removed {
                "; the recorded part was removed"
            } else {
                ""
            }
        ),
        EventKind::PostFailed {
            job,
            file,
            reason,
            ffmpeg_lines,
        } => {
            let mut line = match (job, file) {
                (Some(job), Some(file)) => format!(
                    "❌ post-processing #{job} of {} failed: {} (the part is uploaded as \
                     recorded)",
                    w.u(file),
                    w.u(reason)
                ),
                (Some(job), None) => format!("❌ post-processing #{job} failed: {}", w.u(reason)),
                (None, _) => format!(
                    "❌ post-processing is unavailable: {} (parts are uploaded as recorded)",
                    w.u(reason)
                ),
            };
            if !ffmpeg_lines.is_empty() {
                let lines: Vec<String> = ffmpeg_lines.iter().map(|l| w.u(l)).collect();
                line.push_str(&format!("; ffmpeg said: {}", lines.join(" / ")));
            }
            line
        }
        other => not_in_group("post", other),
    }
}

/// `⬆ upload #3: 40% (400 MB of 1.00 GB), 5 MB/s, about 2m 00s left`
fn upload_progress(job: i64, sent_bytes: u64, total_bytes: u64, bytes_per_sec: f64) -> String {
    let percent = if total_bytes > 0 {
        sent_bytes as f64 * 100.0 / total_bytes as f64
    } else {
        100.0
    };
    let mut line = format!(
        "⬆ upload #{job}: {percent:.0}% ({} of {})",
        size(sent_bytes),
        size(total_bytes)
    );
    if bytes_per_sec > 0.0 {
        let left = total_bytes.saturating_sub(sent_bytes) as f64 / bytes_per_sec;
        line.push_str(&format!(
            ", {}/s, about {} left",
            size(bytes_per_sec as u64),
            duration(left)
        ));
    }
    line
}

/// An e-mail digest of `events` (oldest first, at least one): the subject names the count and
/// the first event; the body has one line per event, with its time (UTC).
pub fn digest(events: &[Event]) -> (String, String) {
    let first = events.first().map(event_line).unwrap_or_default();
    let first: String = first.chars().take(120).collect();
    let subject = match events.len() {
        1 => format!("recbot: {first}"),
        n => format!("recbot: {n} events, first: {first}"),
    };
    let mut body = String::new();
    for event in events {
        body.push_str(&event.at.format("%Y-%m-%d %H:%M:%S UTC  ").to_string());
        body.push_str(&event_line(event));
        body.push('\n');
    }
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(recorded: &str, withheld: Vec<Withheld>, audio_only: bool) -> String {
        event_line(&Event::now(
            Some(recbot_commands::Login::parse("foo").unwrap()),
            EventKind::RenditionWithheld {
                recorded: recorded.into(),
                withheld,
                audio_only,
            },
        ))
    }

    fn withheld(name: &str, codec: Option<Codec>, why: WithheldWhy) -> Withheld {
        Withheld {
            name: name.into(),
            codec,
            why,
        }
    }

    #[test]
    fn what_is_lost_is_said_in_words() {
        assert_eq!(
            line(
                "1080p60",
                vec![withheld(
                    "1440p60",
                    Some(Codec::H265),
                    WithheldWhy::NeedsLogin
                )],
                false
            ),
            "foo: recording 1080p60; 1440p60 HEVC is on air but needs `auth twitch-viewer`"
        );
        assert_eq!(
            line(
                "720p60",
                vec![
                    withheld("1080p60", Some(Codec::Av1), WithheldWhy::ExcludedCodec),
                    withheld(
                        "900p60",
                        None,
                        WithheldWhy::Other {
                            reasons: vec!["AUTHZ_REGION_BLOCKED".into()]
                        }
                    ),
                ],
                false
            ),
            "foo: recording 720p60; 1080p60 AV1 is on air but is excluded by [recording] codecs; \
             900p60 is on air but is withheld by Twitch (AUTHZ_REGION_BLOCKED)"
        );
        assert_eq!(
            line(
                "audio_only",
                vec![withheld(
                    "1440p60",
                    Some(Codec::H264),
                    WithheldWhy::NeedsLogin
                )],
                true
            ),
            "⚠ foo: recording AUDIO ONLY: 1440p60 H.264 is on air but needs `auth twitch-viewer`"
        );
        assert_eq!(
            line("audio_only", vec![], true),
            "⚠ foo: recording AUDIO ONLY: the stream offers no video rendition recbot may record"
        );
    }

    #[test]
    fn platform_chat_reports_name_the_platform() {
        let login = Some(recbot_commands::Login::parse("foo").unwrap());
        let say = |kind| event_line(&Event::now(login.clone(), kind));
        assert_eq!(
            say(EventKind::ChatGaveUp {
                platform: "chzzk".into(),
                attempts: 21,
                reason: "cannot connect".into(),
            }),
            "⚠ foo: stopped logging the Chzzk chat after 21 failed attempt(s): cannot connect"
        );
        assert_eq!(
            say(EventKind::ChatUnreadable {
                platform: "bilibili".into(),
                reason: "not JSON".into(),
            }),
            "⚠ foo: the Bilibili Live chat sent something recbot cannot read (not JSON); it is \
             kept raw in the chat log and logging goes on"
        );
        assert!(say(EventKind::ChatPaused {
            platform: "bilibili".into(),
            seconds: 60,
            reason: "risk control (-352)".into(),
        })
        .starts_with("⚠ foo: Bilibili Live refused the chat requests (risk control (-352)); pausing them for"));
    }
}
