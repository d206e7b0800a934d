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
    assert_eq!(
        v.to_json()["blocked"][0]["by"]["rule"],
        "reject with icmpx admin-prohibited"
    );
}

#[test]
fn iptables_nft_drop_policy_blocks_what_it_does_not_accept() {
    if !require_root("iptables_nft_drop_policy_blocks_what_it_does_not_accept") {
        return;
    }
    let (ns, _client) = lab::server_and_client("iptnft", &[22, 443]);
    ns.sh("iptables-nft -P INPUT DROP && \
         iptables-nft -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && \
         iptables-nft -A INPUT -i lo -j ACCEPT && \
         iptables-nft -A INPUT -p tcp -m multiport --dports 22,2222 -j ACCEPT");
    let model = read_in(&ns);
    let v = model.evaluate(&probe(&["192.0.2.0/24"], &[22, 443]));
    assert_eq!(
        blocked(&v),
        ["ipv4 192.0.2.0/24 443 | ip filter INPUT: \"policy drop\""],
        "{}",
        v.to_json()
    );
    assert!(v.unknown.is_empty(), "{}", v.to_json());
    // The kernel agrees.
    let t = std::time::Duration::from_secs(2);
    assert!(_client.tcp_connect(lab::ALLOWED_V4, &format!("{}:22", lab::SERVER_V4), t));
    assert!(!_client.tcp_connect(lab::ALLOWED_V4, &format!("{}:443", lab::SERVER_V4), t));
}

#[test]
fn fail2ban_style_ipset_reject_blocks_exactly_the_banned_address() {
    if !require_root("fail2ban_style_ipset_reject_blocks_exactly_the_banned_address") {
        return;
    }
    let (ns, _client) = lab::server_and_client("f2b", &[]);
    ns.sh(
        "ipset create f2b-nginx hash:ip timeout 600 && ipset add f2b-nginx 104.16.0.5 && \
         iptables-nft -I INPUT -p tcp -m multiport --dports 80,443 -m set --match-set f2b-nginx src \
           -j REJECT --reject-with icmp-port-unreachable",
    );
    let model = read_in(&ns);
    let v = model.evaluate(&probe(&["104.16.0.0/13", "2606:4700::/32"], &[80, 443]));
    let b = blocked(&v);
    assert_eq!(b.len(), 1, "{}", v.to_json());
    assert!(
        b[0].starts_with("ipv4 104.16.0.5/32 80,443 | ip filter INPUT: \"-A INPUT -p tcp -m multiport --dports 80,443 -m set --match-set f2b-nginx src"),
        "{b:?}"
    );
    assert!(v.unknown.is_empty(), "{}", v.to_json());
}

#[test]
fn iptables_legacy_beside_nf_tables_is_read_at_its_priority() {
    if !require_root("iptables_legacy_beside_nf_tables_is_read_at_its_priority") {
        return;
    }
    let (ns, client) = server_with(
        "legacy",
        "table inet cfallow { chain input { type filter hook input priority -10; policy accept;
             ip saddr 192.0.2.0/24 tcp dport 443 accept
           }
         }",
    );
    ns.sh("iptables-legacy -A INPUT -s 192.0.2.16/28 -p tcp --dport 443 -j DROP");
    let model = read_in(&ns);
    let v = model.evaluate(&probe(&["192.0.2.0/24"], &[443]));
    assert_eq!(
        blocked(&v),
        ["ipv4 192.0.2.16/28 443 | ip filter INPUT: \"-A INPUT -s 192.0.2.16/28 -p tcp -m tcp --dport 443 -j DROP\""],
        "{}",
        v.to_json()
    );
    assert_eq!(v.blocked[0].by.layer, "iptables-legacy");
    // The kernel agrees: 192.0.2.20 is inside the /28, 192.0.2.10 is not.
    ns.tcp_listen("0.0.0.0:443");
    let t = std::time::Duration::from_secs(2);
    assert!(client.tcp_connect(lab::ALLOWED_V4, &format!("{}:443", lab::SERVER_V4), t));
    assert!(!client.tcp_connect(lab::OTHER_V4, &format!("{}:443", lab::SERVER_V4), t));
    ns.sh("iptables-legacy -F INPUT");
}

#[test]
fn ipv6_reject_and_concatenated_set() {
    if !require_root("ipv6_reject_and_concatenated_set") {
        return;
    }
    let (ns, _client) = server_with(
        "v6",
        "table ip6 f {
           set deny { type ipv6_addr . inet_service; flags interval; elements = { 2001:db8::10 . 443, 2400:cb00:1::/48 . 80-443 } }
           chain input { type filter hook input priority 0; policy accept;
             ip6 saddr . tcp dport @deny reject with tcp reset
             ip6 saddr 2606:4700::/33 tcp dport 443 drop
           }
         }",
    );
    let model = read_in(&ns);
    let v = model.evaluate(&probe(
        &["2400:cb00::/32", "2606:4700::/32", "2001:db8::/64"],
        &[80, 443],
    ));
    assert_eq!(
        blocked(&v),
        [
            "ipv6 2001:db8::10/128 443 | ip6 f input: \"ip6 saddr . tcp dport @deny reject with tcp reset\" (handle 3)",
            "ipv6 2400:cb00:1::/48 80,443 | ip6 f input: \"ip6 saddr . tcp dport @deny reject with tcp reset\" (handle 3)",
            "ipv6 2606:4700::/33 443 | ip6 f input: \"ip6 saddr 2606:4700::/33 tcp dport 443 drop\" (handle 4)",
        ],
        "{}",
        v.to_json()
    );
}

#[test]
fn unreadable_rules_give_unknown_with_the_reason_never_reachable() {
    if !require_root("unreadable_rules_give_unknown_with_the_reason_never_reachable") {
        return;
    }
    let bin = common::verdict_bin();
    if !cf_allow_testkit::require_path(
        "unreadable_rules_give_unknown_with_the_reason_never_reachable",
        &bin,
    ) {
        return;
    }
    let ns = Netns::new("noroot");
    // Not root: the same program as an unprivileged user.
    let out = ns.sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups {} --ports 443 104.16.0.0/13",
        bin.display()
    ));
    let v = common::verdict_json(&out);
    assert_eq!(v["reachable"], false, "{v}");
    assert_eq!(v["unknown"][0]["by"]["layer"], "host", "{v}");
    let why = v["unknown"][0]["expr"].as_str().unwrap_or("");
    assert!(
        why.contains("nft -j list ruleset") && why.contains("run cf-allow as root"),
        "{why}"
    );
    assert_eq!(v["unknown"][0]["ranges"][0], "104.16.0.0/13");
    // nft missing: hidden in a private mount namespace (the host's files are untouched).
    let nft = cf_allow_testkit::which("nft").expect("nft");
    let out = ns.sh(&format!(
        "unshare -m bash -c 'mount --bind /dev/null {} && {} --ports 443 104.16.0.0/13'",
        nft.display(),
        bin.display()
    ));
    let v = common::verdict_json(&out);
    assert_eq!(v["reachable"], false, "{v}");
    assert!(
        v["unknown"][0]["expr"]
            .as_str()
            .unwrap_or("")
            .contains("nft is not installed"),
        "{v}"
    );
}

#[test]
fn projection_own_table_does_not_beat_a_foreign_reject_but_a_first_rule_does() {
    if !require_root("projection_own_table_does_not_beat_a_foreign_reject_but_a_first_rule_does") {
        return;
    }
    use cf_allow_reach::{CfLayer, RangeSet, RuleLayer};
    let (ns, _client) = server_with(
        "proj",
        "table inet firewalld {
           chain filter_INPUT { type filter hook input priority 10; policy accept;
             tcp dport 22 accept
             reject with icmpx admin-prohibited
           }
         }
         table inet cf_allow { chain input { type filter hook input priority -10; policy accept;
             ip saddr 10.0.0.0/8 accept
           }
         }",
    );
    ns.sh("iptables-nft -P INPUT DROP");
    let model = read_in(&ns);
    let ranges = RangeSet::aggregated(["104.16.0.0/13".parse().expect("net")]);
    let p = probe(&["104.16.0.0/13"], &[443]);
    let own = model.with_layer(&CfLayer::OwnTable {
        family: "inet".into(),
        table: "cf_allow".into(),
        priority: -10,
        ranges: ranges.clone(),
        ports: vec![443],
        lockdown: false,
        forward: None,
    });
    // The old cf_allow table is replaced; ip filter's policy (priority 0) decides before
    // firewalld's reject (priority 10).
    assert_eq!(
        own.tables()
            .iter()
            .filter(|(_, t)| t == "inet cf_allow")
            .count(),
        1
    );
    let v = own.evaluate(&p);
    assert_eq!(
        blocked(&v),
        ["ipv4 104.16.0.0/13 443 | ip filter INPUT: \"policy drop\""],
        "{}",
        v.to_json()
    );
    // With an accept first in ip filter INPUT only, firewalld's reject decides.
    let one = model.with_layer(&CfLayer::FirstRule {
        layer: RuleLayer::Nftables,
        family: "ip".into(),
        table: "filter".into(),
        chain: "INPUT".into(),
        ranges: ranges.clone(),
        ports: vec![443],
        replaces_jump_to: None,
        lockdown: false,
        dnat: false,
    });
    let v = one.evaluate(&p);
    assert_eq!(
        blocked(&v),
        ["ipv4 104.16.0.0/13 443 | inet firewalld filter_INPUT: \"reject with icmpx admin-prohibited\" (handle 3)"],
        "{}",
        v.to_json()
    );
    // Accepts first in both blocking chains: reachable.
    let both = model.with_layers(&[
        CfLayer::FirstRule {
            layer: RuleLayer::Nftables,
            family: "inet".into(),
            table: "firewalld".into(),
            chain: "filter_INPUT".into(),
            ranges: ranges.clone(),
            ports: vec![443],
            replaces_jump_to: None,
            lockdown: false,
            dnat: false,
        },
        CfLayer::FirstRule {
            layer: RuleLayer::Nftables,
            family: "ip".into(),
            table: "filter".into(),
            chain: "INPUT".into(),
            ranges,
            ports: vec![443],
            replaces_jump_to: Some("cf-allow".into()),
            lockdown: false,
            dnat: false,
        },
    ]);
    let v = both.evaluate(&p);
    assert!(v.reachable, "{}", v.to_json());
    // The projection is a copy: the model read from the host is unchanged.
    assert!(!model.evaluate(&p).reachable);
}

#[test]
fn projection_last_rule_comes_after_the_chains_own_rules_and_needs_the_chain() {
    if !require_root("projection_last_rule_comes_after_the_chains_own_rules_and_needs_the_chain") {
        return;
    }
    use cf_allow_reach::{CfLayer, RangeSet, RuleLayer};
    // ufw's shape: INPUT (policy drop) jumps to a user chain; a deny of part of the range
    // is already there.
    let (ns, _client) = server_with("projlast", "");
    ns.sh(
        "iptables-nft -N ufw-user-input && iptables-nft -A ufw-user-input -s 104.16.0.0/16 -j DROP \
         && iptables-nft -A INPUT -j ufw-user-input && iptables-nft -P INPUT DROP",
    );
    let model = read_in(&ns);
    let ranges = RangeSet::aggregated(["104.16.0.0/13".parse().expect("net")]);
    let p = probe(&["104.16.0.0/13"], &[443]);
    let last = |chain: &str| CfLayer::LastRule {
        layer: RuleLayer::Nftables,
        family: "ip".into(),
        table: "filter".into(),
        chain: chain.into(),
        ranges: ranges.clone(),
        ports: vec![443],
    };
    // Appended after the deny: the deny still decides for its /16, the rest gets in.
    let v = model.with_layer(&last("ufw-user-input")).evaluate(&p);
    assert_eq!(
        blocked(&v),
        ["ipv4 104.16.0.0/16 443 | ip filter ufw-user-input: \"ip saddr 104.16.0.0/16 drop\" (handle 2)"],
        "{}",
        v.to_json()
    );
    // A chain that does not exist gets nothing: the policy drop decides for everything.
    let none = model.with_layer(&last("ufw6-user-input"));
    assert_eq!(none.evaluate(&p).to_json(), model.evaluate(&p).to_json());
    assert!(!model.evaluate(&p).reachable);
}
