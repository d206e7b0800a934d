//! The firewalld backend: reads both configurations, plans, applies with rollback.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cf_allow_diff::{Backend, ChainEnd, Family, Inspection, IpNet, Placement, Plan, RangeSet};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::backups::Backups;
use crate::dbus::{Bus, IpsetSettings, Settings2};
use crate::error::{Error, Result};
use crate::rules::{self, OwnedSet, IPSET_TYPE, SETS, SHORT, TAG};
use crate::settings::Settings;

/// The firewalld backend.
#[derive(Debug)]
pub struct FirewalldBackend {
    settings: Settings,
    ports: Vec<u16>,
    /// The zones cf-allow's rules belong in, as the last read found them.
    zones: Option<Vec<String>>,
}

/// One of cf-allow's ipsets in both configurations.
#[derive(Debug, Default)]
struct SetState {
    runtime: Option<IpsetSettings>,
    permanent: Option<(OwnedObjectPath, IpsetSettings)>,
}

/// A permanent zone: its object and cf-allow's rich rules in it.
#[derive(Debug)]
struct PermZone {
    obj: OwnedObjectPath,
    owned: Vec<String>,
}

/// Everything one operation reads before it decides.
struct Snapshot {
    bus: Bus,
    sets: [SetState; 2],
    /// The zones cf-allow's rules belong in.
    targets: Vec<String>,
    /// cf-allow's rich rules in each runtime zone.
    runtime_rules: BTreeMap<String, Vec<String>>,
    /// cf-allow's rich rules in each permanent zone.
    perm_rules: BTreeMap<String, PermZone>,
    warnings: Vec<String>,
}

/// What undoes one call that was made.
#[derive(Debug)]
enum Undo {
    SetEntries(&'static str, Vec<String>),
    RemoveRule(String, String),
    AddRule(String, String),
    ConfigSetEntries(OwnedObjectPath, Vec<String>),
    ConfigRemoveIpset(OwnedObjectPath),
    /// Remove a rule from a permanent zone; reset the zone to its defaults when it had them.
    ConfigRemoveRule(OwnedObjectPath, String, bool),
    ConfigAddRule(OwnedObjectPath, String),
    Reload,
}

impl FirewalldBackend {
    /// A backend for `settings` opening `ports` (empty: every TCP port).
    pub fn new(settings: Settings, ports: Vec<u16>) -> Result<FirewalldBackend> {
        settings.validate(&ports)?;
        Ok(FirewalldBackend {
            settings,
            ports,
            zones: None,
        })
    }

    fn wanted_rules(&self) -> Vec<String> {
        rules::wanted(&self.ports, self.settings.lockdown)
    }

    fn read(&self) -> Result<Snapshot> {
        let bus = Bus::connect(self.settings.timeout_secs)?;
        let mut warnings = Vec::new();
        let runtime_ipsets: BTreeSet<String> = bus.ipsets()?.into_iter().collect();
        let perm_ipsets: BTreeSet<String> = bus.config_ipset_names()?.into_iter().collect();
        let mut sets: [SetState; 2] = Default::default();
        for (state, set) in sets.iter_mut().zip(SETS) {
            if runtime_ipsets.contains(set.name) {
                let s = bus.ipset_settings(set.name)?;
                check_set(set, &s, "runtime")?;
                state.runtime = Some(s);
            }
            if perm_ipsets.contains(set.name) {
                let obj = bus.config_ipset(set.name)?;
                let s = bus.config_ipset_settings(&obj)?;
                check_set(set, &s, "permanent")?;
                state.permanent = Some((obj, s));
            }
        }
        let runtime_zones = bus.zones()?;
        let perm_zones = bus.config_zone_names()?;
        let mut runtime_rules = BTreeMap::new();
        for zone in &runtime_zones {
            let owned: Vec<String> = bus
                .rich_rules(zone)?
                .into_iter()
                .filter(|r| rules::is_owned(r))
                .collect();
            runtime_rules.insert(zone.clone(), owned);
        }
        let mut perm_rules = BTreeMap::new();
        for zone in &perm_zones {
            let obj = bus.config_zone(zone)?;
            let owned: Vec<String> = bus
                .config_rich_rules(&obj)?
                .into_iter()
                .filter(|r| rules::is_owned(r))
                .collect();
            perm_rules.insert(zone.clone(), PermZone { obj, owned });
        }
        let targets = self.target_zones(&bus, &mut warnings)?;
        for zone in &targets {
            let runtime = runtime_zones.contains(zone);
            let permanent = perm_zones.contains(zone);
            if !runtime || !permanent {
                let missing = match (runtime, permanent) {
                    (false, false) => "runtime and permanent configurations",
                    (false, true) => "runtime configuration",
                    _ => "permanent configuration",
                };
                return Err(Error::Conflict(format!(
                    "firewalld zone {zone:?} does not exist in the {missing}; create it or fix firewalld.zones"
                )));
            }
        }
        for state in &sets {
            for entry in state
                .runtime
                .iter()
                .chain(state.permanent.iter().map(|(_, s)| s))
                .flat_map(|s| &s.entries)
            {
                if parse_entry(entry).is_none() {
                    warnings.push(format!(
                        "ipset entry {entry:?} is not a CIDR; sync removes it"
                    ));
                }
            }
        }
        Ok(Snapshot {
            bus,
            sets,
            targets,
            runtime_rules,
            perm_rules,
            warnings,
        })
    }

    /// `firewalld.zones`, else the zones of the default-route interfaces, else the default zone.
    fn target_zones(&self, bus: &Bus, warnings: &mut Vec<String>) -> Result<Vec<String>> {
        if !self.settings.zones.is_empty() {
            let set: BTreeSet<String> = self.settings.zones.iter().cloned().collect();
            return Ok(set.into_iter().collect());
        }
        let default = bus.default_zone()?;
        let mut zones = BTreeSet::new();
        for iface in crate::routes::default_route_interfaces() {
            let zone = bus.zone_of_interface(&iface)?;
            if zone.is_empty() {
                zones.insert(default.clone());
            } else {
                zones.insert(zone);
            }
        }
        if zones.is_empty() {
            warnings.push(format!(
                "no interface carries a default route; using firewalld's default zone {default:?} (set firewalld.zones to choose)"
            ));
            zones.insert(default);
        }
        Ok(zones.into_iter().collect())
    }
}

/// Refuses an ipset named like cf-allow's that cf-allow did not create, or one of the wrong
/// shape.
fn check_set(set: OwnedSet, s: &IpsetSettings, config: &str) -> Result<()> {
    if s.description != TAG {
        return Err(Error::Conflict(format!(
            "firewalld's {config} configuration has an ipset {} that cf-allow did not create (its description is not {TAG:?}); cf-allow never adopts it: rename or delete it",
            set.name
        )));
    }
    let family = s.options.get("family").map_or("inet", String::as_str);
    if s.kind != IPSET_TYPE || family != set.ipset_family || s.options.contains_key("timeout") {
        return Err(Error::Conflict(format!(
            "cf-allow's {config} ipset {} is {} family {family}{}, not {IPSET_TYPE} family {}; run `cf-allow remove`, then sync again",
            set.name,
            s.kind,
            if s.options.contains_key("timeout") { " with a timeout" } else { "" },
            set.ipset_family
        )));
    }
    Ok(())
}

/// An ipset entry as a network (a bare address is a host route).
fn parse_entry(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
        .filter(|n| n.to_string() == entry || entry.parse::<std::net::IpAddr>().is_ok())
}

/// The networks of `entries`, with the strings firewalld stores them as.
fn entry_map(entries: &[String]) -> BTreeMap<IpNet, String> {
    entries
        .iter()
        .filter_map(|e| parse_entry(e).map(|n| (n, e.clone())))
        .collect()
}

/// The entries `plan` wants in `set`'s ipset, as strings.
fn desired_entries(plan: &Plan, family: Family) -> BTreeMap<IpNet, String> {
    plan.desired
        .iter_family(family)
        .map(|n| (n, n.to_string()))
        .collect()
}

/// The entries to add to and remove from `current` to get `desired`.
fn delta(current: &[String], desired: &BTreeMap<IpNet, String>) -> (Vec<String>, Vec<String>) {
    let have = entry_map(current);
    let add = desired
        .iter()
        .filter(|(n, _)| !have.contains_key(n))
        .map(|(_, s)| s.clone())
        .collect();
    let mut remove: Vec<String> = current
        .iter()
        .filter(|e| parse_entry(e).is_none_or(|n| !desired.contains_key(&n)))
        .cloned()
        .collect();
    remove.dedup();
    (add, remove)
}

/// True when the entry `entry` overlaps any network in `others`.
fn overlaps_any(entry: &str, others: &[String]) -> bool {
    let Some(net) = parse_entry(entry) else {
        return false;
    };
    others
        .iter()
        .filter_map(|o| parse_entry(o))
        .any(|o| o.contains(&net) || net.contains(&o))
}

impl Snapshot {
    fn has_any(&self) -> bool {
        self.sets
            .iter()
            .any(|s| s.runtime.is_some() || s.permanent.is_some())
            || self.runtime_rules.values().any(|r| !r.is_empty())
            || self.perm_rules.values().any(|z| !z.owned.is_empty())
    }

    /// What differs structurally from the wanted layout, in firewalld's words.
    fn repairs(&self, wanted: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (state, set) in self.sets.iter().zip(SETS) {
            match (&state.runtime, &state.permanent) {
                (_, None) => out.push(format!(
                    "create ipset {} ({IPSET_TYPE}, family {}) in the permanent configuration",
                    set.name, set.ipset_family
                )),
                (Some(rt), Some((_, perm))) => {
                    let want = entry_map(&rt.entries);
                    let (add, remove) = delta(&perm.entries, &want);
                    if !add.is_empty() || !remove.is_empty() {
                        out.push(format!(
                            "permanent ipset {} differs from the runtime one (+{} -{} entries): make them equal",
                            set.name,
                            add.len(),
                            remove.len()
                        ));
                    }
                }
                (None, Some(_)) => {}
            }
            if state.runtime.is_none() {
                out.push(format!(
                    "load ipset {} into the runtime configuration (firewall-cmd --reload)",
                    set.name
                ));
            }
        }
        for zone in &self.targets {
            for rule in wanted {
                if !self
                    .runtime_rules
                    .get(zone)
                    .is_some_and(|r| r.contains(rule))
                {
                    out.push(format!("zone {zone}: add rich rule '{rule}' (runtime)"));
                }
                if !self
                    .perm_rules
                    .get(zone)
                    .is_some_and(|z| z.owned.contains(rule))
                {
                    out.push(format!("zone {zone}: add rich rule '{rule}' (permanent)"));
                }
            }
        }
        for (zone, owned) in &self.runtime_rules {
            for rule in owned.iter().filter(|r| !self.wants(zone, r, wanted)) {
                out.push(format!("zone {zone}: remove rich rule '{rule}' (runtime)"));
            }
        }
        for (zone, z) in &self.perm_rules {
            for rule in z.owned.iter().filter(|r| !self.wants(zone, r, wanted)) {
                out.push(format!(
                    "zone {zone}: remove rich rule '{rule}' (permanent)"
                ));
            }
        }
        out
    }

    fn wants(&self, zone: &str, rule: &str, wanted: &[String]) -> bool {
        self.targets.iter().any(|z| z == zone) && wanted.iter().any(|r| r == rule)
    }

    /// Refuses a reload that would discard runtime-only changes of the admin: every zone,
    /// policy and ipset except cf-allow's must be equal in both configurations (interface
    /// bindings and direct rules survive a reload and are not compared).
    fn check_reload_safe(&self, action: &'static str) -> Result<()> {
        let bus = &self.bus;
        let mut diffs = Vec::new();
        let rt_zones: BTreeSet<String> = self.runtime_rules.keys().cloned().collect();
        let perm_zones: BTreeSet<String> = self.perm_rules.keys().cloned().collect();
        for zone in rt_zones.symmetric_difference(&perm_zones) {
            diffs.push(format!("zone {zone} exists in only one"));
        }
        for zone in rt_zones.intersection(&perm_zones) {
            let rt = bus.zone_settings(zone)?;
            let perm = match self.perm_rules.get(zone) {
                Some(z) => bus.config_zone_settings(&z.obj)?,
                None => continue,
            };
            for key in differing_keys(&rt, &perm, &["interfaces"]) {
                diffs.push(format!("zone {zone}: {key}"));
            }
        }
        let rt_pol: BTreeSet<String> = bus.policies()?.into_iter().collect();
        let perm_pol: BTreeSet<String> = bus.config_policy_names()?.into_iter().collect();
        for p in rt_pol.symmetric_difference(&perm_pol) {
            diffs.push(format!("policy {p} exists in only one"));
        }
        for p in rt_pol.intersection(&perm_pol) {
            let rt = bus.policy_settings(p)?;
            let perm = bus.config_policy_settings(p)?;
            for key in differing_keys(&rt, &perm, &[]) {
                diffs.push(format!("policy {p}: {key}"));
            }
        }
        let ours = |n: &String| SETS.iter().any(|s| s.name == n);
        let rt_sets: BTreeSet<String> = bus.ipsets()?.into_iter().filter(|n| !ours(n)).collect();
        let perm_sets: BTreeSet<String> = bus
            .config_ipset_names()?
            .into_iter()
            .filter(|n| !ours(n))
            .collect();
        for s in rt_sets.symmetric_difference(&perm_sets) {
            diffs.push(format!("ipset {s} exists in only one"));
        }
        for s in rt_sets.intersection(&perm_sets) {
            let rt = bus.ipset_settings(s)?;
            let perm = bus.config_ipset_settings(&bus.config_ipset(s)?)?;
            let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
            if sorted(&rt.entries) != sorted(&perm.entries) {
                diffs.push(format!("ipset {s}: entries"));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(Error::RuntimeOnlyChanges {
                differences: diffs.join(", "),
                action,
            })
        }
    }
}

/// Keys whose values differ between two settings dictionaries (cf-allow's rich rules and the
/// keys in `skip` left out; lists compared as sets).
fn differing_keys(a: &Settings2, b: &Settings2, skip: &[&str]) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter(|k| norm_opt(a.get(*k), k) != norm_opt(b.get(*k), k))
        .cloned()
        .collect()
}

fn norm_opt(v: Option<&OwnedValue>, key: &str) -> String {
    v.map(|v| norm(v, key == "rules_str")).unwrap_or_default()
}

/// A canonical text of a D-Bus value: arrays sorted; an empty array equals a missing key;
/// with `drop_owned`, cf-allow's rich rules are left out.
fn norm(v: &Value, drop_owned: bool) -> String {
    match v {
        Value::Array(a) => {
            let mut items: Vec<String> = a
                .iter()
                .filter(|i| {
                    !(drop_owned && matches!(i, Value::Str(s) if rules::is_owned(s.as_str())))
                })
                .map(|i| norm(i, false))
                .collect();
            items.sort();
            if items.is_empty() {
                String::new()
            } else {
                format!("[{}]", items.join(","))
            }
        }
        Value::Structure(s) => {
            let f: Vec<String> = s.fields().iter().map(|i| norm(i, false)).collect();
            format!("({})", f.join(","))
        }
        Value::Value(inner) => norm(inner, drop_owned),
        other => format!("{other:?}"),
    }
}

/// Makes the calls and remembers how to undo each.
struct Txn<'a> {
    bus: &'a Bus,
    undo: Vec<Undo>,
    backups: Backups,
    writes: usize,
}

impl<'a> Txn<'a> {
    fn new(bus: &'a Bus) -> Self {
        Txn {
            bus,
            undo: Vec::new(),
            backups: Backups::default(),
            writes: 0,
        }
    }

    /// Remembers, before the first entry call on `set` in this run, how to put its entries
    /// back exactly (in firewalld's order).
    fn touch_set(&mut self, set: &'static str, original: &[String]) {
        let seen = self
            .undo
            .iter()
            .any(|u| matches!(u, Undo::SetEntries(s, _) if *s == set));
        if !seen {
            self.undo.push(Undo::SetEntries(set, original.to_vec()));
        }
    }

    fn add_entries(
        &mut self,
        set: &'static str,
        original: &[String],
        current_empty: bool,
        add: &[String],
    ) -> Result<()> {
        if add.is_empty() {
            return Ok(());
        }
        self.touch_set(set, original);
        if current_empty {
            self.writes += 1;
            return self.bus.set_entries(set, add);
        }
        for e in add {
            self.writes += 1;
            self.bus.add_entry(set, e)?;
        }
        Ok(())
    }

    fn remove_entries(
        &mut self,
        set: &'static str,
        original: &[String],
        remove: &[String],
    ) -> Result<()> {
        if remove.is_empty() {
            return Ok(());
        }
        self.touch_set(set, original);
        for e in remove {
            self.writes += 1;
            self.bus.remove_entry(set, e)?;
        }
        Ok(())
    }

    fn add_rule(&mut self, zone: &str, rule: &str) -> Result<()> {
        self.writes += 1;
        self.bus.add_rich_rule(zone, rule)?;
        self.undo.push(Undo::RemoveRule(zone.into(), rule.into()));
        Ok(())
    }

    fn remove_rule(&mut self, zone: &str, rule: &str) -> Result<()> {
        self.writes += 1;
        self.bus.remove_rich_rule(zone, rule)?;
        self.undo.push(Undo::AddRule(zone.into(), rule.into()));
        Ok(())
    }

    fn config_set_entries(
        &mut self,
        name: &str,
        obj: &OwnedObjectPath,
        old: &[String],
        new: &[String],
    ) -> Result<()> {
        self.writes += 1;
        self.backups.save(Backups::ipset(name));
        self.bus.config_set_entries(obj, new)?;
        self.undo
            .push(Undo::ConfigSetEntries(obj.clone(), old.to_vec()));
        Ok(())
    }

    fn config_add_ipset(&mut self, set: OwnedSet, entries: Vec<String>) -> Result<()> {
        let settings = IpsetSettings {
            version: String::new(),
            short: SHORT.into(),
            description: TAG.into(),
            kind: IPSET_TYPE.into(),
            options: HashMap::from([("family".to_string(), set.ipset_family.to_string())]),
            entries,
        };
        self.writes += 1;
        self.backups.save(Backups::ipset(set.name));
        let obj = self.bus.config_add_ipset(set.name, &settings)?;
        self.undo.push(Undo::ConfigRemoveIpset(obj));
        Ok(())
    }

    fn config_add_rule(&mut self, zone: &str, obj: &OwnedObjectPath, rule: &str) -> Result<()> {
        let was_default = self.bus.config_zone_default(obj)?;
        self.writes += 1;
        self.backups.save(Backups::zone(zone));
        self.bus.config_add_rich_rule(obj, rule)?;
        self.undo.push(Undo::ConfigRemoveRule(
            obj.clone(),
            rule.into(),
            was_default,
        ));
        Ok(())
    }

    fn config_remove_rule(&mut self, zone: &str, obj: &OwnedObjectPath, rule: &str) -> Result<()> {
        self.writes += 1;
        self.backups.save(Backups::zone(zone));
        self.bus.config_remove_rich_rule(obj, rule)?;
        self.undo
            .push(Undo::ConfigAddRule(obj.clone(), rule.into()));
        Ok(())
    }

    fn reload(&mut self) -> Result<()> {
        self.writes += 1;
        self.bus.reload()?;
        self.undo.push(Undo::Reload);
        Ok(())
    }

    /// Undoes every call made, newest first; a reload is undone by reloading again once the
    /// permanent configuration is back (it was equal to the runtime one before).
    fn rollback(&mut self) -> std::result::Result<(), String> {
        let mut failures = Vec::new();
        let mut reload = false;
        let mut defaults: Vec<OwnedObjectPath> = Vec::new();
        while let Some(u) = self.undo.pop() {
            let b = self.bus;
            let r = match &u {
                Undo::SetEntries(s, v) => b.set_entries(s, v),
                Undo::RemoveRule(z, r) => b.remove_rich_rule(z, r),
                Undo::AddRule(z, r) => b.add_rich_rule(z, r),
                Undo::ConfigSetEntries(o, v) => b.config_set_entries(o, v),
                Undo::ConfigRemoveIpset(o) => b.config_remove_ipset(o),
                Undo::ConfigRemoveRule(o, r, was_default) => {
                    if *was_default && !defaults.contains(o) {
                        defaults.push(o.clone());
                    }
                    b.config_remove_rich_rule(o, r)
                }
                Undo::ConfigAddRule(o, r) => b.config_add_rich_rule(o, r),
                Undo::Reload => {
                    reload = true;
                    Ok(())
                }
            };
            if let Err(e) = r {
                failures.push(format!("{u:?}: {e}"));
            }
        }
        for obj in defaults {
            if let Err(e) = self.bus.config_zone_load_defaults(&obj) {
                failures.push(format!("loadDefaults {}: {e}", obj.as_str()));
            }
        }
        if reload {
            if let Err(e) = self.bus.reload() {
                failures.push(format!("reload: {e}"));
            }
        }
        self.backups.restore();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Runs `f`; on error undoes what it did.
    fn run(mut self, f: impl FnOnce(&mut Txn<'a>) -> Result<()>) -> Result<usize> {
        match f(&mut self) {
            Ok(()) => {
                self.backups.restore();
                Ok(self.writes)
            }
            Err(error) => {
                tracing::debug!(
                    "rolling back {} firewalld calls after: {error}",
                    self.undo.len()
                );
                match self.rollback() {
                    Ok(()) => Err(error),
                    Err(undo) => Err(Error::RollbackFailed {
                        error: Box::new(error),
                        undo,
                    }),
                }
            }
        }
    }
}

/// Resets a permanent zone whose settings equal its defaults back to them (firewalld then
/// deletes its copy in /etc/firewalld/zones, as before cf-allow wrote it); leaves every other
/// zone as it is.
fn restore_defaults_if_equal(
    bus: &Bus,
    zone: &str,
    obj: &OwnedObjectPath,
    backups: &mut Backups,
) -> Result<()> {
    if bus.config_zone_default(obj)? {
        return Ok(());
    }
    let now = bus.config_zone_settings(obj)?;
    backups.save(Backups::zone(zone));
    match bus.config_zone_load_defaults(obj) {
        Ok(()) => {}
        // A zone of the admin's own has no defaults.
        Err(Error::Refused { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    let defaults = bus.config_zone_settings(obj)?;
    if !differing_keys(&now, &defaults, &[]).is_empty() {
        bus.config_zone_update(obj, &now)?;
    }
    Ok(())
}

impl Backend for FirewalldBackend {
    type Error = Error;

    fn name(&self) -> &'static str {
        "firewalld"
    }

    /// Once [`Backend::inspect`] has found the zones: cf-allow's rich rules accept at the end
    /// of each zone's `_allow` chain (`inet firewalld filter_IN_ZONE_allow` with firewalld's
    /// nftables backend, `IN_ZONE_allow` in the filter tables with its iptables backend),
    /// after the zone's priority-0 denies. `None` before that, and with lockdown (its drops
    /// at priority -1 are not projected).
    fn placement(&self) -> Option<Placement> {
        if self.settings.lockdown {
            return None;
        }
        let zones = self.zones.as_ref()?;
        let end = |legacy: bool, family: &str, table: &str, chain: String| ChainEnd {
            legacy,
            family: family.to_owned(),
            table: table.to_owned(),
            chain,
        };
        let mut chains = Vec::new();
        for zone in zones {
            chains.push(end(
                false,
                "inet",
                "firewalld",
                format!("filter_IN_{zone}_allow"),
            ));
            for legacy in [false, true] {
                for family in ["ip", "ip6"] {
                    chains.push(end(legacy, family, "filter", format!("IN_{zone}_allow")));
                }
            }
        }
        Some(Placement::ChainEnds { chains })
    }

    fn inspect(&mut self) -> Result<Inspection> {
        let snap = self.read()?;
        self.zones = Some(snap.targets.clone());
        let mut ranges = Vec::new();
        for state in &snap.sets {
            if let Some(rt) = &state.runtime {
                ranges.extend(entry_map(&rt.entries).into_keys());
            }
        }
        let wanted = self.wanted_rules();
        Ok(Inspection {
            ranges: RangeSet::exact(ranges),
            present: snap.has_any(),
            repairs: snap.repairs(&wanted),
            warnings: snap.warnings.clone(),
        })
    }

    fn apply(&mut self, plan: &Plan) -> Result<()> {
        let snap = self.read()?;
        let wanted = self.wanted_rules();
        let need_reload = snap.sets.iter().any(|s| s.runtime.is_none());
        if need_reload {
            snap.check_reload_safe("creating cf-allow's ipsets in the runtime configuration")?;
        }
        let bus = &snap.bus;
        let writes = Txn::new(bus).run(|t| {
            if !need_reload {
                // Runtime first: that is where a bad entry is refused before anything permanent changes.
                for (state, set) in snap.sets.iter().zip(SETS) {
                    let Some(rt) = &state.runtime else { continue };
                    let (add, remove) = delta(&rt.entries, &desired_entries(plan, set.family));
                    // firewalld refuses an entry that overlaps one in the set: those go
                    // first; every other removal waits until the additions are in.
                    let (first, later): (Vec<String>, Vec<String>) =
                        remove.into_iter().partition(|r| overlaps_any(r, &add));
                    t.remove_entries(set.name, &rt.entries, &first)?;
                    t.add_entries(set.name, &rt.entries, rt.entries.len() == first.len(), &add)?;
                    t.remove_entries(set.name, &rt.entries, &later)?;
                }
                for zone in &snap.targets {
                    for rule in &wanted {
                        if !snap
                            .runtime_rules
                            .get(zone)
                            .is_some_and(|r| r.contains(rule))
                        {
                            t.add_rule(zone, rule)?;
                        }
                    }
                }
                for (zone, owned) in &snap.runtime_rules {
                    for rule in owned.iter().filter(|r| !snap.wants(zone, r, &wanted)) {
                        t.remove_rule(zone, rule)?;
                    }
                }
            }
            for (state, set) in snap.sets.iter().zip(SETS) {
                let want = desired_entries(plan, set.family);
                match &state.permanent {
                    None => t.config_add_ipset(set, want.into_values().collect())?,
                    Some((obj, perm)) => {
                        let (add, remove) = delta(&perm.entries, &want);
                        if !add.is_empty() || !remove.is_empty() {
                            let new: Vec<String> = want.into_values().collect();
                            t.config_set_entries(set.name, obj, &perm.entries, &new)?;
                        }
                    }
                }
            }
            for zone in &snap.targets {
                let Some(z) = snap.perm_rules.get(zone) else {
                    continue;
                };
                for rule in &wanted {
                    if !z.owned.contains(rule) {
                        t.config_add_rule(zone, &z.obj, rule)?;
                    }
                }
            }
            for (zone, z) in &snap.perm_rules {
                for rule in z.owned.iter().filter(|r| !snap.wants(zone, r, &wanted)) {
                    t.config_remove_rule(zone, &z.obj, rule)?;
                }
            }
            if need_reload {
                t.reload()?;
                let loaded = bus.ipsets()?;
                if let Some(set) = SETS.iter().find(|s| !loaded.iter().any(|n| n == s.name)) {
                    return Err(Error::Conflict(format!(
                        "firewalld did not load ipset {} on reload; see its log",
                        set.name
                    )));
                }
            }
            Ok(())
        })?;
        tracing::debug!("firewalld: {writes} D-Bus writes");
        Ok(())
    }

    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>> {
        let snap = self.read()?;
        let mut lines = Vec::new();
        for (zone, owned) in &snap.runtime_rules {
            for rule in owned {
                lines.push(format!("zone {zone}: rich rule '{rule}' (runtime)"));
            }
        }
        for (zone, z) in &snap.perm_rules {
            for rule in &z.owned {
                lines.push(format!("zone {zone}: rich rule '{rule}' (permanent)"));
            }
        }
        for (state, set) in snap.sets.iter().zip(SETS) {
            if let Some(rt) = &state.runtime {
                lines.push(format!(
                    "ipset {} with {} entries (runtime)",
                    set.name,
                    rt.entries.len()
                ));
            }
            if let Some((_, perm)) = &state.permanent {
                lines.push(format!(
                    "ipset {} with {} entries (permanent)",
                    set.name,
                    perm.entries.len()
                ));
            }
        }
        let runtime_sets = snap.sets.iter().any(|s| s.runtime.is_some());
        let reload_ok = if runtime_sets {
            match snap.check_reload_safe("deleting cf-allow's runtime ipsets") {
                Ok(()) => true,
                Err(Error::RuntimeOnlyChanges { differences, .. }) => {
                    lines.push(format!(
                        "(runtime ipsets are emptied, not deleted: deleting them needs a reload, which would discard your runtime-only changes ({differences}); they go at the next `firewall-cmd --reload`)"
                    ));
                    false
                }
                Err(e) => return Err(e),
            }
        } else {
            false
        };
        if dry_run || lines.is_empty() {
            return Ok(lines);
        }
        let bus = &snap.bus;
        let mut touched_zones: Vec<(&String, &OwnedObjectPath)> = Vec::new();
        Txn::new(bus).run(|t| {
            for (zone, owned) in &snap.runtime_rules {
                for rule in owned {
                    t.remove_rule(zone, rule)?;
                }
            }
            for (zone, z) in &snap.perm_rules {
                for rule in &z.owned {
                    t.config_remove_rule(zone, &z.obj, rule)?;
                }
                if !z.owned.is_empty() {
                    touched_zones.push((zone, &z.obj));
                }
            }
            for (state, set) in snap.sets.iter().zip(SETS) {
                if let Some(rt) = &state.runtime {
                    if !reload_ok && !rt.entries.is_empty() {
                        t.touch_set(set.name, &rt.entries);
                        t.writes += 1;
                        bus.set_entries(set.name, &[])?;
                    }
                }
            }
            Ok(())
        })?;
        // Past this point nothing of cf-allow's is in use: delete the permanent ipsets (and
        // their backups), reload to drop the runtime ones, put built-in zones back to their
        // defaults when only cf-allow's rules made them differ.
        let mut backups = Backups::default();
        for (state, set) in snap.sets.iter().zip(SETS) {
            if let Some((obj, _)) = &state.permanent {
                bus.config_remove_ipset(obj)?;
                if let Err(e) = std::fs::remove_file(Backups::ipset(set.name)) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(
                            "cannot delete firewalld's backup of ipset {}: {e}",
                            set.name
                        );
                    }
                }
            }
        }
        for (zone, obj) in touched_zones {
            restore_defaults_if_equal(bus, zone, obj, &mut backups)?;
        }
        backups.restore();
        if reload_ok {
            bus.reload()?;
        }
        Ok(lines)
    }
}
