//! `[chzzk]`: Chzzk's endpoints (notes 1.2, 1.5), the Naver login cookies that unlock adult
//! streams and chat, and the stepped poll schedule of live detection (issue 14).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{check_urls, fail};
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chzzk {
    /// `https://api.chzzk.naver.com`: live-detail, live-status, channel info.
    pub api_url: String,
    /// `https://comm-api.game.naver.com/nng_main`: the chat access token.
    pub chat_api_url: String,
    /// The chat WebSocket; `{n}` is replaced by the server number 1..=9 derived from the
    /// chat channel id (notes 1.5, step 3). A template without `{n}` is one fixed address.
    pub chat_ws_url: String,
    /// The Naver login cookies `NID_AUT` and `NID_SES` (an adult-verified account): needed
    /// for 19+ streams and their chat. Both or neither.
    pub nid_aut: Option<Secret>,
    pub nid_ses: Option<Secret>,
    /// Waits between checks of an offline channel, stepping down after each miss and back
    /// to the start when the channel was live or was just added.
    #[serde(deserialize_with = "poll_steps")]
    pub poll_schedule: Vec<PollStep>,
}

impl Default for Chzzk {
    fn default() -> Self {
        Chzzk {
            api_url: "https://api.chzzk.naver.com".into(),
            chat_api_url: "https://comm-api.game.naver.com/nng_main".into(),
            chat_ws_url: "wss://kr-ss{n}.chat.naver.com/chat".into(),
            nid_aut: None,
            nid_ses: None,
            poll_schedule: PollStep::default_schedule(),
        }
    }
}

/// One step of a poll schedule: `count` checks, each `wait` after the previous miss.
/// Written `"<n>m x<count>"` or `"<n>s x<count>"` (`x1` may be left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollStep {
    pub wait: Duration,
    pub count: u32,
}

/// Longest wait of one step: a day. More is a typo, not a schedule.
const MAX_STEP_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Most checks in one step.
const MAX_STEP_COUNT: u32 = 10_000;

impl PollStep {
    /// The schedule (the earlier Chzzk recorder's): 1 min for the first 12 misses,
    /// then 3, 10, 15, 30 min ×12 each, 40 min ×2, then 50 min once, and start over.
    pub fn default_schedule() -> Vec<PollStep> {
        [
            (1, 12),
            (3, 12),
            (10, 12),
            (15, 12),
            (30, 12),
            (40, 2),
            (50, 1),
        ]
        .into_iter()
        .map(|(minutes, count)| PollStep {
            wait: Duration::from_secs(minutes * 60),
            count,
        })
        .collect()
    }

    pub fn parse(text: &str) -> Result<PollStep, String> {
        let bad = || {
            format!(
                "`{text}` is not a poll step; write it like \"3m x12\" (12 checks 3 minutes \
                 apart) or \"30s\""
            )
        };
        let mut words = text.split_whitespace();
        let wait = words.next().ok_or_else(bad)?;
        let count = match words.next() {
            None => 1,
            Some(c) => c
                .strip_prefix('x')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(bad)?,
        };
        if words.next().is_some() {
            return Err(bad());
        }
        let (number, unit) = wait.split_at(wait.len().saturating_sub(1));
        let number: u64 = number.parse().map_err(|_| bad())?;
        let wait = match unit {
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            _ => return Err(bad()),
        };
        if wait.is_zero() || wait > MAX_STEP_WAIT {
            return Err(format!(
                "`{text}`: a wait is at least 1s and at most 24 hours"
            ));
        }
        if count == 0 || count > MAX_STEP_COUNT {
            return Err(format!(
                "`{text}`: a step has between 1 and {MAX_STEP_COUNT} checks"
            ));
        }
        Ok(PollStep { wait, count })
    }
}

impl fmt::Display for PollStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.wait.as_secs();
        if secs.is_multiple_of(60) {
            write!(f, "{}m", secs / 60)?;
        } else {
            write!(f, "{secs}s")?;
        }
        if self.count != 1 {
            write!(f, " x{}", self.count)?;
        }
        Ok(())
    }
}

fn poll_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PollStep>, D::Error> {
    let texts = <Vec<String> as Deserialize>::deserialize(d)?;
    texts
        .iter()
        .map(|t| PollStep::parse(t))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// A cookie value that can go into a `Cookie:` header as is: printable ASCII without
/// separators, so a pasted value cannot add a header or another cookie.
pub(super) fn check_cookie_value(key: &str, value: &str) -> Result<(), (String, String)> {
    if value.is_empty() {
        return fail(key, "must not be empty (leave the key out instead)");
    }
    if value
        .bytes()
        .any(|b| !b.is_ascii_graphic() || matches!(b, b';' | b',' | b'"' | b'\\'))
    {
        return fail(
            key,
            "must be the cookie's value alone: printable ASCII without spaces, `;`, `,`, \
             quotes or backslashes",
        );
    }
    Ok(())
}

impl Chzzk {
    /// Whether the Naver login cookies are configured.
    pub fn has_login(&self) -> bool {
        self.nid_aut.is_some() && self.nid_ses.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        check_urls([
            ("chzzk.api_url", &self.api_url),
            ("chzzk.chat_api_url", &self.chat_api_url),
        ])?;
        check_ws_template(&self.chat_ws_url)?;
        if self.nid_aut.is_some() != self.nid_ses.is_some() {
            return fail(
                "chzzk.nid_ses",
                "nid_aut and nid_ses go together (both Naver login cookies, or neither)",
            );
        }
        for (key, value) in [
            ("chzzk.nid_aut", &self.nid_aut),
            ("chzzk.nid_ses", &self.nid_ses),
        ] {
            if let Some(v) = value {
                check_cookie_value(key, v.expose())?;
            }
        }
        if self.poll_schedule.is_empty() {
            return fail(
                "chzzk.poll_schedule",
                "must list at least one step, such as [\"1m x12\", \"3m x12\"]",
            );
        }
        Ok(())
    }

    /// `check-config`'s line.
    pub(super) fn summary(&self) -> String {
        let steps: Vec<String> = self.poll_schedule.iter().map(|s| s.to_string()).collect();
        format!(
            "{}; offline channels checked after {} (then again from the start)",
            if self.has_login() {
                "Naver login cookies set (adult streams and chat)"
            } else {
                "anonymous (no adult streams; chat where allowed)"
            },
            steps.join(", ")
        )
    }
}

/// `chat_ws_url` with `{n}` replaced must be a ws(s) address with a host.
fn check_ws_template(template: &str) -> Result<(), (String, String)> {
    let key = "chzzk.chat_ws_url";
    if template.matches("{n}").count() > 1 {
        return fail(key, "may contain `{n}` once (the chat server number)");
    }
    match url::Url::parse(&template.replace("{n}", "1")) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some() => Ok(()),
        Ok(_) => fail(key, "must be a ws:// or wss:// address"),
        Err(e) => Err((
            key.into(),
            format!("`{template}` is not a valid address: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_steps_parse_and_print() {
        assert_eq!(
            PollStep::parse("3m x12"),
            Ok(PollStep {
                wait: Duration::from_secs(180),
                count: 12
            })
        );
        assert_eq!(PollStep::parse("30s").map(|s| s.count), Ok(1));
        for bad in [
            "",
            "3",
            "3h",
            "0m",
            "3m x0",
            "3m 12",
            "3m x12 x1",
            "-1m",
            "1441m",
            "m",
        ] {
            assert!(PollStep::parse(bad).is_err(), "{bad}");
        }
        let printed: Vec<String> = PollStep::default_schedule()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            printed,
            ["1m x12", "3m x12", "10m x12", "15m x12", "30m x12", "40m x2", "50m"]
        );
        for s in PollStep::default_schedule() {
            assert_eq!(PollStep::parse(&s.to_string()), Ok(s));
        }
    }
}
