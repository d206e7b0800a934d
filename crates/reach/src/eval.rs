//! The pure evaluator: regions of (source × port) pushed through the base chains in order —
//! ingress and prerouting (where a nat chain may DNAT the connection), then either the input
//! hook (local delivery) or, for a connection DNAT'd to another host, the forward hook.

use std::collections::BTreeMap;

use cf_allow_diff::{Family, RangeSet};

use crate::model::{
    Action, Atom, Chain, Comp, Cond, Elem, Hook, Interface, Key, Match, NatTo, Rhs, Table, VmapRhs,
};
use crate::space::{full, net_span, Bx, Shape};
use crate::{report, HostModel, Probe, RuleRef, Verdict};

/// How deep jumps may nest before the evaluator gives up (the kernel allows 16).
const MAX_DEPTH: usize = 32;

/// The destination of a connection after a DNAT (or redirect) in prerouting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Xlat {
    /// The new destination address; `None` when it is not known (a redirect on an
    /// interface without an address of the family).
    pub daddr: Option<u128>,
    /// The new destination port; `None` = unchanged (the original port).
    pub dport: Option<u16>,
    /// True when the new destination is one of the host's addresses (delivered on input).
    pub local: bool,
}

/// The fixed facts about the packet besides its source and destination port.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub family: Family,
    pub iface: Option<&'a Interface>,
    /// The (original) destination address.
    pub daddr: Option<u128>,
    /// The conntrack state rules see: `new` once conntrack has run (priority -200 of
    /// prerouting), `invalid` before it (ingress, raw), `None` at exactly -200.
    pub ct_state: Option<&'static str>,
    /// The hook of the base chain being evaluated.
    pub hook: Hook,
    /// After a DNAT: where the connection goes now.
    pub xlat: Option<Xlat>,
    /// On the forward path: the device the route to the new destination goes out of.
    pub oif: Option<&'a Interface>,
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

/// The priority a base chain effectively runs at: nat chains run from the kernel's one nat
/// hook (prerouting -100, input 100), among themselves in their own priority order.
fn effective_prio(hook: Hook, prio: i64, nat: bool) -> i64 {
    match (nat, hook) {
        (true, Hook::Prerouting) => -100,
        (true, Hook::Input) => 100,
        _ => prio,
    }
}

/// Where a piece of the region ends.
#[derive(Clone, Debug)]
enum Fate<'m> {
    /// Accepted by this rule (`None`: by a verdict map entry without a rule of its own).
    Accept(Option<&'m RuleRef>),
    Drop(&'m RuleRef),
    Unknown(&'m RuleRef, String),
    /// Fell off the end of the chain or hit `return`.
    Return,
    /// DNAT'd (ends the nat base chain like an accept).
    Nat(&'m RuleRef, NatTo),
}

type Pieces<'m> = Vec<(Vec<Bx>, Fate<'m>)>;

/// The outcome of one condition over a region.
enum CondRes {
    Const(bool),
    Unknown(String),
    Shape(Shape, bool),
}

/// The rule that lets a piece through so far: the last explicit accept, else the last
/// accepting policy (`true` = explicit).
type By<'m> = Option<(&'m RuleRef, bool)>;

/// Part of the region on its way through the hooks, with what happened to it so far.
struct Stream<'m> {
    xlat: Option<Xlat>,
    by: By<'m>,
    bxs: Vec<Bx>,
}

/// What became of a region, per deciding rule.
#[derive(Default)]
struct Outcome<'m> {
    blocked: BTreeMap<RuleRef, Vec<Bx>>,
    unknown: BTreeMap<(RuleRef, String), Vec<Bx>>,
    /// Accepted by the whole path, by the rule that let it through.
    accepted: BTreeMap<RuleRef, Vec<Bx>>,
    _m: std::marker::PhantomData<&'m ()>,
}

/// A rule reference for what the host itself decides (no rule of any table).
fn host_ref(rule: String) -> RuleRef {
    RuleRef {
        layer: "host".into(),
        table: String::new(),
        chain: String::new(),
        handle: None,
        rule,
    }
}

/// `outsiders`: with lockdown, the sources evaluated as outsiders (`None`: every address
/// not in the probe's ranges).
pub(crate) fn evaluate(model: &HostModel, probe: &Probe, outsiders: Option<&RangeSet>) -> Verdict {
    let mut blocked: BTreeMap<(Family, RuleRef), Vec<Bx>> = BTreeMap::new();
    let mut unknown: BTreeMap<(Family, RuleRef, String), Vec<Bx>> = BTreeMap::new();
    let mut exposed: BTreeMap<(Family, RuleRef), Vec<Bx>> = BTreeMap::new();
    let ports: Vec<(u16, u16)> = if probe.ports.is_empty() {
        vec![(0, u16::MAX)]
    } else {
        let mut p: Vec<u16> = probe.ports.clone();
        p.sort_unstable();
        p.dedup();
        p.into_iter().map(|p| (p, p)).collect()
    };
    for family in Family::ALL {
        let mut region: Vec<Bx> = Vec::with_capacity(probe.ranges.len_of(family) * ports.len());
        for net in probe.ranges.iter_family(family) {
            for &p in &ports {
                region.push(Bx {
                    s: net_span(&net),
                    p,
                });
            }
        }
        // The outsiders: every other address of the family, as intervals.
        // (Only for a family the host has an address of on an inbound interface, when the
        // interfaces are known: nothing connects to a family the host does not speak.)
        let speaks = model.all_ifaces.is_empty()
            || model.inbound(family).iter().any(|i| {
                i.addrs
                    .iter()
                    .any(|a| a.is_ipv4() == (family == Family::Ipv4) && !link_local(a))
            });
        let outsiders: Vec<Bx> = if probe.lockdown && speaks && model.unreadable.is_none() {
            let spans: Vec<(u128, u128)> = match outsiders {
                Some(given) => given.iter_family(family).map(|n| net_span(&n)).collect(),
                None => {
                    let inside = probe.ranges.iter_family(family).map(|n| net_span(&n));
                    complement(family, inside.collect())
                }
            };
            spans
                .into_iter()
                .flat_map(|s| ports.iter().map(move |&p| Bx { s, p }))
                .collect()
        } else {
            Vec::new()
        };
        if region.is_empty() && outsiders.is_empty() {
            continue;
        }
        if let Some(reason) = &model.unreadable {
            let by = host_ref(format!("the host's rules could not be read: {reason}"));
            unknown
                .entry((family, by, reason.clone()))
                .or_default()
                .extend(region);
            continue;
        }
        let ctxs = contexts(model, family);
        for (i, ctx) in ctxs.iter().enumerate() {
            if !region.is_empty() {
                // The last context takes the region itself (a 100k-range region is 3.6 MB).
                let region = if i + 1 == ctxs.len() {
                    std::mem::take(&mut region)
                } else {
                    region.clone()
                };
                let out = run_path(model, ctx, region, false);
                for (r, bxs) in out.blocked {
                    blocked.entry((family, r)).or_default().extend(bxs);
                }
                for ((r, e), bxs) in out.unknown {
                    unknown.entry((family, r, e)).or_default().extend(bxs);
                }
            }
            if !outsiders.is_empty() {
                // An outsider accepted by the whole path is exposed; one whose fate the
                // engine cannot evaluate is not claimed either way.
                let out = run_path(model, ctx, outsiders.clone(), true);
                for (r, bxs) in out.accepted {
                    exposed.entry((family, r)).or_default().extend(bxs);
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
        exposed: Vec::new(),
        locked_down: probe.lockdown,
    };
    for ((family, by), bxs) in blocked {
        v.blocked.extend(report::findings(family, by, None, bxs));
    }
    for ((family, by, expr), bxs) in unknown {
        v.unknown
            .extend(report::findings(family, by, Some(expr), bxs));
    }
    for ((family, by), bxs) in exposed {
        v.exposed.extend(report::findings(family, by, None, bxs));
    }
    v.reachable = v.blocked.is_empty() && v.unknown.is_empty();
    v
}

/// The spans of `family` not covered by `spans`.
fn complement(family: Family, spans: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    let max = crate::space::max_addr(family);
    let merged = crate::space::merge_spans(spans, |a: u128| a.checked_add(1));
    let mut out = Vec::new();
    let mut next: Option<u128> = Some(0);
    for (lo, hi) in merged {
        if let Some(n) = next {
            if lo > n {
                out.push((n, lo - 1));
            }
        }
        next = hi.checked_add(1);
    }
    if let Some(n) = next {
        if n <= max {
            out.push((n, max));
        }
    }
    out
}

/// One context per inbound interface (and per destination address when a rule matches it).
fn contexts(model: &HostModel, family: Family) -> Vec<Ctx<'_>> {
    let uses_daddr = model.uses_key(Key::Daddr) || model.uses_key(Key::CtOrigDaddr);
    let ifaces = model.inbound(family);
    let base = Ctx {
        family,
        iface: None,
        daddr: None,
        ct_state: None,
        hook: Hook::Ingress,
        xlat: None,
        oif: None,
    };
    let mut ctxs: Vec<Ctx> = Vec::new();
    if ifaces.is_empty() {
        ctxs.push(base);
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
                iface: Some(iface),
                ..base
            });
        } else {
            for a in addrs {
                ctxs.push(Ctx {
                    iface: Some(iface),
                    daddr: Some(a),
                    ..base
                });
            }
        }
    }
    ctxs
}

/// Adds `bxs` to the stream with the same translation and accepting rule (or a new one).
fn push_stream<'m>(streams: &mut Vec<Stream<'m>>, xlat: Option<Xlat>, by: By<'m>, bxs: Vec<Bx>) {
    if bxs.is_empty() {
        return;
    }
    let same = |a: By, b: By| match (a, b) {
        (None, None) => true,
        (Some((x, e)), Some((y, f))) => std::ptr::eq(x, y) && e == f,
        _ => false,
    };
    match streams
        .iter_mut()
        .find(|s| s.xlat == xlat && same(s.by, by))
    {
        Some(s) => s.bxs.extend(bxs),
        None => streams.push(Stream { xlat, by, bxs }),
    }
}

/// Pushes every stream through the base chains of `hooks` (ingress and prerouting, input, or
/// forward), in order; returns the streams still accepted at the end.
fn run_hooks<'m>(
    model: &'m HostModel,
    ctx: &Ctx<'m>,
    hooks: &[Hook],
    mut streams: Vec<Stream<'m>>,
    track_by: bool,
    out: &mut Outcome<'m>,
) -> Vec<Stream<'m>> {
    for (table, chain) in model.base_chains(ctx, hooks) {
        if streams.is_empty() {
            break;
        }
        let Some(base) = &chain.base else { continue };
        let mut next: Vec<Stream> = Vec::new();
        for stream in streams {
            // A connection already DNAT'd skips the remaining nat chains of prerouting.
            if base.nat && base.hook == Hook::Prerouting && stream.xlat.is_some() {
                push_stream(&mut next, stream.xlat, stream.by, stream.bxs);
                continue;
            }
            let cctx = Ctx {
                ct_state: ct_state_at(base.hook, effective_prio(base.hook, base.prio, base.nat)),
                hook: base.hook,
                xlat: stream.xlat,
                ..*ctx
            };
            let pieces = eval_chain(model, table, chain, stream.bxs, &cctx, 0);
            for (bxs, fate) in pieces {
                match fate {
                    Fate::Accept(r) => {
                        let by = match (track_by, r) {
                            (false, _) => None,
                            (true, Some(r)) => Some((r, true)),
                            (true, None) => stream.by,
                        };
                        push_stream(&mut next, stream.xlat, by, bxs);
                    }
                    Fate::Return if !base.policy_drop => {
                        // A nat chain's policy never names what lets a packet through
                        // when a filter chain's does.
                        let by = match stream.by {
                            _ if !track_by => None,
                            Some((r, true)) => Some((r, true)),
                            p if base.nat => p,
                            _ => Some((&base.policy_ref, false)),
                        };
                        push_stream(&mut next, stream.xlat, by, bxs);
                    }
                    Fate::Return => out
                        .blocked
                        .entry(base.policy_ref.clone())
                        .or_default()
                        .extend(bxs),
                    Fate::Drop(r) => out.blocked.entry(r.clone()).or_default().extend(bxs),
                    Fate::Unknown(r, e) => {
                        out.unknown.entry((r.clone(), e)).or_default().extend(bxs)
                    }
                    Fate::Nat(r, to) => match resolve(model, &cctx, &to) {
                        // What lets the connection through is decided after the DNAT; the
                        // nat rule is kept (not explicit) for `forwarded`.
                        Ok(x) => {
                            let by = if track_by { Some((r, false)) } else { None };
                            push_stream(&mut next, Some(x), by, bxs);
                        }
                        Err(e) => out.unknown.entry((r.clone(), e)).or_default().extend(bxs),
                    },
                }
            }
        }
        streams = next;
    }
    streams
}

/// Where a DNAT sends the packet of `ctx`.
fn resolve(model: &HostModel, ctx: &Ctx, to: &NatTo) -> Result<Xlat, String> {
    if to.fam.is_some_and(|f| f != ctx.family) {
        return Err("a nat statement of the other address family".into());
    }
    match to.addr {
        // redirect: to the primary address of the inbound interface.
        None => {
            let daddr = ctx.iface.and_then(|i| {
                i.addrs
                    .iter()
                    .find(|a| a.is_ipv4() == (ctx.family == Family::Ipv4))
                    .map(|a| crate::space::addr_value(*a))
            });
            Ok(Xlat {
                daddr,
                dport: to.port,
                local: true,
            })
        }
        Some(a) => Ok(Xlat {
            daddr: Some(a),
            dport: to.port,
            local: model.is_local(ctx.family, a),
        }),
    }
}

/// The whole path of `region` arriving in `ctx`.
fn run_path<'m>(
    model: &'m HostModel,
    ctx: &Ctx<'m>,
    region: Vec<Bx>,
    track_by: bool,
) -> Outcome<'m> {
    let mut out = Outcome::default();
    let start = vec![Stream {
        xlat: None,
        by: None,
        bxs: region,
    }];
    let after_pre = run_hooks(
        model,
        ctx,
        &[Hook::Ingress, Hook::Prerouting],
        start,
        track_by,
        &mut out,
    );
    let (local, forwarded): (Vec<Stream>, Vec<Stream>) = after_pre
        .into_iter()
        .partition(|s| s.xlat.is_none_or(|x| x.local));
    let mut done = run_hooks(model, ctx, &[Hook::Input], local, track_by, &mut out);
    for s in forwarded {
        let Some(x) = s.xlat else { continue };
        let forwarding = match ctx.family {
            Family::Ipv4 => model.forwarding_v4,
            Family::Ipv6 => model.forwarding_v6,
        };
        let sysctl = match ctx.family {
            Family::Ipv4 => "net.ipv4.ip_forward",
            Family::Ipv6 => "net.ipv6.conf.all.forwarding",
        };
        match forwarding {
            Some(true) => {}
            Some(false) => {
                out.blocked
                    .entry(host_ref(format!(
                        "{sysctl} = 0: the kernel does not forward DNAT'd connections"
                    )))
                    .or_default()
                    .extend(s.bxs);
                continue;
            }
            None => {
                out.unknown
                    .entry((
                        host_ref(format!("{sysctl} could not be read")),
                        format!("whether the kernel forwards DNAT'd connections ({sysctl})"),
                    ))
                    .or_default()
                    .extend(s.bxs);
                continue;
            }
        }
        let Some(daddr) = x.daddr else { continue };
        let Some(oif) = model.route_out(ctx.family, daddr) else {
            out.blocked
                .entry(host_ref(format!(
                    "no route to {} (the DNAT's destination)",
                    crate::space::show_addr(ctx.family, daddr)
                )))
                .or_default()
                .extend(s.bxs);
            continue;
        };
        let fctx = Ctx {
            oif: Some(oif),
            ..*ctx
        };
        done.extend(run_hooks(
            model,
            &fctx,
            &[Hook::Forward],
            vec![s],
            track_by,
            &mut out,
        ));
    }
    for s in done {
        let by = match s.by {
            Some((r, _)) => r.clone(),
            None => host_ref("no base chain on the path: nothing filters these packets".into()),
        };
        out.accepted.entry(by).or_default().extend(s.bxs);
    }
    out
}

impl HostModel {
    /// The base chains of `hooks` a packet of `ctx` traverses, in order: by hook, then by
    /// (effective) priority (ties: the order the tables were read).
    fn base_chains<'m>(&'m self, ctx: &Ctx, hooks: &[Hook]) -> Vec<(&'m Table, &'m Chain)> {
        let mut out: Vec<(Hook, i64, i64, usize, &Table, &Chain)> = Vec::new();
        let mut n = 0;
        for t in &self.tables {
            for c in &t.chains {
                let Some(b) = &c.base else { continue };
                n += 1;
                if !hooks.contains(&b.hook) {
                    continue;
                }
                let applies = match b.hook {
                    Hook::Ingress => {
                        matches!(t.family, crate::model::TFam::Netdev | crate::model::TFam::Inet)
                            // Devices unknown: applied everywhere (a chain more can only block more).
                            && (b.devices.is_empty()
                                || ctx.iface.is_none_or(|i| b.devices.iter().any(|d| d == &i.name)))
                    }
                    Hook::Prerouting | Hook::Input | Hook::Forward => t.family.sees(ctx.family),
                    Hook::Other => false,
                };
                if applies {
                    out.push((
                        b.hook,
                        effective_prio(b.hook, b.prio, b.nat),
                        b.prio,
                        n,
                        t,
                        c,
                    ));
                }
            }
        }
        out.sort_by_key(|(h, e, p, n, _, _)| (*h, *e, *p, *n));
        out.into_iter().map(|(_, _, _, _, t, c)| (t, c)).collect()
    }

    /// True when `addr` is one of the host's own addresses.
    fn is_local(&self, family: Family, addr: u128) -> bool {
        self.all_ifaces.iter().any(|i| {
            i.addrs.iter().any(|a| {
                a.is_ipv4() == (family == Family::Ipv4) && crate::space::addr_value(*a) == addr
            })
        })
    }

    /// The interface the main table routes `addr` out of (longest prefix).
    fn route_out(&self, family: Family, addr: u128) -> Option<&Interface> {
        let mut best: Option<(u8, &Interface)> = None;
        for i in &self.all_ifaces {
            for r in &i.routes {
                if Family::of(r) != family {
                    continue;
                }
                let (lo, hi) = net_span(r);
                if lo <= addr && addr <= hi && best.is_none_or(|(l, _)| r.prefix_len() > l) {
                    best = Some((r.prefix_len(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// True when every lookup into the named nft set `name` of the table `family table`
    /// (rule matches and verdict maps) matches the packet's source address alone: then
    /// only the set's elements that hold a packet's source decide that packet's fate.
    pub fn looks_up_sources_only(&self, family: &str, table: &str, name: &str) -> bool {
        let family = crate::model::TFam::parse(family);
        let only_saddr = |comps: &[Comp]| matches!(comps, [c] if c.key == Key::Saddr);
        self.tables
            .iter()
            .filter(|t| t.name == table && t.family == family)
            .flat_map(|t| t.chains.iter())
            .flat_map(|c| c.rules.iter())
            .all(|r| {
                let conds_ok = r.conds.iter().all(|cd| match cd {
                    Cond::M(m) => {
                        !matches!(&m.rhs, Rhs::Set(n) if n == name) || only_saddr(&m.comps)
                    }
                    _ => true,
                });
                let vmap_ok = match &r.action {
                    Action::Vmap {
                        comps,
                        map: VmapRhs::Named(n),
                        ..
                    } if n == name => only_saddr(comps),
                    _ => true,
                };
                conds_ok && vmap_ok
            })
    }

    /// True when every rule that matches the ipset `name` matches it on the packet's source
    /// alone (`--match-set NAME src`), as [`HostModel::looks_up_sources_only`] for nft sets.
    pub fn matches_ipset_sources_only(&self, name: &str) -> bool {
        crate::model::ipset_matches(&self.tables)
            .filter(|(n, _)| *n == name)
            .all(|(_, dirs)| matches!(dirs, [d] if d == "src"))
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
        Action::Accept => out.push((cur, Fate::Accept(Some(rref)))),
        // An inet table's nat statement of the other family does nothing to this packet
        // (the kernel's nft_nat_inet_eval): the rule goes on like one without a verdict.
        Action::Nat(to) if to.fam.is_some_and(|f| f != ctx.family) => rest.extend(cur),
        Action::Nat(to) if ctx.hook == Hook::Prerouting && ctx.xlat.is_none() => {
            out.push((cur, Fate::Nat(rref, *to)))
        }
        Action::Nat(_) => out.push((
            cur,
            Fate::Unknown(rref, "a nat statement outside prerouting".into()),
        )),
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
        .any(|c| matches!(c.key, Key::Saddr | Key::Dport | Key::CtOrigDport));
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
            // After a DNAT that changed the port, `tcp dport` is that port for every piece.
            Key::Dport if ctx.xlat.is_some_and(|x| x.dport.is_some()) => {
                let port = ctx.xlat.and_then(|x| x.dport).unwrap_or(0) as u128;
                match a {
                    Atom::Num(lo, hi) if *lo <= port && port <= *hi => {}
                    Atom::Num(..) => return ElemRes::No,
                    _ => return ElemRes::Unknown(format!("port {a:?}")),
                }
            }
            // The original destination port is the probe's port dimension.
            Key::Dport | Key::CtOrigDport => match a {
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
        Key::Oif | Key::Oifname => "the outbound interface (only known on the forward path)".into(),
        Key::CtOrigDaddr => "the original destination address (no local address known)".into(),
        Key::CtState => {
            "ct state in a chain at priority -200, which runs alongside conntrack".into()
        }
        Key::FibSaddrOif => "the reverse-path lookup (no default route)".into(),
        other => format!("{other:?}"),
    }
}

/// `meta iif`/`oif`: the device by index or name.
fn device_is(index: u32, name: &str, a: &Atom) -> Option<bool> {
    Some(match a {
        Atom::Num(lo, hi) => *lo <= index as u128 && index as u128 <= *hi,
        Atom::Str(s) => !name.is_empty() && s.eq_ignore_ascii_case(name),
        Atom::Bool(_) => false,
    })
}

/// `meta iifname`/`oifname`, iptables `-i`/`-o`: the device's name (`*` wildcard).
fn device_name_is(name: &str, a: &Atom) -> Option<bool> {
    match a {
        Atom::Str(pat) => Some(match pat.strip_suffix('*') {
            Some(prefix) if !pat.ends_with("\\*") => name.starts_with(prefix),
            _ => name == *pat,
        }),
        _ => Some(false),
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
        // After a DNAT, the destination is the new one.
        Key::Daddr => match ctx.xlat {
            Some(x) => num_in(x.daddr?),
            None => num_in(ctx.daddr?),
        },
        Key::CtOrigDaddr => num_in(ctx.daddr?),
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
        Key::Iif => ctx.iface.and_then(|i| device_is(i.index, &i.name, a)),
        Key::Iifname => ctx.iface.and_then(|i| device_name_is(&i.name, a)),
        // iptables' virtual states DNAT/SNAT (`--ctstate DNAT`): the connection's NAT.
        Key::CtState => {
            let state = ctx.ct_state?;
            match a {
                Atom::Str(s) if s.eq_ignore_ascii_case("dnat") => Some(ctx.xlat.is_some()),
                Atom::Str(s) if s.eq_ignore_ascii_case("snat") => Some(false),
                _ => str_is(state),
            }
        }
        Key::FibDaddrType => match ctx.xlat {
            Some(x) if !x.local => str_is("unicast"),
            _ => str_is("local"),
        },
        Key::PktType => str_is("host"),
        Key::CtStatus => match a {
            // A new connection's first packet has no status flag but `dnat` once a nat
            // chain DNAT'd it (before conntrack: no conntrack entry at all).
            Atom::Str(s) => {
                ctx.ct_state?;
                Some(s.eq_ignore_ascii_case("dnat") && ctx.xlat.is_some())
            }
            _ => None,
        },
        // The SYN opens the connection: the original direction.
        Key::CtDirection => {
            ctx.ct_state?;
            str_is("original")
        }
        // Before the routing decision's output (prerouting, input) there is no output
        // device: the kernel reads index 0 and the empty name (nft_meta_store_ifindex/
        // _ifname), so `oifname != "x"` matches there. On the forward path an output
        // device the engine cannot name stays unknown.
        Key::Oif => match ctx.oif {
            Some(i) => device_is(i.index, &i.name, a),
            None if ctx.hook != Hook::Forward => device_is(0, "", a),
            None => None,
        },
        Key::Oifname => match ctx.oif {
            Some(i) => device_name_is(&i.name, a),
            None if ctx.hook != Hook::Forward => device_name_is("", a),
            None => None,
        },
        Key::FibSaddrOif => None,
        // The SYN's flags under the mask.
        Key::TcpFlags(mask) => num_in((0x02 & mask) as u128),
        Key::Saddr | Key::Dport | Key::CtOrigDport => None,
    }
}

/// The ports prerouting DNATs, for [`HostModel::forwarded`].
pub(crate) fn forwarded(model: &HostModel, ports: &[u16]) -> Vec<crate::Forwarded> {
    if model.unreadable.is_some()
        || !model.tables.iter().any(|t| {
            t.chains
                .iter()
                .any(|c| c.rules.iter().any(|r| matches!(r.action, Action::Nat(_))))
        })
    {
        return Vec::new();
    }
    let spans: Vec<(u16, u16)> = if ports.is_empty() {
        vec![(0, u16::MAX)]
    } else {
        ports.iter().map(|&p| (p, p)).collect()
    };
    let mut out: Vec<crate::Forwarded> = Vec::new();
    for family in Family::ALL {
        let region: Vec<Bx> = spans
            .iter()
            .map(|&p| Bx {
                s: (0, crate::space::max_addr(family)),
                p,
            })
            .collect();
        for ctx in contexts(model, family) {
            let mut sink = Outcome::default();
            let streams = run_hooks(
                model,
                &ctx,
                &[Hook::Ingress, Hook::Prerouting],
                vec![Stream {
                    xlat: None,
                    by: None,
                    bxs: region.clone(),
                }],
                true,
                &mut sink,
            );
            for s in streams {
                let (Some(x), Some((by, _))) = (s.xlat, s.by) else {
                    continue;
                };
                let mut seen: Vec<u16> = Vec::new();
                for b in &s.bxs {
                    // Every port of the piece (bounded: a DNAT of a whole range is named once
                    // per port only for the configured ports).
                    let last = if ports.is_empty() { b.p.0 } else { b.p.1 };
                    for port in b.p.0..=last {
                        if seen.contains(&port) || (!ports.is_empty() && !ports.contains(&port)) {
                            continue;
                        }
                        seen.push(port);
                        let to_port = x.dport.unwrap_or(port);
                        let to = match (x.local, x.daddr) {
                            (true, _) => format!("local port {to_port}"),
                            (false, Some(a)) => match family {
                                Family::Ipv4 => {
                                    format!("{}:{to_port}", crate::space::show_addr(family, a))
                                }
                                Family::Ipv6 => {
                                    format!("[{}]:{to_port}", crate::space::show_addr(family, a))
                                }
                            },
                            (false, None) => format!("port {to_port}"),
                        };
                        let f = crate::Forwarded {
                            family,
                            port,
                            to,
                            local: x.local,
                            by: by.clone(),
                        };
                        if !out.contains(&f) {
                            out.push(f);
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (a.port, a.family, &a.to).cmp(&(b.port, b.family, &b.to)));
    out
}
