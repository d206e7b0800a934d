//! Helpers for the iptables backend's kernel tests: run the backend inside a namespace the
//! way the binary does, and read the ruleset back.
#![allow(dead_code)]

use cf_allow_diff::{Backend, Inspection, IpNet, Plan, RangeSet};
use cf_allow_iptables::{IptablesBackend, Settings, Variant};
use cf_allow_testkit::Netns;

/// Every program the kernel tests run: both implementations' restore tools, `ipset`, `ip`.
pub const PROGRAMS: [&str; 6] = [
    "ip",
    "ipset",
    "iptables-nft-restore",
    "iptables-legacy-restore",
    "ip6tables-nft-restore",
    "ip6tables-legacy-restore",
];

/// True when a kernel test may run (root and [`PROGRAMS`]); otherwise skips, or fails under
/// `CI=true`.
pub fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test) && cf_allow_testkit::require_programs(test, &PROGRAMS)
}

/// Defines two tests, `$nft` and `$legacy`, that run `$body` (a `fn(Variant)`) with
/// [`Variant::Nft`] and [`Variant::Legacy`] once [`ready`] says they may run.
#[allow(unused_macros)] // lock.rs runs one variant only
macro_rules! variant_tests {
    ($nft:ident, $legacy:ident => $body:expr) => {
        #[test]
        fn $nft() {
            if !ready(stringify!($nft)) {
                return;
            }
            ($body)(cf_allow_iptables::Variant::Nft);
        }

        #[test]
        fn $legacy() {
            if !ready(stringify!($legacy)) {
                return;
            }
            ($body)(cf_allow_iptables::Variant::Legacy);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use variant_tests;

/// Both iptables implementations.
pub const VARIANTS: [Variant; 2] = [Variant::Nft, Variant::Legacy];

/// `iptables-nft`, `ip6tables-legacy-save`, … for a variant.
pub fn program(variant: Variant, v6: bool, suffix: &str) -> String {
    variant.program(if v6 { "ip6tables" } else { "iptables" }, suffix)
}

/// The filter table as `iptables-save` prints it, comments dropped and counters zeroed.
pub fn save(ns: &Netns, variant: Variant, v6: bool) -> String {
    cf_allow_testkit::iptables::filter_table(ns, &program(variant, v6, "-save"))
}

/// Both families' saves.
pub fn save_both(ns: &Netns, variant: Variant) -> (String, String) {
    (save(ns, variant, false), save(ns, variant, true))
}

#[allow(unused_imports)] // not every test file reads chains
pub use cf_allow_testkit::iptables::chain_rules;

/// `text` without the lines that mention cf-allow's chains or sets.
pub fn without_ours(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("CF-ALLOW") && !l.contains("cf-allow-v"))
        .map(|l| format!("{l}\n"))
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
        // cf-allow's tag on every member (checked by the foreign-set tests).
        .map(|m| m.strip_suffix(" comment \"cf-allow\"").unwrap_or(m))
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
