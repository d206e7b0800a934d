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

/// `text.parse::<IpNet>()`, faster: the forms lists and caches hold (a dotted quad or hex
/// groups with at most one `::` standing for two or more groups, then `/` and a length,
/// no leading zeros) are read here in one pass; anything else is left to ipnet's parser,
/// so every text gets exactly ipnet's answer (property-tested against it). ipnet's parser
/// was a fifth of a no-op run at 100k ranges, reading the cache back.
pub fn parse_net(text: &str) -> Result<IpNet, ipnet::AddrParseError> {
    match fast_net(text.as_bytes()) {
        Some(net) => Ok(net),
        None => text.parse(),
    }
}

fn fast_net(text: &[u8]) -> Option<IpNet> {
    let slash = text.iter().rposition(|&b| b == b'/')?;
    let (addr, len) = (&text[..slash], &text[slash + 1..]);
    let len = u8::try_from(decimal(len)?).ok()?;
    if addr.contains(&b':') {
        ipnet::Ipv6Net::new(Ipv6Addr::from(fast_v6(addr)?), len)
            .ok()
            .map(IpNet::V6)
    } else {
        ipnet::Ipv4Net::new(Ipv4Addr::from(fast_v4(addr)?), len)
            .ok()
            .map(IpNet::V4)
    }
}

/// 1 to 3 decimal digits without a leading zero.
fn decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 3 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn fast_v4(addr: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    let mut parts = 0;
    for part in addr.split(|&b| b == b'.') {
        let octet = u8::try_from(decimal(part)?).ok()?;
        value = (value << 8) | u32::from(octet);
        parts += 1;
    }
    (parts == 4).then_some(value)
}

/// Hex groups of 1 to 4 digits; with one `::` for at least two zero groups, or eight
/// groups without it. No embedded IPv4 address (left to ipnet).
fn fast_v6(addr: &[u8]) -> Option<u128> {
    fn groups(part: &[u8], out: &mut [u16; 8], n: &mut usize) -> Option<()> {
        if part.is_empty() {
            return Some(());
        }
        for group in part.split(|&b| b == b':') {
            if group.is_empty() || group.len() > 4 || *n == 8 {
                return None;
            }
            let mut g = 0u16;
            for &b in group {
                g = (g << 4) | u16::from(char::from(b).to_digit(16)? as u8);
            }
            out[*n] = g;
            *n += 1;
        }
        Some(())
    }
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut h, mut t) = (0, 0);
    match addr.windows(2).position(|w| w == b"::") {
        Some(at) => {
            groups(&addr[..at], &mut head, &mut h)?;
            groups(&addr[at + 2..], &mut tail, &mut t)?;
            if h + t > 6 {
                return None;
            }
        }
        None => {
            groups(addr, &mut head, &mut h)?;
            if h != 8 {
                return None;
            }
        }
    }
    let mut all = head;
    all[8 - t..].copy_from_slice(&tail[..t]);
    Some(
        all.iter()
            .fold(0u128, |acc, &g| (acc << 16) | u128::from(g)),
    )
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

    /// Texts near the forms the fast path reads: mutations of valid ones.
    fn near_nets() -> impl Strategy<Value = String> {
        let valid = prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a))),
            (prop_oneof![any::<u128>(), sparse_v6()], 0u8..=128)
                .prop_map(|(a, l)| format!("{}/{l}", Ipv6Addr::from(a))),
            (prop_oneof![any::<u128>(), sparse_v6()], 0u8..=128).prop_map(|(a, l)| {
                let g: Vec<String> = (0..8)
                    .map(|i| format!("{:04X}", (a >> (112 - 16 * i)) as u16))
                    .collect();
                format!("{}/{l}", g.join(":"))
            }),
        ];
        (
            valid,
            any::<u8>(),
            0usize..64,
            prop::sample::select(vec![
                "", "0", ":", "::", ".", "/", "00", "1", "g", "F", "256", "1.2", "ffff:",
            ]),
        )
            .prop_map(|(text, how, at, piece)| {
                let mut text = text;
                let at = at.min(text.len());
                match how % 4 {
                    0 => {}
                    1 => text.insert_str(at, piece),
                    2 => {
                        let end = (at + 1).min(text.len());
                        text.replace_range(at..end, piece);
                    }
                    _ => text.truncate(at),
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn parse_net_answers_as_ipnet_does(text in near_nets()) {
            prop_assert_eq!(parse_net(&text).ok(), text.parse::<IpNet>().ok(), "{}", text);
        }
    }

    #[test]
    fn parse_net_edge_cases_answer_as_ipnet_does() {
        for text in [
            "0.0.0.0/0",
            "255.255.255.255/32",
            "256.0.0.0/8",
            "1.2.3/24",
            "1.2.3.4.5/32",
            "01.2.3.4/32",
            "1.2.3.4/033",
            "1.2.3.4/33",
            "1.2.3.4/",
            "/24",
            "1.2.3.4",
            "::/0",
            "::/128",
            "::1/128",
            "1::/16",
            "1:2:3:4:5:6:7::/128",
            "::2:3:4:5:6:7:8/128",
            "1:2:3:4:5:6:7:8/128",
            "1:2:3:4:5:6:7:8:9/128",
            "1:2:3:4:5:6:7/128",
            ":::/0",
            "1:::2/64",
            "::ffff:192.0.2.1/128",
            "12345::/16",
            "2001:DB8::/32",
            "2001:db8::/129",
            "2001:db8::/0128",
            "2001:db8::/-1",
            "2001:db8::/+32",
            "+1.2.3.4/32",
            "1.2.3.4/ 8",
            "fe80::1%eth0/64",
            "",
            "/",
            "::",
            "2001:db8::1::/64",
            ":1::/64",
            "1::1:/64",
        ] {
            assert_eq!(parse_net(text).ok(), text.parse::<IpNet>().ok(), "{text}");
        }
        // The fast path itself reads the common forms (not only the fallback).
        assert!(fast_net(b"45.0.2.0/24").is_some());
        assert!(fast_net(b"2a01:0:2::/48").is_some());
        assert!(fast_net(b"2001:DB8:0:0:0:0:0:1/128").is_some());
    }
}
