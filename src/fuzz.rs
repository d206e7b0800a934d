//! Fuzz target (issue 13 item 21): the config loader never panics, whatever the bytes.
//! Bounded by `CF_ALLOW_FUZZ_CASES`.

use cf_allow_testkit::fuzz::{self, Counter};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../packaging/config.yaml"),
    "\u{feff}---\nbackend: iptables\nports: [80, 443]\nsources:\n  - file:///etc/cf-allow/ips.txt\n  - [https://a/x, https://b/y]\nextra_cidrs: [10.0.0.0/8]\nguard: {max_entries: 5, allow_reserved: true}\niptables: {chain: CF-ALLOW, hooks: [INPUT, DOCKER-USER], lockdown: true}\nnftables: {into: {family: inet, table: filter, chain: input}}\ncsf: {reload: \"csf -ra\", apply: restart}\n",
    "state_dir: /var/lib/cf-allow\ntimeout_secs: 15\nports: []\n&a x: *a\n",
];

static CONFIG: Counter = Counter::new("config loader");

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn fuzz_config_loader(bytes in fuzz::mutated(SEEDS)) {
        CONFIG.tick();
        let _ = crate::config::parse(&String::from_utf8_lossy(&bytes));
    }
}
