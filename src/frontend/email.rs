//! E-mail: the events `[email] events` lists, mailed as digests (the events within
//! `digest_minutes` of the first one in one mail) through the outbox with its own cursor
//! (`email`), so an SMTP outage or a restart delays mail but loses none. A failed or 4xx-refused
//! mail is tried again with backoff; a 5xx refusal skips that digest and is reported once as
//! an `EmailRefused` event (in chat). The words come from `render::digest`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::delivery::{until_answered, woken, Stopped};
use super::render;
use super::webhook::{report_failing, FAILING_REPORT_AFTER};
use crate::backoff::{Backoff, Jitter};
use crate::config::{Config, Email, SmtpSecurity};
use crate::core::{CoreHandle, Notice};
use crate::event::{Event, EventKind};

/// The outbox key of e-mail delivery.
pub const OUTBOX_KEY: &str = "email";
/// Events read from the log per request, and at most this many in one mail (the rest go in
/// the next one).
const PAGE: i64 = 200;
const MAX_PER_MAIL: usize = 100;

/// Starts e-mail delivery on `tracker` when `[email]` is configured; it runs until the core
/// has stopped. `notices` only wakes it: what to mail is read from the event log.
pub async fn run(
    config: Arc<Config>,
    core: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    tracker: TaskTracker,
) -> anyhow::Result<()> {
    if !config.email.is_configured() {
        return Ok(());
    }
    let delivery = EmailDelivery {
        mailer: Mailer::new(&config.email)?,
        email: config.email.clone(),
        core,
        cursor: 0,
        stored: 0,
    };
    tracker.spawn(delivery.run(notices));
    Ok(())
}

/// What sending one mail came to.
#[derive(Debug)]
enum Outcome {
    Sent,
    /// A 5xx answer: this mail will not be taken.
    Refused {
        code: u16,
        reason: String,
    },
    /// Unreachable, a 4xx, a timeout: try again.
    Retry(String),
}

/// The SMTP transport and the envelope.
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("to", &self.to).finish()
    }
}

impl Mailer {
    fn new(email: &Email) -> anyhow::Result<Mailer> {
        let server = email.server().map_err(anyhow::Error::msg)?;
        let parameters = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(server.host.clone());
            // Checked with the configuration; read again once here, at start-up.
            for der in email.extra_roots().map_err(anyhow::Error::msg)? {
                builder = builder.add_root_certificate(Certificate::from_der(der.to_vec())?);
            }
            Ok(builder.build_rustls()?)
        };
        let tls = match server.security {
            SmtpSecurity::Tls => Tls::Wrapper(parameters()?),
            SmtpSecurity::StartTls => Tls::Required(parameters()?),
            SmtpSecurity::Plain => Tls::None,
        };
        let timeout = Duration::from_secs(email.timeout_secs);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&email.username, &email.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: email.from.parse()?,
            to: email
                .to
                .iter()
                .map(|t| t.parse())
                .collect::<Result<_, _>>()?,
            timeout,
        })
    }

    async fn send(&self, events: &[Event]) -> Outcome {
        let (subject, body) = render::digest(events);
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        // Quoted-printable: lines stay short and readable, any server takes it.
        let body = Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
            .unwrap_or_else(Body::new);
        let message = match message.body(body) {
            Ok(message) => message,
            Err(e) => {
                return Outcome::Refused {
                    code: 0,
                    reason: format!("cannot build the mail: {e}"),
                }
            }
        };
        // Each SMTP command has the timeout; the whole exchange a few of them.
        let sent = tokio::time::timeout(self.timeout * 4, self.transport.send(message)).await;
        match sent {
            Ok(Ok(_)) => Outcome::Sent,
            Ok(Err(e)) if e.is_permanent() => Outcome::Refused {
                code: e.status().map_or(500, u16::from),
                reason: e.to_string(),
            },
            Ok(Err(e)) => Outcome::Retry(e.to_string()),
            Err(_) => Outcome::Retry("the mail server did not finish in time".into()),
        }
    }
}

#[derive(Debug)]
struct EmailDelivery {
    email: Email,
    mailer: Mailer,
    core: CoreHandle,
    /// Every event up to here was mailed, refused for good, or not for mail.
    cursor: i64,
    /// The cursor as last stored with the core.
    stored: i64,
}

impl EmailDelivery {
    async fn run(mut self, mut notices: broadcast::Receiver<Arc<Notice>>) {
        let Ok(state) = self
            .with_core("read the outbox", |core| async move {
                core.outbox_open(OUTBOX_KEY).await
            })
            .await
        else {
            return;
        };
        self.cursor = state.cursor;
        self.stored = state.cursor;
        info!(cursor = self.cursor, "mailing events");
        loop {
            match self.next_digest().await {
                Err(Stopped) => break,
                Ok(true) => continue,
                Ok(false) => {}
            }
            if !woken(&self.core, &mut notices).await {
                break;
            }
        }
        debug!("e-mail delivery stopped");
    }

    /// Mails the next digest, if the log holds events to mail; `Ok(false)` when it has
    /// nothing after the cursor.
    async fn next_digest(&mut self) -> Result<bool, Stopped> {
        let Some((wanted, scanned_to)) = self.wanted().await? else {
            return Ok(false);
        };
        let Some(first) = wanted.first() else {
            self.cursor = self.cursor.max(scanned_to);
            self.store_cursor().await?;
            return Ok(true);
        };
        // The window runs from the first event's time, so a restart does not wait again.
        let window = Duration::from_secs_f64(self.email.digest_minutes * 60.0);
        let age = (chrono::Utc::now() - first.event.at)
            .to_std()
            .unwrap_or_default();
        self.wait_or_stop(window.saturating_sub(age)).await?;
        let Some((mut wanted, scanned_to)) = self.wanted().await? else {
            return Ok(false);
        };
        let last = if wanted.len() > MAX_PER_MAIL {
            wanted.truncate(MAX_PER_MAIL);
            wanted.last().map_or(scanned_to, |n| n.seq)
        } else {
            scanned_to
        };
        self.mail_until_done(&wanted).await?;
        self.cursor = self.cursor.max(last);
        self.store_cursor().await?;
        Ok(true)
    }

    /// The mailed events of the next page after the cursor, and how far the page went.
    async fn wanted(&self) -> Result<Option<(Vec<Notice>, i64)>, Stopped> {
        let after = self.cursor;
        let page = self
            .with_core("read the event log", |core| async move {
                core.outbox_pending(after, PAGE).await
            })
            .await?;
        let Some(scanned_to) = page.scanned_to else {
            return Ok(None);
        };
        let wanted = page
            .notices
            .into_iter()
            .filter(|n| n.seq > after && self.email.wants(n.event.kind_name()))
            .collect();
        Ok(Some((wanted, scanned_to)))
    }

    /// Sends one digest until the server takes it or refuses it for good.
    async fn mail_until_done(&self, notices: &[Notice]) -> Result<(), Stopped> {
        let events: Vec<Event> = notices.iter().map(|n| n.event.clone()).collect();
        let mut pacer = self.pacer();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = tokio::select! {
                outcome = self.mailer.send(&events) => outcome,
                _ = self.core.stopped() => return Err(Stopped),
            };
            match outcome {
                Outcome::Sent => {
                    debug!(events = events.len(), "digest mailed");
                    return Ok(());
                }
                Outcome::Refused { code, reason } => {
                    self.refused(notices, code, reason).await;
                    return Ok(());
                }
                Outcome::Retry(reason) => {
                    let wait = pacer.pause(false);
                    warn!(
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "mailing failed; trying again (nothing is skipped)"
                    );
                    if attempts == FAILING_REPORT_AFTER {
                        report_failing(&self.core, "e-mail".into(), attempts, reason).await;
                    }
                    self.wait_or_stop(wait).await?;
                }
            }
        }
    }

    /// Reports a refused digest once, as an event. A digest of refusal reports only is only
    /// logged, so a server refusing everything cannot loop.
    async fn refused(&self, notices: &[Notice], code: u16, reason: String) {
        error!(
            code,
            reason,
            events = notices.len(),
            "the mail server refused a digest; its events are not mailed"
        );
        if notices
            .iter()
            .all(|n| matches!(n.event.kind, EventKind::EmailRefused { .. }))
        {
            return;
        }
        let kind = EventKind::EmailRefused {
            code,
            reason: reason.chars().take(300).collect(),
            events: notices.len() as u32,
            first: notices.first().map_or(0, |n| n.seq),
            last: notices.last().map_or(0, |n| n.seq),
        };
        self.core.report(Event::now(None, kind)).await;
    }

    async fn store_cursor(&mut self) -> Result<(), Stopped> {
        if self.cursor <= self.stored {
            return Ok(());
        }
        let cursor = self.cursor;
        self.with_core("record a delivery", |core| async move {
            core.outbox_delivered(OUTBOX_KEY, cursor, Vec::new()).await
        })
        .await?;
        self.stored = cursor;
        Ok(())
    }

    fn pacer(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.email.retry_initial_ms),
            Duration::from_secs(self.email.retry_max_secs),
            Jitter::Half,
        )
    }

    async fn wait_or_stop(&self, wait: Duration) -> Result<(), Stopped> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.core.stopped() => Err(Stopped),
        }
    }

    /// Runs an outbox call until the core answers it ([`until_answered`]).
    async fn with_core<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, Stopped>
    where
        F: FnMut(CoreHandle) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        until_answered(&self.core, self.pacer(), "email", what, call).await
    }
}
