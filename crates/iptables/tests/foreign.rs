//! Foreign rules, chains and sets (ufw-like chains, a fail2ban chain and set, Docker's
//! DOCKER-USER) stay byte-identical, in the same order, through sync and remove.

mod common;

use cf_allow_iptables::Variant;
use cf_allow_testkit::Netns;
use common::*;

const PORTS: [u16; 2] = [80, 443];

/// A ufw-like set of chains, a fail2ban chain with a REJECT for a source, Docker's chains.
fn install_foreign(ns: &Netns, variant: Variant) {
    ns.sh("ipset create f2b-sshd hash:ip && ipset add f2b-sshd 203.0.113.7");
    for (v6, banned) in [(false, "203.0.113.7"), (true, "2001:db8:bad::7")] {
        let t = program(variant, v6, "");
        ns.sh(&format!(
            "set -e
            {t} -N ufw-before-input; {t} -N ufw-user-input; {t} -N ufw-after-input
            {t} -A INPUT -j ufw-before-input; {t} -A INPUT -j ufw-user-input; {t} -A INPUT -j ufw-after-input
            {t} -A ufw-before-input -i lo -j ACCEPT
            {t} -A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            {t} -A ufw-user-input -p tcp --dport 22 -j ACCEPT
            {t} -A ufw-after-input -p udp --dport 137 -j DROP
            {t} -N f2b-sshd
            {t} -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd
            {t} -A f2b-sshd -s {banned} -j REJECT
            {t} -A f2b-sshd -j RETURN
            {t} -N DOCKER; {t} -N DOCKER-USER
            {t} -A DOCKER-USER -j RETURN
            {t} -A FORWARD -j DOCKER-USER
            {t} -P INPUT DROP"
        ));
    }
    ns.sh(&format!(
        "{} -A INPUT -m set --match-set f2b-sshd src -j DROP",
        program(variant, false, "")
    ));
}

fn foreign_objects_stay_identical(variant: Variant) {
    let ns = Netns::new("ipt-foreign");
    install_foreign(&ns, variant);
    let before = save_both(&ns, variant);
    let f2b_before = ns.sh("ipset save f2b-sshd");
    let s = settings(variant, |s| {
        s.hooks = vec!["INPUT".into(), "DOCKER-USER".into()];
        s.lockdown = true;
    });
    let list = ranges(&["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/48"]);

    let (inspection, _) = sync(&ns, &s, &PORTS, &list);
    assert!(inspection.warnings.is_empty(), "{:?}", inspection.warnings);
    let (v4, v6) = save_both(&ns, variant);
    assert_eq!(without_ours(&v4), before.0);
    assert_eq!(without_ours(&v6), before.1);
    for save in [&v4, &v6] {
        assert_eq!(chain_rules(save, "INPUT")[0], "-j CF-ALLOW");
        assert_eq!(
            chain_rules(save, "DOCKER-USER"),
            ["-j CF-ALLOW-DOCKER", "-j RETURN"]
        );
    }
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW-DOCKER"),
        [
            "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 80 -m comment --comment cf-allow -j ACCEPT",
            "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 443 -m comment --comment cf-allow -j ACCEPT",
            "-s 198.51.100.0/24 -p tcp -m conntrack --ctorigdstport 80 -m comment --comment cf-allow -j ACCEPT",
            "-s 198.51.100.0/24 -p tcp -m conntrack --ctorigdstport 443 -m comment --comment cf-allow -j ACCEPT",
            "-p tcp -m conntrack --ctstate DNAT --ctorigdstport 80 --ctdir ORIGINAL -m comment --comment cf-allow -j DROP",
            "-p tcp -m conntrack --ctstate DNAT --ctorigdstport 443 --ctdir ORIGINAL -m comment --comment cf-allow -j DROP",
        ]
    );

    // A foreign rule inserted at position 1 of INPUT: the next sync puts the jump first again.
    let ipt = program(variant, false, "");
    ns.sh(&format!("{ipt} -I INPUT 1 -s 203.0.113.99/32 -j DROP"));
    let (inspection, _) = sync(&ns, &s, &PORTS, &list);
    assert_eq!(
        inspection.repairs,
        ["iptables: move the jump to CF-ALLOW back to the top of INPUT"]
    );
    let v4 = save(&ns, variant, false);
    assert_eq!(
        chain_rules(&v4, "INPUT")[..2],
        [
            "-j CF-ALLOW".to_string(),
            "-s 203.0.113.99/32 -j DROP".to_string()
        ]
    );
    assert!(inspect(&ns, &s, &PORTS).repairs.is_empty());
    assert_eq!(save(&ns, variant, true), v6);

    // remove: cf-allow's objects go, everything else is as before (plus the admin's rule).
    let dry = remove(&ns, &s, true).expect("dry run");
    assert_eq!(save(&ns, variant, false), v4, "dry run changed nothing");
    let lines = remove(&ns, &s, false).expect("remove");
    assert_eq!(lines, dry);
    assert!(
        lines.contains(&"iptables: chain CF-ALLOW-DOCKER (6 rules)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"ip6tables: the jump to CF-ALLOW in INPUT".to_string()),
        "{lines:?}"
    );
    let v4 = save(&ns, variant, false);
    assert_eq!(chain_rules(&v4, "INPUT")[0], "-s 203.0.113.99/32 -j DROP");
    ns.sh(&format!("{ipt} -D INPUT 1"));
    assert_eq!(save_both(&ns, variant), before);
    assert_eq!(ns.sh("ipset save f2b-sshd"), f2b_before);
    assert!(remove(&ns, &s, false).expect("second remove").is_empty());
}

variant_tests!(
    foreign_objects_stay_identical_nft,
    foreign_objects_stay_identical_legacy => foreign_objects_stay_identical
);

fn docker_user_missing_is_skipped(variant: Variant) {
    let ns = Netns::new("ipt-nodocker");
    let s = settings(variant, |s| {
        s.hooks = vec!["INPUT".into(), "DOCKER-USER".into()]
    });
    let list = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);
    let (inspection, _) = sync(&ns, &s, &PORTS, &list);
    assert_eq!(inspection.warnings.len(), 2, "{:?}", inspection.warnings);
    assert!(inspection.warnings[0].contains("DOCKER-USER chain does not exist"));
    let v4 = save(&ns, variant, false);
    assert_eq!(chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"]);
    assert!(!v4.contains("CF-ALLOW-DOCKER"));

    // Docker starts (IPv4 only): the next sync adds the Docker chain there.
    let ipt = program(variant, false, "");
    ns.sh(&format!(
        "{ipt} -N DOCKER-USER && {ipt} -A DOCKER-USER -j RETURN"
    ));
    let (inspection, _) = sync(&ns, &s, &PORTS, &list);
    assert!(inspection
        .repairs
        .contains(&"iptables: create chain CF-ALLOW-DOCKER".to_string()));
    assert_eq!(inspection.warnings.len(), 1);
    assert_eq!(
        chain_rules(&save(&ns, variant, false), "DOCKER-USER"),
        ["-j CF-ALLOW-DOCKER", "-j RETURN"]
    );

    // DOCKER-USER dropped from the hooks: its jump and chain go, the rest stays.
    let plain = settings(variant, |_| {});
    let (inspection, _) = sync(&ns, &plain, &PORTS, &list);
    assert!(inspection.repairs.contains(
        &"iptables: delete chain CF-ALLOW-DOCKER (no configured hook uses it)".to_string()
    ));
    let v4 = save(&ns, variant, false);
    assert_eq!(chain_rules(&v4, "DOCKER-USER"), ["-j RETURN"]);
    assert!(!v4.contains("CF-ALLOW-DOCKER"));
    assert!(inspect(&ns, &plain, &PORTS).repairs.is_empty());

    // A hook that does not exist (and is not DOCKER-USER) is an error, nothing changes.
    let before = save_both(&ns, variant);
    let typo = settings(variant, |s| s.hooks = vec!["INPTU".into()]);
    let err = try_sync(&ns, &typo, &PORTS, &list).expect_err("missing hook");
    assert!(err.contains("the hook chain INPTU does not exist"), "{err}");
    assert_eq!(save_both(&ns, variant), before);
}

variant_tests!(
    docker_user_missing_is_skipped_nft,
    docker_user_missing_is_skipped_legacy => docker_user_missing_is_skipped
);

/// With the nf_tables variant, legacy (x_tables) tables next to it are a warning per family:
/// the host's firewall may live there.
#[test]
fn legacy_tables_next_to_nft_are_a_warning_per_family() {
    if !ready("legacy_tables_next_to_nft_are_a_warning_per_family") {
        return;
    }
    let ns = Netns::new("ipt-alsolegacy");
    let s = settings(Variant::Nft, |_| {});
    assert!(inspect(&ns, &s, &PORTS).warnings.is_empty());
    ns.sh("iptables-legacy -A INPUT -s 203.0.113.9 -j DROP && ip6tables-legacy -A INPUT -s 2001:db8::9 -j DROP");
    let warnings = inspect(&ns, &s, &PORTS).warnings;
    assert_eq!(
        warnings,
        ["iptables", "ip6tables"].map(|tool| format!(
            "{tool}: {tool}-legacy also holds tables on this host and cf-allow manages the nf_tables ones; if your firewall lives in {tool}-legacy, set iptables.variant: legacy"
        ))
    );
}

#[test]
fn remove_refuses_when_a_foreign_rule_uses_the_chain() {
    if !ready("remove_refuses_when_a_foreign_rule_uses_the_chain") {
        return;
    }
    let variant = Variant::Nft;
    let ns = Netns::new("ipt-inuse");
    let s = settings(variant, |_| {});
    sync(
        &ns,
        &s,
        &PORTS,
        &ranges(&["192.0.2.0/24", "2001:db8:1::/48"]),
    );
    let ipt = program(variant, false, "");
    ns.sh(&format!(
        "{ipt} -N my-chain && {ipt} -A my-chain -i eth0 -j CF-ALLOW"
    ));
    let before = save_both(&ns, variant);
    let err = remove(&ns, &s, false).expect_err("in use");
    assert_eq!(
        err,
        "cannot remove CF-ALLOW from iptables: `-A my-chain -i eth0 -j CF-ALLOW` still uses it and cf-allow did not create it; delete that rule first"
    );
    assert_eq!(save_both(&ns, variant), before);
    // sync leaves that rule alone and still reports nothing to repair.
    let inspection = inspect(&ns, &s, &PORTS);
    assert!(inspection.repairs.is_empty(), "{:?}", inspection.repairs);
}

/// Chains with cf-allow's names that cf-allow did not create (no rule tagged
/// `-m comment --comment cf-allow`) are refused by sync and left byte-identical by remove;
/// an admin's rule in cf-allow's own chain is refused by sync and kept by remove; an
/// untagged chain exactly as the previous version wrote it is adopted (an upgrade).
fn chains_cf_allow_did_not_create_are_never_adopted(variant: Variant) {
    let ns = Netns::new("ipt-notours");
    let t = program(variant, false, "");
    let s = settings(variant, |_| {});
    let list = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);

    // An admin's chain CF-ALLOW with its own rules, and the admin's jump to it.
    ns.sh(&format!(
        "{t} -N CF-ALLOW && {t} -A CF-ALLOW -s 198.51.100.7/32 -j DROP && {t} -A CF-ALLOW -p tcp --dport 22 -j ACCEPT && {t} -A INPUT -j CF-ALLOW"
    ));
    let before = save_both(&ns, variant);
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("a foreign CF-ALLOW");
    assert!(
        err.contains("iptables: chain CF-ALLOW exists but was not created by cf-allow"),
        "{err}"
    );
    assert_eq!(save_both(&ns, variant), before);
    remove(&ns, &s, false).expect("remove");
    assert_eq!(save_both(&ns, variant), before);
    ns.sh(&format!(
        "{t} -F CF-ALLOW && {t} -D INPUT -j CF-ALLOW && {t} -X CF-ALLOW"
    ));

    // The previous version's untagged chain: recognised, and its rules get the tag.
    ns.sh(&format!(
        "{t} -N CF-ALLOW && {t} -A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT && {t} -I INPUT 1 -j CF-ALLOW"
    ));
    sync(&ns, &s, &PORTS, &list);
    let v4 = save(&ns, variant, false);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW"),
        ["-s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"]
    );
    assert_eq!(chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"]);

    // An admin's rule inserted into cf-allow's chain: refused, then kept by remove.
    ns.sh(&format!("{t} -I CF-ALLOW 1 -s 203.0.113.5/32 -j ACCEPT"));
    let before = save_both(&ns, variant);
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("a foreign rule");
    assert!(
        err.contains("`-A CF-ALLOW -s 203.0.113.5/32 -j ACCEPT`"),
        "{err}"
    );
    assert_eq!(save_both(&ns, variant), before);
    remove(&ns, &s, false).expect("remove");
    let v4 = save(&ns, variant, false);
    assert_eq!(
        chain_rules(&v4, "CF-ALLOW"),
        ["-s 203.0.113.5/32 -j ACCEPT"]
    );
    assert_eq!(chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"]);
    // ip6tables held only cf-allow's chain: it is gone there.
    assert!(!save(&ns, variant, true).contains("CF-ALLOW"));
}

variant_tests!(
    chains_cf_allow_did_not_create_are_never_adopted_nft,
    chains_cf_allow_did_not_create_are_never_adopted_legacy => chains_cf_allow_did_not_create_are_never_adopted
);
