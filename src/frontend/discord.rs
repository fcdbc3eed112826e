//! The Discord front-end (serenity): the gateway connection, the `/rec` command registered
//! from the command table (guild-scoped when `guild_id` is set, global otherwise), interactions
//! answered within Discord's 3 seconds (deferred and edited for slow work), and notices posted
//! through the shared delivery (a thread per broadcast started from its first message). REST
//! calls are paced per route from Discord's `X-RateLimit-*` headers, and 429s are waited out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use recbot_commands::schema;
use reqwest::header::HeaderMap;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};
use serenity::all::{
    ApplicationId, Client, ClientBuilder, CommandDataOption, CommandDataOptionValue,
    CommandInteraction, ConnectionStage, Context, EventHandler, GatewayError, GatewayIntents,
    HttpBuilder, Interaction, InteractionId, Ready, ResumedEvent, ShardStageUpdateEvent,
};
use serenity::http::Http;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::ack::{self, Answered, RecentIds};
use super::delivery::{
    Delivery, MessageRef, Place, Platform, PostError, Poster, RetryPacing, POST_TIMEOUT,
};
use super::presence::{Link, LinkState};
use super::render::{self, Markup, Rendered};
use crate::config::Config;
use crate::core::{CoreHandle, Notice, Origin, Reply};
use crate::event::Room;
use crate::secret::Secret;

/// Discord's limit for message content.
const MAX_TEXT: usize = 2000;
/// Interaction response flag: only the invoking user sees it.
const EPHEMERAL: u64 = 64;
/// Where real Discord lives; any other `api_url` is used as serenity's proxy (a fake).
const DISCORD: &str = "https://discord.com";
/// Longest wait for an empty rate-limit bucket inside a call; a longer one is handed to the
/// caller as a retry (the delivery waits it out and can be stopped meanwhile).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);
/// Longest reset Discord's headers may impose.
const MAX_RESET: Duration = Duration::from_secs(600);
/// Discord's error code for a second thread on the same message.
const THREAD_ALREADY_CREATED: u64 = 160_004;

/// Knobs that are not configuration.
#[derive(Debug, Clone)]
pub struct DiscordOptions {
    pub ack_within: Duration,
    pub backoff: RetryPacing,
    /// Where the gateway connection's state is reported (`/readyz`).
    pub link: Link,
    /// How long one REST call may take (also the HTTP client's own timeout).
    pub post_timeout: Duration,
}

impl Default for DiscordOptions {
    fn default() -> Self {
        DiscordOptions {
            ack_within: ack::ACK_WITHIN,
            backoff: RetryPacing::default(),
            post_timeout: POST_TIMEOUT,
            link: Link::detached(),
        }
    }
}

/// Runs the Discord front-end until `shutdown`; its delivery runs on `tracker` until the core
/// has stopped.
pub async fn run(
    config: Arc<Config>,
    core: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    options: DiscordOptions,
) -> Result<()> {
    let discord = &config.discord;
    let token = discord
        .token
        .as_ref()
        .ok_or_else(|| anyhow!("[discord] token is not set"))?;
    let api_url = discord.api_url.trim_end_matches('/').to_string();
    let rest = Rest {
        client: reqwest::Client::builder()
            .timeout(options.post_timeout)
            .build()?,
        base: format!("{api_url}/api/v10"),
        token: token.clone(),
        buckets: Arc::default(),
    };
    let poster = Arc::new(DiscordPoster { rest: rest.clone() });
    let delivery = Delivery::new(
        Platform::Discord,
        poster,
        core.clone(),
        discord.events_room.clone(),
        options.backoff,
    )
    .with_post_timeout(options.post_timeout);
    tracker.spawn(delivery.run(notices));
    let handler = Handler {
        core,
        operators: discord.operators.iter().cloned().collect(),
        operator_roles: discord.operator_roles.iter().cloned().collect(),
        guild: discord.guild_id.as_deref().and_then(|g| g.parse().ok()),
        seen: Mutex::new(RecentIds::default()),
        tracker,
        ack_within: options.ack_within,
        rest,
        link: options.link.clone(),
    };
    keep_connected(
        Arc::new(handler),
        token,
        &api_url,
        &shutdown,
        options.backoff,
    )
    .await
}

/// Runs the gateway client until shutdown. serenity keeps the session up on its own: a
/// closed or dropped gateway connection or an op 7 RECONNECT is resumed at once (missed
/// events are replayed; `seen` drops repeats), and a session that cannot be resumed
/// identifies again, 5 s apart. A start that fails outright (Discord unreachable) or a
/// client that ends is retried here with jittered exponential backoff, which starts over
/// after a connection that lasted; a refused token ends it with an error.
async fn keep_connected(
    handler: Arc<Handler>,
    token: &Secret,
    api_url: &str,
    shutdown: &CancellationToken,
    backoff: RetryPacing,
) -> Result<()> {
    let mut pacer = backoff.pacer();
    loop {
        let began = Instant::now();
        let client = ClientBuilder::new_with_http(
            gateway_http(token.expose(), api_url),
            GatewayIntents::GUILDS,
        )
        .event_handler_arc(handler.clone())
        .await;
        let result = match client {
            Ok(client) => gateway(client, shutdown).await,
            Err(e) => Err(e),
        };
        if shutdown.is_cancelled() {
            return Ok(());
        }
        handler.link.report(LinkState::Down(match &result {
            Ok(()) => "the gateway connection closed".into(),
            Err(e) => format!("the gateway failed: {e}"),
        }));
        let wait = pacer.pause(began.elapsed() >= backoff.max);
        match result {
            Ok(()) => warn!(
                wait_ms = wait.as_millis() as u64,
                "Discord gateway closed; reconnecting"
            ),
            Err(serenity::Error::Gateway(
                e @ (GatewayError::InvalidAuthentication
                | GatewayError::InvalidGatewayIntents
                | GatewayError::DisallowedGatewayIntents),
            )) => {
                // Retrying cannot help; say what to fix.
                return Err(anyhow!(
                    "Discord refused the connection ({e}); check [discord] token and the bot's settings"
                ));
            }
            Err(e) => warn!(
                error = %e,
                wait_ms = wait.as_millis() as u64,
                "Discord gateway failed; reconnecting"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// serenity's `Http` for the gateway (it asks `GET /gateway` for the URL). Another
/// `api_url` is serenity's proxy setting, which its rate limiter ignores, so the limiter is
/// off there (recbot's own REST calls honour 429s themselves).
fn gateway_http(token: &str, api_url: &str) -> Http {
    let mut builder = HttpBuilder::new(token);
    if api_url != DISCORD {
        builder = builder.proxy(api_url).ratelimiter_disabled(true);
    }
    builder.build()
}

async fn gateway(mut client: Client, shutdown: &CancellationToken) -> serenity::Result<()> {
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start() => result,
        _ = shutdown.cancelled() => {
            shards.shutdown_all().await;
            Ok(())
        }
    }
}

#[derive(Debug)]
struct Handler {
    core: CoreHandle,
    operators: HashSet<String>,
    operator_roles: HashSet<String>,
    guild: Option<u64>,
    seen: Mutex<RecentIds>,
    tracker: TaskTracker,
    ack_within: Duration,
    rest: Rest,
    link: Link,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.link.report(LinkState::Connected);
        let application = ready.application.id;
        let commands = schema::discord_commands("rec");
        let path = match self.guild {
            Some(guild) => format!("/applications/{application}/guilds/{guild}/commands"),
            None => format!("/applications/{application}/commands"),
        };
        let result = self.rest.call(Method::PUT, &path, Some(commands)).await;
        match result {
            Ok(_) => info!(
                user = %ready.user.name,
                scope = if self.guild.is_some() { "guild" } else { "global" },
                "Discord: connected, /rec registered"
            ),
            Err(e) => error!(error = ?e, "Discord: cannot register the /rec command"),
        }
    }

    /// A resumed session gets no READY.
    async fn resume(&self, _ctx: Context, _resumed: ResumedEvent) {
        self.link.report(LinkState::Connected);
    }

    /// Stage changes serenity sees while a connection runs. (A connection that fails is
    /// reopened without one: serenity tells when a session is back, not when it was lost;
    /// a client that ends is reported by `keep_connected`.)
    async fn shard_stage_update(&self, _ctx: Context, update: ShardStageUpdateEvent) {
        self.link.report(match update.new {
            ConnectionStage::Connected => LinkState::Connected,
            stage => LinkState::Down(format!("the gateway is {stage}")),
        });
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Interaction::Command(command) = interaction {
            self.command(command).await;
        }
    }
}

impl Handler {
    /// Why a command from `guild` (`None`: a direct message) is not run, if it is not.
    fn place_refusal(&self, guild: Option<u64>) -> Option<&'static str> {
        match (guild, self.guild) {
            (None, _) => Some(
                "recbot takes commands in its server's channels, not in direct messages; \
                 nothing was run.",
            ),
            (Some(from), Some(home)) if from != home => {
                Some("This server is not the one recbot serves; nothing was run.")
            }
            _ => None,
        }
    }

    fn is_operator(&self, command: &CommandInteraction) -> bool {
        if self.operators.contains(&command.user.id.to_string()) {
            return true;
        }
        command.member.as_ref().is_some_and(|member| {
            member
                .roles
                .iter()
                .any(|role| self.operator_roles.contains(&role.to_string()))
        })
    }

    async fn command(&self, command: CommandInteraction) {
        // Discord does not redeliver interactions, but a reconnect may replay a dispatch.
        if !self
            .seen
            .lock()
            .expect("not poisoned")
            .first_time(&command.id.to_string())
        {
            return;
        }
        let interaction = Reference {
            id: command.id,
            application: command.application_id,
            token: command.token.clone(),
        };
        // Only recbot's server runs commands: not a direct message (no server's roles or
        // channels apply there), not another server the bot was added to.
        if let Some(refusal) = self.place_refusal(command.guild_id.map(|g| g.get())) {
            warn!(
                guild = ?command.guild_id.map(|g| g.get()),
                user = %command.user.id,
                "Discord: a command from outside recbot's server was refused"
            );
            self.respond(&interaction, &render::refused(refusal)).await;
            return;
        }
        let text = match command_text(&command.data.options) {
            Ok(text) => text,
            Err(message) => {
                let reply = render::refused(message);
                self.respond(&interaction, &reply).await;
                return;
            }
        };
        let origin = Origin {
            room: Room::Discord(command.channel_id.to_string()),
            user: command.user.id.to_string(),
            operator: self.is_operator(&command),
        };
        // Whether the deferred answer will be private is known from the command before it runs.
        let private_hint = recbot_commands::parse(&text).is_ok_and(|c| c.private_reply());
        match ack::submit(&self.core, &self.tracker, text, origin, self.ack_within).await {
            Answered::Now(reply) => self.respond(&interaction, &shown(&reply)).await,
            Answered::Later(task) => {
                let deferred = self
                    .rest
                    .call(
                        Method::POST,
                        &interaction.callback(),
                        Some(json!({
                            "type": 5,
                            "data": { "flags": if private_hint { EPHEMERAL } else { 0 } },
                        })),
                    )
                    .await;
                if let Err(e) = deferred {
                    warn!(error = ?e, "Discord: cannot defer the answer");
                }
                let rest = self.rest.clone();
                self.tracker.spawn(async move {
                    let reply = task.await.unwrap_or_else(|_| ack::failed());
                    follow_up(&rest, &interaction, private_hint, &shown(&reply)).await;
                });
            }
        }
    }

    async fn respond(&self, interaction: &Reference, reply: &Rendered) {
        let body = json!({
            "type": 4,
            "data": message(&reply.text, reply.private),
        });
        let result = self
            .rest
            .call(Method::POST, &interaction.callback(), Some(body))
            .await;
        if let Err(e) = result {
            warn!(error = ?e, "Discord: cannot answer an interaction");
        }
    }
}

/// What is needed to answer an interaction later.
#[derive(Debug, Clone)]
struct Reference {
    id: InteractionId,
    application: ApplicationId,
    token: String,
}

impl Reference {
    fn callback(&self) -> String {
        format!("/interactions/{}/{}/callback", self.id, self.token)
    }

    fn original(&self) -> String {
        format!(
            "/webhooks/{}/{}/messages/@original",
            self.application, self.token
        )
    }
}

/// Edits the deferred answer; a private answer to a public deferral goes in an ephemeral
/// follow-up instead, so it is never shown to the room.
async fn follow_up(rest: &Rest, interaction: &Reference, deferred_private: bool, reply: &Rendered) {
    let original = interaction.original();
    let result = if reply.private && !deferred_private {
        let done = json!({ "content": "Answered privately." });
        let _ = rest.call(Method::PATCH, &original, Some(done)).await;
        let followups = format!(
            "/webhooks/{}/{}",
            interaction.application, interaction.token
        );
        rest.call(Method::POST, &followups, Some(message(&reply.text, true)))
            .await
    } else {
        rest.call(Method::PATCH, &original, Some(message(&reply.text, false)))
            .await
    };
    if let Err(e) = result {
        warn!(error = ?e, "Discord: cannot deliver a late answer");
    }
}

/// A core reply in Discord's markup.
fn shown(reply: &Reply) -> Rendered {
    render::reply(reply, Markup::Discord)
}

/// Message content that mentions nobody (a stream title saying `@everyone` stays text), without
/// control or bidirectional characters (untrusted fields were escaped by `render`).
fn message(text: &str, private: bool) -> Value {
    let mut body = json!({
        "content": ack::clip(&render::safe_text(text), MAX_TEXT),
        "allowed_mentions": { "parse": [] },
    });
    if private {
        body["flags"] = json!(EPHEMERAL);
    }
    body
}

/// The command text for the subcommand and options Discord sent.
fn command_text(options: &[CommandDataOption]) -> Result<String, String> {
    let Some(CommandDataOption {
        name,
        value: CommandDataOptionValue::SubCommand(options),
        ..
    }) = options.first()
    else {
        return Err("use /rec with a subcommand, e.g. /rec help".into());
    };
    let mut pairs = Vec::new();
    for option in options {
        let value = match &option.value {
            CommandDataOptionValue::String(s) => s.clone(),
            CommandDataOptionValue::Integer(i) => i.to_string(),
            CommandDataOptionValue::Number(n) => n.to_string(),
            CommandDataOptionValue::Boolean(b) => b.to_string(),
            _ => return Err(format!("`{}` has an unexpected type", option.name)),
        };
        pairs.push((option.name.clone(), value));
    }
    schema::discord_text(name, &pairs)
}

/// Discord's REST API for what recbot posts. serenity keeps the gateway; these calls are
/// plain reqwest so that a 429's `retry_after` reaches the delivery's retry (which waits it
/// out and never drops the message), so that `api_url` applies to every call, and so that
/// each call waits for its route's bucket instead of running into a 429.
#[derive(Clone)]
struct Rest {
    client: reqwest::Client,
    /// `{api_url}/api/v10`
    base: String,
    token: Secret,
    buckets: Arc<Mutex<Buckets>>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest").field("base", &self.base).finish()
    }
}

/// A request body.
#[derive(Debug)]
enum Payload {
    Json(Value),
    /// `multipart/form-data`, already encoded (a message with a file).
    Multipart {
        boundary: String,
        bytes: Vec<u8>,
    },
}

/// A message with one attached file, as Discord takes it: `payload_json` (the message, its
/// attachment 0 named) and `files[0]` (the bytes). The file name is reduced to safe
/// characters (it sits in a header).
fn with_attachment(text: &str, name: &str, file: &[u8]) -> Payload {
    let name: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                true => c,
                false => '_',
            },
        )
        .collect();
    let mut payload = message(text, false);
    payload["attachments"] = json!([{ "id": 0, "filename": name }]);
    let boundary = format!("recbot-{:016x}", rand::random::<u64>());
    let mut bytes = Vec::with_capacity(file.len() + 1024);
    bytes.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\
             Content-Type: application/json\r\n\r\n{payload}\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"files[0]\"; filename=\"{name}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(file);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Payload::Multipart { boundary, bytes }
}

/// A REST answer that is not a rate limit or a network failure.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    json: Option<Value>,
}

impl Outcome {
    /// Discord's JSON error code, if any.
    fn code(&self) -> Option<u64> {
        self.json.as_ref().and_then(|j| j["code"].as_u64())
    }

    fn into_result(self) -> Result<Option<Value>, PostError> {
        if self.status.is_success() {
            return Ok(self.json);
        }
        let message = self
            .json
            .as_ref()
            .and_then(|j| j["message"].as_str())
            .unwrap_or("")
            .to_string();
        if self.status == StatusCode::UNAUTHORIZED {
            // The bot token was reset or revoked: no post can work until it is fixed.
            Err(PostError::Unauthorized(format!(
                "{}: {message}",
                self.status
            )))
        } else if self.status.is_client_error() {
            Err(PostError::Permanent(format!("{}: {message}", self.status)))
        } else {
            Err(PostError::Retry {
                after: None,
                reason: format!("{}: {message}", self.status),
            })
        }
    }
}

impl Rest {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, PostError> {
        self.exchange(method, path, body).await?.into_result()
    }

    /// One request, after its route's bucket allows it; rate limits and network trouble are
    /// errors, any other answer is returned as it is.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Outcome, PostError> {
        self.send(method, path, body.map(Payload::Json)).await
    }

    /// [`Rest::exchange`] with any kind of body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Payload>,
    ) -> Result<Outcome, PostError> {
        let route = route_key(&method, path);
        self.pace(&route).await?;
        let token = self.token.expose();
        let authorization = if token.starts_with("Bot ") {
            token.to_string()
        } else {
            format!("Bot {token}")
        };
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", authorization);
        match body {
            Some(Payload::Json(body)) => request = request.json(&body),
            Some(Payload::Multipart { boundary, bytes }) => {
                request = request
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(bytes)
            }
            None => {}
        }
        let response = request.send().await.map_err(|e| PostError::Retry {
            after: None,
            reason: format!("Discord unreachable: {}", e.without_url()),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let now = Instant::now();
        buckets.update(&route, &headers, now);
        if status != StatusCode::TOO_MANY_REQUESTS {
            return Ok(Outcome { status, json });
        }
        let after = json
            .as_ref()
            .and_then(|j| j["retry_after"].as_f64())
            .or_else(|| header_f64(&headers, "retry-after"))
            .unwrap_or(1.0);
        let after = seconds(after);
        let global = json.as_ref().is_some_and(|j| j["global"] == true)
            || header_str(&headers, "x-ratelimit-global") == Some("true");
        if global {
            buckets.global_until = Some(now + after);
        }
        Err(PostError::Retry {
            after: Some(after),
            reason: if global {
                "rate limited (429, global)".into()
            } else {
                "rate limited (429)".into()
            },
        })
    }

    /// Waits while the route's bucket (or the global limit) is empty. A long wait is left to
    /// the caller as a retry.
    async fn pace(&self, route: &str) -> Result<(), PostError> {
        loop {
            let wait = self
                .buckets
                .lock()
                .expect("not poisoned")
                .reserve(route, Instant::now());
            let Some(wait) = wait else { return Ok(()) };
            if wait > MAX_INLINE_WAIT {
                return Err(PostError::Retry {
                    after: Some(wait),
                    reason: "rate limit bucket empty".into(),
                });
            }
            // (The route is not logged: interaction routes carry their token.)
            debug!(
                wait_ms = wait.as_millis() as u64,
                "waiting for a Discord rate limit to reset"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Discord's limits are per route, with the channel, guild or webhook part of the route and a
/// message id not.
fn route_key(method: &Method, path: &str) -> String {
    let mut key = method.as_str().to_string();
    key.push(' ');
    let mut after_messages = false;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        key.push('/');
        if after_messages && segment.bytes().all(|b| b.is_ascii_digit()) {
            key.push_str(":id");
        } else {
            key.push_str(segment);
        }
        after_messages = segment == "messages";
    }
    key
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    header_str(headers, name).and_then(|v| v.trim().parse::<f64>().ok())
}

/// Seconds from Discord (fractional), kept within sane bounds (a clamp is logged).
fn seconds(value: f64) -> Duration {
    crate::remote::wait("discord", "rate-limit wait", value, MAX_RESET)
}

/// Discord's rate-limit state of the routes recbot called, from the answers'
/// `X-RateLimit-Remaining` and `X-RateLimit-Reset-After`.
#[derive(Debug, Default)]
struct Buckets {
    routes: HashMap<String, Bucket>,
    /// Set by a global 429: no call before then.
    global_until: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    remaining: u64,
    reset_at: Instant,
}

impl Buckets {
    /// How long a call on `route` must wait; when it need not, the call is counted.
    fn reserve(&mut self, route: &str, now: Instant) -> Option<Duration> {
        if let Some(until) = self.global_until {
            if until > now {
                return Some(until - now);
            }
            self.global_until = None;
        }
        let bucket = self.routes.get_mut(route)?;
        if bucket.reset_at <= now {
            // A new window; its answer says how much is left.
            self.routes.remove(route);
            return None;
        }
        if bucket.remaining == 0 {
            return Some(bucket.reset_at - now);
        }
        bucket.remaining -= 1;
        None
    }

    fn update(&mut self, route: &str, headers: &HeaderMap, now: Instant) {
        let remaining = header_str(headers, "x-ratelimit-remaining").and_then(|v| v.parse().ok());
        let reset_after = header_f64(headers, "x-ratelimit-reset-after");
        if let (Some(remaining), Some(reset_after)) = (remaining, reset_after) {
            let bucket = Bucket {
                remaining,
                reset_at: now + seconds(reset_after),
            };
            self.routes.insert(route.to_string(), bucket);
        }
        // Forget windows long over, so the map stays as small as the routes in use.
        if self.routes.len() > 256 {
            self.routes.retain(|_, b| b.reset_at > now);
        }
    }
}

// --- Posting ---

#[derive(Debug)]
struct DiscordPoster {
    rest: Rest,
}

fn id_of(value: Option<Value>) -> Result<String, PostError> {
    value
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| PostError::Retry {
            after: None,
            reason: "Discord answered without an id".into(),
        })
}

/// A Discord id from our own records or config: digits only, so it is safe in a path.
fn snowflake(id: &str) -> Result<&str, PostError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(PostError::Permanent(format!("`{id}` is not a Discord id")))
    }
}

impl Poster for DiscordPoster {
    async fn post(&self, place: &Place, text: &str) -> Result<MessageRef, PostError> {
        // A Discord thread is a channel of its own.
        let channel = snowflake(place.thread.as_deref().unwrap_or(&place.channel))?;
        let path = format!("/channels/{channel}/messages");
        let posted = self
            .rest
            .call(Method::POST, &path, Some(message(text, false)))
            .await?;
        Ok(MessageRef {
            channel: channel.to_string(),
            id: id_of(posted)?,
        })
    }

    async fn start_thread(&self, starter: &MessageRef, name: &str) -> Result<String, PostError> {
        let path = format!(
            "/channels/{}/messages/{}/threads",
            snowflake(&starter.channel)?,
            snowflake(&starter.id)?
        );
        let body = json!({ "name": name, "auto_archive_duration": 1440 });
        let outcome = self.rest.exchange(Method::POST, &path, Some(body)).await?;
        // A thread started from a message has the message's id. Discord refuses a second
        // one, e.g. when a restart came between starting it and recording it.
        if outcome.code() == Some(THREAD_ALREADY_CREATED) {
            return Ok(starter.id.clone());
        }
        id_of(outcome.into_result()?)
    }

    async fn edit(&self, message_ref: &MessageRef, text: &str) -> Result<(), PostError> {
        let path = format!(
            "/channels/{}/messages/{}",
            snowflake(&message_ref.channel)?,
            snowflake(&message_ref.id)?
        );
        self.rest
            .call(Method::PATCH, &path, Some(message(text, false)))
            .await?;
        Ok(())
    }

    /// A message with the file attached, in the thread (a channel of its own) or the room.
    async fn upload_file(
        &self,
        place: &Place,
        name: &str,
        bytes: Vec<u8>,
        text: &str,
    ) -> Result<MessageRef, PostError> {
        let channel = snowflake(place.thread.as_deref().unwrap_or(&place.channel))?;
        let path = format!("/channels/{channel}/messages");
        let body = with_attachment(text, name, &bytes);
        let posted = self
            .rest
            .send(Method::POST, &path, Some(body))
            .await?
            .into_result()?;
        Ok(MessageRef {
            channel: channel.to_string(),
            id: id_of(posted)?,
        })
    }
}

#[cfg(test)]
mod tests;
