//! The differential test: generated rulesets loaded in a real kernel, real SYNs from a client
//! namespace, compared with the engine's verdict for each (source, port). Every ruleset is
//! also read the way a sync reads it (its address sets and `hash:net` ipsets given as known,
//! the ruleset read without set elements, every other set, map and ipset read on its own),
//! which must give the same answers.
//!
//! CI runs `CF_ALLOW_DIFF_CASES` nft rulesets (default 200) × 8 probes, and a third as many
//! iptables-nft / iptables-legacy rulesets with an ipset (default 60); `make soak-reach` runs
//! many more. Every disagreement found becomes a named case in `regressions.rs`.

mod common;

use std::fmt::Write as _;

use common::kernel::{compare, Lab, Tally, PORTS, SOURCES};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const V4_VALUES: [&str; 10] = [
    "192.0.2.0/24",
    "192.0.2.0/25",
    "192.0.2.64/26",
    "192.0.2.77",
    "192.0.2.10-192.0.2.100",
    "198.51.100.0/24",
    "198.51.100.128/25",
    "203.0.113.0/24",
    "198.51.100.0/23",
    "203.0.113.9",
];
const V6_VALUES: [&str; 7] = [
    "2001:db8::/64",
    "2001:db8::/65",
    "2001:db8::8000:0:0:0/65",
    "2001:db8:1::/48",
    "2001:db8::10",
    "2001:db8::/32",
    "2001:db8::5-2001:db8::8000:0:0:0",
];
const CONCAT_ADDRS: [&str; 4] = [
    "192.0.2.77",
    "198.51.100.128/25",
    "203.0.113.0/24",
    "192.0.2.0/26",
];
const PORT_VALUES: [&str; 8] = [
    "22",
    "80",
    "443",
    "1000-2000",
    "80-443",
    "{ 22, 8080 }",
    "1-1023",
    "{ 80, 1000-1000, 443 }",
];

#[derive(Clone, Debug)]
enum Fam {
    Inet,
    Ip,
    Ip6,
    Netdev,
}

#[derive(Clone, Debug)]
enum M {
    /// (v6, negated, value index)
    Saddr(bool, bool, usize),
    /// Anonymous set of two source values.
    SaddrSet(bool, bool, usize, usize),
    Dport(bool, usize),
    /// ct state new / != new / established,related
    Ct(u8),
    /// A named set of the table (index), negated?
    SetRef(usize, bool),
    Iifname(bool),
    Daddr(bool),
    Fib,
    /// tcp flags: 0 `& (fin|syn|rst|ack) == syn`, 1 `!= syn`, 2 `syn`, 3 `ack`
    Flags(u8),
}

#[derive(Clone, Debug)]
enum V {
    None,
    Accept,
    Drop,
    Reject,
    Jump(usize),
    Goto(usize),
    Return,
    /// dport vmap { 22 : v, 80 : v, 443 : v }
    Vmap([u8; 3]),
}

#[derive(Clone, Debug)]
struct R {
    m: Vec<M>,
    v: V,
}

#[derive(Clone, Debug)]
struct Base {
    hook: u8, // 0 prerouting, 1 input, 2 ingress
    prio: i32,
    policy_drop: bool,
    rules: Vec<R>,
}

#[derive(Clone, Debug)]
struct Set {
    /// 0: ipv4_addr interval, 1: ipv6_addr interval, 2: ipv4_addr . inet_service interval
    kind: u8,
    elems: Vec<(usize, usize)>,
}

#[derive(Clone, Debug)]
struct Tbl {
    fam: Fam,
    sets: Vec<Set>,
    bases: Vec<Base>,
    regular: Vec<Vec<R>>,
}

fn matches() -> impl Strategy<Value = M> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), 0..10usize).prop_map(|(v6, n, i)| M::Saddr(v6, n, i)),
        1 => (any::<bool>(), any::<bool>(), 0..10usize, 0..10usize).prop_map(|(v6, n, i, j)| M::SaddrSet(v6, n, i, j)),
        4 => (any::<bool>(), 0..PORT_VALUES.len()).prop_map(|(n, i)| M::Dport(n, i)),
        1 => (0..3u8).prop_map(M::Ct),
        2 => (0..2usize, any::<bool>()).prop_map(|(i, n)| M::SetRef(i, n)),
        1 => any::<bool>().prop_map(M::Iifname),
        1 => any::<bool>().prop_map(M::Daddr),
        1 => Just(M::Fib),
        1 => (0..4u8).prop_map(M::Flags),
    ]
}

fn verdicts() -> impl Strategy<Value = V> {
    prop_oneof![
        1 => Just(V::None),
        4 => Just(V::Accept),
        3 => Just(V::Drop),
        2 => Just(V::Reject),
        2 => (0..3usize).prop_map(V::Jump),
        1 => (0..3usize).prop_map(V::Goto),
        1 => Just(V::Return),
        1 => prop::array::uniform3(0..3u8).prop_map(V::Vmap),
    ]
}

fn rules(max: usize) -> impl Strategy<Value = Vec<R>> {
    prop::collection::vec(
        (prop::collection::vec(matches(), 0..3), verdicts()).prop_map(|(m, v)| R { m, v }),
        0..max,
    )
}

fn table() -> impl Strategy<Value = Tbl> {
    (
        prop_oneof![4 => Just(Fam::Inet), 2 => Just(Fam::Ip), 2 => Just(Fam::Ip6), 1 => Just(Fam::Netdev)],
        prop::collection::vec(
            (0..3u8, prop::collection::vec((0..10usize, 0..PORT_VALUES.len()), 1..4)).prop_map(|(kind, elems)| Set { kind, elems }),
            2..=2,
        ),
        prop::collection::vec(
            (0..3u8, -20..20i32, prop::bool::weighted(0.3), rules(5)).prop_map(|(hook, prio, policy_drop, rules)| Base {
                hook,
                prio,
                policy_drop,
                rules,
            }),
            1..3,
        ),
        prop::collection::vec(rules(4), 3..=3),
    )
        .prop_map(|(fam, sets, bases, regular)| Tbl { fam, sets, bases, regular })
}

/// A V4 or V6 source value usable in a table of this family (None: the match is left out).
fn addr_value(fam: &Fam, v6: bool, i: usize) -> Option<(&'static str, &'static str)> {
    let v6 = match fam {
        Fam::Ip => false,
        Fam::Ip6 => true,
        _ => v6,
    };
    if v6 {
        Some(("ip6", V6_VALUES[i % V6_VALUES.len()]))
    } else {
        Some(("ip", V4_VALUES[i % V4_VALUES.len()]))
    }
}

/// Which address family a rule's address matches use: the first one's (nft refuses a rule
/// matching both `ip` and `ip6` fields).
fn rule_v6(t: &Tbl, r: &R) -> bool {
    let first = r.m.iter().find_map(|m| match m {
        M::Saddr(v6, ..) | M::SaddrSet(v6, ..) => Some(*v6),
        M::SetRef(i, _) => Some(t.sets[*i].kind == 1),
        _ => None,
    });
    match t.fam {
        Fam::Ip => false,
        Fam::Ip6 => true,
        _ => first.unwrap_or(false),
    }
}

fn render_rule(out: &mut String, t: &Tbl, r: &R, iface: &str) {
    let v6 = rule_v6(t, r);
    for m in &r.m {
        let family_ok = match m {
            M::Saddr(x, ..) | M::SaddrSet(x, ..) => *x == v6 || matches!(t.fam, Fam::Ip | Fam::Ip6),
            M::SetRef(i, _) => (t.sets[*i].kind == 1) == v6,
            M::Daddr(_) => true,
            M::Ct(_) => !matches!(t.fam, Fam::Netdev),
            _ => true,
        };
        if family_ok {
            render_match(out, t, m, iface, v6);
        }
    }
}

fn render_match(out: &mut String, t: &Tbl, m: &M, iface: &str, rule_v6: bool) {
    let neg = |n: bool| if n { "!= " } else { "" };
    match m {
        M::Saddr(v6, n, i) => {
            if let Some((p, v)) = addr_value(&t.fam, *v6, *i) {
                let _ = write!(out, "{p} saddr {}{v} ", neg(*n));
            }
        }
        M::SaddrSet(v6, n, i, j) => {
            if let (Some((p, a)), Some((_, b))) =
                (addr_value(&t.fam, *v6, *i), addr_value(&t.fam, *v6, *j))
            {
                if a == b {
                    let _ = write!(out, "{p} saddr {}{{ {a} }} ", neg(*n));
                } else {
                    let _ = write!(out, "{p} saddr {}{{ {a}, {b} }} ", neg(*n));
                }
            }
        }
        M::Dport(n, i) => {
            let _ = write!(out, "tcp dport {}{} ", neg(*n), PORT_VALUES[*i]);
        }
        M::Ct(0) => out.push_str("ct state new "),
        M::Ct(1) => out.push_str("ct state != new "),
        M::Ct(_) => out.push_str("ct state established,related "),
        M::SetRef(i, n) => {
            let set = &t.sets[*i];
            let key = match (set.kind, &t.fam) {
                (0, Fam::Ip6) | (1, Fam::Ip) => return,
                (0, _) => "ip saddr",
                (1, _) => "ip6 saddr",
                (_, Fam::Ip6) => return,
                _ => "ip saddr . tcp dport",
            };
            let _ = write!(out, "{key} {}@s{i} ", neg(*n));
        }
        M::Iifname(n) => {
            let pat = if *n {
                "\"nomatch*\"".to_string()
            } else {
                format!("\"{}\"", &iface[..iface.len().min(4)]) + ""
            };
            let pat = if *n {
                pat
            } else {
                format!("\"{}*\"", &iface[..iface.len().min(4)])
            };
            let _ = write!(out, "iifname {pat} ");
        }
        M::Daddr(n) => match rule_v6 {
            true => {
                let _ = write!(out, "ip6 daddr {}2001:db8::1 ", neg(*n));
            }
            _ => {
                let _ = write!(out, "ip daddr {}192.0.2.1 ", neg(*n));
            }
        },
        M::Fib => {
            if !matches!(t.fam, Fam::Netdev) {
                out.push_str("fib daddr type local ");
            }
        }
        M::Flags(k) => out.push_str(match k {
            0 => "tcp flags & (fin|syn|rst|ack) == syn ",
            1 => "tcp flags & (fin|syn|rst|ack) != syn ",
            2 => "tcp flags syn ",
            _ => "tcp flags ack ",
        }),
    }
}

fn verdict_text(v: &V, in_input_base: bool, chain_index: Option<usize>) -> Option<String> {
    let target_ok = |k: usize| chain_index.is_none_or(|c| k > c);
    Some(match v {
        V::None => String::new(),
        V::Accept => "accept".into(),
        V::Drop => "drop".into(),
        V::Reject if in_input_base => "reject".into(),
        V::Reject => "drop".into(),
        V::Jump(k) if target_ok(*k) => format!("jump c{k}"),
        V::Goto(k) if target_ok(*k) => format!("goto c{k}"),
        V::Jump(_) | V::Goto(_) => "return".into(),
        V::Return => "return".into(),
        V::Vmap(vs) => {
            let name = |x: u8| match x {
                0 => "accept",
                1 => "drop",
                _ => "continue",
            };
            format!(
                "tcp dport vmap {{ 22 : {}, 80 : {}, 443 : {} }}",
                name(vs[0]),
                name(vs[1]),
                name(vs[2])
            )
        }
    })
}

fn render(tables: &[Tbl], iface: &str) -> String {
    let mut out = String::new();
    for (ti, t) in tables.iter().enumerate() {
        let fam = match t.fam {
            Fam::Inet => "inet",
            Fam::Ip => "ip",
            Fam::Ip6 => "ip6",
            Fam::Netdev => "netdev",
        };
        let _ = writeln!(out, "table {fam} t{ti} {{");
        for (si, s) in t.sets.iter().enumerate() {
            let (ty, elems): (&str, Vec<String>) = match s.kind {
                0 => (
                    "ipv4_addr",
                    s.elems
                        .iter()
                        .map(|(a, _)| V4_VALUES[*a].to_string())
                        .collect(),
                ),
                1 => (
                    "ipv6_addr",
                    s.elems
                        .iter()
                        .map(|(a, _)| V6_VALUES[*a % V6_VALUES.len()].to_string())
                        .collect(),
                ),
                _ => (
                    "ipv4_addr . inet_service",
                    // Disjoint addresses: nft refuses overlapping concatenated intervals.
                    s.elems
                        .iter()
                        .map(|(a, p)| (CONCAT_ADDRS[*a % CONCAT_ADDRS.len()], *p))
                        .collect::<std::collections::BTreeMap<_, _>>()
                        .into_iter()
                        .map(|(a, p)| {
                            let port = match PORT_VALUES[p] {
                                x if x.starts_with('{') => "443",
                                x => x,
                            };
                            format!("{a} . {port}")
                        })
                        .collect(),
                ),
            };
            let mut elems = elems;
            elems.sort();
            elems.dedup();
            let _ = writeln!(
                out,
                "  set s{si} {{ type {ty}; flags interval; auto-merge; elements = {{ {} }} }}",
                elems.join(", ")
            );
        }
        // Regular chains: c0..c2 (only non-netdev tables can reject; regular chains never do).
        for (ci, rules) in t.regular.iter().enumerate() {
            let _ = writeln!(out, "  chain c{ci} {{");
            for r in rules {
                let mut line = String::new();
                render_rule(&mut line, t, r, iface);
                if let Some(v) = verdict_text(&r.v, false, Some(ci)) {
                    line.push_str(&v);
                }
                if !line.trim().is_empty() {
                    let _ = writeln!(out, "    {}", line.trim());
                }
            }
            let _ = writeln!(out, "  }}");
        }
        for (bi, b) in t.bases.iter().enumerate() {
            let hook = match (&t.fam, b.hook) {
                (Fam::Netdev, _) => "ingress",
                (_, 0) => "prerouting",
                _ => "input",
            };
            let device = if hook == "ingress" {
                format!(" device \"{iface}\"")
            } else {
                String::new()
            };
            let policy = if b.policy_drop { "drop" } else { "accept" };
            let _ = writeln!(
                out,
                "  chain b{bi} {{ type filter hook {hook}{device} priority {}; policy {policy};",
                b.prio
            );
            // Non-TCP (ARP, neighbour discovery) always passes, so only the SYNs are tested.
            let _ = writeln!(out, "    meta l4proto != tcp accept");
            for r in &b.rules {
                let mut line = String::new();
                render_rule(&mut line, t, r, iface);
                // Only input base chains may reject; jumps from ingress/prerouting chains
                // go to chains that never reject either.
                if let Some(v) = verdict_text(&r.v, hook == "input", None) {
                    line.push_str(&v);
                }
                if !line.trim().is_empty() {
                    let _ = writeln!(out, "    {}", line.trim());
                }
            }
            let _ = writeln!(out, "  }}");
        }
        let _ = writeln!(out, "}}");
    }
    out
}

fn probes() -> impl Strategy<Value = Vec<(&'static str, u16)>> {
    prop::collection::vec(
        (0..SOURCES.len(), 0..PORTS.len()).prop_map(|(s, p)| (SOURCES[s], PORTS[p])),
        8..=8,
    )
}

/// The number of cases (`CF_ALLOW_DIFF_CASES / divisor`, or `default`) and a runner for them
/// that shrinks a disagreement to a small ruleset and writes no persistence file.
fn runner(divisor: u32, default: u32) -> (u32, TestRunner) {
    let cases: u32 = std::env::var("CF_ALLOW_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map(|n| n.div_ceil(divisor))
        .unwrap_or(default);
    let runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    (cases, runner)
}

#[test]
fn engine_agrees_with_the_kernel_on_generated_rulesets() {
    if !cf_allow_testkit::require_root("engine_agrees_with_the_kernel_on_generated_rulesets") {
        return;
    }
    let (cases, mut runner) = runner(1, 200);
    let lab = Lab::new("diff");
    let tally = Tally::default();
    let strategy = (prop::collection::vec(table(), 1..4), probes());
    let result = runner.run(&strategy, |(tables, probes)| {
        let script = render(&tables, &lab.iface);
        tally.outcome(compare(&lab, &script, &probes))
    });
    eprintln!(
        "differential: {} rulesets × 8 probes compared with the kernel ({} generated rulesets refused by nft and skipped)",
        tally.loaded(),
        tally.refused()
    );
    if let Err(e) = result {
        panic!("the engine disagrees with the kernel: {e}");
    }
    assert!(
        tally.loaded() * 2 >= cases,
        "too many generated rulesets were refused by nft"
    );
}

// ---- iptables (iptables-nft and iptables-legacy, with an ipset) ----

const IPT_SOURCES: [&str; 7] = [
    "192.0.2.0/24",
    "192.0.2.0/25",
    "192.0.2.64/26",
    "192.0.2.77/32",
    "198.51.100.0/24",
    "198.51.100.128/25",
    "203.0.113.0/24",
];
const IPT_PORTS: [&str; 5] = ["22", "80", "443", "1000:2000", "80:443"];
const IPT_MULTI: [&str; 3] = ["22,8080", "80,1000:2000,443", "1:1023"];
/// What the generated ipset may hold.
const IPSET_ENTRIES: [&str; 4] = [
    "192.0.2.77",
    "198.51.100.0/25",
    "203.0.113.9",
    "192.0.2.192/26",
];

#[derive(Clone, Debug)]
enum IM {
    Src(bool, usize),
    Dport(bool, usize),
    Multi(bool, usize),
    Ct(u8),
    Set(bool),
}

#[derive(Clone, Debug)]
enum IT {
    None,
    Accept,
    Drop,
    Reject,
    Return,
    Jump(usize),
    Goto(usize),
}

#[derive(Clone, Debug)]
struct IRule {
    m: Vec<IM>,
    t: IT,
}

#[derive(Clone, Debug)]
struct Ipt {
    legacy: bool,
    /// raw PREROUTING, mangle PREROUTING, mangle INPUT, filter INPUT: (policy drop, rules)
    bases: [(bool, Vec<IRule>); 4],
    user: Vec<Vec<IRule>>,
    set: Vec<usize>,
}

fn ipt_rules(max: usize) -> impl Strategy<Value = Vec<IRule>> {
    let m = prop_oneof![
        3 => (any::<bool>(), 0..IPT_SOURCES.len()).prop_map(|(n, i)| IM::Src(n, i)),
        3 => (any::<bool>(), 0..IPT_PORTS.len()).prop_map(|(n, i)| IM::Dport(n, i)),
        1 => (any::<bool>(), 0..IPT_MULTI.len()).prop_map(|(n, i)| IM::Multi(n, i)),
        1 => (0..3u8).prop_map(IM::Ct),
        2 => any::<bool>().prop_map(IM::Set),
    ];
    let t = prop_oneof![
        1 => Just(IT::None),
        3 => Just(IT::Accept),
        3 => Just(IT::Drop),
        2 => Just(IT::Reject),
        1 => Just(IT::Return),
        2 => (0..3usize).prop_map(IT::Jump),
        1 => (0..3usize).prop_map(IT::Goto),
    ];
    prop::collection::vec(
        (prop::collection::vec(m, 0..3), t).prop_map(|(m, t)| IRule { m, t }),
        0..max,
    )
}

fn ipt() -> impl Strategy<Value = Ipt> {
    (
        any::<bool>(),
        [
            (prop::bool::weighted(0.2), ipt_rules(3)),
            (prop::bool::weighted(0.2), ipt_rules(3)),
            (prop::bool::weighted(0.2), ipt_rules(3)),
            (prop::bool::weighted(0.4), ipt_rules(5)),
        ],
        prop::collection::vec(ipt_rules(4), 3..=3),
        prop::collection::vec(0..IPSET_ENTRIES.len(), 0..3),
    )
        .prop_map(|(legacy, bases, user, set)| Ipt {
            legacy,
            bases,
            user,
            set,
        })
}

fn ipt_rule_text(r: &IRule, chain: &str, filter: bool, from: Option<usize>) -> String {
    let mut line = format!("-A {chain}");
    let mut tcp = false;
    // iptables allows one -s, one --dport and one multiport per rule.
    let mut seen = std::collections::HashSet::new();
    for m in &r.m {
        if !seen.insert(std::mem::discriminant(m)) && !matches!(m, IM::Ct(_) | IM::Set(_)) {
            continue;
        }
        let neg = |n: bool| if n { "! " } else { "" };
        match m {
            IM::Src(n, i) => line.push_str(&format!(" {}-s {}", neg(*n), IPT_SOURCES[*i])),
            IM::Dport(n, i) => {
                if !tcp {
                    line.push_str(" -p tcp");
                    tcp = true;
                }
                line.push_str(" -m tcp");
                line.push_str(&format!(" {}--dport {}", neg(*n), IPT_PORTS[*i]));
            }
            IM::Multi(n, i) => {
                if !tcp {
                    line.push_str(" -p tcp");
                    tcp = true;
                }
                line.push_str(&format!(
                    " -m multiport {}--dports {}",
                    neg(*n),
                    IPT_MULTI[*i]
                ));
            }
            IM::Ct(0) => line.push_str(" -m conntrack --ctstate NEW"),
            IM::Ct(1) => line.push_str(" -m conntrack ! --ctstate NEW"),
            IM::Ct(_) => line.push_str(" -m conntrack --ctstate RELATED,ESTABLISHED"),
            IM::Set(n) => line.push_str(&format!(" -m set {}--match-set cfdiff src", neg(*n))),
        }
    }
    let ok = |k: usize| filter && from.is_none_or(|c| k > c);
    let t = match &r.t {
        IT::None => String::new(),
        IT::Accept => " -j ACCEPT".into(),
        IT::Drop => " -j DROP".into(),
        IT::Reject if filter => " -j REJECT".into(),
        IT::Reject => " -j DROP".into(),
        IT::Return => " -j RETURN".into(),
        IT::Jump(k) if ok(*k) => format!(" -j u{k}"),
        IT::Goto(k) if ok(*k) => format!(" -g u{k}"),
        IT::Jump(_) | IT::Goto(_) => " -j RETURN".into(),
    };
    line + &t
}

fn render_ipt(t: &Ipt) -> String {
    let mut out = String::new();
    let pol = |d: bool| if d { "DROP" } else { "ACCEPT" };
    // Non-TCP always passes; only the SYNs are tested.
    let first = |c: &str| format!("-A {c} ! -p tcp -j ACCEPT\n");
    let _ = write!(
        out,
        "*raw\n:PREROUTING {} [0:0]\n:OUTPUT ACCEPT [0:0]\n{}",
        pol(t.bases[0].0),
        first("PREROUTING")
    );
    for r in &t.bases[0].1 {
        let _ = writeln!(out, "{}", ipt_rule_text(r, "PREROUTING", false, None));
    }
    let _ = write!(
        out,
        "COMMIT\n*mangle\n:PREROUTING {} [0:0]\n:INPUT {} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{}{}",
        pol(t.bases[1].0),
        pol(t.bases[2].0),
        first("PREROUTING"),
        first("INPUT")
    );
    for r in &t.bases[1].1 {
        let _ = writeln!(out, "{}", ipt_rule_text(r, "PREROUTING", false, None));
    }
    for r in &t.bases[2].1 {
        let _ = writeln!(out, "{}", ipt_rule_text(r, "INPUT", false, None));
    }
    let _ = write!(
        out,
        "COMMIT\n*filter\n:INPUT {} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:u0 - [0:0]\n:u1 - [0:0]\n:u2 - [0:0]\n{}",
        pol(t.bases[3].0),
        first("INPUT")
    );
    for r in &t.bases[3].1 {
        let _ = writeln!(out, "{}", ipt_rule_text(r, "INPUT", true, None));
    }
    for (k, rules) in t.user.iter().enumerate() {
        for r in rules {
            let _ = writeln!(out, "{}", ipt_rule_text(r, &format!("u{k}"), true, Some(k)));
        }
    }
    out.push_str("COMMIT\n");
    out
}

const EMPTY_IPT: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

#[test]
fn engine_agrees_with_the_kernel_on_generated_iptables_rulesets() {
    if !cf_allow_testkit::require_root(
        "engine_agrees_with_the_kernel_on_generated_iptables_rulesets",
    ) {
        return;
    }
    let (cases, mut runner) = runner(3, 60);
    let lab = Lab::new("diffipt");
    let tally = Tally::default();
    let v4: Vec<&'static str> = SOURCES
        .iter()
        .copied()
        .filter(|s| !s.contains(':'))
        .collect();
    let probes = prop::collection::vec((0..v4.len(), 0..PORTS.len()), 8..=8).prop_map(move |v| {
        v.into_iter()
            .map(|(s, p)| (v4[s], PORTS[p]))
            .collect::<Vec<_>>()
    });
    let result = runner.run(&(ipt(), probes), |(t, probes)| {
        let text = render_ipt(&t);
        let set: Vec<String> = t
            .set
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|i| format!("add cfdiff {}", IPSET_ENTRIES[*i]))
            .collect();
        let (program, other) = if t.legacy {
            ("iptables-legacy-restore", "iptables-nft-restore")
        } else {
            ("iptables-nft-restore", "iptables-legacy-restore")
        };
        let shown = format!("# {program}\n{text}# ipset cfdiff: {}\n", set.join("; "));
        let load = |lab: &Lab| -> Result<(), String> {
            lab.load("")?;
            lab.run_input(&format!("{other} -w 5"), EMPTY_IPT)?;
            lab.run_input("iptables-legacy-restore -w 5", EMPTY_IPT)?;
            lab.run_input(
                "ipset destroy cfdiff 2>/dev/null; ipset restore",
                &format!("create cfdiff hash:net family inet\n{}\n", set.join("\n")),
            )?;
            lab.run_input(&format!("{program} -w 5"), &text)
        };
        tally.outcome(common::kernel::compare_loaded(&lab, &shown, &probes, &load))
    });
    eprintln!(
        "differential (iptables-nft / iptables-legacy + ipset): {} rulesets × 8 probes compared with the kernel ({} refused by iptables-restore and skipped)",
        tally.loaded(),
        tally.refused()
    );
    // Leave no legacy tables behind in the namespace (it is deleted anyway).
    let _ = lab.run_input("iptables-legacy-restore", EMPTY_IPT);
    if let Err(e) = result {
        panic!("the engine disagrees with the kernel: {e}");
    }
    assert!(
        tally.loaded() * 2 >= cases,
        "too many generated rulesets were refused"
    );
}
