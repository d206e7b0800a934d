//! The nftables backend's errors: one line each, naming the problem.

use thiserror::Error;

/// Why an nftables operation failed. In every case the ruleset is as it was before.
#[derive(Debug, Error)]
pub enum Error {
    /// The settings cannot work (bad name, unsupported family, dangerous combination).
    #[error("{0}")]
    Settings(String),
    /// No CAP_NET_ADMIN (not root, or a container without the capability).
    #[error("permission denied talking to the kernel (cf-allow needs root or CAP_NET_ADMIN)")]
    PermissionDenied,
    /// The kernel has no nf_tables.
    #[error("the kernel does not support nf_tables ({0}); load the nf_tables module or use --backend iptables")]
    Unsupported(String),
    /// A netlink socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Socket(String),
    /// The kernel refused a query.
    #[error("reading {what} failed: {source}")]
    Query {
        /// What was being read.
        what: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The kernel refused the change batch; nothing was changed.
    #[error("the kernel rejected the change ({what}): {source}; nothing was changed")]
    Rejected {
        /// The message of the batch the kernel rejected.
        what: String,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// An object with cf-allow's name exists but was not created by cf-allow.
    #[error("{0}")]
    Collision(String),
    /// The boot or the network namespace cannot be told apart (no boot id, or a kernel
    /// before 5.14 without `SO_NETNS_COOKIE`).
    #[error(
        "cannot identify this boot and network namespace (no boot id or network namespace cookie)"
    )]
    NoIdentity,
    /// The `into` target does not exist or cannot be used.
    #[error("{0}")]
    IntoTarget(String),
}
