//! The client's address, for the limits of requests without a token: the TCP peer, or —
//! only when the peer is one of the configured trusted proxies (`TRUSTED_PROXIES`) — the
//! address it forwarded (`Forwarded: for=…`, else `X-Forwarded-For`), read from the right
//! past every trusted hop. Anybody can send those headers; from an untrusted peer they are
//! ignored, so they cannot be used to step around a limit. IPv6 clients are counted by
//! their /64 (one subscriber's whole prefix), IPv4 clients by their address.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::http::header::HeaderMap;
use infra::net::{Network, canonical, parse_networks};

/// Networks whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 192.0.2.7, fd00::/8` (addresses or CIDR networks, comma- or
    /// space-separated); empty: none.
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        parse_networks(list)
            .map(TrustedProxies)
            .map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES: {e}"))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The client's address: the peer's, unless the peer is trusted and forwarded one.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.contains(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers);
        // From the right: the first hop that is not one of ours is the client.
        let mut client = peer;
        for hop in chain.iter().rev() {
            client = *hop;
            if !self.contains(*hop) {
                break;
            }
        }
        Some(client)
    }
}

/// The key an address is counted under: IPv4 as it is, IPv6 by its /64.
pub fn limit_key(address: Option<IpAddr>) -> String {
    match address.map(canonical) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("ip:{}/64", Ipv6Addr::from(prefix))
        }
        None => "ip:unknown".to_owned(),
    }
}

/// The addresses the proxies forwarded, client first: `Forwarded` (RFC 7239) when present,
/// else `X-Forwarded-For`. Hops that are not addresses (`unknown`, obfuscated names) end
/// the chain there: nothing left of them can be believed.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then_some(value.trim())
            })
        })
        .collect();
    let hops: Vec<&str> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    } else {
        forwarded
    };
    let mut chain = Vec::new();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(address) => chain.push(canonical(address)),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(address) = hop.parse() {
        return Some(address);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (address, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").expect("list");
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // From the internet: the header is anyone's to write.
        assert_eq!(
            trusted.client(Some(ip("198.51.100.4")), &spoofed),
            Some(ip("198.51.100.4"))
        );
        // From our proxy: the client it saw.
        assert_eq!(
            trusted.client(Some(ip("10.1.2.3")), &spoofed),
            Some(ip("203.0.113.9"))
        );
        // A client that prepends a fake hop gets the address our proxy saw, not its own
        // invention: read from the right past our hops only.
        let chained = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.9.9.9")]);
        assert_eq!(
            trusted.client(Some(ip("192.0.2.7")), &chained),
            Some(ip("203.0.113.9"))
        );
        // Nobody trusted: the peer, whatever the headers.
        assert_eq!(
            TrustedProxies::default().client(Some(ip("10.1.2.3")), &spoofed),
            Some(ip("10.1.2.3"))
        );
    }

    #[test]
    fn the_forwarded_header_wins_and_its_forms_are_read() {
        let trusted = TrustedProxies::parse("127.0.0.1").expect("list");
        let both = headers(&[
            ("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(
            trusted.client(Some(ip("127.0.0.1")), &both),
            Some(ip("2001:db8:cafe::17"))
        );
        let with_port = headers(&[("forwarded", "for=192.0.2.60:8080, for=127.0.0.1")]);
        assert_eq!(
            trusted.client(Some(ip("127.0.0.1")), &with_port),
            Some(ip("192.0.2.60"))
        );
        // An unknown hop ends what can be believed: the proxy's own peer stands.
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            trusted.client(Some(ip("127.0.0.1")), &unknown),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            limit_key(Some(ip("2001:db8:1:2:aaaa::1"))),
            limit_key(Some(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")))
        );
        assert_ne!(
            limit_key(Some(ip("2001:db8:1:2::1"))),
            limit_key(Some(ip("2001:db8:1:3::1")))
        );
        assert_eq!(
            limit_key(Some(ip("2001:db8:1:2::1"))),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(limit_key(Some(ip("::ffff:192.0.2.1"))), "ip:192.0.2.1");
        assert_eq!(limit_key(None), "ip:unknown");
    }

    #[test]
    fn a_bad_trusted_list_is_refused() {
        for bad in ["10.0.0.0/33", "nonsense", "fd00::/129", "10.0.0.1/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse("").expect("empty").is_empty());
        let zero = TrustedProxies::parse("0.0.0.0/0").expect("everything");
        assert!(zero.contains(ip("203.0.113.1")));
        assert!(!zero.contains(ip("2001:db8::1")));
    }
}
