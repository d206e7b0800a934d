//! The write / test / reload / restore discipline of an output, with real programs (`sh`)
//! as the config test and the reload, on files in a temp dir; and the Caddy and HAProxy
//! files validated by their own tools when those are installed.

use std::path::Path;
use std::time::Duration;

use cf_allow_diff::{IpNet, RangeSet};
use cf_allow_outputs::{render, Error, Kind, Output};

fn set(nets: &[&str]) -> RangeSet {
    RangeSet::exact(nets.iter().map(|n| n.parse::<IpNet>().expect("net")))
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// An nginx output writing `dir/realip.conf`; the reload appends a line to `dir/reloads`.
fn output(dir: &Path, test: Vec<String>) -> Output {
    Output {
        kind: Kind::Nginx,
        path: dir.join("realip.conf"),
        test,
        reload: sh(&format!("echo reload >> {}", dir.join("reloads").display())),
        link: None,
        config_dir: None,
        timeout: Duration::from_secs(2),
    }
}

fn reloads(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("reloads"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn writes_on_change_only_and_reloads_after_the_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = output(
        d,
        sh(&format!(
            "grep -q set_real_ip_from {}",
            d.join("realip.conf").display()
        )),
    );
    let one = set(&["198.51.100.0/24"]);
    assert!(out.sync(&one, true).expect("dry run").changed);
    assert!(!out.path.exists(), "a dry run writes nothing");
    assert!(out.sync(&one, false).expect("sync").changed);
    assert_eq!(
        std::fs::read_to_string(&out.path).expect("file"),
        render::nginx(&one)
    );
    assert_eq!(reloads(d), 1);
    let mtime = std::fs::metadata(&out.path)
        .expect("meta")
        .modified()
        .expect("mtime");
    assert!(!out.sync(&one, false).expect("no-op").changed);
    assert_eq!(reloads(d), 1, "a no-op reloads nothing");
    assert_eq!(
        std::fs::metadata(&out.path)
            .expect("meta")
            .modified()
            .expect("mtime"),
        mtime
    );
    let two = set(&["198.51.100.0/24", "203.0.113.0/24"]);
    assert!(out.sync(&two, false).expect("change").changed);
    assert_eq!(reloads(d), 2);
    assert_eq!(out.status(&two).expect("status").file, "in_sync");
    assert_eq!(out.status(&one).expect("status").file, "drifted");
    // This test needs the file: remove puts it back and says why.
    let kept = std::fs::read(&out.path).expect("file");
    let err = out.remove(false).expect_err("the test refuses the removal");
    assert!(err.to_string().contains("No such file"), "{err}");
    assert_eq!(std::fs::read(&out.path).expect("file back"), kept);
    assert_eq!(reloads(d), 2);
    let out = Output {
        test: Vec::new(),
        ..out
    };
    assert!(out.remove(false).expect("remove").changed);
    assert!(!out.path.exists());
    assert_eq!(reloads(d), 3, "remove reloads");
    assert!(!out.remove(false).expect("remove again").changed);
}

#[test]
fn a_failing_or_stalled_test_puts_the_old_file_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let one = set(&["198.51.100.0/24"]);
    output(d, Vec::new()).sync(&one, false).expect("first sync");
    let before = std::fs::read(d.join("realip.conf")).expect("file");
    let two = set(&["198.51.100.0/24", "203.0.113.0/24"]);

    let failing = output(d, sh("echo 'emerg: bad directive' >&2; exit 1"));
    let err = failing.sync(&two, false).expect_err("refused");
    assert!(matches!(err, Error::TestFailed { .. }), "{err}");
    assert!(err.to_string().ends_with(": emerg: bad directive"), "{err}");
    assert_eq!(std::fs::read(d.join("realip.conf")).expect("file"), before);

    let stalled = output(d, sh("sleep 30"));
    let err = stalled.sync(&two, false).expect_err("killed");
    assert!(err.to_string().contains("killed"), "{err}");
    assert_eq!(std::fs::read(d.join("realip.conf")).expect("file"), before);
    assert_eq!(reloads(d), 1, "nothing reloaded after a failed test");

    let new = output(&d.join("sub"), sh("exit 1"));
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    assert!(new.sync(&one, false).is_err());
    assert!(!new.path.exists(), "a refused first file is removed again");
    assert!(
        output(d, Vec::new())
            .sync(&RangeSet::default(), false)
            .is_err(),
        "an empty list is refused"
    );
}

#[test]
fn a_missing_program_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = output(
        dir.path(),
        vec!["cf-allow-no-such-nginx".into(), "-t".into()],
    );
    let err = out
        .sync(&set(&["198.51.100.0/24"]), false)
        .expect_err("missing");
    assert!(matches!(err, Error::ProgramMissing { .. }), "{err}");
    assert!(!out.path.exists());
}

/// Runs the tool when installed (true), else prints a notice (false).
fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = cf_allow_exec::find_program(name);
    if found.is_none() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "NOTE {name} is not installed: its file is checked by its exact content only (render tests)");
    }
    found
}

#[test]
fn haproxy_accepts_the_acl_file() {
    let ranges = set(&["198.51.100.0/24", "2001:db8:1::/64"]);
    let text = render::haproxy(&ranges);
    let data: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(data, ["198.51.100.0/24", "2001:db8:1::/64"]);
    let Some(haproxy) = tool("haproxy") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("cf-allow.acl");
    std::fs::write(&acl, &text).expect("acl");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, format!("defaults\n  mode http\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nfrontend f\n  bind 127.0.0.1:0\n  acl from_cloudflare src -f {}\n  http-request deny if !from_cloudflare\n", acl.display())).expect("cfg");
    let out = cf_allow_exec::run(&haproxy, &["-c", "-f", &cfg.display().to_string()], None)
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn caddy_accepts_the_snippet() {
    let ranges = set(&["198.51.100.0/24", "2001:db8:1::/64"]);
    let text = render::caddy(&ranges);
    assert!(text.contains("\ntrusted_proxies static 198.51.100.0/24 2001:db8:1::/64\nclient_ip_headers CF-Connecting-IP\n"));
    let Some(caddy) = tool("caddy") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let snippet = dir.path().join("cf-allow-realip.caddy");
    std::fs::write(&snippet, &text).expect("snippet");
    let file = dir.path().join("Caddyfile");
    std::fs::write(
        &file,
        format!(
            "{{\n  servers {{\n    import {}\n  }}\n}}\n:8080 {{\n  respond ok\n}}\n",
            snippet.display()
        ),
    )
    .expect("Caddyfile");
    let out = cf_allow_exec::run(
        &caddy,
        &[
            "validate",
            "--config",
            &file.display().to_string(),
            "--adapter",
            "caddyfile",
        ],
        None,
    )
    .expect("caddy validate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
