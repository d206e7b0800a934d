//! The evaluated space: boxes of (source interval × destination-port interval), one address
//! family at a time. IPv4 addresses live in the low 32 bits of a `u128`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cf_allow_diff::Family;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An inclusive interval.
pub(crate) type Span<T> = (T, T);

/// A box of sources × ports, all bounds inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Bx {
    pub s: Span<u128>,
    pub p: Span<u16>,
}

/// The largest address of a family.
pub(crate) fn max_addr(family: Family) -> u128 {
    match family {
        Family::Ipv4 => u32::MAX as u128,
        Family::Ipv6 => u128::MAX,
    }
}

/// The whole space of a family.
pub(crate) fn full(family: Family) -> Bx {
    Bx {
        s: (0, max_addr(family)),
        p: (0, u16::MAX),
    }
}

fn isect<T: Ord + Copy>(a: Span<T>, b: Span<T>) -> Option<Span<T>> {
    let lo = a.0.max(b.0);
    let hi = a.1.min(b.1);
    (lo <= hi).then_some((lo, hi))
}

impl Bx {
    pub fn intersect(&self, o: &Bx) -> Option<Bx> {
        Some(Bx {
            s: isect(self.s, o.s)?,
            p: isect(self.p, o.p)?,
        })
    }

    /// `self − o` as disjoint boxes (at most four).
    pub fn minus(&self, o: &Bx, out: &mut Vec<Bx>) {
        let Some(i) = self.intersect(o) else {
            out.push(*self);
            return;
        };
        if self.s.0 < i.s.0 {
            out.push(Bx {
                s: (self.s.0, i.s.0 - 1),
                p: self.p,
            });
        }
        if i.s.1 < self.s.1 {
            out.push(Bx {
                s: (i.s.1 + 1, self.s.1),
                p: self.p,
            });
        }
        if self.p.0 < i.p.0 {
            out.push(Bx {
                s: i.s,
                p: (self.p.0, i.p.0 - 1),
            });
        }
        if i.p.1 < self.p.1 {
            out.push(Bx {
                s: i.s,
                p: (i.p.1 + 1, self.p.1),
            });
        }
    }
}

/// A set of disjoint boxes: where a condition holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shape {
    /// Disjoint, sorted by source start.
    boxes: Vec<Bx>,
    /// `reach[i]`: the largest source end among `boxes[..=i]` (non-decreasing), so that
    /// [`Shape::split`] skips every box that ends before a region in one binary search
    /// instead of scanning them all (which made a 100k-range set quadratic).
    reach: Vec<u128>,
}

impl Shape {
    /// A shape from possibly overlapping boxes.
    pub fn new(boxes: Vec<Bx>) -> Shape {
        let boxes = Shape::disjoint(boxes);
        let mut reach = Vec::with_capacity(boxes.len());
        let mut top = 0u128;
        for b in &boxes {
            top = top.max(b.s.1);
            reach.push(top);
        }
        Shape { boxes, reach }
    }

    /// Disjoint boxes sorted by source start covering the same space as `boxes`.
    fn disjoint(mut boxes: Vec<Bx>) -> Vec<Bx> {
        boxes.sort();
        // Fast path: every box has the same port span → merge source intervals.
        if let Some(first) = boxes.first().copied() {
            if boxes.iter().all(|b| b.p == first.p) {
                let mut merged: Vec<Bx> = Vec::with_capacity(boxes.len());
                for b in boxes {
                    match merged.last_mut() {
                        Some(last) if b.s.0 <= last.s.1.saturating_add(1) => {
                            last.s.1 = last.s.1.max(b.s.1);
                        }
                        _ => merged.push(b),
                    }
                }
                return merged;
            }
            if boxes.iter().all(|b| b.s == first.s) {
                let mut ports: Vec<Span<u16>> = boxes.iter().map(|b| b.p).collect();
                ports.sort();
                let mut merged: Vec<Bx> = Vec::new();
                for p in ports {
                    match merged.last_mut() {
                        Some(last) if (p.0 as u32) <= last.p.1 as u32 + 1 => {
                            last.p.1 = last.p.1.max(p.1);
                        }
                        _ => merged.push(Bx { s: first.s, p }),
                    }
                }
                return merged;
            }
        }
        // General case: make them disjoint.
        let mut disjoint: Vec<Bx> = Vec::new();
        for b in boxes {
            let mut pieces = vec![b];
            for d in &disjoint {
                let mut next = Vec::new();
                for piece in &pieces {
                    piece.minus(d, &mut next);
                }
                pieces = next;
                if pieces.is_empty() {
                    break;
                }
            }
            disjoint.extend(pieces);
        }
        disjoint.sort();
        disjoint
    }

    /// Splits `region` into (inside, outside) this shape.
    ///
    /// The shape's boxes are disjoint, so a region box is done as soon as nothing of it is
    /// left outside; the pieces left are kept in two buffers reused for every region box
    /// (one allocation per box of a 100k-range region was a sixth of a verdict).
    pub fn split(&self, region: &[Bx]) -> (Vec<Bx>, Vec<Bx>) {
        // Most boxes of a region end up whole on one side: room for all of them on each
        // (pages never written cost nothing) instead of a regrowth at every doubling.
        let mut inside = Vec::with_capacity(region.len());
        let mut outside = Vec::with_capacity(region.len());
        let mut rest: Vec<Bx> = Vec::new();
        let mut next: Vec<Bx> = Vec::new();
        // The last region box's bounds and search results: a region sorted by source (a
        // list of ranges is) moves both forward, and a search that starts from the last
        // result costs the distance moved instead of a binary search over the whole shape
        // (the searches were most of a 100k-range verdict).
        let (mut last_r, mut last_end, mut last_start) = ((0, 0), 0, 0);
        for r in region {
            // Each search starts from its last result when r moved forward, else from the
            // start of the shape.
            let end_from = if r.s.1 >= last_r.1 { last_end } else { 0 };
            let start_from = if r.s.0 >= last_r.0 { last_start } else { 0 };
            // Candidates: boxes starting at or before r's end.
            let end = partition_from(&self.boxes, end_from, |b| b.s.0 <= r.s.1);
            // Boxes before `start` all end before r begins.
            let start = partition_from(&self.reach, start_from, |&top| top < r.s.0);
            (last_r, last_end, last_start) = (r.s, end, start);
            let start = start.min(end);
            rest.clear();
            rest.push(*r);
            for b in &self.boxes[start..end] {
                if b.s.1 < r.s.0 {
                    continue;
                }
                if let Some(i) = r.intersect(b) {
                    inside.push(i);
                    next.clear();
                    for piece in &rest {
                        piece.minus(b, &mut next);
                    }
                    std::mem::swap(&mut rest, &mut next);
                    if rest.is_empty() {
                        break;
                    }
                }
            }
            outside.extend_from_slice(&rest);
        }
        (inside, outside)
    }
}

/// `items.partition_point(pred)` when the partition point is known to be at or after
/// `from`: a galloping search from `from` (probes 1, 2, 4, … ahead, then a binary search
/// in the last gap), O(log distance).
fn partition_from<T>(items: &[T], from: usize, pred: impl Fn(&T) -> bool) -> usize {
    // Everything before `lo` satisfies `pred`.
    let mut lo = from.min(items.len());
    let mut step = 1usize;
    loop {
        let probe = lo.saturating_add(step - 1);
        if probe >= items.len() {
            return lo + items[lo..].partition_point(&pred);
        }
        if !pred(&items[probe]) {
            return lo + items[lo..probe].partition_point(&pred);
        }
        lo = probe + 1;
        step = step.saturating_mul(2);
    }
}

/// The numeric value of an address.
pub(crate) fn addr_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An address value as text.
pub(crate) fn show_addr(family: Family, v: u128) -> String {
    match family {
        Family::Ipv4 => Ipv4Addr::from(v as u32).to_string(),
        Family::Ipv6 => Ipv6Addr::from(v).to_string(),
    }
}

/// The span of `addr/len` (host bits ignored); `None` when `len` is too long.
pub(crate) fn prefix_span(addr: IpAddr, len: u32) -> Option<Span<u128>> {
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if len > bits {
        return None;
    }
    let host = bits - len;
    let mask: u128 = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let base = addr_value(addr) & !mask;
    Some((base, base | mask))
}

/// The span of a network.
pub(crate) fn net_span(net: &IpNet) -> Span<u128> {
    (addr_value(net.network()), addr_value(net.broadcast()))
}

/// The smallest list of CIDRs covering exactly the inclusive interval.
pub(crate) fn span_to_nets(family: Family, span: Span<u128>) -> Vec<IpNet> {
    let bits: u32 = match family {
        Family::Ipv4 => 32,
        Family::Ipv6 => 128,
    };
    let mut out = Vec::new();
    let (mut lo, hi) = span;
    loop {
        // Largest block aligned at lo that fits in [lo, hi].
        let mut size_bits = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_bits > 0 {
            let last = if size_bits >= 128 {
                u128::MAX
            } else {
                lo + ((1u128 << size_bits) - 1)
            };
            if last <= hi && last >= lo {
                break;
            }
            size_bits -= 1;
        }
        let prefix = (bits - size_bits) as u8;
        let net = match family {
            Family::Ipv4 => Ipv4Net::new(Ipv4Addr::from(lo as u32), prefix).map(IpNet::V4),
            Family::Ipv6 => Ipv6Net::new(Ipv6Addr::from(lo), prefix).map(IpNet::V6),
        };
        if let Ok(net) = net {
            out.push(net);
        }
        let last = if size_bits >= 128 {
            u128::MAX
        } else {
            lo + ((1u128 << size_bits) - 1)
        };
        if last >= hi {
            break;
        }
        lo = last + 1;
    }
    out
}

/// Merges sorted-or-not inclusive spans into disjoint sorted spans.
pub(crate) fn merge_spans<T: Ord + Copy>(
    mut spans: Vec<Span<T>>,
    next: impl Fn(T) -> Option<T>,
) -> Vec<Span<T>> {
    spans.sort();
    let mut out: Vec<Span<T>> = Vec::new();
    for s in spans {
        match out.last_mut() {
            Some(last) if next(last.1).is_none_or(|n| s.0 <= n) => {
                if s.1 > last.1 {
                    last.1 = s.1;
                }
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: (u128, u128), p: (u16, u16)) -> Bx {
        Bx { s, p }
    }

    #[test]
    fn partition_from_finds_the_partition_point_from_any_earlier_start() {
        for len in 0..40usize {
            let items: Vec<usize> = (0..len).map(|i| i / 3).collect();
            for key in 0..15 {
                let want = items.partition_point(|&x| x < key);
                for from in 0..=want {
                    assert_eq!(
                        partition_from(&items, from, |&x| x < key),
                        want,
                        "{len} {key} {from}"
                    );
                }
            }
        }
    }

    /// Region boxes in any order (the searches restart when a box goes backwards) split
    /// exactly as box-by-box intersection says.
    #[test]
    fn split_agrees_with_intersecting_box_by_box_in_any_order() {
        let shape_boxes: Vec<Bx> = (0..50u128)
            .map(|i| b((i * 10, i * 10 + 4 + (i % 3) * 3), (0, 100 + i as u16)))
            .chain([b((0, 1000), (400, 500))])
            .collect();
        let shape = Shape::new(shape_boxes.clone());
        let mut region: Vec<Bx> = (0..80u128)
            .map(|i| b((i * 7, i * 7 + (i % 5) * 4), (50, 450)))
            .collect();
        for order in 0..2 {
            if order == 1 {
                region.reverse();
                region.swap(3, 40);
            }
            let (inside, outside) = shape.split(&region);
            let area = |v: &[Bx]| -> u128 {
                v.iter()
                    .map(|x| (x.s.1 - x.s.0 + 1) * (x.p.1 as u128 - x.p.0 as u128 + 1))
                    .sum()
            };
            assert_eq!(area(&inside) + area(&outside), area(&region));
            // Every point of every region box is inside exactly when some shape box has it.
            for r in &region {
                for s in [r.s.0, (r.s.0 + r.s.1) / 2, r.s.1] {
                    for p in [r.p.0, 120, 420, r.p.1] {
                        let has = |v: &[Bx]| {
                            v.iter()
                                .any(|x| x.s.0 <= s && s <= x.s.1 && x.p.0 <= p && p <= x.p.1)
                        };
                        let want = shape_boxes
                            .iter()
                            .any(|x| x.s.0 <= s && s <= x.s.1 && x.p.0 <= p && p <= x.p.1);
                        if p < r.p.0 || p > r.p.1 {
                            continue;
                        }
                        assert_eq!(has(&inside), want, "{s} {p}");
                        assert_eq!(has(&outside), !want, "{s} {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn split_partitions_the_region() {
        let shape = Shape::new(vec![b((10, 20), (0, 100)), b((15, 30), (50, 200))]);
        let region = vec![b((0, 40), (0, 300))];
        let (i, o) = shape.split(&region);
        let area = |v: &[Bx]| -> u128 {
            v.iter()
                .map(|x| (x.s.1 - x.s.0 + 1) * (x.p.1 as u128 - x.p.0 as u128 + 1))
                .sum()
        };
        assert_eq!(area(&i) + area(&o), 41 * 301);
        assert_eq!(area(&i), 11 * 101 + 16 * 151 - 6 * 51);
    }

    #[test]
    fn spans_become_minimal_cidrs() {
        let nets = span_to_nets(
            Family::Ipv4,
            (
                addr_value("192.0.2.1".parse().unwrap()),
                addr_value("192.0.2.6".parse().unwrap()),
            ),
        );
        let s: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            s,
            [
                "192.0.2.1/32",
                "192.0.2.2/31",
                "192.0.2.4/31",
                "192.0.2.6/32"
            ]
        );
        let all = span_to_nets(Family::Ipv6, (0, u128::MAX));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].to_string(), "::/0");
        let all4 = span_to_nets(Family::Ipv4, (0, u32::MAX as u128));
        assert_eq!(all4[0].to_string(), "0.0.0.0/0");
    }
}
