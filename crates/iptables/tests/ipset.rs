//! ipset mode: `hash:net` sets `cf-allow-v4` / `cf-allow-v6` with one rule each, updated in
//! place (additions before deletions); a set too small for the list is rebuilt and swapped.

mod common;

use cf_allow_iptables::Variant;
use cf_allow_testkit::Netns;
use common::*;

const PORTS: [u16; 2] = [80, 443];

fn ipset_mode(variant: Variant) {
    let ns = Netns::new("ipt-ipset");
    let s = settings(variant, |s| s.ipset = true);
    let first = ranges(&["192.0.2.0/24", "198.51.100.7/32", "2001:db8:1::/48"]);

    let (inspection, plan) = sync(&ns, &s, &PORTS, &first);
    assert!(inspection
        .repairs
        .contains(&"ipset: create the set cf-allow-v4".to_string()));
    assert_eq!(plan.add, first);
    assert_eq!(
        set_members(&ns, "cf-allow-v4"),
        ["192.0.2.0/24", "198.51.100.7"]
    );
    assert_eq!(set_members(&ns, "cf-allow-v6"), ["2001:db8:1::/48"]);
    let (v4, v6) = save_both(&ns, variant);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW"),
        ["-p tcp -m set --match-set cf-allow-v4 src -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"]
    );
    assert_eq!(
        chain_rules(&v6, "CF-ALLOW"),
        ["-p tcp -m set --match-set cf-allow-v6 src -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"]
    );
    assert_eq!(chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"]);

    // No-op.
    let (inspection, plan) = sync(&ns, &s, &PORTS, &first);
    assert_eq!(inspection.ranges, first);
    assert!(plan.is_empty(), "{plan:?}");
    assert_eq!(save_both(&ns, variant), (v4.clone(), v6.clone()));

    // A changed list is applied in place: the same kernel sets (their random `initval`
    // stays), rules untouched, no tmp set.
    let headers = set_headers(&ns);
    let second = ranges(&["192.0.2.0/24", "203.0.113.0/24", "2001:db8:2::/48"]);
    let (_, plan) = sync(&ns, &s, &PORTS, &second);
    assert_eq!(
        set_headers(&ns),
        headers,
        "the sets were rebuilt, not updated in place"
    );
    assert_eq!(plan.add, ranges(&["203.0.113.0/24", "2001:db8:2::/48"]));
    assert_eq!(
        set_members(&ns, "cf-allow-v4"),
        ["192.0.2.0/24", "203.0.113.0/24"]
    );
    assert_eq!(set_members(&ns, "cf-allow-v6"), ["2001:db8:2::/48"]);
    assert_eq!(set_names(&ns), ["cf-allow-v4", "cf-allow-v6"]);
    assert_eq!(save_both(&ns, variant), (v4.clone(), v6.clone()));

    // A tmp set left by a killed run (made as cf-allow makes sets) is cleaned up.
    ns.sh("ipset create cf-allow-v6-tmp hash:net family inet6 comment");
    let inspection = inspect(&ns, &s, &PORTS);
    assert_eq!(
        inspection.repairs,
        ["ipset: destroy the leftover set cf-allow-v6-tmp"]
    );
    sync(&ns, &s, &PORTS, &second);
    assert_eq!(set_names(&ns), ["cf-allow-v4", "cf-allow-v6"]);

    // An admin emptied a set: refilled.
    ns.sh("ipset flush cf-allow-v4");
    let (_, plan) = sync(&ns, &s, &PORTS, &second);
    assert_eq!(plan.add, ranges(&["192.0.2.0/24", "203.0.113.0/24"]));
    assert_eq!(
        set_members(&ns, "cf-allow-v4"),
        ["192.0.2.0/24", "203.0.113.0/24"]
    );

    // Switching ipset mode off: per-range rules come back and the sets go.
    let plain = settings(variant, |_| {});
    let inspection = inspect(&ns, &plain, &PORTS);
    assert!(
        inspection
            .repairs
            .contains(&"ipset: destroy the set cf-allow-v4 (iptables.ipset is off)".to_string()),
        "{:?}",
        inspection.repairs
    );
    sync(&ns, &plain, &PORTS, &second);
    assert!(set_names(&ns).is_empty());
    assert_eq!(
        chain_rules(&save(&ns, variant, false), "CF-ALLOW"),
        [
            "-s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
            "-s 203.0.113.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
        ]
    );
    assert!(inspect(&ns, &plain, &PORTS).repairs.is_empty());

    // And on again, then remove deletes the sets too.
    sync(&ns, &s, &PORTS, &second);
    assert_eq!(save_both(&ns, variant), (v4, v6));
    let lines = remove(&ns, &s, false).expect("remove");
    assert!(
        lines.contains(&"ipset: set cf-allow-v4 (2 entries)".to_string()),
        "{lines:?}"
    );
    assert!(set_names(&ns).is_empty());
    assert!(!save(&ns, variant, false).contains("CF-ALLOW"));
}

/// The `create` lines of cf-allow's sets (they carry each set's random `initval`).
fn set_headers(ns: &Netns) -> Vec<String> {
    ["cf-allow-v4", "cf-allow-v6"]
        .iter()
        .map(|name| {
            ns.sh(&format!("ipset save {name}"))
                .lines()
                .find(|l| l.starts_with("create "))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn a_set_too_small_for_the_list_is_rebuilt_and_swapped_in() {
    if !ready("a_set_too_small_for_the_list_is_rebuilt_and_swapped_in") {
        return;
    }
    let ns = Netns::new("ipt-ipset-small");
    let s = settings(Variant::Nft, |s| s.ipset = true);
    sync(
        &ns,
        &s,
        &PORTS,
        &ranges(&["192.0.2.0/24", "2001:db8:1::/48"]),
    );
    // Someone re-created the live set with room for two members only.
    ns.sh("ipset create cf-allow-v4-small hash:net family inet maxelem 2 && ipset add cf-allow-v4-small 192.0.2.0/24 && ipset swap cf-allow-v4-small cf-allow-v4 && ipset destroy cf-allow-v4-small");
    let three = ranges(&[
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8:1::/48",
    ]);
    let (_, plan) = sync(&ns, &s, &PORTS, &three);
    assert_eq!(plan.add, ranges(&["198.51.100.0/24", "203.0.113.0/24"]));
    assert_eq!(
        set_members(&ns, "cf-allow-v4"),
        ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    );
    assert!(
        set_headers(&ns)[0].contains("maxelem 65536"),
        "{:?}",
        set_headers(&ns)
    );
    assert_eq!(set_names(&ns), ["cf-allow-v4", "cf-allow-v6"]);
}

variant_tests!(
    ipset_mode_nft,
    ipset_mode_legacy => ipset_mode
);

#[test]
fn a_foreign_set_with_the_same_name_is_an_error() {
    if !ready("a_foreign_set_with_the_same_name_is_an_error") {
        return;
    }
    let ns = Netns::new("ipt-setname");
    ns.sh("ipset create cf-allow-v4 hash:ip");
    let s = settings(Variant::Nft, |s| s.ipset = true);
    let before = save_both(&ns, Variant::Nft);
    let err = try_sync(&ns, &s, &PORTS, &ranges(&["192.0.2.0/24", "2001:db8::/32"]))
        .expect_err("foreign set");
    assert!(
        err.contains("the ipset cf-allow-v4 exists but was not created by cf-allow"),
        "{err}"
    );
    assert_eq!(save_both(&ns, Variant::Nft), before);
    assert_eq!(set_names(&ns), ["cf-allow-v4"]);
}

/// An admin's ipset with cf-allow's name (no `comment` extension with members tagged
/// "cf-allow", not used by cf-allow's rules) is refused by sync and left byte-identical by
/// sync and remove; so is cf-allow's own set once the admin adds an untagged member.
#[test]
fn an_admins_set_with_cf_allows_name_is_never_adopted() {
    if !ready("an_admins_set_with_cf_allows_name_is_never_adopted") {
        return;
    }
    let ns = Netns::new("ipt-setadmin");
    ns.sh("ipset create cf-allow-v4 hash:net family inet && ipset add cf-allow-v4 198.51.100.0/24");
    let s = settings(Variant::Nft, |s| s.ipset = true);
    let list = ranges(&["192.0.2.0/24", "2001:db8::/32"]);
    let before = (save_both(&ns, Variant::Nft), ns.sh("ipset save"));
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("an admin's set");
    assert!(
        err.contains("the ipset cf-allow-v4 exists but was not created by cf-allow"),
        "{err}"
    );
    assert_eq!((save_both(&ns, Variant::Nft), ns.sh("ipset save")), before);
    remove(&ns, &s, false).expect("remove");
    assert_eq!((save_both(&ns, Variant::Nft), ns.sh("ipset save")), before);
    ns.sh("ipset destroy cf-allow-v4");

    // cf-allow's own sets carry the tag on every member.
    sync(&ns, &s, &PORTS, &list);
    assert!(
        ns.sh("ipset save cf-allow-v4")
            .contains("add cf-allow-v4 192.0.2.0/24 comment \"cf-allow\""),
        "{}",
        ns.sh("ipset save cf-allow-v4")
    );
    // An admin's member added to cf-allow's set: sync refuses and leaves it.
    ns.sh("ipset add cf-allow-v4 203.0.113.9 comment admin");
    let before = ns.sh("ipset save cf-allow-v4");
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("an admin's member");
    assert!(
        err.contains("the ipset cf-allow-v4 holds 203.0.113.9, which cf-allow did not add"),
        "{err}"
    );
    assert_eq!(ns.sh("ipset save cf-allow-v4"), before);
}
