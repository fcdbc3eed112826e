//! Chat logging of one Chzzk channel or Bilibili Live room (issue 14): the worker side that
//! the core starts per channel, beside the Twitch chat pool. One tracked task per room keeps
//! the platform's chat connection up (`chzzk.rs`: access token and chat WebSocket per
//! broadcast; `bilibili.rs`: getDanmuInfo and danmaku sessions), writes every message and
//! command as one JSON line ([`record::encode_platform`]) through the chat writer's
//! [`LineQueue`] into the day files of `folder`, and reconnects with the one backoff
//! (`backoff.rs`), bounded: after `max_attempts` failed attempts in a row the room gives up
//! (`ChatGaveUp`). Frames it cannot read are logged raw and reported once
//! (`ChatUnreadable`); Bilibili's risk control pauses every room sharing the
//! [`RoomConfig`] and is reported once (`ChatPaused`). Bilibili's `LIVE` / `PREPARING` /
//! `ROOM_CHANGE` are also published ([`PlatformRoom::signals`]) for live detection.
//!
//! Imports neither `core` nor `frontend`.
//!
//! [`record::encode_platform`]: super::record::encode_platform

mod bilibili;
mod chzzk;
mod sink;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use recbot_commands::{ChannelRef, Login};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::writer::LineQueue;
use crate::bilibili::api::{BiliApi, PAUSE_AFTER_352, PAUSE_AFTER_412};
use crate::bilibili::session;
use crate::chzzk::api::ChzzkApi;
use crate::config::Config;
use crate::work::Events;
use sink::Sink;

/// What every platform room needs: the platforms' APIs (shared, so the WBI key cache and the
/// risk-control pause are shared by all rooms started with clones of one `RoomConfig`), the
/// chat addresses and the timings.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub chzzk: Arc<ChzzkApi>,
    /// `[chzzk] chat_ws_url`, `{n}` filled per chat channel.
    pub chzzk_chat_ws_url: String,
    pub bilibili: Arc<BiliApi>,
    /// `wss://{host}:{wss_port}/sub` for the danmaku servers getDanmuInfo names; plain
    /// `ws://{host}:{ws_port}/sub` when `[bilibili] live_api_url` is plain `http://` (a local
    /// fake: the danmaku servers it names speak plain WebSocket too).
    pub danmaku_tls: bool,
    /// The logged-in account's mid (`DedeUserID` of `[bilibili] cookie`), 0 as a guest: the
    /// auth packet must carry the mid whose cookie fetched the token (notes 2.7).
    pub bilibili_uid: u64,
    /// `buvid3` of the cookie, sent in the auth packet.
    pub bilibili_buvid: Option<String>,
    pub timing: Timing,
    /// Until when Bilibili's chat requests pause after a risk-control answer.
    pub bilibili_pause: Arc<Mutex<Option<tokio::time::Instant>>>,
}

/// Timings of the rooms (defaults from the notes; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// First wait before reconnecting; doubles up to `backoff_max` (jittered).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Failed attempts in a row after which a room gives up (`ChatGaveUp`).
    pub max_attempts: u32,
    /// A connection that was up this long starts the backoff over when it drops.
    pub healthy_after: Duration,
    /// Chzzk: a PING after this long without a frame (kimcore: 20 s).
    pub chzzk_ping_after: Duration,
    /// Chzzk: the connection counts as dead after this long without a frame.
    pub chzzk_silence: Duration,
    /// Chzzk: how often live-detail is asked whether the chat channel changed (a new
    /// broadcast; chzzkpy: ~58 s).
    pub chzzk_recheck: Duration,
    /// Chzzk: messages asked for on joining (recent chat; duplicates of logged ones skipped).
    pub chzzk_recent: u32,
    /// Bilibili: heartbeat and receive timeout of a danmaku session.
    pub danmaku: session::Timing,
    /// Bilibili: pauses after `-352` and HTTP 412 (notes 2.8).
    pub pause_risk_control: Duration,
    pub pause_blocked: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            max_attempts: 20,
            healthy_after: Duration::from_secs(60),
            chzzk_ping_after: Duration::from_secs(20),
            chzzk_silence: Duration::from_secs(60),
            chzzk_recheck: Duration::from_secs(60),
            chzzk_recent: 50,
            danmaku: session::Timing::default(),
            pause_risk_control: PAUSE_AFTER_352,
            pause_blocked: PAUSE_AFTER_412,
        }
    }
}

impl RoomConfig {
    pub fn from_config(config: &Config) -> RoomConfig {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let cookie = config
            .bilibili
            .cookie
            .as_ref()
            .map(|c| c.expose().to_string());
        let cookie_value = |name: &str| {
            cookie.as_deref().and_then(|c| {
                c.split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        RoomConfig {
            chzzk: Arc::new(ChzzkApi::from_config(http.clone(), &config.chzzk)),
            chzzk_chat_ws_url: config.chzzk.chat_ws_url.clone(),
            bilibili: Arc::new(BiliApi::from_config(http, &config.bilibili)),
            danmaku_tls: !config
                .bilibili
                .live_api_url
                .to_ascii_lowercase()
                .starts_with("http://"),
            bilibili_uid: cookie_value("DedeUserID")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            bilibili_buvid: cookie_value("buvid3"),
            timing: Timing::default(),
            bilibili_pause: Arc::default(),
        }
    }
}

/// A room's state, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomStatus {
    /// The chat connection is up.
    pub joined: bool,
    /// Lines written since the room started (messages, commands, unreadable frames).
    pub lines: u64,
    pub last_line: Option<DateTime<Utc>>,
    /// Frames recbot could not read (logged raw).
    pub unreadable: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// Paused by the platform's risk control.
    pub paused: bool,
    /// The room stopped trying (`ChatGaveUp`).
    pub gave_up: bool,
}

/// What Bilibili's danmaku connection says about the broadcast (for live detection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// `Some(true)` after `LIVE`, `Some(false)` after `PREPARING`, `None` before either.
    pub live: Option<bool>,
    /// The title of the last `ROOM_CHANGE`.
    pub title: Option<String>,
}

/// One running room.
#[derive(Debug)]
pub struct PlatformRoom {
    status: Arc<Mutex<RoomStatus>>,
    signals: watch::Receiver<Signals>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts logging the chat of `channel` (Chzzk or Bilibili; another platform's room gives up
/// at once) into `folder`'s day files.
#[allow(clippy::too_many_arguments)]
pub fn start(
    channel: ChannelRef,
    login: Login,
    folder: Arc<str>,
    config: RoomConfig,
    queue: LineQueue,
    events: Events,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> PlatformRoom {
    let status = Arc::new(Mutex::new(RoomStatus::default()));
    let (signals_tx, signals) = watch::channel(Signals::default());
    let cancel = cancel.child_token();
    let sink = Sink::new(
        channel.platform(),
        channel.id(),
        folder,
        login,
        queue,
        events,
        status.clone(),
    );
    let stop = cancel.clone();
    let task = tracker.spawn(async move {
        match channel {
            ChannelRef::Chzzk(id) => chzzk::run(id, config, sink, stop).await,
            ChannelRef::Bilibili(room) => bilibili::run(room, config, sink, signals_tx, stop).await,
            other => {
                let reason = format!("{} has no chat recbot can log", other.platform());
                sink.gave_up(0, reason).await;
            }
        }
    });
    PlatformRoom {
        status,
        signals,
        cancel,
        task,
    }
}

impl PlatformRoom {
    pub fn status(&self) -> RoomStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `LIVE` / `PREPARING` / `ROOM_CHANGE` as the danmaku connection reports them (Bilibili;
    /// a Chzzk room never changes it).
    pub fn signals(&self) -> watch::Receiver<Signals> {
        self.signals.clone()
    }

    /// Closes the connection; every line received before is in the writer's queue.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Waits `wait` unless cancelled first; `false` when cancelled.
async fn pause(wait: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}
