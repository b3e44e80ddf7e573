//! Client address resolution behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Networks allowed to set `X-Forwarded-For`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses IPs and CIDRs (already validated by the config loader; bad entries are skipped).
    pub fn parse(entries: &[String]) -> Self {
        Self(
            entries
                .iter()
                .filter_map(|e| e.parse::<IpNet>().ok().or_else(|| e.parse::<IpAddr>().ok().map(IpNet::from)))
                .collect(),
        )
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client IP: the peer, unless the peer is a trusted proxy, in which case the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = peer.ip();
        if !self.trusts(peer_ip) {
            return peer_ip;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded.into_iter().rev().find(|ip| !self.trusts(*ip)).unwrap_or(peer_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_only_from_trusted() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".to_owned()]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", http::HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.0.0.7"));
        let from_proxy = SocketAddr::from(([10, 0, 0, 1], 1234));
        let direct = SocketAddr::from(([198, 51, 100, 1], 1234));
        assert_eq!(proxies.client_ip(from_proxy, &headers).to_string(), "203.0.113.9");
        assert_eq!(proxies.client_ip(direct, &headers).to_string(), "198.51.100.1");
    }
}
