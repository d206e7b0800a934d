//! Running iptables, ip6tables and ipset programs and turning their failures into [`Error`]s.

use std::path::PathBuf;
use std::process::Output;

use tracing::debug;

use crate::Error;

pub(crate) use cf_allow_exec::find_program;

/// How long a program may run beyond the xtables lock wait before it is killed.
pub(crate) const PROGRAM_TIMEOUT_SECS: u64 = 120;

/// A program to run and the package that provides it.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub name: String,
    pub package: &'static str,
}

impl Program {
    pub fn new(name: impl Into<String>, package: &'static str) -> Program {
        Program {
            name: name.into(),
            package,
        }
    }

    fn resolve(&self) -> Result<PathBuf, Error> {
        find_program(&self.name).ok_or_else(|| Error::ProgramMissing {
            program: self.name.clone(),
            package: self.package,
        })
    }

    /// Runs the program with `args`, feeding `stdin` when given. Returns its output when it
    /// exits 0, else the error its stderr describes. `lock_wait` names the `-w` bound.
    pub fn run(&self, args: &[&str], stdin: Option<&str>, lock_wait: u32) -> Result<Output, Error> {
        let path = self.resolve()?;
        debug!(program = %self.name, ?args, stdin_bytes = stdin.map_or(0, str::len), "run");
        // Bounded: the xtables lock wait plus generous time for the work itself.
        let bound = std::time::Duration::from_secs(u64::from(lock_wait) + PROGRAM_TIMEOUT_SECS);
        let output = cf_allow_exec::run_bounded(&path, args, stdin, bound)?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.failure(&output, lock_wait))
        }
    }

    /// Maps a failed run to the error an admin can act on.
    fn failure(&self, output: &Output, lock_wait: u32) -> Error {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = condense(&stderr, output.status.code());
        let lower = stderr.to_lowercase();
        if lower.contains("xtables lock") {
            return Error::Locked { secs: lock_wait };
        }
        if lower.contains("permission denied") || lower.contains("operation not permitted") {
            return Error::Permission {
                program: self.name.clone(),
            };
        }
        if lower.contains("insmod")
            || lower.contains("table does not exist")
            || lower.contains("protocol not supported")
            || lower.contains("address family not supported")
            || lower.contains("kernel error received: ipset protocol")
            || lower.contains("cannot open session to kernel")
        {
            return Error::KernelSupport {
                program: self.name.clone(),
                detail,
            };
        }
        Error::Command {
            program: self.name.clone(),
            detail,
        }
    }
}

/// One line out of a program's error output: the meaningful lines joined with "; ".
fn condense(stderr: &str, code: Option<i32>) -> String {
    let lines = cf_allow_exec::stderr_lines(stderr).filter(|l| !l.starts_with("Try `"));
    cf_allow_exec::summary(lines.take(3), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condense_keeps_the_useful_lines() {
        let text = "iptables-restore v1.8.9 (legacy): Couldn't load target `X'\n\nError occurred at line: 2\nTry `iptables-restore -h' for more information.\n";
        assert_eq!(
            condense(text, Some(2)),
            "iptables-restore v1.8.9 (legacy): Couldn't load target `X'; Error occurred at line: 2"
        );
        assert_eq!(condense("", Some(4)), "exit status 4");
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let err = Program::new("cf-allow-no-such-program", "iptables")
            .run(&[], None, 10)
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "cf-allow-no-such-program not found: install the iptables package"
        );
    }
}
