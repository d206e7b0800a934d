//! The forward (DNAT) path and lockdown on captured rulesets: Docker's iptables-nft rules
//! (`docker run -p 443:8443` shape, captured with iptables-nft 1.8.9 / nft 1.0.6 from a
//! namespace) and netavark's nftables rules (Podman). No root needed.

mod common;

use cf_allow_reach::{
    CfLayer, HostModel, Interface, Probe, RangeSet, ReadOptions, RuleLayer, Sources,
};

const DOCKER_NFT: &str = include_str!("data/docker-iptables-nft.json");
const DOCKER_SAVE: &str = include_str!("data/docker-iptables-nft.save");
const NETAVARK_NFT: &str = include_str!("data/netavark.json");

/// The host: `veth0` 192.0.2.1/24 with the default route, the bridge `br0` 198.51.100.1/24
/// with the container 198.51.100.2 behind it.
fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            name: "lo".into(),
            index: 1,
            addrs: vec!["127.0.0.1".parse().expect("addr")],
            routes: Vec::new(),
            up: true,
            loopback: true,
            ..Interface::default()
        },
        Interface {
            name: "veth0".into(),
            index: 2,
            addrs: vec!["192.0.2.1".parse().expect("addr")],
            default_v4: true,
            routes: vec![
                "0.0.0.0/0".parse().expect("net"),
                "192.0.2.0/24".parse().expect("net"),
            ],
            up: true,
            ..Interface::default()
        },
        Interface {
            name: "br0".into(),
            index: 3,
            addrs: vec!["198.51.100.1".parse().expect("addr")],
            routes: vec!["198.51.100.0/24".parse().expect("net")],
            up: true,
            ..Interface::default()
        },
    ]
}

fn docker(forwarding: bool) -> HostModel {
    let mut s = Sources::nft_only(DOCKER_NFT, interfaces());
    s.iptables_nft_v4 = Some(Ok(DOCKER_SAVE.to_string()));
    s.forwarding = [Some(forwarding), Some(false)];
    HostModel::from_sources(&s, &ReadOptions::default())
}

fn netavark() -> HostModel {
    let mut s = Sources::nft_only(NETAVARK_NFT, interfaces());
    s.forwarding = [Some(true), Some(false)];
    HostModel::from_sources(&s, &ReadOptions::default())
}

fn probe(lockdown: bool) -> Probe {
    Probe {
        ranges: RangeSet::aggregated(["203.0.113.0/24".parse().expect("net")]),
        ports: vec![80, 443],
        lockdown,
    }
}

/// `ports | table chain: rule` of each exposed finding, sorted, deduplicated.
fn exposed(m: &HostModel, p: &Probe) -> Vec<String> {
    common::described(&m.evaluate(p).exposed, false)
}

fn own_table(lockdown: bool, forward: Option<&str>) -> CfLayer {
    CfLayer::OwnTable {
        family: "inet".into(),
        table: "cf_allow".into(),
        priority: 0,
        ranges: probe(false).ranges,
        ports: vec![80, 443],
        lockdown,
        forward: forward.map(String::from),
    }
}

#[test]
fn docker_published_port_is_followed_to_the_container() {
    let m = docker(true);
    let v = m.evaluate(&probe(false));
    assert!(v.reachable, "{}", v.to_json());
    assert!(v.exposed.is_empty() && !v.locked_down);
    // Where 443 goes, from the same model (doctor's "forwarded", never "nothing listens").
    let fwd: Vec<String> = m
        .forwarded(&[80, 443])
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        fwd,
        ["443 is forwarded to 198.51.100.2:8443 by ip nat DOCKER"]
    );
    assert!(m.has_chain("filter", "DOCKER-USER"));
}

#[test]
fn docker_lockdown_without_forward_rules_is_exposed_by_dockers_accept() {
    let m = docker(true);
    let p = probe(true);
    assert_eq!(
        exposed(&m, &p),
        [
            "443 | ip filter DOCKER: \"-A DOCKER -d 198.51.100.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 8443 -j ACCEPT\" (handle 14)",
            "80 | ip filter INPUT: \"policy accept\"",
        ]
    );
    let v = m.evaluate(&p);
    assert!(v.reachable && v.locked_down, "{}", v.to_json());
    // The outsiders are every other address: the listed /24 is not among them.
    let json = v.to_json();
    let ranges: Vec<&str> = json["exposed"][0]["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(ranges.contains(&"0.0.0.0/1") && !ranges.iter().any(|r| r.starts_with("203.0.113.")));
    assert_eq!(json["locked_down"], true);

    // nftables' own table with the lockdown drop on input only (main before the forward
    // chain): 80 is covered, the published port is not.
    let input_only = m.with_layer(&own_table(true, None));
    assert_eq!(
        exposed(&input_only, &p),
        ["443 | ip filter DOCKER: \"-A DOCKER -d 198.51.100.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 8443 -j ACCEPT\" (handle 14)"]
    );
    // With the forward chain: nothing exposed, Cloudflare still gets through.
    let both = m.with_layer(&own_table(true, Some("forward")));
    let v = both.evaluate(&p);
    assert!(v.reachable && v.exposed.is_empty(), "{}", v.to_json());
}

#[test]
fn docker_user_hook_covers_the_published_port() {
    let m = docker(true);
    let p = probe(true);
    let layers: Vec<CfLayer> = [
        ("INPUT", "CF-ALLOW", false),
        ("DOCKER-USER", "CF-ALLOW-DOCKER", true),
    ]
    .iter()
    .map(|(hook, own, dnat)| CfLayer::FirstRule {
        layer: RuleLayer::Nftables,
        family: "ip".into(),
        table: "filter".into(),
        chain: (*hook).into(),
        ranges: p.ranges.clone(),
        ports: p.ports.clone(),
        replaces_jump_to: Some((*own).into()),
        lockdown: true,
        dnat: *dnat,
    })
    .collect();
    let v = m.with_layers(&layers).evaluate(&p);
    assert!(v.reachable && v.exposed.is_empty(), "{}", v.to_json());
    // INPUT alone leaves the published port open.
    let v = m.with_layers(&layers[..1]).evaluate(&p);
    assert!(v.reachable, "{}", v.to_json());
    assert_eq!(v.exposed.len(), 1, "{}", v.to_json());
    assert_eq!(v.exposed[0].by.chain, "DOCKER");
}

#[test]
fn forwarding_off_blocks_the_published_port() {
    let v = docker(false).evaluate(&probe(false));
    assert!(!v.reachable);
    assert_eq!(v.blocked.len(), 1, "{}", v.to_json());
    assert_eq!(v.blocked[0].by.layer, "host");
    assert!(v.blocked[0].by.rule.contains("net.ipv4.ip_forward = 0"));
    assert_eq!(v.blocked[0].ports[0].to_string(), "443");
}

#[test]
fn netavark_forward_chain_policy_accept_is_exposed() {
    let m = netavark();
    let p = probe(true);
    let v = m.evaluate(&p);
    assert!(v.reachable && v.unknown.is_empty(), "{}", v.to_json());
    let e = exposed(&m, &p);
    assert!(
        e.contains(&"443 | inet netavark FORWARD: \"policy accept\"".to_string()),
        "{e:?}"
    );
    let fwd: Vec<String> = m.forwarded(&[443]).iter().map(|f| f.to_string()).collect();
    assert_eq!(fwd, ["443 is forwarded to 198.51.100.2:8443 by inet netavark nv_2f259bab_198_51_100_0_nm24_dnat"]);
    let covered = m.with_layer(&own_table(true, Some("forward")));
    let v = covered.evaluate(&p);
    assert!(v.reachable && v.exposed.is_empty(), "{}", v.to_json());
}

#[test]
fn a_dnat_the_engine_cannot_follow_stays_unknown() {
    // A DNAT to a port range is not followed: unknown, never guessed.
    let save = DOCKER_SAVE.replace("198.51.100.2:8443", "198.51.100.2:8443-8444");
    let mut s = Sources::nft_only(DOCKER_NFT, interfaces());
    s.iptables_nft_v4 = Some(Ok(save));
    s.forwarding = [Some(true), Some(false)];
    let v = HostModel::from_sources(&s, &ReadOptions::default()).evaluate(&probe(false));
    assert!(!v.reachable);
    assert_eq!(v.unknown.len(), 1, "{}", v.to_json());
    assert!(v.unknown[0]
        .expr
        .as_deref()
        .is_some_and(|e| e.contains("8443-8444")));
}

/// An inet table's `dnat ip to` without `meta nfproto ipv4` before it (testkit's Podman shape
/// writes it so): for an IPv6 SYN the kernel's nat statement does nothing
/// (nft_nat_inet_eval) and the packet stays local. Found on the Podman host, where every
/// IPv6 range was `unknown`.
#[test]
fn netavark_ipv4_dnat_does_nothing_to_ipv6() {
    let mut ifaces = interfaces();
    ifaces[1].addrs.push("2001:db8::1".parse().expect("addr"));
    ifaces[1].default_v6 = true;
    ifaces[1].routes.push("::/0".parse().expect("net"));
    let nfproto =
        r#"{"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, "#;
    assert!(NETAVARK_NFT.contains(nfproto));
    let mut s = Sources::nft_only(&NETAVARK_NFT.replace(nfproto, ""), ifaces);
    s.forwarding = [Some(true), Some(false)];
    let m = HostModel::from_sources(&s, &ReadOptions::default());
    let p = Probe {
        ranges: RangeSet::aggregated(["2001:db8:1::/48".parse().expect("net")]),
        ports: vec![443],
        lockdown: false,
    };
    let v = m.evaluate(&p);
    assert!(v.reachable, "{}", v.to_json());
    assert!(
        v.unknown.is_empty() && v.blocked.is_empty(),
        "{}",
        v.to_json()
    );
}
