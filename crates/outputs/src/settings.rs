//! The `outputs:` section of the config file.

use std::path::PathBuf;

use serde::Deserialize;

/// `outputs:` — each key present turns that output on; `{}` takes every default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// nginx's `set_real_ip_from` / `real_ip_header`.
    pub nginx: Option<Server>,
    /// Apache's mod_remoteip.
    pub apache: Option<Apache>,
    /// A Caddyfile snippet with `trusted_proxies static …`.
    pub caddy: Option<Server>,
    /// An HAProxy ACL/map file of the ranges.
    pub haproxy: Option<Server>,
    /// fail2ban's `ignoreip`.
    pub fail2ban: Option<Fail2ban>,
    /// Longest run of one test or reload program, in seconds (1-3600).
    pub timeout_secs: Option<u64>,
}

/// The keys every output has. `test` and `reload` are argument vectors (no shell); `[]`
/// means none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The file cf-allow owns.
    pub path: Option<PathBuf>,
    /// The server's own config test.
    pub test: Option<Vec<String>>,
    /// How the server is told to reload.
    pub reload: Option<Vec<String>>,
}

/// Apache's keys: those of [`Server`] plus `link`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Apache {
    /// The file cf-allow owns.
    pub path: Option<PathBuf>,
    /// The server's own config test.
    pub test: Option<Vec<String>>,
    /// How the server is told to reload.
    pub reload: Option<Vec<String>>,
    /// The symlink that enables the file (what `a2enconf` makes); `""` for none (a
    /// `conf.d` directory that Apache includes itself).
    pub link: Option<PathBuf>,
}

/// fail2ban's keys: those of [`Server`] plus `config_dir`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fail2ban {
    /// The file cf-allow owns.
    pub path: Option<PathBuf>,
    /// The server's own config test.
    pub test: Option<Vec<String>>,
    /// How the server is told to reload.
    pub reload: Option<Vec<String>>,
    /// Where jail.conf, jail.local and jail.d/ are read from (the admin's `ignoreip`).
    pub config_dir: Option<PathBuf>,
}
