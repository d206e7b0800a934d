//! `iptables-save` / `ip6tables-save` (nft or legacy) and `ipset save` into the model.

use std::collections::HashMap;
use std::net::IpAddr;

use cf_allow_diff::Family;

use crate::model::{
    Action, Atom, Comp, Cond, Elem, Hook, Ipset, IpsetKind, Key, Layer, Match, NatTo, Rhs, Rule,
    TFam, Table,
};
use crate::space::addr_value;

/// The classic hook and priority of a built-in chain; `None` for chains a packet to a local
/// address does not traverse on the way in.
fn classic_base(table: &str, chain: &str) -> Option<(Hook, i64)> {
    Some(match (table, chain) {
        ("raw", "PREROUTING") => (Hook::Prerouting, -300),
        ("mangle", "PREROUTING") => (Hook::Prerouting, -150),
        ("nat", "PREROUTING") => (Hook::Prerouting, -100),
        ("mangle", "INPUT") => (Hook::Input, -150),
        ("filter", "INPUT") => (Hook::Input, 0),
        ("security", "INPUT") => (Hook::Input, 50),
        ("nat", "INPUT") => (Hook::Input, 100),
        ("mangle", "FORWARD") => (Hook::Forward, -150),
        ("filter", "FORWARD") => (Hook::Forward, 0),
        ("security", "FORWARD") => (Hook::Forward, 50),
        _ => return None,
    })
}

/// Splits an iptables-save line into words, honouring double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The tables of an iptables-save dump. Tables with no rule and only ACCEPT policies are
/// kept too (they change nothing).
pub(crate) fn parse_save(text: &str, family: Family, layer: Layer) -> Vec<Table> {
    let tfam = match family {
        Family::Ipv4 => TFam::Ip,
        Family::Ipv6 => TFam::Ip6,
    };
    let mut tables: Vec<Table> = Vec::new();
    let mut cur: Option<Table> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if let Some(t) = cur.take() {
                tables.push(t);
            }
            cur = Some(Table::new(layer, tfam.clone(), name.trim()));
            continue;
        }
        let Some(t) = cur.as_mut() else { continue };
        if line == "COMMIT" {
            if let Some(t) = cur.take() {
                tables.push(t);
            }
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            let mut it = decl.split_whitespace();
            let (Some(name), policy) = (it.next(), it.next()) else {
                continue;
            };
            let base = classic_base(&t.name, name).map(|(hook, prio)| {
                let mut b = t.base_info(name, hook, prio, policy == Some("DROP"), Vec::new());
                b.nat = t.name == "nat";
                b
            });
            t.chain_mut(name).base = base;
            continue;
        }
        let w = words(line);
        if w.len() >= 2 && (w[0] == "-A" || w[0] == "--append") {
            let chain = w[1].clone();
            let rule = parse_rule(t, &chain, line, &w[2..], family);
            t.chain_mut(&chain).rules.push(rule);
        }
    }
    if let Some(t) = cur.take() {
        tables.push(t);
    }
    tables
}

fn addr_atom(s: &str, family: Family) -> Option<Atom> {
    let (a, mask) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    if addr.is_ipv4() != (family == Family::Ipv4) {
        return None;
    }
    let bits = if addr.is_ipv4() { 32u32 } else { 128 };
    let len = match mask {
        None => bits,
        Some(m) => match m.parse::<u32>() {
            Ok(l) => l,
            Err(_) => {
                // Dotted mask (older iptables): count its bits when contiguous.
                let m: IpAddr = m.parse().ok()?;
                let v = addr_value(m);
                let ones = v.count_ones();
                let contiguous = v == 0 || (v >> (bits - ones)) == (1u128 << ones) - 1;
                if !contiguous {
                    return None;
                }
                ones
            }
        },
    };
    let (lo, hi) = crate::space::prefix_span(addr, len)?;
    Some(Atom::Num(lo, hi))
}

fn port_atom(s: &str) -> Option<Atom> {
    match s.split_once(':') {
        Some((a, b)) => {
            let lo: u16 = if a.is_empty() { 0 } else { a.parse().ok()? };
            let hi: u16 = if b.is_empty() {
                u16::MAX
            } else {
                b.parse().ok()?
            };
            Some(Atom::Num(lo as u128, hi as u128))
        }
        None => {
            let p: u16 = s.parse().ok()?;
            Some(Atom::Num(p as u128, p as u128))
        }
    }
}

fn proto_of(s: &str) -> Option<Option<u8>> {
    let p = match s.to_ascii_lowercase().as_str() {
        "all" | "0" => None,
        "tcp" | "6" => Some(6),
        "udp" | "17" => Some(17),
        "icmp" | "1" => Some(1),
        "ipv6-icmp" | "icmpv6" | "58" => Some(58),
        "sctp" | "132" => Some(132),
        "esp" | "50" => Some(50),
        "ah" | "51" => Some(51),
        "gre" | "47" => Some(47),
        other => Some(other.parse::<u8>().ok()?),
    };
    Some(p)
}

fn one(
    key: Key,
    fam: Option<Family>,
    proto: Option<u8>,
    neg: bool,
    elems: Vec<Elem>,
    text: String,
) -> Cond {
    Cond::M(Match {
        comps: vec![Comp { key, fam, proto }],
        neg,
        rhs: Rhs::Elems(elems),
        text,
    })
}

/// The match on the layer-4 protocol number `p` (`-p`, `--ctproto`).
fn l4proto(p: u8, neg: bool, text: String) -> Cond {
    one(
        Key::L4proto,
        None,
        None,
        neg,
        vec![vec![Atom::Num(p as u128, p as u128)]],
        text,
    )
}

fn parse_rule(t: &Table, chain: &str, line: &str, args: &[String], family: Family) -> Rule {
    let t_chain_missing = |name: &str| t.chain(name).is_none();
    let mut conds = Vec::new();
    let mut unknown_stmt = None;
    let mut action = Action::Continue;
    let mut proto: Option<u8> = None;
    let mut neg = false;
    let mut module = String::new();
    // Options of a module that never matches need no understanding.
    let mut skip_module_opts = false;
    let mut i = 0;
    let next = |i: &mut usize| -> Option<&String> {
        *i += 1;
        args.get(*i)
    };
    while i < args.len() {
        let a = args[i].as_str();
        let text = |v: &str| format!("{}{a} {v}", if neg { "! " } else { "" });
        match a {
            "!" => {
                neg = true;
                i += 1;
                continue;
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let key = if a.starts_with("-s") || a == "--source" {
                    Key::Saddr
                } else {
                    Key::Daddr
                };
                match v
                    .split(',')
                    .map(|x| addr_atom(x, family).map(|a| vec![a]))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(elems) => conds.push(one(key, None, None, neg, elems, text(&v))),
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "-p" | "--protocol" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                match proto_of(&v) {
                    Some(None) => {
                        if neg {
                            conds.push(one(Key::L4proto, None, None, false, Vec::new(), text(&v)));
                        }
                    }
                    Some(Some(p)) => {
                        proto = Some(p);
                        conds.push(l4proto(p, neg, text(&v)));
                        if neg {
                            proto = None;
                        }
                    }
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let pat = match v.strip_suffix('+') {
                    Some(p) => format!("{p}*"),
                    None => v.clone(),
                };
                let key = if a.starts_with("-i") || a == "--in-interface" {
                    Key::Iifname
                } else {
                    Key::Oifname
                };
                conds.push(one(
                    key,
                    None,
                    None,
                    neg,
                    vec![vec![Atom::Str(pat)]],
                    text(&v),
                ));
            }
            "-f" | "--fragment" => {
                // A SYN is never a second fragment.
                conds.push(one(
                    Key::L4proto,
                    None,
                    None,
                    neg,
                    Vec::new(),
                    a.to_string(),
                ));
            }
            "-m" | "--match" => {
                module = next(&mut i).cloned().unwrap_or_default();
                skip_module_opts = false;
                match module.as_str() {
                    "tcp" | "udp" | "multiport" | "conntrack" | "state" | "set" | "comment"
                    | "addrtype" | "icmp" | "icmp6" => {}
                    // IPv6 extension headers: a SYN from a client carries none.
                    "rt" | "frag" | "hbh" | "dst" | "ipv6header" if family == Family::Ipv6 => {
                        conds.push(one(
                            Key::L4proto,
                            None,
                            None,
                            false,
                            Vec::new(),
                            format!("-m {module}"),
                        ));
                        skip_module_opts = true;
                    }
                    // Reverse-path filter (firewalld's IPv6 `-m rpfilter --invert -j DROP`):
                    // strict mode is `fib saddr . mark . iif oif exists` (a SYN from outside
                    // carries no mark and is not local); loose mode is not modelled.
                    "rpfilter" => {
                        let (mut invert, mut loose) = (false, false);
                        while let Some(opt) = args.get(i + 1).filter(|a| {
                            ["--loose", "--validmark", "--accept-local", "--invert"]
                                .contains(&a.as_str())
                        }) {
                            invert |= opt == "--invert";
                            loose |= opt == "--loose";
                            i += 1;
                        }
                        let text = format!(
                            "-m rpfilter{}{}",
                            if loose { " --loose" } else { "" },
                            if invert { " --invert" } else { "" }
                        );
                        if loose {
                            conds.push(Cond::Unknown(text));
                        } else {
                            conds.push(one(
                                Key::FibSaddrOif,
                                None,
                                None,
                                false,
                                vec![vec![Atom::Bool(!invert)]],
                                text,
                            ));
                        }
                    }
                    other => conds.push(Cond::Unknown(format!("-m {other}"))),
                }
            }
            "--dport" | "--destination-port" | "--sport" | "--source-port" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let key = if a.contains('d') && a != "--source-port" {
                    Key::Dport
                } else {
                    Key::Sport
                };
                match port_atom(&v) {
                    Some(p) => conds.push(one(key, None, proto, neg, vec![vec![p]], text(&v))),
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "--dports" | "--destination-ports" | "--sports" | "--source-ports" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let key = if a.starts_with("--d") {
                    Key::Dport
                } else {
                    Key::Sport
                };
                match v
                    .split(',')
                    .map(|x| port_atom(x).map(|a| vec![a]))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(elems) => conds.push(one(key, None, proto, neg, elems, text(&v))),
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "--ctstate" | "--state" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let elems = v
                    .split(',')
                    .map(|s| vec![Atom::Str(s.to_ascii_lowercase())])
                    .collect();
                conds.push(one(Key::CtState, None, None, neg, elems, text(&v)));
            }
            "--ctdir" if module == "conntrack" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                conds.push(one(
                    Key::CtDirection,
                    None,
                    None,
                    neg,
                    vec![vec![Atom::Str(v.to_ascii_lowercase())]],
                    text(&v),
                ));
            }
            "--ctorigdstport" if module == "conntrack" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                match port_atom(&v) {
                    Some(p) => conds.push(one(
                        Key::CtOrigDport,
                        None,
                        None,
                        neg,
                        vec![vec![p]],
                        text(&v),
                    )),
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "--ctorigdst" | "--ctorigsrc" if module == "conntrack" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                // Before any SNAT the original source is the source.
                let key = if a == "--ctorigdst" {
                    Key::CtOrigDaddr
                } else {
                    Key::Saddr
                };
                match addr_atom(&v, family) {
                    Some(at) => conds.push(one(key, None, None, neg, vec![vec![at]], text(&v))),
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "--ctproto" if module == "conntrack" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                match proto_of(&v) {
                    Some(Some(p)) => conds.push(l4proto(p, neg, text(&v))),
                    Some(None) => {}
                    None => conds.push(Cond::Unknown(text(&v))),
                }
            }
            "--match-set" => {
                let name = next(&mut i).cloned().unwrap_or_default();
                let dirs = next(&mut i).cloned().unwrap_or_default();
                conds.push(Cond::M(Match {
                    comps: Vec::new(),
                    neg,
                    rhs: Rhs::Ipset(name.clone(), dirs.split(',').map(String::from).collect()),
                    text: format!(
                        "{}-m set --match-set {name} {dirs}",
                        if neg { "! " } else { "" }
                    ),
                }));
            }
            "--comment" => {
                next(&mut i);
            }
            "--dst-type" if module == "addrtype" => {
                let v = next(&mut i).cloned().unwrap_or_default();
                let elems = v
                    .split(',')
                    .map(|s| vec![Atom::Str(s.to_ascii_lowercase())])
                    .collect();
                conds.push(one(Key::FibDaddrType, None, None, neg, elems, text(&v)));
            }
            "--syn" if module == "tcp" || proto == Some(6) => {
                // --tcp-flags FIN,SYN,RST,ACK SYN: true for a SYN.
                let mask = 0x17u8;
                conds.push(one(
                    Key::TcpFlags(mask),
                    None,
                    Some(6),
                    neg,
                    vec![vec![Atom::Num(0x02, 0x02)]],
                    text(""),
                ));
            }
            "--tcp-flags" => {
                let m = next(&mut i).cloned().unwrap_or_default();
                let v = next(&mut i).cloned().unwrap_or_default();
                let bits = |s: &str| -> Option<u8> {
                    s.split(',').try_fold(0u8, |acc, f| {
                        Some(
                            acc | match f {
                                "FIN" => 0x01,
                                "SYN" => 0x02,
                                "RST" => 0x04,
                                "PSH" => 0x08,
                                "ACK" => 0x10,
                                "URG" => 0x20,
                                "ALL" => 0x3f,
                                "NONE" => 0,
                                _ => return None,
                            },
                        )
                    })
                };
                match (bits(&m), bits(&v)) {
                    (Some(mask), Some(val)) => conds.push(one(
                        Key::TcpFlags(mask),
                        None,
                        Some(6),
                        neg,
                        vec![vec![Atom::Num(val as u128, val as u128)]],
                        text(&format!("{m} {v}")),
                    )),
                    _ => conds.push(Cond::Unknown(text(&format!("{m} {v}")))),
                }
            }
            "--icmp-type" | "--icmpv6-type" if proto.is_some_and(|p| p != 6) => {
                // The -p match already excludes TCP.
                next(&mut i);
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let target = next(&mut i).cloned().unwrap_or_default();
                let goto = a == "-g" || a == "--goto";
                action = match target.as_str() {
                    "ACCEPT" => Action::Accept,
                    "DROP" | "REJECT" => Action::Drop,
                    "RETURN" => Action::Return,
                    "LOG" | "NFLOG" | "ULOG" | "MARK" | "CONNMARK" => Action::Continue,
                    "DNAT" | "REDIRECT" if !goto => {
                        match nat_target(&target, &args[i + 1..], family) {
                            Some(to) => Action::Nat(to),
                            None => {
                                unknown_stmt.get_or_insert(format!("-j {}", args[i..].join(" ")));
                                Action::Continue
                            }
                        }
                    }
                    // A target that is no chain of the table (iptables-save declares every
                    // chain before the rules): DNAT, REDIRECT, NFQUEUE, CT, TPROXY, …
                    t if t_chain_missing(t) => {
                        unknown_stmt.get_or_insert(format!("-j {t}"));
                        Action::Continue
                    }
                    chain if goto => Action::Goto(chain.to_string()),
                    chain => Action::Jump(chain.to_string()),
                };
                // The target's own options follow; none of them changes the verdict.
                i = args.len();
                continue;
            }
            other if other.starts_with("--") && skip_module_opts => {
                if args
                    .get(i + 1)
                    .is_some_and(|v| !v.starts_with('-') && v.as_str() != "!")
                {
                    i += 1;
                }
            }
            other if other.starts_with('-') => {
                // An option of a module the evaluator does not model: take its value too.
                let mut what = other.to_string();
                if let Some(v) = args
                    .get(i + 1)
                    .filter(|v| !v.starts_with('-') && v.as_str() != "!")
                {
                    what.push(' ');
                    what.push_str(v);
                    i += 1;
                }
                conds.push(Cond::Unknown(format!(
                    "{}{what}",
                    if neg { "! " } else { "" }
                )));
            }
            other => conds.push(Cond::Unknown(other.to_string())),
        }
        neg = false;
        i += 1;
    }
    Rule {
        rref: t.rule_ref(chain, None, line.to_string()),
        conds,
        unknown_stmt,
        action,
    }
}

/// `-j DNAT --to-destination A[:P]` (one address, one port) / `-j REDIRECT [--to-ports P]`;
/// `None` for ranges, several destinations, or options the evaluator does not follow.
fn nat_target(target: &str, opts: &[String], family: Family) -> Option<NatTo> {
    let mut to: Option<&str> = None;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match o.as_str() {
            "--to-destination" | "--to-ports" | "--to-port" => {
                if to.is_some() {
                    return None;
                }
                to = Some(it.next()?.as_str());
            }
            "--random" | "--persistent" | "--random-fully" => {}
            _ => return None,
        }
    }
    let port = |p: &str| -> Option<u16> { p.parse().ok() };
    if target == "REDIRECT" {
        return Some(NatTo {
            addr: None,
            fam: None,
            port: match to {
                None => None,
                Some(p) => Some(port(p)?),
            },
        });
    }
    let to = to?;
    let (addr, p) = match family {
        Family::Ipv4 => match to.split_once(':') {
            Some((a, p)) => (a, Some(port(p)?)),
            None => (to, None),
        },
        Family::Ipv6 => match to.strip_prefix('[') {
            Some(rest) => {
                let (a, tail) = rest.split_once(']')?;
                let p = match tail.strip_prefix(':') {
                    Some(p) => Some(port(p)?),
                    None if tail.is_empty() => None,
                    None => return None,
                };
                (a, p)
            }
            None => (to, None),
        },
    };
    let addr: IpAddr = addr.parse().ok()?;
    if addr.is_ipv4() != (family == Family::Ipv4) {
        return None;
    }
    Some(NatTo {
        addr: Some(addr_value(addr)),
        fam: Some(family),
        port: p,
    })
}

/// Parses `ipset save`.
pub(crate) fn parse_ipsets(text: &str) -> HashMap<String, Ipset> {
    let mut sets: HashMap<String, Ipset> = HashMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first() {
            Some(&"create") if w.len() >= 3 => {
                let (name, ty) = (w[1], w[2]);
                let family = match w
                    .iter()
                    .position(|x| *x == "family")
                    .and_then(|i| w.get(i + 1))
                {
                    Some(&"inet6") => Some(Family::Ipv6),
                    Some(&"inet") => Some(Family::Ipv4),
                    _ => None,
                };
                let mut unknown = None;
                let kinds: Vec<IpsetKind> = match ty.split_once(':') {
                    Some(("hash", parts)) | Some(("bitmap", parts)) => parts
                        .split(',')
                        .map(|p| match p {
                            "ip" | "net" => IpsetKind::Addr,
                            "port" => IpsetKind::Port,
                            other => {
                                unknown = Some(format!("ipset type {ty} ({other})"));
                                IpsetKind::Addr
                            }
                        })
                        .collect(),
                    _ => {
                        unknown = Some(format!("ipset type {ty}"));
                        Vec::new()
                    }
                };
                let family = if ty.starts_with("bitmap:port") {
                    None
                } else {
                    family.or(Some(Family::Ipv4))
                };
                sets.insert(
                    name.to_string(),
                    Ipset {
                        family,
                        kinds,
                        elems: Vec::new(),
                        unknown,
                    },
                );
            }
            Some(&"add") if w.len() >= 3 => {
                let Some(set) = sets.get_mut(w[1]) else {
                    continue;
                };
                if w[3..].contains(&"nomatch") {
                    set.unknown = Some(format!("ipset {} holds nomatch entries", w[1]));
                    continue;
                }
                match ipset_elem(set, w[2]) {
                    Some(e) => set.elems.push(e),
                    None => set.unknown = Some(format!("ipset entry {}", w[2])),
                }
            }
            _ => {}
        }
    }
    sets
}

fn ipset_elem(set: &Ipset, entry: &str) -> Option<Elem> {
    let parts: Vec<&str> = entry.split(',').collect();
    if parts.len() != set.kinds.len() {
        return None;
    }
    let mut out = Vec::new();
    for (k, p) in set.kinds.iter().zip(parts) {
        match k {
            IpsetKind::Addr => {
                let fam = set.family.unwrap_or(Family::Ipv4);
                match p.split_once('-') {
                    Some((a, b))
                        if !p.contains(':')
                            || fam == Family::Ipv6 && b.parse::<IpAddr>().is_ok() =>
                    {
                        let (Atom::Num(lo, _), Atom::Num(_, hi)) =
                            (addr_atom(a, fam)?, addr_atom(b, fam)?)
                        else {
                            return None;
                        };
                        out.push(Atom::Num(lo, hi));
                    }
                    _ => out.push(addr_atom(p, fam)?),
                }
            }
            IpsetKind::Port => {
                let (proto, port) = match p.split_once(':') {
                    Some((pr, po)) => (pr, po),
                    None => ("tcp", p),
                };
                let proto = proto_of(proto)?.unwrap_or(0);
                let port = match port.split_once('-') {
                    Some((a, b)) => Atom::Num(
                        a.parse::<u16>().ok()? as u128,
                        b.parse::<u16>().ok()? as u128,
                    ),
                    None => port_atom(port)?,
                };
                out.push(Atom::Num(proto as u128, proto as u128));
                out.push(port);
            }
        }
    }
    Some(out)
}

/// The components an ipset's elements stand for under `--match-set NAME dirs`.
pub(crate) fn ipset_comps(set: &Ipset, dirs: &[String]) -> Option<Vec<Comp>> {
    if dirs.len() < set.kinds.len() {
        return None;
    }
    let mut out = Vec::new();
    for (k, d) in set.kinds.iter().zip(dirs) {
        let src = d == "src";
        match k {
            IpsetKind::Addr => out.push(Comp {
                key: if src { Key::Saddr } else { Key::Daddr },
                fam: set.family,
                proto: None,
            }),
            IpsetKind::Port => {
                out.push(Comp {
                    key: Key::L4proto,
                    fam: None,
                    proto: None,
                });
                out.push(Comp {
                    key: if src { Key::Sport } else { Key::Dport },
                    fam: None,
                    proto: None,
                });
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quoted_comments_whole() {
        let w = words(r#"-A INPUT -m comment --comment "a b \"c\"" -j DROP"#);
        assert_eq!(
            w,
            [
                "-A",
                "INPUT",
                "-m",
                "comment",
                "--comment",
                "a b \"c\"",
                "-j",
                "DROP"
            ]
        );
    }
}

#[cfg(test)]
mod save_tests {
    use super::*;
    use crate::model::Action;

    #[test]
    fn upper_case_user_chains_are_jumps_and_unknown_targets_are_unknown() {
        let t = parse_save(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A DOCKER -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n-A DOCKER -p tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80-90\n-A DOCKER -p tcp --dport 8082 -j NFQUEUE\nCOMMIT\n",
            Family::Ipv4,
            Layer::Nftables,
        );
        let pre = t[0].chain("PREROUTING").expect("PREROUTING");
        assert!(matches!(&pre.rules[0].action, Action::Jump(c) if c == "DOCKER"));
        let docker = t[0].chain("DOCKER").expect("DOCKER");
        assert!(
            matches!(&docker.rules[0].action, Action::Nat(to) if to.port == Some(80) && to.addr == Some(0xac11_0002)),
            "{:?}",
            docker.rules[0]
        );
        assert!(pre.base.as_ref().is_some_and(|b| b.nat));
        // A port range is not followed.
        assert_eq!(
            docker.rules[1].unknown_stmt.as_deref(),
            Some("-j DNAT --to-destination 172.17.0.2:80-90")
        );
        assert_eq!(docker.rules[2].unknown_stmt.as_deref(), Some("-j NFQUEUE"));
    }
}
