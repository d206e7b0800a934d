//! CSF's deny lists: `csf.deny` (permanent) and `csf.tempban` (lfd's temporary bans).

use std::path::Path;

use crate::{AddrRange, Error};

/// Where lfd keeps its temporary bans.
pub const TEMPBAN_FILE: &str = "/var/lib/csf/csf.tempban";

/// A blocking entry of a deny file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyEntry {
    /// 1-based line number.
    pub line: usize,
    /// The address, CIDR or range.
    pub range: AddrRange,
}

/// Reads `file` when it exists (a missing file holds nothing) and returns its entries.
pub fn read_deny_file(file: &Path) -> Result<Vec<DenyEntry>, Error> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse_deny(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Read {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// Parses `csf.deny` (`1.2.3.4 # reason`, `1.2.3.0/24`, advanced `tcp|in|d=80|s=1.2.3.4`)
/// or `csf.tempban` (`time|address|port|inout|timeout|reason`).
pub fn parse_deny(text: &str) -> Vec<DenyEntry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with("Include") {
            continue;
        }
        let range = if line.contains('|') {
            line.split('|').find_map(|field| {
                let value = field.strip_prefix("s=").unwrap_or(field).trim();
                AddrRange::parse(value)
            })
        } else {
            line.split_whitespace().next().and_then(AddrRange::parse)
        };
        if let Some(range) = range {
            out.push(DenyEntry { line: i + 1, range });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deny_and_tempban_lines() {
        let deny = "###############################################\n\
                    # Copyright 2006-2023, Way to the Web Limited\n\
                    104.16.0.1 # lfd: (sshd) Failed SSH login from 104.16.0.1 - Wed Nov 25 10:00:00 2026\n\
                    198.51.100.0/24\n\
                    tcp|in|d=443|s=172.64.0.9 # manual\n\
                    Include /etc/csf/more.deny\n";
        let entries = parse_deny(deny);
        let got: Vec<(usize, String)> = entries
            .iter()
            .map(|e| (e.line, e.range.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "104.16.0.1".to_string()),
                (4, "198.51.100.0-198.51.100.255".to_string()),
                (5, "172.64.0.9".to_string())
            ]
        );
        let tempban = "1795600000|2606:4700::1|443|in|3600|lfd - *Port Scan*\n";
        let entries = parse_deny(tempban);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].range.to_string(), "2606:4700::1");
    }

    #[test]
    fn a_missing_file_holds_nothing() {
        let entries = read_deny_file(Path::new("/nonexistent/csf.deny")).expect("missing is fine");
        assert!(entries.is_empty());
    }
}
