//! A Chzzk channel's chat (notes 1.5): per attempt, `live-detail` for the broadcast's chat
//! channel, the access token for it, then the chat WebSocket at `[chzzk] chat_ws_url`
//! (`{n}` filled): CONNECT, CONNECTED, the recent chat asked for, then every frame — server
//! PINGs answered, a PING of our own after `chzzk_ping_after` of quiet, chat and donations
//! written as lines, other commands written whole, unreadable frames written raw — until the
//! socket fails, goes silent, or `live-detail` names another chat channel (a new broadcast:
//! reconnect at once). Recent chat repeats what was logged before a reconnect: messages
//! already written are skipped by their sender, time and text.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use futures::{SinkExt, StreamExt};
use recbot_commands::{ChzzkId, Platform};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::sink::Sink;
use super::{pause, RoomConfig};
use crate::backoff::{Backoff, Jitter};
use crate::chat::platform_line::PlatformLine;
use crate::chzzk::api::{chat_server_url, ChatToken, ChzzkError, USER_AGENT};
use crate::chzzk::chat::{self, Frame};

/// How long connecting and the CONNECTED answer may take.
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Messages remembered to skip repeats in recent chat (a recent-chat answer is 50).
const REMEMBERED: usize = 4096;

/// How an attempt ended.
enum End {
    Cancelled,
    /// `live-detail` names a new chat channel: reconnect at once.
    NewBroadcast,
    /// Worth trying again after the backoff.
    Failed(String),
    /// Cannot work as configured (an adult channel without cookies, an unknown channel).
    Fatal(String),
}

pub(super) async fn run(
    id: ChzzkId,
    config: RoomConfig,
    mut sink: Sink,
    cancel: CancellationToken,
) {
    let t = config.timing;
    let mut backoff = Backoff::new(t.backoff_initial, t.backoff_max, Jitter::Half);
    let mut remembered = Remembered::default();
    loop {
        let started = Instant::now();
        let mut joined = false;
        let end = attempt(
            &id,
            &config,
            &mut sink,
            &mut remembered,
            &mut joined,
            &cancel,
        )
        .await;
        let reason = match end {
            End::Cancelled => return,
            End::NewBroadcast => {
                sink.down("a new broadcast began");
                backoff.reset();
                continue;
            }
            End::Fatal(reason) => {
                sink.gave_up(backoff.attempts() + 1, reason).await;
                return;
            }
            End::Failed(reason) => reason,
        };
        sink.down(&reason);
        if joined && started.elapsed() >= t.healthy_after {
            backoff.reset();
        }
        if backoff.attempts() >= t.max_attempts {
            sink.gave_up(backoff.attempts() + 1, reason).await;
            return;
        }
        if !pause(backoff.pause(false), &cancel).await {
            return;
        }
    }
}

/// An API error: fatal when retrying cannot help (an adult channel without cookies, an
/// unknown channel); anything else is retried within the bounded attempts (a malformed
/// playback in live-detail must not stop the chat).
fn api_end(e: ChzzkError) -> End {
    match e {
        ChzzkError::AdultOnly(_) | ChzzkError::NoSuchChannel(_) => End::Fatal(e.to_string()),
        e => End::Failed(e.to_string()),
    }
}

async fn attempt(
    id: &ChzzkId,
    config: &RoomConfig,
    sink: &mut Sink,
    remembered: &mut Remembered,
    joined: &mut bool,
    cancel: &CancellationToken,
) -> End {
    let detail = tokio::select! {
        () = cancel.cancelled() => return End::Cancelled,
        detail = config.chzzk.live_detail(id) => detail,
    };
    let detail = match detail {
        Ok((detail, _)) => detail,
        Err(e) => return api_end(e),
    };
    let Some(cid) = detail.chat_channel_id.clone() else {
        // Null for an adult channel without an adult-verified login (notes 1.5, step 1).
        return if detail.adult {
            End::Fatal(ChzzkError::AdultOnly(detail.user_adult_status).to_string())
        } else {
            End::Failed("Chzzk names no chat channel for it".into())
        };
    };
    let token = tokio::select! {
        () = cancel.cancelled() => return End::Cancelled,
        token = config.chzzk.chat_token(&cid) => token,
    };
    let token = match token {
        Ok(token) => token,
        Err(e) => return api_end(e),
    };
    let url = chat_server_url(&config.chzzk_chat_ws_url, &cid);
    let session = Session {
        id,
        cid: &cid,
        config,
    };
    match session
        .run(&url, &token, sink, remembered, joined, cancel)
        .await
    {
        Ok(end) | Err(end) => end,
    }
}

struct Session<'a> {
    id: &'a ChzzkId,
    cid: &'a str,
    config: &'a RoomConfig,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Session<'_> {
    async fn run(
        &self,
        url: &str,
        token: &ChatToken,
        sink: &mut Sink,
        remembered: &mut Remembered,
        joined: &mut bool,
        cancel: &CancellationToken,
    ) -> Result<End, End> {
        let t = self.config.timing;
        let mut ws = tokio::select! {
            () = cancel.cancelled() => return Ok(End::Cancelled),
            ws = connect(url) => ws.map_err(End::Failed)?,
        };
        send(&mut ws, chat::connect_frame(self.cid, &token.0)).await?;
        let sid = self.connected(&mut ws).await?;
        *joined = true;
        sink.up().await;
        if t.chzzk_recent > 0 {
            send(
                &mut ws,
                chat::recent_chat_frame(self.cid, &sid, t.chzzk_recent),
            )
            .await?;
        }
        let mut heard = Instant::now();
        let mut pinged = false;
        let mut recheck =
            tokio::time::interval_at(Instant::now() + t.chzzk_recheck, t.chzzk_recheck);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    let _ = ws.close(None).await;
                    return Ok(End::Cancelled);
                }
                _ = recheck.tick() => {
                    if self.new_broadcast().await {
                        let _ = ws.close(None).await;
                        return Ok(End::NewBroadcast);
                    }
                }
                () = tokio::time::sleep_until(heard + t.chzzk_ping_after), if !pinged => {
                    pinged = true;
                    send(&mut ws, chat::ping_frame()).await?;
                }
                () = tokio::time::sleep_until(heard + t.chzzk_silence) => {
                    return Err(End::Failed(format!(
                        "the chat connection was silent for {:?}",
                        t.chzzk_silence
                    )));
                }
                message = ws.next() => {
                    heard = Instant::now();
                    pinged = false;
                    match message {
                        Some(Ok(WsMessage::Text(text))) => {
                            self.frame(&mut ws, text.as_str(), sink, remembered).await?;
                        }
                        Some(Ok(WsMessage::Binary(bytes))) => {
                            let raw = String::from_utf8_lossy(&bytes);
                            sink.unreadable(None, &raw, "a binary frame, Chzzk chat sends text")
                                .await;
                        }
                        Some(Ok(WsMessage::Close(_))) | None => {
                            return Err(End::Failed("the chat server closed the connection".into()));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(End::Failed(format!("the chat connection failed: {e}"))),
                    }
                }
            }
        }
    }

    /// Waits for CONNECTED (answering PINGs); its session id.
    async fn connected(&self, ws: &mut Ws) -> Result<String, End> {
        let deadline = Instant::now() + CONNECT_WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| End::Failed("no CONNECTED answer from the chat server".into()))?;
            let text = match message {
                Some(Ok(WsMessage::Text(text))) => text,
                Some(Ok(WsMessage::Close(_))) | None => {
                    return Err(End::Failed("the chat server closed the connection".into()))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(End::Failed(format!("the chat connection failed: {e}")))
                }
            };
            match chat::parse_frame(text.as_str()) {
                Ok(Frame::Connected { sid }) => return Ok(sid),
                Ok(Frame::ConnectRefused { ret_code, message }) => {
                    return Err(End::Failed(format!(
                        "the chat server refused to connect (retCode {ret_code:?}): {message}"
                    )))
                }
                Ok(Frame::Ping) => send(ws, chat::pong_frame()).await?,
                _ => {}
            }
        }
    }

    /// One received text frame.
    async fn frame(
        &self,
        ws: &mut Ws,
        text: &str,
        sink: &mut Sink,
        remembered: &mut Remembered,
    ) -> Result<(), End> {
        match chat::parse_frame(text) {
            Ok(Frame::Ping) => send(ws, chat::pong_frame()).await?,
            Ok(Frame::Chat(lines)) => {
                let fresh: Vec<PlatformLine> =
                    lines.into_iter().filter(|l| remembered.first(l)).collect();
                sink.lines(&fresh).await;
            }
            Ok(Frame::Other { cmd }) => {
                // Kicks, blinds, notices, mission events: kept whole, not parsed.
                let line = PlatformLine {
                    platform: Platform::Chzzk,
                    cmd: cmd.to_string(),
                    user_id: None,
                    name: None,
                    text: None,
                    time_ms: None,
                    amount: None,
                    raw: text.to_string(),
                };
                sink.lines(&[line]).await;
            }
            Ok(Frame::Pong | Frame::Connected { .. } | Frame::ConnectRefused { .. }) => {}
            Err(e) => sink.unreadable(None, text, &e.to_string()).await,
        }
        Ok(())
    }

    /// Whether `live-detail` now names another chat channel (failures: no).
    async fn new_broadcast(&self) -> bool {
        match self.config.chzzk.live_detail(self.id).await {
            Ok((detail, _)) => detail.chat_channel_id.is_some_and(|cid| cid != self.cid),
            Err(_) => false,
        }
    }
}

async fn connect(url: &str) -> Result<Ws, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("bad chat address: {e}"))?;
    request.headers_mut().insert(
        "user-agent",
        USER_AGENT
            .parse()
            .map_err(|_| "bad User-Agent".to_string())?,
    );
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(chat::MAX_FRAME);
    ws_config.max_frame_size = Some(chat::MAX_FRAME);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    match tokio::time::timeout(CONNECT_WAIT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("cannot connect to the chat server: {e}")),
        Err(_) => Err("cannot connect to the chat server: timed out".into()),
    }
}

async fn send(ws: &mut Ws, text: String) -> Result<(), End> {
    ws.send(WsMessage::Text(text.into()))
        .await
        .map_err(|e| End::Failed(format!("the chat connection failed: {e}")))
}

/// The latest messages written, by sender, time and text: recent chat after a reconnect
/// repeats them.
#[derive(Default)]
struct Remembered {
    keys: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Remembered {
    /// Whether `line` was not written before (and remembers it). Lines without a time are
    /// always written: nothing identifies them.
    fn first(&mut self, line: &PlatformLine) -> bool {
        let Some(time) = line.time_ms else {
            return true;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&line.user_id, time, &line.text).hash(&mut h);
        let key = h.finish();
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        true
    }
}
