//! `[email]`: critical events mailed as digests through an SMTP server (off unless `smtp_url`
//! is set).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use super::fail;
use crate::event::EventKind;
use crate::secret::Secret;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://`: plain TCP upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `smtp://` with `allow_plaintext = true`: no encryption (a local relay).
    Plain,
}

/// Where the server is and how to reach it, from `smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// `smtp://host:587` (STARTTLS required) or `smtps://host:465`; empty: no e-mail.
    pub smtp_url: String,
    /// `smtp://` without STARTTLS, for a local relay.
    pub allow_plaintext: bool,
    /// PEM certificates trusted besides the public roots (a relay with a private CA).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// Stable event names mailed.
    pub events: Vec<String>,
    /// Events within this many minutes of the first one go in one mail.
    pub digest_minutes: f64,
    /// How long one SMTP command may take.
    pub timeout_secs: u64,
    /// First wait before a failed mail is tried again; doubles up to `retry_max_secs`.
    pub retry_initial_ms: u64,
    pub retry_max_secs: u64,
}

/// The events mailed by default: failures that need a human.
pub const DEFAULT_EVENTS: &[&str] = &[
    "UploadFailed",
    "AuthRequired",
    "DiskLow",
    "RecordingFailed",
    "LiveCheckFailed",
    "ChatDropped",
    "WebhookRefused",
    "DeliveryFailing",
];

impl Default for Email {
    fn default() -> Self {
        Email {
            smtp_url: String::new(),
            allow_plaintext: false,
            ca_file: None,
            username: None,
            password: None,
            from: String::new(),
            to: Vec::new(),
            events: DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect(),
            digest_minutes: 10.0,
            timeout_secs: 30,
            retry_initial_ms: 1000,
            retry_max_secs: 600,
        }
    }
}

impl Email {
    pub fn is_configured(&self) -> bool {
        !self.smtp_url.is_empty()
    }

    /// Whether events of stable name `kind` are mailed.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }

    /// The server from `smtp_url` (checked by `validate`).
    pub fn server(&self) -> Result<SmtpServer, String> {
        let url = url::Url::parse(&self.smtp_url)
            .map_err(|e| format!("`{}` is not a valid address: {e}", self.smtp_url))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{}` names no host", self.smtp_url))?
            .trim_matches(['[', ']'])
            .to_string();
        let (security, port) = match (url.scheme(), self.allow_plaintext) {
            ("smtps", false) => (SmtpSecurity::Tls, 465),
            ("smtps", true) => {
                return Err("smtps:// is encrypted: allow_plaintext = true contradicts it".into())
            }
            ("smtp", false) => (SmtpSecurity::StartTls, 587),
            ("smtp", true) => (SmtpSecurity::Plain, 25),
            _ => return Err("must be smtp://host:port (STARTTLS) or smtps://host:port".into()),
        };
        if !url.username().is_empty() || url.password().is_some() || url.path().len() > 1 {
            return Err("only scheme, host and port: put the account in username/password".into());
        }
        Ok(SmtpServer {
            host,
            port: url.port().unwrap_or(port),
            security,
        })
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !self.is_configured() {
            return Ok(());
        }
        let server = self
            .server()
            .map_err(|m| ("email.smtp_url".to_string(), m))?;
        let loopback = matches!(server.host.as_str(), "localhost" | "127.0.0.1" | "::1");
        if server.security == SmtpSecurity::Plain && self.password.is_some() && !loopback {
            return fail(
                "email.allow_plaintext",
                "would send the password unencrypted to another machine: use STARTTLS \
                 (smtp://) or smtps://, or a relay on this machine",
            );
        }
        if let Some(ca_file) = &self.ca_file {
            if server.security == SmtpSecurity::Plain {
                return fail(
                    "email.ca_file",
                    "has no use without TLS (allow_plaintext = true)",
                );
            }
            certificates(ca_file).map_err(|m| ("email.ca_file".to_string(), m))?;
        }
        if self.username.is_some() != self.password.is_some() {
            return fail("email.password", "username and password go together");
        }
        let mailbox = |s: &str| s.parse::<lettre::message::Mailbox>().is_ok();
        if !mailbox(&self.from) {
            return fail(
                "email.from",
                "must be an address such as recbot@example.org",
            );
        }
        if self.to.is_empty() {
            return fail("email.to", "must list at least one address");
        }
        if let Some(bad) = self.to.iter().find(|t| !mailbox(t)) {
            return Err((
                "email.to".into(),
                format!("`{bad}` is not an e-mail address"),
            ));
        }
        if let Some(unknown) = self
            .events
            .iter()
            .find(|e| !EventKind::NAMES.contains(&e.as_str()))
        {
            return Err((
                "email.events".into(),
                format!("`{unknown}` is not an event name (see the README's E-mail and webhooks)"),
            ));
        }
        if !(self.digest_minutes.is_finite() && (0.0..=1440.0).contains(&self.digest_minutes)) {
            return fail("email.digest_minutes", "must be 0 to 1440 minutes");
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return fail("email.timeout_secs", "must be 1 to 300 seconds");
        }
        if self.retry_initial_ms == 0
            || self.retry_initial_ms > self.retry_max_secs * 1000
            || self.retry_max_secs > 3600
        {
            return fail(
                "email.retry_initial_ms",
                "must be more than 0 and at most retry_max_secs (at most 3600)",
            );
        }
        Ok(())
    }

    /// The certificates of `ca_file` (none without one), read at start-up (and checked when
    /// the configuration is loaded).
    pub fn extra_roots(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        self.ca_file.as_deref().map_or(Ok(Vec::new()), certificates)
    }

    /// The `check-config` line: server, security, recipients and events; never the password.
    pub(super) fn summary(&self) -> String {
        let Ok(server) = self.server() else {
            return "e-mail:          off (no [email] smtp_url)\n".into();
        };
        let security = match server.security {
            SmtpSecurity::Tls => "TLS",
            SmtpSecurity::StartTls => "STARTTLS required",
            SmtpSecurity::Plain => "plaintext (allow_plaintext)",
        };
        let trusted = match &self.ca_file {
            Some(ca_file) => format!(", also trusting {}", ca_file.display()),
            None => String::new(),
        };
        format!(
            "e-mail:          {}:{} ({security}{trusted}) to {}; digests of {} min: {}\n",
            server.host,
            server.port,
            self.to.join(", "),
            self.digest_minutes,
            self.events.join(", ")
        )
    }
}

/// The PEM certificates in `path`.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let read = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(&e))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}
