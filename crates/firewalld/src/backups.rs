//! firewalld copies a configuration file to `NAME.xml.old` before it rewrites it. Those copies
//! are part of /etc/firewalld too: cf-allow puts each one back as it found it after its own
//! writes, so that only the files it means to change change.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// firewalld's configuration directory.
pub const ETC: &str = "/etc/firewalld";

/// The `.old` backups as they were before cf-allow's first write in this run.
#[derive(Debug, Default)]
pub struct Backups {
    saved: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

impl Backups {
    /// The backup firewalld makes of a permanent zone's file.
    pub fn zone(zone: &str) -> PathBuf {
        PathBuf::from(format!("{ETC}/zones/{zone}.xml.old"))
    }

    /// The backup firewalld makes of a permanent ipset's file.
    pub fn ipset(name: &str) -> PathBuf {
        PathBuf::from(format!("{ETC}/ipsets/{name}.xml.old"))
    }

    /// Remembers `path` as it is now, once per run (call before each write that touches it).
    pub fn save(&mut self, path: PathBuf) {
        self.saved
            .entry(path)
            .or_insert_with_key(|p| std::fs::read(p).ok());
    }

    /// Puts every remembered backup back (deletes the ones that did not exist). Failures are
    /// logged: a backup file is not worth failing a sync for.
    pub fn restore(&mut self) {
        for (path, bytes) in std::mem::take(&mut self.saved) {
            let result = match bytes {
                Some(b) => std::fs::read(&path)
                    .ok()
                    .filter(|now| *now == b)
                    .map_or_else(|| std::fs::write(&path, &b), |_| Ok(())),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            if let Err(e) = result {
                tracing::warn!("cannot restore firewalld's backup {}: {e}", path.display());
            }
        }
    }
}
