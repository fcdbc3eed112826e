//! The EventSub WebSocket session: connect and wait for `session_welcome` (its session id and
//! keepalive), then read `notification`s (deduplicated by message id: Twitch delivers at least
//! once), `revocation`s and `session_reconnect` (connect to the given URL, keep reading the old
//! socket until the new one's welcome, then close the old one: nothing is lost, and the session
//! id stays). Silence longer than the keepalive plus a margin, a close or an error end the
//! session ([`Received::Ended`]). recbot only ever sends pongs (tungstenite answers pings).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message accepted: EventSub messages are about a kilobyte.
const MAX_MESSAGE: usize = 256 * 1024;
/// How long a connection may take to be welcomed.
const WELCOME_WAIT: Duration = Duration::from_secs(10);
/// How long a requested reconnect may take (Twitch closes the old socket after 30 s).
const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// Longest margin over the keepalive before silence counts as a drop.
const MAX_MARGIN: Duration = Duration::from_secs(5);
/// Message ids remembered for deduplication.
const RECENT_IDS: usize = 4096;
/// The longest stream id or user id accepted (Twitch's are decimal numbers).
const MAX_ID: usize = 64;

/// What the session reports to the EventSub task.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Notification(Notification),
    Revocation(Revocation),
    /// A requested reconnect completed; `session_id` is the new socket's (normally the same).
    Switched {
        session_id: String,
    },
    /// The session is over (closed, silent, failed); a new one must be made.
    Ended(String),
}

/// A stream notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    Online {
        stream_id: String,
        broadcaster_id: String,
        login: String,
        /// `live`, `playlist`, `watch_party`, `premiere`, `rerun`.
        kind: String,
        started_at: Option<DateTime<Utc>>,
    },
    Offline {
        broadcaster_id: String,
        login: String,
        stream_id: Option<String>,
    },
}

/// A subscription Twitch ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    pub subscription_id: String,
    pub kind: String,
    /// `authorization_revoked`, `user_removed`, `version_removed`, …
    pub status: String,
    pub broadcaster_id: Option<String>,
}

/// One message as Twitch frames it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Welcome {
        session_id: String,
        keepalive: Duration,
    },
    Keepalive,
    Notification {
        message_id: String,
        notification: Notification,
    },
    Reconnect {
        url: String,
    },
    Revocation(Revocation),
    /// A message of a kind or subscription type recbot does not use.
    Other,
}

#[derive(Deserialize)]
struct Frame {
    metadata: Metadata,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Deserialize)]
struct Metadata {
    message_id: String,
    message_type: String,
    #[serde(default)]
    subscription_type: Option<String>,
}

#[derive(Deserialize)]
struct SessionPayload {
    session: SessionInfo,
}

#[derive(Deserialize)]
struct SessionInfo {
    id: String,
    #[serde(default)]
    keepalive_timeout_seconds: Option<u64>,
    #[serde(default)]
    reconnect_url: Option<String>,
}

#[derive(Deserialize)]
struct EventPayload<T> {
    event: T,
}

#[derive(Deserialize)]
struct OnlineEvent {
    id: String,
    broadcaster_user_id: String,
    broadcaster_user_login: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct OfflineEvent {
    #[serde(default)]
    id: Option<String>,
    broadcaster_user_id: String,
    broadcaster_user_login: String,
}

#[derive(Deserialize)]
struct RevocationPayload {
    subscription: RevokedSubscription,
}

#[derive(Deserialize)]
struct RevokedSubscription {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(default)]
    condition: serde_json::Value,
}

/// Reads one EventSub message; a malformed one is an error and changes nothing.
pub fn parse(text: &str) -> Result<Incoming, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let payload = frame.payload;
    let field = |e: serde_json::Error| format!("{}: {e}", frame.metadata.message_type);
    match frame.metadata.message_type.as_str() {
        "session_welcome" => {
            let p: SessionPayload = serde_json::from_value(payload).map_err(field)?;
            let secs = p
                .session
                .keepalive_timeout_seconds
                .unwrap_or(10)
                .clamp(1, 600);
            Ok(Incoming::Welcome {
                session_id: checked_id(p.session.id, 256)?,
                keepalive: Duration::from_secs(secs),
            })
        }
        "session_keepalive" => Ok(Incoming::Keepalive),
        "session_reconnect" => {
            let p: SessionPayload = serde_json::from_value(payload).map_err(field)?;
            let url = p.session.reconnect_url.ok_or("reconnect without a URL")?;
            match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "ws" | "wss") => Ok(Incoming::Reconnect { url }),
                _ => Err(format!("reconnect URL is not a ws(s) address: {url:.100}")),
            }
        }
        "revocation" => {
            let p: RevocationPayload = serde_json::from_value(payload).map_err(field)?;
            let broadcaster_id = p
                .subscription
                .condition
                .get("broadcaster_user_id")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            Ok(Incoming::Revocation(Revocation {
                subscription_id: checked_id(p.subscription.id, 256)?,
                kind: short(&p.subscription.kind),
                status: short(&p.subscription.status),
                broadcaster_id,
            }))
        }
        "notification" => {
            let message_id = frame.metadata.message_id;
            let notification = match frame.metadata.subscription_type.as_deref() {
                Some("stream.online") => {
                    let p: EventPayload<OnlineEvent> =
                        serde_json::from_value(payload).map_err(field)?;
                    Notification::Online {
                        stream_id: checked_id(p.event.id, MAX_ID)?,
                        broadcaster_id: checked_id(p.event.broadcaster_user_id, MAX_ID)?,
                        login: p.event.broadcaster_user_login,
                        kind: short(&p.event.kind),
                        started_at: p.event.started_at,
                    }
                }
                Some("stream.offline") => {
                    let p: EventPayload<OfflineEvent> =
                        serde_json::from_value(payload).map_err(field)?;
                    Notification::Offline {
                        broadcaster_id: checked_id(p.event.broadcaster_user_id, MAX_ID)?,
                        login: p.event.broadcaster_user_login,
                        stream_id: match p.event.id {
                            Some(id) if !id.is_empty() => Some(checked_id(id, MAX_ID)?),
                            _ => None,
                        },
                    }
                }
                _ => return Ok(Incoming::Other),
            };
            Ok(Incoming::Notification {
                message_id,
                notification,
            })
        }
        _ => Ok(Incoming::Other),
    }
}

fn checked_id(id: String, max: usize) -> Result<String, String> {
    if id.is_empty() || id.len() > max || id.chars().any(|c| c.is_control()) {
        return Err(format!("unusable id {:?}", short(&id)));
    }
    Ok(id)
}

/// At most 64 characters of a remote string, for reports.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The message ids seen lately (bounded: the oldest are forgotten first).
#[derive(Debug, Default)]
pub struct RecentIds {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentIds {
    /// `true` the first time `id` is seen (among the last [`RECENT_IDS`]).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }
}

/// A welcomed EventSub connection.
#[derive(Debug)]
pub struct Socket {
    ws: Ws,
    pub session_id: String,
    keepalive: Duration,
}

/// Silence allowed before a socket counts as dropped: the keepalive plus a margin.
fn silence_limit(keepalive: Duration) -> Duration {
    keepalive + (keepalive / 2).min(MAX_MARGIN)
}

impl Socket {
    /// Connects to `url` and waits for its welcome.
    pub async fn connect(url: &str) -> Result<Socket, String> {
        let mut ws = open(url).await?;
        let (session_id, keepalive) = welcome(&mut ws).await?;
        info!(session = %session_id, keepalive_secs = keepalive.as_secs(), "EventSub session welcomed");
        Ok(Socket {
            ws,
            session_id,
            keepalive,
        })
    }

    /// Reads until `cancel`, sending what arrives to `tx`; ends with [`Received::Ended`]
    /// unless cancelled.
    pub async fn run(mut self, tx: mpsc::Sender<Received>, cancel: CancellationToken) {
        let mut recent = RecentIds::default();
        let reason = tokio::select! {
            _ = cancel.cancelled() => None,
            reason = self.read(&tx, &mut recent) => Some(reason),
        };
        // Best effort: the socket goes either way.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
        if let Some(reason) = reason {
            let _ = tx.send(Received::Ended(reason)).await;
        }
    }

    /// Reads messages until the session ends; returns why.
    async fn read(&mut self, tx: &mpsc::Sender<Received>, recent: &mut RecentIds) -> String {
        loop {
            let incoming = match next_message(&mut self.ws, self.keepalive).await {
                Ok(incoming) => incoming,
                Err(reason) => return reason,
            };
            match incoming {
                Incoming::Reconnect { url } => match self.switch(&url, tx, recent).await {
                    Ok(()) => {
                        let switched = Received::Switched {
                            session_id: self.session_id.clone(),
                        };
                        if tx.send(switched).await.is_err() {
                            return "stopped".into();
                        }
                    }
                    Err(reason) => return format!("requested reconnect failed: {reason}"),
                },
                other => {
                    if !forward(other, tx, recent).await {
                        return "stopped".into();
                    }
                }
            }
        }
    }

    /// Connects to `url`, keeps reading the old socket until the new one is welcomed, then
    /// makes the new one current and closes the old one.
    async fn switch(
        &mut self,
        url: &str,
        tx: &mpsc::Sender<Received>,
        recent: &mut RecentIds,
    ) -> Result<(), String> {
        info!("EventSub asked for a reconnect; connecting to the new address");
        let deadline = tokio::time::Instant::now() + RECONNECT_WINDOW;
        let mut new = tokio::time::timeout_at(deadline, open(url))
            .await
            .map_err(|_| "no connection within 30 s".to_string())??;
        let mut old_open = true;
        let (session_id, keepalive) = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Err("no welcome within 30 s".into()),
                message = next_message(&mut self.ws, self.keepalive), if old_open => match message {
                    Ok(incoming) => { forward(incoming, tx, recent).await; }
                    // The old socket may close first; the new one carries on.
                    Err(reason) => { debug!(%reason, "old EventSub socket ended during the reconnect"); old_open = false; }
                },
                message = next_message(&mut new, WELCOME_WAIT) => match message? {
                    Incoming::Welcome { session_id, keepalive } => break (session_id, keepalive),
                    other => { forward(other, tx, recent).await; }
                },
            }
        };
        let old = std::mem::replace(&mut self.ws, new);
        if session_id != self.session_id {
            warn!(old = %self.session_id, new = %session_id, "EventSub reconnect changed the session id");
        }
        self.session_id = session_id;
        self.keepalive = keepalive;
        if old_open {
            drain(old, tx, recent).await;
        }
        info!("EventSub reconnect complete");
        Ok(())
    }
}

/// Closes the old socket of a reconnect, still taking what it sent before its end: a
/// notification sent on it just before the new socket's welcome is not lost.
async fn drain(mut old: Ws, tx: &mpsc::Sender<Received>, recent: &mut RecentIds) {
    let closing = async {
        let _ = old.close(None).await;
        while let Some(Ok(message)) = old.next().await {
            if let Message::Text(text) = message {
                if let Ok(incoming) = parse(&text) {
                    forward(incoming, tx, recent).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
}

/// Passes a notification (first time only) or revocation on; `false` when nobody listens.
async fn forward(incoming: Incoming, tx: &mpsc::Sender<Received>, recent: &mut RecentIds) -> bool {
    let received = match incoming {
        Incoming::Notification {
            message_id,
            notification,
        } => {
            if !recent.first_time(&message_id) {
                debug!(%message_id, "duplicate EventSub notification ignored");
                return true;
            }
            Received::Notification(notification)
        }
        Incoming::Revocation(r) => Received::Revocation(r),
        Incoming::Welcome { .. } | Incoming::Keepalive | Incoming::Other => return true,
        // A reconnect request during a reconnect: the one in progress goes on.
        Incoming::Reconnect { .. } => return true,
    };
    tx.send(received).await.is_ok()
}

async fn open(url: &str) -> Result<Ws, String> {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_MESSAGE);
    config.max_frame_size = Some(MAX_MESSAGE);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    match tokio::time::timeout(WELCOME_WAIT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("cannot connect to EventSub: {e}")),
        Err(_) => Err("cannot connect to EventSub: timed out".into()),
    }
}

/// Waits for the welcome on a fresh socket.
async fn welcome(ws: &mut Ws) -> Result<(String, Duration), String> {
    match next_message(ws, WELCOME_WAIT).await? {
        Incoming::Welcome {
            session_id,
            keepalive,
        } => Ok((session_id, keepalive)),
        other => Err(format!("EventSub sent {other:?} before its welcome")),
    }
}

/// The next EventSub message; silence beyond `keepalive` plus a margin, a close or an error is
/// the end (`Err(reason)`). Malformed messages are logged and skipped.
async fn next_message(ws: &mut Ws, keepalive: Duration) -> Result<Incoming, String> {
    let limit = silence_limit(keepalive);
    loop {
        let message = match tokio::time::timeout(limit, ws.next()).await {
            Err(_) => return Err(format!("no message for {} s", limit.as_secs_f64())),
            Ok(None) => return Err("the connection closed".into()),
            Ok(Some(Err(e))) => return Err(format!("connection failed: {e}")),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => match parse(&text) {
                Ok(incoming) => return Ok(incoming),
                Err(e) => warn!(error = %e, "unreadable EventSub message ignored"),
            },
            Message::Close(frame) => {
                let why = frame
                    .map(|f| format!("{} {}", u16::from(f.code), short(&f.reason)))
                    .unwrap_or_default();
                return Err(format!("EventSub closed the connection ({why})"));
            }
            // Pongs are sent by tungstenite itself; nothing else is ours to answer.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: &str, sub: Option<&str>, payload: serde_json::Value) -> String {
        serde_json::json!({
            "metadata": {"message_id": "m1", "message_type": kind,
                         "message_timestamp": "2026-11-21T10:00:00.123456789Z",
                         "subscription_type": sub, "subscription_version": "1"},
            "payload": payload,
        })
        .to_string()
    }

    #[test]
    fn reads_welcome_keepalive_and_reconnect() {
        let welcome = frame(
            "session_welcome",
            None,
            serde_json::json!({"session": {"id": "AQoQ", "status": "connected",
                "keepalive_timeout_seconds": 30, "reconnect_url": null,
                "connected_at": "2026-11-21T10:00:00.1Z"}}),
        );
        assert_eq!(
            parse(&welcome).unwrap(),
            Incoming::Welcome {
                session_id: "AQoQ".into(),
                keepalive: Duration::from_secs(30)
            }
        );
        assert_eq!(
            parse(&frame("session_keepalive", None, serde_json::json!({}))).unwrap(),
            Incoming::Keepalive
        );
        let reconnect = frame(
            "session_reconnect",
            None,
            serde_json::json!({"session": {"id": "AQoQ", "status": "reconnecting",
                "keepalive_timeout_seconds": null,
                "reconnect_url": "wss://eventsub.wss.twitch.tv?x=1"}}),
        );
        assert_eq!(
            parse(&reconnect).unwrap(),
            Incoming::Reconnect {
                url: "wss://eventsub.wss.twitch.tv?x=1".into()
            }
        );
        // A reconnect elsewhere than a WebSocket is refused.
        let hostile = reconnect.replace("wss://eventsub", "file:///etc");
        assert!(parse(&hostile).is_err());
    }

    #[test]
    fn reads_stream_online_and_offline() {
        let online = frame(
            "notification",
            Some("stream.online"),
            serde_json::json!({"subscription": {"id": "s"}, "event": {
                "id": "9001", "broadcaster_user_id": "1337", "broadcaster_user_login": "foo",
                "broadcaster_user_name": "Foo", "type": "live",
                "started_at": "2026-11-21T10:00:00.123456789Z"}}),
        );
        let Incoming::Notification {
            message_id,
            notification,
        } = parse(&online).unwrap()
        else {
            panic!()
        };
        assert_eq!(message_id, "m1");
        let Notification::Online {
            stream_id,
            login,
            kind,
            started_at,
            ..
        } = notification
        else {
            panic!()
        };
        assert_eq!((stream_id.as_str(), login.as_str()), ("9001", "foo"));
        assert_eq!(kind, "live");
        assert!(started_at.is_some());
        let offline = frame(
            "notification",
            Some("stream.offline"),
            serde_json::json!({"subscription": {}, "event": {
                "broadcaster_user_id": "1337", "broadcaster_user_login": "foo",
                "broadcaster_user_name": "Foo"}}),
        );
        let Incoming::Notification { notification, .. } = parse(&offline).unwrap() else {
            panic!()
        };
        assert_eq!(
            notification,
            Notification::Offline {
                broadcaster_id: "1337".into(),
                login: "foo".into(),
                stream_id: None
            }
        );
    }

    #[test]
    fn reads_revocations_and_skips_what_it_does_not_use() {
        let revoked = frame(
            "revocation",
            Some("stream.online"),
            serde_json::json!({"subscription": {"id": "sub-1", "status": "user_removed",
                "type": "stream.online", "version": "1",
                "condition": {"broadcaster_user_id": "1337"}}}),
        );
        assert_eq!(
            parse(&revoked).unwrap(),
            Incoming::Revocation(Revocation {
                subscription_id: "sub-1".into(),
                kind: "stream.online".into(),
                status: "user_removed".into(),
                broadcaster_id: Some("1337".into()),
            })
        );
        let other = frame(
            "notification",
            Some("channel.update"),
            serde_json::json!({"event": {}}),
        );
        assert_eq!(parse(&other).unwrap(), Incoming::Other);
    }

    #[test]
    fn malformed_and_hostile_messages_are_errors() {
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
        let no_stream_id = frame(
            "notification",
            Some("stream.online"),
            serde_json::json!({"event": {"id": "", "broadcaster_user_id": "1",
                "broadcaster_user_login": "foo"}}),
        );
        assert!(parse(&no_stream_id).is_err());
        let long_id = frame(
            "notification",
            Some("stream.online"),
            serde_json::json!({"event": {"id": "9".repeat(10_000),
                "broadcaster_user_id": "1", "broadcaster_user_login": "foo"}}),
        );
        assert!(parse(&long_id).is_err());
        let welcome_without_id = frame("session_welcome", None, serde_json::json!({"session": {}}));
        assert!(parse(&welcome_without_id).is_err());
    }

    #[test]
    fn recent_ids_are_bounded_and_catch_duplicates() {
        let mut recent = RecentIds::default();
        assert!(recent.first_time("a"));
        assert!(!recent.first_time("a"));
        for i in 0..RECENT_IDS {
            assert!(recent.first_time(&i.to_string()));
        }
        assert_eq!(recent.order.len(), RECENT_IDS);
        assert_eq!(recent.seen.len(), RECENT_IDS);
        // "a" was the oldest: forgotten.
        assert!(recent.first_time("a"));
    }

    #[test]
    fn silence_allows_a_margin_over_the_keepalive() {
        assert_eq!(
            silence_limit(Duration::from_secs(10)),
            Duration::from_secs(15)
        );
        assert_eq!(
            silence_limit(Duration::from_secs(600)),
            Duration::from_secs(605)
        );
        assert_eq!(
            silence_limit(Duration::from_secs(1)),
            Duration::from_millis(1500)
        );
    }
}
