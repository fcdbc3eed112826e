//! `[summary]`: the summary chart of each finished broadcast (`<first part>.summary.png`,
//! posted in the broadcast's thread).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SummaryChart {
    /// Draw the chart when a session ends (default true).
    pub enabled: bool,
}

impl Default for SummaryChart {
    fn default() -> Self {
        SummaryChart { enabled: true }
    }
}

impl SummaryChart {
    /// The `check-config` line.
    pub fn summary(&self) -> String {
        match self.enabled {
            true => "on (<first part>.summary.png, posted in the broadcast's thread)".into(),
            false => "off".into(),
        }
    }
}
