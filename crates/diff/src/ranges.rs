//! Sets of IPv4 and IPv6 CIDR ranges.

use std::fmt;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The family of a network.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::Ipv4,
            IpNet::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sorted, duplicate-free set of IPv4 and IPv6 CIDR ranges.
///
/// [`RangeSet::aggregated`] merges overlapping and adjacent ranges (what cf-allow wants a
/// firewall to hold); [`RangeSet::exact`] keeps every prefix as given (what a firewall holds
/// now, so a plan can remove exactly the entries that exist).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RangeSet {
    /// IPv4 ranges, sorted (private: every constructor keeps them sorted and unique).
    ipv4: Vec<Ipv4Net>,
    /// IPv6 ranges, sorted.
    ipv6: Vec<Ipv6Net>,
}

impl RangeSet {
    /// The IPv4 ranges, sorted.
    pub fn ipv4(&self) -> &[Ipv4Net] {
        &self.ipv4
    }

    /// The IPv6 ranges, sorted.
    pub fn ipv6(&self) -> &[Ipv6Net] {
        &self.ipv6
    }

    /// The smallest set of prefixes that covers exactly the addresses of `nets`.
    pub fn aggregated<I: IntoIterator<Item = IpNet>>(nets: I) -> RangeSet {
        let (v4, v6) = split(nets);
        RangeSet {
            ipv4: aggregate(v4),
            ipv6: aggregate(v6),
        }
    }

    /// The prefixes of `nets` as given (host bits cleared), sorted, duplicates dropped.
    pub fn exact<I: IntoIterator<Item = IpNet>>(nets: I) -> RangeSet {
        let (v4, v6) = split(nets);
        RangeSet {
            ipv4: sorted_unique(v4.into_iter().map(|n| n.trunc()).collect()),
            ipv6: sorted_unique(v6.into_iter().map(|n| n.trunc()).collect()),
        }
    }

    /// [`RangeSet::exact`] of prefixes already split by family (no second pass to split
    /// them, and a sorted list is only checked, not sorted again).
    pub fn exact_families(mut ipv4: Vec<Ipv4Net>, mut ipv6: Vec<Ipv6Net>) -> RangeSet {
        ipv4.iter_mut().for_each(|n| *n = n.trunc());
        ipv6.iter_mut().for_each(|n| *n = n.trunc());
        RangeSet {
            ipv4: sorted_unique(ipv4),
            ipv6: sorted_unique(ipv6),
        }
    }

    /// Number of ranges in both families.
    pub fn len(&self) -> usize {
        self.ipv4.len() + self.ipv6.len()
    }

    /// True when neither family holds a range.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_empty() && self.ipv6.is_empty()
    }

    /// Number of ranges of one family.
    pub fn len_of(&self, family: Family) -> usize {
        match family {
            Family::Ipv4 => self.ipv4.len(),
            Family::Ipv6 => self.ipv6.len(),
        }
    }

    /// Every range, IPv4 first, each family sorted.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.ipv4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(self.ipv6.iter().map(|n| IpNet::V6(*n)))
    }

    /// Every range of one family, sorted.
    pub fn iter_family(&self, family: Family) -> Box<dyn Iterator<Item = IpNet> + '_> {
        match family {
            Family::Ipv4 => Box::new(self.ipv4.iter().map(|n| IpNet::V4(*n))),
            Family::Ipv6 => Box::new(self.ipv6.iter().map(|n| IpNet::V6(*n))),
        }
    }

    /// True when `net` is one of the prefixes of this set (not merely covered by one).
    pub fn contains(&self, net: &IpNet) -> bool {
        match net {
            IpNet::V4(n) => self.ipv4.binary_search(n).is_ok(),
            IpNet::V6(n) => self.ipv6.binary_search(n).is_ok(),
        }
    }

    /// The aggregated union of two sets.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        // Family by family, as `aggregated` over both would split them: a family that gains
        // nothing (no `extra_cidrs`) is one copy and the already-aggregated check.
        fn joined<T: Prefix + Copy>(a: &[T], b: &[T]) -> Vec<T> {
            let mut all = Vec::with_capacity(a.len() + b.len());
            all.extend_from_slice(a);
            all.extend_from_slice(b);
            aggregate(all)
        }
        RangeSet {
            ipv4: joined(&self.ipv4, &other.ipv4),
            ipv6: joined(&self.ipv6, &other.ipv6),
        }
    }

    /// The prefixes of `self` that are not prefixes of `other` (one linear merge of the two
    /// sorted families, nothing copied but the result).
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        RangeSet {
            ipv4: sorted_difference(&self.ipv4, &other.ipv4),
            ipv6: sorted_difference(&self.ipv6, &other.ipv6),
        }
    }

    /// The ranges of the families in `families` only.
    pub fn only(&self, families: &[Family]) -> RangeSet {
        RangeSet {
            ipv4: if families.contains(&Family::Ipv4) {
                self.ipv4.clone()
            } else {
                Vec::new()
            },
            ipv6: if families.contains(&Family::Ipv6) {
                self.ipv6.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// The ranges as strings, per family, for reports.
    pub fn to_strings(&self, family: Family) -> Vec<String> {
        self.iter_family(family)
            .map(|n| crate::text::net_string(&n))
            .collect()
    }
}

impl fmt::Display for RangeSet {
    /// One range per line, IPv4 first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for net in self.iter() {
            writeln!(f, "{net}")?;
        }
        Ok(())
    }
}

/// What [`aggregate`] needs of a prefix type.
trait Prefix: Ord + Copy {
    fn trunc(&self) -> Self;
    fn contains(&self, other: &Self) -> bool;
    /// True when `self` and `other` are the two halves of one shorter prefix.
    fn siblings(&self, other: &Self) -> bool;
    fn aggregate(nets: Vec<Self>) -> Vec<Self>;
}

macro_rules! prefix {
    ($net:ty) => {
        impl Prefix for $net {
            fn trunc(&self) -> Self {
                <$net>::trunc(self)
            }
            fn contains(&self, other: &Self) -> bool {
                <$net>::contains(self, other)
            }
            fn siblings(&self, other: &Self) -> bool {
                self.prefix_len() == other.prefix_len()
                    && self.supernet().is_some()
                    && self.supernet() == other.supernet()
            }
            fn aggregate(nets: Vec<Self>) -> Vec<Self> {
                <$net>::aggregate(&nets)
            }
        }
    };
}
prefix!(Ipv4Net);
prefix!(Ipv6Net);

/// The nets with host bits cleared, aggregated. A list that is already aggregated (sorted,
/// and no net overlaps or is the sibling of the next one: any merge or overlap shows between
/// neighbours in that order) is returned as it is, without `ipnet`'s sort and rebuild, which
/// is most of what a large unchanged list costs.
fn aggregate<T: Prefix>(mut nets: Vec<T>) -> Vec<T> {
    for net in &mut nets {
        *net = net.trunc();
    }
    let done = nets
        .windows(2)
        .all(|w| w[0] < w[1] && !w[0].contains(&w[1]) && !w[0].siblings(&w[1]));
    if done {
        nets
    } else {
        T::aggregate(nets)
    }
}

/// `v` sorted with duplicates dropped; a vector that is sorted already (a cached list, a
/// dump in kernel order) costs one linear check and no allocation.
fn sorted_unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    if !v.windows(2).all(|w| w[0] < w[1]) {
        v.sort_unstable();
        v.dedup();
    }
    v
}

/// The elements of the sorted, unique `a` that are not in the sorted, unique `b`.
fn sorted_difference<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::new();
    let mut j = 0;
    for x in a {
        while j < b.len() && b[j] < *x {
            j += 1;
        }
        if j < b.len() && b[j] == *x {
            j += 1;
        } else {
            out.push(*x);
        }
    }
    out
}

fn split<I: IntoIterator<Item = IpNet>>(nets: I) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let nets = nets.into_iter();
    let (low, _) = nets.size_hint();
    let mut v4 = Vec::with_capacity(low);
    let mut v6 = Vec::with_capacity(low);
    for net in nets {
        match net {
            IpNet::V4(n) => v4.push(n),
            IpNet::V6(n) => v6.push(n),
        }
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("test CIDR")).collect()
    }

    #[test]
    fn aggregated_merges_overlaps_and_neighbours() {
        let set = RangeSet::aggregated(nets(&[
            "104.16.0.0/13",
            "104.24.0.0/14",
            "104.16.0.0/12",
            "10.0.0.0/25",
            "10.0.0.128/25",
            "2400:cb00::/32",
            "2400:cb00::/33",
        ]));
        assert_eq!(
            set.to_string(),
            "10.0.0.0/24\n104.16.0.0/12\n2400:cb00::/32\n"
        );
    }

    #[test]
    fn exact_keeps_prefixes_and_drops_duplicates() {
        let set = RangeSet::exact(nets(&["10.0.0.128/25", "10.0.0.0/25", "10.0.0.0/25"]));
        assert_eq!(set.to_string(), "10.0.0.0/25\n10.0.0.128/25\n");
        assert!(set.contains(&"10.0.0.0/25".parse().expect("cidr")));
        assert!(!set.contains(&"10.0.0.0/24".parse().expect("cidr")));
    }

    #[test]
    fn difference_and_exact_match_the_naive_versions() {
        let a: Vec<IpNet> = (0..200u32)
            .map(|i| {
                format!("10.{}.{}.0/24", i % 7, i * 3 % 251)
                    .parse()
                    .expect("net")
            })
            .chain((0..50u32).map(|i| format!("2001:db8:{i:x}::/48").parse().expect("net")))
            .collect();
        let b: Vec<IpNet> = a.iter().step_by(3).copied().collect();
        let (sa, sb) = (RangeSet::exact(a.clone()), RangeSet::exact(b.clone()));
        let naive = RangeSet::exact(sa.iter().filter(|n| !sb.contains(n)));
        assert_eq!(sa.difference(&sb), naive);
        assert!(sb.difference(&sa).is_empty());
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sa.iter().collect::<Vec<_>>(), sorted);
        assert_eq!(RangeSet::exact(sa.iter()), sa, "sorted input stays as is");
    }
}
