//! The Discord front-end (serenity): the gateway connection, the `/rec` command registered
//! from the command table (guild-scoped when `guild_id` is set, global otherwise), interactions
//! answered within Discord's 3 seconds (deferred and edited for slow work), and notices posted
//! through the shared delivery (a thread per broadcast started from its first message).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use recbot_commands::schema;
use reqwest::Method;
use serde_json::{json, Value};
use serenity::all::{
    ApplicationId, Client, ClientBuilder, CommandDataOption, CommandDataOptionValue,
    CommandInteraction, Context, EventHandler, GatewayIntents, HttpBuilder, Interaction,
    InteractionId, Ready,
};
use serenity::http::Http;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::chat::{self, Answered, RecentIds};
use super::delivery::{Backoff, Delivery, MessageRef, Place, Platform, PostError, Poster};
use crate::config::{Config, Secret};
use crate::core::{CoreHandle, Notice, Origin, Reply};
use crate::event::Room;

/// Discord's limit for message content.
const MAX_TEXT: usize = 2000;
/// Interaction response flag: only the invoking user sees it.
const EPHEMERAL: u64 = 64;
/// Where real Discord lives; any other `api_url` is used as serenity's proxy (a fake).
const DISCORD: &str = "https://discord.com";

/// Knobs that are not configuration.
#[derive(Debug, Clone, Copy)]
pub struct DiscordOptions {
    pub ack_within: Duration,
    pub backoff: Backoff,
}

impl Default for DiscordOptions {
    fn default() -> Self {
        DiscordOptions {
            ack_within: chat::ACK_WITHIN,
            backoff: Backoff::default(),
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
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("{api_url}/api/v10"),
        token: token.clone(),
    };
    let poster = Arc::new(DiscordPoster { rest: rest.clone() });
    let delivery = Delivery::new(
        Platform::Discord,
        poster,
        core.clone(),
        discord.events_room.clone(),
        options.backoff,
    );
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
    };
    let handler = Arc::new(handler);
    // serenity reconnects and resumes on its own; a start that fails outright (Discord
    // unreachable, gateway refused) is retried here with backoff.
    let mut wait = options.backoff.first;
    loop {
        let client = ClientBuilder::new_with_http(
            gateway_http(token.expose(), &api_url),
            GatewayIntents::GUILDS,
        )
        .event_handler_arc(handler.clone())
        .await;
        let result = match client {
            Ok(client) => gateway(client, &shutdown).await,
            Err(e) => Err(e.into()),
        };
        if shutdown.is_cancelled() {
            return Ok(());
        }
        match result {
            Ok(()) => warn!("Discord gateway closed; reconnecting"),
            Err(e) => {
                warn!(error = %e, wait_ms = wait.as_millis() as u64, "Discord gateway failed; reconnecting")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        wait = (wait * 2).min(options.backoff.max);
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

async fn gateway(mut client: Client, shutdown: &CancellationToken) -> Result<()> {
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start() => result.map_err(Into::into),
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
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
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

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Interaction::Command(command) = interaction {
            self.command(command).await;
        }
    }
}

impl Handler {
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
        let text = match command_text(&command.data.options) {
            Ok(text) => text,
            Err(message) => {
                let reply = Reply::refused(message);
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
        match chat::submit(&self.core, &self.tracker, text, origin, self.ack_within).await {
            Answered::Now(reply) => self.respond(&interaction, &reply).await,
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
                    let reply = task.await.unwrap_or_else(|_| chat::failed());
                    follow_up(&rest, &interaction, private_hint, &reply).await;
                });
            }
        }
    }

    async fn respond(&self, interaction: &Reference, reply: &Reply) {
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
async fn follow_up(rest: &Rest, interaction: &Reference, deferred_private: bool, reply: &Reply) {
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

/// Message content that mentions nobody (a stream title saying `@everyone` stays text).
fn message(text: &str, private: bool) -> Value {
    let mut body = json!({
        "content": chat::clip(text, MAX_TEXT),
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
/// out and never drops the message) and so that `api_url` applies to every call.
#[derive(Clone)]
struct Rest {
    client: reqwest::Client,
    /// `{api_url}/api/v10`
    base: String,
    token: Secret,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest").field("base", &self.base).finish()
    }
}

impl Rest {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, PostError> {
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
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| PostError::Retry {
            after: None,
            reason: format!("Discord unreachable: {}", e.without_url()),
        })?;
        let status = response.status();
        let header_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok());
        let bytes = response.bytes().await.unwrap_or_default();
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return Ok(json);
        }
        let message = json
            .as_ref()
            .and_then(|j| j["message"].as_str())
            .unwrap_or("")
            .to_string();
        if status.as_u16() == 429 {
            let after = json
                .as_ref()
                .and_then(|j| j["retry_after"].as_f64())
                .or(header_after)
                .unwrap_or(1.0);
            return Err(PostError::Retry {
                after: Some(Duration::from_secs_f64(after.clamp(0.0, 600.0))),
                reason: "rate limited (429)".into(),
            });
        }
        if status.is_client_error() {
            Err(PostError::Permanent(format!("{status}: {message}")))
        } else {
            Err(PostError::Retry {
                after: None,
                reason: format!("{status}: {message}"),
            })
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
        id_of(self.rest.call(Method::POST, &path, Some(body)).await?)
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
}
