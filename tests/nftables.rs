//! End-to-end tests of `cf-allow` with the nftables backend: the real binary, the real kernel,
//! each test in its own network namespace, feeds from `file://` URLs in a temp dir.

mod common;

use std::time::Duration;

use cf_allow_testkit::{cloudflare_ranges, lab, nft, Netns, CLOUDFLARE_V4, CLOUDFLARE_V6};
use common::*;

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(test, &["nft", "ip", "setpriv"])
}

/// A host firewall's ruleset: its own `inet filter` table with a drop policy, named sets,
/// rules with comments, and a NAT table.
const HOST_FIREWALL: &str = r#"
table inet filter {
	set admins {
		type ipv4_addr
		flags interval
		elements = { 198.51.100.0/28 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept comment "keep sessions"
		iif "lo" accept
		ip saddr @admins tcp dport 22 accept comment "ssh from admins"
		meta l4proto { icmp, ipv6-icmp } accept
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth9" masquerade comment "uplink"
	}
}
"#;

fn load_host_firewall(ns: &Netns) {
    ns.sh_with_input("nft -f -", HOST_FIREWALL);
}

fn nft_set(ns: &Netns, table: &str, set: &str) -> Vec<String> {
    nft::set_elements(ns, "inet", table, set)
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn nft_sync_creates_the_table_and_a_second_sync_changes_nothing() {
    if !ready("nft_sync_creates_the_table_and_a_second_sync_changes_nothing") {
        return;
    }
    let ns = Netns::new("e2e-nft-sync");
    let env = Env::new("ports: [80, 443]\n");
    let feed = env.cloudflare_feed();
    let sync = ["sync", "--backend", "nftables", "--source", &feed, "--json"];

    let first = env.run(Some(&ns), &sync);
    first.expect_code(0);
    let doc = first.json();
    assert_eq!(doc["backend"], "nftables");
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["added"]["ipv4"].as_array().expect("ipv4").len(), 15);
    assert_eq!(doc["added"]["ipv6"].as_array().expect("ipv6").len(), 7);
    assert_eq!(nft_set(&ns, "cf_allow", "cf_v4"), sorted(&CLOUDFLARE_V4));
    assert_eq!(nft_set(&ns, "cf_allow", "cf_v6"), sorted(&CLOUDFLARE_V6));
    let chain = ns.sh("nft list chain inet cf_allow input");
    assert!(chain.contains("type filter hook input priority filter; policy accept;"));
    assert!(chain.contains("ip saddr @cf_v4 tcp dport { 80, 443 } accept comment \"cf-allow\""));
    assert!(chain.contains("ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment \"cf-allow\""));

    let before = ns.sh("nft list ruleset");
    let second = env.run(Some(&ns), &sync);
    second.expect_code(0);
    assert_eq!(second.json()["changed"], false);
    assert_eq!(second.json()["unchanged"], 22);
    assert_eq!(
        ns.sh("nft list ruleset"),
        before,
        "a second sync changed the ruleset"
    );
    env.run(
        Some(&ns),
        &[
            "sync",
            "--backend",
            "nftables",
            "--source",
            &feed,
            "--exit-code",
        ],
    )
    .expect_code(0);

    // A changed feed: one range removed, one added, one split in two (pieces that do not
    // merge back): exactly that delta, and only those elements change.
    let mut changed: Vec<&str> = cloudflare_ranges()
        .into_iter()
        .filter(|r| *r != "103.21.244.0/22" && *r != "104.24.0.0/14")
        .collect();
    changed.extend(["45.64.64.0/22", "104.24.0.0/15", "104.26.0.0/16"]);
    let changed_feed = env.feed("changed.txt", &changed);
    let delta = env.run(
        Some(&ns),
        &[
            "sync",
            "--backend",
            "nftables",
            "--source",
            &changed_feed,
            "--json",
        ],
    );
    delta.expect_code(0);
    let doc = delta.json();
    let list = |v: &serde_json::Value| {
        let mut l: Vec<String> = v
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s.as_str().expect("cidr").to_owned())
            .collect();
        l.sort();
        l
    };
    assert_eq!(
        list(&doc["removed"]["ipv4"]),
        sorted(&["103.21.244.0/22", "104.24.0.0/14"])
    );
    assert_eq!(
        list(&doc["added"]["ipv4"]),
        sorted(&["45.64.64.0/22", "104.24.0.0/15", "104.26.0.0/16"])
    );
    assert!(list(&doc["added"]["ipv6"]).is_empty() && list(&doc["removed"]["ipv6"]).is_empty());
    let v4: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|r| !r.contains(':'))
        .collect();
    assert_eq!(nft_set(&ns, "cf_allow", "cf_v4"), sorted(&v4));

    // status agrees; remove deletes the table.
    let status = env.run(Some(&ns), &["status", "--backend", "nftables", "--json"]);
    status.expect_code(0);
    let status = status.json();
    assert_eq!(status["present"], true);
    assert_eq!(status["in_sync"], true, "{status}");
    assert_eq!(status["count"], 23);
    assert_eq!(status["repairs"], serde_json::json!([]));
    assert_eq!(status["warnings"], serde_json::json!([]));
    // An admin deletes one of cf-allow's rules: status lists the repair, sync makes it.
    ns.sh("nft flush chain inet cf_allow input");
    let drifted = env
        .run(Some(&ns), &["status", "--backend", "nftables", "--json"])
        .json();
    assert_eq!(drifted["in_sync"], false);
    assert_eq!(
        drifted["repairs"],
        serde_json::json!([
            "add the rules to chain inet cf_allow input (TCP ports 80, 443, lockdown off)"
        ])
    );
    env.run(
        Some(&ns),
        &["sync", "--backend", "nftables", "--source", &changed_feed],
    )
    .expect_code(0);
    assert!(ns
        .sh("nft list chain inet cf_allow input")
        .contains("ip6 saddr @cf_v6 tcp dport { 80, 443 } accept comment \"cf-allow\""));
    let removed = env.run(Some(&ns), &["remove", "--backend", "nftables", "--json"]);
    removed.expect_code(0);
    assert_eq!(
        removed.json()["removed"],
        serde_json::json!(["table inet cf_allow"])
    );
    assert_eq!(ns.sh("nft list ruleset"), "");
}

#[test]
fn nft_host_firewall_stays_identical_and_into_mode_lets_cloudflare_in() {
    if !ready("nft_host_firewall_stays_identical_and_into_mode_lets_cloudflare_in") {
        return;
    }
    let (server, client) = lab::server_and_client("e2e-nft", &[443]);
    load_host_firewall(&server);
    let pristine = server.sh("nft list ruleset");
    let host_tables = |ns: &Netns| ns.sh("nft -a list table inet filter; nft -a list table ip nat");
    let pristine_tables = host_tables(&server);
    let connect =
        |source: &str, dest: &str| client.tcp_connect(source, dest, Duration::from_secs(2));

    let env = Env::new("ports: [443]\nguard: {allow_reserved: true}\n");
    let feed = env.feed(
        "list.txt",
        &["192.0.2.10/32", "203.0.113.0/24", "2001:db8::10/128"],
    );
    let sync = ["sync", "--backend", "nftables", "--source", &feed, "--json"];

    // Own-table mode on a drop-policy host: synced, but the verdict says that Cloudflare is
    // still dropped (exit 3), and the warnings say why and what to configure.
    let own = env.run(Some(&server), &sync);
    own.expect_code(3);
    let reach = &own.json()["reachability"];
    assert_eq!(reach["reachable"], false);
    assert!(
        reach["blocked"]
            .as_array()
            .expect("blocked")
            .iter()
            .all(|f| f["by"]["table"] == "inet filter" && f["by"]["chain"] == "input"),
        "{reach:#}"
    );
    assert!(
        own.stderr
            .contains("fix: set `backend: nftables` with `nftables: {into: {family: inet, table: filter, chain: input}}`"),
        "{}",
        own.stderr
    );
    let warnings = own.json()["warnings"].to_string();
    assert!(
        warnings.contains("chain inet filter input drops by default"),
        "{warnings}"
    );
    assert!(own.stderr.contains("drops by default"), "{}", own.stderr);
    let status = env.run(
        Some(&server),
        &["status", "--backend", "nftables", "--json"],
    );
    assert!(
        status.stdout.contains("drops by default"),
        "{}",
        status.stdout
    );
    assert!(!connect("192.0.2.10", "192.0.2.1:443"));
    // The host's tables are byte-identical.
    assert_eq!(host_tables(&server), pristine_tables);

    // Into mode: the sets and tagged rules go into inet filter input; the allowed source
    // connects, the other does not.
    env.write_config(
        "ports: [443]\nguard: {allow_reserved: true}\nnftables:\n  into: {family: inet, table: filter, chain: input}\n",
    );
    let into = env.run(Some(&server), &sync);
    into.expect_code(0);
    let doc = into.json();
    assert!(
        doc["warnings"].as_array().expect("warnings").is_empty(),
        "{doc}"
    );
    assert!(
        doc["repairs"]
            .to_string()
            .contains("left over from own-table mode"),
        "{doc}"
    );
    assert!(connect("192.0.2.10", "192.0.2.1:443"));
    assert!(connect("2001:db8::10", "[2001:db8::1]:443"));
    assert!(!connect("192.0.2.20", "192.0.2.1:443"));
    assert!(!connect("2001:db8::20", "[2001:db8::1]:443"));
    let again = env.run(Some(&server), &sync);
    again.expect_code(0);
    assert_eq!(again.json()["changed"], false);

    // remove: the host's ruleset is exactly as it was before cf-allow ran.
    let removed = env.run(
        Some(&server),
        &["remove", "--backend", "nftables", "--json"],
    );
    removed.expect_code(0);
    assert_eq!(
        removed.json()["removed"].as_array().expect("lines").len(),
        4
    );
    assert_eq!(server.sh("nft list ruleset"), pristine);
    assert!(!connect("192.0.2.10", "192.0.2.1:443"));
}

#[test]
fn nft_errors_are_one_line_and_change_nothing() {
    if !ready("nft_errors_are_one_line_and_change_nothing") {
        return;
    }
    let ns = Netns::new("e2e-nft-err");
    load_host_firewall(&ns);
    let env = Env::new("ports: [443]\nnftables:\n  into: {table: nosuch, chain: input}\n");
    let feed = env.cloudflare_feed();
    let sync = ["sync", "--backend", "nftables", "--source", &feed];
    let before = ns.sh("nft list ruleset");

    let missing_table = env.run(Some(&ns), &sync);
    missing_table.expect_code(1);
    assert!(
        missing_table
            .error_line()
            .contains("nftables.into names table inet nosuch, which does not exist"),
        "{}",
        missing_table.stderr
    );
    env.write_config("ports: [443]\nnftables:\n  into: {table: filter, chain: nosuch}\n");
    let missing_chain = env.run(Some(&ns), &sync);
    missing_chain.expect_code(1);
    assert!(missing_chain
        .error_line()
        .contains("names chain nosuch in table inet filter, which does not exist"));

    env.write_config(
        "ports: [443]\nnftables:\n  into: {family: ip, table: filter, chain: input}\n",
    );
    let wrong_family = env.run(Some(&ns), &sync);
    wrong_family.expect_code(1);
    assert!(wrong_family
        .error_line()
        .contains("only an inet table holds both"));

    // A table with cf-allow's name that is someone else's.
    ns.sh("nft add table inet cf_allow '{ comment \"not yours\"; }'");
    let before_collision = ns.sh("nft list ruleset");
    env.write_config("ports: [443]\n");
    let collision = env.run(Some(&ns), &sync);
    collision.expect_code(1);
    assert!(collision
        .error_line()
        .contains("table inet cf_allow exists but was not created by cf-allow"));
    assert_eq!(ns.sh("nft list ruleset"), before_collision);
    ns.sh("nft delete table inet cf_allow");

    // No CAP_NET_ADMIN.
    let mut cmd = ns.command("setpriv");
    cmd.args([
        "--bounding-set",
        "-net_admin",
        "--inh-caps",
        "-net_admin",
        BIN,
    ])
    .arg("--config")
    .arg(env.config())
    .args(sync);
    let no_cap = Run::of(cmd.output().expect("run setpriv"));
    no_cap.expect_code(1);
    assert!(
        no_cap.error_line().contains(
            "permission denied talking to the kernel (cf-allow needs root or CAP_NET_ADMIN)"
        ),
        "{}",
        no_cap.stderr
    );
    assert_eq!(ns.sh("nft list ruleset"), before);
}

/// Objects with cf-allow's names that cf-allow did not create (proven by its "cf-allow"
/// tag): sync refuses with one line naming the object, and neither sync nor remove changes
/// or deletes it.
#[test]
fn nft_foreign_objects_are_refused_and_never_deleted() {
    if !ready("nft_foreign_objects_are_refused_and_never_deleted") {
        return;
    }
    let ns = Netns::new("e2e-nft-foreign");
    let env = Env::new("ports: [443]\n");
    let feed = env.cloudflare_feed();
    let sync = ["sync", "--backend", "nftables", "--source", &feed];
    let remove = ["remove", "--backend", "nftables"];
    let status = ["status", "--backend", "nftables"];

    // An untagged empty table with cf-allow's name.
    ns.sh("nft add table inet cf_allow");
    let before = ns.sh("nft list ruleset");
    let run = env.run(Some(&ns), &sync);
    run.expect_code(1);
    assert!(
        run.error_line()
            .contains("table inet cf_allow exists but was not created by cf-allow"),
        "{}",
        run.stderr
    );
    assert_eq!(ns.sh("nft list ruleset"), before);
    env.run(Some(&ns), &remove).expect_code(0);
    assert_eq!(ns.sh("nft list ruleset"), before);
    ns.sh("nft delete table inet cf_allow");

    // An admin's chain, then an admin's set, inside cf-allow's own table.
    env.run(Some(&ns), &sync).expect_code(0);
    for (add, object, list) in [
        (
            "nft add chain inet cf_allow admin '{ type filter hook forward priority 0; policy accept; }' && nft add rule inet cf_allow admin ip saddr 198.51.100.7 counter drop",
            "chain admin",
            "nft list chain inet cf_allow admin",
        ),
        (
            "nft add set inet cf_allow admins '{ type ipv4_addr; elements = { 198.51.100.9 }; }'",
            "set admins",
            "nft list set inet cf_allow admins",
        ),
    ] {
        ns.sh(add);
        let before = ns.sh("nft list ruleset");
        let run = env.run(Some(&ns), &sync);
        run.expect_code(1);
        assert!(
            run.error_line()
                .contains(&format!("table inet cf_allow holds {object}, which cf-allow did not create")),
            "{}",
            run.stderr
        );
        assert_eq!(ns.sh("nft list ruleset"), before);
        env.run(Some(&ns), &status).expect_code(1);
        let admin = ns.sh(list);
        env.run(Some(&ns), &remove).expect_code(0);
        assert_eq!(ns.sh(list), admin, "remove changed {object}");
        assert!(
            !ns.sh("nft list ruleset").contains("cf_v4"),
            "remove kept cf-allow's own set"
        );
        ns.sh("nft delete table inet cf_allow");
        env.run(Some(&ns), &sync).expect_code(0);
    }

    // An admin's rule inserted into cf-allow's own chain.
    ns.sh("nft insert rule inet cf_allow input ip saddr 203.0.113.5 tcp dport 443 counter accept");
    let before = ns.sh("nft list ruleset");
    let run = env.run(Some(&ns), &sync);
    run.expect_code(1);
    assert!(
        run.error_line().contains("rule handle") && run.error_line().contains("in chain input"),
        "{}",
        run.stderr
    );
    assert_eq!(ns.sh("nft list ruleset"), before);
    env.run(Some(&ns), &remove).expect_code(0);
    let left = ns.sh("nft list ruleset");
    assert!(
        left.contains("ip saddr 203.0.113.5 tcp dport 443 counter packets 0 bytes 0 accept"),
        "{left}"
    );
    assert!(
        !left.contains("accept comment \"cf-allow\"") && !left.contains("cf_v4"),
        "{left}"
    );
    ns.sh("nft delete table inet cf_allow");
    assert_eq!(ns.sh("nft list ruleset"), "");
}
