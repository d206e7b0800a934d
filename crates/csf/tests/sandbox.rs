//! The CSF backend against the real CSF 15.10, inside `../shared/csf/csf-sandbox` (a private
//! network + mount namespace with CSF installed over overlays). The crate's example
//! `csf-driver` runs the backend there the way `cf-allow sync|status|remove` does; the
//! scripts print what they observe between `@@@ name` markers and copy files into the test's
//! temporary directory (which the sandbox shares), and the assertions read both.

use std::fs;
use std::path::{Path, PathBuf};

use cf_allow_testkit::csf_sandbox::{self, lines, Sections};
use cf_allow_testkit::{cloudflare_ranges as cloudflare, require_path};

fn driver() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    debug.join("examples/csf-driver")
}

fn ready(test: &str) -> bool {
    csf_sandbox::ready(test) && require_path(test, &driver())
}

/// `$D`, the driver, besides [`csf_sandbox::PRELUDE`]'s shell functions.
const PRELUDE: &str = r#"
D="$DRIVER"
"#;

/// Runs `script` in a fresh CSF sandbox; returns the text of each `@@@` section.
fn run(work: &Path, script: &str) -> Sections {
    let driver = driver();
    csf_sandbox::run(
        work,
        &[("DRIVER", driver.as_os_str())],
        &format!("{PRELUDE}\n{script}"),
        String::new,
    )
}

fn write_list(work: &Path, name: &str, nets: &[&str]) {
    fs::write(work.join(name), nets.join("\n") + "\n").expect("write list");
}

/// Cloudflare's list without `dropped`, followed by `added`.
fn cloudflare_changed(dropped: &[&str], added: &[&'static str]) -> Vec<&'static str> {
    cloudflare()
        .into_iter()
        .filter(|n| !dropped.contains(n))
        .chain(added.iter().copied())
        .collect()
}

/// The rule lines CSF writes for cf-allow's port filters.
fn expected_port_rules(nets: &[&str], ports: &[u16]) -> Vec<String> {
    let mut rules: Vec<String> = nets
        .iter()
        .flat_map(|n| {
            ports.iter().map(move |p| {
                format!("-A ALLOWIN -s {n} ! -i lo -p tcp -m tcp --dport {p} -j ACCEPT")
            })
        })
        .collect();
    rules.sort();
    rules
}

#[test]
fn live_sync_matches_csf_rebuild_applies_deltas_and_removes_cleanly() {
    if !ready("live_sync_matches_csf_rebuild_applies_deltas_and_removes_cleanly") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let all = cloudflare();
    write_list(w, "list1.txt", &all);
    // The next feed drops two ranges and adds one.
    let next = cloudflare_changed(&["173.245.48.0/20", "2400:cb00::/32"], &["198.51.100.0/24"]);
    write_list(w, "list2.txt", &next);

    let s = run(
        w,
        r#"
ipv6_on
# The admin's own lines: comments, a CRLF line, an Include of their own, no final newline.
printf '# admin allow\n1.2.3.4 # office\r\nInclude /etc/csf/mine.allow\ntcp|in|d=22|s=192.0.2.0/24 # ssh' >> /etc/csf/csf.allow
printf '10.9.8.0/24 # lan\n' > /etc/csf/mine.allow
printf '192.0.2.9 # monitoring\n' >> /etc/csf/csf.ignore
cp /etc/csf/csf.allow "$W/orig.allow"; cp /etc/csf/csf.ignore "$W/orig.ignore"
csf -r >/dev/null 2>&1
allow_rules > "$W/rules0"
section status0; $D /etc/csf 80,443 live status
section sync1; $D /etc/csf 80,443 live sync "$W/list1.txt"
cp /etc/csf/csf.allow "$W/sync1.allow"; cp /etc/csf/csf.ignore "$W/sync1.ignore"
cp /etc/csf/cf-allow.allow "$W/cf.allow"; cp /etc/csf/cf-allow.ignore "$W/cf.ignore"
section rules1; allow_rules
save > "$W/save1"; stats > "$W/stat1"
section sync2; $D /etc/csf 80,443 live sync "$W/list1.txt"
save > "$W/save2"; stats > "$W/stat2"
section same_save; cmp -s "$W/save1" "$W/save2" && echo yes || echo no
section same_stat; cmp -s "$W/stat1" "$W/stat2" && echo yes || { echo no; cat "$W/stat1" "$W/stat2"; }
allow_rules > "$W/live1"
csf -r >/dev/null 2>&1
allow_rules > "$W/rebuilt1"
section rebuild_diff; diff "$W/live1" "$W/rebuilt1" && echo equal
section sync3; $D /etc/csf 80,443 live sync "$W/list2.txt"
allow_rules > "$W/live3"
section delta; diff "$W/rebuilt1" "$W/live3" | grep '^[<>]'
cp /etc/csf/csf.allow "$W/sync3.allow"
csf -r >/dev/null 2>&1
allow_rules > "$W/rebuilt3"
section rebuild3_diff; diff "$W/live3" "$W/rebuilt3" && echo equal
iptables -D ALLOWIN ! -i lo -s 104.16.0.0/13 -p tcp --dport 443 -j ACCEPT
section drift_status; $D /etc/csf 80,443 live status
section drift_sync; $D /etc/csf 80,443 live sync "$W/list2.txt"
allow_rules > "$W/repaired"
section drift_repaired; diff "$W/rebuilt3" "$W/repaired" && echo equal
section ports_sync; $D /etc/csf 443 live sync "$W/list2.txt"
section ports_delta; diff "$W/repaired" <(allow_rules) | grep '^[<>]'
section remove; $D /etc/csf 443 live remove
section after_remove_rules; diff "$W/rules0" <(allow_rules) && echo equal
section after_remove_files; ls /etc/csf/cf-allow.allow /etc/csf/cf-allow.ignore 2>&1 | grep -c 'No such file'
cp /etc/csf/csf.allow "$W/removed.allow"; cp /etc/csf/csf.ignore "$W/removed.ignore"
section remove_again; $D /etc/csf 443 live remove
"#,
    );

    // Before: nothing of cf-allow's; CSF's shipped TESTING mode is reported.
    let status0 = s.section("status0");
    assert!(status0.contains("present: false"), "{status0}");
    assert!(status0.contains("TESTING = \"1\""), "{status0}");

    // First sync: 22 ranges added, every one live on 80 and 443, in the right family.
    assert!(s.section("sync1").contains("add: 22\n"), "{s:#?}");
    assert!(s.section("sync1").contains("changed: yes"));
    let rules1 = lines(s.section("rules1"));
    let expected = expected_port_rules(&all, &[80, 443]);
    for rule in &expected {
        assert!(
            rules1.contains(&rule.as_str()),
            "missing {rule} in {rules1:#?}"
        );
    }
    // The admin's own rules are still there.
    assert!(rules1.contains(&"-A ALLOWIN -s 1.2.3.4/32 ! -i lo -j ACCEPT"));
    assert!(rules1.contains(&"-A ALLOWIN -s 10.9.8.0/24 ! -i lo -j ACCEPT"));
    assert!(
        rules1.contains(&"-A ALLOWIN -s 192.0.2.0/24 ! -i lo -p tcp -m tcp --dport 22 -j ACCEPT")
    );

    // Files: the managed files, and csf.allow/csf.ignore byte-identical apart from one
    // Include line (placed before the admin's unterminated last line).
    let want_allow = csf_sandbox::with_include(w, "allow");
    assert_eq!(fs::read(w.join("sync1.allow")).expect("allow"), want_allow);
    let want_ignore = csf_sandbox::with_include(w, "ignore");
    assert_eq!(
        fs::read(w.join("sync1.ignore")).expect("ignore"),
        want_ignore
    );
    let cf_allow = fs::read_to_string(w.join("cf.allow")).expect("cf-allow.allow");
    assert!(cf_allow.starts_with("# Managed by cf-allow"));
    assert!(cf_allow.contains("\ntcp|in|d=80|s=173.245.48.0/20\ntcp|in|d=443|s=173.245.48.0/20\n"));
    assert_eq!(
        cf_allow
            .lines()
            .filter(|l| l.starts_with("tcp|in|"))
            .count(),
        44
    );
    let cf_ignore = fs::read_to_string(w.join("cf.ignore")).expect("cf-allow.ignore");
    let ignored: Vec<&str> = cf_ignore.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ignored.len(), 22);
    assert!(ignored.contains(&"2a06:98c0::/29") && ignored.contains(&"104.16.0.0/13"));

    // Second sync: nothing to do, no file rewritten, rules identical.
    assert!(
        s.section("sync2").contains("changed: no"),
        "{}",
        s.section("sync2")
    );
    assert_eq!(s.section("same_save").trim(), "yes");
    assert_eq!(
        s.section("same_stat").trim(),
        "yes",
        "{}",
        s.section("same_stat")
    );

    // `csf -r` builds exactly the allow rules cf-allow had put in live.
    assert_eq!(
        s.section("rebuild_diff").trim(),
        "equal",
        "{}",
        s.section("rebuild_diff")
    );

    // A changed feed applies exactly the delta live, and CSF agrees after a rebuild.
    let mut delta = lines(s.section("delta"));
    delta.sort();
    let mut want_delta = vec![
        "< -A ALLOWIN -s 173.245.48.0/20 ! -i lo -p tcp -m tcp --dport 443 -j ACCEPT".to_string(),
        "< -A ALLOWIN -s 173.245.48.0/20 ! -i lo -p tcp -m tcp --dport 80 -j ACCEPT".to_string(),
        "< -A ALLOWIN -s 2400:cb00::/32 ! -i lo -p tcp -m tcp --dport 443 -j ACCEPT".to_string(),
        "< -A ALLOWIN -s 2400:cb00::/32 ! -i lo -p tcp -m tcp --dport 80 -j ACCEPT".to_string(),
        "> -A ALLOWIN -s 198.51.100.0/24 ! -i lo -p tcp -m tcp --dport 443 -j ACCEPT".to_string(),
        "> -A ALLOWIN -s 198.51.100.0/24 ! -i lo -p tcp -m tcp --dport 80 -j ACCEPT".to_string(),
    ];
    want_delta.sort();
    assert_eq!(delta, want_delta);
    assert_eq!(
        s.section("rebuild3_diff").trim(),
        "equal",
        "{}",
        s.section("rebuild3_diff")
    );
    assert_eq!(fs::read(w.join("sync3.allow")).expect("allow"), want_allow);

    // Drift: a live rule deleted behind cf-allow's back is reported and put back.
    let drift = s.section("drift_status");
    assert!(
        drift.contains("repair: add 1 live rule(s)")
            && drift.contains("-s 104.16.0.0/13 -p tcp --dport 443"),
        "{drift}"
    );
    assert!(s.section("drift_sync").contains("changed: yes"));
    assert_eq!(s.section("drift_repaired").trim(), "equal");

    // Dropping port 80: the 80 rules of all 21 ranges go, nothing is added.
    assert!(s
        .section("ports_sync")
        .contains("repair: rewrite cf-allow.allow"));
    let ports_delta = lines(s.section("ports_delta"));
    assert_eq!(ports_delta.len(), 21, "{ports_delta:#?}");
    assert!(ports_delta
        .iter()
        .all(|l| l.starts_with("< -A ALLOWIN -s ") && l.ends_with(" --dport 80 -j ACCEPT")));

    // Remove: files, Include lines and live rules gone; the admin's files byte for byte.
    let removed = s.section("remove");
    assert!(
        removed.contains("removed: file /etc/csf/cf-allow.allow"),
        "{removed}"
    );
    assert!(removed.contains("removed: line `Include /etc/csf/cf-allow.ignore` in csf.ignore"));
    assert_eq!(
        removed.matches("removed: live rule").count(),
        21,
        "{removed}"
    );
    csf_sandbox::assert_removed_cleanly(&s, w);
    assert_eq!(s.section("remove_again").trim(), "");
}

#[test]
fn ipset_variant_keeps_plain_entries_in_csf_sets_and_spares_the_admins() {
    if !ready("ipset_variant_keeps_plain_entries_in_csf_sets_and_spares_the_admins") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let all = cloudflare();
    write_list(w, "list1.txt", &all);
    let next = cloudflare_changed(&["173.245.48.0/20", "2606:4700::/32"], &["198.51.100.0/24"]);
    write_list(w, "list2.txt", &next);

    let s = run(
        w,
        r#"
ipv6_on
sed -i 's/^LF_IPSET = "0"/LF_IPSET = "1"/' /etc/csf/csf.conf
printf '2606:4700::/32 # the admin lists this one too\n' >> /etc/csf/csf.allow
csf -r >/dev/null 2>&1
sets() { (ipset save chain_ALLOW; ipset save chain_6_ALLOW) | grep '^add ' | sort; }
section sync1; $D /etc/csf all live sync "$W/list1.txt"
section sets1; sets
section rules1; allow_rules
{ sets; allow_rules; } > "$W/live1"
csf -r >/dev/null 2>&1
section rebuild_diff; diff "$W/live1" <(sets; allow_rules) && echo equal
section sync2; $D /etc/csf all live sync "$W/list2.txt"
section sets_delta; diff "$W/live1" <(sets; allow_rules) | grep '^[<>]'
section remove; $D /etc/csf all live remove
section sets_after; sets
"#,
    );
    assert!(s.section("sync1").contains("changed: yes"), "{s:#?}");
    let sets1 = lines(s.section("sets1"));
    assert_eq!(sets1.len(), 22, "{sets1:#?}");
    assert!(sets1.contains(&"add chain_ALLOW 104.16.0.0/13"));
    assert!(sets1.contains(&"add chain_6_ALLOW 2a06:98c0::/29"));
    // With LF_IPSET, CSF keeps plain entries in its sets only: no per-range rules.
    let rules1 = s.section("rules1");
    assert!(!rules1.contains("104.16.0.0"), "{rules1}");
    assert!(rules1.contains("-A ALLOWIN -m set --match-set chain_ALLOW src -j ACCEPT"));
    assert_eq!(
        s.section("rebuild_diff").trim(),
        "equal",
        "{}",
        s.section("rebuild_diff")
    );
    let mut delta = lines(s.section("sets_delta"));
    delta.sort();
    assert_eq!(
        delta,
        vec![
            "< add chain_ALLOW 173.245.48.0/20",
            "> add chain_ALLOW 198.51.100.0/24"
        ],
        "2606:4700::/32 stays: the admin's own line lists it"
    );
    assert_eq!(
        lines(s.section("sets_after")),
        vec!["add chain_6_ALLOW 2606:4700::/32"]
    );
}

#[test]
fn lfd_is_restarted_only_when_the_ignore_file_changes_and_ignores_cloudflare() {
    if !ready("lfd_is_restarted_only_when_the_ignore_file_changes_and_ignores_cloudflare") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    write_list(w, "list1.txt", &cloudflare());

    let s = run(
        w,
        r#"
# lfd writes /var/run/lfd.pid: keep it inside the sandbox.
mount -t tmpfs tmpfs /run
ipv6_on
sed -i 's/^TESTING = "1"/TESTING = "0"/' /etc/csf/csf.conf
csf -r >/dev/null 2>&1
csf --lfd start >/dev/null 2>&1
wait_pid() { for i in $(seq 1 100); do p=$(cat /var/run/lfd.pid 2>/dev/null); if [ -n "$p" ] && [ "$p" != "$1" ] && [ -e /proc/$p ]; then echo "$p"; return; fi; sleep 0.2; done; echo none; }
pid0=$(wait_pid "")
section status0; $D /etc/csf 80,443 live status
section sync1; $D /etc/csf 80,443 live sync "$W/list1.txt"
pid1=$(wait_pid "$pid0")
section restarted; [ "$pid1" != none ] && [ "$pid1" != "$pid0" ] && echo yes || echo "no ($pid0 -> $pid1)"
section sync2; $D /etc/csf 80,443 live sync "$W/list1.txt"
section same_lfd; [ "$(cat /var/run/lfd.pid)" = "$pid1" ] && echo yes || echo no
section status1; $D /etc/csf 80,443 live status
# CSF's own ignore check (csf -d refuses addresses in csf.ignore, Includes followed).
section deny_v4; csf -d 104.16.0.1 2>&1 | grep -o 'deny failed: .*'
section deny_v6; csf -d 2606:4700::1 2>&1 | grep -o 'deny failed: .*'
section deny_other; csf -d 203.0.113.7 2>&1 | grep -c 'ignore file'
csf --lfd stop >/dev/null 2>&1
"#,
    );
    let status0 = s.section("status0");
    assert!(!status0.contains("lfd is not running"), "{status0}");
    assert!(!status0.contains("TESTING"), "{status0}");
    assert!(s.section("sync1").contains("changed: yes"));
    assert_eq!(s.section("restarted").trim(), "yes");
    assert!(s.section("sync2").contains("changed: no"));
    assert_eq!(s.section("same_lfd").trim(), "yes");
    assert_eq!(
        lines(s.section("status1")),
        vec!["present: true", "ranges: 22"]
    );
    assert_eq!(
        s.section("deny_v4").trim(),
        "deny failed: 104.16.0.1 is in the ignore file /etc/csf/csf.ignore"
    );
    assert_eq!(
        s.section("deny_v6").trim(),
        "deny failed: 2606:4700::1 is in the ignore file /etc/csf/csf.ignore"
    );
    assert_eq!(s.section("deny_other").trim(), "0");
}

#[test]
fn restart_mode_errors_and_warnings() {
    if !ready("restart_mode_errors_and_warnings") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let all = cloudflare();
    write_list(w, "list1.txt", &all);
    write_list(w, "list2.txt", &all[1..]);

    let s = run(
        w,
        r#"
# IPV6 stays "0" (shipped default). CSF stopped first.
csf -f >/dev/null 2>&1
section stopped_status; $D /etc/csf 80,443 live status
section stopped_sync; $D /etc/csf 80,443 live sync "$W/list1.txt"
section stopped_chains; iptables-save | grep -c ':ALLOWIN'
csf -s >/dev/null 2>&1
section started_rules; allow_rules | grep -c 'dport'
section ipv6_status; $D /etc/csf 80,443 live status
export CSF_DRIVER_RELOAD="sh -c 'touch $W/reloaded && csf -ra >/dev/null 2>&1'"
section r_sync; $D /etc/csf 80,443 restart sync "$W/list2.txt"
section r_reloaded; [ -e "$W/reloaded" ] && echo yes || echo no
rm -f "$W/reloaded"
section r_sync_again; $D /etc/csf 80,443 restart sync "$W/list2.txt"
section r_not_reloaded; [ -e "$W/reloaded" ] && echo reloaded || echo no
section r_rules; allow_rules | grep -c 'dport'
for f in csf.allow csf.ignore cf-allow.allow cf-allow.ignore; do cp /etc/csf/$f "$W/pre.$f"; done
section r_fail; CSF_DRIVER_RELOAD="sh -c 'echo boom >&2; exit 3'" $D /etc/csf 80,443 restart sync "$W/list1.txt"
section r_fail_files; for f in csf.allow csf.ignore cf-allow.allow cf-allow.ignore; do cmp -s /etc/csf/$f "$W/pre.$f" && echo "$f same" || echo "$f changed"; done
section bad_dir; $D /nonexistent/csf 80 live status
mkdir -p /etc/csf-bad /etc/csf-dir/csf.conf
printf 'TESTING = "0"\nIPV6 = 1\n' > /etc/csf-bad/csf.conf
section bad_conf; $D /etc/csf-bad 80 live status
section dir_conf; $D /etc/csf-dir 80 live status
section no_conf; $D /etc 80 live status
cp /etc/csf/csf.allow "$W/before_missing"
mv /usr/sbin/csf /usr/sbin/csf.off
section csf_missing; PATH=/usr/bin:/bin $D /etc/csf 80,443 live sync "$W/list1.txt"
mv /usr/sbin/csf.off /usr/sbin/csf
section csf_missing_files; cmp -s /etc/csf/csf.allow "$W/before_missing" && echo same || echo changed
sed -i 's/^IGNORE_ALLOW = "0"/IGNORE_ALLOW = "1"/' /etc/csf/csf.conf
section ignore_allow; $D /etc/csf 80,443 live status | grep -c IGNORE_ALLOW
"#,
    );
    let stopped = s.section("stopped_status");
    assert!(stopped.contains("warning: CSF is not running"), "{stopped}");
    assert!(stopped.contains("warning: lfd is not running"), "{stopped}");
    assert!(s.section("stopped_sync").contains("changed: yes"), "{s:#?}");
    assert_eq!(s.section("stopped_chains").trim(), "0");
    // CSF loads the files when it starts: 15 IPv4 ranges x 2 ports (IPv6 is off).
    assert_eq!(s.section("started_rules").trim(), "30");
    let ipv6 = s.section("ipv6_status");
    assert!(
        ipv6.contains(
            "warning: csf.conf has IPV6 = \"0\": CSF silently skips the 7 IPv6 Cloudflare ranges"
        ),
        "{ipv6}"
    );
    assert!(
        !ipv6.contains("repair:"),
        "IPv6 entries are not live drift with IPV6 off: {ipv6}"
    );

    assert!(s.section("r_sync").contains("changed: yes"));
    assert_eq!(s.section("r_reloaded").trim(), "yes", "{s:#?}");
    assert!(s.section("r_sync_again").contains("changed: no"));
    assert_eq!(s.section("r_not_reloaded").trim(), "no");
    assert_eq!(s.section("r_rules").trim(), "28");

    let fail = s.section("r_fail");
    assert!(
        fail.contains("error: the reload command `sh -c 'echo boom >&2; exit 3'` failed (exit status 3: boom); CSF's files were restored as they were"),
        "{fail}"
    );
    assert_eq!(
        lines(s.section("r_fail_files")),
        vec![
            "csf.allow same",
            "csf.ignore same",
            "cf-allow.allow same",
            "cf-allow.ignore same"
        ]
    );
    assert_eq!(
        s.section("bad_dir").trim(),
        "error: the CSF directory /nonexistent/csf does not exist or is not a directory (set csf.dir)"
    );
    assert_eq!(
        s.section("bad_conf").trim(),
        "error: malformed /etc/csf-bad/csf.conf, line 2: the value of IPV6 is not quoted"
    );
    assert!(s
        .section("dir_conf")
        .starts_with("error: could not read /etc/csf-dir/csf.conf"));
    assert_eq!(
        s.section("no_conf").trim(),
        "error: /etc/csf.conf not found: is CSF installed in that directory? (set csf.dir)"
    );
    assert_eq!(
        s.section("csf_missing").trim(),
        "error: the csf program is not installed (not found on PATH or in /usr/sbin)"
    );
    assert_eq!(s.section("csf_missing_files").trim(), "same");
    assert_eq!(s.section("ignore_allow").trim(), "1");
}

#[test]
fn a_failed_live_change_restores_rules_of_both_families_and_the_files() {
    if !ready("a_failed_live_change_restores_rules_of_both_families_and_the_files") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let all = cloudflare();
    let fewer = cloudflare_changed(&["173.245.48.0/20", "2400:cb00::/32"], &[]);
    write_list(w, "list1.txt", &fewer);
    write_list(w, "list2.txt", &all);

    let s = run(
        w,
        r#"
ipv6_on
csf -r >/dev/null 2>&1
section sync1; $D /etc/csf 443 live sync "$W/list1.txt"
save > "$W/save1"
for f in csf.allow csf.ignore cf-allow.allow cf-allow.ignore; do cp /etc/csf/$f "$W/pre.$f"; done
# ip6tables-restore now fails: the IPv4 half, applied first, must be undone.
printf '#!/bin/sh\necho "ip6tables-restore: line 2 failed" >&2\nexit 1\n' > /usr/local/sbin/broken6
chmod +x /usr/local/sbin/broken6
sed -i 's|^IP6TABLES_RESTORE = .*|IP6TABLES_RESTORE = "/usr/local/sbin/broken6"|' /etc/csf/csf.conf
section sync2; $D /etc/csf 443 live sync "$W/list2.txt"
section same_save; save | cmp -s - "$W/save1" && echo yes || echo no
section files; for f in csf.allow csf.ignore cf-allow.allow cf-allow.ignore; do cmp -s /etc/csf/$f "$W/pre.$f" && echo "$f same" || echo "$f changed"; done
"#,
    );
    assert!(s.section("sync1").contains("changed: yes"), "{s:#?}");
    let failed = s.section("sync2");
    assert!(
        failed.contains("error: `/usr/local/sbin/broken6 -w --noflush` failed: ip6tables-restore: line 2 failed"),
        "{failed}"
    );
    assert_eq!(s.section("same_save").trim(), "yes");
    assert_eq!(
        lines(s.section("files")),
        vec![
            "csf.allow same",
            "csf.ignore same",
            "cf-allow.allow same",
            "cf-allow.ignore same"
        ]
    );
}
