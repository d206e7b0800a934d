//! The reader against real rulesets loaded in private namespaces.

mod common;

use cf_allow_testkit::{lab, require_root, Netns};
use common::{blocked, probe, read_in};

/// A server namespace (joined to a client namespace, kept alive with it) holding `script`.
fn server_with(label: &str, script: &str) -> (Netns, Netns) {
    let (server, client) = lab::server_and_client(label, &[]);
    server.sh_with_input("nft -f -", script);
    (server, client)
}

#[test]
fn firewalld_style_reject_blocks_with_that_rule_named() {
    if !require_root("firewalld_style_reject_blocks_with_that_rule_named") {
        return;
    }
    let (ns, _client) = server_with(
        "fwd",
        "table inet firewalld {
           chain filter_INPUT { type filter hook input priority filter + 10; policy accept;
             ct state { established, related } accept
             ct state invalid drop
             iifname \"lo\" accept
             tcp dport 22 accept
             reject with icmpx admin-prohibited
           }
         }
         table inet cfallow { chain input { type filter hook input priority -10; policy accept;
             ip saddr 192.0.2.0/24 tcp dport { 80, 443 } accept
           }
         }",
    );
    let model = read_in(&ns);
    let v = model.evaluate(&probe(&["192.0.2.0/24"], &[22, 443]));
    assert!(!v.reachable);
    let b = blocked(&v);
    assert_eq!(b.len(), 1, "{b:?} {}", v.to_json());
    assert!(b[0].starts_with("ipv4 192.0.2.0/24 443 | inet firewalld filter_INPUT: \"reject with icmpx admin-prohibited\" (handle "), "{b:?}");
    assert_eq!(v.to_json()["blocked"][0]["by"]["rule"], "reject with icmpx admin-prohibited");
}
