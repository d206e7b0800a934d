//! End-to-end tests of the reachability verdict in `sync` and `status`: the real binary, the
//! real kernel, a server and a client namespace on a veth pair (documentation addresses), and
//! real TCP connects to check that the verdict says what the kernel does.

mod common;

use std::process::Command;
use std::time::Duration;

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
               "blocked": [], "unknown": []})
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

/// What Docker leaves in iptables-nft for a container publishing port 443: the SYN to the
/// host's 443 is DNAT'd in `ip nat PREROUTING` and forwarded, not delivered locally.
const DOCKER_RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 443 -j DNAT --to-destination 172.17.0.2:443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 443 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
";

#[test]
fn docker_published_port_is_not_claimed_reachable() {
    if !ready("docker_published_port_is_not_claimed_reachable") {
        return;
    }
    let (server, client) = lab::server_and_client("reach-dock", &[443]);
    server.sh_with_input("iptables-nft-restore", DOCKER_RULES);
    let env = Env::new(&format!(
        "{CONFIG}iptables:\n  hooks: [INPUT, DOCKER-USER]\n"
    ));
    let feed = feed(&env);
    let run = sync(&env, &server, &feed, &["--backend", "iptables"]);
    // The engine does not follow DNAT'd packets into the forward path: the published port is
    // `unknown` (named: the nat PREROUTING rule), never "reachable", and the exit code is 3.
    run.expect_code(3);
    let reach = &run.json()["reachability"];
    assert_eq!(reach["reachable"], false, "{reach:#}");
    let unknown = reach["unknown"].as_array().expect("unknown");
    let v4 = unknown
        .iter()
        .find(|f| f["family"] == "ipv4")
        .unwrap_or_else(|| panic!("an ipv4 unknown: {reach:#}"));
    assert_eq!(v4["by"]["table"], "ip nat", "{reach:#}");
    assert!(v4["ports"].as_array().expect("ports").contains(&json!(443)));
    assert!(v4["expr"].is_string());
    let lines = warning_lines(&run);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ip nat") && l.contains("DOCKER-USER")),
        "{}",
        run.stderr
    );
    // And indeed nothing local answers: the SYN is DNAT'd to a container that is not there.
    assert!(!connect(&client, lab::ALLOWED_V4));
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
               "blocked": [], "unknown": []}),
        "{stderr}"
    );
    assert_eq!(code, 0, "{stderr}");
    let (status, code) = split("status");
    assert_eq!(code, 0);
    assert_eq!(status["reachability"], *reach);
}
