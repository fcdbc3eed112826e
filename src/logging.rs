//! The service log (stderr): `RUST_LOG` filtering, human or JSON lines. Dependency crates are
//! capped at `info` whatever `RUST_LOG` says, because their debug output can include request
//! headers, and so credentials; recbot's own code never logs a secret.

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
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
