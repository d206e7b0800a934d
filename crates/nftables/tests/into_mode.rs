//! Into mode and error paths against the real kernel, each test in a private namespace.

mod common;

use cf_allow_diff::{Backend, Family, RangeSet};
use cf_allow_nftables::NftablesBackend;
use cf_allow_testkit::Netns;
use common::*;

/// The foreign objects of [`FOREIGN`] listed one by one (with handles; cf-allow's tagged
/// rules left out).
fn foreign_objects(ns: &Netns) -> Vec<String> {
    let untagged = |chain: &str| {
        ns.sh(&format!("nft -a list chain inet filter {chain}"))
            .lines()
            .filter(|l| !l.contains("comment \"cf-allow\""))
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .join("\n")
    };
    vec![
        untagged("input"),
        untagged("forward"),
        ns.sh("nft -a list set inet filter admins"),
        ns.sh("nft -a list set inet filter blocked6"),
        ns.sh("nft -a list table ip nat"),
    ]
}

#[test]
fn into_mode_puts_sets_and_tagged_rules_into_the_users_chain() {
    if !ready("into_mode_puts_sets_and_tagged_rules_into_the_users_chain") {
        return;
    }
    let ns = foreign_host("nft-into");
    let whole_before = ruleset(&ns);
    let objects_before = foreign_objects(&ns);
    let desired = cloudflare();

    let first = sync(&ns, into("filter", "input"), &[80, 443], &desired).expect("sync");
    assert!(!first.before.present);
    assert_eq!(first.plan.add.len(), 22);
    assert_eq!(
        set_elements(&ns, "inet", "filter", "cf_v4"),
        strings(&desired, Family::Ipv4)
    );
    assert_eq!(
        set_elements(&ns, "inet", "filter", "cf_v6"),
        strings(&desired, Family::Ipv6)
    );
    let lines = rule_lines(&ns, "inet", "filter", "input");
    assert_eq!(
        lines[..2],
        [
            "ip saddr @cf_v4 tcp dport { 80, 443 } accept comment \"cf-allow\"",
            "ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment \"cf-allow\"",
        ]
    );
    assert_eq!(lines.iter().filter(|l| l.contains("cf-allow")).count(), 2);
    // The table's forward chain (policy drop) gets the same accepts for DNAT'd connections.
    assert_eq!(
        rule_lines(&ns, "inet", "filter", "forward"),
        [
            "meta l4proto tcp ct direction original ct status dnat ip saddr @cf_v4 ct original proto-dst { 80, 443 } accept comment \"cf-allow\"",
            "meta l4proto tcp ct direction original ct status dnat ip6 saddr @cf_v6 ct original proto-dst { 80, 443 } accept comment \"cf-allow\"",
        ]
    );
    assert_eq!(
        foreign_objects(&ns),
        objects_before,
        "a foreign object changed"
    );
    assert!(
        !ns.sh("nft list tables").contains("cf_allow"),
        "into mode must not create the own table"
    );

    // Idempotent.
    let settled = ruleset(&ns);
    let second = sync(&ns, into("filter", "input"), &[80, 443], &desired).expect("second");
    assert!(second.plan.is_empty(), "{:?}", second.plan);
    assert_eq!(ruleset(&ns), settled);

    // remove: the tagged rules (input and forward) and the two sets; everything else
    // byte-identical.
    let lines = remove(&ns, into("filter", "input"), &[80, 443], false).expect("remove");
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(
        lines[0].starts_with("rule inet filter input handle "),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("rule inet filter forward handle "),
        "{lines:?}"
    );
    assert_eq!(
        lines[4..],
        ["set inet filter cf_v4", "set inet filter cf_v6"]
    );
    assert_eq!(ruleset(&ns), whole_before);
}

#[test]
fn into_mode_moves_its_rules_back_to_the_top_and_cleans_up_own_mode() {
    if !ready("into_mode_moves_its_rules_back_to_the_top_and_cleans_up_own_mode") {
        return;
    }
    let ns = foreign_host("nft-intotop");
    let desired = cloudflare();
    // Own mode first (with lockdown), then the admin switches to into mode.
    sync(&ns, own(true), &[443], &desired).expect("own sync");
    let switched = sync(&ns, into("filter", "input"), &[443], &desired).expect("into sync");
    assert!(
        switched
            .plan
            .repairs
            .iter()
            .any(|r| r == "delete table inet cf_allow left over from own-table mode"),
        "{:?}",
        switched.plan.repairs
    );
    assert!(!ns.sh("nft list tables").contains("cf_allow"));

    // Someone inserts a rule above cf-allow's.
    ns.sh("nft insert rule inet filter input tcp dport 8080 accept comment \"mine\"");
    let inspection = inspect(&ns, into("filter", "input"), &[443]).expect("inspect");
    assert_eq!(inspection.repairs.len(), 1, "{:?}", inspection.repairs);
    assert!(inspection.repairs[0].contains("back at the top"));
    let elements = ns.sh("nft list set inet filter cf_v4");
    sync(&ns, into("filter", "input"), &[443], &desired).expect("repair");
    let lines = rule_lines(&ns, "inet", "filter", "input");
    assert!(lines[0].starts_with("ip saddr @cf_v4"), "{lines:?}");
    assert!(lines[1].starts_with("ip6 saddr @cf_v6"), "{lines:?}");
    assert_eq!(lines[2], "tcp dport 8080 accept comment \"mine\"");
    assert_eq!(ns.sh("nft list set inet filter cf_v4"), elements);

    // Lockdown in into mode: a third tagged rule right after the accepts.
    let mut locked = into("filter", "input");
    locked.lockdown = true;
    sync(&ns, locked, &[443], &desired).expect("lockdown");
    let lines = rule_lines(&ns, "inet", "filter", "input");
    assert_eq!(lines[2], "tcp dport 443 drop comment \"cf-allow\"");
    assert_eq!(lines.iter().filter(|l| l.contains("cf-allow")).count(), 3);
}

#[test]
fn an_invalid_into_target_is_a_clear_error_and_changes_nothing() {
    if !ready("an_invalid_into_target_is_a_clear_error_and_changes_nothing") {
        return;
    }
    let ns = foreign_host("nft-badinto");
    let before = ruleset(&ns);
    let err = sync(&ns, into("nosuch", "input"), &[443], &cloudflare()).expect_err("no table");
    assert_eq!(
        err.to_string(),
        "nftables.into names table inet nosuch, which does not exist; create it or fix the setting"
    );
    let err = sync(&ns, into("filter", "nosuch"), &[443], &cloudflare()).expect_err("no chain");
    assert_eq!(
        err.to_string(),
        "nftables.into names chain nosuch in table inet filter, which does not exist; create it or fix the setting"
    );
    assert_eq!(ruleset(&ns), before);
}

#[test]
fn a_foreign_set_with_our_name_is_an_error_and_stays_untouched() {
    if !ready("a_foreign_set_with_our_name_is_an_error_and_stays_untouched") {
        return;
    }
    let ns = foreign_host("nft-setclash");
    ns.sh("nft add set inet filter cf_v4 '{ type ipv4_addr; flags interval; elements = { 192.0.2.0/24 }; }'");
    let before = ruleset(&ns);
    let err = sync(&ns, into("filter", "input"), &[443], &cloudflare()).expect_err("clash");
    assert_eq!(
        err.to_string(),
        "set inet filter cf_v4 exists but was not created by cf-allow (its comment is not \"cf-allow\"); rename or delete it"
    );
    assert_eq!(ruleset(&ns), before);
    // remove leaves it alone too.
    assert!(remove(&ns, into("filter", "input"), &[443], false)
        .expect("remove")
        .is_empty());
    assert_eq!(ruleset(&ns), before);
}

#[test]
fn a_rejected_batch_changes_nothing_and_names_the_message() {
    if !ready("a_rejected_batch_changes_nothing_and_names_the_message") {
        return;
    }
    let ns = Netns::new("nft-reject");
    let desired = RangeSet::exact(nets(&["192.0.2.0/24", "2001:db8::/32"]));
    sync(&ns, own(false), &[443], &desired).expect("sync");
    let before = ruleset(&ns);
    // A plan built from a stale inspection: it removes a range that is not there and adds
    // one that is. The kernel refuses the batch as a whole.
    let result = ns.run_in(move || {
        let mut backend = NftablesBackend::new(own(false), vec![443])?;
        let stale = RangeSet::exact(nets(&["198.51.100.0/24", "2001:db8::/32"]));
        let wanted = RangeSet::exact(nets(&["203.0.113.0/24", "2001:db8::/32"]));
        let mut plan = cf_allow_diff::Plan::between(&wanted, &stale);
        // Force an element that exists to be added again next to a real change.
        plan.add = RangeSet::exact(nets(&["203.0.113.0/24", "192.0.2.0/25"]));
        backend.apply(&plan)
    });
    let err = result.expect_err("overlapping element");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the kernel rejected the change (add "),
        "{msg}"
    );
    assert!(msg.ends_with("nothing was changed"), "{msg}");
    assert_eq!(ruleset(&ns), before);
}

#[test]
fn without_cap_net_admin_the_error_is_one_clear_line() {
    if !ready("without_cap_net_admin_the_error_is_one_clear_line") {
        return;
    }
    let ns = Netns::new("nft-noperm");
    let before = ruleset(&ns);
    let (available, err) = ns.run_in(|| {
        cf_allow_testkit::drop_net_admin_on_this_thread();
        let available = cf_allow_nftables::available();
        let err = NftablesBackend::new(own(false), vec![443])
            .expect("settings")
            .inspect()
            .expect_err("no permission");
        (available, err)
    });
    assert!(!available);
    assert_eq!(
        err.to_string(),
        "permission denied talking to the kernel (cf-allow needs root or CAP_NET_ADMIN)"
    );
    assert_eq!(ruleset(&ns), before);
    // With the capability it is available.
    assert!(ns.run_in(cf_allow_nftables::available));
}
