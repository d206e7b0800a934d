//! cf-allow's firewalld backend, over the D-Bus system bus.
//!
//! cf-allow owns two ipsets, `cf-allow-v4` (`hash:net`, family `inet`) and `cf-allow-v6`
//! (family `inet6`), tagged with the description "managed by cf-allow", and the rich rules
//! whose source is one of them, in the zones of the host's inbound interfaces — in both the
//! runtime and the permanent configuration, so the allowlist holds now and after
//! `firewall-cmd --reload`, `--complete-reload`, a restart and a reboot.
//!
//! firewalld 1.3 cannot create an ipset in the runtime configuration: a new ipset appears
//! there only with a reload, and a reload discards every runtime-only change. cf-allow
//! therefore reloads only when it must (its ipsets are missing from the runtime
//! configuration: the first sync, or `remove`) and only when the runtime and permanent
//! configurations are otherwise equal, so the reload loses nothing; otherwise it refuses with
//! a line that names the differences. Every other change is an exact delta: `addEntry` /
//! `removeEntry` per changed runtime entry, one `setEntries` for the permanent ipset, rich
//! rules added and removed one by one. A failed call undoes the calls already made.
#![forbid(unsafe_code)]

mod backend;
mod backups;
mod dbus;
mod error;
mod routes;
mod rules;
mod settings;

pub use backend::FirewalldBackend;
pub use error::Error;
pub use rules::{LOCKDOWN_PRIORITY, TAG};
pub use settings::Settings;

/// True when firewalld owns its name on the D-Bus system bus (`$DBUS_SYSTEM_BUS_ADDRESS`
/// when set): the detection the CLI uses.
pub fn running() -> bool {
    dbus::running()
}
