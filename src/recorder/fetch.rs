//! HTTP for recording: resolving a source to the media playlist of the chosen rendition (Twitch
//! through the playback path, other HLS sources directly), fetching playlists (bounded retries,
//! exponential backoff and jitter), and opening segment downloads for the look-ahead.

use std::sync::Arc;
use std::time::Duration;

use recbot_commands::{ChzzkId, Login, Quality};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::playlist::{self, ByteRange, MediaPlaylist, Parsed, PlaylistError, MAX_PLAYLIST_BYTES};
use super::source_guard::{Refusal, SourceGuard};
use super::{variant, withheld};
use crate::backoff::exponential;
use crate::chzzk::api::ChzzkApi;
use crate::chzzk::token::PlaylistToken;
use crate::rendition::{Codec, Withheld};
use crate::twitch::playback::{Master, Playback, PlaybackError};

/// Tries per init segment, and per segment once the stream has ended (while it is live, a
/// segment is tried for as long as the playlist lists it), before it is reported as a gap.
pub(crate) const SEGMENT_ATTEMPTS: u32 = 4;
/// Tries per playlist request before the source is resolved again.
pub(crate) const PLAYLIST_ATTEMPTS: u32 = 4;
/// Tries to resolve a source (token + master playlist) before giving up for now.
pub(crate) const RESOLVE_ATTEMPTS: u32 = 4;

/// First and longest wait between two tries of one request.
pub(super) const RETRY_BASE: Duration = Duration::from_millis(250);
pub(super) const RETRY_CAP: Duration = Duration::from_secs(4);

/// Where a recording reads from: a Twitch login (its master playlist from the playback API),
/// an HLS address (master or media playlist), or a Chzzk channel (its master playlist from
/// `live-detail`, signed with an expiring `hdnts` token). [`StreamSource::resolve`] turns it
/// into the media playlist to poll. (Not `core::Origin`, which is who sent a command.)
#[derive(Debug, Clone)]
pub(crate) enum StreamSource {
    Twitch { playback: Playback, login: Login },
    Hls { url: Url },
    Chzzk { api: ChzzkApi, id: ChzzkId },
}

/// The media playlist to poll, and the rendition's name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaSource {
    pub url: Url,
    pub quality: String,
    /// The Twitch stream id the master playlist names (`BROADCAST-ID`), when it names one.
    pub broadcast_id: Option<String>,
    /// The Twitch viewer login it was asked as (`None`: logged out, or not Twitch).
    pub viewer: Option<String>,
    /// The chosen rendition as the master playlist describes it (nothing for a media
    /// playlist given directly).
    pub codec: Option<Codec>,
    pub resolution: Option<(u32, u32)>,
    pub fps: Option<u32>,
    /// Better renditions on air that are not recorded (withheld by Twitch, or in a codec
    /// `[recording] codecs` excludes), best first.
    pub withheld: Vec<Withheld>,
    /// Only audio is recorded although video was asked for: no video rendition was offered
    /// (or allowed).
    pub audio_only: bool,
    /// When the address's token must be renewed by resolving again (Chzzk's `hdnts`/`hdntl`
    /// expiry, less a margin); `None`: no known expiry.
    pub refresh_at: Option<chrono::DateTime<chrono::Utc>>,
}

// A short-lived answer, moved once: boxing the live case would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Resolved {
    /// Live, with the media playlist itself when the address given was one (already
    /// fetched and parsed: a caller that only looks at it need not fetch it again).
    Live(MediaSource, Option<Box<MediaPlaylist>>),
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
    /// The source guard refused the address (see `source_guard`): never retried; the text is
    /// the reason.
    #[error("{0}")]
    Disallowed(String),
}

impl FetchError {
    pub(crate) fn transient(&self) -> bool {
        match self {
            FetchError::Transport(_) => true,
            FetchError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            FetchError::Playlist(PlaylistError::Encrypted(_)) => false,
            FetchError::Playlist(_) => true,
            _ => false,
        }
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    // The resolver and the redirect policy of a guarded client say why they refused.
    if let Some(refusal) = Refusal::find(&e) {
        return FetchError::Disallowed(refusal.0.clone());
    }
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

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("recbot/", env!("CARGO_PKG_VERSION")))
}

/// An HTTP client tuned for recording: connection reuse, no overall timeout (segments may be
/// big on slow links) but connect and read timeouts. Unguarded: for Twitch's own endpoints.
pub fn client() -> reqwest::Client {
    builder().build().expect("static client configuration")
}

/// The client recording reads playlists and segments with, and (for `add hls` sources) the
/// [`SourceGuard`] on where it may connect: every request's URL is checked before it is sent,
/// every redirect hop by the redirect policy and every resolved name by the resolver.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    guard: Option<Arc<SourceGuard>>,
}

impl Http {
    /// For Twitch: its endpoints come from the config and its CDN is not guarded.
    pub fn twitch(client: reqwest::Client) -> Http {
        Http {
            client,
            guard: None,
        }
    }

    /// For `add hls` sources. Proxies from the environment are not used: the guard must see
    /// the address it connects to.
    pub fn guarded(guard: SourceGuard) -> Http {
        let guard = Arc::new(guard);
        let client = builder()
            .no_proxy()
            .redirect(guard.redirect_policy())
            .dns_resolver(guard.resolver())
            .build()
            .expect("static client configuration");
        Http {
            client,
            guard: Some(guard),
        }
    }

    /// A GET of `url`, once the guard (if any) allowed it.
    fn get(&self, url: &Url) -> Result<reqwest::RequestBuilder, FetchError> {
        if let Some(guard) = &self.guard {
            guard
                .check_url(url)
                .map_err(|Refusal(why)| FetchError::Disallowed(why))?;
        }
        Ok(self.client.get(url.clone()))
    }
}

impl StreamSource {
    /// Resolves to the media playlist of the rendition for `quality`, retrying transient
    /// trouble a few times.
    pub async fn resolve(
        &self,
        http: &Http,
        quality: Quality,
        codecs: &[Codec],
        cancel: &CancellationToken,
    ) -> Result<Resolved, FetchError> {
        let mut attempt = 0;
        loop {
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(FetchError::Cancelled),
                r = self.resolve_once(http, quality, codecs, cancel) => r,
            };
            match result {
                Err(e) if e.transient() && attempt + 1 < RESOLVE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "resolving the stream failed; retrying");
                    sleep_or_cancel(exponential(attempt, RETRY_BASE, RETRY_CAP), cancel).await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The Twitch viewer login playback tokens are asked as now (`None`: logged out).
    pub fn viewer(&self) -> Option<String> {
        match self {
            StreamSource::Twitch { playback, .. } => playback.viewer_name(),
            StreamSource::Hls { .. } | StreamSource::Chzzk { .. } => None,
        }
    }

    async fn resolve_once(
        &self,
        http: &Http,
        quality: Quality,
        codecs: &[Codec],
        cancel: &CancellationToken,
    ) -> Result<Resolved, FetchError> {
        let (base, text) = match self {
            StreamSource::Twitch { playback, login } => match playback.master_playlist(login).await
            {
                Ok(Master::Live { url, playlist }) => (url, playlist.into_bytes()),
                Ok(Master::Offline) => return Ok(Resolved::Offline),
                Err(e) if e.is_transient() => return Err(playback_transient(&e)),
                Err(e) => return Err(FetchError::Refused(e.to_string())),
            },
            StreamSource::Hls { url } => match get(http, url, None, cancel).await {
                Ok(body) => (url.clone(), body.to_vec()),
                Err(FetchError::Status(404 | 410)) => return Ok(Resolved::Offline),
                Err(e) => return Err(e),
            },
            StreamSource::Chzzk { api, id } => {
                let url = match chzzk_master(api, id).await? {
                    Some(url) => url,
                    None => return Ok(Resolved::Offline),
                };
                match get(http, &url, None, cancel).await {
                    Ok(body) => (url, body.to_vec()),
                    Err(FetchError::Status(404 | 410)) => return Ok(Resolved::Offline),
                    Err(e) => return Err(e),
                }
            }
        };
        let token_of = |url: &Url| {
            matches!(self, StreamSource::Chzzk { .. })
                .then(|| refresh_at(base.as_str(), url.as_str()))
                .flatten()
        };
        let broadcast_id = playlist::broadcast_id(&text);
        let viewer = self.viewer();
        match playlist::parse(&text)? {
            Parsed::Media(playlist) => Ok(Resolved::Live(
                MediaSource {
                    refresh_at: token_of(&base),
                    url: base,
                    quality: "source".into(),
                    broadcast_id,
                    viewer,
                    codec: None,
                    resolution: None,
                    fps: None,
                    withheld: Vec::new(),
                    audio_only: false,
                },
                Some(Box::new(playlist)),
            )),
            Parsed::Master(master) => {
                if let Some(method) = playlist::master_encryption(&master) {
                    return Err(PlaylistError::Encrypted(method).into());
                }
                let variants = variant::variants(&master);
                let chosen = variant::select(&variants, quality, codecs).ok_or_else(|| {
                    FetchError::Refused(
                        "the master playlist lists no rendition in the codecs of [recording] \
                         codecs"
                            .into(),
                    )
                })?;
                let url = base.join(&chosen.uri).map_err(|_| {
                    FetchError::Refused(format!("bad rendition address `{}`", chosen.uri))
                })?;
                Ok(Resolved::Live(
                    MediaSource {
                        refresh_at: token_of(&url),
                        url,
                        quality: chosen.name.clone(),
                        broadcast_id,
                        viewer,
                        codec: chosen.codec,
                        resolution: chosen.width.zip(chosen.height),
                        fps: chosen.fps.filter(|_| !chosen.audio_only),
                        withheld: withheld::better_than(&master, &variants, chosen, codecs),
                        audio_only: chosen.audio_only && quality.as_str() != "audio_only",
                    },
                    None,
                ))
            }
        }
    }
}

/// A Chzzk channel's HLS master from `live-detail` (`None`: not live). An adult-only stream
/// without the login cookies, or one without HLS, is refused with Chzzk's reason.
async fn chzzk_master(api: &ChzzkApi, id: &ChzzkId) -> Result<Option<Url>, FetchError> {
    let (detail, playback) = match api.live_detail(id).await {
        Ok(seen) => seen,
        Err(e) if e.is_transient() => return Err(FetchError::Transport(e.to_string())),
        Err(e) => return Err(FetchError::Refused(e.to_string())),
    };
    detail
        .playable(&playback)
        .map_err(|e| FetchError::Refused(e.to_string()))
}

/// When the earliest token of the master's and the rendition's addresses is due for renewal.
fn refresh_at(master: &str, media: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    [master, media]
        .into_iter()
        .filter_map(PlaylistToken::from_url)
        .map(|t| t.refresh_at())
        .min()
}

fn playback_transient(e: &PlaybackError) -> FetchError {
    match e {
        PlaybackError::Status { status, .. } => FetchError::Status(*status),
        other => FetchError::Transport(other.to_string()),
    }
}

/// One GET, whole body (playlists are small: at most [`MAX_PLAYLIST_BYTES`]), given up when
/// `cancel` fires.
pub async fn get(
    http: &Http,
    url: &Url,
    range: Option<ByteRange>,
    cancel: &CancellationToken,
) -> Result<bytes::Bytes, FetchError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(FetchError::Cancelled),
        r = get_capped(http, url, range) => r,
    }
}

async fn get_capped(
    http: &Http,
    url: &Url,
    range: Option<ByteRange>,
) -> Result<bytes::Bytes, FetchError> {
    let request = http.get(url)?.timeout(Duration::from_secs(20));
    let mut response = send(request, range).await?;
    let too_big = || {
        FetchError::Refused(format!(
            "the playlist is larger than {} MiB",
            MAX_PLAYLIST_BYTES / (1024 * 1024)
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PLAYLIST_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_PLAYLIST_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Sends one GET for a resource (segment or init segment) and checks the answer (status,
/// byte range honoured); the body is for the caller to read with [`next_chunk`].
pub(crate) async fn open_resource(
    http: &Http,
    url: &Url,
    range: Option<ByteRange>,
) -> Result<reqwest::Response, FetchError> {
    send(http.get(url)?, range).await
}

/// Sends `request` (for `range` only, when given) and checks the answer: a success status,
/// and a byte range honoured (`206`), since a whole resource in place of its range would be
/// written as if it were the range.
async fn send(
    mut request: reqwest::RequestBuilder,
    range: Option<ByteRange>,
) -> Result<reqwest::Response, FetchError> {
    if let Some(r) = range {
        request = request.header(reqwest::header::RANGE, r.header());
    }
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if range.is_some() && status != StatusCode::PARTIAL_CONTENT {
        return Err(FetchError::Refused(
            "the server ignored the byte range".into(),
        ));
    }
    Ok(response)
}

/// The next piece of a body opened with [`open_resource`] (`None` at its end).
pub(crate) async fn next_chunk(
    response: &mut reqwest::Response,
) -> Result<Option<bytes::Bytes>, FetchError> {
    response.chunk().await.map_err(transport)
}

pub(crate) async fn sleep_or_cancel(
    d: Duration,
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.cancelled() => Err(FetchError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The HLS client, allowed to read the local test server.
    fn local() -> Http {
        Http::guarded(SourceGuard::new(true, vec![]))
    }

    /// Serves every request with `body` (HTTP/1.1, keep-alive off).
    async fn serve(body: bytes::Bytes) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                });
            }
        });
        Url::parse(&format!("http://{addr}/seg.ts")).unwrap()
    }

    #[tokio::test]
    async fn playlists_larger_than_the_cap_are_refused() {
        let url = serve(bytes::Bytes::from(vec![b'#'; MAX_PLAYLIST_BYTES + 1])).await;
        let err = get(&local(), &url, None, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Refused(_)), "{err}");
        let url = serve(bytes::Bytes::from_static(b"#EXTM3U\n")).await;
        let body = get(&local(), &url, None, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(&body[..], b"#EXTM3U\n");
    }

    #[tokio::test]
    async fn a_byte_range_answered_with_the_whole_resource_is_refused() {
        // The test server answers every request `200` with the whole body.
        let url = serve(bytes::Bytes::from_static(b"0123456789")).await;
        let range = ByteRange {
            offset: 2,
            length: 4,
        };
        let err = open_resource(&local(), &url, Some(range))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Refused(_)), "{err}");
        let mut whole = open_resource(&local(), &url, None).await.unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = next_chunk(&mut whole).await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 0..10 {
            let d = exponential(attempt, base, cap);
            let full = base.saturating_mul(1 << attempt).min(cap);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
