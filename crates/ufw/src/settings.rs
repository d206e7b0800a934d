//! The `ufw:` config section and the two ufw settings cf-allow reads (`ENABLED` in
//! `ufw.conf`, `IPV6` in `/etc/default/ufw`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The `ufw:` section of cf-allow's config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// ufw's configuration directory (`ufw.conf`, `user.rules`, `user6.rules`).
    pub dir: PathBuf,
    /// ufw's defaults file, read for `IPV6=`.
    pub defaults: PathBuf,
    /// How long `iptables-restore -w` waits for the xtables lock, in seconds (1–300).
    pub lock_wait_secs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dir: PathBuf::from("/etc/ufw"),
            defaults: PathBuf::from("/etc/default/ufw"),
            lock_wait_secs: 10,
        }
    }
}

impl Settings {
    /// Checks the values.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(1..=300).contains(&self.lock_wait_secs) {
            return Err(Error::Settings(format!(
                "ufw.lock_wait_secs: {} is not 1-300",
                self.lock_wait_secs
            )));
        }
        for (key, path) in [("dir", &self.dir), ("defaults", &self.defaults)] {
            if !path.is_absolute() {
                return Err(Error::Settings(format!(
                    "ufw.{key}: {} is not an absolute path",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// `ufw.conf`.
    pub fn conf_file(&self) -> PathBuf {
        self.dir.join("ufw.conf")
    }
}

/// The value of `key` in a shell-style `KEY=value` file (quotes removed); the last one wins.
pub(crate) fn value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
        .next_back()
}

/// Whether `ufw.conf` says `ENABLED=yes`; `Err` when it cannot be read.
pub(crate) fn enabled(conf: &Path) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(conf)?;
    Ok(value(&text, "ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("yes")))
}

/// Whether the defaults file leaves IPv6 on (ufw's default when the key is absent: on).
pub(crate) fn ipv6(text: &str) -> bool {
    value(text, "IPV6").is_none_or(|v| !v.eq_ignore_ascii_case("no"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shell_values() {
        let text = "# comment\nENABLED=no\nLOGLEVEL=low\nENABLED=\"yes\"\n";
        assert_eq!(value(text, "ENABLED").as_deref(), Some("yes"));
        assert_eq!(value(text, "MISSING"), None);
        assert!(ipv6("IPV6=yes\n"));
        assert!(!ipv6("IPV6=no\n"));
        assert!(ipv6("# nothing\n"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = Settings {
            lock_wait_secs: 0,
            ..Settings::default()
        };
        assert!(s.validate().is_err());
        let s = Settings {
            dir: PathBuf::from("etc/ufw"),
            ..Settings::default()
        };
        assert!(s.validate().is_err());
        assert!(Settings::default().validate().is_ok());
    }
}
