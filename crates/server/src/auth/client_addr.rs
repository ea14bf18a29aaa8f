//! The client address (socket, or `X-Forwarded-For` from a trusted proxy)
//! and the subnet allow-list.

use super::*;

/// Whether `ip` is inside the CIDR `(net, len)`. An IPv4-mapped network
/// (`::ffff:a.b.c.d/N`, N >= 96) is the IPv4 network `a.b.c.d/(N - 96)`;
/// any other IPv6 network contains IPv6 addresses only, so `::/0` admits
/// every IPv6 client and no IPv4 one.
pub fn cidr_contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    let (net, len) = match net {
        IpAddr::V6(n) if len >= 96 && n.to_ipv4_mapped().is_some() => (
            IpAddr::V4(
                n.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            len - 96,
        ),
        n => (n, len),
    };
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn trusted(cfg: &AuthConfig, ip: IpAddr) -> bool {
    cfg.trusted_proxies.iter().any(|c| cidr_contains(*c, ip))
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.split_once(']').map(|(a, _)| a))
        .unwrap_or(s);
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Longest request id taken from a proxy.
const MAX_REQUEST_ID: usize = 128;

/// The request's id: the `X-Request-Id` a trusted proxy sent, when it is 1
/// to 128 characters of `[A-Za-z0-9._:-]`, else a fresh one (so a client
/// cannot forge the id that ties its request to logs and events).
pub fn request_id(cfg: &AuthConfig, peer: SocketAddr, headers: &HeaderMap) -> String {
    if trusted(cfg, peer.ip().to_canonical()) {
        if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            let ok = (1..=MAX_REQUEST_ID).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
            if ok {
                return v.to_string();
            }
        }
    }
    uuid::Uuid::new_v4().simple().to_string()
}

/// The client's address: the socket's, or, when the socket's is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Also says whether the client used HTTPS.
pub fn client_addr(
    cfg: &AuthConfig,
    peer: SocketAddr,
    headers: &HeaderMap,
    tls: bool,
) -> (IpAddr, &'static str) {
    let peer_ip = peer.ip().to_canonical();
    let mut scheme = if tls { "https" } else { "http" };
    if !trusted(cfg, peer_ip) {
        return (peer_ip, scheme);
    }
    if let Some(p) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        match p.trim() {
            "https" => scheme = "https",
            "http" => scheme = "http",
            _ => {}
        }
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else {
            return (peer_ip, scheme);
        };
        for part in v.split(',') {
            match parse_forwarded_ip(part) {
                Some(ip) => hops.push(ip.to_canonical()),
                // A malformed list cannot be trusted at all.
                None => return (peer_ip, scheme),
            }
        }
    }
    let client = hops
        .iter()
        .rev()
        .find(|ip| !trusted(cfg, **ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer_ip);
    (client, scheme)
}

/// The canonical form of a CIDR: a bare address is `/32` (IPv4) or `/128`
/// (IPv6), and host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn normalize_cidr(s: &str) -> Option<String> {
    let (ip, len) = parse_cidr(s)?;
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            std::net::IpAddr::V4((u32::from(a) & mask).into())
        }
        std::net::IpAddr::V6(a) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            std::net::IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some(format!("{net}/{len}"))
}

/// Validates an IPv4 or IPv6 CIDR such as `10.0.0.0/8` or `2001:db8::/32`;
/// a bare address means `/32` or `/128`.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    if !s.contains('/') {
        let ip: std::net::IpAddr = s.parse().ok()?;
        return Some((ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// Whether the registry's subnet allow-list admits `ip` (empty = all).
pub async fn allow_listed(reg: &Registry, ip: IpAddr) -> Result<bool, StoreError> {
    Ok(list_admits(
        &reg.settings().await?.api_subnet_allow_list,
        ip,
    ))
}

/// Whether an allow-list admits `ip`: an empty list admits everyone, a
/// list holding `0.0.0.0/0` no one (IPv4 or IPv6), otherwise the
/// addresses inside one of its CIDRs.
pub fn list_admits(list: &[String], ip: IpAddr) -> bool {
    if list.is_empty() {
        return true;
    }
    let cidrs: Vec<(IpAddr, u8)> = list.iter().filter_map(|c| parse_cidr(c)).collect();
    let deny_all = cidrs
        .iter()
        .any(|(n, len)| *len == 0 && *n == IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    !deny_all && cidrs.iter().any(|c| cidr_contains(*c, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> (IpAddr, u8) {
        parse_cidr(s).unwrap()
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains(cidr("10.0.0.0/8"), ip("10.1.2.3")));
        assert!(!cidr_contains(cidr("10.0.0.0/8"), ip("11.1.2.3")));
        assert!(cidr_contains(cidr("0.0.0.0/0"), ip("1.2.3.4")));
        assert!(cidr_contains(cidr("127.0.0.1/32"), ip("::ffff:127.0.0.1")));
        assert!(cidr_contains(cidr("2001:db8::/32"), ip("2001:db8:1::5")));
        assert!(!cidr_contains(cidr("2001:db8::/32"), ip("2001:db9::5")));
        assert!(!cidr_contains(cidr("2001:db8::/32"), ip("10.0.0.1")));
        assert!(cidr_contains(cidr("::/0"), ip("::1")));
        assert!(!cidr_contains(cidr("::/0"), ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_cidrs_use_the_prefix_minus_96() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = cidr("::ffff:10.0.0.0/104");
        assert!(cidr_contains(net, ip("10.200.3.4")));
        assert!(cidr_contains(net, ip("::ffff:10.200.3.4")));
        assert!(!cidr_contains(net, ip("11.0.0.1")));
        assert!(cidr_contains(cidr("::ffff:0.0.0.0/96"), ip("192.0.2.1")));
        assert!(!cidr_contains(cidr("::ffff:10.0.0.1/128"), ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let cfg = AuthConfig {
            trusted_proxies: vec![cidr("127.0.0.1/32"), cidr("10.0.0.0/8")],
            ..AuthConfig::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.0.0.2".parse().unwrap(),
        );
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert_eq!(
            client_addr(&cfg, proxy, &h, false).0,
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(&cfg, other, &h, false).0, other.ip());
        h.insert("x-forwarded-for", "not an ip".parse().unwrap());
        assert_eq!(client_addr(&cfg, proxy, &h, false).0, proxy.ip());
        h.insert("x-forwarded-for", "[2001:db8::1]:555".parse().unwrap());
        assert_eq!(
            client_addr(&cfg, proxy, &h, false).0,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}
