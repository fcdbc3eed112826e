//! Upload jobs as the core and the upload worker both see them: a queue row ([`UploadJob`],
//! its [`JobState`], [`WaitReason`] and [`Cleanup`]), and the changes the worker reports
//! ([`JobUpdate`], [`CleanupOutcome`]) for the core to persist, then announce.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use recbot_commands::Login;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its turn.
    Queued,
    /// Being sent (or interrupted by a restart; picked up again at start-up).
    Uploading,
    /// Waiting until `next_attempt_at` (quota, upload limit, errors in a row).
    Deferred,
    /// Waiting for a human to authorize YouTube again.
    Paused,
    Finished,
    /// Given up; the file is kept and `retry` re-queues it.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Uploading => "uploading",
            JobState::Deferred => "deferred",
            JobState::Paused => "paused",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<JobState> {
        Ok(match s {
            "queued" => JobState::Queued,
            "uploading" => JobState::Uploading,
            "deferred" => JobState::Deferred,
            "paused" => JobState::Paused,
            "finished" => JobState::Finished,
            "failed" => JobState::Failed,
            other => return Err(anyhow!("unknown upload job state `{other}`")),
        })
    }

    /// Still on its way to YouTube.
    pub fn is_open(self) -> bool {
        !matches!(self, JobState::Finished | JobState::Failed)
    }
}

/// Why a deferred job waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Errors in a row; tried again after `retry_wait_minutes`.
    Retry,
    /// The daily quota is used up (ledger or YouTube's `quotaExceeded`).
    Quota,
    /// YouTube's per-channel `uploadLimitExceeded`.
    UploadLimit,
    /// The part's chat file is being written; the core releases the job when the chat logger
    /// answers, and `next_attempt_at` bounds the wait (`[chat] save_timeout_secs`).
    ChatFile,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Retry => "retry",
            WaitReason::Quota => "quota",
            WaitReason::UploadLimit => "upload_limit",
            WaitReason::ChatFile => "chat_file",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<WaitReason> {
        match s {
            "retry" => Some(WaitReason::Retry),
            "quota" => Some(WaitReason::Quota),
            "upload_limit" => Some(WaitReason::UploadLimit),
            "chat_file" => Some(WaitReason::ChatFile),
            _ => None,
        }
    }

    /// Holds every new upload, not only the job that met it.
    pub fn holds_all(self) -> bool {
        matches!(self, WaitReason::Quota | WaitReason::UploadLimit)
    }
}

/// What remains to do with a finished job's files (`after_upload = "delete"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Deleted once YouTube reports the video processed; asked at `cleanup_at`.
    Waiting,
    /// Deleted.
    Done,
    /// YouTube refused the video (or never finished it): the files stay.
    Kept,
}

impl Cleanup {
    pub fn as_str(self) -> &'static str {
        match self {
            Cleanup::Waiting => "waiting",
            Cleanup::Done => "done",
            Cleanup::Kept => "kept",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Cleanup> {
        match s {
            "waiting" => Some(Cleanup::Waiting),
            "done" => Some(Cleanup::Done),
            "kept" => Some(Cleanup::Kept),
            _ => None,
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadJob {
    pub id: i64,
    pub login: Option<Login>,
    pub session: Option<i64>,
    pub path: PathBuf,
    pub sidecar: Option<PathBuf>,
    pub state: JobState,
    /// The resumable upload session (an address that accepts the bytes); never shown.
    pub session_uri: Option<String>,
    /// Bytes YouTube confirmed having.
    pub confirmed_bytes: u64,
    pub total_bytes: u64,
    /// Waits after errors in a row so far (bounded by `max_attempts`).
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub wait_reason: Option<WaitReason>,
    pub video_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// After the upload: files waiting for YouTube's processing, deleted, or kept.
    pub cleanup: Option<Cleanup>,
    pub cleanup_at: Option<DateTime<Utc>>,
    pub cleanup_until: Option<DateTime<Utc>>,
    pub cleanup_checks: u32,
}

impl UploadJob {
    /// The file name, for messages.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// A change the upload worker reports; the core persists it, then announces it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobUpdate {
    /// Bytes are about to be sent for this job (from `from` on).
    Started {
        job: i64,
        total: u64,
        from: u64,
    },
    /// A new resumable session for `total` bytes was opened (or `None`: the old one is gone).
    Session {
        job: i64,
        uri: Option<String>,
        total: u64,
    },
    /// YouTube confirmed `confirmed` bytes; `announce` carries the rate when worth a notice.
    Progress {
        job: i64,
        confirmed: u64,
        announce: Option<f64>,
    },
    /// The job waits until `until`.
    Deferred {
        job: i64,
        until: DateTime<Utc>,
        reason: WaitReason,
        why: String,
    },
    /// YouTube must be authorized again; the job (and every queued one) waits for that.
    Paused {
        job: i64,
        why: String,
    },
    Finished {
        job: i64,
        video_id: String,
    },
    Failed {
        job: i64,
        why: String,
    },
    /// Where a finished job's files stand (`after_upload = "delete"` waits for YouTube's
    /// processing).
    Cleanup {
        job: i64,
        outcome: CleanupOutcome,
    },
}

/// What the worker learnt about a finished video whose files wait for its processing.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupOutcome {
    /// Not processed yet (or YouTube could not be asked): check again at `at`.
    Later { at: DateTime<Utc>, checks: u32 },
    /// Processed; the files were deleted.
    Deleted,
    /// YouTube refused the video, or never finished it: the files stay (announced).
    Kept { why: String },
}
