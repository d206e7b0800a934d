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

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::intervals::{bytes_addr, StoredRange};

/// File format version (the first line). Version 2 records ranges (bounds and the flags of
/// their elements) instead of elements, so that a recalled set needs no pairing of
/// elements into ranges; a version 1 record is not used (the sets are read once more).
const MAGIC: &[u8] = b"cf-allow nftables generation v2\n";

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

/// The ranges of cf-allow's two sets at one generation, sorted, with the elements that hold
/// them (`None`: the set did not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub stamp: Stamp,
    /// The table the sets are in, and whether it is into mode.
    pub target: String,
    pub v4: Option<RecordedSet>,
    pub v6: Option<RecordedSet>,
}

/// One set's ranges as the record holds them: per range a flags byte and its first and last
/// address (`key_len` bytes each), sorted and checked when the record was read, and decoded
/// only as far as the caller needs: a no-op wants the bounds (its prefixes), only a change
/// wants the ranges with their elements. The bytes are shared with the file as read.
#[derive(Clone, Debug)]
pub(crate) struct RecordedSet {
    data: Arc<Vec<u8>>,
    start: usize,
    count: usize,
    key_len: usize,
}

/// Flags of a recorded range: its start element is flagged open; it has an end element;
/// that end element is flagged open.
const START_OPEN: u8 = 1;
const HAS_END: u8 = 2;
const END_OPEN: u8 = 4;

impl RecordedSet {
    /// The set holding `ranges` (sorted, of the family whose addresses are `key_len` bytes).
    pub fn of(ranges: &[StoredRange], key_len: usize) -> RecordedSet {
        let mut data = Vec::with_capacity(ranges.len() * (1 + 2 * key_len));
        for r in ranges {
            let held = &r.elements;
            let mut flags = if held.start.open { START_OPEN } else { 0 };
            if let Some(end) = held.end {
                flags |= if end.open {
                    HAS_END | END_OPEN
                } else {
                    HAS_END
                };
            }
            data.push(flags);
            put_addr(&mut data, r.first);
            put_addr(&mut data, r.last);
        }
        RecordedSet {
            data: Arc::new(data),
            start: 0,
            count: ranges.len(),
            key_len,
        }
    }

    fn body(&self) -> &[u8] {
        &self.data[self.start..self.start + self.count * (1 + 2 * self.key_len)]
    }

    /// Each range's flags, first and last address (checked when read, so none is skipped).
    fn parts(&self) -> impl Iterator<Item = (u8, IpAddr, IpAddr)> + '_ {
        let k = self.key_len;
        self.body()
            .chunks_exact(1 + 2 * k)
            .filter_map(move |c| Some((c[0], bytes_addr(&c[1..1 + k])?, bytes_addr(&c[1 + k..])?)))
    }

    /// The first and last address of each range, in order.
    pub fn bounds(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        self.parts().map(|(_, first, last)| (first, last))
    }

    /// The ranges with the elements that hold them, in order.
    #[cfg(test)]
    pub fn ranges(&self) -> Vec<StoredRange> {
        self.parts()
            .filter_map(|(flags, first, last)| range_of(flags, first, last))
            .collect()
    }

    /// The number of ranges.
    pub fn len(&self) -> usize {
        self.count
    }

    /// One range's bytes: flags, first and last address.
    fn chunk(&self, i: usize) -> &[u8] {
        let size = 1 + 2 * self.key_len;
        &self.body()[i * size..(i + 1) * size]
    }

    /// The range holding `addr` with its index, found by a binary search over the first
    /// addresses (the ranges are sorted and do not overlap): no decoding of the others.
    pub fn holding(&self, addr: IpAddr) -> Option<(usize, StoredRange)> {
        let key = crate::intervals::addr_bytes(addr);
        if key.len() != self.key_len {
            return None;
        }
        let k = self.key_len;
        // The number of ranges starting at or before `addr`.
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.chunk(mid)[1..1 + k] <= key[..] {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo.checked_sub(1)?;
        let c = self.chunk(i);
        if c[1 + k..] < key[..] {
            return None;
        }
        let range = range_of(c[0], bytes_addr(&c[1..1 + k])?, bytes_addr(&c[1 + k..])?)?;
        Some((i, range))
    }

    /// This set without the ranges at `deleted` (sorted indices) and with `inserted` (sorted
    /// ranges that overlap none that stay): the recorded bytes copied around the change, so
    /// a one-range delta costs a copy of the record, not a decoding of every range. `None`
    /// when the result would not be sorted (the caller then records nothing).
    pub fn edited(&self, deleted: &[usize], inserted: &[StoredRange]) -> Option<RecordedSet> {
        let k = self.key_len;
        let added = RecordedSet::of(inserted, k);
        let count = (self.count + added.count).checked_sub(deleted.len())?;
        let mut data = Vec::with_capacity(count * (1 + 2 * k));
        let mut gone = deleted.iter().peekable();
        let mut new = (0..added.count).map(|j| added.chunk(j)).peekable();
        for i in 0..self.count {
            if gone.next_if_eq(&&i).is_some() {
                continue;
            }
            let old = self.chunk(i);
            while let Some(c) = new.next_if(|c| c[1..1 + k] < old[1..1 + k]) {
                data.extend_from_slice(c);
            }
            data.extend_from_slice(old);
        }
        for c in new {
            data.extend_from_slice(c);
        }
        let set = RecordedSet {
            data: Arc::new(data),
            start: 0,
            count,
            key_len: k,
        };
        // Sorted, and no range starts before the last one ended.
        let sorted = (1..set.count).all(|i| set.chunk(i - 1)[1 + k..] < set.chunk(i)[1..1 + k]);
        (gone.next().is_none() && sorted).then_some(set)
    }
}

impl PartialEq for RecordedSet {
    fn eq(&self, other: &RecordedSet) -> bool {
        self.key_len == other.key_len && self.body() == other.body()
    }
}

impl Eq for RecordedSet {}

fn range_of(flags: u8, first: IpAddr, last: IpAddr) -> Option<StoredRange> {
    let end = (flags & HAS_END != 0).then_some(flags & END_OPEN != 0);
    StoredRange::from_parts(first, last, flags & START_OPEN != 0, end)
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
        let record = decode(bytes);
        if record.is_none() {
            tracing::debug!(path = %self.path.display(), "nftables: ignoring an unreadable generation record");
        }
        record
    }

    /// Replaces the record with the hardened writer every state file uses
    /// (`cf_allow_exec::files::replace_boot_cache`: an exclusive temporary file, no link
    /// followed, rename; mode 0600; no fsync, since a record names the boot it describes and
    /// is never used after a crash). Failures only cost speed, so they are logged, not returned.
    pub fn store(&self, record: &Record) {
        if !self.writable {
            return;
        }
        if let Err(e) = cf_allow_exec::files::replace_boot_cache(&self.path, &encode(record), 0o600)
        {
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

fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => out.extend(a.octets()),
        IpAddr::V6(a) => out.extend(a.octets()),
    }
}

/// Per set: 1 (present) or 0, then the count and, per range, one flags byte and the first
/// and last address (4 or 16 bytes each, by the set's family).
fn encode(record: &Record) -> Vec<u8> {
    let size: usize = [&record.v4, &record.v6]
        .iter()
        .map(|set| set.as_ref().map_or(1, |s| 5 + s.body().len()))
        .sum();
    let header = MAGIC.len() + 4 + record.stamp.host.len() + 4 + 4 + record.target.len();
    let mut out = Vec::with_capacity(header + size);
    out.extend(MAGIC);
    put_bytes(&mut out, record.stamp.host.as_bytes());
    out.extend(record.stamp.generation.to_be_bytes());
    put_bytes(&mut out, record.target.as_bytes());
    for set in [&record.v4, &record.v6] {
        match set {
            None => out.push(0),
            Some(set) => {
                out.push(1);
                out.extend((set.count as u32).to_be_bytes());
                out.extend(set.body());
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

/// One set's ranges, `key_len` bytes per address, checked but not decoded; `None` when
/// anything is off: a range out of order or overlapping the one before, unknown flags, or
/// fewer bytes than counted.
fn decode_set(r: &mut Reader, data: &Arc<Vec<u8>>, key_len: usize) -> Option<RecordedSet> {
    let count = r.u32()? as usize;
    let each = 1 + 2 * key_len;
    let start = data.len() - r.bytes.len();
    // Bounded by what is left.
    let body = r.take(count.checked_mul(each)?)?;
    if key_len != 4 && key_len != 16 {
        return None;
    }
    // What `range_of` accepts, checked on the bytes (big-endian addresses compare as their
    // bytes do) without building a range: the first address at or before the last, no end
    // element claimed past the top, each range after the one before.
    let mut prev: Option<&[u8]> = None;
    for chunk in body.chunks_exact(each) {
        let (flags, first, last) = (chunk[0], &chunk[1..1 + key_len], &chunk[1 + key_len..]);
        if flags & !(START_OPEN | HAS_END | END_OPEN) != 0
            || first > last
            || (flags & HAS_END != 0 && last.iter().all(|&b| b == 0xff))
            || prev.is_some_and(|prev| prev >= first)
        {
            return None;
        }
        prev = Some(last);
    }
    Some(RecordedSet {
        data: Arc::clone(data),
        start,
        count,
        key_len,
    })
}

fn decode(bytes: Vec<u8>) -> Option<Record> {
    let data = Arc::new(bytes);
    let mut r = Reader {
        bytes: data.strip_prefix(MAGIC)?,
    };
    let host = r.string()?;
    let generation = r.u32()?;
    let target = r.string()?;
    let mut sets = [None, None];
    for (set, key_len) in sets.iter_mut().zip([4, 16]) {
        if r.u8()? == 1 {
            *set = Some(decode_set(&mut r, &data, key_len)?);
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
    use crate::intervals::{elements_of, ranges_from_elements};

    fn ranges(nets: &[&str], key_len: usize) -> Vec<StoredRange> {
        let elements = nets
            .iter()
            .flat_map(|n| elements_of(&n.parse().expect("cidr")))
            .collect();
        ranges_from_elements(elements, key_len)
    }

    fn set(nets: &[&str], key_len: usize) -> RecordedSet {
        RecordedSet::of(&ranges(nets, key_len), key_len)
    }

    #[test]
    fn a_record_round_trips_and_damage_is_refused() {
        let record = Record {
            stamp: Stamp {
                host: "boot/42".into(),
                generation: 7,
            },
            target: "own cf_allow".into(),
            // An open range at the top, and one whose end element is the next's start.
            v4: Some(set(
                &[
                    "192.0.2.0/24",
                    "198.51.100.0/25",
                    "198.51.100.128/25",
                    "255.0.0.0/8",
                ],
                4,
            )),
            v6: Some(set(&["2001:db8::/32", "ff00::/8"], 16)),
        };
        let bytes = encode(&record);
        let back = decode(bytes.clone()).expect("decodes");
        assert_eq!(back, record);
        // What is decoded is what was recorded: the ranges with their elements, and bounds.
        let want = ranges(
            &[
                "192.0.2.0/24",
                "198.51.100.0/25",
                "198.51.100.128/25",
                "255.0.0.0/8",
            ],
            4,
        );
        let v4 = back.v4.as_ref().expect("v4");
        assert_eq!(v4.ranges(), want);
        let bounds: Vec<_> = want.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(v4.bounds().collect::<Vec<_>>(), bounds);
        assert_eq!(decode(bytes[..bytes.len() - 1].to_vec()), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(longer), None);
        assert_eq!(decode(b"something else".to_vec()), None);
        // A record of version 1 is not read as version 2.
        let mut old = bytes.clone();
        old[MAGIC.len() - 2] = b'1';
        assert_eq!(decode(old), None);
        let empty = Record {
            v4: None,
            v6: Some(RecordedSet::of(&[], 16)),
            ..record
        };
        assert_eq!(decode(encode(&empty)), Some(empty));
    }

    #[test]
    fn ranges_out_of_order_or_with_unknown_flags_are_refused() {
        let record = Record {
            stamp: Stamp {
                host: "boot/1".into(),
                generation: 1,
            },
            target: "own cf_allow".into(),
            v4: Some(set(&["192.0.2.0/24", "198.51.100.0/24"], 4)),
            v6: None,
        };
        let bytes = encode(&record);
        // The first range's flags byte, then its first and last address.
        let at = bytes.len() - 1 - 2 * 9;
        let mut flags = bytes.clone();
        flags[at] |= 8;
        assert_eq!(decode(flags), None);
        let mut swapped = bytes.clone();
        let (a, b) = (at, at + 9);
        let first: Vec<u8> = swapped[a..a + 9].to_vec();
        let second: Vec<u8> = swapped[b..b + 9].to_vec();
        swapped[a..a + 9].copy_from_slice(&second);
        swapped[b..b + 9].copy_from_slice(&first);
        assert_eq!(decode(swapped), None);
        // A range whose first address is past its last.
        let mut backwards = bytes.clone();
        backwards[at + 1..at + 5].copy_from_slice(&[192, 0, 3, 0]);
        assert_eq!(decode(backwards), None);
        // An end element claimed past the top of the address space.
        let mut past_top = bytes.clone();
        past_top[b + 1..b + 9].copy_from_slice(&[255, 255, 255, 0, 255, 255, 255, 255]);
        assert_eq!(decode(past_top.clone()), None);
        // Without the end, the same range at the top is fine.
        past_top[b] &= !HAS_END;
        assert!(decode(past_top).is_some());
    }

    #[test]
    fn a_recorded_set_is_searched_and_edited_in_place() {
        // Every other /24 of 10.0.0.0/16 (start, one end element each) and a range at the
        // top (start element only).
        let mut nets: Vec<String> = (0..128).map(|i| format!("10.0.{}.0/24", 2 * i)).collect();
        nets.push("255.0.0.0/8".into());
        let names: Vec<&str> = nets.iter().map(String::as_str).collect();
        let all = ranges(&names, 4);
        let set = RecordedSet::of(&all, 4);
        for probe in [
            "10.0.0.0",
            "10.0.0.255",
            "10.0.1.0",
            "10.0.254.7",
            "9.255.255.255",
            "255.255.255.255",
            "11.0.0.0",
        ] {
            let addr: IpAddr = probe.parse().expect("addr");
            let want = all
                .iter()
                .position(|r| r.first <= addr && addr <= r.last)
                .map(|i| (i, all[i].clone()));
            assert_eq!(set.holding(addr), want, "{probe}");
        }
        assert_eq!(set.holding("2001:db8::".parse().expect("v6")), None);
        // Delete three ranges (the first, one inside, the open one) and insert three.
        let inserted = ranges(&["10.0.1.0/24", "10.0.255.0/24", "12.0.0.0/8"], 4);
        let edited = set.edited(&[0, 5, 128], &inserted).expect("sorted");
        let mut want: Vec<StoredRange> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, 5, 128].contains(i))
            .map(|(_, r)| r.clone())
            .chain(inserted.iter().cloned())
            .collect();
        want.sort();
        assert_eq!(edited.ranges(), want);
        assert_eq!(edited, RecordedSet::of(&want, 4));
        // An insert that overlaps a range that stays cannot be recorded.
        let overlapping = ranges(&["10.0.2.128/25"], 4);
        assert_eq!(set.edited(&[], &overlapping), None);
        assert_eq!(set.edited(&[129], &[]), None, "an index past the end");
    }
}
