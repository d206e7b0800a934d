//! cf-allow's nftables backend: keeps the interval sets `cf_v4` / `cf_v6` and the rules that
//! accept TCP from them in sync by talking netlink to nf_tables directly (libnftnl through
//! the `nftnl` crate, an `mnl` socket); the `nft` binary is not needed at run time.
//!
//! Own-table mode (default) keeps everything in the table `inet cf_allow`; into mode puts the
//! two sets and the rules tagged with the comment `cf-allow` into an existing chain, which is
//! the only way to allow traffic on a host whose own nftables firewall drops by default (an
//! accept in one table does not stop a drop in another table's base chain). See the README.

#![deny(unsafe_code)]

mod backend;
mod error;
mod forward;
mod intervals;
mod layout;
mod memory;
mod model;
// The only module with `unsafe` code (libnftnl's C API); every other crate forbids it.
#[allow(unsafe_code)]
mod netlink;
mod settings;

pub use backend::NftablesBackend;
pub use error::Error;
pub use settings::{IntoTarget, Settings, TableFamily};

/// True when nf_tables answers a netlink query (the kernel supports it and the process
/// has CAP_NET_ADMIN). Used by backend auto-detection; never errors.
pub fn available() -> bool {
    netlink::Netlink::open()
        .and_then(|mut nl| nl.generation().map(drop))
        .is_ok()
}

/// The tables (`family name`, e.g. `inet netavark`, `ip nat`) that have a nat base chain on
/// the prerouting hook holding at least one rule: where a host DNATs ports (Docker through
/// iptables-nft, podman's netavark, Kubernetes). Read-only; empty when nf_tables cannot be
/// read.
pub fn dnat_tables() -> Vec<String> {
    const HOOK_PREROUTING: u32 = 0;
    let read = || -> Result<Vec<String>, Error> {
        let mut nl = netlink::Netlink::open()?;
        let mut tables: Vec<String> = Vec::new();
        for chain in nl.chains()? {
            if chain.hook != Some(HOOK_PREROUTING) || chain.kind.as_deref() != Some("nat") {
                continue;
            }
            let name = format!("{} {}", model::family_name(chain.family), chain.table);
            if !tables.contains(&name)
                && !nl
                    .rules(chain.family, &chain.table, &chain.name)?
                    .is_empty()
            {
                tables.push(name);
            }
        }
        Ok(tables)
    };
    read().unwrap_or_else(|error| {
        tracing::debug!(%error, "nftables: cannot read the nat chains");
        Vec::new()
    })
}

/// Which nf_tables ruleset this process sees, as of now: the boot, the network namespace and
/// the ruleset generation id. Two equal stamps mean no batch was committed to this
/// namespace's ruleset in between (by anyone: nft, iptables-nft, firewalld, cf-allow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetStamp {
    /// `/proc/sys/kernel/random/boot_id` and the network namespace's cookie.
    pub host: String,
    /// The nf_tables generation id (`NFT_MSG_GETGEN`).
    pub generation: u32,
}

impl std::fmt::Display for RulesetStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.generation)
    }
}

/// The nf_tables generation after one commit on top of `generation` (the kernel's counter
/// skips 0 when it wraps).
pub fn next_generation(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// The stamp of the ruleset now; `Err` when nf_tables cannot be asked, or the boot or the
/// namespace cannot be told apart (kernels before 5.14 have no namespace cookie).
pub fn ruleset_stamp() -> Result<RulesetStamp, Error> {
    let mut nl = netlink::Netlink::open()?;
    let generation = nl.generation()?;
    let host = memory::host_identity(nl.netns_cookie()).ok_or(Error::NoIdentity)?;
    Ok(RulesetStamp { host, generation })
}

/// One of cf-allow's sets as the kernel holds it: where it is, and its ranges (first and
/// last address, inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldSet {
    /// The table's family (`inet`, `ip`, `ip6`).
    pub family: String,
    /// The table.
    pub table: String,
    /// The set (`cf_v4`, `cf_v6`).
    pub name: String,
    /// The family of its addresses.
    pub key: cf_allow_diff::Family,
    /// The ranges the set holds.
    pub ranges: Vec<(std::net::IpAddr, std::net::IpAddr)>,
}

/// cf-allow's sets as the kernel holds them at `stamp`, from the generation record at
/// `record` (the file [`NftablesBackend::with_memory`] writes), when that record describes
/// exactly the ruleset of `stamp` (same boot, namespace and generation, and the table
/// `settings` name): then no batch was committed since the record was made, so its
/// elements are the kernel's. `None` otherwise (no record, another generation, another
/// table): the caller reads the sets from the kernel.
pub fn held_sets(
    settings: &Settings,
    record: &std::path::Path,
    stamp: &RulesetStamp,
) -> Option<Vec<HeldSet>> {
    let record = memory::Memory::new(record.to_path_buf(), false).load()?;
    if !record.describes(&stamp.host, stamp.generation, &settings.record_key()) {
        return None;
    }
    let place = settings.place();
    let (family, table) = (place.family, place.table);
    let held = |name: &str, key, set: Option<memory::RecordedSet>| {
        set.map(|set| HeldSet {
            family: family.to_owned(),
            table: table.to_owned(),
            name: name.to_owned(),
            key,
            ranges: set.bounds().collect(),
        })
    };
    Some(
        [
            held(layout::SET_V4, cf_allow_diff::Family::Ipv4, record.v4),
            held(layout::SET_V6, cf_allow_diff::Family::Ipv6, record.v6),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}
