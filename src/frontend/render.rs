//! Events as plain text, the same words on every front-end.

use crate::core::Notice;
use crate::event::{Event, EventKind};

/// One line describing an event, with its login when it has one.
pub fn event_line(event: &Event) -> String {
    let login = event.login.as_ref().map(|l| l.as_str()).unwrap_or("recbot");
    match &event.kind {
        EventKind::ServiceStarted { version, watching } => {
            format!("recbot {version} started, watching {watching}")
        }
        EventKind::ServiceStopping => {
            "recbot is stopping: finishing files and saving state".to_string()
        }
        EventKind::WatchAdded { by, room, options } => {
            format!("{login} added by {by} in {room} ({options})")
        }
        EventKind::WatchRemoved { by, room } => format!("{login} removed by {by} in {room}"),
        EventKind::CommandRefused { by, room, command } => {
            format!("refused `{command}` from {by} in {room}: not an operator")
        }
        EventKind::LiveDetected {
            title,
            game,
            latency_secs,
            ..
        } => {
            let mut line = format!("🔴 {login} is live: {title}");
            if let Some(game) = game {
                line.push_str(&format!(" [{game}]"));
            }
            if let Some(latency) = latency_secs {
                line.push_str(&format!(" (detected {} after start)", duration(*latency)));
            }
            line
        }
        EventKind::StreamUpdated { title, game } => match game {
            Some(game) => format!("{login} changed title/game: {title} [{game}]"),
            None => format!("{login} changed title: {title}"),
        },
        EventKind::StreamOffline { .. } => format!("{login} is offline"),
        // With a login: one HLS source's checks (the Twitch watcher's are about every login).
        EventKind::LiveCheckFailed { reason, cycles } if event.login.is_some() => format!(
            "⚠ {login}: the source failed {cycles} checks in a row; checking less often until it answers: {reason}"
        ),
        EventKind::LiveCheckFailed { reason, cycles } => format!(
            "⚠ live checks failed {cycles} times in a row; live streams may be missed: {reason}"
        ),
        EventKind::LiveCheckRecovered if event.login.is_some() => {
            format!("{login}: the source answers again")
        }
        EventKind::LiveCheckRecovered => "live checks work again".to_string(),
        EventKind::RecordingStarted {
            file,
            quality,
            part,
        } => {
            if *part > 1 {
                format!("⏺ {login}: recording part {part} ({quality}) to {file}")
            } else {
                format!("⏺ {login}: recording ({quality}) to {file}")
            }
        }
        EventKind::RecordingGap {
            first_sequence,
            last_sequence,
            seconds,
            reason,
        } => format!(
            "⚠ {login}: gap of {} in the recording (segments {first_sequence}–{last_sequence}): {reason}",
            duration(*seconds)
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
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
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
        EventKind::RecordingFailed { reason } => format!("❌ {login}: recording failed: {reason}"),
        EventKind::DiskLow {
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
        EventKind::ChatJoined { rooms } => match &event.login {
            Some(login) if *rooms == 1 => format!("💬 {login}: logging chat"),
            _ => format!("💬 chat logging: joined {rooms} room(s)"),
        },
        EventKind::ChatDisconnected { reason } => {
            format!("chat connection lost: {reason}; reconnecting")
        }
        EventKind::ChatReconnected { offline_secs } => {
            format!("chat reconnected after {}", duration(*offline_secs))
        }
        EventKind::ChatDropped { lines } => format!(
            "⚠ {login}: {lines} chat line(s) could not be written (disk too slow or failing)"
        ),
        EventKind::ChatSaved { part, file, lines } => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("💬 {login}: chat of part {part} saved: {name} ({lines} line(s))")
        }
        EventKind::ChatSaveFailed { part, reason } => format!(
            "⚠ {login}: the chat of part {part} could not be saved beside it: {reason} (the day \
             logs still have it)"
        ),
        EventKind::AuthRequired {
            service,
            reason,
            url,
        } => match url {
            Some(url) => format!("🔑 {service} needs authorization ({reason}): open {url}"),
            None => format!("🔑 {service} needs authorization ({reason}): run `auth {service}`"),
        },
        EventKind::AuthCompleted { service, account } => match account {
            Some(account) => format!("🔑 {service} connected as {account}"),
            None => format!("🔑 {service} connected"),
        },
        EventKind::UploadQueued { job, file } => format!("upload #{job} queued: {file}"),
        EventKind::UploadStarted {
            job,
            file,
            bytes,
            from_bytes,
        } => {
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
        } => {
            let percent = if *total_bytes > 0 {
                *sent_bytes as f64 * 100.0 / *total_bytes as f64
            } else {
                100.0
            };
            let mut line = format!(
                "⬆ upload #{job}: {percent:.0}% ({} of {})",
                size(*sent_bytes),
                size(*total_bytes)
            );
            if *bytes_per_sec > 0.0 {
                let left = total_bytes.saturating_sub(*sent_bytes) as f64 / bytes_per_sec;
                line.push_str(&format!(
                    ", {}/s, about {} left",
                    size(*bytes_per_sec as u64),
                    duration(left)
                ));
            }
            line
        }
        EventKind::UploadDeferred { job, reason, until } => format!(
            "upload #{job} waits until {} UTC: {reason}",
            until.format("%Y-%m-%d %H:%M")
        ),
        EventKind::UploadFinished { job, url, .. } => {
            format!("✅ {login}: upload #{job} finished: {url}")
        }
        EventKind::UploadFailed { job, reason } => {
            format!("❌ upload #{job} failed: {reason} (the file is kept; `retry {job}` re-queues it)")
        }
        EventKind::UploadFilesKept { job, file, reason } => {
            format!("⚠️ {login}: upload #{job}: {reason}, so {file} is kept, not deleted")
        }
    }
}

/// A notice as the console shows it.
pub fn notice_line(notice: &Notice) -> String {
    event_line(&notice.event)
}

/// `3h 02m`, `4m 05s`, `12s`.
pub fn duration(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `1.5 GB`, `340 MB`, `12 KB`, `80 B` (decimal units, as disks are sold).
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} KB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(3.0 * 3600.0 + 125.0), "3h 02m");
        assert_eq!(size(80), "80 B");
        assert_eq!(size(340_000_000), "340 MB");
        assert_eq!(size(1_500_000_000), "1.50 GB");
    }
}
