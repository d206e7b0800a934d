//! Helpers for the iptables backend's kernel tests: run the backend inside a namespace the
//! way the binary does, and read the ruleset back.
#![allow(dead_code)]

use cf_allow_diff::{Backend, Inspection, IpNet, Plan, RangeSet};
use cf_allow_iptables::{IptablesBackend, Settings, Variant};
use cf_allow_testkit::Netns;

/// Both iptables implementations.
pub const VARIANTS: [Variant; 2] = [Variant::Nft, Variant::Legacy];

/// `iptables-nft`, `ip6tables-legacy-save`, … for a variant.
pub fn program(variant: Variant, v6: bool, suffix: &str) -> String {
    let base = if v6 { "ip6tables" } else { "iptables" };
    let infix = match variant {
        Variant::Nft => "-nft",
        Variant::Legacy => "-legacy",
        Variant::Auto => "",
    };
    format!("{base}{infix}{suffix}")
}

/// The filter table as `iptables-save` prints it, comments dropped and counters zeroed.
pub fn save(ns: &Netns, variant: Variant, v6: bool) -> String {
    let text = ns.sh(&format!("{} -t filter", program(variant, v6, "-save")));
    normalize(&text)
}

/// Both families' saves.
pub fn save_both(ns: &Netns, variant: Variant) -> (String, String) {
    (save(ns, variant, false), save(ns, variant, true))
}

/// Drops comment lines and zeroes `[packets:bytes]` counters.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let line = match (line.find(" ["), line.starts_with(':')) {
            (Some(at), true) => format!("{} [0:0]", &line[..at]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `text` without the lines that mention cf-allow's chains or sets.
pub fn without_ours(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("CF-ALLOW") && !l.contains("cf-allow-v"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The rules of one chain (the text after `-A <chain> `).
pub fn chain_rules(save: &str, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    save.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// Settings for a variant, changed by `f`.
pub fn settings(variant: Variant, f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings {
        variant,
        ..Settings::default()
    };
    f(&mut s);
    s
}

/// A set of ranges as given.
pub fn ranges(list: &[&str]) -> RangeSet {
    RangeSet::exact(list.iter().map(|s| s.parse::<IpNet>().expect("test CIDR")))
}

/// One sync the way the binary does it: inspect, plan, apply when the plan is not empty.
pub fn try_sync(
    ns: &Netns,
    settings: &Settings,
    ports: &[u16],
    desired: &RangeSet,
) -> Result<(Inspection, Plan), String> {
    let (settings, ports, desired) = (settings.clone(), ports.to_vec(), desired.clone());
    ns.run_in(move || {
        let mut backend = IptablesBackend::new(settings, ports).map_err(|e| e.to_string())?;
        let inspection = backend.inspect().map_err(|e| e.to_string())?;
        let plan =
            Plan::between(&desired, &inspection.ranges).with_repairs(inspection.repairs.clone());
        if !plan.is_empty() {
            backend.apply(&plan).map_err(|e| e.to_string())?;
        }
        Ok((inspection, plan))
    })
}

/// [`try_sync`] that must succeed.
pub fn sync(
    ns: &Netns,
    settings: &Settings,
    ports: &[u16],
    desired: &RangeSet,
) -> (Inspection, Plan) {
    try_sync(ns, settings, ports, desired).expect("sync")
}

/// What the backend sees now.
pub fn inspect(ns: &Netns, settings: &Settings, ports: &[u16]) -> Inspection {
    let (settings, ports) = (settings.clone(), ports.to_vec());
    ns.run_in(move || {
        IptablesBackend::new(settings, ports)
            .expect("backend")
            .inspect()
            .map_err(|e| e.to_string())
    })
    .expect("inspect")
}

/// `remove`, returning its lines or its error message.
pub fn remove(ns: &Netns, settings: &Settings, dry_run: bool) -> Result<Vec<String>, String> {
    let settings = settings.clone();
    ns.run_in(move || {
        IptablesBackend::new(settings, vec![80, 443])
            .map_err(|e| e.to_string())?
            .remove(dry_run)
            .map_err(|e| e.to_string())
    })
}

/// The members of an ipset, one per line as `ipset save` prints them, sorted.
pub fn set_members(ns: &Netns, name: &str) -> Vec<String> {
    let out = ns.sh_output(&format!("ipset save {name}"));
    let mut members: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("add {name} ")))
        .map(str::to_string)
        .collect();
    members.sort();
    members
}

/// The names of every ipset in the namespace, sorted.
pub fn set_names(ns: &Netns) -> Vec<String> {
    let mut names: Vec<String> = ns.sh("ipset list -n").lines().map(str::to_string).collect();
    names.sort();
    names
}
