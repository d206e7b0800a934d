//! End-to-end tests of the reachability verdict in `sync` and `status`: the real binary, the
//! real kernel, a server and a client namespace on a veth pair (documentation addresses), and
//! real TCP connects to check that the verdict says what the kernel does.

mod common;

use std::process::Command;
use std::time::Duration;

use cf_allow_testkit::docker_host::{self, DockerHost, Shape};
use cf_allow_testkit::{csf_sandbox, lab, Netns};
use common::*;
use serde_json::{json, Value};

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(
            test,
            &["nft", "ip", "iptables-nft-restore", "unshare"],
        )
}

/// Cloudflare's ranges plus the client's allowed addresses (`lab::ALLOWED_V4`/`_V6` as
/// host routes), so that a real connect can check the verdict.
fn feed(env: &Env) -> String {
    let mut ranges = cf_allow_testkit::cloudflare_ranges();
    ranges.extend(["192.0.2.10/32", "2001:db8::10/128"]);
    env.feed("feed.txt", &ranges)
}

const CONFIG: &str = "ports: [443]\nguard: {allow_reserved: true}\n";

fn connect(client: &Netns, source: &str) -> bool {
    let dest = if source.contains(':') {
        format!("[{}]:443", lab::SERVER_V6)
    } else {
        format!("{}:443", lab::SERVER_V4)
    };
    client.tcp_connect(source, &dest, Duration::from_secs(2))
}

fn sync(env: &Env, ns: &Netns, feed: &str, extra: &[&str]) -> Run {
    let mut args = vec!["sync", "--source", feed, "--json"];
    args.extend_from_slice(extra);
    env.run(Some(ns), &args)
}

fn warning_lines(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.contains("; fix: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn plain_nftables_host_detects_nftables_reachable_and_the_client_connects() {
    if !ready("plain_nftables_host_detects_nftables_reachable_and_the_client_connects") {
        return;
    }
    let (server, client) = lab::server_and_client("reach-plain", &[443]);
    let env = Env::new(CONFIG);
    let feed = feed(&env);
    let run = sync(&env, &server, &feed, &[]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["backend"], "nftables");
    assert_eq!(
        doc["reachability"],
        json!({"reachable": true, "checked": {"ranges": 24, "ports": [443]},
               "blocked": [], "unknown": [], "exposed": [], "locked_down": false})
    );
    assert!(connect(&client, lab::ALLOWED_V4));
    assert!(connect(&client, lab::ALLOWED_V6));
    let text = env.run(Some(&server), &["sync", "--source", &feed]);
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("nftables: Cloudflare gets through (24 ranges on TCP 443)"),
        "{}",
        text.stdout
    );
    let status = env.run(Some(&server), &["status", "--json", "--exit-code"]);
    status.expect_code(0);
    assert_eq!(status.json()["reachability"]["reachable"], true);
}

/// A host firewall with policy drop in `inet filter input` (SSH and ICMP only; ICMPv6 for
/// neighbour discovery).
const DROP_POLICY: &str = r#"
table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport 22 accept
	}
}
"#;

#[test]
fn foreign_drop_policy_exits_3_and_the_proven_fix_lets_the_client_in() {
    if !ready("foreign_drop_policy_exits_3_and_the_proven_fix_lets_the_client_in") {
        return;
    }
    let (server, client) = lab::server_and_client("reach-drop", &[443]);
    server.sh_with_input("nft -f -", DROP_POLICY);
    let env = Env::new(CONFIG);
    let feed = feed(&env);

    let own = sync(&env, &server, &feed, &["--backend", "nftables"]);
    own.expect_code(3);
    let reach = &own.json()["reachability"];
    assert_eq!(reach["reachable"], false);
    let blocked = reach["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 2, "one finding per family: {reach:#}");
    for f in blocked {
        assert_eq!(f["by"]["table"], "inet filter");
        assert_eq!(f["by"]["chain"], "input");
        assert_eq!(f["by"]["handle"], Value::Null);
        assert_eq!(f["ports"], json!([443]));
    }
    let v4 = blocked
        .iter()
        .find(|f| f["family"] == "ipv4")
        .expect("ipv4 finding");
    assert_eq!(v4["ranges"].as_array().map(Vec::len), Some(16));
    assert!(!connect(&client, lab::ALLOWED_V4));
    let lines = warning_lines(&own);
    assert_eq!(lines.len(), 1, "one line per deciding rule: {}", own.stderr);
    assert!(
        lines[0].contains(
            "fix: set `backend: nftables` with `nftables: {into: {family: inet, table: filter, chain: input}}`"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("checked: Cloudflare then gets through"));

    // The dry run with the fix projects the plan: exit 0 while nothing is applied yet.
    env.write_config(&format!(
        "{CONFIG}nftables:\n  into: {{family: inet, table: filter, chain: input}}\n"
    ));
    let before = server.sh("nft list ruleset");
    let dry = sync(
        &env,
        &server,
        &feed,
        &["--backend", "nftables", "--dry-run"],
    );
    dry.expect_code(0);
    assert_eq!(dry.json()["reachability"]["reachable"], true);
    assert_eq!(server.sh("nft list ruleset"), before);
    assert!(!connect(&client, lab::ALLOWED_V4));

    // Applied: exit 0, and the client connects in both families; others still do not.
    let into = sync(&env, &server, &feed, &["--backend", "nftables"]);
    into.expect_code(0);
    assert_eq!(into.json()["reachability"]["reachable"], true);
    assert!(connect(&client, lab::ALLOWED_V4));
    assert!(connect(&client, lab::ALLOWED_V6));
    assert!(!connect(&client, lab::OTHER_V4));
}

#[test]
fn one_banned_address_is_reported_as_exactly_that_host_route() {
    if !ready("one_banned_address_is_reported_as_exactly_that_host_route") {
        return;
    }
    let (server, client) = lab::server_and_client("reach-ban", &[443]);
    // A fail2ban-style blocklist: a set holding one address of an allowed range.
    server.sh_with_input(
        "nft -f -",
        r#"
table inet f2b {
	set banned { type ipv4_addr; elements = { 192.0.2.10, 104.16.3.4 } }
	chain input {
		type filter hook input priority filter - 1; policy accept;
		ip saddr @banned reject
	}
}
"#,
    );
    let env = Env::new(CONFIG);
    let feed = env.feed(
        "feed.txt",
        &["192.0.2.0/24", "104.16.0.0/13", "2001:db8::/64"],
    );
    let run = sync(&env, &server, &feed, &["--backend", "nftables"]);
    run.expect_code(3);
    let reach = &run.json()["reachability"];
    let blocked = reach["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 1, "{reach:#}");
    assert_eq!(blocked[0]["family"], "ipv4");
    assert_eq!(
        blocked[0]["ranges"],
        json!(["104.16.3.4/32", "192.0.2.10/32"])
    );
    assert_eq!(blocked[0]["by"]["table"], "inet f2b");
    assert!(
        blocked[0]["by"]["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("ip saddr @banned reject")),
        "{reach:#}"
    );
    let lines = warning_lines(&run);
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].contains("104.16.3.4/32, 192.0.2.10/32"),
        "{}",
        lines[0]
    );
    // The verdict equals the connects: the banned address fails, its neighbour connects.
    assert!(!connect(&client, lab::ALLOWED_V4));
    assert!(connect(&client, lab::OTHER_V4));
    assert!(connect(&client, lab::ALLOWED_V6));
}

/// A Docker-shaped host (testkit's `docker_host`: 443 DNAT'd to a container, Docker's real
/// iptables-nft rules) with `backend: iptables`, `lockdown: true` and the allowlist holding the
/// client's /24 and Cloudflare's ranges.
fn docker_sync(label: &str, hooks: &str) -> (DockerHost, Run, Env) {
    let host = DockerHost::new(label, Shape::Docker);
    let env = Env::new(&format!(
        "ports: [{}, {}]\nguard: {{allow_reserved: true}}\niptables:\n  hooks: {hooks}\n  lockdown: true\n",
        docker_host::LOCAL_PORT,
        docker_host::PUBLISHED_PORT
    ));
    let mut ranges = cf_allow_testkit::cloudflare_ranges();
    ranges.push("192.0.2.0/24");
    let feed = env.feed("feed.txt", &ranges);
    let run = sync(&env, &host.server, &feed, &["--backend", "iptables"]);
    (host, run, env)
}

#[test]
fn docker_lockdown_on_input_only_is_exposed_by_dockers_accept_and_the_outsider_connects() {
    if !ready(
        "docker_lockdown_on_input_only_is_exposed_by_dockers_accept_and_the_outsider_connects",
    ) {
        return;
    }
    // INPUT only: cf-allow's lockdown drop never sees the DNAT'd connections.
    let (host, run, env) = docker_sync("reach-dexp", "[INPUT]");
    run.expect_code(3);
    let reach = &run.json()["reachability"];
    // Cloudflare (and the client) get through: `reachable` stays about Cloudflare.
    assert_eq!(reach["reachable"], true, "{reach:#}");
    assert_eq!(reach["locked_down"], true, "{reach:#}");
    assert_eq!(reach["blocked"], json!([]), "{reach:#}");
    let exposed = reach["exposed"].as_array().expect("exposed");
    assert_eq!(exposed.len(), 1, "{reach:#}");
    let e = &exposed[0];
    assert_eq!(e["family"], "ipv4");
    assert_eq!(
        e["ports"],
        json!([docker_host::PUBLISHED_PORT]),
        "{reach:#}"
    );
    assert_eq!(e["by"]["table"], "ip filter", "{reach:#}");
    assert_eq!(e["by"]["chain"], "DOCKER", "{reach:#}");
    assert!(
        e["by"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("-j ACCEPT")),
        "{reach:#}"
    );
    let ranges: Vec<&str> = e["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let covers = |addr: &str| {
        let addr: std::net::IpAddr = addr.parse().expect("address");
        ranges
            .iter()
            .any(|r| r.parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&addr)))
    };
    assert!(covers(docker_host::OUTSIDER_V4), "{ranges:?}");
    assert!(!covers(docker_host::CLIENT_V4), "{ranges:?}");
    // The warning names Docker's accept and a fix cf-allow accepts (proven by projection).
    let lines = warning_lines(&run);
    assert!(
        lines.iter().any(|l| l.contains("ip filter DOCKER")
            && l.contains("although lockdown is on")
            && l.contains("hooks: [INPUT, DOCKER-USER], lockdown: true")
            && l.contains("checked")),
        "{}",
        run.stderr
    );
    // The kernel agrees: the outsider reaches the published port, not the local one.
    let [client_pub, outsider_pub, client_local, outsider_local] = host.reach();
    assert!(client_pub && outsider_pub && client_local && !outsider_local);
    // status --exit-code judges the same.
    let status = env.run(
        Some(&host.server),
        &["status", "--backend", "iptables", "--json", "--exit-code"],
    );
    status.expect_code(2);
    assert_eq!(
        status.json()["reachability"]["exposed"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn docker_lockdown_with_docker_user_exits_0_and_the_outsider_is_blocked() {
    if !ready("docker_lockdown_with_docker_user_exits_0_and_the_outsider_is_blocked") {
        return;
    }
    let (host, run, _env) = docker_sync("reach-dcov", "[INPUT, DOCKER-USER]");
    run.expect_code(0);
    let reach = &run.json()["reachability"];
    assert_eq!(reach["reachable"], true, "{reach:#}");
    assert_eq!(reach["locked_down"], true, "{reach:#}");
    assert_eq!(reach["exposed"], json!([]), "{reach:#}");
    assert_eq!(reach["unknown"], json!([]), "{reach:#}");
    // The engine read cf-allow's real CF-ALLOW-DOCKER rules (--ctorigdstport, --ctstate DNAT,
    // --ctdir ORIGINAL) and agrees with the kernel.
    let [client_pub, outsider_pub, client_local, outsider_local] = host.reach();
    assert!(client_pub && !outsider_pub && client_local && !outsider_local);
}

#[test]
fn unreadable_rules_give_unknown_with_the_reason_and_exit_3() {
    if !ready("unreadable_rules_give_unknown_with_the_reason_and_exit_3") {
        return;
    }
    let (server, _client) = lab::server_and_client("reach-nonft", &[443]);
    let env = Env::new(CONFIG);
    let feed = feed(&env);
    let nft = cf_allow_testkit::which("nft").expect("nft");
    // `nft` made unavailable in a private mount namespace only (a character device is not an
    // executable file); the nftables backend itself talks netlink and still works.
    let script = format!(
        "mount --bind /dev/null {} && exec \"$0\" \"$@\"",
        nft.display()
    );
    let out = server
        .command("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            BIN,
        ])
        .arg("--config")
        .arg(env.config())
        .args(["sync", "--backend", "nftables", "--source", &feed, "--json"])
        .output()
        .expect("run cf-allow without nft");
    let run = Run::of(out);
    run.expect_code(3);
    let reach = &run.json()["reachability"];
    assert_eq!(reach["reachable"], false);
    assert_eq!(reach["blocked"], json!([]));
    let unknown = reach["unknown"].as_array().expect("unknown");
    assert!(!unknown.is_empty(), "{reach:#}");
    for f in unknown {
        assert!(
            f["expr"].as_str().is_some_and(|e| e.contains("nft")),
            "the reason names nft: {f:#}"
        );
    }
    assert_eq!(warning_lines(&run).len(), 1, "{}", run.stderr);
    // The host's nft still works outside that mount namespace.
    assert!(Command::new(&nft)
        .arg("--version")
        .status()
        .expect("nft")
        .success());
}

#[test]
fn csf_host_verdict_after_sync() {
    if !csf_sandbox::ready("csf_host_verdict_after_sync") {
        return;
    }
    let env = Env::new("");
    let feed = env.cloudflare_feed();
    env.write_config(&format!(
        "backend: csf\nports: [80, 443]\nsources: [{feed}]\ncsf:\n  dir: /etc/csf\n  apply: live\n"
    ));
    let s = csf_sandbox::run(
        env.dir.path(),
        &[("BIN", std::ffi::OsStr::new(BIN))],
        r#"
# An inbound interface for the verdict (the sandbox has only lo).
ip link add cfa0 type veth peer name cfa1 && ip link set cfa0 up && ip link set cfa1 up
csf -r >/dev/null 2>&1
section sync; "$BIN" --config "$W/config.yaml" sync --json 2>"$W/stderr"; echo "exit=$?"
section status; "$BIN" --config "$W/config.yaml" status --json --exit-code 2>>"$W/stderr"; echo "exit=$?"
"#,
        || std::fs::read_to_string(env.path("stderr")).unwrap_or_default(),
    );
    let stderr = std::fs::read_to_string(env.path("stderr")).unwrap_or_default();
    let split = |name: &str| -> (Value, i32) {
        let text = s.section(name);
        let (doc, exit) = text.rsplit_once("exit=").expect("exit code");
        (
            serde_json::from_str(doc.trim()).unwrap_or_else(|e| panic!("{e}: {text}")),
            exit.trim().parse().expect("code"),
        )
    };
    let (doc, code) = split("sync");
    let reach = &doc["reachability"];
    // CSF's INPUT reaches ALLOWIN, which accepts Cloudflare on 80 and 443 before CSF's DROP;
    // with the shipped `IPV6 = "0"` CSF leaves ip6tables empty (policy accept).
    assert_eq!(
        *reach,
        json!({"reachable": true, "checked": {"ranges": 22, "ports": [80, 443]},
               "blocked": [], "unknown": [], "exposed": [], "locked_down": false}),
        "{stderr}"
    );
    assert_eq!(code, 0, "{stderr}");
    let (status, code) = split("status");
    assert_eq!(code, 0);
    assert_eq!(status["reachability"], *reach);
}
