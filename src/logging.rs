//! The service log (stderr): `RUST_LOG` filtering, human or JSON lines. Dependency crates are
//! capped at `info` whatever `RUST_LOG` says, because their debug output can include request
//! headers, and so credentials; recbot's own code never logs a secret. As a last line of
//! defence every log line passes through [`redact`], which blanks credential-shaped text that a
//! dependency might still print (e.g. a Socket Mode address with its one-time ticket).

use std::borrow::Cow;
use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Crates that talk to outside services, capped at `info`.
const CAPPED: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tungstenite",
    "tokio_tungstenite",
    "serenity",
    "slack_morphism",
    "yup_oauth2",
    "irc",
    "sqlx",
];

/// The filter: `RUST_LOG` (default `info`) with the caps above appended.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut spec = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("info")
        .to_string();
    for target in CAPPED {
        let level = if *target == "sqlx" { "warn" } else { "info" };
        spec.push_str(&format!(",{target}={level}"));
    }
    EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG is not a valid filter ({e}); using `info`");
        EnvFilter::new("info")
    })
}

/// Installs the global subscriber writing to stderr (stdout belongs to the console).
pub fn init(format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Query/form parameters whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "access_token=",
    "refresh_token=",
    "id_token=",
    "client_secret=",
    "device_code=",
    "ticket=",
    "token=",
    "code=",
    "sig=",
    "signature=",
    "password=",
];
/// Prefixes of credentials that appear bare (Slack tokens, authorization headers, IRC PASS).
const SECRET_PREFIXES: &[&str] = &[
    "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xapp-", "Bearer ", "OAuth ", "oauth:",
];

/// `text` with credential-shaped values replaced by `[redacted]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let hit = |t: &str| {
        SECRET_PARAMS
            .iter()
            .chain(SECRET_PREFIXES)
            .any(|p| t.contains(p))
    };
    if !hit(text) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for marker in SECRET_PARAMS.iter().chain(SECRET_PREFIXES) {
        let mut from = 0;
        while let Some(found) = out[from..].find(marker) {
            let start = from + found + marker.len();
            if out[start..].starts_with("[redacted]") {
                from = start;
                continue;
            }
            let end = out[start..]
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(
                            c,
                            '&' | '"' | '\'' | ',' | ';' | ')' | ']' | '}' | '>' | '\\'
                        )
                })
                .map_or(out.len(), |e| start + e);
            if end > start {
                out.replace_range(start..end, "[redacted]");
            }
            from = start;
        }
    }
    Cow::Owned(out)
}

/// stderr, one formatted event at a time, through [`redact`].
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;

    fn make_writer(&'a self) -> RedactingLine {
        RedactingLine(Vec::with_capacity(256))
    }
}

/// Collects one event's bytes; redacts and writes them when the event is complete.
struct RedactingLine(Vec<u8>);

impl Write for RedactingLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_blanked_and_the_rest_kept() {
        for (input, expected) in [
            ("plain line", "plain line"),
            (
                "connect wss://wss.slack.com/link/?ticket=abc-123&app_id=A1 failed",
                "connect wss://wss.slack.com/link/?ticket=[redacted]&app_id=A1 failed",
            ),
            ("token xoxb-1-2-SECRET used", "token xoxb-[redacted] used"),
            (
                "Authorization: Bearer abc.def",
                "Authorization: Bearer [redacted]",
            ),
            (
                "grant_type=refresh_token&refresh_token=RT&client_secret=CS",
                "grant_type=refresh_token&refresh_token=[redacted]&client_secret=[redacted]",
            ),
            (
                "\"url\":\"http://x/?code=4/0Ab\"",
                "\"url\":\"http://x/?code=[redacted]\"",
            ),
            ("PASS oauth:abcdef", "PASS oauth:[redacted]"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
