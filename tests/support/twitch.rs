//! Twitch's id endpoints (`/oauth2/token`, `/device`, `/validate`) on wiremock: for recbot's
//! app (a confidential client) and for the viewer login (Twitch's TV client id, public: device
//! flow without a secret; and browser `auth-token`s, the web client's).

#![allow(dead_code)]

use std::collections::HashMap;
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

// ---------------------------------------------------------------------------------------------
// Helix (`/streams`, `/users`, `/eventsub/…`) with the app token, and an EventSub WebSocket.

pub const APP_TOKEN: &str = "twitch-app-token";

/// One subscription the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSub {
    pub kind: String,
    pub user_id: String,
    pub conduit: String,
}

/// What the fake Helix and EventSub server know and saw.
#[derive(Debug, Default)]
pub struct HelixState {
    /// User ids handed out by `/users` (every login exists unless in `unknown`).
    pub users: std::collections::BTreeMap<String, String>,
    pub unknown: Vec<String>,
    /// Live logins as `/streams` shows them: (stream id, title).
    pub live: HashMap<String, (String, String)>,
    pub conduits: Vec<String>,
    /// Shard 0: (conduit, session), and whether it is enabled.
    pub shard: Option<(String, String)>,
    pub shard_enabled: bool,
    pub subs: std::collections::BTreeMap<String, FakeSub>,
    pub max_total_cost: u64,
    /// Requests by kind: `streams`, `users`, `conduit-get`, `conduit-create`, `patch`,
    /// `list`, `create`, `delete`, `token`.
    pub counts: HashMap<&'static str, u64>,
    /// When each `/streams` request came.
    pub streams_at: Vec<std::time::Instant>,
    /// WebSocket connections by session: (connection number, commands).
    sockets: HashMap<String, (u64, tokio::sync::mpsc::UnboundedSender<WsCmd>)>,
    pub connections: u64,
    pub keepalive_secs: u64,
    next_id: u64,
}

impl HelixState {
    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    pub fn n(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }

    fn user_id(&mut self, login: &str) -> Option<String> {
        if self.unknown.iter().any(|u| u == login) {
            return None;
        }
        let next = 1000 + self.users.len();
        Some(
            self.users
                .entry(login.to_string())
                .or_insert_with(|| next.to_string())
                .clone(),
        )
    }

    fn total_cost(&self) -> u64 {
        self.subs.len() as u64
    }

    /// Subscriptions of `kind` for `login` on the conduit shard 0 is assigned to.
    pub fn subscribed(&self, login: &str, kind: &str) -> bool {
        let Some(id) = self.users.get(login) else {
            return false;
        };
        self.subs
            .values()
            .any(|s| s.kind == kind && &s.user_id == id)
    }
}

#[derive(Debug)]
enum WsCmd {
    Text(String),
    /// Close the TCP connection without a close frame.
    Drop,
    /// Stop sending keepalives.
    Silence,
}

/// Helix on wiremock plus an EventSub WebSocket server, sharing one state.
pub struct HelixFake {
    pub server: MockServer,
    pub state: Arc<Mutex<HelixState>>,
    pub ws_addr: std::net::SocketAddr,
}

impl HelixFake {
    pub async fn start(keepalive_secs: u64, max_total_cost: u64) -> HelixFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(HelixState {
            keepalive_secs,
            max_total_cost,
            ..HelixState::default()
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(HelixResponder(state.clone()))
            .mount(&server)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = listener.local_addr().unwrap();
        tokio::spawn(accept_loop(listener, state.clone()));
        HelixFake {
            server,
            state,
            ws_addr,
        }
    }

    /// The `[twitch]` lines for this fake (app credentials, Helix, id, EventSub).
    pub fn config(&self, extra: &str) -> String {
        format!(
            "client_id = {TWITCH_CLIENT_ID:?}\nclient_secret = {TWITCH_CLIENT_SECRET:?}\n\
             id_url = \"{0}/oauth2\"\nhelix_url = \"{0}/helix\"\n\
             eventsub_ws_url = \"ws://{1}/ws\"\n{extra}",
            self.server.uri(),
            self.ws_addr
        )
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, HelixState> {
        self.state.lock().unwrap()
    }

    /// `login` goes live on Helix only (no notification: one lost in a gap).
    pub fn live_quietly(&self, login: &str, stream_id: &str, title: &str) {
        self.state()
            .live
            .insert(login.into(), (stream_id.into(), title.into()));
    }

    /// `login` goes live: Helix shows it and, when subscribed, a `stream.online` is sent
    /// `times` times with the same message id. Whether it was sent.
    pub fn online(&self, login: &str, stream_id: &str, title: &str, times: usize) -> bool {
        self.live_quietly(login, stream_id, title);
        let event = serde_json::json!({
            "id": stream_id, "broadcaster_user_id": self.state().users.get(login),
            "broadcaster_user_login": login, "broadcaster_user_name": login,
            "type": "live", "started_at": chrono::Utc::now().to_rfc3339(),
        });
        self.notify(login, "stream.online", event, times)
    }

    /// `login` goes offline; a `stream.offline` is sent when subscribed.
    pub fn offline(&self, login: &str) -> bool {
        let stream = self.state().live.remove(login).map(|(id, _)| id);
        let event = serde_json::json!({
            "id": stream, "broadcaster_user_id": self.state().users.get(login),
            "broadcaster_user_login": login, "broadcaster_user_name": login,
        });
        self.notify(login, "stream.offline", event, 1)
    }

    fn notify(&self, login: &str, kind: &str, event: serde_json::Value, times: usize) -> bool {
        let mut s = self.state();
        if !s.shard_enabled || !s.subscribed(login, kind) {
            return false;
        }
        s.next_id += 1;
        let message = serde_json::json!({
            "metadata": {"message_id": format!("msg-{}", s.next_id), "message_type": "notification",
                "message_timestamp": chrono::Utc::now().to_rfc3339(),
                "subscription_type": kind, "subscription_version": "1"},
            "payload": {"subscription": {"type": kind}, "event": event},
        })
        .to_string();
        (0..times).all(|_| send_current(&s, WsCmd::Text(message.clone())))
    }

    /// Sends `session_reconnect` to the current socket (the new one connects with the same
    /// session), then, on the old socket, a `stream.online` of `login`.
    pub fn reconnect_then_online(&self, login: &str, stream_id: &str) -> bool {
        let (session, url) = {
            let s = self.state();
            let session = s.shard.as_ref().unwrap().1.clone();
            let url = format!("ws://{}/ws?reconnect={session}", self.ws_addr);
            (session, url)
        };
        let message = serde_json::json!({
            "metadata": {"message_id": "reconnect-1", "message_type": "session_reconnect",
                "message_timestamp": chrono::Utc::now().to_rfc3339()},
            "payload": {"session": {"id": session, "status": "reconnecting",
                "keepalive_timeout_seconds": null, "reconnect_url": url}},
        });
        send_current(&self.state(), WsCmd::Text(message.to_string()));
        self.online(login, stream_id, "during the reconnect", 1)
    }

    /// Closes the current socket without a word (shard disabled).
    pub fn drop_socket(&self) {
        send_current(&self.state(), WsCmd::Drop);
    }

    /// The current socket stops sending keepalives.
    pub fn silence(&self) {
        send_current(&self.state(), WsCmd::Silence);
    }

    /// Revokes `login`'s `kind` subscription with `status`.
    pub fn revoke(&self, login: &str, kind: &str, status: &str) -> bool {
        let mut s = self.state();
        let Some(user) = s.users.get(login).cloned() else {
            return false;
        };
        let Some(id) = s
            .subs
            .iter()
            .find(|(_, sub)| sub.kind == kind && sub.user_id == user)
            .map(|(id, _)| id.clone())
        else {
            return false;
        };
        s.subs.remove(&id);
        let message = serde_json::json!({
            "metadata": {"message_id": "revoke-1", "message_type": "revocation",
                "message_timestamp": chrono::Utc::now().to_rfc3339(),
                "subscription_type": kind, "subscription_version": "1"},
            "payload": {"subscription": {"id": id, "status": status, "type": kind,
                "version": "1", "condition": {"broadcaster_user_id": user},
                "transport": {"method": "conduit", "conduit_id": "x"}}},
        });
        send_current(&s, WsCmd::Text(message.to_string()))
    }
}

/// Sends to the socket of the session shard 0 is assigned to.
fn send_current(s: &HelixState, cmd: WsCmd) -> bool {
    let Some((_, session)) = &s.shard else {
        return false;
    };
    match s.sockets.get(session) {
        Some((_, tx)) => tx.send(cmd).is_ok(),
        None => false,
    }
}

struct HelixResponder(Arc<Mutex<HelixState>>);

fn query(req: &Request, key: &str) -> Vec<String> {
    req.url
        .query_pairs()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

impl Respond for HelixResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        if path == "/oauth2/token" {
            s.count("token");
            return ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": APP_TOKEN, "expires_in": 3600}));
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {APP_TOKEN}")) {
            return refused(401, "invalid token");
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        match (req.method.as_str(), path.as_str()) {
            ("GET", "/helix/streams") => {
                s.count("streams");
                s.streams_at.push(std::time::Instant::now());
                let data: Vec<_> = query(req, "user_login")
                    .into_iter()
                    .filter_map(|login| {
                        let (id, title) = s.live.get(&login)?.clone();
                        Some(
                            serde_json::json!({"id": id, "user_login": login, "user_name": login,
                            "title": title, "game_name": "Chess", "viewer_count": 1, "type": "live",
                            "started_at": chrono::Utc::now().to_rfc3339()}),
                        )
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": data}))
            }
            ("GET", "/helix/users") => {
                s.count("users");
                let data: Vec<_> = query(req, "login")
                    .into_iter()
                    .filter_map(|login| {
                        let id = s.user_id(&login)?;
                        Some(serde_json::json!({"id": id, "login": login}))
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": data}))
            }
            ("GET", "/helix/eventsub/conduits") => {
                s.count("conduit-get");
                let data: Vec<_> = s
                    .conduits
                    .iter()
                    .map(|id| serde_json::json!({"id": id, "shard_count": 1}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": data}))
            }
            ("POST", "/helix/eventsub/conduits") => {
                s.count("conduit-create");
                let id = format!("conduit-{}", s.n("conduit-create"));
                s.conduits.push(id.clone());
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"data": [{"id": id, "shard_count": 1}]}))
            }
            ("PATCH", "/helix/eventsub/conduits/shards") => patch_shard(&mut s, &body),
            ("GET", "/helix/eventsub/subscriptions") => list_subs(&mut s, req),
            ("POST", "/helix/eventsub/subscriptions") => create_sub(&mut s, &body),
            ("DELETE", "/helix/eventsub/subscriptions") => {
                s.count("delete");
                let id = query(req, "id").pop().unwrap_or_default();
                match s.subs.remove(&id) {
                    Some(_) => ResponseTemplate::new(204),
                    None => refused(404, "subscription not found"),
                }
            }
            _ => refused(404, "no such endpoint"),
        }
    }
}

fn patch_shard(s: &mut HelixState, body: &serde_json::Value) -> ResponseTemplate {
    s.count("patch");
    let conduit = body["conduit_id"].as_str().unwrap_or_default().to_string();
    if !s.conduits.contains(&conduit) {
        return refused(404, "conduit not found");
    }
    let session = body["shards"][0]["transport"]["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !s.sockets.contains_key(&session) {
        return ResponseTemplate::new(202).set_body_json(serde_json::json!({"data": [],
            "errors": [{"id": "0", "message": "websocket session not found", "code": "invalid_parameter"}]}));
    }
    s.shard = Some((conduit, session.clone()));
    s.shard_enabled = true;
    ResponseTemplate::new(202).set_body_json(serde_json::json!({"data": [{"id": "0",
        "status": "enabled", "transport": {"method": "websocket", "session_id": session}}],
        "errors": []}))
}

fn sub_json(id: &str, sub: &FakeSub) -> serde_json::Value {
    serde_json::json!({"id": id, "status": "enabled", "type": sub.kind, "version": "1", "cost": 1,
        "condition": {"broadcaster_user_id": sub.user_id},
        "transport": {"method": "conduit", "conduit_id": sub.conduit}})
}

/// 100 a page, the cursor being the index of the next one.
fn list_subs(s: &mut HelixState, req: &Request) -> ResponseTemplate {
    s.count("list");
    let start: usize = query(req, "after")
        .pop()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let page: Vec<_> = s
        .subs
        .iter()
        .skip(start)
        .take(100)
        .map(|(id, sub)| sub_json(id, sub))
        .collect();
    let next = start + page.len();
    let pagination = match next < s.subs.len() {
        true => serde_json::json!({"cursor": next.to_string()}),
        false => serde_json::json!({}),
    };
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": page,
        "total": s.subs.len(), "total_cost": s.total_cost(), "max_total_cost": s.max_total_cost,
        "pagination": pagination}))
}

fn create_sub(s: &mut HelixState, body: &serde_json::Value) -> ResponseTemplate {
    s.count("create");
    let sub = FakeSub {
        kind: body["type"].as_str().unwrap_or_default().into(),
        user_id: body["condition"]["broadcaster_user_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
        conduit: body["transport"]["conduit_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
    };
    if body["transport"]["method"] != "conduit" || !s.conduits.contains(&sub.conduit) {
        return refused(400, "invalid transport");
    }
    if s.subs.values().any(|x| *x == sub) {
        return refused(409, "subscription already exists");
    }
    if s.total_cost() + 1 > s.max_total_cost {
        return refused(403, "subscription cost exceeded");
    }
    s.next_id += 1;
    let id = format!("sub-{:06}", s.next_id);
    let json = sub_json(&id, &sub);
    s.subs.insert(id, sub);
    ResponseTemplate::new(202).set_body_json(serde_json::json!({"data": [json],
        "total": s.subs.len(), "total_cost": s.total_cost(), "max_total_cost": s.max_total_cost}))
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<Mutex<HelixState>>) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(serve_socket(tcp, state.clone()));
    }
}

/// One EventSub connection: welcome (a new session, or the one named by `?reconnect=`),
/// keepalives, whatever the test sends; the shard is disabled when its socket goes.
#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn serve_socket(tcp: tokio::net::TcpStream, state: Arc<Mutex<HelixState>>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut uri = String::new();
    let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        uri = req.uri().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (session, number, keepalive) = {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        let number = s.connections;
        let session = match uri.split_once("reconnect=") {
            Some((_, session)) => session.to_string(),
            None => format!("session-{number}"),
        };
        s.sockets.insert(session.clone(), (number, tx));
        (session, number, s.keepalive_secs)
    };
    let welcome = serde_json::json!({
        "metadata": {"message_id": format!("welcome-{number}"), "message_type": "session_welcome",
            "message_timestamp": chrono::Utc::now().to_rfc3339()},
        "payload": {"session": {"id": session, "status": "connected",
            "keepalive_timeout_seconds": keepalive, "reconnect_url": null,
            "connected_at": chrono::Utc::now().to_rfc3339()}},
    });
    if ws.send(Message::text(welcome.to_string())).await.is_err() {
        return;
    }
    let mut silent = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(keepalive).mul_f64(0.5));
    tick.tick().await;
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(WsCmd::Text(text)) => { if ws.send(Message::text(text)).await.is_err() { break } }
                Some(WsCmd::Silence) => silent = true,
                Some(WsCmd::Drop) | None => break,
            },
            _ = tick.tick(), if !silent => {
                let keepalive = serde_json::json!({"metadata": {"message_id": format!("ka-{number}"),
                    "message_type": "session_keepalive",
                    "message_timestamp": chrono::Utc::now().to_rfc3339()}, "payload": {}});
                if ws.send(Message::text(keepalive.to_string())).await.is_err() { break }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
        }
    }
    let mut s = state.lock().unwrap();
    // Replaced by a reconnect: the session lives on in the new socket.
    if s.sockets.get(&session).is_some_and(|(n, _)| *n == number) {
        s.sockets.remove(&session);
        if s.shard.as_ref().is_some_and(|(_, sh)| *sh == session) {
            s.shard_enabled = false;
        }
    }
}
