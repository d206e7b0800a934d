//! The reachability verdict in the binary: the probe of the desired list, where each backend
//! puts its accept (for the dry-run projection and detection), and fixes spelled in cf-allow's
//! own config keys — proven by projection where cf-allow can project them.

use cf_allow_diff::{Family, Placement, RangeSet};
use cf_allow_reach::{
    CfLayer, Finding, HostModel, KnownIpset, KnownSet, Network, Probe, ReadOptions, RuleLayer,
    Verdict,
};
use serde_json::Value;

use crate::backends::BackendKind;
use crate::config::Config;

/// The question for `ranges` on the config's ports.
pub fn probe(ranges: &RangeSet, config: &Config) -> Probe {
    let mut ports: Vec<u16> = config.ports.iter().map(|p| p.0).collect();
    ports.sort_unstable();
    ports.dedup();
    Probe {
        ranges: ranges.clone(),
        ports,
        lockdown: false,
    }
}

/// True when the backend at `placement` locks its ports down (drops every other source).
pub fn placement_lockdown(placement: &Placement) -> bool {
    match placement {
        Placement::NftOwnChain { lockdown, .. }
        | Placement::NftChainTop { lockdown, .. }
        | Placement::IptablesJump { lockdown, .. } => *lockdown,
        Placement::IptablesChainTop { .. } | Placement::ChainEnds { .. } => false,
    }
}

/// The configured lockdown of the backend `kind` (for the host as it is, where no placement
/// is projected; the same setting the backend's placement carries).
pub fn config_lockdown(kind: BackendKind, config: &Config) -> bool {
    match kind {
        BackendKind::Nftables => config.nftables.lockdown,
        BackendKind::Iptables => config.iptables.lockdown,
        BackendKind::Firewalld => config.firewalld.lockdown,
        _ => false,
    }
}

/// The chain a hook of the iptables backend jumps to: `CF-ALLOW-DOCKER` from DOCKER-USER
/// (matched by the original destination port), `CF-ALLOW` from the others.
fn iptables_target(hook: &str, chain: &str) -> (String, bool) {
    if hook == "DOCKER-USER" {
        (format!("{chain}-DOCKER"), true)
    } else {
        (chain.to_owned(), false)
    }
}

/// How the config says to read the host.
fn read_options(config: &Config, all_ipsets: bool) -> ReadOptions {
    ReadOptions {
        interfaces: config.reachability.interfaces.as_ref().map(|i| i.0.clone()),
        all_ipsets,
        known_sets: Vec::new(),
        known_ipsets: Vec::new(),
    }
}

/// Reads the host's input path once (never fails: an unreadable host gives a model that
/// answers `unknown` with the reason).
pub fn read(config: &Config) -> HostModel {
    read_model(&read_options(config, false), &Network::read())
}

/// [`read`], also reading the ipsets no rule references (doctor's block lists).
pub fn read_all_sets(config: &Config) -> HostModel {
    read_model(&read_options(config, true), &Network::read())
}

/// [`read`] with the interfaces, routes and forwarding already read in `network`.
fn read_model(opts: &ReadOptions, network: &Network) -> HostModel {
    let model = HostModel::read_with(opts, network);
    if let Some(reason) = model.unreadable_reason() {
        tracing::debug!("reachability: the host's rules cannot be read: {reason}");
    }
    for note in model.notes() {
        tracing::debug!("reachability: {note}");
    }
    model
}

/// The host as it is, under the nftables backend: when the generation record of cf-allow's
/// last commit describes the ruleset of this moment, cf-allow's own sets are taken from it
/// and the rest is read without their elements (the read then costs the same at 22 or
/// 100,000 ranges). The generation is read again afterwards; if anything was committed in
/// between, the host is read again in full.
///
/// `only`: cf-allow's sets taken to hold only these ranges, for a verdict that evaluates no
/// source outside `only` and the ranges they lost (see [`HostModel::evaluate_change`]):
/// such sources match the sets as they would the whole sets, and the model is built without
/// their 100k elements.
fn read_now_nftables(
    opts: ReadOptions,
    network: &Network,
    config: &Config,
    only: Option<&RangeSet>,
) -> HostModel {
    read_now_nftables_with(opts, network, config, only).0
}

/// [`read_now_nftables`], and the sets (family, table, name) it took to hold only `only`
/// (none when it could not take cf-allow's sets from the record).
fn read_now_nftables_with(
    mut opts: ReadOptions,
    network: &Network,
    config: &Config,
    only: Option<&RangeSet>,
) -> (HostModel, Vec<(String, String, String)>) {
    let record = config
        .state_dir
        .join(crate::backends::NFTABLES_GENERATION_FILE);
    let held = cf_allow_nftables::ruleset_stamp().ok().and_then(|stamp| {
        let sets = cf_allow_nftables::held_sets(&config.nftables, &record, &stamp)?;
        Some((stamp, sets))
    });
    let Some((stamp, sets)) = held else {
        return (read_model(&opts, network), Vec::new());
    };
    opts.known_sets = sets
        .into_iter()
        .map(|s| KnownSet {
            ranges: match only {
                Some(only) => only
                    .iter_family(s.key)
                    .map(|net| (net.network(), net.broadcast()))
                    .collect(),
                None => s.ranges,
            },
            family: s.family,
            table: s.table,
            name: s.name,
        })
        .collect();
    let model = read_model(&opts, network);
    match cf_allow_nftables::ruleset_stamp() {
        Ok(after) if after == stamp => {
            tracing::debug!(
                "reachability: cf-allow's sets taken from {} (generation {})",
                record.display(),
                stamp.generation
            );
            let restricted = match only {
                Some(_) => opts
                    .known_sets
                    .iter()
                    .map(|k| (k.family.clone(), k.table.clone(), k.name.clone()))
                    .collect(),
                None => Vec::new(),
            };
            (model, restricted)
        }
        _ => {
            opts.known_sets.clear();
            (read_model(&opts, network), Vec::new())
        }
    }
}

/// `opts` with cf-allow's two ipsets known to hold `held` (see [`State::Synced`]): ipset has
/// no generation id to prove it, but right after the sync under cf-allow's lock these are
/// the members the sets were just found with or set to, as exact as a second `ipset save` a
/// few milliseconds later would be.
fn with_own_ipsets(mut opts: ReadOptions, held: &RangeSet) -> ReadOptions {
    opts.known_ipsets = Family::ALL
        .iter()
        .map(|&family| KnownIpset {
            name: cf_allow_iptables::ipset_name(family).to_owned(),
            family,
            ranges: held
                .iter_family(family)
                .map(|net| (net.network(), net.broadcast()))
                .collect(),
        })
        .collect();
    opts
}

/// The front end of an iptables rule: x_tables (iptables-legacy) or nf_tables.
fn rule_layer(legacy: bool) -> RuleLayer {
    if legacy {
        RuleLayer::IptablesLegacy
    } else {
        RuleLayer::Nftables
    }
}

/// What a backend placed at `placement` installs for `probe`, in the engine's terms.
pub fn layers(placement: &Placement, probe: &Probe) -> Vec<CfLayer> {
    let ranges = probe.ranges.clone();
    let ports = probe.ports.clone();
    let iptables =
        |legacy: bool, chain: &str, replaces: Option<&str>, lockdown: bool, dnat: bool| {
            ["ip", "ip6"].map(|family| CfLayer::FirstRule {
                layer: rule_layer(legacy),
                family: family.to_owned(),
                table: "filter".to_owned(),
                chain: chain.to_owned(),
                ranges: ranges.clone(),
                ports: ports.clone(),
                replaces_jump_to: replaces.map(str::to_owned),
                lockdown,
                dnat,
            })
        };
    match placement {
        Placement::NftOwnChain {
            table,
            priority,
            lockdown,
            forward,
            ..
        } => vec![CfLayer::OwnTable {
            family: "inet".to_owned(),
            table: table.clone(),
            priority: i64::from(*priority),
            ranges,
            ports,
            lockdown: *lockdown,
            forward: forward.clone(),
        }],
        Placement::NftChainTop {
            family,
            table,
            chain,
            lockdown,
            forward,
        } => {
            let mut out = vec![CfLayer::FirstRule {
                layer: RuleLayer::Nftables,
                family: family.clone(),
                table: table.clone(),
                chain: chain.clone(),
                ranges: ranges.clone(),
                ports: ports.clone(),
                replaces_jump_to: None,
                lockdown: *lockdown,
                dnat: false,
            }];
            if let Some(fwd) = forward {
                out.push(CfLayer::FirstRule {
                    layer: RuleLayer::Nftables,
                    family: family.clone(),
                    table: table.clone(),
                    chain: fwd.clone(),
                    ranges,
                    ports,
                    replaces_jump_to: None,
                    lockdown: *lockdown,
                    dnat: true,
                });
            }
            out
        }
        Placement::IptablesJump {
            legacy,
            chain,
            hooks,
            lockdown,
        } => hooks
            .iter()
            .flat_map(|hook| {
                let (own, dnat) = iptables_target(hook, chain);
                iptables(*legacy, hook, Some(&own), *lockdown, dnat)
            })
            .collect(),
        Placement::IptablesChainTop { legacy, chain } => {
            iptables(*legacy, chain, None, false, false).to_vec()
        }
        Placement::ChainEnds { chains } => chains
            .iter()
            .map(|end| CfLayer::LastRule {
                layer: rule_layer(end.legacy),
                family: end.family.clone(),
                table: end.table.clone(),
                chain: end.chain.clone(),
                ranges: ranges.clone(),
                ports: ports.clone(),
            })
            .collect(),
    }
}

/// `model` without the accepts that cf-allow's nftables own table and iptables jumps (both
/// APIs) hold now, so that a candidate backend is judged on its own rules alone — not helped
/// by what another backend installed on an earlier run. (An empty own table and a jump-free
/// hook chain with policy accept decide nothing.)
pub fn without_own_rules(model: &HostModel, config: &Config) -> HostModel {
    let none = RangeSet::default();
    let mut layers = vec![CfLayer::OwnTable {
        family: "inet".to_owned(),
        table: config.nftables.table.clone(),
        priority: 0,
        ranges: none.clone(),
        ports: Vec::new(),
        lockdown: false,
        forward: None,
    }];
    for layer in [RuleLayer::Nftables, RuleLayer::IptablesLegacy] {
        for family in ["ip", "ip6"] {
            for hook in &config.iptables.hooks {
                let (own, _) = iptables_target(hook, &config.iptables.chain);
                layers.push(CfLayer::FirstRule {
                    layer,
                    family: family.to_owned(),
                    table: "filter".to_owned(),
                    chain: hook.clone(),
                    ranges: none.clone(),
                    ports: Vec::new(),
                    replaces_jump_to: Some(own),
                    lockdown: false,
                    dnat: false,
                });
            }
        }
    }
    model.with_layers(&layers)
}

/// `model` as it would be once a backend placed at `placement` applied `probe`'s ranges.
pub fn project(model: &HostModel, placement: &Placement, probe: &Probe) -> HostModel {
    model.with_layers(&layers(placement, probe))
}

/// The verdict and its warning lines (one per deciding rule, each with a fix).
pub struct Report {
    /// The engine's answer.
    pub verdict: Verdict,
    /// One line per deciding rule.
    pub warnings: Vec<String>,
}

impl Report {
    /// The `reachability` JSON object.
    pub fn json(&self) -> Value {
        self.verdict.to_json()
    }

    /// True when Cloudflare gets through and, with lockdown, no other source does: what
    /// `sync` (exit 3) and `status --exit-code` (exit 2) judge.
    pub fn ok(&self) -> bool {
        self.verdict.reachable && self.verdict.exposed.is_empty()
    }

    /// Logs each warning line.
    pub fn log(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }

    /// One line for humans: what was checked and whether it gets through.
    pub fn summary(&self) -> String {
        let checked = &self.verdict.checked;
        let ports = if checked.ports.is_empty() {
            "every TCP port".to_owned()
        } else {
            format!(
                "TCP {}",
                checked
                    .ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let what = format!("{} ranges on {ports}", checked.ranges);
        if self.verdict.reachable && !self.verdict.exposed.is_empty() {
            format!("Cloudflare gets through ({what}), but lockdown is NOT effective: sources outside the list get through too")
        } else if self.verdict.reachable {
            format!("Cloudflare gets through ({what})")
        } else if self.verdict.blocked.is_empty() {
            format!("UNKNOWN whether Cloudflare gets through ({what})")
        } else {
            format!("Cloudflare is BLOCKED ({what})")
        }
    }
}

/// What a sync changed, when its backend committed only its own sets' elements on top of
/// the generation it read ([`cf_allow_diff::Backend::elements_committed`]): a clean verdict
/// recorded for that generation and the sets' old contents is carried over by evaluating
/// only the changed ranges.
#[derive(Clone, Copy)]
pub struct Applied<'a> {
    /// The ruleset generation the change was committed on (nftables: the next is the one
    /// after its batch); `None` in ipset mode, whose change commits nothing to nf_tables:
    /// the generation then must not have moved since the verdict was recorded.
    pub from: Option<u32>,
    /// What cf-allow's sets held before.
    pub before: &'a RangeSet,
    pub added: &'a RangeSet,
    pub removed: &'a RangeSet,
}

/// Which state a verdict judges.
pub enum State<'a> {
    /// The host as it is now (for `status`), with the placement a sync would install when
    /// the sync has something to do (so that a fix can say `cf-allow sync` where that gets
    /// Cloudflare past the deciding rule).
    Now(Option<&'a Placement>),
    /// The host as it is right after a sync that left cf-allow's own sets holding exactly
    /// these ranges (applied, or found in sync): in ipset mode the verdict takes the members
    /// of cf-allow's ipsets from here instead of saving them again.
    Synced(&'a RangeSet, Option<Applied<'a>>),
    /// The host once a backend at this placement applied the ranges (`sync --dry-run`);
    /// `None` when the backend cannot say, and the current state is judged.
    Projected(Option<&'a Placement>),
}

/// The verdict for `ranges` on the config's ports in `state`; `None` when
/// `reachability.check` is off. Logs how long reading and evaluating took (`-v`).
pub fn verdict(
    ranges: &RangeSet,
    kind: BackendKind,
    state: State<'_>,
    config: &Config,
) -> Option<Report> {
    if !config.reachability.check {
        tracing::debug!("reachability: not checked (reachability.check is off)");
        return None;
    }
    let started = std::time::Instant::now();
    // With lockdown, the outsiders are evaluated too (`exposed`).
    let lockdown = match &state {
        State::Projected(Some(placement)) => placement_lockdown(placement),
        _ => config_lockdown(kind, config),
    };
    let probe = Probe {
        lockdown,
        ..probe(ranges, config)
    };
    let opts = read_options(config, false);
    // The host as it is: the last verdict is reused while nothing it depends on changed.
    let network = Network::read();
    // In ipset mode, right after a sync cf-allow's ipsets hold exactly its list: with no
    // rule matching another ipset, nothing the verdict depends on changes without a new
    // generation, and the verdict may be recorded for the next such sync.
    let ipset_mode = crate::backends::ipset_mode(kind, config);
    // (`status` reads cf-allow's ipsets like any other: it neither reuses nor records.)
    let key = match state {
        State::Synced(held, _) if ipset_mode && *held != probe.ranges => None,
        State::Now(_) if ipset_mode => None,
        State::Now(_) | State::Synced(..) if config.reachability.cache => {
            crate::verdict_cache::Key::now(&network, &probe, kind, config, ipset_mode)
        }
        _ => None,
    };
    if let Some((verdict, warnings)) = key
        .as_ref()
        .and_then(|key| crate::verdict_cache::hit(config, key))
    {
        tracing::debug!(
            "reachability: verdict reused from {} (same ruleset generation, interfaces, routes, forwarding, config and probe) in {:.3} ms",
            config.state_dir.join(crate::verdict_cache::FILE).display(),
            started.elapsed().as_secs_f64() * 1e3
        );
        return Some(Report { verdict, warnings });
    }
    // Right after cf-allow changed only its own sets' elements, a clean verdict of the
    // generation before carries over when the changed ranges are clean too; they are
    // evaluated on a model whose cf-allow sets hold only the added ranges.
    // (In ipset mode there is a key only when the sets hold the probe's ranges.)
    let applied = match &state {
        State::Synced(held, Some(applied)) if kind == BackendKind::Nftables || ipset_mode => {
            Some((*held, *applied))
        }
        _ => None,
    };
    let carried = applied
        .zip(key.as_ref())
        .map(|((held, applied), key)| (held, applied, applied.from.unwrap_or(key.generation()), key))
        // The ruleset now is the one the change left: nftables' batch moved the generation
        // by one (a commit by anyone since then moves it further); ipset mode's change moved
        // it not at all.
        .filter(|(_, applied, from, key)| match applied.from {
            Some(_) => key.generation() == cf_allow_nftables::next_generation(*from),
            None => true,
        })
        .filter(|(_, applied, from, key)| {
            crate::verdict_cache::carries_over(config, key, *from, applied.before)
        })
        .and_then(|(held, applied, from, key)| {
            // Held to the added ranges, cf-allow's sets answer as the whole sets only for
            // lookups of a packet's source (which is in the added or removed ranges); any
            // other lookup into them needs their real elements.
            let model = if ipset_mode {
                let model = read_model(&with_own_ipsets(opts.clone(), applied.added), &network);
                let sources_only = Family::ALL.iter().all(|&family| {
                    model.matches_ipset_sources_only(cf_allow_iptables::ipset_name(family))
                });
                if sources_only {
                    model
                } else {
                    tracing::debug!("reachability: a rule matches cf-allow's ipsets by more than the source; taking them whole");
                    read_model(&with_own_ipsets(opts.clone(), held), &network)
                }
            } else {
                let (model, restricted) =
                    read_now_nftables_with(opts.clone(), &network, config, Some(applied.added));
                if restricted
                    .iter()
                    .all(|(family, table, name)| model.looks_up_sources_only(family, table, name))
                {
                    model
                } else {
                    tracing::debug!("reachability: a rule looks up cf-allow's sets by more than the source; reading them whole");
                    read_now_nftables(opts.clone(), &network, config, None)
                }
            };
            let verdict = model.evaluate_change(&probe, applied.added, applied.removed)?;
            tracing::debug!(
                "reachability: the clean verdict of generation {} carried over: only cf-allow's set elements changed, and the {} added and {} removed ranges were evaluated, in {:.3} ms",
                from,
                applied.added.len(),
                applied.removed.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            let warnings = exposed_warnings(&verdict, &model, &probe, kind, config);
            crate::verdict_cache::store(config, key, &model, &verdict, &warnings);
            Some(Report { verdict, warnings })
        });
    if carried.is_some() {
        return carried;
    }
    let model = match state {
        State::Now(_) | State::Synced(..) if kind == BackendKind::Nftables => {
            read_now_nftables(opts, &network, config, None)
        }
        State::Synced(held, _) if ipset_mode => {
            tracing::debug!(
                "reachability: cf-allow's ipsets taken from the sync ({} members); other ipsets saved one by one",
                held.len()
            );
            read_model(&with_own_ipsets(opts, held), &network)
        }
        _ => read_model(&opts, &network),
    };
    let read_at = started.elapsed();
    let projected = match state {
        State::Now(_) | State::Synced(..) => None,
        State::Projected(Some(placement)) => Some(project(&model, placement, &probe)),
        State::Projected(None) => {
            tracing::debug!(
                "reachability: {} cannot describe its rules; judging the current state",
                kind.as_str()
            );
            None
        }
    };
    let resync = match state {
        State::Now(placement) => placement,
        _ => None,
    };
    let report = report(
        projected.as_ref().unwrap_or(&model),
        &model,
        &probe,
        kind,
        config,
        resync,
    );
    let total = started.elapsed();
    tracing::debug!(
        "reachability: read the host's rules in {:.3} ms, verdict in {:.3} ms",
        read_at.as_secs_f64() * 1e3,
        (total - read_at).as_secs_f64() * 1e3
    );
    if let Some(key) = &key {
        crate::verdict_cache::store(config, key, &model, &report.verdict, &report.warnings);
    }
    Some(report)
}

/// The verdict for `ranges` on the host as it is, from a `model` already read (doctor reads
/// the host once and asks it several questions); with the backend's lockdown, the outsiders
/// too. `resync`: what a sync would install, when it has something to do (see
/// [`State::Now`]).
pub fn verdict_on(
    model: &HostModel,
    ranges: &RangeSet,
    kind: BackendKind,
    config: &Config,
    resync: Option<&Placement>,
) -> Report {
    let probe = Probe {
        lockdown: config_lockdown(kind, config),
        ..probe(ranges, config)
    };
    report(model, model, &probe, kind, config, resync)
}

/// The `reachability` JSON value of an optional report (`null` when not checked).
pub fn json_of(report: Option<&Report>) -> Value {
    report.map_or(Value::Null, Report::json)
}

/// A configuration cf-allow accepts that an admin can switch to, and where its accept goes.
struct Alternative {
    /// What to configure, in config-file words.
    advice: String,
    /// The backend it selects.
    kind: BackendKind,
    /// Where that backend would put its accept.
    placement: Placement,
}

/// The configurations worth trying against `verdict`'s findings: on a ufw host the ufw
/// backend first, then the iptables backend (both APIs) and nftables into mode for each
/// foreign inet chain that decides.
fn alternatives(verdict: &Verdict, config: &Config) -> Vec<Alternative> {
    let mut out = Vec::new();
    if cf_allow_ufw::active() {
        out.push(Alternative {
            advice: "set `backend: ufw` (cf-allow's rules are then ufw rules, after your own ufw rules; `ufw reload`, `ufw disable`/`enable` and a reboot keep them)".to_owned(),
            kind: BackendKind::Ufw,
            placement: cf_allow_ufw::placement(),
        });
    }
    let iptables = |legacy: bool| Placement::IptablesJump {
        legacy,
        chain: config.iptables.chain.clone(),
        hooks: config.iptables.hooks.clone(),
        lockdown: config.iptables.lockdown,
    };
    out.push(Alternative {
        advice: "set `backend: iptables` (its jump at the top of INPUT accepts Cloudflare before this rule; `ufw reload` keeps it)".to_owned(),
        kind: BackendKind::Iptables,
        placement: iptables(cf_allow_exec::is_legacy_iptables("iptables-restore")),
    });
    out.push(Alternative {
        advice: "set `backend: iptables` with `iptables: {variant: legacy}` (the drop is in iptables-legacy, which runs beside nf_tables; cf-allow's jump then comes first there)".to_owned(),
        kind: BackendKind::Iptables,
        placement: iptables(true),
    });
    let mut seen: Vec<(String, String)> = Vec::new();
    for finding in verdict.blocked.iter().chain(&verdict.unknown) {
        let by = &finding.by;
        let Some(table) = by.table.strip_prefix("inet ") else {
            continue;
        };
        if by.layer != "nftables"
            || table == config.nftables.table
            || is_firewalld(&by.table)
            || seen.contains(&(table.to_owned(), by.chain.clone()))
        {
            continue;
        }
        seen.push((table.to_owned(), by.chain.clone()));
        out.push(Alternative {
            advice: format!(
                "set `backend: nftables` with `nftables: {{into: {{family: inet, table: {table}, chain: {}}}}}` (cf-allow's rules then come first in that chain)",
                by.chain
            ),
            kind: BackendKind::Nftables,
            placement: Placement::NftChainTop {
                family: "inet".to_owned(),
                table: table.to_owned(),
                chain: by.chain.clone(),
                lockdown: config.nftables.lockdown,
                forward: None,
            },
        });
    }
    out
}

/// True for firewalld's own table, which firewalld rebuilds on every reload.
fn is_firewalld(table: &str) -> bool {
    table == "inet firewalld"
}

/// Evaluates `probe` on `model` (already the state to judge: after applying, or projected)
/// and words the warnings. `base` is the host as it is (for proving fixes by projection),
/// `kind` the backend in use, `resync` the placement a sync would install on a host whose
/// cf-allow rules are not as configured (then "run `cf-allow sync`" is the fix wherever that
/// projection gets past the deciding rule).
pub fn report(
    model: &HostModel,
    base: &HostModel,
    probe: &Probe,
    kind: BackendKind,
    config: &Config,
    resync: Option<&Placement>,
) -> Report {
    let verdict = model.evaluate(probe);
    let exposed = exposed_warnings(&verdict, base, probe, kind, config);
    if verdict.reachable {
        return Report {
            verdict,
            warnings: exposed,
        };
    }
    // Which alternatives are proven to get past which deciding rules.
    let proven: Vec<(Alternative, Verdict)> = if model.unreadable_reason().is_some() {
        Vec::new()
    } else {
        alternatives(&verdict, config)
            .into_iter()
            .filter(|alt| !same_setup(alt, kind, config))
            .map(|alt| {
                let after = project(base, &alt.placement, probe).evaluate(probe);
                (alt, after)
            })
            .collect()
    };
    // ufw with IPV6=no loads no IPv6 rule, cf-allow's included (read once, not per finding).
    let ufw_ipv6_off = kind == BackendKind::Ufw && cf_allow_ufw::ipv6_off(&config.ufw);
    // What the host would do once a sync has put cf-allow's rules back as configured.
    let resynced: Option<Verdict> = resync
        .filter(|_| model.unreadable_reason().is_none())
        .map(|placement| project(base, placement, probe).evaluate(probe));
    let fix = |finding: &Finding| -> Option<String> {
        if let Some(reason) = model.unreadable_reason() {
            return Some(unreadable_fix(reason));
        }
        // A reverse-path filter drops sources the host has no route back to: no allowlist
        // helps, a route does.
        if finding.by.rule.contains("fib saddr") || finding.by.rule.contains("rpfilter") {
            return Some(format!(
                "give this host a route back to these ranges (a default route for {}; check `ip {}route get ADDRESS`): the reverse-path filter drops sources it cannot route back out of the interface they came in on",
                finding.family.as_str(),
                if finding.family == cf_allow_diff::Family::Ipv6 { "-6 " } else { "" },
            ));
        }
        if is_firewalld(&finding.by.table) && kind != BackendKind::Firewalld {
            return Some(
                "set `backend: firewalld` (firewalld rebuilds its table on every reload, so only ranges allowed through firewalld itself last)"
                    .to_owned(),
            );
        }
        // The forward path: the kernel itself drops what it does not forward or route.
        if finding.by.layer == "host" && finding.by.rule.contains("_forward") {
            return Some(format!(
                "turn forwarding on (`sysctl -w {}=1`, as Docker and Podman do) or stop publishing these ports: connections to them are DNAT'd to another address and must be forwarded",
                if finding.family == cf_allow_diff::Family::Ipv6 { "net.ipv6.conf.all.forwarding" } else { "net.ipv4.ip_forward" }
            ));
        }
        if finding.by.layer == "host" && finding.by.rule.starts_with("no route") {
            return Some("give this host a route to the DNAT's destination (the container's network), or remove the DNAT rule".to_owned());
        }
        if ufw_ipv6_off && finding.family == cf_allow_diff::Family::Ipv6 {
            return Some(format!(
                "set IPV6=yes in {} and run `ufw reload`: with IPV6=no ufw loads none of its IPv6 rules, so cf-allow's IPv6 ranges are not applied",
                config.ufw.defaults.display()
            ));
        }
        // An admin's own ufw rule before cf-allow's ufw rules: that rule is the thing to
        // change (switching backends would only go around it).
        if kind == BackendKind::Ufw && cf_allow_ufw::is_user_input_chain(&finding.by.chain) {
            return Some("delete or narrow this ufw rule (`ufw status numbered` lists it): it comes before cf-allow's rules, and ufw applies the first rule that matches".to_owned());
        }
        let past_rule = |v: &Verdict| {
            !v.blocked
                .iter()
                .chain(&v.unknown)
                .any(|f| f.by == finding.by)
        };
        // cf-allow's own rules drifted (a rule inserted above its jump, ranges missing): the
        // sync puts them back.
        if let Some(after) = resynced.as_ref().filter(|v| past_rule(v)) {
            return Some(format!(
                "run `cf-allow sync`: it puts cf-allow's accept back before this rule{}",
                if after.reachable {
                    " — checked: Cloudflare then gets through"
                } else {
                    ""
                }
            ));
        }
        // The first alternative that gets everything through, else the first that gets past
        // this rule.
        if let Some((alt, _)) = proven.iter().find(|(_, v)| v.reachable) {
            return Some(format!(
                "{} — checked: Cloudflare then gets through",
                alt.advice
            ));
        }
        if let Some((alt, _)) = proven.iter().find(|(_, v)| past_rule(v)) {
            return Some(alt.advice.clone());
        }
        Some(match &finding.expr {
            Some(_) => "make sure this rule lets Cloudflare's ranges through, or accept them before it (the rules the verdict evaluates are listed in crates/reach/README.md)".to_owned(),
            None => "no cf-allow backend can accept before this rule (it runs before the input hook, or in a chain cf-allow does not manage): exempt Cloudflare's ranges in it, remove the Cloudflare addresses from the set it matches (fail2ban `ignoreip`, csf.ignore), or remove it".to_owned(),
        })
    };
    let mut warnings = verdict.warnings(&fix);
    warnings.extend(exposed);
    Report { verdict, warnings }
}

/// The warning lines for outsiders accepted on locked-down ports, each with a fix cf-allow
/// accepts — proven by projection where cf-allow can project it.
fn exposed_warnings(
    verdict: &Verdict,
    base: &HostModel,
    probe: &Probe,
    kind: BackendKind,
    config: &Config,
) -> Vec<String> {
    if verdict.exposed.is_empty() {
        return Vec::new();
    }
    let probe = Probe {
        lockdown: true,
        ..probe.clone()
    };
    let mut alts: Vec<Alternative> = Vec::new();
    if base.has_chain("filter", "DOCKER-USER") {
        let mut hooks = config.iptables.hooks.clone();
        if !hooks.iter().any(|h| h == "DOCKER-USER") {
            hooks.push("DOCKER-USER".to_owned());
        }
        let legacy = base.has_chain_in("iptables-legacy", "filter", "DOCKER-USER");
        alts.push(Alternative {
            advice: format!(
                "set `backend: iptables` with `iptables: {{hooks: [{}], lockdown: true}}` (CF-ALLOW-DOCKER, jumped to from DOCKER-USER, then drops other sources of connections DNAT'd to published container ports)",
                hooks.join(", ")
            ),
            kind: BackendKind::Iptables,
            placement: Placement::IptablesJump {
                legacy,
                chain: config.iptables.chain.clone(),
                hooks,
                lockdown: true,
            },
        });
    }
    if kind != BackendKind::Nftables || config.nftables.into.is_some() {
        alts.push(Alternative {
            advice: "set `backend: nftables` with `nftables: {lockdown: true}` (its own table's forward chain then drops other sources of DNAT'd connections by their original port)".to_owned(),
            kind: BackendKind::Nftables,
            placement: Placement::NftOwnChain {
                table: config.nftables.table.clone(),
                chain: "input".to_owned(),
                priority: 0,
                lockdown: true,
                forward: Some("forward".to_owned()),
            },
        });
    }
    let proven: Vec<&Alternative> = alts
        .iter()
        .filter(|alt| {
            let v = project(base, &alt.placement, &probe).evaluate(&probe);
            v.reachable && v.exposed.is_empty()
        })
        .collect();
    let fix = |finding: &Finding| -> Option<String> {
        if finding.by.layer == "host" {
            return None;
        }
        Some(match proven.first() {
            Some(alt) => format!(
                "{} — checked: then only the list gets through",
                alt.advice
            ),
            None => "accept only the list before this rule, or drop other sources on these ports before it (cf-allow's lockdown drop does not come before it)".to_owned(),
        })
    };
    verdict.exposed_warnings(&fix)
}

/// True when `alt` is what the admin runs already (no point proposing it).
fn same_setup(alt: &Alternative, kind: BackendKind, config: &Config) -> bool {
    if alt.kind != kind {
        return false;
    }
    match (&alt.placement, kind) {
        (Placement::IptablesJump { legacy, .. }, BackendKind::Iptables) => {
            let current = match config.iptables.variant {
                cf_allow_iptables::Variant::Legacy => true,
                cf_allow_iptables::Variant::Nft => false,
                cf_allow_iptables::Variant::Auto => {
                    cf_allow_exec::is_legacy_iptables("iptables-restore")
                }
            };
            *legacy == current
        }
        (Placement::ChainEnds { .. }, BackendKind::Ufw | BackendKind::Firewalld) => true,
        (Placement::NftChainTop { table, chain, .. }, BackendKind::Nftables) => config
            .nftables
            .into
            .as_ref()
            .is_some_and(|into| &into.table == table && &into.chain == chain),
        _ => false,
    }
}

/// The fix for a host whose rules cannot be read.
fn unreadable_fix(reason: &str) -> String {
    format!("make the rules readable ({reason}): run cf-allow as root with nftables installed; until then the verdict stays unknown")
}
