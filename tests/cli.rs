//! End-to-end tests of the CLI contract: exit codes, one-line errors, JSON documents, the
//! lock, the shrink guard. Runs the real binary; firewall runs happen inside a private
//! network namespace with the nftables backend.

mod common;

use cf_allow_testkit::{
    api_json, require_root, Netns, Reply, Server, CLOUDFLARE_V4, CLOUDFLARE_V6,
};
use common::{Env, Run, BIN};

fn run_plain(args: &[&str]) -> Run {
    Run::of(
        std::process::Command::new(BIN)
            .args(args)
            .env_remove("CF_ALLOW_CONFIG")
            .output()
            .expect("run cf-allow"),
    )
}

fn cloudflare_server() -> Server {
    let body = api_json(
        &CLOUDFLARE_V4,
        &CLOUDFLARE_V6,
        "38f79d050aa027e3be3865e495dcc9bc",
    );
    Server::start(move |_| Reply::ok("application/json", body.clone()))
}

fn sorted_cloudflare() -> String {
    let mut v4: Vec<ipnet::Ipv4Net> = CLOUDFLARE_V4
        .iter()
        .map(|s| s.parse().expect("v4"))
        .collect();
    let mut v6: Vec<ipnet::Ipv6Net> = CLOUDFLARE_V6
        .iter()
        .map(|s| s.parse().expect("v6"))
        .collect();
    v4.sort();
    v6.sort();
    v4.iter()
        .map(|n| n.to_string())
        .chain(v6.iter().map(|n| n.to_string()))
        .map(|s| s + "\n")
        .collect()
}

#[test]
fn usage_errors_exit_64() {
    run_plain(&["sync", "--no-such-flag"]).expect_code(64);
    run_plain(&["sync", "--backend", "pf"]).expect_code(64);
    run_plain(&["frobnicate"]).expect_code(64);
    let help = run_plain(&["--help"]);
    help.expect_code(0);
    assert!(help.stdout.contains("sync"), "{}", help.stdout);
    run_plain(&["--version"]).expect_code(0);
}

#[test]
fn missing_explicit_config_is_an_error_naming_the_file() {
    let run = run_plain(&["--config", "/nonexistent/cf.yaml", "ranges", "--offline"]);
    run.expect_code(1);
    let line = run.error_line();
    assert!(line.contains("/nonexistent/cf.yaml"), "{line}");
}

#[test]
fn config_typo_names_key_and_line() {
    let env = Env::new("ports: [443]\nguard:\n  max_shrink: 10\n");
    let run = env.run(None, &["ranges", "--offline"]);
    run.expect_code(1);
    let line = run.error_line();
    assert!(line.contains("unknown field `max_shrink`"), "{line}");
    assert!(line.contains("line 4"), "{line}"); // line 1 is the state_dir the test adds
    assert!(line.contains("config.yaml"), "{line}");
}

#[test]
fn ranges_prints_the_fetched_list_sorted() {
    let server = cloudflare_server();
    let env = Env::new("");
    let run = env.run(None, &["ranges", "--source", &server.url("/client/v4/ips")]);
    run.expect_code(0);
    assert_eq!(run.stdout, sorted_cloudflare());
    assert_eq!(run.stdout.lines().filter(|l| !l.contains(':')).count(), 15);
    assert_eq!(run.stdout.lines().filter(|l| l.contains(':')).count(), 7);
}

#[test]
fn ranges_json_reports_the_list_and_origin() {
    let server = cloudflare_server();
    let env = Env::new("");
    let json = env
        .run(None, &["ranges", "--json", "--source", &server.url("/ips")])
        .expect_code(0)
        .json();
    assert_eq!(json["ranges"]["ipv4"].as_array().map(Vec::len), Some(15));
    assert_eq!(json["ranges"]["ipv6"].as_array().map(Vec::len), Some(7));
    assert_eq!(json["list"]["origin"], "network");
    assert_eq!(json["list"]["etag"], "38f79d050aa027e3be3865e495dcc9bc");
    assert_eq!(json["list"]["source"], server.url("/ips"));
}

#[test]
fn offline_uses_the_compiled_in_list_with_a_warning() {
    let env = Env::new("");
    let run = env.run(None, &["ranges", "--offline"]);
    run.expect_code(0);
    assert_eq!(run.stdout, sorted_cloudflare());
    assert!(
        run.stderr
            .contains("offline; using the list compiled into cf-allow"),
        "{}",
        run.stderr
    );
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr() {
    let env = Env::new("");
    let run = env.run(None, &["--log-format", "json", "ranges", "--offline"]);
    run.expect_code(0);
    assert_eq!(run.stdout, sorted_cloudflare());
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().any(|l| l["level"] == "WARN"
        && l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("compiled into cf-allow"))));
}

#[test]
fn an_html_page_is_refused_with_one_line() {
    let server = Server::start(|_| Reply::ok("text/html", "<html><body>Oops</body></html>"));
    let env = Env::new("");
    let url = server.url("/ips");
    let run = env.run(None, &["ranges", "--source", &url]);
    run.expect_code(1);
    let line = run.error_line();
    assert!(line.contains(&url) && line.contains("HTML"), "{line}");
    assert!(run.stdout.is_empty());
}

#[test]
fn a_bad_source_flag_is_refused() {
    let env = Env::new("");
    let run = env.run(None, &["ranges", "--source", "ftp://example.invalid/ips"]);
    run.expect_code(1);
    assert!(run.error_line().contains("ftp://example.invalid/ips"));
}

#[test]
fn check_config_accepts_defaults_and_rejects_bad_extra_cidrs() {
    let env = Env::new("extra_cidrs: [203.0.113.7/24]\n");
    let run = env.run(None, &["check-config"]);
    run.expect_code(1);
    assert!(
        run.error_line().contains("203.0.113.7/24"),
        "{}",
        run.stderr
    );
    // Reserved ranges are the admin's own choice in extra_cidrs (issue 13 item 14)...
    env.write_config("extra_cidrs: [203.0.113.0/24]\n");
    env.run(None, &["check-config"]).expect_code(0);
    // ...but never a /0-like width.
    env.write_config("extra_cidrs: [0.0.0.0/1]\nguard:\n  allow_reserved: true\n");
    env.run(None, &["check-config"]).expect_code(1);
}

#[test]
fn completions_and_man_page_are_generated() {
    let bash = run_plain(&["completions", "bash"]);
    bash.expect_code(0);
    assert!(bash.stdout.contains("cf-allow") && bash.stdout.contains("--dry-run"));
    let man = run_plain(&["man"]);
    man.expect_code(0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH"),
        "{}",
        &man.stdout[..80.min(man.stdout.len())]
    );
}

/// A sync environment inside a fresh namespace, nftables backend, feed from a file.
fn nft_env(test: &str) -> Option<(Netns, Env, String)> {
    if !require_root(test) {
        return None;
    }
    let ns = Netns::new("cli");
    let env = Env::new("backend: nftables\n");
    let feed = env.cloudflare_feed();
    Some((ns, env, feed))
}

#[test]
fn sync_json_exit_codes_and_dry_run() {
    let Some((ns, env, feed)) = nft_env("sync_json_exit_codes_and_dry_run") else {
        return;
    };
    let before = ns.sh("nft list ruleset");

    // Dry run: reports the plan, exit 2 with --exit-code, changes nothing.
    let dry = env.run(
        Some(&ns),
        &[
            "sync",
            "--source",
            &feed,
            "--dry-run",
            "--json",
            "--exit-code",
        ],
    );
    dry.expect_code(2);
    let doc = dry.json();
    assert_eq!(doc["backend"], "nftables");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["added"]["ipv4"].as_array().map(Vec::len), Some(15));
    assert_eq!(doc["added"]["ipv6"].as_array().map(Vec::len), Some(7));
    assert_eq!(doc["removed"]["ipv4"].as_array().map(Vec::len), Some(0));
    assert_eq!(doc["unchanged"], 0);
    assert_eq!(doc["list"]["ipv4"], 15);
    assert_eq!(doc["list"]["ipv6"], 7);
    assert_eq!(doc["list"]["origin"], "network");
    assert_eq!(
        ns.sh("nft list ruleset"),
        before,
        "dry run changed the ruleset"
    );

    // Real run without --exit-code: exit 0, changed.
    let doc = env
        .run(Some(&ns), &["sync", "--source", &feed, "--json"])
        .expect_code(0)
        .json();
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["dry_run"], false);
    let after = ns.sh("nft list ruleset");
    assert!(after.contains("table inet cf_allow"), "{after}");

    // Second run: nothing to do, exit 0 even with --exit-code, ruleset byte-identical.
    let doc = env
        .run(
            Some(&ns),
            &["sync", "--source", &feed, "--json", "--exit-code"],
        )
        .expect_code(0)
        .json();
    assert_eq!(doc["changed"], false);
    assert_eq!(doc["unchanged"], 22);
    assert_eq!(ns.sh("nft list ruleset"), after);

    // Quiet: a run that changes nothing prints nothing at all.
    let quiet = env.run(Some(&ns), &["-q", "sync", "--source", &feed]);
    quiet.expect_code(0);
    assert_eq!(quiet.stdout, "");
    assert_eq!(quiet.stderr, "");

    // Status: in sync with the cached list.
    let status = env
        .run(Some(&ns), &["status", "--json", "--exit-code"])
        .expect_code(0)
        .json();
    assert_eq!(status["in_sync"], true);
    assert_eq!(status["count"], 22);
    assert_eq!(status["present"], true);

    // Remove: dry run first (nothing changes), then for real.
    let doc = env
        .run(Some(&ns), &["remove", "--dry-run", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(doc["changed"], true);
    assert_eq!(ns.sh("nft list ruleset"), after);
    env.run(Some(&ns), &["remove", "--json", "--exit-code"])
        .expect_code(2);
    assert_eq!(ns.sh("nft list ruleset"), before);
    let doc = env
        .run(Some(&ns), &["remove", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(doc["changed"], false);
}

#[test]
fn shrink_guard_refuses_then_force_applies() {
    let Some((ns, env, feed)) = nft_env("shrink_guard_refuses_then_force_applies") else {
        return;
    };
    env.run(Some(&ns), &["sync", "--source", &feed])
        .expect_code(0);
    let full = ns.sh("nft list ruleset");
    let small = env.feed(
        "small.txt",
        &[CLOUDFLARE_V4[0], CLOUDFLARE_V4[1], CLOUDFLARE_V6[0]],
    );
    let run = env.run(Some(&ns), &["sync", "--source", &small]);
    run.expect_code(1);
    let line = run.error_line();
    assert!(
        line.contains("would remove 19 of the 22") && line.contains("--force"),
        "{line}"
    );
    assert_eq!(
        ns.sh("nft list ruleset"),
        full,
        "guard failure changed the ruleset"
    );
    let doc = env
        .run(
            Some(&ns),
            &["sync", "--source", &small, "--force", "--json"],
        )
        .expect_code(0)
        .json();
    assert_eq!(doc["removed"]["ipv4"].as_array().map(Vec::len), Some(13));
    assert_eq!(doc["removed"]["ipv6"].as_array().map(Vec::len), Some(6));
}

#[test]
fn an_invalid_feed_leaves_the_firewall_and_cache_alone() {
    let Some((ns, env, feed)) = nft_env("an_invalid_feed_leaves_the_firewall_and_cache_alone")
    else {
        return;
    };
    env.run(Some(&ns), &["sync", "--source", &feed])
        .expect_code(0);
    let ruleset = ns.sh("nft list ruleset");
    let cache: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(env.state_dir())
        .expect("state dir")
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).expect("read cache")))
        .collect();
    let bad = env.feed("bad.txt", &["0.0.0.0/0", "2400:cb00::/32"]);
    let run = env.run(Some(&ns), &["sync", "--source", &bad]);
    run.expect_code(1);
    assert!(run.error_line().contains("0.0.0.0/0"), "{}", run.stderr);
    assert_eq!(ns.sh("nft list ruleset"), ruleset);
    for (path, bytes) in cache {
        assert_eq!(
            std::fs::read(&path).expect("cache"),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

#[test]
fn a_second_run_waits_for_the_lock_then_gives_up() {
    let env = Env::new("");
    std::fs::create_dir_all(env.state_dir()).expect("state dir");
    let lock = std::fs::File::create(env.state_dir().join("lock")).expect("lock file");
    lock.lock().expect("hold the lock");
    // --dry-run: even if the lock failed to hold, nothing would be changed.
    let run = env.run(
        None,
        &[
            "--wait",
            "1",
            "sync",
            "--offline",
            "--dry-run",
            "--backend",
            "nftables",
        ],
    );
    run.expect_code(1);
    assert!(
        run.error_line().contains("another cf-allow run holds"),
        "{}",
        run.stderr
    );
    drop(lock);
}

#[test]
fn status_after_an_offline_sync_compares_with_the_compiled_in_list() {
    let Some((ns, env, _feed)) =
        nft_env("status_after_an_offline_sync_compares_with_the_compiled_in_list")
    else {
        return;
    };
    let doc = env
        .run(Some(&ns), &["status", "--json", "--exit-code"])
        .expect_code(2)
        .json();
    assert_eq!(doc["present"], false);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(doc["missing"]["ipv4"].as_array().map(Vec::len), Some(15));
    env.run(Some(&ns), &["sync", "--offline"]).expect_code(0);
    let doc = env
        .run(Some(&ns), &["status", "--json", "--exit-code"])
        .expect_code(0)
        .json();
    assert_eq!(doc["in_sync"], true);
    assert_eq!(doc["last_good"]["origin"], "embedded");
    let text = env
        .run(Some(&ns), &["status"])
        .expect_code(0)
        .stdout
        .clone();
    assert!(text.contains("state:   in sync"), "{text}");
    assert!(text.contains("compiled into cf-allow"), "{text}");
}
