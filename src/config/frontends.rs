//! `[console]`, `[slack]` and `[discord]`: the front-ends people command recbot from.

use std::net::SocketAddr;

use serde::Deserialize;

use super::lenient::{lenient_opt_string, lenient_strings};
use super::{check_urls, fail};
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// Default: on when neither Slack nor Discord is configured.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slack {
    /// `xapp-…` with `connections:write`, for Socket Mode.
    pub app_token: Option<Secret>,
    /// `xoxb-…`, for posting.
    pub bot_token: Option<Secret>,
    /// For the optional HTTP mode (`listen`).
    pub signing_secret: Option<Secret>,
    /// HTTP mode instead of Socket Mode: address to listen on for slash commands and events.
    pub listen: Option<SocketAddr>,
    pub api_url: String,
    pub command: String,
    #[serde(deserialize_with = "lenient_strings")]
    pub operators: Vec<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub events_room: Option<String>,
}

impl Default for Slack {
    fn default() -> Self {
        Slack {
            app_token: None,
            bot_token: None,
            signing_secret: None,
            listen: None,
            api_url: "https://slack.com/api".into(),
            command: "/rec".into(),
            operators: Vec::new(),
            events_room: None,
        }
    }
}

impl Slack {
    pub fn is_configured(&self) -> bool {
        self.bot_token.is_some()
    }
}

impl Slack {
    /// The `[slack]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        check_urls([("slack.api_url", &self.api_url)])?;
        if self.app_token.is_some() && self.bot_token.is_none() {
            return fail(
                "slack.bot_token",
                "Slack needs a bot token (xoxb-…) to post",
            );
        }
        if self.bot_token.is_some() {
            if self.listen.is_none() && self.app_token.is_none() {
                return fail(
                    "slack.app_token",
                    "Socket Mode needs an app token (xapp-…); or set listen + signing_secret \
                     for HTTP mode",
                );
            }
            if self.listen.is_some() && self.signing_secret.is_none() {
                return fail(
                    "slack.signing_secret",
                    "HTTP mode (listen) needs the app's signing secret",
                );
            }
        }
        if !self.command.starts_with('/') || self.command.len() < 2 || self.command.contains(' ') {
            return fail("slack.command", "must be a slash command such as /rec");
        }
        Ok(())
    }

    /// The `check-config` text on the Slack front-end.
    pub(super) fn summary(&self) -> String {
        let mode = match self.listen {
            Some(addr) => format!("HTTP mode on {addr}"),
            None => "Socket Mode".into(),
        };
        format!(
            "slack ({mode}, command {}, {} operators)",
            self.command,
            self.operators.len()
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discord {
    pub token: Option<Secret>,
    pub api_url: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub guild_id: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub operators: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub operator_roles: Vec<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub events_room: Option<String>,
}

impl Default for Discord {
    fn default() -> Self {
        Discord {
            token: None,
            api_url: "https://discord.com".into(),
            guild_id: None,
            operators: Vec::new(),
            operator_roles: Vec::new(),
            events_room: None,
        }
    }
}

impl Discord {
    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }
}

impl Discord {
    /// The `[discord]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        check_urls([("discord.api_url", &self.api_url)])?;
        if let Some(guild) = &self.guild_id {
            if guild.parse::<u64>().is_err() {
                return fail("discord.guild_id", "must be a numeric Discord id");
            }
        }
        for (key, ids) in [
            ("discord.operators", &self.operators),
            ("discord.operator_roles", &self.operator_roles),
        ] {
            if ids.iter().any(|id| id.parse::<u64>().is_err()) {
                return fail(key, "must be a list of numeric Discord ids");
            }
        }
        Ok(())
    }

    /// The `check-config` text on the Discord front-end.
    pub(super) fn summary(&self) -> String {
        let scope = match &self.guild_id {
            Some(g) => format!("guild {g}"),
            None => "global command".into(),
        };
        format!(
            "discord ({scope}, {} operators, {} operator roles)",
            self.operators.len(),
            self.operator_roles.len()
        )
    }
}
