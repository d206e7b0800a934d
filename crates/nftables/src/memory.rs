//! What cf-allow last saw or committed in nf_tables, keyed by the ruleset generation.
//!
//! nf_tables bumps its generation id on every committed batch, whoever sends it. When the
//! id, the boot and the network namespace are the ones recorded here, nothing in this
//! namespace's ruleset changed since the record was made, so the set elements recorded are
//! exactly what the kernel holds and the (costly, O(N) per chunk) element dump can be
//! skipped. A record is only ever written for a state that was true at its generation: right
//! after cf-allow's own commit (generation + 1 and no other commit in between), or after a
//! full read during which the generation did not move. A stale or unreadable record is
//! simply not used.

use std::path::PathBuf;

use crate::intervals::{Element, Key};

/// File format version (the first line).
const MAGIC: &[u8] = b"cf-allow nftables generation v1\n";

/// Where records live, and whether this run may write them.
#[derive(Clone, Debug)]
pub(crate) struct Memory {
    path: PathBuf,
    writable: bool,
}

/// Which ruleset a record describes: boot, network namespace and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// `/proc/sys/kernel/random/boot_id` and the namespace cookie.
    pub host: String,
    /// The nf_tables generation id.
    pub generation: u32,
}

/// The elements of cf-allow's two sets at one generation (`None`: the set did not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub stamp: Stamp,
    /// The table the sets are in, and whether it is into mode.
    pub target: String,
    pub v4: Option<Vec<Element>>,
    pub v6: Option<Vec<Element>>,
}

impl Record {
    /// True when this record describes the ruleset of `host` at `generation`, with the
    /// sets where `key` ([`crate::Settings::record_key`]) says they are.
    pub fn describes(&self, host: &str, generation: u32, key: &str) -> bool {
        self.stamp.host == host && self.stamp.generation == generation && self.target == key
    }
}

impl Memory {
    pub fn new(path: PathBuf, writable: bool) -> Memory {
        Memory { path, writable }
    }

    /// The record, when the file exists and parses.
    pub fn load(&self) -> Option<Record> {
        let bytes = std::fs::read(&self.path).ok()?;
        let record = decode(&bytes);
        if record.is_none() {
            tracing::debug!(path = %self.path.display(), "nftables: ignoring an unreadable generation record");
        }
        record
    }

    /// Replaces the record with the hardened writer every state file uses
    /// (`cf_allow_exec::files::replace`: an exclusive temporary file, no link followed,
    /// rename; mode 0600). Failures only cost speed, so they are logged, not returned.
    pub fn store(&self, record: &Record) {
        if !self.writable {
            return;
        }
        if let Err(e) = cf_allow_exec::files::replace(&self.path, &encode(record), 0o600) {
            tracing::debug!(path = %self.path.display(), error = %e, "nftables: cannot record the ruleset generation");
        }
    }
}

/// This boot and this network namespace, or `None` when either cannot be told apart.
pub(crate) fn host_identity(netns_cookie: Option<u64>) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("{}/{}", boot.trim(), netns_cookie?))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend(bytes);
}

fn encode(record: &Record) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, record.stamp.host.as_bytes());
    out.extend(record.stamp.generation.to_be_bytes());
    put_bytes(&mut out, record.target.as_bytes());
    for set in [&record.v4, &record.v6] {
        match set {
            None => out.push(0),
            Some(elements) => {
                out.push(1);
                out.extend((elements.len() as u32).to_be_bytes());
                for e in elements {
                    out.push(u8::from(e.end) | (u8::from(e.open) << 1));
                    put_bytes(&mut out, &e.key);
                }
            }
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode(bytes: &[u8]) -> Option<Record> {
    let mut r = Reader {
        bytes: bytes.strip_prefix(MAGIC)?,
    };
    let host = r.string()?;
    let generation = r.u32()?;
    let target = r.string()?;
    let mut sets = [None, None];
    for set in &mut sets {
        if r.u8()? == 1 {
            let count = r.u32()? as usize;
            // Bounded by what is left: each element takes at least 5 bytes.
            if count > r.bytes.len() / 5 {
                return None;
            }
            let mut elements = Vec::with_capacity(count);
            for _ in 0..count {
                let flags = r.u8()?;
                let key = r.bytes()?;
                if key.len() != 4 && key.len() != 16 {
                    return None;
                }
                elements.push(Element {
                    key: Key::new(key)?,
                    end: flags & 1 != 0,
                    open: flags & 2 != 0,
                });
            }
            *set = Some(elements);
        }
    }
    if !r.bytes.is_empty() {
        return None;
    }
    let [v4, v6] = sets;
    Some(Record {
        stamp: Stamp { host, generation },
        target,
        v4,
        v6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::elements_of;

    #[test]
    fn a_record_round_trips_and_damage_is_refused() {
        let v4 = ["192.0.2.0/24", "198.51.100.0/25"]
            .iter()
            .flat_map(|n| elements_of(&n.parse().expect("cidr")))
            .collect();
        let record = Record {
            stamp: Stamp {
                host: "boot/42".into(),
                generation: 7,
            },
            target: "own cf_allow".into(),
            v4: Some(v4),
            v6: None,
        };
        let bytes = encode(&record);
        assert_eq!(decode(&bytes), Some(record));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(b"something else"), None);
    }
}
