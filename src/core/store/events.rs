//! The event log: every [`Event`] the core handled, in order, with a sequence number. `status`
//! reads the newest ones, the front-ends' delivery pages through it (see [`super::Outbox`]).

use anyhow::Result;
use recbot_commands::Login;
use tracing::error;

use crate::event::{Event, EventKind};

/// A page of the event log (see [`EventLog::events_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    /// The readable events of the page with their ids, oldest first.
    pub events: Vec<(i64, Event)>,
    /// The last id of the page, readable or not; `None` when there was nothing after.
    pub scanned_to: Option<i64>,
}

/// The stored event log. A row that cannot be read back (written by an older or newer recbot,
/// or damaged) is logged and left out by every reader, so that it holds up neither `status` nor
/// the front-ends' delivery, which go on after it.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Appends to the event log; returns the event's sequence number (increasing). An event
    /// whose JSON would not read back (serde_json writes NaN and ±inf as `null`; see
    /// [`clamp_non_finite`]) is refused: one unreadable row would stop every reader at it.
    async fn append_event(&self, event: &Event) -> Result<i64>;

    /// The newest `limit` events (optionally of one login), oldest first.
    async fn recent_events(&self, name: Option<&Login>, limit: i64) -> Result<Vec<Event>>;

    /// Up to `limit` rows of the event log after `after`, oldest first: their readable events
    /// with their ids, and the last id looked at.
    async fn events_after(&self, after: i64, limit: i64) -> Result<LogPage>;

    /// The id of the newest event of `kind` (e.g. this run's `ServiceStarted`).
    async fn last_event_id(&self, kind: &str) -> Result<Option<i64>>;

    /// The id of the newest event of any kind (0 for an empty log): where a live event
    /// stream starts.
    async fn newest_event_id(&self) -> Result<i64>;

    /// The newest event of `kind` (an `EventKind` name), if any: e.g. the last chat disconnect
    /// for `status`, also across restarts.
    async fn last_event_of_kind(&self, kind: &str) -> Result<Option<Event>>;
}

/// The event as it goes into the log: its JSON, checked to read back (see
/// [`EventLog::append_event`]).
pub(crate) fn log_payload(event: &Event) -> Result<String> {
    use anyhow::Context;
    let payload = serde_json::to_string(event)?;
    serde_json::from_str::<Event>(&payload).with_context(|| {
        format!(
            "the {} event would not read back from the log",
            event.kind_name()
        )
    })?;
    Ok(payload)
}

/// The id and event of an event-log row, from its `id` and `payload` columns as read. A row
/// that cannot be read (written by an older or newer recbot, or damaged) is logged and left
/// out, so that it holds up neither `status` nor the front-ends' delivery, which go on after it.
pub(crate) fn readable_event(
    id: Result<i64, sqlx::Error>,
    payload: Result<String, sqlx::Error>,
) -> Option<(i64, Event)> {
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            error!(error = %e, "unreadable row in the event log; skipped");
            return None;
        }
    };
    let parsed = payload
        .map_err(anyhow::Error::from)
        .and_then(|p| serde_json::from_str(&p).map_err(anyhow::Error::from));
    match parsed {
        Ok(event) => Some((id, event)),
        Err(e) => {
            error!(id, error = %e, "unreadable event in the event log; skipped");
            None
        }
    }
}

/// Replaces the floats JSON cannot hold (NaN, ±inf) in `event` by 0 (an unknown latency by
/// none), so that it can be stored and read back; `true` when something was replaced.
pub fn clamp_non_finite(event: &mut Event) -> bool {
    fn fix(value: &mut f64) -> bool {
        if value.is_finite() {
            return false;
        }
        *value = 0.0;
        true
    }
    match &mut event.kind {
        EventKind::LiveDetected { latency_secs, .. } => {
            let bad = latency_secs.is_some_and(|l| !l.is_finite());
            if bad {
                *latency_secs = None;
            }
            bad
        }
        EventKind::RecordingGap { seconds, .. }
        | EventKind::GapFilled { seconds, .. }
        | EventKind::VodFillFailed { seconds, .. } => fix(seconds),
        EventKind::AdBreak { duration_secs }
        | EventKind::RecordingPartFinished { duration_secs, .. }
        | EventKind::RecordingFinished { duration_secs, .. } => fix(duration_secs),
        EventKind::DiskLow {
            used_percent,
            free_gb,
            ..
        } => fix(used_percent) | fix(free_gb),
        EventKind::ChatReconnected { offline_secs } => fix(offline_secs),
        EventKind::UploadProgress { bytes_per_sec, .. } => fix(bytes_per_sec),
        EventKind::PostProgress {
            done_secs,
            total_secs,
            speed,
            ..
        } => {
            let bad_speed = speed.is_some_and(|s| !s.is_finite());
            if bad_speed {
                *speed = None;
            }
            fix(done_secs) | fix(total_secs) | bad_speed
        }
        EventKind::PostFinished { secs, speed, .. } => fix(secs) | fix(speed),
        _ => false,
    }
}
