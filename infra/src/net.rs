//! IP networks as operators write them (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`), and which
//! addresses are public: shared by the trusted proxies of the APIs and the webhook targets'
//! guard against requests into private networks.

use std::net::IpAddr;

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    bits: u8,
}

impl Network {
    /// `10.0.0.0/8` or a single address (`192.0.2.7`, all its bits).
    pub fn parse(item: &str) -> Result<Network, String> {
        let item = item.trim();
        let (address, bits) = match item.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (item, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{item:?} is not an address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{item:?} has no valid prefix length"))?,
            None => max,
        };
        Ok(Network {
            address: canonical(address),
            bits,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (canonical(address), self.address) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(a) & mask == u32::from(n) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(n) & mask
            }
            _ => false,
        }
    }
}

/// Comma- or space-separated networks; empty: none.
pub fn parse_networks(list: &str) -> Result<Vec<Network>, String> {
    list.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Network::parse)
        .collect()
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `address` is on the public internet: not loopback, private (RFC 1918, unique
/// local), link-local, shared (CGNAT), unspecified, broadcast, multicast, documentation,
/// benchmarking or reserved, and no IPv6 form that embeds one of those (mapped, NAT64,
/// 6to4, Teredo).
pub fn is_public(address: IpAddr) -> bool {
    const NOT_PUBLIC: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/32",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ];
    let address = canonical(address);
    !NOT_PUBLIC
        .iter()
        .filter_map(|n| Network::parse(n).ok())
        .any(|network| network.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn networks_contain_their_addresses_in_either_spelling() {
        let network = Network::parse("10.0.0.0/8").expect("network");
        assert!(network.contains(ip("10.200.1.1")));
        assert!(network.contains(ip("::ffff:10.1.2.3")));
        assert!(!network.contains(ip("11.0.0.1")));
        let single = Network::parse("2001:db8::7").expect("address");
        assert!(single.contains(ip("2001:db8::7")));
        assert!(!single.contains(ip("2001:db8::8")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("host.example").is_err());
    }

    #[test]
    fn private_loopback_link_local_and_embedded_forms_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.0.0.5",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(!is_public(ip(address)), "{address}");
        }
        for address in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            assert!(is_public(ip(address)), "{address}");
        }
    }
}
