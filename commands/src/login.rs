//! Watch-list names: Twitch logins (given as `foo`, `@foo` or a channel URL), the names
//! given to non-Twitch HLS sources (both bare, one namespace, one set of rules), and the
//! platform keys of other platforms' channels (`chzzk:<32 hex>`, `bilibili:<room>`, see
//! [`ChannelRef::key`]). A key is never a file name as is: [`Login::path_safe`] is.

use std::fmt;

use crate::channel::{ChannelRef, ChzzkId, Platform};
use crate::text::{describe_char, excerpt};

/// Longest Twitch login. Twitch has required 4..=25 characters for years, but older accounts
/// with 1..=3 character logins still exist and stream, so the lower bound is 1.
pub const MAX_LOGIN_LEN: usize = 25;

/// A validated, lowercase watch-list name: `[a-z0-9_]{1,25}` for a Twitch login or an HLS
/// source's name, or a platform key `chzzk:<32 lowercase hex>` / `bilibili:<digits>`.
///
/// Never `.`/`..`, never a separator, a control character or anything outside ASCII; a bare
/// name is safe as a single path component, a key through [`Login::path_safe`] (`:` is not
/// allowed in file names everywhere).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Login(String);

impl Login {
    /// Parses what an operator typed for a Twitch channel: `foo`, `Foo`, `@foo`,
    /// `twitch.tv/foo`, `https://www.twitch.tv/foo?x=y` (Slack's `<url|label>` form too).
    pub fn parse(input: &str) -> Result<Login, String> {
        let input = crate::text::unwrap_slack_link(input.trim());
        if input.is_empty() {
            return Err("a Twitch login is missing".into());
        }
        let candidate = if let Some(rest) = input.strip_prefix('@') {
            rest
        } else if looks_like_url(input) {
            return login_from_url(input);
        } else {
            input
        };
        Self::validate(candidate, "Twitch login")
    }

    /// Parses a name given to a non-Twitch source (`add hls <url> <name>`); same rules as a
    /// login but no URL or `@` forms.
    pub fn parse_name(input: &str) -> Result<Login, String> {
        Self::validate(input.trim(), "name")
    }

    /// Wraps a name read back from our own storage; it was validated when it was stored.
    /// Platform keys (`chzzk:<id>`, `bilibili:<room>`) are read back strictly, as
    /// [`ChannelRef::from_key`] reads them.
    pub fn from_stored(name: &str) -> Result<Login, String> {
        if name.contains(':') {
            return match ChannelRef::from_key(name)? {
                c @ (ChannelRef::Chzzk(_) | ChannelRef::Bilibili(_)) => Ok(Login(c.key())),
                _ => Err(format!("`{}` is not a stored name", excerpt(name))),
            };
        }
        Self::validate(name, "stored name")
    }

    /// The watch-list key of a channel: a Twitch login or HLS name as it is, another
    /// platform's channel as its key (`chzzk:<id>`, `bilibili:<room>`).
    pub fn of_channel(channel: &ChannelRef) -> Login {
        match channel {
            ChannelRef::Twitch(l) | ChannelRef::Hls(l) => l.clone(),
            other => Login(other.key()),
        }
    }

    /// What an operator typed for a watched channel (`remove`, `status`, `cut`, `add`): a
    /// Twitch login in any of its forms, a Chzzk or Bilibili Live address, `<platform> <id>`,
    /// or a stored key (`chzzk:<id>`, as `list` shows it).
    pub fn parse_watched(input: &str) -> Result<Login, String> {
        let trimmed = input.trim();
        if trimmed.contains(':') && !trimmed.contains("://") {
            if let Ok(login) = Login::from_stored(&trimmed.to_ascii_lowercase()) {
                return Ok(login);
            }
        }
        let lower = trimmed.to_ascii_lowercase();
        let other_platform = lower.contains("chzzk.naver.com")
            || lower.contains("bilibili.com")
            || lower.starts_with("chzzk ")
            || lower.starts_with("bilibili ")
            || (trimmed.len() == crate::channel::CHZZK_ID_LEN
                && trimmed.chars().all(|c| c.is_ascii_hexdigit()));
        if other_platform {
            return ChannelRef::parse(input).map(|c| Login::of_channel(&c));
        }
        // Everything else as before: a Twitch login, with its own wording of refusals.
        Login::parse(input)
    }

    /// The platform the name is on: Chzzk or Bilibili Live for their keys, else Twitch (an
    /// HLS source's name is bare too: its watch entry says it is HLS).
    pub fn platform(&self) -> Platform {
        if self.0.starts_with("chzzk:") {
            Platform::Chzzk
        } else if self.0.starts_with("bilibili:") {
            Platform::Bilibili
        } else {
            Platform::Twitch
        }
    }

    /// The Chzzk channel of a `chzzk:<id>` key.
    pub fn chzzk_id(&self) -> Option<ChzzkId> {
        self.0
            .strip_prefix("chzzk:")
            .and_then(|id| ChzzkId::parse(id).ok())
    }

    /// The name as one file or folder name: `chzzk-<id>`, `bilibili-<room>`, else the name
    /// itself. Never `.`/`..`, never a separator; distinct names give distinct results (a
    /// bare name has no `-`).
    pub fn path_safe(&self) -> String {
        self.0.replace(':', "-")
    }

    fn validate(candidate: &str, what: &str) -> Result<Login, String> {
        if candidate.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        if let Some(bad) = candidate
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(format!(
                "`{}` is not a valid {what}: only letters, digits and `_` are allowed, found {}",
                excerpt(candidate),
                describe_char(bad)
            ));
        }
        if candidate.len() > MAX_LOGIN_LEN {
            return Err(format!(
                "`{}` is too long for a {what} ({} characters, at most {MAX_LOGIN_LEN})",
                excerpt(candidate),
                candidate.len()
            ));
        }
        Ok(Login(candidate.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Login {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Login {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Login::from_stored(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Login({})", self.0)
    }
}

fn looks_like_url(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    lower.contains("://") || lower.contains("twitch.tv")
}

const TWITCH_HOSTS: [&str; 4] = ["twitch.tv", "www.twitch.tv", "m.twitch.tv", "go.twitch.tv"];

/// Deliberately not a general URL parser: a URL library would normalize `twitch.tv/../etc`
/// into `twitch.tv/etc`, and we want such input refused, not reinterpreted.
fn login_from_url(input: &str) -> Result<Login, String> {
    let not_channel = || {
        format!(
            "`{}` is not a Twitch channel address; give a login like `foo` or an address like \
             https://twitch.tv/foo",
            excerpt(input)
        )
    };
    let lower = input.to_ascii_lowercase();
    let rest = if let Some(i) = lower.find("://") {
        if !matches!(&lower[..i], "http" | "https") {
            return Err(not_channel());
        }
        &input[i + 3..]
    } else {
        input
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !TWITCH_HOSTS.contains(&host.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{}` is not a Twitch address; for another HLS source use `add hls <playlist URL> <name>`",
            excerpt(input)
        ));
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match segments.as_slice() {
        [one] => Login::validate(one, "Twitch login"),
        _ => Err(not_channel()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = Login::parse(input);
        match (got, expected) {
            (Ok(login), Ok(want)) => assert_eq!(login.as_str(), want, "input {input:?}"),
            (Err(err), Err(fragment)) => assert!(
                err.contains(fragment),
                "input {input:?}: error {err:?} should contain {fragment:?}"
            ),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepted_forms_normalize_to_lowercase() {
        check("foo", Ok("foo"));
        check("Foo", Ok("foo"));
        check("@foo", Ok("foo"));
        check("twitch.tv/foo", Ok("foo"));
        check("www.twitch.tv/Foo/", Ok("foo"));
        check("https://www.twitch.tv/foo?x=y", Ok("foo"));
        check("http://m.twitch.tv/foo#chat", Ok("foo"));
        check("<https://www.twitch.tv/foo|twitch.tv/foo>", Ok("foo"));
        check("a", Ok("a"));
        check("abc_123", Ok("abc_123"));
        check(&"x".repeat(25), Ok(&"x".repeat(25)));
    }

    #[test]
    fn rejected_forms_name_the_problem() {
        check("", Err("missing"));
        check("@", Err("empty"));
        check("../../etc", Err("found `.`"));
        check("..", Err("found `.`"));
        check("foo/bar", Err("found `/`"));
        check("twitch.tv/foo/videos", Err("not a Twitch channel address"));
        check("https://evil.example/foo", Err("not a Twitch address"));
        check("ftp://twitch.tv/foo", Err("not a Twitch channel address"));
        check("twitch.tv/../etc", Err("not a Twitch channel address"));
        check("twitch.tv/..", Err("found `.`"));
        check("twitch.tv:8080/foo", Err("not a Twitch address"));
        check("user@twitch.tv/foo", Err("not a Twitch address"));
        check("foo;rm", Err("found `;`"));
        check("$(reboot)", Err("found `$`"));
        check("foo\u{200b}", Err("U+200B"));
        check("\u{202e}oof", Err("U+202E"));
        check(&"x".repeat(26), Err("too long"));
        check(&"y".repeat(10_000), Err("too long"));
        check("fóo", Err("U+00F3"));
    }

    const ID: &str = "c68b8ef525fb3d2fa146344d84991753";

    #[test]
    fn platform_keys_are_names_too() {
        let chzzk = Login::parse_watched(&format!("https://chzzk.naver.com/live/{ID}")).unwrap();
        assert_eq!(chzzk.as_str(), format!("chzzk:{ID}"));
        assert_eq!(chzzk.platform(), Platform::Chzzk);
        assert_eq!(chzzk.path_safe(), format!("chzzk-{ID}"));
        assert_eq!(chzzk.chzzk_id().unwrap().as_str(), ID);
        assert_eq!(
            Login::parse_watched(&format!("chzzk {ID}")),
            Ok(chzzk.clone())
        );
        assert_eq!(
            Login::parse_watched(&format!("chzzk:{ID}")),
            Ok(chzzk.clone())
        );
        assert_eq!(Login::from_stored(chzzk.as_str()), Ok(chzzk.clone()));
        let room = Login::parse_watched("bilibili 23058").unwrap();
        assert_eq!(
            (room.as_str(), room.platform(), room.path_safe().as_str()),
            ("bilibili:23058", Platform::Bilibili, "bilibili-23058")
        );
        let foo = Login::parse_watched("@Foo").unwrap();
        assert_eq!(
            (foo.as_str(), foo.platform(), foo.path_safe().as_str()),
            ("foo", Platform::Twitch, "foo")
        );
        assert_eq!(foo.chzzk_id(), None);
        for bad in [
            "chzzk:../x",
            "chzzk:C68B8EF525FB3D2FA146344D84991753",
            "twitch:foo",
            "hls:studio",
            "bilibili:0",
            "chzzk:",
            ":",
            "foo:bar",
        ] {
            assert!(Login::from_stored(bad).is_err(), "{bad}");
        }
        for bad in [
            "chzzk:../x",
            "bilibili:-1",
            "chzzk:abc",
            "https://evil.example/x",
        ] {
            assert!(Login::parse_watched(bad).is_err(), "{bad}");
        }
    }
}
