//! The status page at `/`: server-rendered HTML (`html.rs`) of what the JSON API reads
//! (`data.rs`), a small script (`page.js`, served as a static asset: no inline script, a
//! strict Content-Security-Policy) that follows the event stream and refreshes the page's
//! sections without a reload, and a login form whose token becomes a session cookie
//! (`session.rs`). The page's one change, retrying an upload, needs an operator session,
//! the session's CSRF token and a same-origin request.

mod data;
mod html;
pub(super) mod session;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tracing::info;

use super::auth::{self, Caller};
use super::AppState;

pub(super) use session::Sessions;

/// The page's routes (merged into the listener's router).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/uploads/{id}/retry", post(retry))
        .route("/static/page.js", get(script))
        .route("/static/page.css", get(style))
        .route("/static/favicon.svg", get(icon))
        .layer(axum::middleware::map_response(secured))
}

/// Headers every page response carries: only this origin's scripts, styles and connections,
/// no framing, no sniffing, no referrer, no caching.
async fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A static asset (embedded in the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("page.js"))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("page.css"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("favicon.svg"))
}

/// Who is looking at the page: the bearer header, or the session cookie (with its id).
/// `Err`: the login form's message, when credentials were presented but are not valid.
type Viewer = Result<Option<(Caller, Option<String>)>, &'static str>;

fn viewer(state: &AppState, headers: &HeaderMap) -> Viewer {
    if headers.contains_key(header::AUTHORIZATION) {
        return match auth::bearer(headers).and_then(|t| state.tokens.caller(t)) {
            Some(caller) => Ok(Some((caller, None))),
            None => Err("The bearer token is not one of recbot's tokens."),
        };
    }
    match session::cookie(headers) {
        None => Ok(None),
        Some(id) => match state.sessions.find(&id) {
            Some(caller) => Ok(Some((caller, Some(id)))),
            None => Err("Your login has expired (or recbot restarted): log in again."),
        },
    }
}

/// `GET /`: the status page, or the login form.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (caller, session) = match viewer(&state, &headers) {
        Ok(Some(found)) => found,
        Ok(None) => return html(StatusCode::OK, html::login_form(None)),
        Err(message) => {
            return html(StatusCode::UNAUTHORIZED, html::login_form(Some(message)));
        }
    };
    let csrf = session.as_deref().map(|id| state.sessions.csrf(id));
    let data = data::gather(&state, caller, csrf).await;
    html(StatusCode::OK, html::page(&data))
}

/// Whether a state-changing page request comes from the page itself: `Sec-Fetch-Site:
/// same-origin` when the browser sends it, else an `Origin` naming this `Host`. A request
/// with neither is refused (every browser sends one of them with a POST).
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

fn cross_site() -> Response {
    html(
        StatusCode::FORBIDDEN,
        html::message_page(
            "Refused",
            "This request did not come from recbot's own page (cross-site requests are refused).",
        ),
    )
}

/// A form field of an `application/x-www-form-urlencoded` body.
fn field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Goes back to the page (after a form was handled).
fn back_to_page(cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /login` (`token=…`): a session cookie for a known token, else the form again (401).
async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let token = field(&body, "token").unwrap_or_default();
    let Some(caller) = state.tokens.caller(token.trim().as_bytes()) else {
        info!("status page: a login with a token that is not one of recbot's");
        return html(
            StatusCode::UNAUTHORIZED,
            html::login_form(Some("That token is not one of recbot's tokens.")),
        );
    };
    info!(token = %caller.name, role = caller.role.as_str(), "status page: logged in");
    let id = state.sessions.open(&caller);
    back_to_page(Some(session::set_cookie(&id)))
}

/// `POST /logout` (`csrf=…`): the session ends and its cookie is cleared.
async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    if let Some(id) = session::cookie(&headers) {
        if state.sessions.find(&id).is_some() && !csrf_ok(&state, &id, &headers, &body) {
            return bad_csrf();
        }
        state.sessions.close(&id);
    }
    back_to_page(Some(session::clear_cookie()))
}

/// Whether the request carries session `id`'s CSRF token (`X-CSRF-Token` or a `csrf` field).
fn csrf_ok(state: &AppState, id: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let presented = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| field(body, "csrf"))
        .unwrap_or_default();
    state.sessions.csrf_matches(id, &presented)
}

fn bad_csrf() -> Response {
    html(
        StatusCode::FORBIDDEN,
        html::message_page(
            "Refused",
            "The form's security token is missing or wrong: reload the page and try again.",
        ),
    )
}

/// `POST /uploads/{id}/retry` from the page: a session cookie (never the bearer header: the
/// API has its own route), its CSRF token (`csrf` field or `X-CSRF-Token` header) and a
/// same-origin request; then `retry <id>` through the core with the session's origin, so a
/// viewer is refused (403) and audited like in chat.
async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let session = session::cookie(&headers);
    let Some((caller, session)) =
        session.and_then(|s| state.sessions.find(&s).map(|caller| (caller, s)))
    else {
        return html(
            StatusCode::UNAUTHORIZED,
            html::login_form(Some("Log in to retry an upload.")),
        );
    };
    if !csrf_ok(&state, &session, &headers, &body) {
        return bad_csrf();
    }
    match super::api::run(&state, &caller, &["retry", &id]).await {
        Ok(_) => back_to_page(None),
        Err(problem) => html(
            problem.status(),
            html::message_page("Retry refused", problem.detail()),
        ),
    }
}
