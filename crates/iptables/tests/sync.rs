//! First sync, no-op second sync, exact deltas and drift repair, on a real kernel in a
//! private network namespace, for iptables-nft and iptables-legacy, IPv4 and IPv6.

mod common;

use cf_allow_iptables::Variant;
use cf_allow_testkit::Netns;
use common::*;

const PORTS: [u16; 2] = [80, 443];

fn first_then_noop_then_delta(variant: Variant) {
    let ns = Netns::new("ipt-sync");
    let s = settings(variant, |_| {});
    let first = ranges(&[
        "192.0.2.0/24",
        "198.51.100.0/24",
        "2001:db8:1::/48",
        "2001:db8:2::/48",
    ]);

    let (inspection, plan) = sync(&ns, &s, &PORTS, &first);
    assert!(!inspection.present);
    assert_eq!(plan.add, first);
    assert!(plan
        .repairs
        .iter()
        .any(|r| r == "iptables: create chain CF-ALLOW"));
    assert!(plan
        .repairs
        .iter()
        .any(|r| r == "ip6tables: insert the jump to CF-ALLOW at the top of INPUT"));
    let (v4, v6) = save_both(&ns, variant);
    assert_eq!(
        v4,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CF-ALLOW - [0:0]\n\
         -A INPUT -j CF-ALLOW\n\
         -A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT\n\
         -A CF-ALLOW -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT\n\
         COMMIT\n"
    );
    assert_eq!(
        chain_rules(&v6, "CF-ALLOW"),
        [
            "-s 2001:db8:1::/48 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
            "-s 2001:db8:2::/48 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
        ]
    );
    assert_eq!(chain_rules(&v6, "INPUT"), ["-j CF-ALLOW"]);

    // Second sync: nothing to do, the ruleset is byte-identical.
    let (inspection, plan) = sync(&ns, &s, &PORTS, &first);
    assert!(inspection.present);
    assert_eq!(inspection.ranges, first);
    assert!(inspection.repairs.is_empty(), "{:?}", inspection.repairs);
    assert!(plan.is_empty());
    assert_eq!(save_both(&ns, variant), (v4.clone(), v6.clone()));

    // Count a packet on the rule that stays, to see that the delta keeps it (and its counters).
    ns.sh("ip addr add 192.0.2.1/32 dev lo");
    ns.sh_output("timeout 3 bash -c '</dev/tcp/192.0.2.1/443'");
    let counted = ns.sh(&format!(
        "{} -t filter -c",
        program(variant, false, "-save")
    ));
    assert!(
        counted.contains("-A CF-ALLOW -s 192.0.2.0/24")
            && !counted.contains("[0:0] -A CF-ALLOW -s 192.0.2.0/24"),
        "{counted}"
    );

    // A changed feed applies exactly the delta.
    let second = ranges(&[
        "192.0.2.0/24",
        "203.0.113.0/24",
        "2001:db8:1::/48",
        "2001:db8:3::/48",
    ]);
    let (_, plan) = sync(&ns, &s, &PORTS, &second);
    assert_eq!(plan.add, ranges(&["203.0.113.0/24", "2001:db8:3::/48"]));
    assert_eq!(plan.remove, ranges(&["198.51.100.0/24", "2001:db8:2::/48"]));
    assert!(plan.repairs.is_empty(), "{:?}", plan.repairs);
    let (new_v4, new_v6) = save_both(&ns, variant);
    assert_eq!(
        chain_rules(&new_v4, "CF-ALLOW"),
        [
            "-s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
            "-s 203.0.113.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
        ]
    );
    assert_eq!(
        chain_rules(&new_v6, "CF-ALLOW"),
        [
            "-s 2001:db8:1::/48 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
            "-s 2001:db8:3::/48 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT",
        ]
    );
    let counted = ns.sh(&format!(
        "{} -t filter -c",
        program(variant, false, "-save")
    ));
    assert!(
        !counted.contains("[0:0] -A CF-ALLOW -s 192.0.2.0/24"),
        "the unchanged rule lost its counters:\n{counted}"
    );
    // Only cf-allow's chain changed.
    assert_eq!(without_ours(&new_v4), without_ours(&v4));
    assert_eq!(without_ours(&new_v6), without_ours(&v6));
}

variant_tests!(
    first_sync_noop_and_delta_nft,
    first_sync_noop_and_delta_legacy => first_then_noop_then_delta
);

fn drift_is_repaired(variant: Variant) {
    let ns = Netns::new("ipt-drift");
    let s = settings(variant, |_| {});
    let list = ranges(&["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/48"]);
    sync(&ns, &s, &PORTS, &list);
    let good = save_both(&ns, variant);
    let ipt = program(variant, false, "");
    let ip6t = program(variant, true, "");

    // An admin deletes the jump and a rule; ip6tables loses the whole chain; a duplicate jump.
    ns.sh(&format!(
        "{ipt} -D INPUT -j CF-ALLOW && {ipt} -D CF-ALLOW 2 && {ip6t} -D INPUT -j CF-ALLOW && {ip6t} -F CF-ALLOW && {ip6t} -X CF-ALLOW"
    ));
    let inspection = inspect(&ns, &s, &PORTS);
    assert!(
        inspection
            .repairs
            .contains(&"iptables: insert the jump to CF-ALLOW at the top of INPUT".to_string()),
        "{:?}",
        inspection.repairs
    );
    assert!(inspection
        .repairs
        .contains(&"ip6tables: create chain CF-ALLOW".to_string()));
    assert_eq!(inspection.ranges, ranges(&["192.0.2.0/24"]));
    let (_, plan) = sync(&ns, &s, &PORTS, &list);
    assert_eq!(plan.add, ranges(&["198.51.100.0/24", "2001:db8:1::/48"]));
    assert_eq!(save_both(&ns, variant), good);

    // Duplicate jumps and a jump pushed down by a foreign rule.
    ns.sh(&format!(
        "{ipt} -A INPUT -j CF-ALLOW && {ip6t} -I INPUT 1 -p tcp --dport 22 -j ACCEPT"
    ));
    let inspection = inspect(&ns, &s, &PORTS);
    assert!(
        inspection.repairs.contains(
            &"iptables: replace 2 jumps to CF-ALLOW in INPUT by one at the top".to_string()
        ),
        "{:?}",
        inspection.repairs
    );
    assert!(
        inspection
            .repairs
            .contains(&"ip6tables: move the jump to CF-ALLOW back to the top of INPUT".to_string()),
        "{:?}",
        inspection.repairs
    );
    sync(&ns, &s, &PORTS, &list);
    let (v4, v6) = save_both(&ns, variant);
    assert_eq!(v4, good.0);
    assert_eq!(
        chain_rules(&v6, "INPUT"),
        ["-j CF-ALLOW", "-p tcp -m tcp --dport 22 -j ACCEPT"]
    );

    // A rule the admin put into cf-allow's chain is not cf-allow's: sync refuses and
    // leaves it; once the admin deletes it, sync is back to normal.
    ns.sh(&format!("{ipt} -I CF-ALLOW 1 -p udp -j ACCEPT"));
    let with_admin_rule = save(&ns, variant, false);
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("a foreign rule in CF-ALLOW");
    assert!(
        err.contains("`-A CF-ALLOW -p udp -j ACCEPT` in cf-allow's chain CF-ALLOW was not created by cf-allow"),
        "{err}"
    );
    assert_eq!(save(&ns, variant, false), with_admin_rule);
    ns.sh(&format!("{ipt} -D CF-ALLOW 1"));
    assert!(inspect(&ns, &s, &PORTS).repairs.is_empty());
    assert_eq!(save(&ns, variant, false), good.0);

    // The whole table flushed (a reboot, `iptables -F; iptables -X`).
    ns.sh(&format!("{ipt} -F && {ipt} -X && {ip6t} -F && {ip6t} -X"));
    let (_, plan) = sync(&ns, &s, &PORTS, &list);
    assert_eq!(plan.add, list);
    assert_eq!(save(&ns, variant, false), good.0);
    assert!(inspect(&ns, &s, &PORTS).repairs.is_empty());
}

variant_tests!(
    drift_is_repaired_nft,
    drift_is_repaired_legacy => drift_is_repaired
);

fn layout_changes_are_repairs(variant: Variant) {
    let ns = Netns::new("ipt-layout");
    let list = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);
    sync(&ns, &settings(variant, |_| {}), &PORTS, &list);

    // Ports change: every rule is rewritten, no range changes.
    let s = settings(variant, |_| {});
    let inspection = inspect(&ns, &s, &[443]);
    assert!(
        inspection
            .repairs
            .contains(&"iptables: CF-ALLOW: add 1 rule(s), delete 1 rule(s)".to_string()),
        "{:?}",
        inspection.repairs
    );
    sync(&ns, &s, &[443], &list);
    let v4 = save(&ns, variant, false);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW"),
        ["-s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT"]
    );

    // Lockdown on: a DROP ends both chains.
    let locked = settings(variant, |s| s.lockdown = true);
    sync(&ns, &locked, &[443], &list);
    let (v4, v6) = save_both(&ns, variant);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW"),
        [
            "-s 192.0.2.0/24 -p tcp -m multiport --dports 443 -m comment --comment cf-allow -j ACCEPT",
            "-p tcp -m multiport --dports 443 -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP",
        ]
    );
    assert_eq!(chain_rules(&v6, "CF-ALLOW").len(), 2);
    assert!(inspect(&ns, &locked, &[443]).repairs.is_empty());

    // A new range goes before the DROP.
    let more = ranges(&["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/48"]);
    sync(&ns, &locked, &[443], &more);
    let v4 = save(&ns, variant, false);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW").last().map(String::as_str),
        Some("-p tcp -m multiport --dports 443 -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP")
    );
    assert_eq!(chain_rules(&v4, "CF-ALLOW").len(), 3);

    // All ports (`ports: []`), more than 15 ports (split), lockdown off again.
    sync(&ns, &s, &[], &more);
    assert_eq!(
        chain_rules(&save(&ns, variant, false), "CF-ALLOW"),
        [
            "-s 192.0.2.0/24 -p tcp -m comment --comment cf-allow -j ACCEPT",
            "-s 198.51.100.0/24 -p tcp -m comment --comment cf-allow -j ACCEPT"
        ]
    );
    let many: Vec<u16> = (8000..8020).collect();
    sync(&ns, &s, &many, &more);
    let rules = chain_rules(&save(&ns, variant, false), "CF-ALLOW");
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert!(inspect(&ns, &s, &many).repairs.is_empty());
}

variant_tests!(
    layout_changes_are_repairs_nft,
    layout_changes_are_repairs_legacy => layout_changes_are_repairs
);
