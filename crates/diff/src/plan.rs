//! The difference between what a firewall holds and what it should hold.

use serde::Serialize;

use crate::ranges::RangeSet;

/// What a sync changes: the ranges to add and remove, and structural repairs a backend
/// reported (a missing table, a jump that is no longer first, changed ports, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every range the firewall must hold after the sync.
    pub desired: RangeSet,
    /// Ranges in `desired` that the firewall does not hold.
    pub add: RangeSet,
    /// Ranges the firewall holds that are not in `desired`.
    pub remove: RangeSet,
    /// Number of ranges held already and kept.
    pub unchanged: usize,
    /// Structural changes the backend will make besides the ranges.
    pub repairs: Vec<String>,
}

impl Plan {
    /// The plan that turns `current` into `desired`, prefix by prefix.
    pub fn between(desired: &RangeSet, current: &RangeSet) -> Plan {
        let add = desired.difference(current);
        let remove = current.difference(desired);
        Plan {
            unchanged: desired.len() - add.len(),
            desired: desired.clone(),
            add,
            remove,
            repairs: Vec::new(),
        }
    }

    /// The same plan with the backend's structural repairs attached.
    pub fn with_repairs(mut self, repairs: Vec<String>) -> Plan {
        self.repairs = repairs;
        self
    }

    /// True when the ranges change.
    pub fn changes_ranges(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty()
    }

    /// True when applying this plan would change nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.changes_ranges() && self.repairs.is_empty()
    }

    /// `current` with this plan's removals taken out and additions put in.
    pub fn applied_to(&self, current: &RangeSet) -> RangeSet {
        RangeSet::exact(
            current
                .iter()
                .filter(|n| !self.remove.contains(n))
                .chain(self.add.iter()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn set(list: &[&str]) -> RangeSet {
        RangeSet::exact(list.iter().map(|s| s.parse::<IpNet>().expect("test CIDR")))
    }

    #[test]
    fn plan_lists_additions_and_removals() {
        let current = set(&["173.245.48.0/20", "103.21.244.0/22", "2400:cb00::/32"]);
        let desired = set(&["173.245.48.0/20", "198.41.128.0/17", "2400:cb00::/32"]);
        let plan = Plan::between(&desired, &current);
        assert_eq!(plan.add, set(&["198.41.128.0/17"]));
        assert_eq!(plan.remove, set(&["103.21.244.0/22"]));
        assert_eq!(plan.unchanged, 2);
        assert!(plan.changes_ranges());
        assert_eq!(plan.applied_to(&current), desired);
    }

    #[test]
    fn equal_sets_give_an_empty_plan_unless_repairs() {
        let s = set(&["173.245.48.0/20", "2400:cb00::/32"]);
        let plan = Plan::between(&s, &s);
        assert!(plan.is_empty());
        assert!(!plan.with_repairs(vec!["create table".into()]).is_empty());
    }
}
