//! fail2ban: the admin's own `ignoreip` entries (read from jail.conf, jail.d/*.conf,
//! jail.local and jail.d/*.local, in fail2ban's order, cf-allow's own file left out), and
//! what the running fail2ban reports (`fail2ban-client`), for status and doctor.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cf_allow_diff::IpNet;

use crate::Error;

/// The admin's `ignoreip` per section: `DEFAULT` (always present, maybe empty) and every
/// jail that sets its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminIgnore {
    default: Vec<String>,
    jails: BTreeMap<String, Vec<String>>,
}

impl AdminIgnore {
    /// `DEFAULT` first, then the jails by name.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &[String])> {
        std::iter::once(("DEFAULT", self.default.as_slice())).chain(
            self.jails
                .iter()
                .map(|(name, entries)| (name.as_str(), entries.as_slice())),
        )
    }

    /// Reads the admin's configuration in `dir`, leaving `own` (cf-allow's file) out.
    pub fn read(dir: &Path, own: &Path) -> Result<AdminIgnore, Error> {
        let mut admin = AdminIgnore::default();
        for file in config_files(dir)? {
            if file == own {
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => admin.parse(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Fail2banConfig { path: file, source }),
            }
        }
        Ok(admin)
    }

    /// Applies one file's `ignoreip` assignments (later files override earlier ones, and
    /// `%(known/ignoreip)s` stands for the value before).
    pub fn parse(&mut self, text: &str) {
        let mut section = String::new();
        let mut in_ignoreip = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                in_ignoreip = in_ignoreip && !trimmed.is_empty();
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if in_ignoreip {
                    let more = self.resolve(&section, trimmed);
                    self.entries_mut(&section).extend(more);
                }
                continue;
            }
            in_ignoreip = false;
            if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            let Some(split) = trimmed.find(['=', ':']) else {
                continue;
            };
            let (key, value) = (trimmed[..split].trim(), &trimmed[split + 1..]);
            if key.eq_ignore_ascii_case("ignoreip") && !section.is_empty() {
                let entries = self.resolve(&section, value);
                *self.entries_mut(&section) = entries;
                in_ignoreip = true;
            }
        }
    }

    fn resolve(&self, section: &str, value: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for token in value.split([' ', '\t', ',']).filter(|t| !t.is_empty()) {
            if token.starts_with('#') || token.starts_with(';') {
                break;
            }
            if token == "%(known/ignoreip)s" {
                let before = self.jails.get(section).unwrap_or(&self.default);
                out.extend(before.iter().cloned());
            } else {
                out.push(token.to_string());
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|t| seen.insert(t.clone()));
        out
    }

    fn entries_mut(&mut self, section: &str) -> &mut Vec<String> {
        if section == "DEFAULT" {
            &mut self.default
        } else {
            let inherited = self.default.clone();
            self.jails.entry(section.to_string()).or_insert(inherited)
        }
    }
}

/// jail.conf, jail.d/*.conf, jail.local, jail.d/*.local: the order fail2ban reads them.
fn config_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let jail_d = dir.join("jail.d");
    let mut listed: Vec<PathBuf> = match std::fs::read_dir(&jail_d) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(Error::Fail2banConfig {
                path: jail_d,
                source,
            })
        }
    };
    listed.sort();
    let with_ext = |ext: &str| {
        listed
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut files = vec![dir.join("jail.conf")];
    files.extend(with_ext("conf"));
    files.push(dir.join("jail.local"));
    files.extend(with_ext("local"));
    Ok(files)
}

/// One running jail as `fail2ban-client` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jail {
    /// The jail's name.
    pub name: String,
    /// Addresses it has banned now.
    pub banned: Vec<IpAddr>,
    /// Its `ignoreip` entries (addresses and networks; hostnames left out).
    pub ignoreip: Vec<IpNet>,
}

/// The jail names of `fail2ban-client status`.
pub fn jail_list(status: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.split_once("Jail list:").map(|(_, rest)| rest))
        .map(|rest| {
            rest.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The addresses and networks listed by `fail2ban-client get JAIL ignoreip|banip`
/// (tree-drawn lines or one line of words; anything that is not an address is skipped).
pub fn listed_nets(text: &str) -> Vec<IpNet> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| {
            w.trim_matches(|c| {
                c == '|' || c == '`' || c == '-' || c == '\'' || c == '[' || c == ']'
            })
        })
        .filter_map(|w| {
            w.parse::<IpNet>()
                .ok()
                .or_else(|| w.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// Asks the running fail2ban (through `client`) for every jail's bans and `ignoreip`;
/// `None` when it does not answer (not running).
pub fn probe(client: &Path, limit: Duration) -> Result<Option<Vec<Jail>>, String> {
    let ask = |args: &[&str]| -> Result<String, String> {
        let out = cf_allow_exec::run_bounded(client, args, None, limit)
            .map_err(|e| format!("{} {}: {e}", client.display(), args.join(" ")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} {}: {}",
                client.display(),
                args.join(" "),
                cf_allow_exec::stderr_summary(&out, 3)
            ))
        }
    };
    if ask(&["ping"]).is_err() {
        return Ok(None);
    }
    let mut jails = Vec::new();
    for name in jail_list(&ask(&["status"])?) {
        let banned = listed_nets(&ask(&["get", &name, "banip"])?)
            .into_iter()
            .map(|n| n.addr())
            .collect();
        let ignoreip = listed_nets(&ask(&["get", &name, "ignoreip"])?);
        jails.push(Jail {
            name,
            banned,
            ignoreip,
        });
    }
    Ok(Some(jails))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_override_and_jails_keep_their_own() {
        let mut admin = AdminIgnore::default();
        admin.parse(
            "[DEFAULT]\n#ignoreip = 127.0.0.1/8 ::1\nbantime = 10m\n[sshd]\nenabled = true\n",
        );
        admin.parse(
            "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1,192.0.2.10 # office\n  192.0.2.11\n\n[nginx-limit]\nignoreip = %(known/ignoreip)s 192.0.2.50\n",
        );
        let sections: Vec<(&str, Vec<&str>)> = admin
            .sections()
            .map(|(n, e)| (n, e.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            sections,
            vec![
                (
                    "DEFAULT",
                    vec!["127.0.0.1/8", "::1", "192.0.2.10", "192.0.2.11"]
                ),
                (
                    "nginx-limit",
                    vec![
                        "127.0.0.1/8",
                        "::1",
                        "192.0.2.10",
                        "192.0.2.11",
                        "192.0.2.50"
                    ]
                ),
            ]
        );
    }

    #[test]
    fn files_are_read_in_fail2bans_order_without_our_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("jail.d")).expect("mkdir");
        std::fs::write(d.join("jail.conf"), "[DEFAULT]\nignoreip = 192.0.2.1\n").expect("w");
        std::fs::write(
            d.join("jail.d/a.local"),
            "[DEFAULT]\nignoreip = %(known/ignoreip)s 192.0.2.3\n",
        )
        .expect("w");
        std::fs::write(
            d.join("jail.d/z.conf"),
            "[DEFAULT]\nignoreip = %(known/ignoreip)s 192.0.2.2\n",
        )
        .expect("w");
        std::fs::write(
            d.join("jail.d/cf-allow.local"),
            "[DEFAULT]\nignoreip = 198.51.100.0/24\n",
        )
        .expect("w");
        let admin = AdminIgnore::read(d, &d.join("jail.d/cf-allow.local")).expect("read");
        let (_, default) = admin.sections().next().expect("DEFAULT");
        assert_eq!(default, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    }

    #[test]
    fn client_output_is_parsed() {
        assert_eq!(
            jail_list("Status\n|- Number of jail:\t2\n`- Jail list:\tnginx-http-auth, sshd\n"),
            vec!["nginx-http-auth", "sshd"]
        );
        assert_eq!(
            jail_list("Status\n|- Number of jail:\t0\n`- Jail list:\t\n"),
            Vec::<String>::new()
        );
        let nets = listed_nets("These IP addresses/networks are ignored:\n|- 127.0.0.0/8\n|- ::1\n`- 198.51.100.0/24\n");
        let want: Vec<IpNet> = ["127.0.0.0/8", "::1/128", "198.51.100.0/24"]
            .iter()
            .map(|s| s.parse().expect("net"))
            .collect();
        assert_eq!(nets, want);
        assert!(listed_nets("No IP address/network is ignored\n").is_empty());
        assert_eq!(listed_nets("198.51.100.7 192.0.2.1\n").len(), 2);
    }
}
