//! `/healthz` (the process answers) and `/readyz` (the core takes commands, its database
//! takes writes, and the configured chat front-ends are connected), without authentication.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{schema, AppState};
use crate::core::{Unready, HEALTH_WITHIN};
use crate::frontend::presence::{Absent, LinkState};

#[utoipa::path(
    get, path = "/healthz", tag = "operations", summary = "Liveness",
    description = "The process answers. No token.",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)),
)]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations", summary = "Readiness",
    description = "The core takes commands, its database takes writes, the configured chat front-ends are connected. No token.",
    responses(
        (status = 200, description = "Ready", body = schema::Ready),
        (status = 503, description = "Not ready, with the reasons", body = schema::Ready),
    ),
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let unready = state.core.health(HEALTH_WITHIN).await;
    let absent = state.presence.absent();
    if unready.is_empty() && absent.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "ready": true, "reasons": [] })),
        )
            .into_response();
    }
    let reasons: Vec<String> = unready
        .iter()
        .map(reason)
        .chain(absent.iter().map(not_connected))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reasons": reasons })),
    )
        .into_response()
}

fn reason(unready: &Unready) -> String {
    match unready {
        Unready::CoreStopped => {
            "the core has stopped (shutting down): commands are not taken".into()
        }
        Unready::CoreNotAnswering => format!(
            "the core did not answer within {} s",
            HEALTH_WITHIN.as_secs()
        ),
        Unready::DatabaseNotWritable(e) => format!("the state database is not writable: {e}"),
    }
}

fn not_connected(absent: &Absent) -> String {
    let name = absent.front_end;
    let secs = absent.for_secs;
    match &absent.state {
        LinkState::Connecting => format!("{name} is not connected yet (connecting for {secs} s)"),
        LinkState::Down(why) => format!("{name} is not connected for {secs} s: {why}"),
        LinkState::Connected => format!("{name} is connected"),
    }
}
