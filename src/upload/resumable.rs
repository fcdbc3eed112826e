//! YouTube's resumable upload protocol (protocols.md §5) over reqwest: open a session with the
//! video's metadata, PUT the file in chunks streamed from disk, ask the server how much it has
//! after anything went wrong, and sort every answer into what the worker must do next.
//!
//! The client never follows redirects and sends `X-GUploader-No-308: yes`: "308 Resume
//! Incomplete" is not a redirect, and Google then answers 200 with
//! `X-Http-Status-Code-Override: 308` instead (both forms are understood).

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Client, Response, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use url::Url;

use crate::secret::Secret;

/// Google's chunk unit: every chunk but the last is a multiple of it.
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// Bytes read from disk at a time while a chunk streams out.
const READ_BUFFER: usize = 256 * 1024;
/// Status queries and session starts carry no file data.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How far an upload session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The server has bytes `0..next`; send from `next` on.
    Incomplete { next: u64 },
    /// The whole file arrived and YouTube created the video.
    Complete { video_id: String },
}

/// What went wrong, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// Connection reset or refused, timeout, 5xx, 429, rate limits: back off, ask the status,
    /// continue.
    #[error("{0}")]
    Transient(String),
    /// 404/410: the session expired or is unknown; only a new session helps.
    #[error("the upload session is gone (HTTP {0})")]
    SessionGone(u16),
    /// 401: the access token was refused.
    #[error("YouTube refused the access token (HTTP 401)")]
    Unauthorized,
    /// 403 `quotaExceeded`: wait for midnight Pacific time.
    #[error("YouTube's daily upload quota is used up (quotaExceeded)")]
    QuotaExceeded,
    /// 400 `uploadLimitExceeded`: the channel's own limit; wait a day.
    #[error("the channel reached YouTube's upload limit (uploadLimitExceeded)")]
    UploadLimit,
    /// Any other refusal: the job fails with Google's reason.
    #[error("YouTube refused the upload: {0}")]
    Rejected(String),
}

/// The protocol client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Resumable {
    client: Client,
    upload_url: Url,
    chunk_timeout: Duration,
}

impl Resumable {
    pub fn new(upload_url: &str, chunk_timeout: Duration) -> anyhow::Result<Resumable> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .build()?;
        Ok(Resumable {
            client,
            upload_url: Url::parse(upload_url)?,
            chunk_timeout,
        })
    }

    /// Opens a session for `total` bytes with the `video` resource; returns the session
    /// address. One `videos.insert` call as far as the quota goes.
    pub async fn open_session(
        &self,
        token: &Secret,
        resource: &serde_json::Value,
        total: u64,
        content_type: &str,
    ) -> Result<String, UploadError> {
        let mut url = self.upload_url.clone();
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("part", "snippet,status");
        let body = serde_json::to_vec(resource).expect("JSON values serialize");
        let response = self
            .client
            .post(url)
            .bearer_auth(token.expose())
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .header("X-Upload-Content-Length", total)
            .header("X-Upload-Content-Type", content_type)
            .timeout(SMALL_REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    UploadError::Transient("YouTube opened no upload session (no Location)".into())
                })?;
            return self.session_address(location);
        }
        Err(refusal(response).await)
    }

    /// Asks how many bytes the session has (`Content-Range: bytes */TOTAL`).
    pub async fn status(
        &self,
        token: &Secret,
        session: &str,
        total: u64,
    ) -> Result<Status, UploadError> {
        let response = self
            .client
            .put(self.session_address(session)?)
            .bearer_auth(token.expose())
            .header(CONTENT_LENGTH, 0)
            .header(CONTENT_RANGE, format!("bytes */{total}"))
            .header("X-GUploader-No-308", "yes")
            .timeout(SMALL_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(transport)?;
        outcome(response, total).await
    }

    /// Sends `path[offset .. offset + len]` (len = `chunk`, or what is left), streamed from disk.
    pub async fn send_chunk(
        &self,
        token: &Secret,
        session: &str,
        path: &Path,
        offset: u64,
        total: u64,
        chunk: u64,
    ) -> Result<Status, UploadError> {
        let len = chunk.min(total.saturating_sub(offset));
        if len == 0 {
            return self.status(token, session, total).await;
        }
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| UploadError::Transient(format!("cannot open the recording: {e}")))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| UploadError::Transient(format!("cannot read the recording: {e}")))?;
        let body = Body::wrap_stream(ReaderStream::with_capacity(file.take(len), READ_BUFFER));
        let response = self
            .client
            .put(self.session_address(session)?)
            .bearer_auth(token.expose())
            .header(CONTENT_LENGTH, len)
            .header(
                CONTENT_RANGE,
                format!("bytes {offset}-{}/{total}", offset + len - 1),
            )
            .header("X-GUploader-No-308", "yes")
            .timeout(self.chunk_timeout)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        outcome(response, total).await
    }

    /// The session address, refused unless it is on the upload endpoint's own origin: the
    /// access token goes with every request to it.
    fn session_address(&self, address: &str) -> Result<String, UploadError> {
        let url = self.upload_url.join(address).map_err(|_| {
            UploadError::Rejected("YouTube answered with an unreadable session address".into())
        })?;
        if url.origin() != self.upload_url.origin() {
            return Err(UploadError::Rejected(format!(
                "YouTube answered with a session on another host ({}); the access token is only \
                 sent to {}",
                url.host_str().unwrap_or("?"),
                self.upload_url.host_str().unwrap_or("?")
            )));
        }
        Ok(url.to_string())
    }
}

/// Sorts the answer to a chunk or status query of a `total`-byte upload.
async fn outcome(response: Response, total: u64) -> Result<Status, UploadError> {
    let status = response.status();
    let overridden = response
        .headers()
        .get("X-Http-Status-Code-Override")
        .and_then(|v| v.to_str().ok())
        == Some("308");
    if status.as_u16() == 308 || (status.is_success() && overridden) {
        return incomplete(response.headers(), total).map(|next| Status::Incomplete { next });
    }
    if status == StatusCode::OK || status == StatusCode::CREATED {
        #[derive(Deserialize)]
        struct Video {
            id: Option<String>,
        }
        let body = response.bytes().await.map_err(transport)?;
        return match serde_json::from_slice::<Video>(&body) {
            Ok(Video { id: Some(id) }) if !id.is_empty() => Ok(Status::Complete { video_id: id }),
            _ => Err(UploadError::Transient(
                "YouTube finished the upload but sent no video id".into(),
            )),
        };
    }
    Err(refusal(response).await)
}

/// `Range: bytes=0-N` → N + 1; no header → 0. A range that cannot be a file's (N + 1 beyond
/// what a u64 holds) is as unreadable as garbage. One beyond the `total` bytes of the upload
/// (N ≥ total) would make the worker seek past the file's end and report more than 100 %: it
/// is refused as a transient error (reported; the worker asks again, a bounded number of
/// times) instead of being believed.
fn incomplete(headers: &HeaderMap, total: u64) -> Result<u64, UploadError> {
    let Some(range) = headers.get(RANGE) else {
        return Ok(0);
    };
    let next = range
        .to_str()
        .ok()
        .and_then(|r| r.strip_prefix("bytes=0-"))
        .and_then(|last| last.trim().parse::<u64>().ok())
        .and_then(|last| last.checked_add(1))
        .ok_or_else(|| UploadError::Transient("YouTube sent an unreadable Range header".into()))?;
    if next > total {
        return Err(UploadError::Transient(format!(
            "YouTube claims to have {next} bytes of a {total}-byte file (Range header beyond \
             the file); asking again"
        )));
    }
    Ok(next)
}

/// Sorts an error answer by status and Google's `reason`.
async fn refusal(response: Response) -> UploadError {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let (reason, message) = google_error(&body);
    classify(status.as_u16(), reason.as_deref(), message.as_deref())
}

pub(crate) fn classify(status: u16, reason: Option<&str>, message: Option<&str>) -> UploadError {
    let detail = || match (reason, message) {
        (Some(r), Some(m)) => format!("{r}: {m} (HTTP {status})"),
        (Some(r), None) => format!("{r} (HTTP {status})"),
        (None, Some(m)) => format!("{m} (HTTP {status})"),
        (None, None) => format!("HTTP {status}"),
    };
    match (status, reason) {
        (401, _) => UploadError::Unauthorized,
        (404 | 410, _) => UploadError::SessionGone(status),
        (_, Some("quotaExceeded" | "dailyLimitExceeded")) => UploadError::QuotaExceeded,
        (_, Some("uploadLimitExceeded")) => UploadError::UploadLimit,
        (_, Some("rateLimitExceeded" | "userRateLimitExceeded" | "backendError")) => {
            UploadError::Transient(format!("YouTube asks to slow down: {}", detail()))
        }
        (408 | 429 | 500..=599, _) => {
            UploadError::Transient(format!("YouTube is unavailable: {}", detail()))
        }
        (400..=499, _) => UploadError::Rejected(detail()),
        _ => UploadError::Transient(format!("unexpected answer from YouTube: {}", detail())),
    }
}

/// `{"error": {"message": …, "errors": [{"reason": …}]}}` → (reason, message).
fn google_error(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: Option<String>,
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        reason: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => {
            let reason = e.error.errors.into_iter().find_map(|i| i.reason);
            let message = e.error.message.map(|m| m.chars().take(300).collect());
            (reason, message)
        }
        Err(_) => (None, None),
    }
}

/// A request that got no answer: always worth another try. The address is left out (it names
/// the session).
fn transport(e: reqwest::Error) -> UploadError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    UploadError::Transient(text)
}

/// `X-Upload-Content-Type` by file extension.
pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("ts") => "video/mp2t",
        Some("mp4" | "m4v") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        Some("flv") => "video/x-flv",
        Some("webm") => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_to_do() {
        assert_eq!(classify(401, None, None), UploadError::Unauthorized);
        assert_eq!(classify(404, None, None), UploadError::SessionGone(404));
        assert_eq!(classify(410, None, None), UploadError::SessionGone(410));
        assert_eq!(
            classify(
                403,
                Some("quotaExceeded"),
                Some("The request cannot be completed")
            ),
            UploadError::QuotaExceeded
        );
        assert_eq!(
            classify(400, Some("uploadLimitExceeded"), None),
            UploadError::UploadLimit
        );
        for (status, reason) in [
            (500, None),
            (503, None),
            (429, None),
            (403, Some("rateLimitExceeded")),
            (403, Some("userRateLimitExceeded")),
        ] {
            assert!(
                matches!(classify(status, reason, None), UploadError::Transient(_)),
                "{status} {reason:?}"
            );
        }
        assert_eq!(
            classify(
                400,
                Some("invalidTitle"),
                Some("The video title is invalid")
            ),
            UploadError::Rejected("invalidTitle: The video title is invalid (HTTP 400)".into())
        );
        assert!(matches!(
            classify(403, Some("forbiddenPrivacySetting"), None),
            UploadError::Rejected(_)
        ));
    }

    #[test]
    fn google_errors_are_read() {
        let body = br#"{"error":{"code":403,"message":"quota","errors":[{"domain":"youtube.quota","reason":"quotaExceeded","message":"x"}]}}"#;
        assert_eq!(
            google_error(body),
            (Some("quotaExceeded".into()), Some("quota".into()))
        );
        assert_eq!(google_error(b"<html>"), (None, None));
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(incomplete(&h, 10), Ok(0));
        h.insert(RANGE, "bytes=0-262143".parse().unwrap());
        assert_eq!(incomplete(&h, 1_000_000), Ok(262_144));
        h.insert(RANGE, "bytes=5-9".parse().unwrap());
        assert!(incomplete(&h, 1_000_000).is_err());
        h.insert(RANGE, "bytes=0-18446744073709551614".parse().unwrap());
        assert_eq!(incomplete(&h, u64::MAX), Ok(u64::MAX));
        h.insert(RANGE, "bytes=0-18446744073709551615".parse().unwrap());
        assert!(matches!(
            incomplete(&h, u64::MAX),
            Err(UploadError::Transient(_))
        ));
    }

    #[test]
    fn a_range_beyond_the_file_is_not_believed() {
        let mut h = HeaderMap::new();
        // The whole file of 1000 bytes: bytes 0-999.
        h.insert(RANGE, "bytes=0-999".parse().unwrap());
        assert_eq!(incomplete(&h, 1000), Ok(1000));
        for beyond in [
            "bytes=0-1000",
            "bytes=0-5000000000",
            "bytes=0-18446744073709551614",
        ] {
            h.insert(RANGE, beyond.parse().unwrap());
            match incomplete(&h, 1000) {
                Err(UploadError::Transient(reason)) => {
                    assert!(reason.contains("1000-byte file"), "{reason}")
                }
                other => panic!("{beyond}: {other:?}"),
            }
        }
    }

    #[test]
    fn session_addresses_stay_on_the_upload_host() {
        let r = Resumable::new(
            "https://www.googleapis.com/upload/youtube/v3/videos",
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(r
            .session_address("https://www.googleapis.com/upload/youtube/v3/videos?upload_id=x")
            .is_ok());
        assert!(matches!(
            r.session_address("https://evil.example/upload?upload_id=x"),
            Err(UploadError::Rejected(_))
        ));
        assert!(matches!(
            r.session_address("http://www.googleapis.com/upload"),
            Err(UploadError::Rejected(_))
        ));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/b.TS")), "video/mp2t");
        assert_eq!(content_type(Path::new("a/b.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("a/b")), "application/octet-stream");
    }
}
