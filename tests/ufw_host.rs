//! End-to-end: cf-allow on a ufw host (the real ufw in `../shared/ufw/ufw-sandbox --client`:
//! iptables-nft `ip filter INPUT` with policy DROP). Detection must pick the backend that lets
//! the client in (ufw, whose rules survive `ufw reload`), and the nftables backend, which
//! cannot work there, must exit 3 with a fix that cf-allow accepts — checked by applying it.

mod common;
mod sandbox;

use sandbox::{Cfa, Kind, CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};

#[test]
fn ufw_host_detection_picks_a_backend_that_lets_the_client_in_and_survives_reload() {
    if !Kind::Ufw
        .ready("ufw_host_detection_picks_a_backend_that_lets_the_client_in_and_survives_reload")
    {
        return;
    }
    let env = sandbox::client_env("ports: [443]\n");
    let s = sandbox::run(
        Kind::Ufw,
        env.dir.path(),
        &[],
        &format!(
            r#"
listen 443
section connect_before; connect {CLIENT_V4} {SERVER_V4} 443
section sync; cfa sync --json
section connect_after; connect {CLIENT_V4} {SERVER_V4} 443
section connect_after_v6; connect {CLIENT_V6} {SERVER_V6} 443
ufw reload >/dev/null
section connect_reload; connect {CLIENT_V4} {SERVER_V4} 443
section status; cfa status --json --exit-code
section again; cfa sync --json --exit-code
"#
        ),
    );
    assert!(s.section("connect_before").starts_with("blocked"), "{s:#?}");
    let sync = Cfa::of(&s, "sync");
    assert_eq!(sync.code, 0, "{sync:#?}");
    let doc = sync.json();
    // ufw is active: detection picks the ufw backend (its rules show in `ufw status`).
    assert_eq!(doc["backend"], "ufw", "{doc:#}");
    assert_eq!(doc["changed"], true);
    let reach = &doc["reachability"];
    assert_eq!(reach["reachable"], true, "{reach:#}");
    assert_eq!(reach["checked"]["ranges"], 24);
    assert_eq!(reach["checked"]["ports"], serde_json::json!([443]));
    assert_eq!(reach["blocked"], serde_json::json!([]));
    assert_eq!(reach["unknown"], serde_json::json!([]));
    // The verdict equals the real connect, before and after `ufw reload`.
    assert_eq!(s.section("connect_after").trim(), "connected", "{s:#?}");
    assert_eq!(s.section("connect_after_v6").trim(), "connected", "{s:#?}");
    assert_eq!(s.section("connect_reload").trim(), "connected", "{s:#?}");
    let status = Cfa::of(&s, "status");
    assert_eq!(status.code, 0, "{status:#?}");
    assert_eq!(status.json()["reachability"]["reachable"], true);
    let again = Cfa::of(&s, "again");
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(again.json()["changed"], false);
}

#[test]
fn ufw_host_nftables_backend_exits_3_and_its_fix_works() {
    if !Kind::Ufw.ready("ufw_host_nftables_backend_exits_3_and_its_fix_works") {
        return;
    }
    let env = sandbox::client_env("backend: nftables\nports: [443]\n");
    let ufw = sandbox::client_config(&env, "backend: ufw\nports: [443]\n");
    std::fs::write(
        env.path("ufw.yaml"),
        format!("state_dir: {}\n{ufw}", env.state_dir().display()),
    )
    .expect("second config");
    let s = sandbox::run(
        Kind::Ufw,
        env.dir.path(),
        &[],
        &format!(
            r#"
listen 443
section nft_sync; cfa sync --json
section connect_nft; connect {CLIENT_V4} {SERVER_V4} 443
section status; cfa status --exit-code
cp "$W/ufw.yaml" "$W/config.yaml"
section ufw_sync; cfa sync --json
section connect_ufw; connect {CLIENT_V4} {SERVER_V4} 443
"#
        ),
    );
    let nft = Cfa::of(&s, "nft_sync");
    assert_eq!(nft.code, 3, "{nft:#?}");
    let reach = &nft.json()["reachability"];
    assert_eq!(reach["reachable"], false);
    let blocked = reach["blocked"].as_array().expect("blocked");
    assert!(!blocked.is_empty(), "{reach:#}");
    for f in blocked {
        assert_eq!(f["by"]["layer"], "nftables", "{f:#}");
        assert!(
            f["by"]["table"] == "ip filter" || f["by"]["table"] == "ip6 filter",
            "{f:#}"
        );
    }
    assert!(
        nft.stderr.contains("fix: set `backend: ufw`"),
        "{}",
        nft.stderr
    );
    assert!(
        nft.stderr.contains("checked: Cloudflare then gets through"),
        "{}",
        nft.stderr
    );
    assert!(s.section("connect_nft").starts_with("blocked"), "{s:#?}");
    assert_eq!(Cfa::of(&s, "status").code, 2);

    // The advice, applied: exit 0, reachable, and the client connects.
    let applied = Cfa::of(&s, "ufw_sync");
    assert_eq!(applied.code, 0, "{applied:#?}");
    assert_eq!(applied.json()["backend"], "ufw");
    assert_eq!(applied.json()["reachability"]["reachable"], true);
    assert_eq!(s.section("connect_ufw").trim(), "connected", "{s:#?}");
}
