//! `[http]`: the HTTP API and live event stream (`frontend/http/`): where it listens, the
//! bearer tokens it accepts and what each may do.

use std::net::SocketAddr;

use serde::Deserialize;

use super::fail;
use crate::secret::Secret;

/// Shortest bearer token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token name (it appears in the audit log as `http:<name>`).
pub const MAX_TOKEN_NAME_LEN: usize = 32;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// `host:port`; `""` disables the listener. Port 0 picks a free port (tests).
    pub listen: String,
    pub tokens: Vec<HttpToken>,
    /// When set, `GET /metrics` requires this bearer token; open without.
    pub metrics_token: Option<Secret>,
    /// Seconds between heartbeat comments on the event stream (and pings on the WebSocket).
    pub heartbeat_secs: f64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:8686".into(),
            tokens: Vec::new(),
            metrics_token: None,
            heartbeat_secs: 15.0,
        }
    }
}

/// One `[[http.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToken {
    pub name: String,
    pub token: Secret,
    pub role: Role,
}

/// What a token may do: operators change things, viewers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

impl Http {
    /// The address to listen on; `None` when disabled (`listen = ""`).
    pub fn address(&self) -> Option<SocketAddr> {
        if self.listen.trim().is_empty() {
            return None;
        }
        self.listen.trim().parse().ok()
    }

    /// A token name as the audit log and the watch list's room take it (`http:<name>`).
    pub fn valid_token_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_TOKEN_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// The `[http]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !self.listen.trim().is_empty() && self.address().is_none() {
            return fail(
                "http.listen",
                "must be an address and port such as 127.0.0.1:8686 (or \"\" to disable)",
            );
        }
        if !(self.heartbeat_secs.is_finite()
            && self.heartbeat_secs >= 0.05
            && self.heartbeat_secs <= 300.0)
        {
            return fail(
                "http.heartbeat_secs",
                "must be between 0.05 and 300 seconds",
            );
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if !Self::valid_token_name(&t.name) {
                return fail(
                    "http.tokens",
                    &format!(
                        "token {}: `name` must be 1 to {MAX_TOKEN_NAME_LEN} letters, digits, `_` \
                         or `-`",
                        i + 1
                    ),
                );
            }
            if self.tokens[..i].iter().any(|o| o.name == t.name) {
                return fail(
                    "http.tokens",
                    &format!("the token name `{}` is used twice", t.name),
                );
            }
            if t.token.expose().chars().count() < MIN_TOKEN_LEN {
                return fail(
                    "http.tokens",
                    &format!(
                        "the token of `{}` is too short (at least {MIN_TOKEN_LEN} characters)",
                        t.name
                    ),
                );
            }
            if t.token
                .expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return fail(
                    "http.tokens",
                    &format!(
                        "the token of `{}` contains a space or control character",
                        t.name
                    ),
                );
            }
        }
        if let Some(token) = &self.metrics_token {
            if token.expose().chars().count() < MIN_TOKEN_LEN {
                return fail(
                    "http.metrics_token",
                    &format!("is too short (at least {MIN_TOKEN_LEN} characters)"),
                );
            }
        }
        Ok(())
    }

    /// The `check-config` line of `/metrics`: where, and whether it needs its token (never
    /// the token itself).
    pub(super) fn metrics_summary(&self) -> String {
        let Some(addr) = self.address() else {
            return "off (no HTTP listener)".into();
        };
        let access = match self.metrics_token {
            Some(_) => "bearer metrics_token required",
            None => "open: no metrics_token",
        };
        format!("http://{addr}/metrics ({access})")
    }

    /// The `check-config` line: the listener and the token names and roles, never the tokens.
    pub(super) fn summary(&self) -> String {
        let Some(addr) = self.address() else {
            return "off (listen = \"\")".into();
        };
        let tokens: Vec<String> = self
            .tokens
            .iter()
            .map(|t| format!("{} ({})", t.name, t.role.as_str()))
            .collect();
        let tokens = if tokens.is_empty() {
            "no tokens: only the probes answer".to_string()
        } else {
            format!("tokens: {}", tokens.join(", "))
        };
        format!("http://{addr} ({tokens})")
    }
}
