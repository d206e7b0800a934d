//! End-to-end: `cf-allow` with the CSF backend against the real CSF 15.10 inside
//! `../shared/csf/csf-sandbox` (private network + mount namespace, CSF installed over
//! overlays; nothing on the host changes). One sandbox run per test keeps CI fast: the script
//! prints what it observes between `@@@ name` markers and copies files into the test's
//! temporary directory (the sandbox shares /tmp), and the assertions read both.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use cf_allow_testkit::cloudflare_ranges as cloudflare;
use cf_allow_testkit::csf_sandbox::{self, lines, Sections};
use common::{section_json as json, Env, BIN};

/// `cfa ARGS…` runs cf-allow with `$W/config.yaml`, appends its stderr to `$W/stderr` and
/// prints `exit=CODE`; besides [`csf_sandbox::PRELUDE`]'s shell functions.
const PRELUDE: &str = r#"
cfa() { "$BIN" --config "$W/config.yaml" "$@" 2>>"$W/stderr"; echo "exit=$?"; }
"#;

/// Runs `script` in a fresh CSF sandbox; returns each `@@@` section, plus cf-allow's
/// stderr as `(cf-allow stderr)`.
fn run(work: &Path, script: &str) -> Sections {
    let stderr = || fs::read_to_string(work.join("stderr")).unwrap_or_default();
    let mut sections = csf_sandbox::run(
        work,
        &[("BIN", OsStr::new(BIN))],
        &format!("{PRELUDE}\n{script}"),
        || format!("\ncf-allow stderr:\n{}", stderr()),
    );
    sections.insert("(cf-allow stderr)", stderr());
    sections
}

#[test]
fn csf_sync_live_rebuild_delta_lfd_and_remove() {
    if !csf_sandbox::ready("csf_sync_live_rebuild_delta_lfd_and_remove") {
        return;
    }
    let env = Env::new("");
    let w = env.dir.path();
    let all = cloudflare();
    let feed1 = env.feed("feed1.txt", &all);
    let next: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| *n != "173.245.48.0/20" && *n != "2400:cb00::/32")
        .chain(["198.51.100.0/24"])
        .collect();
    let feed2 = env.feed("feed2.txt", &next);
    env.write_config(&format!(
        "backend: csf\nports: [80, 443]\nsources:\n  - {feed1}\n\
         guard:\n  allow_reserved: true\n  max_shrink_percent: 100\ncsf:\n  dir: /etc/csf\n  apply: live\n"
    ));

    let s = run(
        w,
        &format!(
            r#"
ipv6_on
# The admin's own lines: comments, an Include of their own, no final newline.
printf '# admin\n1.2.3.4 # office\nInclude /etc/csf/mine.allow\ntcp|in|d=22|s=192.0.2.0/24 # ssh' >> /etc/csf/csf.allow
printf '10.9.8.0/24 # lan\n' > /etc/csf/mine.allow
printf '192.0.2.9 # monitoring\n' >> /etc/csf/csf.ignore
cp /etc/csf/csf.allow "$W/orig.allow"; cp /etc/csf/csf.ignore "$W/orig.ignore"
csf -r >/dev/null 2>&1
allow_rules > "$W/rules0"
section sync1; cfa sync --json
section rules1; allow_rules
cp /etc/csf/csf.allow "$W/sync1.allow"; cp /etc/csf/csf.ignore "$W/sync1.ignore"
cp /etc/csf/cf-allow.allow "$W/cf.allow"; cp /etc/csf/cf-allow.ignore "$W/cf.ignore"
save > "$W/save1"; stats > "$W/stat1"
section sync2; cfa sync --json --exit-code
save > "$W/save2"; stats > "$W/stat2"
section same_save; cmp -s "$W/save1" "$W/save2" && echo yes || echo no
section same_stat; cmp -s "$W/stat1" "$W/stat2" && echo yes || echo no
allow_rules > "$W/live1"
csf -r >/dev/null 2>&1
section rebuild_diff; diff "$W/live1" <(allow_rules) && echo equal
section sync3; cfa sync --json --source {feed2}
section delta; diff "$W/live1" <(allow_rules) | grep '^[<>]'
cp /etc/csf/csf.allow "$W/sync3.allow"; cp /etc/csf/csf.ignore "$W/sync3.ignore"
section status; cfa status --backend csf --json
section deny_cf; csf -d 104.16.0.1 2>&1 | grep -o 'deny failed: .*'
section remove; cfa remove --backend csf --json
section after_remove_rules; diff "$W/rules0" <(allow_rules) && echo equal
section after_remove_files; ls /etc/csf/cf-allow.allow /etc/csf/cf-allow.ignore 2>&1 | grep -c 'No such file'
cp /etc/csf/csf.allow "$W/removed.allow"; cp /etc/csf/csf.ignore "$W/removed.ignore"
"#
        ),
    );

    // First sync: all 22 ranges added and live in ALLOWIN on 80 and 443.
    let (sync1, exit) = json(&s, "sync1");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(sync1["backend"], "csf");
    assert_eq!(sync1["changed"], true);
    assert_eq!(sync1["added"]["ipv4"].as_array().map(Vec::len), Some(15));
    assert_eq!(sync1["added"]["ipv6"].as_array().map(Vec::len), Some(7));
    let rules1 = lines(s.section("rules1"));
    for net in &all {
        for port in [80, 443] {
            let rule =
                format!("-A ALLOWIN -s {net} ! -i lo -p tcp -m tcp --dport {port} -j ACCEPT");
            assert!(rules1.contains(&rule.as_str()), "missing {rule}");
        }
    }
    assert!(rules1.contains(&"-A ALLOWIN -s 1.2.3.4/32 ! -i lo -j ACCEPT"));
    assert!(rules1.contains(&"-A ALLOWIN -s 10.9.8.0/24 ! -i lo -j ACCEPT"));

    // The managed files, and exactly one Include line added to each admin file.
    let want_allow = csf_sandbox::with_include(w, "allow");
    let want_ignore = csf_sandbox::with_include(w, "ignore");
    assert_eq!(fs::read(w.join("sync1.allow")).expect("allow"), want_allow);
    assert_eq!(
        fs::read(w.join("sync1.ignore")).expect("ignore"),
        want_ignore
    );
    let cf_allow = fs::read_to_string(w.join("cf.allow")).expect("cf-allow.allow");
    assert!(cf_allow.starts_with("# Managed by cf-allow"));
    assert_eq!(
        cf_allow
            .lines()
            .filter(|l| l.starts_with("tcp|in|d="))
            .count(),
        44
    );
    assert!(cf_allow.contains("tcp|in|d=443|s=2c0f:f248::/32\n"));
    let cf_ignore = fs::read_to_string(w.join("cf.ignore")).expect("cf-allow.ignore");
    assert_eq!(
        cf_ignore.lines().filter(|l| !l.starts_with('#')).count(),
        22
    );

    // Second sync: nothing changed, nothing written, the ruleset identical.
    let (sync2, exit) = json(&s, "sync2");
    assert_eq!(exit, 0, "--exit-code exits 0 when nothing changed");
    assert_eq!(sync2["changed"], false);
    assert_eq!(s.section("same_save").trim(), "yes");
    assert_eq!(s.section("same_stat").trim(), "yes");

    // `csf -r` rebuilds exactly the allow rules cf-allow put in live.
    assert_eq!(
        s.section("rebuild_diff").trim(),
        "equal",
        "{}",
        s.section("rebuild_diff")
    );

    // A changed feed: exactly the delta, live.
    let (sync3, exit) = json(&s, "sync3");
    assert_eq!(exit, 0);
    assert_eq!(
        sync3["added"]["ipv4"],
        serde_json::json!(["198.51.100.0/24"])
    );
    assert_eq!(
        sync3["removed"]["ipv4"],
        serde_json::json!(["173.245.48.0/20"])
    );
    assert_eq!(
        sync3["removed"]["ipv6"],
        serde_json::json!(["2400:cb00::/32"])
    );
    let mut delta = lines(s.section("delta"));
    delta.sort();
    let mut want_delta: Vec<String> = ["173.245.48.0/20", "2400:cb00::/32"]
        .iter()
        .flat_map(|n| {
            [80, 443]
                .map(|p| format!("< -A ALLOWIN -s {n} ! -i lo -p tcp -m tcp --dport {p} -j ACCEPT"))
        })
        .chain([80, 443].map(|p| {
            format!("> -A ALLOWIN -s 198.51.100.0/24 ! -i lo -p tcp -m tcp --dport {p} -j ACCEPT")
        }))
        .collect();
    want_delta.sort();
    assert_eq!(delta, want_delta);
    assert_eq!(fs::read(w.join("sync3.allow")).expect("allow"), want_allow);
    assert_eq!(
        fs::read(w.join("sync3.ignore")).expect("ignore"),
        want_ignore
    );

    let (status, _) = json(&s, "status");
    assert_eq!(status["present"], true);
    assert_eq!(status["count"], 21);
    assert_eq!(status["in_sync"], true, "{status}");
    assert_eq!(status["repairs"], serde_json::json!([]));

    // lfd: CSF's own ignore check (csf -d consults csf.ignore and its Includes).
    assert_eq!(
        s.section("deny_cf").trim(),
        "deny failed: 104.16.0.1 is in the ignore file /etc/csf/csf.ignore"
    );

    // Remove: files, Include lines, live rules; the admin's files back byte for byte.
    let (_, exit) = json(&s, "remove");
    assert_eq!(exit, 0);
    csf_sandbox::assert_removed_cleanly(&s, w);
}

#[test]
fn csf_restart_mode_reload_failure_and_bad_dir_exit_1_and_change_nothing() {
    if !csf_sandbox::ready("csf_restart_mode_reload_failure_and_bad_dir_exit_1_and_change_nothing")
    {
        return;
    }
    let env = Env::new("");
    let w = env.dir.path();
    let feed = env.feed("feed.txt", &cloudflare());
    let config = |reload: &str, dir: &str| {
        format!(
            "state_dir: {}\nbackend: csf\nports: [443]\nsources:\n  - {feed}\n\
             guard:\n  allow_reserved: true\ncsf:\n  dir: {dir}\n  apply: restart\n  reload: \"{reload}\"\n",
            env.state_dir().display()
        )
    };
    fs::write(
        w.join("good.yaml"),
        config(
            "touch $WORK/reloaded && csf -ra >/dev/null 2>&1",
            "/etc/csf",
        ),
    )
    .expect("config");
    fs::write(
        w.join("failing.yaml"),
        config("echo boom >&2; exit 3", "/etc/csf"),
    )
    .expect("config");
    fs::write(
        w.join("bad-dir.yaml"),
        config("csf -ra", "/nonexistent/csf"),
    )
    .expect("config");

    let s = run(
        w,
        r#"
export WORK="$W"
csf -r >/dev/null 2>&1
cp /etc/csf/csf.allow "$W/orig.allow"; cp /etc/csf/csf.ignore "$W/orig.ignore"
section failing; cp "$W/failing.yaml" "$W/config.yaml"; cfa sync --json
section failing_files; cmp -s /etc/csf/csf.allow "$W/orig.allow" && cmp -s /etc/csf/csf.ignore "$W/orig.ignore" && ! ls /etc/csf/cf-allow.* 2>/dev/null && echo unchanged
section bad_dir; cp "$W/bad-dir.yaml" "$W/config.yaml"; cfa sync --json
section good; cp "$W/good.yaml" "$W/config.yaml"; cfa sync --json
section reloaded; [ -e "$W/reloaded" ] && echo yes || echo no
section rules; allow_rules | grep -c 'dport 443'
rm -f "$W/reloaded"
section good_again; cfa sync --json
section reloaded_again; [ -e "$W/reloaded" ] && echo yes || echo no
section status; cfa status --backend csf
"#,
    );
    let stderr = s.section("(cf-allow stderr)");
    let failing = s.section("failing");
    assert!(
        failing.trim_end().ends_with("exit=1"),
        "{failing}\n{stderr}"
    );
    assert!(
        stderr.contains("the reload command `echo boom >&2; exit 3` failed (exit status: 3: boom); CSF's files were restored as they were"),
        "{stderr}"
    );
    assert_eq!(s.section("failing_files").trim(), "unchanged");
    assert!(s.section("bad_dir").trim_end().ends_with("exit=1"));
    assert!(
        stderr.contains("the CSF directory /nonexistent/csf does not exist or is not a directory"),
        "{stderr}"
    );
    let (good, exit) = json(&s, "good");
    assert_eq!(
        (good["changed"].clone(), exit),
        (serde_json::json!(true), 0)
    );
    assert_eq!(s.section("reloaded").trim(), "yes");
    // IPV6 = "0" (shipped): CSF loads the 15 IPv4 ranges only.
    assert_eq!(s.section("rules").trim(), "15");
    let (again, _) = json(&s, "good_again");
    assert_eq!(again["changed"], false);
    assert_eq!(s.section("reloaded_again").trim(), "no");
    let status = s.section("status");
    assert!(status.contains("state:   in sync"), "{status}");
    assert!(
        status.contains(
            "warning: csf.conf has IPV6 = \"0\": CSF silently skips the 7 IPv6 Cloudflare ranges"
        ),
        "{status}"
    );
}
