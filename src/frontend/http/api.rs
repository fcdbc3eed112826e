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

pub(super) async fn list(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["list"]).await
}

/// `POST /logins`: `{login | hls_url + name, quality?, upload?, chat?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    login: Option<String>,
    hls_url: Option<String>,
    name: Option<String>,
    quality: Option<String>,
    upload: Option<bool>,
    chat: Option<bool>,
}

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

pub(super) async fn login_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(login): Path<String>,
) -> Answer {
    run(&state, &caller, &["status", &login]).await
}

pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(login): Path<String>,
) -> Answer {
    run(&state, &caller, &["remove", &login]).await
}

pub(super) async fn uploads(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["uploads"]).await
}

pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Answer {
    run(&state, &caller, &["retry", &id]).await
}

pub(super) async fn quota(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["quota"]).await
}

pub(super) async fn disk(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["disk"]).await
}

pub(super) async fn status(State(state): State<AppState>, caller: Caller) -> Answer {
    run(&state, &caller, &["status"]).await
}

/// `POST /auth/{service}[?device=true]`: the consent link or device code, in this response
/// only.
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

pub(super) async fn code(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    bytes: Bytes,
) -> Answer {
    let code: CodeBody = body(&bytes)?;
    run(&state, &caller, &["code", &service, &code.code]).await
}
