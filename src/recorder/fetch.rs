//! HTTP for recording: resolving a source to the media playlist of the chosen rendition (Twitch
//! through the playback path, other HLS sources directly), fetching playlists, and streaming
//! segments into the part file — each with bounded retries, exponential backoff and jitter.

use std::time::Duration;

use recbot_commands::{Login, Quality};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::playlist::{self, ByteRange, Parsed};
use super::variant;
use super::writer::PartFile;
use crate::twitch::playback::{Master, Playback, PlaybackError};

/// Tries per segment (first try + retries) before it is reported as a gap.
pub const SEGMENT_ATTEMPTS: u32 = 4;
/// Tries per playlist request before the source is resolved again.
pub const PLAYLIST_ATTEMPTS: u32 = 4;
/// Tries to resolve a source (token + master playlist) before giving up for now.
pub const RESOLVE_ATTEMPTS: u32 = 4;

/// `base × 2^attempt`, at most `cap`, times a random factor in [0.5, 1) so that many
/// recordings failing together do not retry in lockstep.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    exp.mul_f64(rand::random_range(0.5..1.0))
}

const RETRY_BASE: Duration = Duration::from_millis(250);
const RETRY_CAP: Duration = Duration::from_secs(4);

/// Where recording reads from.
#[derive(Debug, Clone)]
pub enum Origin {
    Twitch { playback: Playback, login: Login },
    Hls { url: Url },
}

/// The media playlist to poll, and the rendition's name.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSource {
    pub url: Url,
    pub quality: String,
}

#[derive(Debug)]
pub enum Resolved {
    Live(MediaSource),
    Offline,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Playlist(#[from] playlist::PlaylistError),
    #[error("{0}")]
    Disk(#[from] std::io::Error),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Refused(String),
}

impl FetchError {
    fn transient(&self) -> bool {
        match self {
            FetchError::Transport(_) => true,
            FetchError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            FetchError::Playlist(_) => true,
            _ => false,
        }
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    // reqwest's Display of a timeout or reset names the URL, which may carry a signed token.
    FetchError::Transport(
        if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else if e.is_body() || e.is_decode() {
            "connection broken while reading"
        } else {
            "request failed"
        }
        .to_string(),
    )
}

/// An HTTP client tuned for recording: connection reuse, no overall timeout (segments may be
/// big on slow links) but connect and read timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("recbot/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static client configuration")
}

impl Origin {
    /// Resolves to the media playlist of the rendition for `quality`, retrying transient
    /// trouble a few times.
    pub async fn resolve(
        &self,
        http: &reqwest::Client,
        quality: Quality,
        cancel: &CancellationToken,
    ) -> Result<Resolved, FetchError> {
        let mut attempt = 0;
        loop {
            let result = self.resolve_once(http, quality).await;
            match result {
                Err(e) if e.transient() && attempt + 1 < RESOLVE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "resolving the stream failed; retrying");
                    sleep_or_cancel(backoff(attempt, RETRY_BASE, RETRY_CAP), cancel).await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn resolve_once(
        &self,
        http: &reqwest::Client,
        quality: Quality,
    ) -> Result<Resolved, FetchError> {
        let (base, text) = match self {
            Origin::Twitch { playback, login } => match playback.master_playlist(login).await {
                Ok(Master::Live { url, playlist }) => (url, playlist.into_bytes()),
                Ok(Master::Offline) => return Ok(Resolved::Offline),
                Err(e) if e.is_transient() => return Err(playback_transient(&e)),
                Err(e) => return Err(FetchError::Refused(e.to_string())),
            },
            Origin::Hls { url } => match get(http, url, None).await {
                Ok(body) => (url.clone(), body.to_vec()),
                Err(FetchError::Status(404 | 410)) => return Ok(Resolved::Offline),
                Err(e) => return Err(e),
            },
        };
        match playlist::parse(&text)? {
            Parsed::Media(_) => Ok(Resolved::Live(MediaSource {
                url: base,
                quality: "source".into(),
            })),
            Parsed::Master(master) => {
                let variants = variant::variants(&master);
                let chosen = variant::select(&variants, quality).ok_or_else(|| {
                    FetchError::Refused("the master playlist lists no rendition".into())
                })?;
                let url = base.join(&chosen.uri).map_err(|_| {
                    FetchError::Refused(format!("bad rendition address `{}`", chosen.uri))
                })?;
                Ok(Resolved::Live(MediaSource {
                    url,
                    quality: chosen.name.clone(),
                }))
            }
        }
    }
}

fn playback_transient(e: &PlaybackError) -> FetchError {
    match e {
        PlaybackError::Status { status, .. } => FetchError::Status(*status),
        other => FetchError::Transport(other.to_string()),
    }
}

/// One GET, whole body (playlists are small).
pub async fn get(
    http: &reqwest::Client,
    url: &Url,
    range: Option<ByteRange>,
) -> Result<bytes::Bytes, FetchError> {
    let mut request = http.get(url.clone()).timeout(Duration::from_secs(20));
    if let Some(r) = range {
        request = request.header(reqwest::header::RANGE, r.header());
    }
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    response.bytes().await.map_err(transport)
}

/// Streams one resource (segment or init segment) onto the end of `part`, retrying from
/// scratch (after cutting the file back) when a try fails. Returns the bytes added.
pub async fn append_resource(
    http: &reqwest::Client,
    url: &Url,
    range: Option<ByteRange>,
    part: &mut PartFile,
    cancel: &CancellationToken,
) -> Result<u64, FetchError> {
    let mut attempt = 0;
    loop {
        let mark = part.len();
        let result = tokio::select! {
            r = stream_once(http, url, range, part) => r,
            _ = cancel.cancelled() => Err(FetchError::Cancelled),
        };
        match result {
            Ok(n) => return Ok(n),
            Err(e) => {
                part.truncate(mark).await?;
                let retry = matches!(e, FetchError::Transport(_))
                    || matches!(e, FetchError::Status(s) if s >= 500 || s == 429 || s == 408);
                if !retry || attempt + 1 >= SEGMENT_ATTEMPTS {
                    return Err(e);
                }
                tracing::debug!(error = %e, attempt, "segment download failed; retrying");
                sleep_or_cancel(backoff(attempt, RETRY_BASE, RETRY_CAP), cancel).await?;
                attempt += 1;
            }
        }
    }
}

async fn stream_once(
    http: &reqwest::Client,
    url: &Url,
    range: Option<ByteRange>,
    part: &mut PartFile,
) -> Result<u64, FetchError> {
    let mut request = http.get(url.clone());
    if let Some(r) = range {
        request = request.header(reqwest::header::RANGE, r.header());
    }
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if range.is_some() && status != StatusCode::PARTIAL_CONTENT {
        return Err(FetchError::Refused(
            "the server ignored the byte range".into(),
        ));
    }
    let expected = response.content_length();
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        written += chunk.len() as u64;
        part.append(chunk).await?;
    }
    if expected.is_some_and(|n| n != written) {
        return Err(FetchError::Transport("body shorter than announced".into()));
    }
    Ok(written)
}

pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> Result<(), FetchError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.cancelled() => Err(FetchError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 0..10 {
            let d = backoff(attempt, base, cap);
            let full = base.saturating_mul(1 << attempt).min(cap);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
