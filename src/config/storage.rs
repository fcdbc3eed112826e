//! `[storage]`: where the database, recordings and chat logs live, and the disk limits.

use std::path::PathBuf;

use serde::Deserialize;

use super::fail;

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
        }
    }
}

impl Storage {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("recbot.sqlite")
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
        Ok(())
    }

    /// The `check-config` lines on where data goes and the disk warnings.
    pub(super) fn summary(&self) -> String {
        format!(
            "state database:  {}\n\
             recordings:      {}\n\
             chat logs:       {}\n\
             disk warnings:   above {}% used, recording stops below {} GB free\n",
            self.database_path().display(),
            self.recordings_dir().display(),
            self.chat_dir().display(),
            self.warn_usage_percent,
            self.min_free_gb,
        )
    }
}
