//! A Bilibili Live room's danmaku (notes 2.7, 2.8): `room_init` once for the real room id,
//! `getDanmuInfo` (WBI-signed) for the token and servers, then danmaku sessions
//! (`bilibili::session`: auth, heartbeats, receive timeout) on the servers in turn. Every
//! command is written as a line (`DANMU_MSG`, `SUPER_CHAT_MESSAGE`, `SEND_GIFT`,
//! `GUARD_BUY` with their fields; the others whole), `LIVE` / `PREPARING` / `ROOM_CHANGE`
//! are also published as [`Signals`]. The token is kept across reconnects, and fetched anew
//! after an auth refusal or after as many failures as there are servers (at least 3, as
//! blivedm does). A risk-control answer (`-352`, HTTP 412) pauses the requests of every room
//! sharing the config, is reported once, and does not count as a failed attempt.

use std::time::Duration;

use chrono::Utc;
use recbot_commands::{Platform, RoomId};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::sink::Sink;
use super::{pause, RoomConfig, Signals};
use crate::backoff::{Backoff, Jitter};
use crate::bilibili::api::{BiliError, DanmuInfo};
use crate::bilibili::danmaku::{self, Auth, Danmaku};
use crate::bilibili::session::{self, Received, SessionError};
use crate::chat::platform_line::PlatformLine;

/// Commands handed over from a session before they are written.
const HANDOVER: usize = 256;
/// Ask for brotli batches (the web client's choice; zlib ones are read as well).
const PROTOVER: u16 = 3;

pub(super) async fn run(
    room: RoomId,
    config: RoomConfig,
    mut sink: Sink,
    signals: watch::Sender<Signals>,
    cancel: CancellationToken,
) {
    let t = config.timing;
    let mut backoff = Backoff::new(t.backoff_initial, t.backoff_max, Jitter::Half);
    let mut real: Option<RoomId> = None;
    let mut info: Option<DanmuInfo> = None;
    let mut failures_on_token = 0usize;
    let mut turn = 0usize;
    loop {
        if !wait_for_pause(&config, &cancel).await {
            return;
        }
        let started = Instant::now();
        let current = match (real, info.clone()) {
            (Some(real), Some(info)) => (real, info),
            _ => match fetch(room, real, &config, &cancel).await {
                Ok(None) => return,
                Ok(Some((r, i))) => {
                    sink.unpaused();
                    failures_on_token = 0;
                    real = Some(r);
                    info = Some(i.clone());
                    (r, i)
                }
                Err(e) => {
                    if let Some(wait) = pause_for(&e, &config) {
                        set_pause(&config, wait);
                        sink.paused(wait.as_secs(), &e.to_string()).await;
                        continue;
                    }
                    if !e.is_transient() {
                        sink.gave_up(backoff.attempts() + 1, e.to_string()).await;
                        return;
                    }
                    if !failed(&mut sink, &mut backoff, &e.to_string(), &config, &cancel).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let (real_id, info_now) = current;
        let url = server_url(&info_now, turn, config.danmaku_tls);
        let auth = Auth {
            uid: config.bilibili_uid,
            room_id: real_id.get(),
            key: Some(&info_now.token),
            buvid: config.bilibili_buvid.as_deref(),
            protover: PROTOVER,
        };
        let (result, joined) = session(&url, &auth, &config, &mut sink, &signals, &cancel).await;
        let reason = match result {
            Ok(()) | Err(SessionError::Unheard) => return,
            Err(SessionError::AuthRefused(code)) => {
                // Token error (-101 and the like): a new token before reconnecting.
                info = None;
                format!("the danmaku server refused the auth (code {code:?})")
            }
            Err(SessionError::Protocol(e)) => {
                sink.unreadable(None, "", &e.to_string()).await;
                e.to_string()
            }
            Err(e) => e.to_string(),
        };
        turn = turn.wrapping_add(1);
        failures_on_token += 1;
        if failures_on_token >= info_now.hosts.len().max(3) {
            info = None;
        }
        if joined && started.elapsed() >= t.healthy_after {
            backoff.reset();
        }
        if !failed(&mut sink, &mut backoff, &reason, &config, &cancel).await {
            return;
        }
    }
}

/// A failed attempt: gives up after `max_attempts`, else waits the backoff. `false` when the
/// room ends (gave up or cancelled).
async fn failed(
    sink: &mut Sink,
    backoff: &mut Backoff,
    reason: &str,
    config: &RoomConfig,
    cancel: &CancellationToken,
) -> bool {
    sink.down(reason);
    if backoff.attempts() >= config.timing.max_attempts {
        sink.gave_up(backoff.attempts() + 1, reason.to_string())
            .await;
        return false;
    }
    pause(backoff.pause(false), cancel).await
}

/// The real room id (once) and getDanmuInfo; `Ok(None)` when cancelled.
async fn fetch(
    room: RoomId,
    real: Option<RoomId>,
    config: &RoomConfig,
    cancel: &CancellationToken,
) -> Result<Option<(RoomId, DanmuInfo)>, BiliError> {
    let work = async {
        let real = match real {
            Some(real) => real,
            None => config.bilibili.room_init(room).await?.room_id,
        };
        let info = config
            .bilibili
            .danmu_info(real, Utc::now().timestamp())
            .await?;
        Ok((real, info))
    };
    tokio::select! {
        () = cancel.cancelled() => Ok(None),
        result = work => result.map(Some),
    }
}

fn pause_for(e: &BiliError, config: &RoomConfig) -> Option<Duration> {
    match e {
        BiliError::RiskControl => Some(config.timing.pause_risk_control),
        BiliError::Blocked => Some(config.timing.pause_blocked),
        _ => None,
    }
}

fn set_pause(config: &RoomConfig, wait: Duration) {
    let until = Instant::now() + wait;
    let mut pause = config
        .bilibili_pause
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *pause = Some(pause.map_or(until, |p| p.max(until)));
}

/// Waits out a pause set by any room sharing the config; `false` when cancelled.
async fn wait_for_pause(config: &RoomConfig, cancel: &CancellationToken) -> bool {
    let until = *config
        .bilibili_pause
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match until {
        Some(until) if until > Instant::now() => tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep_until(until) => true,
        },
        _ => true,
    }
}

/// The `turn`-th server of getDanmuInfo's list (round robin); Bilibili's default server when
/// the list is empty.
fn server_url(info: &DanmuInfo, turn: usize, tls: bool) -> String {
    let host = info.hosts.get(turn % info.hosts.len().max(1));
    match (host, tls) {
        (Some(h), true) => format!("wss://{}:{}/sub", h.host, h.wss_port.unwrap_or(443)),
        (Some(h), false) => format!("ws://{}:{}/sub", h.host, h.ws_port.unwrap_or(80)),
        (None, true) => "wss://broadcastlv.chat.bilibili.com/sub".into(),
        (None, false) => "ws://broadcastlv.chat.bilibili.com/sub".into(),
    }
}

/// One danmaku session, its output written as it comes; whether it got up.
async fn session(
    url: &str,
    auth: &Auth<'_>,
    config: &RoomConfig,
    sink: &mut Sink,
    signals: &watch::Sender<Signals>,
    cancel: &CancellationToken,
) -> (Result<(), SessionError>, bool) {
    let (tx, mut rx) = mpsc::channel(HANDOVER);
    let run = session::run(url, auth, config.timing.danmaku, &tx, cancel);
    tokio::pin!(run);
    let mut joined = false;
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            Some(first) = rx.recv() => {
                let mut received = vec![first];
                while received.len() < HANDOVER {
                    match rx.try_recv() {
                        Ok(r) => received.push(r),
                        Err(_) => break,
                    }
                }
                handle(received, sink, signals, &mut joined).await;
            }
        }
    };
    let mut rest = Vec::new();
    while let Ok(r) = rx.try_recv() {
        rest.push(r);
    }
    handle(rest, sink, signals, &mut joined).await;
    (result, joined)
}

/// Writes what a session handed over, in order.
async fn handle(
    received: Vec<Received>,
    sink: &mut Sink,
    signals: &watch::Sender<Signals>,
    joined: &mut bool,
) {
    let mut lines = Vec::new();
    for r in received {
        match r {
            Received::Up => {
                *joined = true;
                sink.up().await;
            }
            Received::Command { cmd, raw } => match danmaku::command(&cmd, &raw) {
                Danmaku::Chat(line) => lines.push(line),
                other => {
                    match other {
                        Danmaku::Live { .. } => signals.send_modify(|s| s.live = Some(true)),
                        Danmaku::Preparing { .. } => signals.send_modify(|s| s.live = Some(false)),
                        Danmaku::RoomChange { title } => {
                            signals.send_modify(|s| s.title = Some(title))
                        }
                        _ => {}
                    }
                    lines.push(PlatformLine {
                        platform: Platform::Bilibili,
                        cmd,
                        user_id: None,
                        name: None,
                        text: None,
                        time_ms: None,
                        amount: None,
                        raw,
                    });
                }
            },
            Received::Unreadable { raw } => {
                sink.lines(&std::mem::take(&mut lines)).await;
                sink.unreadable(None, &raw, "a danmaku message that is not a JSON command")
                    .await;
            }
            Received::Popularity(_) => {}
        }
    }
    sink.lines(&lines).await;
}
