//! The verdict cache (`state_dir/verdict-cache`): a no-op sync reuses the last verdict only
//! while nothing it depends on changed. The real binary in private network namespaces: each
//! test makes the verdict cached, then changes one thing the way a foreign program would (an
//! nft drop, the forwarding sysctl, an interface address, a route) and checks that the next
//! no-op sync sees it.

mod common;

use cf_allow_testkit::{lab, Netns};
use common::*;
use serde_json::json;

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(test, &["nft", "ip", "sysctl"])
}

const CONFIG: &str = "backend: nftables\nports: [443]\n";

const REUSED: &str = "reachability: verdict reused";
const RECORDED: &str = "reachability: verdict recorded";

fn sync(env: &Env, ns: &Netns, feed: &str) -> Run {
    env.run(Some(ns), &["-v", "sync", "--source", feed, "--json"])
}

/// A sync that changes the firewall (first run), then a no-op sync whose verdict is
/// recorded, then one that reuses it: the cache is in use.
fn cached(env: &Env, ns: &Netns, feed: &str) {
    sync(env, ns, feed).expect_code(0);
    let run = sync(env, ns, feed);
    run.expect_code(0);
    assert_eq!(run.json()["changed"], false);
    assert_eq!(run.json()["reachability"]["reachable"], true);
    let run = sync(env, ns, feed);
    run.expect_code(0);
    assert!(run.stderr.contains(REUSED), "{}", run.stderr);
}

/// The no-op sync after a foreign change: exit 3, not reused, and blocked by `table`.
fn blocked_after_change(env: &Env, ns: &Netns, feed: &str) -> serde_json::Value {
    let run = sync(env, ns, feed);
    run.expect_code(3);
    assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
    let doc = run.json();
    assert_eq!(doc["changed"], false);
    assert_eq!(doc["reachability"]["reachable"], false, "{doc:#}");
    doc["reachability"].clone()
}

#[test]
fn the_verdict_is_reused_when_nothing_changed_and_equals_a_full_read() {
    if !ready("the_verdict_is_reused_when_nothing_changed_and_equals_a_full_read") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-same", &[443]);
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    let first = sync(&env, &server, &feed);
    first.expect_code(0);
    assert!(first.stderr.contains(RECORDED), "{}", first.stderr);
    let full = first.json()["reachability"].clone();
    assert_eq!(
        full,
        json!({"reachable": true, "checked": {"ranges": 22, "ports": [443]},
               "blocked": [], "unknown": [], "exposed": [], "locked_down": false})
    );
    for _ in 0..2 {
        let run = sync(&env, &server, &feed);
        run.expect_code(0);
        assert!(run.stderr.contains(REUSED), "{}", run.stderr);
        assert!(
            !run.stderr.contains("read the host's rules"),
            "{}",
            run.stderr
        );
        assert_eq!(run.json()["reachability"], full);
    }
    // The nft binary is not run for a reused verdict: a PATH without it changes nothing.
    let ip = cf_allow_testkit::which("ip").expect("ip");
    let mut cmd = std::process::Command::new(ip);
    cmd.args(["netns", "exec", server.name(), BIN, "--config"])
        .arg(env.config())
        .args(["-v", "sync", "--source", &feed, "--json"])
        .env("PATH", env.path("no-programs"))
        .env_remove("CF_ALLOW_CONFIG");
    let run = Run::of(cmd.output().expect("run cf-allow"));
    run.expect_code(0);
    assert!(run.stderr.contains(REUSED), "{}", run.stderr);
    assert_eq!(run.json()["reachability"], full);

    // A different probe (another port) is not the cached one.
    env.write_config("backend: nftables\nports: [443, 8443]\n");
    let run = sync(&env, &server, &feed);
    run.expect_code(0);
    assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
    assert_eq!(
        run.json()["reachability"]["checked"]["ports"],
        json!([443, 8443])
    );

    // `reachability.cache: false` reads the host every time.
    env.write_config("backend: nftables\nports: [443, 8443]\nreachability: {cache: false}\n");
    let run = sync(&env, &server, &feed);
    run.expect_code(0);
    assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
    assert!(
        run.stderr.contains("read the host's rules"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_foreign_nft_drop_of_a_cloudflare_range_is_seen_by_the_next_noop_sync() {
    if !ready("a_foreign_nft_drop_of_a_cloudflare_range_is_seen_by_the_next_noop_sync") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-drop", &[443]);
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    cached(&env, &server, &feed);
    server.sh_with_input(
        "nft -f -",
        "table inet foreign {\n  chain input {\n    type filter hook input priority -10; policy accept;\n    ip saddr 173.245.48.0/20 drop\n  }\n}\n",
    );
    let reach = blocked_after_change(&env, &server, &feed);
    let blocked = reach["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 1, "{reach:#}");
    assert_eq!(blocked[0]["by"]["table"], "inet foreign");
    assert_eq!(blocked[0]["ranges"], json!(["173.245.48.0/20"]));
    // The next run reuses the blocked verdict: the same JSON, the same warning, exit 3.
    let again = sync(&env, &server, &feed);
    again.expect_code(3);
    assert!(again.stderr.contains(REUSED), "{}", again.stderr);
    assert_eq!(again.json()["reachability"], reach);
    assert!(
        again.stderr.contains("\"ip saddr 173.245.48.0/20 drop\""),
        "{}",
        again.stderr
    );
    // `status` judges the same state from the same cache.
    let status = env.run(Some(&server), &["-v", "status", "--json", "--exit-code"]);
    status.expect_code(2);
    assert!(status.stderr.contains(REUSED), "{}", status.stderr);
    assert_eq!(status.json()["reachability"], reach);
    // The drop removed: reachable again, and cached again.
    server.sh("nft delete table inet foreign");
    cached(&env, &server, &feed);
}

#[test]
fn forwarding_turned_off_under_a_dnat_is_seen_by_the_next_noop_sync() {
    if !ready("forwarding_turned_off_under_a_dnat_is_seen_by_the_next_noop_sync") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-fwd", &[443]);
    // Port 443 is DNAT'd to a "container" behind a veth, and forwarded.
    server.sh(
        "ip link add cfa-ctr type veth peer name cfa-ctr-p && ip link set cfa-ctr-p up && ip addr add 198.51.100.1/24 dev cfa-ctr && ip link set cfa-ctr up && sysctl -qw net.ipv4.ip_forward=1",
    );
    server.sh_with_input(
        "nft -f -",
        "table ip nat {\n  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    tcp dport 443 dnat to 198.51.100.2\n  }\n}\n",
    );
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    cached(&env, &server, &feed);
    // A sysctl does not change the ruleset generation.
    let before = server.sh("nft list ruleset");
    server.sh("sysctl -qw net.ipv4.ip_forward=0");
    assert_eq!(server.sh("nft list ruleset"), before);
    let reach = blocked_after_change(&env, &server, &feed);
    let blocked = reach["blocked"].as_array().expect("blocked");
    assert!(
        blocked
            .iter()
            .all(|f| f["family"] == "ipv4" && f["by"]["layer"] == "host"),
        "{reach:#}"
    );
    server.sh("sysctl -qw net.ipv4.ip_forward=1");
    cached(&env, &server, &feed);
}

#[test]
fn a_new_interface_address_or_route_is_seen_by_the_next_noop_sync() {
    if !ready("a_new_interface_address_or_route_is_seen_by_the_next_noop_sync") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-addr", &[443]);
    // A foreign chain that accepts port 443 only to the server's current addresses.
    server.sh_with_input(
        "nft -f -",
        &format!(
            "table inet foreign {{\n  chain input {{\n    type filter hook input priority -10; policy drop;\n    iif lo accept\n    ip daddr {} tcp dport 443 accept\n    ip6 daddr {} tcp dport 443 accept\n  }}\n}}\n",
            lab::SERVER_V4,
            lab::SERVER_V6
        ),
    );
    let dev = server
        .sh(&format!(
            "ip -o -4 addr show | awk '$4 == \"{}/24\" {{print $2}}'",
            lab::SERVER_V4
        ))
        .trim()
        .to_string();
    assert!(!dev.is_empty());
    // Default routes of both families out of the veth: it is the inbound interface.
    server.sh(&format!(
        "ip route add default via 192.0.2.254 dev {dev} && ip -6 route add default via 2001:db8::fe dev {dev}"
    ));
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    cached(&env, &server, &feed);
    // A second address on the inbound interface: the foreign chain drops port 443 to it.
    server.sh(&format!("ip addr add 192.0.2.5/24 dev {dev}"));
    let reach = blocked_after_change(&env, &server, &feed);
    assert!(
        reach["blocked"]
            .as_array()
            .expect("blocked")
            .iter()
            .all(|f| f["by"]["table"] == "inet foreign" && f["family"] == "ipv4"),
        "{reach:#}"
    );
    server.sh(&format!("ip addr del 192.0.2.5/24 dev {dev}"));
    cached(&env, &server, &feed);

    // Another interface, not inbound (no default route out of it): still reachable.
    server.sh(
        "ip link add cfa-up type veth peer name cfa-up-p && ip link set cfa-up-p up && ip addr add 198.51.100.1/24 dev cfa-up && ip link set cfa-up up",
    );
    cached(&env, &server, &feed);
    // A default route out of it makes it inbound too; the foreign chain drops port 443 to its
    // address.
    server.sh("ip route add default via 198.51.100.254 dev cfa-up metric 10");
    blocked_after_change(&env, &server, &feed);
}

#[test]
fn a_ruleset_with_a_timeout_set_is_never_cached() {
    if !ready("a_ruleset_with_a_timeout_set_is_never_cached") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-timeout", &[443]);
    // Elements that expire change what the rule drops without a new generation.
    server.sh_with_input(
        "nft -f -",
        "table inet banned {\n  set v4 {\n    type ipv4_addr\n    flags timeout\n    elements = { 198.51.100.9 timeout 1h }\n  }\n  chain input {\n    type filter hook input priority -10; policy accept;\n    ip saddr @v4 drop\n  }\n}\n",
    );
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    for _ in 0..3 {
        let run = sync(&env, &server, &feed);
        run.expect_code(0);
        assert_eq!(run.json()["reachability"]["reachable"], true);
        assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
        assert!(
            run.stderr
                .contains("verdict not recorded: the ruleset has sets with timeouts"),
            "{}",
            run.stderr
        );
    }
    assert!(!env.state_dir().join("verdict-cache").exists());
}

#[test]
fn a_foreign_iptables_nft_drop_is_seen_and_iptables_legacy_rules_are_never_cached() {
    if !ready("a_foreign_iptables_nft_drop_is_seen_and_iptables_legacy_rules_are_never_cached")
        || !cf_allow_testkit::require_programs(
            "a_foreign_iptables_nft_drop_is_seen_and_iptables_legacy_rules_are_never_cached",
            &["iptables-nft", "iptables-legacy"],
        )
    {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-ipt", &[443]);
    let env = Env::new(CONFIG);
    let feed = env.cloudflare_feed();
    cached(&env, &server, &feed);
    // iptables-nft commits to nf_tables: a new generation.
    server.sh("iptables-nft -I INPUT -s 173.245.48.0/20 -p tcp --dport 443 -j DROP");
    let reach = blocked_after_change(&env, &server, &feed);
    assert_eq!(reach["blocked"][0]["by"]["table"], "ip filter", "{reach:#}");
    server.sh("iptables-nft -D INPUT -s 173.245.48.0/20 -p tcp --dport 443 -j DROP");
    cached(&env, &server, &feed);
    // iptables-legacy rules have no generation id: once a legacy table is loaded, every run
    // reads the host in full, and sees a legacy drop at once.
    server.sh("iptables-legacy -A INPUT -s 198.51.100.0/24 -j DROP");
    for _ in 0..2 {
        let run = sync(&env, &server, &feed);
        run.expect_code(0);
        assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
        assert!(
            run.stderr
                .contains("not cached: iptables-legacy tables are loaded"),
            "{}",
            run.stderr
        );
    }
    server.sh("iptables-legacy -I INPUT -s 173.245.48.0/20 -j DROP");
    let reach = blocked_after_change(&env, &server, &feed);
    assert_eq!(
        reach["blocked"][0]["by"]["layer"], "iptables-legacy",
        "{reach:#}"
    );
}

const HELD: &str = "reachability: cf-allow's sets taken from";

/// The reachability JSON of a sync that exits 0 (`changed` as given) with all 22 ranges
/// getting through and `marker` in its log.
fn gets_through(run: &Run, changed: bool, marker: &str) -> serde_json::Value {
    run.expect_code(0);
    assert_eq!(run.json()["changed"], changed);
    assert!(run.stderr.contains(marker), "{}", run.stderr);
    let reach = run.json()["reachability"].clone();
    assert_eq!(reach["reachable"], true, "{reach:#}");
    assert_eq!(reach["checked"]["ranges"], 22);
    reach
}

/// The reachability JSON of a sync that exits 3 with exactly 173.245.48.0/20 and
/// 2400:cb00::/32 blocked, nothing unknown, and `marker` in its log.
fn blocks_the_two_ranges(run: &Run, marker: &str) -> serde_json::Value {
    run.expect_code(3);
    assert!(run.stderr.contains(marker), "{}", run.stderr);
    let reach = run.json()["reachability"].clone();
    let blocked: Vec<String> = reach["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .flat_map(|b| b["ranges"].as_array().cloned().unwrap_or_default())
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(blocked, ["173.245.48.0/20", "2400:cb00::/32"], "{reach:#}");
    assert_eq!(reach["unknown"], json!([]), "{reach:#}");
    reach
}

/// The reachability JSON of `status` with the generation record moved away (a directory
/// in its place, so `status` cannot record one either), so the host is read in full: every
/// set's elements from `nft -j list ruleset`. The record is put back.
fn full_read(env: &Env, ns: &Netns, code: i32) -> serde_json::Value {
    let record = env.state_dir().join("nftables-generation");
    let aside = env.state_dir().join("nftables-generation.aside");
    std::fs::rename(&record, &aside).expect("move the generation record aside");
    std::fs::create_dir(&record).expect("a directory at the record's path");
    let status = env.run(Some(ns), &["-v", "status", "--json", "--exit-code"]);
    std::fs::remove_dir(&record).expect("remove the directory");
    std::fs::rename(&aside, &record).expect("put the generation record back");
    status.expect_code(code);
    assert!(!status.stderr.contains(HELD), "{}", status.stderr);
    status.json()["reachability"].clone()
}

#[test]
fn after_its_commit_the_verdict_takes_cf_allows_sets_from_the_record_and_reads_foreign_sets() {
    if !ready(
        "after_its_commit_the_verdict_takes_cf_allows_sets_from_the_record_and_reads_foreign_sets",
    ) {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-held", &[443]);
    // Foreign sets that exist before cf-allow's commit, so its record matches the
    // generation and the verdict reads the ruleset without set elements: a set and a
    // verdict map that drop two Cloudflare ranges, and a set no rule uses.
    server.sh_with_input(
        "nft -f -",
        "table inet guard {\n  set bad { type ipv4_addr; flags interval; elements = { 173.245.48.0/20 }; }\n  map verdicts { type ipv6_addr : verdict; flags interval; elements = { 2400:cb00::/32 : drop }; }\n  set unused { type ipv4_addr; elements = { 192.0.2.7 }; }\n  chain input {\n    type filter hook input priority -10; policy accept;\n    ip saddr @bad drop\n    ip6 saddr vmap @verdicts\n  }\n}\n",
    );
    let env = Env::new("backend: nftables\nports: [443]\nreachability: {cache: false}\n");
    let feed = env.cloudflare_feed();
    let reach = blocks_the_two_ranges(&sync(&env, &server, &feed), HELD);
    // The same verdict as a read of every element.
    assert_eq!(full_read(&env, &server, 2), reach);

    // A no-op sync after a foreign commit (the drop rules gone) reads cf-allow's sets from
    // the kernel once, records them, and the verdict takes them from that record.
    server.sh("nft flush chain inet guard input");
    let reach = gets_through(&sync(&env, &server, &feed), false, HELD);
    assert_eq!(full_read(&env, &server, 0), reach);

    // cf-allow's own set emptied behind its back: the record describes another
    // generation, so `status` reads the elements from the kernel (and records what it
    // read); its verdict equals a full read's. The sync that refills the set records its
    // commit, and the verdict after it takes the refilled sets from that record.
    server.sh("nft flush set inet cf_allow cf_v4");
    let status = env.run(Some(&server), &["-v", "status", "--json", "--exit-code"]);
    status.expect_code(2);
    assert!(
        status.stderr.contains("dumping the set elements"),
        "{}",
        status.stderr
    );
    assert_eq!(full_read(&env, &server, 2), status.json()["reachability"]);
    let run = sync(&env, &server, &feed);
    run.expect_code(0);
    assert_eq!(run.json()["changed"], true);
    assert!(run.stderr.contains(HELD), "{}", run.stderr);
    assert_eq!(run.json()["reachability"], reach);
}

const HELD_IPSETS: &str = "reachability: cf-allow's ipsets taken from the sync";

/// The reachability JSON of `status` (which reads every ipset with `ipset save`).
fn status_reach(env: &Env, ns: &Netns, code: i32) -> serde_json::Value {
    let status = env.run(Some(ns), &["-v", "status", "--json", "--exit-code"]);
    status.expect_code(code);
    assert!(!status.stderr.contains(HELD_IPSETS), "{}", status.stderr);
    status.json()["reachability"].clone()
}

#[test]
fn in_ipset_mode_the_verdict_takes_cf_allows_ipsets_from_the_sync_and_saves_foreign_ones() {
    let test =
        "in_ipset_mode_the_verdict_takes_cf_allows_ipsets_from_the_sync_and_saves_foreign_ones";
    if !ready(test) || !cf_allow_testkit::require_programs(test, &["iptables", "ipset"]) {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-ipsets", &[443]);
    // INPUT drops by default: only cf-allow's ipsets let Cloudflare in, so the verdict
    // depends on their members. Foreign ipsets: two that foreign rules will drop, one that
    // no rule uses.
    server.sh("iptables -P INPUT DROP && ip6tables -P INPUT DROP \
         && ipset create guard4 hash:net && ipset add guard4 173.245.48.0/20 \
         && ipset create guard6 hash:net family inet6 && ipset add guard6 2400:cb00::/32 \
         && ipset create unused hash:ip && ipset add unused 192.0.2.7");
    let env = Env::new(
        "backend: iptables\niptables: {ipset: true}\nports: [443]\nreachability: {cache: false}\n",
    );
    let feed = env.cloudflare_feed();
    let reach = gets_through(&sync(&env, &server, &feed), true, HELD_IPSETS);
    assert_eq!(status_reach(&env, &server, 0), reach);

    // Foreign drops on the foreign sets before the filter table (raw PREROUTING, where
    // cf-allow's jump cannot come first): the no-op sync's verdict (cf-allow's sets from the
    // sync, the foreign ones saved one by one) names exactly the two ranges, as a read of
    // every set does.
    server.sh(
        "iptables -t raw -A PREROUTING -m set --match-set guard4 src -j DROP \
         && ip6tables -t raw -A PREROUTING -m set --match-set guard6 src -j DROP",
    );
    let run = sync(&env, &server, &feed);
    assert_eq!(run.json()["changed"], false);
    let reach = blocks_the_two_ranges(&run, HELD_IPSETS);
    assert_eq!(status_reach(&env, &server, 2), reach);

    // cf-allow's own set emptied behind its back: the sync refills it (a change), and the
    // verdict after it equals a full read again.
    server.sh(
        "iptables -t raw -F PREROUTING && ip6tables -t raw -F PREROUTING \
         && ipset flush cf-allow-v4",
    );
    let reach = gets_through(&sync(&env, &server, &feed), true, HELD_IPSETS);
    assert_eq!(status_reach(&env, &server, 0), reach);
}

const CARRIED: &str = "reachability: the clean verdict of generation";

/// The reachability JSON of `status` with no recorded verdict: the host read and evaluated
/// whole, over every range.
fn fresh(env: &Env, ns: &Netns, code: i32) -> serde_json::Value {
    let _ = std::fs::remove_file(env.state_dir().join("verdict-cache"));
    let status = env.run(Some(ns), &["-v", "status", "--json", "--exit-code"]);
    status.expect_code(code);
    assert!(!status.stderr.contains(REUSED), "{}", status.stderr);
    status.json()["reachability"].clone()
}

#[test]
fn after_a_change_of_its_own_set_elements_a_clean_verdict_carries_over_only_when_the_change_is_clean(
) {
    if !ready("after_a_change_of_its_own_set_elements_a_clean_verdict_carries_over_only_when_the_change_is_clean") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-carry", &[443]);
    // A foreign chain drops one Cloudflare range that the first list leaves out.
    server.sh_with_input(
        "nft -f -",
        "table inet foreign {\n  chain input {\n    type filter hook input priority -10; policy accept;\n    ip saddr 103.22.200.0/22 drop\n  }\n}\n",
    );
    let all = cf_allow_testkit::cloudflare_ranges();
    let base: Vec<&str> = all
        .iter()
        .copied()
        .filter(|r| !["103.21.244.0/22", "103.22.200.0/22"].contains(r))
        .collect();
    let with = |extra: &'static str| -> Vec<&str> {
        let mut list = base.clone();
        list.push(extra);
        list
    };
    for config in [
        CONFIG.to_owned(),
        format!("{CONFIG}nftables: {{lockdown: true}}\n"),
    ] {
        let env = Env::new(&config);
        let a = env.feed("a.txt", &base);
        let clean = env.feed("clean.txt", &with("103.21.244.0/22"));
        let dropped = env.feed("dropped.txt", &with("103.22.200.0/22"));
        // The first sync creates the table (not elements only): evaluated whole.
        let run = sync(&env, &server, &a);
        run.expect_code(0);
        assert!(!run.stderr.contains(CARRIED), "{}", run.stderr);
        assert!(run.stderr.contains(RECORDED), "{}", run.stderr);
        // +1 clean range: carried over, and the same verdict as a whole evaluation.
        let run = sync(&env, &server, &clean);
        run.expect_code(0);
        assert_eq!(run.json()["changed"], true);
        assert!(run.stderr.contains(CARRIED), "{config}: {}", run.stderr);
        let reach = run.json()["reachability"].clone();
        assert_eq!(reach["reachable"], true, "{reach:#}");
        assert_eq!(reach["checked"]["ranges"], 21);
        assert_eq!(reach, fresh(&env, &server, 0), "{config}");
        // Back to the first list (a removal; with lockdown, the removed range is an outsider
        // now, and cf-allow's drop keeps it out): carried over again.
        sync(&env, &server, &a).expect_code(0);
        let run = sync(&env, &server, &clean);
        run.expect_code(0);
        assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
        let run = sync(&env, &server, &a);
        run.expect_code(0);
        assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
        assert_eq!(
            run.json()["reachability"],
            fresh(&env, &server, 0),
            "{config}"
        );
        // A change that adds the dropped range: the carried verdict would be wrong, so the
        // whole probe is evaluated and the drop is found.
        let run = sync(&env, &server, &dropped);
        run.expect_code(3);
        assert!(!run.stderr.contains(CARRIED), "{}", run.stderr);
        let reach = run.json()["reachability"].clone();
        assert_eq!(
            reach["blocked"][0]["ranges"],
            json!(["103.22.200.0/22"]),
            "{reach:#}"
        );
        assert_eq!(reach["blocked"][0]["by"]["table"], "inet foreign");
        assert_eq!(reach, fresh(&env, &server, 2), "{config}");
        // From a verdict that was not clean nothing carries over.
        let run = sync(&env, &server, &a);
        run.expect_code(0);
        assert!(!run.stderr.contains(CARRIED), "{}", run.stderr);
        assert_eq!(run.json()["reachability"], fresh(&env, &server, 0));
        // Nor after a foreign commit in between.
        server.sh("nft add table inet other");
        let run = sync(&env, &server, &clean);
        run.expect_code(0);
        assert!(!run.stderr.contains(CARRIED), "{}", run.stderr);
        server.sh("nft delete table inet other");
        let run = sync(&env, &server, &a);
        server.sh("nft delete table inet cf_allow");
        run.expect_code(0);
        assert!(!run.stderr.contains(CARRIED), "{}", run.stderr);
    }
}

#[test]
fn a_rule_that_looks_up_cf_allows_set_by_destination_gets_the_whole_set_when_a_verdict_carries_over(
) {
    if !ready("a_rule_that_looks_up_cf_allows_set_by_destination_gets_the_whole_set_when_a_verdict_carries_over") {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-into", &[443]);
    server.sh_with_input(
        "nft -f -",
        "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n",
    );
    let env = Env::new(&format!(
        "{CONFIG}nftables:\n  into: {{family: inet, table: filter, chain: input}}\n"
    ));
    let all = cf_allow_testkit::cloudflare_ranges();
    let a = env.feed("a.txt", &all[1..]);
    let b = env.feed("b.txt", &all);
    sync(&env, &server, &a).expect_code(0);
    // The admin's rule in the same table looks cf-allow's set up by destination.
    server.sh("nft add rule inet filter input ip daddr @cf_v4 counter");
    let run = sync(&env, &server, &a);
    run.expect_code(0);
    assert!(run.stderr.contains(RECORDED), "{}", run.stderr);
    let run = sync(&env, &server, &b);
    run.expect_code(0);
    assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
    assert!(run.stderr.contains("reading them whole"), "{}", run.stderr);
    assert_eq!(run.json()["reachability"], fresh(&env, &server, 0));
    // Without such a rule the sets are held to the added ranges.
    server.sh("nft flush chain inet filter input");
    sync(&env, &server, &a).expect_code(0);
    sync(&env, &server, &a).expect_code(0);
    let run = sync(&env, &server, &b);
    run.expect_code(0);
    assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
    assert!(!run.stderr.contains("reading them whole"), "{}", run.stderr);
    assert_eq!(run.json()["reachability"], fresh(&env, &server, 0));
}

#[test]
fn in_ipset_mode_a_sync_reuses_its_verdict_unless_a_rule_matches_another_ipset() {
    let test = "in_ipset_mode_a_sync_reuses_its_verdict_unless_a_rule_matches_another_ipset";
    if !ready(test) || !cf_allow_testkit::require_programs(test, &["iptables", "ipset"]) {
        return;
    }
    let (server, _client) = lab::server_and_client("vc-ipcache", &[443]);
    // Only cf-allow's ipsets let Cloudflare in; a foreign ipset no rule matches yet.
    server.sh("iptables -P INPUT DROP && ip6tables -P INPUT DROP \
         && ipset create guard4 hash:net && ipset add guard4 173.245.48.0/20");
    let env = Env::new("backend: iptables\niptables: {ipset: true}\nports: [443]\n");
    let feed = env.cloudflare_feed();
    let run = sync(&env, &server, &feed);
    let reach = gets_through(&run, true, HELD_IPSETS);
    assert!(run.stderr.contains(RECORDED), "{}", run.stderr);
    // The next sync found the ipsets as its list: the verdict is reused, and it is what a
    // read of every ipset gives.
    let run = sync(&env, &server, &feed);
    assert_eq!(gets_through(&run, false, REUSED), reach);
    assert!(
        !run.stderr.contains("read the host's rules"),
        "{}",
        run.stderr
    );
    // `status` reads cf-allow's ipsets itself: it never takes the sync's verdict.
    let status = env.run(Some(&server), &["-v", "status", "--json", "--exit-code"]);
    status.expect_code(0);
    assert!(!status.stderr.contains(REUSED), "{}", status.stderr);
    assert_eq!(status.json()["reachability"], reach);
    // cf-allow's set emptied behind its back (no generation moves): the sync refills it in
    // place, so its sets hold its list again, as when the verdict was recorded.
    server.sh("ipset flush cf-allow-v4");
    let run = sync(&env, &server, &feed);
    assert_eq!(gets_through(&run, true, REUSED), reach);
    assert!(
        run.stderr.contains("updated the sets in place"),
        "{}",
        run.stderr
    );
    assert_eq!(status_reach(&env, &server, 0), reach);
    let run = sync(&env, &server, &feed);
    assert_eq!(gets_through(&run, false, REUSED), reach);
    // One range fewer, then back: the ipsets change in place and nothing else does, so the
    // clean verdict carries over, evaluated on the changed range only, and equals a read
    // of every ipset.
    let all = cf_allow_testkit::cloudflare_ranges();
    let fewer = env.feed("fewer.txt", &all[1..]);
    for (feed, ranges) in [(&fewer, 21), (&feed, 22)] {
        let run = sync(&env, &server, feed);
        run.expect_code(0);
        assert_eq!(run.json()["changed"], true);
        assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
        assert!(!run.stderr.contains("taking them whole"), "{}", run.stderr);
        let carried = run.json()["reachability"].clone();
        assert_eq!(carried["checked"]["ranges"], ranges);
        assert_eq!(status_reach(&env, &server, 0), carried);
    }
    // A rule that matches cf-allow's ipset by destination: the carried verdict takes the
    // ipsets whole (the rule moves the generation, so one sync records the verdict first).
    server.sh("iptables -I INPUT -m set --match-set cf-allow-v4 dst -j ACCEPT");
    sync(&env, &server, &feed).expect_code(0);
    let run = sync(&env, &server, &fewer);
    run.expect_code(0);
    assert!(run.stderr.contains(CARRIED), "{}", run.stderr);
    assert!(run.stderr.contains("taking them whole"), "{}", run.stderr);
    assert_eq!(status_reach(&env, &server, 0), run.json()["reachability"]);
    server.sh("iptables -D INPUT -m set --match-set cf-allow-v4 dst -j ACCEPT");
    // A rule that matches a foreign ipset: that ipset can change without a new generation,
    // so the verdict is evaluated on every run, never recorded.
    server.sh("iptables -t raw -A PREROUTING -m set --match-set guard4 src -j DROP");
    for _ in 0..2 {
        let run = sync(&env, &server, &feed);
        run.expect_code(3);
        assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
        assert!(
            run.stderr
                .contains("verdict not recorded: iptables rules match the ipset guard4"),
            "{}",
            run.stderr
        );
        let blocked = &run.json()["reachability"]["blocked"];
        assert_eq!(
            blocked[0]["ranges"],
            json!(["173.245.48.0/20"]),
            "{blocked:#}"
        );
    }
    // Its members change: the next sync sees it.
    server.sh("ipset flush guard4");
    let run = sync(&env, &server, &feed);
    gets_through(&run, false, HELD_IPSETS);
    assert!(!run.stderr.contains(REUSED), "{}", run.stderr);
}
