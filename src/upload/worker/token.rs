//! The upload worker's access token: the stored YouTube token, refreshed (and the new one
//! stored through `Calls`) shortly before it expires or when YouTube refused it.

use chrono::Utc;
use recbot_commands::Service;
use tracing::debug;

use super::UploadWorker;
use crate::secret::Secret;
use crate::upload::google::RefreshError;

/// A valid access token is refreshed this long before it expires.
const TOKEN_MARGIN_SECS: i64 = 60;

/// Why no access token is at hand.
pub(super) enum TokenError {
    /// A human must authorize again.
    Auth(String),
    Transient(String),
}

impl UploadWorker {
    /// The stored access token, refreshed when it expires within a minute (or when `force`).
    pub(super) async fn access_token(&self, force: bool) -> Result<Secret, TokenError> {
        let stored = self
            .stored
            .token(Service::Youtube)
            .await
            .map_err(|e| TokenError::Transient(format!("cannot read the stored token: {e}")))?;
        let Some(stored) = stored else {
            return Err(TokenError::Auth("YouTube is not connected yet".into()));
        };
        let fresh = stored
            .expires_at
            .is_none_or(|at| at - chrono::Duration::seconds(TOKEN_MARGIN_SECS) > Utc::now());
        if fresh && !force {
            return Ok(stored.access_token);
        }
        let Some(refresh) = stored.refresh_token.as_ref() else {
            return Err(TokenError::Auth(
                "the YouTube access token expired and Google gave no refresh token".into(),
            ));
        };
        match self.tokens.refresh(refresh).await {
            Ok(token) => {
                debug!("YouTube access token refreshed");
                let access = token.access_token.clone();
                self.calls
                    .save_token(Service::Youtube, token)
                    .await
                    .map_err(|e| TokenError::Transient(format!("{e:#}")))?;
                Ok(access)
            }
            Err(RefreshError::Revoked(reason)) => Err(TokenError::Auth(format!(
                "Google refused the refresh token ({reason}): it was revoked, or it expired \
                 (apps whose consent screen is in Testing mode get 7-day refresh tokens)"
            ))),
            Err(RefreshError::Transient(reason)) => Err(TokenError::Transient(reason)),
        }
    }
}
