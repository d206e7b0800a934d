//! Questions about the host's objects that are not verdicts: the named sets (nftables sets,
//! ipsets) with their address elements and the rules that use them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cf_allow_diff::Family;

use crate::model::{Action, Atom, Cond, IpsetKind, Rhs, VmapRhs};
use crate::space::{addr_value, span_to_nets};
use crate::{HostModel, RuleRef};

/// An inclusive span of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrSpan {
    /// First address.
    pub first: IpAddr,
    /// Last address (same family as `first`).
    pub last: IpAddr,
}

impl AddrSpan {
    fn of(family: Family, lo: u128, hi: u128) -> Option<AddrSpan> {
        let addr = |v: u128| -> Option<IpAddr> {
            Some(match family {
                Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).ok()?)),
                Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(v)),
            })
        };
        (lo <= hi).then_some(())?;
        Some(AddrSpan {
            first: addr(lo)?,
            last: addr(hi)?,
        })
    }

    /// The span as one CIDR, when it is exactly one.
    fn as_cidr(&self) -> Option<ipnet::IpNet> {
        let family = match (self.first, self.last) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Family::Ipv4,
            (IpAddr::V6(_), IpAddr::V6(_)) => Family::Ipv6,
            _ => return None,
        };
        let span = (addr_value(self.first), addr_value(self.last));
        match span_to_nets(family, span)[..] {
            [net] => Some(net),
            _ => None,
        }
    }
}

impl fmt::Display for AddrSpan {
    /// `192.0.2.7`, `192.0.2.0/24`, or `192.0.2.1-192.0.2.9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            return write!(f, "{}", self.first);
        }
        match self.as_cidr() {
            Some(net) => write!(f, "{net}"),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

/// A rule that references a set (a match on it, or a verdict map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetUser {
    /// The rule.
    pub rule: RuleRef,
    /// True when the rule accepts what is in the set (a plain, not negated, match and an
    /// `accept` verdict): an allowlist use.
    pub accepts: bool,
}

/// A named set of the host: an nftables set (or map) or an ipset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSet {
    /// `nftables` or `ipset`.
    pub layer: &'static str,
    /// The nft table's family (`inet`, `ip`, …); for an ipset `inet` or `inet6`.
    pub family: String,
    /// The nft table; empty for an ipset.
    pub table: String,
    /// The set's name.
    pub name: String,
    /// The family of its addresses, when its elements (their first component) are addresses.
    pub addr_family: Option<Family>,
    /// The address (first component) of each element, in the order read; `nomatch`
    /// exceptions of ipsets are not members and are left out.
    pub elements: Vec<AddrSpan>,
    /// The rules that reference it.
    pub users: Vec<SetUser>,
}

impl HostSet {
    /// `inet f2b-table addr-set-sshd` (as `nft list set` takes it), or the ipset's name.
    pub fn path(&self) -> String {
        if self.layer == "ipset" {
            self.name.clone()
        } else {
            format!("{} {} {}", self.family, self.table, self.name)
        }
    }

    /// True when rules use the set and every one of them accepts its members.
    pub fn allowlist_only(&self) -> bool {
        !self.users.is_empty() && self.users.iter().all(|u| u.accepts)
    }
}

fn addr_spans(family: Option<Family>, elems: &[Vec<Atom>]) -> Vec<AddrSpan> {
    let Some(family) = family else {
        return Vec::new();
    };
    elems
        .iter()
        .filter_map(|e| match e.first()? {
            Atom::Num(lo, hi) => AddrSpan::of(family, *lo, *hi),
            _ => None,
        })
        .collect()
}

/// What a set is named by in rules: an nft set of one table, or an ipset of the namespace.
enum Named<'a> {
    Nft(&'a str, &'a str),
    Ipset,
}

impl HostModel {
    /// Every named set of the host: the nftables sets and maps of every table (in the order
    /// read), then the ipsets `ipset save` listed (by name; see
    /// [`crate::ReadOptions::all_ipsets`]), each with its address elements and its users.
    pub fn sets(&self) -> Vec<HostSet> {
        let mut out = Vec::new();
        for t in &self.tables {
            let mut names: Vec<&String> = t.sets.keys().collect();
            names.sort();
            for name in names {
                let Some(def) = t.sets.get(name) else {
                    continue;
                };
                out.push(HostSet {
                    layer: t.layer.as_str(),
                    family: t.family.as_str().to_string(),
                    table: t.name.clone(),
                    name: name.clone(),
                    addr_family: def.addr_fam,
                    elements: addr_spans(def.addr_fam, &def.elems),
                    users: self.users(&Named::Nft(t.label().as_str(), name)),
                });
            }
        }
        let mut names: Vec<&String> = self.ipsets.keys().collect();
        names.sort();
        for name in names {
            let Some(set) = self.ipsets.get(name) else {
                continue;
            };
            let addr_family = match set.kinds.first() {
                Some(IpsetKind::Addr) => set.family,
                _ => None,
            };
            let users = self.users_of_ipset(name);
            out.push(HostSet {
                layer: "ipset",
                family: match set.family {
                    Some(Family::Ipv6) => "inet6",
                    _ => "inet",
                }
                .to_string(),
                table: String::new(),
                name: name.clone(),
                addr_family,
                elements: addr_spans(addr_family, &set.elems),
                users,
            });
        }
        out
    }

    /// Why `ipset save` could not be read, when it was needed and failed.
    pub fn ipset_problem(&self) -> Option<&str> {
        self.ipset_problem.as_deref()
    }

    fn users_of_ipset(&self, name: &str) -> Vec<SetUser> {
        self.collect_users(
            |_, rhs| matches!(rhs, Rhs::Ipset(n, _) if n == name),
            &Named::Ipset,
        )
    }

    fn users(&self, named: &Named) -> Vec<SetUser> {
        let Named::Nft(table, name) = named else {
            return Vec::new();
        };
        self.collect_users(
            |label, rhs| label == *table && matches!(rhs, Rhs::Set(n) if n == name),
            named,
        )
    }

    fn collect_users(&self, uses: impl Fn(&str, &Rhs) -> bool, named: &Named) -> Vec<SetUser> {
        let mut out = Vec::new();
        for t in &self.tables {
            let label = t.label();
            for c in &t.chains {
                for r in &c.rules {
                    let matched: Vec<bool> = r
                        .conds
                        .iter()
                        .filter_map(|cd| match cd {
                            Cond::M(m) if uses(&label, &m.rhs) => Some(m.neg),
                            _ => None,
                        })
                        .collect();
                    let vmap = match (&r.action, named) {
                        (
                            Action::Vmap {
                                map: VmapRhs::Named(n),
                                ..
                            },
                            Named::Nft(table, name),
                        ) => label == *table && n == name,
                        _ => false,
                    };
                    if matched.is_empty() && !vmap {
                        continue;
                    }
                    out.push(SetUser {
                        rule: r.rref.clone(),
                        accepts: !vmap
                            && matched.iter().all(|neg| !neg)
                            && matches!(r.action, Action::Accept),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReadOptions, Sources};

    const RULESET: &str = r#"{"nftables": [{"table": {"family": "inet", "name": "f2b-table", "handle": 1}}, {"set": {"family": "inet", "name": "addr-set-sshd", "table": "f2b-table", "type": "ipv4_addr", "handle": 1, "flags": ["interval"], "elem": [{"prefix": {"addr": "104.16.0.0", "len": 24}}, {"range": ["192.0.2.1", "192.0.2.9"]}, "203.0.113.5"]}}, {"set": {"family": "inet", "name": "six", "table": "f2b-table", "type": "ipv6_addr", "handle": 2, "flags": ["timeout"], "elem": ["2001:db8::1", {"elem": {"val": "2606:4700::1", "timeout": 3600, "expires": 3599}}]}}, {"set": {"family": "inet", "name": "cc", "table": "f2b-table", "type": ["ipv4_addr", "inet_service"], "handle": 3, "elem": [{"concat": ["104.16.0.3", 443]}]}}, {"set": {"family": "inet", "name": "ports", "table": "f2b-table", "type": "inet_service", "handle": 4, "elem": [22, 80]}}, {"chain": {"family": "inet", "table": "f2b-table", "name": "input", "handle": 5, "type": "filter", "hook": "input", "prio": -1, "policy": "accept"}}, {"rule": {"family": "inet", "table": "f2b-table", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@addr-set-sshd"}}, {"reject": null}]}}]}"#;

    const IPSETS: &str =
        "create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 600\n\
add f2b-sshd 192.0.2.7 timeout 0\n\
add f2b-sshd 104.16.0.1 timeout 599\n\
create cs6 hash:net family inet6 hashsize 1024 maxelem 65536\n\
add cs6 2001:db8::/32 nomatch\n\
add cs6 2400:cb00::/48\n\
create ipp hash:ip,port family inet hashsize 1024 maxelem 65536\n\
add ipp 104.16.0.2,tcp:443\n\
create all list:set size 8\n\
add all f2b-sshd\n";

    const SAVE: &str = "*filter\n:INPUT ACCEPT [0:0]\n\
-A INPUT -m set --match-set ipp src -j ACCEPT\n\
-A INPUT -p tcp -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable\n\
COMMIT\n";

    fn model() -> HostModel {
        let mut s = Sources::nft_only(RULESET, Vec::new());
        s.ipset = Some(Ok(IPSETS.to_string()));
        s.iptables_legacy_v4 = Some(Ok(SAVE.to_string()));
        HostModel::from_sources(&s, &ReadOptions::default())
    }

    fn show(set: &HostSet) -> Vec<String> {
        set.elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn lists_every_nft_set_and_ipset_with_address_elements() {
        let sets = model().sets();
        let paths: Vec<String> = sets.iter().map(HostSet::path).collect();
        assert_eq!(
            paths,
            [
                "inet f2b-table addr-set-sshd",
                "inet f2b-table cc",
                "inet f2b-table ports",
                "inet f2b-table six",
                "all",
                "cs6",
                "f2b-sshd",
                "ipp"
            ]
        );
        assert_eq!(
            show(&sets[0]),
            ["104.16.0.0/24", "192.0.2.1-192.0.2.9", "203.0.113.5"]
        );
        assert_eq!(show(&sets[1]), ["104.16.0.3"]);
        assert!(sets[2].elements.is_empty() && sets[2].addr_family.is_none());
        assert_eq!(show(&sets[3]), ["2001:db8::1", "2606:4700::1"]);
        assert!(sets[4].elements.is_empty());
        assert_eq!(show(&sets[5]), ["2400:cb00::/48"], "nomatch is no member");
        assert_eq!(sets[5].family, "inet6");
        assert_eq!(show(&sets[6]), ["192.0.2.7", "104.16.0.1"]);
        assert_eq!(show(&sets[7]), ["104.16.0.2"]);
    }

    #[test]
    fn names_the_rules_that_use_a_set() {
        let sets = model().sets();
        let by = |name: &str| sets.iter().find(|s| s.name == name).expect("set");
        let sshd = by("addr-set-sshd");
        assert_eq!(sshd.users.len(), 1);
        assert_eq!(sshd.users[0].rule.chain, "input");
        assert!(!sshd.allowlist_only());
        assert!(by("ipp").allowlist_only());
        let f2b = by("f2b-sshd");
        assert_eq!(f2b.users.len(), 1);
        assert!(!f2b.users[0].accepts);
        assert!(f2b.users[0].rule.rule.contains("--match-set f2b-sshd src"));
        assert!(by("cs6").users.is_empty() && !by("cs6").allowlist_only());
    }
}
