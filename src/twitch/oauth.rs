//! Twitch user tokens (protocols.md §2.4–2.6): the authorization-code flow (a consent link, the
//! pasted code exchanged with the app's secret), the device-code flow (an activation code, then
//! polling), refreshing before expiry, and validation at start-up and hourly as Twitch
//! requires. The core stores the tokens; they are only ever sent to `[twitch] id_url` (and the
//! viewer login's, see `viewer.rs`, to GQL).
//!
//! Two identities use these flows: the chat account ([`Service::Twitch`], recbot's own app,
//! with its secret) and the viewer login ([`Service::TwitchViewer`], Twitch's TV client id,
//! a public client: device flow only, no secret).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use rand::Rng;
use recbot_commands::{PastedCode, Service};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Twitch;
use crate::event::EventKind;
use crate::secret::Secret;
use crate::work::{Calls, Events, StoredToken, TokenSource};

/// Requests to the id endpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
/// Pause before asking again after Twitch could not be reached.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest a device code is believed to live (Twitch's last 30 minutes).
const DEVICE_MAX: Duration = Duration::from_secs(86_400);

/// Why Twitch gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Twitch refused (wrong or used code, revoked refresh token, invalid token).
    #[error("{0}")]
    Rejected(String),
    /// Twitch could not be asked; try again later.
    #[error("{0}")]
    Transient(String),
}

/// What `/validate` says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub login: String,
    /// The client the token was issued to: GQL takes a token only with its own client id.
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_in: Option<u64>,
}

/// A started device authorization.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    device_code: Secret,
    /// What the operator types at `verification_uri`.
    pub user_code: String,
    pub verification_uri: String,
    pub expires_at: DateTime<Utc>,
    pub interval: Duration,
}

/// One poll of a device authorization.
#[derive(Debug)]
pub enum DevicePoll {
    Pending,
    SlowDown,
    Done(StoredToken),
}

/// The id endpoint, with a client's credentials.
#[derive(Debug, Clone)]
pub struct TwitchOAuth {
    http: Client,
    id_url: String,
    client_id: String,
    /// `None` for a public client (the viewer login's TV client id).
    client_secret: Option<Secret>,
    redirect_uri: String,
    scopes: Vec<String>,
    /// Whose tokens these are: where they are stored and what is announced.
    service: Service,
}

impl TwitchOAuth {
    /// `None` without app credentials (user tokens need a Confidential app).
    pub fn new(config: &Twitch) -> Option<TwitchOAuth> {
        if !config.has_app_credentials() {
            return None;
        }
        Some(TwitchOAuth {
            http: id_client()?,
            id_url: config.id_url.trim_end_matches('/').to_string(),
            client_id: config.client_id.clone()?,
            client_secret: Some(config.client_secret.clone()?),
            redirect_uri: config.redirect_uri.clone(),
            scopes: config.scopes.clone(),
            service: Service::Twitch,
        })
    }

    /// The viewer login's client: `[twitch] viewer_client_id` (Twitch's TV app), no secret,
    /// no scopes (playback needs none). Needs no app credentials.
    pub fn viewer(config: &Twitch) -> Option<TwitchOAuth> {
        Some(TwitchOAuth {
            http: id_client()?,
            id_url: config.id_url.trim_end_matches('/').to_string(),
            client_id: config.viewer_client_id.clone(),
            client_secret: None,
            redirect_uri: config.redirect_uri.clone(),
            scopes: Vec::new(),
            service: Service::TwitchViewer,
        })
    }

    pub fn service(&self) -> Service {
        self.service
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client's form fields: its id, and its secret when it has one.
    fn client<'a>(&'a self, form: &mut Vec<(&'static str, &'a str)>) {
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
    }

    /// The consent link of the authorization-code flow.
    pub fn authorize_url(&self, state: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.id_url))
            .expect("id_url was validated as an address");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("force_verify", "true");
        url.to_string()
    }

    /// Exchanges a pasted authorization code (with the same redirect address).
    pub async fn exchange_code(&self, code: &str) -> Result<StoredToken, OAuthError> {
        let mut form = Vec::new();
        self.client(&mut form);
        form.extend([
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", &self.redirect_uri),
        ]);
        self.token(&form).await
    }

    pub async fn refresh(&self, refresh_token: &Secret) -> Result<StoredToken, OAuthError> {
        let mut form = Vec::new();
        self.client(&mut form);
        form.extend([
            ("refresh_token", refresh_token.expose()),
            ("grant_type", "refresh_token"),
        ]);
        self.token(&form).await
    }

    /// `GET /validate`: whose token it is; `Rejected` when Twitch no longer accepts it.
    pub async fn validate(&self, access: &Secret) -> Result<Validation, OAuthError> {
        validate(&self.http, &self.id_url, access).await
    }

    /// Starts the device-code flow.
    pub async fn start_device(&self) -> Result<DeviceCode, OAuthError> {
        let scopes = self.scopes.join(" ");
        let body = self
            .post(
                "device",
                &[("client_id", &self.client_id), ("scopes", &scopes)],
            )
            .await?;
        #[derive(Deserialize)]
        struct Answer {
            device_code: String,
            user_code: String,
            verification_uri: String,
            expires_in: f64,
            interval: Option<f64>,
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|_| {
            OAuthError::Transient("Twitch sent an unreadable device authorization".into())
        })?;
        Ok(DeviceCode {
            device_code: Secret::new(a.device_code),
            user_code: a.user_code,
            verification_uri: a.verification_uri,
            expires_at: Utc::now()
                + crate::remote::wait("twitch", "device code lifetime", a.expires_in, DEVICE_MAX),
            interval: crate::remote::wait(
                "twitch",
                "device poll interval",
                a.interval.unwrap_or(5.0),
                Duration::from_secs(60),
            )
            .max(Duration::from_secs(1)),
        })
    }

    /// Asks whether the operator approved the device authorization.
    pub async fn poll_device(&self, device: &DeviceCode) -> Result<DevicePoll, OAuthError> {
        let scopes = self.scopes.join(" ");
        let mut form = Vec::new();
        self.client(&mut form);
        form.extend([
            ("scopes", scopes.as_str()),
            ("device_code", device.device_code.expose()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ]);
        match self.token(&form).await {
            Ok(token) => Ok(DevicePoll::Done(token)),
            Err(OAuthError::Rejected(m)) if m.contains("authorization_pending") => {
                Ok(DevicePoll::Pending)
            }
            Err(OAuthError::Rejected(m)) if m.contains("slow_down") => Ok(DevicePoll::SlowDown),
            Err(e) => Err(e),
        }
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<StoredToken, OAuthError> {
        let body = self.post("token", form).await?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            refresh_token: Option<String>,
            // Any JSON number: `1e30` or `u64::MAX` is clamped, not an unreadable answer.
            expires_in: Option<f64>,
            #[serde(default)]
            scope: Vec<String>,
        }
        let a: Answer = serde_json::from_slice(&body)
            .map_err(|_| OAuthError::Transient("Twitch sent an unreadable token answer".into()))?;
        Ok(StoredToken {
            access_token: Secret::new(a.access_token),
            refresh_token: a.refresh_token.map(Secret::new),
            // An absurd lifetime is clamped (and reported), never a panic; none or a
            // non-positive one is no known expiry (the keeper validates hourly anyway).
            expires_at: a
                .expires_in
                .and_then(|s| crate::remote::expiry("twitch", Utc::now(), s)),
            scopes: a.scope.join(" "),
            client_id: Some(self.client_id.clone()),
            account: None,
        })
    }

    /// POSTs a form to `id_url/<endpoint>`; the body of a successful answer.
    async fn post(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<Vec<u8>, OAuthError> {
        let response = self
            .http
            .post(format!("{}/{endpoint}", self.id_url))
            .form(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(refused(&body, status));
        }
        Ok(body.to_vec())
    }
}

/// `GET {id_url}/validate` (`id_url` without a trailing `/`): whose token it is;
/// `Rejected` when Twitch no longer accepts it. The one token check, used by the token
/// keeper and by the chat worker. `http` must follow no redirects: the token goes to
/// `id_url` only (invariant 12).
pub async fn validate(
    http: &Client,
    id_url: &str,
    access: &Secret,
) -> Result<Validation, OAuthError> {
    let response = http
        .get(format!("{id_url}/validate"))
        .header("Authorization", format!("OAuth {}", access.expose()))
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(OAuthError::Rejected(format!(
            "Twitch no longer accepts the token ({})",
            message(&body, status)
        )));
    }
    if !status.is_success() {
        return Err(OAuthError::Transient(format!(
            "Twitch could not validate the token ({})",
            message(&body, status)
        )));
    }
    #[derive(Deserialize)]
    struct Answer {
        login: Option<String>,
        client_id: Option<String>,
        #[serde(default)]
        scopes: Vec<String>,
        // Any JSON number (an absurd one must not make the validation unreadable).
        expires_in: Option<f64>,
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|_| OAuthError::Transient("Twitch sent an unreadable validation".into()))?;
    Ok(Validation {
        login: answer.login.unwrap_or_default(),
        client_id: answer.client_id.unwrap_or_default(),
        scopes: answer.scopes,
        // `as` saturates: negative is 0, beyond u64 is u64::MAX.
        expires_in: answer.expires_in.map(|s| s as u64),
    })
}

/// The id endpoint's client: follows no redirects (tokens go to `id_url` only).
fn id_client() -> Option<Client> {
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()
}

/// A random `state` for the authorization-code flow.
pub fn new_state() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unreachable(e: reqwest::Error) -> OAuthError {
    OAuthError::Transient(format!("cannot reach Twitch: {}", e.without_url()))
}

/// Twitch's `{"status":400,"message":"…"}`, else the status.
fn message(body: &[u8], status: StatusCode) -> String {
    #[derive(Deserialize)]
    struct Error {
        message: Option<String>,
    }
    serde_json::from_slice::<Error>(body)
        .ok()
        .and_then(|e| e.message)
        .map(|m| m.chars().take(200).collect())
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
}

fn refused(body: &[u8], status: StatusCode) -> OAuthError {
    let text = message(body, status);
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        OAuthError::Rejected(text)
    } else {
        OAuthError::Transient(format!("Twitch is unavailable ({text})"))
    }
}

/// Stores a new token set of `oauth`'s service and announces whose it is. Returns the login.
pub async fn complete(
    oauth: &TwitchOAuth,
    calls: &Calls,
    mut token: StoredToken,
) -> anyhow::Result<Option<String>> {
    let login = validated_owner(oauth, &mut token).await;
    store(calls, oauth.service, token, login.clone()).await?;
    Ok(login)
}

/// Whose a new token is, when Twitch says; notes the account and client on the token.
async fn validated_owner(oauth: &TwitchOAuth, token: &mut StoredToken) -> Option<String> {
    match oauth.validate(&token.access_token).await {
        Ok(v) => {
            if !v.client_id.is_empty() {
                token.client_id = Some(v.client_id);
            }
            let login = (!v.login.is_empty()).then_some(v.login);
            token.account = login.clone();
            login
        }
        Err(e) => {
            warn!(error = %e, "the new Twitch token could not be validated");
            None
        }
    }
}

/// Has the core store a new token set and announce it.
pub(crate) async fn store(
    calls: &Calls,
    service: Service,
    token: StoredToken,
    login: Option<String>,
) -> anyhow::Result<()> {
    calls.save_token(service, token).await?;
    calls.auth_completed(service, login).await
}

/// How a pasted code's exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchanged {
    /// Stored and announced (`AuthCompleted`), as this login when Twitch said.
    Connected(Option<String>),
    /// Twitch refused the code (wrong, used, expired).
    Refused(String),
    /// Twitch could not be asked; nothing changed.
    Unavailable(String),
    /// Twitch gave a token but it could not be stored.
    NotSaved(String),
}

/// The exchange of a pasted authorization code, as a worker task of its own: the code is
/// single-use, so once it is sent the token must be stored whoever still waits for the answer.
/// The `code` command's reply waits for `reply` a limited time; an outcome nobody waits for any
/// more is posted as an event (success as `AuthCompleted` anyway, a failure as
/// `AuthRequired`).
#[derive(Debug)]
pub struct CodeExchange {
    pub oauth: TwitchOAuth,
    pub calls: Calls,
    pub events: Events,
    pub code: PastedCode,
    pub reply: oneshot::Sender<Exchanged>,
    pub cancel: CancellationToken,
    /// Held until the exchange ends: the next pasted code waits for this one's answer.
    pub permit: OwnedSemaphorePermit,
}

impl CodeExchange {
    pub async fn run(self) {
        let CodeExchange {
            oauth,
            calls,
            events,
            code,
            reply,
            cancel,
            permit,
        } = self;
        // Shutdown abandons the request (the reply then says it was interrupted); a token
        // already received is still stored, since Twitch has used the code up.
        let answer = tokio::select! {
            _ = cancel.cancelled() => return,
            answer = oauth.exchange_code(code.expose()) => answer,
        };
        let outcome = match answer {
            Err(OAuthError::Rejected(e)) => Exchanged::Refused(e),
            Err(OAuthError::Transient(e)) => Exchanged::Unavailable(e),
            Ok(mut token) => {
                let login = tokio::select! {
                    _ = cancel.cancelled() => None,
                    login = validated_owner(&oauth, &mut token) => login,
                };
                match store(&calls, oauth.service, token, login.clone()).await {
                    Ok(()) => Exchanged::Connected(login),
                    Err(e) => Exchanged::NotSaved(format!("{e:#}")),
                }
            }
        };
        drop(permit);
        let Err(outcome) = reply.send(outcome) else {
            return;
        };
        let reason = match outcome {
            Exchanged::Connected(_) => return,
            Exchanged::Refused(e) => format!(
                "Twitch refused the pasted code ({e}): it is wrong, was already used or has \
                 expired"
            ),
            Exchanged::Unavailable(e) => format!(
                "the pasted code could not be exchanged ({e}); paste it again while the \
                 link is valid"
            ),
            Exchanged::NotSaved(e) => format!("the Twitch token could not be saved: {e}"),
        };
        warn!(reason = %reason, "Twitch code exchange failed after its reply was sent");
        events
            .emit(
                None,
                EventKind::AuthRequired {
                    service: Service::Twitch.to_string(),
                    reason,
                    url: None,
                },
            )
            .await;
    }
}

/// A device-code authorization: shows the activation code, then polls until approved,
/// refused, expired or cancelled.
#[derive(Debug)]
pub struct DeviceFlow {
    pub oauth: TwitchOAuth,
    pub calls: Calls,
    pub events: Events,
    /// Gets the activation code (or why there is none) for the reply to `auth twitch device`.
    pub present: oneshot::Sender<Result<DeviceCode, String>>,
    pub cancel: CancellationToken,
}

impl DeviceFlow {
    pub async fn run(self) {
        let DeviceFlow {
            oauth,
            calls,
            events,
            present,
            cancel,
        } = self;
        let device = match oauth.start_device().await {
            Ok(device) => device,
            Err(e) => {
                let _ = present.send(Err(format!("Twitch refused to start it: {e}")));
                return;
            }
        };
        let mut interval = device.interval;
        let _ = present.send(Ok(device.clone()));
        let service = oauth.service;
        let command = match service {
            Service::TwitchViewer => "auth twitch-viewer",
            _ => "auth twitch device",
        };
        let ended = |reason: String| EventKind::AuthRequired {
            service: service.to_string(),
            reason,
            url: None,
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if Utc::now() >= device.expires_at {
                events
                    .emit(
                        None,
                        ended(format!(
                            "the device code expired before it was approved; run `{command}` \
                             again"
                        )),
                    )
                    .await;
                return;
            }
            match oauth.poll_device(&device).await {
                Ok(DevicePoll::Pending) => {}
                Ok(DevicePoll::SlowDown) => interval += Duration::from_secs(5),
                Ok(DevicePoll::Done(token)) => {
                    if let Err(e) = complete(&oauth, &calls, token).await {
                        warn!(error = %e, "cannot store the Twitch token");
                    }
                    return;
                }
                Err(OAuthError::Transient(e)) => debug!(error = %e, "device poll failed"),
                Err(OAuthError::Rejected(e)) => {
                    events
                        .emit(
                            None,
                            ended(format!("Twitch ended the device authorization: {e}")),
                        )
                        .await;
                    return;
                }
            }
        }
    }
}

/// Keeps the stored Twitch user token usable: validates it at start-up and every
/// `validate_interval_secs`, refreshes it before it expires (and when Twitch stops accepting
/// it), and asks for a new authorization when Twitch refuses the refresh.
#[derive(Debug)]
pub struct TokenKeeper {
    pub oauth: TwitchOAuth,
    /// Where the stored Twitch token is read (the core's store).
    pub stored: Arc<dyn TokenSource>,
    pub calls: Calls,
    /// Notified by the core whenever a Twitch token is stored.
    pub token_saved: Arc<Notify>,
    pub validate_every: Duration,
    pub cancel: CancellationToken,
}

/// What the keeper does after looking at the token.
enum Next {
    /// Sleep this long (or until a new token is stored).
    Sleep(Duration),
    /// A new token was stored: validate it now.
    Refreshed,
    /// Nothing to do until a new token is stored.
    WaitForToken,
}

impl TokenKeeper {
    pub async fn run(self) {
        let mut refreshed = false;
        loop {
            let next = self.check(refreshed).await;
            refreshed = matches!(next, Next::Refreshed);
            let sleep = match next {
                Next::Sleep(d) => d,
                Next::Refreshed => {
                    // Our own save woke us: the next check reads that token anyway.
                    let _ = self.token_saved.notified().now_or_never();
                    continue;
                }
                Next::WaitForToken => Duration::from_secs(365 * 24 * 3600),
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.token_saved.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// `refreshed`: the token was refreshed just before, so a refusal is final.
    async fn check(&self, refreshed: bool) -> Next {
        let token = match self.stored.token(Service::Twitch).await {
            Ok(Some(token)) => token,
            Ok(None) => return Next::WaitForToken,
            Err(e) => {
                warn!(error = %e, "cannot read the stored Twitch token");
                return Next::Sleep(RETRY_AFTER);
            }
        };
        let expiring = token
            .expires_at
            .is_some_and(|at| at - REFRESH_MARGIN <= Utc::now());
        if expiring {
            return self.refresh(&token, "it expires soon").await;
        }
        match self.oauth.validate(&token.access_token).await {
            Ok(v) => {
                info!(login = %v.login, "Twitch token validated");
                let mut next = self.validate_every;
                if let Some(at) = token.expires_at {
                    let until_refresh = (at - REFRESH_MARGIN - Utc::now())
                        .to_std()
                        .unwrap_or_default();
                    next = next.min(until_refresh);
                }
                Next::Sleep(next)
            }
            Err(OAuthError::Rejected(reason)) if refreshed => {
                self.calls
                    .auth_needed(
                        Service::Twitch,
                        format!("Twitch refuses even a freshly refreshed token ({reason})"),
                    )
                    .await;
                Next::WaitForToken
            }
            Err(OAuthError::Rejected(reason)) => self.refresh(&token, &reason).await,
            Err(OAuthError::Transient(reason)) => {
                warn!(error = %reason, "cannot validate the Twitch token now");
                Next::Sleep(RETRY_AFTER.min(self.validate_every))
            }
        }
    }

    async fn refresh(&self, token: &StoredToken, why: &str) -> Next {
        let Some(refresh) = &token.refresh_token else {
            self.calls
                .auth_needed(
                    Service::Twitch,
                    format!(
                        "the Twitch token is no longer usable ({why}) and has no refresh token"
                    ),
                )
                .await;
            return Next::WaitForToken;
        };
        match self.oauth.refresh(refresh).await {
            Ok(new) => match self.calls.save_token(Service::Twitch, new).await {
                Ok(()) => {
                    info!("Twitch token refreshed");
                    Next::Refreshed
                }
                Err(e) => {
                    warn!(error = %e, "cannot store the refreshed Twitch token");
                    Next::Sleep(RETRY_AFTER)
                }
            },
            Err(OAuthError::Rejected(reason)) => {
                self.calls
                    .auth_needed(
                        Service::Twitch,
                        format!("Twitch refused the refresh token ({reason})"),
                    )
                    .await;
                Next::WaitForToken
            }
            Err(OAuthError::Transient(reason)) => {
                warn!(error = %reason, "cannot refresh the Twitch token now");
                Next::Sleep(RETRY_AFTER)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> TwitchOAuth {
        let config = Twitch {
            client_id: Some("cid".into()),
            client_secret: Some(Secret::new("csecret")),
            id_url: "https://id.twitch.tv/oauth2/".into(),
            scopes: vec!["chat:read".into(), "user:read:chat".into()],
            ..Twitch::default()
        };
        TwitchOAuth::new(&config).unwrap()
    }

    #[test]
    fn the_consent_link_carries_scopes_and_state_but_no_secret() {
        let url = oauth().authorize_url("abc123");
        assert!(url.starts_with("https://id.twitch.tv/oauth2/authorize?response_type=code&client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%3A3000&scope=chat%3Aread+user%3Aread%3Achat&state=abc123"), "{url}");
        assert!(!url.contains("csecret"));
        assert!(TwitchOAuth::new(&Twitch::default()).is_none());
    }

    #[tokio::test]
    async fn absurd_token_lifetimes_are_clamped_not_refused() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        for expires_in in [serde_json::json!(1e30), serde_json::json!(u64::MAX)] {
            let server = MockServer::start().await;
            Mock::given(path("/oauth2/token"))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": "a", "refresh_token": "r", "expires_in": expires_in,
                    "scope": ["chat:read"],
                })))
                .mount(&server)
                .await;
            Mock::given(path("/oauth2/validate"))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "login": "bot", "scopes": [], "expires_in": expires_in,
                })))
                .mount(&server)
                .await;
            let config = Twitch {
                client_id: Some("cid".into()),
                client_secret: Some(Secret::new("csecret")),
                id_url: format!("{}/oauth2", server.uri()),
                ..Twitch::default()
            };
            let oauth = TwitchOAuth::new(&config).unwrap();
            let token = oauth.refresh(&Secret::new("r")).await.unwrap();
            let at = token.expires_at.expect("a clamped expiry");
            assert!(
                at <= Utc::now() + chrono::Duration::days(91),
                "{expires_in}: {at}"
            );
            let v = oauth.validate(&Secret::new("a")).await.unwrap();
            assert_eq!(v.login, "bot");
        }
    }

    #[test]
    fn states_are_random() {
        let (a, b) = (new_state(), new_state());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn refusals_are_sorted() {
        let body = br#"{"status":400,"message":"Invalid refresh token"}"#;
        assert_eq!(
            refused(body, StatusCode::BAD_REQUEST),
            OAuthError::Rejected("Invalid refresh token".into())
        );
        assert!(matches!(
            refused(b"", StatusCode::BAD_GATEWAY),
            OAuthError::Transient(_)
        ));
        assert!(matches!(
            refused(b"", StatusCode::TOO_MANY_REQUESTS),
            OAuthError::Transient(_)
        ));
    }
}
