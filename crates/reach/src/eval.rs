//! The pure evaluator: regions of (source × port) pushed through the base chains in order.

use std::collections::BTreeMap;

use cf_allow_diff::Family;

use crate::model::{
    Action, Atom, Chain, Comp, Cond, Elem, Hook, Interface, Key, Match, Rhs, Table, VmapRhs,
};
use crate::space::{full, net_span, Bx, Shape};
use crate::{report, HostModel, Probe, RuleRef, Verdict};

/// How deep jumps may nest before the evaluator gives up (the kernel allows 16).
const MAX_DEPTH: usize = 32;

/// The fixed facts about the packet besides its source and destination port.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub family: Family,
    pub iface: Option<&'a Interface>,
    pub daddr: Option<u128>,
    /// The conntrack state rules see: `new` once conntrack has run (priority -200 of
    /// prerouting), `invalid` before it (ingress, raw), `None` at exactly -200.
    pub ct_state: Option<&'static str>,
}

/// Link-local addresses: Cloudflare never connects to them, so they are not destinations.
fn link_local(a: &std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(a) => a.is_link_local(),
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The ct state a base chain at `hook`/`prio` sees for a new connection's first packet.
fn ct_state_at(hook: Hook, prio: i64) -> Option<&'static str> {
    match hook {
        Hook::Ingress => Some("invalid"),
        Hook::Prerouting if prio < -200 => Some("invalid"),
        Hook::Prerouting if prio == -200 => None,
        _ => Some("new"),
    }
}

/// Where a piece of the region ends.
#[derive(Clone, Debug)]
enum Fate<'m> {
    Accept,
    Drop(&'m RuleRef),
    Unknown(&'m RuleRef, String),
    /// Fell off the end of the chain or hit `return`.
    Return,
}

type Pieces<'m> = Vec<(Vec<Bx>, Fate<'m>)>;

/// The outcome of one condition over a region.
enum CondRes {
    Const(bool),
    Unknown(String),
    Shape(Shape, bool),
}

pub(crate) fn evaluate(model: &HostModel, probe: &Probe) -> Verdict {
    let mut blocked: BTreeMap<(Family, RuleRef), Vec<Bx>> = BTreeMap::new();
    let mut unknown: BTreeMap<(Family, RuleRef, String), Vec<Bx>> = BTreeMap::new();
    let ports: Vec<(u16, u16)> = if probe.ports.is_empty() {
        vec![(0, u16::MAX)]
    } else {
        let mut p: Vec<u16> = probe.ports.clone();
        p.sort_unstable();
        p.dedup();
        p.into_iter().map(|p| (p, p)).collect()
    };
    for family in Family::ALL {
        let mut region: Vec<Bx> = Vec::new();
        for net in probe.ranges.iter_family(family) {
            for &p in &ports {
                region.push(Bx {
                    s: net_span(&net),
                    p,
                });
            }
        }
        if region.is_empty() {
            continue;
        }
        if let Some(reason) = &model.unreadable {
            let by = RuleRef {
                layer: "host".into(),
                table: String::new(),
                chain: String::new(),
                handle: None,
                rule: format!("the host's rules could not be read: {reason}"),
            };
            unknown
                .entry((family, by, reason.clone()))
                .or_default()
                .extend(region);
            continue;
        }
        let uses_daddr = model.uses_key(Key::Daddr);
        let ifaces = model.inbound(family);
        let mut ctxs: Vec<Ctx> = Vec::new();
        if ifaces.is_empty() {
            ctxs.push(Ctx {
                family,
                iface: None,
                daddr: None,
                ct_state: None,
            });
        }
        for iface in ifaces {
            let addrs: Vec<u128> = iface
                .addrs
                .iter()
                .filter(|a| a.is_ipv4() == (family == Family::Ipv4) && !link_local(a))
                .map(|a| crate::space::addr_value(*a))
                .collect();
            if !uses_daddr || addrs.is_empty() {
                ctxs.push(Ctx {
                    family,
                    iface: Some(iface),
                    daddr: None,
                    ct_state: None,
                });
            } else {
                for a in addrs {
                    ctxs.push(Ctx {
                        family,
                        iface: Some(iface),
                        daddr: Some(a),
                        ct_state: None,
                    });
                }
            }
        }
        for ctx in &ctxs {
            let mut cur = region.clone();
            for (table, chain) in model.base_chains(ctx) {
                if cur.is_empty() {
                    break;
                }
                let Some(base) = &chain.base else { continue };
                let ctx = Ctx {
                    ct_state: ct_state_at(base.hook, base.prio),
                    ..*ctx
                };
                let pieces = eval_chain(model, table, chain, cur, &ctx, 0);
                cur = Vec::new();
                for (bxs, fate) in pieces {
                    match fate {
                        Fate::Accept => cur.extend(bxs),
                        Fate::Return if !base.policy_drop => cur.extend(bxs),
                        Fate::Return => blocked
                            .entry((family, base.policy_ref.clone()))
                            .or_default()
                            .extend(bxs),
                        Fate::Drop(r) => {
                            blocked.entry((family, r.clone())).or_default().extend(bxs)
                        }
                        Fate::Unknown(r, e) => unknown
                            .entry((family, r.clone(), e))
                            .or_default()
                            .extend(bxs),
                    }
                }
            }
        }
    }
    let mut v = Verdict {
        reachable: false,
        checked: crate::Checked {
            ranges: probe.ranges.len(),
            ports: probe.ports.clone(),
        },
        blocked: Vec::new(),
        unknown: Vec::new(),
    };
    for ((family, by), bxs) in blocked {
        v.blocked.extend(report::findings(family, by, None, bxs));
    }
    for ((family, by, expr), bxs) in unknown {
        v.unknown
            .extend(report::findings(family, by, Some(expr), bxs));
    }
    v.reachable = v.blocked.is_empty() && v.unknown.is_empty();
    v
}

impl HostModel {
    /// The base chains a packet of `ctx` traverses, in order: ingress, prerouting, input,
    /// each by priority (ties: the order the tables were read).
    fn base_chains<'m>(&'m self, ctx: &Ctx) -> Vec<(&'m Table, &'m Chain)> {
        let mut out: Vec<(Hook, i64, usize, &Table, &Chain)> = Vec::new();
        let mut n = 0;
        for t in &self.tables {
            for c in &t.chains {
                let Some(b) = &c.base else { continue };
                n += 1;
                let applies = match b.hook {
                    Hook::Ingress => {
                        matches!(t.family, crate::model::TFam::Netdev | crate::model::TFam::Inet)
                            // Devices unknown: applied everywhere (a chain more can only block more).
                            && (b.devices.is_empty()
                                || ctx.iface.is_none_or(|i| b.devices.iter().any(|d| d == &i.name)))
                    }
                    Hook::Prerouting | Hook::Input => t.family.sees(ctx.family),
                    Hook::Other => false,
                };
                if applies {
                    out.push((b.hook, b.prio, n, t, c));
                }
            }
        }
        out.sort_by_key(|(h, p, n, _, _)| (*h, *p, *n));
        out.into_iter().map(|(_, _, _, t, c)| (t, c)).collect()
    }

    fn uses_key(&self, key: Key) -> bool {
        self.tables.iter().any(|t| {
            t.chains.iter().any(|c| {
                c.rules.iter().any(|r| {
                    r.conds
                        .iter()
                        .any(|cd| matches!(cd, Cond::M(m) if m.comps.iter().any(|c| c.key == key)))
                        || matches!(&r.action, Action::Vmap { comps, .. } if comps.iter().any(|c| c.key == key))
                })
            })
        }) || self.ipsets.values().any(|_| key == Key::Daddr)
    }
}

fn eval_chain<'m>(
    model: &'m HostModel,
    table: &'m Table,
    chain: &'m Chain,
    region: Vec<Bx>,
    ctx: &Ctx,
    depth: usize,
) -> Pieces<'m> {
    let mut out: Pieces = Vec::new();
    let mut rest = region;
    for rule in &chain.rules {
        if rest.is_empty() {
            break;
        }
        if matches!(rule.action, Action::Continue) && rule.unknown_stmt.is_none() {
            continue;
        }
        let mut cur = std::mem::take(&mut rest);
        let mut unknown: Option<String> = None;
        for cond in &rule.conds {
            if cur.is_empty() {
                break;
            }
            match eval_cond(model, table, cond, ctx) {
                CondRes::Const(true) => {}
                CondRes::Const(false) => {
                    rest.append(&mut cur);
                }
                CondRes::Unknown(e) => {
                    unknown.get_or_insert(e);
                }
                CondRes::Shape(shape, neg) => {
                    let (mut inside, mut outside) = shape.split(&cur);
                    if neg {
                        std::mem::swap(&mut inside, &mut outside);
                    }
                    rest.append(&mut outside);
                    cur = inside;
                }
            }
        }
        if cur.is_empty() {
            continue;
        }
        if let Some(e) = unknown.or_else(|| rule.unknown_stmt.clone()) {
            out.push((cur, Fate::Unknown(&rule.rref, e)));
            continue;
        }
        apply_action(
            model,
            table,
            &rule.action,
            &rule.rref,
            cur,
            ctx,
            depth,
            &mut out,
            &mut rest,
        );
    }
    if !rest.is_empty() {
        out.push((rest, Fate::Return));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn apply_action<'m>(
    model: &'m HostModel,
    table: &'m Table,
    action: &'m Action,
    rref: &'m RuleRef,
    cur: Vec<Bx>,
    ctx: &Ctx,
    depth: usize,
    out: &mut Pieces<'m>,
    rest: &mut Vec<Bx>,
) {
    match action {
        Action::Continue => rest.extend(cur),
        Action::Accept => out.push((cur, Fate::Accept)),
        Action::Drop => out.push((cur, Fate::Drop(rref))),
        Action::Return => out.push((cur, Fate::Return)),
        Action::Jump(target) | Action::Goto(target) => {
            let Some(callee) = table.chain(target) else {
                out.push((
                    cur,
                    Fate::Unknown(rref, format!("jump to a missing chain {target}")),
                ));
                return;
            };
            if depth >= MAX_DEPTH {
                out.push((cur, Fate::Unknown(rref, "jumps nested too deep".into())));
                return;
            }
            let is_jump = matches!(action, Action::Jump(_));
            for (bxs, fate) in eval_chain(model, table, callee, cur, ctx, depth + 1) {
                match fate {
                    Fate::Return if is_jump => rest.extend(bxs),
                    other => out.push((bxs, other)),
                }
            }
        }
        Action::Vmap { comps, map, text } => {
            let entries: Vec<(&Elem, &Action)> = match map {
                VmapRhs::Inline(v) => v.iter().map(|(e, a)| (e, a)).collect(),
                VmapRhs::Named(name) => match table.sets.get(name) {
                    Some(set) => match (&set.unknown, &set.verdicts) {
                        (None, Some(vs)) => set.elems.iter().zip(vs.iter()).collect(),
                        (Some(why), _) => {
                            out.push((cur, Fate::Unknown(rref, format!("{text}: {why}"))));
                            return;
                        }
                        (None, None) => {
                            out.push((
                                cur,
                                Fate::Unknown(
                                    rref,
                                    format!("{text}: @{name} is not a verdict map"),
                                ),
                            ));
                            return;
                        }
                    },
                    None => {
                        out.push((cur, Fate::Unknown(rref, format!("{text}: no map @{name}"))));
                        return;
                    }
                },
            };
            if let Some(g) = guard(comps, ctx) {
                if !g {
                    rest.extend(cur);
                    return;
                }
            }
            let mut cur = cur;
            for (elem, act) in entries {
                if cur.is_empty() {
                    break;
                }
                match elem_shape(comps, elem, ctx) {
                    ElemRes::No => {}
                    ElemRes::Unknown(e) => {
                        out.push((cur, Fate::Unknown(rref, format!("{text}: {e}"))));
                        return;
                    }
                    ElemRes::Box(b) => {
                        let shape = Shape::new(vec![b]);
                        let (inside, outside) = shape.split(&cur);
                        cur = outside;
                        if !inside.is_empty() {
                            apply_action(model, table, act, rref, inside, ctx, depth, out, rest);
                        }
                    }
                }
            }
            rest.extend(cur);
        }
    }
}

/// Implicit dependencies of the components: `Some(false)` when the packet cannot match.
fn guard(comps: &[Comp], ctx: &Ctx) -> Option<bool> {
    for c in comps {
        if c.fam.is_some_and(|f| f != ctx.family) {
            return Some(false);
        }
        if c.proto.is_some_and(|p| p != 6) {
            return Some(false);
        }
    }
    None
}

fn eval_cond(model: &HostModel, table: &Table, cond: &Cond, ctx: &Ctx) -> CondRes {
    match cond {
        Cond::Unknown(e) => CondRes::Unknown(e.clone()),
        Cond::M(m) => eval_match(model, table, m, ctx),
    }
}

fn eval_match(model: &HostModel, table: &Table, m: &Match, ctx: &Ctx) -> CondRes {
    if guard(&m.comps, ctx) == Some(false) {
        return CondRes::Const(false);
    }
    if m.comps.iter().any(|c| c.key == Key::FibSaddrOif) {
        return rpf(m, ctx);
    }
    let owned;
    let (comps, elems): (&[Comp], &[Elem]) = match &m.rhs {
        Rhs::Elems(e) => (&m.comps, e),
        Rhs::Set(name) => match table.sets.get(name) {
            Some(set) => {
                if let Some(why) = &set.unknown {
                    return CondRes::Unknown(format!("{}: {why}", m.text));
                }
                (&m.comps, &set.elems)
            }
            None => {
                return CondRes::Unknown(format!("{}: no set @{name} in {}", m.text, table.label()))
            }
        },
        Rhs::Ipset(name, dirs) => match model.ipsets.get(name) {
            Some(set) => {
                if let Some(why) = &set.unknown {
                    return CondRes::Unknown(format!("{}: {why}", m.text));
                }
                if set.family.is_some_and(|f| f != ctx.family) {
                    // iptables refuses a set of the other family; never matches.
                    return CondRes::Const(m.neg);
                }
                match crate::ipt::ipset_comps(set, dirs) {
                    Some(c) => {
                        owned = c;
                        (&owned[..], &set.elems)
                    }
                    None => {
                        return CondRes::Unknown(format!(
                            "{}: directions {} do not fit the set's type",
                            m.text,
                            dirs.join(",")
                        ))
                    }
                }
            }
            None => return CondRes::Unknown(format!("{}: no ipset {name} could be read", m.text)),
        },
    };
    let dimensional = comps
        .iter()
        .any(|c| matches!(c.key, Key::Saddr | Key::Dport));
    let mut boxes = Vec::new();
    for e in elems {
        match elem_shape(comps, e, ctx) {
            ElemRes::No => {}
            ElemRes::Unknown(why) => return CondRes::Unknown(format!("{}: {why}", m.text)),
            ElemRes::Box(b) => {
                if !dimensional {
                    return CondRes::Const(!m.neg);
                }
                boxes.push(b);
            }
        }
    }
    if !dimensional {
        return CondRes::Const(m.neg);
    }
    CondRes::Shape(Shape::new(boxes), m.neg)
}

/// `fib saddr [. mark] [. iif] oif missing|exists`: the sources the main table routes back
/// out of the inbound interface (with `iif`) exist; the others are missing.
fn rpf(m: &Match, ctx: &Ctx) -> CondRes {
    let Some(iface) = ctx.iface else {
        return CondRes::Unknown(format!("{}: the inbound interface (none known)", m.text));
    };
    let Rhs::Elems(elems) = &m.rhs else {
        return CondRes::Unknown(m.text.clone());
    };
    let [elem] = elems.as_slice() else {
        return CondRes::Unknown(m.text.clone());
    };
    let exists = match elem.as_slice() {
        [Atom::Bool(b)] => *b,
        [Atom::Str(s)] if s == "missing" => false,
        [Atom::Str(s)] if s == "exists" => true,
        _ => return CondRes::Unknown(m.text.clone()),
    };
    let max = crate::space::max_addr(ctx.family);
    let routed: Vec<Bx> = iface
        .routes
        .iter()
        .filter(|n| crate::Family::of(n) == ctx.family)
        .map(|n| Bx {
            s: net_span(n),
            p: (0, u16::MAX),
        })
        .filter(|b| b.s.1 <= max)
        .collect();
    // Matching `exists` = inside the routed shape; `missing` = outside it.
    CondRes::Shape(Shape::new(routed), m.neg == exists)
}

enum ElemRes {
    No,
    Unknown(String),
    Box(Bx),
}

/// Where one element matches: a box over the dimensions, or no/unknown from the scalars.
fn elem_shape(comps: &[Comp], elem: &Elem, ctx: &Ctx) -> ElemRes {
    if comps.len() != elem.len() {
        return ElemRes::Unknown("element does not fit the key".into());
    }
    let mut b = full(ctx.family);
    let mut unknown = None;
    for (c, a) in comps.iter().zip(elem) {
        match c.key {
            Key::Saddr => match a {
                Atom::Num(lo, hi) => {
                    let Some(i) = b.intersect(&Bx {
                        s: (*lo, *hi),
                        p: b.p,
                    }) else {
                        return ElemRes::No;
                    };
                    b = i;
                }
                _ => return ElemRes::Unknown(format!("address {a:?}")),
            },
            Key::Dport => match a {
                Atom::Num(lo, hi) => {
                    let lo = (*lo).min(u16::MAX as u128) as u16;
                    let hi = (*hi).min(u16::MAX as u128) as u16;
                    let Some(i) = b.intersect(&Bx {
                        s: b.s,
                        p: (lo, hi),
                    }) else {
                        return ElemRes::No;
                    };
                    b = i;
                }
                _ => return ElemRes::Unknown(format!("port {a:?}")),
            },
            _ => match scalar(c.key, a, ctx) {
                Some(true) => {}
                Some(false) => return ElemRes::No,
                None => {
                    unknown.get_or_insert_with(|| scalar_unknown(c.key));
                }
            },
        }
    }
    match unknown {
        Some(u) => ElemRes::Unknown(u),
        None => ElemRes::Box(b),
    }
}

fn scalar_unknown(key: Key) -> String {
    match key {
        Key::Daddr => "the destination address (no local address known)".into(),
        Key::Sport => "the source port (any)".into(),
        Key::Iif | Key::Iifname => "the inbound interface (none known)".into(),
        Key::CtState => {
            "ct state in a chain at priority -200, which runs alongside conntrack".into()
        }
        Key::FibSaddrOif => "the reverse-path lookup (no default route)".into(),
        other => format!("{other:?}"),
    }
}

/// Whether a fixed fact of the packet equals the atom; `None` when unknown.
fn scalar(key: Key, a: &Atom, ctx: &Ctx) -> Option<bool> {
    let num_in = |v: u128| match a {
        Atom::Num(lo, hi) => Some(*lo <= v && v <= *hi),
        _ => Some(false),
    };
    let str_is = |v: &str| match a {
        Atom::Str(s) => Some(s.eq_ignore_ascii_case(v)),
        _ => Some(false),
    };
    match key {
        Key::Daddr => num_in(ctx.daddr?),
        Key::Sport => match a {
            Atom::Num(lo, hi) if *lo == 0 && *hi >= u16::MAX as u128 => Some(true),
            _ => None,
        },
        Key::L4proto => match a {
            Atom::Num(..) => num_in(6),
            Atom::Str(_) => str_is("tcp"),
            Atom::Bool(_) => Some(false),
        },
        Key::Nfproto => match (a, ctx.family) {
            (Atom::Num(..), Family::Ipv4) => num_in(2),
            (Atom::Num(..), Family::Ipv6) => num_in(10),
            (_, Family::Ipv4) => str_is("ipv4"),
            (_, Family::Ipv6) => str_is("ipv6"),
        },
        Key::EtherProto => match (a, ctx.family) {
            (Atom::Num(..), Family::Ipv4) => num_in(0x0800),
            (Atom::Num(..), Family::Ipv6) => num_in(0x86dd),
            (_, Family::Ipv4) => str_is("ip"),
            (_, Family::Ipv6) => str_is("ip6"),
        },
        Key::Iif => {
            let i = ctx.iface?;
            match a {
                Atom::Num(..) => num_in(i.index as u128),
                _ => str_is(&i.name),
            }
        }
        Key::Iifname => {
            let i = ctx.iface?;
            match a {
                Atom::Str(pat) => Some(match pat.strip_suffix('*') {
                    Some(prefix) if !pat.ends_with("\\*") => i.name.starts_with(prefix),
                    _ => i.name == *pat,
                }),
                _ => Some(false),
            }
        }
        Key::CtState => str_is(ctx.ct_state?),
        Key::FibDaddrType => str_is("local"),
        Key::PktType => str_is("host"),
        Key::CtStatus => match a {
            // No status flag is set on a new connection's first packet (no NAT is modelled:
            // a nat statement before makes the packet unknown).
            Atom::Str(_) => ctx.ct_state.map(|_| false),
            _ => None,
        },
        Key::FibSaddrOif => None,
        // The SYN's flags under the mask.
        Key::TcpFlags(mask) => num_in((0x02 & mask) as u128),
        Key::Saddr | Key::Dport => None,
    }
}
