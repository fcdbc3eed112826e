//! Whether YouTube has finished with an uploaded video, before `after_upload = "delete"` removes
//! the only local copy: `videos.list?part=status,processingDetails&id=…` (1 quota unit) on
//! `[youtube] api_url`. `status.uploadStatus` is `uploaded` while YouTube processes the file,
//! then `processed`, or `rejected` / `failed` / `deleted` when YouTube refused it (with
//! `rejectionReason` / `failureReason`). Only `processed` lets the files go.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::secret::Secret;

/// One status request is small.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Google's reasons are short; anything longer is cut in messages.
const REASON_MAX: usize = 200;

/// Where YouTube is with a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    /// Processed: the local files may go.
    Processed,
    /// Still being processed (`uploaded`), or not listed yet: ask again later.
    Pending(String),
    /// YouTube refused or lost it (`rejected`, `failed`, `deleted`, processing `failed` or
    /// `terminated`, or no longer listed after having been): the files must stay.
    Refused(String),
}

/// Why the status is unknown for now (asked again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("YouTube refused the access token (HTTP 401)")]
    Unauthorized,
    #[error("{0}")]
    Transient(String),
}

/// The `videos.list` client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VideoStatus {
    client: Client,
    videos_url: Url,
}

impl VideoStatus {
    /// `api_url`: YouTube Data API's base, e.g. `https://www.googleapis.com/youtube/v3`.
    pub fn new(api_url: &str) -> anyhow::Result<VideoStatus> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let base = Url::parse(api_url.trim_end_matches('/'))?;
        let videos_url = Url::parse(&format!("{base}/videos"))?;
        Ok(VideoStatus { client, videos_url })
    }

    /// Asks YouTube where `video_id` is.
    pub async fn check(&self, token: &Secret, video_id: &str) -> Result<Processing, CheckError> {
        let mut url = self.videos_url.clone();
        url.query_pairs_mut()
            .append_pair("part", "status,processingDetails")
            .append_pair("id", video_id);
        let response = self
            .client
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| CheckError::Transient(format!("cannot reach YouTube: {e}")))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(CheckError::Unauthorized);
        }
        if !status.is_success() {
            // 403 quotaExceeded, 5xx, 429: all mean "later"; the files stay meanwhile.
            return Err(CheckError::Transient(format!(
                "YouTube answered HTTP {} to videos.list",
                status.as_u16()
            )));
        }
        let list: VideoList = response
            .json()
            .await
            .map_err(|e| CheckError::Transient(format!("unreadable videos.list answer: {e}")))?;
        Ok(classify(&list))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct VideoList {
    #[serde(default)]
    items: Vec<Video>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Video {
    #[serde(default)]
    status: Option<VideoStatusPart>,
    #[serde(default)]
    processing_details: Option<ProcessingDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoStatusPart {
    #[serde(default)]
    upload_status: Option<String>,
    #[serde(default)]
    rejection_reason: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessingDetails {
    #[serde(default)]
    processing_status: Option<String>,
    #[serde(default)]
    processing_failure_reason: Option<String>,
}

/// Sorts a `videos.list` answer (pure).
pub fn classify(list: &VideoList) -> Processing {
    let Some(video) = list.items.first() else {
        return Processing::Pending("not listed by YouTube (yet)".into());
    };
    let status = video.status.as_ref();
    let upload = status
        .and_then(|s| s.upload_status.as_deref())
        .unwrap_or("");
    let processing = video
        .processing_details
        .as_ref()
        .and_then(|p| p.processing_status.as_deref())
        .unwrap_or("");
    let reason = |r: Option<&String>| r.map(|r| format!(" ({})", clip(r))).unwrap_or_default();
    match upload {
        "processed" => Processing::Processed,
        "rejected" => Processing::Refused(format!(
            "YouTube rejected the video{}",
            reason(status.and_then(|s| s.rejection_reason.as_ref()))
        )),
        "failed" => Processing::Refused(format!(
            "YouTube could not process the video{}",
            reason(status.and_then(|s| s.failure_reason.as_ref()))
        )),
        "deleted" => Processing::Refused("the video was deleted on YouTube".into()),
        _ if matches!(processing, "failed" | "terminated") => Processing::Refused(format!(
            "YouTube's processing {processing}{}",
            reason(
                video
                    .processing_details
                    .as_ref()
                    .and_then(|p| p.processing_failure_reason.as_ref())
            )
        )),
        "" => Processing::Pending("no upload status yet".into()),
        other => Processing::Pending(format!("upload status `{}`", clip(other))),
    }
}

fn clip(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(REASON_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value, want: Processing) {
        let list: VideoList = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(classify(&list), want, "{json}");
    }

    #[test]
    fn answers_are_sorted() {
        let item = |status: serde_json::Value, processing: &str| {
            serde_json::json!({"items": [{
                "id": "v", "status": status,
                "processingDetails": {"processingStatus": processing}
            }]})
        };
        check(
            item(
                serde_json::json!({"uploadStatus": "processed"}),
                "succeeded",
            ),
            Processing::Processed,
        );
        check(
            item(
                serde_json::json!({"uploadStatus": "uploaded"}),
                "processing",
            ),
            Processing::Pending("upload status `uploaded`".into()),
        );
        check(
            item(
                serde_json::json!({"uploadStatus": "rejected", "rejectionReason": "duplicate"}),
                "terminated",
            ),
            Processing::Refused("YouTube rejected the video (duplicate)".into()),
        );
        check(
            item(
                serde_json::json!({"uploadStatus": "failed", "failureReason": "codec"}),
                "failed",
            ),
            Processing::Refused("YouTube could not process the video (codec)".into()),
        );
        check(
            item(serde_json::json!({"uploadStatus": "uploaded"}), "failed"),
            Processing::Refused("YouTube's processing failed".into()),
        );
        check(
            serde_json::json!({"items": []}),
            Processing::Pending("not listed by YouTube (yet)".into()),
        );
    }
}
