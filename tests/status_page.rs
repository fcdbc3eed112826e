//! The status page at `/`: the login form and its session cookie, which rules the cookie
//! follows (reads only; the page's retry needs an operator session, its CSRF token and a
//! same-origin request), hostile values escaped, and the page in a real headless Chromium
//! (tests/support/browser.rs) following a login going live without a reload.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recbot::config::Config;
use recbot::core::store::{JobState, NewUploadJob, Store};
use recbot::event::EventKind;
use recbot::frontend::http::Listener;
use recbot_commands::Login;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use support::browser::Browser;
use support::origin::{End, Origin, StreamConfig};
use support::{is, Bot};
use tokio_util::sync::CancellationToken;

const OPERATOR: &str = "operator-token-0001";
const VIEWER: &str = "viewer-token-000001";
const HOSTILE: &str = "<script>alert(1)</script>";

/// A bot with the HTTP listener on a free port, live detection against `origin`'s Helix.
struct Site {
    bot: Bot,
    addr: SocketAddr,
    server: CancellationToken,
    /// Follows no redirects: the tests look at them.
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn start(dir: tempfile::TempDir, origin: &Origin) -> Site {
        let text = format!(
            "[storage]\ndata_dir = {:?}\n[chat]\nenabled = false\n[youtube]\nenabled = false\n\
             {}poll_interval_secs = 1\noffline_grace_secs = 1\nclient_id = \"cid\"\n\
             client_secret = \"secret\"\n{}\
             [http]\nlisten = \"127.0.0.1:0\"\nheartbeat_secs = 0.5\n\
             [[http.tokens]]\nname = \"ops\"\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n\
             [[http.tokens]]\nname = \"dash\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n",
            dir.path().join("data").to_str().unwrap(),
            origin.twitch_config(),
            origin.helix_config(),
        );
        let text = recbot::config::testing::offline(&text);
        let config =
            Arc::new(Config::from_text(&text, &dir.path().join("recbot.toml"), &[]).unwrap());
        let listener = Listener::bind(&config.http).await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        let mut bot = Bot::start(config).await.keeping_unmatched();
        bot.wait_for("ServiceStarted", is("ServiceStarted")).await;
        let server = CancellationToken::new();
        tokio::spawn(listener.serve(bot.core.clone(), server.clone()));
        Site {
            bot,
            addr,
            server,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the page's own forms send along: the browser's same-origin markers.
    fn same_origin(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let origin = format!("http://{}", self.addr);
        headers.insert("origin", HeaderValue::from_str(&origin).unwrap());
        headers
    }

    /// Logs in through the form with `token`: the session cookie (`name=value`).
    async fn login(&self, token: &str) -> String {
        let response = self
            .client
            .post(self.url("/login"))
            .headers(self.same_origin())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/");
        let set = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        let cookie = set.split(';').next().unwrap().to_string();
        assert!(cookie.starts_with("recbot_session="), "{set}");
        assert!(
            !cookie.contains(token),
            "the cookie holds a session id, not the token"
        );
        cookie
    }

    /// `GET path` with `cookie`: status and body.
    async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn stop(self) {
        self.bot.stop().await;
        self.server.cancel();
    }
}

/// The value of the page's hidden `csrf` field.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..][..html[start..].find('"').unwrap()].to_string()
}

/// A failed upload job of `foo` (its file on disk) whose error is hostile markup.
async fn seed_failed_upload(data: &Path) -> i64 {
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    let file = data.join("recordings/foo-1.ts");
    std::fs::write(&file, b"video").unwrap();
    let store = Store::open(&data.join("recbot.sqlite")).await.unwrap();
    let id = store
        .insert_upload_job(&NewUploadJob {
            login: Some(Login::parse("foo").unwrap()),
            session: None,
            path: file,
            sidecar: None,
            total_bytes: 5,
            node: None,
        })
        .await
        .unwrap()
        .unwrap();
    let mut job = store.upload_job(id).await.unwrap().unwrap();
    job.state = JobState::Failed;
    job.last_error = Some(format!("HTTP 400: {HOSTILE}"));
    store.save_upload_job(&job).await.unwrap();
    store.close().await;
    id
}

/// The audit log's refused commands: (by, command).
async fn refused_commands(bot: &Bot) -> Vec<(String, String)> {
    let store = Store::open(&bot.config.storage.database_path())
        .await
        .unwrap();
    let refused = store
        .events_after(0, 100)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::CommandRefused { by, command, .. } => Some((by, command)),
            _ => None,
        })
        .collect();
    store.close().await;
    refused
}

#[tokio::test]
async fn the_page_asks_for_a_token_and_refuses_a_wrong_one_or_a_foreign_form() {
    let origin = Origin::start().await;
    let site = Site::start(tempfile::tempdir().unwrap(), &origin).await;
    // Without credentials: the login form, with the page's security headers.
    let response = site.client.get(site.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    let form = response.text().await.unwrap();
    assert!(form.contains("action=\"/login\""), "{form}");
    // The script is a static asset; the HTML has no inline script.
    let script = site
        .client
        .get(site.url("/static/page.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("EventSource"));

    // A wrong token: the form again, with why, 401. A login from another site: 403.
    let wrong = site
        .client
        .post(site.url("/login"))
        .headers(site.same_origin())
        .form(&[("token", "operator-token-000")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let again = wrong.text().await.unwrap();
    assert!(
        again.contains("not one of recbot&#39;s tokens") && again.contains("/login"),
        "{again}"
    );
    let foreign = site
        .client
        .post(site.url("/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", OPERATOR)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert!(foreign.headers().get("set-cookie").is_none());

    let ops = site.login(OPERATOR).await;
    let (status, page) = site.get("/", &ops).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-after=") && page.contains("ops (operator)"),
        "{page}"
    );
    // The bearer header opens the page too.
    let bearer = site
        .client
        .get(site.url("/"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    let page = bearer.text().await.unwrap();
    assert!(page.contains("dash (viewer)"), "{page}");
    let wrong = site
        .client
        .get(site.url("/"))
        .bearer_auth("viewer-token-00000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    site.stop().await;
}

#[tokio::test]
async fn the_session_cookie_only_reads_and_logging_out_ends_it() {
    let origin = Origin::start().await;
    let site = Site::start(tempfile::tempdir().unwrap(), &origin).await;
    let ops = site.login(OPERATOR).await;
    // The cookie reads the JSON API and the event stream…
    let (status, _) = site.get("/api/v1/logins", &ops).await;
    assert_eq!(status, 200);
    let stream = site
        .client
        .get(site.url("/api/v1/events"))
        .header("cookie", &ops)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    drop(stream);
    // Not the WebSocket: browsers send cookies with cross-site WebSocket handshakes.
    let ws = site
        .client
        .get(site.url("/api/v1/ws"))
        .header("cookie", &ops)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), 401);
    // …but changes nothing: every changing API route needs the bearer header.
    let add = site
        .client
        .post(site.url("/api/v1/logins"))
        .header("cookie", &ops)
        .headers(site.same_origin())
        .json(&json!({ "login": "foo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), 401);
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/v1/logins/foo"),
        (reqwest::Method::POST, "/api/v1/uploads/1/retry"),
        (reqwest::Method::POST, "/api/v1/auth/youtube"),
    ] {
        let response = site
            .client
            .request(method, site.url(path))
            .header("cookie", &ops)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let (_, logins) = site.get("/api/v1/logins", &ops).await;
    let logins: Value = serde_json::from_str(&logins).unwrap();
    assert_eq!(logins["logins"], json!([]));

    // Logging out needs the session's CSRF token; then the cookie opens nothing.
    let (_, page) = site.get("/", &ops).await;
    let csrf = csrf_of(&page);
    let refused = site
        .client
        .post(site.url("/logout"))
        .header("cookie", &ops)
        .headers(site.same_origin())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let out = site
        .client
        .post(site.url("/logout"))
        .header("cookie", &ops)
        .headers(site.same_origin())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, page) = site.get("/", &ops).await;
    assert_eq!(status, 401);
    assert!(page.contains("action=\"/login\""), "{page}");
    let (status, _) = site.get("/api/v1/logins", &ops).await;
    assert_eq!(status, 401);
    site.stop().await;
}

#[tokio::test]
async fn retry_needs_an_operator_session_its_csrf_token_and_the_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let job = seed_failed_upload(&dir.path().join("data")).await;
    let origin = Origin::start().await;
    let mut site = Site::start(dir, &origin).await;
    let ops = site.login(OPERATOR).await;
    let dash = site.login(VIEWER).await;
    let (_, page) = site.get("/", &ops).await;
    let action = format!("action=\"/uploads/{job}/retry\"");
    assert!(
        page.contains(&action),
        "the operator sees the retry button: {page}"
    );
    let ops_csrf = csrf_of(&page);
    let (_, page) = site.get("/", &dash).await;
    assert!(
        !page.contains(&action),
        "a viewer sees no retry button: {page}"
    );
    let dash_csrf = csrf_of(&page); // the viewer's logout form
    assert_ne!(dash_csrf, ops_csrf);

    let path = format!("/uploads/{job}/retry");
    let (client, url) = (site.client.clone(), site.url(&path));
    let retry = |cookie: Option<&str>, csrf: Option<&str>, headers: HeaderMap| {
        let mut request = client.post(&url).headers(headers);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(csrf) = csrf {
            request = request.form(&[("csrf", csrf)]);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // No CSRF token, another session's, a near miss: refused.
    assert_eq!(retry(Some(&ops), None, site.same_origin()).await, 403);
    assert_eq!(
        retry(Some(&ops), Some(&dash_csrf), site.same_origin()).await,
        403
    );
    assert_eq!(
        retry(Some(&ops), Some(&ops_csrf[1..]), site.same_origin()).await,
        403
    );
    // The right token from another site (or with no origin at all): refused.
    let mut cross = HeaderMap::new();
    cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    cross.insert("origin", HeaderValue::from_str(&site.url("")).unwrap());
    assert_eq!(retry(Some(&ops), Some(&ops_csrf), cross).await, 403);
    let mut evil = HeaderMap::new();
    evil.insert("origin", HeaderValue::from_static("http://evil.example"));
    assert_eq!(retry(Some(&ops), Some(&ops_csrf), evil).await, 403);
    assert_eq!(
        retry(Some(&ops), Some(&ops_csrf), HeaderMap::new()).await,
        403
    );
    // No session: 401.
    assert_eq!(retry(None, Some(&ops_csrf), site.same_origin()).await, 401);
    // A viewer session with its own valid token: the core refuses a viewer (403).
    assert_eq!(
        retry(Some(&dash), Some(&dash_csrf), site.same_origin()).await,
        403
    );
    // Audited like a viewer's `retry` anywhere.
    assert_eq!(
        refused_commands(&site.bot).await,
        [("http:dash".to_string(), format!("retry {job}"))]
    );
    // Nothing was retried so far.
    let (_, uploads) = site.get("/api/v1/uploads", &ops).await;
    let uploads: Value = serde_json::from_str(&uploads).unwrap();
    assert_eq!(uploads["uploads"][0]["state"], "failed", "{uploads}");
    // The operator, with the token, from the page: queued again, back to the page.
    let mut same = site.same_origin();
    same.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
    assert_eq!(retry(Some(&ops), Some(&ops_csrf), same).await, 303);
    site.bot.wait_for("UploadQueued", is("UploadQueued")).await;
    let (_, uploads) = site.get("/api/v1/uploads", &ops).await;
    let uploads: Value = serde_json::from_str(&uploads).unwrap();
    assert_eq!(uploads["uploads"][0]["state"], "queued", "{uploads}");
    site.stop().await;
}

#[tokio::test]
async fn hostile_titles_and_errors_are_escaped_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    seed_failed_upload(&dir.path().join("data")).await;
    let origin = Origin::start().await;
    let mut site = Site::start(dir, &origin).await;
    site.bot.command("add foo").await;
    site.bot.live("foo", "s1", HOSTILE).await;
    site.bot.wait_for("LiveDetected", is("LiveDetected")).await;
    let ops = site.login(OPERATOR).await;
    let (status, page) = site.get("/", &ops).await;
    assert_eq!(status, 200);
    // The title (in the recent events) and the upload's error, escaped.
    assert!(
        page.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
            .count()
            >= 2,
        "{page}"
    );
    assert!(!page.contains(HOSTILE), "{page}");
    // The only script is the page's own.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(page.contains("<script src=\"/static/page.js\" defer></script>"));
    site.stop().await;
}

/// Opens the page at `url`, types the viewer token into the login form and submits it; waits
/// for the status page to list `foo` and for its event stream to be open.
async fn log_in_through_the_form(browser: &mut Browser, tab: &str, url: &str) {
    browser.open(tab, url).await;
    let typed = format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login').requestSubmit(); true",
        json!(VIEWER)
    );
    browser.eval(tab, &typed).await.unwrap();
    let within = Duration::from_secs(15);
    browser
        .wait_until(
            tab,
            "document.querySelector('tr[data-login=\"foo\"]') !== null",
            within,
            "foo is listed after logging in",
        )
        .await;
    // The session cookie is out of the page's reach (HttpOnly).
    let cookies = browser.eval(tab, "document.cookie").await.unwrap();
    assert_eq!(cookies, json!(""));
    browser
        .wait_until(
            tab,
            "document.getElementById('live-updates').dataset.state === 'open'",
            within,
            "the event stream is open",
        )
        .await;
}

/// The page in headless Chromium: logged in through its form, it lists a login added through
/// the API, and shows it going live and recording without a reload, with no console error.
#[tokio::test]
async fn the_page_in_chromium_follows_a_login_going_live_without_a_reload() {
    let origin = Origin::start().await;
    let site = Site::start(tempfile::tempdir().unwrap(), &origin).await;
    let added = site
        .client
        .post(site.url("/api/v1/logins"))
        .bearer_auth(OPERATOR)
        .json(&json!({ "login": "foo", "upload": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    let mut browser = Browser::launch().await;
    let tab = browser.new_page().await;
    log_in_through_the_form(&mut browser, &tab, &site.url("/")).await;
    // From here on, no navigation: the marker must survive.
    browser
        .eval(&tab, "window.recbotMarker = 42; true")
        .await
        .unwrap();
    let navigations = browser.navigations();

    origin.go_live(
        "foo",
        StreamConfig {
            segments: 100_000,
            end: End::Never,
            helix_id: Some("s1".into()),
            ..Default::default()
        },
    );
    browser
        .wait_until(
            &tab,
            "['live', 'recording'].includes(\
             document.querySelector('tr[data-login=\"foo\"]').dataset.state)",
            Duration::from_secs(30),
            "foo shows live",
        )
        .await;
    browser
        .wait_until(
            &tab,
            "document.querySelector('tr[data-login=\"foo\"]').dataset.state === 'recording' \
             && document.querySelector('#event-list li[data-type=\"RecordingStarted\"]') !== null",
            Duration::from_secs(30),
            "foo shows recording, and the event is listed",
        )
        .await;
    let marker = browser.eval(&tab, "window.recbotMarker").await.unwrap();
    assert_eq!(marker, json!(42), "the page was reloaded");
    assert_eq!(browser.navigations(), navigations, "the page navigated");
    let problems = browser.problems();
    assert!(
        problems.is_empty(),
        "console errors or exceptions: {problems:#?}"
    );
    drop(browser);
    origin.go_offline("foo");
    site.stop().await;
}
