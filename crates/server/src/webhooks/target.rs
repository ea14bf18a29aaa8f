//! Receiver addresses: which URLs a webhook may name, and which addresses
//! a delivery may connect to.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Whether `ip` is loopback, private, link-local, unspecified or otherwise
/// not a public address (refused when private targets are not allowed).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                // Shared address space (carrier-grade NAT).
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a receiver URL: http or https, a host, no credentials in it, at
/// most [`MAX_URL_LEN`] bytes; and, when `allow_private` is off, a host
/// that is not a private address literal (names are checked again after
/// resolution, at delivery time). The error says why.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("a URL has at most {MAX_URL_LEN} characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the URL must be http:// or https://".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the URL must not hold credentials; the signature authenticates deliveries".into(),
        );
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("the URL has no host".into());
    };
    if !allow_private {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = if bare.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        } else {
            bare.parse::<IpAddr>().ok()
        };
        if ip.is_some_and(is_private) {
            return Err(
                "the URL names a loopback or private address, which this registry refuses".into(),
            );
        }
    }
    Ok(parsed)
}

/// The resolver deliveries use: the system's, with private addresses
/// dropped when they are refused, so that a name that resolves (or is
/// rebound) to an internal address after the webhook was checked is not
/// connected to.
pub(super) struct GuardedResolver {
    pub(super) allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    format!("{host} resolves to no address this registry may deliver to").into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "2001:4860:4860::8888", "100.128.0.1"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://ci.example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", false).is_err());
        assert!(check_url("http://[::1]/x", false).is_err());
        assert!(check_url("http://localhost/x", false).is_err());
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("https://u:p@example.com/", true).is_err());
        assert!(check_url("not a url", true).is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(3000)), true).is_err());
    }
}
