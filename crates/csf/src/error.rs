//! The CSF backend's errors, each one line.

use std::path::PathBuf;

use crate::CSF_LOCK;

/// What went wrong, in one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `csf.dir` is not a directory.
    #[error("the CSF directory {0} does not exist or is not a directory (set csf.dir)")]
    BadDir(PathBuf),
    /// No csf.conf in the directory.
    #[error("{0} not found: is CSF installed in that directory? (set csf.dir)")]
    ConfMissing(PathBuf),
    /// csf.conf has a line CSF itself would refuse.
    #[error("malformed {path}, line {line}: {reason}")]
    ConfMalformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// csf.conf has no settings at all.
    #[error("{0} holds no settings: is it really CSF's csf.conf?")]
    ConfEmpty(PathBuf),
    /// The csf program is missing.
    #[error("the csf program is not installed (not found on PATH or in /usr/sbin)")]
    CsfMissing,
    /// A program needed to change live rules is missing.
    #[error("{0} is not installed (needed to read and change CSF's running rules)")]
    ProgramMissing(String),
    /// A configured port cannot be written as a CSF filter.
    #[error("port 0 is not a TCP port CSF can allow")]
    BadPort,
    /// A file operation failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output or exit status.
        detail: String,
    },
    /// The reload command failed; the files were put back.
    #[error("the reload command `{command}` failed ({detail}); CSF's files were restored as they were{rerun}")]
    Reload {
        /// The reload command.
        command: String,
        /// Its error output or exit status.
        detail: String,
        /// What happened when the command was run again with the restored files.
        rerun: String,
    },
    /// Running a program failed (missing, not started, non-zero exit, timed out).
    #[error(transparent)]
    Exec(#[from] cf_allow_exec::ExecError),
    /// The CSF directory is not trusted (running as root: not root-owned, or writable by
    /// group or others).
    #[error("refusing the CSF directory: {0}")]
    Untrusted(String),
    /// CSF held its lock (a rebuild running) for too long.
    #[error(
        "CSF is being restarted (its lock {CSF_LOCK} stayed taken for 30 s); try again in a moment"
    )]
    CsfBusy,
    /// A change failed and so did putting the files back.
    #[error("{error}; restoring the files failed too: {restore}")]
    RestoreFailed {
        /// The first failure.
        error: Box<Error>,
        /// The failure while restoring.
        restore: Box<Error>,
    },
}
