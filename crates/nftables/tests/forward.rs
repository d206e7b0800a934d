//! The forward-hook chain for DNAT'd connections (published container ports), against the
//! real kernel in private namespaces: layout, idempotence, repairs, lockdown off, remove, and
//! real TCP connects through Docker's (iptables-nft) and netavark's (nftables) DNAT.

mod common;

use cf_allow_diff::RangeSet;
use cf_allow_testkit::docker_host::{
    DockerHost, Shape, CLIENT_V4, CONNECT_WAIT, CONTAINER_V4, LOCAL_PORT, PUBLISHED_PORT,
};
use common::*;

const PORTS: [u16; 2] = [LOCAL_PORT, PUBLISHED_PORT];

const FORWARD_V4: &str = "meta l4proto tcp ct direction original ct status dnat ip saddr @cf_v4 ct original proto-dst { 80, 443 } accept comment \"cf-allow\"";
const FORWARD_V6: &str = "meta l4proto tcp ct direction original ct status dnat ip6 saddr @cf_v6 ct original proto-dst { 80, 443 } accept comment \"cf-allow\"";
const FORWARD_DROP: &str = "meta l4proto tcp ct direction original ct status dnat ct original proto-dst { 80, 443 } drop comment \"cf-allow\"";

/// The client's address (and an unrelated IPv6 range), never the outsider's.
fn allow_list() -> RangeSet {
    RangeSet::exact(nets(&[&format!("{CLIENT_V4}/32"), "2001:db8:1::/48"]))
}

fn docker_ready(test: &str, shape: Shape) -> bool {
    let programs: &[&str] = match shape {
        Shape::Docker => &["iptables-nft-restore"],
        Shape::Netavark => &[],
    };
    ready(test) && cf_allow_testkit::require_programs(test, programs)
}

#[test]
fn lockdown_adds_a_forward_chain_that_is_idempotent_repaired_and_removed() {
    if !ready("lockdown_adds_a_forward_chain_that_is_idempotent_repaired_and_removed") {
        return;
    }
    let ns = cf_allow_testkit::Netns::new("nft-fwd");
    let desired = cloudflare();

    // Without lockdown there is no forward chain (accepts alone would change nothing).
    sync(&ns, own(false), &PORTS, &desired).expect("sync without lockdown");
    assert!(!ns
        .sh("nft list table inet cf_allow")
        .contains("chain forward"));

    // Lockdown: the forward chain with two accepts and the drop.
    let on = sync(&ns, own(true), &PORTS, &desired).expect("lockdown");
    assert!(
        on.plan
            .repairs
            .iter()
            .any(|r| r == "create chain inet cf_allow forward on the forward hook (published container ports)"),
        "{:?}",
        on.plan.repairs
    );
    let listing = ns.sh("nft list chain inet cf_allow forward");
    assert!(
        listing.contains("type filter hook forward priority filter; policy accept;"),
        "{listing}"
    );
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "forward"),
        [FORWARD_V4, FORWARD_V6, FORWARD_DROP]
    );
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "input")[2],
        "tcp dport { 80, 443 } drop comment \"cf-allow\""
    );

    // Idempotent: nothing planned, nothing changed.
    let settled = ruleset(&ns);
    let again = sync(&ns, own(true), &PORTS, &desired).expect("again");
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    assert_eq!(ruleset(&ns), settled);

    // A deleted forward rule is repaired; the set elements are not touched.
    let handle = ns
        .sh("nft -a list chain inet cf_allow forward")
        .lines()
        .find(|l| l.contains(" drop comment"))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(|h| h.trim().to_owned())
        .expect("drop rule handle");
    ns.sh(&format!(
        "nft delete rule inet cf_allow forward handle {handle}"
    ));
    let elements = ns.sh("nft list set inet cf_allow cf_v4");
    let inspection = inspect(&ns, own(true), &PORTS).expect("inspect");
    assert_eq!(
        inspection.repairs,
        ["rewrite the forward rules of chain inet cf_allow forward (DNAT'd connections by original port, TCP ports 80, 443, lockdown on)"]
    );
    sync(&ns, own(true), &PORTS, &desired).expect("repair");
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "forward"),
        [FORWARD_V4, FORWARD_V6, FORWARD_DROP]
    );
    assert_eq!(ns.sh("nft list set inet cf_allow cf_v4"), elements);

    // Changed ports are repaired in the forward chain too.
    sync(&ns, own(true), &[443], &desired).expect("one port");
    let lines = rule_lines(&ns, "inet", "cf_allow", "forward");
    assert_eq!(
        lines[2],
        "meta l4proto tcp ct direction original ct status dnat ct original proto-dst 443 drop comment \"cf-allow\""
    );

    // Lockdown off: the forward chain goes.
    let off = sync(&ns, own(false), &[443], &desired).expect("lockdown off");
    assert!(
        off.plan
            .repairs
            .iter()
            .any(|r| r == "delete chain inet cf_allow forward (lockdown is off)"),
        "{:?}",
        off.plan.repairs
    );
    assert!(!ns
        .sh("nft list table inet cf_allow")
        .contains("chain forward"));

    // remove deletes the table with its forward chain.
    sync(&ns, own(true), &[443], &desired).expect("lockdown again");
    let lines = remove(&ns, own(true), &[443], false).expect("remove");
    assert_eq!(lines, ["table inet cf_allow"]);
    assert_eq!(ruleset(&ns), "");
}

#[test]
fn an_admins_rule_in_the_forward_chain_is_refused_and_kept_by_remove() {
    if !ready("an_admins_rule_in_the_forward_chain_is_refused_and_kept_by_remove") {
        return;
    }
    let ns = cf_allow_testkit::Netns::new("nft-fwdmine");
    let desired = cloudflare();
    sync(&ns, own(true), &[443], &desired).expect("lockdown");
    ns.sh("nft add rule inet cf_allow forward tcp dport 22 accept");
    let before = ruleset(&ns);
    let err = sync(&ns, own(true), &[443], &desired).expect_err("foreign rule");
    assert!(
        err.to_string()
            .contains("in chain forward (it has no comment"),
        "{err}"
    );
    assert_eq!(ruleset(&ns), before);
    remove(&ns, own(true), &[443], false).expect("remove");
    assert_eq!(
        rule_lines(&ns, "inet", "cf_allow", "forward"),
        ["tcp dport 22 accept"]
    );
    assert!(!ns.sh("nft list table inet cf_allow").contains("cf_v4"));
}

/// nftables own-table mode with lockdown on a host whose runtime DNATs 443 to a container:
/// the client reaches the published and the local port, the outsider neither; the runtime's
/// tables stay byte-identical through sync and remove, after which everyone gets in again.
fn published_port_is_locked_down(test: &str, shape: Shape) {
    if !docker_ready(test, shape) {
        return;
    }
    let host = DockerHost::new("nft-pub", shape);
    assert_eq!(host.reach(), [true; 4], "exposed before cf-allow");
    let runtime = host.runtime_tables();

    sync(&host.server, own(true), &PORTS, &allow_list()).expect("sync");
    assert_eq!(
        host.reach(),
        [true, false, true, false],
        "[client, outsider] × [published, local]"
    );
    assert_eq!(
        host.runtime_tables(),
        runtime,
        "the runtime's tables changed"
    );
    // A connection the container opens itself (to port 443 of the client) is not a DNAT'd
    // original: it is not dropped.
    host.client.tcp_listen(&format!("0.0.0.0:{PUBLISHED_PORT}"));
    assert!(host.container.tcp_connect(
        CONTAINER_V4,
        &format!("{CLIENT_V4}:{PUBLISHED_PORT}"),
        CONNECT_WAIT
    ));
    remove(&host.server, own(true), &PORTS, false).expect("remove");
    assert_eq!(
        host.runtime_tables(),
        runtime,
        "remove changed the runtime's tables"
    );
    assert_eq!(host.reach(), [true; 4]);
}

#[test]
fn docker_published_port_is_locked_down() {
    published_port_is_locked_down("docker_published_port_is_locked_down", Shape::Docker);
}

#[test]
fn netavark_published_port_is_locked_down() {
    published_port_is_locked_down("netavark_published_port_is_locked_down", Shape::Netavark);
}

/// Without lockdown the published port stays open to everyone (nothing is dropped), and no
/// forward chain exists.
#[test]
fn without_lockdown_published_ports_stay_as_they_were() {
    if !docker_ready(
        "without_lockdown_published_ports_stay_as_they_were",
        Shape::Docker,
    ) {
        return;
    }
    let host = DockerHost::new("nft-publk", Shape::Docker);
    sync(&host.server, own(false), &PORTS, &allow_list()).expect("sync");
    assert!(!host
        .server
        .sh("nft list table inet cf_allow")
        .contains("chain forward"));
    assert_eq!(host.reach(), [true; 4]);
}

/// Into mode on a host whose own inet table has no forward chain: with lockdown cf-allow
/// creates its tagged chain `cf_allow_forward` there; remove deletes it.
#[test]
fn into_mode_creates_a_tagged_forward_chain_when_the_table_has_none() {
    if !docker_ready(
        "into_mode_creates_a_tagged_forward_chain_when_the_table_has_none",
        Shape::Docker,
    ) {
        return;
    }
    let host = DockerHost::new("nft-pubinto", Shape::Docker);
    host.server.sh("nft -f - <<'EOF'
table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 22 accept
	}
}
EOF");
    let mut locked = into("filter", "input");
    locked.lockdown = true;
    let runtime = host.runtime_tables();
    sync(&host.server, locked.clone(), &PORTS, &allow_list()).expect("sync");
    let listing = host
        .server
        .sh("nft list chain inet filter cf_allow_forward");
    assert!(listing.contains("comment \"cf-allow\""), "{listing}");
    assert_eq!(
        rule_lines(&host.server, "inet", "filter", "cf_allow_forward")[1..],
        [FORWARD_V4, FORWARD_V6, FORWARD_DROP]
    );
    assert_eq!(host.reach(), [true, false, true, false]);
    let again = sync(&host.server, locked.clone(), &PORTS, &allow_list()).expect("again");
    assert!(again.plan.is_empty(), "{:?}", again.plan);

    let lines = remove(&host.server, locked, &PORTS, false).expect("remove");
    assert!(
        lines
            .iter()
            .any(|l| l == "chain inet filter cf_allow_forward"),
        "{lines:?}"
    );
    assert!(!host
        .server
        .sh("nft list table inet filter")
        .contains("cf_allow_forward"));
    assert_eq!(host.runtime_tables(), runtime);
    assert_eq!(host.reach(), [true; 4]);
}
