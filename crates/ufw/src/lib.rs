//! cf-allow's ufw backend: cf-allow's rules are ufw rules. Each Cloudflare range is one
//! `allow proto tcp from RANGE to any port 80,443` rule with the comment `cf-allow`,
//! stored in ufw's own files (`/etc/ufw/user.rules`, `user6.rules`) in ufw's own format, so
//! `ufw status` lists them and `ufw reload`, `ufw disable`/`enable` and a reboot keep them.
//!
//! ufw itself is never run: a sync edits only cf-allow's tagged entries of those files
//! (every other byte stays) and applies the same change to the running `ufw-user-input` /
//! `ufw6-user-input` chains with one `iptables-restore --noflush` transaction per family.
//! Files and chains are changed together or not at all, under ufw's own lock
//! (`/run/ufw.lock`), so a `ufw allow` or `ufw delete` run meanwhile waits and then sees
//! cf-allow's change.

#![forbid(unsafe_code)]

mod backend;
mod error;
mod files;
mod live;
mod rules;
mod settings;

pub use backend::UfwBackend;
pub use error::Error;
pub use settings::Settings;

/// The comment that marks cf-allow's rules (`comment=63662d616c6c6f77` in ufw's files).
pub const TAG: &str = "cf-allow";

/// Where the ufw backend's rules go, for the reachability verdict's projection: appended to
/// `ufw-user-input` / `ufw6-user-input` (after the admin's own ufw rules), through the
/// iptables API `iptables-restore` drives here (nf_tables or legacy).
pub fn placement() -> cf_allow_diff::Placement {
    let legacy = cf_allow_exec::is_legacy_iptables("iptables-restore");
    let end = |family: &str, f: cf_allow_diff::Family| cf_allow_diff::ChainEnd {
        legacy,
        family: family.to_owned(),
        table: "filter".to_owned(),
        chain: rules::input_chain(f).to_owned(),
    };
    cf_allow_diff::Placement::ChainEnds {
        chains: vec![
            end("ip", cf_allow_diff::Family::Ipv4),
            end("ip6", cf_allow_diff::Family::Ipv6),
        ],
    }
}

/// True for the chains ufw loads the user rules into (`ufw-user-input`, `ufw6-user-input`),
/// where cf-allow's rules come after the admin's own.
pub fn is_user_input_chain(chain: &str) -> bool {
    cf_allow_diff::Family::ALL
        .into_iter()
        .any(|family| rules::input_chain(family) == chain)
}

/// True when `settings.defaults` (`/etc/default/ufw`) says `IPV6=no`: ufw then loads no IPv6
/// rule at all. False when the file cannot be read (ufw's default is `IPV6=yes`).
pub fn ipv6_off(settings: &Settings) -> bool {
    std::fs::read_to_string(&settings.defaults).is_ok_and(|text| !settings::ipv6(&text))
}

/// True when ufw is installed and enabled (`ENABLED=yes` in `/etc/ufw/ufw.conf`). Runs no
/// program; never errors.
pub fn active() -> bool {
    cf_allow_exec::find_program("ufw").is_some()
        && settings::enabled(&Settings::default().conf_file()).unwrap_or(false)
}
