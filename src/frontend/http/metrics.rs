//! `GET /metrics`: the service's Prometheus metrics in the text format 0.0.4
//! (`text/plain; version=0.0.4`), the core's gauges read at each scrape. Open by default;
//! with `[http] metrics_token` set, only `Authorization: Bearer <metrics_token>` (compared in
//! constant time) is answered, anything else gets 401.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::auth::{constant_time_eq, unauthorized};
use super::{schema, AppState};
use crate::core::HEALTH_WITHIN;

#[utoipa::path(
    get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    description = "The text format 0.0.4. Open unless `[http] metrics_token` is set; then that bearer token is needed.",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "`metrics_token` is set and was not presented (`unauthorized`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .map(|t| t.trim_ascii())
            .unwrap_or_default();
        if !constant_time_eq(token.expose().as_bytes(), presented) {
            return unauthorized("/metrics needs the `Authorization: Bearer` metrics token")
                .into_response();
        }
    }
    let metrics = state.core.metrics().clone();
    let _one = metrics.one_scrape().await;
    // Series created from here on (a login added meanwhile) outlive this scrape's pruning.
    let epoch = metrics.begin_scrape();
    let gauges = state.core.gauges(HEALTH_WITHIN).await;
    let text = metrics.encode(gauges.as_ref(), epoch);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}
