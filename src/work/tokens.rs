//! OAuth tokens as workers receive and hand back: [`StoredToken`], and [`TokenSource`], how a
//! worker reads the stored one (the core implements it on its store).

use anyhow::Result;
use chrono::{DateTime, Utc};
use recbot_commands::Service;

use crate::secret::Secret;

/// A stored OAuth token set.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes, space-separated as OAuth servers send them.
    pub scopes: String,
    /// The client the token was issued to, when known (Twitch: GQL takes a viewer token only
    /// with its own client id).
    pub client_id: Option<String>,
    /// Whose token it is, when the service said (Twitch's `login`).
    pub account: Option<String>,
}

/// Where a worker reads the token stored for a service. The core implements it; a worker never
/// writes a token this way (that is [`super::Calls::save_token`], acknowledged once persisted).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// The token set stored for `service`, if any.
    async fn token(&self, service: Service) -> Result<Option<StoredToken>>;
}
