//! What an operator pastes back after an OAuth consent: the bare code, or the whole address the
//! browser was redirected to. Extracted and percent-decoded here; never echoed.

use std::fmt;

use crate::text::excerpt;

/// Longest code or redirect address accepted (Google's codes are ~70 characters, a redirect
/// address with scopes a few hundred).
const MAX_PASTE_LEN: usize = 2048;

/// An authorization code taken from a paste. `Debug` and `Display` never show the code.
#[derive(Clone, PartialEq, Eq)]
pub struct PastedCode {
    code: String,
    state: Option<String>,
    /// Taken from an address (or its `code=…` query), not pasted bare.
    address: bool,
}

impl PastedCode {
    /// Accepts `4/0AbC…`, the percent-encoded `4%2F0AbC…`, `code=…&scope=…`, or a full
    /// `http://127.0.0.1:8085/?code=…&scope=…` address.
    pub fn parse(input: &str) -> Result<PastedCode, String> {
        let input = crate::text::unwrap_slack_link(input.trim());
        if input.is_empty() {
            return Err(
                "the code is missing: paste the code, or the whole address your browser \
                        showed after you approved"
                    .into(),
            );
        }
        if input.len() > MAX_PASTE_LEN {
            return Err(format!(
                "that paste is too long to be an authorization code ({} characters, at most \
                 {MAX_PASTE_LEN})",
                input.len()
            ));
        }
        let query = if input.contains("://") {
            let url = url::Url::parse(input).map_err(|_| {
                "that address could not be read; paste it exactly as the browser \
                              shows it"
                    .to_string()
            })?;
            Some(url.query().unwrap_or_default().to_string())
        } else if input.contains("code=") || input.contains("error=") {
            Some(input.trim_start_matches(['?', '#']).to_string())
        } else {
            None
        };
        let address = query.is_some();
        let (code, state) = match query {
            Some(query) => from_query(&query)?,
            None => (decode(input)?, None),
        };
        validate(&code)?;
        Ok(PastedCode {
            code,
            state,
            address,
        })
    }

    /// The decoded code, to be sent to the token endpoint and nowhere else.
    pub fn expose(&self) -> &str {
        &self.code
    }

    /// The `state` parameter when a full redirect address was pasted.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Whether an address (or its `code=…` query) was pasted rather than the bare code.
    pub fn is_address(&self) -> bool {
        self.address
    }
}

impl fmt::Debug for PastedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PastedCode([redacted])")
    }
}

impl fmt::Display for PastedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

fn from_query(query: &str) -> Result<(String, Option<String>), String> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            _ => {}
        }
    }
    if let Some(error) = error {
        return Err(format!(
            "the consent page returned an error instead of a code (`{}`); run `auth` again and \
             approve the request",
            excerpt(&error)
        ));
    }
    match code {
        Some(code) => Ok((code, state)),
        None => Err(
            "that address has no `code=` in it; paste the address your browser was \
                     sent to after you approved"
                .into(),
        ),
    }
}

fn decode(raw: &str) -> Result<String, String> {
    url::form_urlencoded::parse(format!("c={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| "the code could not be decoded".to_string())
}

fn validate(code: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/+=".contains(c);
    if code.len() < 8 || code.len() > 512 || !code.chars().all(allowed) {
        return Err(
            "that does not look like an authorization code; paste the code, or the \
                    whole address your browser showed after you approved"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: &str) -> Result<String, String> {
        PastedCode::parse(input).map(|c| c.expose().to_string())
    }

    #[test]
    fn plain_and_encoded_codes() {
        assert_eq!(code("4/0AbCdEfGh-_x").unwrap(), "4/0AbCdEfGh-_x");
        assert_eq!(code("4%2F0AbCdEfGh").unwrap(), "4/0AbCdEfGh");
        assert_eq!(code("4%2f0AbCdEfGh").unwrap(), "4/0AbCdEfGh");
        assert_eq!(code("  abcdefgh12345678  ").unwrap(), "abcdefgh12345678");
    }

    #[test]
    fn redirect_addresses() {
        let got = PastedCode::parse(
            "http://127.0.0.1:8085/?code=4%2F0AbCdEfGh&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fyoutube.upload",
        )
        .unwrap();
        assert_eq!(got.expose(), "4/0AbCdEfGh");
        let got =
            PastedCode::parse("http://localhost:3000/?code=gulfwdmys5lsm6qyz4xiz9q32l10&scope=chat%3Aread&state=c3ab8aa6")
                .unwrap();
        assert_eq!(got.expose(), "gulfwdmys5lsm6qyz4xiz9q32l10");
        assert_eq!(got.state(), Some("c3ab8aa6"));
        assert!(got.is_address());
        let bare = PastedCode::parse("gulfwdmys5lsm6qyz4xiz9q32l10").unwrap();
        assert!(!bare.is_address() && bare.state().is_none());
        assert!(PastedCode::parse("code=gulfwdmys5lsm6qyz4xiz9q32l10")
            .unwrap()
            .is_address());
        assert_eq!(code("code=4%2F0AbCdEfGh&scope=x").unwrap(), "4/0AbCdEfGh");
        assert_eq!(
            code("<http://localhost/?code=abcdefgh123>").unwrap(),
            "abcdefgh123"
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for (input, fragment) in [
            ("", "missing"),
            ("hello world", "does not look like"),
            ("abc", "does not look like"),
            ("'; DROP TABLE tokens; --", "does not look like"),
            ("http://localhost/?scope=x", "no `code=`"),
            ("http://localhost/?error=access_denied", "access_denied"),
            ("http://[::1", "could not be read"),
        ] {
            let err = code(input).unwrap_err();
            assert!(err.contains(fragment), "{input:?}: {err}");
        }
        assert!(code(&"a".repeat(5000)).unwrap_err().contains("too long"));
    }

    #[test]
    fn never_shown() {
        let c = PastedCode::parse("4/0AsecretCODE").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!format!("{c}").contains("secret"));
    }
}
