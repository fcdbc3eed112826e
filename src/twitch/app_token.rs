//! The Twitch app access token (client-credentials grant at `{id_url}/token`), used for Helix.
//! Cached until shortly before it expires, dropped on a 401. App tokens cannot be refreshed;
//! a new one is simply requested.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::secret::Secret;

/// Renew this long before Twitch's stated expiry, so a token never dies mid-request.
const EARLY_RENEWAL: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct AppToken {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    cached: Option<(Secret, Instant)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppTokenError {
    #[error("cannot reach Twitch's token endpoint: {0}")]
    Transport(#[from] reqwest::Error),
    /// Wrong client id or secret: a human must fix the config.
    #[error("Twitch refused the app credentials (HTTP {status}: {message}); check [twitch] client_id and client_secret")]
    Refused { status: u16, message: String },
    #[error("Twitch's token endpoint answered HTTP {0}")]
    Status(u16),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Any JSON number: a lifetime beyond what `u64` or `Instant` holds is clamped, not refused.
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    message: String,
}

impl AppToken {
    pub fn new(
        http: reqwest::Client,
        id_url: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> AppToken {
        AppToken {
            http,
            token_url: format!("{}/token", id_url.trim_end_matches('/')),
            client_id: client_id.to_string(),
            client_secret,
            cached: None,
        }
    }

    /// The cached token, or a new one.
    pub async fn get(&mut self) -> Result<Secret, AppTokenError> {
        if let Some((token, expires)) = &self.cached {
            if Instant::now() < *expires {
                return Ok(token.clone());
            }
        }
        let response = self
            .http
            .post(&self.token_url)
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await?;
        let status = response.status();
        if status.is_client_error() {
            let message = response
                .json::<ErrorResponse>()
                .await
                .map(|e| e.message)
                .unwrap_or_default();
            return Err(AppTokenError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        if !status.is_success() {
            return Err(AppTokenError::Status(status.as_u16()));
        }
        let body: TokenResponse = response.json().await?;
        let lifetime = crate::remote::lifetime("twitch", body.expires_in.unwrap_or(3600.0))
            .unwrap_or(Duration::ZERO);
        let token = Secret::new(body.access_token);
        self.cached = Some((
            token.clone(),
            Instant::now() + lifetime.saturating_sub(EARLY_RENEWAL),
        ));
        Ok(token)
    }

    /// Forgets the cached token (Helix answered 401 with it).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn cached_until_invalidated() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains("client_secret=s3cret"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"access_token": "tok", "expires_in": 5011271, "token_type": "bearer"}),
            ))
            .expect(2)
            .mount(&server)
            .await;
        let mut token = AppToken::new(
            reqwest::Client::new(),
            &format!("{}/oauth2", server.uri()),
            "cid",
            Secret::new("s3cret"),
        );
        assert_eq!(token.get().await.unwrap().expose(), "tok");
        assert_eq!(token.get().await.unwrap().expose(), "tok");
        token.invalidate();
        token.get().await.unwrap();
    }

    #[tokio::test]
    async fn an_absurd_lifetime_is_clamped_not_a_panic() {
        for expires_in in [
            serde_json::json!(u64::MAX),
            serde_json::json!(1e30),
            serde_json::json!(-5),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"access_token": "tok", "expires_in": expires_in}),
                ))
                .mount(&server)
                .await;
            let mut token = AppToken::new(
                reqwest::Client::new(),
                &server.uri(),
                "cid",
                Secret::new("s3cret"),
            );
            assert_eq!(token.get().await.unwrap().expose(), "tok", "{expires_in}");
            let (_, until) = token.cached.as_ref().unwrap();
            assert!(
                *until <= Instant::now() + crate::remote::MAX_TOKEN_LIFETIME,
                "{expires_in}"
            );
        }
    }

    #[tokio::test]
    async fn wrong_credentials_say_what_to_fix() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(403).set_body_json(
                serde_json::json!({"status": 403, "message": "invalid client secret"}),
            ))
            .mount(&server)
            .await;
        let mut token = AppToken::new(
            reqwest::Client::new(),
            &server.uri(),
            "cid",
            Secret::new("wrong"),
        );
        let err = token.get().await.unwrap_err().to_string();
        assert!(err.contains("invalid client secret"), "{err}");
        assert!(err.contains("client_secret"), "{err}");
        assert!(!err.contains("wrong"), "{err}");
    }
}
