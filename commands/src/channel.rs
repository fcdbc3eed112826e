//! Channel references across platforms: what an operator types for a channel on Twitch,
//! Chzzk or Bilibili Live (a bare login, `<platform> <id>`, or the platform's address), and
//! the stable watch-list key each one has (`chzzk:<id>`, `bilibili:<room>`, `hls:<name>`; a
//! Twitch login is written bare, as watch lists have always held it).
//!
//! Like [`Login`], deliberately not a general URL parser: the host must be exactly one the
//! platform uses, and anything a URL library would quietly reinterpret (user info, ports,
//! `..`, look-alike characters) is refused, not normalized.

use std::fmt;

use crate::login::Login;
use crate::text::{describe_char, excerpt, unwrap_slack_link};

/// Length of a Chzzk channel id: 32 lowercase hex characters (notes 1.1).
pub const CHZZK_ID_LEN: usize = 32;
/// Most digits a Bilibili room id may have. The notes give no upper bound (real ids seen are
/// up to 8 digits, short ids 1–3); 12 digits leaves room for growth while refusing a paste of
/// a long number. recbot's own bound, not the platform's.
pub const MAX_ROOM_DIGITS: usize = 12;

/// The platforms recbot can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Twitch,
    Chzzk,
    Bilibili,
    /// Any HLS playlist, named by the operator (`add hls <url> <name>`).
    Hls,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Twitch,
        Platform::Chzzk,
        Platform::Bilibili,
        Platform::Hls,
    ];

    /// The word used in keys, commands, sidecars and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Twitch => "twitch",
            Platform::Chzzk => "chzzk",
            Platform::Bilibili => "bilibili",
            Platform::Hls => "hls",
        }
    }

    /// The platform named by `word` (case-insensitive).
    pub fn parse(word: &str) -> Result<Platform, String> {
        let lower = word.to_ascii_lowercase();
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == lower)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a platform; use one of twitch, chzzk, bilibili, hls",
                    excerpt(word)
                )
            })
    }

    /// How people call it, for messages.
    fn title(self) -> &'static str {
        match self {
            Platform::Twitch => "Twitch",
            Platform::Chzzk => "Chzzk",
            Platform::Bilibili => "Bilibili Live",
            Platform::Hls => "HLS",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Chzzk channel id: exactly 32 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChzzkId(String);

impl ChzzkId {
    /// `input` as a channel id; upper-case hex is accepted and lowered (notes 1.1).
    pub fn parse(input: &str) -> Result<ChzzkId, String> {
        if let Some(bad) = input.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{}` is not a Chzzk channel id: it is {CHZZK_ID_LEN} hex digits (0-9, a-f), \
                 found {}",
                excerpt(input),
                describe_char(bad)
            ));
        }
        if input.len() != CHZZK_ID_LEN {
            return Err(format!(
                "`{}` is not a Chzzk channel id: it has {} hex digits, a channel id has \
                 exactly {CHZZK_ID_LEN}",
                excerpt(input),
                input.len()
            ));
        }
        Ok(ChzzkId(input.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChzzkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChzzkId({})", self.0)
    }
}

impl fmt::Display for ChzzkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Bilibili Live room id as typed: it may be a short id (`3`, `76`) that `room_init`
/// resolves to the real one (notes 2.1). Never 0, at most [`MAX_ROOM_DIGITS`] digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(u64);

impl RoomId {
    pub fn parse(input: &str) -> Result<RoomId, String> {
        if input.is_empty() {
            return Err("the Bilibili room id is empty".into());
        }
        if let Some(bad) = input.chars().find(|c| !c.is_ascii_digit()) {
            return Err(format!(
                "`{}` is not a Bilibili room id: only digits are allowed, found {}",
                excerpt(input),
                describe_char(bad)
            ));
        }
        let digits = input.trim_start_matches('0');
        if digits.is_empty() {
            return Err("0 is not a Bilibili room id".into());
        }
        if digits.len() > MAX_ROOM_DIGITS {
            return Err(format!(
                "`{}` is too long for a Bilibili room id ({} digits, at most {MAX_ROOM_DIGITS})",
                excerpt(input),
                digits.len()
            ));
        }
        // At most 12 digits: fits a u64.
        digits
            .parse()
            .map(RoomId)
            .map_err(|_| format!("`{}` is not a Bilibili room id", excerpt(input)))
    }

    /// A room id from a remote answer (`room_init`'s real id); refuses 0 like [`Self::parse`].
    pub fn from_number(n: u64) -> Result<RoomId, String> {
        RoomId::parse(&n.to_string())
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({})", self.0)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One channel on one platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelRef {
    Twitch(Login),
    Chzzk(ChzzkId),
    Bilibili(RoomId),
    /// An HLS source's name (`add hls <url> <name>`).
    Hls(Login),
}

const CHZZK_HOSTS: [&str; 1] = ["chzzk.naver.com"];
const BILIBILI_HOSTS: [&str; 1] = ["live.bilibili.com"];
const TWITCH_HOSTS: [&str; 4] = ["twitch.tv", "www.twitch.tv", "m.twitch.tv", "go.twitch.tv"];

impl ChannelRef {
    /// Parses what an operator typed: `somelogin` (Twitch), `twitch <login>`, `chzzk <id>`,
    /// `bilibili <room>`, or an address on twitch.tv, chzzk.naver.com or live.bilibili.com.
    pub fn parse(input: &str) -> Result<ChannelRef, String> {
        let input = unwrap_slack_link(input.trim());
        if input.is_empty() {
            return Err("a channel is missing".into());
        }
        if let Some((word, rest)) = input.split_once([' ', '\t']) {
            return Self::with_platform(word, rest.trim());
        }
        if looks_like_address(input) {
            return Self::from_address(input);
        }
        if input.len() == CHZZK_ID_LEN && input.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{}` looks like a Chzzk channel id; write `chzzk {}`",
                excerpt(input),
                excerpt(input)
            ));
        }
        Login::parse(input).map(ChannelRef::Twitch)
    }

    /// `<platform> <id>`: the id in that platform's own form (a Twitch login may also be its
    /// address, as with a bare login).
    fn with_platform(word: &str, id: &str) -> Result<ChannelRef, String> {
        let platform = Platform::parse(word)?;
        if id.is_empty() {
            return Err(format!("the {} channel is missing", platform.title()));
        }
        if id.contains([' ', '\t']) {
            return Err(format!(
                "`{}` has more than one word; give one {} channel",
                excerpt(id),
                platform.title()
            ));
        }
        match platform {
            Platform::Twitch => Login::parse(id).map(ChannelRef::Twitch),
            Platform::Chzzk => ChzzkId::parse(id).map(ChannelRef::Chzzk),
            Platform::Bilibili => RoomId::parse(id).map(ChannelRef::Bilibili),
            Platform::Hls => Err(
                "an HLS source is added with its playlist: `add hls <playlist URL> <name>`".into(),
            ),
        }
    }

    /// An address on one of the platforms' hosts (scheme optional, http or https).
    fn from_address(input: &str) -> Result<ChannelRef, String> {
        let (host, path) = split_address(input)?;
        let host_lower = host.to_ascii_lowercase();
        if TWITCH_HOSTS.contains(&host_lower.as_str()) {
            return Login::parse(input).map(ChannelRef::Twitch);
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if CHZZK_HOSTS.contains(&host_lower.as_str()) {
            return chzzk_path(input, &segments);
        }
        if BILIBILI_HOSTS.contains(&host_lower.as_str()) {
            return bilibili_path(input, &segments);
        }
        Err(format!(
            "`{}` is not a Twitch, Chzzk or Bilibili Live address; for another HLS source use \
             `add hls <playlist URL> <name>`",
            excerpt(input)
        ))
    }

    pub fn platform(&self) -> Platform {
        match self {
            ChannelRef::Twitch(_) => Platform::Twitch,
            ChannelRef::Chzzk(_) => Platform::Chzzk,
            ChannelRef::Bilibili(_) => Platform::Bilibili,
            ChannelRef::Hls(_) => Platform::Hls,
        }
    }

    /// The id within the platform: a login, a channel id, a room id, a name. Always safe as
    /// one path component (ASCII letters, digits, `_`).
    pub fn id(&self) -> String {
        match self {
            ChannelRef::Twitch(l) | ChannelRef::Hls(l) => l.as_str().to_string(),
            ChannelRef::Chzzk(c) => c.as_str().to_string(),
            ChannelRef::Bilibili(r) => r.to_string(),
        }
    }

    /// The stable watch-list key: `somelogin` for Twitch (as stored today), else
    /// `<platform>:<id>`. [`ChannelRef::from_key`] reads it back.
    pub fn key(&self) -> String {
        match self {
            ChannelRef::Twitch(l) => l.as_str().to_string(),
            other => format!("{}:{}", other.platform(), other.id()),
        }
    }

    /// Reads a key written by [`ChannelRef::key`] (also `twitch:<login>`). Strict: no
    /// addresses, no case folding of the platform word beyond what `key` writes.
    pub fn from_key(key: &str) -> Result<ChannelRef, String> {
        let Some((platform, id)) = key.split_once(':') else {
            return Login::from_stored(key).map(ChannelRef::Twitch);
        };
        match platform {
            "twitch" => Login::from_stored(id).map(ChannelRef::Twitch),
            "hls" => Login::from_stored(id).map(ChannelRef::Hls),
            "chzzk"
                if id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                ChzzkId::parse(id).map(ChannelRef::Chzzk)
            }
            "bilibili" if !id.starts_with('0') => RoomId::parse(id).map(ChannelRef::Bilibili),
            _ => Err(format!("`{}` is not a stored channel key", excerpt(key))),
        }
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

fn looks_like_address(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    lower.contains("://")
        || lower.contains('/')
        || lower.contains("twitch.tv")
        || lower.contains("chzzk.naver.com")
        || lower.contains("bilibili.com")
}

/// The host and the rest of an address. Refuses other schemes, user info (`user@host`) and
/// ports: none of the platforms' channel addresses have them, and a host checked with them
/// present is a host not checked.
fn split_address(input: &str) -> Result<(&str, &str), String> {
    let lower = input.to_ascii_lowercase();
    let rest = match lower.find("://") {
        Some(i) if matches!(&lower[..i], "http" | "https") => &input[i + 3..],
        Some(_) => {
            return Err(format!(
                "`{}` is not a channel address: only http and https addresses are accepted",
                excerpt(input)
            ))
        }
        None => input,
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(bad) = host.chars().find(|c| matches!(c, '@' | ':' | '\\')) {
        return Err(format!(
            "`{}` is not a channel address: its host part contains {} (user names and ports \
             are not accepted)",
            excerpt(input),
            describe_char(bad)
        ));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "`{}` is not a channel address: its host contains {}",
            excerpt(input),
            describe_char(bad)
        ));
    }
    Ok((host, path))
}

/// `/live/<id>`, `/<id>` (channel home) and `/embed/live/<id>` (notes 1.1); VODs and clips
/// are refused by name.
fn chzzk_path(input: &str, segments: &[&str]) -> Result<ChannelRef, String> {
    let id = match segments {
        ["live", id] | ["embed", "live", id] => id,
        [first, ..] if matches!(*first, "video" | "clips") => {
            return Err(format!(
                "`{}` is a Chzzk video or clip; recbot records live channels: give the \
                 channel's address (https://chzzk.naver.com/live/<channel id>)",
                excerpt(input)
            ))
        }
        [id] => id,
        _ => {
            return Err(format!(
                "`{}` is not a Chzzk channel address; give one like \
                 https://chzzk.naver.com/live/<channel id>",
                excerpt(input)
            ))
        }
    };
    ChzzkId::parse(id).map(ChannelRef::Chzzk)
}

/// `/<room>` and `/blanc/<room>`, with any query string (notes 2.1).
fn bilibili_path(input: &str, segments: &[&str]) -> Result<ChannelRef, String> {
    match segments {
        [room] | ["blanc", room] => RoomId::parse(room).map(ChannelRef::Bilibili),
        _ => Err(format!(
            "`{}` is not a Bilibili Live room address; give one like \
             https://live.bilibili.com/<room>",
            excerpt(input)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c68b8ef525fb3d2fa146344d84991753";

    fn key(input: &str) -> Result<String, String> {
        ChannelRef::parse(input).map(|c| c.key())
    }

    fn refused(input: &str, fragment: &str) {
        match ChannelRef::parse(input) {
            Ok(c) => panic!("input {input:?} was accepted as {c:?}"),
            Err(e) => assert!(
                e.contains(fragment),
                "input {input:?}: error {e:?} should contain {fragment:?}"
            ),
        }
    }

    #[test]
    fn twitch_forms_stay_as_today() {
        for input in [
            "somelogin",
            "SomeLogin",
            "@somelogin",
            "twitch somelogin",
            "Twitch https://www.twitch.tv/somelogin",
            "https://www.twitch.tv/somelogin",
            "twitch.tv/somelogin?x=y",
            "<https://www.twitch.tv/somelogin|twitch.tv/somelogin>",
        ] {
            assert_eq!(key(input).as_deref(), Ok("somelogin"), "{input}");
        }
    }

    #[test]
    fn chzzk_forms_give_one_key() {
        let want = format!("chzzk:{ID}");
        for input in [
            format!("https://chzzk.naver.com/live/{ID}"),
            format!("https://chzzk.naver.com/{ID}"),
            format!("chzzk.naver.com/{ID}"),
            format!("http://CHZZK.naver.com/live/{ID}/?from=x#y"),
            format!("https://chzzk.naver.com/embed/live/{ID}"),
            format!("chzzk {ID}"),
            format!("CHZZK {}", ID.to_ascii_uppercase()),
            format!("<https://chzzk.naver.com/live/{ID}|chzzk>"),
        ] {
            assert_eq!(key(&input), Ok(want.clone()), "{input}");
        }
    }

    #[test]
    fn bilibili_forms_give_one_key() {
        for (input, want) in [
            ("https://live.bilibili.com/23058", "bilibili:23058"),
            (
                "https://live.bilibili.com/23058?broadcast_type=0&is_room_feed=1",
                "bilibili:23058",
            ),
            ("live.bilibili.com/blanc/76", "bilibili:76"),
            ("bilibili 3", "bilibili:3"),
            ("bilibili 0023058", "bilibili:23058"),
        ] {
            assert_eq!(key(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let refs = [
            ChannelRef::parse("somelogin").unwrap(),
            ChannelRef::parse(&format!("chzzk {ID}")).unwrap(),
            ChannelRef::parse("bilibili 23058").unwrap(),
            ChannelRef::Hls(Login::parse_name("studio").unwrap()),
        ];
        for r in refs {
            assert_eq!(ChannelRef::from_key(&r.key()), Ok(r.clone()), "{r:?}");
            assert_eq!(r.to_string(), r.key());
        }
        assert_eq!(
            ChannelRef::from_key("twitch:somelogin"),
            ChannelRef::parse("somelogin")
        );
        for bad in [
            "chzzk:C68B8EF525FB3D2FA146344D84991753",
            "bilibili:0",
            "bilibili:023058",
            "youtube:abc",
            "chzzk:",
            "hls:../x",
            "",
        ] {
            assert!(ChannelRef::from_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_input_is_refused_by_name() {
        refused("", "missing");
        // `chzzk` alone is a Twitch login like any other word.
        assert_eq!(key("chzzk").as_deref(), Ok("chzzk"));
        refused(
            &format!("https://evil.example/live/{ID}"),
            "not a Twitch, Chzzk",
        );
        refused(
            &format!("https://chzzk.naver.com.evil.example/live/{ID}"),
            "not a Twitch, Chzzk",
        );
        refused(&format!("https://user@chzzk.naver.com/live/{ID}"), "`@`");
        refused(&format!("https://chzzk.naver.com:8443/live/{ID}"), "`:`");
        refused("https://live.bilibili.com:80/23058", "`:`");
        refused("https://a:b@live.bilibili.com/23058", "`:`");
        refused(
            &format!("ftp://chzzk.naver.com/live/{ID}"),
            "only http and https",
        );
        refused(
            &format!("https://chzzk.naver.com/live/{}", &ID[..31]),
            "exactly 32",
        );
        refused(&format!("https://chzzk.naver.com/live/{ID}0"), "exactly 32");
        refused(&format!("chzzk {}g", &ID[..31]), "found `g`");
        refused("https://chzzk.naver.com/video/1234", "video or clip");
        refused("https://chzzk.naver.com/clips/abc", "video or clip");
        refused(
            &format!("https://chzzk.naver.com/live/../{ID}"),
            "not a Chzzk channel address",
        );
        refused(ID, "write `chzzk");
        refused("bilibili 0", "0 is not");
        refused("bilibili 000", "0 is not");
        refused("https://live.bilibili.com/0", "0 is not");
        refused("bilibili 1234567890123", "too long");
        refused(&format!("bilibili {}", "9".repeat(10_000)), "too long");
        refused("bilibili -5", "found `-`");
        refused("bilibili 12a", "found `a`");
        refused(
            "https://live.bilibili.com/video/BV1xx",
            "not a Bilibili Live room",
        );
        refused("https://live.bilibili.com/", "not a Bilibili Live room");
        // Full-width digits and a Cyrillic `а` look like the real thing.
        refused("bilibili ２３０５８", "U+FF12");
        refused(&format!("chzzk {}а", &ID[..31]), "U+0430");
        refused(&format!("https://chzzk.navеr.com/live/{ID}"), "U+0435");
        refused("https://live.bilibili.com\u{2215}23058", "U+2215");
        refused("youtube abc", "not a platform");
        refused("hls studio", "add hls <playlist URL> <name>");
        refused(&format!("chzzk {ID} extra"), "more than one word");
    }

    #[test]
    fn platform_words() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Ok(p));
        }
        assert!(Platform::parse("afreeca").is_err());
        assert_eq!(
            RoomId::from_number(0).map(RoomId::get),
            Err("0 is not a Bilibili room id".into())
        );
        assert_eq!(RoomId::from_number(23058).map(RoomId::get), Ok(23058));
    }
}
