//! `[storage]`: where the database, recordings and chat logs live, and the disk limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::fail;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// State database, and by default recordings/ and chat/, live here.
    pub data_dir: PathBuf,
    /// Default: `<data_dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Default: `<data_dir>/chat`.
    pub chat_dir: Option<PathBuf>,
    /// A `DiskLow` event is posted when the recordings disk is fuller than this.
    pub warn_usage_percent: u8,
    /// Recording stops cleanly (parts finalized) below this much free space.
    pub min_free_gb: f64,
    /// Seconds between two free-space checks of the recordings disk.
    pub disk_check_secs: u64,
    /// Seconds a `disk` answer (a walk of the recordings and chat folders) is reused; 0 walks
    /// for every `disk` (still one walk at a time, shared by the requests waiting for it).
    pub disk_report_secs: u64,
    /// A recording also checks free space after writing this many MB (0: after every
    /// segment), so a fast stream cannot fill the disk between two timer checks.
    pub disk_check_mb: u64,
    /// The state database on a PostgreSQL server (`postgres://user:password@host:port/db`)
    /// instead of the SQLite file under `data_dir`. A secret: shown without its password.
    pub database_url: Option<Secret>,
    /// How long start-up waits for the PostgreSQL server before giving up.
    pub connect_timeout_secs: u64,
}

/// Where the state database is, as [`Storage::database`] reads the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server: its URL (with the password) and how long to wait for it.
    Postgres {
        url: Secret,
        connect_timeout: Duration,
    },
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("data"),
            recordings_dir: None,
            chat_dir: None,
            warn_usage_percent: 85,
            min_free_gb: 2.0,
            disk_check_secs: 60,
            disk_report_secs: 60,
            disk_check_mb: 256,
            database_url: None,
            connect_timeout_secs: 60,
        }
    }
}

impl Storage {
    /// The SQLite file's place (used when no `database_url` is set).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("recbot.sqlite")
    }

    /// The state database this configuration names: PostgreSQL when `database_url` is set,
    /// else the SQLite file under `data_dir`.
    pub fn database(&self) -> Database {
        match &self.database_url {
            Some(url) => Database::Postgres {
                url: url.clone(),
                connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            },
            None => Database::Sqlite(self.database_path()),
        }
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    pub fn chat_dir(&self) -> PathBuf {
        self.chat_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("chat"))
    }
}

impl Storage {
    /// The `[storage]` checks types alone cannot make.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=100).contains(&self.warn_usage_percent) {
            return fail(
                "storage.warn_usage_percent",
                "must be a percentage between 1 and 100",
            );
        }
        if !(self.min_free_gb.is_finite() && self.min_free_gb >= 0.0) {
            return fail("storage.min_free_gb", "must be zero or more gigabytes");
        }
        if self.disk_check_secs == 0 {
            return fail("storage.disk_check_secs", "must be at least 1 second");
        }
        if self.disk_report_secs > 3600 {
            return fail(
                "storage.disk_report_secs",
                "must be at most 3600 seconds (an hour-old `disk` answer is stale)",
            );
        }
        if let Some(url) = &self.database_url {
            if let Err(why) = shown_postgres_url(url.expose()) {
                return fail("storage.database_url", &why);
            }
        }
        if !(1..=3600).contains(&self.connect_timeout_secs) {
            return fail(
                "storage.connect_timeout_secs",
                "must be between 1 and 3600 seconds",
            );
        }
        Ok(())
    }

    /// The `check-config` lines on where data goes and the disk warnings.
    pub(super) fn summary(&self) -> String {
        format!(
            "state database:  {}\n\
             recordings:      {}\n\
             chat logs:       {}\n\
             disk warnings:   above {}% used, recording stops below {} GB free\n",
            self.database_summary(),
            self.recordings_dir().display(),
            self.chat_dir().display(),
            self.warn_usage_percent,
            self.min_free_gb,
        )
    }
}

impl Storage {
    /// Which backend holds the state, for `check-config` (never the password).
    fn database_summary(&self) -> String {
        match &self.database_url {
            Some(url) => format!(
                "PostgreSQL {} (start-up waits up to {} s for it)",
                shown_postgres_url(url.expose()).unwrap_or_else(|e| e),
                self.connect_timeout_secs
            ),
            None => format!("SQLite {}", self.database_path().display()),
        }
    }
}

/// A PostgreSQL URL as it may be shown (`postgres://user@host:port/db`: no password, no
/// query), or why it is not one.
pub fn shown_postgres_url(url: &str) -> Result<String, String> {
    // Never echo the value itself: it holds the password.
    let parsed = url::Url::parse(url).map_err(|e| {
        format!("must be a URL like postgres://user:password@host:5432/recbot ({e})")
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "must start with postgres:// or postgresql:// (PostgreSQL is the only server \
             database; leave it out for SQLite), not {}://",
            parsed.scheme()
        ));
    }
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err("must name the server's host (postgres://user@host:5432/db)".into()),
    };
    let user = match parsed.username() {
        "" => String::new(),
        user => format!("{user}@"),
    };
    Ok(format!(
        "postgres://{user}{host}:{}{}",
        parsed.port().unwrap_or(5432),
        parsed.path()
    ))
}
