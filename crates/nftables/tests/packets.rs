//! Packet-level tests: TCP connections over a veth pair between two private namespaces,
//! documentation addresses only.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cf_allow_diff::RangeSet;
use cf_allow_testkit::lab::{
    server_and_client as lab, ALLOWED_V4, ALLOWED_V6, OTHER_V4, OTHER_V6, SERVER_V4, SERVER_V6,
};
use cf_allow_testkit::Netns;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(2);

fn connects(client: &Netns, source: &str, server: &str, port: u16) -> bool {
    let dest = if server.contains(':') {
        format!("[{server}]:{port}")
    } else {
        format!("{server}:{port}")
    };
    client.tcp_connect(source, &dest, TIMEOUT)
}

/// The allowed client addresses plus unrelated documentation ranges.
fn allow_list() -> RangeSet {
    RangeSet::exact(nets(&[
        "192.0.2.10/32",
        "198.51.100.0/24",
        "2001:db8::10/128",
        "2001:db8:1::/48",
    ]))
}

#[test]
fn with_a_drop_policy_only_into_mode_lets_the_allowed_source_in() {
    if !ready("with_a_drop_policy_only_into_mode_lets_the_allowed_source_in") {
        return;
    }
    let (server, client) = lab("pkt-into", &[443]);
    load_foreign(&server);
    // Nothing gets in while only the host firewall is there.
    assert!(!connects(&client, ALLOWED_V4, SERVER_V4, 443));

    // Own-table mode: the accept in inet cf_allow does not stop the drop in inet filter.
    let synced = sync(&server, own(false), &[443], &allow_list()).expect("own sync");
    assert!(!synced.before.warnings.is_empty());
    assert!(!connects(&client, ALLOWED_V4, SERVER_V4, 443));

    // Into mode: the allowed source gets in, the other does not, in both families.
    sync(&server, into("filter", "input"), &[443], &allow_list()).expect("into sync");
    assert!(connects(&client, ALLOWED_V4, SERVER_V4, 443));
    assert!(connects(&client, ALLOWED_V6, SERVER_V6, 443));
    assert!(!connects(&client, OTHER_V4, SERVER_V4, 443));
    assert!(!connects(&client, OTHER_V6, SERVER_V6, 443));
}

#[test]
fn lockdown_drops_other_sources_on_the_ports_only() {
    if !ready("lockdown_drops_other_sources_on_the_ports_only") {
        return;
    }
    let (server, client) = lab("pkt-lock", &[80, 443, 8080]);
    sync(&server, own(true), &[80, 443], &allow_list()).expect("sync");
    for port in [80, 443] {
        assert!(
            connects(&client, ALLOWED_V4, SERVER_V4, port),
            "allowed v4 :{port}"
        );
        assert!(
            connects(&client, ALLOWED_V6, SERVER_V6, port),
            "allowed v6 :{port}"
        );
        assert!(
            !connects(&client, OTHER_V4, SERVER_V4, port),
            "other v4 :{port}"
        );
        assert!(
            !connects(&client, OTHER_V6, SERVER_V6, port),
            "other v6 :{port}"
        );
    }
    assert!(connects(&client, OTHER_V4, SERVER_V4, 8080));
    assert!(connects(&client, OTHER_V6, SERVER_V6, 8080));

    // Lockdown off: everyone gets in again (the own table only accepts).
    sync(&server, own(false), &[80, 443], &allow_list()).expect("sync");
    assert!(connects(&client, OTHER_V4, SERVER_V4, 443));
}

#[test]
fn repeated_syncs_do_not_disturb_connections_from_unchanged_ranges() {
    if !ready("repeated_syncs_do_not_disturb_connections_from_unchanged_ranges") {
        return;
    }
    let (server, client) = lab("pkt-steady", &[443]);
    load_foreign(&server);
    let settings = || {
        let mut s = into("filter", "input");
        s.lockdown = true;
        s
    };
    // Two lists that share the allowed client's range and differ in their neighbours
    // (added, removed, split, merged).
    let a = RangeSet::exact(nets(&[
        "192.0.2.0/28",
        "192.0.2.32/27",
        "198.51.100.0/24",
        "2001:db8::/64",
    ]));
    let b = RangeSet::exact(nets(&[
        "192.0.2.0/28",
        "192.0.2.16/28",
        "198.51.100.0/25",
        "198.51.100.128/25",
        "203.0.113.0/24",
        "2001:db8::/64",
        "2001:db8:1::/48",
    ]));
    sync(&server, settings(), &[443], &a).expect("first sync");

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (stop, attempts, failures) = (stop.clone(), attempts.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                attempts.fetch_add(1, Ordering::SeqCst);
                if !connects(&client, ALLOWED_V4, SERVER_V4, 443) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
            client
        })
    };
    for round in 0..40 {
        let desired = if round % 2 == 0 { &b } else { &a };
        let synced = sync(&server, settings(), &[443], desired).expect("sync");
        assert!(synced.plan.changes_ranges());
        assert!(synced.plan.repairs.is_empty(), "{:?}", synced.plan.repairs);
    }
    // Keep going until the client has made a fair number of connections.
    while attempts.load(Ordering::SeqCst) < 20 {
        sync(&server, settings(), &[443], &b).expect("sync");
        sync(&server, settings(), &[443], &a).expect("sync");
    }
    stop.store(true, Ordering::SeqCst);
    let _client = worker.join().expect("client thread");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "{} of {} connections failed",
        failures.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst)
    );
    assert!(attempts.load(Ordering::SeqCst) >= 20);
}
