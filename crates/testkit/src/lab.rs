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

/// A server namespace ([`SERVER_V4`]`/24`, [`SERVER_V6`]`/64`) accepting TCP on `ports` in both
/// families, and a client namespace with an allowed and another source address in each
/// family ([`ALLOWED_V4`], [`OTHER_V4`], [`ALLOWED_V6`], [`OTHER_V6`]). Returns
/// `(server, client)`.
pub fn server_and_client(label: &str, ports: &[u16]) -> (Netns, Netns) {
    let server = Netns::new(&format!("{label}-s"));
    let client = Netns::new(&format!("{label}-c"));
    let v4 = |addr: &str| format!("{addr}/24");
    let v6 = |addr: &str| format!("{addr}/64");
    veth_pair(
        &server,
        &[&v4(SERVER_V4), &v6(SERVER_V6)],
        &client,
        &[
            &v4(ALLOWED_V4),
            &v4(OTHER_V4),
            &v6(ALLOWED_V6),
            &v6(OTHER_V6),
        ],
    );
    for port in ports {
        server.tcp_listen(&format!("0.0.0.0:{port}"));
        server.tcp_listen(&format!("[::]:{port}"));
    }
    (server, client)
}
