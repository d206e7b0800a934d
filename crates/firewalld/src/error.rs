//! The firewalld backend's errors: one line each, naming the problem and the fix.

/// Everything that can go wrong while reading or changing firewalld's configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `firewalld:` config section is invalid.
    #[error("invalid firewalld settings: {0}")]
    Settings(String),
    /// The D-Bus system bus cannot be reached at all.
    #[error("cannot connect to the D-Bus system bus ({address}): {detail}; is dbus running?")]
    BusUnreachable {
        /// The bus address that was tried.
        address: String,
        /// What the connection attempt said.
        detail: String,
    },
    /// Nobody owns firewalld's bus name.
    #[error("firewalld is not running (nobody owns org.fedoraproject.FirewallD1 on the system bus); start it (systemctl start firewalld) or choose another backend")]
    NotRunning,
    /// The bus or firewalld refused the caller.
    #[error("access to {call} denied: {detail}; run cf-allow as root (with firewalld's lockdown on, whitelist it: firewall-cmd --add-lockdown-whitelist-uid=0)")]
    AccessDenied {
        /// The D-Bus method.
        call: String,
        /// The error firewalld or the bus returned.
        detail: String,
    },
    /// firewalld did not answer within the configured time.
    #[error("firewalld did not answer {call} within {secs} s; check `systemctl status firewalld` (raise firewalld.timeout_secs for very large configurations)")]
    Timeout {
        /// The D-Bus method.
        call: String,
        /// The configured timeout.
        secs: u64,
    },
    /// firewalld answered a call with an error.
    #[error("firewalld refused {call}: {detail}")]
    Refused {
        /// The D-Bus method and its main argument.
        call: String,
        /// firewalld's error (`INVALID_ENTRY: …`, `IPSET_WITH_TIMEOUT`, …).
        detail: String,
    },
    /// Another D-Bus failure.
    #[error("D-Bus call {call} failed: {detail}")]
    Bus {
        /// The D-Bus method.
        call: String,
        /// What zbus said.
        detail: String,
    },
    /// Something cf-allow did not create is in the way, or cf-allow's objects are not in the
    /// shape it can repair.
    #[error("{0}")]
    Conflict(String),
    /// Creating or removing an ipset needs a reload, and a reload would discard the admin's
    /// runtime-only changes.
    #[error("firewalld's runtime configuration differs from its permanent one ({differences}); {action} needs `firewall-cmd --reload`, which would discard those runtime-only changes: make them permanent (`firewall-cmd --runtime-to-permanent`) or drop them (`firewall-cmd --reload`), then run cf-allow again")]
    RuntimeOnlyChanges {
        /// What differs, by object and key.
        differences: String,
        /// What cf-allow was about to do.
        action: &'static str,
    },
    /// A call failed and so did undoing the calls already made.
    #[error("{error}; undoing the changes already made failed too ({undo}): check `firewall-cmd --list-all` and `firewall-cmd --permanent --list-all`")]
    RollbackFailed {
        /// The original error.
        error: Box<Error>,
        /// What failed while undoing.
        undo: String,
    },
}

/// Result with the backend's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
