//! Hardening (issue 13): what an unprivileged user plants, names or races must not make
//! cf-allow clobber, delete or run anything. The real binary; kernel tests each in their own
//! network namespace.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use cf_allow_testkit::{iptables, Netns};
use common::*;

fn root_ready(test: &str, programs: &[&str]) -> bool {
    cf_allow_testkit::require_root(test) && cf_allow_testkit::require_programs(test, programs)
}

/// Item 3: 20 racing syncs from two configs whose state_dirs differ (and whose lists
/// differ) leave one jump per family and a chain that matches one of the two lists exactly.
#[test]
fn racing_syncs_with_two_state_dirs_leave_a_consistent_ruleset() {
    if !root_ready(
        "racing_syncs_with_two_state_dirs_leave_a_consistent_ruleset",
        &["ip", "iptables-nft-save", "ip6tables-nft-save"],
    ) {
        return;
    }
    let ns = Netns::new("harden-race");
    let config = "ports: [443]\nguard: {allow_reserved: true, max_shrink_percent: 100}\niptables:\n  variant: nft\n";
    let a = Env::new(config);
    let b = Env::new(config);
    // Lists long enough that a run's read-then-restore window overlaps the others'.
    let list = |v4: &str, v6: &str| -> Vec<String> {
        (0..120)
            .map(|i| format!("{v4}.{}/32", i * 2 % 256))
            .chain((0..120).map(|i| format!("{v6}:{:x}/128", (i + 1) * 2)))
            .collect()
    };
    let list_a = list("192.0.2", "2001:db8:a:");
    let list_b = list("198.51.100", "2001:db8:b:");
    let (list_a, list_b) = (refs(&list_a), refs(&list_b));
    let feed_a = a.feed("a.txt", &list_a);
    let feed_b = b.feed("b.txt", &list_b);
    let children: Vec<_> = (0..20)
        .map(|i| {
            let (env, feed) = if i % 2 == 0 {
                (&a, &feed_a)
            } else {
                (&b, &feed_b)
            };
            env.cmd(
                Some(&ns),
                &[
                    "--wait",
                    "300",
                    "sync",
                    "--backend",
                    "iptables",
                    "--source",
                    feed,
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    for child in children {
        Run::of(child.wait_with_output().expect("wait")).expect_code(0);
    }
    let v4 = iptables::filter_table(&ns, "iptables-nft-save");
    let v6 = iptables::filter_table(&ns, "ip6tables-nft-save");
    assert_eq!(iptables::chain_rules(&v4, "INPUT"), ["-j CF-ALLOW"], "{v4}");
    assert_eq!(iptables::chain_rules(&v6, "INPUT"), ["-j CF-ALLOW"], "{v6}");
    let sources = |save: &str| {
        let mut nets: Vec<String> = iptables::chain_rules(save, "CF-ALLOW")
            .iter()
            .filter_map(|r| {
                r.strip_prefix("-s ")
                    .and_then(|r| r.split(' ').next())
                    .map(str::to_string)
            })
            .collect();
        nets.sort();
        nets
    };
    let mut got = sources(&v4);
    got.extend(sources(&v6));
    let sorted = |l: &[&str]| {
        let mut v4: Vec<String> = l
            .iter()
            .filter(|n| !n.contains(':'))
            .map(|s| s.to_string())
            .collect();
        let mut v6: Vec<String> = l
            .iter()
            .filter(|n| n.contains(':'))
            .map(|s| s.to_string())
            .collect();
        v4.sort();
        v6.sort();
        v4.extend(v6);
        v4
    };
    assert!(
        got == sorted(&list_a) || got == sorted(&list_b),
        "a chain that matches neither list: {got:?}\n{v4}{v6}"
    );
}

fn refs(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// Item 1: links planted as state_dir/lock, state_dir/last-good.json and the old
/// predictable temp names are neither followed nor created through.
#[test]
fn planted_links_in_state_dir_are_not_followed() {
    let env = Env::new("guard: {allow_reserved: true}\n");
    let state = env.state_dir();
    std::fs::create_dir_all(&state).expect("state_dir");
    let nologin = env.path("nologin");
    let victim = env.path("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    symlink(&nologin, state.join("lock")).expect("plant lock");
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8::/32"]);
    // The lock: the sync refuses, names the link, and the link's target is not created.
    let run = env.run(
        None,
        &[
            "sync",
            "--dry-run",
            "--backend",
            "nftables",
            "--source",
            &feed,
        ],
    );
    run.expect_code(1);
    assert!(run.error_line().contains("symbolic link"), "{}", run.stderr);
    assert!(!nologin.exists(), "the lock's target was created");
    std::fs::remove_file(state.join("lock")).expect("unplant");

    // The cache: `ranges` stores it, replacing the link (temp names: exec's unit tests).
    symlink(&victim, state.join("last-good.json")).expect("plant cache");
    let run = env.run(None, &["ranges", "--source", &feed]);
    run.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    let meta = std::fs::symlink_metadata(state.join("last-good.json")).expect("cache");
    assert!(meta.is_file(), "the cache is a new file, not the link");
    assert_eq!(meta.mode() & 0o777, 0o600, "the cache is 0600");
}

/// Item 6: a FIFO as `file://` source ends after timeout_secs instead of hanging.
#[test]
fn a_fifo_source_is_bounded_by_timeout_secs() {
    let env = Env::new("timeout_secs: 1\n");
    let fifo = env.path("feed.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let run = env.run(None, &["ranges", "--source", &file_url(&fifo)]);
    run.expect_code(1);
    assert!(run.error_line().contains("timeout_secs"), "{}", run.stderr);
}

/// Item 2: as root, a config file, a config directory or a state_dir that another user owns
/// or that group/others may write is refused with one line naming path, owner and mode.
#[test]
fn unsafe_owners_and_modes_are_refused_as_root() {
    if !cf_allow_testkit::require_root("unsafe_owners_and_modes_are_refused_as_root") {
        return;
    }
    let env = Env::new("guard: {allow_reserved: true}\n");
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8::/32"]);
    let sync = [
        "sync",
        "--dry-run",
        "--backend",
        "nftables",
        "--source",
        feed.as_str(),
    ];
    let ns = Netns::new("harden-modes");
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    env.run(Some(&ns), &sync).expect_code(0);

    chmod(&env.config(), 0o666);
    let run = env.run(Some(&ns), &sync);
    run.expect_code(1);
    let line = run.error_line();
    assert!(
        line.contains(&env.config().display().to_string()) && line.contains("0666"),
        "{line}"
    );
    chmod(&env.config(), 0o644);

    std::os::unix::fs::chown(env.config(), Some(65534), None).expect("chown");
    let run = env.run(Some(&ns), &["check-config"]);
    run.expect_code(1);
    assert!(run.error_line().contains("uid 65534"), "{}", run.stderr);
    std::os::unix::fs::chown(env.config(), Some(0), None).expect("chown back");

    chmod(env.dir.path(), 0o777);
    let run = env.run(Some(&ns), &sync);
    run.expect_code(1);
    assert!(run.error_line().contains("0777"), "{}", run.stderr);
    chmod(env.dir.path(), 0o700);

    chmod(&env.state_dir(), 0o757);
    let run = env.run(Some(&ns), &sync);
    run.expect_code(1);
    let line = run.error_line();
    assert!(
        line.contains("state_dir") && line.contains("0757"),
        "{line}"
    );
    chmod(&env.state_dir(), 0o755);
    env.run(Some(&ns), &sync).expect_code(0);
}

fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

/// A stdout whose reader is already gone.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

/// Item 7: a full or closed stdout never panics (exit 101); after a change the exit code
/// and stderr say the firewall was changed.
#[test]
fn a_closed_or_full_stdout_does_not_panic_and_does_not_claim_unchanged() {
    if !root_ready(
        "a_closed_or_full_stdout_does_not_panic_and_does_not_claim_unchanged",
        &["ip", "nft"],
    ) {
        return;
    }
    let ns = Netns::new("harden-stdout");
    let env = Env::new("guard: {allow_reserved: true}\n");
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8::/32"]);
    let sync = [
        "sync",
        "--backend",
        "nftables",
        "--source",
        feed.as_str(),
        "--json",
    ];
    let run = Run::of(
        env.cmd(Some(&ns), &sync)
            .stdout(dev_full())
            .output()
            .expect("run"),
    );
    run.expect_code(4);
    assert!(
        run.error_line().contains("the firewall WAS changed"),
        "{}",
        run.stderr
    );
    assert!(ns.sh("nft list ruleset").contains("192.0.2.0/24"));

    // Nothing to change: the lost report is an error that says so, exit 1.
    let run = Run::of(
        env.cmd(Some(&ns), &sync[..5])
            .stdout(closed_pipe())
            .output()
            .expect("run"),
    );
    run.expect_code(1);
    assert!(
        run.error_line().contains("the firewall was not changed"),
        "{}",
        run.stderr
    );

    for args in [
        &["status", "--backend", "nftables"][..],
        &["ranges", "--source", feed.as_str()][..],
        &["completions", "bash"][..],
        &["man"][..],
    ] {
        for closed in [false, true] {
            let mut cmd = env.cmd(Some(&ns), args);
            if closed {
                cmd.stdout(closed_pipe());
            } else {
                cmd.stdout(dev_full());
            }
            let run = Run::of(cmd.output().expect("run"));
            run.expect_code(1);
            assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
            assert!(
                run.error_line().contains("cannot write to stdout"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
}

/// Item 8: `--json` prints one JSON document with an `error` key on failure, exit code 1.
#[test]
fn json_failures_print_one_document_with_an_error_key() {
    let env = Env::new("");
    let feed = env.feed("list.txt", &["192.0.2.0/24", "2001:db8::/32"]);
    // A refused feed (documentation ranges without guard.allow_reserved).
    let run = env.run(
        None,
        &[
            "sync",
            "--dry-run",
            "--backend",
            "nftables",
            "--source",
            &feed,
            "--json",
        ],
    );
    run.expect_code(1);
    let json = run.json();
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("documentation range")),
        "{json}"
    );
    assert_eq!(json["backend"], "nftables");
    assert_eq!(json["changed"], false);
    let run = env.run(None, &["ranges", "--source", &feed, "--json"]);
    run.expect_code(1);
    assert!(run.json()["error"].is_string());

    // check-config --json: a bad config, then a good one.
    env.write_config("ports: [0]\n");
    let run = env.run(None, &["check-config", "--json"]);
    run.expect_code(1);
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("port 0")),
        "{}",
        run.stdout
    );
    env.write_config("ports: [443]\n");
    let run = env.run(None, &["check-config", "--json"]);
    run.expect_code(0);
    assert_eq!(run.json()["ok"], true);
    assert_eq!(run.json()["ports"], serde_json::json!([443]));
}

/// Item 17: credentials in a source URL appear in no message, log line, cache or JSON.
#[test]
fn source_credentials_are_redacted_everywhere() {
    let server = cf_allow_testkit::Server::start(|_| {
        cf_allow_testkit::Reply::ok("text/plain", "192.0.2.0/24\n2001:db8::/32\n")
            .header("ETag", "\"v1\"")
    });
    let url = server
        .url("/ips")
        .replacen("http://", "http://user:s3cr3t@", 1);
    let env = Env::new(&format!(
        "guard: {{allow_reserved: true}}\nsources:\n  - {url}\n"
    ));
    let ranges = env.run(None, &["-v", "ranges", "--json"]);
    ranges.expect_code(0);
    let check = env.run(None, &["check-config"]);
    check.expect_code(0);
    let check_json = env.run(None, &["check-config", "--json"]);
    check_json.expect_code(0);
    let cache = std::fs::read_to_string(env.state_dir().join("last-good.json")).expect("cache");
    for (what, text) in [
        ("ranges stdout", &ranges.stdout),
        ("ranges stderr", &ranges.stderr),
        ("check-config", &check.stdout),
        ("check-config --json", &check_json.stdout),
        ("cache", &cache),
    ] {
        assert!(
            !text.contains("s3cr3t"),
            "{what} leaks the password:\n{text}"
        );
    }
    assert!(
        check.stdout.contains("http://***@127.0.0.1"),
        "{}",
        check.stdout
    );
    assert!(cache.contains("***@127.0.0.1"), "{cache}");
}

/// Items 12–16 and 19 through the binary: what check-config and the commands accept.
#[test]
fn validation_of_config_and_feeds() {
    let env = Env::new("extra_cidrs: [10.20.0.0/16]\n");
    // 14: the admin's own private range passes without guard.allow_reserved...
    env.run(None, &["check-config"]).expect_code(0);
    // ...the feed's does not; 16: leading zeros; 15: duplicate keys.
    let private = env.feed("private.txt", &["10.0.0.0/8", "2001:db8::/32"]);
    let run = env.run(None, &["ranges", "--source", &private]);
    run.expect_code(1);
    assert!(run.error_line().contains("10.0.0.0/8"), "{}", run.stderr);
    env.write_config("guard: {allow_reserved: true}\n");
    let zeros = env.feed("zeros.txt", &["010.0.0.0/8", "2001:db8::/32"]);
    let run = env.run(None, &["ranges", "--source", &zeros]);
    run.expect_code(1);
    assert!(run.error_line().contains("leading zero"), "{}", run.stderr);
    let dup = env.path("dup.json");
    std::fs::write(
        &dup,
        r#"{"success": false, "success": true, "errors": [], "messages": [],
            "result": {"ipv4_cidrs": ["192.0.2.0/24"], "ipv6_cidrs": ["2001:db8::/32"]}}"#,
    )
    .expect("write");
    let run = env.run(None, &["ranges", "--source", &file_url(&dup)]);
    run.expect_code(1);
    assert!(run.error_line().contains("appears twice"), "{}", run.stderr);

    // 19: --offline with --source is an error, not a silently ignored flag.
    let run = env.run(None, &["ranges", "--offline", "--source", &zeros]);
    run.expect_code(1);
    assert!(run.error_line().contains("--offline"), "{}", run.stderr);

    // 13: a BOM; 12: a relative state_dir (checked before anything is written).
    std::fs::write(env.config(), "\u{feff}---\nports: [443]\n").expect("BOM config");
    env.run(None, &["check-config"]).expect_code(0);
    std::fs::write(env.config(), "state_dir: state\n").expect("relative");
    let run = env.run(None, &["ranges", "--offline"]);
    run.expect_code(1);
    assert!(
        run.error_line().contains("not an absolute path"),
        "{}",
        run.stderr
    );

    // 19: --wait is refused where it does nothing (no lock), before or after the command.
    for args in [
        &["--wait", "5", "ranges", "--offline"][..],
        &["status", "--wait", "5"][..],
    ] {
        let run = env.run(None, args);
        run.expect_code(64);
        assert!(
            run.error_line()
                .contains("--wait applies only to sync and remove"),
            "{}",
            run.stderr
        );
    }

    // 19: a state_dir that is a file says so.
    let file = env.path("a-file");
    std::fs::write(&file, "").expect("file");
    std::fs::write(env.config(), format!("state_dir: {}\n", file.display())).expect("config");
    let run = env.run(
        None,
        &["sync", "--offline", "--dry-run", "--backend", "nftables"],
    );
    run.expect_code(1);
    assert!(
        run.error_line().contains("exists and is not a directory"),
        "{}",
        run.stderr
    );
}

/// Item 18: one man page per subcommand, each with EXIT STATUS (and FILES and the config keys
/// for the commands that read the config); every page cf-allow(1) points to exists.
#[test]
fn man_pages_exist_for_every_subcommand_they_name() {
    let env = Env::new("");
    let dir = env.path("man");
    let run = env.run(None, &["man", "--dir", dir.to_str().expect("utf-8 path")]);
    run.expect_code(0);
    let top = std::fs::read_to_string(dir.join("cf-allow.1")).expect("cf-allow.1");
    let mut named = 0;
    for part in top.split("\\fBcf\\-allow\\-").skip(1) {
        let name = part.split("\\fR").next().expect("name").replace("\\-", "-");
        let page = std::fs::read_to_string(dir.join(format!("cf-allow-{name}.1")))
            .unwrap_or_else(|e| panic!("cf-allow-{name}(1) is named but missing: {e}"));
        assert!(page.contains(".SH \"EXIT STATUS\""), "{name}");
        named += 1;
    }
    assert!(named >= 7, "{named} pages named:\n{top}");
    let sync = std::fs::read_to_string(dir.join("cf-allow-sync.1")).expect("sync page");
    for needle in [
        ".TH cf-allow-sync 1",
        ".SH FILES",
        ".SH CONFIGURATION",
        "csf.reload",
        "\\fB4\\fR",
        "\\-\\-dry\\-run",
    ] {
        assert!(sync.contains(needle), "{needle} missing:\n{sync}");
    }
    // The page on stdout is the top-level one, byte for byte.
    assert_eq!(env.run(None, &["man"]).stdout, top);
}

/// Issue 16 item 1: the body limit follows guard.max_entries, so a 100,000-entry list loads
/// (the fixed 1 MiB limit refused it).
#[test]
fn a_large_list_fits_when_max_entries_allows_it() {
    let env = Env::new("guard: {allow_reserved: true, max_entries: 100000}\n");
    let mut lines: Vec<String> = (0..99_999u32)
        .map(|i| {
            let n = i * 2;
            format!("10.{}.{}.{}/32", (n >> 16) & 255, (n >> 8) & 255, n & 255)
        })
        .collect();
    lines.push("2001:db8::/32".into());
    let feed = env.feed(
        "big.txt",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(std::fs::metadata(env.path("big.txt")).expect("feed").len() > 1 << 20);
    let run = env.run(None, &["ranges", "--source", &feed, "--json"]);
    run.expect_code(0);
    assert_eq!(run.json()["list"]["ipv4"], 99_999, "{}", run.stderr);
}

/// Issue 16 item 4: an unchanged list (HTTP 304) rewrites nothing: the cache keeps its inode
/// and bytes (the check time is its modification time).
#[test]
fn an_unchanged_list_does_not_rewrite_the_cache() {
    use std::os::unix::fs::MetadataExt;
    let server = cf_allow_testkit::Server::start(|request| {
        if request.header("If-None-Match") == Some("\"v1\"") {
            cf_allow_testkit::Reply::status(304)
        } else {
            cf_allow_testkit::Reply::ok("text/plain", "192.0.2.0/24\n2001:db8::/32\n")
                .header("ETag", "\"v1\"")
        }
    });
    let env = Env::new(&format!(
        "guard: {{allow_reserved: true}}\nsources:\n  - {}\n",
        server.url("/ips")
    ));
    env.run(None, &["ranges"]).expect_code(0);
    let cache = env.state_dir().join("last-good.json");
    let (before, inode) = (
        std::fs::read(&cache).expect("cache"),
        std::fs::metadata(&cache).expect("meta").ino(),
    );
    let run = env.run(None, &["ranges", "--json"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["list"]["origin"],
        "not-modified",
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::metadata(&cache).expect("meta").ino(),
        inode,
        "the cache was replaced"
    );
    assert_eq!(std::fs::read(&cache).expect("cache"), before);
    let names: Vec<_> = std::fs::read_dir(env.state_dir())
        .expect("state_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["last-check", "last-good.json"], "no temp file");
    assert_eq!(
        std::fs::metadata(env.state_dir().join("last-check"))
            .expect("check")
            .len(),
        0
    );
}
