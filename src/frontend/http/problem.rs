//! Errors as RFC 9457 problem details (`application/problem+json`): `type` names the kind of
//! problem, `title` is the status's phrase, `detail` the words chat shows for the refusal
//! (`render::refusal`).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::core::Refusal;
use crate::frontend::render;

/// A problem-details answer.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    status: StatusCode,
    /// The last part of `type` (`urn:recbot:problem:<kind>`).
    kind: &'static str,
    detail: String,
    header: Option<(HeaderName, &'static str)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            detail: detail.into(),
            header: None,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Problem {
        self.header = Some((name, value));
        self
    }

    /// A refused command: its status and chat's words for it.
    pub fn refused(why: &Refusal) -> Problem {
        let (status, kind) = classify(why);
        Problem::new(status, kind, render::refusal(why))
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The words of the problem (chat's, for a refusal).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A request body or parameter that is not what the endpoint takes.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: format!("urn:recbot:problem:{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some((name, value)) = self.header {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// The HTTP status of a refusal, and its kind.
fn classify(why: &Refusal) -> (StatusCode, &'static str) {
    use Refusal as R;
    match why {
        R::Unparsed(_) => (StatusCode::BAD_REQUEST, "invalid-command"),
        R::NotOperator { .. } => (StatusCode::FORBIDDEN, "not-operator"),
        R::NotWatched(_) => (StatusCode::NOT_FOUND, "not-watched"),
        R::NoSuchChannel(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no-such-channel"),
        R::ChannelLookupFailed { .. } => (StatusCode::BAD_GATEWAY, "remote-failed"),
        R::PlatformNotAvailable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "platform-not-available"),
        R::NoSuchUpload(_) => (StatusCode::NOT_FOUND, "no-such-upload"),
        R::ShuttingDown
        | R::StoppedBeforeAnswer
        | R::ShuttingDownUnchanged
        | R::StoppedBeforeAdd => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
        R::Failed { .. } | R::AnswerLost | R::DiskFailed { .. } | R::TokenNotSaved(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "failed")
        }
        R::SourceRefused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "source-refused"),
        R::WatchedAs { .. } => (StatusCode::CONFLICT, "watched-as"),
        R::AlreadyUploaded { .. }
        | R::UploadWaits { .. }
        | R::UploadWaitsForChatFile { .. }
        | R::UploadPaused(_)
        | R::UploadBusy { .. } => (StatusCode::CONFLICT, "upload-state"),
        R::UploadFileGone { .. } => (StatusCode::GONE, "upload-file-gone"),
        R::YoutubeClientMissing | R::TwitchClientMissing => {
            (StatusCode::CONFLICT, "not-configured")
        }
        R::NothingAwaited(_)
        | R::AuthExpired { .. }
        | R::DeviceFlowPending
        | R::StillChecking
        | R::StillExchanging
        | R::AuthEnded
        | R::StateMismatch
        | R::StateMissing
        | R::BareCode => (StatusCode::CONFLICT, "auth-state"),
        R::ViewerTokenRefused(_) | R::CodeRefused(_) | R::TwitchRefusedCode(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "code-refused")
        }
        R::AuthFailed { .. }
        | R::AuthInterrupted { .. }
        | R::TwitchUnavailable(_)
        | R::ExchangeInterrupted => (StatusCode::BAD_GATEWAY, "remote-failed"),
        R::NoRemoteAnswer(_) => (StatusCode::GATEWAY_TIMEOUT, "remote-timeout"),
        R::NoSession { .. } => (StatusCode::NOT_FOUND, "no-such-session"),
        R::SpanNotInOnePart { .. } | R::CutFailed(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "cut-refused")
        }
    }
}

/// Any path the API does not have.
pub(super) async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see the README's HTTP API section",
    )
}
