//! The live event stream: `/api/v1/events` (Server-Sent Events) and `/api/v1/ws`
//! (WebSocket), each event as JSON with its event-log id. A client resumes after the last id
//! it saw (`Last-Event-ID` or `?after=`): the [`Feed`] replays the log from there, then goes
//! on with the live notices, subscribed before the replay began, skipping those the replay
//! already gave, so nothing is lost or repeated at the seam. A client that falls behind the
//! live broadcast is served from the log again.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use recbot_commands::Login;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::auth::Caller;
use super::problem::Problem;
use super::{json, schema, AppState};
use crate::core::{CoreHandle, Notice};

/// Events read from the log per page while replaying.
const PAGE: i64 = 200;

/// The events after an id, then live ones, optionally of one login.
#[derive(Debug)]
pub(super) struct Feed {
    core: CoreHandle,
    live: Receiver<Arc<Notice>>,
    /// The last event-log id handled (given or filtered out).
    after: i64,
    login: Option<Login>,
    /// Reading the log (resuming, or after falling behind) before live notices.
    replaying: bool,
    backlog: VecDeque<Notice>,
}

impl Feed {
    /// From live notices on, or after `after` (replayed from the log) when given. `None` when
    /// the core has stopped.
    pub async fn new(core: CoreHandle, after: Option<i64>, login: Option<Login>) -> Option<Feed> {
        // Subscribed before the log is read: every event persisted from now on is in `live`,
        // every one before in the log.
        let live = core.subscribe();
        // A live stream knows its place in the log too, so that falling behind the broadcast
        // is made up from the log exactly.
        let (after, replaying) = match after {
            Some(after) => (after, true),
            None => (core.newest_event_id().await.ok()?, false),
        };
        Some(Feed {
            core,
            live,
            after,
            login,
            replaying,
            backlog: VecDeque::new(),
        })
    }

    /// The next event for this client; `None` when the core has stopped (or the log cannot
    /// be read, so that the client reconnects and resumes rather than miss events).
    pub async fn next(&mut self) -> Option<Notice> {
        loop {
            if let Some(notice) = self.backlog.pop_front() {
                if self.wanted(&notice) {
                    return Some(notice);
                }
                continue;
            }
            if self.replaying {
                let page = self.core.outbox_pending(self.after, PAGE).await.ok()?;
                match page.scanned_to {
                    Some(to) => {
                        self.after = to;
                        self.backlog.extend(page.notices);
                    }
                    None => self.replaying = false,
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                received = self.live.recv() => received,
                _ = self.core.stopped() => match self.live.try_recv() {
                    Ok(notice) => Ok(notice),
                    Err(_) => return None,
                },
            };
            match received {
                // Already given by the replay (or never persisted: id 0).
                Ok(notice) if notice.seq <= self.after => continue,
                Ok(notice) => {
                    self.after = notice.seq;
                    if self.wanted(&notice) {
                        return Some((*notice).clone());
                    }
                }
                Err(RecvError::Lagged(_)) => self.replaying = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn wanted(&self, notice: &Notice) -> bool {
        match &self.login {
            Some(login) => notice.event.login.as_ref() == Some(login),
            None => true,
        }
    }
}

fn stopped() -> Problem {
    Problem::refused(&crate::core::Refusal::ShuttingDown)
}

/// `?after=` and `?login=`, checked.
fn feed_params(
    query: &HashMap<String, String>,
    headers: Option<&HeaderMap>,
) -> Result<(Option<i64>, Option<Login>), Problem> {
    let last_event_id = headers
        .and_then(|h| h.get("last-event-id"))
        .map(|v| v.to_str().unwrap_or("invalid").to_string());
    let after = match last_event_id.or_else(|| query.get("after").cloned()) {
        None => None,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(id) if id >= 0 => Some(id),
            _ => {
                return Err(Problem::bad_request(
                    "`Last-Event-ID` / `after` must be an event id (a whole number)",
                ))
            }
        },
    };
    let login = match query.get("login") {
        None => None,
        Some(text) => Some(Login::parse(text).map_err(Problem::bad_request)?),
    };
    Ok((after, login))
}

#[utoipa::path(
    get, path = "/events", tag = "events", summary = "The event stream (Server-Sent Events)",
    description = "Every event of the event log as it happens, each an SSE message whose `id` is its \
        event-log id and whose `data` is the event as JSON (schema `Event`). `Last-Event-ID` \
        (or `?after=`) resumes exactly after it; a `heartbeat` comment every `[http] heartbeat_secs`.",
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id (wins over `after`)"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Resume after this event id (replayed from the event log)"),
        ("login" = Option<String>, Query, description = "Only this login's events"),
    ),
    security(("token" = [])),
    responses(
        (status = 200, description = "The stream; each message's `data` is an `Event`", content_type = "text/event-stream", body = String),
        (status = 400, description = "`after`, `Last-Event-ID` or `login` not valid (`bad-request`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn sse(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let (after, login) = feed_params(&query, Some(&headers))?;
    let feed = Feed::new(state.core.clone(), after, login)
        .await
        .ok_or_else(stopped)?;
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let notice = feed.next().await?;
        let event = SseEvent::default()
            .id(notice.seq.to_string())
            .data(json::notice(&notice).to_string());
        Some((Ok(event), feed))
    });
    let keep_alive = KeepAlive::new().interval(state.heartbeat).text("heartbeat");
    Ok(Sse::new(events).keep_alive(keep_alive))
}

#[utoipa::path(
    get, path = "/ws", tag = "events", summary = "The event stream (WebSocket)",
    description = "The same events as `/events`, each a JSON text message (schema `Event`), and \
        `{\"type\": \"heartbeat\", \"at\"}` every `[http] heartbeat_secs`. The token goes in the \
        `Authorization` header of the handshake (the page's cookie is not taken here).",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Resume after this event id (replayed from the event log)"),
        ("login" = Option<String>, Query, description = "Only this login's events"),
    ),
    security(("token" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then `Event` messages", body = schema::Event),
        (status = 400, description = "A parameter is not valid (`bad-request`), or not a WebSocket handshake (then a plain-text answer)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn ws(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Problem> {
    let (after, login) = feed_params(&query, None)?;
    let feed = Feed::new(state.core.clone(), after, login)
        .await
        .ok_or_else(stopped)?;
    let heartbeat = state.heartbeat;
    Ok(upgrade
        .on_upgrade(move |socket| send_events(socket, feed, heartbeat))
        .into_response())
}

/// Sends the feed's events as JSON text messages, and a `{"type":"heartbeat"}` message every
/// `heartbeat`, until the client leaves or the core stops.
async fn send_events(mut socket: WebSocket, mut feed: Feed, heartbeat: std::time::Duration) {
    let mut ticks = tokio::time::interval(heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let message = tokio::select! {
            notice = feed.next() => match notice {
                Some(notice) => json::notice(&notice).to_string(),
                None => break,
            },
            _ = ticks.tick() => {
                serde_json::json!({ "type": "heartbeat", "at": chrono::Utc::now() }).to_string()
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by the library; anything else is ignored.
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(Message::Text(message.into())).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::core::Core;
    use crate::event::{Event, EventKind};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    /// A client that fell further behind than the live broadcast holds gets the missed
    /// events from the log: all of them, once each, in order.
    #[tokio::test]
    async fn a_client_that_falls_behind_is_served_from_the_log_without_loss_or_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::config::testing::offline(&format!(
            "[storage]\ndata_dir = {:?}\n",
            dir.path().to_str().unwrap()
        ));
        let config = Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (core, handle) = Core::open(Arc::new(config), shutdown.clone())
            .await
            .unwrap();
        let events = core.events();
        core.spawn(&tracker).await.unwrap();
        let login = Login::parse("foo").unwrap();
        // Started live (after whatever the log holds), then left unread.
        let mut feed = Feed::new(handle.clone(), None, Some(login.clone()))
            .await
            .unwrap();
        let total = 1500u64; // more than the broadcast keeps (1024)
        for lines in 1..=total {
            let kind = EventKind::ChatDropped { lines };
            events.send(Event::now(Some(login.clone()), kind)).await;
        }
        // All persisted and broadcast before the feed reads on: it has lagged for sure.
        let first = feed.after;
        while handle.newest_event_id().await.unwrap() < first + total as i64 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut got = Vec::new();
        let mut last_seq = 0;
        while got.len() < total as usize {
            let notice = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
                .await
                .expect("the feed goes on")
                .expect("the core runs");
            assert!(notice.seq > last_seq);
            last_seq = notice.seq;
            match notice.event.kind {
                EventKind::ChatDropped { lines } => got.push(lines),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, (1..=total).collect::<Vec<_>>());
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
