//! Own-table mode against the real kernel, each test in a private network namespace.

mod common;

use cf_allow_diff::{Family, IpNet, RangeSet};
use cf_allow_testkit::Netns;
use common::*;

#[test]
fn first_sync_creates_the_layout_and_a_second_changes_nothing() {
    if !ready("first_sync_creates_the_layout_and_a_second_changes_nothing") {
        return;
    }
    let ns = Netns::new("nft-first");
    let desired = cloudflare();
    assert_eq!(desired.len(), 22);

    let first = sync(&ns, own(false), &[80, 443], &desired).expect("first sync");
    assert!(!first.before.present);
    assert_eq!(first.plan.add.len(), 22);
    assert!(first
        .before
        .repairs
        .iter()
        .any(|r| r == "create table inet cf_allow"));

    // Read back with nft -j: exactly the 15 + 7 ranges, as prefixes.
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        strings(&desired, Family::Ipv4)
    );
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v6"),
        strings(&desired, Family::Ipv6)
    );
    let json = ruleset_json(&ns);
    let items = json["nftables"].as_array().expect("array");
    let tables: Vec<_> = items.iter().filter(|i| i.get("table").is_some()).collect();
    assert_eq!(tables.len(), 1, "only cf-allow's table: {json}");
    assert_eq!(tables[0]["table"]["name"], "cf_allow");
    assert_eq!(tables[0]["table"]["family"], "inet");
    let sets: Vec<_> = items.iter().filter_map(|i| i.get("set")).collect();
    assert_eq!(sets.len(), 2);
    for set in &sets {
        assert_eq!(set["flags"], serde_json::json!(["interval"]), "{set}");
        assert_eq!(set["comment"], "cf-allow");
    }
    let chains: Vec<_> = items.iter().filter_map(|i| i.get("chain")).collect();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0]["name"], "input");
    assert_eq!(chains[0]["hook"], "input");
    assert_eq!(chains[0]["policy"], "accept");
    assert_eq!(chains[0]["type"], "filter");
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "input"),
        vec![
            "ip saddr @cf_v4 tcp dport { 80, 443 } accept comment \"cf-allow\"",
            "ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment \"cf-allow\"",
        ]
    );

    // Second sync: nothing to do, ruleset byte-identical.
    let before = ruleset(&ns);
    let second = sync(&ns, own(false), &[80, 443], &desired).expect("second sync");
    assert!(second.plan.is_empty(), "{:?}", second.plan);
    assert!(second.before.present);
    assert_eq!(second.before.ranges, desired);
    assert_eq!(ruleset(&ns), before);
}

#[test]
fn a_changed_feed_produces_exactly_that_delta() {
    if !ready("a_changed_feed_produces_exactly_that_delta") {
        return;
    }
    let ns = Netns::new("nft-delta");
    let old = cloudflare();
    sync(&ns, own(false), &[443], &old).expect("first sync");
    let handles_before = ns.sh("nft -a list chain inet cf_allow input");

    // One range removed (103.21.244.0/22), one added (198.51.100.0/24 is harmless to test),
    // one split in two (104.24.0.0/14 -> 104.24.0.0/15 + 104.26.0.0/15).
    let mut list: Vec<String> = old.iter().map(|n| n.to_string()).collect();
    list.retain(|n| n != "103.21.244.0/22" && n != "104.24.0.0/14");
    list.extend(["203.0.113.0/24", "104.24.0.0/15", "104.26.0.0/15"].map(String::from));
    let new = RangeSet::exact(list.iter().map(|s| s.parse().expect("cidr")));

    let result = sync(&ns, own(false), &[443], &new).expect("delta sync");
    assert_eq!(
        result.plan.remove,
        RangeSet::exact(nets(&["103.21.244.0/22", "104.24.0.0/14"]))
    );
    assert_eq!(
        result.plan.add,
        RangeSet::exact(nets(&["104.24.0.0/15", "104.26.0.0/15", "203.0.113.0/24"]))
    );
    assert!(result.plan.repairs.is_empty(), "{:?}", result.plan.repairs);
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        strings(&new, Family::Ipv4)
    );
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v6"),
        strings(&new, Family::Ipv6)
    );
    // The rules were not touched (same handles).
    assert_eq!(
        ns.sh("nft -a list chain inet cf_allow input"),
        handles_before
    );
    let again = inspect(&ns, own(false), &[443]).expect("inspect");
    assert_eq!(again.ranges, new);
    assert!(again.repairs.is_empty());
}

#[test]
fn ranges_at_the_top_and_adjacent_prefixes_read_back_exactly() {
    if !ready("ranges_at_the_top_and_adjacent_prefixes_read_back_exactly") {
        return;
    }
    let ns = Netns::new("nft-edges");
    let desired = RangeSet::exact(nets(&[
        "10.0.1.0/24",
        "10.0.2.0/24",
        "255.255.255.0/24",
        "0.0.0.0/8",
        "2001:db8::/48",
        "2001:db8:1::/48",
        "ffff::/16",
    ]));
    sync(&ns, own(false), &[443], &desired).expect("sync");
    let inspection = inspect(&ns, own(false), &[443]).expect("inspect");
    assert_eq!(inspection.ranges, desired);
    assert!(inspection.repairs.is_empty());
    // nft agrees with what is stored.
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        strings(&desired, Family::Ipv4)
    );
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v6"),
        strings(&desired, Family::Ipv6)
    );
    // Removing the top range and one neighbour works and leaves the rest.
    let smaller = RangeSet::exact(nets(&["10.0.1.0/24", "0.0.0.0/8", "2001:db8::/48"]));
    let result = sync(&ns, own(false), &[443], &smaller).expect("shrink");
    assert_eq!(result.plan.remove.len(), 4);
    assert_eq!(
        inspect(&ns, own(false), &[443]).expect("inspect").ranges,
        smaller
    );
}

#[test]
fn ranges_merged_by_nft_are_read_as_minimal_prefixes_and_removed_exactly() {
    if !ready("ranges_merged_by_nft_are_read_as_minimal_prefixes_and_removed_exactly") {
        return;
    }
    let ns = Netns::new("nft-merged");
    sync(
        &ns,
        own(false),
        &[443],
        &RangeSet::exact(nets(&["192.0.2.0/24", "2001:db8::/32"])),
    )
    .expect("sync");
    // An admin adds a range by hand with nft, which stores it as one interval.
    ns.sh("nft add element inet cf_allow cf_v4 '{ 10.0.1.0-10.0.2.255 }'");
    let inspection = inspect(&ns, own(false), &[443]).expect("inspect");
    assert_eq!(
        inspection.ranges,
        RangeSet::exact(nets(&[
            "10.0.1.0/24",
            "10.0.2.0/24",
            "192.0.2.0/24",
            "2001:db8::/32"
        ]))
    );
    // The list keeps 10.0.1.0/24 only: the interval is replaced by it.
    let desired = RangeSet::exact(nets(&["10.0.1.0/24", "192.0.2.0/24", "2001:db8::/32"]));
    let result = sync(&ns, own(false), &[443], &desired).expect("sync");
    assert_eq!(result.plan.remove, RangeSet::exact(nets(&["10.0.2.0/24"])));
    assert_eq!(
        inspect(&ns, own(false), &[443]).expect("inspect").ranges,
        desired
    );
    assert_eq!(
        set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        vec!["10.0.1.0/24", "192.0.2.0/24"]
    );
}

#[test]
fn ports_lockdown_and_deleted_rules_are_repaired_without_touching_elements() {
    if !ready("ports_lockdown_and_deleted_rules_are_repaired_without_touching_elements") {
        return;
    }
    let ns = Netns::new("nft-repair");
    let desired = cloudflare();
    sync(&ns, own(false), &[443], &desired).expect("first sync");
    let elements_before =
        ns.sh("nft list set inet cf_allow cf_v4; nft list set inet cf_allow cf_v6");

    // Ports change.
    let changed = inspect(&ns, own(false), &[80, 443]).expect("inspect");
    assert_eq!(changed.repairs.len(), 1, "{:?}", changed.repairs);
    assert!(
        changed.repairs[0].contains("rewrite the rules"),
        "{:?}",
        changed.repairs
    );
    let result = sync(&ns, own(false), &[80, 443], &desired).expect("port change");
    assert!(!result.plan.changes_ranges());
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "input"),
        vec![
            "ip saddr @cf_v4 tcp dport { 80, 443 } accept comment \"cf-allow\"",
            "ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment \"cf-allow\"",
        ]
    );

    // Lockdown toggled on.
    sync(&ns, own(true), &[80, 443], &desired).expect("lockdown on");
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "input")
            .last()
            .map(String::as_str),
        Some("tcp dport { 80, 443 } drop comment \"cf-allow\"")
    );

    // An admin deletes a rule.
    let listing = ns.sh("nft -a list chain inet cf_allow input");
    let handle = listing
        .lines()
        .find(|l| l.contains("ip6 saddr"))
        .and_then(|l| l.rsplit("handle ").next())
        .expect("handle")
        .trim()
        .to_owned();
    ns.sh(&format!(
        "nft delete rule inet cf_allow input handle {handle}"
    ));
    let broken = inspect(&ns, own(true), &[80, 443]).expect("inspect");
    assert_eq!(broken.repairs.len(), 1, "{:?}", broken.repairs);
    sync(&ns, own(true), &[80, 443], &desired).expect("repair");
    assert_eq!(rule_lines(&ns, "inet", "cf_allow", "input").len(), 3);

    // The chain's policy changed by hand.
    ns.sh("nft add chain inet cf_allow input '{ policy drop; }'");
    let broken = inspect(&ns, own(true), &[80, 443]).expect("inspect");
    assert!(
        broken.repairs.iter().any(|r| r.contains("recreate chain")),
        "{:?}",
        broken.repairs
    );
    sync(&ns, own(true), &[80, 443], &desired).expect("repair chain");
    assert!(inspect(&ns, own(true), &[80, 443])
        .expect("inspect")
        .repairs
        .is_empty());
    assert!(ns
        .sh("nft list chain inet cf_allow input")
        .contains("policy accept"));

    // Lockdown off again; the set elements never changed.
    sync(&ns, own(false), &[80, 443], &desired).expect("lockdown off");
    assert_eq!(rule_lines(&ns, "inet", "cf_allow", "input").len(), 2);
    assert_eq!(
        ns.sh("nft list set inet cf_allow cf_v4; nft list set inet cf_allow cf_v6"),
        elements_before
    );
    let settled = ruleset(&ns);
    let again = sync(&ns, own(false), &[80, 443], &desired).expect("idempotent");
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    assert_eq!(ruleset(&ns), settled);
}

#[test]
fn remove_deletes_the_table_and_nothing_else() {
    if !ready("remove_deletes_the_table_and_nothing_else") {
        return;
    }
    let ns = foreign_host("nft-remove");
    let foreign = foreign_text(&ns);
    sync(&ns, own(true), &[80, 443], &cloudflare()).expect("sync");
    assert_eq!(foreign_text(&ns), foreign, "sync changed a foreign table");

    let planned = remove(&ns, own(true), &[80, 443], true).expect("dry run");
    assert_eq!(planned, vec!["table inet cf_allow"]);
    assert!(
        ns.sh("nft list tables").contains("cf_allow"),
        "dry run deleted"
    );

    let removed = remove(&ns, own(true), &[80, 443], false).expect("remove");
    assert_eq!(removed, vec!["table inet cf_allow"]);
    assert!(!ns.sh("nft list tables").contains("cf_allow"));
    assert_eq!(foreign_text(&ns), foreign, "remove changed a foreign table");
    assert!(remove(&ns, own(true), &[80, 443], false)
        .expect("again")
        .is_empty());
}

#[test]
fn a_foreign_table_with_our_name_is_an_error_and_stays_untouched() {
    if !ready("a_foreign_table_with_our_name_is_an_error_and_stays_untouched") {
        return;
    }
    let ns = Netns::new("nft-collide");
    ns.sh("nft add table inet cf_allow '{ comment \"mine\"; }' && nft add set inet cf_allow cf_v4 '{ type ipv4_addr; }'");
    let before = ruleset(&ns);
    let err = sync(&ns, own(false), &[443], &cloudflare()).expect_err("collision");
    let msg = err.to_string();
    assert!(
        msg.contains("table inet cf_allow exists but was not created by cf-allow"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert_eq!(ruleset(&ns), before);
    assert!(remove(&ns, own(false), &[443], false)
        .expect("remove")
        .is_empty());
    assert_eq!(ruleset(&ns), before);
}

#[test]
fn own_mode_warns_about_a_foreign_drop_policy() {
    if !ready("own_mode_warns_about_a_foreign_drop_policy") {
        return;
    }
    let ns = foreign_host("nft-warn");
    let inspection = inspect(&ns, own(false), &[443]).expect("inspect");
    assert_eq!(inspection.warnings.len(), 1, "{:?}", inspection.warnings);
    let warning = &inspection.warnings[0];
    assert!(
        warning.contains("chain inet filter input drops by default"),
        "{warning}"
    );
    assert!(warning.contains("nftables.into"), "{warning}");
    // Into mode into that very chain: no warning.
    let into_inspection = inspect(&ns, into("filter", "input"), &[443]).expect("inspect");
    assert!(
        into_inspection.warnings.is_empty(),
        "{:?}",
        into_inspection.warnings
    );
}

#[test]
fn a_long_list_is_applied_and_changed_in_one_batch() {
    if !ready("a_long_list_is_applied_and_changed_in_one_batch") {
        return;
    }
    let ns = Netns::new("nft-long");
    // 8000 IPv4 /30s and 2000 IPv6 /64s: the guard's default maximum of 10000 entries.
    let v4 = (0..8000u32).map(|i| {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i * 8);
        IpNet::V4(ipnet::Ipv4Net::new(addr, 30).expect("prefix"))
    });
    let v6 = (0..2000u128).map(|i| {
        let addr =
            std::net::Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (i << 65));
        IpNet::V6(ipnet::Ipv6Net::new(addr, 64).expect("prefix"))
    });
    let big = RangeSet::exact(v4.chain(v6));
    assert_eq!(big.len(), 10_000);
    sync(&ns, own(false), &[443], &big).expect("big sync");
    assert_eq!(
        inspect(&ns, own(false), &[443]).expect("inspect").ranges,
        big
    );
    assert_eq!(set_elements(&ns, "inet", "cf_allow", "cf_v4").len(), 8000);

    // Drop every other IPv4 range.
    let half = RangeSet::exact(
        big.iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0 || *i >= 8000)
            .map(|(_, n)| n),
    );
    let result = sync(&ns, own(false), &[443], &half).expect("shrink");
    assert_eq!(result.plan.remove.len(), 4000);
    assert_eq!(
        inspect(&ns, own(false), &[443]).expect("inspect").ranges,
        half
    );
}
