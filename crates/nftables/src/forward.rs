//! The forward path: cf-allow's rules for connections that the host DNATs to somewhere else
//! (published container ports of Docker, podman/netavark, Kubernetes hostPort/NodePort).
//!
//! Such a connection never reaches the input hook: after `nat prerouting` rewrote its
//! destination it is routed and walks the forward hook. The same allow (and, with lockdown,
//! drop) therefore also goes into a base chain on the forward hook, matched by the
//! connection's original destination port (`ct original proto-dst`) and only for DNAT'd
//! connections in their original direction (see [`layout::expected_forward_rules`]).
//!
//! Where those rules go:
//!
//! - own-table mode, `lockdown: true`: chain `forward` in cf-allow's table. Without lockdown
//!   there is none: an accept ends only its own base chain, so accepts alone in cf-allow's
//!   own chain would change nothing.
//! - into mode, when the `into` table has a filter base chain on the forward hook: cf-allow's
//!   tagged rules at its top (with or without lockdown: there the accepts do skip the rest
//!   of your chain, e.g. its `policy drop`).
//! - into mode, `lockdown: true`, no such chain: a base chain `cf_allow_forward` carrying the
//!   comment `cf-allow`, which cf-allow creates in the `into` table.

use crate::error::Error;
use crate::layout::{self, FORWARD_CHAIN, INTO_FORWARD_CHAIN};
use crate::model::{family_name, ChainInfo, Change, Position, RuleInfo, SetInfo, FAMILY_INET, TAG};
use crate::netlink::Netlink;
use crate::settings::Settings;

/// `NF_INET_FORWARD`.
pub(crate) const HOOK_FORWARD: u32 = 2;
const POLICY_ACCEPT: u32 = 1;

/// The chain that holds (or will hold) cf-allow's forward rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub table: String,
    pub chain: String,
    /// cf-allow creates the chain (its own `forward`, or `cf_allow_forward` in into mode):
    /// every rule in it is cf-allow's and the rules are appended; otherwise the chain is the
    /// user's and cf-allow's tagged rules go at its top.
    pub created: bool,
    /// The chain carries cf-allow's comment (a chain cf-allow creates in someone else's table).
    pub tagged: bool,
}

/// The forward part of the ruleset as read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Forward {
    /// Where the forward rules belong; `None`: no forward rules with these settings here.
    pub target: Option<Target>,
    /// The target chain as found.
    pub chain: Option<ChainInfo>,
    /// cf-allow's rules in the target chain (a created chain: all of its rules).
    pub rules: Vec<RuleInfo>,
    /// The rules are exactly the expected ones, in place.
    pub rules_ok: bool,
    /// cf-allow's forward objects that are no longer wanted: a chain it created (with the
    /// handles of its rules), or its tagged rules in a chain of the user's.
    pub stale: Vec<Stale>,
}

/// A forward object of cf-allow's that must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stale {
    pub table: String,
    pub chain: String,
    /// The rules to delete (a created chain: all of them).
    pub handles: Vec<u64>,
    /// Delete the chain too (cf-allow created it).
    pub delete_chain: bool,
    /// Why it goes, for the repair line.
    pub why: &'static str,
}

/// True for a filter base chain on the forward hook.
fn is_forward_filter(chain: &ChainInfo) -> bool {
    chain.hook == Some(HOOK_FORWARD) && chain.kind.as_deref() == Some("filter")
}

/// The chains of `inet table`.
fn chains_of<'a>(chains: &'a [ChainInfo], table: &'a str) -> impl Iterator<Item = &'a ChainInfo> {
    chains
        .iter()
        .filter(move |c| c.family == FAMILY_INET && c.table == table)
}

/// Where the forward rules go for `settings` and `ports` on a ruleset with `chains` (see the
/// module documentation). An untagged chain `cf_allow_forward` in the `into` table is a
/// collision.
pub(crate) fn target(settings: &Settings, chains: &[ChainInfo]) -> Result<Option<Target>, Error> {
    let Some(into) = &settings.into else {
        return Ok(settings.lockdown.then(|| Target {
            table: settings.table.clone(),
            chain: FORWARD_CHAIN.to_owned(),
            created: true,
            tagged: false,
        }));
    };
    if let Some(chain) =
        chains_of(chains, &into.table).find(|c| c.name == INTO_FORWARD_CHAIN && !c.is_tagged())
    {
        return Err(Error::Collision(format!(
            "chain inet {} {} exists but was not created by cf-allow (its comment is not \
             \"{TAG}\"); cf-allow needs that name for its forward-hook chain: rename it",
            chain.table, chain.name
        )));
    }
    if let Some(chain) = chains_of(chains, &into.table)
        .find(|c| c.name != INTO_FORWARD_CHAIN && is_forward_filter(c))
    {
        return Ok(Some(Target {
            table: into.table.clone(),
            chain: chain.name.clone(),
            created: false,
            tagged: false,
        }));
    }
    Ok(settings.lockdown.then(|| Target {
        table: into.table.clone(),
        chain: INTO_FORWARD_CHAIN.to_owned(),
        created: true,
        tagged: true,
    }))
}

/// Reads the forward part: the target chain and cf-allow's rules in it, and stale forward
/// objects. `own_table`: cf-allow's own table exists and is cf-allow's; `sets`: the sets of
/// the target table (for the rules' anonymous port sets).
pub(crate) fn read(
    nl: &mut Netlink,
    settings: &Settings,
    ports: &[u16],
    chains: &[ChainInfo],
    own_table: bool,
    sets: &[SetInfo],
) -> Result<Forward, Error> {
    let target = target(settings, chains)?;
    let mut forward = Forward {
        target: target.clone(),
        ..Forward::default()
    };
    if let Some(target) = &target {
        forward.chain = chains_of(chains, &target.table)
            .find(|c| c.name == target.chain)
            .cloned();
        if forward.chain.is_some() {
            let mut rules = nl.rules(FAMILY_INET, &target.table, &target.chain)?;
            let mut leading = rules.len();
            if !target.created {
                leading = rules.iter().take_while(|r| r.is_tagged()).count();
                rules.retain(RuleInfo::is_tagged);
            }
            for rule in &mut rules {
                crate::backend::resolve_port_sets(nl, &target.table, sets, rule)?;
            }
            let expected = layout::expected_forward_rules(ports, settings.lockdown);
            forward.rules_ok = leading == expected.len()
                && rules.len() == expected.len()
                && rules.iter().zip(&expected).all(|(r, e)| &r.exprs == e);
            forward.rules = rules;
        }
    }
    let is_target = |table: &str, chain: &str| {
        target
            .as_ref()
            .is_some_and(|t| t.table == table && t.chain == chain)
    };
    match &settings.into {
        None => {
            let own = &settings.table;
            if own_table
                && !is_target(own, FORWARD_CHAIN)
                && chains_of(chains, own).any(|c| c.name == FORWARD_CHAIN)
            {
                forward.stale.push(Stale {
                    table: own.clone(),
                    chain: FORWARD_CHAIN.to_owned(),
                    handles: handles(nl, own, FORWARD_CHAIN, false)?,
                    delete_chain: true,
                    why: "lockdown is off",
                });
            }
        }
        Some(into) => {
            for chain in chains_of(chains, &into.table) {
                if is_target(&chain.table, &chain.name) {
                    continue;
                }
                if chain.name == INTO_FORWARD_CHAIN && chain.is_tagged() {
                    forward.stale.push(Stale {
                        table: chain.table.clone(),
                        chain: chain.name.clone(),
                        handles: handles(nl, &chain.table, &chain.name, false)?,
                        delete_chain: true,
                        why: if settings.lockdown {
                            "the table has a forward chain of its own now"
                        } else {
                            "lockdown is off"
                        },
                    });
                } else if chain.hook == Some(HOOK_FORWARD) {
                    let tagged = handles(nl, &chain.table, &chain.name, true)?;
                    if !tagged.is_empty() {
                        forward.stale.push(Stale {
                            table: chain.table.clone(),
                            chain: chain.name.clone(),
                            handles: tagged,
                            delete_chain: false,
                            why: "cf-allow's forward rules belong in another chain",
                        });
                    }
                }
            }
        }
    }
    Ok(forward)
}

/// The handles of the rules of `inet table chain` (only the tagged ones with `tagged_only`).
fn handles(
    nl: &mut Netlink,
    table: &str,
    chain: &str,
    tagged_only: bool,
) -> Result<Vec<u64>, Error> {
    Ok(nl
        .rules(FAMILY_INET, table, chain)?
        .into_iter()
        .filter(|r| !tagged_only || r.is_tagged())
        .map(|r| r.handle)
        .collect())
}

/// The changes the forward part needs: `(before the elements, after them, repair lines)`.
/// `table_created`: the target table is created in the same batch (own-table mode).
pub(crate) fn structure(
    forward: &Forward,
    ports: &[u16],
    lockdown: bool,
) -> (Vec<Change>, Vec<Change>, Vec<String>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut repairs = Vec::new();
    for stale in &forward.stale {
        let name = format!("chain inet {} {}", stale.table, stale.chain);
        if stale.delete_chain {
            repairs.push(format!("delete {name} ({})", stale.why));
        } else {
            repairs.push(format!(
                "delete cf-allow's rules from {name} ({})",
                stale.why
            ));
        }
        before.extend(stale.handles.iter().map(|handle| Change::DelRule {
            family: FAMILY_INET,
            table: stale.table.clone(),
            chain: stale.chain.clone(),
            handle: *handle,
        }));
        if stale.delete_chain {
            before.push(Change::DelChain {
                family: FAMILY_INET,
                table: stale.table.clone(),
                name: stale.chain.clone(),
            });
        }
    }
    let Some(target) = &forward.target else {
        return (before, after, repairs);
    };
    let name = format!("chain inet {} {}", target.table, target.chain);
    let chain_ok = forward.chain.as_ref().is_some_and(|c| {
        !target.created
            || (is_forward_filter(c)
                && c.policy == Some(POLICY_ACCEPT)
                && (!target.tagged || c.is_tagged()))
    });
    if !forward.rules_ok || !chain_ok {
        before.extend(forward.rules.iter().map(|rule| Change::DelRule {
            family: FAMILY_INET,
            table: target.table.clone(),
            chain: target.chain.clone(),
            handle: rule.handle,
        }));
    }
    if target.created && !chain_ok {
        if forward.chain.is_some() {
            repairs.push(format!(
                "recreate {name} as a filter chain on the forward hook with policy accept"
            ));
            before.push(Change::DelChain {
                family: FAMILY_INET,
                table: target.table.clone(),
                name: target.chain.clone(),
            });
        } else {
            repairs.push(format!(
                "create {name} on the forward hook (published container ports)"
            ));
        }
        before.push(Change::AddForwardChain {
            family: FAMILY_INET,
            table: target.table.clone(),
            name: target.chain.clone(),
            tagged: target.tagged,
        });
    }
    if !forward.rules_ok || !chain_ok {
        let settings = layout::describe(ports, lockdown);
        let action = match (target.created, forward.rules.is_empty()) {
            (false, true) => "insert the cf-allow forward rules at the top of",
            (false, false) => "put the cf-allow forward rules back at the top of",
            (true, true) => "add the forward rules to",
            (true, false) => "rewrite the forward rules of",
        };
        repairs.push(format!(
            "{action} {name} (DNAT'd connections by original port, {settings})"
        ));
        let mut rules = layout::expected_forward_rules(ports, lockdown);
        let position = if target.created {
            Position::Bottom
        } else {
            rules.reverse();
            Position::Top
        };
        after.extend(rules.into_iter().map(|exprs| Change::AddRule {
            family: FAMILY_INET,
            table: target.table.clone(),
            chain: target.chain.clone(),
            exprs,
            position,
        }));
    }
    (before, after, repairs)
}

/// Into mode `remove`: cf-allow's tagged rules in every forward-hook chain of the `into`
/// table, and its chain `cf_allow_forward` (rules first). Returns `(changes, lines)`.
pub(crate) fn remove_into(
    nl: &mut Netlink,
    table: &str,
    chains: &[ChainInfo],
) -> Result<(Vec<Change>, Vec<String>), Error> {
    let mut changes = Vec::new();
    let mut lines = Vec::new();
    for chain in chains_of(chains, table) {
        let ours = chain.name == INTO_FORWARD_CHAIN && chain.is_tagged();
        if !ours && chain.hook != Some(HOOK_FORWARD) {
            continue;
        }
        for handle in handles(nl, table, &chain.name, !ours)? {
            lines.push(format!(
                "rule inet {table} {} handle {handle} (comment \"{TAG}\")",
                chain.name
            ));
            changes.push(Change::DelRule {
                family: FAMILY_INET,
                table: table.to_owned(),
                chain: chain.name.clone(),
                handle,
            });
        }
        if ours {
            lines.push(format!(
                "chain {} {table} {}",
                family_name(chain.family),
                chain.name
            ));
            changes.push(Change::DelChain {
                family: FAMILY_INET,
                table: table.to_owned(),
                name: chain.name.clone(),
            });
        }
    }
    Ok((changes, lines))
}

/// The name of the forward chain cf-allow would install its rules in, for the placement:
/// own-table mode from the settings; into mode from the `into` table's chains (read now).
pub(crate) fn placement_chain(settings: &Settings) -> Option<String> {
    if settings.into.is_none() {
        return settings.lockdown.then(|| FORWARD_CHAIN.to_owned());
    }
    let chains = Netlink::open().and_then(|mut nl| nl.chains());
    match chains {
        Ok(chains) => target(settings, &chains).ok().flatten().map(|t| t.chain),
        Err(error) => {
            tracing::debug!(%error, "nftables: cannot read the chains for the forward placement");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::IntoTarget;

    fn chain(table: &str, name: &str, hook: Option<u32>, comment: Option<&str>) -> ChainInfo {
        ChainInfo {
            family: FAMILY_INET,
            table: table.into(),
            name: name.into(),
            hook,
            policy: hook.map(|_| 1),
            kind: hook.map(|_| "filter".to_owned()),
            comment: comment.map(str::to_owned),
        }
    }

    fn into(lockdown: bool) -> Settings {
        Settings {
            into: Some(IntoTarget {
                family: crate::settings::TableFamily::Inet,
                table: "filter".into(),
                chain: "input".into(),
            }),
            lockdown,
            ..Settings::default()
        }
    }

    #[test]
    fn own_table_mode_has_a_forward_chain_only_with_lockdown() {
        let on = Settings {
            lockdown: true,
            ..Settings::default()
        };
        let t = target(&on, &[]).expect("target").expect("with lockdown");
        assert_eq!(
            (t.table.as_str(), t.chain.as_str()),
            ("cf_allow", "forward")
        );
        assert!(t.created && !t.tagged);
        assert_eq!(target(&Settings::default(), &[]).expect("target"), None);
    }

    #[test]
    fn into_mode_uses_the_tables_forward_chain_else_creates_a_tagged_one() {
        let theirs = [
            chain("filter", "input", Some(1), None),
            chain("filter", "fwd", Some(HOOK_FORWARD), None),
            chain("other", "forward", Some(HOOK_FORWARD), None),
        ];
        for lockdown in [false, true] {
            let t = target(&into(lockdown), &theirs)
                .expect("target")
                .expect("fwd");
            assert_eq!(t.chain, "fwd");
            assert!(!t.created);
        }
        let none = [chain("filter", "input", Some(1), None)];
        assert_eq!(target(&into(false), &none).expect("target"), None);
        let t = target(&into(true), &none)
            .expect("target")
            .expect("created");
        assert_eq!(t.chain, INTO_FORWARD_CHAIN);
        assert!(t.created && t.tagged);
        // cf-allow's own tagged chain is not "the table's forward chain".
        let ours = [chain(
            "filter",
            INTO_FORWARD_CHAIN,
            Some(HOOK_FORWARD),
            Some(TAG),
        )];
        let t = target(&into(true), &ours)
            .expect("target")
            .expect("created");
        assert_eq!(t.chain, INTO_FORWARD_CHAIN);
        let foreign = [chain("filter", INTO_FORWARD_CHAIN, None, None)];
        let err = target(&into(true), &foreign).expect_err("collision");
        assert!(err.to_string().contains("rename it"), "{err}");
    }

    #[test]
    fn a_missing_created_chain_is_created_and_filled_in_one_go() {
        let forward = Forward {
            target: Some(Target {
                table: "cf_allow".into(),
                chain: "forward".into(),
                created: true,
                tagged: false,
            }),
            ..Forward::default()
        };
        let (before, after, repairs) = structure(&forward, &[80, 443], true);
        assert!(matches!(
            before.as_slice(),
            [Change::AddForwardChain { tagged: false, .. }]
        ));
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|c| matches!(
            c,
            Change::AddRule {
                position: Position::Bottom,
                ..
            }
        )));
        assert_eq!(repairs.len(), 2, "{repairs:?}");
    }
}
