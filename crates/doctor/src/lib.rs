//! cf-allow's doctor: read-only probes of the host that find the usual causes of Cloudflare
//! Errors 521/522/523 on an origin, and the checks that judge what they found. Every check
//! takes plain inputs (config values, the list, [`HostFacts`] read once) and returns
//! [`Check`]s; the `cf-allow doctor` command only wires them.
//!
//! The host's firewall (nftables, iptables, ipsets) is read once, by the verdict engine
//! ([`cf_allow_reach::HostModel`]); the firewall checks are questions to that model. Every
//! other probe only reads too: `/proc/net/tcp*`, `ip -j addr|route`, CSF's deny files, TCP
//! connects (and TLS handshakes) to the list sources and the local listeners, and `GET`s to
//! Cloudflare's API for the optional `dns` check. Nothing is written.
#![forbid(unsafe_code)]

pub mod basics;
pub mod blocklists;
mod check;
pub mod csf;
pub mod dns;
pub mod docker;
mod error;
pub mod fail2ban;
pub mod host;
pub mod listen;
mod nets;
pub mod policy;
pub mod ports;
mod program;
pub mod reachability;
pub mod route;
pub mod service;
mod settings;
pub mod sources;

pub use check::{Check, Status};
pub use error::Error;
pub use host::HostFacts;
pub use nets::{cloudflare_overlap, AddrRange};
use program::run_program;
pub use settings::{Settings, DEFAULT_API};
