//! Fuzz targets (issue 13 item 21): the one reader of the host's rules — `nft -j list
//! ruleset`, `ipset save` and `iptables-save` output into [`HostModel`], and the questions
//! doctor asks of it ([`HostModel::sets`]) — never panics, whatever the bytes. Bounded by
//! `CF_ALLOW_FUZZ_CASES`.

use cf_allow_reach::{HostModel, ReadOptions, Sources};
use cf_allow_testkit::fuzz::{self, Counter};
use proptest::prelude::*;

const NFT_SEEDS: &[&str] = &[
    r#"{"nftables":[{"metainfo":{"version":"1.0.9","json_schema_version":1}},{"table":{"family":"inet","name":"cf_allow","handle":1}},{"set":{"family":"inet","name":"cf_v4","table":"cf_allow","type":"ipv4_addr","handle":2,"flags":["interval"],"elem":["192.0.2.0/24",{"prefix":{"addr":"198.51.100.0","len":24}},{"range":["203.0.113.1","203.0.113.9"]},{"elem":{"val":"192.0.2.7","comment":"x"}}]}}]}"#,
    r#"{"nftables":[{"set":{"family":"ip","name":"s","table":"t","type":"ipv4_addr","elem":[]}},{"rule":{"family":"inet","table":"filter","chain":"input","expr":[{"accept":null}]}}]}"#,
];
const IPSET_SEEDS: &[&str] = &[
    "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536\nadd cf-allow-v4 173.245.48.0/20\ncreate blocked hash:ip family inet6\nadd blocked 2001:db8::1\ncreate ipp hash:ip,port family inet\nadd ipp 104.16.0.2,tcp:443\nadd blocked 2001:db8::/32 nomatch\n",
];
const SAVE_SEEDS: &[&str] = &[
    "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 443 -j DROP\n-A INPUT -j CF-ALLOW\n-A INPUT -m set --match-set blocked src -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n",
];

static NFT: Counter = Counter::new("nft -j list ruleset reader (reach)");
static IPSET: Counter = Counter::new("ipset save reader (reach)");
static SAVE: Counter = Counter::new("iptables-save reader (reach)");

/// Builds the model from the sources and asks it every question doctor asks.
fn ask(sources: &Sources) {
    let model = HostModel::from_sources(sources, &ReadOptions::default());
    for set in model.sets() {
        let _ = (set.path(), set.allowlist_only());
        for e in &set.elements {
            let _ = e.to_string();
        }
    }
    let _ = model.forwarded(&[80, 443]);
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn fuzz_reach_nft_ruleset(bytes in fuzz::mutated(NFT_SEEDS)) {
        NFT.tick();
        ask(&Sources::nft_only(&String::from_utf8_lossy(&bytes), Vec::new()));
    }

    #[test]
    fn fuzz_reach_ipset_save(bytes in fuzz::mutated(IPSET_SEEDS)) {
        IPSET.tick();
        let mut s = Sources::nft_only(r#"{"nftables":[]}"#, Vec::new());
        s.ipset = Some(Ok(String::from_utf8_lossy(&bytes).into_owned()));
        s.iptables_legacy_v4 = Some(Ok(SAVE_SEEDS[0].to_string()));
        ask(&s);
    }

    #[test]
    fn fuzz_reach_iptables_save(bytes in fuzz::mutated(SAVE_SEEDS)) {
        SAVE.tick();
        let mut s = Sources::nft_only(r#"{"nftables":[]}"#, Vec::new());
        s.iptables_legacy_v4 = Some(Ok(String::from_utf8_lossy(&bytes).into_owned()));
        s.ipset = Some(Ok(IPSET_SEEDS[0].to_string()));
        ask(&s);
    }
}
