//! The status page's logins: a token typed into the page's form becomes an opaque random
//! session id kept in memory with an expiry (the cookie holds only that id, never the token),
//! and each session's CSRF token is an HMAC of its id under a key drawn at start-up, so the
//! server needs to remember nothing more. Neither the id nor the CSRF token is ever logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::super::auth::{constant_time_eq, Caller};
use crate::config::Role;

/// The cookie that carries the session id.
pub(in crate::frontend::http) const COOKIE: &str = "recbot_session";
/// How long a page login lasts (also the cookie's `Max-Age`).
pub(in crate::frontend::http) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most: logging in again and again (each needs a valid token) cannot grow
/// memory without bound; the oldest session goes first.
const MAX_SESSIONS: usize = 1024;

/// The page's sessions (a restart logs everyone out: they are in memory only).
pub(in crate::frontend::http) struct Sessions {
    /// The CSRF tokens' HMAC key, drawn at start-up.
    key: [u8; 32],
    open: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Session {
    name: String,
    role: Role,
    expires: Instant,
}

impl Sessions {
    pub fn new() -> Sessions {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Sessions {
            key,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for the token entry `caller` logged in with; its id (the cookie's value).
    pub fn open(&self, caller: &Caller) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut open = self.open.lock().expect("sessions lock");
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            let oldest = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        let session = Session {
            name: caller.name.clone(),
            role: caller.role,
            expires: now + LIFETIME,
        };
        open.insert(id.clone(), session);
        id
    }

    /// Who session `id` belongs to, while it has not expired.
    pub fn find(&self, id: &str) -> Option<Caller> {
        let mut open = self.open.lock().expect("sessions lock");
        let session = open.get(id)?.clone();
        if session.expires <= Instant::now() {
            open.remove(id);
            return None;
        }
        Some(Caller {
            name: session.name,
            role: session.role,
        })
    }

    /// Ends session `id` (logging out).
    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(id);
    }

    /// The CSRF token of session `id`: HMAC-SHA256 of the id under this process's key.
    pub fn csrf(&self, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(b"recbot page csrf\0");
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` is session `id`'s CSRF token (compared in constant time).
    pub fn csrf_matches(&self, id: &str, presented: &str) -> bool {
        constant_time_eq(self.csrf(id).as_bytes(), presented.as_bytes())
    }
}

/// The session id in a request's `Cookie` headers, if any.
pub(in crate::frontend::http) fn cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that stores session `id`. `Secure` is left off: recbot serves
/// plain HTTP and cannot know whether a proxy in front of it speaks HTTPS (README).
pub(in crate::frontend::http) fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub(in crate::frontend::http) fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn ops() -> Caller {
        Caller {
            name: "ops".into(),
            role: Role::Operator,
        }
    }

    #[test]
    fn a_session_finds_its_caller_until_closed() {
        let sessions = Sessions::new();
        let id = sessions.open(&ops());
        assert_eq!(id.len(), 64);
        let found = sessions.find(&id).unwrap();
        assert_eq!((found.name.as_str(), found.role), ("ops", Role::Operator));
        assert!(sessions.find("not-a-session").is_none());
        assert_ne!(sessions.open(&ops()), id, "ids are random");
        sessions.close(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn the_csrf_token_is_tied_to_the_session_and_the_process() {
        let sessions = Sessions::new();
        let (a, b) = (sessions.open(&ops()), sessions.open(&ops()));
        let token = sessions.csrf(&a);
        assert!(sessions.csrf_matches(&a, &token));
        assert!(!sessions.csrf_matches(&b, &token));
        assert!(!sessions.csrf_matches(&a, ""));
        assert!(!sessions.csrf_matches(&a, &token[..63]));
        // Another process (another key) gives another token for the same id.
        assert_ne!(Sessions::new().csrf(&a), token);
    }

    #[test]
    fn the_oldest_session_goes_when_too_many_are_open() {
        let sessions = Sessions::new();
        let first = sessions.open(&ops());
        let mut last = String::new();
        for _ in 0..MAX_SESSIONS {
            last = sessions.open(&ops());
        }
        assert!(sessions.find(&first).is_none());
        assert!(sessions.find(&last).is_some());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; recbot_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&headers).as_deref(), Some("abc"));
        headers.clear();
        headers.append("cookie", "a=1".parse().unwrap());
        headers.append("cookie", "recbot_session=".parse().unwrap());
        assert_eq!(cookie(&headers), None);
        let set = set_cookie("abc");
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Secure"));
    }
}
