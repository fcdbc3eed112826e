//! The one vocabulary that flows workers → core → front-ends: [`Event`] (what happened), and
//! [`Room`] (where commands come from and events go).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use serde::{Deserialize, Serialize};

/// Something that happened, as persisted in the event log and shown to operators.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// The watched login the event is about; `None` for service-wide events.
    pub login: Option<Login>,
    pub kind: EventKind,
}

impl Event {
    pub fn now(login: Option<Login>, kind: EventKind) -> Event {
        Event {
            at: Utc::now(),
            login,
            kind,
        }
    }

    /// The variant's name, stored as the event log's `kind` column.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Every kind of event. Variants carry what an operator needs to read in chat; nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The service started and reconciled its persisted state.
    ServiceStarted { version: String, watching: usize },
    /// Shutdown began (SIGINT/SIGTERM); workers are finishing their files.
    ServiceStopping,
    /// Audit: a login was added to (or its options changed in) the watch list.
    WatchAdded {
        by: String,
        room: Room,
        options: String,
    },
    /// Audit: a login was removed from the watch list.
    WatchRemoved { by: String, room: Room },
    /// Audit: a command was refused because the user is not an operator.
    CommandRefused {
        by: String,
        room: Room,
        command: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ServiceStarted { .. } => "ServiceStarted",
            EventKind::ServiceStopping => "ServiceStopping",
            EventKind::WatchAdded { .. } => "WatchAdded",
            EventKind::WatchRemoved { .. } => "WatchRemoved",
            EventKind::CommandRefused { .. } => "CommandRefused",
        }
    }

    /// Audit entries are persisted but not posted: the person who acted already got a reply.
    pub fn is_audit_only(&self) -> bool {
        matches!(
            self,
            EventKind::WatchAdded { .. }
                | EventKind::WatchRemoved { .. }
                | EventKind::CommandRefused { .. }
        )
    }
}

/// Where a command came from and where its login's events go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Room {
    Console,
    /// A Slack channel id.
    Slack(String),
    /// A Discord channel id.
    Discord(String),
}

impl Room {
    pub fn frontend(&self) -> &'static str {
        match self {
            Room::Console => "console",
            Room::Slack(_) => "slack",
            Room::Discord(_) => "discord",
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Console => f.write_str("console"),
            Room::Slack(id) => write!(f, "slack:{id}"),
            Room::Discord(id) => write!(f, "discord:{id}"),
        }
    }
}

impl FromStr for Room {
    type Err = String;

    fn from_str(s: &str) -> Result<Room, String> {
        let valid_id = |id: &str| {
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
        };
        match s.split_once(':') {
            None if s == "console" => Ok(Room::Console),
            Some(("slack", id)) if valid_id(id) => Ok(Room::Slack(id.to_string())),
            Some(("discord", id)) if valid_id(id) => Ok(Room::Discord(id.to_string())),
            _ => Err(format!("`{s}` is not a room")),
        }
    }
}

impl From<Room> for String {
    fn from(room: Room) -> String {
        room.to_string()
    }
}

impl TryFrom<String> for Room {
    type Error = String;

    fn try_from(s: String) -> Result<Room, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_round_trip() {
        for room in [
            Room::Console,
            Room::Slack("C0123".into()),
            Room::Discord("123456789".into()),
        ] {
            assert_eq!(room.to_string().parse::<Room>().unwrap(), room);
        }
        assert!("slack:".parse::<Room>().is_err());
        assert!("irc:x".parse::<Room>().is_err());
        assert!("slack:../x".parse::<Room>().is_err());
    }

    #[test]
    fn events_serialize_with_their_type() {
        let e = Event::now(
            Some(Login::parse("foo").unwrap()),
            EventKind::WatchRemoved {
                by: "console".into(),
                room: Room::Console,
            },
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""type":"WatchRemoved""#), "{json}");
        assert!(json.contains(r#""room":"console""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
