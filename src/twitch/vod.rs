//! A broadcast's VOD (Twitch's archive of it): finding it — Helix `/videos?type=archive`
//! matched on the stream id with app credentials, else GQL (the user's newest archives,
//! matched on the time the broadcast started, since GQL does not give the stream id) — and
//! its master playlist (`videoPlaybackAccessToken`, usher `/vod/v2/{id}.m3u8`, see
//! `playback.rs`). Says whether a VOD is not there *yet* (still being processed right after
//! the stream, worth waiting for) or will not be (sub-only, deleted).

use chrono::{DateTime, Utc};
use recbot_commands::Login;
use serde::Deserialize;
use serde_json::json;

use super::app_token::AppToken;
use super::helix::Helix;
use super::playback::{Playback, PlaybackError, VodMaster};

/// How far an archive's creation may lie from the broadcast's estimated start to be taken for
/// its VOD (GQL, where there is no stream id to match).
const GQL_MATCH_SECS: i64 = 15 * 60;
/// The GQL query listing a user's newest archives (inline: no persisted hash to go stale).
const ARCHIVES_QUERY: &str = "query RecbotArchives($login: String!) { user(login: $login) { videos(first: 20, type: ARCHIVE, sort: TIME) { edges { node { id createdAt broadcastType } } } } }";

/// Why a VOD cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VodError {
    /// For good: sub-only, deleted, refused. The text says which.
    #[error("{0}")]
    Unavailable(String),
    /// Network trouble, Twitch errors: worth trying again later.
    #[error("{0}")]
    Passing(String),
}

impl From<PlaybackError> for VodError {
    fn from(e: PlaybackError) -> VodError {
        match e {
            PlaybackError::Restricted(why) => {
                VodError::Unavailable(format!("the VOD is restricted (subscriber-only): {why}"))
            }
            e if e.is_transient() => VodError::Passing(e.to_string()),
            e => VodError::Unavailable(e.to_string()),
        }
    }
}

/// Finds VODs and their playlists.
#[derive(Debug)]
pub struct Vods {
    playback: Playback,
    /// With app credentials: Helix, matched on the stream id.
    helix: Option<Helix>,
}

impl Vods {
    pub fn new(http: reqwest::Client, twitch: &crate::config::Twitch, playback: Playback) -> Vods {
        let helix = match (&twitch.client_id, &twitch.client_secret) {
            (Some(id), Some(secret)) if twitch.has_app_credentials() => {
                let token = AppToken::new(http.clone(), &twitch.id_url, id, secret.clone());
                Some(Helix::new(http, &twitch.helix_url, id, token))
            }
            _ => None,
        };
        Vods { playback, helix }
    }

    /// The id of the VOD of `login`'s broadcast `stream_id` (Helix), or of the archive created
    /// within a quarter hour of `started` (GQL, without app credentials); `None` while none
    /// is listed (not yet, or archives are off for the channel).
    pub async fn find(
        &self,
        login: &Login,
        stream_id: Option<&str>,
        started: Option<DateTime<Utc>>,
    ) -> Result<Option<String>, VodError> {
        let found = match (&self.helix, stream_id) {
            (Some(helix), Some(stream_id)) => {
                let passing = |e: super::helix::HelixError| VodError::Passing(e.to_string());
                let Some(user) = helix.user_id(login).await.map_err(passing)? else {
                    return Err(VodError::Unavailable(format!(
                        "Twitch knows no user {login}"
                    )));
                };
                let videos = helix.archives(&user).await.map_err(passing)?;
                videos
                    .into_iter()
                    .find(|v| v.stream_id.as_deref() == Some(stream_id))
                    .map(|v| v.id)
            }
            _ => match started {
                Some(started) => self.find_by_gql(login, started).await?,
                None => None,
            },
        };
        Ok(found.filter(|id| valid_id(id)))
    }

    async fn find_by_gql(
        &self,
        login: &Login,
        started: DateTime<Utc>,
    ) -> Result<Option<String>, VodError> {
        let body = json!({
            "operationName": "RecbotArchives",
            "query": ARCHIVES_QUERY,
            "variables": {"login": login.as_str()},
        });
        let data = self.playback.gql_data(&body, None).await?;
        Ok(data.and_then(|d| match_archive(d, started)))
    }

    /// VOD `vod_id`'s master playlist (`NotYet` while Twitch has no token or playlist for it).
    pub async fn master(&self, vod_id: &str) -> Result<VodMaster, VodError> {
        if !valid_id(vod_id) {
            return Err(VodError::Unavailable(format!("`{vod_id}` is not a VOD id")));
        }
        Ok(self.playback.vod_master_playlist(vod_id).await?)
    }
}

/// VOD ids are decimal numbers (they go into usher's path).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The newest archive created within [`GQL_MATCH_SECS`] of `started`, from a
/// `RecbotArchives` answer.
fn match_archive(data: serde_json::Value, started: DateTime<Utc>) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Node {
        id: String,
        created_at: Option<DateTime<Utc>>,
        #[serde(default)]
        broadcast_type: Option<String>,
    }
    let edges = data.pointer("/user/videos/edges")?.as_array()?;
    edges
        .iter()
        .filter_map(|e| serde_json::from_value::<Node>(e.get("node")?.clone()).ok())
        .filter(|n| {
            n.broadcast_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("ARCHIVE"))
        })
        .find(|n| {
            n.created_at
                .is_some_and(|at| (at - started).num_seconds().abs() <= GQL_MATCH_SECS)
        })
        .map(|n| n.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gql_archives_match_on_the_broadcast_start() {
        let started: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let data = json!({"user": {"videos": {"edges": [
            {"node": {"id": "300", "createdAt": "2026-11-22T10:00:00Z", "broadcastType": "ARCHIVE"}},
            {"node": {"id": "200", "createdAt": "2026-11-21T10:00:12Z", "broadcastType": "ARCHIVE"}},
            {"node": {"id": "100", "createdAt": "2026-11-20T10:00:00Z", "broadcastType": "ARCHIVE"}},
        ]}}});
        assert_eq!(match_archive(data.clone(), started), Some("200".into()));
        let later: DateTime<Utc> = "2026-11-21T13:00:00Z".parse().unwrap();
        assert_eq!(match_archive(data, later), None);
        // Hostile or broken answers match nothing.
        assert_eq!(match_archive(json!({"user": null}), started), None);
        assert_eq!(
            match_archive(
                json!({"user": {"videos": {"edges": [{"node": 5}]}}}),
                started
            ),
            None
        );
        assert!(!valid_id("../x") && !valid_id("") && valid_id("2345678901"));
    }
}
