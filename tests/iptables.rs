//! End-to-end tests of `cf-allow` with the iptables backend: the real binary, the real kernel
//! (iptables-nft and iptables-legacy, IPv4 and IPv6), each test in its own network namespace,
//! feeds from `file://` URLs in a temp dir.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use cf_allow_testkit::{iptables, Netns, CLOUDFLARE_V4, CLOUDFLARE_V6};
use common::*;

const VARIANTS: [&str; 2] = ["nft", "legacy"];

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(
            test,
            &[
                "ip",
                "ipset",
                "unshare",
                "iptables-nft-restore",
                "iptables-legacy-restore",
            ],
        )
}

fn config(variant: &str, extra: &str) -> String {
    format!(
        "ports: [80, 443]\nguard: {{allow_reserved: true}}\niptables:\n  variant: {variant}\n{extra}"
    )
}

/// The filter table as `<variant>-save` prints it, comments dropped, counters zeroed.
fn save(ns: &Netns, variant: &str, v6: bool) -> String {
    let tool = if v6 { "ip6tables" } else { "iptables" };
    iptables::filter_table(ns, &format!("{tool}-{variant}-save"))
}

fn saves(ns: &Netns, variant: &str) -> (String, String) {
    (save(ns, variant, false), save(ns, variant, true))
}

/// Wrappers for the iptables/ipset programs that log each call, so a test can count spawns.
fn spawn_logging_path(env: &Env, variant: &str) -> (String, std::path::PathBuf) {
    let dir = env.path("wrappers");
    std::fs::create_dir_all(&dir).expect("wrapper dir");
    let log = env.path("spawns.log");
    for tool in ["iptables", "ip6tables"] {
        for what in ["save", "restore"] {
            let name = format!("{tool}-{variant}-{what}");
            write_wrapper(&dir, &name, &log);
        }
    }
    write_wrapper(&dir, "ipset", &log);
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, log)
}

fn write_wrapper(dir: &std::path::Path, name: &str, log: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let real = cf_allow_testkit::which(name).expect("real program");
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn real_list_sync(variant: &str) {
    let ns = Netns::new(&format!("e2e-ipt-{variant}"));
    let env = Env::new(&config(variant, ""));
    let feed = env.cloudflare_feed();
    let (path, log) = spawn_logging_path(&env, variant);

    let run = Run::of(
        env.cmd(
            Some(&ns),
            &["sync", "--backend", "iptables", "--source", &feed, "--json"],
        )
        .env("PATH", &path)
        .output()
        .expect("run"),
    );
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["backend"], "iptables");
    assert_eq!(json["changed"], true);
    assert_eq!(json["added"]["ipv4"].as_array().map(Vec::len), Some(15));
    assert_eq!(json["added"]["ipv6"].as_array().map(Vec::len), Some(7));
    // One restore per family, plus reading state: no process per rule.
    let spawns = std::fs::read_to_string(&log).expect("spawn log");
    let restores: Vec<&str> = spawns.lines().filter(|l| l.contains("-restore")).collect();
    assert_eq!(
        restores,
        [
            format!("iptables-{variant}-restore -w 10 --noflush"),
            format!("ip6tables-{variant}-restore -w 10 --noflush")
        ],
        "{spawns}"
    );
    // The backend reads its state (save -t filter per family, ipset list) and restores: at
    // most 5 spawns. The reachability verdict then reads the whole tables once: each of its
    // programs at most once.
    let (backend, verdict): (Vec<&str>, Vec<&str>) = spawns.lines().partition(|l| {
        l.ends_with(" -t filter") || l.starts_with("ipset list") || l.contains("-restore")
    });
    assert!(backend.len() <= 5, "{spawns}");
    let mut unique = verdict.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), verdict.len(), "{spawns}");
    assert!(verdict.len() <= 5, "{spawns}");

    let (v4, v6) = saves(&ns, variant);
    assert_eq!(iptables::chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"]);
    assert_eq!(iptables::chain_rules(&v4, "CF-ALLOW").len(), 15);
    assert_eq!(iptables::chain_rules(&v6, "CF-ALLOW").len(), 7);
    for cidr in CLOUDFLARE_V4 {
        let rule = format!(
            "-s {cidr} -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"
        );
        assert!(
            iptables::chain_rules(&v4, "CF-ALLOW").contains(&rule),
            "{rule}"
        );
    }
    for cidr in CLOUDFLARE_V6 {
        let rule = format!(
            "-s {cidr} -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"
        );
        assert!(
            iptables::chain_rules(&v6, "CF-ALLOW").contains(&rule),
            "{rule}"
        );
    }

    // Second sync: nothing changes, no restore runs, the ruleset is byte-identical.
    std::fs::write(&log, "").expect("reset log");
    let run = Run::of(
        env.cmd(
            Some(&ns),
            &[
                "sync",
                "--backend",
                "iptables",
                "--source",
                &feed,
                "--json",
                "--exit-code",
            ],
        )
        .env("PATH", &path)
        .output()
        .expect("run"),
    );
    run.expect_code(0);
    assert_eq!(run.json()["changed"], false);
    assert!(!std::fs::read_to_string(&log)
        .expect("log")
        .contains("-restore"));
    assert_eq!(saves(&ns, variant), (v4, v6));

    // status, then remove: nothing of cf-allow's is left.
    env.run(Some(&ns), &["status", "--backend", "iptables"])
        .expect_code(0);
    let run = env.run(Some(&ns), &["remove", "--backend", "iptables"]);
    run.expect_code(0);
    let (v4, v6) = saves(&ns, variant);
    assert!(
        !v4.contains("CF-ALLOW") && !v6.contains("CF-ALLOW"),
        "{v4}{v6}"
    );
}

#[test]
fn iptables_real_list_sync_nft() {
    if !ready("iptables_real_list_sync_nft") {
        return;
    }
    real_list_sync("nft");
}

#[test]
fn iptables_real_list_sync_legacy() {
    if !ready("iptables_real_list_sync_legacy") {
        return;
    }
    real_list_sync("legacy");
}

/// Many unmergeable documentation ranges: every other host of two /24s, every other /48.
fn big_feed(env: &Env, name: &str, v4_nets: [&str; 2], v6_from: u32) -> String {
    let mut list = Vec::new();
    for net in v4_nets {
        for host in (0..256).step_by(2) {
            list.push(format!("{net}.{host}/32"));
        }
    }
    for n in (v6_from..v6_from + 800).step_by(2) {
        list.push(format!("2001:db8:{n:x}::/48"));
    }
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    env.feed(name, &refs)
}

/// SIGKILLs `cf-allow sync` (and its iptables-restore / ipset children) at growing delays;
/// after each kill every family's ruleset is exactly the old or exactly the new one. Families
/// are separate transactions (iptables-restore and ip6tables-restore), so a kill between them
/// may leave IPv4 new and IPv6 old. In ipset mode the sets are updated in place, additions
/// before deletions, so after a kill each set holds every member the old and the new list
/// share, nothing outside the two lists, and no old-only member is missing unless every
/// new-only member is already there; the next sync completes it.
fn killed_sync_is_old_or_new(variant: &str, ipset: bool) {
    let ns = Netns::new(&format!("e2e-ipt-kill-{variant}"));
    let extra = if ipset { "  ipset: true\n" } else { "" };
    let env = Env::new(&config(variant, extra));
    let old = big_feed(&env, "old.txt", ["192.0.2", "198.51.100"], 0x100);
    let new = big_feed(&env, "new.txt", ["198.51.100", "203.0.113"], 0x300);
    let sync = |feed: &str| {
        env.run(
            Some(&ns),
            &["sync", "--backend", "iptables", "--force", "--source", feed],
        )
        .expect_code(0);
    };
    // Per family: the ruleset (counters stripped) and, in ipset mode, the set's sorted members.
    let state = || {
        let (v4, v6) = saves(&ns, variant);
        [(v4, "cf-allow-v4"), (v6, "cf-allow-v6")].map(|(rules, set)| {
            let mut members: Vec<String> = Vec::new();
            if ipset {
                members = ns
                    .sh(&format!("ipset save {set}"))
                    .lines()
                    .filter(|l| l.starts_with("add "))
                    .map(str::to_string)
                    .collect();
                members.sort();
            }
            (rules, members)
        })
    };
    sync(&new);
    let new_state = state();
    sync(&old);
    let old_state = state();
    for family in 0..2 {
        assert_ne!(old_state[family], new_state[family], "family {family}");
    }

    // Rounds that left: [the old state, the new state, one family old and one new].
    let mut outcomes = [0usize; 3];
    for round in 0..30u64 {
        let mut child = env
            .cmd(
                Some(&ns),
                &["sync", "--backend", "iptables", "--force", "--source", &new],
            )
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn cf-allow");
        // Even rounds: kill while a `… restore` child runs (after 0–2 ms of it); odd rounds:
        // kill at a growing delay after the start, whatever it is doing then.
        if round % 2 == 0 {
            wait_for_restore_child(child.id(), Duration::from_secs(5));
            // An in-place `ipset restore` applies its lines one after the other over tens
            // of milliseconds: spread the kills across it.
            let step = if ipset { 3000 } else { 200 };
            std::thread::sleep(Duration::from_micros((round / 2) * step));
        } else {
            std::thread::sleep(Duration::from_millis(round * 2));
        }
        let pgid = child.id();
        // Signals only the process group of the child this test started.
        cf_allow_testkit::kill_process_group(pgid);
        let _ = child.wait();
        wait_for_group_exit(pgid, Duration::from_secs(5));
        let now = state();
        for (family, is) in now.iter().enumerate() {
            let (was, will) = (&old_state[family], &new_state[family]);
            if ipset {
                assert!(
                    is.0 == was.0 || is.0 == will.0,
                    "round {round}: family {family}: rules neither old nor new:\n{}",
                    is.0
                );
                if let Err(why) = in_place_step(&was.1, &will.1, &is.1) {
                    panic!("round {round}: family {family}: {why}");
                }
                continue;
            }
            assert!(
                is == was || is == will,
                "round {round}: family {family} is neither the old nor the new state \
                 ({} set members; old {}, new {}):\n{}",
                is.1.len(),
                was.1.len(),
                will.1.len(),
                is.0
            );
        }
        outcomes[if now == old_state {
            0
        } else if now == new_state {
            1
        } else {
            2
        }] += 1;
        // Back to the old state, repairing whatever the kill left (e.g. a tmp set).
        sync(&old);
        assert_eq!(
            state(),
            old_state,
            "round {round}: after the repairing sync"
        );
        if ipset {
            let mut sets: Vec<String> = ns.sh("ipset list -n").lines().map(String::from).collect();
            sets.sort();
            assert_eq!(
                sets,
                ["cf-allow-v4", "cf-allow-v6"],
                "round {round}: only the two live sets remain"
            );
        }
    }
    eprintln!(
        "killed syncs: {} left the old state, {} the new, {} in between (one family old and one new; with ipset, a set part-way through its update)",
        outcomes[0], outcomes[1], outcomes[2]
    );
}

/// Whether `now` is a state an in-place update from `old` to `new` passes through:
/// additions first, then deletions.
fn in_place_step(old: &[String], new: &[String], now: &[String]) -> Result<(), String> {
    use std::collections::BTreeSet;
    let (old, new, now): (BTreeSet<_>, BTreeSet<_>, BTreeSet<_>) = (
        old.iter().collect(),
        new.iter().collect(),
        now.iter().collect(),
    );
    if let Some(missing) = old.intersection(&new).find(|m| !now.contains(*m)) {
        return Err(format!("{missing} is in both lists but missing"));
    }
    if let Some(stray) = now.iter().find(|m| !old.contains(*m) && !new.contains(*m)) {
        return Err(format!("{stray} is in neither list"));
    }
    let deleting = old.difference(&new).any(|m| !now.contains(*m));
    let adds_done = new.difference(&old).all(|m| now.contains(*m));
    if deleting && !adds_done {
        return Err("a member was deleted before every addition was made".to_string());
    }
    Ok(())
}

/// Waits until no process of the group `pgid` is left running (a killed child may still be
/// finishing the syscall it was in), so the state read next is final. Zombies count as gone.
fn wait_for_group_exit(pgid: u32, limit: Duration) {
    let start = std::time::Instant::now();
    while group_is_running(pgid) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a process of the group `pgid` exists that is not a zombie (from `/proc/*/stat`).
fn group_is_running(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // After "pid (comm)": state ppid pgrp …
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z"
    })
}

/// Waits until the process `pid` has a child running an `… restore` program (or exits).
fn wait_for_restore_child(pid: u32, limit: Duration) {
    let start = std::time::Instant::now();
    let children = format!("/proc/{pid}/task/{pid}/children");
    while start.elapsed() < limit {
        let Ok(list) = std::fs::read_to_string(&children) else {
            return;
        };
        for child in list.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("restore") {
                return;
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn iptables_killed_sync_is_old_or_new_nft() {
    if !ready("iptables_killed_sync_is_old_or_new_nft") {
        return;
    }
    killed_sync_is_old_or_new("nft", false);
}

#[test]
fn iptables_killed_sync_is_old_or_new_legacy() {
    if !ready("iptables_killed_sync_is_old_or_new_legacy") {
        return;
    }
    killed_sync_is_old_or_new("legacy", false);
}

#[test]
fn iptables_killed_sync_is_old_or_new_ipset() {
    if !ready("iptables_killed_sync_is_old_or_new_ipset") {
        return;
    }
    killed_sync_is_old_or_new("nft", true);
}

#[test]
fn iptables_missing_programs_are_one_clear_error() {
    if !ready("iptables_missing_programs_are_one_clear_error") {
        return;
    }
    let ns = Netns::new("e2e-ipt-missing");
    let env = Env::new(&config("nft", ""));
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8:1::/48"]);
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).expect("empty dir");
    // A private mount namespace where /usr/sbin (and so /sbin) is empty.
    let script = format!(
        "mount --bind {} /usr/sbin && exec {BIN} --config {} sync --backend iptables --source {feed}",
        empty.display(),
        env.config().display()
    );
    let before = saves(&ns, "nft");
    let run = Run::of(
        ns.command("unshare")
            .args(["--mount", "sh", "-c", &script])
            .output()
            .expect("run"),
    );
    run.expect_code(1);
    let line = run.error_line();
    assert!(
        line.ends_with(": iptables-nft-save not found: install the iptables package"),
        "{line}"
    );
    assert_eq!(saves(&ns, "nft"), before);
}

#[test]
fn iptables_held_lock_is_one_clear_error() {
    if !ready("iptables_held_lock_is_one_clear_error") {
        return;
    }
    let ns = Netns::new("e2e-ipt-lock");
    let env = Env::new(&config("legacy", "  lock_wait_secs: 1\n"));
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8:1::/48"]);
    let lock = env.path("xtables.lock");
    std::fs::write(&lock, "").expect("lock file");
    let holder = std::fs::File::open(&lock).expect("open lock");
    cf_allow_testkit::flock_exclusive(&holder);
    let before = saves(&ns, "legacy");
    let run = Run::of(
        env.cmd(
            Some(&ns),
            &["sync", "--backend", "iptables", "--source", &feed],
        )
        .env("XTABLES_LOCKFILE", &lock)
        .output()
        .expect("run"),
    );
    run.expect_code(1);
    let line = run.error_line();
    assert!(
        line.ends_with(": another process holds the xtables lock (waited 1 s)"),
        "{line}"
    );
    assert_eq!(saves(&ns, "legacy"), before);
    drop(holder);
    env.cmd(
        Some(&ns),
        &["sync", "--backend", "iptables", "--source", &feed],
    )
    .env("XTABLES_LOCKFILE", &lock)
    .output()
    .map(Run::of)
    .expect("run")
    .expect_code(0);
}

#[test]
fn iptables_missing_docker_user_is_one_warning_per_family() {
    if !ready("iptables_missing_docker_user_is_one_warning_per_family") {
        return;
    }
    let ns = Netns::new("e2e-ipt-nodocker");
    let env = Env::new(&config("nft", "  hooks: [INPUT, DOCKER-USER]\n"));
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8:1::/48"]);
    let run = env.run(
        Some(&ns),
        &["sync", "--backend", "iptables", "--source", &feed],
    );
    run.expect_code(0);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("WARN "))
        .collect();
    let skipped = "the DOCKER-USER chain does not exist (is Docker running?); skipped that hook, \
                   the other hooks are kept in sync";
    assert_eq!(
        warnings,
        [
            format!("iptables: {skipped}"),
            format!("ip6tables: {skipped}")
        ],
        "{}",
        run.stderr
    );
    // INPUT is still kept in sync in both families.
    for v6 in [false, true] {
        assert!(
            save(&ns, "nft", v6).contains("-A INPUT -j CF-ALLOW"),
            "{}",
            save(&ns, "nft", v6)
        );
    }
}

#[test]
fn iptables_config_errors_are_one_line() {
    if !ready("iptables_config_errors_are_one_line") {
        return;
    }
    let ns = Netns::new("e2e-ipt-config");
    let env = Env::new(&config("nft", "  chain: INPUT\n"));
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8:1::/48"]);
    let run = env.run(
        Some(&ns),
        &["sync", "--backend", "iptables", "--source", &feed],
    );
    run.expect_code(1);
    assert!(
        run.error_line()
            .contains("iptables.chain `INPUT` is a built-in chain"),
        "{}",
        run.stderr
    );
    for variant in VARIANTS {
        assert!(!save(&ns, variant, false).contains("CF-ALLOW"));
    }
}

/// The binary: an admin's chain CF-ALLOW, and an admin's ipset cf-allow-v4 in ipset mode,
/// are refused by sync with exit 1 and one line naming the object; sync and remove leave
/// them byte-identical.
#[test]
fn iptables_foreign_chain_and_set_with_cf_allows_names_are_refused() {
    if !ready("iptables_foreign_chain_and_set_with_cf_allows_names_are_refused") {
        return;
    }
    for variant in VARIANTS {
        let ns = Netns::new("e2e-ipt-foreign");
        let env = Env::new(&config(variant, ""));
        let feed = env.cloudflare_feed();
        let sync = ["sync", "--backend", "iptables", "--source", &feed];
        let remove = ["remove", "--backend", "iptables"];
        let t = format!("iptables-{variant}");
        ns.sh(&format!(
            "{t} -N CF-ALLOW && {t} -A CF-ALLOW -s 198.51.100.7/32 -j DROP && {t} -A INPUT -j CF-ALLOW"
        ));
        let before = saves(&ns, variant);
        let run = env.run(Some(&ns), &sync);
        run.expect_code(1);
        assert!(
            run.error_line()
                .contains("chain CF-ALLOW exists but was not created by cf-allow"),
            "{}",
            run.stderr
        );
        assert_eq!(saves(&ns, variant), before);
        env.run(Some(&ns), &remove).expect_code(0);
        assert_eq!(saves(&ns, variant), before);
        ns.sh(&format!(
            "{t} -F CF-ALLOW && {t} -D INPUT -j CF-ALLOW && {t} -X CF-ALLOW"
        ));

        env.write_config(&config(variant, "  ipset: true\n"));
        ns.sh("ipset create cf-allow-v4 hash:net family inet && ipset add cf-allow-v4 198.51.100.0/24");
        let before = (saves(&ns, variant), ns.sh("ipset save"));
        let run = env.run(Some(&ns), &sync);
        run.expect_code(1);
        assert!(
            run.error_line()
                .contains("the ipset cf-allow-v4 exists but was not created by cf-allow"),
            "{}",
            run.stderr
        );
        assert_eq!((saves(&ns, variant), ns.sh("ipset save")), before);
        env.run(Some(&ns), &remove).expect_code(0);
        assert_eq!((saves(&ns, variant), ns.sh("ipset save")), before);
    }
}
