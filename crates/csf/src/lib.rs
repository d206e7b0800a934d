//! cf-allow's CSF backend (ConfigServer Security & Firewall, with its login-failure daemon
//! lfd).
//!
//! cf-allow owns two files in the CSF directory, `cf-allow.allow` and `cf-allow.ignore`, and
//! one `Include` line for each in `csf.allow` and `csf.ignore`. Every other line of every CSF
//! file stays byte-identical.
//!
//! Applying never opens the firewall: with `apply: live` (the default) the difference goes
//! straight into CSF's running `ALLOWIN`/`ALLOWOUT` chains (or its `chain_ALLOW` ipsets with
//! `LF_IPSET = "1"`), as exactly the rules CSF itself builds from those lines, so a later
//! `csf -r` ends up with the same allow rules; lfd is restarted only when `cf-allow.ignore`
//! changed (it reads csf.ignore only when it starts). With `apply: restart` the configured
//! reload command (`csf -ra`) runs instead, only when a file changed.

#![forbid(unsafe_code)]

mod backend;
mod conf;
mod entries;
mod error;
mod files;
mod include;
mod live;
mod lock;
mod settings;

pub use backend::{available, CsfBackend};
pub use error::Error;
pub use settings::{ApplyMode, Settings, DEFAULT_RELOAD_TIMEOUT_SECS};

/// The file cf-allow owns next to csf.allow.
pub const ALLOW_FILE: &str = "cf-allow.allow";
/// The file cf-allow owns next to csf.ignore.
pub const IGNORE_FILE: &str = "cf-allow.ignore";
/// The lock `csf -r`/`-s`/`-f` hold while they rebuild.
pub(crate) const CSF_LOCK: &str = "/var/lib/csf/csf.lock";
/// Where lfd writes its pid.
pub(crate) const LFD_PID_FILES: [&str; 2] = ["/var/run/lfd.pid", "/run/lfd.pid"];
