//! [`IptablesBackend`]: reads both families' filter tables (and cf-allow's ipsets) from the
//! kernel, and changes them with one `iptables-restore --noflush` transaction per family.

use std::collections::BTreeSet;

use cf_allow_diff::{Backend, Family, Inspection, IpNet, Placement, Plan, RangeSet};
use tracing::{debug, error, info, warn};

use crate::edit::{
    effective_hooks, foreign_references, owner, plan_family, rollback_commands, FamilyEdit, Owner,
};
use crate::exec::Program;
use crate::ipset::{add_line, create_line, owned_names, Ipset, SetHeader};
use crate::rules::{is_tmp_set, set_name, tmp_set_name, tool, ChainKind};
use crate::saved::{source, target, FilterTable};
use crate::settings::{Layout, Settings, Variant, DOCKER_USER};
use crate::Error;

/// cf-allow's iptables/ip6tables backend.
pub struct IptablesBackend {
    layout: Layout,
    variant: Variant,
    lock_wait_secs: u32,
    /// What the last `inspect` read, used by the `apply` that follows it.
    snapshot: Option<Snapshot>,
    /// Whether the last `inspect` found Docker's `DOCKER-USER` chain (either family).
    docker_user_seen: Option<bool>,
}

/// The kernel state cf-allow looks at, read in one go.
#[derive(Clone, Debug)]
struct Snapshot {
    /// The filter tables, IPv4 then IPv6.
    tables: [FilterTable; 2],
    /// Warnings from reading them (another variant's tables present, …).
    warnings: Vec<String>,
    /// cf-allow's sets that exist, with their reference and entry counts.
    sets: Vec<SetHeader>,
    /// The live sets' members (ipset mode only), IPv4 then IPv6.
    live: [Option<Vec<IpNet>>; 2],
}

impl Snapshot {
    fn table(&self, family: Family) -> &FilterTable {
        &self.tables[index(family)]
    }

    fn set(&self, name: &str) -> Option<&SetHeader> {
        self.sets.iter().find(|s| s.name == name)
    }

    fn has_set(&self, name: &str) -> bool {
        self.set(name).is_some()
    }
}

fn index(family: Family) -> usize {
    match family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    }
}

/// What `apply` did to the sets, so it can be undone.
#[derive(Debug, Default)]
struct SetChanges {
    /// Live sets that did not exist before.
    created: Vec<&'static str>,
    /// Families whose tmp set was swapped with the live one (tmp now holds the old members).
    swapped: Vec<Family>,
    /// `ipset restore` lines that undo the in-place additions and deletions, in order.
    undo: Vec<String>,
}

impl IptablesBackend {
    /// A backend for `settings`; `ports` are the TCP destination ports opened to Cloudflare
    /// (empty = all ports). Validates everything; runs no program.
    pub fn new(settings: Settings, ports: Vec<u16>) -> Result<IptablesBackend, Error> {
        let layout = Layout::new(&settings, &ports)?;
        Ok(IptablesBackend {
            layout,
            variant: settings.variant,
            lock_wait_secs: settings.lock_wait_secs,
            snapshot: None,
            docker_user_seen: None,
        })
    }

    /// True when either family's filter table has Docker's `DOCKER-USER` chain (read now;
    /// a table that cannot be read counts as without it).
    fn docker_user_exists(&self) -> bool {
        [Family::Ipv4, Family::Ipv6].into_iter().any(|family| {
            self.read_table(family, &mut Vec::new())
                .is_ok_and(|table| table.has_chain(DOCKER_USER))
        })
    }

    /// The `<tool>-save` and `<tool>-restore` programs for one family.
    fn programs(&self, family: Family) -> (Program, Program) {
        (
            Program::new(self.variant.program(tool(family), "-save"), "iptables"),
            Program::new(self.variant.program(tool(family), "-restore"), "iptables"),
        )
    }

    fn read_table(&self, family: Family, warnings: &mut Vec<String>) -> Result<FilterTable, Error> {
        let (save, _) = self.programs(family);
        let out = save.run(&["-t", "filter"], None, self.lock_wait_secs)?;
        if crate::legacy_tables_present(&String::from_utf8_lossy(&out.stderr)) {
            warnings.push(format!(
                "{tool}: {tool}-legacy also holds tables on this host and cf-allow manages the nf_tables ones; if your firewall lives in {tool}-legacy, set iptables.variant: legacy",
                tool = tool(family)
            ));
        }
        FilterTable::parse(&String::from_utf8_lossy(&out.stdout), &save.name)
    }

    /// Reads the tables and cf-allow's sets. A set with one of cf-allow's names that
    /// cf-allow did not create is an error when `strict` and the layout uses it (sync),
    /// and otherwise left out of the snapshot, so that nothing touches it.
    fn read_snapshot(&self, strict: bool) -> Result<Snapshot, Error> {
        let mut warnings = Vec::new();
        let tables = [
            self.read_table(Family::Ipv4, &mut warnings)?,
            self.read_table(Family::Ipv6, &mut warnings)?,
        ];
        let ipset = Ipset::new();
        let all_sets = if self.layout.ipset {
            ipset.list()?
        } else if Ipset::installed() {
            // Only to find sets left over from ipset mode; no ipset support is fine here.
            ipset.list().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut snapshot = Snapshot {
            tables,
            warnings,
            sets: all_sets
                .into_iter()
                .filter(|s| owned_names().contains(&s.name.as_str()))
                .collect(),
            live: [None, None],
        };
        let headers = std::mem::take(&mut snapshot.sets);
        // The members the ownership check read, so that no set is saved twice.
        let mut members: Vec<(String, Vec<IpNet>)> = Vec::new();
        for header in headers {
            match self.set_owner(&snapshot, &header) {
                Ok(read) => {
                    members.extend(read.map(|read| (header.name.clone(), read)));
                    snapshot.sets.push(header)
                }
                Err(reason) if strict && self.layout.ipset && !is_tmp_set(&header.name) => {
                    return Err(Error::Foreign(reason))
                }
                Err(reason) => warn!("{reason}"),
            }
        }
        if self.layout.ipset {
            for family in Family::ALL {
                let name = set_name(family);
                if snapshot.has_set(name) {
                    let live = match members.iter().position(|(n, _)| n == name) {
                        Some(i) => members.swap_remove(i).1,
                        None => ipset.read(name, family)?,
                    };
                    snapshot.live[index(family)] = Some(live);
                }
            }
        }
        Ok(snapshot)
    }

    /// Whether the set `header` (one of cf-allow's names) is cf-allow's: it has the
    /// `comment` extension and every member carries cf-allow's comment, or (a set of a
    /// version before the tag) rules use it and all of them are in cf-allow's chains.
    /// `Ok(Some(members))` when the check had to read the members.
    fn set_owner(
        &self,
        snapshot: &Snapshot,
        header: &SetHeader,
    ) -> Result<Option<Vec<IpNet>>, String> {
        let name = &header.name;
        if header.comment {
            let family = if name.contains("v6") {
                Family::Ipv6
            } else {
                Family::Ipv4
            };
            return Ipset::new()
                .read(name, family)
                .map(Some)
                .map_err(|err| err.to_string());
        }
        let refs = header.counts().map(|(refs, _)| refs).unwrap_or(0);
        if refs > 0 && refs == self.own_set_references(snapshot, name) {
            return Ok(None);
        }
        Err(format!(
            "the ipset {name} exists but was not created by cf-allow (it has no `comment` extension with members tagged \"cf-allow\", and no rule of cf-allow's uses it); cf-allow neither changes nor destroys it: rename or destroy it, or turn iptables.ipset off"
        ))
    }

    /// The ranges cf-allow's objects hold for one family, exactly as stored.
    fn current_ranges(&self, snapshot: &Snapshot, family: Family) -> Vec<IpNet> {
        if self.layout.ipset {
            return snapshot.live[index(family)].clone().unwrap_or_default();
        }
        let table = snapshot.table(family);
        let mut chains = vec![self.layout.main.as_str()];
        if effective_hooks(&self.layout, table).contains(&DOCKER_USER) {
            chains.push(&self.layout.docker);
        }
        chains
            .into_iter()
            .flat_map(|chain| table.rules_of(chain))
            .filter(|spec| target(spec) == Some("ACCEPT"))
            .filter_map(|spec| source(spec)?.parse::<IpNet>().ok())
            .filter(|net| Family::of(net) == family)
            .collect()
    }

    /// How many rules in cf-allow's chains (both families) use the set `name`.
    fn own_set_references(&self, snapshot: &Snapshot, name: &str) -> usize {
        let needle = format!("--match-set {name} ");
        snapshot
            .tables
            .iter()
            .flat_map(|t| {
                [
                    t.rules_of(&self.layout.main),
                    t.rules_of(&self.layout.docker),
                ]
            })
            .flatten()
            .filter(|spec| spec.contains(&needle))
            .count()
    }

    /// Sets to destroy besides tmp sets of this run: leftovers, and in rule mode every set of
    /// ipset mode that only cf-allow's rules use. Returns (names, notes, warnings).
    fn stale_sets(&self, snapshot: &Snapshot) -> (Vec<&'static str>, Vec<String>, Vec<String>) {
        let (mut names, mut notes, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
        for family in Family::ALL {
            let tmp = tmp_set_name(family);
            if snapshot.has_set(tmp) {
                names.push(tmp);
                notes.push(format!("ipset: destroy the leftover set {tmp}"));
            }
            let live = set_name(family);
            let Some(header) = snapshot.set(live).filter(|_| !self.layout.ipset) else {
                continue;
            };
            let used = header.counts().map(|(refs, _)| refs).unwrap_or(0);
            if used > self.own_set_references(snapshot, live) {
                warnings.push(format!(
                    "ipset: the set {live} is left from ipset mode but rules cf-allow did not create use it; left in place"
                ));
            } else {
                names.push(live);
                notes.push(format!(
                    "ipset: destroy the set {live} (iptables.ipset is off)"
                ));
            }
        }
        (names, notes, warnings)
    }

    /// Every family's edit towards `ranges`, computed before anything is changed.
    fn plan_edits(
        &self,
        snapshot: &Snapshot,
        ranges: &RangeSet,
    ) -> Result<Vec<(Family, FamilyEdit)>, Error> {
        Family::ALL
            .into_iter()
            .map(|family| {
                let wanted: Vec<IpNet> = ranges.iter_family(family).collect();
                plan_family(&self.layout, snapshot.table(family), family, &wanted)
                    .map(|edit| (family, edit))
            })
            .collect()
    }

    /// Runs one family's `commands` in one `iptables-restore --noflush` transaction.
    fn restore(&self, family: Family, commands: &[String]) -> Result<(), Error> {
        let (_, restore) = self.programs(family);
        let mut script = String::from("*filter\n");
        for command in commands {
            script.push_str(command);
            script.push('\n');
        }
        script.push_str("COMMIT\n");
        debug!(family = tool(family), script, "iptables-restore input");
        let wait = self.lock_wait_secs.to_string();
        restore
            .run(
                &["-w", &wait, "--noflush"],
                Some(&script),
                self.lock_wait_secs,
            )
            .map(|_| ())
    }

    /// Puts families that were already changed back as they were in `snapshot`.
    fn roll_back_families(&self, snapshot: &Snapshot, done: &[Family]) {
        for &family in done {
            let mut ignored = Vec::new();
            let result = self.read_table(family, &mut ignored).and_then(|now| {
                let commands = rollback_commands(&self.layout, snapshot.table(family), &now);
                self.restore(family, &commands)
            });
            match result {
                Ok(()) => info!("{}: rolled back to the state before this run", tool(family)),
                Err(err) => error!(
                    "{}: could not roll back after the other family failed: {err}",
                    tool(family)
                ),
            }
        }
    }

    /// Brings the live sets to `desired` in one `ipset restore`: a set that exists is
    /// updated in place (the missing members added first, then the unwanted ones deleted,
    /// so a member that stays wanted is never missing, and the work is proportional to the
    /// change); a missing set is created and filled; a set too small for the new list
    /// (`maxelem`) is rebuilt in a tmp set and swapped in.
    fn update_sets(&self, snapshot: &Snapshot, desired: &RangeSet) -> Result<SetChanges, Error> {
        let mut changes = SetChanges::default();
        let mut lines: Vec<String> = Vec::new();
        let mut swaps: Vec<(usize, Family)> = Vec::new();
        for family in Family::ALL {
            let tmp = tmp_set_name(family);
            if snapshot.has_set(tmp) {
                lines.push(format!("destroy {tmp}"));
            }
        }
        let mut planned_swaps = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        let (mut added, mut deleted) = (0usize, 0usize);
        for family in Family::ALL {
            let live = set_name(family);
            let mut want: Vec<IpNet> = desired.iter_family(family).collect();
            want.sort();
            match &snapshot.live[index(family)] {
                None => {
                    lines.push(create_line(live, family, want.len()));
                    lines.extend(want.iter().map(|net| add_line(live, net)));
                    changes.created.push(live);
                }
                Some(current) => {
                    let have: BTreeSet<&IpNet> = current.iter().collect();
                    let wanted: BTreeSet<&IpNet> = want.iter().collect();
                    // A set of a version before the tag has no `comment` extension: it
                    // is rebuilt (with the tag) and swapped in.
                    let fits = snapshot
                        .set(live)
                        .filter(|header| header.comment)
                        .and_then(SetHeader::maxelem)
                        .is_some_and(|max| want.len() <= max);
                    if have == wanted {
                        continue;
                    }
                    if !fits {
                        let tmp = tmp_set_name(family);
                        lines.push(create_line(tmp, family, want.len()));
                        lines.extend(want.iter().map(|net| add_line(tmp, net)));
                        planned_swaps.push(family);
                        continue;
                    }
                    for net in wanted.difference(&have) {
                        lines.push(add_line(live, net));
                        changes.undo.push(format!("del {live} {net}"));
                        added += 1;
                    }
                    for net in have.difference(&wanted) {
                        deletes.push(format!("del {live} {net}"));
                        changes.undo.push(add_line(live, net));
                        deleted += 1;
                    }
                }
            }
        }
        // Every family's additions before any deletion.
        lines.extend(deletes);
        for family in planned_swaps {
            lines.push(format!(
                "swap {} {}",
                tmp_set_name(family),
                set_name(family)
            ));
            swaps.push((lines.len(), family));
        }
        if lines.is_empty() {
            return Ok(changes);
        }
        let script = lines.join("\n") + "\n";
        match Ipset::new().restore(&script) {
            Ok(()) => {
                changes.swapped = swaps.into_iter().map(|(_, f)| f).collect();
                info!(
                    "ipset: updated the sets in place (+{added} -{deleted} members){}{}",
                    if changes.created.is_empty() {
                        String::new()
                    } else {
                        format!(", created {}", changes.created.join(", "))
                    },
                    if changes.swapped.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", rebuilt {} set(s) too small for the list (tmp set + swap)",
                            changes.swapped.len()
                        )
                    }
                );
                Ok(changes)
            }
            Err((err, failed_at)) => {
                changes.swapped = swaps
                    .into_iter()
                    .filter(|(line, _)| failed_at.is_some_and(|at| *line < at))
                    .map(|(_, f)| f)
                    .collect();
                self.roll_back_sets(&changes);
                Err(err)
            }
        }
    }

    /// Undoes [`Self::update_sets`]: takes back in-place additions and deletions (in
    /// reverse, so re-added members come back before added ones go), swaps old members back
    /// and destroys what it created.
    fn roll_back_sets(&self, changes: &SetChanges) {
        let ipset = Ipset::new();
        let existing = ipset.list().unwrap_or_default();
        let mut lines: Vec<String> = changes.undo.iter().rev().cloned().collect();
        for family in &changes.swapped {
            lines.push(format!(
                "swap {} {}",
                tmp_set_name(*family),
                set_name(*family)
            ));
        }
        for name in owned_names() {
            if existing.iter().any(|e| e.name == name)
                && (is_tmp_set(name) || changes.created.contains(&name))
            {
                lines.push(format!("destroy {name}"));
            }
        }
        if lines.is_empty() {
            return;
        }
        // -exist: an in-place step the failed restore never reached is not an error.
        if let Err((err, _)) = ipset.restore_ignoring_existing(&(lines.join("\n") + "\n")) {
            error!("ipset: could not roll back the sets: {err}");
        }
    }

    /// Destroys sets nothing uses any more; a failure is only worth a warning.
    fn destroy_sets(&self, names: &[&str]) {
        if names.is_empty() {
            return;
        }
        let script: String = names.iter().map(|n| format!("destroy {n}\n")).collect();
        match Ipset::new().restore(&script) {
            Ok(()) => debug!(?names, "destroyed ipsets"),
            Err((err, _)) => warn!("ipset: could not destroy {}: {err}", names.join(", ")),
        }
    }
}

impl Backend for IptablesBackend {
    type Error = Error;

    fn placement(&self) -> Option<Placement> {
        let legacy = match self.variant {
            Variant::Legacy => true,
            Variant::Nft => false,
            Variant::Auto => cf_allow_exec::is_legacy_iptables("iptables-restore"),
        };
        let mut hooks = self.layout.hooks.clone();
        if self.layout.docker_user_auto
            && !hooks.iter().any(|h| h == DOCKER_USER)
            && self
                .docker_user_seen
                .unwrap_or_else(|| self.docker_user_exists())
        {
            hooks.push(DOCKER_USER.to_owned());
        }
        Some(Placement::IptablesJump {
            legacy,
            chain: self.layout.main.clone(),
            hooks,
            lockdown: self.layout.lockdown,
        })
    }

    /// With `DOCKER-USER` found: one line on whether published container ports are covered.
    fn describe(&self, _plan: &Plan) -> Vec<String> {
        if self.docker_user_seen != Some(true) {
            return Vec::new();
        }
        let what = "published container ports (Docker's DOCKER-USER chain exists)";
        vec![
            if self.layout.docker_user_auto || self.layout.hooks.iter().any(|h| h == DOCKER_USER) {
                format!(
                    "{what} are covered by the DOCKER-USER hook (chain {}{})",
                    self.layout.docker,
                    if self.layout.docker_user_auto {
                        "; added automatically because iptables.hooks is not set"
                    } else {
                        ""
                    }
                )
            } else {
                format!(
                    "{what} are not covered: iptables.hooks does not list DOCKER-USER (add it, or \
                 leave hooks unset to have it added)"
                )
            },
        ]
    }

    fn name(&self) -> &'static str {
        "iptables"
    }

    fn inspect(&mut self) -> Result<Inspection, Error> {
        let snapshot = self.read_snapshot(true)?;
        self.docker_user_seen = Some(snapshot.tables.iter().any(|t| t.has_chain(DOCKER_USER)));
        let mut inspection = Inspection {
            warnings: snapshot.warnings.clone(),
            ..Inspection::default()
        };
        let mut all = Vec::new();
        for family in Family::ALL {
            let ranges = self.current_ranges(&snapshot, family);
            let edit = plan_family(&self.layout, snapshot.table(family), family, &ranges)?;
            inspection.repairs.extend(edit.notes);
            inspection.warnings.extend(edit.warnings);
            let table = snapshot.table(family);
            inspection.present |=
                table.has_chain(&self.layout.main) || table.has_chain(&self.layout.docker);
            all.extend(ranges);
        }
        if self.layout.ipset {
            for family in Family::ALL {
                if snapshot.live[index(family)].is_none() {
                    inspection
                        .repairs
                        .push(format!("ipset: create the set {}", set_name(family)));
                }
            }
        }
        let (_, notes, warnings) = self.stale_sets(&snapshot);
        inspection.repairs.extend(notes);
        inspection.warnings.extend(warnings);
        inspection.present |= !snapshot.sets.is_empty();
        inspection.ranges = RangeSet::exact(all);
        self.snapshot = Some(snapshot);
        Ok(inspection)
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), Error> {
        let snapshot = match self.snapshot.take() {
            Some(s) => s,
            None => self.read_snapshot(true)?,
        };
        let edits = self.plan_edits(&snapshot, &plan.desired)?;
        let (stale, _, _) = self.stale_sets(&snapshot);
        let sets = if self.layout.ipset {
            self.update_sets(&snapshot, &plan.desired)?
        } else {
            SetChanges::default()
        };
        let mut done = Vec::new();
        for (family, edit) in &edits {
            if edit.commands.is_empty() {
                continue;
            }
            if let Err(err) = self.restore(*family, &edit.commands) {
                self.roll_back_families(&snapshot, &done);
                self.roll_back_sets(&sets);
                return Err(err);
            }
            info!(
                "{tool}: committed {} change(s) in one {tool}-restore transaction",
                edit.commands.len(),
                tool = tool(*family),
            );
            for note in &edit.notes {
                debug!("{note}");
            }
            done.push(*family);
        }
        let mut destroy: Vec<&str> = stale
            .into_iter()
            .filter(|n| !(self.layout.ipset && is_tmp_set(n)))
            .collect();
        for family in &sets.swapped {
            destroy.push(tmp_set_name(*family));
        }
        self.destroy_sets(&destroy);
        Ok(())
    }

    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>, Error> {
        self.snapshot = None;
        let snapshot = self.read_snapshot(false)?;
        let all_owned = [self.layout.main.as_str(), self.layout.docker.as_str()];
        let mut lines = Vec::new();
        let mut edits = Vec::new();
        for family in Family::ALL {
            let table = snapshot.table(family);
            let tool = tool(family);
            let mut commands = Vec::new();
            // Only chains cf-allow created; from a chain that also holds someone else's
            // rule only cf-allow's rules go, and the chain and its jumps stay.
            let mut owned = Vec::new();
            for kind in ChainKind::ALL {
                let chain = self.layout.chain(kind);
                if !table.has_chain(chain) {
                    continue;
                }
                let rules = table.rules_of(chain);
                match owner(&self.layout, kind, family, rules) {
                    Owner::Ours => owned.push(chain),
                    Owner::ForeignChain(_) => warn!(
                        "{tool}: chain {chain} was not created by cf-allow (its rules carry no `-m comment --comment cf-allow`); left alone"
                    ),
                    Owner::ForeignRule(foreign) => {
                        warn!(
                            "{tool}: `-A {chain} {foreign}` was not created by cf-allow; deleted only cf-allow's rules and left chain {chain} and its jumps in place"
                        );
                        let mine: Vec<&String> = rules
                            .iter()
                            .filter(|spec| {
                                matches!(
                                    owner(&self.layout, kind, family, std::slice::from_ref(*spec)),
                                    Owner::Ours
                                )
                            })
                            .collect();
                        for spec in &mine {
                            commands.push(format!("-D {chain} {spec}"));
                        }
                        lines.push(format!("{tool}: {} rule(s) of chain {chain}", mine.len()));
                    }
                }
            }
            for chain in owned.iter() {
                if let Some(rule) = foreign_references(&self.layout, table, chain).first() {
                    return Err(Error::Foreign(format!(
                        "cannot remove {chain} from {tool}: `{rule}` still uses it and cf-allow did not create it; delete that rule first"
                    )));
                }
                let jump = format!("-j {chain}");
                for hook in &table.chains {
                    if all_owned.contains(&hook.as_str()) {
                        continue;
                    }
                    for spec in table.rules_of(hook).iter().filter(|s| **s == jump) {
                        commands.push(format!("-D {hook} {spec}"));
                        lines.push(format!("{tool}: the jump to {chain} in {hook}"));
                    }
                }
            }
            for chain in &owned {
                commands.push(format!("-F {chain}"));
                commands.push(format!("-X {chain}"));
                lines.push(format!(
                    "{tool}: chain {chain} ({} rules)",
                    table.rules_of(chain).len()
                ));
            }
            edits.push((family, commands));
        }
        let ipset = Ipset::new();
        for set in &snapshot.sets {
            let name = &set.name;
            let (refs, entries) = set.counts()?;
            if refs > self.own_set_references(&snapshot, name) {
                return Err(Error::Foreign(format!(
                    "cannot remove the ipset {name}: rules cf-allow did not create use it; delete them first"
                )));
            }
            lines.push(format!("ipset: set {name} ({entries} entries)"));
        }
        if dry_run {
            return Ok(lines);
        }
        let mut done = Vec::new();
        for (family, commands) in edits {
            if commands.is_empty() {
                continue;
            }
            if let Err(err) = self.restore(family, &commands) {
                self.roll_back_families(&snapshot, &done);
                return Err(err);
            }
            done.push(family);
        }
        if !snapshot.sets.is_empty() {
            let script: String = snapshot
                .sets
                .iter()
                .map(|s| format!("destroy {}\n", s.name))
                .collect();
            ipset.restore(&script).map_err(|(err, _)| err)?;
        }
        for line in &lines {
            debug!("removed {line}");
        }
        Ok(lines)
    }
}
