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
    }
}

/// A notice as the console shows it.
pub fn notice_line(notice: &Notice) -> String {
    event_line(&notice.event)
}
