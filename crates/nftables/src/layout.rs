//! What cf-allow's rules look like, expression by expression.
//!
//! In nft syntax (own-table mode, ports 80 and 443, lockdown on):
//!
//! ```text
//! ip saddr @cf_v4 tcp dport { 80, 443 } accept comment "cf-allow"
//! ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment "cf-allow"
//! tcp dport { 80, 443 } drop comment "cf-allow"
//! ```
//!
//! One port is matched with a plain comparison, several with an anonymous set (as nft does),
//! none (`ports: []`) with `meta l4proto tcp` alone.

use crate::model::{Expr, FAMILY_IP, FAMILY_IP6};

/// The IPv4 set.
pub(crate) const SET_V4: &str = "cf_v4";
/// The IPv6 set.
pub(crate) const SET_V6: &str = "cf_v6";
/// The base chain in cf-allow's own table.
pub(crate) const OWN_CHAIN: &str = "input";
/// The base chain on the forward hook in cf-allow's own table (with lockdown).
pub(crate) const FORWARD_CHAIN: &str = "forward";
/// Into mode: the tagged base chain on the forward hook cf-allow creates in the `into` table
/// when that table has none of its own (with lockdown).
pub(crate) const INTO_FORWARD_CHAIN: &str = "cf_allow_forward";

const NFT_CT_DIRECTION: u32 = 1;
const NFT_CT_STATUS: u32 = 2;
const NFT_CT_PROTO_DST: u32 = 12;
/// `IPS_DST_NAT`: the connection's destination was rewritten (DNAT).
const IPS_DST_NAT: u32 = 1 << 5;

const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const IPPROTO_TCP: u8 = 6;
/// `NF_DROP`.
pub(crate) const VERDICT_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub(crate) const VERDICT_ACCEPT: i32 = 1;

/// The rules cf-allow keeps, in order, for `ports` (sorted, deduplicated) and `lockdown`.
pub(crate) fn expected_rules(ports: &[u16], lockdown: bool) -> Vec<Vec<Expr>> {
    let mut rules = vec![
        accept_rule(FAMILY_IP, 12, 4, SET_V4, ports),
        accept_rule(FAMILY_IP6, 8, 16, SET_V6, ports),
    ];
    if lockdown {
        let mut drop = tcp_ports(ports);
        drop.push(Expr::Verdict(VERDICT_DROP));
        rules.push(drop);
    }
    rules
}

/// The rules of the forward-hook chain, in order: the same accepts and drop as
/// [`expected_rules`], for new connections that were DNAT'd (published container ports),
/// matched by their original destination port instead of the forwarded packet's:
///
/// ```text
/// meta l4proto tcp ct direction original ct status dnat ip saddr @cf_v4 ct original proto-dst { 80, 443 } accept
/// meta l4proto tcp ct direction original ct status dnat ip6 saddr @cf_v6 ct original proto-dst { 80, 443 } accept
/// meta l4proto tcp ct direction original ct status dnat ct original proto-dst { 80, 443 } drop
/// ```
///
/// `ct direction original` leaves the container's replies alone.
pub(crate) fn expected_forward_rules(ports: &[u16], lockdown: bool) -> Vec<Vec<Expr>> {
    let mut rules = Vec::new();
    for (nfproto, offset, len, set) in [(FAMILY_IP, 12, 4, SET_V4), (FAMILY_IP6, 8, 16, SET_V6)] {
        let mut rule = dnat_original();
        rule.extend([
            Expr::Meta(NFT_META_NFPROTO),
            Expr::CmpEq(vec![nfproto]),
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                len,
            },
            Expr::Lookup(set.to_owned()),
        ]);
        rule.extend(original_ports(ports));
        rule.push(Expr::Verdict(VERDICT_ACCEPT));
        rules.push(rule);
    }
    if lockdown {
        let mut drop = dnat_original();
        drop.extend(original_ports(ports));
        drop.push(Expr::Verdict(VERDICT_DROP));
        rules.push(drop);
    }
    rules
}

/// `meta l4proto tcp ct direction original ct status dnat`.
fn dnat_original() -> Vec<Expr> {
    vec![
        Expr::Meta(NFT_META_L4PROTO),
        Expr::CmpEq(vec![IPPROTO_TCP]),
        Expr::Ct {
            key: NFT_CT_DIRECTION,
            original: false,
        },
        Expr::CmpEq(vec![0]),
        Expr::Ct {
            key: NFT_CT_STATUS,
            original: false,
        },
        Expr::BitwiseAnd(IPS_DST_NAT.to_ne_bytes().to_vec()),
        Expr::CmpNeq(0u32.to_ne_bytes().to_vec()),
    ]
}

/// `ct original proto-dst 443` or `ct original proto-dst { 80, 443 }`; nothing for no ports.
fn original_ports(ports: &[u16]) -> Vec<Expr> {
    let load = Expr::Ct {
        key: NFT_CT_PROTO_DST,
        original: true,
    };
    match ports {
        [] => Vec::new(),
        [port] => vec![load, Expr::CmpEq(port.to_be_bytes().to_vec())],
        many => vec![load, Expr::LookupPorts(many.to_vec())],
    }
}

/// `ip saddr @cf_v4 tcp dport {…} accept` (or the IPv6 twin).
fn accept_rule(
    nfproto: u8,
    saddr_offset: u32,
    addr_len: u32,
    set: &str,
    ports: &[u16],
) -> Vec<Expr> {
    let mut rule = vec![
        Expr::Meta(NFT_META_NFPROTO),
        Expr::CmpEq(vec![nfproto]),
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: saddr_offset,
            len: addr_len,
        },
        Expr::Lookup(set.to_owned()),
    ];
    rule.extend(tcp_ports(ports));
    rule.push(Expr::Verdict(VERDICT_ACCEPT));
    rule
}

/// `tcp dport 443`, `tcp dport { 80, 443 }` or, for no ports, `meta l4proto tcp`.
fn tcp_ports(ports: &[u16]) -> Vec<Expr> {
    let mut exprs = vec![Expr::Meta(NFT_META_L4PROTO), Expr::CmpEq(vec![IPPROTO_TCP])];
    let dport = Expr::Payload {
        base: NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: 2,
        len: 2,
    };
    match ports {
        [] => {}
        [port] => {
            exprs.push(dport);
            exprs.push(Expr::CmpEq(port.to_be_bytes().to_vec()));
        }
        many => {
            exprs.push(dport);
            exprs.push(Expr::LookupPorts(many.to_vec()));
        }
    }
    exprs
}

/// The ports and lockdown setting in words, for repair messages.
pub(crate) fn describe(ports: &[u16], lockdown: bool) -> String {
    let ports = if ports.is_empty() {
        "all TCP ports".to_owned()
    } else {
        format!(
            "TCP ports {}",
            ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{ports}, lockdown {}", if lockdown { "on" } else { "off" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_port_is_a_comparison_several_are_an_anonymous_set() {
        let one = expected_rules(&[443], false);
        assert_eq!(one.len(), 2);
        assert!(one[0].contains(&Expr::CmpEq(vec![0x01, 0xbb])));
        let many = expected_rules(&[80, 443], true);
        assert_eq!(many.len(), 3);
        assert!(many[1].contains(&Expr::LookupPorts(vec![80, 443])));
        assert_eq!(many[2].last(), Some(&Expr::Verdict(VERDICT_DROP)));
        let all = expected_rules(&[], false);
        assert!(!all[0].iter().any(|e| matches!(
            e,
            Expr::Payload {
                base: NFT_PAYLOAD_TRANSPORT_HEADER,
                ..
            }
        )));
    }

    #[test]
    fn forward_rules_match_dnat_by_the_original_port() {
        let rules = expected_forward_rules(&[80, 443], true);
        assert_eq!(rules.len(), 3);
        for rule in &rules {
            assert!(rule.contains(&Expr::BitwiseAnd(IPS_DST_NAT.to_ne_bytes().to_vec())));
            assert!(rule.contains(&Expr::LookupPorts(vec![80, 443])));
            assert!(!rule.iter().any(|e| matches!(
                e,
                Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    ..
                }
            )));
        }
        assert_eq!(rules[2].last(), Some(&Expr::Verdict(VERDICT_DROP)));
        assert_eq!(expected_forward_rules(&[443], false).len(), 2);
        assert!(expected_forward_rules(&[443], false)[0].contains(&Expr::CmpEq(vec![0x01, 0xbb])));
    }

    #[test]
    fn descriptions_name_ports_and_lockdown() {
        assert_eq!(describe(&[80, 443], true), "TCP ports 80, 443, lockdown on");
        assert_eq!(describe(&[], false), "all TCP ports, lockdown off");
    }
}
