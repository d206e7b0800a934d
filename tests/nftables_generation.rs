//! The nftables generation record: a no-op sync with an unchanged ruleset generation does not
//! dump the sets; any other commit (a foreign table, a hand-deleted or hand-added element)
//! makes the next sync read the sets again and repair them. Real binary, real kernel, each
//! test in its own network namespace.

mod common;

use cf_allow_testkit::{nft, Netns, CLOUDFLARE_V4, CLOUDFLARE_V6};
use common::*;

const NOT_DUMPED: &str = "set elements not dumped";
const DUMPED: &str = "dumping the set elements";

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test) && cf_allow_testkit::require_programs(test, &["nft", "ip"])
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `sync -vv --json` with the Cloudflare feed: the run, and whether the sets were dumped.
fn sync(env: &Env, ns: &Netns, feed: &str) -> (Run, bool) {
    let run = env.run(
        Some(ns),
        &[
            "-vv",
            "sync",
            "--backend",
            "nftables",
            "--source",
            feed,
            "--json",
        ],
    );
    run.expect_code(0);
    let dumped = run.stderr.contains(DUMPED);
    assert_ne!(
        dumped,
        run.stderr.contains(NOT_DUMPED),
        "exactly one of the two read paths is logged:\n{}",
        run.stderr
    );
    (run, dumped)
}

#[test]
fn nft_noop_with_an_unchanged_generation_does_not_dump_the_sets() {
    if !ready("nft_noop_with_an_unchanged_generation_does_not_dump_the_sets") {
        return;
    }
    let ns = Netns::new("e2e-nft-gen-noop");
    let env = Env::new("ports: [443]\n");
    let feed = env.cloudflare_feed();

    let (first, dumped) = sync(&env, &ns, &feed);
    assert!(dumped, "nothing recorded yet: {}", first.stderr);
    assert_eq!(first.json()["changed"], true);
    let record = env.state_dir().join("nftables-generation");
    assert!(record.is_file());
    // Written by the hardened writer: mode 0600, and a link planted at its path is replaced,
    // never followed (the file it pointed to keeps its bytes).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&record)
        .expect("record")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let victim = env.path("victim");
    std::fs::write(&victim, "keep\n").expect("victim");
    std::fs::remove_file(&record).expect("rm record");
    std::os::unix::fs::symlink(&victim, &record).expect("symlink");
    let (relinked, dumped) = sync(&env, &ns, &feed);
    assert!(dumped, "no record to trust: {}", relinked.stderr);
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep\n");
    assert!(std::fs::symlink_metadata(&record)
        .expect("record")
        .file_type()
        .is_file());

    let ruleset = ns.sh("nft list ruleset");
    for _ in 0..2 {
        let (noop, dumped) = sync(&env, &ns, &feed);
        assert!(
            !dumped,
            "generation unchanged, yet dumped:\n{}",
            noop.stderr
        );
        let doc = noop.json();
        assert_eq!(doc["changed"], false, "{doc}");
        assert_eq!(doc["unchanged"], 22);
        assert_eq!(ns.sh("nft list ruleset"), ruleset);
    }
    assert_eq!(
        nft::set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        sorted(&CLOUDFLARE_V4)
    );
    assert_eq!(
        nft::set_elements(&ns, "inet", "cf_allow", "cf_v6"),
        sorted(&CLOUDFLARE_V6)
    );

    // status reads the same record.
    let status = env.run(
        Some(&ns),
        &["-vv", "status", "--backend", "nftables", "--json"],
    );
    status.expect_code(0);
    assert!(status.stderr.contains(NOT_DUMPED), "{}", status.stderr);
    assert_eq!(status.json()["in_sync"], true);
}

#[test]
fn nft_a_foreign_commit_invalidates_the_record_and_hand_edits_are_repaired() {
    if !ready("nft_a_foreign_commit_invalidates_the_record_and_hand_edits_are_repaired") {
        return;
    }
    let ns = Netns::new("e2e-nft-gen-foreign");
    let env = Env::new("ports: [443]\nguard: {allow_reserved: true}\n");
    let feed = env.cloudflare_feed();
    sync(&env, &ns, &feed);
    assert!(!sync(&env, &ns, &feed).1);

    // A commit that does not touch cf-allow's table still changes the generation.
    ns.sh("nft add table ip other");
    let (run, dumped) = sync(&env, &ns, &feed);
    assert!(
        dumped,
        "a foreign commit must force a full read:\n{}",
        run.stderr
    );
    assert_eq!(run.json()["changed"], false);
    // That full read is recorded: the next no-op is cheap again.
    assert!(!sync(&env, &ns, &feed).1);

    // A hand-deleted element comes back on the next sync.
    ns.sh("nft delete element inet cf_allow cf_v4 '{ 173.245.48.0/20 }'");
    let (run, dumped) = sync(&env, &ns, &feed);
    assert!(dumped, "{}", run.stderr);
    let doc = run.json();
    assert_eq!(
        doc["added"]["ipv4"],
        serde_json::json!(["173.245.48.0/20"]),
        "{doc}"
    );
    assert_eq!(
        nft::set_elements(&ns, "inet", "cf_allow", "cf_v4"),
        sorted(&CLOUDFLARE_V4)
    );
    // The repair was cf-allow's own commit: recorded, so the next no-op does not dump.
    assert!(!sync(&env, &ns, &feed).1);

    // A hand-added element is removed again.
    ns.sh("nft add element inet cf_allow cf_v6 '{ 2001:db8::/32 }'");
    let (run, dumped) = sync(&env, &ns, &feed);
    assert!(dumped, "{}", run.stderr);
    assert_eq!(
        run.json()["removed"]["ipv6"],
        serde_json::json!(["2001:db8::/32"])
    );
    assert_eq!(
        nft::set_elements(&ns, "inet", "cf_allow", "cf_v6"),
        sorted(&CLOUDFLARE_V6)
    );
    assert_eq!(ns.sh("nft list table ip other"), "table ip other {\n}\n");
}

#[test]
fn nft_a_record_from_another_namespace_is_not_used() {
    if !ready("nft_a_record_from_another_namespace_is_not_used") {
        return;
    }
    let a = Netns::new("e2e-nft-gen-a");
    let b = Netns::new("e2e-nft-gen-b");
    let env = Env::new("ports: [443]\n");
    let feed = env.cloudflare_feed();
    sync(&env, &a, &feed);
    assert!(!sync(&env, &a, &feed).1);
    // Same state_dir, same generation number in a fresh namespace: the record is not
    // trusted, the sets are read (and created, since this namespace has none).
    let (run, dumped) = sync(&env, &b, &feed);
    assert!(dumped, "{}", run.stderr);
    assert_eq!(run.json()["changed"], true);
    assert_eq!(
        nft::set_elements(&b, "inet", "cf_allow", "cf_v4"),
        sorted(&CLOUDFLARE_V4)
    );
}
