//! Talking to nf_tables over netlink: dumps of tables, chains, sets, set elements and rules,
//! and change batches that commit whole or not at all.
//!
//! This is the only module with `unsafe` code. It uses `nftnl::Batch` for the batch framing,
//! libnftnl (through `nftnl-sys`) to build and parse the messages where nftnl's safe API
//! stops (set and element flags, user data, rule positions, dumps), and an `mnl` socket.
//! Everything it hands out is plain Rust data from [`crate::model`]. Three parts:
//! [`socket`] (the socket, requests, and reading the kernel's answers), [`objects`]
//! (libnftnl's table, chain, set and rule objects, built and parsed, and the dumps that read
//! them) and [`batch`] (a list of [`crate::model::Change`]s as one transaction, every answer
//! checked).

mod batch;
mod objects;
mod socket;

pub(crate) use socket::Netlink;
