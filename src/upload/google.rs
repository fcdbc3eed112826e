//! Google OAuth for YouTube uploads (scope `youtube.upload`).
//!
//! Consent and the code exchange go through yup-oauth2's installed flow ([`ConsentFlow`]): its
//! delegate hands the consent link to the operator who ran `auth youtube` (only as the private
//! reply: a link in an event would reach the public `events_room`) and takes the code an
//! operator pastes with `code youtube`; the tokens
//! yup-oauth2 obtains are stored by the core. The redirect address is the configured loopback
//! one, never the out-of-band value Google blocked in 2023.
//!
//! Refreshing ([`GoogleTokens`]) is done here with reqwest, because yup-oauth2 starts a new
//! consent whenever a refresh fails for any reason: a network outage would then read as
//! "authorization required". Here only Google's refusal of the refresh token does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use recbot_commands::{PastedCode, Service};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use yup_oauth2::authenticator_delegate::InstalledFlowDelegate;
use yup_oauth2::storage::{TokenInfo, TokenStorage, TokenStorageError};
use yup_oauth2::{ApplicationSecret, InstalledFlowAuthenticator, InstalledFlowReturnMethod};

use crate::config::Youtube;
use crate::event::EventKind;
use crate::secret::Secret;
use crate::work::{Calls, Events, StoredToken};

/// The only scope recbot asks Google for.
pub const UPLOAD_SCOPE: &str = "https://www.googleapis.com/auth/youtube.upload";
/// Token endpoint requests.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Why a code's exchange failed when Google's answer could not be used at all.
const UNUSABLE_ANSWER: &str = "Google answered the code with a token recbot cannot use (its \
     lifetime is out of range); nothing was stored. Run `auth youtube` again; if this repeats, \
     check [youtube] token_url";

/// Where the outcome of one code's exchange goes.
type Outcome = oneshot::Sender<Result<(), String>>;

/// The code Google is exchanging right now, if any: where to say how it went. Shared with the
/// core, which refuses another paste meanwhile (the flow would only queue it).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<Option<Outcome>>>);

impl InFlight {
    /// Whether a pasted code is being exchanged.
    pub fn busy(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outcome>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pasted code on its way to the flow, with where to say how the exchange went.
#[derive(Debug)]
pub struct CodeAttempt {
    pub code: PastedCode,
    pub reply: Outcome,
}

/// Where the consent link goes: only ever the private reply to `auth youtube` (or why no link
/// could be made), never an event.
#[derive(Debug)]
pub enum Present {
    Reply(oneshot::Sender<Result<String, String>>),
}

/// One pending authorization: shows the link, exchanges pasted codes until one works, the
/// deadline passes or it is cancelled (replaced by a newer `auth youtube`, or shutdown).
#[derive(Debug)]
pub struct ConsentFlow {
    pub config: Youtube,
    pub calls: Calls,
    pub events: Events,
    pub present: Present,
    pub codes: mpsc::Receiver<CodeAttempt>,
    /// Filled with the consent link once known (the core repeats it in later notices).
    pub url: Arc<OnceLock<String>>,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub in_flight: InFlight,
}

impl ConsentFlow {
    pub async fn run(self) {
        let ConsentFlow {
            config,
            calls,
            events,
            present,
            codes,
            url,
            deadline,
            cancel,
            in_flight: current,
        } = self;
        let present = Arc::new(Mutex::new(Some(present)));
        let delegate = ChatDelegate {
            redirect_uri: config.redirect_uri.clone(),
            present: present.clone(),
            url: url.clone(),
            codes: tokio::sync::Mutex::new(codes),
            current: current.clone(),
        };
        let auth = match authenticator(&config, delegate, calls.clone()).await {
            Ok(auth) => auth,
            Err(e) => {
                warn!(error = %e, "cannot start the YouTube authorization");
                if let Some(Present::Reply(tx)) = present.lock().expect("not poisoned").take() {
                    let _ = tx.send(Err(format!("cannot start the authorization: {e}")));
                }
                return;
            }
        };
        loop {
            let Some(result) = next_answer(&auth, deadline, &cancel, &current).await else {
                return;
            };
            let reply: Option<Outcome> = current.lock().take();
            match result {
                Ok(()) => {
                    let done = calls
                        .auth_completed(Service::Youtube, None)
                        .await
                        .map_err(|e| format!("the tokens were received but not saved: {e:#}"));
                    if let Some(reply) = reply {
                        let _ = reply.send(done);
                    }
                    return;
                }
                Err(message) => {
                    warn!(error = %message, "YouTube authorization code was not accepted");
                    if !report_refused(message, reply, &events).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Google's answer to the next pasted code; `None` when the flow ends first (shutdown, or the
/// deadline with no code being exchanged).
async fn next_answer(
    auth: &Authenticator,
    deadline: Instant,
    cancel: &CancellationToken,
    current: &InFlight,
) -> Option<Result<(), String>> {
    // yup-oauth2 adds Google's `expires_in` to the clock unchecked: an absurd lifetime
    // (e.g. `9223372036854775807`) panics inside it. That is Google's (or an impostor's)
    // bad answer, reported as such, not a reason to lose the flow.
    let mut token = std::pin::pin!(std::panic::AssertUnwindSafe(auth.token(&[UPLOAD_SCOPE]))
        .catch_unwind()
        .map(|r| match r {
            Ok(r) => r.map(drop).map_err(|e| explain(&e)),
            Err(_) => Err(UNUSABLE_ANSWER.to_string()),
        }));
    tokio::select! {
        _ = cancel.cancelled() => None,
        _ = tokio::time::sleep_until(deadline) => {
            // A code already sent to Google is used up whatever happens: its answer
            // (bounded by the request timeout) is still awaited and stored.
            if !current.busy() {
                info!("the pending YouTube authorization expired");
                return None;
            }
            tokio::select! {
                _ = cancel.cancelled() => None,
                result = &mut token => Some(result),
            }
        }
        result = &mut token => Some(result),
    }
}

/// Tells the operator a code was refused; `false` when no `code` reply was waiting (the
/// delegate stopped waiting for codes: nothing more can come).
async fn report_refused(message: String, reply: Option<Outcome>, events: &Events) -> bool {
    let Some(reply) = reply else {
        return false;
    };
    // The `code` reply stopped waiting (its time limit): the outcome goes to
    // the events room instead, without the link (the operator has it in the
    // private reply to `auth youtube`, and it still takes codes).
    if let Err(Err(message)) = reply.send(Err(message)) {
        events
            .emit(
                None,
                EventKind::AuthRequired {
                    service: Service::Youtube.to_string(),
                    reason: message,
                    url: None,
                },
            )
            .await;
    }
    true
}

type Authenticator = yup_oauth2::authenticator::Authenticator<
    <yup_oauth2::DefaultHyperClientBuilder as yup_oauth2::HyperClientBuilder>::Connector,
>;

async fn authenticator(
    config: &Youtube,
    delegate: ChatDelegate,
    calls: Calls,
) -> std::io::Result<Authenticator> {
    let secret = ApplicationSecret {
        client_id: config.client_id.clone().unwrap_or_default(),
        client_secret: config
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
        token_uri: config.token_url.clone(),
        auth_uri: config.auth_url.clone(),
        redirect_uris: vec![config.redirect_uri.clone()],
        ..ApplicationSecret::default()
    };
    InstalledFlowAuthenticator::builder(secret, InstalledFlowReturnMethod::Interactive)
        .flow_delegate(Box::new(delegate))
        // `prompt=select_account consent`: Google returns a refresh token only on consent.
        .force_account_selection(true)
        .with_storage(Box::new(CoreStorage { calls }))
        .with_timeout(TOKEN_TIMEOUT)
        .build()
        .await
}

/// Says why a pasted code did not work, without repeating it.
fn explain(e: &yup_oauth2::Error) -> String {
    use yup_oauth2::Error as E;
    match e {
        E::AuthError(refusal) => format!(
            "Google refused the code ({refusal}): it is wrong, was already used or has expired. \
             Open the link again, approve, and paste the new code within a few minutes; or run \
             `auth youtube` for a new link."
        ),
        E::HttpError(_) | E::HttpClientError(_) => format!(
            "could not reach Google's token endpoint ({e}); nothing was changed, paste the code \
             again"
        ),
        E::StorageError(_) => format!("the tokens could not be saved: {e}"),
        E::UserError(_) => "the authorization was cancelled".into(),
        _ => format!("the code could not be exchanged: {e}"),
    }
}

/// Hands the link to chat and takes pasted codes.
struct ChatDelegate {
    redirect_uri: String,
    present: Arc<Mutex<Option<Present>>>,
    url: Arc<OnceLock<String>>,
    codes: tokio::sync::Mutex<mpsc::Receiver<CodeAttempt>>,
    /// Where to report the exchange of the code handed out last.
    current: InFlight,
}

impl InstalledFlowDelegate for ChatDelegate {
    fn redirect_uri(&self) -> Option<&str> {
        Some(&self.redirect_uri)
    }

    fn present_user_url<'a>(
        &'a self,
        url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            // The flow presents the same link again after a refused code; show it once.
            let _ = self.url.set(url.to_string());
            let present = self.present.lock().expect("not poisoned").take();
            match present {
                Some(Present::Reply(tx)) => {
                    let _ = tx.send(Ok(url.to_string()));
                }
                None => {}
            }
            let attempt = self
                .codes
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| "no code".to_string())?;
            *self.current.lock() = Some(attempt.reply);
            Ok(attempt.code.expose().to_string())
        })
    }
}

/// yup-oauth2's storage: nothing to read (a consent always asks anew), and writes go to the
/// core, which stores them in the state database.
struct CoreStorage {
    calls: Calls,
}

#[async_trait::async_trait]
impl TokenStorage for CoreStorage {
    async fn set(&self, _scopes: &[&str], token: TokenInfo) -> Result<(), TokenStorageError> {
        let access = token.access_token.ok_or(TokenStorageError::Other(
            "Google sent no access token".into(),
        ))?;
        let stored = StoredToken {
            access_token: Secret::new(access),
            refresh_token: token.refresh_token.map(Secret::new),
            expires_at: token
                .expires_at
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.unix_timestamp(), 0)),
            scopes: UPLOAD_SCOPE.into(),
            client_id: None,
            account: None,
        };
        self.calls
            .save_token(Service::Youtube, stored)
            .await
            .map_err(|e| TokenStorageError::Other(format!("{e:#}").into()))
    }

    async fn get(&self, _scopes: &[&str]) -> Option<TokenInfo> {
        None
    }
}

/// Why a refresh did not give a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// Google refused the refresh token (revoked, expired after 7 days in Testing mode, the
    /// client changed): a human must authorize again.
    #[error("{0}")]
    Revoked(String),
    /// Google could not be asked: try again later.
    #[error("{0}")]
    Transient(String),
}

/// Refreshes access tokens at the configured `token_url`.
#[derive(Debug, Clone)]
pub struct GoogleTokens {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
}

impl GoogleTokens {
    pub fn new(config: &Youtube) -> anyhow::Result<GoogleTokens> {
        Ok(GoogleTokens {
            http: reqwest::Client::builder()
                .timeout(TOKEN_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            token_url: config.token_url.clone(),
            client_id: config.client_id.clone().unwrap_or_default(),
            client_secret: config
                .client_secret
                .clone()
                .unwrap_or_else(|| Secret::new("")),
        })
    }

    /// A new access token. The result has no refresh token unless Google sent a new one (the
    /// core then keeps the stored one).
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<StoredToken, RefreshError> {
        let response = self
            .http
            .post(&self.token_url)
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
                ("grant_type", "refresh_token"),
            ])
            .send()
            .await
            .map_err(|e| {
                RefreshError::Transient(format!("cannot reach Google: {}", e.without_url()))
            })?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        #[derive(Deserialize)]
        struct Answer {
            access_token: Option<String>,
            refresh_token: Option<String>,
            // Any JSON number: `1e30` or `u64::MAX` is clamped, not an unreadable answer.
            expires_in: Option<f64>,
            scope: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            let Some(Answer {
                access_token: Some(access),
                refresh_token,
                expires_in,
                scope,
                ..
            }) = answer
            else {
                return Err(RefreshError::Transient(
                    "Google answered the refresh without an access token".into(),
                ));
            };
            return Ok(StoredToken {
                access_token: Secret::new(access),
                refresh_token: refresh_token.map(Secret::new),
                expires_at: expires_in.and_then(|s| crate::remote::expiry("google", Utc::now(), s)),
                scopes: scope.unwrap_or_else(|| UPLOAD_SCOPE.into()),
                client_id: None,
                account: None,
            });
        }
        let reason = answer
            .map(|a| match (a.error, a.error_description) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                (Some(e), None) => e,
                _ => format!("HTTP {}", status.as_u16()),
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            Err(RefreshError::Revoked(reason))
        } else {
            Err(RefreshError::Transient(format!(
                "Google is unavailable ({reason})"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn absurd_token_lifetimes_are_clamped_not_a_panic() {
        let server = MockServer::start().await;
        let config = Youtube {
            token_url: format!("{}/token", server.uri()),
            ..Youtube::default()
        };
        let tokens = GoogleTokens::new(&config).unwrap();
        for (expires_in, known) in [
            (serde_json::json!(3599), true),
            (serde_json::json!(i64::MAX), true),
            (serde_json::json!(9_300_000_000_000_000i64), true),
            (serde_json::json!(u64::MAX), true),
            (serde_json::json!(1e30), true),
            (serde_json::json!(0), false),
            (serde_json::json!(-30), false),
            (serde_json::json!(i64::MIN), false),
        ] {
            server.reset().await;
            Mock::given(path("/token"))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"access_token": "ya29.x", "expires_in": expires_in}),
                ))
                .mount(&server)
                .await;
            let token = tokens.refresh(&Secret::new("1//r")).await.unwrap();
            assert_eq!(token.expires_at.is_some(), known, "{expires_in}");
            // At most the longest lifetime recbot believes.
            if let Some(at) = token.expires_at {
                assert!(
                    at <= Utc::now() + chrono::Duration::days(91),
                    "{expires_in}"
                );
            }
        }
    }
}
