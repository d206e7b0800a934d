//! Reading `csf.conf` the way CSF's `ConfigServer::Config::loadconfig` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files::read_optional;
use crate::Error;

/// A network interface match as CSF writes it (`! -i lo`, `-i eth0`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iface {
    /// True for `! -i NAME`.
    pub negated: bool,
    /// The interface name (may end in `+`).
    pub name: String,
}

impl Iface {
    fn from_setting(device: &str) -> Option<Iface> {
        // CSF: `($config{ETH_DEVICE},undef) = split (/:/,$config{ETH_DEVICE},2)`.
        let device = device.split(':').next().unwrap_or("");
        if device.is_empty() {
            None
        } else {
            Some(Iface {
                negated: false,
                name: device.to_string(),
            })
        }
    }

    fn not_loopback() -> Iface {
        Iface {
            negated: true,
            name: "lo".into(),
        }
    }
}

/// The settings of `csf.conf` that decide how CSF turns csf.allow lines into rules, and
/// what an admin should be warned about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsfConf {
    values: BTreeMap<String, String>,
}

impl CsfConf {
    /// Reads and parses `path`. Errors name the file and the offending line.
    pub fn load(path: &Path) -> Result<CsfConf, Error> {
        let bytes = read_optional(path)?.ok_or_else(|| Error::ConfMissing(path.to_path_buf()))?;
        let text = String::from_utf8_lossy(&bytes);
        CsfConf::parse(&text, path)
    }

    /// Parses the text of a csf.conf: `NAME = "value"` lines, `#` comments. Like CSF, a
    /// line with `=` whose value is not quoted, or a repeated setting, is an error.
    pub fn parse(text: &str, path: &Path) -> Result<CsfConf, Error> {
        let mut values = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let name: String = name.chars().filter(|c| !c.is_whitespace()).collect();
            let malformed = |reason: &str| Error::ConfMalformed {
                path: path.to_path_buf(),
                line: index + 1,
                reason: reason.to_string(),
            };
            let (open, close) = match (value.find('"'), value.rfind('"')) {
                (Some(open), Some(close)) if open < close => (open, close),
                _ => return Err(malformed(&format!("the value of {name} is not quoted"))),
            };
            let value = value[open + 1..close].to_string();
            if values.insert(name.clone(), value).is_some() {
                return Err(malformed(&format!("{name} is set twice")));
            }
        }
        if values.is_empty() {
            return Err(Error::ConfEmpty(path.to_path_buf()));
        }
        Ok(CsfConf { values })
    }

    /// The raw value of a setting, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Perl truthiness of a setting: unset, empty and "0" are false.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(v) if !v.is_empty() && v != "0")
    }

    /// `IPV6`: CSF skips IPv6 entries silently when off.
    pub fn ipv6(&self) -> bool {
        self.flag("IPV6")
    }

    /// `LF_IPSET`: plain allow entries live in the ipsets `chain_ALLOW` / `chain_6_ALLOW`.
    pub fn ipset(&self) -> bool {
        self.flag("LF_IPSET")
    }

    /// `TESTING`: a cron job flushes the firewall every few minutes; lfd does not run.
    pub fn testing(&self) -> bool {
        self.flag("TESTING")
    }

    /// `IGNORE_ALLOW`: lfd also ignores the plain addresses of csf.allow.
    pub fn ignore_allow(&self) -> bool {
        self.flag("IGNORE_ALLOW")
    }

    /// The target of CSF's accept rules (`LOGACCEPT` in WATCH_MODE).
    pub fn accept_target(&self) -> &'static str {
        if self.flag("WATCH_MODE") {
            "LOGACCEPT"
        } else {
            "ACCEPT"
        }
    }

    /// Interface match (`-i` in, `-o` out) of IPv4 rules, and of CSF's advanced filters in
    /// both families, which CSF builds with the IPv4 device.
    pub fn ethdev(&self) -> Iface {
        Iface::from_setting(self.get("ETH_DEVICE").unwrap_or(""))
            .unwrap_or_else(Iface::not_loopback)
    }

    /// Interface match (`-i` in, `-o` out) of plain IPv6 entries.
    pub fn eth6dev(&self) -> Iface {
        match self.get("ETH6_DEVICE") {
            Some(d) if !d.is_empty() => Iface {
                negated: false,
                name: d.to_string(),
            },
            _ => self.ethdev(),
        }
    }

    /// A program CSF is configured to use (`IPTABLES_SAVE`, `IPSET`, …), falling back to
    /// `fallback` on PATH when the configured path is missing.
    pub fn program(&self, setting: &str, fallback: &str) -> Option<PathBuf> {
        if let Some(path) = self.get(setting).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            if path.is_file() {
                return Some(path);
            }
        }
        cf_allow_exec::find_program(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CsfConf, Error> {
        CsfConf::parse(text, Path::new("/etc/csf/csf.conf"))
    }

    #[test]
    fn reads_quoted_values_and_flags() {
        let conf = parse(
            "# comment\nTESTING = \"1\"\nIPV6 = \"0\"\n  INDENTED = \"x\"\nETH_DEVICE = \"eth0:1\"\nWATCH_MODE=\"\"\n",
        )
        .expect("valid");
        assert!(conf.testing());
        assert!(!conf.ipv6());
        assert_eq!(conf.accept_target(), "ACCEPT");
        assert_eq!(
            conf.ethdev(),
            Iface {
                negated: false,
                name: "eth0".into()
            }
        );
        assert_eq!(conf.eth6dev(), conf.ethdev());
    }

    #[test]
    fn default_device_is_not_loopback() {
        let conf = parse("ETH_DEVICE = \"\"\nWATCH_MODE = \"1\"\n").expect("valid");
        assert_eq!(conf.ethdev(), Iface::not_loopback());
        assert_eq!(conf.accept_target(), "LOGACCEPT");
    }

    #[test]
    fn unquoted_value_and_repeats_are_errors_naming_the_line() {
        let err = parse("IPV6 = \"0\"\nTESTING = 1\n").expect_err("unquoted");
        assert_eq!(
            err.to_string(),
            "malformed /etc/csf/csf.conf, line 2: the value of TESTING is not quoted"
        );
        let err = parse("IPV6 = \"0\"\nIPV6 = \"1\"\n").expect_err("repeated");
        assert!(
            err.to_string().contains("line 2: IPV6 is set twice"),
            "{err}"
        );
        assert!(parse("just text\n").is_err());
    }
}
