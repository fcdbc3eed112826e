//! The HTTP front-end (`[http]`): a JSON API under `/api/v1` for the same operations as the
//! chat commands (executed through the core like them: same rights, same audit log), the
//! live event stream (SSE and WebSocket, resumable from the event log), the probes, and the
//! status page at `/` (`page/`).
//! Bearer tokens from the config decide who may do what (`auth.rs`); errors are RFC 9457
//! problem details with the words chat shows (`problem.rs`).

mod api;
mod auth;
mod json;
mod metrics;
mod page;
mod probes;
mod problem;
mod recordings;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::presence::Presence;
use crate::config::Http;
use crate::core::CoreHandle;

pub use auth::constant_time_eq;

/// Largest request body taken: the longest one is an `add hls` or a pasted `code`, far below.
const BODY_LIMIT: usize = 16 * 1024;

/// What every handler reaches.
#[derive(Debug, Clone)]
struct AppState {
    core: CoreHandle,
    tokens: Arc<auth::Tokens>,
    heartbeat: Duration,
    presence: Presence,
    /// The status page's logins.
    sessions: Arc<page::Sessions>,
    /// `[http] metrics_token`: when set, `/metrics` requires it.
    metrics_token: Option<crate::secret::Secret>,
}

/// The bound listener, before it serves (so the caller learns the address first: `listen`
/// may ask for port 0).
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    config: Http,
    presence: Presence,
}

impl Listener {
    /// Binds `[http] listen`; `None` when the listener is disabled (`listen = ""`).
    pub async fn bind(config: &Http) -> Result<Option<Listener>> {
        let Some(addr) = config.address() else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} ([http] listen)"))?;
        Ok(Some(Listener {
            listener,
            config: config.clone(),
            presence: Presence::default(),
        }))
    }

    /// `/readyz` also asks whether these front-ends are connected.
    pub fn with_presence(mut self, presence: Presence) -> Listener {
        self.presence = presence;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown`; open event streams end when the core has stopped.
    pub async fn serve(self, core: CoreHandle, shutdown: CancellationToken) -> Result<()> {
        let addr = self.local_addr()?;
        let state = AppState {
            core,
            tokens: Arc::new(auth::Tokens::from_config(&self.config)),
            heartbeat: Duration::from_secs_f64(self.config.heartbeat_secs),
            presence: self.presence,
            sessions: Arc::new(page::Sessions::new()),
            metrics_token: self.config.metrics_token.clone(),
        };
        info!(%addr, tokens = self.config.tokens.len(), "HTTP API listening");
        axum::serve(self.listener, router(state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("the HTTP listener failed")
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/logins", get(api::list).post(api::add))
        .route(
            "/logins/{login}",
            get(api::login_status).delete(api::remove),
        )
        .route("/uploads", get(api::uploads))
        .route("/uploads/{id}/retry", post(api::retry))
        .route("/quota", get(api::quota))
        .route("/disk", get(api::disk))
        .route("/status", get(api::status))
        .route("/auth/{service}", post(api::auth))
        .route("/auth/{service}/code", post(api::code))
        .route("/recordings", get(recordings::list))
        .route("/recordings/{session}", get(recordings::one))
        .route("/events", get(stream::sse))
        .route("/ws", get(stream::ws))
        .fallback(problem::not_found);
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api)
        .merge(page::routes())
        .fallback(problem::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
