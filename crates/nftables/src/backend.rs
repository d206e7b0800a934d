//! [`NftablesBackend`]: reads what cf-allow manages from the kernel and applies plans as one
//! netlink batch.

use std::net::IpAddr;
use std::path::PathBuf;

use cf_allow_diff::{
    Backend, Family, Inspection, IpNet, Ipv4Net, Ipv6Net, Placement, Plan, RangeSet,
};

use crate::error::Error;
use crate::forward::{self, Forward};
use crate::intervals::{elements_of, ranges_from_elements, Element, StoredRange};
use crate::layout::{self, FORWARD_CHAIN, OWN_CHAIN, SET_V4, SET_V6};
use crate::memory::{self, Memory, Record, RecordedSet, Stamp};
use crate::model::{
    family_name, ChainInfo, Change, Expr, KeyKind, Position, RuleInfo, SetInfo, TableInfo,
    FAMILY_INET, FAMILY_IP, FAMILY_IP6, TAG,
};
use crate::netlink::Netlink;
use crate::settings::{Place, Settings, TableFamily};

/// `NF_INET_LOCAL_IN`.
const HOOK_INPUT: u32 = 1;
/// `NF_DROP` / `NF_ACCEPT` as chain policies.
const POLICY_DROP: u32 = 0;
const POLICY_ACCEPT: u32 = 1;
/// `NFT_SET_INTERVAL`.
const SET_FLAG_INTERVAL: u32 = 0x4;
/// The kernel's limit on table, chain and set names (with the NUL).
const NAME_MAX: usize = 255;

/// The nftables backend: own-table mode (table `inet cf_allow`) or into mode (sets and
/// tagged rules in an existing chain).
#[derive(Debug)]
pub struct NftablesBackend {
    settings: Settings,
    ports: Vec<u16>,
    /// The generation record (see [`NftablesBackend::with_memory`]).
    memory: Option<Memory>,
    /// What the last `inspect` read, for the `apply` that follows it (used when the
    /// generation has not moved in between).
    last: Option<State>,
    /// See [`Backend::elements_committed`].
    elements_committed: Option<u32>,
}

/// cf-allow's own table, as found.
enum OwnTable {
    Absent,
    /// cf-allow's, with the sets it holds, and the first object in it that cf-allow did not
    /// create (an admin's chain, set or rule), if any.
    Ours(Vec<SetInfo>, Option<String>),
    /// Someone else's table of that name, and why it is not cf-allow's.
    Foreign(String),
}

/// Everything `inspect` and `apply` need to know about the kernel's ruleset.
#[derive(Debug, Default)]
struct State {
    /// Own-table mode: the table exists. Into mode: the own table exists and is cf-allow's
    /// (left over from own-table mode).
    own_table: bool,
    /// The target chain as found.
    chain: Option<ChainInfo>,
    /// The ranges of `cf_v4` / `cf_v6`, when the set exists.
    v4: Option<Contents>,
    v6: Option<Contents>,
    /// cf-allow's rules as found (all rules of the own chain; the tagged rules in into mode).
    rules: Vec<RuleInfo>,
    /// The rules are exactly the expected ones, in place.
    rules_ok: bool,
    /// The forward-hook chain and cf-allow's rules there (DNAT'd connections).
    forward: Forward,
    warnings: Vec<String>,
    /// The ruleset generation the read started at.
    generation: u32,
    /// Boot and network namespace (`None`: cannot be told apart, nothing is recorded).
    host: Option<String>,
    /// The set elements came from the generation record, not from a dump.
    recalled: bool,
    /// The generation did not move during the read: the state is exact for `generation`.
    consistent: bool,
}

/// The ranges of one of cf-allow's sets: dumped from the kernel, or taken from the
/// generation record and decoded only as far as needed (a no-op needs the prefixes, only a
/// change needs the elements).
#[derive(Clone, Debug)]
enum Contents {
    Read(Vec<StoredRange>),
    Recorded(RecordedSet),
}

impl Contents {
    /// Pushes the minimal prefixes of every range, in order, onto its family's vector (a
    /// plain loop per kind of contents: a boxed iterator cost a dynamic call per prefix).
    fn push_prefixes(&self, v4: &mut Vec<Ipv4Net>, v6: &mut Vec<Ipv6Net>) {
        let mut push = |net| match net {
            IpNet::V4(n) => v4.push(n),
            IpNet::V6(n) => v6.push(n),
        };
        match self {
            Contents::Read(ranges) => ranges.iter().flat_map(StoredRange::prefixes).for_each(push),
            Contents::Recorded(set) => {
                for (first, last) in set.bounds() {
                    crate::intervals::prefixes_of_range(first, last).for_each(&mut push);
                }
            }
        }
    }

    /// The number of ranges.
    fn len(&self) -> usize {
        match self {
            Contents::Read(ranges) => ranges.len(),
            Contents::Recorded(set) => set.len(),
        }
    }

    /// The range holding `addr`, with its index in key order.
    fn holding(&self, addr: IpAddr) -> Option<(usize, StoredRange)> {
        match self {
            Contents::Read(ranges) => {
                let i = ranges.partition_point(|r| r.first <= addr).checked_sub(1)?;
                (ranges[i].last >= addr).then(|| (i, ranges[i].clone()))
            }
            Contents::Recorded(set) => set.holding(addr),
        }
    }

    /// As the generation record holds it.
    fn recorded(&self, key_len: usize) -> RecordedSet {
        match self {
            Contents::Read(ranges) => RecordedSet::of(ranges, key_len),
            Contents::Recorded(set) => set.clone(),
        }
    }
}

impl NftablesBackend {
    /// A backend for `settings` that opens `ports` (TCP; empty = all ports) to the ranges.
    pub fn new(settings: Settings, ports: Vec<u16>) -> Result<Self, Error> {
        check_name("nftables.table", &settings.table)?;
        if let Some(into) = &settings.into {
            check_name("nftables.into.table", &into.table)?;
            check_name("nftables.into.chain", &into.chain)?;
            if into.table == settings.table {
                return Err(Error::Settings(format!(
                    "nftables.into.table is {:?}, the name of cf-allow's own table \
                     (nftables.table); into mode needs an existing table of yours",
                    into.table
                )));
            }
            if into.family != TableFamily::Inet {
                return Err(Error::Settings(format!(
                    "nftables.into.family is {}, but cf-allow keeps an IPv4 and an IPv6 set and \
                     only an inet table holds both; put them into an inet table",
                    into.family.as_str()
                )));
            }
        }
        if settings.lockdown && ports.is_empty() {
            return Err(Error::Settings(
                "nftables.lockdown with ports: [] would drop every TCP connection that does not \
                 come from Cloudflare, SSH included; list the ports to lock down"
                    .to_owned(),
            ));
        }
        let mut ports = ports;
        ports.sort_unstable();
        ports.dedup();
        Ok(NftablesBackend {
            settings,
            ports,
            memory: None,
            last: None,
            elements_committed: None,
        })
    }

    /// Keeps a generation record in `path` (in `state_dir`): after cf-allow's own commit,
    /// or a full read during which nothing else committed, the ranges of its sets (with the
    /// flags of the elements that hold them) with the nf_tables generation id, the boot id
    /// and the network namespace's cookie. While all three are unchanged nothing in this
    /// ruleset changed, and `inspect` takes the ranges from the record instead of dumping
    /// the sets (whose cost grows with the list). Any other commit changes the id, and the
    /// sets are read again. With `writable: false` (read-only commands) the record is used
    /// but never written.
    pub fn with_memory(mut self, path: PathBuf, writable: bool) -> Self {
        self.memory = Some(Memory::new(path, writable));
        self
    }

    /// The record for this boot, namespace, generation and target, if there is one.
    fn recall(&self, host: Option<&str>, generation: u32) -> Option<Record> {
        let record = self.memory.as_ref()?.load()?;
        let key = self.settings.record_key();
        host.is_some_and(|host| record.describes(host, generation, &key))
            .then_some(record)
    }

    /// Records `v4` / `v6` as the sets' ranges at `generation`.
    fn remember(
        &self,
        host: &Option<String>,
        generation: u32,
        v4: Option<RecordedSet>,
        v6: Option<RecordedSet>,
    ) {
        let (Some(memory), Some(host)) = (&self.memory, host) else {
            return;
        };
        memory.store(&Record {
            stamp: Stamp {
                host: host.clone(),
                generation,
            },
            target: self.settings.record_key(),
            v4,
            v6,
        });
        tracing::debug!(generation, "nftables: recorded the ruleset generation");
    }

    /// Records a state read in full at one generation.
    fn remember_read(&self, state: &State) {
        if state.recalled || !state.consistent {
            return;
        }
        self.remember(
            &state.host,
            state.generation,
            state.v4.as_ref().map(|c| c.recorded(4)),
            state.v6.as_ref().map(|c| c.recorded(16)),
        );
    }

    fn target(&self) -> Place<'_> {
        self.settings.place()
    }

    fn expected_rules(&self) -> Vec<Vec<Expr>> {
        layout::expected_rules(&self.ports, self.settings.lockdown)
    }

    /// Reads the ruleset: cf-allow's table, sets, elements and rules, and foreign chains
    /// that matter.
    fn read(&self, nl: &mut Netlink) -> Result<State, Error> {
        let generation = nl.generation()?;
        let host = memory::host_identity(nl.netns_cookie());
        let recalled = self.recall(host.as_deref(), generation);
        match &recalled {
            Some(_) => tracing::debug!(
                generation,
                "nftables: ruleset generation unchanged since cf-allow recorded it; set elements not dumped"
            ),
            None => tracing::debug!(generation, "nftables: ruleset generation not recorded; dumping the set elements"),
        }
        let target = self.target();
        let tables = nl.tables()?;
        let chains = nl.chains()?;
        let mut state = State {
            generation,
            host,
            recalled: recalled.is_some(),
            ..State::default()
        };

        // cf-allow's own table: must be cf-allow's in own-table mode; in into mode a
        // leftover one is deleted.
        let mut own_sets = None;
        match self.own_table(nl, &tables, &chains)? {
            OwnTable::Foreign(reason) if !target.into => {
                return Err(Error::Collision(format!(
                    "table inet {} exists but was not created by cf-allow ({reason}); \
                     cf-allow leaves it alone: choose another nftables.table, or delete it",
                    self.settings.table
                )))
            }
            OwnTable::Ours(_, Some(object)) if !target.into => {
                return Err(Error::Collision(format!(
                    "table inet {} holds {object}, which cf-allow did not create; cf-allow \
                     neither changes nor deletes it: move it to a table of your own",
                    self.settings.table
                )))
            }
            OwnTable::Ours(_, Some(object)) => tracing::warn!(
                "nftables: table inet {} left over from own-table mode holds {object}, which \
                 cf-allow did not create; left alone",
                self.settings.table
            ),
            OwnTable::Ours(sets, None) => {
                state.own_table = true;
                own_sets = Some(sets);
            }
            OwnTable::Foreign(_) | OwnTable::Absent => {}
        }

        let table_exists = find_table(&tables, FAMILY_INET, target.table).is_some();
        if target.into && !table_exists {
            return Err(Error::IntoTarget(format!(
                "nftables.into names table inet {}, which does not exist; create it or fix the \
                 setting",
                target.table
            )));
        }
        state.chain = find_chain(&chains, target.table, target.chain).cloned();
        if target.into && state.chain.is_none() {
            return Err(Error::IntoTarget(format!(
                "nftables.into names chain {} in table inet {}, which does not exist; create it \
                 or fix the setting",
                target.chain, target.table
            )));
        }

        let mut target_sets = None;
        if table_exists {
            // Own-table mode: the target is the own table, whose sets were just read.
            let sets = match own_sets.filter(|_| !target.into) {
                Some(sets) => sets,
                None => nl.sets(FAMILY_INET, target.table)?,
            };
            let (v4, v6) = match recalled {
                Some(record) => (Some(record.v4), Some(record.v6)),
                None => (None, None),
            };
            state.v4 = self.read_set(nl, target, &sets, SET_V4, KeyKind::Ipv4, v4)?;
            state.v6 = self.read_set(nl, target, &sets, SET_V6, KeyKind::Ipv6, v6)?;
            if state.chain.is_some() {
                let mut rules = nl.rules(FAMILY_INET, target.table, target.chain)?;
                // Into mode: only the tagged rules are cf-allow's, and they must come first.
                let mut leading = rules.len();
                if target.into {
                    leading = rules.iter().take_while(|r| r.is_tagged()).count();
                    rules.retain(RuleInfo::is_tagged);
                }
                for rule in &mut rules {
                    resolve_port_sets(nl, target.table, &sets, rule)?;
                }
                let expected = self.expected_rules();
                state.rules_ok = leading == expected.len()
                    && rules.len() == expected.len()
                    && rules.iter().zip(&expected).all(|(r, e)| &r.exprs == e);
                state.rules = rules;
            }
            target_sets = Some(sets);
        }
        state.forward = match &target_sets {
            Some(sets) => forward::read(
                nl,
                &self.settings,
                &self.ports,
                &chains,
                state.own_table,
                sets,
            )?,
            None => Forward {
                target: forward::target(&self.settings, &chains)?,
                ..Forward::default()
            },
        };
        state.warnings = self.warnings(target, &chains);
        state.consistent = state.recalled || nl.generation()? == generation;
        Ok(state)
    }

    /// Finds cf-allow's own table (`nftables.table`) and tells whether it is cf-allow's.
    fn own_table(
        &self,
        nl: &mut Netlink,
        tables: &[TableInfo],
        chains: &[ChainInfo],
    ) -> Result<OwnTable, Error> {
        let name = &self.settings.table;
        let Some(table) = find_table(tables, FAMILY_INET, name) else {
            return Ok(OwnTable::Absent);
        };
        let sets = nl.sets(FAMILY_INET, name)?;
        let mut rules = Vec::new();
        for chain in [OWN_CHAIN, FORWARD_CHAIN] {
            if find_chain(chains, name, chain).is_some() {
                rules.push((chain, nl.rules(FAMILY_INET, name, chain)?));
            }
        }
        Ok(match foreign_reason(table, chains, &sets, &rules) {
            None => {
                let foreign = foreign_object(table, chains, &sets, &rules);
                OwnTable::Ours(sets, foreign)
            }
            Some(reason) => OwnTable::Foreign(reason),
        })
    }

    /// Reads one of cf-allow's sets; errors when a set of that name is not cf-allow's.
    /// `recalled`: the ranges from the generation record (`Some(None)`: the record says
    /// the set did not exist), used instead of a dump.
    fn read_set(
        &self,
        nl: &mut Netlink,
        target: Place,
        sets: &[SetInfo],
        name: &str,
        key: KeyKind,
        recalled: Option<Option<RecordedSet>>,
    ) -> Result<Option<Contents>, Error> {
        let Some(set) = sets.iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        let what = format!("set inet {} {name}", target.table);
        if !set.is_tagged() {
            return Err(Error::Collision(format!(
                "{what} exists but was not created by cf-allow (its comment is not \"{TAG}\"); \
                 rename or delete it"
            )));
        }
        if set.key_type != key.type_id() || set.flags & SET_FLAG_INTERVAL == 0 {
            return Err(Error::Collision(format!(
                "{what} is not an interval set of {}; delete it so that cf-allow can recreate it",
                match key {
                    KeyKind::Ipv4 => "ipv4_addr",
                    _ => "ipv6_addr",
                }
            )));
        }
        if let Some(Some(set)) = recalled {
            return Ok(Some(Contents::Recorded(set)));
        }
        let elements = nl.elements(FAMILY_INET, target.table, name)?;
        Ok(Some(Contents::Read(ranges_from_elements(
            elements,
            key.len() as usize,
        ))))
    }

    /// Foreign input chains that drop by default, which an accept elsewhere cannot override.
    fn warnings(&self, target: Place, chains: &[ChainInfo]) -> Vec<String> {
        let mut warnings = Vec::new();
        for chain in chains {
            let is_ours = chain.family == FAMILY_INET
                && chain.table == target.table
                && (chain.name == target.chain || !target.into);
            let drops = chain.hook == Some(HOOK_INPUT)
                && chain.policy == Some(POLICY_DROP)
                && matches!(chain.family, FAMILY_INET | FAMILY_IP | FAMILY_IP6);
            if is_ours || !drops {
                continue;
            }
            let name = format!(
                "chain {} {} {}",
                family_name(chain.family),
                chain.table,
                chain.name
            );
            if target.into {
                warnings.push(format!(
                    "{name} also drops by default on the input hook; the accept that cf-allow \
                     puts into chain inet {} {} does not apply there, so Cloudflare's traffic \
                     may still be dropped",
                    target.table, target.chain
                ));
            } else {
                warnings.push(format!(
                    "{name} drops by default on the input hook (policy drop): an accept in table \
                     inet {} does not stop a drop in another table, so Cloudflare's traffic is \
                     still dropped there; set nftables.into: {{family: {}, table: {}, chain: {}}} \
                     to put the allow into that chain",
                    target.table,
                    family_name(chain.family),
                    chain.table,
                    chain.name
                ));
            }
        }
        warnings
    }

    /// The structural changes `state` needs, with a line for each repair.
    fn structure(&self, state: &State) -> (Vec<Change>, Vec<Change>, Vec<String>) {
        let target = self.target();
        let table = target.table;
        let mut before = Vec::new(); // deletions and creations that come before elements
        let mut after = Vec::new(); // rules, after the sets exist
        let mut repairs = Vec::new();
        let chain_ok = state.chain.as_ref().is_some_and(|c| {
            target.into
                || (c.hook == Some(HOOK_INPUT)
                    && c.policy == Some(POLICY_ACCEPT)
                    && c.kind.as_deref() == Some("filter"))
        });

        if !state.rules_ok || !chain_ok {
            for rule in &state.rules {
                before.push(Change::DelRule {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    chain: target.chain.to_owned(),
                    handle: rule.handle,
                });
            }
        }
        if target.into {
            if state.own_table {
                repairs.push(format!(
                    "delete table inet {} left over from own-table mode",
                    self.settings.table
                ));
                before.push(Change::DelTable {
                    family: FAMILY_INET,
                    name: self.settings.table.to_owned(),
                });
            }
        } else {
            if !state.own_table {
                repairs.push(format!("create table inet {table}"));
                before.push(Change::AddTable {
                    family: FAMILY_INET,
                    name: table.to_owned(),
                });
            }
            if let (Some(_), false) = (&state.chain, chain_ok) {
                repairs.push(format!(
                    "recreate chain inet {table} {} as a filter chain on the input hook with \
                     policy accept",
                    target.chain
                ));
                before.push(Change::DelChain {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    name: target.chain.to_owned(),
                });
            }
        }
        for (present, name, key) in [
            (state.v4.is_some(), SET_V4, KeyKind::Ipv4),
            (state.v6.is_some(), SET_V6, KeyKind::Ipv6),
        ] {
            if !present {
                repairs.push(format!("create set inet {table} {name}"));
                before.push(Change::AddSet {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    name: name.to_owned(),
                    key,
                });
            }
        }
        if !target.into && !chain_ok {
            if state.chain.is_none() {
                repairs.push(format!(
                    "create chain inet {table} {} on the input hook",
                    target.chain
                ));
            }
            before.push(Change::AddInputChain {
                family: FAMILY_INET,
                table: table.to_owned(),
                name: target.chain.to_owned(),
            });
        }
        if !state.rules_ok || !chain_ok {
            let settings = layout::describe(&self.ports, self.settings.lockdown);
            let action = match (target.into, state.rules.is_empty()) {
                (true, true) => "insert the cf-allow rules at the top of",
                (true, false) => "put the cf-allow rules back at the top of",
                (false, true) => "add the rules to",
                (false, false) => "rewrite the rules of",
            };
            repairs.push(format!(
                "{action} chain inet {table} {} ({settings})",
                target.chain
            ));
            let mut rules = self.expected_rules();
            let position = if target.into {
                // Each insert goes before all others: insert the last rule first.
                rules.reverse();
                Position::Top
            } else {
                Position::Bottom
            };
            for exprs in rules {
                after.push(Change::AddRule {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    chain: target.chain.to_owned(),
                    exprs,
                    position,
                });
            }
        }
        let (fwd_before, fwd_after, fwd_repairs) =
            forward::structure(&state.forward, &self.ports, self.settings.lockdown);
        before.extend(fwd_before);
        after.extend(fwd_after);
        repairs.extend(fwd_repairs);
        (before, after, repairs)
    }
}

impl Backend for NftablesBackend {
    type Error = Error;

    fn elements_committed(&self) -> Option<u32> {
        self.elements_committed
    }

    fn placement(&self) -> Option<Placement> {
        Some(match &self.settings.into {
            None => Placement::NftOwnChain {
                table: self.settings.table.clone(),
                chain: OWN_CHAIN.to_owned(),
                priority: 0,
                lockdown: self.settings.lockdown,
                forward: forward::placement_chain(&self.settings),
            },
            Some(into) => Placement::NftChainTop {
                family: into.family.as_str().to_owned(),
                table: into.table.clone(),
                chain: into.chain.clone(),
                lockdown: self.settings.lockdown,
                forward: forward::placement_chain(&self.settings),
            },
        })
    }

    fn name(&self) -> &'static str {
        "nftables"
    }

    fn inspect(&mut self) -> Result<Inspection, Error> {
        let mut nl = Netlink::open()?;
        let state = self.read(&mut nl)?;
        self.remember_read(&state);
        let (_, _, repairs) = self.structure(&state);
        // Each family's prefixes straight into its own vector, sized from the set.
        let mut v4 = Vec::with_capacity(state.v4.as_ref().map_or(0, Contents::len));
        let mut v6 = Vec::with_capacity(state.v6.as_ref().map_or(0, Contents::len));
        for contents in state.v4.iter().chain(state.v6.iter()) {
            contents.push_prefixes(&mut v4, &mut v6);
        }
        let ranges = RangeSet::exact_families(v4, v6);
        let present = if self.settings.into.is_some() {
            state.v4.is_some() || state.v6.is_some() || !state.rules.is_empty()
        } else {
            state.own_table
        };
        let inspection = Inspection {
            ranges,
            present,
            repairs,
            warnings: state.warnings.clone(),
        };
        self.last = Some(state);
        Ok(inspection)
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), Error> {
        self.elements_committed = None;
        let mut nl = Netlink::open()?;
        // What inspect read is still exact when nothing committed since: no second read.
        let state = match self.last.take() {
            Some(state) if state.consistent && nl.generation()? == state.generation => {
                tracing::debug!(
                    generation = state.generation,
                    "nftables: ruleset unchanged since inspect; not read again"
                );
                state
            }
            _ => {
                let state = self.read(&mut nl)?;
                self.remember_read(&state);
                state
            }
        };
        let (mut changes, rules, repairs) = self.structure(&state);
        let mut after: [Option<RecordedSet>; 2] = [None, None];
        let table = self.target().table;
        let mut added = 0usize;
        let mut removed = 0usize;
        for (family, set, stored) in [
            (Family::Ipv4, SET_V4, &state.v4),
            (Family::Ipv6, SET_V6, &state.v6),
        ] {
            let delta = element_delta(stored.as_ref(), &plan.add, &plan.remove, family);
            added += delta.added;
            removed += delta.removed;
            let key_len = if family == Family::Ipv6 { 16 } else { 4 };
            after[usize::from(family == Family::Ipv6)] =
                recorded_after(stored.as_ref(), &delta, key_len);
            if !delta.delete.is_empty() {
                changes.push(Change::DelElements {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    set: set.to_owned(),
                    elements: delta.delete,
                });
            }
            if !delta.insert.is_empty() {
                changes.push(Change::AddElements {
                    family: FAMILY_INET,
                    table: table.to_owned(),
                    set: set.to_owned(),
                    elements: delta.insert,
                });
            }
        }
        changes.extend(rules);
        let elements_only = changes
            .iter()
            .all(|c| matches!(c, Change::AddElements { .. } | Change::DelElements { .. }));
        if changes.is_empty() {
            tracing::debug!("nftables: nothing to change");
            return Ok(());
        }
        for change in &changes {
            tracing::debug!(%change, "nftables batch message");
        }
        nl.commit(&changes)?;
        // Only this batch committed since the read: the sets now hold exactly `after`.
        let next = crate::next_generation(state.generation);
        let only_this_batch = state.consistent && nl.generation()? == next;
        for repair in &repairs {
            tracing::debug!(repair = %repair, "nftables: repaired");
        }
        tracing::debug!(
            added,
            removed,
            table = %table,
            "nftables: applied the change in one batch"
        );
        if let (true, [Some(v4), Some(v6)]) = (only_this_batch, after) {
            self.remember(&state.host, next, Some(v4), Some(v6));
        }
        if only_this_batch && elements_only {
            self.elements_committed = Some(state.generation);
        }
        Ok(())
    }

    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>, Error> {
        self.last = None;
        let mut nl = Netlink::open()?;
        nl.generation()?;
        let tables = nl.tables()?;
        let chains = nl.chains()?;
        let mut changes = Vec::new();
        let mut lines = Vec::new();

        if let Some(into) = &self.settings.into {
            if find_table(&tables, FAMILY_INET, &into.table).is_some() {
                if find_chain(&chains, &into.table, &into.chain).is_some() {
                    for rule in nl.rules(FAMILY_INET, &into.table, &into.chain)? {
                        if rule.is_tagged() {
                            lines.push(format!(
                                "rule inet {} {} handle {} (comment \"{TAG}\")",
                                into.table, into.chain, rule.handle
                            ));
                            changes.push(Change::DelRule {
                                family: FAMILY_INET,
                                table: into.table.clone(),
                                chain: into.chain.clone(),
                                handle: rule.handle,
                            });
                        }
                    }
                }
                let (fwd_changes, fwd_lines) = forward::remove_into(&mut nl, &into.table, &chains)?;
                changes.extend(fwd_changes);
                lines.extend(fwd_lines);
                for set in nl.sets(FAMILY_INET, &into.table)? {
                    if is_our_set(&set) {
                        lines.push(format!("set inet {} {}", into.table, set.name));
                        changes.push(Change::DelSet {
                            family: FAMILY_INET,
                            table: into.table.clone(),
                            name: set.name.clone(),
                        });
                    }
                }
            }
        }
        let own = &self.settings.table;
        match self.own_table(&mut nl, &tables, &chains)? {
            OwnTable::Ours(_, None) => {
                lines.push(format!("table inet {own}"));
                changes.push(Change::DelTable {
                    family: FAMILY_INET,
                    name: own.clone(),
                });
            }
            OwnTable::Ours(sets, Some(object)) => {
                // Delete only what cf-allow created; the table stays for the admin's object.
                for chain in [OWN_CHAIN, FORWARD_CHAIN] {
                    if find_chain(&chains, own, chain).is_none() {
                        continue;
                    }
                    let mut foreign_rule = false;
                    for rule in nl.rules(FAMILY_INET, own, chain)? {
                        if !rule.is_tagged() {
                            foreign_rule = true;
                            continue;
                        }
                        lines.push(format!(
                            "rule inet {own} {chain} handle {} (comment \"{TAG}\")",
                            rule.handle
                        ));
                        changes.push(Change::DelRule {
                            family: FAMILY_INET,
                            table: own.clone(),
                            chain: chain.to_owned(),
                            handle: rule.handle,
                        });
                    }
                    if !foreign_rule {
                        lines.push(format!("chain inet {own} {chain}"));
                        changes.push(Change::DelChain {
                            family: FAMILY_INET,
                            table: own.clone(),
                            name: chain.to_owned(),
                        });
                    }
                }
                for set in sets.iter().filter(|s| is_our_set(s)) {
                    lines.push(format!("set inet {own} {}", set.name));
                    changes.push(Change::DelSet {
                        family: FAMILY_INET,
                        table: own.clone(),
                        name: set.name.clone(),
                    });
                }
                tracing::warn!(
                    "nftables: table inet {own} holds {object}, which cf-allow did not create; \
                     deleted only cf-allow's own objects and left the table and that object alone"
                );
            }
            OwnTable::Foreign(reason) => tracing::warn!(
                "nftables: table inet {own} was not created by cf-allow ({reason}); left alone"
            ),
            OwnTable::Absent => {}
        }
        if !dry_run && !changes.is_empty() {
            nl.commit(&changes)?;
            for line in &lines {
                tracing::debug!(object = %line, "nftables: deleted");
            }
        }
        Ok(lines)
    }
}

/// The element messages of one set for a plan.
#[derive(Debug, Default)]
struct ElementDelta {
    delete: Vec<Element>,
    insert: Vec<Element>,
    /// The indices (in key order) of the stored ranges `delete` removes.
    deleted: Vec<usize>,
    added: usize,
    removed: usize,
}

/// Which elements to delete and insert so that the stored ranges of `family` lose the
/// prefixes in `remove` and gain those in `add`. A stored range is deleted whole when one
/// of its prefixes goes (ranges merged by someone else hold several); its other prefixes
/// are inserted again. Ranges that stay are not touched, nor looked at: each changed prefix
/// finds the range that would hold it by a binary search, so a one-range delta of a 100k
/// set decodes two ranges, not 100k.
fn element_delta(
    stored: Option<&Contents>,
    add: &RangeSet,
    remove: &RangeSet,
    family: Family,
) -> ElementDelta {
    let mut delta = ElementDelta::default();
    // The stored range of which `prefix` is one of the minimal prefixes.
    let held_as_prefix = |prefix: &IpNet| {
        stored?
            .holding(prefix.network())
            .filter(|(_, range)| range.prefixes().any(|p| p == *prefix))
    };
    let mut doomed: std::collections::BTreeMap<usize, StoredRange> = Default::default();
    for prefix in remove.iter_family(family) {
        if let Some((i, range)) = held_as_prefix(&prefix) {
            delta.removed += 1;
            doomed.entry(i).or_insert(range);
        }
    }
    let mut reinsert: Vec<IpNet> = Vec::new();
    for range in doomed.values() {
        delta.delete.extend(range.elements.iter().copied());
        reinsert.extend(range.prefixes().filter(|p| !remove.contains(p)));
    }
    for prefix in add.iter_family(family) {
        if held_as_prefix(&prefix).is_some_and(|(i, _)| !doomed.contains_key(&i)) {
            continue;
        }
        delta.added += 1;
        reinsert.push(prefix);
    }
    reinsert.sort();
    reinsert.dedup();
    for prefix in reinsert {
        delta.insert.extend(elements_of(&prefix));
    }
    delta.deleted = doomed.into_keys().collect();
    delta
}

/// The generation record of a set after `delta` is applied to `stored` (`None`: the set is
/// not recorded).
fn recorded_after(
    stored: Option<&Contents>,
    delta: &ElementDelta,
    key_len: usize,
) -> Option<RecordedSet> {
    let inserted = ranges_from_elements(delta.insert.clone(), key_len);
    match stored {
        None => Some(RecordedSet::of(&inserted, key_len)),
        Some(Contents::Recorded(set)) => set.edited(&delta.deleted, &inserted),
        Some(read @ Contents::Read(_)) => read.recorded(key_len).edited(&delta.deleted, &inserted),
    }
}

/// Replaces lookups into anonymous sets by the ports those sets hold.
pub(crate) fn resolve_port_sets(
    nl: &mut Netlink,
    table: &str,
    sets: &[SetInfo],
    rule: &mut RuleInfo,
) -> Result<(), Error> {
    for expr in &mut rule.exprs {
        let Expr::Lookup(name) = expr else { continue };
        let Some(set) = sets.iter().find(|s| &s.name == name) else {
            continue;
        };
        if !name.starts_with("__set") || set.key_type != KeyKind::Port.type_id() {
            continue;
        }
        let mut ports: Vec<u16> = nl
            .elements(FAMILY_INET, table, name)?
            .iter()
            .filter_map(|e| <[u8; 2]>::try_from(&e.key[..]).ok())
            .map(u16::from_be_bytes)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        *expr = Expr::LookupPorts(ports);
    }
    Ok(())
}

fn find_table<'a>(tables: &'a [TableInfo], family: u8, name: &str) -> Option<&'a TableInfo> {
    tables.iter().find(|t| t.family == family && t.name == name)
}

/// The chain `inet table name`, if it exists.
fn find_chain<'a>(chains: &'a [ChainInfo], table: &str, name: &str) -> Option<&'a ChainInfo> {
    chains
        .iter()
        .find(|c| c.family == FAMILY_INET && c.table == table && c.name == name)
}

/// True for one of cf-allow's two sets: its name and its comment.
fn is_our_set(set: &SetInfo) -> bool {
    (set.name == SET_V4 || set.name == SET_V6) && set.is_tagged()
}

/// Why a table with cf-allow's name is not cf-allow's, or `None` when it is. `rules`: the
/// rules of its chains [`OWN_CHAIN`] and [`FORWARD_CHAIN`], by chain. Ownership is proven by cf-allow's tag: the table's
/// comment, or (kernels before 5.13 drop table comments) a tagged set or rule of cf-allow's
/// in a table that holds nothing else.
fn foreign_reason(
    table: &TableInfo,
    chains: &[ChainInfo],
    sets: &[SetInfo],
    rules: &[(&str, Vec<RuleInfo>)],
) -> Option<String> {
    match table.comment.as_deref() {
        Some(TAG) => return None,
        Some(other) => return Some(format!("its comment is \"{other}\"")),
        None => {}
    }
    if let Some(object) = foreign_object(table, chains, sets, rules) {
        return Some(format!("it holds {object}"));
    }
    if !sets.iter().any(is_our_set) && !rules.iter().flat_map(|(_, r)| r).any(RuleInfo::is_tagged) {
        return Some(format!(
            "it has no comment \"{TAG}\" and holds nothing tagged by cf-allow"
        ));
    }
    None
}

/// The first object in cf-allow's table that cf-allow did not create: a chain other than
/// [`OWN_CHAIN`] and [`FORWARD_CHAIN`], a named set other than its two tagged sets, or an
/// untagged rule in those chains (`rules`, by chain).
fn foreign_object(
    table: &TableInfo,
    chains: &[ChainInfo],
    sets: &[SetInfo],
    rules: &[(&str, Vec<RuleInfo>)],
) -> Option<String> {
    if let Some(chain) = chains.iter().find(|c| {
        c.family == table.family
            && c.table == table.name
            && c.name != OWN_CHAIN
            && c.name != FORWARD_CHAIN
    }) {
        return Some(format!("chain {}", chain.name));
    }
    if let Some(set) = sets
        .iter()
        .find(|s| !s.name.starts_with("__set") && !is_our_set(s))
    {
        return Some(format!("set {}", set.name));
    }
    for (chain, rules) in rules {
        if let Some(rule) = rules.iter().find(|r| !r.is_tagged()) {
            return Some(format!(
                "rule handle {} in chain {chain} (it has no comment \"{TAG}\")",
                rule.handle
            ));
        }
    }
    None
}

/// A table, chain or set name nft accepts as a bare identifier (a letter or `_`, then
/// letters, digits, `_`, `-` and `.`), at most [`NAME_MAX`] bytes: a name that needs quoting
/// would be printed unquoted by `nft list ruleset` and run as commands by `nft -f`.
pub fn check_name(key: &str, name: &str) -> Result<(), Error> {
    let identifier = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if name.is_empty() || name.len() > NAME_MAX || !identifier {
        return Err(Error::Settings(format!(
            "{key} must be an nft identifier of 1 to {NAME_MAX} characters (a letter or `_`, then letters, digits, `_`, `-`, `.`), got {name:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::{Held, Key};
    use crate::settings::IntoTarget;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test CIDR")
    }

    fn stored(nets: &[&str]) -> Vec<StoredRange> {
        let elements = nets.iter().flat_map(|n| elements_of(&net(n))).collect();
        ranges_from_elements(elements, 4)
    }

    #[test]
    fn names_that_are_not_identifiers_are_refused() {
        for bad in [
            "",
            "x { } ; flush ruleset ; table inet y",
            "a b",
            "1x",
            "-x",
            "x\"",
            &"t".repeat(300),
        ] {
            assert!(check_name("nftables.table", bad).is_err(), "{bad:?}");
        }
        for good in ["cf_allow", "filter", "_x", "a-b.c9"] {
            assert!(check_name("nftables.table", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let lockdown_all = Settings {
            lockdown: true,
            ..Settings::default()
        };
        let err = NftablesBackend::new(lockdown_all, vec![]).expect_err("lockdown on all ports");
        assert!(err.to_string().contains("SSH"), "{err}");
        let ip_into = Settings {
            into: Some(IntoTarget {
                family: TableFamily::Ip,
                table: "filter".into(),
                chain: "INPUT".into(),
            }),
            ..Settings::default()
        };
        let err = NftablesBackend::new(ip_into, vec![443]).expect_err("ip family");
        assert!(err.to_string().contains("inet"), "{err}");
        let empty = Settings {
            table: String::new(),
            ..Settings::default()
        };
        assert!(NftablesBackend::new(empty, vec![443]).is_err());
    }

    #[test]
    fn element_delta_touches_only_changed_ranges() {
        let current = stored(&["10.0.0.0/24", "10.0.2.0/23", "10.0.8.0/24"]);
        let add = RangeSet::exact([net("10.0.2.0/24"), net("10.0.3.0/24"), net("10.0.9.0/24")]);
        let remove = RangeSet::exact([net("10.0.2.0/23"), net("10.0.8.0/24")]);
        let delta = element_delta(
            Some(&Contents::Read(current.clone())),
            &add,
            &remove,
            Family::Ipv4,
        );
        assert_eq!(delta.removed, 2);
        assert_eq!(delta.added, 3);
        let deleted: Vec<Element> = ["10.0.2.0/23", "10.0.8.0/24"]
            .iter()
            .flat_map(|n| elements_of(&net(n)))
            .collect();
        assert_eq!(delta.delete, deleted);
        let inserted: Vec<Element> = ["10.0.2.0/24", "10.0.3.0/24", "10.0.9.0/24"]
            .iter()
            .flat_map(|n| elements_of(&net(n)))
            .collect();
        assert_eq!(delta.insert, inserted);
    }

    #[test]
    fn a_range_merged_by_someone_else_is_replaced_by_what_stays() {
        // nft's auto-merge stored 10.0.1.0/24 + 10.0.2.0/24 as one range.
        let merged = StoredRange {
            first: "10.0.1.0".parse().expect("addr"),
            last: "10.0.2.255".parse().expect("addr"),
            elements: Held {
                start: Element {
                    key: Key::new(&[10, 0, 1, 0]).expect("key"),
                    end: false,
                    open: false,
                },
                end: Some(Element {
                    key: Key::new(&[10, 0, 3, 0]).expect("key"),
                    end: true,
                    open: false,
                }),
            },
        };
        let remove = RangeSet::exact([net("10.0.2.0/24")]);
        let delta = element_delta(
            Some(&Contents::Read(vec![merged.clone()])),
            &RangeSet::default(),
            &remove,
            Family::Ipv4,
        );
        assert_eq!(
            delta.delete,
            merged.elements.iter().copied().collect::<Vec<_>>()
        );
        assert_eq!(delta.insert, elements_of(&net("10.0.1.0/24")));
        assert_eq!((delta.added, delta.removed), (0, 1));
    }

    #[test]
    fn a_table_is_cf_allows_by_comment_or_by_its_tagged_contents() {
        let table = |comment: Option<&str>| TableInfo {
            family: FAMILY_INET,
            name: "cf_allow".into(),
            comment: comment.map(str::to_owned),
        };
        assert_eq!(foreign_reason(&table(Some(TAG)), &[], &[], &[]), None);
        assert!(foreign_reason(&table(Some("mine")), &[], &[], &[]).is_some());
        let chain = ChainInfo {
            family: FAMILY_INET,
            table: "cf_allow".into(),
            name: "prerouting".into(),
            hook: None,
            policy: None,
            kind: None,
            comment: None,
        };
        assert!(foreign_reason(&table(None), std::slice::from_ref(&chain), &[], &[]).is_some());
        let set = |name: &str, comment: Option<&str>| SetInfo {
            name: name.into(),
            flags: 0,
            key_type: 7,
            comment: comment.map(str::to_owned),
        };
        assert!(foreign_reason(&table(None), &[], &[set("blocklist", None)], &[]).is_some());
        // An untagged empty table proves nothing: not cf-allow's.
        assert!(foreign_reason(&table(None), &[], &[], &[]).is_some());
        // Kernels without table comments: cf-allow's tagged set proves it.
        assert_eq!(
            foreign_reason(&table(None), &[], &[set(SET_V4, Some(TAG))], &[]),
            None
        );
        // A tagged table holding an admin's chain is cf-allow's, with a foreign object.
        assert_eq!(
            foreign_object(&table(Some(TAG)), std::slice::from_ref(&chain), &[], &[]).as_deref(),
            Some("chain prerouting")
        );
        let rule = |comment: Option<&str>| RuleInfo {
            handle: 7,
            exprs: Vec::new(),
            comment: comment.map(str::to_owned),
        };
        let in_chain = |chain, comment| [(chain, vec![rule(comment)])];
        assert!(
            foreign_object(&table(Some(TAG)), &[], &[], &in_chain(OWN_CHAIN, Some(TAG))).is_none()
        );
        assert!(foreign_object(&table(Some(TAG)), &[], &[], &in_chain(OWN_CHAIN, None)).is_some());
        let forward_chain = ChainInfo {
            name: FORWARD_CHAIN.into(),
            ..chain.clone()
        };
        assert!(foreign_object(&table(Some(TAG)), &[forward_chain], &[], &[]).is_none());
        let untagged = foreign_object(&table(Some(TAG)), &[], &[], &in_chain(FORWARD_CHAIN, None));
        assert!(untagged.is_some_and(|o| o.contains("chain forward")));
    }
}
