//! One entry of `[recording] allowed_sources`: a host, host:port or network the operator
//! trusts as an HLS source although it is private. Parsing and matching only, pure; the
//! recorder's source guard enforces the entries, config validation parses them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Host;

/// One entry of `[recording] allowed_sources`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedSource {
    /// A host name or IP address, on one port or (without a port) on any: URLs naming this
    /// host are trusted wherever the name resolves.
    Host {
        host: Host<String>,
        port: Option<u16>,
    },
    /// A network (`10.0.0.0/8`, `fd00::/8`): any resolved address inside it is allowed.
    Net { base: IpAddr, prefix: u8 },
}

impl TryFrom<String> for AllowedSource {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        AllowedSource::parse(&value)
    }
}

impl AllowedSource {
    /// `host`, `host:port`, `1.2.3.4`, `1.2.3.4:8080`, `[fd00::1]:8080`, `fd00::1`,
    /// `10.0.0.0/8`, `fd00::/8`.
    pub fn parse(text: &str) -> Result<AllowedSource, String> {
        let bad = |why: &str| format!("`{text}` is not a host, host:port or network: {why}");
        let s = text.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.contains("://") {
            return Err(bad("write the host without a scheme (`cam.lan:8080`)"));
        }
        if let Some((addr, bits)) = s.split_once('/') {
            let base: IpAddr = addr
                .parse()
                .map_err(|_| bad("before the `/` must be an IP address"))?;
            let max = if base.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = bits
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?;
            if mask(base, prefix) != base {
                return Err(bad(&format!(
                    "host bits are set; the network is {}/{prefix}",
                    mask(base, prefix)
                )));
            }
            return Ok(AllowedSource::Net { base, prefix });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowedSource::Host {
                host: host_of(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("an unclosed `[`"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
            };
            (format!("[{inside}]"), port)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (s.to_string(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port must be 1 to 65535"))?,
            ),
        };
        if host.contains(['@', '?', '#', ' ']) || host.is_empty() {
            return Err(bad("only a host and an optional port"));
        }
        let host = Host::parse(&host).map_err(|e| bad(&e.to_string()))?;
        Ok(AllowedSource::Host { host, port })
    }

    pub(crate) fn names(&self, host: &Host<String>) -> bool {
        matches!(self, AllowedSource::Host { host: h, .. } if h == host)
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            AllowedSource::Net { base, prefix } => {
                // An IPv4-mapped IPv6 address is the IPv4 address for this purpose.
                let ip = match (base, ip) {
                    (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    _ => ip,
                };
                ip.is_ipv4() == base.is_ipv4() && mask(ip, prefix) == base
            }
            AllowedSource::Host { .. } => false,
        }
    }
}

impl fmt::Display for AllowedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedSource::Host { host, port: None } => write!(f, "{host}"),
            AllowedSource::Host {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
            AllowedSource::Net { base, prefix } => write!(f, "{base}/{prefix}"),
        }
    }
}

fn host_of(ip: IpAddr) -> Host<String> {
    match ip {
        IpAddr::V4(v4) => Host::Ipv4(v4),
        IpAddr::V6(v6) => Host::Ipv6(v6),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> AllowedSource {
        AllowedSource::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn allowed_sources_entries() {
        for (text, shown) in [
            ("cam.lan", "cam.lan"),
            ("CAM.lan:8080", "cam.lan:8080"),
            ("10.0.0.5", "10.0.0.5"),
            ("10.0.0.5:8080", "10.0.0.5:8080"),
            ("[fd00::1]:8080", "[fd00::1]:8080"),
            ("fd00::1", "[fd00::1]"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("fd00::/8", "fd00::/8"),
            ("127.0.0.1/32", "127.0.0.1/32"),
        ] {
            assert_eq!(entry(text).to_string(), shown, "{text}");
        }
        for (bad, words) in [
            ("", "empty"),
            ("10.0.0.1/8", "10.0.0.0/8"),
            ("10.0.0.0/33", "0 to 32"),
            ("cam.lan/8", "IP address"),
            ("cam.lan:0", "port"),
            ("cam.lan:99999", "port"),
            ("cam.lan:http", "port"),
            ("user@cam.lan", "only a host"),
            ("[fd00::1", "unclosed"),
            ("http://cam.lan", "without a scheme"),
        ] {
            let err = AllowedSource::parse(bad).unwrap_err();
            assert!(err.contains(words), "{bad}: {err}");
        }
    }
}
