//! The guard for every request SEIDRA makes to a URL a user supplied (webhooks today; model
//! downloads and remote engine URLs later).
//!
//! [`OutboundPolicy::vet_url`] accepts only `http`/`https` URLs without credentials whose host
//! resolves exclusively to public addresses: loopback, private (RFC 1918, `fc00::/7`),
//! link-local (`169.254/16` with cloud metadata, `fe80::/10`), unspecified, multicast,
//! broadcast/reserved, CGNAT `100.64/10`, and the IPv4-mapped IPv6 forms of all of those are
//! refused unless the admin allow-list names the range (CIDR) or the host name.
//!
//! Vetting at creation time is not enough (DNS rebinding: the name may resolve elsewhere a
//! minute later), so the HTTP client must connect only to addresses vetted at connect time:
//! [`OutboundPolicy::resolve_vetted`] is the resolver to plug into the client (it resolves
//! and filters in one step, so there is no gap between check and use), and IP-literal URLs
//! are checked by [`OutboundPolicy::check_url_literal`]. Clients must also disable redirects
//! and proxies, or the guard is bypassed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Once;

use ipnet::IpNet;
use url::{Host, Url};

/// Makes rustls' ring provider the process default, once. reqwest is built without a provider
/// of its own (so the build needs no aws-lc C library), and panics when it builds a client
/// with none installed: call this before building any `reqwest::Client`.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err = another provider was installed first; that one is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// Not a URL.
    #[error("is not a valid URL: {0}")]
    Invalid(String),
    /// Scheme other than http/https.
    #[error("must use http or https (got `{0}`)")]
    Scheme(String),
    /// `user:pass@` in the URL.
    #[error("must not contain credentials (user:password@)")]
    Credentials,
    /// The host cannot be resolved.
    #[error("host `{host}` cannot be resolved: {reason}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// The host is (or resolves to) an address that is not allowed.
    #[error("resolves to {addr}, a {reason} address; outbound requests to it are refused (an admin can allow-list it)")]
    Refused {
        /// The offending address.
        addr: IpAddr,
        /// Which class it belongs to.
        reason: &'static str,
    },
}

/// Which internal address class `ip` belongs to, if any (None = public).
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4).map(|_| "IPv4-mapped internal");
            }
            let seg0 = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg0 & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if seg0 & 0xffc0 == 0xfe80 || seg0 & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if v6.segments()[..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated) ::a.b.c.d: judge the embedded address.
                let [a, b] = v6.segments()[6..8] else { return Some("reserved") };
                let v4 = Ipv4Addr::from((u32::from(a) << 16) | u32::from(b));
                v4_class(v4).map(|_| "IPv4-compatible internal")
            } else if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64: the embedded IPv4 address is what gets reached.
                let [a, b] = v6.segments()[6..8] else { return Some("reserved") };
                let v4 = Ipv4Addr::from((u32::from(a) << 16) | u32::from(b));
                v4_class(v4).map(|_| "NAT64 internal")
            } else {
                None
            }
        }
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 || (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("reserved")
    } else {
        None
    }
}

/// What outbound requests may reach: everything public, plus the allow-listed ranges and hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl OutboundPolicy {
    /// Parses allow-list entries: IPs, CIDR ranges, or host names (exact, case-insensitive).
    /// An entry that looks like neither is an error naming it.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for raw in entries {
            let entry = raw.trim();
            if entry.is_empty() {
                continue;
            }
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && entry.contains(char::is_alphabetic)
            {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("`{entry}` is not an IP address, CIDR range or host name"));
            }
        }
        Ok(policy)
    }

    /// Whether `host` (a name) is allow-listed as a whole.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Checks one address: Ok when public or allow-listed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), NetError> {
        let Some(reason) = internal_class(ip) else { return Ok(()) };
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if self.nets.iter().any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m))) {
            return Ok(());
        }
        Err(NetError::Refused { addr: ip, reason })
    }

    /// Parses `raw` and checks scheme and credentials; an IP-literal host is checked too.
    pub fn check_url_literal(&self, raw: &str) -> Result<Url, NetError> {
        let url = Url::parse(raw.trim()).map_err(|e| NetError::Invalid(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(NetError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(NetError::Credentials);
        }
        match url.host() {
            None => return Err(NetError::Invalid("no host".to_owned())),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// Full vetting for create time: [`Self::check_url_literal`], then every address the host
    /// name resolves to must pass (one internal address is enough to refuse).
    pub async fn vet_url(&self, raw: &str) -> Result<Url, NetError> {
        let url = self.check_url_literal(raw)?;
        if let Some(Host::Domain(host)) = url.host() {
            self.resolve_vetted(host).await?;
        }
        Ok(url)
    }

    /// Resolves `host` and returns only its vetted addresses (port 0: the caller's port
    /// applies); an error when any address is internal and not allow-listed. Plug this into the
    /// HTTP client's resolver so the connection goes only where the check looked.
    pub async fn resolve_vetted(&self, host: &str) -> Result<Vec<SocketAddr>, NetError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, 0)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| NetError::Resolve { host: host.to_owned(), reason: e.to_string() })?
            .collect();
        if addrs.is_empty() {
            return Err(NetError::Resolve { host: host.to_owned(), reason: "no addresses".to_owned() });
        }
        if !self.host_allowed(host) {
            for addr in &addrs {
                self.check_ip(addr.ip())?;
            }
        }
        Ok(addrs)
    }
}

/// Resolves host names only to addresses the policy allows.
struct VettingResolver(Arc<OutboundPolicy>);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy.resolve_vetted(&host).await.map_err(|e| Box::new(e) as Box<_>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client builder for URLs chosen by users: names resolve only through
/// [`OutboundPolicy::resolve_vetted`] (no gap for DNS rebinding), no proxy, no redirects (a
/// redirect could lead anywhere). The caller adds timeouts and builds it. Installs the TLS
/// provider first.
pub fn guarded_client(policy: Arc<OutboundPolicy>, user_agent: &str) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(VettingResolver(policy)))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn classes() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(internal_class(ip(internal)).is_some(), "{internal} must be internal");
        }
        for public in ["1.1.1.1", "93.184.216.34", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(internal_class(ip(public)), None, "{public} is public");
        }
    }

    #[test]
    fn allow_list_and_url_rules() {
        let strict = OutboundPolicy::default();
        assert!(matches!(strict.check_url_literal("http://127.0.0.1:9/x"), Err(NetError::Refused { .. })));
        assert!(matches!(strict.check_url_literal("http://[::ffff:127.0.0.1]/"), Err(NetError::Refused { .. })));
        assert!(matches!(strict.check_url_literal("http://2130706433/"), Err(NetError::Refused { .. })));
        assert!(matches!(strict.check_url_literal("ftp://example.com/"), Err(NetError::Scheme(_))));
        assert!(matches!(strict.check_url_literal("http://u:p@example.com/"), Err(NetError::Credentials)));
        assert!(strict.check_url_literal("https://example.com/hook").is_ok());
        let open = OutboundPolicy::parse(&["127.0.0.1/32".to_owned(), "hooks.internal".to_owned()]);
        let Ok(open) = open else { panic!("parse") };
        assert!(open.check_url_literal("http://127.0.0.1:9/x").is_ok());
        assert!(open.check_url_literal("http://[::ffff:127.0.0.1]/").is_ok());
        assert!(open.check_url_literal("http://127.0.0.2/").is_err());
        assert!(open.host_allowed("HOOKS.internal."));
        assert!(OutboundPolicy::parse(&["not a host!".to_owned()]).is_err());
    }
}
