//! The dry-run projection: what the model looks like once a backend has installed its rules
//! (the accepts, with `lockdown` the drop, and the forward-path rules for DNAT'd connections).

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
    /// ports) and, with `lockdown`, dropping every other source on `ports`; with `forward`,
    /// a second base chain of that name on the forward hook (priority filter, policy
    /// accept) doing the same for DNAT'd connections by their original destination port:
    ///
    /// ```text
    /// meta l4proto tcp ct direction original ct status dnat ip saddr @cf_v4 ct original proto-dst { 80, 443 } accept
    /// meta l4proto tcp ct direction original ct status dnat ip6 saddr @cf_v6 ct original proto-dst { 80, 443 } accept
    /// meta l4proto tcp ct direction original ct status dnat ct original proto-dst { 80, 443 } drop
    /// ```
    ///
    /// An existing table of that name is removed from the model first.
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
        /// Every other source is dropped on `ports` (after the accepts).
        lockdown: bool,
        /// The forward-hook base chain for DNAT'd connections, when there is one.
        forward: Option<String>,
    },
    /// An accept of `ranges` × `ports` (and, with `lockdown`, a drop of every other source on
    /// `ports`) inserted first in the existing chain `chain` of `family table` (nft `into`,
    /// iptables' jump at the top of `INPUT`). With `dnat`, the rules match DNAT'd
    /// connections by their original destination port instead (`ct status dnat`, `ct
    /// original proto-dst`; iptables' CF-ALLOW-DOCKER from `DOCKER-USER`: `-m conntrack
    /// --ctorigdstport P -j ACCEPT`, `--ctstate DNAT --ctorigdstport P --ctdir ORIGINAL -j
    /// DROP`). When the chain does not exist and is `INPUT` of an iptables table, it is
    /// created as a base chain at hook input, priority 0 (filter), policy accept, as iptables
    /// would; a missing nftables chain with `dnat` (other than `DOCKER-USER`) is created as a
    /// base chain on the forward hook, priority filter, policy accept. Rules jumping to
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
        /// Every other source is dropped on `ports` (after the accepts).
        lockdown: bool,
        /// Match DNAT'd connections by their original destination port (forward path).
        dnat: bool,
    },
    /// An accept of `ranges` × `ports` appended to the existing chain `chain` of `family
    /// table` in `layer` (the fields as in [`CfLayer::FirstRule`]), after its rules: ufw's
    /// `ufw-user-input`, where cf-allow's rules come after the admin's own ufw rules, and
    /// firewalld's `filter_IN_ZONE_allow`. Nothing is added when the chain does not exist.
    #[allow(missing_docs)]
    LastRule {
        layer: RuleLayer,
        family: String,
        table: String,
        chain: String,
        ranges: RangeSet,
        ports: Vec<u16>,
    },
}

fn m(key: Key, fam: Option<Family>, proto: Option<u8>, elems: Vec<Vec<Atom>>, text: &str) -> Cond {
    Cond::M(Match {
        comps: vec![Comp { key, fam, proto }],
        neg: false,
        rhs: Rhs::Elems(elems),
        text: text.into(),
    })
}

/// `meta l4proto tcp [ct direction original ct status dnat]`.
fn prefix(dnat: bool) -> Vec<Cond> {
    let mut c = vec![m(
        Key::L4proto,
        None,
        None,
        vec![vec![Atom::Num(6, 6)]],
        "meta l4proto tcp",
    )];
    if dnat {
        c.push(m(
            Key::CtDirection,
            None,
            None,
            vec![vec![Atom::Str("original".into())]],
            "ct direction original",
        ));
        c.push(m(
            Key::CtStatus,
            None,
            None,
            vec![vec![Atom::Str("dnat".into())]],
            "ct status dnat",
        ));
    }
    c
}

/// `tcp dport { ports }` or, for DNAT'd connections, `ct original proto-dst { ports }`.
fn ports_cond(ports: &[u16], dnat: bool) -> Option<Cond> {
    if ports.is_empty() {
        return None;
    }
    let elems = ports
        .iter()
        .map(|&p| vec![Atom::Num(p as u128, p as u128)])
        .collect();
    Some(if dnat {
        m(
            Key::CtOrigDport,
            None,
            None,
            elems,
            "ct original proto-dst (cf-allow's ports)",
        )
    } else {
        m(
            Key::Dport,
            None,
            Some(6),
            elems,
            "tcp dport (cf-allow's ports)",
        )
    })
}

/// cf-allow's rules for one chain: the accepts per family, then (with `lockdown`) the drop.
fn cf_rules(
    t: &Table,
    chain: &str,
    ranges: &RangeSet,
    ports: &[u16],
    fams: &[Family],
    lockdown: bool,
    dnat: bool,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let what = if dnat { " of DNAT'd connections" } else { "" };
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
        let mut conds = prefix(dnat);
        conds.push(m(
            Key::Saddr,
            Some(f),
            None,
            elems,
            "saddr (cf-allow's ranges)",
        ));
        conds.extend(ports_cond(ports, dnat));
        rules.push(Rule {
            rref: t.rule_ref(
                chain,
                None,
                format!("cf-allow accept{what} for {} (projected)", f.as_str()),
            ),
            conds,
            unknown_stmt: None,
            action: Action::Accept,
        });
    }
    if lockdown {
        let mut conds = prefix(dnat);
        conds.extend(ports_cond(ports, dnat));
        rules.push(Rule {
            rref: t.rule_ref(
                chain,
                None,
                format!("cf-allow lockdown drop{what} (projected)"),
            ),
            conds,
            unknown_stmt: None,
            action: Action::Drop,
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

impl From<RuleLayer> for Layer {
    fn from(layer: RuleLayer) -> Layer {
        match layer {
            RuleLayer::Nftables => Layer::Nftables,
            RuleLayer::IptablesLegacy => Layer::IptablesLegacy,
        }
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
            lockdown,
            forward,
        } => {
            let fam = TFam::parse(family);
            m.tables
                .retain(|t| !(t.layer == Layer::Nftables && t.family == fam && &t.name == table));
            let mut t = Table::new(Layer::Nftables, fam.clone(), table);
            let rules = cf_rules(
                &t,
                "input",
                ranges,
                ports,
                &families(&fam),
                *lockdown,
                false,
            );
            let base = t.base_info("input", Hook::Input, *priority, false, Vec::new());
            let c = t.chain_mut("input");
            c.base = Some(base);
            c.rules = rules;
            if let Some(fwd) = forward {
                let rules = cf_rules(&t, fwd, ranges, ports, &families(&fam), *lockdown, true);
                let base = t.base_info(fwd, Hook::Forward, 0, false, Vec::new());
                let c = t.chain_mut(fwd);
                c.base = Some(base);
                c.rules = rules;
            }
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
            lockdown,
            dnat,
        } => {
            let l = Layer::from(*layer);
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
            } else if t.chain(chain).is_none() && *dnat && chain != "DOCKER-USER" {
                let base = t.base_info(chain, Hook::Forward, 0, false, Vec::new());
                t.chain_mut(chain).base = Some(base);
            }
            let rules = cf_rules(t, chain, ranges, ports, &families(&fam), *lockdown, *dnat);
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
        CfLayer::LastRule {
            layer,
            family,
            table,
            chain,
            ranges,
            ports,
        } => {
            let (l, fam) = (Layer::from(*layer), TFam::parse(family));
            if let Some(t) = m
                .tables
                .iter_mut()
                .find(|t| t.layer == l && t.family == fam && &t.name == table)
            {
                if t.chain(chain).is_some() {
                    let rules = cf_rules(t, chain, ranges, ports, &families(&fam), false, false);
                    t.chain_mut(chain).rules.extend(rules);
                }
            }
        }
    }
    m
}
