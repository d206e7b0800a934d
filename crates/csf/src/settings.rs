//! The `csf` section of the config.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a change reaches CSF's running firewall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyMode {
    /// Add and delete exactly the changed rules in CSF's running chains; restart only lfd,
    /// and only when `cf-allow.ignore` changed. The firewall never opens.
    #[default]
    Live,
    /// Run the `reload` command when a file changed (CSF's own path: `csf -ra` flushes and
    /// rebuilds, and the firewall is open while it does).
    Restart,
}

/// The `csf` section of the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// CSF's configuration directory.
    pub dir: PathBuf,
    /// Command run by `apply: restart` when a file changed: split into words (quotes
    /// group) and run without a shell.
    pub reload: String,
    /// The bound on the reload command and on `csf --lfd restart`: killed after it.
    pub reload_timeout_secs: u64,
    /// `live` (default) or `restart`.
    pub apply: ApplyMode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dir: PathBuf::from("/etc/csf"),
            reload: "csf -ra".into(),
            reload_timeout_secs: DEFAULT_RELOAD_TIMEOUT_SECS,
            apply: ApplyMode::Live,
        }
    }
}

/// The default of `csf.reload_timeout_secs`: a `csf -ra` with large ipsets takes minutes.
pub const DEFAULT_RELOAD_TIMEOUT_SECS: u64 = 300;

impl Settings {
    /// The reload command's words, as it will be run (no shell).
    pub fn reload_words(&self) -> Result<Vec<String>, String> {
        cf_allow_exec::split_words(&self.reload)
            .map_err(|reason| format!("csf.reload {:?}: {reason}", self.reload))
    }

    /// Everything `sync` would refuse later, as one line: a reload command that cannot be
    /// run without a shell, a zero or over-an-hour timeout.
    pub fn validate(&self) -> Result<(), String> {
        self.reload_words()?;
        if !(1..=3600).contains(&self.reload_timeout_secs) {
            return Err(format!(
                "csf.reload_timeout_secs: {} is not a timeout in seconds (1-3600)",
                self.reload_timeout_secs
            ));
        }
        Ok(())
    }

    /// The reload bound.
    pub fn reload_timeout(&self) -> Duration {
        Duration::from_secs(self.reload_timeout_secs)
    }
}
