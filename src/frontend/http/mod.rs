//! The HTTP front-end (`[http]`): a JSON API under `/api/v1` for the same operations as the
//! chat commands (executed through the core like them: same rights, same audit log), the
//! live event stream (SSE and WebSocket, resumable from the event log), the probes, and the
//! status page at `/` (`page/`).
//! Bearer tokens from the config decide who may do what (`auth.rs`); errors are RFC 9457
//! problem details with the words chat shows (`problem.rs`). Every route but the page's is
//! registered together with its OpenAPI documentation (`openapi.rs`), served at
//! `/api/v1/openapi.json`.

mod api;
mod auth;
mod json;
mod metrics;
mod openapi;
mod page;
mod probes;
mod problem;
mod recordings;
mod schema;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
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

/// The documented routes (`openapi.rs`), the status page, the fallback and the body limit.
fn router(state: AppState) -> Router {
    let (routes, _doc) = openapi::routes().split_for_parts();
    routes
        .merge(page::routes())
        .fallback(problem::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
