//! Reading the host: the programs run, their outputs, and building the model from them.

use std::fmt::Write as _;
use std::net::IpAddr;

use cf_allow_diff::Family;
use serde_json::Value;

use crate::model::{Interface, Layer, TFam, Table};
use crate::{ipt, nft, HostModel};

/// How to read the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `reachability.interfaces`: the inbound interfaces, instead of those of the default
    /// routes (or every non-loopback interface that is up when there is none).
    pub interfaces: Option<Vec<String>>,
    /// Also read the ipsets no rule references (`ipset save` whenever the ip_set module is
    /// loaded): doctor lists block lists that exist before a rule uses them (fail2ban's
    /// `f2b-*`). Without it, `ipset save` runs only when an iptables rule matches a set.
    pub all_ipsets: bool,
    /// Sets whose elements the caller knows to be the kernel's right now (cf-allow's own
    /// sets, from the record of its last commit at the current generation). When any are
    /// given, the rules are read without set elements (`nft -j -t list ruleset`), these sets
    /// are filled from here, and every other named set is read on its own (`nft -j list
    /// set …`): the read then costs the same whatever the size of cf-allow's lists.
    pub known_sets: Vec<KnownSet>,
    /// The same for ipsets (cf-allow's own in ipset mode, right after a sync that left them
    /// holding exactly these ranges): when any are given and a rule matches an ipset, the
    /// other sets are read one by one (`ipset list -n`, then `ipset save NAME` for each) and
    /// these, when they exist, are taken from here instead of from `ipset save`, which at
    /// 100,000 members costs more than the rest of the read.
    pub known_ipsets: Vec<KnownIpset>,
}

/// An ipset of type `hash:net` and its members, known without reading them (see
/// [`ReadOptions::known_ipsets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownIpset {
    /// The set.
    pub name: String,
    /// Its family.
    pub family: Family,
    /// Its members: first and last address, inclusive.
    pub ranges: Vec<(IpAddr, IpAddr)>,
}

/// A named nft set and its elements, known without reading them (see
/// [`ReadOptions::known_sets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownSet {
    /// The table's family (`inet`, `ip`, `ip6`).
    pub family: String,
    /// The table.
    pub table: String,
    /// The set.
    pub name: String,
    /// Its ranges: first and last address, inclusive.
    pub ranges: Vec<(IpAddr, IpAddr)>,
}

/// The captured outputs the model is built from. `Err` holds why a program could not be
/// run or failed; `None` means not installed / not needed.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `nft -j list ruleset`.
    pub nft: Result<String, String>,
    /// `nft list chains` (text), read when an ingress chain's devices are missing from the
    /// JSON (nft 1.0.6 leaves them out).
    pub nft_chains: Option<Result<String, String>>,
    /// `iptables-nft-save` (read when an `ip` table holds iptables compat expressions).
    pub iptables_nft_v4: Option<Result<String, String>>,
    /// `ip6tables-nft-save` (same, for `ip6` tables).
    pub iptables_nft_v6: Option<Result<String, String>>,
    /// `iptables-legacy-save`.
    pub iptables_legacy_v4: Option<Result<String, String>>,
    /// `ip6tables-legacy-save`.
    pub iptables_legacy_v6: Option<Result<String, String>>,
    /// `ipset save` (read when an iptables rule references a set).
    pub ipset: Option<Result<String, String>>,
    /// Every interface, with its addresses and whether default routes use it.
    pub interfaces: Vec<Interface>,
    /// `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding` (`None`: not read), for
    /// connections DNAT'd to another host.
    pub forwarding: [Option<bool>; 2],
}

impl Sources {
    /// Sources holding only an nft JSON dump and the interfaces.
    pub fn nft_only(nft_json: &str, interfaces: Vec<Interface>) -> Sources {
        Sources {
            nft: Ok(nft_json.to_string()),
            nft_chains: None,
            iptables_nft_v4: None,
            iptables_nft_v6: None,
            iptables_legacy_v4: None,
            iptables_legacy_v6: None,
            ipset: None,
            interfaces,
            forwarding: [None, None],
        }
    }
}

fn run(program: &str, args: &[&str]) -> Option<Result<String, String>> {
    let path = cf_allow_exec::find_program(program)?;
    let cmd = format!("{program} {}", args.join(" "));
    Some(match cf_allow_exec::run(&path, args, None) {
        Err(e) => Err(format!("`{cmd}` could not run: {e}")),
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let summary = cf_allow_exec::stderr_summary(&out, 2);
            let hint = if summary.contains("Operation not permitted")
                || summary.contains("Permission denied")
            {
                "; run cf-allow as root"
            } else {
                ""
            };
            Err(format!("`{cmd}` failed: {summary}{hint}"))
        }
    })
}

fn run_with_input(program: &str, args: &[&str], input: &str) -> Option<Result<String, String>> {
    let path = cf_allow_exec::find_program(program)?;
    Some(match cf_allow_exec::run(&path, args, Some(input)) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            cf_allow_exec::stderr_summary(&out, 2)
        )),
        Err(e) => Err(format!("`{program}` could not run: {e}")),
    })
}

/// (device, destination) of the IPv6 routes (`/proc/thread-self/net/ipv6_route`: every
/// table; reject routes left out; `None` = a default route).
fn ipv6_routes() -> Vec<(String, Option<ipnet::IpNet>)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (dst, len, flags, dev) = (w.first()?, w.get(1)?, w.get(8)?, w.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if flags & 0x0200 != 0 {
                return None; // RTF_REJECT
            }
            let addr = std::net::Ipv6Addr::from(u128::from_str_radix(dst, 16).ok()?);
            let len = u8::from_str_radix(len, 16).ok()?;
            let net = ipnet::Ipv6Net::new(addr, len).ok()?;
            Some((dev.to_string(), (len != 0).then_some(ipnet::IpNet::V6(net))))
        })
        .collect()
}

pub(crate) fn read(opts: &ReadOptions) -> HostModel {
    read_with(opts, &Network::read())
}

pub(crate) fn read_with(opts: &ReadOptions, network: &Network) -> HostModel {
    let (mut sources, parsed) = read_rules(opts, network);
    sources.interfaces = network.interfaces.clone();
    match parsed {
        // The dump parsed once, for both the programs to run and the model.
        Some(parsed) => from_parsed(&sources, opts, parsed),
        // Not read, or not parsed: from_sources says why.
        None => from_sources(&sources, opts),
    }
}

/// The part of the host the verdict depends on besides the rules, read without running a
/// program: the interfaces with their addresses and routes (rtnetlink, `/proc`), the
/// forwarding sysctls, and whether iptables-legacy tables are loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// Every interface, with its addresses and whether default routes use it.
    pub(crate) interfaces: Vec<Interface>,
    /// `net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`.
    pub(crate) forwarding: [Option<bool>; 2],
    /// The iptables-legacy tables loaded in this namespace (IPv4, IPv6): from
    /// `/proc/thread-self/net/ip*_tables_names`.
    pub(crate) legacy: [bool; 2],
}

impl Network {
    /// Reads this network namespace's interfaces, routes, forwarding and legacy tables.
    pub fn read() -> Network {
        let loaded =
            |names: &str| std::fs::read_to_string(names).is_ok_and(|t| !t.trim().is_empty());
        Network {
            interfaces: read_interfaces().unwrap_or_default(),
            forwarding: [
                sysctl_bool("/proc/sys/net/ipv4/ip_forward"),
                sysctl_bool("/proc/sys/net/ipv6/conf/all/forwarding"),
            ],
            legacy: [
                loaded("/proc/thread-self/net/ip_tables_names"),
                loaded("/proc/thread-self/net/ip6_tables_names"),
            ],
        }
    }

    /// True when iptables-legacy tables are loaded (their rules have no generation id).
    pub fn legacy_loaded(&self) -> bool {
        self.legacy.iter().any(|l| *l)
    }

    /// Everything read, as one line of text (for a cache key): two equal fingerprints mean
    /// equal interfaces, addresses, routes, forwarding and legacy tables.
    pub fn fingerprint(&self) -> String {
        format!("{self:?}")
    }
}

/// `nft -j list ruleset`, parsed; with known sets, the ruleset without set elements plus
/// each other set read on its own (see [`ReadOptions::known_sets`]).
fn read_nft(known: &[KnownSet]) -> (Result<String, String>, Option<nft::Parsed>) {
    let args: &[&str] = if known.is_empty() {
        &["-j", "list", "ruleset"]
    } else {
        &["-j", "-t", "list", "ruleset"]
    };
    let nft = run("nft", args).unwrap_or_else(|| {
        Err(
            "nft is not installed (package nftables), so the nftables ruleset cannot be read"
                .into(),
        )
    });
    let mut parsed = nft.as_ref().ok().and_then(|j| nft::parse(j).ok());
    if let (Some(parsed), false) = (&mut parsed, known.is_empty()) {
        fill_sets(parsed, known);
    }
    (nft, parsed)
}

/// A known set's ranges as the model's elements: one address interval each.
fn range_elems(ranges: &[(IpAddr, IpAddr)]) -> Vec<crate::model::Elem> {
    ranges
        .iter()
        .map(|(first, last)| {
            vec![crate::model::Atom::Num(
                crate::space::addr_value(*first),
                crate::space::addr_value(*last),
            )]
        })
        .collect()
}

/// Gives the sets of a terse dump their elements: the known ones from `known`, every other
/// one from its own `nft -j list set|map` (a set that cannot be read is `unknown`, so the
/// verdict never takes an empty set for a read one).
fn fill_sets(parsed: &mut nft::Parsed, known: &[KnownSet]) {
    let mut volatile = false;
    for t in &mut parsed.tables {
        let family = t.family.as_str().to_owned();
        for (name, def) in &mut t.sets {
            if let Some(k) = known
                .iter()
                .find(|k| k.family == family && k.table == t.name && &k.name == name)
            {
                def.elems = range_elems(&k.ranges);
                continue;
            }
            if def.unknown.is_some() {
                continue; // a data map: its elements would not change the answer
            }
            let kind = if def.verdicts.is_some() { "map" } else { "set" };
            let read = run("nft", &["-j", "list", kind, &family, &t.name, name])
                .unwrap_or_else(|| Err("nft is not installed".into()))
                .and_then(|json| nft::parse(&json));
            let own = read.and_then(|p| {
                volatile |= p.volatile;
                p.tables
                    .into_iter()
                    .find_map(|mut t| t.sets.remove(name.as_str()))
                    .ok_or_else(|| format!("`nft list {kind}` did not return {kind} {name}"))
            });
            match own {
                Ok(read) => *def = read,
                Err(why) => def.unknown = Some(why),
            }
        }
    }
    parsed.volatile |= volatile;
}

/// `ipset save`, or with `known` sets, the save of every other set (one `ipset save NAME`
/// each) followed by a `create` line for each known set that exists, whose members
/// [`from_parsed`] takes from `known`.
fn read_ipsets(known: &[KnownIpset]) -> Result<String, String> {
    let missing = || Err("ipset is not installed".to_owned());
    if known.is_empty() {
        return run("ipset", &["save"]).unwrap_or_else(missing);
    }
    let names = run("ipset", &["list", "-n"]).unwrap_or_else(missing)?;
    let mut text = String::new();
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        match known.iter().find(|k| k.name == name) {
            Some(set) => {
                let family = match set.family {
                    Family::Ipv4 => "inet",
                    Family::Ipv6 => "inet6",
                };
                let _ = writeln!(text, "create {name} hash:net family {family}");
            }
            None => text.push_str(&run("ipset", &["save", name]).unwrap_or_else(missing)?),
        }
    }
    Ok(text)
}

fn read_rules(opts: &ReadOptions, network: &Network) -> (Sources, Option<nft::Parsed>) {
    let (nft, parsed) = read_nft(&opts.known_sets);
    let xt = |fam: &str| {
        parsed
            .as_ref()
            .is_some_and(|p| p.xt_tables.iter().any(|(f, _)| f == fam))
    };
    let ingress = parsed.as_ref().is_some_and(|p| {
        p.tables.iter().any(|t| {
            t.chains.iter().any(|c| {
                c.base
                    .as_ref()
                    .is_some_and(|b| b.hook == crate::model::Hook::Ingress && b.devices.is_empty())
            })
        })
    });
    let nft_chains = if ingress {
        run("nft", &["list", "chains"])
    } else {
        None
    };
    let iptables_nft_v4 = if xt("ip") {
        run("iptables-nft-save", &[])
    } else {
        None
    };
    let iptables_nft_v6 = if xt("ip6") {
        run("ip6tables-nft-save", &[])
    } else {
        None
    };
    // The legacy tables of this network namespace are listed in
    // /proc/thread-self/net/ip*_tables_names (absent or empty: none, and nothing to run).
    let legacy = |loaded: bool, program: &str| if loaded { run(program, &[]) } else { None };
    let iptables_legacy_v4 = legacy(network.legacy[0], "iptables-legacy-save");
    let iptables_legacy_v6 = legacy(network.legacy[1], "ip6tables-legacy-save");
    let uses_ipset = [
        &iptables_nft_v4,
        &iptables_nft_v6,
        &iptables_legacy_v4,
        &iptables_legacy_v6,
    ]
    .iter()
    .any(|s| matches!(s, Some(Ok(t)) if t.contains("--match-set")));
    // Without the ip_set module no set exists, and running `ipset` would load it.
    let all = opts.all_ipsets && std::path::Path::new("/sys/module/ip_set").exists();
    let ipset = if uses_ipset || all {
        Some(read_ipsets(&opts.known_ipsets))
    } else {
        None
    };
    let sources = Sources {
        nft,
        nft_chains,
        iptables_nft_v4,
        iptables_nft_v6,
        iptables_legacy_v4,
        iptables_legacy_v6,
        ipset,
        interfaces: Vec::new(),
        forwarding: network.forwarding,
    };
    (sources, parsed)
}

/// A 0/1 sysctl (`None` when it cannot be read).
fn sysctl_bool(path: &str) -> Option<bool> {
    match std::fs::read_to_string(path).ok()?.trim() {
        "0" => Some(false),
        "" => None,
        _ => Some(true),
    }
}

/// An interface as the dumps give it, before the routes are attached.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    index: u32,
    name: String,
    addrs: Vec<IpAddr>,
    up: bool,
    loopback: bool,
}

/// The links with their addresses, and the IPv4 main-table routes (device, destination;
/// `None` = default).
type Links = (Vec<Link>, Vec<(String, Option<ipnet::IpNet>)>);

/// [`Links`] over rtnetlink.
fn links_from_rtnetlink() -> Option<Links> {
    let dump = match crate::rtnl::dump() {
        Ok(dump) => dump,
        Err(e) => {
            tracing::debug!("reachability: rtnetlink: {e}; running `ip` instead");
            return None;
        }
    };
    let links: Vec<Link> = dump
        .links
        .iter()
        .map(|l| Link {
            index: l.index,
            name: l.name.clone(),
            addrs: dump
                .addrs
                .iter()
                .filter(|(i, _)| *i == l.index)
                .map(|(_, a)| *a)
                .collect(),
            up: l.up,
            loopback: l.loopback,
        })
        .collect();
    let r4 = dump
        .routes4
        .iter()
        .filter_map(|(oif, net)| {
            let dev = links.iter().find(|l| l.index == *oif)?;
            Some((dev.name.clone(), *net))
        })
        .collect();
    Some((links, r4))
}

/// The same from one `ip -j -batch -` run (`addr show`, `route show table main`).
fn links_from_ip() -> Option<Links> {
    let batch = run_with_input(
        "ip",
        &["-j", "-batch", "-"],
        "addr show\nroute show table main\n",
    )?
    .ok()?;
    let mut docs = batch.lines().filter(|l| l.starts_with('['));
    let addrs: Value = serde_json::from_str(docs.next()?).ok()?;
    let r4: Vec<(String, Option<ipnet::IpNet>)> = docs
        .next()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let dev = r.get("dev").and_then(Value::as_str)?.to_string();
            let net = match r.get("dst").and_then(Value::as_str)? {
                "default" => None,
                d => Some(
                    d.parse::<ipnet::IpNet>()
                        .or_else(|_| d.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .ok()?,
                ),
            };
            Some((dev, net))
        })
        .collect();
    let links = addrs
        .as_array()?
        .iter()
        .map(|i| {
            let flags: Vec<&str> = i
                .get("flags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Link {
                index: i.get("ifindex").and_then(Value::as_u64).unwrap_or(0) as u32,
                name: i
                    .get("ifname")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                addrs: i
                    .get("addr_info")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| {
                                x.get("local")
                                    .and_then(Value::as_str)?
                                    .parse::<IpAddr>()
                                    .ok()
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                up: flags.contains(&"UP"),
                loopback: flags.contains(&"LOOPBACK"),
            }
        })
        .collect();
    Some((links, r4))
}

/// Every interface with its addresses (rtnetlink; `ip -j addr show` when that fails), with
/// the routes of both families.
fn read_interfaces() -> Option<Vec<Interface>> {
    let (links, r4) = links_from_rtnetlink().or_else(links_from_ip)?;
    let r6 = ipv6_routes();
    let default_any: ipnet::IpNet = "0.0.0.0/0".parse().ok()?;
    let default_any6: ipnet::IpNet = "::/0".parse().ok()?;
    let d4: Vec<String> = r4
        .iter()
        .filter(|(_, n)| n.is_none())
        .map(|(d, _)| d.clone())
        .collect();
    let d6: Vec<String> = r6
        .iter()
        .filter(|(_, n)| n.is_none())
        .map(|(d, _)| d.clone())
        .collect();
    let out = links
        .into_iter()
        .map(|l| Interface {
            index: l.index,
            addrs: l.addrs,
            routes: r4
                .iter()
                .map(|(d, n)| (d, n.unwrap_or(default_any)))
                .chain(r6.iter().map(|(d, n)| (d, n.unwrap_or(default_any6))))
                .filter(|(d, _)| **d == l.name)
                .map(|(_, n)| n)
                .collect(),
            default_v4: d4.contains(&l.name),
            default_v6: d6.contains(&l.name),
            up: l.up,
            loopback: l.loopback,
            name: l.name,
        })
        .collect();
    Some(out)
}

fn inbound(all: &[Interface], opts: &ReadOptions, family: Family) -> Vec<Interface> {
    if let Some(names) = &opts.interfaces {
        return names
            .iter()
            .map(|n| {
                all.iter()
                    .find(|i| &i.name == n)
                    .cloned()
                    .unwrap_or_else(|| Interface {
                        name: n.clone(),
                        ..Interface::default()
                    })
            })
            .collect();
    }
    let defaults: Vec<Interface> = all
        .iter()
        .filter(|i| match family {
            Family::Ipv4 => i.default_v4,
            Family::Ipv6 => i.default_v6,
        })
        .cloned()
        .collect();
    if !defaults.is_empty() {
        return defaults;
    }
    all.iter()
        .filter(|i| i.up && !i.loopback)
        .cloned()
        .collect()
}

/// True when the table changes nothing: no rule, and no base chain with policy drop.
fn inert(t: &Table) -> bool {
    t.chains
        .iter()
        .all(|c| c.rules.is_empty() && !c.base.as_ref().is_some_and(|b| b.policy_drop))
}

/// The names of the ipsets the rules match.
fn matched_ipsets(tables: &[Table]) -> Vec<&str> {
    let mut names: Vec<&str> = crate::model::ipset_matches(tables)
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn uses_ipsets(tables: &[Table]) -> bool {
    crate::model::ipset_matches(tables).next().is_some()
}

pub(crate) fn from_sources(s: &Sources, opts: &ReadOptions) -> HostModel {
    let json = match &s.nft {
        Ok(j) => j,
        Err(why) => return HostModel::unreadable(why.clone()),
    };
    match nft::parse(json) {
        Ok(parsed) => from_parsed(s, opts, parsed),
        Err(why) => HostModel::unreadable(why),
    }
}

/// [`from_sources`] with `s.nft` already parsed (so it was read: both callers only get
/// `parsed` from an `Ok` dump).
fn from_parsed(s: &Sources, opts: &ReadOptions, parsed: nft::Parsed) -> HostModel {
    let mut notes = Vec::new();
    let mut tables = parsed.tables;
    if let Some(Ok(text)) = &s.nft_chains {
        ingress_devices(&mut tables, text);
    }
    for (fam, save, program) in [
        ("ip", &s.iptables_nft_v4, "iptables-nft-save"),
        ("ip6", &s.iptables_nft_v6, "ip6tables-nft-save"),
    ] {
        let xt: Vec<&String> = parsed
            .xt_tables
            .iter()
            .filter(|(f, _)| f == fam)
            .map(|(_, n)| n)
            .collect();
        if xt.is_empty() {
            continue;
        }
        let family = if fam == "ip" {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        match save {
            Some(Ok(text)) => {
                for saved in ipt::parse_save(text, family, Layer::Nftables) {
                    if !xt.contains(&&saved.name) {
                        continue;
                    }
                    let Some(pos) = tables
                        .iter()
                        .position(|t| t.family == TFam::parse(fam) && t.name == saved.name)
                    else {
                        continue;
                    };
                    tables[pos] = with_handles(saved, &tables[pos]);
                }
            }
            Some(Err(why)) => notes.push(why.clone()),
            None => notes.push(format!(
                "{program} is not installed: the iptables rules in nftables stay partly unknown"
            )),
        }
    }
    for (save, family) in [
        (&s.iptables_legacy_v4, Family::Ipv4),
        (&s.iptables_legacy_v6, Family::Ipv6),
    ] {
        match save {
            Some(Ok(text)) => tables.extend(
                ipt::parse_save(text, family, Layer::IptablesLegacy)
                    .into_iter()
                    .filter(|t| !inert(t)),
            ),
            Some(Err(why)) => notes.push(why.clone()),
            None => {}
        }
    }
    let mut ipset_problem = None;
    let ipsets = match &s.ipset {
        Some(Ok(text)) => {
            let mut sets = ipt::parse_ipsets(text);
            for known in &opts.known_ipsets {
                if let Some(set) = sets.get_mut(&known.name) {
                    set.elems = range_elems(&known.ranges);
                }
            }
            sets
        }
        Some(Err(why)) => {
            notes.push(why.clone());
            ipset_problem = Some(why.clone());
            Default::default()
        }
        None => {
            if uses_ipsets(&tables) {
                notes.push("ipset save was not read: the rules using ipsets stay unknown".into());
            }
            Default::default()
        }
    };
    let uncacheable = if s.iptables_legacy_v4.is_some() || s.iptables_legacy_v6.is_some() {
        Some("iptables-legacy tables are loaded".to_owned())
    } else if let Some(name) = matched_ipsets(&tables)
        .into_iter()
        .find(|name| !opts.known_ipsets.iter().any(|k| k.name == *name))
    {
        // cf-allow's own ipsets, when known, hold what the sync just found or set; any
        // other ipset can change without a new generation.
        Some(format!("iptables rules match the ipset {name}"))
    } else if parsed.volatile {
        Some("the ruleset has sets with timeouts or updated by packets".to_owned())
    } else {
        notes.first().cloned()
    };
    HostModel {
        uncacheable,
        tables,
        ipsets,
        inbound_v4: inbound(&s.interfaces, opts, Family::Ipv4),
        inbound_v6: inbound(&s.interfaces, opts, Family::Ipv6),
        unreadable: None,
        notes,
        all_ifaces: s.interfaces.clone(),
        forwarding_v4: s.forwarding[0],
        forwarding_v6: s.forwarding[1],
        ipset_problem,
    }
}

/// The table read from iptables-nft-save, with the nft handles of the same rules (the
/// dump lists them in the same order) and the nft base chain settings.
fn with_handles(mut saved: Table, from_nft: &Table) -> Table {
    for c in saved.chains.iter_mut() {
        let Some(n) = from_nft.chain(&c.name) else {
            continue;
        };
        if let (Some(b), Some(nb)) = (c.base.as_mut(), n.base.as_ref()) {
            b.prio = nb.prio;
            b.hook = nb.hook;
        }
        if n.rules.len() == c.rules.len() {
            for (r, nr) in c.rules.iter_mut().zip(&n.rules) {
                r.rref.handle = nr.rref.handle;
            }
        }
    }
    saved
}

/// Fills in ingress chains' devices from `nft list chains` text.
fn ingress_devices(tables: &mut [Table], text: &str) {
    let (mut table, mut chain) = (None::<(String, String)>, None::<String>);
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["table", fam, name, "{"] => table = Some((fam.to_string(), name.to_string())),
            ["chain", name, "{"] => chain = Some(name.to_string()),
            _ => {}
        }
        let devices: Vec<String> = if let Some(i) = line.find("devices = {") {
            let rest = &line[i + "devices = {".len()..];
            rest.split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|d| d.trim().trim_matches('"').to_string())
                .filter(|d| !d.is_empty())
                .collect()
        } else if let Some(i) = line.find("device \"") {
            let rest = &line[i + "device \"".len()..];
            rest.split('"')
                .next()
                .map(|d| vec![d.to_string()])
                .unwrap_or_default()
        } else {
            continue;
        };
        let (Some((fam, tname)), Some(cname)) = (&table, &chain) else {
            continue;
        };
        let f = TFam::parse(fam);
        if let Some(t) = tables
            .iter_mut()
            .find(|t| t.family == f && &t.name == tname)
        {
            if let Some(b) = t.chain_mut(cname).base.as_mut() {
                b.devices = devices;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtnetlink_reads_what_ip_prints() {
        if !cf_allow_testkit::require_root("rtnetlink_reads_what_ip_prints")
            || !cf_allow_testkit::require_programs("rtnetlink_reads_what_ip_prints", &["ip"])
        {
            return;
        }
        let ns = cf_allow_testkit::Netns::new("reach-rtnl");
        ns.sh("ip link set lo up
             ip link add cfa-a0 type veth peer name cfa-a1
             ip addr add 192.0.2.1/24 dev cfa-a0
             ip addr add 192.0.2.9/32 dev cfa-a0
             ip addr add 2001:db8::1/64 dev cfa-a0 nodad
             ip link set cfa-a0 up
             ip link set cfa-a1 up
             ip route add default via 192.0.2.254
             ip route add 198.51.100.0/24 via 192.0.2.253
             ip route add 203.0.113.7 dev cfa-a0
             ip route add blackhole 10.0.0.0/8
             ip route add default dev cfa-a1 table 100
             ip link add cfa-b0 type veth peer name cfa-b1");
        let (rtnl, ip) = ns.run_in(|| (links_from_rtnetlink(), links_from_ip()));
        let (rtnl, ip) = (rtnl.expect("rtnetlink"), ip.expect("ip"));
        assert_eq!(rtnl, ip);
        assert_eq!(rtnl.0.len(), 5, "{rtnl:?}");
        assert!(rtnl.1.contains(&("cfa-a0".to_string(), None)), "{rtnl:?}");
        assert!(!rtnl.1.iter().any(|(d, _)| d == "cfa-a1"), "{rtnl:?}");
    }
}
