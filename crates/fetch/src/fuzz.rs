//! Fuzz targets (issue 13 item 21): the feed parser (JSON and text, then validation) and the
//! cache reader never panic, whatever the bytes. Bounded by `CF_ALLOW_FUZZ_CASES`.

use cf_allow_testkit::fuzz::{self, Counter};
use proptest::prelude::*;

use crate::parse::{parse_body, Context};
use crate::validate::{check_entries, check_list, Validation};

const JSON_SEEDS: &[&str] = &[
    r#"{"result":{"ipv4_cidrs":["173.245.48.0/20","104.16.0.0/13"],"ipv6_cidrs":["2400:cb00::/32"],"etag":"38f79d0"},"success":true,"errors":[],"messages":[]}"#,
    r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}"#,
    r#"[{"a":1},{"a":[1,2,{"b":"\u00e9"}]}]"#,
];

const TEXT_SEEDS: &[&str] = &[
    "173.245.48.0/20\n103.21.244.0/22\n2400:cb00::/32\n",
    "# comment\r\n104.16.0.0/13 # trailing\r\n\r\n2606:4700::/32\n",
    "010.0.0.0/8\n192.0.2.1/24\n::/0\n",
];

fn run_feed(bytes: &[u8], content_type: Option<&str>) {
    let ctx = Context {
        status: Some(200),
        content_type: content_type.map(str::to_string),
    };
    if let Ok(parsed) = parse_body(bytes, &ctx) {
        for v in [
            Validation::default(),
            Validation {
                allow_reserved: true,
                max_entries: 3,
            },
        ] {
            if let Ok(nets) = check_entries(&parsed.entries, &v) {
                let _ = check_list(&nets, &v);
            }
        }
    }
}

static JSON: Counter = Counter::new("feed parser (JSON)");
static TEXT: Counter = Counter::new("feed parser (text)");
static CACHE: Counter = Counter::new("cache reader");

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn fuzz_feed_json(bytes in fuzz::mutated(JSON_SEEDS)) {
        JSON.tick();
        run_feed(&bytes, Some("application/json"));
        run_feed(&bytes, None);
    }

    #[test]
    fn fuzz_feed_text(bytes in fuzz::mutated(TEXT_SEEDS)) {
        TEXT.tick();
        run_feed(&bytes, Some("text/plain"));
    }

    #[test]
    fn fuzz_cache_reader(bytes in fuzz::mutated(&[
        r#"{"format":1,"list":{"source":"https://api.cloudflare.com/client/v4/ips","etag":"x","fetched_at":1700000000,"ipv4":["104.16.0.0/13"],"ipv6":["2400:cb00::/32"]},"urls":{"https://x/":{"etag":"\"e\"","api_etag":null,"body":"104.16.0.0/13\n"}}}"#,
    ])) {
        CACHE.tick();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(crate::cache::cache_path(dir.path()), &bytes).expect("write");
        // Corrupt or not: never a panic; an unreadable cache is an error, a bad one None.
        let _ = crate::cache::load(dir.path());
    }
}
