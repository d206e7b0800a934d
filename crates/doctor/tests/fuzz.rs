//! Fuzz targets (issue 13 item 21): doctor's reader of CSF's deny files never panics,
//! whatever the bytes. (The host's rules and sets are read by the verdict engine,
//! crates/reach, which has its own fuzz targets.) Bounded by `CF_ALLOW_FUZZ_CASES`.

use cf_allow_testkit::fuzz::{self, Counter};
use proptest::prelude::*;

const DENY_SEEDS: &[&str] = &[
    "# lfd bans\n203.0.113.9 # not Cloudflare\n162.158.1.1 # lfd: (mod_security) blocked\ntcp|in|d=80|s=104.16.0.1\nInclude /etc/csf/more.deny\n",
    "1700000000|172.70.1.2|443|in|3600|lfd temp ban\n",
];

static DENY: Counter = Counter::new("csf deny file reader (doctor)");

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn fuzz_doctor_csf_deny(bytes in fuzz::mutated(DENY_SEEDS)) {
        DENY.tick();
        let _ = cf_allow_doctor::csf::parse_deny(&String::from_utf8_lossy(&bytes));
    }
}
