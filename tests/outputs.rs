//! The outputs (issue 15) against the real servers from Debian, in the testkit's server
//! sandbox with a veth client: nginx's realip module, Apache's mod_remoteip and fail2ban's
//! ignoreip, written by `cf-allow sync` from a file:// feed, reloaded, restored, removed;
//! and the doctor's fail2ban check on what the real fail2ban reports.

mod common;

use cf_allow_doctor::fail2ban as doctor_fail2ban;
use cf_allow_doctor::{Check, Status};

use std::ffi::OsStr;

use cf_allow_diff::{IpNet, RangeSet};
use cf_allow_testkit::server_sandbox::{self, Sections};
use common::{Env, BIN};

const FEED_1: [&str; 2] = ["198.51.100.0/24", "2001:db8:1::/64"];
const FEED_2: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/64"];

/// A config for the sandbox: the nftables backend guarding only port 9443 (so the servers'
/// port 80 stays reachable from every client address), the feed `feed.txt`, then `outputs`.
fn env_with(outputs: &str) -> Env {
    let env = Env::new("");
    let feed = env.feed("feed.txt", &FEED_1);
    env.write_config(&format!(
        "backend: nftables\nports: [9443]\nsources: [\"{feed}\"]\nguard:\n  allow_reserved: true\n  max_shrink_percent: 100\noutputs:\n{outputs}"
    ));
    std::fs::write(env.path("feed2.txt"), FEED_2.join("\n") + "\n").expect("feed 2");
    env
}

fn run(env: &Env, script: &str) -> Sections {
    let config = env.config();
    let vars: [(&str, &OsStr); 2] = [("BIN", OsStr::new(BIN)), ("CONFIG", config.as_os_str())];
    server_sandbox::run(env.dir.path(), &vars, script, String::new)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Shell helpers for the web-server scripts: `cfa ARGS…` runs cf-allow with the test's
/// config; `req SRC [HOST]` sends a request from the client address SRC with
/// `CF-Connecting-IP: 203.0.113.9` (to HOST, default 198.51.100.1) and prints the line it
/// left in the access log.
const WEB: &str = r#"
cfa() { "$BIN" --config "$CONFIG" "$@"; }
req() {
    : > "$LOG"
    client curl -s -o /dev/null --interface "$1" -H 'CF-Connecting-IP: 203.0.113.9' "http://${2:-198.51.100.1}/"
    wait_for test -s "$LOG"; cat "$LOG"
}
mt() { stat -c %Y.%i "$1"; }
# Waits until none of the server's workers is of generation $1 (a reload is asynchronous).
settle() {
    for _ in $(seq 150); do
        w=$(workers); old=0
        for p in $1; do case " $w " in *" $p "*) old=1 ;; esac; done
        [ -n "$w" ] && [ $old = 0 ] && return 0
        sleep 0.1
    done
    echo "settle: generation $1 still running" >&2
}
"#;

/// The phases every web-server test runs, after its server is up; `$F` is the owned file,
/// `workers` prints the server's worker PIDs (its generation), `$LOG` its access log;
/// `break_it` makes the next config test fail, `fix_it` undoes that.
const PHASES: &str = r#"
g0=$(workers)
section sync1; cfa sync --json
settle "$g0"
section status1; cfa status --json
section file1; cat "$F"
section inside1; req 198.51.100.2
section outside1; req 203.0.113.2
section inside6; req 2001:db8:1::2 '[2001:db8:1::1]'
m1=$(mt "$F"); g1=$(workers)
section noop; cfa sync --json
section noop_same; [ "$(mt "$F")" = "$m1" ] && echo mtime-same; [ "$(workers)" = "$g1" ] && echo workers-same
cp "$W/feed2.txt" "$W/feed.txt"
section sync2; cfa sync --json
settle "$g1"
section reloaded; [ "$(workers)" != "$g1" ] && echo new-generation
section outside2; req 203.0.113.2
cp "$F" "$W/before-fail"
cp "$W/feed1.txt" "$W/feed.txt"
break_it
section fail; cfa sync 2>&1; echo "rc=$?"
section fail_same; cmp "$F" "$W/before-fail" && echo identical
section still_serving; req 198.51.100.2
fix_it
g3=$(workers)
section remove; cfa remove --json 2>"$W/remove.err"
section remove_err; cat "$W/remove.err"
settle "$g3"
section removed; [ -e "$F" ] || echo gone
section serving_after_remove; req 198.51.100.2
"#;

/// What every web-server test asserts about the sections of [`PHASES`].
fn assert_phases(s: &Sections, name: &str, file_has: &str, file_new_range: &str, refused: &str) {
    eprintln!("{s:#?}");
    let sync1 = json(s.section("sync1"));
    assert_eq!(sync1["outputs"][0]["name"], name, "{sync1}");
    assert_eq!(sync1["outputs"][0]["changed"], true, "{sync1}");
    assert!(
        s.section("file1").starts_with("# Managed by cf-allow"),
        "{}",
        s.section("file1")
    );
    assert!(
        s.section("file1").contains(file_has),
        "{}",
        s.section("file1")
    );
    assert!(!s.section("file1").contains(file_new_range));
    assert_eq!(
        s.section("inside1").trim(),
        "203.0.113.9",
        "a peer in the list sets the visitor's address"
    );
    assert_eq!(
        s.section("outside1").trim(),
        "203.0.113.2",
        "a peer outside the list cannot"
    );
    let status = json(s.section("status1"));
    assert_eq!(status["outputs"][0]["file"], "in_sync", "{status}");
    assert_eq!(
        status["outputs"][0]["loaded"], true,
        "the server's config dump includes the file: {status}"
    );
    let noop = json(s.section("noop"));
    assert_eq!(noop["outputs"][0]["changed"], false, "{noop}");
    assert_eq!(noop["changed"], false, "{noop}");
    assert_eq!(
        s.section("noop_same"),
        "mtime-same\nworkers-same\n",
        "a no-op writes and reloads nothing"
    );
    let sync2 = json(s.section("sync2"));
    assert_eq!(sync2["outputs"][0]["changed"], true, "{sync2}");
    assert_eq!(
        s.section("reloaded").trim(),
        "new-generation",
        "the server was reloaded"
    );
    assert_eq!(
        s.section("outside2").trim(),
        "203.0.113.9",
        "the new range is honoured"
    );
    let fail = s.section("fail");
    // The feed changed, so the firewall was changed before the output's test failed: exit 4,
    // never 1 (which says the firewall is as it was).
    assert!(fail.contains("rc=4"), "{fail}");
    assert!(
        fail.contains(refused),
        "the error names the test's output: {fail}"
    );
    assert_eq!(
        s.section("fail_same").trim(),
        "identical",
        "the previous file is back byte for byte"
    );
    assert_eq!(
        s.section("still_serving").trim(),
        "203.0.113.9",
        "the server still serves, with the old file"
    );
    let remove = json(s.section("remove"));
    assert!(
        !s.section("remove_err").contains("error"),
        "{}",
        s.section("remove_err")
    );
    assert_eq!(remove["outputs"][0]["changed"], true, "{remove}");
    assert_eq!(s.section("removed").trim(), "gone");
    assert_eq!(
        s.section("serving_after_remove").trim(),
        "198.51.100.2",
        "after remove the header is not trusted"
    );
}

#[test]
fn nginx_trusts_exactly_the_list() {
    if !server_sandbox::ready("nginx_trusts_exactly_the_list", &["nginx", "curl", "nft"]) {
        return;
    }
    let env = env_with("  nginx: {}\n");
    std::fs::write(env.path("feed1.txt"), FEED_1.join("\n") + "\n").expect("feed 1");
    let script = format!(
        r#"{WEB}
F=/etc/nginx/conf.d/cf-allow-realip.conf LOG=/var/log/nginx/cfa-test.log
break_it() {{ cp "$CONFIG" "$W/config.good"; sed 's|^  nginx: {{}}|  nginx: {{test: [sh, -c, "echo refused by the test override >\&2; exit 1"]}}|' "$W/config.good" > "$CONFIG"; }}
fix_it() {{ cp "$W/config.good" "$CONFIG"; }}
echo "log_format cfa_test '\$remote_addr';" > /etc/nginx/conf.d/00-cfa-test-log.conf
cat > /etc/nginx/sites-enabled/default <<'EOF'
server {{ listen 80 default_server; listen [::]:80 default_server; access_log /var/log/nginx/cfa-test.log cfa_test; location / {{ return 200 "ok\n"; }} }}
EOF
workers() {{ ps -o pid= --ppid "$(cat /run/nginx.pid)" | sort | tr -d ' ' | tr '\n' ' '; }}
nginx
wait_for client curl -sf http://198.51.100.1/
{PHASES}
cfa sync >/dev/null 2>&1
cp "$F" "$W/before-bad"; cp "$W/feed.txt" "$W/feed.good"
printf '131.0.72.0/222400:cb00::/32\n' > "$W/feed.txt"
section bad_feed; cfa sync 2>&1; echo "rc=$?"
section bad_feed_same; cmp "$F" "$W/before-bad" && echo identical
cp "$W/feed.good" "$W/feed.txt"
section status_ok; cfa status --json
section status_text; cfa status
echo '# an edit' >> "$F"
section status_drift; cfa status --json
echo 'set_real_ip_from 192.0.2.0/24;' > "$F"; cp "$F" "$W/admin.conf"
section not_owned; cfa sync 2>&1; echo "rc=$?"
section not_owned_same; cmp "$F" "$W/admin.conf" && echo identical
section remove_not_owned; cfa remove 2>&1; echo "rc=$?"; cmp "$F" "$W/admin.conf" && echo identical
"#
    );
    let s = run(&env, &script);
    assert!(
        s.section("bad_feed").contains("rc=1"),
        "{}",
        s.section("bad_feed")
    );
    assert_eq!(
        s.section("bad_feed_same").trim(),
        "identical",
        "a refused list writes nothing"
    );
    let ok = json(s.section("status_ok"));
    assert_eq!(ok["outputs"][0]["file"], "in_sync", "{ok}");
    assert_eq!(
        ok["outputs"][0]["loaded"], true,
        "nginx -T contains the file: {ok}"
    );
    assert_eq!(ok["in_sync"], true, "{ok}");
    assert!(
        s.section("status_text").contains(
            "output:  nginx /etc/nginx/conf.d/cf-allow-realip.conf in sync, loaded by the server\n"
        ),
        "{}",
        s.section("status_text")
    );
    let drift = json(s.section("status_drift"));
    assert_eq!(drift["outputs"][0]["file"], "drifted", "{drift}");
    assert_eq!(drift["in_sync"], false, "{drift}");
    let refused = s.section("not_owned");
    assert!(
        refused.contains("is not managed by cf-allow") && refused.contains("rc=1"),
        "{refused}"
    );
    assert_eq!(s.section("not_owned_same").trim(), "identical");
    let kept = s.section("remove_not_owned");
    assert!(
        // remove deleted the firewall's objects before it refused the foreign file: exit 4.
        kept.contains("rc=4") && kept.contains("identical"),
        "{kept}"
    );
    assert_phases(
        &s,
        "nginx",
        "set_real_ip_from 198.51.100.0/24;\nset_real_ip_from 2001:db8:1::/64;\nreal_ip_header CF-Connecting-IP;\n",
        "203.0.113.0/24",
        "refused by the test override",
    );
}

#[test]
fn apache_trusts_exactly_the_list() {
    if !server_sandbox::ready(
        "apache_trusts_exactly_the_list",
        &["apachectl", "a2enmod", "curl", "nft"],
    ) {
        return;
    }
    let env = env_with("  apache: {}\n");
    std::fs::write(env.path("feed1.txt"), FEED_1.join("\n") + "\n").expect("feed 1");
    let script = format!(
        r#"{WEB}
F=/etc/apache2/conf-available/cf-allow-realip.conf LOG=/var/log/apache2/cfa-test.log
a2enmod -q remoteip >/dev/null
cat > /etc/apache2/sites-enabled/000-default.conf <<'EOF'
<VirtualHost *:80>
    LogFormat "%a" cfa_test
    CustomLog /var/log/apache2/cfa-test.log cfa_test
    DocumentRoot /var/www/html
</VirtualHost>
EOF
echo ServerName cfa-test > /etc/apache2/conf-enabled/00-cfa-servername.conf
# A broken include: the real `apachectl -t` refuses it.
break_it() {{ echo 'CfAllowBrokenDirective on' > /etc/apache2/conf-enabled/zz-cfa-broken.conf; }}
fix_it() {{ rm /etc/apache2/conf-enabled/zz-cfa-broken.conf; }}
workers() {{ ps -o pid= --ppid "$(cat /run/apache2/apache2.pid)" | sort | tr -d ' ' | tr '\n' ' '; }}
apachectl start
wait_for client curl -sf http://198.51.100.1/
{PHASES}
section link; readlink /etc/apache2/conf-enabled/cf-allow-realip.conf || echo no-link
"#
    );
    let s = run(&env, &script);
    assert_phases(
        &s,
        "apache",
        "RemoteIPHeader CF-Connecting-IP\nRemoteIPTrustedProxy 198.51.100.0/24\nRemoteIPTrustedProxy 2001:db8:1::/64\n",
        "203.0.113.0/24",
        "CfAllowBrokenDirective",
    );
    assert_eq!(
        s.section("link").trim(),
        "no-link",
        "remove deleted the enabling link too"
    );
}

/// Starts the real fail2ban with two jails on a dummy ban action: `cfa-web` inheriting the
/// admin's `[DEFAULT]` ignoreip, `cfa-admin` with its own.
const FAIL2BAN_UP: &str = r#"
cfa() { "$BIN" --config "$CONFIG" "$@"; }
rm -f /etc/fail2ban/jail.d/defaults-debian.conf
cat > /etc/fail2ban/jail.local <<'EOF'
[DEFAULT]
ignoreip = 127.0.0.1/8 ::1 192.0.2.77
banaction = dummy
backend = polling

[cfa-web]
enabled = true
filter = sshd
logpath = /var/log/cfa-web.log
port = http

[cfa-admin]
enabled = true
filter = sshd
logpath = /var/log/cfa-web.log
port = http
ignoreip = 127.0.0.1/8 192.0.2.88
EOF
touch /var/log/cfa-web.log
mkdir -p /run/fail2ban
fail2ban-client -x start >/dev/null
wait_for fail2ban-client ping
"#;

#[test]
fn fail2ban_ignores_the_list_and_keeps_the_admins_entries() {
    if !server_sandbox::ready(
        "fail2ban_ignores_the_list_and_keeps_the_admins_entries",
        &["fail2ban-client", "nft"],
    ) {
        return;
    }
    let env = env_with("  fail2ban: {}\n");
    let script = format!(
        r#"{FAIL2BAN_UP}
section sync; cfa sync --json
section web; fail2ban-client get cfa-web ignoreip
section admin; fail2ban-client get cfa-admin ignoreip
section file; cat /etc/fail2ban/jail.d/cf-allow.local
section noop; cfa sync --json
section status; cfa status --json
section remove; cfa remove --json
section web_after_remove; fail2ban-client get cfa-web ignoreip
section jail_local; cat /etc/fail2ban/jail.local
"#
    );
    let s = run(&env, &script);
    eprintln!("{s:#?}");
    assert_eq!(json(s.section("sync"))["outputs"][0]["changed"], true);
    let nets = |name: &str| -> Vec<IpNet> {
        cf_allow_outputs::fail2ban::listed_nets(s.section(name))
            .iter()
            .map(IpNet::trunc)
            .collect()
    };
    let net = |t: &str| t.parse::<IpNet>().expect("net").trunc();
    for want in [
        "127.0.0.1/8",
        "::1/128",
        "192.0.2.77/32",
        "198.51.100.0/24",
        "2001:db8:1::/64",
    ] {
        assert!(
            nets("web").contains(&net(want)),
            "cfa-web ignores {want}: {}",
            s.section("web")
        );
    }
    for want in [
        "127.0.0.1/8",
        "192.0.2.88/32",
        "198.51.100.0/24",
        "2001:db8:1::/64",
    ] {
        assert!(
            nets("admin").contains(&net(want)),
            "cfa-admin ignores {want}: {}",
            s.section("admin")
        );
    }
    assert!(
        !nets("admin").contains(&net("192.0.2.77/32")),
        "cfa-admin keeps its own list"
    );
    assert!(
        s.section("file").contains(
            "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 192.0.2.77 198.51.100.0/24 2001:db8:1::/64\n"
        ),
        "{}",
        s.section("file")
    );
    assert_eq!(json(s.section("noop"))["outputs"][0]["changed"], false);
    let status = json(s.section("status"));
    assert_eq!(status["outputs"][0]["file"], "in_sync", "{status}");
    assert_eq!(status["outputs"][0]["loaded"], true, "{status}");
    assert_eq!(json(s.section("remove"))["outputs"][0]["changed"], true);
    assert!(
        !nets("web_after_remove").contains(&net("198.51.100.0/24")),
        "{}",
        s.section("web_after_remove")
    );
    assert!(nets("web_after_remove").contains(&net("192.0.2.77/32")));
    assert!(
        s.section("jail_local")
            .contains("ignoreip = 127.0.0.1/8 ::1 192.0.2.77\n"),
        "the admin's file is untouched"
    );
}

/// The doctor's check on what the real fail2ban reports for a jail.
fn doctor_on(s: &Sections, jail: &str, ranges: &RangeSet) -> Vec<Check> {
    use cf_allow_outputs::fail2ban::{jail_list, listed_nets};
    assert!(
        jail_list(s.section("status")).contains(&jail.to_string()),
        "{}",
        s.section("status")
    );
    let jails = [doctor_fail2ban::Jail {
        name: jail.to_string(),
        banned: listed_nets(s.section(&format!("{jail}_ban")))
            .iter()
            .map(|n| n.addr())
            .collect(),
        ignoreip: listed_nets(s.section(&format!("{jail}_ignore"))),
    }];
    doctor_fail2ban::check(Some(&jails), ranges)
}

#[test]
fn doctor_fail2ban_finds_banned_edges_and_uncovered_jails() {
    if !server_sandbox::ready(
        "doctor_fail2ban_finds_banned_edges_and_uncovered_jails",
        &["fail2ban-client"],
    ) {
        return;
    }
    let env = env_with("  fail2ban: {}\n");
    let script = format!(
        r#"{FAIL2BAN_UP}
fail2ban-client set cfa-web banip 198.51.100.7 >/dev/null
section status; fail2ban-client status
for j in cfa-web cfa-admin; do
    section ${{j}}_ban; fail2ban-client get $j banip
    section ${{j}}_ignore; fail2ban-client get $j ignoreip
done
"#
    );
    let s = run(&env, &script);
    let ranges = RangeSet::exact(FEED_1.iter().map(|n| n.parse::<IpNet>().expect("net")));
    let web = doctor_on(&s, "cfa-web", &ranges);
    assert_eq!(web[0].status, Status::Fail, "{web:#?}\n{s:#?}");
    assert_eq!(
        web[0].fix.as_deref(),
        Some("fail2ban-client set cfa-web unbanip 198.51.100.7")
    );
    assert!(
        web[0].summary.contains("198.51.100.7 (in 198.51.100.0/24)"),
        "{}",
        web[0].summary
    );
    assert_eq!(web[1].status, Status::Warn, "{web:#?}");
    let admin = doctor_on(&s, "cfa-admin", &ranges);
    assert_eq!(admin.len(), 1, "{admin:#?}");
    assert_eq!(admin[0].status, Status::Warn);
    assert!(
        admin[0]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("set_real_ip_from") && f.contains("RemoteIPTrustedProxy")),
        "{admin:#?}"
    );
}
