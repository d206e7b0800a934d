//! Address ranges as block lists hold them, and whether they touch Cloudflare's ranges.

use std::fmt;
use std::net::IpAddr;

use cf_allow_diff::RangeSet;
use ipnet::IpNet;

/// An inclusive range of addresses of one family: a single address, a CIDR or `from-to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub start: IpAddr,
    /// Last address (same family as `start`).
    pub end: IpAddr,
}

impl AddrRange {
    /// Parses `192.0.2.1`, `192.0.2.0/24`, `192.0.2.1-192.0.2.9` (and the IPv6 forms).
    /// `None` for anything else (ports, interface names, set names).
    pub fn parse(text: &str) -> Option<AddrRange> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Some(AddrRange {
                start: addr,
                end: addr,
            });
        }
        if let Ok(net) = text.parse::<IpNet>() {
            return Some(AddrRange::from(net));
        }
        let (from, to) = text.split_once('-')?;
        let (start, end) = (from.parse::<IpAddr>().ok()?, to.parse::<IpAddr>().ok()?);
        (start.is_ipv4() == end.is_ipv4() && start <= end).then_some(AddrRange { start, end })
    }

    /// True when the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && self.start <= other.end
            && other.start <= self.end
    }
}

impl From<IpNet> for AddrRange {
    fn from(net: IpNet) -> AddrRange {
        AddrRange {
            start: net.network(),
            end: net.broadcast(),
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// The first of Cloudflare's ranges that `entry` shares an address with: a blocked single
/// edge address (what fail2ban bans when the web server logs Cloudflare's address instead
/// of the visitor's) as well as a blocked supernet.
pub fn cloudflare_overlap(entry: &AddrRange, cloudflare: &RangeSet) -> Option<IpNet> {
    cloudflare
        .iter()
        .find(|net| entry.overlaps(&AddrRange::from(*net)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloudflare() -> RangeSet {
        RangeSet::aggregated(
            ["104.16.0.0/13", "2400:cb00::/32"]
                .iter()
                .map(|s| s.parse::<IpNet>().expect("net")),
        )
    }

    #[test]
    fn parses_the_forms_block_lists_use() {
        let r = AddrRange::parse("192.0.2.0/24").expect("cidr");
        assert_eq!(r.to_string(), "192.0.2.0-192.0.2.255");
        assert_eq!(
            AddrRange::parse("2001:db8::1").expect("addr").to_string(),
            "2001:db8::1"
        );
        assert!(AddrRange::parse("192.0.2.9-192.0.2.1").is_none());
        assert!(AddrRange::parse("192.0.2.1-2001:db8::1").is_none());
        assert!(AddrRange::parse("tcp:443").is_none());
        assert!(AddrRange::parse("f2b-sshd").is_none());
    }

    #[test]
    fn finds_single_addresses_supernets_and_ranges_but_not_neighbours() {
        let cf = cloudflare();
        let hit = |s: &str| cloudflare_overlap(&AddrRange::parse(s).expect(s), &cf);
        assert_eq!(
            hit("104.16.0.1").map(|n| n.to_string()).as_deref(),
            Some("104.16.0.0/13")
        );
        assert!(hit("104.0.0.0/8").is_some());
        assert!(hit("104.23.255.255").is_some());
        assert!(hit("104.24.0.0").is_none());
        assert!(hit("104.15.0.0-104.16.0.0").is_some());
        assert!(hit("2400:cb00::/48").is_some());
        assert!(hit("2001:db8::/32").is_none());
        assert!(hit("::104.16.0.1").is_none(), "families never mix");
    }
}
