//! Turning a family's filter table into the wanted layout with the fewest commands, all in
//! one `iptables-restore --noflush` transaction; and the inverse transaction used to roll a
//! family back when the other family's transaction fails.

use std::collections::HashSet;

use cf_allow_diff::{Family, IpNet};

use crate::rules::{is_tagged, tool, untagged, ChainKind};
use crate::saved::{source, target, FilterTable};
use crate::settings::{Layout, DOCKER_USER};
use crate::Error;

/// Built-in chains of the filter table: they always exist (iptables-nft creates them on use).
const BUILTIN: [&str; 3] = ["INPUT", "FORWARD", "OUTPUT"];

/// The commands that bring one family to the wanted layout, and what they do in words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FamilyEdit {
    /// Restore commands, without `*filter` and `COMMIT`; empty when nothing is to change.
    pub commands: Vec<String>,
    /// What the commands change, one line each, prefixed with `iptables:` / `ip6tables:`.
    pub notes: Vec<String>,
    /// What an admin should know and cf-allow leaves alone.
    pub warnings: Vec<String>,
}

/// Chains whose exact jump (`-j CF-ALLOW`) cf-allow treats as its own.
fn known_hooks(layout: &Layout) -> Vec<&str> {
    let mut hooks: Vec<&str> = BUILTIN.to_vec();
    hooks.push(DOCKER_USER);
    for hook in &layout.hooks {
        if !hooks.contains(&hook.as_str()) {
            hooks.push(hook);
        }
    }
    hooks
}

/// The hooks cf-allow keeps in one family's `table`: the configured ones, plus `DOCKER-USER`
/// when it is automatic ([`Layout::docker_user_auto`]) and the table has that chain.
pub(crate) fn effective_hooks<'a>(layout: &'a Layout, table: &FilterTable) -> Vec<&'a str> {
    let mut hooks: Vec<&str> = layout.hooks.iter().map(String::as_str).collect();
    if layout.docker_user_auto && !hooks.contains(&DOCKER_USER) && table.has_chain(DOCKER_USER) {
        hooks.push(DOCKER_USER);
    }
    hooks
}

/// Rules anywhere in the table that use `chain` but are not a jump cf-allow made.
pub(crate) fn foreign_references(layout: &Layout, table: &FilterTable, chain: &str) -> Vec<String> {
    let known = known_hooks(layout);
    let exact = format!("-j {chain}");
    let mut found = Vec::new();
    for (name, rules) in &table.rules {
        if name == chain {
            continue;
        }
        for spec in rules {
            if target(spec) == Some(chain) && !(known.contains(&name.as_str()) && *spec == exact) {
                found.push(format!("-A {name} {spec}"));
            }
        }
    }
    found
}

/// Whose one of cf-allow's chain names is, as found in a family's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// Every rule is cf-allow's: tagged `-m comment --comment cf-allow`, or exactly a rule
    /// of the layout as versions before the tag wrote it (an upgrade).
    Ours,
    /// cf-allow's chain, but this rule in it is someone else's.
    ForeignRule(&'a str),
    /// Not cf-allow's chain: nothing in it carries cf-allow's tag or is its old form (an
    /// empty chain proves nothing either); `Some(rule)` is its first rule.
    ForeignChain(Option<&'a str>),
}

/// True when `spec` is one of the rules the layout wants in the chain `kind`, in the form
/// cf-allow wrote before it tagged its rules (any range, rule or ipset mode).
fn is_legacy_rule(layout: &Layout, kind: ChainKind, family: Family, spec: &str) -> bool {
    let nets: Vec<IpNet> = source(spec)
        .and_then(|s| s.parse::<IpNet>().ok())
        .into_iter()
        .collect();
    [false, true].into_iter().any(|ipset| {
        let layout = Layout {
            ipset,
            ..layout.clone()
        };
        layout
            .accept_rules(kind, family, &nets)
            .iter()
            .chain(layout.drop_rules(kind).iter())
            .any(|rule| untagged(rule) == spec)
    })
}

/// Who owns the chain `kind` given its rules in `family`'s table.
pub(crate) fn owner<'a>(
    layout: &Layout,
    kind: ChainKind,
    family: Family,
    rules: &'a [String],
) -> Owner<'a> {
    let foreign = rules
        .iter()
        .find(|spec| !is_tagged(spec) && !is_legacy_rule(layout, kind, family, spec))
        .map(String::as_str);
    match foreign {
        None if !rules.is_empty() => Owner::Ours,
        Some(rule) if rules.iter().any(|spec| is_tagged(spec)) => Owner::ForeignRule(rule),
        first => Owner::ForeignChain(first.or(rules.first().map(String::as_str))),
    }
}

/// Refuses a family whose chain with cf-allow's name is not cf-allow's, or holds a rule
/// cf-allow did not write: cf-allow neither adopts nor rewrites what it did not create.
pub(crate) fn check_ownership(
    layout: &Layout,
    table: &FilterTable,
    family: Family,
) -> Result<(), Error> {
    let tool = tool(family);
    for kind in ChainKind::ALL {
        let chain = layout.chain(kind);
        if !table.has_chain(chain) {
            continue;
        }
        match owner(layout, kind, family, table.rules_of(chain)) {
            Owner::Ours => {}
            Owner::ForeignRule(rule) => {
                return Err(Error::Foreign(format!(
                    "{tool}: `-A {chain} {rule}` in cf-allow's chain {chain} was not created by cf-allow (no `-m comment --comment cf-allow`); cf-allow does not rewrite it: move it to a chain of your own or delete it"
                )))
            }
            Owner::ForeignChain(_) => {
                return Err(Error::Foreign(format!(
                    "{tool}: chain {chain} exists but was not created by cf-allow (its rules carry no `-m comment --comment cf-allow`); cf-allow leaves it alone: rename it, or set iptables.chain to another name"
                )))
            }
        }
    }
    Ok(())
}

/// The commands that make `table` (one family) hold the wanted layout for `ranges` (ignored
/// in ipset mode, where the rules name the sets).
pub(crate) fn plan_family(
    layout: &Layout,
    table: &FilterTable,
    family: Family,
    ranges: &[IpNet],
) -> Result<FamilyEdit, Error> {
    check_ownership(layout, table, family)?;
    let tool = tool(family);
    let mut edit = FamilyEdit::default();

    // Which hooks can be used now.
    let mut main_hooks: Vec<&str> = Vec::new();
    let mut docker_hooks: Vec<&str> = Vec::new();
    for hook in effective_hooks(layout, table) {
        let exists = table.has_chain(hook) || BUILTIN.contains(&hook);
        if hook == DOCKER_USER {
            if exists {
                docker_hooks.push(hook);
            } else {
                edit.warnings.push(format!(
                    "{tool}: the DOCKER-USER chain does not exist (is Docker running?); skipped that hook, the other hooks are kept in sync"
                ));
            }
        } else if exists {
            main_hooks.push(hook);
        } else {
            return Err(Error::MissingHook {
                chain: hook.to_owned(),
                family: tool,
            });
        }
    }

    let mut declarations = Vec::new();
    let mut chain_edits = Vec::new();
    let mut jump_edits = Vec::new();
    let mut removals = Vec::new();

    for kind in ChainKind::ALL {
        let chain = layout.chain(kind);
        let wanted = match kind {
            ChainKind::Main => !main_hooks.is_empty(),
            ChainKind::Docker => !docker_hooks.is_empty(),
        };
        let exists = table.has_chain(chain);
        if wanted {
            if !exists {
                declarations.push(format!(":{chain} - [0:0]"));
                edit.notes.push(format!("{tool}: create chain {chain}"));
            }
            let accepts = layout.accept_rules(kind, family, ranges);
            let drops = layout.drop_rules(kind);
            edit_chain(
                chain,
                table.rules_of(chain),
                &accepts,
                &drops,
                &mut chain_edits,
                &mut edit.notes,
                tool,
            );
        } else if exists {
            let foreign = foreign_references(layout, table, chain);
            if foreign.is_empty() {
                removals.push(format!("-F {chain}"));
                removals.push(format!("-X {chain}"));
                edit.notes.push(format!(
                    "{tool}: delete chain {chain} (no configured hook uses it)"
                ));
            } else {
                edit.warnings.push(format!(
                    "{tool}: chain {chain} is no longer needed but `{}`, which cf-allow did not create, still uses it; left in place",
                    foreign[0]
                ));
            }
        }
    }

    // Jumps: exactly one `-j <chain>` at position 1 of each usable hook, none in other hooks.
    let known = known_hooks(layout);
    let exact_jumps = [
        format!("-j {}", layout.main),
        format!("-j {}", layout.docker),
    ];
    let mut scan: Vec<&str> = table.chains.iter().map(String::as_str).collect();
    for hook in main_hooks.iter().chain(docker_hooks.iter()) {
        if !scan.contains(hook) {
            scan.push(hook);
        }
    }
    for hook in scan {
        if hook == layout.main || hook == layout.docker {
            continue;
        }
        let rules = table.rules_of(hook);
        for kind in ChainKind::ALL {
            let chain = layout.chain(kind);
            let jump = format!("-j {chain}");
            let positions: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, spec)| **spec == jump)
                .map(|(i, _)| i)
                .collect();
            let wanted_here = match kind {
                ChainKind::Main => main_hooks.contains(&hook),
                ChainKind::Docker => docker_hooks.contains(&hook),
            };
            if wanted_here {
                if positions == [0] {
                    continue;
                }
                for _ in &positions {
                    jump_edits.push(format!("-D {hook} {jump}"));
                }
                jump_edits.push(format!("-I {hook} 1 {jump}"));
                edit.notes.push(match positions.len() {
                    0 => format!("{tool}: insert the jump to {chain} at the top of {hook}"),
                    1 => format!("{tool}: move the jump to {chain} back to the top of {hook}"),
                    n => {
                        format!("{tool}: replace {n} jumps to {chain} in {hook} by one at the top")
                    }
                });
            } else if !positions.is_empty() && known.contains(&hook) {
                for _ in &positions {
                    jump_edits.push(format!("-D {hook} {jump}"));
                }
                edit.notes.push(format!(
                    "{tool}: delete the jump to {chain} from {hook} (not a configured hook for it)"
                ));
            }
        }
        let stray = rules.iter().filter(|spec| {
            target(spec).is_some_and(|t| t == layout.main || t == layout.docker)
                && !exact_jumps.contains(spec)
        });
        for spec in stray {
            edit.warnings.push(format!(
                "{tool}: `-A {hook} {spec}` was not created by cf-allow and is left alone"
            ));
        }
    }

    edit.commands = declarations
        .into_iter()
        .chain(chain_edits)
        .chain(jump_edits)
        .chain(removals)
        .collect();
    Ok(edit)
}

/// Appends the commands that turn `current` into `accepts` (any order) followed by `drops`
/// (in order), keeping every rule that may stay (and its counters).
fn edit_chain(
    chain: &str,
    current: &[String],
    accepts: &[String],
    drops: &[String],
    commands: &mut Vec<String>,
    notes: &mut Vec<String>,
    tool: &str,
) {
    let wanted: HashSet<&str> = accepts.iter().map(String::as_str).collect();
    let mut kept: HashSet<&str> = HashSet::new();
    let mut kept_accepts = 0usize;
    let mut drops_kept = 0usize;
    let mut deletions: Vec<usize> = Vec::new();
    for (index, spec) in current.iter().enumerate() {
        if drops_kept == 0 && wanted.contains(spec.as_str()) && kept.insert(spec.as_str()) {
            kept_accepts += 1;
        } else if drops.get(drops_kept) == Some(spec) {
            drops_kept += 1;
        } else {
            deletions.push(index + 1);
        }
    }
    let missing: Vec<&String> = accepts
        .iter()
        .filter(|spec| !kept.contains(spec.as_str()))
        .collect();
    for number in deletions.iter().rev() {
        commands.push(format!("-D {chain} {number}"));
    }
    let mut position = kept_accepts + 1;
    for spec in &missing {
        if drops_kept == 0 {
            commands.push(format!("-A {chain} {spec}"));
        } else {
            commands.push(format!("-I {chain} {position} {spec}"));
            position += 1;
        }
    }
    for spec in &drops[drops_kept..] {
        commands.push(format!("-A {chain} {spec}"));
    }
    let added = missing.len() + drops.len() - drops_kept;
    if !deletions.is_empty() || added > 0 {
        notes.push(format!(
            "{tool}: {chain}: add {added} rule(s), delete {} rule(s)",
            deletions.len()
        ));
    }
}

/// The commands that put cf-allow's chains and jumps back exactly as they were in `old`,
/// given the table is now `new` (foreign rules are the same in both).
pub(crate) fn rollback_commands(
    layout: &Layout,
    old: &FilterTable,
    new: &FilterTable,
) -> Vec<String> {
    let owned = [layout.main.as_str(), layout.docker.as_str()];
    let mut commands = Vec::new();
    for chain in owned {
        if old.has_chain(chain) {
            commands.push(format!(":{chain} - [0:0]"));
            for spec in old.rules_of(chain) {
                commands.push(format!("-A {chain} {spec}"));
            }
        }
    }
    let mut hooks: Vec<&str> = new.chains.iter().map(String::as_str).collect();
    for chain in &old.chains {
        if !hooks.contains(&chain.as_str()) {
            hooks.push(chain);
        }
    }
    for hook in hooks.into_iter().filter(|h| !owned.contains(h)) {
        for chain in owned {
            let jump = format!("-j {chain}");
            for spec in new.rules_of(hook) {
                if *spec == jump {
                    commands.push(format!("-D {hook} {jump}"));
                }
            }
        }
        for (index, spec) in old.rules_of(hook).iter().enumerate() {
            if owned.iter().any(|chain| *spec == format!("-j {chain}")) {
                commands.push(format!("-I {hook} {} {spec}", index + 1));
            }
        }
    }
    for chain in owned {
        if !old.has_chain(chain) && new.has_chain(chain) {
            commands.push(format!("-F {chain}"));
            commands.push(format!("-X {chain}"));
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn layout(hooks: &[&str], lockdown: bool) -> Layout {
        let settings = Settings {
            hooks: hooks.iter().map(|s| s.to_string()).collect(),
            lockdown,
            ..Settings::default()
        };
        Layout::new(&settings, &[443]).expect("layout")
    }

    fn table(text: &str) -> FilterTable {
        FilterTable::parse(&format!("*filter\n{text}COMMIT\n"), "test").expect("parse")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    const BASE: &str = ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    #[test]
    fn first_sync_creates_chain_rules_and_jump() {
        let edit = plan_family(
            &layout(&["INPUT"], true),
            &table(BASE),
            Family::Ipv4,
            &nets(&["192.0.2.0/24", "198.51.100.0/24"]),
        )
        .expect("plan");
        assert_eq!(
            edit.commands,
            [
                ":CF-ALLOW - [0:0]",
                "-A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT",
                "-A CF-ALLOW -s 198.51.100.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT",
                "-A CF-ALLOW -p tcp -m multiport --dports 443 -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP",
                "-I INPUT 1 -j CF-ALLOW",
            ]
        );
    }

    #[test]
    fn the_delta_keeps_unchanged_rules_and_inserts_before_the_drop() {
        let current = format!(
            "{BASE}:CF-ALLOW - [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -j CF-ALLOW\n\
             -A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT\n\
             -A CF-ALLOW -s 203.0.113.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT\n\
             -A CF-ALLOW -p tcp -m multiport --dports 443 -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP\n"
        );
        let edit = plan_family(
            &layout(&["INPUT"], true),
            &table(&current),
            Family::Ipv4,
            &nets(&["192.0.2.0/24", "198.51.100.0/24"]),
        )
        .expect("plan");
        assert_eq!(
            edit.commands,
            [
                "-D CF-ALLOW 2",
                "-I CF-ALLOW 2 -s 198.51.100.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT",
                "-D INPUT -j CF-ALLOW",
                "-I INPUT 1 -j CF-ALLOW",
            ]
        );
    }

    #[test]
    fn a_correct_table_needs_nothing() {
        let current = format!(
            "{BASE}:CF-ALLOW - [0:0]\n-A INPUT -j CF-ALLOW\n-A INPUT -j DROP\n\
             -A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT\n"
        );
        let edit = plan_family(
            &layout(&["INPUT"], false),
            &table(&current),
            Family::Ipv4,
            &nets(&["192.0.2.0/24"]),
        )
        .expect("plan");
        assert!(edit.commands.is_empty(), "{:?}", edit.commands);
        assert!(edit.notes.is_empty());
    }

    #[test]
    fn missing_docker_user_is_a_warning_and_other_missing_hooks_an_error() {
        let edit = plan_family(
            &layout(&["INPUT", "DOCKER-USER"], false),
            &table(BASE),
            Family::Ipv6,
            &[],
        )
        .expect("plan");
        assert!(edit.warnings[0].contains("DOCKER-USER chain does not exist"));
        assert!(!edit.commands.iter().any(|c| c.contains("DOCKER")));
        // Automatic (hooks not set): hooked where the chain exists, silently skipped where it
        // does not (Docker without IPv6).
        let mut auto = layout(&["INPUT"], false);
        auto.docker_user_auto = true;
        let edit = plan_family(&auto, &table(BASE), Family::Ipv6, &[]).expect("plan");
        assert!(edit.warnings.is_empty(), "{:?}", edit.warnings);
        assert!(!edit.commands.iter().any(|c| c.contains("DOCKER")));
        let docker = format!("{BASE}:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n");
        let edit = plan_family(&auto, &table(&docker), Family::Ipv4, &[]).expect("plan");
        assert!(
            edit.commands
                .iter()
                .any(|c| c == "-I DOCKER-USER 1 -j CF-ALLOW-DOCKER"),
            "{:?}",
            edit.commands
        );
        let err = plan_family(
            &layout(&["ufw-before-input"], false),
            &table(BASE),
            Family::Ipv4,
            &[],
        )
        .expect_err("missing hook");
        assert!(
            err.to_string().contains("ufw-before-input does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a_jump_cf_allow_did_not_make_is_a_warning() {
        let current = format!(
            "{BASE}:CF-ALLOW - [0:0]\n-A INPUT -j CF-ALLOW\n-A INPUT -p tcp -j CF-ALLOW\n\
             -A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT\n"
        );
        let edit = plan_family(
            &layout(&["INPUT"], false),
            &table(&current),
            Family::Ipv4,
            &nets(&["192.0.2.0/24"]),
        )
        .expect("plan");
        assert!(edit.commands.is_empty(), "{:?}", edit.commands);
        assert_eq!(
            edit.warnings,
            ["iptables: `-A INPUT -p tcp -j CF-ALLOW` was not created by cf-allow and is left alone"]
        );
    }

    #[test]
    fn a_chain_is_cf_allows_by_its_tag_or_the_previous_versions_exact_rules() {
        let l = layout(&["INPUT"], true);
        let owner_of = |rules: &[&str]| {
            let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            format!("{:?}", owner(&l, ChainKind::Main, Family::Ipv4, &rules))
        };
        let tagged = "-s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT";
        let legacy = "-s 192.0.2.0/24 -p tcp -m multiport --dports 443 -j ACCEPT";
        let legacy_drop = "-p tcp -m multiport --dports 443 -m conntrack --ctdir ORIGINAL -j DROP";
        let admin = "-s 198.51.100.7/32 -j DROP";
        assert_eq!(owner_of(&[tagged]), "Ours");
        assert_eq!(owner_of(&[legacy, legacy_drop]), "Ours");
        assert_eq!(owner_of(&[]), "ForeignChain(None)");
        assert_eq!(
            owner_of(&[admin, legacy]),
            format!("ForeignChain(Some({admin:?}))")
        );
        assert_eq!(
            owner_of(&[tagged, admin]),
            format!("ForeignRule({admin:?})")
        );
        // Another port than configured is not cf-allow's old layout.
        assert_eq!(
            owner_of(&["-s 192.0.2.0/24 -p tcp -m multiport --dports 22 -j ACCEPT"]),
            "ForeignChain(Some(\"-s 192.0.2.0/24 -p tcp -m multiport --dports 22 -j ACCEPT\"))"
        );
    }

    #[test]
    fn rollback_restores_chain_and_jump_positions() {
        let old = table(&format!(
            "{BASE}:CF-ALLOW - [0:0]\n-A INPUT -j DROP\n-A INPUT -j CF-ALLOW\n-A CF-ALLOW -s 192.0.2.0/24 -j ACCEPT\n"
        ));
        let new = table(&format!(
            "{BASE}:CF-ALLOW - [0:0]\n-A INPUT -j CF-ALLOW\n-A INPUT -j DROP\n-A CF-ALLOW -s 198.51.100.0/24 -j ACCEPT\n"
        ));
        assert_eq!(
            rollback_commands(&layout(&["INPUT"], false), &old, &new),
            [
                ":CF-ALLOW - [0:0]",
                "-A CF-ALLOW -s 192.0.2.0/24 -j ACCEPT",
                "-D INPUT -j CF-ALLOW",
                "-I INPUT 2 -j CF-ALLOW",
            ]
        );
    }
}
