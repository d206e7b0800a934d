//! The ufw backend's errors: one line each, naming the problem and the fix.

/// Everything that can go wrong while reading or changing ufw's rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `ufw:` config section is invalid.
    #[error("invalid ufw settings: {0}")]
    Settings(String),
    /// ufw is installed but not enabled; cf-allow never enables it.
    #[error("ufw is inactive ({0}): cf-allow never enables ufw because that can cut SSH; run `ufw enable` yourself once your own rules are in place, or choose another backend")]
    Inactive(String),
    /// ufw is enabled but its chains are not loaded.
    #[error("ufw is enabled but its chain {chain} is not loaded in {tool}; run `ufw reload` (or /lib/ufw/ufw-init start) and sync again")]
    NotLoaded {
        /// The missing chain.
        chain: &'static str,
        /// `iptables` or `ip6tables`.
        tool: &'static str,
    },
    /// One of ufw's files is not in the format ufw 0.36 writes.
    #[error("{path}: {detail}; cf-allow changes nothing in a file it cannot parse exactly")]
    Format {
        /// The file.
        path: String,
        /// What is wrong, with the line number.
        detail: String,
    },
    /// A program cf-allow needs is not installed.
    #[error("{program} not found: install the {package} package")]
    ProgramMissing {
        /// The program looked for.
        program: String,
        /// The package that provides it.
        package: &'static str,
    },
    /// A ufw command holds ufw's lock for longer than the configured wait.
    #[error("a ufw command is running (it holds {path}; waited {secs} s); try again when it has finished")]
    Busy {
        /// The lock file.
        path: String,
        /// How long cf-allow waited.
        secs: u32,
    },
    /// Another process holds the xtables lock for longer than the configured wait.
    #[error("another process holds the xtables lock (waited {secs} s)")]
    Locked {
        /// How long cf-allow waited.
        secs: u32,
    },
    /// cf-allow may not change the firewall.
    #[error("{program}: permission denied; cf-allow must run as root")]
    Permission {
        /// The failing program.
        program: String,
    },
    /// A program failed.
    #[error("{program} failed: {detail}")]
    Command {
        /// The failing program.
        program: String,
        /// Its error output, condensed to one line.
        detail: String,
    },
    /// Running a program failed at the OS level.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
