//! A Docker-shaped host for packet tests: a server namespace that publishes TCP port
//! [`PUBLISHED_PORT`] to a "container" namespace behind a veth (DNAT to
//! [`CONTAINER_V4`]`:`[`CONTAINER_PORT`], forwarded with `ip_forward` on), a client namespace
//! and an outsider namespace on two other links. Documentation addresses only:
//!
//! ```text
//!  client 192.0.2.10 ──── 192.0.2.1   server   198.51.100.1 (docker0/podman0) ──── 198.51.100.2 container
//!  outsider 203.0.113.10 ─ 203.0.113.1        (listens on LOCAL_PORT)                  (listens on 8443)
//! ```
//!
//! The server's rules are the real shapes of the two common container runtimes:
//!
//! - [`Shape::Docker`]: what dockerd (iptables-nft) writes for `docker run -p 443:8443`,
//!   loaded with `iptables-nft-restore` ([`DOCKER_RULES`]): nat `PREROUTING -m addrtype
//!   --dst-type LOCAL -j DOCKER`, `DOCKER ! -i docker0 … --dport 443 -j DNAT`, filter `FORWARD`
//!   policy DROP with `DOCKER-USER`, the isolation chains, the conntrack accept and the
//!   container's accept in `DOCKER`, and the masquerade in `POSTROUTING`. In nftables terms
//!   these are the tables `ip nat` and `ip filter`.
//! - [`Shape::Netavark`]: what podman's netavark (nftables driver) writes for
//!   `podman run -p 443:8443`, loaded with `nft -f` ([`NETAVARK_RULESET`]): `table inet
//!   netavark` with its `PREROUTING` (`fib daddr type local jump NETAVARK-HOSTPORT-DNAT`) and
//!   the per-network DNAT chain, a `FORWARD` chain with policy accept, and `POSTROUTING`.
//!
//! Without any cf-allow rules, both the client and the outsider reach the published port and
//! the local one: that is the exposure cf-allow's lockdown must close.

use std::time::Duration;

use crate::{veth_pair, Netns};

/// The server's address on the client's link.
pub const SERVER_V4: &str = "192.0.2.1";
/// The client's address (tests put `192.0.2.0/24` or this address on the allowlist).
pub const CLIENT_V4: &str = "192.0.2.10";
/// The server's address on the outsider's link.
pub const SERVER_OUTSIDE_V4: &str = "203.0.113.1";
/// The outsider's address (never on the allowlist).
pub const OUTSIDER_V4: &str = "203.0.113.10";
/// The server's address on the container bridge.
pub const BRIDGE_V4: &str = "198.51.100.1";
/// The container bridge's subnet.
pub const BRIDGE_NET: &str = "198.51.100.0/24";
/// The container's address.
pub const CONTAINER_V4: &str = "198.51.100.2";
/// The port the server publishes (DNAT'd to the container).
pub const PUBLISHED_PORT: u16 = 443;
/// The port the container listens on.
pub const CONTAINER_PORT: u16 = 8443;
/// A port the server itself listens on (not published), for "local ports as before".
pub const LOCAL_PORT: u16 = 80;

/// How long a connect may take before it counts as blocked (a dropped SYN never answers).
pub const CONNECT_WAIT: Duration = Duration::from_millis(1500);

/// Which container runtime's rules the server carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// dockerd with iptables-nft: tables `ip nat` and `ip filter`.
    Docker,
    /// podman's netavark with its nftables driver: table `inet netavark`.
    Netavark,
}

impl Shape {
    /// The name of the server's interface towards the container (the runtime's bridge name).
    pub fn bridge(self) -> &'static str {
        match self {
            Shape::Docker => "docker0",
            Shape::Netavark => "podman0",
        }
    }

    /// The nftables tables the runtime's rules live in (`family name`), for byte-identical
    /// comparisons with [`DockerHost::runtime_tables`].
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Shape::Docker => &["ip nat", "ip filter"],
            Shape::Netavark => &["inet netavark"],
        }
    }
}

/// What dockerd writes into iptables (iptables-nft) for one container on the default bridge
/// `docker0` (here 198.51.100.0/24) publishing host port 443 to its port 8443
/// (`docker run -p 443:8443`), as `iptables-save` prints it.
pub const DOCKER_RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.51.100.0/24 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 198.51.100.2/32 -d 198.51.100.2/32 -p tcp -m tcp --dport 8443 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.51.100.2:8443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 198.51.100.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 8443 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
";

/// What netavark's nftables driver writes for one container on the bridge `podman0` (here
/// 198.51.100.0/24) publishing host port 443 to its port 8443 (`podman run -p 443:8443`),
/// in `nft -f` syntax; chains that others jump to come first.
pub const NETAVARK_RULESET: &str = "table inet netavark {
	chain NETAVARK-HOSTPORT-SETMARK {
		meta mark set meta mark | 0x00002000
	}
	chain NETAVARK-ISOLATION-1 {
	}
	chain NETAVARK-ISOLATION-3 {
	}
	chain nv_2f259bab_198_51_100_0_nm24 {
		ip daddr 198.51.100.0/24 accept
		ip daddr != 224.0.0.0/4 masquerade
	}
	chain nv_2f259bab_198_51_100_0_nm24_dnat {
		ip saddr 198.51.100.0/24 tcp dport 443 jump NETAVARK-HOSTPORT-SETMARK
		ip saddr 127.0.0.1 tcp dport 443 jump NETAVARK-HOSTPORT-SETMARK
		tcp dport 443 dnat ip to 198.51.100.2:8443
	}
	chain NETAVARK-HOSTPORT-DNAT {
		tcp dport 443 jump nv_2f259bab_198_51_100_0_nm24_dnat
	}
	chain INPUT {
		type filter hook input priority filter; policy accept;
		ip saddr 198.51.100.0/24 meta l4proto { tcp, udp } th dport 53 accept
	}
	chain FORWARD {
		type filter hook forward priority filter; policy accept;
		ct state invalid drop
		jump NETAVARK-ISOLATION-1
		ip daddr 198.51.100.0/24 ct state related,established accept
		ip saddr 198.51.100.0/24 accept
	}
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x00002000 == 0x00002000 masquerade
		ip saddr 198.51.100.0/24 jump nv_2f259bab_198_51_100_0_nm24
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump NETAVARK-HOSTPORT-DNAT
	}
	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump NETAVARK-HOSTPORT-DNAT
	}
}
";

/// The four namespaces of a Docker-shaped host; all deleted on drop.
pub struct DockerHost {
    /// The runtime whose rules the server carries.
    pub shape: Shape,
    /// The host: runs cf-allow, forwards to the container, listens on [`LOCAL_PORT`].
    pub server: Netns,
    /// The container: listens on [`CONTAINER_PORT`].
    pub container: Netns,
    /// A client at [`CLIENT_V4`] (the address tests allow).
    pub client: Netns,
    /// An outsider at [`OUTSIDER_V4`] (never allowed).
    pub outsider: Netns,
}

impl DockerHost {
    /// Builds the four namespaces, their links and listeners, turns `ip_forward` on in the
    /// server and loads `shape`'s rules there. Panics (with the failing command) when a step
    /// fails; callers check [`crate::require_root`] and, for [`Shape::Docker`],
    /// `iptables-nft-restore` with [`crate::require_programs`] first.
    pub fn new(label: &str, shape: Shape) -> DockerHost {
        let server = Netns::new(&format!("{label}-h"));
        let container = Netns::new(&format!("{label}-k"));
        let client = Netns::new(&format!("{label}-c"));
        let outsider = Netns::new(&format!("{label}-o"));
        veth_pair(
            &server,
            &[&format!("{SERVER_V4}/24")],
            &client,
            &[&format!("{CLIENT_V4}/24")],
        );
        veth_pair(
            &server,
            &[&format!("{SERVER_OUTSIDE_V4}/24")],
            &outsider,
            &[&format!("{OUTSIDER_V4}/24")],
        );
        let bridge = shape.bridge();
        server.sh(&format!(
            "set -e
            ip link add {bridge} type veth peer name eth0 netns {container}
            ip addr add {BRIDGE_V4}/24 dev {bridge}
            ip link set {bridge} up
            sysctl -qw net.ipv4.ip_forward=1",
            container = container.name()
        ));
        container.sh(&format!(
            "set -e
            ip addr add {CONTAINER_V4}/24 dev eth0
            ip link set eth0 up
            ip route add default via {BRIDGE_V4}"
        ));
        container.tcp_listen(&format!("0.0.0.0:{CONTAINER_PORT}"));
        server.tcp_listen(&format!("0.0.0.0:{LOCAL_PORT}"));
        match shape {
            Shape::Docker => {
                server.sh_with_input("iptables-nft-restore", DOCKER_RULES);
            }
            Shape::Netavark => {
                server.sh_with_input("nft -f -", NETAVARK_RULESET);
            }
        }
        DockerHost {
            shape,
            server,
            container,
            client,
            outsider,
        }
    }

    /// True when the client connects to the server's `port` (and reads the listener's byte).
    pub fn client_reaches(&self, port: u16) -> bool {
        self.client
            .tcp_connect(CLIENT_V4, &format!("{SERVER_V4}:{port}"), CONNECT_WAIT)
    }

    /// True when the outsider connects to the server's `port`.
    pub fn outsider_reaches(&self, port: u16) -> bool {
        self.outsider.tcp_connect(
            OUTSIDER_V4,
            &format!("{SERVER_OUTSIDE_V4}:{port}"),
            CONNECT_WAIT,
        )
    }

    /// `[client, outsider]` reach the published port, then `[client, outsider]` reach the
    /// local port; the four probes run at once.
    pub fn reach(&self) -> [bool; 4] {
        let probes: [(&Netns, &str, String); 4] = [
            (
                &self.client,
                CLIENT_V4,
                format!("{SERVER_V4}:{PUBLISHED_PORT}"),
            ),
            (
                &self.outsider,
                OUTSIDER_V4,
                format!("{SERVER_OUTSIDE_V4}:{PUBLISHED_PORT}"),
            ),
            (&self.client, CLIENT_V4, format!("{SERVER_V4}:{LOCAL_PORT}")),
            (
                &self.outsider,
                OUTSIDER_V4,
                format!("{SERVER_OUTSIDE_V4}:{LOCAL_PORT}"),
            ),
        ];
        std::thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .map(|(ns, source, dest)| {
                    scope.spawn(move || ns.tcp_connect(source, dest, CONNECT_WAIT))
                })
                .collect();
            let mut out = [false; 4];
            for (slot, handle) in out.iter_mut().zip(handles) {
                *slot = handle.join().expect("probe thread");
            }
            out
        })
    }

    /// The runtime's own tables as `nft -a list table` prints them (handles included), one
    /// after the other, with the packet and byte counts of iptables-nft's counters zeroed
    /// (probes between two reads move them): compare before and after a `sync` / `remove`
    /// to prove they stayed byte-identical.
    pub fn runtime_tables(&self) -> String {
        self.shape
            .tables()
            .iter()
            .map(|table| zero_counters(&self.server.sh(&format!("nft -a list table {table}"))))
            .collect()
    }
}

/// `counter packets 12 bytes 720` → `counter packets 0 bytes 0`, everything else as it is.
pub fn zero_counters(listing: &str) -> String {
    let mut out = Vec::new();
    let mut words = listing.split(' ').peekable();
    while let Some(word) = words.next() {
        out.push(word.to_owned());
        if word == "packets" || word == "bytes" {
            if let Some(next) = words.peek() {
                let digits = next.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    out.push(format!("0{}", &next[digits..]));
                    words.next();
                }
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(test: &str, shape: Shape) -> Option<DockerHost> {
        let programs: &[&str] = match shape {
            Shape::Docker => &["iptables-nft-restore", "nft"],
            Shape::Netavark => &["nft"],
        };
        if !crate::require_root(test) || !crate::require_programs(test, programs) {
            return None;
        }
        Some(DockerHost::new("dh", shape))
    }

    /// Without cf-allow everyone reaches the published port: the DNAT and forward path work
    /// (the container answers), and the local listener answers too.
    fn everyone_reaches(test: &str, shape: Shape) {
        let Some(host) = built(test, shape) else {
            return;
        };
        assert_eq!(host.reach(), [true; 4], "{shape:?}");
        // The published port is not local: the container answered through the DNAT.
        let tables = host.runtime_tables();
        assert!(tables.contains("198.51.100.2:8443"), "{tables}");
        // Stopping the container's forward path blocks the published port only.
        host.container.sh("ip link set eth0 down");
        assert_eq!(host.reach(), [false, false, true, true], "{shape:?}");
    }

    #[test]
    fn counters_are_zeroed_and_nothing_else_changes() {
        let listing = "\t\tcounter packets 12 bytes 720 accept # handle 4\n\t\tip daddr 1.2.3.4 counter packets 3 bytes 9\n";
        assert_eq!(
            zero_counters(listing),
            "\t\tcounter packets 0 bytes 0 accept # handle 4\n\t\tip daddr 1.2.3.4 counter packets 0 bytes 0\n"
        );
    }

    #[test]
    fn docker_shape_publishes_443_to_the_container() {
        everyone_reaches("docker_shape_publishes_443_to_the_container", Shape::Docker);
    }

    #[test]
    fn netavark_shape_publishes_443_to_the_container() {
        everyone_reaches(
            "netavark_shape_publishes_443_to_the_container",
            Shape::Netavark,
        );
    }
}
