//! The host's inbound interfaces: those that carry a default route.

use std::collections::BTreeSet;

/// Interfaces with an IPv4 or IPv6 default route, from `/proc/net/route` and
/// `/proc/net/ipv6_route` of the current network namespace.
pub fn default_route_interfaces() -> BTreeSet<String> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    parse(&v4, &v6)
}

fn parse(v4: &str, v6: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in v4.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …
        if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" && f[0] != "lo" {
            out.insert(f[0].to_string());
        }
    }
    for line in v6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // dest dest_len src src_len next_hop metric refcnt use flags iface
        if f.len() == 10
            && f[0].bytes().all(|b| b == b'0')
            && f[1] == "00"
            && f[9] != "lo"
            && u32::from_str_radix(f[8], 16).is_ok_and(|flags| flags & 0x0200 == 0)
        {
            out.insert(f[9].to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_default_route_interfaces_only() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth2\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth3\n";
        let got: Vec<String> = parse(v4, v6).into_iter().collect();
        assert_eq!(got, vec!["eth0".to_string(), "eth2".to_string()]);
    }
}
