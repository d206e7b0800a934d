//! Failures leave the firewall as it was: a family whose transaction fails rolls the other
//! family back.

mod common;

use std::process::Command;

use cf_allow_diff::{Backend, Plan};
use cf_allow_iptables::{IptablesBackend, Variant};
use cf_allow_testkit::Netns;
use common::*;

const PORTS: [u16; 2] = [80, 443];

fn failed_family_rolls_back_the_other(variant: Variant) {
    let ns = Netns::new("ipt-rollback");
    let s = settings(variant, |_| {});
    let first = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);
    sync(&ns, &s, &PORTS, &first);
    let ip6t = program(variant, true, "");
    // The IPv6 jump is no longer first: the next apply deletes and re-inserts it.
    ns.sh(&format!("{ip6t} -I INPUT 1 -p tcp --dport 22 -j ACCEPT"));
    let before = save_both(&ns, variant);

    let second = ranges(&["198.51.100.0/24", "2001:db8:1::/48"]);
    let (settings, v6_delete) = (s.clone(), format!("{ip6t} -D INPUT -j CF-ALLOW"));
    let result = ns.run_in(move || {
        let mut backend = IptablesBackend::new(settings, PORTS.to_vec()).expect("backend");
        let inspection = backend.inspect().expect("inspect");
        // Someone deletes the IPv6 jump between inspect and apply: that transaction fails.
        let status = Command::new("sh")
            .args(["-c", &v6_delete])
            .status()
            .expect("sh");
        assert!(status.success());
        let plan = Plan::between(&second, &inspection.ranges).with_repairs(inspection.repairs);
        backend.apply(&plan).map_err(|e| e.to_string())
    });
    let err = result.expect_err("the IPv6 transaction must fail");
    assert!(err.starts_with("ip6tables"), "{err}");
    // IPv4 had been committed and is rolled back exactly.
    assert_eq!(save(&ns, variant, false), before.0);
    assert_eq!(
        save(&ns, variant, true),
        before.1.replace("-A INPUT -j CF-ALLOW\n", "")
    );
}

variant_tests!(
    failed_family_rolls_back_the_other_nft,
    failed_family_rolls_back_the_other_legacy => failed_family_rolls_back_the_other
);
