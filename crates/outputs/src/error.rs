//! The outputs' errors: each names the output, the file or program, and the fix.

use std::path::PathBuf;

/// What went wrong with one output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The list is empty: nothing is written from it.
    #[error("{name}: refusing to write an empty list to {}", path.display())]
    EmptyList {
        /// The output.
        name: &'static str,
        /// Its file.
        path: PathBuf,
    },
    /// The file exists but does not carry cf-allow's header.
    #[error(
        "{name}: {} exists and is not managed by cf-allow (no `{}` header): left alone; move it away or set outputs.{name}.path",
        path.display(), crate::HEADER_MARK
    )]
    NotOwned {
        /// The output.
        name: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read, written or removed.
    #[error("{name}: {what} {}: {source}", path.display())]
    Io {
        /// The output.
        name: &'static str,
        /// What was being done (`cannot write`, …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A configured program is not installed.
    #[error("{name}: the {role} program {program} is not installed; install it or set outputs.{name}.{role} (an argument list; [] for none)")]
    ProgramMissing {
        /// The output.
        name: &'static str,
        /// `test` or `reload`.
        role: &'static str,
        /// The program's name.
        program: String,
    },
    /// The server's config test refused the new file; the previous file is back.
    #[error("{name}: the config test `{command}` failed, so {} was put back as it was: {output}", path.display())]
    TestFailed {
        /// The output.
        name: &'static str,
        /// The command line.
        command: String,
        /// The file.
        path: PathBuf,
        /// The test's own message.
        output: String,
    },
    /// The reload failed; the previous file is back.
    #[error("{name}: the reload `{command}` failed, so {} was put back as it was: {output}", path.display())]
    ReloadFailed {
        /// The output.
        name: &'static str,
        /// The command line.
        command: String,
        /// The file.
        path: PathBuf,
        /// The program's message.
        output: String,
    },
    /// The admin's fail2ban configuration could not be read.
    #[error("fail2ban: cannot read {}: {source}", path.display())]
    Fail2banConfig {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
