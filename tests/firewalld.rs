//! End-to-end: `cf-allow` with the firewalld backend against the real firewalld 1.3 inside
//! `../shared/firewalld/firewalld-sandbox --client` (private D-Bus, private network + mount
//! namespaces, a client namespace on a veth pair; nothing on the host changes). One sandbox
//! run per test: the script prints what it observes between `@@@ name` markers.
//!
//! The test feed holds 198.51.100.0/24 and 2001:db8:1::/64: the client's 198.51.100.2 and
//! 2001:db8:1::2 are Cloudflare, its 203.0.113.2 and 2001:db8:2::2 are not.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use cf_allow_testkit::firewalld_sandbox::{self, Sections};
use common::{section_json as json, Env, BIN};

/// `cfa ARGS…` runs cf-allow with `$CONF` (default `$W/config.yaml`), appends its stderr to
/// `$W/stderr` and prints `exit=CODE`; `probe` prints the four connects to port 443;
/// `snap` prints firewalld's whole state and the hashes of its files.
const PRELUDE: &str = r#"
cfa() { "$BIN" --config "${CONF:-$W/config.yaml}" "$@" 2>>"$W/stderr"; echo "exit=$?"; }
probe() {
    connect 198.51.100.2 198.51.100.1 443; connect 203.0.113.2 203.0.113.1 443
    connect 2001:db8:1::2 2001:db8:1::1 443; connect 2001:db8:2::2 2001:db8:2::1 443
}
snap() { fw_state; etc_hashes; }
# The admin's own configuration: an ipset used by a rich rule, a service, a zone of their own.
admin_setup() {
    firewall-cmd -q --permanent --new-ipset=office --type=hash:ip
    firewall-cmd -q --permanent --ipset=office --add-entry=192.0.2.7
    firewall-cmd -q --permanent --zone=public --add-rich-rule='rule family="ipv4" source ipset="office" service name="ssh" accept'
    firewall-cmd -q --permanent --zone=public --add-service=http
    firewall-cmd -q --permanent --new-zone=backoffice
    firewall-cmd -q --permanent --zone=backoffice --add-port=8080/tcp
    firewall-cmd -q --reload
}
"#;

/// Runs `script` in a fresh firewalld sandbox (with `conf` as FWSB_FIREWALLD_CONF); returns
/// each `@@@` section, plus cf-allow's stderr as `(cf-allow stderr)`.
fn run(work: &Path, conf: &str, script: &str) -> Sections {
    let stderr = || fs::read_to_string(work.join("stderr")).unwrap_or_default();
    let mut sections = firewalld_sandbox::run(
        work,
        &[
            ("BIN", OsStr::new(BIN)),
            ("FWSB_FIREWALLD_CONF", OsStr::new(conf)),
        ],
        &format!("{PRELUDE}\n{script}"),
        || format!("\ncf-allow stderr:\n{}", stderr()),
    );
    sections.insert("(cf-allow stderr)", stderr());
    sections
}

/// The connect results of a `probe` section, in probe order.
fn probed(s: &Sections, name: &str) -> Vec<bool> {
    s.section(name)
        .lines()
        .map(|l| l.ends_with(" ok"))
        .collect()
}

const FEED1: [&str; 3] = ["198.51.100.0/24", "192.0.2.128/25", "2001:db8:1::/64"];
const FEED2: [&str; 4] = [
    "198.51.100.0/24",
    "192.0.2.0/25",
    "2001:db8:1::/64",
    "2001:db8:3::/64",
];

/// A test env whose `config.yaml` syncs FEED1 and whose `config2.yaml` syncs FEED2.
fn two_feeds() -> Env {
    let env = Env::new("");
    let feed1 = env.feed("feed1.txt", &FEED1);
    let feed2 = env.feed("feed2.txt", &FEED2);
    env.write_config(&config(&feed1, ""));
    let second = format!(
        "state_dir: {}\n{}",
        env.state_dir().display(),
        config(&feed2, "")
    );
    fs::write(env.path("config2.yaml"), second).expect("config2");
    env
}

fn config(feed: &str, extra: &str) -> String {
    format!(
        "backend: firewalld\nports: [443]\nsources:\n  - {feed}\nguard:\n  allow_reserved: true\n{extra}"
    )
}

/// First sync, no-op, reloads and a restart, drift repair, a delta, remove — with the
/// admin's own configuration identical throughout.
fn sync_through_reloads_and_remove(test: &str, conf: &str) {
    if !firewalld_sandbox::ready(test) {
        return;
    }
    let env = two_feeds();
    let w = env.dir.path();
    let ours = "cf-allow";
    let s = run(
        w,
        conf,
        &format!(
            r#"
listen 443
admin_setup
fw_state > "$W/state.before"; etc_hashes > "$W/etc.before"
section probe_before; probe
section dry; cfa sync --dry-run --json
section sync1; cfa sync --json
section probe1; probe
section admin_after_sync; fw_state '{ours}' | diff "$W/state.before" - && echo same
section etc_after_sync; etc_hashes 'zones/public.xml$|ipsets/{ours}' | diff <(grep -Ev 'zones/public.xml$' "$W/etc.before") - && echo same
section files_after_sync; find /etc/firewalld -name '*{ours}*' | sort; grep -c '{ours}' /etc/firewalld/zones/public.xml
monitor_start
cfa sync --json > "$W/sync2.out"
section sync2_writes; monitor_stop
section sync2; cat "$W/sync2.out"
firewall-cmd -q --reload
section probe_reload; probe
firewall-cmd -q --complete-reload
section probe_complete_reload; probe
fwsb-firewalld restart
section probe_restart; probe
# drift: an entry removed at runtime, a rule removed from the permanent configuration
firewall-cmd -q --ipset=cf-allow-v4 --remove-entry=198.51.100.0/24
firewall-cmd -q --permanent --zone=public --remove-rich-rule='rule family="ipv6" source ipset="cf-allow-v6" port port="443" protocol="tcp" accept'
section probe_drift; probe
section drift_sync; cfa sync --json
section probe_repaired; probe
section repaired_rules; firewall-cmd --permanent --zone=public --list-rich-rules | grep -c '{ours}'
monitor_start
CONF="$W/config2.yaml" cfa sync --json > "$W/delta.out"
section delta_writes; monitor_stop | sort
section delta; cat "$W/delta.out"
section entries_runtime; for s in cf-allow-v4 cf-allow-v6; do firewall-cmd --ipset=$s --get-entries; done | sort
section entries_permanent; for s in cf-allow-v4 cf-allow-v6; do firewall-cmd --permanent --ipset=$s --get-entries; done | sort
section status; CONF="$W/config2.yaml" cfa status --json
section remove; cfa remove
section admin_after_remove; fw_state | diff "$W/state.before" - && echo same
# (the admin's own `--permanent --remove-rich-rule` above made firewalld rewrite its backup
# public.xml.old; firewalld_detected_and_lockdown checks that file too)
section etc_after_remove; etc_hashes 'public.xml.old$' | diff <(grep -v 'public.xml.old$' "$W/etc.before") - && echo same
section probe_removed; probe
"#
        ),
    );
    let all = |name| probed(&s, name);
    assert_eq!(all("probe_before"), [false; 4], "{s:#?}");
    // The dry run projects cf-allow's rich rules into the zone's `_allow` chain (after the
    // admin's rules): the same verdict the sync then gives on the host it changed.
    let (dry, dry_exit) = json(&s, "dry");
    assert_eq!(dry_exit, 0, "{s:#?}");
    assert_eq!(dry["dry_run"], true);
    let (doc, exit) = json(&s, "sync1");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(doc["backend"], "firewalld");
    assert_eq!(doc["changed"], true);
    assert_eq!(dry["reachability"], doc["reachability"], "{s:#?}");
    assert_eq!(doc["reachability"]["reachable"], true, "{s:#?}");
    // Cloudflare in, the rest out, both families.
    let cf_only = [true, false, true, false];
    assert_eq!(all("probe1"), cf_only, "{s:#?}");
    assert_eq!(s.section("admin_after_sync").trim(), "same", "{s:#?}");
    assert_eq!(s.section("etc_after_sync").trim(), "same", "{s:#?}");
    assert_eq!(
        s.section("files_after_sync").trim(),
        "/etc/firewalld/ipsets/cf-allow-v4.xml\n/etc/firewalld/ipsets/cf-allow-v6.xml\n2",
        "no backup files of cf-allow's, two rich rules in the zone file: {s:#?}"
    );
    // The second sync makes no D-Bus write at all (dbus-monitor saw only reads).
    assert_eq!(s.section("sync2_writes").trim(), "", "{s:#?}");
    let (doc, _) = json(&s, "sync2");
    assert_eq!(doc["changed"], false, "{s:#?}");
    for name in ["probe_reload", "probe_complete_reload", "probe_restart"] {
        assert_eq!(all(name), cf_only, "{name}: {s:#?}");
    }
    assert_eq!(all("probe_drift"), [false, false, true, false], "{s:#?}");
    let (doc, exit) = json(&s, "drift_sync");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(doc["added"]["ipv4"], serde_json::json!(["198.51.100.0/24"]));
    let repairs = doc["repairs"].to_string();
    assert!(
        repairs.contains("(permanent)") && repairs.contains("cf-allow-v6"),
        "{repairs}"
    );
    assert_eq!(all("probe_repaired"), cf_only, "{s:#?}");
    assert_eq!(s.section("repaired_rules").trim(), "2");
    // The delta: one entry in, one out for IPv4, one in for IPv6 at runtime; one setEntries
    // per permanent ipset.
    assert_eq!(
        s.section("delta_writes").trim(),
        "addEntry\naddEntry\nremoveEntry\nsetEntries\nsetEntries",
        "{s:#?}"
    );
    let (doc, _) = json(&s, "delta");
    assert_eq!(doc["added"]["ipv4"], serde_json::json!(["192.0.2.0/25"]));
    assert_eq!(
        doc["removed"]["ipv4"],
        serde_json::json!(["192.0.2.128/25"])
    );
    assert_eq!(doc["added"]["ipv6"], serde_json::json!(["2001:db8:3::/64"]));
    let mut want: Vec<&str> = FEED2.to_vec();
    want.sort();
    let want = want.join("\n");
    assert_eq!(s.section("entries_runtime").trim(), want);
    assert_eq!(s.section("entries_permanent").trim(), want);
    let (doc, exit) = json(&s, "status");
    assert_eq!(exit, 0, "{s:#?}");
    assert!(doc.to_string().contains("firewalld"), "{doc}");
    assert!(s.section("remove").contains("ipset cf-allow-v4"), "{s:#?}");
    assert_eq!(s.section("admin_after_remove").trim(), "same", "{s:#?}");
    assert_eq!(s.section("etc_after_remove").trim(), "same", "{s:#?}");
    assert_eq!(all("probe_removed"), [false; 4], "{s:#?}");
}

#[test]
fn firewalld_nftables_sync_reload_restart_delta_remove() {
    sync_through_reloads_and_remove("firewalld_nftables_sync_reload_restart_delta_remove", "");
}

#[test]
fn firewalld_iptables_sync_reload_restart_delta_remove() {
    sync_through_reloads_and_remove(
        "firewalld_iptables_sync_reload_restart_delta_remove",
        "FirewallBackend=iptables",
    );
}

/// Detection picks firewalld when it runs; lockdown closes the port to other sources even
/// where the admin's own service opens it, and leaves the admin's services alone.
#[test]
fn firewalld_detected_and_lockdown() {
    if !firewalld_sandbox::ready("firewalld_detected_and_lockdown") {
        return;
    }
    let env = Env::new("");
    let feed = env.feed("feed.txt", &FEED1);
    env.write_config(
        &config(&feed, "firewalld:\n  lockdown: true\n").replace("backend: firewalld\n", ""),
    );
    let s = run(
        env.dir.path(),
        "",
        r#"
listen 443 22
firewall-cmd -q --permanent --zone=public --add-service=https
firewall-cmd -q --reload
fw_state > "$W/state.before"; etc_hashes > "$W/etc.before"
section open_before; probe
section sync; cfa sync --json
section locked; probe
section ssh; connect 203.0.113.2 203.0.113.1 22
section services; firewall-cmd --list-services; firewall-cmd --permanent --list-services
section rules; firewall-cmd --list-rich-rules | sort
section remove; cfa remove
section admin_after_remove; fw_state | diff "$W/state.before" - && echo same
section etc_after_remove; etc_hashes | diff "$W/etc.before" - && echo same
"#,
    );
    assert_eq!(probed(&s, "open_before"), [true; 4], "{s:#?}");
    let (doc, exit) = json(&s, "sync");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(doc["backend"], "firewalld", "detected: {s:#?}");
    assert_eq!(probed(&s, "locked"), [true, false, true, false], "{s:#?}");
    assert_eq!(probed(&s, "ssh"), [true], "{s:#?}");
    assert_eq!(
        s.section("services").trim(),
        "dhcpv6-client https ssh\ndhcpv6-client https ssh"
    );
    assert!(
        s.section("rules").contains(
            r#"rule priority="-1" family="ipv4" source NOT ipset="cf-allow-v4" port port="443" protocol="tcp" drop"#
        ),
        "{s:#?}"
    );
    assert!(s.section("remove").trim().ends_with("exit=0"), "{s:#?}");
    assert_eq!(s.section("admin_after_remove").trim(), "same", "{s:#?}");
    assert_eq!(s.section("etc_after_remove").trim(), "same", "{s:#?}");
}

/// Every bad case: one clear error line, exit 1, firewalld exactly as before.
#[test]
fn firewalld_bad_cases_leave_firewalld_unchanged() {
    if !firewalld_sandbox::ready("firewalld_bad_cases_leave_firewalld_unchanged") {
        return;
    }
    let env = two_feeds();
    let w = env.dir.path();
    // A config and state dir that the unprivileged user can read and write.
    let nobody_state = w.join("nobody-state");
    let s = run(
        w,
        "FirewallBackend=iptables",
        &format!(
            r#"
chmod 755 "$W"; chmod 644 "$W"/*.txt; mkdir -p "{ns}"; chmod 777 "{ns}"
sed 's|^state_dir: .*|state_dir: {ns}|' "$W/config.yaml" > "$W/config-nobody.yaml"; chmod 644 "$W/config-nobody.yaml"
cp "$W/config.yaml" "$W/config-slow.yaml"; printf 'firewalld:\n  timeout_secs: 1\n' >> "$W/config-slow.yaml"
no_bus() {{ DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent cfa "$@"; }}
as_nobody() {{ setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" --config "$W/config-nobody.yaml" "$@" 2>>"$W/stderr"; echo "exit=$?"; }}
bad() {{ local name=$1; shift; snap > "$W/pre"; section "$name"; "$@"; section "$name-state"; snap | diff "$W/pre" - && echo unchanged; }}
firewall-cmd -q --zone=public --add-service=http
bad runtime_only cfa sync
firewall-cmd -q --reload
firewall-cmd -q --permanent --new-ipset=cf-allow-v4 --type=hash:net; firewall-cmd -q --reload
bad foreign cfa sync
firewall-cmd -q --permanent --delete-ipset=cf-allow-v4
firewall-cmd -q --permanent --new-ipset=cf-allow-v4 --type=hash:net --option=family=inet6
firewall-cmd -q --permanent --ipset=cf-allow-v4 --set-description='managed by cf-allow'; firewall-cmd -q --reload
bad wrong_family cfa sync
firewall-cmd -q --permanent --delete-ipset=cf-allow-v4; firewall-cmd -q --reload
bad unreachable no_bus sync
bad denied as_nobody sync
snap > "$W/pre"
kill -STOP "$(fwsb-firewalld pid)"
section timeout; CONF="$W/config-slow.yaml" cfa sync
kill -CONT "$(fwsb-firewalld pid)"
section timeout-state; snap | diff "$W/pre" - && echo unchanged
section first; cfa sync
# The kernel ipset of cf-allow-v6 can hold one entry: firewalld refuses the second one after
# cf-allow-v4's entries went in; those are taken out again.
busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.fedoraproject.FirewallD1 \
    "$(busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" call org.fedoraproject.FirewallD1 /org/fedoraproject/FirewallD1/config org.fedoraproject.FirewallD1.config getIPSetByName s cf-allow-v6 | cut -d'"' -f2)" \
    org.fedoraproject.FirewallD1.config.ipset addOption ss maxelem 1
firewall-cmd -q --reload
CONF="$W/config2.yaml" bad refused cfa sync
fwsb-firewalld stop
section not_running; cfa sync
"#,
            ns = nobody_state.display()
        ),
    );
    let stderr = s.section("(cf-allow stderr)");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("cf-allow: error: "))
        .collect();
    let cases = [
        (
            "runtime_only",
            "differs from its permanent one (zone public: services)",
        ),
        (
            "foreign",
            "has an ipset cf-allow-v4 that cf-allow did not create",
        ),
        (
            "wrong_family",
            "is hash:net family inet6, not hash:net family inet",
        ),
        (
            "unreachable",
            "cannot connect to the D-Bus system bus (unix:path=/nonexistent)",
        ),
        ("denied", "access to the system bus"),
        ("timeout", "did not answer"),
        ("refused", "firewalld refused ipset.addEntry"),
        ("not_running", "firewalld is not running"),
    ];
    assert_eq!(
        lines.len(),
        cases.len(),
        "one error line per case:\n{stderr}\n{s:#?}"
    );
    for ((name, needle), line) in cases.iter().zip(&lines) {
        assert!(s.section(name).trim().ends_with("exit=1"), "{name}: {s:#?}");
        assert!(line.contains(needle), "{name}: {line}");
        if *name != "not_running" {
            assert_eq!(
                s.section(&format!("{name}-state")).trim(),
                "unchanged",
                "{name}: {s:#?}"
            );
        }
    }
    assert!(s.section("first").trim().ends_with("exit=0"), "{s:#?}");
}
