//! End-to-end tests of `cf-allow doctor`: the real binary, the real kernel, each test in its
//! own network namespace, documentation addresses and Cloudflare's published ranges as data.

mod common;

use std::path::{Path, PathBuf};

use cf_allow_testkit::{require_programs, require_root, Netns};
use common::{Env, Run};
use serde_json::Value;

fn ready(test: &str) -> bool {
    require_root(test) && require_programs(test, &["nft", "ip", "iptables", "ipset"])
}

/// A namespace and an env whose config uses the nftables backend and a Cloudflare feed file.
fn nft_env(label: &str) -> (Netns, Env, String) {
    let ns = Netns::new(label);
    let env = Env::new("");
    let feed = env.cloudflare_feed();
    env.write_config(&format!("backend: nftables\nsources: [{feed}]\n"));
    (ns, env, feed)
}

/// `sync` from the feed, which must succeed.
fn sync(ns: &Netns, env: &Env) {
    env.run(Some(ns), &["sync"]).expect_code(0);
}

/// Listeners on 80 and 443 for both families.
fn listen_web(ns: &Netns) {
    for addr in ["0.0.0.0:80", "[::]:80", "0.0.0.0:443", "[::]:443"] {
        ns.tcp_listen(addr);
    }
}

fn doctor_json(ns: &Netns, env: &Env, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let run = env.run(Some(ns), &args);
    let json = run.json();
    (run, json)
}

/// The checks with this id.
fn checks<'a>(doc: &'a Value, id: &str) -> Vec<&'a Value> {
    doc["checks"]
        .as_array()
        .expect("checks array")
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

/// The one check with this id.
fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let found = checks(doc, id);
    assert_eq!(found.len(), 1, "expected one `{id}` check in {doc:#}");
    found[0]
}

/// `ipset save` without the remaining timeouts, which count down.
fn set_members(save: &str) -> Vec<String> {
    save.lines()
        .map(|l| match l.starts_with("add ") {
            true => l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            false => l.to_string(),
        })
        .collect()
}

/// Every file of a directory tree with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).expect("read file")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn doctor_healthy_host_is_all_ok_and_changes_nothing() {
    if !ready("doctor_healthy_host_is_all_ok_and_changes_nothing") {
        return;
    }
    let (ns, env, _) = nft_env("doc-healthy");
    sync(&ns, &env);
    listen_web(&ns);
    let ruleset = ns.sh("nft list ruleset");
    let state = snapshot(&env.state_dir());

    let (run, doc) = doctor_json(&ns, &env, &["--exit-code"]);
    run.expect_code(0);
    assert_eq!(doc["ok"], true, "{doc:#}");
    for c in doc["checks"].as_array().expect("checks") {
        assert!(
            c["status"] == "ok" || c["status"] == "skip",
            "not ok: {c}\n{doc:#}"
        );
        for key in ["id", "status", "summary", "fix"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    for id in [
        "config",
        "backend",
        "sources",
        "list",
        "firewall",
        "listen:80",
        "listen:443",
        "ipset",
        "iptables",
        "ip6tables",
        "nftables-sets",
        "docker",
    ] {
        assert_eq!(check(&doc, id)["status"], "ok", "{id}: {doc:#}");
    }
    assert_eq!(check(&doc, "csf-deny")["status"], "skip");
    assert!(checks(&doc, "backend-warning").is_empty());
    let firewall = check(&doc, "firewall")["summary"]
        .as_str()
        .expect("summary");
    assert!(firewall.contains("all 22 ranges"), "{firewall}");

    // Text report: one line per check, status first, and a summary line.
    let text = env.run(Some(&ns), &["doctor", "--offline"]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("OK    listen:443: TCP 443 is listening on"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("SKIP  sources: --offline"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("fix:"), "{}", text.stdout);
    assert!(text
        .stdout
        .lines()
        .last()
        .is_some_and(|l| l.contains("0 warnings, 0 failures")));

    assert_eq!(
        ns.sh("nft list ruleset"),
        ruleset,
        "doctor changed the ruleset"
    );
    assert_eq!(
        snapshot(&env.state_dir()),
        state,
        "doctor changed the state dir"
    );
}

#[test]
fn doctor_fails_when_nothing_listens_and_exit_code_follows_the_flag() {
    if !ready("doctor_fails_when_nothing_listens_and_exit_code_follows_the_flag") {
        return;
    }
    let (ns, env, _) = nft_env("doc-listen");
    sync(&ns, &env);
    ns.tcp_listen("127.0.0.1:80");

    let (run, doc) = doctor_json(&ns, &env, &["--exit-code"]);
    run.expect_code(2);
    assert_eq!(doc["ok"], false);
    let c443 = check(&doc, "listen:443");
    assert_eq!(c443["status"], "fail");
    assert_eq!(
        c443["summary"],
        "nothing listens on TCP 443: Cloudflare's connections are refused (Error 521/523)"
    );
    assert!(c443["fix"].as_str().is_some_and(|f| f.contains("port 443")));
    let c80 = check(&doc, "listen:80");
    assert_eq!(c80["status"], "fail");
    assert!(
        c80["summary"]
            .as_str()
            .is_some_and(|s| s.contains("listens only on 127.0.0.1")),
        "{c80}"
    );

    // Findings are not errors: exit 0 without --exit-code.
    let text = env.run(Some(&ns), &["doctor"]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("FAIL  listen:443: nothing listens on TCP 443"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("      fix: start the web server"),
        "{}",
        text.stdout
    );

    // `ports: []` means all ports: nothing particular to check.
    env.write_config(&format!(
        "backend: nftables\nports: []\nsources: [{}]\n",
        env.cloudflare_feed()
    ));
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    assert_eq!(check(&doc, "listen")["status"], "skip");
}

#[test]
fn doctor_warns_when_never_synced_or_stale_and_fails_on_missing_ranges() {
    if !ready("doctor_warns_when_never_synced_or_stale_and_fails_on_missing_ranges") {
        return;
    }
    let (ns, env, _) = nft_env("doc-list");
    listen_web(&ns);

    // Never synced: no cache, nothing on the firewall.
    let (run, doc) = doctor_json(&ns, &env, &["--offline", "--exit-code"]);
    run.expect_code(2);
    let list = check(&doc, "list");
    assert_eq!(list["status"], "warn");
    assert!(
        list["summary"]
            .as_str()
            .is_some_and(|s| s.contains("never synced")),
        "{list}"
    );
    let firewall = check(&doc, "firewall");
    assert_eq!(firewall["status"], "fail");
    assert!(
        firewall["summary"]
            .as_str()
            .is_some_and(|s| s.contains("22 of the 22") && s.contains("compiled into cf-allow")),
        "{firewall}"
    );
    assert!(
        !env.state_dir().join("last-good.json").exists(),
        "doctor wrote a cache"
    );

    // Synced, then one range deleted behind cf-allow's back.
    sync(&ns, &env);
    ns.sh("nft delete element inet cf_allow cf_v4 '{ 104.16.0.0/13 }'");
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    assert_eq!(check(&doc, "list")["status"], "ok");
    let firewall = check(&doc, "firewall");
    assert_eq!(firewall["status"], "fail");
    assert!(
        firewall["summary"]
            .as_str()
            .is_some_and(|s| s.contains("1 of the 22") && s.contains("104.16.0.0/13")),
        "{firewall}"
    );
    assert_eq!(firewall["fix"], "run `cf-allow sync`");
    sync(&ns, &env);

    // A list fetched 30 days ago: the timer is not running.
    let cache_file = env.state_dir().join("last-good.json");
    let mut cache: Value =
        serde_json::from_slice(&std::fs::read(&cache_file).expect("cache")).expect("cache json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    cache["list"]["fetched_at"] = Value::from(now - 30 * 86_400);
    std::fs::write(&cache_file, serde_json::to_vec(&cache).expect("json")).expect("write cache");
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    let list = check(&doc, "list");
    assert_eq!(list["status"], "warn");
    assert!(
        list["summary"]
            .as_str()
            .is_some_and(|s| s.contains("stale") && s.contains("30 d ago")),
        "{list}"
    );
    assert_eq!(check(&doc, "firewall")["status"], "ok");
}

#[test]
fn doctor_finds_cloudflare_in_ipsets_iptables_rules_and_csf_deny() {
    if !ready("doctor_finds_cloudflare_in_ipsets_iptables_rules_and_csf_deny") {
        return;
    }
    let (ns, env, feed) = nft_env("doc-blocked");
    sync(&ns, &env);
    listen_web(&ns);
    // fail2ban's iptables-ipset action: a set of banned addresses and a REJECT rule.
    ns.sh("ipset create f2b-sshd hash:ip timeout 600 \
           && ipset add f2b-sshd 192.0.2.7 \
           && ipset add f2b-sshd 172.70.1.2 \
           && iptables -I INPUT -p tcp -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable");
    // An allowlist set used only by ACCEPT rules is not a block list.
    ns.sh(
        "ipset create office hash:net && ipset add office 104.16.0.0/13 \
           && iptables -A INPUT -m set --match-set office src -j ACCEPT",
    );
    // A hand-written DROP and a documentation-range DROP that must not be reported.
    ns.sh("iptables -A INPUT -s 104.16.0.0/13 -j DROP && iptables -A INPUT -s 198.51.100.0/24 -j DROP");
    ns.sh("ip6tables -A INPUT -s 2606:4700::/32 -j REJECT");
    // CSF installed (its config dir), with a Cloudflare address in csf.deny.
    let csf = env.path("csf");
    std::fs::create_dir_all(&csf).expect("csf dir");
    std::fs::write(csf.join("csf.conf"), "TESTING = \"0\"\n").expect("csf.conf");
    std::fs::write(
        csf.join("csf.deny"),
        "# lfd bans\n203.0.113.9 # not Cloudflare\n162.158.1.1 # lfd: (mod_security) blocked\n",
    )
    .expect("csf.deny");
    env.write_config(&format!(
        "backend: nftables\nsources: [{feed}]\ncsf:\n  dir: {}\n",
        csf.display()
    ));
    let ruleset = ns.sh("nft list ruleset");
    let sets = ns.sh("ipset save");

    let (run, doc) = doctor_json(&ns, &env, &["--offline", "--exit-code"]);
    run.expect_code(2);
    let ipset = checks(&doc, "ipset");
    assert_eq!(ipset.len(), 1, "only f2b-sshd is a block list: {doc:#}");
    assert_eq!(ipset[0]["status"], "fail");
    let summary = ipset[0]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("ipset set f2b-sshd holds 172.70.1.2 (Cloudflare's 172.64.0.0/13)")
            && summary.contains("--match-set f2b-sshd src -j REJECT"),
        "{summary}"
    );
    assert!(ipset[0]["fix"]
        .as_str()
        .is_some_and(|f| f.starts_with("ipset del f2b-sshd 172.70.1.2;")));

    let v4 = checks(&doc, "iptables");
    assert_eq!(v4.len(), 1, "{doc:#}");
    assert_eq!(v4[0]["status"], "fail");
    assert_eq!(
        v4[0]["summary"],
        "chain INPUT drops Cloudflare's 104.16.0.0/13: `-A INPUT -s 104.16.0.0/13 -j DROP`"
    );
    assert!(v4[0]["fix"]
        .as_str()
        .is_some_and(|f| f.contains("iptables -D INPUT -s 104.16.0.0/13 -j DROP")));
    let v6 = check(&doc, "ip6tables");
    assert_eq!(v6["status"], "fail");
    assert!(
        v6["summary"]
            .as_str()
            .is_some_and(|s| s.contains("2606:4700::/32")),
        "{v6}"
    );

    let deny = check(&doc, "csf-deny");
    assert_eq!(deny["status"], "fail");
    assert!(
        deny["summary"].as_str().is_some_and(
            |s| s.contains("csf.deny line 3 blocks 162.158.1.1 (Cloudflare's 162.158.0.0/15)")
        ),
        "{deny}"
    );
    assert!(deny["fix"]
        .as_str()
        .is_some_and(|f| f.starts_with("csf -dr 162.158.1.1")));

    assert_eq!(
        ns.sh("nft list ruleset"),
        ruleset,
        "doctor changed the ruleset"
    );
    assert_eq!(
        set_members(&ns.sh("ipset save")),
        set_members(&sets),
        "doctor changed a set"
    );
}

#[test]
fn doctor_warns_about_a_foreign_nft_set_holding_cloudflare() {
    if !ready("doctor_warns_about_a_foreign_nft_set_holding_cloudflare") {
        return;
    }
    let (ns, env, _) = nft_env("doc-nftset");
    sync(&ns, &env);
    listen_web(&ns);
    ns.sh_with_input(
        "nft -f -",
        "table inet f2b-table {\n\
           set addr-set-nginx { type ipv6_addr; flags interval; elements = { 2001:db8::/48, 2a06:98c0::7 } }\n\
           set other { type ipv4_addr; elements = { 203.0.113.1 } }\n\
         }\n",
    );
    let (run, doc) = doctor_json(&ns, &env, &["--offline"]);
    run.expect_code(0);
    let sets = checks(&doc, "nftables-sets");
    assert_eq!(sets.len(), 1, "{doc:#}");
    assert_eq!(sets[0]["status"], "warn");
    let summary = sets[0]["summary"].as_str().expect("summary");
    assert!(
        summary.contains(
            "set inet f2b-table addr-set-nginx holds 2a06:98c0::7 (Cloudflare's 2a06:98c0::/29)"
        ),
        "{summary}"
    );
    assert!(sets[0]["fix"].as_str().is_some_and(
        |f| f.contains("nft delete element inet f2b-table addr-set-nginx { 2a06:98c0::7 }")
    ));
    // cf-allow's own sets hold every Cloudflare range and are never reported.
    assert!(!summary.contains("cf_allow"));
}

#[test]
fn doctor_warns_about_a_foreign_drop_policy_chain_with_the_into_hint() {
    if !ready("doctor_warns_about_a_foreign_drop_policy_chain_with_the_into_hint") {
        return;
    }
    let (ns, env, _) = nft_env("doc-policy");
    ns.sh_with_input(
        "nft -f -",
        "table inet filter {\n\
           chain input { type filter hook input priority filter; policy drop; iif \"lo\" accept; }\n\
         }\n",
    );
    // With the nftables backend named, sync applies and exits 3: Cloudflare is still dropped.
    env.run(Some(&ns), &["sync", "--backend", "nftables"])
        .expect_code(3);
    listen_web(&ns);
    let (run, doc) = doctor_json(
        &ns,
        &env,
        &["--offline", "--exit-code", "--backend", "nftables"],
    );
    run.expect_code(2);
    let warning = check(&doc, "backend-warning");
    assert_eq!(warning["status"], "warn");
    assert!(
        warning["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("nftables: chain inet filter input drops by default")),
        "{warning}"
    );
    assert!(
        warning["fix"].as_str().is_some_and(
            |f| f.contains("set nftables.into: {family: inet, table: filter, chain: input}")
        ),
        "{warning}"
    );
    assert_eq!(check(&doc, "firewall")["status"], "ok");
}

#[test]
fn doctor_warns_when_docker_ports_are_not_covered() {
    if !ready("doctor_warns_when_docker_ports_are_not_covered") {
        return;
    }
    let (ns, env, feed) = nft_env("doc-docker");
    ns.sh("iptables -N DOCKER-USER && iptables -A DOCKER-USER -j RETURN");
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    let docker = check(&doc, "docker");
    assert_eq!(docker["status"], "warn");
    assert!(
        docker["summary"]
            .as_str()
            .is_some_and(|s| s.contains("published container ports are not covered by cf-allow")),
        "{docker}"
    );

    // The iptables backend with DOCKER-USER among its hooks covers them.
    env.write_config(&format!(
        "backend: nftables\nsources: [{feed}]\niptables:\n  hooks: [INPUT, DOCKER-USER]\n"
    ));
    let (_, doc) = doctor_json(&ns, &env, &["--offline", "--backend", "iptables"]);
    assert_eq!(check(&doc, "docker")["status"], "ok", "{doc:#}");
    assert_eq!(
        check(&doc, "backend")["summary"],
        "iptables (chosen with --backend) is available"
    );
}

#[test]
fn doctor_with_a_bad_config_exits_1_with_one_error_line() {
    let env = Env::new("ports: [0]\n");
    let run = env.run(None, &["doctor", "--offline"]);
    run.expect_code(1);
    assert!(
        run.error_line().contains("port 0 is not a TCP port"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    let env = Env::new("extra_cidrs: [not-a-cidr]\n");
    let run = env.run(None, &["doctor", "--offline", "--json"]);
    run.expect_code(1);
    assert!(run.error_line().contains("not-a-cidr"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn doctor_knows_when_cf_allows_iptables_jump_comes_before_a_drop() {
    if !ready("doctor_knows_when_cf_allows_iptables_jump_comes_before_a_drop") {
        return;
    }
    jump_before_drop("doc-shadow", "iptables", "");
}

#[test]
fn doctor_judges_the_legacy_tables_that_cf_allow_drives_with_variant_legacy() {
    let test = "doctor_judges_the_legacy_tables_that_cf_allow_drives_with_variant_legacy";
    if !ready(test)
        || !require_programs(
            test,
            &[
                "iptables-legacy",
                "iptables-legacy-save",
                "iptables-legacy-restore",
                "ip6tables-legacy-save",
                "ip6tables-legacy-restore",
            ],
        )
    {
        return;
    }
    jump_before_drop(
        "doc-legacy",
        "iptables-legacy",
        "iptables: {variant: legacy}\n",
    );
}

#[test]
fn doctor_reads_legacy_tables_next_to_the_nft_ones() {
    let test = "doctor_reads_legacy_tables_next_to_the_nft_ones";
    if !ready(test)
        || !require_programs(
            test,
            &["iptables-nft", "iptables-legacy", "iptables-legacy-save"],
        )
    {
        return;
    }
    let ns = Netns::new("doc-alsolegacy");
    let env = Env::new("");
    let feed = env.cloudflare_feed();
    env.write_config(&format!(
        "backend: iptables\niptables: {{variant: nft}}\nsources: [{feed}]\n"
    ));
    sync(&ns, &env);
    listen_web(&ns);
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    assert!(checks(&doc, "iptables (legacy)").is_empty(), "{doc:#}");

    // An IPv4 drop that only iptables-legacy shows: cf-allow's nf_tables jump does not cover it.
    ns.sh("iptables-legacy -A INPUT -s 104.16.0.0/13 -j DROP");
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    let legacy = check(&doc, "iptables (legacy)");
    assert_eq!(legacy["status"], "fail", "{doc:#}");
    assert_eq!(
        legacy["summary"],
        "chain INPUT drops Cloudflare's 104.16.0.0/13: `-A INPUT -s 104.16.0.0/13 -j DROP`"
    );
    assert!(
        legacy["fix"]
            .as_str()
            .is_some_and(|f| f.contains("(iptables-legacy -D INPUT -s 104.16.0.0/13 -j DROP)")),
        "{legacy}"
    );
    assert!(
        checks(&doc, "ip6tables (legacy)").is_empty(),
        "no IPv6 legacy table: {doc:#}"
    );
    assert_eq!(check(&doc, "iptables")["status"], "ok", "{doc:#}");
}

/// With the iptables backend driving the tables `program` edits: a drop appended after
/// cf-allow's jump is only a warning (Cloudflare is accepted first), one inserted above it
/// (what fail2ban does when it starts) is a failure, and the fix names `program`.
fn jump_before_drop(label: &str, program: &str, extra_yaml: &str) {
    let ns = Netns::new(label);
    let env = Env::new("");
    let feed = env.cloudflare_feed();
    env.write_config(&format!(
        "backend: iptables\n{extra_yaml}sources: [{feed}]\n"
    ));
    sync(&ns, &env);
    listen_web(&ns);

    ns.sh(&format!("{program} -A INPUT -s 104.16.0.0/13 -j DROP"));
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    let v4 = check(&doc, "iptables");
    assert_eq!(v4["status"], "warn", "{doc:#}");
    assert!(
        v4["summary"].as_str().is_some_and(|s| s.contains(
            "cf-allow's jump at the top of INPUT accepts Cloudflare on TCP 80, 443 first"
        )),
        "{v4}"
    );
    let remove = format!("({program} -D INPUT -s 104.16.0.0/13 -j DROP)");
    assert!(
        v4["fix"].as_str().is_some_and(|f| f.contains(&remove)),
        "the fix names the program that edits the table: {v4}"
    );
    assert_eq!(check(&doc, "firewall")["status"], "ok");

    ns.sh(&format!(
        "{program} -D INPUT -s 104.16.0.0/13 -j DROP && {program} -I INPUT -s 104.16.0.0/13 -j DROP"
    ));
    let (_, doc) = doctor_json(&ns, &env, &["--offline"]);
    let v4 = check(&doc, "iptables");
    assert_eq!(v4["status"], "fail", "{doc:#}");
    assert_eq!(
        v4["summary"],
        "chain INPUT drops Cloudflare's 104.16.0.0/13: `-A INPUT -s 104.16.0.0/13 -j DROP`"
    );
    let firewall = check(&doc, "firewall");
    assert_eq!(
        firewall["status"], "warn",
        "the jump is no longer first: {firewall}"
    );
}

#[test]
fn doctor_reports_an_unavailable_backend_as_a_failure() {
    if !ready("doctor_reports_an_unavailable_backend_as_a_failure") {
        return;
    }
    let ns = Netns::new("doc-nocsf");
    let env = Env::new("");
    let feed = env.cloudflare_feed();
    let csf = env.path("no-csf");
    env.write_config(&format!(
        "sources: [{feed}]\ncsf:\n  dir: {}\n",
        csf.display()
    ));
    let (run, doc) = doctor_json(&ns, &env, &["--offline", "--backend", "csf", "--exit-code"]);
    run.expect_code(2);
    let backend = check(&doc, "backend");
    assert_eq!(backend["status"], "fail");
    assert!(
        backend["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("csf (chosen with --backend) is not available")),
        "{backend}"
    );
    let firewall = check(&doc, "firewall");
    assert_eq!(firewall["status"], "fail");
    assert!(
        firewall["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("csf: ")),
        "{firewall}"
    );
    assert_eq!(check(&doc, "csf-deny")["status"], "skip");
}
