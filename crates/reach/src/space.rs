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
    pub fn split(&self, region: &[Bx]) -> (Vec<Bx>, Vec<Bx>) {
        let mut inside = Vec::new();
        let mut outside = Vec::new();
        for r in region {
            // Candidates: boxes starting at or before r's end.
            let end = self.boxes.partition_point(|b| b.s.0 <= r.s.1);
            // Boxes before `start` all end before r begins.
            let start = self.reach.partition_point(|&top| top < r.s.0).min(end);
            let mut rest = vec![*r];
            for b in &self.boxes[start..end] {
                if b.s.1 < r.s.0 {
                    continue;
                }
                if let Some(i) = r.intersect(b) {
                    inside.push(i);
                    let mut next = Vec::with_capacity(rest.len() + 2);
                    for piece in &rest {
                        piece.minus(b, &mut next);
                    }
                    rest = next;
                }
            }
            outside.extend(rest);
        }
        (inside, outside)
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
