//! The Slack front-end (slack-morphism): the slash command (`[slack] command`, `/rec`) in
//! Socket Mode (default) or HTTP mode (`listen` + `signing_secret`, every request's signature
//! and timestamp verified), answered within Slack's 3 seconds, and notices posted through the
//! shared delivery (threads via `thread_ts`, progress via `chat.update`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::ack::{self, Answered, RecentIds, Seen};
use super::delivery::{
    Delivery, MessageRef, Place, Platform, PostError, Poster, RetryPacing, POST_TIMEOUT,
};
use super::presence::{Link, LinkState};
use super::slack_home::{Claimed, Home};
use crate::config::Config;
use crate::core::{CoreHandle, Notice, Origin, Reply};
use crate::event::Room;
use crate::secret::Secret;

type Client = SlackClient<SlackClientHyperHttpsConnector>;

/// Slack accepts up to 40 000 characters per message; stay well below.
const MAX_TEXT: usize = 12_000;
/// How often slack-morphism retries `apps.connections.open` after a failed Socket Mode
/// (re)connection: its loop waits a fixed interval, forever. `apps.connections.open` is a
/// Tier 1 method (about one call a minute), so keep it slow; each run picks a value in this
/// range so several recbots (or restarts) do not retry in step.
const RECONNECT_EVERY_SECS: std::ops::RangeInclusive<u64> = 24..=36;
/// The delay before each further Socket Mode connection at start-up (slack-morphism's
/// `initial_backoff_in_seconds`), so they are not opened in one burst.
const STAGGER: Duration = Duration::from_secs(5);
/// slack-morphism keys its per-method tier counters by the token's team id and skips them
/// (paces only `chat.postMessage`) when the token has none. A bot token belongs to one
/// workspace, so any fixed id gives the whole workspace one set of counters.
const WORKSPACE: &str = "recbot-workspace";

/// Knobs that are not configuration: timings and, for tests, a pre-bound HTTP listener.
#[derive(Debug)]
pub struct SlackOptions {
    pub ack_within: Duration,
    /// Socket Mode connections kept open (Slack delivers each envelope to one of them).
    pub connections: u32,
    /// Wait between attempts to reopen a lost Socket Mode connection when
    /// `apps.connections.open` or the websocket fails (whole seconds, at least 1). A lost
    /// connection is reopened at once; this is the pace after that attempt fails.
    pub reconnect_every: Duration,
    /// Delay between opening the Socket Mode connections at start-up (whole seconds).
    pub stagger: Duration,
    /// slack-morphism's pacing of Web API calls: Slack's per-method tiers (Tier 3, 50 a
    /// minute, for `chat.update`) and `chat.postMessage`'s one a second.
    pub rate_control: SlackApiRateControlConfig,
    pub backoff: RetryPacing,
    /// How long one Web API call may take (slack-morphism sets no timeout), its wait for
    /// the method's rate-limit slot included; keep it well above that pacing.
    pub post_timeout: Duration,
    /// HTTP mode: serve on this listener instead of binding `[slack] listen`.
    pub http_listener: Option<TcpListener>,
    /// Where the connection's state is reported (`/readyz`).
    pub link: Link,
}

impl Default for SlackOptions {
    fn default() -> Self {
        SlackOptions {
            ack_within: ack::ACK_WITHIN,
            connections: 2,
            reconnect_every: Duration::from_secs(rand::random_range(RECONNECT_EVERY_SECS)),
            stagger: STAGGER,
            rate_control: SlackApiRateControlConfig::new(),
            backoff: RetryPacing::default(),
            post_timeout: POST_TIMEOUT,
            http_listener: None,
            link: Link::detached(),
        }
    }
}

/// Runs the Slack front-end until `shutdown`; its delivery runs on `tracker` until the core
/// has stopped.
pub async fn run(
    config: Arc<Config>,
    core: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    options: SlackOptions,
) -> Result<()> {
    let link = options.link.clone();
    let result = serve(config, core, notices, shutdown, tracker, options).await;
    if let Err(e) = &result {
        link.report(LinkState::Down(format!("{e:#}")));
    }
    result
}

async fn serve(
    config: Arc<Config>,
    core: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    options: SlackOptions,
) -> Result<()> {
    let slack = &config.slack;
    let bot_token = slack
        .bot_token
        .as_ref()
        .ok_or_else(|| anyhow!("[slack] bot_token is not set"))?;
    let client = Arc::new(client(&slack.api_url, options.rate_control)?);
    let poster = Arc::new(SlackPoster {
        client: client.clone(),
        token: workspace_token(bot_token),
        uploads: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        plain_http: slack.api_url.starts_with("http://"),
    });
    let delivery = Delivery::new(
        Platform::Slack,
        poster.clone(),
        core.clone(),
        slack.events_room.clone(),
        options.backoff,
    )
    .with_post_timeout(options.post_timeout);
    tracker.spawn(delivery.run(notices));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let front = Arc::new(Front {
        home: Home::new(http.clone(), &slack.api_url, bot_token.clone()),
        core,
        operators: slack.operators.iter().cloned().collect(),
        seen: Mutex::new(RecentIds::default()),
        tracker,
        poster,
        http,
        ack_within: options.ack_within,
        post_timeout: options.post_timeout,
        clock: Mutex::new(AckClock::default()),
        link: options.link,
    });
    // Learn the workspace now, so the first command is not kept waiting for it (a failure
    // is retried at the next command).
    let warm = front.clone();
    front.tracker.spawn(async move {
        if let Err(e) = warm.home.identity().await {
            warn!(error = %e, "Slack: cannot learn recbot's workspace yet; commands are refused until it is known");
        }
    });
    match slack.listen {
        None => {
            let app_token = slack
                .app_token
                .as_ref()
                .ok_or_else(|| anyhow!("[slack] app_token is not set"))?;
            let config = SlackClientSocketModeConfig::new()
                .with_max_connections_count(options.connections)
                .with_reconnect_timeout_in_seconds(whole_seconds(options.reconnect_every))
                .with_initial_backoff_in_seconds(whole_seconds(options.stagger));
            socket_mode(front, client, app_token, config, shutdown).await
        }
        Some(addr) => {
            let secret = slack
                .signing_secret
                .as_ref()
                .ok_or_else(|| anyhow!("[slack] signing_secret is not set"))?;
            let listener = match options.http_listener {
                Some(listener) => listener,
                None => TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} ([slack] listen)"))?,
            };
            http_mode(front, listener, secret, shutdown).await
        }
    }
}

/// A client for `api_url`. Unlike `SlackClientHyperConnector::new()` it also speaks plain
/// http, for a local fake; real Slack is https.
fn client(api_url: &str, rate_control: SlackApiRateControlConfig) -> Result<Client> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(builder) => builder,
        // Without a CA bundle only a plain-http endpoint (a local fake) can work.
        Err(e) if api_url.starts_with("http://") => {
            warn!(error = %e, "no CA certificates found; Slack over https would fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
        Err(e) => {
            return Err(anyhow!(
                "no CA certificates found for https to Slack ({e}); install ca-certificates"
            ))
        }
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let connector = SlackClientHyperConnector::from(https)
        .with_slack_api_url(api_url)
        .with_rate_control(rate_control);
    Ok(SlackClient::new(connector))
}

fn token(secret: &Secret) -> SlackApiToken {
    SlackApiToken::new(secret.expose().into())
}

/// The bot token, tagged with the workspace so that slack-morphism's rate control applies
/// the method tiers (e.g. Tier 3 for `chat.update`), not only `chat.postMessage`'s limit.
fn workspace_token(secret: &Secret) -> SlackApiToken {
    token(secret).with_team_id(SlackTeamId::new(WORKSPACE.into()))
}

/// slack-morphism counts these in seconds, and a zero interval would panic in its timer.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters (links, mentions such as
/// `<!channel>`); recbot's text must show them literally.
/// Control and bidirectional characters are dropped too (untrusted fields were already
/// neutralized by `render`).
fn escape(text: &str) -> String {
    ack::clip(&super::render::safe_text(text), MAX_TEXT)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The command text as typed. Slack sends `&`, `<` and `>` in a slash command's text as
/// `&amp;`, `&lt;` and `&gt;` (in both modes); left encoded, a playlist URL's `a=1&b=2`
/// would be stored as `a=1&amp;b=2` and a pasted OAuth redirect's `&state=` would not be
/// found. (`&amp;` last, so `&amp;lt;` stays the text `&lt;`.)
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A slash command, from either mode.
#[derive(Debug)]
struct SlashCommand {
    /// The workspace and app the command says it is from.
    claimed: Claimed,
    channel: String,
    user: String,
    text: String,
    response_url: String,
    trigger_id: String,
}

/// What the acknowledgement carries.
#[derive(Debug, Clone)]
struct Answer {
    text: String,
    private: bool,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        let reply = super::render::reply(&reply, super::render::Markup::Slack);
        Answer {
            text: escape(&reply.text),
            private: reply.private,
        }
    }
}

#[derive(Debug)]
struct Front {
    core: CoreHandle,
    /// The workspace and app commands must come from (learnt from Slack).
    home: Home,
    operators: HashSet<String>,
    /// Acknowledgements given, by trigger id: Slack redelivers an envelope whose ack it did
    /// not get (e.g. across a reconnect), and the command must not run twice.
    seen: Mutex<RecentIds<Answer>>,
    tracker: TaskTracker,
    poster: Arc<SlackPoster>,
    http: reqwest::Client,
    ack_within: Duration,
    post_timeout: Duration,
    /// Socket Mode: from when each command's ack window counts.
    clock: Mutex<AckClock>,
    link: Link,
}

/// A callback that starts this soon after another one ended may have been waiting for it
/// (slack-morphism reads a connection's next envelope only then).
const BACK_TO_BACK: Duration = Duration::from_millis(100);

/// From when a Socket Mode command's ack window counts. slack-morphism reads a connection's
/// envelopes one at a time and runs each callback to its end before reading the next, so an
/// envelope that arrived while an earlier command waited for the core has already waited
/// when its callback starts, and Slack's 3 s count from its arrival. Such a command (one that
/// starts while another runs, or right after one ended) counts from the start of the run of
/// commands it may have queued behind: at worst it is acknowledged at once ("working on it")
/// and answered through the response URL.
#[derive(Debug, Default)]
struct AckClock {
    /// Callbacks under way.
    open: usize,
    /// Start of the current run of callbacks.
    since: Option<Instant>,
    last_end: Option<Instant>,
}

impl AckClock {
    /// A callback starts at `now`: the instant its ack window counts from.
    fn start(&mut self, now: Instant) -> Instant {
        let queued = self.open > 0 || self.last_end.is_some_and(|end| now - end < BACK_TO_BACK);
        let since = match self.since {
            Some(since) if queued => since,
            _ => now,
        };
        self.since = Some(since);
        self.open += 1;
        since
    }

    fn end(&mut self, now: Instant) {
        self.open = self.open.saturating_sub(1);
        self.last_end = Some(now);
    }
}

/// A callback's place in the [`AckClock`]; it ends when dropped (also when the callback is
/// abandoned at shutdown).
struct Timed<'a> {
    clock: &'a Mutex<AckClock>,
    /// What is left of the ack window.
    within: Duration,
}

impl<'a> Timed<'a> {
    fn start(clock: &'a Mutex<AckClock>, window: Duration) -> Timed<'a> {
        let now = Instant::now();
        let since = clock.lock().expect("not poisoned").start(now);
        Timed {
            clock,
            within: (since + window).saturating_duration_since(now),
        }
    }
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        if let Ok(mut clock) = self.clock.lock() {
            clock.end(Instant::now());
        }
    }
}

impl Front {
    /// Runs a slash command and returns the acknowledgement: the reply when the core answers
    /// within the ack window, otherwise "working on it" and the reply follows through the
    /// response URL.
    ///
    /// A redelivered command (same trigger id; the callback does not see the envelope id, and
    /// Slack redelivers the same payload) is not run again: it gets the acknowledgement the
    /// first delivery got, or "already received" while that is still running.
    async fn answer(self: &Arc<Self>, command: SlashCommand, within: Duration) -> Answer {
        // A command from another workspace (or for another app) runs nothing.
        if let Some(refusal) = self.home.refusal(&command.claimed).await {
            return Answer {
                text: escape(&refusal),
                private: true,
            };
        }
        let trigger = command.trigger_id.clone();
        let seen = self.seen.lock().expect("not poisoned").check(&trigger);
        match seen {
            Seen::New => {}
            Seen::Answered(answer) => {
                info!("Slack redelivered a command; acknowledging it again without running it");
                return answer;
            }
            Seen::Running => {
                return Answer {
                    text: ack::ALREADY_RECEIVED.into(),
                    private: true,
                }
            }
        }
        let (answer, complete) = self.run_command(command, within).await;
        // "Working on it" is not repeated: a redelivery is told the answer comes separately.
        if complete {
            self.seen
                .lock()
                .expect("not poisoned")
                .answered(&trigger, answer.clone());
        }
        answer
    }

    /// The acknowledgement, and whether it is the complete answer.
    async fn run_command(
        self: &Arc<Self>,
        command: SlashCommand,
        within: Duration,
    ) -> (Answer, bool) {
        let room = match format!("slack:{}", command.channel).parse::<Room>() {
            Ok(room) => room,
            Err(e) => {
                let answer = Answer {
                    text: escape(&e),
                    private: true,
                };
                return (answer, true);
            }
        };
        let origin = Origin {
            room,
            operator: self.operators.contains(&command.user),
            user: command.user.clone(),
        };
        let answered = ack::submit(
            &self.core,
            &self.tracker,
            unescape(command.text.trim()),
            origin,
            within,
        )
        .await;
        match answered {
            Answered::Now(reply) => (reply.into(), true),
            Answered::Later(task) => {
                let front = self.clone();
                self.tracker.spawn(async move {
                    let reply = task.await.unwrap_or_else(|_| ack::failed());
                    front.follow_up(&command, reply).await;
                });
                let working = Answer {
                    text: ack::WORKING.into(),
                    private: true,
                };
                (working, false)
            }
        }
    }

    /// Posts a late reply through the response URL, or with `chat.postMessage` /
    /// `chat.postEphemeral` when the URL no longer works.
    async fn follow_up(&self, command: &SlashCommand, reply: Reply) {
        let answer = Answer::from(reply);
        let body = json!({
            "response_type": if answer.private { "ephemeral" } else { "in_channel" },
            "text": answer.text,
            "replace_original": false,
        });
        let sent = self
            .http
            .post(&command.response_url)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let Err(e) = sent else { return };
        // (Without the URL: a response URL is a credential for half an hour.)
        warn!(error = %e.without_url(), "the response URL failed; posting the answer instead");
        let session = self.poster.client.open_session(&self.poster.token);
        let content = SlackMessageContent::new().with_text(answer.text);
        let post = async {
            if answer.private {
                session
                    .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
                        command.channel.clone().into(),
                        command.user.clone().into(),
                        content,
                    ))
                    .await
                    .map(|_| ())
            } else {
                session
                    .chat_post_message(&SlackApiChatPostMessageRequest::new(
                        command.channel.clone().into(),
                        content,
                    ))
                    .await
                    .map(|_| ())
            }
        };
        match tokio::time::timeout(self.post_timeout, post).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "could not deliver a late answer to Slack"),
            Err(_) => warn!("could not deliver a late answer to Slack: no answer in time"),
        }
    }
}

// --- Socket Mode ---

async fn socket_mode(
    front: Arc<Front>,
    client: Arc<Client>,
    app_token: &Secret,
    config: SlackClientSocketModeConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let environment = Arc::new(
        SlackClientEventsListenerEnvironment::new(client)
            .with_error_handler(on_error)
            .with_user_state(front),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_hello_events(on_hello);
    let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
    listener
        .listen_for(&token(app_token))
        .await
        .map_err(|e| anyhow!("Slack Socket Mode: {e}"))?;
    // slack-morphism keeps the connections up: a closed or failed websocket and Slack's
    // `disconnect` envelope reopen the connection at once through a fresh
    // `apps.connections.open`, and a failed attempt is retried every `reconnect_every`.
    // `start`, not `serve`, because recbot owns signal handling.
    listener.start().await;
    info!("Slack: Socket Mode started");
    shutdown.cancelled().await;
    listener.shutdown().await;
    Ok(())
}

/// Slack's `hello` opens every Socket Mode connection, the first and each one slack-morphism
/// reopens. slack-morphism does not tell when one is lost (it reconnects on its own), so
/// `/readyz` sees Slack as connected from the first hello on.
/// (Generic in the event: slack-morphism does not export the hello event's type by name.)
async fn on_hello<Hello>(_event: Hello, _client: Arc<Client>, state: SlackClientEventsUserState) {
    if let Some(front) = state.read().await.get_user_state::<Arc<Front>>() {
        front.link.report(LinkState::Connected);
    }
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let front = state.read().await.get_user_state::<Arc<Front>>().cloned();
    let front = front.ok_or("the Slack front-end state is missing")?;
    let timed = Timed::start(&front.clock, front.ack_within);
    // slack-morphism's command event has no `api_app_id`; a Socket Mode connection is opened
    // with recbot's own app-level token, so its envelopes are for recbot's app anyway.
    let command = SlashCommand {
        claimed: Claimed {
            team_id: Some(event.team_id.to_string()),
            app_id: None,
        },
        channel: event.channel_id.to_string(),
        user: event.user_id.to_string(),
        text: event.text.unwrap_or_default(),
        response_url: event.response_url.0.to_string(),
        trigger_id: event.trigger_id.to_string(),
    };
    let answer = front.answer(command, timed.within).await;
    drop(timed);
    let kind = if answer.private {
        SlackMessageResponseType::Ephemeral
    } else {
        SlackMessageResponseType::InChannel
    };
    Ok(
        SlackCommandEventResponse::new(SlackMessageContent::new().with_text(answer.text))
            .with_response_type(kind),
    )
}

/// Acknowledges even after an error, so Slack does not redeliver into a loop.
fn on_error(
    error: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<Client>,
    _state: SlackClientEventsUserState,
) -> HttpStatusCode {
    warn!(%error, "Slack listener error");
    HttpStatusCode::OK
}

// --- HTTP mode ---

/// HTTP mode's shared state (the verifier has no `Debug`).
struct Http {
    front: Arc<Front>,
    verifier: SlackEventSignatureVerifier,
}

async fn http_mode(
    front: Arc<Front>,
    listener: TcpListener,
    secret: &Secret,
    shutdown: CancellationToken,
) -> Result<()> {
    // Slack reaches recbot here: listening is being connected.
    front.link.report(LinkState::Connected);
    let state = Arc::new(Http {
        front,
        verifier: SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
            secret.expose().into(),
        )),
    });
    let app = Router::new()
        .route("/slack/commands", post(http_command))
        .route("/slack/events", post(http_event))
        .with_state(state);
    info!(address = %listener.local_addr()?, "Slack: HTTP mode listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("Slack HTTP mode")
}

/// The body, when the request carries a valid signature made within the last 5 minutes.
fn verified(http: &Http, headers: &HeaderMap, body: &Bytes) -> Result<String, StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header(SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER),
        header(SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP),
    ) else {
        warn!("Slack HTTP request without signature refused");
        return Err(StatusCode::UNAUTHORIZED);
    };
    let body = std::str::from_utf8(body).map_err(|_| StatusCode::UNAUTHORIZED)?;
    if let Err(e) = http.verifier.verify(signature, body, timestamp) {
        warn!(error = %e, "Slack HTTP request refused");
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(body.to_string())
}

async fn http_command(State(http): State<Arc<Http>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&http, &headers, &body) {
        Ok(body) => body,
        Err(status) => return status.into_response(),
    };
    let mut fields: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let mut field = |name: &str| fields.remove(name);
    let (Some(channel), Some(user), Some(response_url), Some(trigger_id)) = (
        field("channel_id"),
        field("user_id"),
        field("response_url"),
        field("trigger_id"),
    ) else {
        return (StatusCode::BAD_REQUEST, "not a slash command").into_response();
    };
    // Requests are served side by side, so the window counts from this one's arrival.
    let command = SlashCommand {
        claimed: Claimed {
            team_id: field("team_id"),
            app_id: field("api_app_id"),
        },
        channel,
        user,
        text: field("text").unwrap_or_default(),
        response_url,
        trigger_id,
    };
    let answer = http.front.answer(command, http.front.ack_within).await;
    Json(json!({
        "response_type": if answer.private { "ephemeral" } else { "in_channel" },
        "text": answer.text,
    }))
    .into_response()
}

/// The Events API endpoint: answers Slack's URL verification; recbot subscribes to no events.
async fn http_event(State(http): State<Arc<Http>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&http, &headers, &body) {
        Ok(body) => body,
        Err(status) => return status.into_response(),
    };
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) if v["type"] == "url_verification" => {
            Json(json!({ "challenge": v["challenge"] })).into_response()
        }
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

// --- Posting ---

#[derive(Debug)]
struct SlackPoster {
    client: Arc<Client>,
    token: SlackApiToken,
    /// For the bytes of a file, sent to the upload URL Slack hands out (no token goes there:
    /// the URL itself is the permission).
    uploads: reqwest::Client,
    /// `api_url` is plain http (a local fake): its upload URLs may be too.
    plain_http: bool,
}

impl SlackPoster {
    /// Step 2 of an external upload: the bytes POSTed to Slack's upload URL. Only https
    /// (http only when the API itself is a plain-http fake).
    async fn send_bytes(&self, upload_url: &str, bytes: Vec<u8>) -> Result<(), PostError> {
        let url = url::Url::parse(upload_url)
            .map_err(|e| PostError::Permanent(format!("Slack gave a bad upload URL: {e}")))?;
        if url.scheme() != "https" && !(self.plain_http && url.scheme() == "http") {
            return Err(PostError::Permanent(format!(
                "Slack gave an upload URL that is not https ({})",
                url.scheme()
            )));
        }
        let answer = self
            .uploads
            .post(url)
            .header("content-type", "image/png")
            .body(bytes)
            .send()
            .await
            .map_err(|e| PostError::Retry {
                after: None,
                reason: format!("file upload: {e}"),
            })?;
        let status = answer.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(PostError::Retry {
                after: None,
                reason: format!("file upload: HTTP {status}"),
            }),
            _ => Err(PostError::Permanent(format!("file upload: HTTP {status}"))),
        }
    }
}

impl Poster for SlackPoster {
    async fn post(&self, place: &Place, text: &str) -> Result<MessageRef, PostError> {
        let request = SlackApiChatPostMessageRequest::new(
            place.channel.clone().into(),
            SlackMessageContent::new().with_text(escape(text)),
        )
        .opt_thread_ts(place.thread.clone().map(Into::into));
        let session = self.client.open_session(&self.token);
        let posted = session.chat_post_message(&request).await.map_err(error)?;
        Ok(MessageRef {
            channel: posted.channel.to_string(),
            id: posted.ts.to_string(),
        })
    }

    /// A Slack thread is the replies to a message: the message's `ts` is the thread.
    async fn start_thread(&self, starter: &MessageRef, _name: &str) -> Result<String, PostError> {
        Ok(starter.id.clone())
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), PostError> {
        let request = SlackApiChatUpdateRequest::new(
            message.channel.clone().into(),
            SlackMessageContent::new().with_text(escape(text)),
            message.id.clone().into(),
        );
        let session = self.client.open_session(&self.token);
        session.chat_update(&request).await.map_err(error)?;
        Ok(())
    }

    /// Slack's external upload: `files.getUploadURLExternal` (name, length) → the bytes to
    /// the returned `upload_url` → `files.completeUploadExternal` sharing it in the channel
    /// (and thread) with `text` as its comment. A retry starts over: an upload never
    /// completed is discarded by Slack.
    async fn upload_file(
        &self,
        place: &Place,
        name: &str,
        bytes: Vec<u8>,
        text: &str,
    ) -> Result<MessageRef, PostError> {
        let session = self.client.open_session(&self.token);
        let asked = SlackApiFilesGetUploadUrlExternalRequest::new(name.to_string(), bytes.len());
        let granted = session
            .get_upload_url_external(&asked)
            .await
            .map_err(error)?;
        self.send_bytes(granted.upload_url.0.as_str(), bytes)
            .await?;
        let file = SlackApiFilesComplete::new(granted.file_id.clone()).with_title(name.to_string());
        let complete = SlackApiFilesCompleteUploadExternalRequest::new(vec![file])
            .with_channel_id(place.channel.clone().into())
            .opt_thread_ts(place.thread.clone().map(Into::into))
            .with_initial_comment(escape(text));
        session
            .files_complete_upload_external(&complete)
            .await
            .map_err(error)?;
        Ok(MessageRef {
            channel: place.channel.clone(),
            id: granted.file_id.to_string(),
        })
    }
}

/// Which Slack errors are worth retrying: rate limits (with Slack's `Retry-After`), server
/// errors and network trouble. A refused token pauses posting until it works again; other
/// refusals (`channel_not_found`, `not_in_channel`, `message_not_found`) are for good.
fn error(e: SlackClientError) -> PostError {
    match e {
        SlackClientError::ApiError(api)
            if matches!(
                api.code.as_str(),
                "invalid_auth"
                    | "not_authed"
                    | "token_revoked"
                    | "token_expired"
                    | "account_inactive"
            ) =>
        {
            PostError::Unauthorized(api.code)
        }
        SlackClientError::HttpError(http) if http.status_code.as_u16() == 401 => {
            PostError::Unauthorized(format!("HTTP {}", http.status_code))
        }
        SlackClientError::RateLimitError(limit) => PostError::Retry {
            after: Some(limit.retry_after.unwrap_or(Duration::from_secs(1))),
            reason: "rate limited (429)".into(),
        },
        SlackClientError::ApiError(api)
            if matches!(
                api.code.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ) =>
        {
            PostError::Retry {
                after: None,
                reason: api.code,
            }
        }
        SlackClientError::ApiError(api) => PostError::Permanent(api.code),
        SlackClientError::HttpError(http) if http.status_code.is_client_error() => {
            PostError::Permanent(format!("HTTP {}", http.status_code))
        }
        other => PostError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
