//! Helpers for the kernel tests: run the backend inside a private network namespace.

#![allow(dead_code)]

use cf_allow_diff::{Backend, Inspection, IpNet, Plan, RangeSet};
use cf_allow_nftables::{Error, IntoTarget, NftablesBackend, Settings, TableFamily};
use cf_allow_testkit::Netns;

/// True when the test may run (root, nft for reading back).
pub fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test) && cf_allow_testkit::require_programs(test, &["nft", "ip"])
}

pub fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().expect("test CIDR")).collect()
}

/// Today's Cloudflare list, aggregated as the binary would apply it.
pub fn cloudflare() -> RangeSet {
    RangeSet::aggregated(nets(&cf_allow_testkit::cloudflare_ranges()))
}

pub fn own(lockdown: bool) -> Settings {
    Settings {
        lockdown,
        ..Settings::default()
    }
}

pub fn into(table: &str, chain: &str) -> Settings {
    Settings {
        into: Some(IntoTarget {
            family: TableFamily::Inet,
            table: table.into(),
            chain: chain.into(),
        }),
        ..Settings::default()
    }
}

/// What one sync did.
#[derive(Debug)]
pub struct Synced {
    pub before: Inspection,
    pub plan: Plan,
}

/// inspect → plan → apply (only when the plan is not empty), like the binary, inside `ns`.
pub fn sync(
    ns: &Netns,
    settings: Settings,
    ports: &[u16],
    desired: &RangeSet,
) -> Result<Synced, Error> {
    let ports = ports.to_vec();
    let desired = desired.clone();
    ns.run_in(move || {
        let mut backend = NftablesBackend::new(settings, ports)?;
        let before = backend.inspect()?;
        let plan = Plan::between(&desired, &before.ranges).with_repairs(before.repairs.clone());
        if !plan.is_empty() {
            backend.apply(&plan)?;
        }
        Ok(Synced { before, plan })
    })
}

/// `inspect` inside `ns`.
pub fn inspect(ns: &Netns, settings: Settings, ports: &[u16]) -> Result<Inspection, Error> {
    let ports = ports.to_vec();
    ns.run_in(move || NftablesBackend::new(settings, ports)?.inspect())
}

/// `remove` inside `ns`.
pub fn remove(
    ns: &Netns,
    settings: Settings,
    ports: &[u16],
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    let ports = ports.to_vec();
    ns.run_in(move || NftablesBackend::new(settings, ports)?.remove(dry_run))
}

/// `nft list ruleset` inside `ns`.
pub fn ruleset(ns: &Netns) -> String {
    ns.sh("nft list ruleset")
}

/// `nft -j list ruleset` inside `ns`, parsed.
pub fn ruleset_json(ns: &Netns) -> serde_json::Value {
    serde_json::from_str(&ns.sh("nft -j list ruleset")).expect("nft -j output is JSON")
}

/// The elements of a set as CIDR strings, sorted.
#[allow(unused_imports)] // not every test file reads sets
pub use cf_allow_testkit::nft::set_elements;

/// The ranges of one family of `set` as sorted strings.
pub fn strings(set: &RangeSet, family: cf_allow_diff::Family) -> Vec<String> {
    let mut v = set.to_strings(family);
    v.sort();
    v
}

/// The netlink batch messages sent while running `f` … is not observable from outside;
/// instead, tests compare `nft list ruleset` before and after.
pub fn rule_lines(ns: &Netns, family: &str, table: &str, chain: &str) -> Vec<String> {
    ns.sh(&format!("nft list chain {family} {table} {chain}"))
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && *l != "}"
        })
        .filter(|l| !l.starts_with("type "))
        .map(str::to_owned)
        .collect()
}

/// A foreign ruleset like a host firewall's: drop policy, named sets, comments.
pub const FOREIGN: &str = r#"
table inet filter {
	set admins {
		type ipv4_addr
		flags interval
		elements = { 192.0.2.0/28, 198.51.100.7 }
	}
	set blocked6 {
		type ipv6_addr
		comment "bad neighbours"
		elements = { 2001:db8:dead::1 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept comment "keep sessions"
		iif "lo" accept
		ip saddr @admins tcp dport 22 accept comment "ssh from admins"
		ip6 saddr @blocked6 drop
		meta l4proto { icmp, ipv6-icmp } accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth9" masquerade comment "uplink"
	}
}
"#;

/// Loads [`FOREIGN`] into `ns`.
pub fn load_foreign(ns: &Netns) {
    ns.sh_with_input("nft -f -", FOREIGN);
}

/// A fresh namespace holding [`FOREIGN`], like a host with its own firewall.
pub fn foreign_host(label: &str) -> Netns {
    let ns = Netns::new(label);
    load_foreign(&ns);
    ns
}

/// The text of every table except `inet <own>` (what must stay byte-identical).
pub fn foreign_text(ns: &Netns) -> String {
    let mut out = String::new();
    for (family, table) in [("inet", "filter"), ("ip", "nat")] {
        out.push_str(&ns.sh(&format!("nft list table {family} {table}")));
    }
    out
}
