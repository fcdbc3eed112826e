//! The Twitch viewer login (`auth twitch-viewer`): the token that makes GQL hand out playback
//! tokens of a logged-in viewer, which Twitch requires for renditions above 1080p
//! (twitch-2026.md §1). It comes from the device flow with Twitch's TV client id, or is pasted
//! (`code twitch-viewer <token>`, a browser's `auth-token` cookie). Twitch pairs a token with
//! the client it was issued to, so the credential carries the client id `/validate` names.
//!
//! This module owns the credential as the recorder sees it: [`ViewerKeeper`] reads the stored
//! token, validates it at start-up and every `validate_interval_secs`, and publishes it (or
//! nothing: record anonymously) to every [`ViewerLogin`]. A refusal — by `/validate`, or by
//! GQL itself, which the playback path reports through [`ViewerLogin::refused`] — withdraws it
//! at once and asks for a new authorization; recording goes on as a logged-out viewer.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recbot_commands::{PastedCode, Service};
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::oauth::{OAuthError, TwitchOAuth, Validation};
use crate::secret::Secret;
use crate::work::{Calls, StoredToken, TokenSource};

/// Pause before validating again after Twitch could not be reached.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// What is lost without the viewer login, said with every refusal.
const LOST: &str = "recording continues as a logged-out viewer: renditions above 1080p are \
                    not offered until the viewer login is renewed";

/// A usable viewer login: the token, the client it belongs to, whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewerCredential {
    pub token: Secret,
    pub client_id: String,
    pub login: String,
}

/// The recorder's view of the viewer login: the current credential, if any.
#[derive(Debug, Clone)]
pub struct ViewerLogin {
    current: watch::Receiver<Option<Arc<ViewerCredential>>>,
    refused: Arc<Notify>,
}

impl ViewerLogin {
    /// A login that never has a credential (HLS-only tests, tools).
    pub fn anonymous() -> ViewerLogin {
        channel().1
    }

    /// The credential to send now; `None`: ask as a logged-out viewer.
    pub fn current(&self) -> Option<Arc<ViewerCredential>> {
        self.current.borrow().clone()
    }

    /// GQL refused `credential`: it is withdrawn at once (so the next request goes out
    /// anonymously) and the keeper finds out why.
    pub fn refused(&self, credential: &ViewerCredential) {
        // Withdrawing is the keeper's (the one writer), but a refusal must not wait for its
        // next turn: the keeper sees the flag and publishes `None` itself.
        warn!(login = %credential.login, "Twitch GQL refused the viewer login");
        self.refused.notify_one();
    }
}

/// The keeper's end: publishes the credential.
#[derive(Debug)]
pub struct ViewerPublisher {
    current: watch::Sender<Option<Arc<ViewerCredential>>>,
    refused: Arc<Notify>,
}

/// A publisher and the first of its logins (clone it for every user).
pub fn channel() -> (ViewerPublisher, ViewerLogin) {
    let (tx, rx) = watch::channel(None);
    let refused = Arc::new(Notify::new());
    (
        ViewerPublisher {
            current: tx,
            refused: refused.clone(),
        },
        ViewerLogin {
            current: rx,
            refused,
        },
    )
}

impl ViewerPublisher {
    fn publish(&self, credential: Option<ViewerCredential>) {
        self.current.send_replace(credential.map(Arc::new));
    }

    /// At start-up, before anything records: the stored login as it was last validated, so
    /// the first recordings already get the renditions it unlocks (the keeper validates it
    /// right after and withdraws it if Twitch says no).
    pub fn prime(&self, stored: &StoredToken) {
        if let Some(credential) = stored_credential(stored) {
            self.publish(Some(credential));
        }
    }
}

/// The credential of a stored token that was validated before (its client and account known).
fn stored_credential(token: &StoredToken) -> Option<ViewerCredential> {
    Some(ViewerCredential {
        token: token.access_token.clone(),
        client_id: token.client_id.clone()?,
        login: token.account.clone()?,
    })
}

/// Keeps the viewer login usable and published; see the module doc.
#[derive(Debug)]
pub struct ViewerKeeper {
    /// The viewer client (validation; refresh when a token has a refresh token and expiry).
    pub oauth: TwitchOAuth,
    pub stored: Arc<dyn TokenSource>,
    pub calls: Calls,
    pub publisher: ViewerPublisher,
    /// Notified by the core whenever a viewer token is stored.
    pub token_saved: Arc<Notify>,
    pub validate_every: Duration,
    pub cancel: CancellationToken,
}

/// What the keeper does next.
#[derive(Debug, PartialEq)]
enum Next {
    Sleep(Duration),
    /// Nothing until a new token is stored.
    WaitForToken,
}

impl ViewerKeeper {
    pub async fn run(self) {
        loop {
            let next = self.check(false).await;
            let sleep = match next {
                Next::Sleep(d) => d,
                Next::WaitForToken => Duration::from_secs(365 * 24 * 3600),
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.token_saved.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = self.publisher.refused.notified() => {
                    self.publisher.publish(None);
                    if self.check(true).await == Next::WaitForToken {
                        // Withdrawn and asked for; wait for a new token.
                        tokio::select! {
                            _ = self.cancel.cancelled() => return,
                            _ = self.token_saved.notified() => {}
                        }
                    }
                }
            }
        }
    }

    /// Reads and validates the stored token and publishes the outcome. `gql_refused`: GQL
    /// refused the token just now, so a token `/validate` still accepts is one GQL will not
    /// take (a third-party app's): it stays withdrawn.
    async fn check(&self, gql_refused: bool) -> Next {
        let token = match self.stored.token(Service::TwitchViewer).await {
            Ok(Some(token)) => token,
            Ok(None) => {
                self.publisher.publish(None);
                return Next::WaitForToken;
            }
            Err(e) => {
                warn!(error = %e, "cannot read the stored Twitch viewer token");
                return Next::Sleep(RETRY_AFTER);
            }
        };
        if let Some(next) = self.refresh_if_expiring(&token).await {
            return next;
        }
        match self.oauth.validate(&token.access_token).await {
            Ok(_) if gql_refused => {
                self.withdraw(
                    "Twitch GQL refuses the viewer token although Twitch's id service accepts \
                     it (is it a third-party app's token? use `auth twitch-viewer` or a \
                     browser's auth-token)",
                )
                .await
            }
            Ok(v) => {
                info!(login = %v.login, "Twitch viewer login validated");
                self.publisher
                    .publish(Some(credential(&token, &v, &self.oauth)));
                Next::Sleep(self.validate_every)
            }
            Err(OAuthError::Rejected(reason)) => {
                self.withdraw(&format!(
                    "Twitch no longer accepts the viewer login ({reason})"
                ))
                .await
            }
            Err(OAuthError::Transient(reason)) => {
                warn!(error = %reason, "cannot validate the Twitch viewer login now");
                // Twitch's id service being down must not cost source quality: a token that
                // validated before (its client is stored) stays in use until Twitch says no.
                if !gql_refused && self.publisher.current.borrow().is_none() {
                    self.publisher.prime(&token);
                }
                Next::Sleep(RETRY_AFTER.min(self.validate_every))
            }
        }
    }

    /// A token with an expiry and a refresh token is refreshed shortly before it expires
    /// (TV and browser tokens have neither: they last until revoked).
    async fn refresh_if_expiring(&self, token: &StoredToken) -> Option<Next> {
        let refresh = token.refresh_token.as_ref()?;
        let at = token.expires_at?;
        if at - chrono::Duration::minutes(5) > Utc::now() {
            return None;
        }
        Some(match self.oauth.refresh(refresh).await {
            Ok(mut new) => {
                new.account = token.account.clone();
                match self.calls.save_token(Service::TwitchViewer, new).await {
                    // Storing it notifies `token_saved`: the next turn validates it.
                    Ok(()) => Next::Sleep(Duration::ZERO),
                    Err(e) => {
                        warn!(error = %e, "cannot store the refreshed viewer token");
                        Next::Sleep(RETRY_AFTER)
                    }
                }
            }
            Err(OAuthError::Rejected(reason)) => {
                self.withdraw(&format!(
                    "Twitch refused to refresh the viewer login ({reason})"
                ))
                .await
            }
            Err(OAuthError::Transient(reason)) => {
                warn!(error = %reason, "cannot refresh the viewer login now");
                Next::Sleep(RETRY_AFTER)
            }
        })
    }

    async fn withdraw(&self, why: &str) -> Next {
        self.publisher.publish(None);
        self.calls
            .auth_needed(Service::TwitchViewer, format!("{why}; {LOST}"))
            .await;
        Next::WaitForToken
    }
}

/// The credential a validated token makes: the client `/validate` named (a pasted browser
/// token is the web client's), else the one it was stored with, else the viewer client.
fn credential(token: &StoredToken, v: &Validation, oauth: &TwitchOAuth) -> ViewerCredential {
    let client_id = [Some(&v.client_id), token.client_id.as_ref()]
        .into_iter()
        .flatten()
        .find(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| oauth.client_id().to_string());
    ViewerCredential {
        token: token.access_token.clone(),
        client_id,
        login: v.login.clone(),
    }
}

/// How a pasted viewer token ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pasted {
    /// Stored; recording uses it from now on.
    Connected(String),
    /// Twitch does not accept it, or it cannot work on GQL.
    Refused(String),
    /// Twitch could not be asked; nothing changed.
    Unavailable(String),
    NotSaved(String),
}

/// `code twitch-viewer <token>`: validates the pasted token (whose it is, which client it
/// belongs to) and stores it. A worker task of its own, like a code exchange.
#[derive(Debug)]
pub struct PastedToken {
    pub oauth: TwitchOAuth,
    pub calls: Calls,
    pub token: PastedCode,
    /// recbot's own app: GQL refuses tokens of third-party apps, so one is refused here.
    pub app_client_id: Option<String>,
    pub reply: oneshot::Sender<Pasted>,
    pub cancel: CancellationToken,
}

impl PastedToken {
    pub async fn run(self) {
        let access = Secret::new(self.token.expose());
        let answer = tokio::select! {
            _ = self.cancel.cancelled() => return,
            answer = self.oauth.validate(&access) => answer,
        };
        let outcome = match answer {
            Err(OAuthError::Rejected(e)) => {
                Pasted::Refused(format!("Twitch does not accept it: {e}"))
            }
            Err(OAuthError::Transient(e)) => Pasted::Unavailable(e),
            Ok(v) if self.app_client_id.as_deref() == Some(v.client_id.as_str()) => {
                Pasted::Refused(
                    "it is a token of recbot's own Twitch app, which GQL refuses for playback; \
                     paste a browser's auth-token or run `auth twitch-viewer`"
                        .into(),
                )
            }
            Ok(v) if v.login.is_empty() => {
                Pasted::Refused("it is an app token, not a viewer's login".into())
            }
            Ok(v) => {
                let token = StoredToken {
                    access_token: access,
                    refresh_token: None,
                    // Browser and TV tokens say 0: no expiry until revoked.
                    expires_at: v
                        .expires_in
                        .filter(|s| *s > 0)
                        .and_then(|s| crate::remote::expiry("twitch", Utc::now(), s as f64)),
                    scopes: v.scopes.join(" "),
                    client_id: Some(v.client_id.clone()),
                    account: Some(v.login.clone()),
                };
                match super::oauth::store(
                    &self.calls,
                    Service::TwitchViewer,
                    token,
                    Some(v.login.clone()),
                )
                .await
                {
                    Ok(()) => Pasted::Connected(v.login),
                    Err(e) => Pasted::NotSaved(format!("{e:#}")),
                }
            }
        };
        let _ = self.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests;
