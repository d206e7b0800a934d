//! Fuzz targets (issue 13 item 21): doctor's readers of `nft -j list ruleset`, `ipset save`
//! and `iptables-save` output never panic, whatever the bytes. Bounded by
//! `CF_ALLOW_FUZZ_CASES`.

use cf_allow_testkit::fuzz::{self, Counter};
use proptest::prelude::*;

const NFT_SEEDS: &[&str] = &[
    r#"{"nftables":[{"metainfo":{"version":"1.0.9","json_schema_version":1}},{"table":{"family":"inet","name":"cf_allow","handle":1}},{"set":{"family":"inet","name":"cf_v4","table":"cf_allow","type":"ipv4_addr","handle":2,"flags":["interval"],"elem":["192.0.2.0/24",{"prefix":{"addr":"198.51.100.0","len":24}},{"range":["203.0.113.1","203.0.113.9"]},{"elem":{"val":"192.0.2.7","comment":"x"}}]}}]}"#,
    r#"{"nftables":[{"set":{"family":"ip","name":"s","table":"t","type":"ipv4_addr","elem":[]}},{"rule":{"family":"inet","table":"filter","chain":"input","expr":[{"accept":null}]}}]}"#,
];
const IPSET_SEEDS: &[&str] = &[
    "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536\nadd cf-allow-v4 173.245.48.0/20\ncreate blocked hash:ip family inet6\nadd blocked 2001:db8::1\n",
];
const SAVE_SEEDS: &[&str] = &[
    "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 443 -j DROP\n-A INPUT -j CF-ALLOW\n-A INPUT -m set --match-set blocked src -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n",
];

static NFT: Counter = Counter::new("nft -j list ruleset reader");
static IPSET: Counter = Counter::new("ipset save reader (doctor)");
static SAVE: Counter = Counter::new("iptables-save reader (doctor)");

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn fuzz_nft_ruleset(bytes in fuzz::mutated(NFT_SEEDS)) {
        NFT.tick();
        let _ = cf_allow_doctor::nft::parse_ruleset(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_doctor_ipset_save(bytes in fuzz::mutated(IPSET_SEEDS)) {
        IPSET.tick();
        let _ = cf_allow_doctor::ipset::parse_save(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_doctor_iptables_save(bytes in fuzz::mutated(SAVE_SEEDS)) {
        SAVE.tick();
        let _ = cf_allow_doctor::iptables::parse_save(&String::from_utf8_lossy(&bytes));
    }
}
