//! A two-namespace lab for packet tests: a server and a client joined by a veth pair, with
//! documentation addresses only.

use crate::{veth_pair, Netns};

/// The server's IPv4 address.
pub const SERVER_V4: &str = "192.0.2.1";
/// The server's IPv6 address.
pub const SERVER_V6: &str = "2001:db8::1";
/// The client's IPv4 address that tests put on the allowlist.
pub const ALLOWED_V4: &str = "192.0.2.10";
/// The client's other IPv4 address (not on the allowlist).
pub const OTHER_V4: &str = "192.0.2.20";
/// The client's IPv6 address that tests put on the allowlist.
pub const ALLOWED_V6: &str = "2001:db8::10";
/// The client's other IPv6 address (not on the allowlist).
pub const OTHER_V6: &str = "2001:db8::20";

/// A server namespace (`192.0.2.1/24`, `2001:db8::1/64`) accepting TCP on `ports` in both
/// families, and a client namespace with an allowed and another source address in each
/// family ([`ALLOWED_V4`], [`OTHER_V4`], [`ALLOWED_V6`], [`OTHER_V6`]). Returns
/// `(server, client)`.
pub fn server_and_client(label: &str, ports: &[u16]) -> (Netns, Netns) {
    let server = Netns::new(&format!("{label}-s"));
    let client = Netns::new(&format!("{label}-c"));
    veth_pair(
        &server,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &client,
        &[
            "192.0.2.10/24",
            "192.0.2.20/24",
            "2001:db8::10/64",
            "2001:db8::20/64",
        ],
    );
    for port in ports {
        server.tcp_listen(&format!("0.0.0.0:{port}"));
        server.tcp_listen(&format!("[::]:{port}"));
    }
    (server, client)
}
