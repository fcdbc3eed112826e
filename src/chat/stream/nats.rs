//! NATS and JetStream for the chat stream (the only file that knows `async-nats`):
//! connecting with the configured credentials, making sure the stream exists, and publishing
//! a chunk of lines with their acknowledgements awaited together.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, message::PublishMessage};
use futures::future::join_all;
use std::future::IntoFuture;

use super::line::{Line, SUBJECTS};
use super::{StreamAuth, StreamSettings};

/// Publishes whose acknowledgement is awaited at once, at most. A chunk must be smaller: its
/// acks are awaited only once all of it is sent.
pub(super) const MAX_IN_FLIGHT: usize = 8192;

/// A connected client and its JetStream context. The client reconnects by itself after a
/// drop; a publish that is not acknowledged in time is what tells the worker NATS is away.
#[derive(Debug, Clone)]
pub(super) struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Nats {
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn context(&self) -> jetstream::Context {
        self.js.clone()
    }
}

/// What [`ready`] gives: a usable connection, or what there was with the reason.
pub(super) type Ready = Result<Nats, (Option<Nats>, String)>;

/// Gets a usable connection: `existing` when it is connected again (the stream checked),
/// else a new one. On failure gives back what it had, with the reason.
pub(super) async fn ready(settings: StreamSettings, existing: Option<Nats>) -> Ready {
    let nats = match existing {
        Some(nats) if !nats.connected() => {
            return Err((Some(nats), "not connected to NATS".into()));
        }
        Some(nats) => nats,
        None => connect(&settings).await.map_err(|why| (None, why))?,
    };
    match ensure_stream(&nats.js, &settings).await {
        Ok(()) => Ok(nats),
        Err(why) => Err((Some(nats), why)),
    }
}

async fn connect(settings: &StreamSettings) -> Result<Nats, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name("recbot")
        .connection_timeout(settings.timeout)
        .request_timeout(Some(settings.timeout))
        // Reconnects keep trying (the client's own backoff); the worker spools meanwhile.
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            crate::backoff::ceiling(
                attempts.saturating_sub(1) as u32,
                Duration::from_millis(100),
                Duration::from_secs(5),
            )
        });
    options = match &settings.auth {
        StreamAuth::None => options,
        StreamAuth::Token(token) => options.token(token.expose().to_string()),
        StreamAuth::UserPassword(user, password) => {
            options.user_and_password(user.clone(), password.expose().to_string())
        }
    };
    let client = options
        .connect(settings.url.as_str())
        .await
        .map_err(|e| format!("cannot connect to NATS: {e}"))?;
    let js = jetstream::context::ContextBuilder::new()
        .timeout(settings.timeout)
        // Acks of a chunk given up on free their places after the same time.
        .ack_timeout(settings.timeout)
        .max_ack_inflight(MAX_IN_FLIGHT)
        .build(client.clone());
    Ok(Nats { client, js })
}

/// Creates the stream when it is missing (subjects `recbot.chat.>`); an existing one is
/// taken as it is.
async fn ensure_stream(js: &jetstream::Context, settings: &StreamSettings) -> Result<(), String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: settings.stream_name.clone(),
        subjects: vec![SUBJECTS.to_string()],
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("JetStream stream {}: {e}", settings.stream_name))
}

/// Publishes `lines` in order and awaits every acknowledgement; gives the lines back with
/// the first failure (then some may have been stored: sent again, JetStream drops repeats).
pub(super) async fn publish(
    js: jetstream::Context,
    lines: Vec<Line>,
) -> (Vec<Line>, Result<(), String>) {
    let mut acks = Vec::with_capacity(lines.len());
    for line in &lines {
        let message = PublishMessage::build()
            .payload(line.payload.clone())
            .message_id(&line.id);
        match js.send_publish(line.subject.clone(), message).await {
            Ok(ack) => acks.push(ack.into_future()),
            Err(e) => return (lines, Err(format!("publishing failed: {e}"))),
        }
    }
    let result = join_all(acks)
        .await
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), |e| Err(format!("not acknowledged: {e}")));
    (lines, result)
}
