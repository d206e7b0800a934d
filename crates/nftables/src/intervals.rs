//! How CIDR prefixes map onto the elements of an nftables interval set, and back.
//!
//! An interval set stores each range as two elements: its first address (flags 0) and the
//! address just past its last one (flagged `NFT_SET_ELEM_INTERVAL_END`). A range that reaches
//! the top of the address space has no address past its end; nft then sends only the start
//! element, marked "interval open" in the element's user data, and so do we. A dump of the
//! set returns the same elements (in any order), plus possibly a lone end element at address
//! zero that `nft` adds; [`ranges_from_elements`] turns them back into ranges, and
//! [`prefixes_of_range`] splits each range into the minimal list of prefixes, so that
//! adjacent prefixes that do not merge (10.0.1.0/24 + 10.0.2.0/24) come back as they were.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

/// An element's key held inline (no allocation per element: a 100k-range set is 200k of
/// them): up to 16 bytes, an IPv6 address; a port takes 2, an IPv4 address 4.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    len: u8,
    bytes: [u8; 16],
}

impl Key {
    /// The key holding `bytes`, or `None` when they are longer than 16 bytes.
    pub fn new(bytes: &[u8]) -> Option<Key> {
        let mut key = Key {
            len: u8::try_from(bytes.len()).ok().filter(|&n| n <= 16)?,
            bytes: [0; 16],
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(key)
    }

    /// A port, in network order.
    pub fn port(port: u16) -> Key {
        Key::of(port.to_be_bytes())
    }

    /// The key of an array that fits (checked when compiling): a port, an address.
    fn of<const N: usize>(array: [u8; N]) -> Key {
        const { assert!(N <= 16) };
        let mut bytes = [0; 16];
        bytes[..N].copy_from_slice(&array);
        Key {
            len: N as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Byte-wise, as the kernel orders keys of one length.
impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

/// One element of an interval set, as sent to or read from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Element {
    /// The key: 4 (IPv4) or 16 (IPv6) bytes in network order.
    pub key: Key,
    /// True for the element that marks the address just past a range.
    pub end: bool,
    /// True for a start element whose range runs to the top of the address space.
    pub open: bool,
}

/// An inclusive range of addresses of one family, as stored in the kernel.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StoredRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (inclusive).
    pub last: IpAddr,
    /// The elements that hold this range (to delete it exactly as stored).
    pub elements: Held,
}

/// The one or two elements that hold a stored range: its start and, unless the range runs to
/// the top of the address space (or was stored without one), the end just past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Held {
    pub start: Element,
    pub end: Option<Element>,
}

impl Held {
    pub fn iter(&self) -> impl Iterator<Item = &Element> {
        std::iter::once(&self.start).chain(self.end.as_ref())
    }
}

impl StoredRange {
    /// The minimal prefixes covering exactly this range (an iterator: no list per range).
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> {
        prefixes_of_range(self.first, self.last)
    }

    /// The range `first..=last` as held by a start element (flagged open or not) and, when
    /// `end` is `Some(open)`, an end element just past `last`: the inverse of taking a
    /// range's bounds and flags apart, for the generation record. `None` when the bounds
    /// are of different families or out of order, or an end is claimed past the top.
    pub fn from_parts(
        first: IpAddr,
        last: IpAddr,
        start_open: bool,
        end: Option<bool>,
    ) -> Option<StoredRange> {
        if first.is_ipv4() != last.is_ipv4() || first > last {
            return None;
        }
        let end = match end {
            Some(open) => Some(Element {
                key: addr_bytes(next_addr(last)?),
                end: true,
                open,
            }),
            None => None,
        };
        Some(StoredRange {
            first,
            last,
            elements: Held {
                start: Element {
                    key: addr_bytes(first),
                    end: false,
                    open: start_open,
                },
                end,
            },
        })
    }
}

/// The elements that store `net` in an interval set.
pub(crate) fn elements_of(net: &IpNet) -> Vec<Element> {
    let start = addr_bytes(net.network());
    match next_addr(net.broadcast()) {
        Some(past) => vec![
            Element {
                key: start,
                end: false,
                open: false,
            },
            Element {
                key: addr_bytes(past),
                end: true,
                open: false,
            },
        ],
        None => vec![Element {
            key: start,
            end: false,
            open: true,
        }],
    }
}

/// Sorts elements by key, an end before a start of the same key (the order
/// [`ranges_from_elements`] pairs them in); a list in that order already costs one pass.
pub(crate) fn sort_elements(elements: &mut [Element]) {
    let order = |a: &Element, b: &Element| a.key.cmp(&b.key).then(b.end.cmp(&a.end));
    if !elements.is_sorted_by(|a, b| order(a, b).is_le()) {
        elements.sort_by(order);
    }
}

/// Pairs the elements of a dumped interval set into ranges of the family whose keys are
/// `key_len` bytes long (4 or 16). Lone end elements (nft's end marker at address zero) are
/// skipped; a start without an end runs to the top of the address space.
pub(crate) fn ranges_from_elements(mut elements: Vec<Element>, key_len: usize) -> Vec<StoredRange> {
    elements.retain(|e| e.key.len() == key_len);
    // Sorted by key, end elements before start elements of the same key: the end of one
    // range and the start of its neighbour share the same address. (A list in this order
    // already is checked in one pass, not sorted again.)
    sort_elements(&mut elements);
    let mut ranges = Vec::with_capacity(elements.len() / 2 + 1);
    let mut pending: Option<Element> = None;
    for element in elements {
        // The open range ends just before this element: at its end, or (a start that is
        // not closed before the next start) just before the next range.
        if let Some(start) = pending.take() {
            if let Some((first, last)) = range_before(&start, &element) {
                ranges.push(StoredRange {
                    first,
                    last,
                    elements: Held {
                        start,
                        end: element.end.then_some(element),
                    },
                });
            }
        }
        if !element.end {
            pending = Some(element);
        }
    }
    if let Some(start) = pending {
        if let Some(first) = bytes_addr(&start.key) {
            ranges.push(StoredRange {
                first,
                last: top_of(first),
                elements: Held { start, end: None },
            });
        }
    }
    ranges
}

/// The addresses from `start`'s key to just before `next`'s key, when there are any.
fn range_before(start: &Element, next: &Element) -> Option<(IpAddr, IpAddr)> {
    let first = bytes_addr(&start.key)?;
    let last = prev_addr(bytes_addr(&next.key)?)?;
    (last >= first).then_some((first, last))
}

/// The minimal list of prefixes covering exactly `first..=last`; empty when the families
/// differ or `first > last`. A range that is one prefix (what cf-allow stores) is told
/// from its bounds at once, without ipnet's subnet walk.
pub(crate) fn prefixes_of_range(first: IpAddr, last: IpAddr) -> Prefixes {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            match one_prefix(u32::from(a).into(), u32::from(b).into(), 32) {
                Some(len) => Prefixes::One(Ipv4Net::new(a, len).ok().map(IpNet::V4)),
                None => Prefixes::V4(Ipv4Subnets::new(a, b, 0)),
            }
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => match one_prefix(a.into(), b.into(), 128) {
            Some(len) => Prefixes::One(Ipv6Net::new(a, len).ok().map(IpNet::V6)),
            None => Prefixes::V6(Ipv6Subnets::new(a, b, 0)),
        },
        _ => Prefixes::One(None),
    }
}

/// The prefix length when `lo..=hi` (addresses of `bits` bits) is exactly one prefix: the
/// bits that differ are all ones, at the end, and zero in `lo`.
fn one_prefix(lo: u128, hi: u128, bits: u32) -> Option<u8> {
    let host = lo ^ hi;
    (lo <= hi && host & host.wrapping_add(1) == 0 && lo & host == 0)
        .then(|| u8::try_from(bits - (128 - host.leading_zeros())).ok())
        .flatten()
}

/// The prefixes of one range (see [`prefixes_of_range`]).
pub(crate) enum Prefixes {
    One(Option<IpNet>),
    V4(Ipv4Subnets),
    V6(Ipv6Subnets),
}

impl Iterator for Prefixes {
    type Item = IpNet;
    fn next(&mut self) -> Option<IpNet> {
        match self {
            Prefixes::One(net) => net.take(),
            Prefixes::V4(nets) => nets.next().map(IpNet::V4),
            Prefixes::V6(nets) => nets.next().map(IpNet::V6),
        }
    }
}

pub(crate) fn addr_bytes(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => Key::of(a.octets()),
        IpAddr::V6(a) => Key::of(a.octets()),
    }
}

pub(crate) fn bytes_addr(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(b.into())),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(b.into())),
        _ => None,
    }
}

fn next_addr(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

fn prev_addr(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => u32::from(a)
            .checked_sub(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a)
            .checked_sub(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

fn top_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cf_allow_diff::RangeSet;
    use ipnet::Ipv4Net;

    fn prefixes_of_range(first: IpAddr, last: IpAddr) -> Vec<IpNet> {
        super::prefixes_of_range(first, last).collect()
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test CIDR")
    }

    /// Elements of `nets` as the kernel would dump them (reversed, like the rbtree does).
    fn dump(nets: &[IpNet]) -> Vec<Element> {
        let mut all: Vec<Element> = nets.iter().flat_map(elements_of).collect();
        all.reverse();
        all
    }

    fn round_trip(nets: &[IpNet], key_len: usize) -> RangeSet {
        RangeSet::exact(
            ranges_from_elements(dump(nets), key_len)
                .iter()
                .flat_map(StoredRange::prefixes),
        )
    }

    #[test]
    fn a_prefix_is_a_start_and_an_end_just_past_it() {
        let elements = elements_of(&net("103.21.244.0/22"));
        assert_eq!(
            elements,
            vec![
                Element {
                    key: Key::new(&[103, 21, 244, 0]).expect("key"),
                    end: false,
                    open: false
                },
                Element {
                    key: Key::new(&[103, 21, 248, 0]).expect("key"),
                    end: true,
                    open: false
                },
            ]
        );
    }

    #[test]
    fn a_prefix_at_the_top_has_only_an_open_start() {
        assert_eq!(
            elements_of(&net("255.255.255.0/24")),
            vec![Element {
                key: Key::new(&[255, 255, 255, 0]).expect("key"),
                end: false,
                open: true
            }]
        );
        let v6 = elements_of(&net("ffff::/16"));
        assert_eq!(v6.len(), 1);
        assert!(v6[0].open);
        let back = round_trip(&[net("255.255.255.0/24"), net("10.0.0.0/8")], 4);
        assert_eq!(
            back,
            RangeSet::exact([net("10.0.0.0/8"), net("255.255.255.0/24")])
        );
        assert_eq!(
            round_trip(&[net("ffff::/16")], 16),
            RangeSet::exact([net("ffff::/16")])
        );
    }

    #[test]
    fn adjacent_prefixes_that_do_not_merge_come_back_as_they_were() {
        let nets = [net("10.0.1.0/24"), net("10.0.2.0/24")];
        assert_eq!(round_trip(&nets, 4), RangeSet::exact(nets));
    }

    #[test]
    fn the_lone_end_marker_at_zero_is_ignored() {
        let mut elements = dump(&[net("173.245.48.0/20")]);
        elements.push(Element {
            key: Key::new(&[0, 0, 0, 0]).expect("key"),
            end: true,
            open: false,
        });
        let ranges = ranges_from_elements(elements, 4);
        assert_eq!(ranges.len(), 1);
        assert_eq!(
            ranges[0].prefixes().collect::<Vec<_>>(),
            vec![net("173.245.48.0/20")]
        );
    }

    #[test]
    fn a_range_merged_by_someone_else_splits_into_minimal_prefixes() {
        let first: IpAddr = "10.0.1.0".parse().expect("addr");
        let last: IpAddr = "10.0.2.255".parse().expect("addr");
        assert_eq!(
            prefixes_of_range(first, last),
            vec![net("10.0.1.0/24"), net("10.0.2.0/24")]
        );
        let first: IpAddr = "10.0.0.1".parse().expect("addr");
        let last: IpAddr = "10.0.0.6".parse().expect("addr");
        assert_eq!(
            prefixes_of_range(first, last),
            vec![
                net("10.0.0.1/32"),
                net("10.0.0.2/31"),
                net("10.0.0.4/31"),
                net("10.0.0.6/32")
            ]
        );
        assert_eq!(
            prefixes_of_range(
                "0.0.0.0".parse().expect("a"),
                "255.255.255.255".parse().expect("a")
            ),
            vec![net("0.0.0.0/0")]
        );
        assert_eq!(
            prefixes_of_range("::".parse().expect("a"), Ipv6Addr::from(u128::MAX).into()),
            vec![net("::/0")]
        );
    }

    #[test]
    fn ranges_at_the_edges_split_exactly() {
        let a = |s: &str| -> IpAddr { s.parse().expect("addr") };
        // Ranges that end at the top of the address space.
        assert_eq!(
            prefixes_of_range(a("255.255.255.253"), a("255.255.255.255")),
            vec![net("255.255.255.253/32"), net("255.255.255.254/31")]
        );
        assert_eq!(
            prefixes_of_range(a("128.0.0.0"), a("255.255.255.255")),
            vec![net("128.0.0.0/1")]
        );
        assert_eq!(
            prefixes_of_range(
                Ipv6Addr::from(u128::MAX - 2).into(),
                Ipv6Addr::from(u128::MAX).into()
            ),
            vec![
                net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd/128"),
                net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")
            ]
        );
        assert_eq!(
            prefixes_of_range(a("8000::"), Ipv6Addr::from(u128::MAX).into()),
            vec![net("8000::/1")]
        );
        // A single address, including the very first and the very last one.
        for s in [
            "10.0.0.7",
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "2001:db8::1",
        ] {
            assert_eq!(prefixes_of_range(a(s), a(s)), vec![IpNet::from(a(s))]);
        }
        let top6: IpAddr = Ipv6Addr::from(u128::MAX).into();
        assert_eq!(prefixes_of_range(top6, top6), vec![IpNet::from(top6)]);
        // first > last, and mismatched families, give nothing.
        assert!(prefixes_of_range(a("10.0.0.2"), a("10.0.0.1")).is_empty());
        assert!(prefixes_of_range(a("255.255.255.255"), a("0.0.0.0")).is_empty());
        assert!(prefixes_of_range(a("2001:db8::2"), a("2001:db8::1")).is_empty());
        assert!(prefixes_of_range(a("10.0.0.1"), a("::1")).is_empty());
        assert!(prefixes_of_range(a("::1"), a("10.0.0.1")).is_empty());
    }

    #[test]
    fn cloudflare_ranges_round_trip_exactly_in_both_families() {
        let all = RangeSet::aggregated(cf_allow_testkit::cloudflare_ranges().into_iter().map(net));
        let v4: Vec<IpNet> = all.iter_family(cf_allow_diff::Family::Ipv4).collect();
        let v6: Vec<IpNet> = all.iter_family(cf_allow_diff::Family::Ipv6).collect();
        let back = RangeSet::exact(round_trip(&v4, 4).iter().chain(round_trip(&v6, 16).iter()));
        assert_eq!(back, all);
    }

    #[test]
    fn aggregated_neighbours_round_trip_as_the_aggregate() {
        // aggregated() merges mergeable neighbours; what is stored is what comes back.
        let agg = RangeSet::aggregated([
            net("10.0.0.0/24"),
            net("10.0.1.0/24"),
            net("10.0.2.0/24"),
            net("2001:db8::/33"),
            net("2001:db8:8000::/33"),
        ]);
        assert_eq!(
            agg,
            RangeSet::exact([net("10.0.0.0/23"), net("10.0.2.0/24"), net("2001:db8::/32")])
        );
        let v4: Vec<IpNet> = agg.iter_family(cf_allow_diff::Family::Ipv4).collect();
        let v6: Vec<IpNet> = agg.iter_family(cf_allow_diff::Family::Ipv6).collect();
        let back = RangeSet::exact(round_trip(&v4, 4).iter().chain(round_trip(&v6, 16).iter()));
        assert_eq!(back, agg);
    }

    #[test]
    fn random_prefix_lists_round_trip() {
        // A deterministic pseudo-random walk over many non-overlapping prefix lists.
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..300 {
            let mut nets = Vec::new();
            for _ in 0..12 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = 8 + (seed % 25) as u8;
                let addr = Ipv4Addr::from((seed >> 20) as u32);
                if let Ok(n) = Ipv4Net::new(addr, len) {
                    nets.push(IpNet::V4(n.trunc()));
                }
            }
            // Stored sets never hold overlapping prefixes: drop those covered by another.
            let exact = RangeSet::exact(nets.clone());
            let kept: Vec<IpNet> = exact
                .iter()
                .filter(|n| !exact.iter().any(|o| o != *n && o.contains(n)))
                .collect();
            assert_eq!(round_trip(&kept, 4), RangeSet::exact(kept.clone()));
        }
    }

    #[test]
    fn the_one_prefix_shortcut_agrees_with_the_subnet_walk() {
        let mut seed: u64 = 0x2545f4914f6cdd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let walk4 = |a: u32, b: u32| -> Vec<IpNet> {
            Ipv4Subnets::new(a.into(), b.into(), 0)
                .map(IpNet::V4)
                .collect()
        };
        let walk6 = |a: u128, b: u128| -> Vec<IpNet> {
            Ipv6Subnets::new(a.into(), b.into(), 0)
                .map(IpNet::V6)
                .collect()
        };
        let mut pairs4 = vec![
            (0, u32::MAX),
            (0, 0),
            (u32::MAX, u32::MAX),
            (1, 0),
            (0, 1),
            (1, 2),
        ];
        let mut pairs6 = vec![(0, u128::MAX), (u128::MAX, u128::MAX), (5, 4), (4, 7)];
        for _ in 0..2000 {
            let (r, len) = (next(), (next() % 33) as u32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let lo = r as u32 & mask;
            pairs4.push((lo, lo | !mask));
            pairs4.push((lo, (lo | !mask).wrapping_sub(next() as u32 % 2)));
            pairs4.push((r as u32, (r >> 32) as u32));
            let len = (next() % 129) as u32;
            let r6 = (u128::from(next()) << 64) | u128::from(next());
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            pairs6.push((r6 & mask, (r6 & mask) | !mask));
            pairs6.push((r6 & mask, r6 | !mask));
        }
        for (a, b) in pairs4 {
            let got = prefixes_of_range(IpAddr::V4(a.into()), IpAddr::V4(b.into()));
            assert_eq!(got, walk4(a, b), "{a:#x}..={b:#x}");
        }
        for (a, b) in pairs6 {
            let got = prefixes_of_range(IpAddr::V6(a.into()), IpAddr::V6(b.into()));
            assert_eq!(got, walk6(a, b), "{a:#x}..={b:#x}");
        }
        let mixed = prefixes_of_range("10.0.0.0".parse().expect("v4"), "::1".parse().expect("v6"));
        assert!(mixed.is_empty());
    }
}
