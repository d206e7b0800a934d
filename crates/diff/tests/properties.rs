//! Property tests of aggregation and plans.

use cf_allow_diff::{IpNet, Ipv4Net, Ipv6Net, Plan, RangeSet};
use proptest::prelude::*;

fn v4_net() -> impl Strategy<Value = IpNet> {
    // A narrow address space so that overlaps and neighbours are common.
    (0u32..64, 22u8..=32).prop_map(|(hi, len)| {
        let addr = std::net::Ipv4Addr::from(0x0A00_0000 | (hi << 8));
        IpNet::V4(
            Ipv4Net::new(addr, len)
                .expect("prefix length in range")
                .trunc(),
        )
    })
}

fn v6_net() -> impl Strategy<Value = IpNet> {
    (0u128..64, 110u8..=128).prop_map(|(hi, len)| {
        let addr = std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (hi << 16));
        IpNet::V6(
            Ipv6Net::new(addr, len)
                .expect("prefix length in range")
                .trunc(),
        )
    })
}

fn nets() -> impl Strategy<Value = Vec<IpNet>> {
    prop::collection::vec(prop_oneof![v4_net(), v6_net()], 0..24)
}

/// Inclusive address intervals, sorted and merged.
type Spans = Vec<(u128, u128)>;

/// Every covered address as a sorted list of inclusive intervals per family.
fn coverage(nets: &[IpNet]) -> (Spans, Spans) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(n) => v4.push((
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            )),
            IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
        }
    }
    (merge(v4), merge(v6))
}

fn merge(mut spans: Spans) -> Spans {
    spans.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (lo, hi) in spans {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

proptest! {
    #[test]
    fn applying_a_plan_yields_exactly_the_desired_set(desired in nets(), current in nets()) {
        let desired = RangeSet::aggregated(desired);
        let current = RangeSet::exact(current);
        let plan = Plan::between(&desired, &current);
        prop_assert_eq!(plan.applied_to(&current), desired.clone());
        prop_assert_eq!(plan.unchanged + plan.add.len(), desired.len());
    }

    #[test]
    fn plan_is_empty_exactly_when_sets_are_equal(a in nets(), b in nets()) {
        let a = RangeSet::exact(a);
        let b = RangeSet::exact(b);
        prop_assert!(Plan::between(&a, &a).is_empty());
        prop_assert_eq!(Plan::between(&a, &b).is_empty(), a == b);
    }

    #[test]
    fn aggregation_never_changes_the_covered_addresses(input in nets()) {
        let set = RangeSet::aggregated(input.clone());
        let out: Vec<IpNet> = set.iter().collect();
        prop_assert_eq!(coverage(&out), coverage(&input));
        // Aggregated prefixes never overlap.
        let spans = coverage(&out);
        prop_assert!(spans.0.len() <= set.ipv4().len() && spans.1.len() <= set.ipv6().len());
    }
}

proptest! {
    /// `aggregated` returns an already aggregated list as it is instead of rebuilding it;
    /// whatever the input (aggregated, sorted, or an aggregated list with one more net), the
    /// result is exactly `ipnet`'s aggregate of it.
    #[test]
    fn aggregated_is_ipnets_aggregate_with_or_without_the_shortcut(
        list in nets(),
        extra in prop_oneof![v4_net(), v6_net()],
        at in 0usize..24,
    ) {
        let ipnet = |nets: &[IpNet]| IpNet::aggregate(&nets.to_vec());
        let done: Vec<IpNet> = RangeSet::aggregated(list.clone()).iter().collect();
        prop_assert_eq!(&done, &ipnet(&list));
        // Already aggregated: the shortcut must give the same list back.
        prop_assert_eq!(RangeSet::aggregated(done.clone()).iter().collect::<Vec<_>>(), done.clone());
        // Aggregated plus one net, in order: the shortcut must notice what changed.
        let mut more = done.clone();
        more.insert(at.min(more.len()), extra);
        let mut sorted = more.clone();
        sorted.sort();
        for input in [more, sorted] {
            prop_assert_eq!(
                RangeSet::aggregated(input.clone()).iter().collect::<Vec<_>>(),
                ipnet(&input)
            );
        }
    }
}

proptest! {
    /// `union` works family by family; whatever the two sets (either may be empty, or hold
    /// one family only), it is `ipnet`'s aggregate of both lists together, and a set joined
    /// with an empty one comes back as it is.
    #[test]
    fn union_is_the_aggregate_of_both_lists(a in nets(), b in nets(), v4_only in any::<bool>()) {
        let b: Vec<IpNet> = if v4_only {
            b.into_iter().filter(|n| matches!(n, IpNet::V4(_))).collect()
        } else {
            b
        };
        let (sa, sb) = (RangeSet::aggregated(a.clone()), RangeSet::aggregated(b.clone()));
        let both: Vec<IpNet> = a.iter().chain(b.iter()).copied().collect();
        prop_assert_eq!(sa.union(&sb).iter().collect::<Vec<_>>(), IpNet::aggregate(&both));
        prop_assert_eq!(sa.union(&RangeSet::default()), sa.clone());
        prop_assert_eq!(RangeSet::default().union(&sa), sa);
    }
}
