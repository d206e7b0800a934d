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
    }
}

/// The blocked findings as `family range… ports… by-rule` strings, sorted.
pub fn blocked(v: &Verdict) -> Vec<String> {
    let mut out: Vec<String> = v
        .blocked
        .iter()
        .map(|f| {
            format!(
                "{} {} {} | {}",
                f.family,
                f.ranges.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                f.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
                f.by
            )
        })
        .collect();
    out.sort();
    out
}
