//! `[bilibili]`: Bilibili's endpoints (notes 2.1, 2.4, 2.6, 2.7) and the optional login
//! cookie that gives danmaku their senders' full names.

use serde::Deserialize;

use super::{check_urls, fail};
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bilibili {
    /// `https://api.bilibili.com`: `/x/web-interface/nav`, where the WBI keys come from.
    pub api_url: String,
    /// `https://api.live.bilibili.com`: room_init, getRoomPlayInfo, getDanmuInfo.
    pub live_api_url: String,
    /// A logged-in browser's `Cookie` header (`SESSDATA=…; buvid3=…; DedeUserID=…`):
    /// without it danmaku arrive with masked names and uid 0 (notes 2.7).
    pub cookie: Option<Secret>,
}

impl Default for Bilibili {
    fn default() -> Self {
        Bilibili {
            api_url: "https://api.bilibili.com".into(),
            live_api_url: "https://api.live.bilibili.com".into(),
            cookie: None,
        }
    }
}

impl Bilibili {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        check_urls([
            ("bilibili.api_url", &self.api_url),
            ("bilibili.live_api_url", &self.live_api_url),
        ])?;
        if let Some(cookie) = &self.cookie {
            let value = cookie.expose();
            if value.trim().is_empty() {
                return fail(
                    "bilibili.cookie",
                    "must not be empty (leave the key out instead)",
                );
            }
            // A whole Cookie header: `name=value` pairs joined by `; `. No line breaks or
            // control characters, which would add headers.
            if value.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
                return fail(
                    "bilibili.cookie",
                    "must be a Cookie header value on one line (printable ASCII, pairs like \
                     SESSDATA=…; buvid3=…)",
                );
            }
            if !value.split(';').all(|pair| pair.trim().contains('=')) {
                return fail(
                    "bilibili.cookie",
                    "must be `name=value` pairs separated by `;` (SESSDATA=…; buvid3=…)",
                );
            }
        }
        Ok(())
    }

    /// `check-config`'s line.
    pub(super) fn summary(&self) -> String {
        if self.cookie.is_some() {
            "login cookie set (danmaku with full names)".into()
        } else {
            "anonymous (danmaku names masked after a few minutes)".into()
        }
    }
}
