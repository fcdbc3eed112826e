//! `[youtube]`: OAuth client, endpoints, video settings, the resumable upload's chunks and
//! retries, and what happens to a file after its upload.

use std::path::PathBuf;

use serde::Deserialize;

use super::lenient::lenient_opt_string;
use super::{check_pending_auth, check_urls, fail};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    Private,
    Unlisted,
    Public,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Private => "private",
            Privacy::Unlisted => "unlisted",
            Privacy::Public => "public",
        }
    }
}

/// What happens to a recording once YouTube confirmed its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterUpload {
    Keep,
    Move,
    Delete,
}

impl AfterUpload {
    pub fn as_str(self) -> &'static str {
        match self {
            AfterUpload::Keep => "keep",
            AfterUpload::Move => "move",
            AfterUpload::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Youtube {
    pub enabled: bool,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// A loopback address registered with the Google "Desktop app" client. The browser fails
    /// to load it after consent; the operator pastes that address back with `code youtube`.
    pub redirect_uri: String,
    pub auth_url: String,
    pub token_url: String,
    pub upload_url: String,
    /// YouTube Data API base (`videos.list` before `after_upload = "delete"`).
    pub api_url: String,
    pub privacy: Privacy,
    pub title_template: String,
    /// Uploads per Pacific day before recbot waits for the reset (YouTube's own bucket is 100).
    pub daily_upload_limit: u32,
    /// `keep` the file, `move` it (and its sidecar) to `uploaded_dir`, or `delete` both, once
    /// YouTube confirmed the upload.
    pub after_upload: AfterUpload,
    /// Default: `<data_dir>/uploaded`.
    pub uploaded_dir: Option<PathBuf>,
    /// Bytes per upload request, in MiB (a multiple of Google's 256 KiB unit).
    pub chunk_size_mib: u32,
    /// Longest one chunk request may take before it counts as a timeout.
    pub chunk_timeout_secs: u64,
    /// How long to wait after YouTube's per-channel `uploadLimitExceeded`.
    pub upload_limit_wait_hours: u64,
    /// Network errors, timeouts and 5xx answers in a row before the job waits
    /// `retry_wait_minutes`.
    pub retry_limit: u32,
    /// First backoff after an error; it doubles each time (with random jitter).
    pub retry_initial_ms: u64,
    /// Longest backoff between two tries.
    pub retry_max_secs: u64,
    /// How long a job waits after `retry_limit` errors in a row.
    pub retry_wait_minutes: u64,
    /// Such waits before the job is marked failed (the file is kept; `retry` re-queues it).
    pub max_attempts: u32,
    /// How long a started `auth youtube` waits for its `code youtube`.
    pub pending_auth_minutes: f64,
    /// With `after_upload = "delete"`: first wait before asking YouTube whether the video is
    /// processed; it doubles (with jitter) up to an hour between checks.
    pub processing_check_secs: f64,
    /// With `after_upload = "delete"`: a video still not processed after this long keeps its
    /// files (and says so).
    pub processing_timeout_hours: f64,
}

impl Default for Youtube {
    fn default() -> Self {
        Youtube {
            enabled: false,
            client_id: None,
            client_secret: None,
            redirect_uri: "http://127.0.0.1:8085/".into(),
            auth_url: "https://accounts.google.com/o/oauth2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            upload_url: "https://www.googleapis.com/upload/youtube/v3/videos".into(),
            api_url: "https://www.googleapis.com/youtube/v3".into(),
            privacy: Privacy::Private,
            title_template: "{display_name} {started:%Y-%m-%d %H:%M} {title}".into(),
            daily_upload_limit: 100,
            after_upload: AfterUpload::Keep,
            uploaded_dir: None,
            chunk_size_mib: 16,
            chunk_timeout_secs: 600,
            upload_limit_wait_hours: 24,
            retry_limit: 10,
            retry_initial_ms: 1000,
            retry_max_secs: 60,
            retry_wait_minutes: 30,
            max_attempts: 10,
            pending_auth_minutes: 10.0,
            processing_check_secs: 60.0,
            processing_timeout_hours: 24.0,
        }
    }
}

impl Youtube {
    pub fn chunk_bytes(&self) -> u64 {
        u64::from(self.chunk_size_mib) * 1024 * 1024
    }
}

impl Youtube {
    /// The `[youtube]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.redirect_uri.contains("urn:ietf:wg:oauth:2.0:oob") {
            return fail(
                "youtube.redirect_uri",
                "Google blocked the out-of-band (OOB) flow in 2023; use a loopback address \
                 such as http://127.0.0.1:8085/",
            );
        }
        check_urls([
            ("youtube.redirect_uri", &self.redirect_uri),
            ("youtube.auth_url", &self.auth_url),
            ("youtube.token_url", &self.token_url),
            ("youtube.upload_url", &self.upload_url),
            ("youtube.api_url", &self.api_url),
        ])?;
        if self.enabled && (self.client_id.is_none() || self.client_secret.is_none()) {
            return fail(
                "youtube.enabled",
                "uploads need [youtube] client_id and client_secret (a Google \"Desktop app\" \
                 OAuth client)",
            );
        }
        if self.daily_upload_limit == 0 {
            return fail("youtube.daily_upload_limit", "must be at least 1");
        }
        self.validate_processing()?;
        if self.title_template.trim().is_empty() {
            return fail("youtube.title_template", "must not be empty");
        }
        if let Err(e) = crate::title_template::check_template(&self.title_template) {
            return Err(("youtube.title_template".into(), e));
        }
        self.validate_transfer()?;
        check_pending_auth("youtube.pending_auth_minutes", self.pending_auth_minutes)
    }

    /// The checks for `after_upload = "delete"`'s wait for processing.
    fn validate_processing(&self) -> Result<(), (String, String)> {
        if !(self.processing_check_secs.is_finite()
            && (0.01..=3600.0).contains(&self.processing_check_secs))
        {
            return fail(
                "youtube.processing_check_secs",
                "must be between 0.01 and 3600 seconds",
            );
        }
        if !(self.processing_timeout_hours.is_finite()
            && (0.0..=720.0).contains(&self.processing_timeout_hours)
            && self.processing_timeout_hours > 0.0)
        {
            return fail(
                "youtube.processing_timeout_hours",
                "must be more than 0 and at most 720 hours",
            );
        }
        Ok(())
    }

    /// The checks of the upload's chunks, waits and bounded retries.
    fn validate_transfer(&self) -> Result<(), (String, String)> {
        if !(1..=1024).contains(&self.chunk_size_mib) {
            return fail(
                "youtube.chunk_size_mib",
                "must be between 1 and 1024 (MiB; Google wants multiples of 256 KiB)",
            );
        }
        for (key, value) in [
            ("youtube.chunk_timeout_secs", self.chunk_timeout_secs),
            (
                "youtube.upload_limit_wait_hours",
                self.upload_limit_wait_hours,
            ),
            ("youtube.retry_initial_ms", self.retry_initial_ms),
            ("youtube.retry_max_secs", self.retry_max_secs),
            ("youtube.retry_wait_minutes", self.retry_wait_minutes),
            ("youtube.retry_limit", u64::from(self.retry_limit)),
            ("youtube.max_attempts", u64::from(self.max_attempts)),
        ] {
            if value == 0 {
                return fail(key, "must be at least 1");
            }
        }
        if self.retry_limit > 100 || self.max_attempts > 1000 {
            return fail(
                if self.retry_limit > 100 {
                    "youtube.retry_limit"
                } else {
                    "youtube.max_attempts"
                },
                "retries must stay bounded (retry_limit at most 100, max_attempts at most 1000)",
            );
        }
        Ok(())
    }

    /// The `check-config` text on uploads.
    pub(super) fn summary(&self) -> String {
        if self.enabled {
            format!(
                "on (privacy {}, at most {} per day, {} MiB chunks, then {} the file)",
                self.privacy.as_str(),
                self.daily_upload_limit,
                self.chunk_size_mib,
                self.after_upload.as_str()
            ) + if self.after_upload == AfterUpload::Delete {
                " once YouTube has processed it"
            } else {
                ""
            }
        } else {
            "off".into()
        }
    }
}
