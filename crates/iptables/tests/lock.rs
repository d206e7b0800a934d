//! A held xtables lock is one clear error and changes nothing. Its own test binary, because it
//! points XTABLES_LOCKFILE (read by iptables-legacy) at a private lock file for the process.

mod common;

use cf_allow_iptables::Variant;
use cf_allow_testkit::{require_programs, require_root, Netns};
use common::*;

const PORTS: [u16; 2] = [80, 443];

#[test]
fn a_held_xtables_lock_is_one_clear_error() {
    if !require_root("a_held_xtables_lock_is_one_clear_error")
        || !require_programs(
            "a_held_xtables_lock_is_one_clear_error",
            &["ip", "iptables-legacy-restore"],
        )
    {
        return;
    }
    // This test binary runs only this test, so the variable reaches only its children.
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = dir.path().join("xtables.lock");
    std::fs::write(&lock, "").expect("lock file");
    std::env::set_var("XTABLES_LOCKFILE", &lock);
    let holder = std::fs::File::open(&lock).expect("open lock file");
    cf_allow_testkit::flock_exclusive(&holder);

    let ns = Netns::new("ipt-lock");
    let s = settings(Variant::Legacy, |s| s.lock_wait_secs = 1);
    let list = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);
    let before = save_both(&ns, Variant::Legacy);
    let err = try_sync(&ns, &s, &PORTS, &list).expect_err("locked");
    assert_eq!(err, "another process holds the xtables lock (waited 1 s)");
    assert_eq!(save_both(&ns, Variant::Legacy), before);

    // Releasing the lock lets the same sync through.
    drop(holder);
    sync(&ns, &s, &PORTS, &list);
    assert!(save(&ns, Variant::Legacy, false).contains("-A INPUT -j CF-ALLOW"));
}
