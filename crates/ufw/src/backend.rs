//! [`UfwBackend`]: reads ufw's user rules files and running input chains, and changes both
//! together: one `iptables-restore --noflush` transaction per family, then the files,
//! each replaced atomically; on any failure both are put back.

use std::path::PathBuf;

use cf_allow_diff::{Backend, Family, Inspection, IpNet, Placement, Plan, RangeSet};
use tracing::{error, info, warn};

use crate::files::{self, UfwLock, LOCK_FILE};
use crate::live::{read_chain, rebuild_commands, restore, tool};
use crate::rules::{file_name, input_chain, FileEdit, OwnRule, RulesFile};
use crate::settings::{self, Settings};
use crate::Error;

/// cf-allow's ufw backend.
pub struct UfwBackend {
    settings: Settings,
    ports: Vec<u16>,
    /// What the last `inspect` read, used by the `apply` that follows it.
    snapshot: Option<Snapshot>,
    /// ufw's lock, from `inspect` to the end of `apply`.
    lock: Option<UfwLock>,
    /// The last `inspect` found `IPV6=no`: ufw carries no IPv6 rules on this host.
    ipv6_off: bool,
}

/// One family's file and running chain.
#[derive(Clone, Debug)]
struct FamilyState {
    family: Family,
    path: PathBuf,
    bytes: Vec<u8>,
    file: RulesFile,
    /// The running input chain's rules; `None` when cf-allow does not change it (ufw
    /// inactive during `remove`).
    live: Option<Vec<String>>,
}

impl FamilyState {
    /// True when the running chain is the one the file describes: as many rules, and
    /// cf-allow's rules that stay are at their positions.
    fn consistent(&self, wanted: &[OwnRule]) -> bool {
        let Some(live) = &self.live else { return true };
        live.len() == self.file.chain_len()
            && self
                .file
                .kept_own_positions(wanted)
                .iter()
                .all(|(pos, spec)| live.get(pos - 1) == Some(spec))
    }

    fn drift_note(&self) -> String {
        format!(
            "ufw: the running {} chain ({} rules) differs from {} ({} rules); load it again from the file in one transaction",
            input_chain(self.family),
            self.live.as_ref().map_or(0, Vec::len),
            file_name(self.family),
            self.file.chain_len()
        )
    }
}

#[derive(Clone, Debug)]
struct Snapshot {
    /// The families cf-allow manages (IPv6 only when `IPV6=yes`).
    families: Vec<FamilyState>,
    /// `IPV6=no` in the defaults file.
    ipv6_off: bool,
}

/// A family's planned change.
struct Change<'a> {
    state: &'a FamilyState,
    edit: FileEdit,
    commands: Vec<String>,
}

impl UfwBackend {
    /// A backend for `settings`; `ports` are the TCP destination ports opened to Cloudflare
    /// (empty = all ports). Validates the settings; reads and runs nothing.
    pub fn new(settings: Settings, ports: Vec<u16>) -> Result<UfwBackend, Error> {
        settings.validate()?;
        Ok(UfwBackend {
            settings,
            ports,
            snapshot: None,
            lock: None,
            ipv6_off: false,
        })
    }

    /// Takes ufw's lock unless it is held already.
    fn lock(&mut self) -> Result<(), Error> {
        if self.lock.is_none() {
            self.lock = Some(files::lock(
                std::path::Path::new(LOCK_FILE),
                self.settings.lock_wait_secs,
            )?);
        }
        Ok(())
    }

    /// Reads the files and (when `need_active`, or when ufw is active) the running chains.
    fn read_snapshot(&self, need_active: bool) -> Result<Snapshot, Error> {
        let conf = self.settings.conf_file();
        let enabled = settings::enabled(&conf).map_err(|source| Error::Io {
            what: format!("read {}", conf.display()),
            source,
        })?;
        if need_active && !enabled {
            return Err(Error::Inactive(format!("ENABLED=no in {}", conf.display())));
        }
        let ipv6_off = match std::fs::read_to_string(&self.settings.defaults) {
            Ok(text) => !settings::ipv6(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Io {
                    what: format!("read {}", self.settings.defaults.display()),
                    source,
                })
            }
        };
        let mut families = Vec::new();
        for family in Family::ALL {
            if family == Family::Ipv6 && ipv6_off {
                continue;
            }
            let path = self.settings.dir.join(file_name(family));
            let bytes = files::read(&path)?;
            let file = RulesFile::parse(family, &bytes, &path.display().to_string())?;
            let live = if enabled {
                let chain = read_chain(family)?.ok_or(Error::NotLoaded {
                    chain: input_chain(family),
                    tool: tool(family),
                })?;
                Some(chain)
            } else {
                None
            };
            families.push(FamilyState {
                family,
                path,
                bytes,
                file,
                live,
            });
        }
        Ok(Snapshot { families, ipv6_off })
    }

    fn wanted(&self, ranges: &RangeSet, family: Family) -> Vec<OwnRule> {
        ranges
            .iter_family(family)
            .flat_map(|net| OwnRule::all_for(net, &self.ports))
            .collect()
    }

    /// A family's change towards `wanted`: the new file and the chain commands (a delta when
    /// the chain matches the file, else the whole chain loaded again from the new file).
    fn change<'a>(&self, state: &'a FamilyState, wanted: &[OwnRule]) -> Result<Change<'a>, Error> {
        let edit = state.file.edit(wanted);
        let chain = input_chain(state.family);
        let commands = match &state.live {
            None => Vec::new(),
            Some(_) if state.consistent(wanted) => {
                let mut deleted = edit.deleted.clone();
                deleted.sort_unstable_by(|a, b| b.cmp(a));
                deleted
                    .iter()
                    .map(|pos| format!("-D {chain} {pos}"))
                    .chain(
                        edit.appended
                            .iter()
                            .map(|spec| format!("-A {chain} {spec}")),
                    )
                    .collect()
            }
            Some(_) => {
                let new = RulesFile::parse(
                    state.family,
                    edit.text.as_bytes(),
                    &state.path.display().to_string(),
                )?;
                rebuild_commands(state.family, &new.chain_specs())
            }
        };
        Ok(Change {
            state,
            edit,
            commands,
        })
    }

    /// Applies `changes`: the chains (one transaction per family), then the files. On a
    /// failure everything already changed is put back.
    fn commit(&self, changes: &[Change]) -> Result<(), Error> {
        let wait = self.settings.lock_wait_secs;
        let mut done: Vec<&FamilyState> = Vec::new();
        for change in changes.iter().filter(|c| !c.commands.is_empty()) {
            if let Err(err) = restore(change.state.family, &change.commands, wait) {
                self.roll_back_chains(&done);
                return Err(err);
            }
            info!(
                "{}: {} change(s) to {} in one {}-restore transaction",
                tool(change.state.family),
                change.commands.len(),
                input_chain(change.state.family),
                tool(change.state.family)
            );
            done.push(change.state);
        }
        let mut written: Vec<&FamilyState> = Vec::new();
        for change in changes {
            if change.edit.text.as_bytes() == change.state.bytes.as_slice() {
                continue;
            }
            if let Err(err) = files::replace(&change.state.path, change.edit.text.as_bytes()) {
                for state in &written {
                    if let Err(e) = files::replace(&state.path, &state.bytes) {
                        error!("ufw: could not put {} back: {e}", state.path.display());
                    }
                }
                self.roll_back_chains(&done);
                return Err(err);
            }
            written.push(change.state);
        }
        for change in changes {
            for rule in &change.edit.added {
                info!("{}", rule.words());
            }
            for words in &change.edit.removed {
                info!("ufw delete {words} comment {}", crate::TAG);
            }
        }
        Ok(())
    }

    /// [`Backend::apply`] with ufw's lock held.
    fn apply_locked(&mut self, plan: &Plan) -> Result<(), Error> {
        let snapshot = match self.snapshot.take() {
            Some(s) => s,
            None => self.read_snapshot(true)?,
        };
        let mut changes = Vec::new();
        for state in &snapshot.families {
            let wanted = self.wanted(&plan.desired, state.family);
            let change = self.change(state, &wanted)?;
            if let Ok(new) = RulesFile::parse(state.family, change.edit.text.as_bytes(), "") {
                let nets: Vec<IpNet> = plan.desired.iter_family(state.family).collect();
                for warning in new.blocking_denies(&nets, &self.ports) {
                    warn!("{warning}");
                }
            }
            changes.push(change);
        }
        self.commit(&changes)
    }

    /// Loads the chains of `done` again as they were before this run.
    fn roll_back_chains(&self, done: &[&FamilyState]) {
        for state in done {
            let Some(live) = &state.live else { continue };
            let commands = rebuild_commands(state.family, live);
            match restore(state.family, &commands, self.settings.lock_wait_secs) {
                Ok(()) => info!(
                    "{}: {} rolled back to the state before this run",
                    tool(state.family),
                    input_chain(state.family)
                ),
                Err(err) => error!(
                    "{}: could not roll back {}: {err}",
                    tool(state.family),
                    input_chain(state.family)
                ),
            }
        }
    }
}

fn ipv6_warning() -> String {
    "/etc/default/ufw has IPV6=no: ufw loads no IPv6 rules, so the IPv6 Cloudflare ranges are not applied and visitors over IPv6 cannot connect; set IPV6=yes and run ufw reload".to_string()
}

impl Backend for UfwBackend {
    type Error = Error;

    fn name(&self) -> &'static str {
        "ufw"
    }

    /// IPv4 only when `/etc/default/ufw` has `IPV6=no` (ufw loads no IPv6 rules then; the
    /// inspection's warning says so, and the reachability verdict reports the IPv6 ranges).
    fn families(&self) -> Vec<Family> {
        if self.ipv6_off {
            vec![Family::Ipv4]
        } else {
            Family::ALL.to_vec()
        }
    }

    fn inspect(&mut self) -> Result<Inspection, Error> {
        self.lock()?;
        let snapshot = self.read_snapshot(true)?;
        let mut inspection = Inspection::default();
        let mut all: Vec<IpNet> = Vec::new();
        if snapshot.ipv6_off {
            inspection.warnings.push(ipv6_warning());
        }
        for state in &snapshot.families {
            let (held, notes) = state.file.held(&self.ports);
            inspection.present |= !held.is_empty() || !notes.is_empty();
            inspection.repairs.extend(notes);
            let wanted: Vec<OwnRule> = held
                .iter()
                .flat_map(|net| OwnRule::all_for(*net, &self.ports))
                .collect();
            if !state.consistent(&wanted) {
                inspection.repairs.push(state.drift_note());
            }
            inspection.warnings.extend(state.file.foreign_tagged());
            inspection
                .warnings
                .extend(state.file.blocking_denies(&held, &self.ports));
            all.extend(held);
        }
        inspection.ranges = RangeSet::exact(all);
        self.ipv6_off = snapshot.ipv6_off;
        self.snapshot = Some(snapshot);
        Ok(inspection)
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), Error> {
        self.lock()?;
        let result = self.apply_locked(plan);
        self.lock = None;
        result
    }

    /// cf-allow's rules are appended to ufw's user chains (see [`crate::placement`]).
    fn placement(&self) -> Option<Placement> {
        Some(crate::placement())
    }

    fn describe(&self, plan: &Plan) -> Vec<String> {
        let rules = |net: IpNet| OwnRule::all_for(net, &self.ports);
        let add = plan.add.iter().flat_map(rules).map(|r| r.words());
        let remove = plan
            .remove
            .iter()
            .flat_map(rules)
            .map(|r| r.words().replacen("ufw allow", "ufw delete allow", 1));
        add.chain(remove).collect()
    }

    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>, Error> {
        self.snapshot = None;
        self.lock()?;
        let snapshot = self.read_snapshot(false)?;
        let mut changes = Vec::new();
        let mut lines = Vec::new();
        for state in &snapshot.families {
            let change = self.change(state, &[])?;
            lines.extend(change.edit.removed.iter().map(|words| {
                format!(
                    "`{words} comment {}` in {}",
                    crate::TAG,
                    file_name(state.family)
                )
            }));
            changes.push(change);
        }
        let result = if dry_run {
            Ok(())
        } else {
            self.commit(&changes)
        };
        drop(changes);
        self.lock = None;
        result.map(|()| lines)
    }
}
