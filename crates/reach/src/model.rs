//! The model of the input path: tables, chains, rules, sets, as the evaluator sees them.

use std::collections::HashMap;

use cf_allow_diff::Family;

use crate::RuleRef;

/// Which netfilter front end holds a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    /// nf_tables (native nft rules and iptables-nft rules).
    Nftables,
    /// The legacy x_tables modules (`iptables-legacy`).
    IptablesLegacy,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Nftables => "nftables",
            Layer::IptablesLegacy => "iptables-legacy",
        }
    }
}

/// A table's family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TFam {
    Ip,
    Ip6,
    Inet,
    Netdev,
    /// bridge, arp: never on the IP input path.
    Other(String),
}

impl TFam {
    pub fn parse(s: &str) -> TFam {
        match s {
            "ip" => TFam::Ip,
            "ip6" => TFam::Ip6,
            "inet" => TFam::Inet,
            "netdev" => TFam::Netdev,
            other => TFam::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TFam::Ip => "ip",
            TFam::Ip6 => "ip6",
            TFam::Inet => "inet",
            TFam::Netdev => "netdev",
            TFam::Other(s) => s,
        }
    }

    /// True when packets of `family` traverse this table's prerouting/input hooks.
    pub fn sees(&self, family: Family) -> bool {
        matches!(
            (self, family),
            (TFam::Inet, _) | (TFam::Ip, Family::Ipv4) | (TFam::Ip6, Family::Ipv6)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Hook {
    Ingress,
    Prerouting,
    Input,
    /// The forward hook: connections DNAT'd to another host (a container) pass it.
    Forward,
    /// Any other hook (output, postrouting): not evaluated.
    Other,
}

impl Hook {
    pub fn parse(s: &str) -> Hook {
        match s {
            "ingress" => Hook::Ingress,
            "prerouting" => Hook::Prerouting,
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            _ => Hook::Other,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct BaseInfo {
    pub hook: Hook,
    pub prio: i64,
    pub policy_drop: bool,
    /// A chain of type nat: the kernel runs every nat chain of a hook from its one nat hook
    /// (prerouting: priority -100), in their priority order, until one sets up a binding.
    pub nat: bool,
    /// For ingress chains: the devices it is bound to.
    pub devices: Vec<String>,
    /// The policy as a rule reference (for findings).
    pub policy_ref: RuleRef,
}

#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub name: String,
    pub base: Option<BaseInfo>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub rref: RuleRef,
    pub conds: Vec<Cond>,
    /// A statement with an effect the evaluator does not model (nat, queue, notrack…): the
    /// packets that reach it get `unknown`.
    pub unknown_stmt: Option<String>,
    pub action: Action,
}

/// What a field is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Saddr,
    Daddr,
    Dport,
    Sport,
    L4proto,
    Nfproto,
    /// `meta protocol` (the ethertype).
    EtherProto,
    Iif,
    Iifname,
    CtState,
    FibDaddrType,
    /// `fib saddr . iif oif` (reverse-path lookup result; `missing` = no route back).
    FibSaddrOif,
    PktType,
    /// `ct status` (flags): a new connection's first packet has none of them.
    CtStatus,
    /// `tcp flags [& mask]`: the SYN's flags (`syn`) under the mask.
    TcpFlags(u8),
    /// `meta oif` (forward path: the device the route to the destination goes out of).
    Oif,
    /// `meta oifname`, iptables `-o`.
    Oifname,
    /// `ct direction`, `-m conntrack --ctdir`: a new connection's SYN is `original`.
    CtDirection,
    /// `ct original proto-dst`, `--ctorigdstport`: the destination port before DNAT.
    CtOrigDport,
    /// `ct original [ip|ip6] daddr`, `--ctorigdst`: the destination address before DNAT.
    CtOrigDaddr,
}

/// One component of a compared value, with its implicit dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Comp {
    pub key: Key,
    /// `ip …` / `ip6 …` payload (or an ipset of that family): only packets of that family.
    pub fam: Option<Family>,
    /// `tcp/udp/sctp … dport`: only packets of that layer-4 protocol (`th` = any).
    pub proto: Option<u8>,
}

/// A value in a set element or a right-hand side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Atom {
    /// An inclusive numeric interval (addresses, ports, protocol numbers).
    Num(u128, u128),
    /// A name: an interface (with `*` wildcard), a ct state, a fib type, …
    Str(String),
    /// `true`/`false` (fib … missing).
    Bool(bool),
}

pub(crate) type Elem = Vec<Atom>;

#[derive(Clone, Debug)]
pub(crate) enum Rhs {
    Elems(Vec<Elem>),
    /// A named nft set of the rule's table (`@name`).
    Set(String),
    /// An ipset referenced by an iptables rule, with its `--match-set` directions.
    Ipset(String, Vec<String>),
}

#[derive(Clone, Debug)]
pub(crate) struct Match {
    pub comps: Vec<Comp>,
    pub neg: bool,
    pub rhs: Rhs,
    /// The expression as text (for unknown findings).
    pub text: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Cond {
    M(Match),
    /// An expression the evaluator does not understand (or one that matches only
    /// sometimes: limit, quota).
    Unknown(String),
}

#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// No verdict: the next rule runs.
    Continue,
    Accept,
    Drop,
    Jump(String),
    Goto(String),
    Return,
    /// A nat statement that ends the (nat) base chain and sets up a DNAT binding:
    /// `dnat to A[:P]`, `-j DNAT --to-destination A[:P]`, `redirect [to :P]`, `-j REDIRECT`.
    Nat(NatTo),
    Vmap {
        comps: Vec<Comp>,
        map: VmapRhs,
        text: String,
    },
}

/// Where a DNAT sends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NatTo {
    /// The new destination address (`None` for `redirect`: the inbound interface's
    /// primary address).
    pub addr: Option<u128>,
    /// Its family, when the statement says (`dnat ip to`, an address of one family).
    pub fam: Option<Family>,
    /// The new destination port (`None` = unchanged).
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub(crate) enum VmapRhs {
    Inline(Vec<(Elem, Action)>),
    Named(String),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SetDef {
    pub elems: Vec<Elem>,
    /// For verdict maps: the verdict of each element.
    pub verdicts: Option<Vec<Action>>,
    /// Why the set cannot be evaluated (e.g. an ipset with `nomatch` entries).
    pub unknown: Option<String>,
    /// The family of the key's first component when it is an address (`ipv4_addr`,
    /// `ipv6_addr`); `None` for other keys (ports, marks, interface names).
    pub addr_fam: Option<Family>,
}

#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub layer: Layer,
    pub family: TFam,
    pub name: String,
    pub chains: Vec<Chain>,
    pub index: HashMap<String, usize>,
    pub sets: HashMap<String, SetDef>,
}

/// Every match of an ipset in the rules of `tables`: its name and directions
/// (`--match-set NAME src,dst`).
pub(crate) fn ipset_matches(tables: &[Table]) -> impl Iterator<Item = (&str, &[String])> {
    tables
        .iter()
        .flat_map(|t| t.chains.iter())
        .flat_map(|c| c.rules.iter())
        .flat_map(|r| r.conds.iter())
        .filter_map(|cd| match cd {
            Cond::M(Match {
                rhs: Rhs::Ipset(name, dirs),
                ..
            }) => Some((name.as_str(), dirs.as_slice())),
            _ => None,
        })
}

impl Table {
    pub fn new(layer: Layer, family: TFam, name: &str) -> Table {
        Table {
            layer,
            family,
            name: name.to_string(),
            chains: Vec::new(),
            index: HashMap::new(),
            sets: HashMap::new(),
        }
    }

    /// `inet firewalld`.
    pub fn label(&self) -> String {
        format!("{} {}", self.family.as_str(), self.name)
    }

    pub fn chain_mut(&mut self, name: &str) -> &mut Chain {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.chains.push(Chain {
                    name: name.to_string(),
                    base: None,
                    rules: Vec::new(),
                });
                self.index.insert(name.to_string(), self.chains.len() - 1);
                self.chains.len() - 1
            }
        };
        &mut self.chains[i]
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.index.get(name).map(|&i| &self.chains[i])
    }

    pub fn rule_ref(&self, chain: &str, handle: Option<u64>, rule: String) -> RuleRef {
        RuleRef {
            layer: self.layer.as_str().to_string(),
            table: self.label(),
            chain: chain.to_string(),
            handle,
            rule,
        }
    }

    pub fn base_info(
        &self,
        chain: &str,
        hook: Hook,
        prio: i64,
        policy_drop: bool,
        devices: Vec<String>,
    ) -> BaseInfo {
        BaseInfo {
            hook,
            prio,
            policy_drop,
            nat: false,
            devices,
            policy_ref: self.rule_ref(
                chain,
                None,
                format!("policy {}", if policy_drop { "drop" } else { "accept" }),
            ),
        }
    }
}

/// An ipset (`ipset save`), shared by every iptables rule of the namespace.
#[derive(Clone, Debug)]
pub(crate) struct Ipset {
    pub family: Option<Family>,
    /// The element components: `ip`/`net` (an address) or `port`.
    pub kinds: Vec<IpsetKind>,
    pub elems: Vec<Elem>,
    pub unknown: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IpsetKind {
    Addr,
    /// A port; its element atoms come as (protocol, port).
    Port,
}

/// One inbound interface with its addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`eth0`).
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its addresses.
    pub addrs: Vec<std::net::IpAddr>,
    /// True when a default route of IPv4 goes out through it.
    pub default_v4: bool,
    /// True when a default route of IPv6 goes out through it.
    pub default_v6: bool,
    /// The destinations routed out through it (main table; `0.0.0.0/0`, `::/0` for the
    /// default routes), for reverse-path (`fib saddr … oif`) matches.
    pub routes: Vec<ipnet::IpNet>,
    /// True when the interface is up.
    pub up: bool,
    /// True for the loopback interface.
    pub loopback: bool,
}
