//! cf-allow's ipsets and the rich rules that use them, spelled exactly as firewalld 1.3
//! normalises them (`getRichRules` returns `priority` first), so that a rule read back
//! compares equal to the rule cf-allow wants.

use cf_allow_diff::Family;

/// One of cf-allow's two ipsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedSet {
    /// The address family of its entries.
    pub family: Family,
    /// Its name (`cf-allow-v4`).
    pub name: &'static str,
    /// The ipset `family` option (`inet`, `inet6`).
    pub ipset_family: &'static str,
    /// The rich rule `family` (`ipv4`, `ipv6`).
    pub rule_family: &'static str,
}

/// The ipset type cf-allow creates.
pub const IPSET_TYPE: &str = "hash:net";
/// The `short` option of cf-allow's ipsets.
pub const SHORT: &str = "cf-allow";
/// The description that proves an ipset is cf-allow's.
pub const TAG: &str = "managed by cf-allow";
/// The priority of the lockdown rules: after the admin's own negative-priority rules, before
/// services, ports and priority-0 rich rules.
pub const LOCKDOWN_PRIORITY: i32 = -1;

/// cf-allow's ipsets, IPv4 first.
pub const SETS: [OwnedSet; 2] = [
    OwnedSet {
        family: Family::Ipv4,
        name: "cf-allow-v4",
        ipset_family: "inet",
        rule_family: "ipv4",
    },
    OwnedSet {
        family: Family::Ipv6,
        name: "cf-allow-v6",
        ipset_family: "inet6",
        rule_family: "ipv6",
    },
];

/// The rich rules cf-allow wants in each of its zones: per family, an accept for each port
/// (TCP on every port when `ports` is empty) and, with lockdown, a drop for every other source.
pub fn wanted(ports: &[u16], lockdown: bool) -> Vec<String> {
    let mut rules = Vec::new();
    for set in SETS {
        let (fam, name) = (set.rule_family, set.name);
        if ports.is_empty() {
            rules.push(format!(
                r#"rule family="{fam}" source ipset="{name}" protocol value="tcp" accept"#
            ));
        }
        for port in ports {
            rules.push(format!(
                r#"rule family="{fam}" source ipset="{name}" port port="{port}" protocol="tcp" accept"#
            ));
        }
        if lockdown {
            for port in ports {
                rules.push(format!(
                    r#"rule priority="{LOCKDOWN_PRIORITY}" family="{fam}" source NOT ipset="{name}" port port="{port}" protocol="tcp" drop"#
                ));
            }
        }
    }
    rules
}

/// True when a rich rule uses one of cf-allow's ipsets as its source: it is cf-allow's.
pub fn is_owned(rule: &str) -> bool {
    SETS.iter().any(|s| {
        rule.contains(&format!(r#"source ipset="{}""#, s.name))
            || rule.contains(&format!(r#"source NOT ipset="{}""#, s.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_rules_per_port_family_and_lockdown() {
        let r = wanted(&[443], false);
        assert_eq!(
            r,
            vec![
                r#"rule family="ipv4" source ipset="cf-allow-v4" port port="443" protocol="tcp" accept"#,
                r#"rule family="ipv6" source ipset="cf-allow-v6" port port="443" protocol="tcp" accept"#,
            ]
        );
        assert_eq!(wanted(&[80, 443], true).len(), 8);
        assert!(wanted(&[], false)[0].contains(r#"protocol value="tcp" accept"#));
        assert!(wanted(&[80], true).iter().all(|r| is_owned(r)));
    }

    #[test]
    fn only_rules_on_cf_allow_sets_are_owned() {
        assert!(!is_owned(
            r#"rule family="ipv4" source ipset="office" accept"#
        ));
        assert!(!is_owned(
            r#"rule family="ipv4" source ipset="cf-allow-v4x" accept"#
        ));
        assert!(is_owned(
            r#"rule priority="-1" family="ipv6" source NOT ipset="cf-allow-v6" port port="80" protocol="tcp" drop"#
        ));
    }
}
