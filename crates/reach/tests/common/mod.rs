//! Shared plumbing for the reach tests: a server namespace with a ruleset, read by the crate
//! from inside, and probes.
#![allow(dead_code)]

pub mod kernel;

use cf_allow_reach::{HostModel, Probe, RangeSet, ReadOptions, Verdict};
use cf_allow_testkit::Netns;

/// Reads the model inside `ns` (the programs run in that namespace).
pub fn read_in(ns: &Netns) -> HostModel {
    ns.run_in(|| HostModel::read(&ReadOptions::default()))
}

/// A probe of `ranges` (CIDR strings) × `ports`.
pub fn probe(ranges: &[&str], ports: &[u16]) -> Probe {
    Probe {
        ranges: RangeSet::aggregated(ranges.iter().map(|r| r.parse().expect("CIDR"))),
        ports: ports.to_vec(),
        lockdown: false,
    }
}

/// The blocked findings as `family range… ports… by-rule` strings, sorted.
pub fn blocked(v: &Verdict) -> Vec<String> {
    described(&v.blocked, true)
}

/// Findings as `family range… ports… | by-rule` strings (`ports… | by-rule` without
/// `with_ranges`), sorted and deduplicated.
pub fn described(list: &[cf_allow_reach::Finding], with_ranges: bool) -> Vec<String> {
    let join = |items: Vec<String>| items.join(",");
    let mut out: Vec<String> = list
        .iter()
        .map(|f| {
            let ports = join(f.ports.iter().map(|p| p.to_string()).collect());
            if with_ranges {
                let ranges = join(f.ranges.iter().map(|n| n.to_string()).collect());
                format!("{} {ranges} {ports} | {}", f.family, f.by)
            } else {
                format!("{ports} | {}", f.by)
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `reach-verdict` example binary (built by `cargo test --workspace --all-targets` and by
/// `make test`; after a narrow `cargo test --test …`, run `cargo build --examples` first).
pub fn verdict_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    debug.join("examples").join("reach-verdict")
}

/// Parses the JSON `reach-verdict` printed (its first line starting with `{`).
pub fn verdict_json(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no verdict JSON in: {stdout}"));
    serde_json::from_str(line).expect("verdict JSON")
}

/// Every blocked entry as `family range,… ports,… chain rule`, sorted.
pub fn blocked_json(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["blocked"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let list = |x: &serde_json::Value| {
                        x.as_array()
                            .map(|l| {
                                l.iter()
                                    .map(|i| {
                                        i.as_str()
                                            .map(String::from)
                                            .unwrap_or_else(|| i.to_string())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default()
                    };
                    format!(
                        "{} {} {} | {} {}: {}",
                        f["family"].as_str().unwrap_or(""),
                        list(&f["ranges"]),
                        list(&f["ports"]),
                        f["by"]["table"].as_str().unwrap_or(""),
                        f["by"]["chain"].as_str().unwrap_or(""),
                        f["by"]["rule"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
