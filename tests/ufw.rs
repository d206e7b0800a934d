//! End-to-end: `cf-allow` with the ufw backend against the real ufw inside
//! `../shared/ufw/ufw-sandbox --client` (ufw enabled with its defaults: deny incoming, allow
//! 22/tcp; a client namespace on a veth pair; nothing on the host changes). A TCP listener
//! on 80 and 443 runs in the sandbox; connects come from the client's addresses, of which
//! 198.51.100.2 and 2001:db8:1::2 are in the test feed and 203.0.113.2 / 2001:db8:2::2 not.

mod common;

use std::fs;
use std::path::Path;

use cf_allow_testkit::cloudflare_ranges as cloudflare;
use cf_allow_testkit::ufw_sandbox::{self, lines, Sections};
use common::Env;

/// `cfa ARGS…` runs cf-allow with `$W/config.yaml` and `$W/bin` first in PATH, whose
/// `iptables-restore`, `ip6tables-restore` and `ufw` log each call to `$W/calls` before
/// running the real program; appends its stderr to `$W/stderr` and prints `exit=CODE`.
const PRELUDE: &str = r#"
mkdir -p "$W/bin"
for p in iptables-restore ip6tables-restore ufw; do
    real=$(command -v $p)
    printf '#!/bin/sh\necho %s >> "%s/calls"\nexec %s "$@"\n' "$p" "$W" "$real" > "$W/bin/$p"
    chmod +x "$W/bin/$p"
done
: > "$W/calls"
cfa() { PATH="$W/bin:$PATH" "$BIN" --config "$W/config.yaml" "$@" 2>>"$W/stderr"; echo "exit=$?"; }
calls() { sort "$W/calls" | uniq -c | awk '{print $2, $1}'; : > "$W/calls"; }
rules() { sed -n '/^### RULES ###$/,/^### END RULES ###$/p' /etc/ufw/user.rules /etc/ufw/user6.rules; }
"#;

/// Runs `script` in a fresh sandbox; see [`common::sandbox_run`].
fn run(work: &Path, script: &str) -> Sections {
    common::sandbox_run(ufw_sandbox::run, work, PRELUDE, script)
}

use common::section_json as json;

/// Cloudflare's ranges plus the client's allowed networks.
fn feed_ranges() -> Vec<&'static str> {
    let mut all = cloudflare();
    all.extend(["198.51.100.0/24", "2001:db8:1::/64"]);
    all
}

/// A temp dir whose config uses the ufw backend with the feed of [`feed_ranges`]; returns
/// it and the feed's URL.
fn ufw_env() -> (Env, String) {
    let env = Env::new("");
    let feed = env.feed("feed.txt", &feed_ranges());
    config(&env, &feed);
    (env, feed)
}

fn config(env: &Env, feed: &str) {
    env.write_config(&format!(
        "backend: ufw\nports: [80, 443]\nsources:\n  - {feed}\n\
         guard:\n  allow_reserved: true\n  max_shrink_percent: 100\nufw:\n  lock_wait_secs: 1\n"
    ));
}

const CONNECTS_OK: &str = "v4-allowed ok\nv4-blocked fail\nv6-allowed ok\nv6-blocked fail\n";

#[test]
fn ufw_sync_survives_every_restart_path_and_remove_restores_ufws_files() {
    if !ufw_sandbox::ready("ufw_sync_survives_every_restart_path_and_remove_restores_ufws_files") {
        return;
    }
    let (env, _) = ufw_env();
    let w = env.dir.path();

    let s = run(
        w,
        r#"
listen 80 443
# The admin's own rules, besides the sandbox's `ufw allow 22/tcp`.
ufw deny from 192.0.2.0/24 >/dev/null
ufw allow from 192.0.2.5 to any port 8080 proto tcp comment 'my app' >/dev/null
cp /etc/ufw/user.rules "$W/orig.rules"; cp /etc/ufw/user6.rules "$W/orig6.rules"
ufw status numbered > "$W/orig.status"; save > "$W/orig.save"
section before; connects
section dry; cfa sync --dry-run
section dry_json; cfa sync --dry-run --json
section sync1; cfa sync --json
section calls1; calls
section status1; ufw status numbered
section connects1; connects
cp /etc/ufw/user.rules "$W/sync1.rules"; cp /etc/ufw/user6.rules "$W/sync1.rules6"
save > "$W/save1"; stats > "$W/stat1"
sleep 1.1
section sync2; cfa sync --json --exit-code
section calls2; calls
section same; cmp -s "$W/save1" <(save) && cmp -s "$W/stat1" <(stats) && echo yes || echo no
section reload; ufw reload >/dev/null; connects
section reload_chain; cmp -s "$W/save1" <(save) && echo same || diff "$W/save1" <(save)
section disable_enable; ufw disable >/dev/null; ufw --force enable >/dev/null; connects
section init_stop; /lib/ufw/ufw-init stop >/dev/null; connects
section init_start; /lib/ufw/ufw-init start >/dev/null; connects
section sync3; cfa sync --json --exit-code
section status; cfa status --json
section remove; cfa remove --json
section after_remove; connects
cp /etc/ufw/user.rules "$W/removed.rules"; cp /etc/ufw/user6.rules "$W/removed6.rules"
section removed_status; diff "$W/orig.status" <(ufw status numbered) && echo equal
section removed_save; diff "$W/orig.save" <(save) && echo equal
"#,
    );

    assert_eq!(
        s.section("before"),
        "v4-allowed fail\nv4-blocked fail\nv6-allowed fail\nv6-blocked fail\n",
        "{s:#?}"
    );
    // --dry-run: the plan, also in ufw's words, and nothing changed (sync1 adds everything).
    let dry = s.section("dry");
    assert!(dry.contains("  + 173.245.48.0/20\n"), "{dry}");
    assert!(
        dry.contains(
            "  ufw allow proto tcp from 2400:cb00::/32 to any port 80,443 comment cf-allow\n"
        ),
        "{dry}"
    );
    // The dry run's verdict is the projection of cf-allow's rules appended to ufw's user
    // chains: Cloudflare would get through (the sync then proves it with real connects).
    let (dry, exit) = json(&s, "dry_json");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["reachability"]["reachable"], true, "{dry}");
    let (sync1, exit) = json(&s, "sync1");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(sync1["backend"], "ufw");
    assert_eq!(sync1["added"]["ipv4"].as_array().map(Vec::len), Some(16));
    assert_eq!(sync1["added"]["ipv6"].as_array().map(Vec::len), Some(8));
    // One restore per family, no ufw process.
    assert_eq!(
        s.section("calls1"),
        "ip6tables-restore 1\niptables-restore 1\n"
    );
    let status = s.section("status1");
    for net in feed_ranges() {
        let line = status
            .lines()
            .find(|l| l.contains(&format!(" {net} ")))
            .unwrap_or_else(|| panic!("{net} not in ufw status:\n{status}"));
        assert!(
            line.contains("80,443/tcp")
                && line.contains("ALLOW IN")
                && line.ends_with("# cf-allow"),
            "{line}"
        );
    }
    // The admin's rules keep their numbers: cf-allow's come after them.
    let numbered = lines(status);
    assert!(
        numbered.iter().any(|l| l.starts_with("[ 1] 22/tcp ")),
        "{status}"
    );
    assert!(
        numbered.iter().any(|l| l.starts_with("[ 2] Anywhere ")
            && l.contains("DENY IN")
            && l.contains("192.0.2.0/24")),
        "{status}"
    );
    assert!(
        numbered
            .iter()
            .any(|l| l.starts_with("[ 3] 8080/tcp ") && l.contains("# my app")),
        "{status}"
    );
    assert_eq!(s.section("connects1"), CONNECTS_OK, "{s:#?}");

    // The files: the admin's bytes, then cf-allow's entries, exactly as ufw writes them.
    let orig = fs::read_to_string(w.join("orig.rules")).expect("orig");
    let synced = fs::read_to_string(w.join("sync1.rules")).expect("sync1");
    let (head, tail) = orig.split_once("### END RULES ###").expect("markers");
    assert!(synced.starts_with(head), "admin part changed:\n{synced}");
    assert!(synced.ends_with(&format!("### END RULES ###{tail}")));
    assert!(synced.contains(
        "\n### tuple ### allow tcp 80,443 0.0.0.0/0 any 173.245.48.0/20 in comment=63662d616c6c6f77\n-A ufw-user-input -p tcp -m multiport --dports 80,443 -s 173.245.48.0/20 -j ACCEPT\n\n"
    ));

    // Second sync: no change, no program that changes anything, no file touched.
    let (sync2, exit) = json(&s, "sync2");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(sync2["changed"], false);
    assert_eq!(s.section("calls2"), "");
    assert_eq!(s.section("same").trim(), "yes");

    // Every ufw restart path keeps the rules, without a sync.
    for section in ["reload", "disable_enable", "init_start"] {
        assert_eq!(s.section(section), CONNECTS_OK, "{section}: {s:#?}");
    }
    // ufw's own reload builds the very chains cf-allow's delta built.
    assert_eq!(s.section("reload_chain").trim(), "same", "{s:#?}");
    // Stopped ufw means no firewall at all (policy ACCEPT): everything gets in.
    assert_eq!(
        s.section("init_stop"),
        "v4-allowed ok\nv4-blocked ok\nv6-allowed ok\nv6-blocked ok\n"
    );
    let (sync3, exit) = json(&s, "sync3");
    assert_eq!(
        (exit, &sync3["changed"]),
        (0, &serde_json::json!(false)),
        "{s:#?}"
    );
    let (status, exit) = json(&s, "status");
    assert_eq!(exit, 0, "{s:#?}");
    assert_eq!(status["backend"], "ufw");

    // Remove: ufw's files, `ufw status` and the chains exactly as before cf-allow.
    let (removed, exit) = json(&s, "remove");
    assert_eq!(exit, 0, "{s:#?}");
    assert!(removed.to_string().contains("173.245.48.0/20"), "{removed}");
    assert_eq!(
        s.section("after_remove"),
        "v4-allowed fail\nv4-blocked fail\nv6-allowed fail\nv6-blocked fail\n"
    );
    for (removed, orig) in [
        ("removed.rules", "orig.rules"),
        ("removed6.rules", "orig6.rules"),
    ] {
        assert_eq!(
            fs::read(w.join(removed)).expect("removed"),
            fs::read(w.join(orig)).expect("orig"),
            "{removed} differs from {orig}"
        );
    }
    assert_eq!(s.section("removed_status").trim(), "equal", "{s:#?}");
    assert_eq!(s.section("removed_save").trim(), "equal", "{s:#?}");
}

#[test]
fn ufw_allowed_sources_keep_connecting_during_first_and_changed_syncs() {
    if !ufw_sandbox::ready("ufw_allowed_sources_keep_connecting_during_first_and_changed_syncs") {
        return;
    }
    let env = Env::new("");
    let w = env.dir.path();
    let feed1 = env.feed("feed1.txt", &feed_ranges());
    let mut other = feed_ranges();
    other.retain(|n| *n != "173.245.48.0/20" && *n != "2400:cb00::/32");
    other.push("192.0.2.0/24");
    let feed2 = env.feed("feed2.txt", &other);
    config(&env, &feed1);

    let s = run(
        w,
        &format!(
            r#"
listen 443
probe 198.51.100.2 198.51.100.1 443 30 > "$W/first.ok" & p1=$!
probe 203.0.113.2 203.0.113.1 443 30 > "$W/first.blocked" & p2=$!
until [ -e "$W/first.ok.started" ] && [ -e "$W/first.blocked.started" ]; do sleep 0.05; done
sleep 0.5
section sync1; cfa sync --json >/dev/null; echo done
wait $p1 $p2
section first_ok; cat "$W/first.ok"
section first_blocked; cat "$W/first.blocked"
probe 198.51.100.2 198.51.100.1 443 60 > "$W/changed.ok" & p1=$!
probe 203.0.113.2 203.0.113.1 443 60 > "$W/changed.blocked" & p2=$!
probe 2001:db8:1::2 2001:db8:1::1 443 60 > "$W/changed.ok6" & p3=$!
section changed; for i in 1 2 3 4 5 6; do cfa sync --source {feed2} | tail -1; cfa sync --source {feed1} | tail -1; done
wait $p1 $p2 $p3
section changed_ok; cat "$W/changed.ok" "$W/changed.ok6"
section changed_blocked; cat "$W/changed.blocked"
"#
        ),
    );
    assert_eq!(s.section("sync1").trim(), "done");
    // First sync: the blocked source never gets in; the allowed one is let in once, for good.
    let blocked = lines(s.section("first_blocked"));
    assert_eq!(blocked.len(), 30);
    assert!(blocked.iter().all(|l| *l == "fail"), "{blocked:?}");
    let first = lines(s.section("first_ok"));
    assert_eq!(first.len(), 30);
    let opened = first.iter().position(|l| *l == "ok").expect("never let in");
    assert!(first[opened..].iter().all(|l| *l == "ok"), "{first:?}");
    assert_eq!(first[0], "fail", "allowed before the sync: {first:?}");
    // Twelve changed-list syncs: every allowed connect succeeds, no blocked one does.
    assert_eq!(lines(s.section("changed")), vec!["exit=0"; 12], "{s:#?}");
    let ok = lines(s.section("changed_ok"));
    assert_eq!(ok.len(), 120);
    assert!(ok.iter().all(|l| *l == "ok"), "{ok:?}");
    let blocked = lines(s.section("changed_blocked"));
    assert_eq!(blocked.len(), 60);
    assert!(blocked.iter().all(|l| *l == "fail"), "{blocked:?}");
}

#[test]
fn ufw_drift_is_repaired_and_foreign_or_blocking_rules_are_reported() {
    if !ufw_sandbox::ready("ufw_drift_is_repaired_and_foreign_or_blocking_rules_are_reported") {
        return;
    }
    let (env, _) = ufw_env();
    let w = env.dir.path();

    let s = run(
        w,
        r#"
listen 443
# An admin deny that shadows a Cloudflare range, and a tagged rule cf-allow did not write.
ufw deny from 104.16.0.0/16 >/dev/null
ufw deny proto tcp from 192.0.2.0/24 to any port 25 comment cf-allow >/dev/null
section dry; cfa sync --dry-run --json
cfa sync >/dev/null
rules > "$W/rules1"
section warnings; cfa sync --json
section ufw_delete; ufw delete allow proto tcp from 198.51.100.0/24 to any port 80,443 >/dev/null; connects
section repair1; cfa sync --json
section repaired1; connects; rules | diff "$W/rules1" - && echo same
# A hand edit of the file (another port) that ufw then loads.
sed -i 's|allow tcp 80,443 0.0.0.0/0 any 198.51.100.0/24|allow tcp 8443 0.0.0.0/0 any 198.51.100.0/24|; s|--dports 80,443 -s 198.51.100.0/24|--dports 8443 -s 198.51.100.0/24|' /etc/ufw/user.rules
ufw reload >/dev/null
section hand_edit; connects
section repair2; cfa sync --json
section repaired2; connects; rules | grep -c '198.51.100.0/24'
# A rule deleted from the running chain behind ufw's back.
iptables -D ufw-user-input -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT
section live_delete; connects
section repair3; cfa sync --json
section repaired3; connects
section foreign; rules | grep -A1 'deny tcp 25'
"#,
    );
    // Before the first sync, the dry run projects cf-allow's rules after the admin's deny:
    // the same finding the verdict after the real sync makes (below).
    let (dry, exit) = json(&s, "dry");
    assert_eq!(exit, 3, "{s:#?}");
    assert_eq!(dry["reachability"]["reachable"], false, "{dry}");
    let (warned, exit) = json(&s, "warnings");
    assert_eq!(
        dry["reachability"]["blocked"], warned["reachability"]["blocked"],
        "{dry}"
    );
    // The admin's deny before cf-allow's rules blocks part of a range: the verdict says so
    // (exit 3), naming exactly the blocked sub-range.
    assert_eq!(exit, 3, "{s:#?}");
    assert_eq!(warned["reachability"]["reachable"], false, "{warned}");
    assert_eq!(
        warned["reachability"]["blocked"][0]["ranges"],
        serde_json::json!(["104.16.0.0/16"]),
        "{warned}"
    );
    assert_eq!(warned["changed"], false);
    let warnings = warned["warnings"].to_string();
    assert!(
        warnings.contains("deny from 104.16.0.0/16") && warnings.contains("104.16.0.0/13"),
        "{warnings}"
    );
    // The verdict's fix for the admin's rule is that rule, not another backend.
    assert!(
        warnings.contains("fix: delete or narrow this ufw rule (`ufw status numbered` lists it)"),
        "{warnings}"
    );
    assert!(
        warnings.contains("deny proto tcp from 192.0.2.0/24 to any port 25")
            && warnings.contains("left alone"),
        "{warnings}"
    );

    assert!(s.section("ufw_delete").starts_with("v4-allowed fail\n"));
    let (repair, exit) = json(&s, "repair1");
    // Repaired, and still exit 3: the admin's deny of 104.16.0.0/16 stays in place.
    assert_eq!(exit, 3, "{s:#?}");
    assert_eq!(
        repair["added"]["ipv4"],
        serde_json::json!(["198.51.100.0/24"])
    );
    let repaired = s.section("repaired1");
    assert!(repaired.starts_with(CONNECTS_OK), "{s:#?}");
    // The range comes back where it was (it sorts last), so the files are as after the sync.
    assert!(repaired.ends_with("same\n"), "{s:#?}");

    assert!(s.section("hand_edit").starts_with("v4-allowed fail\n"));
    let (repair, exit) = json(&s, "repair2");
    // Repaired, and still exit 3: the admin's deny of 104.16.0.0/16 stays in place.
    assert_eq!(exit, 3, "{s:#?}");
    assert_eq!(repair["changed"], true);
    assert!(repair["repairs"].to_string().contains("8443"), "{repair}");
    assert_eq!(s.section("repaired2"), format!("{CONNECTS_OK}2\n"));

    assert!(s.section("live_delete").starts_with("v4-allowed fail\n"));
    let (repair, exit) = json(&s, "repair3");
    // Repaired, and still exit 3: the admin's deny of 104.16.0.0/16 stays in place.
    assert_eq!(exit, 3, "{s:#?}");
    assert!(
        repair["repairs"]
            .to_string()
            .contains("running ufw-user-input chain"),
        "{repair}"
    );
    assert_eq!(s.section("repaired3"), CONNECTS_OK);
    // The foreign tagged rule is still there, untouched.
    assert_eq!(
        lines(s.section("foreign")),
        vec![
            "### tuple ### deny tcp 25 0.0.0.0/0 any 192.0.2.0/24 in comment=63662d616c6c6f77",
            "-A ufw-user-input -p tcp --dport 25 -s 192.0.2.0/24 -j DROP"
        ]
    );
}

#[test]
fn ufw_ipv6_off_warns_and_inactive_ufw_is_refused() {
    if !ufw_sandbox::ready("ufw_ipv6_off_warns_and_inactive_ufw_is_refused") {
        return;
    }
    let (env, feed) = ufw_env();
    let w = env.dir.path();
    // No `backend:`: an active ufw is detected.
    fs::write(
        w.join("auto.yaml"),
        format!(
            "state_dir: {}\nsources: [{feed}]\n",
            env.state_dir().display()
        ),
    )
    .expect("auto.yaml");

    let s = run(
        w,
        r#"
listen 443
sed -i 's/^IPV6=yes/IPV6=no/' /etc/default/ufw
ufw reload >/dev/null
section sync; cfa sync --json
section connects; connects
cp /etc/ufw/user6.rules "$W/v6.rules"
section again; cfa sync --json
section doctor; cfa doctor --offline --json
section detected; "$BIN" --config "$W/auto.yaml" status --json 2>/dev/null | grep -o '"backend": *"[a-z]*"'
# A ufw command holding ufw's lock: cf-allow waits (1 s here), then gives up, changing nothing.
python3 -c 'import fcntl, time; f = open("/run/ufw.lock", "w"); fcntl.lockf(f, fcntl.LOCK_EX); open("'"$W"'/locked", "w").close(); time.sleep(4)' & locker=$!
until [ -e "$W/locked" ]; do sleep 0.05; done
stats > "$W/stat_locked"
section busy; cfa sync
section busy_stat; cmp -s "$W/stat_locked" <(stats) && echo same
wait $locker
ufw disable >/dev/null
stats > "$W/stat0"
section inactive; cfa sync
section inactive_stat; cmp -s "$W/stat0" <(stats) && echo same
"#,
    );
    let (sync, exit) = json(&s, "sync");
    // IPV6=no: the IPv6 ranges cannot get in, and the verdict says so (exit 3).
    assert_eq!(exit, 3, "{s:#?}");
    assert_eq!(sync["reachability"]["reachable"], false, "{sync}");
    assert_eq!(sync["added"]["ipv4"].as_array().map(Vec::len), Some(16));
    assert!(sync["warnings"].to_string().contains("IPV6=no"), "{sync}");
    assert_eq!(
        s.section("connects"),
        "v4-allowed ok\nv4-blocked fail\nv6-allowed fail\nv6-blocked fail\n"
    );
    let v6 = fs::read_to_string(w.join("v6.rules")).expect("user6.rules");
    assert!(!v6.contains("comment=63662d616c6c6f77"), "{v6}");
    // The IPv6 ranges stay unapplied: every sync says so, and changes nothing else.
    let (again, exit) = json(&s, "again");
    assert_eq!(exit, 3, "IPv6 still cannot get in: {again}");
    assert_eq!(again["added"]["ipv4"], serde_json::json!([]));
    // Idempotent: the IPv6 ranges ufw cannot carry are not planned again and again.
    assert_eq!(again["added"]["ipv6"], serde_json::json!([]), "{again}");
    assert_eq!(again["changed"], false, "{again}");
    assert!(again["warnings"].to_string().contains("IPV6=no"), "{again}");
    assert_eq!(
        again["reachability"]["blocked"][0]["family"], "ipv6",
        "{again}"
    );
    assert!(
        again["warnings"]
            .to_string()
            .contains("fix: set IPV6=yes in /etc/default/ufw and run `ufw reload`"),
        "{again}"
    );
    // doctor agrees with sync: ufw holds every range it can carry here (the firewall check is
    // OK and says IPv6 is left out), and the verdict FAILs for the IPv6 ranges.
    let (doctor, _) = json(&s, "doctor");
    let check = |id: &str| {
        doctor["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id).cloned())
            .unwrap_or_else(|| panic!("no {id} check: {doctor}"))
    };
    let firewall = check("firewall");
    assert_eq!(firewall["status"], "ok", "{firewall}");
    assert!(
        firewall["summary"]
            .as_str()
            .is_some_and(|m| m.contains("IPv6 left out")),
        "{firewall}"
    );
    assert_eq!(check("reachability")["status"], "fail", "{doctor}");

    assert_eq!(
        s.section("detected").trim(),
        "\"backend\": \"ufw\"",
        "{s:#?}"
    );
    assert!(s.section("busy").contains("exit=1"), "{s:#?}");
    assert_eq!(s.section("busy_stat").trim(), "same");
    let inactive = s.section("inactive");
    assert!(inactive.contains("exit=1"), "{inactive}");
    let stderr = s.section("(cf-allow stderr)");
    assert!(
        stderr.contains("ufw is inactive") && stderr.contains("never enables ufw"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a ufw command is running (it holds /run/ufw.lock; waited 1 s)"),
        "{stderr}"
    );
    assert_eq!(s.section("inactive_stat").trim(), "same");
}
