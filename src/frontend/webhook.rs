//! Webhooks: every event (or the kinds a `[[webhooks]]` entry lists) POSTed as signed JSON to
//! an outside receiver, in event-log order, through the outbox with a cursor per webhook
//! (`webhook:<name>`), so a restart resumes right after the last delivered event. Delivery is
//! at-least-once: `X-Recbot-Delivery` (the event-log id) lets the receiver drop a repeat.
//! Failures, timeouts, 408, 429 and 5xx are tried again with backoff, holding later events
//! back; any other refusal (a 4xx, a redirect) skips that event for that webhook and is
//! reported once as a `WebhookRefused` event. Upload progress that a later event of the same
//! page supersedes is not sent (the chat front-ends fold it the same way).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::delivery::{superseded, until_answered, woken, Stopped};
use crate::backoff::{Backoff, Jitter};
use crate::config::{Config, Webhook};
use crate::core::{CoreHandle, Notice};
use crate::event::{Event, EventKind};

/// Events read from the log per request.
const PAGE: i64 = 200;
/// Failed tries of one event after which the trouble is reported (once) in chat: with the
/// default backoff about four minutes, so a receiver's restart goes unreported.
pub(crate) const FAILING_REPORT_AFTER: u32 = 8;

/// Reports that deliveries to `to` keep failing (`DeliveryFailing`, once per stuck event).
pub(crate) async fn report_failing(core: &CoreHandle, to: String, attempts: u32, reason: String) {
    let reason = reason.chars().take(300).collect();
    let kind = EventKind::DeliveryFailing {
        to,
        attempts,
        reason,
    };
    core.report(Event::now(None, kind)).await;
}

/// Starts one delivery task per configured webhook on `tracker`; they run until the core has
/// stopped. `notices` only wakes them: what to send is read from the event log.
pub async fn run(
    config: Arc<Config>,
    core: CoreHandle,
    notices: broadcast::Receiver<Arc<Notice>>,
    tracker: TaskTracker,
) -> anyhow::Result<()> {
    for hook in &config.webhooks {
        let delivery = WebhookDelivery::new(hook.clone(), core.clone())?;
        tracker.spawn(delivery.run(notices.resubscribe()));
    }
    Ok(())
}

/// The signature header's value: `t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON object a webhook receives for a notice: `type` (the stable kind name), `id` (the
/// event-log id), `login`, `session`, `time` and the kind's `fields`.
pub fn payload(notice: &Notice) -> Value {
    let event: &Event = &notice.event;
    let mut fields = serde_json::to_value(&event.kind).unwrap_or_else(|_| json!({}));
    if let Some(map) = fields.as_object_mut() {
        map.remove("type");
        // Old event logs may still hold a consent link here; links are only ever private.
        if matches!(event.kind, EventKind::AuthRequired { .. }) {
            map.remove("url");
        }
    }
    json!({
        "type": event.kind_name(),
        "id": notice.seq,
        "login": event.login.as_ref().map(|l| l.as_str()),
        "session": event.session,
        "time": event.at,
        "fields": fields,
    })
}

/// What one POST came to.
#[derive(Debug)]
enum Outcome {
    Delivered,
    /// Refused for good: this event is skipped for this webhook.
    Refused(u16),
    /// Worth trying again (after `after` when the receiver said how long).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
}

/// One webhook's delivery task.
#[derive(Debug)]
struct WebhookDelivery {
    hook: Webhook,
    /// Its outbox key, `webhook:<name>`.
    key: String,
    http: reqwest::Client,
    core: CoreHandle,
    /// Every event up to here was delivered, refused for good, or not for this webhook.
    cursor: i64,
    /// The cursor as last stored with the core.
    stored: i64,
}

impl WebhookDelivery {
    fn new(hook: Webhook, core: CoreHandle) -> anyhow::Result<WebhookDelivery> {
        let http = reqwest::Client::builder()
            .timeout(hook.timeout())
            .connect_timeout(hook.timeout())
            // A redirect is an answer like a 4xx: the configured address is wrong.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("recbot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookDelivery {
            key: hook.outbox_key(),
            hook,
            http,
            core,
            cursor: 0,
            stored: 0,
        })
    }

    async fn run(mut self, mut notices: broadcast::Receiver<Arc<Notice>>) {
        let key = self.key.clone();
        let Ok(state) = self
            .with_core("read the outbox", |core| {
                let key = key.clone();
                async move { core.outbox_open(key).await }
            })
            .await
        else {
            return;
        };
        self.cursor = state.cursor;
        self.stored = state.cursor;
        info!(webhook = %self.hook.name, cursor = self.cursor, "delivering events");
        // Only wake-ups: everything is in the log, read by the next catch-up.
        while self.catch_up().await.is_ok() && woken(&self.core, &mut notices).await {}
        debug!(webhook = %self.hook.name, "webhook delivery stopped");
    }

    /// Runs an outbox call until the core answers it ([`until_answered`]).
    async fn with_core<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, Stopped>
    where
        F: FnMut(CoreHandle) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        until_answered(
            &self.core,
            self.pacer(),
            &format!("webhook:{}", self.hook.name),
            what,
            call,
        )
        .await
    }

    fn pacer(&self) -> Backoff {
        Backoff::new(
            self.hook.retry_initial(),
            self.hook.retry_max(),
            Jitter::Half,
        )
    }

    async fn wait_or_stop(&self, wait: Duration) -> Result<(), Stopped> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.core.stopped() => Err(Stopped),
        }
    }

    /// Delivers everything in the event log after the cursor, in order.
    async fn catch_up(&mut self) -> Result<(), Stopped> {
        loop {
            let after = self.cursor;
            let page = self
                .with_core("read the event log", |core| async move {
                    core.outbox_pending(after, PAGE).await
                })
                .await?;
            let Some(scanned_to) = page.scanned_to else {
                return Ok(());
            };
            for (i, notice) in page.notices.iter().enumerate() {
                if notice.seq <= self.cursor {
                    continue;
                }
                // Stale upload progress (a later notice of the page has the job's news) is
                // not sent: after an outage it would only flood the receiver.
                if self.hook.wants(notice.event.kind_name())
                    && !superseded(notice, &page.notices[i + 1..])
                {
                    self.deliver(notice).await?;
                }
            }
            self.cursor = self.cursor.max(scanned_to);
            self.store_cursor().await?;
        }
    }

    async fn store_cursor(&mut self) -> Result<(), Stopped> {
        if self.cursor <= self.stored {
            return Ok(());
        }
        let (key, cursor) = (self.key.clone(), self.cursor);
        self.with_core("record a delivery", |core| {
            let key = key.clone();
            async move { core.outbox_delivered(key, cursor, Vec::new()).await }
        })
        .await?;
        self.stored = cursor;
        Ok(())
    }

    /// POSTs one event until the receiver takes it or refuses it for good, then records it.
    async fn deliver(&mut self, notice: &Notice) -> Result<(), Stopped> {
        let body = serde_json::to_vec(&payload(notice)).expect("JSON values serialize");
        let mut pacer = self.pacer();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = tokio::select! {
                outcome = self.post(notice, &body) => outcome,
                _ = self.core.stopped() => return Err(Stopped),
            };
            match outcome {
                Outcome::Delivered => break,
                Outcome::Refused(status) => {
                    self.refused(notice, status).await;
                    break;
                }
                Outcome::Retry { after, reason } => {
                    let wait = after.map_or_else(
                        || pacer.pause(false),
                        |after| after.min(self.hook.retry_max()),
                    );
                    warn!(
                        webhook = %self.hook.name,
                        delivery = notice.seq,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "webhook delivery failed; trying again (later events wait)"
                    );
                    if attempts == FAILING_REPORT_AFTER {
                        let to = format!("webhook {}", self.hook.name);
                        report_failing(&self.core, to, attempts, reason).await;
                    }
                    self.wait_or_stop(wait).await?;
                }
            }
        }
        self.cursor = self.cursor.max(notice.seq);
        self.store_cursor().await
    }

    /// One signed POST of `body`.
    async fn post(&self, notice: &Notice, body: &[u8]) -> Outcome {
        let unix = chrono::Utc::now().timestamp();
        let request = self
            .http
            .post(&self.hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Recbot-Event", notice.event.kind_name())
            .header("X-Recbot-Delivery", notice.seq.to_string())
            .header(
                "X-Recbot-Signature",
                signature(self.hook.secret.expose(), unix, body),
            )
            .body(body.to_vec());
        let response = match request.send().await {
            Ok(response) => response,
            // No address in the reason: the path may carry the receiver's token.
            Err(e) => {
                let reason = if e.is_timeout() {
                    format!("no answer within {} s", self.hook.timeout_secs)
                } else {
                    "cannot reach the receiver".to_string()
                };
                return Outcome::Retry {
                    after: None,
                    reason,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Outcome::Retry {
                after,
                reason: format!("HTTP {code}"),
            };
        }
        Outcome::Refused(code)
    }

    /// Reports a refusal once, as an event (persisted before the cursor passes it). A refused
    /// `WebhookRefused` is only logged, so a receiver refusing everything cannot loop.
    async fn refused(&self, notice: &Notice, status: u16) {
        error!(
            webhook = %self.hook.name,
            delivery = notice.seq,
            kind = notice.event.kind_name(),
            status,
            "the webhook's receiver refused this event; skipped for this webhook"
        );
        if matches!(notice.event.kind, EventKind::WebhookRefused { .. }) {
            return;
        }
        let kind = EventKind::WebhookRefused {
            webhook: self.hook.name.clone(),
            delivery: notice.seq,
            event: notice.event.kind_name().to_string(),
            status,
        };
        self.core.report(Event::now(None, kind)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recbot_commands::Login;

    #[test]
    fn signature_is_hmac_of_time_dot_body() {
        let body = br#"{"a":1}"#;
        let header = signature("s3cret", 1_700_000_000, body);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={want}"));
        assert_ne!(signature("other", 1_700_000_000, body), header);
    }

    #[test]
    fn payload_names_the_kind_and_drops_consent_links() {
        let mut event = Event::now(
            Some(Login::parse("foo").unwrap()),
            EventKind::AuthRequired {
                service: "youtube".into(),
                reason: "expired".into(),
                url: Some("https://accounts.example/consent?x".into()),
            },
        );
        event.session = Some(4);
        let notice = Notice {
            seq: 12,
            event,
            room: None,
        };
        let value = payload(&notice);
        assert_eq!(value["type"], "AuthRequired");
        assert_eq!(value["id"], 12);
        assert_eq!(value["login"], "foo");
        assert_eq!(value["session"], 4);
        assert_eq!(value["fields"]["service"], "youtube");
        assert!(value["fields"].get("url").is_none(), "{value}");
        assert!(value["fields"].get("type").is_none(), "{value}");
        assert!(value["time"].is_string());
    }
}
