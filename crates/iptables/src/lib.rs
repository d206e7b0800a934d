//! cf-allow's iptables backend: the chain `CF-ALLOW` in the filter table of iptables and
//! ip6tables (nf_tables or legacy, whichever the host uses), one ACCEPT rule per Cloudflare
//! range (or one rule per ipset `hash:net` set), and a jump to it at the top of each hook
//! chain. Every change is one `iptables-restore --noflush` transaction per family, so no
//! half-applied state is ever visible; state is read from the kernel on every run.

#![forbid(unsafe_code)]

mod backend;
mod edit;
mod error;
mod exec;
#[cfg(test)]
mod fuzz;
mod ipset;
mod ipset_dump;
mod rules;
mod saved;
mod settings;

pub use backend::IptablesBackend;
pub use error::Error;
pub use settings::{Settings, Variant, DOCKER_USER};

/// The ipset that holds one family's ranges in ipset mode (`iptables.ipset`).
pub fn ipset_name(family: cf_allow_diff::Family) -> &'static str {
    rules::set_name(family)
}

/// Whether the stderr of `iptables-nft-save` / `ip6tables-nft-save` says that x_tables
/// (iptables-legacy) tables exist next to the nf_tables ones
/// (`# Warning: ip6tables-legacy tables present, use ip6tables-legacy-save to see them`).
pub fn legacy_tables_present(save_stderr: &str) -> bool {
    save_stderr.contains("tables-legacy tables present")
}

/// True when `iptables-restore` is installed (PATH or the sbin directories). Never errors.
pub fn available() -> bool {
    exec::find_program("iptables-restore").is_some()
}

#[cfg(test)]
mod tests {
    // What iptables-nft-save / ip6tables-nft-save v1.8.9 print on stderr (not stdout) when
    // legacy tables exist in the same network namespace.
    #[test]
    fn legacy_tables_are_noticed_in_both_families() {
        assert!(super::legacy_tables_present(
            "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
        ));
        assert!(super::legacy_tables_present(
            "# Warning: ip6tables-legacy tables present, use ip6tables-legacy-save to see them\n"
        ));
        assert!(!super::legacy_tables_present(""));
    }
}
