//! Figures as people read them (`duration`, `size`), shared by the front-ends' texts and the
//! upload worker's video descriptions, so both say the same; a watch's options, shared by the
//! core's `WatchAdded` event and the front-ends' replies.

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

/// A watch's options: `quality best, upload on, chat on` (chat is not shown for HLS sources,
/// which have none). Said in `add`'s event and reply, `list` and `status`.
pub fn watch_options(
    source: &recbot_commands::Source,
    quality: recbot_commands::Quality,
    upload: bool,
    chat: bool,
    post: Option<recbot_commands::PostMode>,
) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut text = match source {
        recbot_commands::Source::Twitch => {
            format!(
                "quality {quality}, upload {}, chat {}",
                on(upload),
                on(chat)
            )
        }
        recbot_commands::Source::Hls { .. }
        | recbot_commands::Source::Chzzk
        | recbot_commands::Source::Bilibili => {
            format!("quality {quality}, upload {}", on(upload))
        }
    };
    // Only a login's own choice is shown; without one it follows `[postprocess] mode`.
    if let Some(post) = post {
        text.push_str(", post ");
        text.push_str(post.as_str());
    }
    text
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
