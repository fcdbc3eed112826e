//! `/api/v1`: each route is a chat command, built as its words and parsed by the commands
//! crate (so a hostile value gets the same refusal as typed in chat), executed through the
//! core with the caller's origin, and answered with the reply's data as JSON.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Caller;
use super::problem::Problem;
use super::schema::{
    self, AddLogin, Added, AuthLink, Code, Connected, Disk, LoginStatus, Logins, Quota, Removed,
    Requeued, ServiceStatus, Uploads,
};
use super::{json, AppState};
use crate::core::{Refusal, Said};

type Answer = Result<(StatusCode, Json<Value>), Problem>;

/// Parses the command made of `words` (each one word, as typed) and executes it for `caller`.
pub(super) async fn run(state: &AppState, caller: &Caller, words: &[&str]) -> Answer {
    for word in words {
        if word.is_empty() || word.contains([' ', '\t']) {
            return Err(Problem::bad_request(
                "every value must be one word, not empty and without spaces",
            ));
        }
    }
    let command = recbot_commands::parse(&words.join(" "))
        .map_err(|e| Problem::refused(&Refusal::Unparsed(e)))?;
    let reply = state.core.execute(command, caller.origin()).await;
    match &reply.said {
        Said::Refused(why) => Err(Problem::refused(why)),
        said => Ok((StatusCode::OK, Json(json::said(said)))),
    }
}

/// A JSON request body, refused with a problem (not a plain-text error) when it is not one.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request(format!("the request body is not valid: {e}")))
}

#[utoipa::path(
    get, path = "/logins", tag = "logins", summary = "The watched logins",
    description = "Who added each login, its room and an HLS source's address are shown to operators only.",
    security(("token" = [])),
    responses((status = 200, description = "The watch list", body = Logins)),
)]
pub(super) async fn list(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["list"]).await
}

/// `POST /logins`: `{login | hls_url + name, quality?, upload?, chat?, post?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    login: Option<String>,
    hls_url: Option<String>,
    name: Option<String>,
    quality: Option<String>,
    upload: Option<bool>,
    chat: Option<bool>,
    post: Option<String>,
}

#[utoipa::path(
    post, path = "/logins", tag = "logins", summary = "Watch a login (operator)",
    description = "Like `add` in chat: either `login` (Twitch), or `hls_url` and `name`; \
        `quality`, `upload`, `chat` and `post` change the options of a login already watched. Needs an operator token.",
    security(("token" = [])),
    request_body(content = AddLogin, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = Added),
        (status = 200, description = "Already watched: options updated (`updated`) or unchanged", body = Added),
        (status = 400, description = "Not a valid body or command (`bad-request`, `invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token (`not-operator`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The source is watched under another name (`watched-as`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Twitch or the HLS source refused (`source-refused`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn add(State(state): State<AppState>, caller: Caller, bytes: Bytes) -> Answer {
    let add: AddBody = body(&bytes)?;
    let mut words: Vec<String> = vec!["add".into()];
    match (&add.login, &add.hls_url, &add.name) {
        (Some(login), None, None) => words.push(login.clone()),
        (None, Some(url), Some(name)) => words.extend(["hls".into(), url.clone(), name.clone()]),
        _ => {
            return Err(Problem::bad_request(
                "give either `login`, or `hls_url` and `name`",
            ))
        }
    }
    let on = |b: bool| if b { "on" } else { "off" };
    if let Some(quality) = &add.quality {
        if quality.is_empty() || quality.contains([' ', '\t']) {
            return Err(Problem::bad_request("`quality` must be one word"));
        }
        words.push(format!("quality={quality}"));
    }
    if let Some(upload) = add.upload {
        words.push(format!("upload={}", on(upload)));
    }
    if let Some(chat) = add.chat {
        words.push(format!("chat={}", on(chat)));
    }
    if let Some(post) = &add.post {
        if post.is_empty() || post.contains([' ', '\t']) {
            return Err(Problem::bad_request("`post` must be one word"));
        }
        words.push(format!("post={post}"));
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (_, Json(value)) = run(&state, &caller, &words).await?;
    let created = value.get("added").and_then(Value::as_bool) == Some(true);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(value)))
}

#[utoipa::path(
    get, path = "/logins/{login}", tag = "logins", summary = "One login's state",
    description = "Live state, the recording running, the latest events.",
    params(("login" = String, Path, description = "A watched login")),
    security(("token" = [])),
    responses(
        (status = 200, description = "The login's state", body = LoginStatus),
        (status = 400, description = "Not a login (`invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not watched (`not-watched`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn login_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(login): Path<String>,
) -> Answer {
    run(&state, &caller, &["status", &login]).await
}

#[utoipa::path(
    delete, path = "/logins/{login}", tag = "logins", summary = "Stop watching a login (operator)",
    description = "Like `remove` in chat; a recording running is finished. Needs an operator token.",
    params(("login" = String, Path, description = "A watched login")),
    security(("token" = [])),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 400, description = "Not a login (`invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token (`not-operator`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not watched (`not-watched`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(login): Path<String>,
) -> Answer {
    run(&state, &caller, &["remove", &login]).await
}

#[utoipa::path(
    get, path = "/uploads", tag = "uploads", summary = "The upload jobs",
    description = "The open and latest jobs; video links for operators only.",
    security(("token" = [])),
    responses((status = 200, description = "The upload jobs", body = Uploads)),
)]
pub(super) async fn uploads(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["uploads"]).await
}

#[utoipa::path(
    post, path = "/uploads/{id}/retry", tag = "uploads", summary = "Retry an upload (operator)",
    description = "Like `retry` in chat: queues a failed or waiting job again. Needs an operator token.",
    params(("id" = u64, Path, description = "The upload job's id")),
    security(("token" = [])),
    responses(
        (status = 200, description = "Queued again", body = Requeued),
        (status = 400, description = "Not a job id (`invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token (`not-operator`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job (`no-such-upload`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job cannot be retried now (`upload-state`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 410, description = "Its file is gone (`upload-file-gone`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Answer {
    run(&state, &caller, &["retry", &id]).await
}

#[utoipa::path(
    get, path = "/quota", tag = "uploads", summary = "YouTube's API quota today",
    security(("token" = [])),
    responses((status = 200, description = "The quota", body = Quota)),
)]
pub(super) async fn quota(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["quota"]).await
}

#[utoipa::path(
    get, path = "/disk", tag = "service", summary = "Disk space",
    description = "Folder paths for operators only.",
    security(("token" = [])),
    responses((status = 200, description = "The disk", body = Disk)),
)]
pub(super) async fn disk(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["disk"]).await
}

#[utoipa::path(
    get, path = "/status", tag = "service", summary = "The service's state",
    security(("token" = [])),
    responses((status = 200, description = "The service", body = ServiceStatus)),
)]
pub(super) async fn status(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["status"]).await
}

/// `POST /auth/{service}[?device=true]`: the consent link or device code, in this response
/// only.
#[utoipa::path(
    post, path = "/auth/{service}", tag = "auth", summary = "Start connecting a service (operator)",
    description = "Like `auth` in chat: the consent link (or device code) is in this response only. Needs an operator token.",
    params(
        ("service" = String, Path, description = "`youtube`, `twitch` or `twitch-viewer`"),
        ("device" = Option<bool>, Query, description = "Twitch's device flow instead of a link"),
    ),
    security(("token" = [])),
    responses(
        (status = 200, description = "Where to go next", body = AuthLink),
        (status = 400, description = "Not a service, or `device` not true/false (`bad-request`, `invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token (`not-operator`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not configured, or the flow is not in a state for this (`not-configured`, `auth-state`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The service failed (`remote-failed`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 504, description = "The service did not answer in time (`remote-timeout`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn auth(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let device = match query.get("device").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Problem::bad_request("`device` is true or false")),
    };
    let mut words = vec!["auth", &service];
    if device {
        words.push("device");
    }
    run(&state, &caller, &words).await
}

/// `POST /auth/{service}/code`: `{code}` (a code, a pasted redirect address or a token).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

#[utoipa::path(
    post, path = "/auth/{service}/code", tag = "auth", summary = "Finish connecting a service (operator)",
    description = "Like `code` in chat: the code, the redirected address, or a token. Needs an operator token.",
    params(("service" = String, Path, description = "`youtube`, `twitch` or `twitch-viewer`")),
    security(("token" = [])),
    request_body(content = Code, content_type = "application/json"),
    responses(
        (status = 200, description = "Connected", body = Connected),
        (status = 400, description = "Not a service, or `device` not true/false (`bad-request`, `invalid-command`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token (`not-operator`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not configured, or the flow is not in a state for this (`not-configured`, `auth-state`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The code was refused (`code-refused`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The service failed (`remote-failed`)", body = schema::Problem, content_type = "application/problem+json"),
        (status = 504, description = "The service did not answer in time (`remote-timeout`)", body = schema::Problem, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn code(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    bytes: Bytes,
) -> Answer {
    let code: CodeBody = body(&bytes)?;
    run(&state, &caller, &["code", &service, &code.code]).await
}
