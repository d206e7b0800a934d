//! Prefixes as text, written straight into a buffer: the same text as `Display` (RFC 5952
//! for IPv6: lower case, no leading zeros, the longest run of two or more zero groups, the
//! first of equal runs, as `::`), without `core::fmt`'s machinery per octet. A 100k-range
//! run formats every range several times (the printed plan, the cache, ipset's input), and
//! formatting was a fifth of it.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Appends `net` as `Display` writes it (`192.0.2.0/24`, `2001:db8::/32`).
pub fn push_net(out: &mut String, net: &IpNet) {
    match net {
        IpNet::V4(n) => push_v4(out, n.addr()),
        IpNet::V6(n) => push_v6(out, n.addr()),
    }
    out.push('/');
    push_decimal(out, net.prefix_len());
}

/// `net` as text, like `net.to_string()`.
pub fn net_string(net: &IpNet) -> String {
    let mut out = String::with_capacity(43);
    push_net(&mut out, net);
    out
}

fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

fn push_v4(out: &mut String, addr: Ipv4Addr) {
    for (i, octet) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_decimal(out, octet);
    }
}

fn push_hex(out: &mut String, group: u16) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let digit = (group >> shift) & 0xf;
        if digit != 0 || started || shift == 0 {
            out.push(char::from(DIGITS[usize::from(digit)]));
            started = true;
        }
    }
}

fn push_v6(out: &mut String, addr: Ipv6Addr) {
    // IPv4-mapped and IPv4-compatible forms are `Display`'s business: rare, and not worth
    // a second copy of its rules.
    let segments = addr.segments();
    if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0) {
        use std::fmt::Write as _;
        let _ = write!(out, "{addr}");
        return;
    }
    // The longest run of zero groups (two or more; the first of equal runs).
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, &g) in segments.iter().enumerate() {
        if g == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best, best_len) = (run, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    if best_len < 2 {
        push_groups(out, &segments);
        return;
    }
    push_groups(out, &segments[..best]);
    out.push_str("::");
    push_groups(out, &segments[best + best_len..]);
}

/// Groups in hex, joined by `:`.
fn push_groups(out: &mut String, groups: &[u16]) {
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_hex(out, g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};
    use proptest::prelude::*;

    /// Addresses whose groups are often zero, so that every shape of zero run comes up.
    fn sparse_v6() -> impl Strategy<Value = u128> {
        prop::collection::vec(prop_oneof![Just(0u16), Just(1u16), any::<u16>()], 8).prop_map(
            |groups| {
                groups
                    .iter()
                    .fold(0u128, |acc, &g| (acc << 16) | u128::from(g))
            },
        )
    }

    proptest! {
        #[test]
        fn ipv4_text_is_displays(addr in any::<u32>(), len in 0u8..=32) {
            let net = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).expect("len"));
            prop_assert_eq!(net_string(&net), net.to_string());
        }

        #[test]
        fn ipv6_text_is_displays(addr in prop_oneof![any::<u128>(), sparse_v6()], len in 0u8..=128) {
            let net = IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).expect("len"));
            prop_assert_eq!(net_string(&net), net.to_string());
        }
    }

    #[test]
    fn edge_cases_are_displays() {
        for text in [
            "::/0",
            "::1/128",
            "::ffff:192.0.2.1/128",
            "::192.0.2.1/128",
            "1::/16",
            "2001:db8::1:0:0:1/128",
            "2001:db8:0:1:1:1:1:1/128",
            "2001:0:0:1::1/128",
            "0.0.0.0/0",
            "255.255.255.255/32",
        ] {
            let net: IpNet = text.parse().expect("net");
            assert_eq!(net_string(&net), net.to_string(), "{text}");
        }
    }
}
