//! `GET /recordings` and `GET /recordings/{session}`: recorded sessions with their parts
//! (files, sizes, durations, gaps), read-only from the store through the core. Folder paths
//! are for operators, as in chat; viewers get file names.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use recbot_commands::Login;
use serde_json::{json, Value};

use super::auth::Caller;
use super::problem::Problem;
use super::{schema, AppState};
use crate::config::Role;
use crate::core::{SessionQuery, SessionView, MAX_SESSIONS};

/// Sessions returned when `limit` is not given.
const DEFAULT_LIMIT: i64 = 20;

#[utoipa::path(
    get, path = "/recordings", tag = "recordings", summary = "Recorded sessions",
    description = "Sessions with their parts, newest first; file paths for operators only.",
    params(
        ("login" = Option<String>, Query, description = "Only this login's sessions"),
        ("since" = Option<String>, Query, format = DateTime, description = "Only sessions started at or after this time (RFC 3339)"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "At most this many sessions (default 20)"),
    ),
    security(("token" = [])),
    responses(
        (status = 200, description = "The sessions", body = schema::Recordings),
        (status = 400, description = "A parameter is not valid (`bad-request`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    let query = session_query(&query)?;
    let sessions = state.core.sessions(query).await.map_err(unavailable)?;
    let operator = caller.role == Role::Operator;
    Ok(Json(json!({
        "recordings": sessions.iter().map(|s| session(s, operator)).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get, path = "/recordings/{session}", tag = "recordings", summary = "One recorded session",
    params(("session" = i64, Path, minimum = 1, description = "The session's id")),
    security(("token" = [])),
    responses(
        (status = 200, description = "The session", body = schema::Recording),
        (status = 400, description = "Not a session id (`bad-request`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session (`no-such-session`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = match id.parse::<i64>() {
        Ok(id) if id > 0 => id,
        _ => {
            return Err(Problem::bad_request(
                "a session id is a whole number like 12",
            ))
        }
    };
    match state.core.session(id).await.map_err(unavailable)? {
        Some(view) => Ok(Json(session(&view, caller.role == Role::Operator))),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-session",
            format!("there is no recorded session {id}"),
        )),
    }
}

/// `?login=&since=&limit=`, checked.
fn session_query(query: &HashMap<String, String>) -> Result<SessionQuery, Problem> {
    let login = match query.get("login") {
        Some(text) => Some(Login::parse(text).map_err(Problem::bad_request)?),
        None => None,
    };
    let since = match query.get("since") {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    Problem::bad_request("`since` is a time like 2026-01-31T18:00:00Z (RFC 3339)")
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_SESSIONS).contains(&n) => n,
            _ => {
                return Err(Problem::bad_request(format!(
                    "`limit` is a number from 1 to {MAX_SESSIONS}"
                )))
            }
        },
        None => DEFAULT_LIMIT,
    };
    Ok(SessionQuery {
        login,
        since,
        limit,
    })
}

fn unavailable(e: anyhow::Error) -> Problem {
    if e.downcast_ref::<crate::core::CoreStopped>().is_some() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "recbot is shutting down; try again when it is back",
        )
    } else {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            format!("the recordings could not be read: {e:#}"),
        )
    }
}

fn session(view: &SessionView, operator: bool) -> Value {
    let s = &view.session;
    let finished = view.parts.iter().filter(|p| p.state == "finished");
    let (mut bytes, mut duration, mut gaps, mut count) = (0u64, 0f64, 0u32, 0u32);
    for p in finished {
        bytes += p.bytes;
        duration += p.duration_secs;
        gaps += p.gaps;
        count += 1;
    }
    json!({
        "id": s.id,
        "login": s.name,
        "stream_id": s.stream_id,
        "title": s.title,
        "game": s.game,
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "totals": { "parts": count, "bytes": bytes, "duration_secs": duration, "gaps": gaps },
        "parts": view.parts.iter().map(|p| {
            let mut part = json!({
                "part": p.part_no,
                "file": p.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "state": p.state,
                "started_at": p.started_at,
                "ended_at": p.ended_at,
                "bytes": p.bytes,
                "duration_secs": p.duration_secs,
                "gaps": p.gaps,
                "recovered": p.recovered,
            });
            if operator {
                part["path"] = json!(p.path);
            }
            part
        }).collect::<Vec<_>>(),
    })
}
