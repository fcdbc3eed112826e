//! Bearer tokens: who is calling (`Caller`, from the `Authorization` header), compared in
//! constant time against every configured token; the token itself is never logged or echoed.
//! The status page's session cookie (`page/session.rs`) stands in for the header on reads
//! only: `GET` requests other than a WebSocket upgrade. Every route that changes something
//! needs the header (the page's one action checks the cookie itself, with a CSRF token).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};

use super::problem::Problem;
use super::AppState;
use crate::config::{Http, Role};
use crate::core::Origin;
use crate::secret::Secret;

/// The configured tokens.
#[derive(Debug)]
pub(super) struct Tokens(Vec<(String, Secret, Role)>);

impl Tokens {
    pub(super) fn from_config(config: &Http) -> Tokens {
        Tokens(
            config
                .tokens
                .iter()
                .map(|t| (t.name.clone(), t.token.clone(), t.role))
                .collect(),
        )
    }

    /// The entry `presented` matches. Every token is compared (in constant time), so the
    /// answer's timing says nothing about which one came close.
    fn find(&self, presented: &[u8]) -> Option<(&str, Role)> {
        let mut found = None;
        for (name, token, role) in &self.0 {
            if constant_time_eq(token.expose().as_bytes(), presented) && found.is_none() {
                found = Some((name.as_str(), *role));
            }
        }
        found
    }

    /// The caller a presented token stands for (an empty token is never one).
    pub(super) fn caller(&self, presented: &[u8]) -> Option<Caller> {
        if presented.is_empty() {
            return None;
        }
        self.find(presented).map(|(name, role)| Caller {
            name: name.to_string(),
            role,
        })
    }
}

/// `a == b` in time that depends only on the lengths, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The command's origin: `http:<name>` in the audit log; operator tokens are operators.
    pub fn origin(&self) -> Origin {
        Origin::http(&self.name, self.role == Role::Operator)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, Problem> {
        let Some(presented) = bearer(&parts.headers).filter(|t| !t.is_empty()) else {
            return match reading(parts)
                .then(|| super::page::session::cookie(&parts.headers))
                .flatten()
                .and_then(|id| state.sessions.find(&id))
            {
                Some(caller) => Ok(caller),
                None => Err(unauthorized(
                    "this endpoint needs an `Authorization: Bearer` token",
                )),
            };
        };
        state
            .tokens
            .caller(presented)
            .ok_or_else(|| unauthorized("the bearer token is not one of recbot's tokens"))
    }
}

/// The token of an `Authorization: Bearer` header, when one is presented (maybe empty).
pub(super) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(|t| t.trim_ascii())
}

/// A request the page's session cookie may stand for: a read (`GET`/`HEAD`), not a WebSocket
/// upgrade (browsers send cookies with cross-site WebSocket handshakes).
fn reading(parts: &Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD)
        && !parts.headers.contains_key(header::UPGRADE)
}

pub(super) fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"recbot\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcde", b"0123456789abcde\0"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn a_token_finds_its_entry_and_nothing_else_does() {
        let tokens = Tokens(vec![
            (
                "ops".into(),
                Secret::new("operator-token-0001"),
                Role::Operator,
            ),
            (
                "dash".into(),
                Secret::new("viewer-token-000001"),
                Role::Viewer,
            ),
        ]);
        assert_eq!(
            tokens.find(b"viewer-token-000001"),
            Some(("dash", Role::Viewer))
        );
        assert_eq!(
            tokens.find(b"operator-token-0001"),
            Some(("ops", Role::Operator))
        );
        assert_eq!(tokens.find(b"operator-token-000"), None);
        assert_eq!(tokens.find(b""), None);
    }
}
