//! Picks and builds the firewall backend. The backends do not know each other; this is the
//! only place that names them all.

use anyhow::{anyhow, Result};
use cf_allow_diff::{Backend, Inspection, Placement, Plan};
use clap::ValueEnum;
use serde::Deserialize;

use crate::config::Config;

/// The firewall backends cf-allow can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// nftables over netlink: its own `inet` table, or sets and tagged rules in your chain.
    Nftables,
    /// iptables and ip6tables: the chain CF-ALLOW and a jump at the top of each hook.
    Iptables,
    /// ConfigServer Security & Firewall: include files and CSF's live chains.
    Csf,
    /// ufw: cf-allow's rules are ufw rules (`ufw status` lists them, comment `cf-allow`).
    Ufw,
    /// firewalld over D-Bus: ipsets cf-allow-v4/-v6 and rich rules, runtime and permanent.
    Firewalld,
}

impl BackendKind {
    /// The name as the CLI and JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Nftables => "nftables",
            BackendKind::Iptables => "iptables",
            BackendKind::Csf => "csf",
            BackendKind::Ufw => "ufw",
            BackendKind::Firewalld => "firewalld",
        }
    }
}

/// True when `kind` with `config` keeps the ranges in ipsets (`iptables.ipset`).
pub fn ipset_mode(kind: BackendKind, config: &Config) -> bool {
    kind == BackendKind::Iptables && config.iptables.ipset
}

/// The backend chosen by the flag, else the config, else detection (see [`detect`]).
pub fn choose(flag: Option<BackendKind>, config: &Config) -> Result<BackendKind> {
    if let Some(kind) = flag.or(config.backend) {
        return Ok(crate::output::chosen(kind));
    }
    let detected = detect(config)?;
    tracing::info!("detected backend {}", detected.as_str());
    Ok(crate::output::chosen(detected))
}

/// The backends worth considering on this host, in order of preference, each only when it is
/// available.
fn candidates() -> Vec<BackendKind> {
    // firewalld rebuilds its table (and flushes iptables) on every reload: only what is
    // allowed through firewalld itself lasts.
    if cf_allow_firewalld::running() {
        return vec![BackendKind::Firewalld];
    }
    // CSF owns the firewall where it is installed: a CSF restart flushes everything else.
    if cf_allow_csf::available() {
        return vec![BackendKind::Csf];
    }
    // ufw owns the host's iptables where it is active: its admins read `ufw status`.
    if cf_allow_ufw::active() {
        return vec![BackendKind::Ufw];
    }
    let mut kinds = Vec::new();
    if cf_allow_nftables::available() {
        kinds.push(BackendKind::Nftables);
    }
    if cf_allow_iptables::available() {
        kinds.push(BackendKind::Iptables);
    }
    kinds
}

/// Detection: the first available backend under which the verdict engine says every range of
/// the last good list (plus `extra_cidrs`) reaches every port once that backend's rules are in
/// place (projected onto the host's current rules, read once); failing that, the first under
/// which nothing is blocked (only `unknown` parts, which `sync` then reports). When every
/// candidate would still be blocked, an error naming the blocking rule and what to configure,
/// before anything is changed. When the host's rules cannot be read, the first candidate. The
/// firewall manager that owns the host (firewalld, CSF, ufw) is the only candidate and is
/// used without judging: there is nothing to choose, and the sync reports its verdict (exit 3
/// with the fix when Cloudflare is still blocked).
fn detect(config: &Config) -> Result<BackendKind> {
    let kinds = candidates();
    let Some(&first) = kinds.first() else {
        return Err(anyhow!(
            "no firewall backend found: firewalld is not running, CSF is not installed, the kernel does not answer nf_tables requests, and iptables is not installed; set `backend:` in the config or pass --backend"
        ));
    };
    let manager = matches!(
        first,
        BackendKind::Firewalld | BackendKind::Csf | BackendKind::Ufw
    );
    if !config.reachability.check || manager {
        return Ok(first);
    }
    let model = crate::reach::read(config);
    if let Some(reason) = model.unreadable_reason() {
        tracing::warn!(
            "cannot tell which backend would let Cloudflare in ({reason}); using {}",
            first.as_str()
        );
        return Ok(first);
    }
    // Each candidate is judged on its own rules: what an earlier run of another backend
    // installed does not count.
    let model = crate::reach::without_own_rules(&model, config);
    let probe = crate::reach::probe(&crate::list::expected(config)?, config);
    let mut judged = Vec::new();
    for kind in kinds {
        let Some(placement) = open(kind, config)?.placement() else {
            continue;
        };
        let projected = crate::reach::project(&model, &placement, &probe);
        let report = crate::reach::report(&projected, &model, &probe, kind, config, None);
        if report.verdict.reachable {
            return Ok(kind);
        }
        tracing::debug!(
            "detection: {} would not let Cloudflare in: {}",
            kind.as_str(),
            report.warnings.join(" | ")
        );
        judged.push((kind, report));
    }
    if let Some((kind, _)) = judged.iter().find(|(_, r)| r.verdict.blocked.is_empty()) {
        return Ok(*kind);
    }
    match judged.first() {
        Some((kind, report)) => Err(anyhow!(
            "no available backend would let Cloudflare in; with {}: {}",
            kind.as_str(),
            report.warnings.first().map_or("blocked", String::as_str)
        )),
        None => Ok(first),
    }
}

/// A backend behind one object-safe interface whose errors are already reported in words.
pub trait Firewall {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// See [`Backend::inspect`].
    fn inspect(&mut self) -> Result<Inspection>;
    /// See [`Backend::apply`].
    fn apply(&mut self, plan: &Plan) -> Result<()>;
    /// See [`Backend::remove`].
    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>>;
    /// See [`Backend::placement`].
    fn placement(&self) -> Option<Placement>;
    /// See [`Backend::describe`].
    fn describe(&self, plan: &Plan) -> Vec<String>;
    /// See [`Backend::families`].
    fn families(&self) -> Vec<cf_allow_diff::Family>;
    /// See [`Backend::elements_committed`].
    fn elements_committed(&self) -> Option<u32>;
}

impl<B: Backend> Firewall for B {
    fn name(&self) -> &'static str {
        Backend::name(self)
    }
    fn inspect(&mut self) -> Result<Inspection> {
        Backend::inspect(self).map_err(anyhow::Error::new)
    }
    fn apply(&mut self, plan: &Plan) -> Result<()> {
        Backend::apply(self, plan).map_err(anyhow::Error::new)?;
        crate::output::mark_applied();
        Ok(())
    }
    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>> {
        let removed = Backend::remove(self, dry_run).map_err(anyhow::Error::new)?;
        if !dry_run && !removed.is_empty() {
            crate::output::mark_applied();
        }
        Ok(removed)
    }
    fn placement(&self) -> Option<Placement> {
        Backend::placement(self)
    }
    fn elements_committed(&self) -> Option<u32> {
        Backend::elements_committed(self)
    }
    fn describe(&self, plan: &Plan) -> Vec<String> {
        Backend::describe(self, plan)
    }
    fn families(&self) -> Vec<cf_allow_diff::Family> {
        Backend::families(self)
    }
}

/// Builds the backend of `kind` from the config. Read-only commands (doctor) use this:
/// nftables' generation record in `state_dir` is used, never written.
pub fn open(kind: BackendKind, config: &Config) -> Result<Box<dyn Firewall>> {
    build(kind, config, false)
}

/// Like [`open`], and nftables also records the ruleset generation it read or committed in
/// `state_dir`, so the next run can skip the set-element dump (sync, status).
pub fn open_recording(kind: BackendKind, config: &Config) -> Result<Box<dyn Firewall>> {
    build(kind, config, true)
}

/// The file of nftables' generation record.
pub const NFTABLES_GENERATION_FILE: &str = "nftables-generation";

fn build(kind: BackendKind, config: &Config, record: bool) -> Result<Box<dyn Firewall>> {
    let ports: Vec<u16> = config.ports.iter().map(|p| p.0).collect();
    let backend: Box<dyn Firewall> = match kind {
        BackendKind::Nftables => Box::new(
            cf_allow_nftables::NftablesBackend::new(config.nftables.clone(), ports)?
                .with_memory(config.state_dir.join(NFTABLES_GENERATION_FILE), record),
        ),
        BackendKind::Iptables => Box::new(cf_allow_iptables::IptablesBackend::new(
            iptables_settings(config),
            ports,
        )?),
        BackendKind::Csf => Box::new(cf_allow_csf::CsfBackend::new(config.csf.clone(), ports)?),
        BackendKind::Ufw => Box::new(cf_allow_ufw::UfwBackend::new(config.ufw.clone(), ports)?),
        BackendKind::Firewalld => Box::new(cf_allow_firewalld::FirewalldBackend::new(
            config.firewalld.clone(),
            ports,
        )?),
    };
    Ok(
        // The iptables backend says it itself (its placement would read the tables now).
        match (kind != BackendKind::Iptables)
            .then(|| published_note(kind, config, backend.placement().as_ref()))
            .flatten()
        {
            Some(note) => Box::new(Noted {
                inner: backend,
                note,
            }),
            None => backend,
        },
    )
}

// --- published container ports (issue 17) ---

/// The nftables tables where this host DNATs ports (Docker through iptables-nft's `ip nat`,
/// podman's `inet netavark`, Kubernetes), read over netlink (no program is run), for the
/// line `sync` prints about published ports; `None` when there are none.
fn dnat_source() -> Option<String> {
    let tables = cf_allow_nftables::dnat_tables();
    if tables.is_empty() {
        return None;
    }
    let podman = tables.iter().any(|t| t == "inet netavark");
    Some(format!(
        "{}{}",
        if podman { "podman: " } else { "DNAT in " },
        tables.join(", ")
    ))
}

/// The line `sync` prints under the plan about published (DNAT'd) ports for backends other
/// than iptables (whose backend says it from its own read of `DOCKER-USER`), or `None` when
/// the host DNATs nothing.
fn published_note(
    kind: BackendKind,
    config: &Config,
    placement: Option<&Placement>,
) -> Option<String> {
    let what = format!("published container ports ({})", dnat_source()?);
    let how = match kind {
        BackendKind::Nftables => nft_coverage(config, placement),
        other => format!(
            "are not covered by {}: its rules apply to the input path, and DNAT'd \
             connections are forwarded past them",
            other.as_str()
        ),
    };
    Some(format!("{what} {how}"))
}

/// Whether the nftables backend's forward chain covers the published ports.
fn nft_coverage(config: &Config, placement: Option<&Placement>) -> String {
    let forward = match placement {
        Some(Placement::NftOwnChain { table, forward, .. })
        | Some(Placement::NftChainTop { table, forward, .. }) => {
            forward.as_ref().map(|chain| (table, chain))
        }
        _ => None,
    };
    match forward {
        Some((table, chain)) => format!(
            "are covered by chain inet {table} {chain} (DNAT'd connections by their original \
             port{})",
            if config.nftables.lockdown {
                ", lockdown on"
            } else {
                ""
            }
        ),
        None => "are not locked down: lockdown is off, so the runtime's own rules decide who \
             reaches them"
            .to_owned(),
    }
}

/// The iptables settings the backend runs with: the config's; when the config does not set
/// `iptables.hooks`, `DOCKER-USER` is hooked too wherever Docker's chain exists.
fn iptables_settings(config: &Config) -> cf_allow_iptables::Settings {
    let mut settings = config.iptables.clone();
    settings.docker_user_auto = !settings.hooks_explicit;
    settings
}

/// A backend whose plan output carries one more line (the published-ports note).
struct Noted {
    inner: Box<dyn Firewall>,
    note: String,
}

impl Firewall for Noted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn inspect(&mut self) -> Result<Inspection> {
        self.inner.inspect()
    }
    fn apply(&mut self, plan: &Plan) -> Result<()> {
        self.inner.apply(plan)
    }
    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>> {
        self.inner.remove(dry_run)
    }
    fn placement(&self) -> Option<Placement> {
        self.inner.placement()
    }
    fn describe(&self, plan: &Plan) -> Vec<String> {
        let mut lines = self.inner.describe(plan);
        lines.push(self.note.clone());
        lines
    }
    fn families(&self) -> Vec<cf_allow_diff::Family> {
        self.inner.families()
    }
    fn elements_committed(&self) -> Option<u32> {
        self.inner.elements_committed()
    }
}
