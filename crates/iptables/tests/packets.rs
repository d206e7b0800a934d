//! Packet-level checks over a veth pair between two private namespaces, with documentation
//! addresses: allowed sources reach port 443, others do not; lockdown; ipset mode.

mod common;

use std::time::Duration;

use cf_allow_iptables::{Settings, Variant};
use cf_allow_testkit::{veth_pair, Netns};
use common::*;

const PORTS: [u16; 1] = [443];
const WAIT: Duration = Duration::from_millis(1500);

/// The firewall host and a client with an allowed and a denied address in each family.
fn topology() -> (Netns, Netns) {
    let server = Netns::new("ipt-srv");
    let client = Netns::new("ipt-cli");
    veth_pair(
        &server,
        &[
            "192.0.2.1/24",
            "198.51.100.1/24",
            "2001:db8:1::1/64",
            "2001:db8:2::1/64",
        ],
        &client,
        &[
            "192.0.2.10/24",
            "198.51.100.10/24",
            "2001:db8:1::10/64",
            "2001:db8:2::10/64",
        ],
    );
    for addr in ["0.0.0.0:443", "[::]:443", "0.0.0.0:8080", "[::]:8080"] {
        server.tcp_listen(addr);
    }
    (server, client)
}

/// (IPv4 allowed, IPv4 denied, IPv6 allowed, IPv6 denied) can reach `port`; the four
/// probes run at once.
fn reach(client: &Netns, port: u16) -> [bool; 4] {
    let probes = [
        ("192.0.2.10", format!("192.0.2.1:{port}")),
        ("198.51.100.10", format!("192.0.2.1:{port}")),
        ("2001:db8:1::10", format!("[2001:db8:1::1]:{port}")),
        ("2001:db8:2::10", format!("[2001:db8:1::1]:{port}")),
    ];
    std::thread::scope(|scope| {
        let handles: Vec<_> = probes
            .iter()
            .map(|(source, dest)| scope.spawn(move || client.tcp_connect(source, dest, WAIT)))
            .collect();
        let mut out = [false; 4];
        for (slot, handle) in out.iter_mut().zip(handles) {
            *slot = handle.join().expect("probe thread");
        }
        out
    })
}

fn allowlist_works(variant: Variant, ipset: bool) {
    let (server, client) = topology();
    let list = ranges(&["192.0.2.0/24", "2001:db8:1::/48"]);
    let base = |f: fn(&mut Settings)| {
        let mut s = settings(variant, f);
        s.ipset = ipset;
        s
    };
    assert_eq!(reach(&client, 443), [true; 4], "no firewall yet");

    // INPUT policy DROP: only the allowlist (and ND / established traffic) gets in.
    for v6 in [false, true] {
        let t = program(variant, v6, "");
        server.sh(&format!(
            "{t} -A INPUT -i lo -j ACCEPT && {t} -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && {t} -P INPUT DROP"
        ));
    }
    server.sh(&format!(
        "{} -A INPUT -p ipv6-icmp -j ACCEPT",
        program(variant, true, "")
    ));
    assert_eq!(
        reach(&client, 443),
        [false; 4],
        "policy DROP without cf-allow"
    );
    let open = base(|_| {});
    sync(&server, &open, &PORTS, &list);
    assert_eq!(reach(&client, 443), [true, false, true, false]);
    assert_eq!(
        reach(&client, 8080),
        [false; 4],
        "only the configured ports"
    );

    // Policy ACCEPT with lockdown: the other source loses 443 but keeps 8080.
    for v6 in [false, true] {
        server.sh(&format!("{} -P INPUT ACCEPT", program(variant, v6, "")));
    }
    let locked = base(|s| s.lockdown = true);
    sync(&server, &locked, &PORTS, &list);
    assert_eq!(reach(&client, 443), [true, false, true, false]);
    assert_eq!(reach(&client, 8080), [true; 4]);

    // The list changes: the newly allowed source gets in, the dropped one is out.
    let moved = ranges(&["198.51.100.0/24", "2001:db8:2::/48"]);
    sync(&server, &locked, &PORTS, &moved);
    assert_eq!(reach(&client, 443), [false, true, false, true]);

    // remove: back to no filtering at all.
    remove(&server, &locked, false).expect("remove");
    assert_eq!(reach(&client, 443), [true; 4]);
}

variant_tests!(
    allowlist_works_nft,
    allowlist_works_legacy => |variant| allowlist_works(variant, false)
);

variant_tests!(
    allowlist_works_ipset_nft,
    allowlist_works_ipset_legacy => |variant| allowlist_works(variant, true)
);

/// Docker-like host: port 443 published (DNAT) to a "container" namespace, FORWARD policy
/// DROP with Docker's DOCKER-USER and accept rules.
fn docker_published_port(variant: Variant) {
    let client = Netns::new("ipt-dcli");
    let host = Netns::new("ipt-dhost");
    let container = Netns::new("ipt-dctr");
    veth_pair(
        &host,
        &["192.0.2.1/24", "198.51.100.1/24"],
        &client,
        &["192.0.2.10/24", "198.51.100.10/24"],
    );
    veth_pair(&host, &["203.0.113.1/24"], &container, &["203.0.113.2/24"]);
    container.sh("ip route add default via 203.0.113.1");
    client.sh("ip route add 203.0.113.0/24 via 192.0.2.1");
    container.tcp_listen("0.0.0.0:8443");
    client.tcp_listen("0.0.0.0:443");
    let t = program(variant, false, "");
    host.sh(&format!(
        "set -e
        sysctl -qw net.ipv4.ip_forward=1
        {t} -t nat -A PREROUTING -d 192.0.2.1 -p tcp --dport 443 -j DNAT --to-destination 203.0.113.2:8443
        {t} -N DOCKER-USER
        {t} -A DOCKER-USER -j RETURN
        {t} -A FORWARD -j DOCKER-USER
        {t} -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        {t} -A FORWARD -d 203.0.113.2/32 -p tcp --dport 8443 -j ACCEPT
        {t} -A FORWARD -s 203.0.113.0/24 -j ACCEPT
        {t} -P FORWARD DROP"
    ));
    let published = |source: &str| client.tcp_connect(source, "192.0.2.1:443", WAIT);
    assert!(
        published("192.0.2.10") && published("198.51.100.10"),
        "published to all"
    );

    let s = settings(variant, |s| {
        s.hooks = vec!["INPUT".into(), "DOCKER-USER".into()];
        s.lockdown = true;
    });
    let (inspection, _) = sync(
        &host,
        &s,
        &[443],
        &ranges(&["192.0.2.0/24", "2001:db8:1::/48"]),
    );
    assert_eq!(
        inspection.warnings.len(),
        1,
        "only ip6tables lacks DOCKER-USER"
    );
    assert!(
        published("192.0.2.10"),
        "allowed source reaches the container"
    );
    assert!(
        !published("198.51.100.10"),
        "other sources are dropped before Docker's rules"
    );
    // The container's own outgoing connections to port 443 are not DNATed: not dropped.
    assert!(container.tcp_connect("203.0.113.2", "192.0.2.10:443", WAIT));
}

variant_tests!(
    docker_published_port_nft,
    docker_published_port_legacy => docker_published_port
);
