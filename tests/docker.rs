//! End-to-end tests on a Docker-shaped host (testkit's `docker_host`): the real binary in the
//! server namespace, real TCP connects from a client (on the list) and an outsider (not on
//! it) to the published port 443 (DNAT'd to a container namespace) and the local port 80.

mod common;

use cf_allow_testkit::docker_host::{DockerHost, Shape};
use common::*;

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(test, &["nft", "ip", "iptables-nft-restore"])
}

/// `[client, outsider]` × `[published 443, local 80]` after a lockdown: only the client.
const LOCKED: [bool; 4] = [true, false, true, false];

/// A config with `ports: [80, 443]` (documentation addresses allowed on the list) and `extra`.
fn env(extra: &str) -> (Env, String) {
    let env = Env::new(&format!(
        "ports: [80, 443]\nguard: {{allow_reserved: true}}\n{extra}"
    ));
    let mut ranges = cf_allow_testkit::cloudflare_ranges();
    ranges.push("192.0.2.0/24");
    let feed = env.feed("list.txt", &ranges);
    (env, feed)
}

/// `sync` with `args`; the run must apply and the verdict must find Cloudflare reachable and
/// nothing exposed (exit 0).
fn sync(env: &Env, host: &DockerHost, feed: &str, args: &[&str]) -> Run {
    sync_exits(env, host, feed, args, 0)
}

/// `sync` with `args`, exiting `code` (3: applied, but the verdict found an outsider
/// reaching a locked-down published port).
fn sync_exits(env: &Env, host: &DockerHost, feed: &str, args: &[&str], code: i32) -> Run {
    let mut all = vec!["sync", "--source", feed];
    all.extend_from_slice(args);
    let run = env.run(Some(&host.server), &all);
    assert!(
        run.code == code,
        "sync failed ({}):\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

/// The plan's line about published ports.
fn note(run: &Run) -> String {
    run.stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("published container ports"))
        .unwrap_or_else(|| panic!("no published-ports line:\n{}", run.stdout))
        .to_owned()
}

#[test]
fn nftables_lockdown_covers_the_published_port_and_remove_leaves_docker_alone() {
    if !ready("nftables_lockdown_covers_the_published_port_and_remove_leaves_docker_alone") {
        return;
    }
    let host = DockerHost::new("e2e-dock-nft", Shape::Docker);
    let (env, feed) = env("nftables: {lockdown: true}\n");
    assert_eq!(
        host.reach(),
        [true; 4],
        "everyone reaches both ports before"
    );
    let docker = host.runtime_tables();

    let run = sync(&env, &host, &feed, &["--backend", "nftables"]);
    assert_eq!(
        note(&run),
        "published container ports (DNAT in ip nat) are covered by chain inet cf_allow forward (DNAT'd connections by their original port, lockdown on)"
    );
    assert_eq!(host.reach(), LOCKED);
    assert_eq!(
        host.runtime_tables(),
        docker,
        "sync changed Docker's tables"
    );

    env.run(Some(&host.server), &["remove", "--backend", "nftables"])
        .expect_code(0);
    assert_eq!(
        host.runtime_tables(),
        docker,
        "remove changed Docker's tables"
    );
    assert!(!host.server.sh("nft list tables").contains("cf_allow"));
    assert_eq!(host.reach(), [true; 4]);
}

#[test]
fn iptables_hooks_docker_user_by_itself_unless_hooks_are_set() {
    if !ready("iptables_hooks_docker_user_by_itself_unless_hooks_are_set") {
        return;
    }
    let host = DockerHost::new("e2e-dock-ipt", Shape::Docker);
    let (env, feed) = env("iptables: {lockdown: true, variant: nft}\n");
    let docker = host.runtime_tables();

    // hooks not set: DOCKER-USER is hooked automatically.
    let run = sync(&env, &host, &feed, &["--backend", "iptables"]);
    assert_eq!(
        note(&run),
        "published container ports (Docker's DOCKER-USER chain exists) are covered by the DOCKER-USER hook (chain CF-ALLOW-DOCKER; added automatically because iptables.hooks is not set)"
    );
    // Docker without IPv6 has no DOCKER-USER in ip6tables: the hook cf-allow added by
    // itself is skipped there without a warning.
    assert!(
        !run.stderr.contains("DOCKER-USER chain does not exist"),
        "{}",
        run.stderr
    );
    let save = cf_allow_testkit::iptables::filter_table(&host.server, "iptables-nft-save");
    assert_eq!(
        cf_allow_testkit::iptables::chain_rules(&save, "DOCKER-USER"),
        ["-j CF-ALLOW-DOCKER", "-j RETURN"],
        "{save}"
    );
    assert_eq!(host.reach(), LOCKED);
    env.run(Some(&host.server), &["remove", "--backend", "iptables"])
        .expect_code(0);
    assert_eq!(
        host.runtime_tables(),
        docker,
        "remove changed Docker's tables"
    );
    assert_eq!(host.reach(), [true; 4]);

    // hooks set explicitly to [INPUT]: the admin's choice stands, and the plan says what it
    // leaves open (the outsider still reaches the published port).
    env.write_config(
        "ports: [80, 443]\nguard: {allow_reserved: true}\niptables: {lockdown: true, variant: nft, hooks: [INPUT]}\n",
    );
    let run = sync_exits(&env, &host, &feed, &["--backend", "iptables"], 3);
    assert!(
        run.stderr.contains("reach TCP 443 although lockdown is on"),
        "{}",
        run.stderr
    );
    assert_eq!(
        note(&run),
        "published container ports (Docker's DOCKER-USER chain exists) are not covered: iptables.hooks does not list DOCKER-USER (add it, or leave hooks unset to have it added)"
    );
    let save = cf_allow_testkit::iptables::filter_table(&host.server, "iptables-nft-save");
    assert_eq!(
        cf_allow_testkit::iptables::chain_rules(&save, "DOCKER-USER"),
        ["-j RETURN"]
    );
    assert_eq!(host.reach(), [true, true, true, false]);
}

#[test]
fn detection_on_a_docker_host_blocks_the_outsider() {
    if !ready("detection_on_a_docker_host_blocks_the_outsider") {
        return;
    }
    let host = DockerHost::new("e2e-dock-det", Shape::Docker);
    let (env, feed) = env("nftables: {lockdown: true}\niptables: {lockdown: true}\n");
    let run = sync(&env, &host, &feed, &["--json"]);
    assert_eq!(run.json()["backend"], "nftables", "{}", run.stderr);
    assert!(host
        .server
        .sh("nft list chain inet cf_allow forward")
        .contains("ct status dnat"));
    assert_eq!(host.reach(), LOCKED);
}

#[test]
fn podman_netavark_published_port_is_locked_down_by_nftables() {
    if !ready("podman_netavark_published_port_is_locked_down_by_nftables") {
        return;
    }
    let host = DockerHost::new("e2e-podman", Shape::Netavark);
    let (env, feed) = env("nftables: {lockdown: true}\n");
    let netavark = host.runtime_tables();
    let run = sync(&env, &host, &feed, &["--backend", "nftables"]);
    assert_eq!(
        note(&run),
        "published container ports (podman: inet netavark) are covered by chain inet cf_allow forward (DNAT'd connections by their original port, lockdown on)"
    );
    assert_eq!(host.reach(), LOCKED);
    env.run(Some(&host.server), &["remove", "--backend", "nftables"])
        .expect_code(0);
    assert_eq!(host.runtime_tables(), netavark);
    assert_eq!(host.reach(), [true; 4]);
}

#[test]
fn doctor_counts_the_automatic_docker_user_hook_as_covering() {
    if !ready("doctor_counts_the_automatic_docker_user_hook_as_covering") {
        return;
    }
    let host = DockerHost::new("e2e-dock-doc", Shape::Docker);
    let doctor = |env: &Env| {
        let run = env.run(
            Some(&host.server),
            &["doctor", "--offline", "--backend", "iptables", "--json"],
        );
        run.json()["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "docker").cloned())
            .unwrap_or_else(|| panic!("no docker check:\n{}", run.stdout))
    };
    // hooks not set: sync hooks DOCKER-USER by itself, so the published port is covered, and
    // doctor's verdict is what the packets do.
    let (env, feed) = env("iptables: {lockdown: true}\n");
    sync(&env, &host, &feed, &["--backend", "iptables"]);
    assert_eq!(host.reach(), LOCKED);
    let covered = doctor(&env);
    assert_eq!(covered["status"], "ok", "{covered}");
    env.run(Some(&host.server), &["remove", "--backend", "iptables"])
        .expect_code(0);
    assert_eq!(host.reach(), [true; 4]);

    // hooks: [INPUT] written out: the outsider reaches the container, and doctor says so.
    let (input_only, feed) = self::env("iptables: {hooks: [INPUT], lockdown: true}\n");
    sync_exits(&input_only, &host, &feed, &["--backend", "iptables"], 3);
    assert_eq!(host.reach(), [true, true, true, false]);
    let open = doctor(&input_only);
    assert_eq!(open["status"], "fail", "{open}");
    assert!(
        open["summary"].as_str().is_some_and(|m| m.contains("443")),
        "{open}"
    );
}
