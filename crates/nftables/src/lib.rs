//! cf-allow's nftables backend: keeps the interval sets `cf_v4` / `cf_v6` and the rules that
//! accept TCP from them in sync by talking netlink to nf_tables directly (libnftnl through
//! the `nftnl` crate, an `mnl` socket); the `nft` binary is not needed at run time.
//!
//! Own-table mode (default) keeps everything in the table `inet cf_allow`; into mode puts the
//! two sets and the rules tagged with the comment `cf-allow` into an existing chain, which is
//! the only way to allow traffic on a host whose own nftables firewall drops by default (an
//! accept in one table does not stop a drop in another table's base chain). See the README.

mod backend;
mod error;
mod forward;
mod intervals;
mod layout;
mod memory;
mod model;
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
