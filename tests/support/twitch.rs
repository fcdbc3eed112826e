//! Twitch's id endpoints (`/oauth2/token`, `/device`, `/validate`) on wiremock: for recbot's
//! app (a confidential client) and for the viewer login (Twitch's TV client id, public: device
//! flow without a secret; and browser `auth-token`s, the web client's).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{field, form, TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET};

pub const DEVICE_CODE: &str = "device-code-secret-value";
pub const USER_CODE: &str = "ABCD-EFGH";
pub const LOGIN: &str = "recbotuser";
/// recbot's default `[twitch] viewer_client_id` (Twitch's TV app).
pub const VIEWER_CLIENT_ID: &str = "ue6666qo983tsx6so1t0vnawi233wa";
/// The web client a browser's `auth-token` belongs to.
pub const WEB_CLIENT_ID: &str = "kimne78kx3ncx6brgo4mv6wki5h1ko";
pub const VIEWER_LOGIN: &str = "viewerperson";
pub const VIEWER_DEVICE_CODE: &str = "viewer-device-code-secret";

#[derive(Debug, Default)]
pub struct TwitchState {
    /// The one valid authorization code (single use).
    pub code: String,
    pub refresh_token: String,
    pub revoked: bool,
    /// Access tokens handed out: `twitch-access-1`, …
    pub issued: u32,
    /// Access tokens `/validate` accepts.
    pub valid: Vec<String>,
    pub validations: u32,
    /// Device polls answered `authorization_pending` before approval.
    pub pending_polls: u32,
    /// Every form received, with its path.
    pub forms: Vec<(String, Vec<(String, String)>)>,
    /// Viewer tokens `/validate` accepts, with the client each belongs to.
    pub viewer_valid: Vec<(String, String)>,
    /// Viewer tokens handed out by the device flow: `viewer-access-1`, …
    pub viewer_issued: u32,
}

pub struct TwitchFake {
    pub server: MockServer,
    pub state: Arc<Mutex<TwitchState>>,
}

impl TwitchFake {
    pub async fn start(code: &str, refresh_token: &str) -> TwitchFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(TwitchState {
            code: code.into(),
            refresh_token: refresh_token.into(),
            ..TwitchState::default()
        }));
        Mock::given(wiremock::matchers::path_regex("^/oauth2/"))
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        TwitchFake { server, state }
    }

    pub fn id_url(&self) -> String {
        format!("{}/oauth2", self.server.uri())
    }

    /// The `[twitch]` lines for this fake.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "client_id = {TWITCH_CLIENT_ID:?}\nclient_secret = {TWITCH_CLIENT_SECRET:?}\n\
             id_url = {:?}\n{extra}",
            self.id_url()
        )
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, TwitchState> {
        self.state.lock().unwrap()
    }
}

fn refused(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(serde_json::json!({"status": status, "message": message}))
}

struct Responder(Arc<Mutex<TwitchState>>);

impl Responder {
    fn token(s: &mut TwitchState) -> ResponseTemplate {
        s.issued += 1;
        let access = format!("twitch-access-{}", s.issued);
        s.valid.push(access.clone());
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": access,
            "refresh_token": s.refresh_token,
            "expires_in": 14124,
            "scope": ["chat:read"],
            "token_type": "bearer",
        }))
    }
}

impl Responder {
    /// The TV client: a public client, device flow only, no secret taken.
    fn viewer(s: &mut TwitchState, path: &str, form: &[(String, String)]) -> ResponseTemplate {
        if field(form, "client_secret").is_some() {
            return refused(400, "a public client has no secret");
        }
        if path == "/oauth2/device" {
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "device_code": VIEWER_DEVICE_CODE, "expires_in": 1800, "interval": 1,
                "user_code": USER_CODE,
                "verification_uri": format!("https://www.twitch.tv/activate?device-code={USER_CODE}"),
            }));
        }
        if field(form, "grant_type") != Some("urn:ietf:params:oauth:grant-type:device_code")
            || field(form, "device_code") != Some(VIEWER_DEVICE_CODE)
        {
            return refused(400, "invalid device code");
        }
        if s.pending_polls > 0 {
            s.pending_polls -= 1;
            return refused(400, "authorization_pending");
        }
        s.viewer_issued += 1;
        let access = format!("viewer-access-{}", s.viewer_issued);
        s.viewer_valid
            .push((access.clone(), VIEWER_CLIENT_ID.into()));
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": access, "refresh_token": "viewer-refresh-secret",
            "scope": [], "token_type": "bearer",
        }))
    }
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        if path == "/oauth2/validate" {
            s.validations += 1;
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let token = auth.strip_prefix("OAuth ").unwrap_or_default();
            if let Some((_, client)) = s.viewer_valid.iter().find(|(t, _)| t == token) {
                return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "client_id": client, "login": VIEWER_LOGIN, "scopes": [],
                    "user_id": "4711", "expires_in": 0,
                }));
            }
            if !s.valid.iter().any(|t| t == token) {
                return refused(401, "invalid access token");
            }
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "client_id": TWITCH_CLIENT_ID, "login": LOGIN, "scopes": ["chat:read"],
                "user_id": "141981764", "expires_in": 5520838,
            }));
        }
        let form = form(&req.body);
        s.forms.push((path.clone(), form.clone()));
        if field(&form, "client_id") == Some(VIEWER_CLIENT_ID) {
            return Self::viewer(&mut s, &path, &form);
        }
        if field(&form, "client_id") != Some(TWITCH_CLIENT_ID) {
            return refused(400, "invalid client");
        }
        if path == "/oauth2/device" {
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "device_code": DEVICE_CODE, "expires_in": 1800, "interval": 1,
                "user_code": USER_CODE,
                "verification_uri": format!("https://www.twitch.tv/activate?public=true&device-code={USER_CODE}"),
            }));
        }
        if field(&form, "client_secret") != Some(TWITCH_CLIENT_SECRET) {
            return refused(403, "invalid client secret");
        }
        match field(&form, "grant_type") {
            Some("authorization_code") if field(&form, "code") == Some(s.code.as_str()) => {
                s.code = "used".into();
                Self::token(&mut s)
            }
            Some("authorization_code") => refused(400, "Invalid authorization code"),
            Some("refresh_token")
                if !s.revoked
                    && field(&form, "refresh_token") == Some(s.refresh_token.as_str()) =>
            {
                Self::token(&mut s)
            }
            Some("refresh_token") => refused(400, "Invalid refresh token"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
                if field(&form, "device_code") == Some(DEVICE_CODE) =>
            {
                if s.pending_polls > 0 {
                    s.pending_polls -= 1;
                    return refused(400, "authorization_pending");
                }
                Self::token(&mut s)
            }
            _ => refused(400, "invalid device code"),
        }
    }
}
