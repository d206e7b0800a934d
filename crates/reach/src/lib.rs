//! cf-allow's reachability verdict.
//!
//! [`HostModel::read`] loads every base chain a TCP SYN to a local address traverses on the
//! way in (nftables — including iptables-nft tables — iptables-legacy, ipsets, the inbound
//! interfaces); [`HostModel::evaluate`] answers, for ranges of sources × destination ports,
//! what that input path decides and which rule decides. It evaluates ranges, not samples:
//! a drop covering part of a range reports exactly the blocked sub-ranges. Anything it does
//! not understand is reported as `unknown` for the packets that reach it, never guessed.
//! The supported subset is listed in the crate's README.

#![forbid(unsafe_code)]

mod eval;
mod ipt;
mod layer;
mod model;
mod nft;
mod query;
mod read;
mod report;
mod rtnl;
mod space;

use std::fmt;

pub use cf_allow_diff::{Family, RangeSet};
use ipnet::IpNet;

pub use layer::{CfLayer, RuleLayer};
pub use model::Interface;
pub use query::{AddrSpan, HostSet, SetUser};
pub use read::{KnownIpset, KnownSet, Network, ReadOptions, Sources};

/// The question: TCP SYNs (conntrack state new) from every address of `ranges` to each of
/// `ports` (empty = every port), arriving on the inbound interfaces, to a local address —
/// delivered locally, or DNAT'd in prerouting and forwarded (published container ports).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Source ranges.
    pub ranges: RangeSet,
    /// Destination ports; empty = all ports.
    pub ports: Vec<u16>,
    /// The backend locks the ports down: also evaluate the outsiders — every address of each
    /// family NOT in `ranges`, as intervals — on `ports`; the ones the whole path accepts are
    /// [`Verdict::exposed`].
    pub lockdown: bool,
}

/// Everything on the host's input path, read once. Cheap to evaluate many times.
#[derive(Clone, Debug)]
pub struct HostModel {
    pub(crate) tables: Vec<model::Table>,
    pub(crate) ipsets: std::collections::HashMap<String, model::Ipset>,
    /// The inbound interfaces (already chosen: default-route ones, all up ones, or the
    /// override).
    pub(crate) inbound_v4: Vec<Interface>,
    pub(crate) inbound_v6: Vec<Interface>,
    /// Why the host's rules could not be read: every probe answers `unknown` with it.
    pub(crate) unreadable: Option<String>,
    /// Partial problems (a program that failed, an ipset that could not be read) that the
    /// evaluator turns into `unknown` where they matter.
    pub(crate) notes: Vec<String>,
    /// Every interface (the forward path's route lookup and local-address test).
    pub(crate) all_ifaces: Vec<Interface>,
    /// `net.ipv4.ip_forward` (`None`: not read).
    pub(crate) forwarding_v4: Option<bool>,
    /// `net.ipv6.conf.all.forwarding` (`None`: not read).
    pub(crate) forwarding_v6: Option<bool>,
    /// Why `ipset save` could not be read, when it was run and failed.
    pub(crate) ipset_problem: Option<String>,
    /// Why a verdict on this model cannot be reused while the nftables generation, the
    /// [`Network`] and the probe stay the same (`None`: it can).
    pub(crate) uncacheable: Option<String>,
}

impl HostModel {
    /// Reads the host's input path (`nft -j list ruleset`, `iptables-nft-save` for tables
    /// holding iptables compat expressions, `iptables-legacy-save` / `ip6tables-legacy-save`,
    /// `ipset save`, the interfaces, addresses and routes over rtnetlink — `ip -j` when that
    /// fails). Never fails: when the rules cannot be read (not root, nft missing), the model
    /// answers every probe with `unknown` and the reason.
    pub fn read(opts: &ReadOptions) -> HostModel {
        read::read(opts)
    }

    /// [`HostModel::read`] with the interfaces, routes, forwarding and legacy tables already
    /// read in `network` (the rules are read now).
    pub fn read_with(opts: &ReadOptions, network: &Network) -> HostModel {
        read::read_with(opts, network)
    }

    /// `None` when everything this model holds is fixed by the nftables ruleset generation
    /// and the [`Network`] it was read with, so a verdict on it stays true while both stay
    /// the same; else why not (iptables-legacy rules and ipsets have no generation id, sets
    /// with timeouts or updated by packets change without one, a partly unreadable host).
    pub fn uncacheable_reason(&self) -> Option<&str> {
        self.unreadable.as_deref().or(self.uncacheable.as_deref())
    }

    /// Builds a model from captured program outputs (no I/O). Tests and benches use it.
    pub fn from_sources(sources: &Sources, opts: &ReadOptions) -> HostModel {
        read::from_sources(sources, opts)
    }

    /// A model that answers every probe `unknown` because of `reason`.
    pub fn unreadable(reason: impl Into<String>) -> HostModel {
        HostModel {
            tables: Vec::new(),
            ipsets: Default::default(),
            inbound_v4: Vec::new(),
            inbound_v6: Vec::new(),
            unreadable: Some(reason.into()),
            notes: Vec::new(),
            all_ifaces: Vec::new(),
            forwarding_v4: None,
            forwarding_v6: None,
            ipset_problem: None,
            uncacheable: None,
        }
    }

    /// Why the host's rules could not be read, if they could not.
    pub fn unreadable_reason(&self) -> Option<&str> {
        self.unreadable.as_deref()
    }

    /// Problems met while reading that did not make the whole model unreadable.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The inbound interfaces of `family` the verdict is computed for.
    pub fn inbound(&self, family: Family) -> &[Interface] {
        match family {
            Family::Ipv4 => &self.inbound_v4,
            Family::Ipv6 => &self.inbound_v6,
        }
    }

    /// What the input path decides for `probe`. Pure.
    pub fn evaluate(&self, probe: &Probe) -> Verdict {
        eval::evaluate(self, probe, None)
    }

    /// The verdict for `probe` when this model differs from one whose verdict for `before`
    /// was clean (everything accepted, nothing unknown, nothing exposed) only in which
    /// sources some rules match: `probe.ranges` is `before` with `added` and without
    /// `removed`, and a source matches differently only if it is in one of the two (cf-allow
    /// changed its own set's elements and nothing else). Every other source takes the same
    /// path as before, so only `added` is evaluated as Cloudflare's and, with lockdown,
    /// `removed` as outsiders. `Some` (the clean verdict for the whole probe) when those are
    /// clean too; `None` otherwise, and the caller evaluates the whole probe for its findings.
    pub fn evaluate_change(
        &self,
        probe: &Probe,
        added: &RangeSet,
        removed: &RangeSet,
    ) -> Option<Verdict> {
        let change = Probe {
            ranges: added.clone(),
            ports: probe.ports.clone(),
            lockdown: probe.lockdown,
        };
        let partial = eval::evaluate(self, &change, Some(removed));
        partial.is_clean().then(|| Verdict {
            checked: Checked {
                ranges: probe.ranges.len(),
                ports: probe.ports.clone(),
            },
            ..partial
        })
    }

    /// The dry-run projection: a copy with what `layer` would install (cf-allow's own
    /// objects it replaces removed first).
    pub fn with_layer(&self, layer: &CfLayer) -> HostModel {
        layer::apply(self, layer)
    }

    /// [`HostModel::with_layer`] for several layers (e.g. iptables' IPv4 and IPv6 jumps).
    pub fn with_layers(&self, layers: &[CfLayer]) -> HostModel {
        layers.iter().fold(self.clone(), |m, l| m.with_layer(l))
    }

    /// The tables in the model, as `family name` with their layer (`nftables`,
    /// `iptables-legacy`), in the order they were read.
    pub fn tables(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .map(|t| (t.layer.as_str().to_string(), t.label()))
            .collect()
    }
}

/// An inclusive span of destination ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSpan {
    /// First port.
    pub first: u16,
    /// Last port (equal to `first` for one port).
    pub last: u16,
}

impl fmt::Display for PortSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The rule that decides.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// `nftables` (native and iptables-nft rules), `iptables-legacy`, or `host` when the
    /// rules could not be read at all.
    pub layer: String,
    /// `inet firewalld`, `ip filter`.
    pub table: String,
    /// The chain holding the rule.
    pub chain: String,
    /// The nft rule handle, when there is one.
    pub handle: Option<u64>,
    /// The rule as text (`reject with icmpx admin-prohibited`, `policy drop`,
    /// `-A INPUT -j DROP`).
    pub rule: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.table.is_empty() {
            return write!(f, "{}", self.rule);
        }
        write!(f, "{} {}: \"{}\"", self.table, self.chain, self.rule)?;
        if let Some(h) = self.handle {
            write!(f, " (handle {h})")?;
        }
        Ok(())
    }
}

/// A part of the probe with one outcome, decided by one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The family of `ranges`.
    pub family: Family,
    /// Exactly the sub-ranges concerned, as CIDRs.
    pub ranges: Vec<IpNet>,
    /// The destination ports concerned.
    pub ports: Vec<PortSpan>,
    /// The deciding rule.
    pub by: RuleRef,
    /// For `unknown`: the expression or statement that could not be evaluated.
    pub expr: Option<String>,
}

/// What was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Number of source ranges in the probe.
    pub ranges: usize,
    /// The probe's ports (empty = all).
    pub ports: Vec<u16>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// True when every (range, port) of the probe is accepted by the whole input path.
    pub reachable: bool,
    /// What was asked.
    pub checked: Checked,
    /// Parts dropped or rejected, by rule.
    pub blocked: Vec<Finding>,
    /// Parts whose fate depends on something the engine cannot evaluate, by rule.
    pub unknown: Vec<Finding>,
    /// With [`Probe::lockdown`]: the outsiders (sources not in the probe's ranges) that the
    /// whole path accepts on the ports, by the rule that lets them through (the last
    /// explicit accept on their path, else the last accepting chain policy). An outsider
    /// whose fate cannot be evaluated is not listed.
    pub exposed: Vec<Finding>,
    /// True when the outsiders were evaluated ([`Probe::lockdown`]).
    pub locked_down: bool,
}

impl Verdict {
    /// Reachable, with nothing blocked, unknown or exposed.
    pub fn is_clean(&self) -> bool {
        self.reachable
            && self.blocked.is_empty()
            && self.unknown.is_empty()
            && self.exposed.is_empty()
    }

    /// The `reachability` JSON object of `sync --json` / `status --json`.
    pub fn to_json(&self) -> serde_json::Value {
        report::to_json(self)
    }

    /// The verdict whose [`Verdict::to_json`] is `json`; `None` when `json` is not one.
    pub fn from_json(json: &serde_json::Value) -> Option<Verdict> {
        report::from_json(json)
    }

    /// One line per deciding rule (blocked first, then unknown), each ending with
    /// `; fix: <fix(finding)>` when `fix` returns one.
    pub fn warnings(&self, fix: &dyn Fn(&Finding) -> Option<String>) -> Vec<String> {
        report::warnings(self, fix)
    }

    /// One line per rule that lets outsiders through a locked-down port, each ending with
    /// `; fix: <fix(finding)>` when `fix` returns one.
    pub fn exposed_warnings(&self, fix: &dyn Fn(&Finding) -> Option<String>) -> Vec<String> {
        report::exposed_warnings(self, fix)
    }
}

/// A destination port that prerouting DNATs (a published container port): what doctor
/// reports instead of "nothing listens".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The family of the connections.
    pub family: Family,
    /// The destination port (on this host) that is forwarded.
    pub port: u16,
    /// Where it goes: `198.51.100.2:8443` (the port is the original one when the DNAT keeps
    /// it); for a redirect, `local port P`.
    pub to: String,
    /// True when the new destination is one of this host's addresses (a redirect).
    pub local: bool,
    /// The nat rule.
    pub by: RuleRef,
}

impl fmt::Display for Forwarded {
    /// `443 is forwarded to 198.51.100.2:8443 by ip nat DOCKER`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is forwarded to {} by {} {}",
            self.port, self.to, self.by.table, self.by.chain
        )
    }
}

/// Questions about the forward (DNAT) path.
impl HostModel {
    /// The ports of `ports` (empty: every port a DNAT rule names) that a nat chain in
    /// prerouting DNATs or redirects for connections from some source on an inbound
    /// interface, with where they go and the rule. Empty on a host without nat rules.
    pub fn forwarded(&self, ports: &[u16]) -> Vec<Forwarded> {
        eval::forwarded(self, ports)
    }

    /// True when some table named `table` (any family, any layer) has a chain `chain`.
    pub fn has_chain(&self, table: &str, chain: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.name == table && t.chain(chain).is_some())
    }

    /// [`HostModel::has_chain`] in tables of `layer` only (`nftables`, `iptables-legacy`).
    pub fn has_chain_in(&self, layer: &str, table: &str, chain: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.layer.as_str() == layer && t.name == table && t.chain(chain).is_some())
    }
}
