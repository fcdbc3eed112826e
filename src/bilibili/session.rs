//! One danmaku WebSocket session (notes 2.7): connect (with the UA getDanmuInfo was asked
//! with), send the auth packet at once (the server closes after 5 s without it), wait for the
//! auth reply, heartbeat right after a good one and then every `heartbeat` (30 s), and hand
//! every command on, as received, until the socket closes, goes silent for longer than
//! `receive_timeout` (blivedm: heartbeat + 5 s), sends a frame recbot cannot read, or the
//! session is cancelled. Reconnecting (with backoff, a new token after an auth refusal) is
//! the caller's: each way a session ends is a [`SessionError`] saying which.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::api::USER_AGENT;
use super::danmaku::{self, Auth, DanmakuError, Message};

/// How long connecting and the auth reply may take.
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Timing of a session.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub receive_timeout: Duration,
}

impl Default for Timing {
    /// 30 s heartbeats, 35 s of silence tolerated (notes 2.7).
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(30),
            receive_timeout: Duration::from_secs(35),
        }
    }
}

/// What a session hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The auth reply was good: the session is up.
    Up,
    /// One command: `cmd` (suffix stripped) and its JSON text as received (decompressed).
    Command { cmd: String, raw: String },
    /// An op 5 body that is not a command (logged raw by the caller).
    Unreadable { raw: String },
    /// The popularity number of a heartbeat reply.
    Popularity(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the danmaku server: {0}")]
    Connect(String),
    /// A non-zero auth reply (`-101`: token error → fetch a new token before reconnecting).
    #[error("the danmaku server refused the auth (code {0:?})")]
    AuthRefused(Option<i64>),
    #[error("the danmaku server sent something other than the auth reply first")]
    NoAuthReply,
    #[error("the danmaku connection was silent for {0:?}")]
    Silent(Duration),
    #[error("the danmaku connection closed")]
    Closed,
    #[error("the danmaku connection failed: {0}")]
    Io(String),
    /// A frame recbot cannot read: a protocol error, reported, not retried blindly.
    #[error(transparent)]
    Protocol(#[from] DanmakuError),
    /// The receiver of the session's output is gone.
    #[error("nobody takes the danmaku any more")]
    Unheard,
}

/// Runs one session on `url` (`wss://host:port/sub`) until it ends; `Ok` only when
/// cancelled.
pub async fn run(
    url: &str,
    auth: &Auth<'_>,
    timing: Timing,
    out: &mpsc::Sender<Received>,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    let mut ws = connect(url).await?;
    send(&mut ws, danmaku::auth_packet(auth)).await?;
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    match next_messages(&mut ws, deadline, CONNECT_WAIT)
        .await?
        .first()
    {
        Some(Message::AuthReply { code: Some(0) }) => {}
        Some(Message::AuthReply { code }) => return Err(SessionError::AuthRefused(*code)),
        _ => return Err(SessionError::NoAuthReply),
    }
    out.send(Received::Up)
        .await
        .map_err(|_| SessionError::Unheard)?;
    let mut beat = tokio::time::interval(timing.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Silence is measured from the last message, across heartbeats.
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            _ = beat.tick() => send(&mut ws, danmaku::heartbeat_packet()).await?,
            messages = next_messages(&mut ws, heard + timing.receive_timeout, timing.receive_timeout) => {
                heard = tokio::time::Instant::now();
                for message in messages? {
                    let received = match message {
                        Message::Command { cmd, raw } => Received::Command { cmd, raw },
                        Message::Unreadable { raw } => Received::Unreadable { raw },
                        Message::HeartbeatReply { popularity } => Received::Popularity(popularity),
                        Message::AuthReply { .. } | Message::Other { .. } => continue,
                    };
                    out.send(received).await.map_err(|_| SessionError::Unheard)?;
                }
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Result<Ws, SessionError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| SessionError::Connect(e.to_string()))?;
    let ua = USER_AGENT
        .parse()
        .map_err(|_| SessionError::Connect("bad UA".into()))?;
    request.headers_mut().insert("user-agent", ua);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(danmaku::MAX_FRAME);
    config.max_frame_size = Some(danmaku::MAX_FRAME);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_WAIT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(SessionError::Connect(e.to_string())),
        Err(_) => Err(SessionError::Connect("timed out".into())),
    }
}

async fn send(ws: &mut Ws, packet: Vec<u8>) -> Result<(), SessionError> {
    ws.send(WsMessage::Binary(packet.into()))
        .await
        .map_err(|e| SessionError::Io(e.to_string()))
}

/// The packets of the next binary message before `deadline` (pings answered by
/// tungstenite, text ignored). Cancel-safe: `next` loses no message when dropped.
async fn next_messages(
    ws: &mut Ws,
    deadline: tokio::time::Instant,
    wait: Duration,
) -> Result<Vec<Message>, SessionError> {
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| SessionError::Silent(wait))?;
        match next {
            Some(Ok(WsMessage::Binary(bytes))) => return Ok(danmaku::decode(&bytes)?),
            Some(Ok(WsMessage::Close(_))) | None => return Err(SessionError::Closed),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(SessionError::Io(e.to_string())),
        }
    }
}
