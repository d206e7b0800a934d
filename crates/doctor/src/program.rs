//! Finding and running the read-only programs the probes use.

use crate::Error;

use std::process::Output;

use cf_allow_exec::find_program;

/// How long one probe program may run.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `program args…` (stdin closed, `LC_ALL=C`) and returns its stdout when it exits 0.
pub fn run_program(program: &str, args: &[&str]) -> Result<String, Error> {
    let output = run_program_output(program, args)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// [`run_program`], returning the whole output (for programs that warn on stderr).
pub(crate) fn run_program_output(program: &str, args: &[&str]) -> Result<Output, Error> {
    let path = find_program(program).ok_or_else(|| Error::ProgramMissing {
        program: program.to_string(),
    })?;
    tracing::debug!(program, ?args, "run");
    // Read-only probes: bounded so that a hung program cannot hang doctor.
    let output = cf_allow_exec::run_bounded(&path, args, None, PROBE_TIMEOUT)?;
    if output.status.success() {
        return Ok(output);
    }
    Err(Error::Command {
        program: format!("{program} {}", args.join(" ")),
        detail: cf_allow_exec::stderr_summary(&output, 2),
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
