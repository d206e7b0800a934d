//! Finding and running the read-only programs the probes use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// Searched after PATH: cron and some service managers run with a PATH without sbin.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The full path of `program` from PATH or the sbin directories.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `program args…` (stdin closed, `LC_ALL=C`) and returns its stdout when it exits 0.
pub fn run_program(program: &str, args: &[&str]) -> Result<String, Error> {
    let path = find_program(program).ok_or_else(|| Error::ProgramMissing {
        program: program.to_string(),
    })?;
    tracing::debug!(program, ?args, "run");
    let output = Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect();
    let detail = if lines.is_empty() {
        match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        }
    } else {
        lines.join("; ")
    };
    Err(Error::Command {
        program: format!("{program} {}", args.join(" ")),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_reported_as_missing() {
        let err = run_program("cf-allow-doctor-no-such-program", &[]).expect_err("missing");
        assert!(err.is_missing_program());
        assert!(err.to_string().contains("is not installed"), "{err}");
    }

    #[test]
    fn a_failing_program_gives_its_stderr() {
        let err = run_program("sh", &["-c", "echo boom >&2; exit 3"]).expect_err("fails");
        assert_eq!(err.to_string(), "sh -c echo boom >&2; exit 3 failed: boom");
        assert_eq!(run_program("sh", &["-c", "echo hi"]).expect("runs"), "hi\n");
    }
}
