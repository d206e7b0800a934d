//! The differential test of the forward (DNAT) path: a "container" namespace behind a veth
//! in the server namespace, generated nat prerouting rules (DNAT to the container with and
//! without a new port, redirect to a local port) and generated forward/input chains (accept
//! and drop by source, `ct status dnat`, `ct original proto-dst`, `tcp dport` after DNAT,
//! `ip daddr`, `oifname`, `ct direction`, policies, priorities), real SYNs from the client
//! namespace, compared with the engine — both the verdict for the source and whether the
//! source is `exposed` when it is an outsider under lockdown.
//!
//! CI runs `CF_ALLOW_DIFF_CASES / 4` rulesets (default 40) × 8 probes plus the fixed shape
//! of cf-allow's own forward chain; `make soak-reach` runs 500.

mod common;

use std::time::Duration;

use cf_allow_reach::{Probe, RangeSet};
use cf_allow_testkit::{veth_pair, Netns};
use common::kernel::{Lab, Tally, PORTS, SOURCES};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CONTAINER_V4: &str = "198.51.100.66";
const CONTAINER_V6: &str = "2001:db8:c::2";
/// The ports the container listens on.
const CONTAINER_PORTS: [u16; 2] = [80, 8443];
/// An address that is none of the sources: the "listed" range of the lockdown probe.
const LISTED: &str = "192.0.2.250/32";

/// The lab with a container behind `ctr0`, forwarding on.
struct FwdLab {
    lab: Lab,
    _container: Netns,
}

impl FwdLab {
    fn new(label: &str) -> FwdLab {
        let lab = Lab::new(label);
        let container = Netns::new(&format!("{label}-k"));
        veth_pair(
            &lab.server,
            &["198.51.100.65/28", "2001:db8:c::1/64"],
            &container,
            &[&format!("{CONTAINER_V4}/28"), &format!("{CONTAINER_V6}/64")],
        );
        container.sh(
            "ip route add default via 198.51.100.65 && ip -6 route add default via 2001:db8:c::1",
        );
        // Default routes out of the client's link: the inbound interface the verdict
        // judges is that one only (not the container's veth, which no probe comes from).
        lab.server.sh(&format!(
            "sysctl -qw net.ipv4.ip_forward=1 && sysctl -qw net.ipv6.conf.all.forwarding=1 && \
             ip route add default dev {0} && ip -6 route add default dev {0}",
            lab.iface
        ));
        for p in CONTAINER_PORTS {
            container.tcp_listen(&format!("0.0.0.0:{p}"));
            container.tcp_listen(&format!("[::]:{p}"));
        }
        FwdLab {
            lab,
            _container: container,
        }
    }

    /// The container's veth end in the server.
    fn ctr_iface(&self) -> String {
        self.lab
            .server
            .sh("ip -o addr show to 198.51.100.65 | awk '{print $2}'")
            .trim()
            .to_string()
    }
}

/// DNAT rules of the prerouting nat chain.
/// The last one has no `meta nfproto`: in an inet table the kernel's nat statement of the
/// other family does nothing (IPv6 SYNs to 22 stay local), as netavark's rules rely on.
const DNATS: [&str; 7] = [
    "meta nfproto ipv4 tcp dport 443 dnat ip to 198.51.100.66:8443",
    "meta nfproto ipv6 tcp dport 443 dnat ip6 to [2001:db8:c::2]:8443",
    "meta nfproto ipv4 tcp dport 80 dnat ip to 198.51.100.66",
    "meta nfproto ipv6 tcp dport 80 dnat ip6 to 2001:db8:c::2",
    "tcp dport 1000 redirect to :22",
    "meta nfproto ipv4 ip saddr 192.0.2.0/25 tcp dport 8080 dnat ip to 198.51.100.66:8443",
    "tcp dport 22 dnat ip to 198.51.100.66:80",
];

/// Match vocabulary of the forward and input chains (`{ctr}`: the container's veth, `{in}`:
/// the inbound one).
const MATCHES: [&str; 22] = [
    "ip saddr 192.0.2.0/25",
    "ip saddr != 192.0.2.64/26",
    "ip saddr 198.51.100.0/24",
    "ip6 saddr 2001:db8::/65",
    "ip6 saddr != 2001:db8:1::/48",
    "ct status dnat",
    "meta l4proto tcp ct original proto-dst { 80, 443 }",
    "meta l4proto tcp ct original proto-dst 443",
    "meta l4proto tcp ct original proto-dst != 80",
    "tcp dport 8443",
    "tcp dport != 80",
    "tcp dport 22",
    "ip daddr 198.51.100.66",
    "ip daddr != 198.51.100.64/28",
    "ip6 daddr 2001:db8:c::2",
    "oifname \"{ctr}\"",
    "oifname != \"{ctr}\"",
    "iifname \"{in}\"",
    "ct direction original",
    "ct state new",
    "meta l4proto tcp",
    "ct original ip daddr 192.0.2.1",
];
const VERDICTS: [&str; 4] = ["accept", "drop", "reject", ""];

#[derive(Clone, Debug)]
struct Chain {
    /// 0 forward, 1 input
    hook: u8,
    prio: i32,
    policy_drop: bool,
    rules: Vec<(Vec<usize>, usize)>,
}

#[derive(Clone, Debug)]
struct Case {
    dnats: Vec<usize>,
    chains: Vec<Chain>,
}

fn case() -> impl Strategy<Value = Case> {
    let rule = (
        prop::collection::vec(0..MATCHES.len(), 0..3),
        0..VERDICTS.len(),
    );
    let chain = (
        prop_oneof![3 => Just(0u8), 1 => Just(1u8)],
        prop_oneof![Just(-10), Just(0), Just(10)],
        any::<bool>(),
        prop::collection::vec(rule, 0..5),
    )
        .prop_map(|(hook, prio, policy_drop, rules)| Chain {
            hook,
            prio,
            policy_drop,
            rules,
        });
    (
        prop::collection::vec(0..DNATS.len(), 1..5),
        prop::collection::vec(chain, 1..4),
    )
        .prop_map(|(mut dnats, chains)| {
            dnats.sort_unstable();
            dnats.dedup();
            Case { dnats, chains }
        })
}

fn render(c: &Case, ctr: &str, inbound: &str) -> String {
    let mut s = String::from(
        "table inet nat_t {\n  chain pre { type nat hook prerouting priority dstnat; policy accept;\n",
    );
    for &d in &c.dnats {
        s.push_str(&format!("    {}\n", DNATS[d]));
    }
    s.push_str("  }\n}\ntable inet f_t {\n");
    for (i, ch) in c.chains.iter().enumerate() {
        let hook = if ch.hook == 0 { "forward" } else { "input" };
        s.push_str(&format!(
            "  chain c{i} {{ type filter hook {hook} priority {}; policy {};\n",
            ch.prio,
            if ch.policy_drop { "drop" } else { "accept" }
        ));
        // Replies (the container's SYN-ACK) always pass: the verdict is about the SYN.
        s.push_str("    ct direction reply accept\n");
        for (ms, v) in &ch.rules {
            let m: Vec<String> = ms
                .iter()
                .map(|&i| MATCHES[i].replace("{ctr}", ctr).replace("{in}", inbound))
                .collect();
            let line = format!("{} {}", m.join(" "), VERDICTS[*v]);
            if !line.trim().is_empty() {
                s.push_str(&format!("    {}\n", line.trim()));
            }
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// cf-allow's own forward chain exactly as the nftables backend writes it (lockdown on,
/// ports 80 and 443; the listed ranges hold two of the sources), behind Docker-like DNATs.
fn cf_allow_shape() -> String {
    format!(
        "table inet nat_t {{\n  chain pre {{ type nat hook prerouting priority dstnat; policy accept;\n    {}\n    {}\n    {}\n    {}\n  }}\n}}\n\
         table inet cf_allow {{\n  set cf_v4 {{ type ipv4_addr; flags interval; elements = {{ 192.0.2.0/25 }} }}\n  \
         set cf_v6 {{ type ipv6_addr; flags interval; elements = {{ 2001:db8::/65 }} }}\n  \
         chain forward {{ type filter hook forward priority filter; policy accept;\n    \
         meta l4proto tcp ct direction original ct status dnat ip saddr @cf_v4 ct original proto-dst {{ 80, 443 }} accept comment \"cf-allow\"\n    \
         meta l4proto tcp ct direction original ct status dnat ip6 saddr @cf_v6 ct original proto-dst {{ 80, 443 }} accept comment \"cf-allow\"\n    \
         meta l4proto tcp ct direction original ct status dnat ct original proto-dst {{ 80, 443 }} drop comment \"cf-allow\"\n  }}\n}}\n",
        DNATS[0], DNATS[1], DNATS[2], DNATS[3]
    )
}

/// Compares kernel and engine on `probes`: the verdict for each source, and whether an
/// outsider (the lockdown probe of [`LISTED`]) is exposed exactly when the kernel accepts.
fn compare(lab: &Lab, script: &str, probes: &[(&'static str, u16)]) -> Result<(), String> {
    if let Err(e) = lab.load(script) {
        return Err(format!("nft refused the ruleset: {e}\n{script}"));
    }
    let model = lab.model();
    let mut engine = Vec::new();
    for &(src, port) in probes {
        let net = format!("{src}/{}", if src.contains(':') { 128 } else { 32 });
        let one: ipnet::IpNet = net.parse().map_err(|e| format!("{e}"))?;
        let v = model.evaluate(&Probe {
            ranges: RangeSet::aggregated([one]),
            ports: vec![port],
            lockdown: false,
        });
        if !v.unknown.is_empty() {
            return Err(format!("unknown: {}\n{script}", v.to_json()));
        }
        let outsider = model.evaluate(&Probe {
            ranges: RangeSet::aggregated([LISTED.parse().map_err(|e| format!("{e}"))?]),
            ports: vec![port],
            lockdown: true,
        });
        let addr: std::net::IpAddr = src.parse().map_err(|e| format!("{e}"))?;
        let exposed = outsider
            .exposed
            .iter()
            .any(|f| f.ranges.iter().any(|n| n.contains(&addr)));
        engine.push((v.reachable, exposed));
    }
    let mut kernel = lab.kernel(
        probes,
        Duration::from_millis(300),
        &vec![false; probes.len()],
    );
    let recheck: Vec<bool> = kernel
        .iter()
        .zip(&engine)
        .map(|(k, (e, _))| *k || !*e)
        .collect();
    if recheck.iter().any(|done| !done) {
        let again = lab.kernel(probes, Duration::from_secs(2), &recheck);
        for (k, a) in kernel.iter_mut().zip(again) {
            *k |= a;
        }
    }
    let mut bad = Vec::new();
    for ((&(src, port), k), (e, x)) in probes.iter().zip(kernel).zip(engine) {
        if e != k || x != k {
            bad.push(format!(
                "{src} → {port}: kernel {}, engine {} (exposed as an outsider: {x})",
                if k { "accepted" } else { "blocked" },
                if e { "accepted" } else { "blocked" }
            ));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- ruleset ---\n{script}", bad.join("\n")))
    }
}

fn probes() -> impl Strategy<Value = Vec<(&'static str, u16)>> {
    prop::collection::vec(
        (0..SOURCES.len(), 0..PORTS.len()).prop_map(|(s, p)| (SOURCES[s], PORTS[p])),
        8..=8,
    )
}

#[test]
fn forward_path_agrees_with_the_kernel_on_generated_rulesets() {
    if !cf_allow_testkit::require_root("forward_path_agrees_with_the_kernel_on_generated_rulesets")
    {
        return;
    }
    let cases: u32 = std::env::var("CF_ALLOW_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map(|n| n.div_ceil(4))
        .unwrap_or(40);
    let fwd = FwdLab::new("fwdd");
    let (ctr, inbound) = (fwd.ctr_iface(), fwd.lab.iface.clone());
    // The fixed shape first: cf-allow's own forward chain, every source and port.
    let all: Vec<(&'static str, u16)> = SOURCES
        .iter()
        .flat_map(|s| PORTS.iter().map(move |p| (*s, *p)))
        .collect();
    if let Err(e) = compare(&fwd.lab, &cf_allow_shape(), &all) {
        panic!("the engine disagrees with the kernel on cf-allow's forward chain: {e}");
    }
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 100,
        ..Config::default()
    });
    let tally = Tally::default();
    let result = runner.run(&(case(), probes()), |(c, probes)| {
        let script = render(&c, &ctr, &inbound);
        tally.outcome(compare(&fwd.lab, &script, &probes))
    });
    eprintln!(
        "forward differential: cf-allow's forward chain × {} probes, then {} generated rulesets × 8 probes compared with the kernel ({} refused by nft and skipped)",
        all.len(),
        tally.loaded(),
        tally.refused()
    );
    if let Err(e) = result {
        panic!("the engine disagrees with the kernel on the forward path: {e}");
    }
    assert!(
        tally.loaded() * 2 >= cases,
        "too many generated rulesets were refused by nft"
    );
}
