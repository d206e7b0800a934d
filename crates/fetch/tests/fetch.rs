//! The fetcher against a loopback HTTP server started by each test: good lists, conditional
//! requests, every kind of bad answer (each refused with a named error and the cache file left
//! byte-for-byte unchanged), fallbacks to the cache and the embedded list.
//!
//! No benchmarks and no timing assertions: every good or refused fetch here talks to loopback
//! and takes milliseconds, so the whole file runs in about a second; the one slow test is the
//! stalled server, which waits out its 1 s timeout. A regression that made loopback fetches
//! slow (a stray sleep, a retry on a non-retryable answer) shows up as a suite that takes
//! many seconds, and the retry tests count requests instead of measuring time.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cf_allow_diff::{IpNet, RangeSet};
use cf_allow_fetch::{
    cache_path, embedded, fetch, last_good, FetchOptions, FetchedList, Origin, Validation,
};
use cf_allow_testkit::{api_json, Reply, Server, CLOUDFLARE_V4, CLOUDFLARE_V6};

// ---------------------------------------------------------------- helpers

/// Options for a test: no retries unless a test asks, short backoff, 5 s timeout.
fn opts(alternatives: Vec<Vec<String>>, state_dir: &Path) -> FetchOptions {
    let mut o = FetchOptions::new(alternatives, state_dir.to_path_buf());
    o.retries = 0;
    o.retry_backoff = Duration::from_millis(10);
    o.timeout = Duration::from_secs(5);
    o
}

fn one(url: String) -> Vec<Vec<String>> {
    vec![vec![url]]
}

fn cloudflare() -> RangeSet {
    RangeSet::aggregated(
        CLOUDFLARE_V4
            .iter()
            .chain(CLOUDFLARE_V6.iter())
            .map(|s| s.parse::<IpNet>().expect("cidr")),
    )
}

/// Cloudflare's ips-v4 page: no trailing newline.
fn ips_v4() -> String {
    CLOUDFLARE_V4.join("\n")
}

fn ips_v6() -> String {
    CLOUDFLARE_V6.join("\n") + "\n"
}

fn api_server() -> Server {
    Server::start(|_| {
        Reply::ok(
            "application/json",
            api_json(&CLOUDFLARE_V4, &CLOUDFLARE_V6, "seed-etag"),
        )
    })
}

/// Fetches a good list into `dir` and returns the cache file's bytes.
fn seed(dir: &Path) -> (String, Vec<u8>) {
    let server = api_server();
    let url = server.url("/seed");
    let list = fetch(&opts(one(url.clone()), dir)).expect("seed fetch");
    assert_eq!(list.origin, Origin::Network);
    (url, fs::read(cache_path(dir)).expect("cache written"))
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/ips")
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns what it logged (fetch runs on the calling thread).
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&logs.0.lock().expect("log lock")).into_owned();
    (out, text)
}

/// Serves `reply` at /ips, fetches it with a seeded cache, and checks that the fetch fails with
/// exactly `source <url><expected>` and that the cache file is byte-for-byte unchanged.
fn assert_refused(reply: Reply, expected: &str) {
    assert_refused_with(reply, expected, |_| {});
}

fn assert_refused_with(reply: Reply, expected: &str, tweak: impl FnOnce(&mut FetchOptions)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, before) = seed(dir.path());
    let server = Server::start(move |_| reply.clone());
    let url = server.url("/ips");
    let mut o = opts(one(url.clone()), dir.path());
    tweak(&mut o);
    let err = fetch(&o).expect_err("the list must be refused");
    assert_eq!(
        err.to_string(),
        format!("no source gave a valid list: source {url}{expected}")
    );
    assert!(!err.is_unreachable());
    assert_eq!(
        fs::read(cache_path(dir.path())).expect("cache"),
        before,
        "the cache must be untouched"
    );
}

// ---------------------------------------------------------------- good lists

#[test]
fn api_json_is_fetched_cached_and_then_not_modified_by_its_etag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etag = Arc::new(Mutex::new("38f79d05".to_string()));
    let served = Arc::clone(&etag);
    let server = Server::start(move |_| {
        let etag = served.lock().expect("lock").clone();
        let v4: Vec<&str> = if etag == "38f79d05" {
            CLOUDFLARE_V4.to_vec()
        } else {
            CLOUDFLARE_V4[..14].to_vec()
        };
        Reply::ok("application/json", api_json(&v4, &CLOUDFLARE_V6, &etag))
    });
    let url = server.url("/client/v4/ips");
    let o = opts(one(url.clone()), dir.path());

    let first = fetch(&o).expect("first fetch");
    assert_eq!(first.origin, Origin::Network);
    assert_eq!(first.ranges, cloudflare());
    assert_eq!(first.source, url);
    assert_eq!(first.etag.as_deref(), Some("38f79d05"));
    let requests = server.requests();
    let agent = requests[0].header("user-agent").expect("user agent");
    assert!(agent.starts_with("cf-allow/"), "{agent}");

    let cached = last_good(dir.path()).expect("readable").expect("cached");
    assert_eq!(cached.ranges, first.ranges);
    assert_eq!(cached.origin, Origin::Cache);
    assert_eq!(cached.source, url);

    let second = fetch(&o).expect("second fetch");
    assert_eq!(second.origin, Origin::NotModified);
    assert_eq!(second.ranges, first.ranges);

    *etag.lock().expect("lock") = "new-etag".into();
    let third = fetch(&o).expect("third fetch");
    assert_eq!(third.origin, Origin::Network);
    assert_eq!(third.etag.as_deref(), Some("new-etag"));
    assert_eq!(third.ranges.ipv4().len(), 14);
    let cached = last_good(dir.path()).expect("readable").expect("cached");
    assert_eq!(cached.ranges, third.ranges);
}

#[test]
fn text_lists_are_merged_and_answered_from_the_cache_on_304() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(|req| {
        let (body, tag) = if req.path == "/ips-v4" {
            (ips_v4(), "\"v4-1\"")
        } else {
            (ips_v6(), "W/\"v6-1\"")
        };
        if req.header("if-none-match") == Some(tag) {
            Reply::status(304).header("ETag", tag)
        } else {
            Reply::ok("text/plain; charset=utf-8", body).header("ETag", tag)
        }
    });
    let urls = vec![server.url("/ips-v4"), server.url("/ips-v6")];
    let o = opts(vec![urls.clone()], dir.path());

    let first = fetch(&o).expect("first fetch");
    assert_eq!(first.origin, Origin::Network);
    assert_eq!(first.ranges, cloudflare());
    assert_eq!(first.source, urls.join(", "));
    assert_eq!(first.etag.as_deref(), Some("\"v4-1\", W/\"v6-1\""));
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("if-none-match").is_none()));

    let cache_after_first = fs::read(cache_path(dir.path())).expect("cache");
    let second = fetch(&o).expect("second fetch");
    assert_eq!(second.origin, Origin::NotModified);
    assert_eq!(second.ranges, first.ranges);
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    // The two URLs are fetched at once, so the second round's requests come in either order.
    let tag_sent = |path: &str| {
        requests[2..]
            .iter()
            .find(|r| r.path == path)
            .and_then(|r| r.header("if-none-match"))
    };
    assert_eq!(tag_sent("/ips-v4"), Some("\"v4-1\""));
    assert_eq!(tag_sent("/ips-v6"), Some("W/\"v6-1\""));
    assert!(!cache_after_first.is_empty());
}

#[test]
fn the_urls_of_a_merged_alternative_are_fetched_at_once() {
    // /ips-v4 is answered only once /ips-v6 has been asked for (or after 10 s): fetched one
    // after the other, the first request would wait out the 10 s and `overlapped` stay false.
    let dir = tempfile::tempdir().expect("tempdir");
    let v6_asked = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let overlapped = Arc::new(Mutex::new(false));
    let (asked, seen) = (Arc::clone(&v6_asked), Arc::clone(&overlapped));
    let server = Server::start(move |req| {
        let (flag, wake) = &*asked;
        if req.path == "/ips-v6" {
            *flag.lock().expect("lock") = true;
            wake.notify_all();
            return Reply::ok("text/plain", ips_v6());
        }
        let guard = flag.lock().expect("lock");
        let (guard, _) = wake
            .wait_timeout_while(guard, Duration::from_secs(10), |asked| !*asked)
            .expect("wait");
        *seen.lock().expect("lock") = *guard;
        Reply::ok("text/plain", ips_v4())
    });
    let mut o = opts(
        vec![vec![server.url("/ips-v4"), server.url("/ips-v6")]],
        dir.path(),
    );
    o.timeout = Duration::from_secs(20);
    let list = fetch(&o).expect("fetch");
    assert_eq!(list.ranges, cloudflare());
    assert!(
        *overlapped.lock().expect("lock"),
        "/ips-v4 was answered before /ips-v6 was asked for: the URLs were fetched one by one"
    );
}

#[test]
fn a_changed_url_in_a_merged_alternative_means_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v6_version = Arc::new(Mutex::new(1));
    let seen = Arc::clone(&v6_version);
    let server = Server::start(move |req| {
        if req.path == "/ips-v4" {
            return match req.header("if-none-match") {
                Some("\"a\"") => Reply::status(304),
                _ => Reply::ok("text/plain", ips_v4()).header("ETag", "\"a\""),
            };
        }
        let version = *seen.lock().expect("lock");
        let tag = format!("\"v6-{version}\"");
        if req.header("if-none-match") == Some(tag.as_str()) {
            return Reply::status(304);
        }
        let body = if version == 1 {
            ips_v6()
        } else {
            "2400:cb00::/32\n".to_string()
        };
        Reply::ok("text/plain", body).header("ETag", &tag)
    });
    let o = opts(
        vec![vec![server.url("/ips-v4"), server.url("/ips-v6")]],
        dir.path(),
    );
    assert_eq!(fetch(&o).expect("first").origin, Origin::Network);
    *v6_version.lock().expect("lock") = 2;
    let second = fetch(&o).expect("second");
    assert_eq!(second.origin, Origin::Network);
    assert_eq!(second.ranges.ipv6().len(), 1);
    assert_eq!(second.ranges.ipv4().len(), CLOUDFLARE_V4.len());
}

#[test]
fn an_upper_case_scheme_is_revalidated_like_a_lower_case_one() {
    for upper in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(|req| {
            if req.header("if-none-match") == Some("\"t1\"") {
                Reply::status(304)
            } else {
                Reply::ok("text/plain", ips_v4() + "\n" + &ips_v6()).header("ETag", "\"t1\"")
            }
        });
        let mut url = server.url("/ips");
        if upper {
            url = url.replacen("http://", "HTTP://", 1);
        }
        let o = opts(one(url.clone()), dir.path());
        assert_eq!(fetch(&o).expect("first").origin, Origin::Network, "{url}");
        let second = fetch(&o).expect("second");
        assert_eq!(second.origin, Origin::NotModified, "{url}");
        assert_eq!(second.ranges, cloudflare());
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{url}");
        assert_eq!(requests[1].header("if-none-match"), Some("\"t1\""), "{url}");
    }
}

#[test]
fn duplicates_overlaps_crlf_comments_and_no_final_newline_are_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(|_| {
        Reply::ok(
            "text/plain",
            "# Cloudflare, hand-edited\r\n\r\n104.16.0.0/13\r\n104.16.0.0/13\r\n  104.16.0.0/12  # wider\r\n\
             104.24.0.0/14\r\n2400:cb00::/32\r\n2400:cb00::/33\r\n2400:cb00:8000::/33",
        )
    });
    let list = fetch(&opts(one(server.url("/list")), dir.path())).expect("valid");
    assert_eq!(list.ranges.to_string(), "104.16.0.0/12\n2400:cb00::/32\n");
}

#[test]
fn file_sources_are_read_and_a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v4 = dir.path().join("ips-v4");
    let v6 = dir.path().join("ips-v6");
    fs::write(&v4, ips_v4()).expect("write v4");
    fs::write(&v6, ips_v6()).expect("write v6");
    let urls = vec![
        format!("file://{}", v4.display()),
        format!("file://{}", v6.display()),
    ];
    let state = dir.path().join("state");
    let list = fetch(&opts(vec![urls.clone()], &state)).expect("file list");
    assert_eq!(list.ranges, cloudflare());
    assert_eq!(list.origin, Origin::Network);
    assert_eq!(list.source, urls.join(", "));

    let missing = format!("file://{}", dir.path().join("nope").display());
    let err = fetch(&opts(one(missing.clone()), &state)).expect_err("missing file");
    assert_eq!(
        err.to_string(),
        format!(
            "no source gave a valid list: source {missing} cannot be read \
             (No such file or directory (os error 2))"
        )
    );
}

#[test]
fn state_dir_is_created_with_mode_0755() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("var/lib/cf-allow");
    let server = api_server();
    fetch(&opts(one(server.url("/ips")), &state)).expect("fetch");
    let mode = fs::metadata(&state)
        .expect("state dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let names: Vec<String> = fs::read_dir(&state)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["last-good.json"]);
}

#[test]
fn reserved_ranges_pass_with_allow_reserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(|_| {
        Reply::ok(
            "text/plain",
            "192.0.2.0/24\n198.51.100.0/24\n2001:db8::/32\n",
        )
    });
    let mut o = opts(one(server.url("/doc")), dir.path());
    o.validation = Validation {
        allow_reserved: true,
        ..Validation::default()
    };
    let list = fetch(&o).expect("documentation ranges allowed");
    assert_eq!(
        list.ranges.to_string(),
        "192.0.2.0/24\n198.51.100.0/24\n2001:db8::/32\n"
    );
}

// ---------------------------------------------------------------- alternatives

#[test]
fn the_first_valid_alternative_wins_and_the_log_says_which() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = Server::start(|_| Reply::status(503));
    let good = api_server();
    let alternatives = vec![
        vec![closed_port_url()],
        vec![broken.url("/ips")],
        vec![good.url("/ips")],
    ];
    let (list, logs) = logged(|| fetch(&opts(alternatives, dir.path())));
    let list = list.expect("third alternative");
    assert_eq!(list.source, good.url("/ips"));
    assert_eq!(list.origin, Origin::Network);
    assert!(
        logs.contains(&format!("using the list from {}", good.url("/ips"))),
        "{logs}"
    );
    assert!(logs.contains("source 3 of 3"), "{logs}");
    assert!(logs.contains("trying the next source"), "{logs}");
}

#[test]
fn an_unreachable_and_a_bad_alternative_are_an_error_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, before) = seed(dir.path());
    let html = Server::start(|_| Reply::ok("text/html", "<html>login</html>"));
    let down = closed_port_url();
    let alternatives = vec![vec![down.clone()], vec![html.url("/ips")]];
    let err = fetch(&opts(alternatives, dir.path())).expect_err("alarm");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "no source gave a valid list: source {down} is unreachable: cannot connect: "
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!(
            "; source {} returned an HTML page (HTTP 200, text/html), not a list of CIDRs",
            html.url("/ips")
        )),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = Server::start(|_| Reply::status(503));
    let mut o = opts(one(busy.url("/ips")), dir.path());
    o.retries = 2;
    let err = fetch(&o).expect_err("503");
    assert_eq!(
        err.to_string(),
        format!(
            "no source gave a valid list: source {} returned HTTP 503 Service Unavailable",
            busy.url("/ips")
        )
    );
    assert_eq!(busy.requests().len(), 3);

    let missing_404 = Server::start(|_| Reply::status(404));
    let mut o = opts(one(missing_404.url("/ips")), dir.path());
    o.retries = 2;
    let err = fetch(&o).expect_err("404");
    assert!(
        err.to_string().ends_with("returned HTTP 404 Not Found"),
        "{err}"
    );
    assert_eq!(missing_404.requests().len(), 1);
}

#[test]
fn a_flaky_server_succeeds_on_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let server = Server::start(move |_| {
        let mut n = counted.lock().expect("lock");
        *n += 1;
        if *n == 1 {
            Reply::status(502)
        } else {
            Reply::ok(
                "application/json",
                api_json(&CLOUDFLARE_V4, &CLOUDFLARE_V6, "e"),
            )
        }
    });
    let mut o = opts(one(server.url("/ips")), dir.path());
    o.retries = 2;
    let (list, logs) = logged(|| fetch(&o));
    assert_eq!(list.expect("second try").ranges, cloudflare());
    assert!(
        logs.contains("returned HTTP 502 Bad Gateway; retrying in"),
        "{logs}"
    );
}

// ---------------------------------------------------------------- fallbacks

#[test]
fn unreachable_sources_fall_back_to_the_cache_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed_url, before) = seed(dir.path());
    let down = closed_port_url();
    let (list, logs) = logged(|| fetch(&opts(one(down.clone()), dir.path())));
    let list = list.expect("cache fallback");
    assert_eq!(list.origin, Origin::Cache);
    assert_eq!(list.source, seed_url);
    assert_eq!(list.etag.as_deref(), Some("seed-etag"));
    assert_eq!(list.ranges, cloudflare());
    assert!(
        logs.contains(&format!(
            "WARN cf_allow_fetch: no source reachable (source {down} is unreachable: cannot connect: "
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("using the cached list from {seed_url} fetched ")),
        "{logs}"
    );
    assert!(logs.contains(" s ago"), "{logs}");
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);
}

#[test]
fn unreachable_sources_without_a_cache_fall_back_to_the_embedded_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (list, logs) = logged(|| fetch(&opts(one(closed_port_url()), dir.path())));
    let list = list.expect("embedded fallback");
    assert_eq!(list, embedded());
    assert_eq!(list.origin, Origin::Embedded);
    assert_eq!(list.source, "embedded");
    assert_eq!(list.ranges, cloudflare());
    assert!(
        logs.contains("using the list compiled into cf-allow (verified 2026-11-25, "),
        "{logs}"
    );
    assert!(!cache_path(dir.path()).exists(), "no cache is invented");
}

#[test]
fn a_stalled_server_times_out_and_the_cache_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed_url, before) = seed(dir.path());
    let stalled =
        Server::start(|_| Reply::ok("text/plain", ips_v4()).delayed(Duration::from_secs(4)));
    let mut o = opts(one(stalled.url("/ips")), dir.path());
    o.timeout = Duration::from_secs(1);
    let (list, logs) = logged(|| fetch(&o));
    let list = list.expect("cache fallback");
    assert_eq!(list.origin, Origin::Cache);
    assert_eq!(list.source, seed_url);
    assert!(
        logs.contains(&format!(
            "source {} is unreachable: no complete answer within 1 s",
            stalled.url("/ips")
        )),
        "{logs}"
    );
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);
}

#[test]
fn offline_uses_the_cache_without_touching_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed_url, before) = seed(dir.path());
    let server = api_server();
    let mut o = opts(one(server.url("/ips")), dir.path());
    o.offline = true;
    let (list, logs) = logged(|| fetch(&o));
    let list = list.expect("offline");
    assert_eq!(list.origin, Origin::Cache);
    assert_eq!(list.source, seed_url);
    assert!(server.requests().is_empty());
    assert!(
        logs.contains(&format!(
            "offline; using the cached list from {seed_url} fetched "
        )),
        "{logs}"
    );
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);

    let empty = tempfile::tempdir().expect("tempdir");
    let mut o = opts(one(server.url("/ips")), empty.path());
    o.offline = true;
    let list = fetch(&o).expect("offline, no cache");
    assert_eq!(list.origin, Origin::Embedded);
    assert!(server.requests().is_empty());
}

#[test]
fn a_corrupt_cache_is_ignored_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(cache_path(dir.path()), b"{\"format\":1,\"list\":{\"sou").expect("write");
    assert!(last_good(dir.path()).expect("not fatal").is_none());

    let mut o = opts(one(closed_port_url()), dir.path());
    o.offline = true;
    let (list, logs) = logged(|| fetch(&o));
    assert_eq!(list.expect("embedded").origin, Origin::Embedded);
    assert!(logs.contains("ignoring the corrupt cache"), "{logs}");

    let server = api_server();
    let list = fetch(&opts(one(server.url("/ips")), dir.path())).expect("network");
    assert_eq!(list.origin, Origin::Network);
    let cached = last_good(dir.path()).expect("readable").expect("replaced");
    assert_eq!(cached.ranges, cloudflare());
}

#[test]
fn a_cached_list_that_fails_todays_validation_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = Server::start(|_| Reply::ok("text/plain", "192.0.2.0/24\n2001:db8::/32\n"));
    let mut o = opts(one(docs.url("/doc")), dir.path());
    o.validation.allow_reserved = true;
    fetch(&o).expect("documentation ranges cached");

    let mut o = opts(one(docs.url("/doc")), dir.path());
    o.offline = true;
    let (list, logs) = logged(|| fetch(&o));
    assert_eq!(list.expect("embedded").origin, Origin::Embedded);
    assert!(
        logs.contains("ignoring the cached list from") && logs.contains("documentation range"),
        "{logs}"
    );
}

// ---------------------------------------------------------------- refused answers

#[test]
fn api_success_false_is_refused() {
    assert_refused(
        Reply::ok(
            "application/json",
            r#"{"result":null,"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[]}"#,
        ),
        " reported an API failure (success: false; errors: 10000 Authentication error)",
    );
}

#[test]
fn an_html_page_is_refused() {
    assert_refused(
        Reply::ok(
            "text/html; charset=UTF-8",
            "<!DOCTYPE html><title>Just a moment...</title>",
        ),
        " returned an HTML page (HTTP 200, text/html), not a list of CIDRs",
    );
    assert_refused(
        Reply::ok("text/plain", "\n<html><body>captive portal</body></html>"),
        " returned an HTML page (HTTP 200, text/plain), not a list of CIDRs",
    );
}

#[test]
fn an_empty_body_is_refused() {
    assert_refused(
        Reply::ok("text/plain", ""),
        " returned an empty body (HTTP 200)",
    );
    assert_refused(
        Reply::ok("text/plain", "# nothing here\n\n"),
        " holds no CIDRs",
    );
}

#[test]
fn truncated_json_is_refused() {
    let full = api_json(&CLOUDFLARE_V4, &CLOUDFLARE_V6, "e");
    let cut = full[..full.len() / 2].to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, before) = seed(dir.path());
    let server = Server::start(move |_| Reply::ok("application/json", cut.clone()));
    let err = fetch(&opts(one(server.url("/ips")), dir.path())).expect_err("truncated");
    assert!(
        err.to_string().starts_with(&format!(
            "no source gave a valid list: source {} returned malformed JSON (EOF while parsing",
            server.url("/ips")
        )),
        "{err}"
    );
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);
}

#[test]
fn json_of_another_shape_is_refused() {
    assert_refused(
        Reply::ok(
            "application/json",
            r#"{"success":true,"errors":[],"result":{"cidrs":[]}}"#,
        ),
        " returned JSON that is not Cloudflare's IP list (result: missing field `ipv4_cidrs`)",
    );
    assert_refused(
        Reply::ok("application/json", r#"["173.245.48.0/20"]"#),
        " returned JSON that is not Cloudflare's IP list (not a JSON object)",
    );
}

#[test]
fn an_oversize_body_is_refused_with_or_without_content_length() {
    let big = "# padding padding padding padding padding padding padding\n".repeat(20_000);
    assert!(big.len() > 1024 * 1024);
    let body = format!("{}{}", ips_v6(), big);
    assert_refused(
        Reply::ok("text/plain", body.clone()),
        " returned more than 1048576 bytes (the body size limit)",
    );
    let mut raw =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n".to_vec();
    raw.extend_from_slice(body.as_bytes());
    let mut reply = Reply::status(200);
    reply.body = raw;
    reply.raw = true;
    assert_refused(
        reply,
        " returned more than 1048576 bytes (the body size limit)",
    );
    assert_refused_with(
        Reply::ok("text/plain", ips_v4()),
        " returned more than 100 bytes (the body size limit)",
        |o| o.max_body_bytes = 100,
    );
}

#[test]
fn bad_utf8_is_refused() {
    let mut body = ips_v6().into_bytes();
    body.extend_from_slice(b"104.16.0.0/13\xff\n");
    let offset = ips_v6().len() + "104.16.0.0/13".len();
    assert_refused(
        Reply::ok("text/plain", body),
        &format!(" returned a body that is not UTF-8 (invalid byte at offset {offset})"),
    );
}

#[test]
fn the_whole_internet_is_refused() {
    assert_refused(
        Reply::ok(
            "application/json",
            api_json(&["0.0.0.0/0"], &CLOUDFLARE_V6, "e"),
        ),
        ": ipv4_cidrs entry 1 \"0.0.0.0/0\" is too wide: prefix /0 is wider than /8",
    );
    assert_refused_with(
        Reply::ok("text/plain", "104.16.0.0/13\n::/0\n"),
        ": line 2 \"::/0\" is too wide: prefix /0 is wider than /16",
        |o| o.validation.allow_reserved = true,
    );
}

#[test]
fn private_and_other_reserved_ranges_are_refused() {
    assert_refused(
        Reply::ok("text/plain", "104.16.0.0/13\n10.0.0.0/8\n2400:cb00::/32\n"),
        ": line 2 \"10.0.0.0/8\" is a private range (10.0.0.0/8)",
    );
    assert_refused(
        Reply::ok("text/plain", "172.0.0.0/8\n2400:cb00::/32\n"),
        ": line 1 \"172.0.0.0/8\" overlaps the private range 172.16.0.0/12",
    );
    assert_refused(
        Reply::ok(
            "application/json",
            api_json(&CLOUDFLARE_V4, &["fd00::/16"], "e"),
        ),
        ": ipv6_cidrs entry 1 \"fd00::/16\" is a unique local (ULA) range (fc00::/7)",
    );
    assert_refused(
        Reply::ok("text/plain", "104.16.0.0/13\n127.0.0.0/8\n2400:cb00::/32\n"),
        ": line 2 \"127.0.0.0/8\" is a loopback range (127.0.0.0/8)",
    );
}

#[test]
fn host_bits_are_refused_with_a_suggestion() {
    assert_refused(
        Reply::ok("text/plain", "104.16.1.0/13\n2400:cb00::/32\n"),
        ": line 1 \"104.16.1.0/13\" has host bits set; did you mean 104.16.0.0/13?",
    );
}

#[test]
fn a_list_with_one_family_is_refused() {
    assert_refused(
        Reply::ok("application/json", api_json(&CLOUDFLARE_V4, &[], "e")),
        " has no IPv6 ranges (only 15 IPv4); a list must hold both families",
    );
    assert_refused(
        Reply::ok("text/plain", ips_v4()),
        " has no IPv6 ranges (only 15 IPv4); a list must hold both families",
    );
}

#[test]
fn a_last_ipv4_line_glued_to_the_first_ipv6_line_is_refused() {
    let glued = format!("{}{}", ips_v4(), ips_v6());
    assert!(glued.contains("131.0.72.0/222400:cb00::/32"));
    assert_refused(
        Reply::ok("text/plain", glued),
        ": line 15 \"131.0.72.0/222400:cb00::/32\" is not a CIDR \
         (two entries glued together? a line break is missing)",
    );
}

#[test]
fn a_family_mismatch_in_the_api_json_is_refused() {
    assert_refused(
        Reply::ok(
            "application/json",
            api_json(&["2606:4700::/32"], &CLOUDFLARE_V6, "e"),
        ),
        ": ipv4_cidrs entry 1 \"2606:4700::/32\" is not an IPv4 CIDR",
    );
}

#[test]
fn more_entries_than_max_entries_are_refused() {
    assert_refused_with(
        Reply::ok(
            "application/json",
            api_json(&CLOUDFLARE_V4, &CLOUDFLARE_V6, "e"),
        ),
        " has 22 entries, more than guard.max_entries (10)",
        |o| o.validation.max_entries = 10,
    );
}

#[test]
fn unsupported_urls_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = fetch(&opts(one("ftp://example.com/ips".into()), dir.path())).expect_err("ftp");
    assert_eq!(
        err.to_string(),
        "no source gave a valid list: source ftp://example.com/ips is not a supported source URL \
         (scheme ftp: use https://, http:// or file://)"
    );
    assert!(!cache_path(dir.path()).exists());
}

#[test]
fn no_sources_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = fetch(&opts(vec![], dir.path())).expect_err("no sources");
    assert_eq!(err.to_string(), "no sources are configured");
}

#[test]
fn embedded_list_is_cloudflares() {
    let list: FetchedList = embedded();
    assert_eq!(list.ranges, cloudflare());
    assert_eq!(list.origin.to_string(), "embedded");
    assert_eq!(
        serde_json::to_string(&Origin::NotModified).expect("json"),
        "\"not-modified\""
    );
}

#[test]
fn redirects_are_followed_but_not_forever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(|req| match req.path.as_str() {
        "/moved" => Reply::status(301).header("Location", "/ips"),
        "/ips" => Reply::ok(
            "application/json",
            api_json(&CLOUDFLARE_V4, &CLOUDFLARE_V6, "e"),
        ),
        _ => Reply::status(302).header("Location", "/loop"),
    });
    let list = fetch(&opts(one(server.url("/moved")), dir.path())).expect("followed");
    assert_eq!(list.ranges, cloudflare());
    let err = fetch(&opts(one(server.url("/loop")), dir.path())).expect_err("loop");
    assert_eq!(
        err.to_string(),
        format!(
            "no source gave a valid list: source {} redirected where cf-allow does not follow \
             (more than 5 redirects)",
            server.url("/loop")
        )
    );
}

#[test]
fn a_transfer_cut_short_is_an_outage_and_the_cache_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed_url, before) = seed(dir.path());
    let mut reply = Reply::status(200);
    reply.raw = true;
    reply.body = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n104.16.0.0/13\n".to_vec();
    let server = Server::start(move |_| reply.clone());
    let (list, logs) = logged(|| fetch(&opts(one(server.url("/ips")), dir.path())));
    let list = list.expect("cache fallback");
    assert_eq!(list.origin, Origin::Cache);
    assert_eq!(list.source, seed_url);
    assert!(
        logs.contains(&format!("source {} is unreachable: ", server.url("/ips"))),
        "{logs}"
    );
    assert_eq!(fs::read(cache_path(dir.path())).expect("cache"), before);
}

// ---------------------------------------------------------------- unchanged bodies

/// Replaces the cached list's IPv4 ranges with `v4` (and, with `format`, the format number
/// and no digest, as an older cf-allow wrote it), leaving everything else as it was.
fn edit_cache(state: &Path, v4: &[&str], format: Option<u32>) {
    let path = cache_path(state);
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("cache")).expect("cache JSON");
    json["list"]["ipv4"] = serde_json::json!(v4);
    if let Some(format) = format {
        json["format"] = serde_json::json!(format);
        json["list"]
            .as_object_mut()
            .expect("list object")
            .remove("digest");
    }
    fs::write(&path, serde_json::to_vec(&json).expect("JSON")).expect("write cache");
}

/// A temp dir with Cloudflare's list as the file `ips`, a state dir beside it, and the
/// options that fetch the file into it.
fn cloudflare_file() -> (tempfile::TempDir, PathBuf, PathBuf, FetchOptions) {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("ips");
    fs::write(&feed, ips_v4() + "\n" + &ips_v6()).expect("write feed");
    let state = dir.path().join("state");
    let o = opts(one(format!("file://{}", feed.display())), &state);
    (dir, feed, state, o)
}

#[test]
fn an_unchanged_body_takes_the_cached_list_without_parsing_it_again() {
    let (_dir, feed, state, o) = cloudflare_file();
    assert_eq!(fetch(&o).expect("first").ranges, cloudflare());
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(cache_path(&state)).expect("cache")).expect("JSON");
    assert_eq!(json["format"], 3);
    assert!(json["list"]["ipv4"]
        .as_str()
        .is_some_and(|l| l.split(' ').count() == 15 && l.starts_with("103.21.244.0/22 ")));
    assert!(json["list"]["digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));

    // The test edits the cached list; the body's digest still matches, so the edited list is
    // what the fetch returns: the body was not parsed again.
    edit_cache(&state, &["198.51.100.0/24"], None);
    let (same, logs) = logged(|| fetch(&o).expect("unchanged body"));
    assert_eq!(
        same.ranges.to_strings(cf_allow_diff::Family::Ipv4),
        ["198.51.100.0/24"]
    );
    assert_eq!(same.ranges.ipv6(), cloudflare().ipv6());
    assert_eq!(same.origin, Origin::Network);
    assert!(logs.contains("match the cached list's digest"), "{logs}");

    // A changed body is parsed.
    fs::write(&feed, "104.16.0.0/13\n2400:cb00::/32\n").expect("change feed");
    let changed = fetch(&o).expect("changed body");
    assert_eq!(
        changed.ranges.to_string(),
        "104.16.0.0/13\n2400:cb00::/32\n"
    );

    // Changed limits are a different digest too: the body is checked against them again.
    let mut strict = opts(one(format!("file://{}", feed.display())), &state);
    strict.validation.max_entries = 1;
    assert!(fetch(&strict).is_err(), "two entries are more than one");
}

#[test]
fn a_corrupt_list_under_a_matching_digest_is_not_used_and_the_body_is_parsed() {
    let (_dir, feed, state, o) = cloudflare_file();
    fetch(&o).expect("first");
    // The list's text damaged, its digest kept: read only when used, and refused then.
    let path = cache_path(&state);
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("cache")).expect("cache JSON");
    json["list"]["ipv4"] = serde_json::json!("103.21.244.0/22 not-a-prefix");
    fs::write(&path, serde_json::to_vec(&json).expect("JSON")).expect("write cache");
    assert!(last_good(&state).expect("readable").is_none());
    let (list, logs) = logged(|| fetch(&o).expect("second"));
    assert_eq!(list.ranges, cloudflare(), "the body was parsed");
    assert!(logs.contains("ignoring the corrupt cache"), "{logs}");
    assert!(!logs.contains("match the cached list's digest"), "{logs}");
    // ... and the cache written again, whole.
    assert_eq!(
        last_good(&state).expect("readable").expect("cached").ranges,
        cloudflare()
    );
    // Offline, a corrupt cached list is not used either: the compiled-in list is.
    fs::write(&path, serde_json::to_vec(&json).expect("JSON")).expect("write cache");
    let mut offline = opts(one(format!("file://{}", feed.display())), &state);
    offline.offline = true;
    let (list, logs) = logged(|| fetch(&offline).expect("offline"));
    assert_eq!(list.origin, Origin::Embedded, "{logs}");
}

#[test]
fn a_cache_without_a_digest_is_parsed_as_before() {
    let (_dir, _feed, state, o) = cloudflare_file();
    fetch(&o).expect("first");
    edit_cache(&state, &["198.51.100.0/24"], Some(1));
    assert_eq!(
        last_good(&state)
            .expect("readable")
            .expect("format 1 is read")
            .ranges
            .ipv4()
            .len(),
        1
    );
    let (list, logs) = logged(|| fetch(&o).expect("second"));
    assert_eq!(list.ranges, cloudflare(), "the body was parsed");
    assert!(!logs.contains("digest"), "{logs}");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(cache_path(&state)).expect("cache")).expect("JSON");
    assert_eq!(json["format"], 3, "rewritten with the digest");
    assert!(json["list"]["digest"].is_string());
}

#[test]
fn a_304_takes_the_cached_list_by_its_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(|req| {
        if req.header("if-none-match") == Some("\"t\"") {
            Reply::status(304)
        } else {
            Reply::ok("text/plain", ips_v4() + "\n" + &ips_v6()).header("ETag", "\"t\"")
        }
    });
    let o = opts(one(server.url("/ips")), dir.path());
    fetch(&o).expect("first");
    edit_cache(dir.path(), &["198.51.100.0/24"], None);
    let second = fetch(&o).expect("304");
    assert_eq!(second.origin, Origin::NotModified);
    assert_eq!(second.etag.as_deref(), Some("\"t\""));
    assert_eq!(
        second.ranges.ipv4().len(),
        1,
        "the cached list, not a parse"
    );
}
