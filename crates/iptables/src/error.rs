//! The iptables backend's errors: one line each, naming the problem.

/// Everything that can go wrong while reading or changing iptables/ip6tables/ipset state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `iptables:` config section is invalid.
    #[error("invalid iptables settings: {0}")]
    Settings(String),
    /// A program cf-allow needs is not installed.
    #[error("{program} not found: install the {package} package")]
    ProgramMissing {
        /// The program that was looked for.
        program: String,
        /// The distribution package that provides it.
        package: &'static str,
    },
    /// Another process holds the xtables lock for longer than the configured wait.
    #[error("another process holds the xtables lock (waited {secs} s)")]
    Locked {
        /// How long cf-allow waited.
        secs: u32,
    },
    /// The kernel lacks the netfilter module a command needed.
    #[error("{program}: the kernel does not support it ({detail}); load the module or use another backend")]
    KernelSupport {
        /// The failing program.
        program: String,
        /// What it said.
        detail: String,
    },
    /// cf-allow is not allowed to change the firewall.
    #[error("{program}: permission denied; cf-allow must run as root (or with CAP_NET_ADMIN)")]
    Permission {
        /// The failing program.
        program: String,
    },
    /// A configured hook chain does not exist.
    #[error("the hook chain {chain} does not exist in the {family} filter table; create it or remove it from iptables.hooks")]
    MissingHook {
        /// The missing chain.
        chain: String,
        /// `iptables` or `ip6tables`.
        family: &'static str,
    },
    /// Something cf-allow did not create is in the way.
    #[error("{0}")]
    Foreign(String),
    /// A program failed for another reason.
    #[error("{program} failed: {detail}")]
    Command {
        /// The failing program (and what it was doing).
        program: String,
        /// Its error output, condensed to one line.
        detail: String,
    },
    /// A program's output could not be understood.
    #[error("cannot parse the output of {program}: {detail}")]
    Parse {
        /// The program whose output was read.
        program: String,
        /// What was wrong.
        detail: String,
    },
    /// Running a program failed (not started, timed out): crates/exec's one error type.
    #[error(transparent)]
    Exec(#[from] cf_allow_exec::ExecError),
}
