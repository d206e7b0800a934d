//! The probes' typed errors.

use std::path::PathBuf;

/// Why a probe could not look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program is neither on PATH nor in the sbin directories.
    #[error("{program} is not installed (not on PATH, /usr/sbin or /sbin)")]
    ProgramMissing {
        /// The program's name.
        program: String,
    },
    /// The program could not be started, or did not finish in time.
    #[error(transparent)]
    Exec(#[from] cf_allow_exec::ExecError),
    /// The program ran and failed.
    #[error("{program} failed: {detail}")]
    Command {
        /// The program and its arguments.
        program: String,
        /// Its error output, condensed to one line.
        detail: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A program printed something the parser does not understand.
    #[error("cannot parse the output of {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// True when the error only means that a tool is not installed (the check is skipped).
    pub fn is_missing_program(&self) -> bool {
        matches!(self, Error::ProgramMissing { .. })
    }
}
