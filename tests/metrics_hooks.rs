//! `metrics_file`, `on_change` and `on_failure`: the real binary in a private network
//! namespace (nftables backend), the metrics file parsed by the Prometheus project's own
//! exposition parser (`prometheus_client`, installed by `make test` into
//! target/prometheus-venv), hooks that record their stdin.

mod common;

use std::path::PathBuf;
use std::process::Command;

use cf_allow_testkit::Netns;
use common::*;
use serde_json::Value;

fn ready(test: &str) -> bool {
    cf_allow_testkit::require_root(test)
        && cf_allow_testkit::require_programs(test, &["nft", "ip", "tee", "sleep"])
        && cf_allow_testkit::require_path(test, &python())
}

/// The venv's Python, which has `prometheus_client`.
fn python() -> PathBuf {
    cf_allow_testkit::workspace_root().join("target/prometheus-venv/bin/python")
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
with open(sys.argv[1]) as f:
    for fam in text_string_to_metric_families(f.read()):
        out[fam.name] = {"type": fam.type, "help": fam.documentation,
                         "samples": [[s.labels, s.value] for s in fam.samples]}
print(json.dumps(out))
"#;

/// The metrics file as the Prometheus parser reads it: {name: {type, help, samples}}.
fn parse_metrics(path: &std::path::Path) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(PARSE)
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the file:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).expect("parser output is JSON")
}

/// The value of the sample of `name` whose labels include all of `labels`.
fn value(doc: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    doc[name]["samples"].as_array()?.iter().find_map(|s| {
        let l = &s[0];
        labels
            .iter()
            .all(|(k, v)| l[*k] == *v)
            .then(|| s[1].as_f64())
            .flatten()
    })
}

fn config(env: &Env, extra: &str) -> String {
    let metrics = env.path("textfile/cf-allow.prom");
    std::fs::create_dir_all(metrics.parent().expect("dir")).expect("mkdir");
    format!(
        "ports: [443]\nmetrics_file: {}\non_change: [tee, {}]\non_failure: [tee, {}]\n{extra}",
        metrics.display(),
        env.path("changed.json").display(),
        env.path("failed.json").display(),
    )
}

#[test]
fn metrics_are_written_after_every_run_and_parse_as_prometheus_text() {
    if !ready("metrics_are_written_after_every_run_and_parse_as_prometheus_text") {
        return;
    }
    let ns = Netns::new("e2e-metrics");
    let env = Env::new("");
    env.write_config(&config(&env, ""));
    let metrics = env.path("textfile/cf-allow.prom");
    let feed = env.cloudflare_feed();
    let sync = ["sync", "--backend", "nftables", "--source", &feed];

    env.run(Some(&ns), &sync).expect_code(0);
    let m = parse_metrics(&metrics);
    for name in [
        "cf_allow_last_run_timestamp_seconds",
        "cf_allow_last_success_timestamp_seconds",
        "cf_allow_last_run_success",
        "cf_allow_ranges",
        "cf_allow_last_run_changes",
        "cf_allow_list_age_seconds",
    ] {
        assert_eq!(m[name]["type"], "gauge", "{name}: {m}");
        assert!(
            !m[name]["help"].as_str().unwrap_or_default().is_empty(),
            "{name}"
        );
    }
    let nft = ("backend", "nftables");
    assert_eq!(value(&m, "cf_allow_last_run_success", &[nft]), Some(1.0));
    assert_eq!(
        value(&m, "cf_allow_ranges", &[nft, ("family", "ipv4")]),
        Some(15.0)
    );
    assert_eq!(
        value(&m, "cf_allow_ranges", &[nft, ("family", "ipv6")]),
        Some(7.0)
    );
    assert_eq!(
        value(&m, "cf_allow_last_run_changes", &[nft, ("kind", "added")]),
        Some(22.0)
    );
    assert_eq!(
        value(&m, "cf_allow_last_run_changes", &[nft, ("kind", "removed")]),
        Some(0.0)
    );
    let last_run = value(&m, "cf_allow_last_run_timestamp_seconds", &[]).expect("last run");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        last_run <= now && last_run > now - 600.0,
        "{last_run} vs {now}"
    );
    let success = value(&m, "cf_allow_last_success_timestamp_seconds", &[]).expect("success");
    assert_eq!(success, last_run);
    let age = value(&m, "cf_allow_list_age_seconds", &[]).expect("age");
    assert!((0.0..600.0).contains(&age), "{age}");
    // The reachability verdict of the run: nothing else in this namespace blocks Cloudflare.
    assert_eq!(m["cf_allow_reachable"]["type"], "gauge", "{m}");
    assert_eq!(value(&m, "cf_allow_reachable", &[nft]), Some(1.0));

    // A no-op: success again, no changes.
    env.run(Some(&ns), &sync).expect_code(0);
    let m = parse_metrics(&metrics);
    assert_eq!(
        value(&m, "cf_allow_last_run_changes", &[nft, ("kind", "added")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "cf_allow_ranges", &[nft, ("family", "ipv4")]),
        Some(15.0)
    );
    let success = value(&m, "cf_allow_last_success_timestamp_seconds", &[]).expect("success");

    // A failed run (the source answers an HTML page): exit 1 as always, success 0, the last
    // success time and the range counts carried over.
    let bad = env.feed("bad.txt", &["<html>maintenance</html>"]);
    let ruleset = ns.sh("nft list ruleset");
    let failed = env.run(
        Some(&ns),
        &["sync", "--backend", "nftables", "--source", &bad],
    );
    failed.expect_code(1);
    assert_eq!(ns.sh("nft list ruleset"), ruleset);
    let m = parse_metrics(&metrics);
    assert_eq!(value(&m, "cf_allow_last_run_success", &[nft]), Some(0.0));
    assert_eq!(
        value(&m, "cf_allow_last_success_timestamp_seconds", &[]),
        Some(success)
    );
    let last_run = value(&m, "cf_allow_last_run_timestamp_seconds", &[]).expect("last run");
    assert!(last_run >= success, "{last_run} < {success}");
    assert_eq!(
        value(&m, "cf_allow_ranges", &[nft, ("family", "ipv6")]),
        Some(7.0)
    );
    assert_eq!(
        value(&m, "cf_allow_last_run_changes", &[nft, ("kind", "added")]),
        Some(0.0)
    );
    let dir: Vec<_> = std::fs::read_dir(env.path("textfile"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        dir,
        ["cf-allow.prom"],
        "no temp file is left for the collector"
    );

    // A dry run is not a run of the timer: the file stays as it is.
    let before = std::fs::read(&metrics).expect("read");
    env.run(
        Some(&ns),
        &[
            "sync",
            "--backend",
            "nftables",
            "--source",
            &feed,
            "--dry-run",
        ],
    )
    .expect_code(0);
    assert_eq!(std::fs::read(&metrics).expect("read"), before);
}

#[test]
fn hooks_get_the_run_document_and_never_change_the_exit_code() {
    if !ready("hooks_get_the_run_document_and_never_change_the_exit_code") {
        return;
    }
    let ns = Netns::new("e2e-hooks");
    let env = Env::new("");
    env.write_config(&config(&env, ""));
    let feed = env.cloudflare_feed();
    let sync = [
        "sync",
        "--backend",
        "nftables",
        "--source",
        &feed,
        "--exit-code",
    ];
    let changed = env.path("changed.json");
    let failed = env.path("failed.json");

    // A change: on_change gets the same document `sync --json` prints.
    env.run(Some(&ns), &sync).expect_code(2);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&changed).expect("on_change ran"))
            .expect("JSON on stdin");
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["backend"], "nftables");
    assert_eq!(doc["added"]["ipv4"].as_array().map(Vec::len), Some(15));
    assert!(!failed.exists(), "on_failure must not run after a success");

    // A no-op: no hook.
    std::fs::remove_file(&changed).expect("rm");
    env.run(Some(&ns), &sync).expect_code(0);
    assert!(!changed.exists(), "on_change ran although nothing changed");

    // A failure: on_failure gets a document with the error.
    let bad = env.feed("bad.txt", &["<html>maintenance</html>"]);
    let run = env.run(
        Some(&ns),
        &["sync", "--backend", "nftables", "--source", &bad],
    );
    run.expect_code(1);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&failed).expect("on_failure ran"))
            .expect("JSON on stdin");
    assert_eq!(doc["changed"], false);
    assert_eq!(doc["backend"], "nftables");
    let error = doc["error"].as_str().expect("error key");
    assert_eq!(format!("cf-allow: error: {error}"), run.error_line());

    // A failing hook is logged and changes nothing about the run.
    let other = env.feed("other.txt", &["198.41.128.0/17", "2400:cb00::/32"]);
    env.write_config("ports: [443]\nguard: {max_shrink_percent: 100}\non_change: [\"false\"]\n");
    let run = env.run(
        Some(&ns),
        &[
            "sync",
            "--backend",
            "nftables",
            "--source",
            &other,
            "--exit-code",
        ],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("on_change: false failed (exit status 1); the run's result is unchanged"),
        "{}",
        run.stderr
    );

    // A hook that hangs is killed after hook_timeout_secs; the run still succeeds.
    env.write_config(
        "ports: [443]\nguard: {max_shrink_percent: 100}\non_change: [sleep, \"300\"]\nhook_timeout_secs: 1\n",
    );
    let run = env.run(
        Some(&ns),
        &["sync", "--backend", "nftables", "--source", &feed],
    );
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("on_change: sleep did not finish within 1 s and was killed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        cf_allow_testkit::nft::set_elements(&ns, "inet", "cf_allow", "cf_v6").len(),
        7
    );
}

#[test]
fn a_hook_that_is_not_a_list_is_a_config_error() {
    let env = Env::new("on_change: /usr/local/bin/notify --quiet\n");
    let run = env.run(None, &["check-config"]);
    run.expect_code(1);
    assert!(run.error_line().contains("on_change"), "{}", run.stderr);
    env.write_config("on_failure: []\n");
    let run = env.run(None, &["check-config"]);
    run.expect_code(1);
    assert!(
        run.error_line().contains("on_failure: give the program"),
        "{}",
        run.stderr
    );
}
