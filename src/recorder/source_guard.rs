//! Where recbot may connect when it reads an HLS source (`add hls`): the rules, and the hooks
//! that enforce them on the HTTP client used for those sources.
//!
//! A playlist is somebody else's text, and every address in it (renditions, segments, init
//! segments, keys) and every redirect its server answers with is fetched by recbot from inside
//! the operator's network. So addresses that reach the host itself or its neighbours —
//! loopback, private (RFC 1918, unique-local), link-local (cloud metadata such as
//! 169.254.169.254 and fd00:ec2::254), CGNAT, unspecified, multicast, broadcast and their
//! IPv4-mapped/compatible/NAT64 IPv6 spellings — are refused unless the operator allows them
//! (`[recording] allow_private_sources`, `[recording] allowed_sources`). Only http and https.
//!
//! The check is made on the address actually connected to: the guarded client resolves names
//! through [`GuardedResolver`], which drops refused addresses (so a name that resolves, or
//! later re-resolves, to 127.0.0.1 cannot be used). reqwest does not ask the resolver about IP
//! literals, so every URL is also checked before its request ([`SourceGuard::check_url`]) and
//! at every redirect hop ([`SourceGuard::redirect_policy`], at most [`MAX_REDIRECTS`] hops).
//! Twitch's own endpoints (GQL, usher, Twitch's CDN) are not read through this client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

use crate::allowed_source::AllowedSource;

/// Redirects followed per request. HLS servers and CDNs use one or two (a load balancer, a
/// signed edge URL); more is a loop or a server playing games.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// How long `add hls` waits for the source's name to resolve.
pub(crate) const ADD_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an address may not be connected to. Its text is the whole reason, for replies and gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// The refusal somewhere in an error's chain (reqwest wraps what the resolver and the
    /// redirect policy return).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(r) = e.downcast_ref::<Refusal>() {
                return Some(r);
            }
            next = e.source();
        }
        None
    }
}

/// What kind of address `ip` is when recbot must not connect there by default; `None` for an
/// ordinary public address.
pub fn classify(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(str::to_string),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (0, 0, 0, 0) => "an unspecified",
        (0, ..) => "a \"this network\" (0.0.0.0/8)",
        (127, ..) => "a loopback",
        (10, ..) | (192, 168, ..) => "a private",
        (172, b, ..) if (16..32).contains(&b) => "a private",
        (100, b, ..) if (64..128).contains(&b) => "a shared (CGNAT, 100.64.0.0/10)",
        (169, 254, 169, 254) => "a cloud metadata",
        (169, 254, ..) => "a link-local",
        (255, 255, 255, 255) => "a broadcast",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<String> {
    let s = ip.segments();
    let class = if ip.is_unspecified() {
        "an unspecified"
    } else if ip.is_loopback() {
        "a loopback"
    } else if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        "a cloud metadata"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a unique-local (private)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "a site-local (private)"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast"
    } else {
        // IPv6 spellings of an IPv4 address reach that address (mapped: the host's own stack;
        // compatible; NAT64's well-known prefix; 6to4): judged as the address they carry.
        let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
            Some(("IPv4-mapped", v4))
        } else if s[..6] == [0; 6] {
            Some((
                "IPv4-compatible",
                ip.to_ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED),
            ))
        } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let [.., a, b, c, d] = ip.octets();
            Some(("NAT64", Ipv4Addr::new(a, b, c, d)))
        } else if s[0] == 0x2002 {
            let o = ip.octets();
            Some(("6to4", Ipv4Addr::new(o[2], o[3], o[4], o[5])))
        } else {
            None
        };
        let (how, v4) = embedded?;
        let class = classify_v4(v4)?;
        return Some(format!("{how} {v4}, {class}"));
    };
    Some(class.to_string())
}

/// The rules for one client, from `[recording]`.
#[derive(Debug, Clone, Default)]
pub struct SourceGuard {
    /// Every address allowed (only the scheme is checked).
    allow_private: bool,
    allowed: Vec<AllowedSource>,
}

/// What [`SourceGuard::check_url`] learnt about a URL that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlCheck {
    /// Nothing left to check: the address is an allowed IP, or the host is trusted.
    Allowed,
    /// A host name whose addresses decide (the resolver checks them at connect time).
    Resolve { host: String, port: u16 },
}

impl SourceGuard {
    pub fn new(allow_private: bool, allowed: Vec<AllowedSource>) -> SourceGuard {
        SourceGuard {
            allow_private,
            allowed,
        }
    }

    pub fn from_config(recording: &crate::config::Recording) -> SourceGuard {
        SourceGuard::new(
            recording.allow_private_sources,
            recording.allowed_sources.clone(),
        )
    }

    /// Checks what can be checked without resolving: the scheme, an IP address written in the
    /// URL (reqwest connects to those without asking the resolver), and a listed host's port.
    pub fn check_url(&self, url: &Url) -> Result<UrlCheck, Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal(format!(
                "only http and https addresses are read, not `{}:`",
                url.scheme()
            )));
        }
        let host = url
            .host()
            .ok_or_else(|| Refusal("the address has no host".into()))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        if self.allow_private {
            return Ok(UrlCheck::Allowed);
        }
        let listed: Vec<Option<u16>> = self
            .allowed
            .iter()
            .filter(|a| a.names(&host))
            .map(|a| match a {
                AllowedSource::Host { port, .. } => *port,
                AllowedSource::Net { .. } => None,
            })
            .collect();
        if listed.iter().any(|p| p.is_none_or(|p| p == port)) {
            return Ok(UrlCheck::Allowed);
        }
        match host {
            Host::Ipv4(v4) => self.check_ip(IpAddr::V4(v4)).map(|()| UrlCheck::Allowed),
            Host::Ipv6(v6) => self.check_ip(IpAddr::V6(v6)).map(|()| UrlCheck::Allowed),
            // The resolver trusts a listed name on any port, so another port is refused here.
            Host::Domain(name) if !listed.is_empty() => Err(Refusal(format!(
                "`{name}` is allowed by [recording] allowed_sources on port {} only, not {port}",
                listed
                    .iter()
                    .flatten()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Host::Domain(name) => Ok(UrlCheck::Resolve { host: name, port }),
        }
    }

    /// Whether a resolved (or written) address may be connected to.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        if self.allowed.iter().any(|a| a.contains(ip)) {
            return Ok(());
        }
        Err(Refusal(format!(
            "{ip} is {class} address; recbot does not read sources there unless [recording] \
             allowed_sources lists it (or allow_private_sources = true)"
        )))
    }

    /// The addresses of `name` recbot may connect to; refused when none is left.
    pub(crate) fn filter_resolved(
        &self,
        name: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let host = Host::Domain(name.to_ascii_lowercase());
        let trusted = self.allow_private || self.allowed.iter().any(|a| a.names(&host));
        let mut kept = Vec::new();
        let mut first_refusal = None;
        for addr in addrs {
            match if trusted {
                Ok(())
            } else {
                self.check_ip(addr.ip())
            } {
                Ok(()) => kept.push(addr),
                Err(r) => {
                    first_refusal.get_or_insert(r);
                }
            }
        }
        match (kept.is_empty(), first_refusal) {
            (false, _) => Ok(kept),
            (true, Some(Refusal(why))) => Err(Refusal(format!("`{name}` resolves to {why}"))),
            (true, None) => Err(Refusal(format!("`{name}` has no address"))),
        }
    }

    /// The whole check at `add hls` time: the URL, then (for a name) its addresses now. Slow
    /// only for a name (a DNS lookup, at most [`ADD_LOOKUP_TIMEOUT`]).
    pub async fn check_source(&self, url: &Url) -> Result<(), Refusal> {
        let UrlCheck::Resolve { host, port } = self.check_url(url)? else {
            return Ok(());
        };
        let looked_up = tokio::time::timeout(
            ADD_LOOKUP_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| {
            Refusal(format!(
                "`{host}` did not resolve within {ADD_LOOKUP_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| Refusal(format!("`{host}` does not resolve: {e}")))?;
        self.filter_resolved(&host, looked_up).map(drop)
    }

    /// Follows at most [`MAX_REDIRECTS`] redirects, each to an address [`Self::check_url`]
    /// passes (names are then checked by the resolver when connecting).
    pub(crate) fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let guard = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal(format!("more than {MAX_REDIRECTS} redirects")));
            }
            match guard.check_url(attempt.url()) {
                Ok(_) => attempt.follow(),
                Err(Refusal(why)) => attempt.error(Refusal(format!("redirected: {why}"))),
            }
        })
    }

    /// The resolver for the guarded client.
    pub(crate) fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            guard: self.clone(),
        })
    }
}

/// Resolves names with the system resolver (as reqwest does by default, on the blocking pool)
/// and keeps only the addresses the guard allows.
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    guard: Arc<SourceGuard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let name = name.as_str().to_string();
            // The port is the URL's; reqwest replaces the 0.
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept = guard.filter_resolved(&name, found)?;
            let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_classes() {
        // (address, refused by default, words the reason carries)
        let table: &[(&str, bool, &str)] = &[
            ("8.8.8.8", false, ""),
            ("1.1.1.1", false, ""),
            ("100.63.255.255", false, ""),
            ("100.128.0.0", false, ""),
            ("172.32.0.1", false, ""),
            ("2606:4700::1111", false, ""),
            ("0.0.0.0", true, "unspecified"),
            ("0.1.2.3", true, "this network"),
            ("127.0.0.1", true, "loopback"),
            ("127.255.0.9", true, "loopback"),
            ("10.1.2.3", true, "private"),
            ("172.16.0.1", true, "private"),
            ("172.31.255.255", true, "private"),
            ("192.168.1.1", true, "private"),
            ("100.64.0.1", true, "CGNAT"),
            ("100.127.255.255", true, "CGNAT"),
            ("169.254.169.254", true, "metadata"),
            ("169.254.1.1", true, "link-local"),
            ("224.0.0.1", true, "multicast"),
            ("239.255.255.250", true, "multicast"),
            ("255.255.255.255", true, "broadcast"),
            ("240.0.0.1", true, "reserved"),
            ("::", true, "unspecified"),
            ("::1", true, "loopback"),
            ("fc00::1", true, "unique-local"),
            ("fd12:3456::1", true, "unique-local"),
            ("fd00:ec2::254", true, "metadata"),
            ("fe80::1", true, "link-local"),
            ("febf::1", true, "link-local"),
            ("fec0::1", true, "site-local"),
            ("ff02::1", true, "multicast"),
            (
                "::ffff:127.0.0.1",
                true,
                "IPv4-mapped 127.0.0.1, a loopback",
            ),
            ("::ffff:169.254.169.254", true, "metadata"),
            ("::ffff:10.0.0.1", true, "private"),
            ("::ffff:8.8.8.8", false, ""),
            ("::127.0.0.1", true, "IPv4-compatible 127.0.0.1"),
            ("::10.0.0.1", true, "private"),
            ("64:ff9b::7f00:1", true, "NAT64 127.0.0.1"),
            ("64:ff9b::808:808", false, ""),
            ("2002:a9fe:a9fe::1", true, "6to4 169.254.169.254"),
            ("2002:808:808::1", false, ""),
        ];
        let guard = SourceGuard::default();
        for (addr, refused, words) in table {
            let got = guard.check_ip(ip(addr));
            assert_eq!(got.is_err(), *refused, "{addr}: {got:?}");
            if let Err(Refusal(why)) = got {
                assert!(why.contains(words), "{addr}: {why}");
                assert!(why.contains("allowed_sources"), "{addr}: {why}");
            }
            // Allowing private sources allows all of them.
            assert_eq!(SourceGuard::new(true, vec![]).check_ip(ip(addr)), Ok(()));
        }
    }

    fn entry(s: &str) -> AllowedSource {
        AllowedSource::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn urls_are_checked_before_resolving() {
        let guard = SourceGuard::new(
            false,
            vec![
                entry("127.0.0.1:8080"),
                entry("cam.lan:8080"),
                entry("box.lan"),
                entry("192.168.7.0/24"),
            ],
        );
        let allowed = Ok(UrlCheck::Allowed);
        for (u, expected) in [
            ("http://127.0.0.1:8080/a.m3u8", allowed.clone()),
            ("http://cam.lan:8080/a.m3u8", allowed.clone()),
            ("https://box.lan/a.m3u8", allowed.clone()),
            ("http://box.lan:1234/a.m3u8", allowed.clone()),
            ("http://192.168.7.9/a.m3u8", allowed.clone()),
            ("http://8.8.8.8/a.m3u8", allowed.clone()),
            (
                "https://cdn.example.com/a.m3u8",
                Ok(UrlCheck::Resolve {
                    host: "cdn.example.com".into(),
                    port: 443,
                }),
            ),
        ] {
            assert_eq!(guard.check_url(&url(u)), expected, "{u}");
        }
        for (u, words) in [
            ("http://127.0.0.1:8081/a.m3u8", "127.0.0.1 is a loopback"),
            ("http://127.0.0.2:8080/a.m3u8", "loopback"),
            ("http://cam.lan:9000/a.m3u8", "port 8080 only, not 9000"),
            ("http://192.168.8.1/a.m3u8", "private"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
            ("http://[fd00:ec2::254]/", "metadata"),
            // Other spellings of 127.0.0.1, normalized by the URL parser.
            ("http://2130706433/", "loopback"),
            ("http://0x7f.1/", "loopback"),
            ("http://0/", "unspecified"),
            ("ftp://8.8.8.8/a.m3u8", "only http and https"),
            ("file:///etc/passwd", "only http and https"),
            ("data:text/plain,hi", "only http and https"),
        ] {
            let err = guard.check_url(&url(u)).unwrap_err();
            assert!(err.0.contains(words), "{u}: {err}");
        }
        // Allowing everything still checks the scheme.
        let open = SourceGuard::new(true, vec![]);
        assert_eq!(
            open.check_url(&url("http://127.0.0.1/")),
            Ok(UrlCheck::Allowed)
        );
        assert!(open.check_url(&url("file:///etc/passwd")).is_err());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let sock = |s: &str| SocketAddr::new(ip(s), 0);
        let guard = SourceGuard::new(false, vec![entry("box.lan"), entry("10.9.0.0/16")]);
        // The public address is kept, the loopback one dropped.
        assert_eq!(
            guard.filter_resolved("cdn.example.com", [sock("127.0.0.1"), sock("8.8.8.8")]),
            Ok(vec![sock("8.8.8.8")])
        );
        let err = guard
            .filter_resolved("localhost", [sock("127.0.0.1"), sock("::1")])
            .unwrap_err();
        assert!(
            err.0
                .contains("`localhost` resolves to 127.0.0.1 is a loopback"),
            "{err}"
        );
        // A listed network, a listed name.
        assert_eq!(
            guard.filter_resolved("cam.lan", [sock("10.9.1.1"), sock("10.8.1.1")]),
            Ok(vec![sock("10.9.1.1")])
        );
        assert_eq!(
            guard.filter_resolved("BOX.lan", [sock("127.0.0.1")]),
            Ok(vec![sock("127.0.0.1")])
        );
        assert!(guard.filter_resolved("empty.lan", []).is_err());
    }

    #[test]
    fn config_entries_are_checked_at_load_with_file_line_and_key() {
        let path = std::path::Path::new("/etc/recbot/recbot.toml");
        let text = "[storage]\ndata_dir = \"/tmp/x\"\n[recording]\n\
                    allowed_sources = [\n  \"cam.lan:8080\",\n  \"10.0.0.1/8\",\n]\n";
        let err = crate::config::Config::from_text(text, path, &[]).unwrap_err();
        // The line of the key (toml gives the array's span).
        assert_eq!(err.line, Some(4), "{err}");
        let key = err.key.clone().unwrap_or_default();
        assert!(key.starts_with("recording.allowed_sources"), "{err}");
        assert!(err.message.contains("`10.0.0.1/8`"), "{err}");
        assert!(err.message.contains("the network is 10.0.0.0/8"), "{err}");
        let ok = "[recording]\nallowed_sources = [\"cam.lan:8080\", \"10.0.0.0/8\"]\n";
        let config = crate::config::Config::from_text(ok, path, &[]).unwrap();
        assert_eq!(
            config.recording.allowed_sources,
            vec![entry("cam.lan:8080"), entry("10.0.0.0/8")]
        );
        assert!(!config.recording.allow_private_sources);
        assert!(
            config
                .summary()
                .contains("hls sources:     public addresses, and cam.lan:8080, 10.0.0.0/8"),
            "{}",
            config.summary()
        );
        // From the environment too.
        let env = [(
            "RECBOT_RECORDING__ALLOWED_SOURCES".to_string(),
            "[\"ftp://x\"]".to_string(),
        )];
        let err = crate::config::Config::from_text("", path, &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("RECBOT_RECORDING__ALLOWED_SOURCES"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_add_time() {
        let guard = SourceGuard::default();
        let err = guard
            .check_source(&url("http://localhost:8080/live.m3u8"))
            .await
            .unwrap_err();
        assert!(err.0.contains("`localhost` resolves to"), "{err}");
        assert!(err.0.contains("loopback"), "{err}");
        let allowed = SourceGuard::new(false, vec![entry("localhost:8080")]);
        assert_eq!(
            allowed
                .check_source(&url("http://localhost:8080/live.m3u8"))
                .await,
            Ok(())
        );
    }
}
