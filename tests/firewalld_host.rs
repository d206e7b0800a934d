//! End-to-end: cf-allow on a firewalld host (the real firewalld in
//! `../shared/firewalld/firewalld-sandbox --client`): `filter_INPUT` jumps to the zone chain
//! `filter_IN_public`, which ends in `reject with icmpx admin-prohibited` (the deciding rule
//! for a port the zone does not open), so cf-allow's own nftables table cannot let anyone in.
//! The verdict must say so (exit 3, the deciding rule named), agree with a real TCP connect
//! from the client; with no backend configured, detection picks the firewalld backend and the
//! verdict (reachable) agrees with the client's connects.

mod common;
mod sandbox;

use sandbox::{Cfa, Kind, CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};
use serde_json::Value;

/// The findings of `reachability.blocked` whose `by` is the given chain and rule.
fn findings_by<'a>(reach: &'a Value, chain: &str, rule: &str) -> Vec<&'a Value> {
    reach["blocked"]
        .as_array()
        .expect("blocked array")
        .iter()
        .filter(|f| f["by"]["chain"] == chain && f["by"]["rule"] == rule)
        .collect()
}

/// Asserts the keys of the `reachability` object and of each finding are exactly the
/// documented ones.
fn assert_exact_keys(reach: &Value) {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(reach),
        [
            "blocked",
            "checked",
            "exposed",
            "locked_down",
            "reachable",
            "unknown"
        ],
        "{reach:#}"
    );
    assert_eq!(keys(&reach["checked"]), ["ports", "ranges"]);
    let blocked = reach["blocked"].as_array().expect("blocked");
    let exposed = reach["exposed"].as_array().expect("exposed");
    for f in blocked.iter().chain(exposed) {
        assert_eq!(keys(f), ["by", "family", "ports", "ranges"], "{f:#}");
        assert_eq!(
            keys(&f["by"]),
            ["chain", "handle", "layer", "rule", "table"],
            "{f:#}"
        );
    }
    for f in reach["unknown"].as_array().expect("unknown") {
        assert_eq!(
            keys(f),
            ["by", "expr", "family", "ports", "ranges"],
            "{f:#}"
        );
    }
}

/// True when `addr` lies in one of the finding's ranges.
fn covers(finding: &Value, addr: &str) -> bool {
    let addr: std::net::IpAddr = addr.parse().expect("address");
    finding["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter_map(|r| r.as_str()?.parse::<ipnet::IpNet>().ok())
        .any(|net| net.contains(&addr))
}

#[test]
fn firewalld_host_nftables_backend_exits_3_names_the_reject_and_the_connect_fails() {
    if !Kind::Firewalld
        .ready("firewalld_host_nftables_backend_exits_3_names_the_reject_and_the_connect_fails")
    {
        return;
    }
    let env = sandbox::client_env("backend: nftables\nports: [80, 443]\n");
    let s = sandbox::run(
        Kind::Firewalld,
        env.dir.path(),
        &[],
        &format!(
            r#"
listen 443 80
section handle; nft -a list chain inet firewalld filter_IN_public | sed -n 's/.*reject with icmpx admin-prohibited # handle \([0-9]*\)/\1/p'
section connect_before; connect {CLIENT_V4} {SERVER_V4} 443
nft list ruleset > "$W/ruleset0"
section dry; cfa sync --dry-run --json
section dry_unchanged; nft list ruleset | cmp -s - "$W/ruleset0" && echo yes || echo no
section sync; cfa sync --json
section table; nft list table inet cf_allow >/dev/null && echo present
section connect_after; connect {CLIENT_V4} {SERVER_V4} 443
section connect_after_v6; connect {CLIENT_V6} {SERVER_V6} 443
section status; cfa status --json --exit-code
section status_text; cfa status
section again; cfa sync
"#
        ),
    );
    let handle: u64 = s
        .section("handle")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("handle of the reject: {s:#?}"));
    assert!(s.section("connect_before").starts_with("blocked"), "{s:#?}");

    // Dry run: exit 3 already, nothing changed.
    let dry = Cfa::of(&s, "dry");
    assert_eq!(dry.code, 3, "{dry:#?}");
    assert_eq!(dry.json()["dry_run"], true);
    assert_eq!(dry.json()["reachability"]["reachable"], false);
    assert_eq!(s.section("dry_unchanged").trim(), "yes");

    // The sync applied its table, then said that Cloudflare is still rejected.
    let sync = Cfa::of(&s, "sync");
    assert_eq!(sync.code, 3, "{sync:#?}");
    assert_eq!(s.section("table").trim(), "present");
    let doc = sync.json();
    assert_eq!(doc["changed"], true);
    let reach = &doc["reachability"];
    assert_exact_keys(reach);
    assert_eq!(reach["reachable"], false);
    assert_eq!(reach["checked"]["ranges"], 24);
    assert_eq!(reach["checked"]["ports"], serde_json::json!([80, 443]));
    let rejects = findings_by(
        reach,
        "filter_IN_public",
        "reject with icmpx admin-prohibited",
    );
    assert!(!rejects.is_empty(), "{reach:#}");
    for f in &rejects {
        assert_eq!(f["by"]["layer"], "nftables");
        assert_eq!(f["by"]["table"], "inet firewalld");
        assert_eq!(f["by"]["handle"], handle);
        assert_eq!(f["ports"], serde_json::json!([80, 443]));
    }
    // The verdict for the client's addresses equals the real connect: rejected.
    let v4: Vec<&&Value> = rejects.iter().filter(|f| covers(f, CLIENT_V4)).collect();
    assert_eq!(v4.len(), 1, "{reach:#}");
    assert!(rejects.iter().any(|f| covers(f, CLIENT_V6)), "{reach:#}");
    assert!(rejects.iter().any(|f| covers(f, "104.16.0.1")), "{reach:#}");
    assert!(s.section("connect_after").starts_with("blocked"), "{s:#?}");
    assert!(
        s.section("connect_after_v6").starts_with("blocked"),
        "{s:#?}"
    );
    // One warning line naming the rule, its handle and a fix cf-allow accepts.
    let want = format!(
        "inet firewalld filter_IN_public: \"reject with icmpx admin-prohibited\" (handle {handle}) rejects"
    );
    let lines: Vec<&str> = sync.stderr.lines().filter(|l| l.contains(&want)).collect();
    assert_eq!(lines.len(), 1, "{}", sync.stderr);
    assert!(lines[0].contains("on TCP 80, 443"), "{}", lines[0]);
    assert!(
        lines[0].contains("fix: set `backend: firewalld`"),
        "{}",
        lines[0]
    );
    assert!(
        doc["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(&want))),
        "the warning is in the JSON too: {doc:#}"
    );

    // status: the same verdict; --exit-code exits 2.
    let status = Cfa::of(&s, "status");
    assert_eq!(status.code, 2, "{status:#?}");
    let sdoc = status.json();
    assert_eq!(sdoc["in_sync"], true);
    assert_eq!(sdoc["reachability"], *reach);
    let text = Cfa::of(&s, "status_text");
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("Cloudflare is BLOCKED"), "{text:#?}");
    assert!(text.stdout.contains(&want), "{text:#?}");

    // A second sync has nothing to do and still exits 3 (exit 3 beats 0).
    let again = Cfa::of(&s, "again");
    assert_eq!(again.code, 3, "{again:#?}");
    assert!(again.stdout.contains("in sync"), "{again:#?}");
}

#[test]
fn firewalld_host_detection_picks_firewalld_and_the_verdict_equals_the_connect() {
    if !Kind::Firewalld
        .ready("firewalld_host_detection_picks_firewalld_and_the_verdict_equals_the_connect")
    {
        return;
    }
    // No `backend:`: firewalld runs, so detection must pick the firewalld backend, whose
    // rich rules are the only allowlist that outlives firewalld's reloads.
    let env = sandbox::client_env("ports: [443]\n");
    let s = sandbox::run(
        Kind::Firewalld,
        env.dir.path(),
        &[],
        &format!(
            r#"
listen 443
# An origin has default routes; without one firewalld's IPv6 reverse-path filter drops every
# source it cannot route back to (the verdict says so: see the test below).
ip route add default via {CLIENT_V4}; ip -6 route add default via {CLIENT_V6}
section connect_before; connect {CLIENT_V4} {SERVER_V4} 443
section sync; cfa sync --json
section connect_after; connect {CLIENT_V4} {SERVER_V4} 443
section connect_after_v6; connect {CLIENT_V6} {SERVER_V6} 443
firewall-cmd -q --reload
section connect_reload; connect {CLIENT_V4} {SERVER_V4} 443
"#
        ),
    );
    assert!(s.section("connect_before").starts_with("blocked"), "{s:#?}");
    let sync = Cfa::of(&s, "sync");
    assert_eq!(sync.code, 0, "{sync:#?}");
    let doc = sync.json();
    assert_eq!(doc["backend"], "firewalld", "{doc:#}");
    assert!(
        !doc["warnings"]
            .to_string()
            .contains("set `backend: firewalld`"),
        "no advice to set what is set: {doc:#}"
    );
    let reach = &doc["reachability"];
    assert_exact_keys(reach);
    assert_eq!(reach["reachable"], true, "{reach:#}");
    // The verdict equals the real connects, before and after a reload.
    for name in ["connect_after", "connect_after_v6", "connect_reload"] {
        assert_eq!(s.section(name).trim(), "connected", "{name}: {s:#?}");
    }
}
