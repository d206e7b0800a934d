//! Every disagreement the differential test found (or that review found), as a named case:
//! the ruleset is loaded in a real kernel and the engine must agree with the SYNs' fate.

mod common;

use common::kernel::{compare, Lab, SOURCES};

fn all_probes(ports: &[u16]) -> Vec<(&'static str, u16)> {
    SOURCES
        .iter()
        .flat_map(|s| ports.iter().map(move |p| (*s, *p)))
        .collect()
}

fn check(label: &str, script: &str, ports: &[u16]) {
    if !cf_allow_testkit::require_root(label) {
        return;
    }
    let lab = Lab::new(label);
    let script = script.replace("IFACE", &lab.iface);
    if let Err(e) = compare(&lab, &script, &all_probes(ports)) {
        panic!("{label}: {e}");
    }
}

/// Found by the differential test: the SYN is new, the later ACK is not; the engine
/// answers for the SYN (and the harness counts a SYN-ACK as accepted).
#[test]
fn ct_state_not_new_drop_lets_the_syn_through() {
    check(
        "ctnotnew",
        "table inet t { chain b { type filter hook prerouting priority 0; policy accept;
           meta l4proto != tcp accept
           ct state != new drop
         }
         }",
        &[22],
    );
}

/// Found by the differential test: the interface's link-local address is no destination
/// Cloudflare uses; a daddr match must be judged on the global addresses only.
#[test]
fn daddr_negation_ignores_link_local_addresses() {
    check(
        "daddrll",
        "table ip6 t { chain b { type filter hook prerouting priority 0; policy accept;
           meta l4proto != tcp accept
           ip6 daddr != 2001:db8::1 drop
         }
         }",
        &[22],
    );
}

/// Found by the differential test: nft 1.0.6's JSON leaves out an ingress chain's device;
/// the reader takes it from `nft list chains`.
#[test]
fn netdev_ingress_drop_on_the_inbound_device() {
    check(
        "ingress",
        "table netdev t { chain b { type filter hook ingress device \"IFACE\" priority 0; policy accept;
           meta l4proto != tcp accept
           ip saddr 192.0.2.0/25 drop
         }
         }",
        &[22],
    );
}

/// Found in review: before conntrack (ingress, prerouting below -200) a packet's ct state is
/// `invalid`, not `new`.
#[test]
fn ct_state_before_conntrack_is_invalid() {
    check(
        "ctraw",
        "table inet t {
           chain raw { type filter hook prerouting priority -300; policy accept;
             meta l4proto != tcp accept
             ct state new tcp dport 22 drop
             ct state invalid tcp dport 80 drop
           }
           chain late { type filter hook prerouting priority -150; policy accept;
             meta l4proto != tcp accept
             ct state new tcp dport 443 drop
           }
         }",
        &[22, 80, 443],
    );
}

/// goto does not come back; jump does; return in a jumped-to chain resumes the caller.
#[test]
fn goto_and_jump_return_semantics() {
    check(
        "gotojump",
        "table inet t {
           chain sub {
             ip saddr 192.0.2.0/26 return
             tcp dport 22 accept
           }
           chain b { type filter hook input priority 0; policy drop;
             meta l4proto != tcp accept
             tcp dport 80 goto sub
             jump sub
             ip saddr 198.51.100.0/24 accept
           }
         }",
        &[22, 80, 443],
    );
}

/// An accept in one base chain does not stop a drop in a later one.
#[test]
fn accept_ends_only_its_base_chain() {
    check(
        "acceptdrop",
        "table inet a { chain b { type filter hook input priority -10; policy accept;
             ip saddr 192.0.2.0/24 accept
           }
         }
         table ip c { chain b { type filter hook input priority 10; policy accept;
             meta l4proto != tcp accept
             ip saddr 192.0.2.64/26 tcp dport 443 drop
           }
         }",
        &[22, 443],
    );
}

/// tcp flags (nft and iptables' --syn / --tcp-flags): a SYN is `syn` under any mask
/// without the ECN bits.
#[test]
fn tcp_flags_of_a_syn() {
    check(
        "tcpflags",
        "table inet t { chain b { type filter hook input priority 0; policy accept;
           meta l4proto != tcp accept
           tcp flags & (fin|syn|rst|ack) != syn tcp dport 22 drop
           tcp flags & (fin|syn|rst|ack) == syn tcp dport 80 drop
           tcp flags syn,rst tcp dport 443 drop
           tcp flags ack tcp dport 1000 drop
         }
         }",
        &[22, 80, 443, 1000],
    );
}

#[test]
fn iptables_syn_and_tcp_flags() {
    if !cf_allow_testkit::require_root("iptables_syn_and_tcp_flags") {
        return;
    }
    let lab = Lab::new("iptflags");
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -p tcp -m tcp ! --syn --dport 22 -j DROP\n\
        -A INPUT -p tcp -m tcp --syn --dport 80 -j DROP\n\
        -A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN --dport 443 -j DROP\n\
        -A INPUT -p tcp -m tcp --tcp-flags ALL NONE --dport 1000 -j DROP\nCOMMIT\n";
    let load = |lab: &Lab| {
        lab.load("")?;
        lab.run_input("iptables-nft-restore", rules)
    };
    if let Err(e) =
        common::kernel::compare_loaded(&lab, rules, &all_probes(&[22, 80, 443, 1000]), &load)
    {
        panic!("{e}");
    }
}

/// Found with the real firewalld (FirewallBackend=iptables): its `ip6 mangle PREROUTING`
/// reverse-path filter was `unknown`. Strict `-m rpfilter` is the route back out of the
/// inbound interface, as `fib saddr . iif oif` is in nft.
#[test]
fn iptables_rpfilter_strict_is_the_reverse_path_lookup() {
    if !cf_allow_testkit::require_root("iptables_rpfilter_strict_is_the_reverse_path_lookup") {
        return;
    }
    let lab = Lab::new("iptrpf");
    let rules = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
        :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -m rpfilter --validmark --invert -j DROP\nCOMMIT\n";
    let load = |lab: &Lab| {
        lab.load("")?;
        lab.run_input("iptables-nft-restore", rules)
    };
    if let Err(e) = common::kernel::compare_loaded(&lab, rules, &all_probes(&[80, 443]), &load) {
        panic!("{e}");
    }
}

/// Found by the differential test in CI: a netdev ingress chain with policy drop in which
/// `meta l4proto != tcp accept` does not match ARP, so the kernel dropped ARP and every probe
/// failed. The engine judges the TCP packets only (ARP is a documented limit); with the lab's
/// permanent neighbour entries it must agree, vmap verdicts and `continue` included.
#[test]
fn netdev_ingress_vmap_with_a_drop_policy() {
    check(
        "netdev_ingress_vmap_with_a_drop_policy",
        r#"table netdev t0 {
  set s0 { type ipv4_addr . inet_service; flags interval; auto-merge; elements = { 198.51.100.128/25 . 443 } }
  chain c2 {
  }
  chain b0 { type filter hook ingress device "IFACE" priority -14; policy drop;
    meta l4proto != tcp accept
    ip6 saddr != 2001:db8::/64 tcp dport vmap { 22 : accept, 80 : accept, 443 : continue }
    tcp dport vmap { 22 : accept, 80 : drop, 443 : continue }
    iifname "nomatch*" jump c2
    tcp dport != 1000-2000 ip saddr . tcp dport @s0 drop
  }
}
"#,
        &[22, 80, 443],
    );
}

/// Found by the forward differential soak: on the input hook there is no output device, and
/// the kernel reads the empty name and index 0 (`nft_meta_store_ifname`/`_ifindex`), so
/// `oifname != "x"` matches every SYN there and `oifname "x"`, `oif 7` match none.
#[test]
fn oifname_on_the_input_hook_is_the_empty_name() {
    check(
        "oifname_on_the_input_hook_is_the_empty_name",
        r#"table inet t {
  chain pre { type filter hook prerouting priority -10; policy accept;
    meta l4proto != tcp accept
    oifname "IFACE" drop
    meta oifname "cf*" tcp dport 443 drop
  }
  chain b { type filter hook input priority -10; policy accept;
    meta l4proto != tcp accept
    oif 1 drop
    ip saddr 192.0.2.0/25 oifname != "IFACE" drop
    ip6 saddr 2001:db8::/64 oifname != "nomatch*" tcp dport 80 drop
  }
}
"#,
        &[22, 80, 443],
    );
}
