//! The Slack workspace and app recbot's bot token belongs to, and the check that a slash
//! command comes from them. A Slack app can be installed in several workspaces (and an HTTP
//! endpoint can receive requests meant for another app signed with the same secret only if
//! the secret leaked, but a distributed app is enough): a command whose `team_id` (or, where
//! Slack sends it, `api_app_id`) is not recbot's is refused without running.
//!
//! Both are learnt from Slack, not configured: `auth.test` with the bot token gives the
//! workspace (`team_id`), the bot (`bot_id`) and, where Slack includes it, the app (`app_id`);
//! otherwise `bots.info` for that bot gives `bot.app_id` (it needs the `users:read` scope;
//! without it only the workspace is checked, and a warning says so). Learning is retried at
//! the next command while it fails, and until it worked every command is refused (fail closed).

use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::secret::Secret;

/// Who recbot is on Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub team_id: String,
    /// `None` when Slack would not say (see the module doc).
    pub app_id: Option<String>,
}

/// Where a command says it comes from.
#[derive(Debug, Clone, Default)]
pub(super) struct Claimed {
    pub team_id: Option<String>,
    pub app_id: Option<String>,
}

#[derive(Debug)]
pub(super) struct Home {
    http: reqwest::Client,
    api_url: String,
    bot_token: Secret,
    known: OnceCell<Identity>,
}

impl Home {
    pub(super) fn new(http: reqwest::Client, api_url: &str, bot_token: Secret) -> Home {
        Home {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            bot_token,
            known: OnceCell::new(),
        }
    }

    /// recbot's identity, learnt once.
    pub(super) async fn identity(&self) -> Result<&Identity, String> {
        self.known.get_or_try_init(|| self.learn()).await
    }

    /// `None` when `claimed` is recbot's workspace (and app, when both are known); else why
    /// the command is refused.
    pub(super) async fn refusal(&self, claimed: &Claimed) -> Option<String> {
        let me = match self.identity().await {
            Ok(me) => me,
            Err(e) => {
                warn!(error = %e, "Slack: cannot learn recbot's workspace; command refused");
                return Some(
                    "recbot cannot check which workspace this command comes from right now \
                     (Slack's auth.test failed); nothing was run, try again shortly."
                        .into(),
                );
            }
        };
        if claimed.team_id.as_deref() != Some(me.team_id.as_str()) {
            warn!(
                team = claimed.team_id.as_deref().unwrap_or("none"),
                "Slack: a command from another workspace was refused"
            );
            return Some("This workspace is not the one recbot serves; nothing was run.".into());
        }
        if let (Some(mine), Some(theirs)) = (&me.app_id, &claimed.app_id) {
            if mine != theirs {
                warn!(app = %theirs, "Slack: a command for another app was refused");
                return Some("This command is for another Slack app; nothing was run.".into());
            }
        }
        None
    }

    async fn learn(&self) -> Result<Identity, String> {
        let auth = self.call("auth.test", &[]).await?;
        let team_id = auth["team_id"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("auth.test gave no team_id")?
            .to_string();
        let mut app_id = auth["app_id"].as_str().map(str::to_string);
        if app_id.is_none() {
            if let Some(bot) = auth["bot_id"].as_str() {
                match self.call("bots.info", &[("bot", bot)]).await {
                    Ok(info) => app_id = info["bot"]["app_id"].as_str().map(str::to_string),
                    Err(e) => warn!(
                        error = %e,
                        "Slack: cannot learn recbot's app id (bots.info; it needs the \
                         users:read scope); commands are checked against the workspace only"
                    ),
                }
            }
        }
        info!(team = %team_id, app = app_id.as_deref().unwrap_or("unknown"), "Slack: workspace learnt");
        Ok(Identity { team_id, app_id })
    }

    /// A Web API method with the bot token; its JSON when `ok`.
    async fn call(&self, method: &str, form: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_url))
            .bearer_auth(self.bot_token.expose())
            .form(form)
            .send()
            .await
            .map_err(|e| format!("{method}: {}", e.without_url()))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| format!("{method}: unreadable answer (HTTP {status})"))?;
        if body["ok"] != true {
            return Err(format!(
                "{method}: {}",
                body["error"].as_str().unwrap_or("not ok")
            ));
        }
        Ok(body)
    }
}
