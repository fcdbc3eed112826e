//! A chat message from a platform other than Twitch (Chzzk chat, Bilibili danmaku) as its
//! protocol codec parsed it: the fields the day files and chat replays need, and the raw
//! command exactly as received (decompressed), so nothing is lost when a field is not parsed.
//! Produced by `chzzk::chat` and `bilibili::danmaku`; written by the chat writer once the
//! integrator wires platform chat in.

use recbot_commands::Platform;

/// A paid amount as the platform states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub value: u64,
    /// `KRW` (Chzzk's `payAmount`, cheese), `CNY` (a Bilibili super chat's `price`), `gold`
    /// (a Bilibili gift's `total_coin` in gold coins, 1000 = 1 CNY), `silver` (free coins).
    pub unit: &'static str,
}

/// One parsed chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformLine {
    pub platform: Platform,
    /// The protocol's command: `DANMU_MSG`, `SEND_GIFT`, … (suffix stripped), or Chzzk's
    /// `cmd` number with its message type (`93101`, `93102`).
    pub cmd: String,
    pub user_id: Option<String>,
    /// The sender's name as sent (Bilibili masks it without a login cookie: kept as sent).
    pub name: Option<String>,
    pub text: Option<String>,
    /// When the platform says it was sent (Unix ms).
    pub time_ms: Option<i64>,
    pub amount: Option<Amount>,
    /// The message's JSON exactly as received (for Chzzk: the item of the frame's `bdy`).
    pub raw: String,
}
