//! One IRC connection to Twitch: the login handshake (CAP REQ with ACK check, PASS/NICK),
//! outgoing commands, keepalive state, and the control lines (PING, PONG, RECONNECT, CAP,
//! numerics, NOTICE, our own JOIN/PART echo) read through `irc_proto`. Chat lines never go
//! through `irc_proto`: the shard encodes them from the raw bytes (see `record`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use irc_proto::{CapSubCommand, Command, Message, Response};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

use super::transport::{Dialer, LineReader, RawLine, Stream};
use crate::secret::Secret;

/// The capabilities recbot needs: tags (ids, times, names) and commands (CLEARCHAT, USERNOTICE,
/// RECONNECT, …).
pub const CAPABILITIES: &str = "twitch.tv/tags twitch.tv/commands";

/// Who we log in as.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// `justinfan<digits>`, no password.
    Anonymous,
    User {
        login: String,
        token: Secret,
    },
}

impl Identity {
    /// The nick for a new connection (a fresh `justinfan` number each time).
    fn nick(&self) -> String {
        match self {
            Identity::Anonymous => {
                format!("justinfan{}", rand::random_range(10_000..100_000_000u64))
            }
            Identity::User { login, .. } => login.clone(),
        }
    }
}

/// Why a connection could not be opened or was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network, TLS, EOF, timeouts: retry with backoff.
    Network,
    /// The server refused the token: retry anonymously.
    Auth,
    /// The server does not speak what we need (CAP NAK, …).
    Protocol,
}

impl ConnError {
    pub fn network(message: impl Into<String>) -> ConnError {
        ConnError {
            kind: ErrorKind::Network,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A line received during the handshake, to be logged like any other.
#[derive(Debug, Clone)]
pub struct Received {
    pub recv_ms: i64,
    pub bytes: Vec<u8>,
}

/// What a control line means to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Answer with PONG carrying this.
    Ping(String),
    Pong,
    Reconnect,
    /// Our own JOIN/PART echo for a room.
    Joined(String),
    Parted(String),
    /// A NOTICE about a room we could not join (suspended, banned, …).
    JoinRefused {
        room: String,
        reason: String,
    },
    /// The server refused our login.
    AuthFailed(String),
    CapAck(String),
    CapNak(String),
    Welcome,
    Other,
}

/// NOTICE ids that mean "this room cannot be joined".
const JOIN_REFUSALS: &[&str] = &["msg_channel_suspended", "tos_ban", "msg_channel_blocked"];

/// Reads a control line with `irc_proto` (they are rare, so its allocations do not matter).
pub fn control(text: &str, nick: &str) -> Control {
    let Ok(message) = text.parse::<Message>() else {
        return Control::Other;
    };
    let own = message.source_nickname() == Some(nick);
    let msg_id = message.tags.as_ref().and_then(|tags| {
        tags.iter()
            .find(|t| t.0 == "msg-id")
            .and_then(|t| t.1.clone())
    });
    match message.command {
        Command::PING(server, _) => Control::Ping(server),
        Command::PONG(..) => Control::Pong,
        Command::Raw(ref c, _) if c == "RECONNECT" => Control::Reconnect,
        Command::JOIN(channel, ..) if own => {
            Control::Joined(channel.trim_start_matches('#').to_string())
        }
        Command::PART(channel, _) if own => {
            Control::Parted(channel.trim_start_matches('#').to_string())
        }
        Command::CAP(_, CapSubCommand::ACK, a, b) => Control::CapAck(b.or(a).unwrap_or_default()),
        Command::CAP(_, CapSubCommand::NAK, a, b) => Control::CapNak(b.or(a).unwrap_or_default()),
        Command::Response(Response::RPL_WELCOME, _) => Control::Welcome,
        Command::NOTICE(target, text) => {
            if target == "*"
                && (text.contains("authentication failed")
                    || text.contains("Improperly formatted auth"))
            {
                Control::AuthFailed(text)
            } else if let (Some(room), Some(id)) = (target.strip_prefix('#'), msg_id) {
                if JOIN_REFUSALS.contains(&id.as_str()) {
                    Control::JoinRefused {
                        room: room.to_string(),
                        reason: text,
                    }
                } else {
                    Control::Other
                }
            } else {
                Control::Other
            }
        }
        _ => Control::Other,
    }
}

/// How long a write may wait for the server to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest JOIN line we send (Twitch: 512 bytes per line including CR LF).
const MAX_JOIN_LINE: usize = 500;

/// An open, logged-in connection.
pub struct Conn {
    pub id: u64,
    pub nick: String,
    pub reader: LineReader<ReadHalf<Stream>>,
    writer: WriteHalf<Stream>,
    pub opened: Instant,
    /// Rooms whose JOIN echo arrived on this connection.
    pub joined: HashSet<Arc<str>>,
    /// Rooms to JOIN, in order.
    pub queue: VecDeque<Arc<str>>,
    /// JOINs sent and not yet echoed.
    pub pending: HashMap<Arc<str>, Instant>,
    pub next_ping: Instant,
    pub pong_deadline: Option<Instant>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("nick", &self.nick)
            .field("joined", &self.joined.len())
            .finish()
    }
}

impl Conn {
    /// Dials and logs in: `CAP REQ`, `PASS` (users only), `NICK`; then waits for the CAP ACK
    /// and the welcome (001) within `timeout`, answering PINGs. Returns the lines received on
    /// the way, to be logged.
    pub async fn open(
        id: u64,
        dialer: &Dialer,
        identity: &Identity,
        timeout: Duration,
        ping_interval: Duration,
    ) -> Result<(Conn, Vec<Received>), ConnError> {
        let stream = dialer.dial(timeout).await.map_err(|e| {
            ConnError::network(format!("cannot connect to {}: {e}", dialer.describe()))
        })?;
        let (read, write) = tokio::io::split(stream);
        let nick = identity.nick();
        let mut conn = Conn {
            id,
            nick: nick.clone(),
            reader: LineReader::new(read),
            writer: write,
            opened: Instant::now(),
            joined: HashSet::new(),
            queue: VecDeque::new(),
            pending: HashMap::new(),
            next_ping: Instant::now() + ping_interval,
            pong_deadline: None,
        };
        let mut hello = format!("CAP REQ :{CAPABILITIES}\r\n");
        if let Identity::User { token, .. } = identity {
            // Written straight to the socket; never formatted into anything that is logged.
            hello.push_str("PASS oauth:");
            hello.push_str(token.expose());
            hello.push_str("\r\n");
        }
        hello.push_str(&Message::from(Command::NICK(nick.clone())).to_string());
        conn.write(hello.as_bytes()).await?;
        let received = tokio::time::timeout(timeout, conn.handshake())
            .await
            .unwrap_or_else(|_| {
                Err(ConnError::network(format!(
                    "{} did not finish the login within {} s",
                    dialer.describe(),
                    timeout.as_secs_f64()
                )))
            })?;
        conn.opened = Instant::now();
        conn.next_ping = conn.opened + ping_interval;
        Ok((conn, received))
    }

    async fn handshake(&mut self) -> Result<Vec<Received>, ConnError> {
        let mut received = Vec::new();
        let (mut acked, mut welcomed) = (false, false);
        while !(acked && welcomed) {
            if self
                .reader
                .fill()
                .await
                .map_err(|e| ConnError::network(format!("connection lost during login: {e}")))?
                == 0
            {
                return Err(ConnError::network(
                    "the server closed the connection during login",
                ));
            }
            let recv_ms = chrono::Utc::now().timestamp_millis();
            let mut pongs = Vec::new();
            let mut failure = None;
            while let Some(line) = self.reader.next_line() {
                let bytes = match line {
                    RawLine::Line(b) | RawLine::TooLong(b) => b,
                };
                received.push(Received {
                    recv_ms,
                    bytes: bytes.to_vec(),
                });
                match control(&String::from_utf8_lossy(bytes), &self.nick) {
                    Control::CapAck(caps) => {
                        acked = CAPABILITIES
                            .split(' ')
                            .all(|c| caps.split(' ').any(|g| g == c));
                        if !acked {
                            failure = Some(ConnError {
                                kind: ErrorKind::Protocol,
                                message: format!("the server acknowledged only `{caps}`"),
                            });
                        }
                    }
                    Control::CapNak(caps) => {
                        failure = Some(ConnError {
                            kind: ErrorKind::Protocol,
                            message: format!(
                                "the server refused the capabilities `{caps}` (CAP NAK)"
                            ),
                        })
                    }
                    Control::AuthFailed(text) => {
                        failure = Some(ConnError {
                            kind: ErrorKind::Auth,
                            message: format!("Twitch refused the chat login: {text}"),
                        })
                    }
                    Control::Welcome => welcomed = true,
                    Control::Ping(server) => pongs.push(server),
                    _ => {}
                }
            }
            for server in pongs {
                self.send(Command::PONG(server, None)).await?;
            }
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
        Ok(received)
    }

    /// Writes `bytes`; a server that stops reading for [`WRITE_TIMEOUT`] counts as gone (so
    /// no task waits on a dead socket).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConnError::network(format!("cannot send: {e}"))),
            Err(_) => Err(ConnError::network(format!(
                "the server did not take our data for {} s",
                WRITE_TIMEOUT.as_secs()
            ))),
        }
    }

    pub async fn send(&mut self, command: Command) -> Result<(), ConnError> {
        let line = Message::from(command).to_string();
        self.write(line.as_bytes()).await
    }

    /// Sends `JOIN #a,#b,…` for `rooms` (several lines when they do not fit in one).
    pub async fn join(&mut self, rooms: &[Arc<str>]) -> Result<(), ConnError> {
        let now = Instant::now();
        let mut lines = String::new();
        let mut line = String::new();
        for room in rooms {
            if !line.is_empty() && line.len() + room.len() + 2 > MAX_JOIN_LINE {
                lines.push_str(
                    &Message::from(Command::JOIN(std::mem::take(&mut line), None, None))
                        .to_string(),
                );
            }
            if !line.is_empty() {
                line.push(',');
            }
            line.push('#');
            line.push_str(room);
            self.pending.insert(room.clone(), now);
        }
        if !line.is_empty() {
            lines.push_str(&Message::from(Command::JOIN(line, None, None)).to_string());
        }
        self.write(lines.as_bytes()).await
    }

    pub async fn part(&mut self, room: &str) -> Result<(), ConnError> {
        self.joined.remove(room);
        self.pending.remove(room);
        self.queue.retain(|r| r.as_ref() != room);
        self.send(Command::PART(format!("#{room}"), None)).await
    }

    /// Sends our keepalive PING; a PONG must come before `timeout`.
    pub async fn ping(&mut self, interval: Duration, timeout: Duration) -> Result<(), ConnError> {
        let now = Instant::now();
        self.next_ping = now + interval;
        self.pong_deadline = Some(now + timeout);
        self.send(Command::PING("tmi.twitch.tv".into(), None)).await
    }

    /// Closes the connection politely (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.send(Command::QUIT(None)).await;
            let _ = self.writer.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        let nick = "justinfan123";
        let cases: &[(&str, Control)] = &[
            ("PING :tmi.twitch.tv", Control::Ping("tmi.twitch.tv".into())),
            (":tmi.twitch.tv PONG tmi.twitch.tv :x", Control::Pong),
            (":tmi.twitch.tv RECONNECT", Control::Reconnect),
            (
                ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands",
                Control::CapAck(CAPABILITIES.into()),
            ),
            (":tmi.twitch.tv CAP * NAK :twitch.tv/tags", Control::CapNak("twitch.tv/tags".into())),
            (":tmi.twitch.tv 001 justinfan123 :Welcome, GLHF!", Control::Welcome),
            (
                ":justinfan123!justinfan123@justinfan123.tmi.twitch.tv JOIN #dallas",
                Control::Joined("dallas".into()),
            ),
            (
                ":justinfan123!justinfan123@justinfan123.tmi.twitch.tv PART #dallas",
                Control::Parted("dallas".into()),
            ),
            (":ronni!ronni@ronni.tmi.twitch.tv JOIN #dallas", Control::Other),
            (
                ":tmi.twitch.tv NOTICE * :Login authentication failed",
                Control::AuthFailed("Login authentication failed".into()),
            ),
            (
                ":tmi.twitch.tv NOTICE * :Improperly formatted auth",
                Control::AuthFailed("Improperly formatted auth".into()),
            ),
            (
                "@msg-id=msg_channel_suspended :tmi.twitch.tv NOTICE #gone :This channel has been suspended.",
                Control::JoinRefused {
                    room: "gone".into(),
                    reason: "This channel has been suspended.".into(),
                },
            ),
            (
                "@msg-id=msg_banned :tmi.twitch.tv NOTICE #forsen :You are permanently banned from talking in forsen.",
                Control::Other,
            ),
            ("@only-tags", Control::Other),
        ];
        for (line, expected) in cases {
            assert_eq!(control(line, nick), *expected, "{line}");
        }
    }

    #[test]
    fn anonymous_nicks_are_justinfan_digits() {
        let nick = Identity::Anonymous.nick();
        let digits = nick.strip_prefix("justinfan").unwrap();
        assert!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "{nick}"
        );
    }
}
