//! cf-allow's iptables backend: the chain `CF-ALLOW` in the filter table of iptables and
//! ip6tables (nf_tables or legacy, whichever the host uses), one ACCEPT rule per Cloudflare
//! range (or one rule per ipset `hash:net` set), and a jump to it at the top of each hook
//! chain. Every change is one `iptables-restore --noflush` transaction per family, so no
//! half-applied state is ever visible; state is read from the kernel on every run.

mod backend;
mod edit;
mod error;
mod exec;
mod ipset;
mod rules;
mod saved;
mod settings;

pub use backend::IptablesBackend;
pub use error::Error;
pub use settings::{Settings, Variant};

/// True when `iptables-restore` is installed (PATH or the sbin directories). Never errors.
pub fn available() -> bool {
    exec::find_program("iptables-restore").is_some()
}
