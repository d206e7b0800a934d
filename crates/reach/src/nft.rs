//! `nft -j list ruleset` into the model.

use std::net::IpAddr;

use cf_allow_diff::Family;
use serde_json::Value;

use crate::model::{
    Action, Atom, Comp, Cond, Elem, Hook, Key, Layer, Match, NatTo, Rhs, Rule, SetDef, TFam, Table,
    VmapRhs,
};
use crate::space::addr_value;

/// The tables of an `nft -j list ruleset` dump, plus the (family, table) pairs holding
/// iptables compat (`xt`) expressions.
pub(crate) struct Parsed {
    pub tables: Vec<Table>,
    pub xt_tables: Vec<(String, String)>,
    /// True when the ruleset holds state that changes without a commit (and so without a
    /// new generation id): sets with timeouts or updated from the packet path, meters.
    pub volatile: bool,
}

/// True when `v` holds element timeouts or expiries, dynamic or timeout set flags, or
/// statements that add to, update or delete from sets and maps (or meters) from the packet path.
fn volatile(v: &Value) -> bool {
    let flag = |x: &Value| match x {
        Value::String(f) => f == "dynamic" || f == "timeout",
        Value::Array(a) => a
            .iter()
            .any(|f| matches!(f.as_str(), Some("dynamic" | "timeout"))),
        _ => false,
    };
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            matches!(k.as_str(), "timeout" | "expires" | "meter" | "gc-interval")
                || (k == "op" && matches!(x.as_str(), Some("add" | "update" | "delete")))
                || (k == "flags" && flag(x))
                || volatile(x)
        }),
        Value::Array(a) => a.iter().any(volatile),
        _ => false,
    }
}

pub(crate) fn parse(json: &str) -> Result<Parsed, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("nft -j output is not JSON: {e}"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j output has no \"nftables\" array")?;
    let mut tables: Vec<Table> = Vec::new();
    let mut xt_tables: Vec<(String, String)> = Vec::new();
    let find = |tables: &mut Vec<Table>, fam: &str, name: &str| -> usize {
        let f = TFam::parse(fam);
        match tables.iter().position(|t| t.family == f && t.name == name) {
            Some(i) => i,
            None => {
                tables.push(Table::new(Layer::Nftables, f, name));
                tables.len() - 1
            }
        }
    };
    for item in items {
        let Some((kind, o)) = item.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let fam = o.get("family").and_then(Value::as_str).unwrap_or("");
        match kind.as_str() {
            "table" => {
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                find(&mut tables, fam, name);
            }
            "chain" => {
                let tname = o.get("table").and_then(Value::as_str).unwrap_or("");
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                let i = find(&mut tables, fam, tname);
                let t = &mut tables[i];
                let base = o.get("hook").and_then(Value::as_str).map(|hook| {
                    let prio = o.get("prio").and_then(Value::as_i64).unwrap_or(0);
                    let policy_drop = o.get("policy").and_then(Value::as_str) == Some("drop");
                    let devices = match o.get("dev") {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|d| d.as_str().map(String::from))
                            .collect(),
                        _ => Vec::new(),
                    };
                    let mut b = t.base_info(name, Hook::parse(hook), prio, policy_drop, devices);
                    b.nat = o.get("type").and_then(Value::as_str) == Some("nat");
                    b
                });
                t.chain_mut(name).base = base;
            }
            "set" | "map" => {
                let tname = o.get("table").and_then(Value::as_str).unwrap_or("");
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                let i = find(&mut tables, fam, tname);
                let Some(o) = o.as_object() else { continue };
                let def = parse_set(o, kind == "map");
                tables[i].sets.insert(name.to_string(), def);
            }
            "rule" => {
                let tname = o.get("table").and_then(Value::as_str).unwrap_or("");
                let chain = o.get("chain").and_then(Value::as_str).unwrap_or("");
                let handle = o.get("handle").and_then(Value::as_u64);
                let exprs = o
                    .get("expr")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let i = find(&mut tables, fam, tname);
                let has_xt = exprs.iter().any(|e| e.get("xt").is_some());
                if has_xt && !xt_tables.iter().any(|(f, n)| f == fam && n == tname) {
                    xt_tables.push((fam.to_string(), tname.to_string()));
                }
                let t = &mut tables[i];
                let rule = parse_rule(t, chain, handle, &exprs);
                t.chain_mut(chain).rules.push(rule);
            }
            _ => {}
        }
    }
    Ok(Parsed {
        tables,
        xt_tables,
        volatile: volatile(&v),
    })
}

fn parse_set(o: &serde_json::Map<String, Value>, is_map: bool) -> SetDef {
    let mut def = SetDef::default();
    let key = match o.get("type") {
        Some(Value::Array(parts)) => parts.first().and_then(Value::as_str),
        Some(Value::String(t)) => Some(t.as_str()),
        _ => None,
    };
    def.addr_fam = match key {
        Some("ipv4_addr") => Some(Family::Ipv4),
        Some("ipv6_addr") => Some(Family::Ipv6),
        _ => None,
    };
    let is_vmap = is_map && o.get("map").and_then(Value::as_str) == Some("verdict");
    if is_map && !is_vmap {
        def.unknown = Some("a data map".into());
    }
    let mut verdicts = Vec::new();
    for e in o
        .get("elem")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if is_vmap {
            let (Some(k), Some(v)) = (e.get(0), e.get(1)) else {
                continue;
            };
            match (elem(k), verdict(v)) {
                (Some(k), Some(v)) => {
                    def.elems.push(k);
                    verdicts.push(v);
                }
                _ => def.unknown = Some(format!("element {e}")),
            }
        } else {
            match elem(e) {
                Some(k) => def.elems.push(k),
                None => def.unknown = Some(format!("element {e}")),
            }
        }
    }
    if is_vmap {
        def.verdicts = Some(verdicts);
    }
    def
}

/// One set element (or right-hand side) as atoms; a concatenation gives several.
fn elem(v: &Value) -> Option<Elem> {
    if let Some(inner) = v.get("elem") {
        return elem(inner.get("val")?);
    }
    if let Some(parts) = v.get("concat").and_then(Value::as_array) {
        return parts.iter().map(atom).collect();
    }
    Some(vec![atom(v)?])
}

fn atom(v: &Value) -> Option<Atom> {
    match v {
        Value::Number(n) => {
            let n = n.as_u64()? as u128;
            Some(Atom::Num(n, n))
        }
        Value::Bool(b) => Some(Atom::Bool(*b)),
        Value::String(s) => Some(match s.parse::<IpAddr>() {
            Ok(a) => {
                let x = addr_value(a);
                Atom::Num(x, x)
            }
            Err(_) => match s.parse::<u128>() {
                Ok(n) => Atom::Num(n, n),
                // nft 1.0.6 prints values of keys without a datatype (`ct original
                // proto-dst { 80, 443 }`) as `"0x50 [invalid type]"`.
                Err(_) => match s
                    .strip_suffix(" [invalid type]")
                    .and_then(|h| h.strip_prefix("0x"))
                    .and_then(|h| u128::from_str_radix(h, 16).ok())
                {
                    Some(n) => Atom::Num(n, n),
                    None => Atom::Str(s.clone()),
                },
            },
        }),
        Value::Object(_) => {
            if let Some(p) = v.get("prefix") {
                let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                let len = u32::try_from(p.get("len")?.as_u64()?).ok()?;
                let (lo, hi) = crate::space::prefix_span(addr, len)?;
                return Some(Atom::Num(lo, hi));
            }
            if let Some(r) = v.get("range").and_then(Value::as_array) {
                let lo = match atom(r.first()?)? {
                    Atom::Num(a, _) => a,
                    _ => return None,
                };
                let hi = match atom(r.get(1)?)? {
                    Atom::Num(_, b) => b,
                    _ => return None,
                };
                return Some(Atom::Num(lo, hi));
            }
            None
        }
        _ => None,
    }
}

fn verdict(v: &Value) -> Option<Action> {
    let (k, arg) = v.as_object()?.iter().next()?;
    let target = || arg.get("target").and_then(Value::as_str).map(String::from);
    Some(match k.as_str() {
        "accept" => Action::Accept,
        "drop" => Action::Drop,
        "continue" => Action::Continue,
        "return" => Action::Return,
        "jump" => Action::Jump(target()?),
        "goto" => Action::Goto(target()?),
        _ => return None,
    })
}

fn proto_num(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "igmp" => 2,
        "ipv6-icmp" | "icmpv6" => 58,
        "sctp" => 132,
        "dccp" => 33,
        "udplite" => 136,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        _ => return None,
    })
}

/// A left-hand side as components; `Err` names what is not understood.
fn comps(left: &Value) -> Result<Vec<Comp>, String> {
    if let Some(parts) = left.get("concat").and_then(Value::as_array) {
        let mut out = Vec::new();
        for p in parts {
            out.extend(comps(p)?);
        }
        return Ok(out);
    }
    let c = |key, fam, proto| Ok(vec![Comp { key, fam, proto }]);
    if let Some(mask) = tcp_flags_mask(left) {
        return match mask {
            Some(m) => c(Key::TcpFlags(m), None, Some(6)),
            None => Err("tcp flags mask".into()),
        };
    }
    if let Some(p) = left.get("payload") {
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let field = p.get("field").and_then(Value::as_str).unwrap_or("");
        return match (proto, field) {
            ("ip", "saddr") => c(Key::Saddr, Some(Family::Ipv4), None),
            ("ip6", "saddr") => c(Key::Saddr, Some(Family::Ipv6), None),
            ("ip", "daddr") => c(Key::Daddr, Some(Family::Ipv4), None),
            ("ip6", "daddr") => c(Key::Daddr, Some(Family::Ipv6), None),
            ("ip", "protocol") => c(Key::L4proto, Some(Family::Ipv4), None),
            ("ip6", "nexthdr") => c(Key::L4proto, Some(Family::Ipv6), None),
            ("th", "dport") => c(Key::Dport, None, None),
            ("th", "sport") => c(Key::Sport, None, None),
            (l4, "dport") if proto_num(l4).is_some() => c(Key::Dport, None, proto_num(l4)),
            (l4, "sport") if proto_num(l4).is_some() => c(Key::Sport, None, proto_num(l4)),
            // Any field of another layer-4 protocol: a TCP SYN never matches it.
            (l4, _) if proto_num(l4).is_some_and(|p| p != 6) => c(Key::Sport, None, proto_num(l4)),
            _ => Err(format!("payload {proto} {field}")),
        };
    }
    if let Some(m) = left.get("meta") {
        let key = m.get("key").and_then(Value::as_str).unwrap_or("");
        return match key {
            "l4proto" => c(Key::L4proto, None, None),
            "nfproto" => c(Key::Nfproto, None, None),
            "protocol" => c(Key::EtherProto, None, None),
            "iif" => c(Key::Iif, None, None),
            "iifname" => c(Key::Iifname, None, None),
            "oif" => c(Key::Oif, None, None),
            "oifname" => c(Key::Oifname, None, None),
            "pkttype" => c(Key::PktType, None, None),
            _ => Err(format!("meta {key}")),
        };
    }
    if let Some(ct) = left.get("ct") {
        let key = ct.get("key").and_then(Value::as_str).unwrap_or("");
        let dir = ct.get("dir").and_then(Value::as_str);
        return match (key, dir) {
            ("state", None) => c(Key::CtState, None, None),
            ("status", None) => c(Key::CtStatus, None, None),
            ("direction", None) => c(Key::CtDirection, None, None),
            ("proto-dst", Some("original")) => c(Key::CtOrigDport, None, None),
            ("daddr", Some("original")) => c(Key::CtOrigDaddr, None, None),
            ("ip daddr", Some("original")) => c(Key::CtOrigDaddr, Some(Family::Ipv4), None),
            ("ip6 daddr", Some("original")) => c(Key::CtOrigDaddr, Some(Family::Ipv6), None),
            // Before any SNAT (prerouting, input, forward), the original source is the source.
            ("saddr", Some("original")) => c(Key::Saddr, None, None),
            ("ip saddr", Some("original")) => c(Key::Saddr, Some(Family::Ipv4), None),
            ("ip6 saddr", Some("original")) => c(Key::Saddr, Some(Family::Ipv6), None),
            _ => Err(format!("ct {key}")),
        };
    }
    if let Some(f) = left.get("fib") {
        let result = f.get("result").and_then(Value::as_str).unwrap_or("");
        let flags: Vec<&str> = f
            .get("flags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if result == "type"
            && flags.contains(&"daddr")
            && flags.iter().all(|f| *f == "daddr" || *f == "iif")
        {
            return c(Key::FibDaddrType, None, None);
        }
        if result == "oif"
            && flags.contains(&"saddr")
            && flags.iter().all(|f| ["saddr", "iif", "mark"].contains(f))
        {
            return c(Key::FibSaddrOif, None, None);
        }
        return Err(format!("fib {} {result}", flags.join(" . ")));
    }
    Err(render_value(left))
}

/// The bits of a tcp flags value: names, lists, `|`, numbers.
fn flag_bits(v: &Value) -> Option<u8> {
    match v {
        Value::Number(n) => u8::try_from(n.as_u64()?).ok(),
        Value::String(s) => Some(match s.as_str() {
            "fin" => 0x01,
            "syn" => 0x02,
            "rst" => 0x04,
            "psh" => 0x08,
            "ack" => 0x10,
            "urg" => 0x20,
            "ecn" => 0x40,
            "cwr" => 0x80,
            _ => return None,
        }),
        Value::Array(a) => a.iter().try_fold(0u8, |acc, x| Some(acc | flag_bits(x)?)),
        Value::Object(o) => o.get("|").and_then(flag_bits),
        _ => None,
    }
}

/// `Some(mask)` when `left` is `tcp flags` (mask 0xff) or `tcp flags & mask`; `Some(None)`
/// when it is tcp flags with a mask that cannot be read.
fn tcp_flags_mask(left: &Value) -> Option<Option<u8>> {
    let is_flags = |v: &Value| {
        v.get("payload").is_some_and(|p| {
            p.get("protocol").and_then(Value::as_str) == Some("tcp")
                && p.get("field").and_then(Value::as_str) == Some("flags")
        })
    };
    if is_flags(left) {
        return Some(Some(0xff));
    }
    let parts = left.get("&")?.as_array()?;
    if parts.len() == 2 && is_flags(&parts[0]) {
        return Some(flag_bits(&parts[1]));
    }
    None
}

/// Normalises atoms for their key (protocol names to numbers, nfproto names).
fn normalise(comps: &[Comp], e: Elem) -> Elem {
    e.into_iter()
        .zip(comps)
        .map(|(a, c)| match (&a, c.key) {
            (Atom::Str(s), Key::L4proto) => match proto_num(s) {
                Some(n) => Atom::Num(n as u128, n as u128),
                None => a,
            },
            _ => a,
        })
        .collect()
}

fn rhs_elems(comps: &[Comp], right: &Value) -> Option<Vec<Elem>> {
    let list: Vec<&Value> = match right {
        Value::Array(a) => a.iter().collect(),
        _ => match right.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![right],
        },
    };
    list.into_iter()
        .map(|v| elem(v).map(|e| normalise(comps, e)))
        .collect()
}

fn parse_match(m: &Value) -> Cond {
    let text = render_match(m);
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
        return Cond::Unknown(text);
    };
    let comps = match comps(left) {
        Ok(c) => c,
        Err(e) => {
            return Cond::Unknown(if e == text {
                text
            } else {
                format!("{text} ({e})")
            })
        }
    };
    if let Some(name) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        return match op {
            "==" | "in" | "!=" => Cond::M(Match {
                comps,
                neg: op == "!=",
                rhs: Rhs::Set(name.to_string()),
                text,
            }),
            _ => Cond::Unknown(text),
        };
    }
    if let [Comp {
        key: Key::TcpFlags(mask),
        ..
    }] = comps.as_slice()
    {
        let Some(bits) = flag_bits(right) else {
            return Cond::Unknown(text);
        };
        // A SYN may carry ECE/CWR (ECN): a result that depends on those bits is not known.
        // `in` / `!`: any / none of the bits; `==` / `!=`: the exact value.
        let any = op == "in" || op == "!";
        let looked_at = if any { bits & *mask } else { *mask };
        if looked_at & 0xc0 != 0 {
            return Cond::Unknown(format!("{text} (depends on the ECN bits a SYN may carry)"));
        }
        // `in` (and a bare `tcp flags syn`): any of the bits; `==`/`!=`: the exact value.
        let values: Vec<u8> = match op {
            "in" | "!" => (0..=255u8).filter(|v| v & bits != 0).collect(),
            "==" | "!=" => vec![bits],
            _ => return Cond::Unknown(text),
        };
        let mask = *mask;
        return Cond::M(Match {
            comps,
            neg: op == "!=" || op == "!",
            rhs: Rhs::Elems(
                values
                    .into_iter()
                    .filter(|v| v & !mask == 0 || any)
                    .map(|v| vec![Atom::Num(v as u128, v as u128)])
                    .collect(),
            ),
            text,
        });
    }
    let Some(mut elems) = rhs_elems(&comps, right) else {
        return Cond::Unknown(text);
    };
    let neg = match op {
        "==" | "in" => false,
        "!=" => true,
        "<" | ">" | "<=" | ">=" if comps.len() == 1 && elems.len() == 1 => {
            let Some(Atom::Num(v, _)) = elems[0].first().cloned() else {
                return Cond::Unknown(text);
            };
            let max = u128::MAX;
            let span = match op {
                "<" if v == 0 => {
                    return Cond::M(Match {
                        comps,
                        neg: false,
                        rhs: Rhs::Elems(Vec::new()),
                        text,
                    })
                }
                "<" => (0, v - 1),
                "<=" => (0, v),
                ">" => (v.saturating_add(1), max),
                _ => (v, max),
            };
            elems = vec![vec![Atom::Num(span.0, span.1)]];
            false
        }
        _ => return Cond::Unknown(text),
    };
    Cond::M(Match {
        comps,
        neg,
        rhs: Rhs::Elems(elems),
        text,
    })
}

fn parse_rule(t: &Table, chain: &str, handle: Option<u64>, exprs: &[Value]) -> Rule {
    let text = exprs
        .iter()
        .map(render_stmt)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut conds = Vec::new();
    let mut unknown_stmt: Option<String> = None;
    let mut action = Action::Continue;
    for e in exprs {
        let Some((k, arg)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match k.as_str() {
            "match" => conds.push(parse_match(arg)),
            "counter" | "log" | "comment" | "mangle" => {
                // Counting, logging, setting marks: no effect on the verdict.
            }
            "limit" | "quota" | "meter" => conds.push(Cond::Unknown(render_stmt(e))),
            "set" => {
                if arg.get("stmt").is_some() {
                    conds.push(Cond::Unknown(render_stmt(e)));
                }
            }
            "accept" => action = Action::Accept,
            "drop" => action = Action::Drop,
            "reject" => action = Action::Drop,
            "return" => action = Action::Return,
            "continue" => action = Action::Continue,
            "jump" | "goto" => match verdict(e) {
                Some(a) => action = a,
                None => {
                    unknown_stmt.get_or_insert(render_stmt(e));
                }
            },
            "vmap" => {
                let key = arg.get("key").cloned().unwrap_or(Value::Null);
                match comps(&key) {
                    Ok(comps) => {
                        let map = match arg.get("data") {
                            Some(Value::String(s)) if s.starts_with('@') => {
                                Some(VmapRhs::Named(s[1..].to_string()))
                            }
                            Some(d) => d.get("set").and_then(Value::as_array).and_then(|pairs| {
                                pairs
                                    .iter()
                                    .map(|p| {
                                        let k = elem(p.get(0)?).map(|e| normalise(&comps, e))?;
                                        Some((k, verdict(p.get(1)?)?))
                                    })
                                    .collect::<Option<Vec<_>>>()
                                    .map(VmapRhs::Inline)
                            }),
                            None => None,
                        };
                        match map {
                            Some(map) => {
                                action = Action::Vmap {
                                    comps,
                                    map,
                                    text: render_stmt(e),
                                }
                            }
                            None => {
                                unknown_stmt.get_or_insert(render_stmt(e));
                            }
                        }
                    }
                    Err(why) => {
                        unknown_stmt.get_or_insert(format!("{} ({why})", render_stmt(e)));
                    }
                }
            }
            "dnat" | "redirect" => match nat_to(k, arg) {
                Some(to) => action = Action::Nat(to),
                None => {
                    unknown_stmt.get_or_insert(render_stmt(e));
                }
            },
            "xt" => {
                let what = render_stmt(e);
                if arg.get("type").and_then(Value::as_str) == Some("target") {
                    unknown_stmt.get_or_insert(what);
                } else {
                    conds.push(Cond::Unknown(what));
                }
            }
            _ => {
                unknown_stmt.get_or_insert(render_stmt(e));
            }
        }
    }
    Rule {
        rref: t.rule_ref(chain, handle, text),
        conds,
        unknown_stmt,
        action,
    }
}

/// `dnat [ip|ip6] to ADDR[:PORT]` / `redirect [to :PORT]` with a plain address and port;
/// `None` for maps, ranges, and anything else the evaluator does not follow.
fn nat_to(kind: &str, arg: &Value) -> Option<NatTo> {
    let port = match arg.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(u16::try_from(n.as_u64()?).ok()?),
        Some(_) => return None,
    };
    if kind == "redirect" {
        return Some(NatTo {
            addr: None,
            fam: None,
            port,
        });
    }
    let addr: IpAddr = arg.get("addr")?.as_str()?.parse().ok()?;
    let fam = match arg.get("family").and_then(Value::as_str) {
        Some("ip") => Some(Family::Ipv4),
        Some("ip6") => Some(Family::Ipv6),
        _ => None,
    };
    let of_addr = if addr.is_ipv4() {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    if fam.is_some_and(|f| f != of_addr) {
        return None;
    }
    Some(NatTo {
        addr: Some(addr_value(addr)),
        fam: Some(of_addr),
        port,
    })
}

// ---- rendering nft JSON back to (approximately) nft syntax, for messages ----

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => (if *b { "exists" } else { "missing" }).to_string(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(render_value).collect::<Vec<_>>().join(","),
        Value::Object(o) => {
            let Some((k, x)) = o.iter().next() else {
                return String::new();
            };
            let s = |key: &str| x.get(key).map(render_value).unwrap_or_default();
            match k.as_str() {
                "payload" => format!("{} {}", s("protocol"), s("field")),
                "meta" => format!("meta {}", s("key")),
                "ct" => match x.get("dir").and_then(Value::as_str) {
                    Some(dir) => format!("ct {dir} {}", s("key")),
                    None => format!("ct {}", s("key")),
                },
                "fib" => format!(
                    "fib {} {}",
                    x.get("flags")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(render_value).collect::<Vec<_>>().join(" . "))
                        .unwrap_or_default(),
                    s("result")
                ),
                "prefix" => format!("{}/{}", s("addr"), s("len")),
                "range" => match x.as_array() {
                    Some(r) if r.len() == 2 => {
                        format!("{}-{}", render_value(&r[0]), render_value(&r[1]))
                    }
                    _ => x.to_string(),
                },
                "set" => match x.as_array() {
                    Some(items) => format!(
                        "{{ {} }}",
                        items
                            .iter()
                            .map(|i| match i.as_array() {
                                Some(pair) if pair.len() == 2 => {
                                    format!(
                                        "{} : {}",
                                        render_value(&pair[0]),
                                        render_stmt(&pair[1])
                                    )
                                }
                                _ => render_value(i),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => render_value(x),
                },
                "concat" => x
                    .as_array()
                    .map(|a| a.iter().map(render_value).collect::<Vec<_>>().join(" . "))
                    .unwrap_or_default(),
                "elem" => s("val"),
                _ => v.to_string(),
            }
        }
    }
}

fn render_match(m: &Value) -> String {
    let left = m.get("left").map(render_value).unwrap_or_default();
    let right = m.get("right").map(render_value).unwrap_or_default();
    match m.get("op").and_then(Value::as_str).unwrap_or("==") {
        "==" | "in" => format!("{left} {right}"),
        op => format!("{left} {op} {right}"),
    }
}

fn render_stmt(e: &Value) -> String {
    let Some((k, arg)) = e.as_object().and_then(|o| o.iter().next()) else {
        return String::new();
    };
    let target = || arg.get("target").map(render_value).unwrap_or_default();
    match k.as_str() {
        "match" => render_match(arg),
        "counter" => String::new(),
        "accept" | "drop" | "return" | "continue" => k.clone(),
        "jump" => format!("jump {}", target()),
        "goto" => format!("goto {}", target()),
        "reject" => match (
            arg.get("type").and_then(Value::as_str),
            arg.get("expr").and_then(Value::as_str),
        ) {
            (Some(t), Some(x)) => format!("reject with {t} {x}"),
            (Some("tcp reset"), None) => "reject with tcp reset".into(),
            _ => "reject".into(),
        },
        "log" => "log".into(),
        "limit" => format!(
            "limit rate {}/{}",
            arg.get("rate").map(render_value).unwrap_or_default(),
            arg.get("per").map(render_value).unwrap_or_default()
        ),
        "vmap" => format!(
            "{} vmap {}",
            arg.get("key").map(render_value).unwrap_or_default(),
            arg.get("data").map(render_value).unwrap_or_default()
        ),
        "dnat" => format!(
            "dnat to {}{}",
            arg.get("addr").map(render_value).unwrap_or_default(),
            arg.get("port")
                .map(|p| format!(":{}", render_value(p)))
                .unwrap_or_default()
        ),
        "redirect" => match arg.get("port") {
            Some(p) => format!("redirect to :{}", render_value(p)),
            None => "redirect".into(),
        },
        "xt" => format!(
            "xt {} {}",
            arg.get("type").map(render_value).unwrap_or_default(),
            arg.get("name").map(render_value).unwrap_or_default()
        ),
        _ => format!(
            "{k} {}",
            if arg.is_null() {
                String::new()
            } else {
                arg.to_string()
            }
        )
        .trim()
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_firewalld_reject() {
        let e: Value = serde_json::json!({"reject": {"type": "icmpx", "expr": "admin-prohibited"}});
        assert_eq!(render_stmt(&e), "reject with icmpx admin-prohibited");
    }
}
