//! `[[webhooks]]`: outside receivers that get every event (or the kinds listed) POSTed as
//! signed JSON, through the outbox (a cursor per webhook).

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::check_url;
use crate::event::EventKind;
use crate::secret::Secret;

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names its cursor (`webhook:<name>`) and its lines in logs and events; changing it
    /// starts the webhook over from the current run.
    pub name: String,
    /// An http(s) address; private addresses are allowed (local automation).
    pub url: String,
    /// The HMAC-SHA256 key of `X-Recbot-Signature`.
    pub secret: Secret,
    /// Stable event names to send; empty (the default) sends every event.
    #[serde(default)]
    pub events: Vec<String>,
    /// How long one POST may take before it counts as failed (and is tried again).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// First wait before a failed POST is tried again; doubles up to `retry_max_secs`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_retry_initial_ms() -> u64 {
    1000
}

fn default_retry_max_secs() -> u64 {
    600
}

impl Webhook {
    /// The webhook's key in the outbox tables.
    pub fn outbox_key(&self) -> String {
        format!("webhook:{}", self.name)
    }

    /// Whether events of stable name `kind` go to this webhook.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_secs)
    }

    /// The receiver's host, for `check-config` (the path may carry a token: not shown).
    fn host(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{}://{host}:{port}", u.scheme()),
                    None => format!("{}://{host}", u.scheme()),
                })
            })
            .unwrap_or_default()
    }
}

/// The `[[webhooks]]` checks types alone cannot make; keys are named `webhooks[i].key`.
pub(super) fn validate(webhooks: &[Webhook]) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, hook) in webhooks.iter().enumerate() {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        let valid_name = !hook.name.is_empty()
            && hook.name.len() <= 32
            && hook
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err((
                key("name"),
                "must be 1 to 32 letters, digits, `-` or `_`".into(),
            ));
        }
        if !names.insert(hook.name.as_str()) {
            return Err((
                key("name"),
                format!("`{}` names another webhook too", hook.name),
            ));
        }
        check_url(&hook.url).map_err(|m| (key("url"), m))?;
        if hook.secret.expose().is_empty() {
            return Err((
                key("secret"),
                "must not be empty (receivers check the signature with it)".into(),
            ));
        }
        if let Some(unknown) = hook
            .events
            .iter()
            .find(|e| !EventKind::NAMES.contains(&e.as_str()))
        {
            return Err((
                key("events"),
                format!(
                    "`{unknown}` is not an event name (see the README's E-mail and webhooks, e.g. \
                     RecordingFailed, UploadFinished)"
                ),
            ));
        }
        if !(1..=300).contains(&hook.timeout_secs) {
            return Err((key("timeout_secs"), "must be 1 to 300 seconds".into()));
        }
        if hook.retry_initial_ms == 0 || hook.retry_initial_ms > hook.retry_max_secs * 1000 {
            return Err((
                key("retry_initial_ms"),
                "must be more than 0 and at most retry_max_secs".into(),
            ));
        }
        if hook.retry_max_secs > 3600 {
            return Err((key("retry_max_secs"), "must be at most 3600 seconds".into()));
        }
    }
    Ok(())
}

/// The `check-config` line on webhooks: name, receiver host and events; never the secret.
pub(super) fn summary(webhooks: &[Webhook]) -> String {
    if webhooks.is_empty() {
        return "webhooks:        none\n".into();
    }
    let hooks: Vec<String> = webhooks
        .iter()
        .map(|h| {
            let events = if h.events.is_empty() {
                "all events".to_string()
            } else {
                h.events.join(", ")
            };
            format!("{} → {} ({events})", h.name, h.host())
        })
        .collect();
    format!("webhooks:        {}\n", hooks.join("; "))
}
