//! Core glue for OAuth: `auth` and `code` for YouTube, Twitch (the chat account) and the Twitch
//! viewer login, the one pending authorization per service (it expires), storing the tokens
//! workers obtain, and announcing the outcome.
//! Exchanges with Google and Twitch run in worker tasks; the command's reply waits for them,
//! the core does not. Codes and tokens never appear in replies, events or logs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use recbot_commands::{PastedCode, Service};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::reply::{AuthLink, Connected, Minutes, Refusal};
use super::store::{JobState, StoredToken};
use super::{Answer, Core, Reply, Said};
use crate::event::{Event, EventKind};
use crate::twitch::oauth::{self as twitch, Exchanged, TwitchOAuth};
use crate::twitch::viewer::{self, Pasted, ViewerKeeper, ViewerLogin, ViewerPublisher};
use crate::upload::google::{CodeAttempt, ConsentFlow, InFlight, Present};

/// Longest a reply waits for a remote answer before saying the outcome will be posted.
const REPLY_LIMIT: Duration = Duration::from_secs(60);
/// Twitch's device codes live 30 minutes.
const DEVICE_MINUTES: f64 = 30.0;

/// AwaitedAuth authorizations and the Twitch token keeper's wake-up.
#[derive(Debug)]
pub(super) struct AuthState {
    youtube: Option<AwaitedAuth>,
    twitch: Option<AwaitedAuth>,
    viewer: Option<AwaitedAuth>,
    /// Notified whenever a Twitch token is stored.
    twitch_saved: Arc<Notify>,
    /// Notified whenever a viewer token is stored.
    viewer_saved: Arc<Notify>,
    /// The viewer login's publishing end, until its keeper takes it; the recorder holds a
    /// [`ViewerLogin`].
    viewer_publisher: Option<ViewerPublisher>,
    viewer_login: ViewerLogin,
    /// When a worker's need for a new authorization was last announced, per service (so a
    /// burst of refusals posts once per pending-authorization lifetime).
    youtube_asked: Option<DateTime<Utc>>,
    twitch_asked: Option<DateTime<Utc>>,
    viewer_asked: Option<DateTime<Utc>>,
    /// One bare Twitch code exchanged at a time when no link is pending to match it.
    twitch_unmatched: Arc<Semaphore>,
    /// How long a reply waits for a remote answer ([`REPLY_LIMIT`]; shorter in tests).
    reply_limit: Duration,
}

impl Default for AuthState {
    fn default() -> AuthState {
        let (publisher, login) = viewer::channel();
        AuthState {
            youtube: None,
            twitch: None,
            viewer: None,
            twitch_saved: Arc::default(),
            viewer_saved: Arc::default(),
            viewer_publisher: Some(publisher),
            viewer_login: login,
            youtube_asked: None,
            twitch_asked: None,
            viewer_asked: None,
            twitch_unmatched: Arc::new(Semaphore::new(1)),
            reply_limit: REPLY_LIMIT,
        }
    }
}

impl AuthState {
    fn slot(&mut self, service: Service) -> &mut Option<AwaitedAuth> {
        match service {
            Service::Youtube => &mut self.youtube,
            Service::Twitch => &mut self.twitch,
            Service::TwitchViewer => &mut self.viewer,
        }
    }

    /// What the recorder asks playback tokens as.
    pub(super) fn viewer_login(&self) -> ViewerLogin {
        self.viewer_login.clone()
    }

    fn asked(&mut self, service: Service) -> &mut Option<DateTime<Utc>> {
        match service {
            Service::Youtube => &mut self.youtube_asked,
            Service::Twitch => &mut self.twitch_asked,
            Service::TwitchViewer => &mut self.viewer_asked,
        }
    }
}

/// One authorization waiting for the operator.
#[derive(Debug)]
struct AwaitedAuth {
    started: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    kind: AuthFlow,
    /// Ends the flow's task when replaced.
    cancel: CancellationToken,
    /// The consent link, once known.
    url: Arc<OnceLock<String>>,
}

#[derive(Debug)]
enum AuthFlow {
    /// yup-oauth2's installed flow waits for pasted codes, one exchange at a time.
    Google {
        codes: mpsc::Sender<CodeAttempt>,
        in_flight: InFlight,
    },
    /// Twitch's authorization-code flow; a pasted address must carry this `state`. One pasted
    /// code is exchanged at a time (the exchange holds `exchanging`'s single permit).
    TwitchCode {
        state: String,
        exchanging: Arc<Semaphore>,
    },
    /// Twitch's device flow: nothing to paste.
    TwitchDevice,
}

impl AuthFlow {
    fn twitch_code(state: String) -> AuthFlow {
        AuthFlow::TwitchCode {
            state,
            exchanging: Arc::new(Semaphore::new(1)),
        }
    }
}

impl Drop for AwaitedAuth {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Core {
    /// `auth <service> [device]`
    pub(super) async fn auth(&mut self, service: Service, device: bool) -> Answer {
        match (service, device) {
            (Service::Youtube, _) => self.auth_youtube(),
            (Service::Twitch, false) => self.auth_twitch_link(),
            (Service::Twitch, true) => self.auth_twitch_device(),
            (Service::TwitchViewer, _) => self.auth_viewer(),
        }
    }

    /// `auth youtube`: Google's consent link, once yup-oauth2's flow has made it.
    fn auth_youtube(&mut self) -> Answer {
        let minutes = self.pending_minutes(Service::Youtube);
        if let Some(missing) = self.youtube_client_missing() {
            return Answer::Now(missing);
        }
        let (tx, rx) = oneshot::channel();
        self.start_google_consent(Present::Reply(tx));
        later(self.auth.reply_limit, async move {
            match rx.await {
                Ok(Ok(url)) => Reply::ok(Said::AuthLink(AuthLink::Youtube { url, minutes })),
                Ok(Err(error)) => Reply::refused(Refusal::AuthFailed {
                    command: "auth youtube",
                    error,
                }),
                Err(_) => Reply::refused(Refusal::AuthInterrupted {
                    command: "auth youtube",
                }),
            }
        })
    }

    /// `auth twitch`: the authorization-code link (with a fresh `state`), at once.
    fn auth_twitch_link(&mut self) -> Answer {
        let minutes = self.pending_minutes(Service::Twitch);
        let Some(oauth) = self.twitch_oauth() else {
            return Answer::Now(twitch_client_missing());
        };
        let state = twitch::new_state();
        let url = oauth.authorize_url(&state);
        self.set_pending(
            Service::Twitch,
            AuthFlow::twitch_code(state),
            CancellationToken::new(),
            Some(url.clone()),
            minutes,
        );
        Answer::Now(
            Reply::ok(Said::AuthLink(AuthLink::Twitch {
                url,
                redirect_uri: self.config.twitch.redirect_uri.to_string(),
                minutes,
            }))
            .private(),
        )
    }

    /// `auth twitch device`: the activation code, once Twitch gave it; the device flow's
    /// worker then waits for the approval.
    fn auth_twitch_device(&mut self) -> Answer {
        let Some(oauth) = self.twitch_oauth() else {
            return Answer::Now(twitch_client_missing());
        };
        self.device_flow(oauth, "auth twitch device")
    }

    /// `auth twitch-viewer`: the device flow with the viewer client (no app credentials).
    fn auth_viewer(&mut self) -> Answer {
        match TwitchOAuth::viewer(&self.config.twitch) {
            Some(oauth) => self.device_flow(oauth, "auth twitch-viewer"),
            None => Answer::Now(Reply::refused(Refusal::AuthFailed {
                command: "auth twitch-viewer",
                error: "no HTTP client could be made".into(),
            })),
        }
    }

    /// Starts `oauth`'s device flow as the pending authorization of its service.
    fn device_flow(&mut self, oauth: TwitchOAuth, command: &'static str) -> Answer {
        let cancel = self.shutdown.child_token();
        self.set_pending(
            oauth.service(),
            AuthFlow::TwitchDevice,
            cancel.clone(),
            None,
            Minutes(DEVICE_MINUTES),
        );
        let (tx, rx) = oneshot::channel();
        let flow = twitch::DeviceFlow {
            oauth,
            calls: self.calls(),
            events: self.events(),
            present: tx,
            cancel,
        };
        self.workers.spawn(flow.run());
        later(self.auth.reply_limit, async move {
            match rx.await {
                Ok(Ok(device)) => Reply::ok(Said::AuthLink(AuthLink::TwitchDevice {
                    verification_uri: device.verification_uri,
                    user_code: device.user_code,
                    expires_at: device.expires_at,
                })),
                Ok(Err(error)) => Reply::refused(Refusal::AuthFailed { command, error }),
                Err(_) => Reply::refused(Refusal::AuthInterrupted { command }),
            }
        })
    }

    /// `code <service> <code or address>`
    pub(super) async fn code(&mut self, service: Service, code: PastedCode) -> Answer {
        if service == Service::TwitchViewer {
            // A pasted token needs no pending authorization: it is checked with Twitch.
            return self.paste_viewer_token(code);
        }
        let now = Utc::now();
        let minutes = self.pending_minutes(service);
        let slot = self.auth.slot(service);
        let Some(pending) = slot.as_ref() else {
            // A bare Twitch code (no `state`) cannot be matched to a link, and none is pending
            // that it could be told apart from (e.g. the link was made before a restart):
            // the operator who typed it vouches for it.
            if service == Service::Twitch && !code.is_address() && code.state().is_none() {
                let Ok(permit) = self.auth.twitch_unmatched.clone().try_acquire_owned() else {
                    return Answer::Now(Reply::refused(Refusal::StillExchanging));
                };
                return self.exchange_twitch_code(code, permit, true);
            }
            return Answer::Now(Reply::refused(Refusal::NothingAwaited(service)));
        };
        let dead = match &pending.kind {
            AuthFlow::Google { codes, .. } => codes.is_closed(),
            _ => false,
        };
        if now >= pending.expires_at || dead {
            let started = pending.started;
            *slot = None;
            return Answer::Now(Reply::refused(Refusal::AuthExpired {
                service,
                started,
                minutes,
            }));
        }
        match &pending.kind {
            AuthFlow::TwitchDevice => Answer::Now(Reply::refused(Refusal::DeviceFlowPending)),
            AuthFlow::Google { codes, in_flight } => {
                let (reply, outcome) = oneshot::channel();
                if in_flight.busy() || codes.try_send(CodeAttempt { code, reply }).is_err() {
                    return Answer::Now(Reply::refused(Refusal::StillChecking));
                }
                later(self.auth.reply_limit, async move {
                    match outcome.await {
                        Ok(Ok(())) => Reply::ok(Said::Connected(Connected::Youtube)),
                        Ok(Err(e)) => Reply::refused(Refusal::CodeRefused(e)),
                        Err(_) => Reply::refused(Refusal::AuthEnded),
                    }
                })
            }
            AuthFlow::TwitchCode { state, exchanging } => {
                // A pasted address must prove it came from the newest link; a bare code (typed
                // or copied by hand from the address) carries no `state` to check.
                match code.state() {
                    Some(s) if s == state => {}
                    Some(_) => return Answer::Now(Reply::refused(Refusal::StateMismatch)),
                    // A link is pending, so a code must prove it came from that link: a bare
                    // code could be anyone's (e.g. one a stranger talked the operator into
                    // pasting, connecting the stranger's account).
                    None if code.is_address() => {
                        return Answer::Now(Reply::refused(Refusal::StateMissing))
                    }
                    None => return Answer::Now(Reply::refused(Refusal::BareCode)),
                }
                let Ok(permit) = exchanging.clone().try_acquire_owned() else {
                    return Answer::Now(Reply::refused(Refusal::StillExchanging));
                };
                self.exchange_twitch_code(code, permit, false)
            }
        }
    }

    /// Exchanges a pasted Twitch code in a worker task; `unmatched`: a bare code taken with no
    /// link pending to check it against (said in the success reply).
    fn exchange_twitch_code(
        &mut self,
        code: PastedCode,
        permit: tokio::sync::OwnedSemaphorePermit,
        unmatched: bool,
    ) -> Answer {
        let Some(oauth) = self.twitch_oauth() else {
            return Answer::Now(twitch_client_missing());
        };
        // The exchange is a worker of its own: the reply's time limit must not drop it
        // after Twitch took the single-use code.
        let (reply, outcome) = oneshot::channel();
        let exchange = twitch::CodeExchange {
            oauth,
            calls: self.calls(),
            events: self.events(),
            code,
            reply,
            cancel: self.shutdown.child_token(),
            permit,
        };
        self.workers.spawn(exchange.run());
        later(self.auth.reply_limit, async move {
            match outcome.await {
                Ok(Exchanged::Connected(login)) => {
                    Reply::ok(Said::Connected(Connected::Twitch { login, unmatched }))
                }
                Ok(Exchanged::Refused(e)) => Reply::refused(Refusal::TwitchRefusedCode(e)),
                Ok(Exchanged::Unavailable(e)) => Reply::refused(Refusal::TwitchUnavailable(e)),
                Ok(Exchanged::NotSaved(e)) => Reply::refused(Refusal::TokenNotSaved(e)),
                Err(_) => Reply::refused(Refusal::ExchangeInterrupted),
            }
        })
    }

    /// `code twitch-viewer <token>`: validated and stored by a worker task.
    fn paste_viewer_token(&mut self, token: PastedCode) -> Answer {
        let Some(oauth) = TwitchOAuth::viewer(&self.config.twitch) else {
            return Answer::Now(Reply::refused(Refusal::TwitchUnavailable(
                "no HTTP client could be made".into(),
            )));
        };
        let (reply, outcome) = oneshot::channel();
        let task = viewer::PastedToken {
            oauth,
            calls: self.calls(),
            token,
            app_client_id: self.config.twitch.client_id.clone(),
            reply,
            cancel: self.shutdown.child_token(),
        };
        self.workers.spawn(task.run());
        later(self.auth.reply_limit, async move {
            match outcome.await {
                Ok(Pasted::Connected(login)) => {
                    Reply::ok(Said::Connected(Connected::TwitchViewer { login }))
                }
                Ok(Pasted::Refused(e)) => Reply::refused(Refusal::ViewerTokenRefused(e)),
                Ok(Pasted::Unavailable(e)) => Reply::refused(Refusal::TwitchUnavailable(e)),
                Ok(Pasted::NotSaved(e)) => Reply::refused(Refusal::TokenNotSaved(e)),
                Err(_) => Reply::refused(Refusal::ExchangeInterrupted),
            }
        })
    }

    /// Stores a token set; one without a refresh token keeps the stored refresh token.
    pub(super) async fn save_token(
        &mut self,
        service: Service,
        mut token: StoredToken,
    ) -> Result<()> {
        if token.refresh_token.is_none() {
            if let Some(old) = self.store.token(service.as_str()).await? {
                token.refresh_token = old.refresh_token;
            }
        }
        self.store.put_token(service.as_str(), &token).await?;
        info!(%service, "token stored");
        if service == Service::TwitchViewer {
            self.auth.viewer_saved.notify_one();
        }
        if service == Service::Twitch {
            self.auth.twitch_saved.notify_one();
            // Refreshes too, not only new authorizations: the chat's next reconnect must not
            // log in with a token Twitch already replaced.
            self.chat_token_changed().await;
        }
        Ok(())
    }

    /// An authorization succeeded: announce it, and resume the uploads that waited for it.
    pub(super) async fn auth_completed(
        &mut self,
        service: Service,
        account: Option<String>,
    ) -> Result<()> {
        // The flow that reports this is past its last cancellation point.
        self.auth.slot(service).take();
        self.auth.asked(service).take();
        self.publish(Event::now(
            None,
            EventKind::AuthCompleted {
                service: service.to_string(),
                account,
            },
        ))
        .await;
        if service == Service::Youtube {
            let resumed = self.store.requeue_upload_jobs(JobState::Paused).await?;
            if resumed > 0 {
                info!(resumed, "paused uploads resumed");
            }
            self.wake_uploads();
        }
        Ok(())
    }

    /// A worker found the authorization unusable: say so in the events room (once per
    /// pending-authorization lifetime), asking an operator to run `auth <service>`. The
    /// consent link (or activation code) is never part of this event: the events room may be
    /// public, and whoever opened a link there could connect their own account. The operator
    /// gets it as the private reply to `auth`.
    pub(super) async fn auth_needed(&mut self, service: Service, reason: String) {
        let now = Utc::now();
        if let Some(p) = self.auth.slot(service).as_ref() {
            if now < p.expires_at {
                info!(%service, "authorization already pending; not asking again");
                return;
            }
        }
        let minutes = self.pending_minutes(service);
        let again_after =
            chrono::Duration::from_std(minutes.duration()).unwrap_or(chrono::Duration::MAX);
        if let Some(asked) = *self.auth.asked(service) {
            if asked
                .checked_add_signed(again_after)
                .is_none_or(|t| now < t)
            {
                info!(%service, "authorization already asked for; not asking again");
                return;
            }
        }
        *self.auth.asked(service) = Some(now);
        let reason = match service {
            Service::Youtube => format!("uploads are paused: {reason}"),
            Service::Twitch | Service::TwitchViewer => reason,
        };
        if service == Service::Youtube && self.youtube_client_missing().is_some() {
            warn!("YouTube needs an OAuth client first: set [youtube] client_id and client_secret");
        }
        self.publish_auth_required(service, reason, None).await;
    }

    /// At start-up, before recordings start: the stored viewer login, as last validated.
    pub(super) async fn prime_viewer(&mut self) {
        let Some(publisher) = &self.auth.viewer_publisher else {
            return;
        };
        match self.store.token(Service::TwitchViewer.as_str()).await {
            Ok(Some(token)) => publisher.prime(&token),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read the stored Twitch viewer login"),
        }
    }

    /// At start-up: the viewer login's keeper, and the Twitch token keeper when the app has
    /// credentials.
    pub(super) fn start_token_keepers(&mut self) {
        if let (Some(oauth), Some(publisher)) = (
            TwitchOAuth::viewer(&self.config.twitch),
            self.auth.viewer_publisher.take(),
        ) {
            let keeper = ViewerKeeper {
                oauth,
                stored: Arc::new(self.store.clone()),
                calls: self.calls(),
                publisher,
                token_saved: self.auth.viewer_saved.clone(),
                validate_every: Duration::from_secs(self.config.twitch.validate_interval_secs),
                cancel: self.shutdown.child_token(),
            };
            self.workers.spawn(keeper.run());
        }
        let Some(oauth) = self.twitch_oauth() else {
            return;
        };
        let keeper = twitch::TokenKeeper {
            oauth,
            stored: Arc::new(self.store.clone()),
            calls: self.calls(),
            token_saved: self.auth.twitch_saved.clone(),
            validate_every: Duration::from_secs(self.config.twitch.validate_interval_secs),
            cancel: self.shutdown.child_token(),
        };
        self.workers.spawn(keeper.run());
    }

    fn start_google_consent(&mut self, present: Present) {
        let minutes = self.pending_minutes(Service::Youtube);
        let (codes, codes_rx) = mpsc::channel(1);
        let in_flight = InFlight::default();
        let cancel = self.shutdown.child_token();
        let url = Arc::new(OnceLock::new());
        let flow = ConsentFlow {
            config: self.config.youtube.clone(),
            calls: self.calls(),
            events: self.events(),
            present,
            codes: codes_rx,
            url: url.clone(),
            deadline: tokio::time::Instant::now() + minutes.duration(),
            cancel: cancel.clone(),
            in_flight: in_flight.clone(),
        };
        self.workers.spawn(flow.run());
        let pending = self.set_pending(
            Service::Youtube,
            AuthFlow::Google { codes, in_flight },
            cancel,
            None,
            minutes,
        );
        pending.url = url;
    }

    /// Replaces the service's pending authorization (ending the old one's task).
    fn set_pending(
        &mut self,
        service: Service,
        kind: AuthFlow,
        cancel: CancellationToken,
        url: Option<String>,
        minutes: Minutes,
    ) -> &mut AwaitedAuth {
        let now = Utc::now();
        let known = Arc::new(OnceLock::new());
        if let Some(url) = url {
            let _ = known.set(url);
        }
        info!(%service, minutes = minutes.0, "authorization pending");
        self.auth.slot(service).insert(AwaitedAuth {
            started: now,
            expires_at: now
                + chrono::Duration::from_std(minutes.duration()).unwrap_or(chrono::Duration::MAX),
            kind,
            cancel,
            url: known,
        })
    }

    async fn publish_auth_required(
        &mut self,
        service: Service,
        reason: String,
        url: Option<String>,
    ) {
        self.publish(Event::now(
            None,
            EventKind::AuthRequired {
                service: service.to_string(),
                reason,
                url,
            },
        ))
        .await;
    }

    /// How long a pending authorization of `service` lasts, as said in replies.
    fn pending_minutes(&self, service: Service) -> Minutes {
        Minutes(match service {
            Service::Youtube => self.config.youtube.pending_auth_minutes,
            Service::Twitch => self.config.twitch.pending_auth_minutes,
            Service::TwitchViewer => DEVICE_MINUTES,
        })
    }

    fn youtube_client_missing(&self) -> Option<Reply> {
        let y = &self.config.youtube;
        (y.client_id.is_none() || y.client_secret.is_none())
            .then(|| Reply::refused(Refusal::YoutubeClientMissing))
    }

    fn twitch_oauth(&self) -> Option<TwitchOAuth> {
        TwitchOAuth::new(&self.config.twitch)
    }
}

fn twitch_client_missing() -> Reply {
    Reply::refused(Refusal::TwitchClientMissing)
}

/// A reply a worker task sends when `work` is done, bounded by `limit`. `work` only waits for
/// a worker's answer: whatever it waits for goes on when the limit drops it.
fn later(
    limit: Duration,
    work: impl std::future::Future<Output = Reply> + Send + 'static,
) -> Answer {
    Answer::Later(Box::pin(async move {
        match tokio::time::timeout(limit, work).await {
            // Links and activation codes are for the person who asked.
            Ok(reply) => reply.private(),
            Err(_) => Reply::refused(Refusal::NoRemoteAnswer(limit)),
        }
    }))
}

#[cfg(test)]
mod tests;
