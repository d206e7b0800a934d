//! Picks and builds the firewall backend. The backends do not know each other; this is the
//! only place that names them all.

use anyhow::{anyhow, Result};
use cf_allow_diff::{Backend, Inspection, Plan};
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
            BackendKind::Firewalld => "firewalld",
        }
    }
}

/// The backend chosen by the flag, else the config, else detection: firewalld when it is
/// running, else CSF when it is installed, else nftables when the kernel speaks nf_tables, else iptables.
pub fn choose(flag: Option<BackendKind>, config: &Config) -> Result<BackendKind> {
    if let Some(kind) = flag.or(config.backend) {
        return Ok(kind);
    }
    let detected = if cf_allow_firewalld::running() {
        BackendKind::Firewalld
    } else if cf_allow_csf::available() {
        BackendKind::Csf
    } else if cf_allow_nftables::available() {
        BackendKind::Nftables
    } else if cf_allow_iptables::available() {
        BackendKind::Iptables
    } else {
        return Err(anyhow!(
            "no firewall backend found: firewalld is not running, CSF is not installed, the kernel does not answer nf_tables requests, and iptables is not installed; set `backend:` in the config or pass --backend"
        ));
    };
    tracing::info!("detected backend {}", detected.as_str());
    Ok(detected)
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
}

impl<B: Backend> Firewall for B {
    fn name(&self) -> &'static str {
        Backend::name(self)
    }
    fn inspect(&mut self) -> Result<Inspection> {
        Backend::inspect(self).map_err(anyhow::Error::new)
    }
    fn apply(&mut self, plan: &Plan) -> Result<()> {
        Backend::apply(self, plan).map_err(anyhow::Error::new)
    }
    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>> {
        Backend::remove(self, dry_run).map_err(anyhow::Error::new)
    }
}

/// Builds the backend of `kind` from the config.
pub fn open(kind: BackendKind, config: &Config) -> Result<Box<dyn Firewall>> {
    let ports: Vec<u16> = config.ports.iter().map(|p| p.0).collect();
    let backend: Box<dyn Firewall> = match kind {
        BackendKind::Nftables => Box::new(cf_allow_nftables::NftablesBackend::new(
            config.nftables.clone(),
            ports,
        )?),
        BackendKind::Iptables => Box::new(cf_allow_iptables::IptablesBackend::new(
            config.iptables.clone(),
            ports,
        )?),
        BackendKind::Csf => Box::new(cf_allow_csf::CsfBackend::new(config.csf.clone(), ports)?),
        BackendKind::Firewalld => Box::new(cf_allow_firewalld::FirewalldBackend::new(
            config.firewalld.clone(),
            ports,
        )?),
    };
    Ok(backend)
}
