//! The dry-run projection: what the model looks like once a backend has installed its accept.

use cf_allow_diff::{Family, RangeSet};

use crate::model::{Action, Atom, Comp, Cond, Hook, Key, Layer, Match, Rhs, Rule, TFam, Table};
use crate::space::net_span;
use crate::HostModel;

/// Which front end a projected rule goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleLayer {
    /// nf_tables: native nft chains and iptables-nft (`ip filter INPUT`).
    Nftables,
    /// The legacy x_tables (`iptables-legacy`).
    IptablesLegacy,
}

/// What a backend installs, for [`HostModel::with_layer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CfLayer {
    /// cf-allow's own nftables table `family table` with one base chain at hook input,
    /// priority `priority`, policy accept, accepting `ranges` × `ports` (empty = all
    /// ports). An existing table of that name is removed from the model first.
    OwnTable {
        /// `inet` (or `ip`/`ip6`).
        family: String,
        /// The table's name.
        table: String,
        /// The base chain's priority.
        priority: i64,
        /// Accepted sources.
        ranges: RangeSet,
        /// Accepted ports (empty = all).
        ports: Vec<u16>,
    },
    /// An accept of `ranges` × `ports` inserted first in the existing chain `chain` of
    /// `family table` (nft `into`, iptables' jump at the top of `INPUT`). When the chain
    /// does not exist and is `INPUT` of an iptables table, it is created as a base chain at
    /// hook input, priority 0 (filter), policy accept, as iptables would. Rules jumping to
    /// `replaces_jump_to` (cf-allow's own chain, re-created by the plan) are removed first.
    FirstRule {
        /// Where the chain lives.
        layer: RuleLayer,
        /// `ip`, `ip6` or `inet`.
        family: String,
        /// The table's name (`filter`).
        table: String,
        /// The chain's name (`INPUT`).
        chain: String,
        /// Accepted sources.
        ranges: RangeSet,
        /// Accepted ports (empty = all).
        ports: Vec<u16>,
        /// cf-allow's own chain whose jumps the projected accept replaces.
        replaces_jump_to: Option<String>,
    },
}

fn accept_rules(
    t: &Table,
    chain: &str,
    ranges: &RangeSet,
    ports: &[u16],
    fams: &[Family],
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for &f in fams {
        let elems: Vec<Vec<Atom>> = ranges
            .iter_family(f)
            .map(|n| {
                let (lo, hi) = net_span(&n);
                vec![Atom::Num(lo, hi)]
            })
            .collect();
        if elems.is_empty() {
            continue;
        }
        let mut conds = vec![Cond::M(Match {
            comps: vec![Comp {
                key: Key::Saddr,
                fam: Some(f),
                proto: None,
            }],
            neg: false,
            rhs: Rhs::Elems(elems),
            text: "saddr (cf-allow's ranges)".into(),
        })];
        if !ports.is_empty() {
            conds.push(Cond::M(Match {
                comps: vec![Comp {
                    key: Key::Dport,
                    fam: None,
                    proto: Some(6),
                }],
                neg: false,
                rhs: Rhs::Elems(
                    ports
                        .iter()
                        .map(|&p| vec![Atom::Num(p as u128, p as u128)])
                        .collect(),
                ),
                text: "tcp dport (cf-allow's ports)".into(),
            }));
        }
        rules.push(Rule {
            rref: t.rule_ref(
                chain,
                None,
                format!("cf-allow accept for {} (projected)", f.as_str()),
            ),
            conds,
            unknown_stmt: None,
            action: Action::Accept,
        });
    }
    rules
}

fn families(fam: &TFam) -> Vec<Family> {
    match fam {
        TFam::Ip => vec![Family::Ipv4],
        TFam::Ip6 => vec![Family::Ipv6],
        _ => vec![Family::Ipv4, Family::Ipv6],
    }
}

pub(crate) fn apply(model: &HostModel, layer: &CfLayer) -> HostModel {
    let mut m = model.clone();
    match layer {
        CfLayer::OwnTable {
            family,
            table,
            priority,
            ranges,
            ports,
        } => {
            let fam = TFam::parse(family);
            m.tables
                .retain(|t| !(t.layer == Layer::Nftables && t.family == fam && &t.name == table));
            let mut t = Table::new(Layer::Nftables, fam.clone(), table);
            let rules = accept_rules(&t, "input", ranges, ports, &families(&fam));
            let base = t.base_info("input", Hook::Input, *priority, false, Vec::new());
            let c = t.chain_mut("input");
            c.base = Some(base);
            c.rules = rules;
            m.tables.push(t);
        }
        CfLayer::FirstRule {
            layer,
            family,
            table,
            chain,
            ranges,
            ports,
            replaces_jump_to,
        } => {
            let l = match layer {
                RuleLayer::Nftables => Layer::Nftables,
                RuleLayer::IptablesLegacy => Layer::IptablesLegacy,
            };
            let fam = TFam::parse(family);
            let pos = match m
                .tables
                .iter()
                .position(|t| t.layer == l && t.family == fam && &t.name == table)
            {
                Some(p) => p,
                None => {
                    m.tables.push(Table::new(l, fam.clone(), table));
                    m.tables.len() - 1
                }
            };
            let t = &mut m.tables[pos];
            if t.chain(chain).is_none() && chain == "INPUT" && table == "filter" {
                let base = t.base_info(chain, Hook::Input, 0, false, Vec::new());
                t.chain_mut(chain).base = Some(base);
            }
            let rules = accept_rules(t, chain, ranges, ports, &families(&fam));
            if let Some(own) = replaces_jump_to {
                for c in t.chains.iter_mut() {
                    c.rules.retain(
                        |r| !matches!(&r.action, Action::Jump(x) | Action::Goto(x) if x == own),
                    );
                }
            }
            let c = t.chain_mut(chain);
            let old = std::mem::take(&mut c.rules);
            c.rules = rules;
            c.rules.extend(old);
        }
    }
    m
}
