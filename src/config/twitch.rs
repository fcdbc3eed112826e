//! `[twitch]`: app credentials, endpoints, IRC address and the user token's scopes.

use serde::Deserialize;

use super::lenient::{codec_list, lenient_opt_string, lenient_string, lenient_strings};
use super::{check_pending_auth, check_urls, fail};
use crate::rendition::Codec;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Twitch {
    #[serde(deserialize_with = "lenient_opt_string")]
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Default: 10 s with Helix credentials, 30 s when probing playlists.
    pub poll_interval_secs: Option<u64>,
    pub helix_url: String,
    pub id_url: String,
    pub gql_url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub gql_client_id: String,
    /// The first-party client id of the viewer login (`auth twitch-viewer`, device flow):
    /// Twitch's TV app, which still issues device codes and whose tokens GQL accepts.
    #[serde(deserialize_with = "lenient_string")]
    pub viewer_client_id: String,
    /// sha256 of the `PlaybackAccessToken` persisted query; Twitch changes it now and then.
    pub gql_query_hash: String,
    pub usher_url: String,
    /// The codecs usher is told recbot can take (`supported_codecs`), a comma list in the
    /// config: renditions in others (and, with only `h264`, everything above 1080p) are not
    /// offered at all.
    #[serde(deserialize_with = "codec_list")]
    pub supported_codecs: Vec<Codec>,
    pub irc_host: String,
    pub irc_port: u16,
    pub irc_tls: bool,
    /// Where Twitch sends the browser after consent; must be registered with the app.
    pub redirect_uri: String,
    /// A stream that comes back within this many seconds continues the same session.
    pub offline_grace_secs: u64,
    /// Scopes asked for the user token (`auth twitch`).
    #[serde(deserialize_with = "lenient_strings")]
    pub scopes: Vec<String>,
    /// How long a started `auth twitch` waits for its `code twitch`.
    pub pending_auth_minutes: f64,
    /// Seconds between validations of the user token (Twitch requires at least hourly).
    pub validate_interval_secs: u64,
    /// How live streams are detected: `auto`, `eventsub`, `helix` or `probe`.
    pub live_detection: DetectionSetting,
    /// The EventSub WebSocket (the conduit's shard 0 connects here).
    pub eventsub_ws_url: String,
    /// Seconds between Helix checks while EventSub is up (the safety net); while it is down,
    /// `poll_interval_secs` applies.
    pub safety_net_interval_secs: u64,
    /// EventSub subscriptions created or deleted per second at most (each create costs a
    /// Helix point; the app's bucket holds 800 a minute, shared with the `/streams` checks).
    pub eventsub_changes_per_sec: u32,
}

/// `[twitch] live_detection` as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectionSetting {
    /// EventSub with app credentials, otherwise probing.
    #[default]
    Auto,
    Eventsub,
    Helix,
    Probe,
}

/// How live streams are detected, `auto` resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionMode {
    /// EventSub pushes, Helix polled as the safety net.
    EventSub,
    Helix,
    Probe,
}

impl Default for Twitch {
    fn default() -> Self {
        Twitch {
            client_id: None,
            client_secret: None,
            poll_interval_secs: None,
            helix_url: "https://api.twitch.tv/helix".into(),
            id_url: "https://id.twitch.tv/oauth2".into(),
            gql_url: "https://gql.twitch.tv/gql".into(),
            gql_client_id: "kimne78kx3ncx6brgo4mv6wki5h1ko".into(),
            viewer_client_id: "ue6666qo983tsx6so1t0vnawi233wa".into(),
            gql_query_hash: "ed230aa1e33e07eebb8928504583da78a5173989fadfb1ac94be06a04f3cdbe9"
                .into(),
            usher_url: "https://usher.ttvnw.net".into(),
            supported_codecs: Codec::ALL.to_vec(),
            irc_host: "irc.chat.twitch.tv".into(),
            irc_port: 6697,
            irc_tls: true,
            redirect_uri: "http://localhost:3000".into(),
            offline_grace_secs: 90,
            scopes: vec!["chat:read".into()],
            pending_auth_minutes: 10.0,
            validate_interval_secs: 3600,
            live_detection: DetectionSetting::Auto,
            eventsub_ws_url: "wss://eventsub.wss.twitch.tv/ws".into(),
            safety_net_interval_secs: 120,
            eventsub_changes_per_sec: 10,
        }
    }
}

impl Twitch {
    /// Helix needs an app token, which needs both halves of the app's credentials.
    pub fn has_app_credentials(&self) -> bool {
        self.client_id.as_deref().is_some_and(|s| !s.is_empty())
            && self
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.expose().is_empty())
    }

    /// The detection in use: `auto` is EventSub with app credentials, probing without.
    pub fn detection_mode(&self) -> DetectionMode {
        match self.live_detection {
            DetectionSetting::Auto if self.has_app_credentials() => DetectionMode::EventSub,
            DetectionSetting::Auto | DetectionSetting::Probe => DetectionMode::Probe,
            DetectionSetting::Eventsub => DetectionMode::EventSub,
            DetectionSetting::Helix => DetectionMode::Helix,
        }
    }

    pub fn poll_interval_secs(&self) -> u64 {
        self.poll_interval_secs
            .unwrap_or(if self.has_app_credentials() { 10 } else { 30 })
    }
}

impl Twitch {
    /// The `[twitch]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.poll_interval_secs == Some(0) {
            return fail("twitch.poll_interval_secs", "must be at least 1 second");
        }
        check_urls([
            ("twitch.helix_url", &self.helix_url),
            ("twitch.id_url", &self.id_url),
            ("twitch.gql_url", &self.gql_url),
            ("twitch.usher_url", &self.usher_url),
            ("twitch.redirect_uri", &self.redirect_uri),
        ])?;
        if self.client_id.is_some() != self.client_secret.is_some() {
            return fail(
                "twitch.client_secret",
                "client_id and client_secret go together (or leave both out to detect live \
                 streams without credentials)",
            );
        }
        if self.viewer_client_id.is_empty()
            || !self
                .viewer_client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return fail(
                "twitch.viewer_client_id",
                "must be a Twitch client id (letters and digits), such as the default TV app's",
            );
        }
        self.validate_detection()?;
        if self.irc_host.trim().is_empty() {
            return fail("twitch.irc_host", "must not be empty");
        }
        check_pending_auth("twitch.pending_auth_minutes", self.pending_auth_minutes)?;
        if !(1..=3600).contains(&self.validate_interval_secs) {
            return fail(
                "twitch.validate_interval_secs",
                "must be between 1 and 3600 (Twitch requires validating tokens at least hourly)",
            );
        }
        if self.scopes.is_empty()
            || self.scopes.iter().any(|s| {
                s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c))
            })
        {
            return fail(
                "twitch.scopes",
                "must be a list of Twitch scopes such as [\"chat:read\"]",
            );
        }
        Ok(())
    }

    fn validate_detection(&self) -> Result<(), (String, String)> {
        let needs_app = matches!(
            self.live_detection,
            DetectionSetting::Eventsub | DetectionSetting::Helix
        );
        if needs_app && !self.has_app_credentials() {
            return fail(
                "twitch.live_detection",
                "\"eventsub\" and \"helix\" need the app credentials [twitch] client_id and \
                 client_secret (or use \"auto\" or \"probe\")",
            );
        }
        match url::Url::parse(&self.eventsub_ws_url) {
            Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some() => {}
            _ => {
                return fail(
                    "twitch.eventsub_ws_url",
                    &format!("`{}` must be a ws(s) address", self.eventsub_ws_url),
                )
            }
        }
        if self.safety_net_interval_secs == 0 {
            return fail(
                "twitch.safety_net_interval_secs",
                "must be at least 1 second",
            );
        }
        if !(1..=1000).contains(&self.eventsub_changes_per_sec) {
            return fail(
                "twitch.eventsub_changes_per_sec",
                "must be between 1 and 1000 (Helix's rate-limit headers are honoured whatever it is)",
            );
        }
        Ok(())
    }

    /// `av1,h265,h264`: the codecs as usher's `supported_codecs` takes them.
    pub fn supported_codecs_param(&self) -> String {
        self.supported_codecs
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `check-config` text on how live streams are detected.
    pub(super) fn detection_summary(&self) -> String {
        match self.detection_mode() {
            DetectionMode::EventSub => format!(
                "EventSub (conduit over WebSocket at {}) with app credentials; Helix checked \
                 every {} s as the safety net, every {} s while EventSub is down",
                self.eventsub_ws_url,
                self.safety_net_interval_secs,
                self.poll_interval_secs()
            ),
            DetectionMode::Helix => format!(
                "Helix with app credentials, every {} s (100 logins per request)",
                self.poll_interval_secs()
            ),
            DetectionMode::Probe => format!(
                "playlist probing without credentials, every {} s per login",
                self.poll_interval_secs()
            ),
        }
    }
}
