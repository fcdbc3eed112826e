//! `/healthz` (the process answers) and `/readyz` (the core takes commands and its database
//! takes writes), without authentication.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::core::{Unready, HEALTH_WITHIN};

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let unready = state.core.health(HEALTH_WITHIN).await;
    if unready.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "ready": true, "reasons": [] })),
        )
            .into_response();
    }
    let reasons: Vec<String> = unready.iter().map(reason).collect();
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
