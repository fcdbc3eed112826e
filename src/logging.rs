//! The service log (stderr): `RUST_LOG` filtering, human or JSON lines. Dependency crates are
//! capped at `info` (sqlx at `warn`) whatever `RUST_LOG` says, because their debug and trace
//! output can include request headers and raw payloads, and so credentials; the cap is a
//! filter of its own after `RUST_LOG`'s, so no directive (not even a more specific one such
//! as `slack_morphism::hyper_tokio=trace`) lifts it. recbot's own code never logs a secret.
//! As a last line of defence every log line passes through [`redact`], which blanks
//! credential-shaped text that a dependency might still print (e.g. a Socket Mode address with
//! its one-time ticket, a Slack response URL).

use std::borrow::Cow;
use std::io::Write;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// The most a dependency crate may log at, when `target` belongs to one; `None` for recbot's
/// own code and crates not listed.
fn cap(target: &str) -> Option<Level> {
    let krate = target.split("::").next().unwrap_or(target);
    CAPPED.contains(&krate).then(|| {
        if krate == "sqlx" {
            Level::WARN
        } else {
            Level::INFO
        }
    })
}

/// Whether an event or span passes the dependency cap.
fn within_cap(metadata: &Metadata<'_>) -> bool {
    cap(metadata.target()).is_none_or(|max| *metadata.level() <= max)
}

/// The filter: `RUST_LOG` (default `info`) with the caps above appended, so that a plain
/// `RUST_LOG=debug` leaves dependencies at their cap. (The cap itself is enforced by
/// [`within_cap`] either way.)
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

/// The service log's subscriber: `rust_log` filtering, the dependency cap, `format`, every
/// line through [`redact`] into `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    rust_log: Option<&str>,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(Redacting(writer));
    let layer = match format {
        LogFormat::Human => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    let filter = filter(rust_log).and(filter_fn(within_cap));
    Box::new(tracing_subscriber::registry().with(layer.with_filter(filter)))
}

/// Installs the global subscriber writing to stderr (stdout belongs to the console).
pub fn init(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    subscriber(format, rust_log.as_deref(), std::io::stderr).init();
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
/// Prefixes of credentials that appear bare (Slack tokens, authorization headers, IRC PASS,
/// and Slack's response URLs, whose path is a credential for half an hour).
const SECRET_PREFIXES: &[&str] = &[
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xapp-",
    "Bearer ",
    "OAuth ",
    "oauth:",
    "hooks.slack.com/",
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

/// A writer that passes one formatted event at a time through [`redact`].
struct Redacting<W>(W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for Redacting<W> {
    type Writer = RedactingLine<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            line: Vec::with_capacity(256),
            out: self.0.make_writer(),
        }
    }
}

/// Collects one event's bytes; redacts and writes them when the event is complete.
struct RedactingLine<W: Write> {
    line: Vec<u8>,
    out: W,
}

impl<W: Write> Write for RedactingLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingLine<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let _ = self.out.write_all(redact(&text).as_bytes());
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
            (
                "error sending request for url (https://hooks.slack.com/commands/T1/123/xyz)",
                "error sending request for url (https://hooks.slack.com/[redacted])",
            ),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    /// A shared buffer the test subscriber writes into.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn log_with(rust_log: &str, format: LogFormat, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(format, Some(rust_log), move || writer.clone());
        tracing::subscriber::with_default(subscriber, emit);
        out.text()
    }

    #[test]
    fn dependency_crates_stay_capped_whatever_rust_log_says() {
        for format in [LogFormat::Human, LogFormat::Json] {
            let text = log_with(
                "trace,slack_morphism::hyper_tokio=trace,sqlx::query=debug,hyper=trace",
                format,
                || {
                    tracing::trace!(target: "slack_morphism::hyper_tokio::socket_mode", "raw-payload-1");
                    tracing::debug!(target: "slack_morphism::hyper_tokio", "raw-payload-2");
                    tracing::trace!(target: "hyper::proto::h1", "raw-headers-3");
                    tracing::debug!(target: "sqlx::query", "statement-4");
                    tracing::info!(target: "sqlx::query", "statement-5");
                    tracing::info!(target: "slack_morphism::listener", "kept-info-6");
                    tracing::warn!(target: "sqlx::pool", "kept-warn-7");
                    // recbot's own code follows RUST_LOG.
                    tracing::trace!(target: "recbot::core", "own-trace-8");
                    tracing::info!("token xoxb-1-2-SECRET in a line");
                },
            );
            for dropped in [
                "raw-payload-1",
                "raw-payload-2",
                "raw-headers-3",
                "statement-4",
                "statement-5",
            ] {
                assert!(!text.contains(dropped), "{dropped} in {text}");
            }
            for kept in ["kept-info-6", "kept-warn-7", "own-trace-8"] {
                assert!(text.contains(kept), "{kept} not in {text}");
            }
            assert!(
                text.contains("xoxb-[redacted]") && !text.contains("SECRET"),
                "{text}"
            );
        }
        // Without RUST_LOG: info for everyone.
        let text = log_with("", LogFormat::Human, || {
            tracing::debug!(target: "recbot::core", "own-debug");
            tracing::info!(target: "recbot::core", "own-info");
        });
        assert!(
            !text.contains("own-debug") && text.contains("own-info"),
            "{text}"
        );
    }
}
