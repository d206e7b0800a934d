//! cf-allow's doctor: read-only probes of the host that find the usual causes of Cloudflare
//! Error 521/523 on an origin (nothing listening, Cloudflare's addresses blocked by fail2ban,
//! CSF, crowdsec or a hand-written rule, Docker ports outside the allowlist), and the check
//! model the `doctor` command reports with.
//!
//! Every probe only reads: `/proc/net/tcp*`, `ipset save`, `iptables-save`, `nft -j list
//! ruleset`, CSF's deny files, and TCP connects to the list sources. Nothing is written.

mod check;
pub mod csf;
mod error;
pub mod ipset;
pub mod iptables;
pub mod listen;
mod nets;
pub mod nft;
mod program;
pub mod sources;

pub use check::{Check, Status};
pub use error::Error;
pub use nets::{cloudflare_overlap, AddrRange};
use program::run_program;
