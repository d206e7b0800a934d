//! ipset sets from `ipset save` (fail2ban's `f2b-*`, crowdsec's, CSF's `chain_DENY`, …).

use crate::{AddrRange, Error};

/// ipset sets that belong to cf-allow or are CSF's allowlists: never block lists.
pub fn is_allow_set(name: &str) -> bool {
    name.starts_with("cf-allow-")
        || name.starts_with("chain_ALLOW")
        || name.starts_with("chain_6_ALLOW")
}

/// One set and its entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpSet {
    /// The set's name.
    pub name: String,
    /// Its type (`hash:ip`, `hash:net,port`, `list:set`, …).
    pub kind: String,
    /// Its entries, in the order `ipset save` printed them.
    pub entries: Vec<SetEntry>,
}

/// One `add` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetEntry {
    /// The entry as printed (`104.16.0.1`, `192.0.2.0/24,tcp:80`, …).
    pub text: String,
    /// Its first (address) component; `None` for non-address entries (`list:set`, MACs).
    pub range: Option<AddrRange>,
    /// `nomatch`: an exception carved out of the set, not a member.
    pub nomatch: bool,
}

/// Whether the ipset kernel module is loaded; without it no set can exist, and running
/// `ipset` would make the kernel load it.
pub fn kernel_module_loaded() -> bool {
    std::path::Path::new("/sys/module/ip_set").exists()
}

/// Runs `ipset save` and parses it.
pub fn read_sets() -> Result<Vec<IpSet>, Error> {
    Ok(parse_save(&crate::run_program("ipset", &["save"])?))
}

/// Parses the output of `ipset save`.
pub fn parse_save(text: &str) -> Vec<IpSet> {
    let mut sets: Vec<IpSet> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("create"), Some(name), Some(kind)) => sets.push(IpSet {
                name: name.to_string(),
                kind: kind.to_string(),
                entries: Vec::new(),
            }),
            (Some("add"), Some(name), Some(entry)) => {
                let nomatch = words.any(|w| w == "nomatch");
                let Some(set) = sets.iter_mut().rev().find(|s| s.name == name) else {
                    continue;
                };
                let range = if set.kind.starts_with("list:") {
                    None
                } else {
                    entry.split(',').next().and_then(AddrRange::parse)
                };
                set.entries.push(SetEntry {
                    text: entry.to_string(),
                    range,
                    nomatch,
                });
            }
            _ => {}
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with ipset v7.17 in a private namespace.
    const SAVE: &str = "create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12 initval 0xe5b99218
add f2b-sshd 192.0.2.7 timeout 0
add f2b-sshd 104.16.0.1 timeout 599
create cs6 hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0xa0e339f8
add cs6 2001:db8::/32 nomatch
add cs6 2400:cb00::/48
create bm bitmap:ip range 192.0.2.0-192.0.2.255
add bm 192.0.2.1
create ipp hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x43aa966b
add ipp 104.16.0.2,tcp:443
create all list:set size 8
add all f2b-sshd
";

    #[test]
    fn parses_captured_sets_and_entries() {
        let sets = parse_save(SAVE);
        let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["f2b-sshd", "cs6", "bm", "ipp", "all"]);
        assert_eq!(sets[0].entries.len(), 2);
        assert_eq!(sets[0].entries[1].range, AddrRange::parse("104.16.0.1"));
        assert!(sets[1].entries[0].nomatch && !sets[1].entries[1].nomatch);
        assert_eq!(sets[1].entries[1].range, AddrRange::parse("2400:cb00::/48"));
        assert_eq!(sets[3].entries[0].range, AddrRange::parse("104.16.0.2"));
        assert_eq!(sets[4].kind, "list:set");
        assert_eq!(sets[4].entries[0].range, None);
    }

    #[test]
    fn allow_sets_are_recognised() {
        for name in [
            "cf-allow-v4",
            "cf-allow-v6-tmp",
            "chain_ALLOW",
            "chain_6_ALLOW",
        ] {
            assert!(is_allow_set(name), "{name}");
        }
        for name in ["f2b-sshd", "chain_DENY", "crowdsec-blacklists"] {
            assert!(!is_allow_set(name), "{name}");
        }
    }
}
