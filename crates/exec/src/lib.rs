//! Finding and running the external programs cf-allow drives (iptables, ipset, nft, csf…).
//!
//! The backends keep their own typed errors; this crate only finds programs, runs them and
//! condenses their error output into one line.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Directories searched after PATH: cron and systemd often run with a PATH without sbin,
/// and some distributions install the firewall tools in `/usr/bin`.
pub const FALLBACK_DIRS: [&str; 4] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"];

/// The full path of the executable `name`, from PATH (empty entries skipped), then
/// [`FALLBACK_DIRS`].
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(&path, name)
}

/// [`find_program`] with `path` in place of the PATH variable.
fn find_in(path: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True when the program `name` (found like [`find_program`]) is iptables-legacy: its real
/// file, links followed (`/etc/alternatives/iptables` → `xtables-legacy-multi`), is named
/// `*legacy*`. False when it is the nf_tables variant or is not installed.
pub fn is_legacy_iptables(name: &str) -> bool {
    find_program(name)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().contains("legacy"))
        })
        .unwrap_or(false)
}

/// True when `path` is a regular file (links followed) with an execute bit set.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `program args…` with `LC_ALL=C`, `stdin` fed to it (closed when `None`), and
/// returns its exit status, stdout and stderr, whatever the status.
///
/// The input is written from its own thread while the output is read, so a large input can
/// not deadlock against a program that writes before it has read everything. A failed
/// write is ignored when the program fails (its status and stderr say why); when the
/// program exits 0 without having read all its input, the write error is returned, as
/// `writing its input: <OS error>`.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pipe = child.stdin.take();
    let (output, written) = std::thread::scope(|scope| {
        let writer = match (stdin, pipe) {
            (Some(text), Some(mut pipe)) => {
                Some(scope.spawn(move || pipe.write_all(text.as_bytes())))
            }
            _ => None,
        };
        let output = child.wait_with_output();
        let written = match writer.map(|w| w.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the input writer panicked")),
        };
        (output, written)
    });
    let output = output?;
    match written {
        Err(e) if output.status.success() => {
            Err(io::Error::new(e.kind(), format!("writing its input: {e}")))
        }
        _ => Ok(output),
    }
}

/// The trimmed, non-empty lines of a program's error output.
pub fn stderr_lines(stderr: &str) -> impl Iterator<Item = &str> {
    stderr.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// How a program ended, for when it printed nothing: `exit status N` or
/// `killed by a signal`.
pub fn exit_detail(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    }
}

/// One line describing a failed run: the first `max_lines` non-empty stderr lines joined
/// with "; ", or [`exit_detail`] when stderr is empty.
pub fn stderr_summary(output: &Output, max_lines: usize) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    summary(stderr_lines(&stderr).take(max_lines), output.status.code())
}

/// `lines` joined with "; ", or [`exit_detail`] of the exit `code` when there are none.
pub fn summary<'a>(lines: impl Iterator<Item = &'a str>, code: Option<i32>) -> String {
    let lines: Vec<&str> = lines.collect();
    if lines.is_empty() {
        exit_detail(code)
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sh(script: &str, stdin: Option<&str>) -> Output {
        run(Path::new("/bin/sh"), &["-c", script], stdin).expect("run sh")
    }

    #[test]
    fn stdout_stderr_and_status_come_back() {
        let out = sh("echo out; echo err >&2; exit 3", None);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn programs_run_in_the_c_locale() {
        let out = sh("printf %s \"$LC_ALL\"", None);
        assert!(out.status.success());
        assert_eq!(out.stdout, b"C");
    }

    #[test]
    fn without_stdin_the_program_reads_end_of_file() {
        let out = sh("cat; echo done", None);
        assert_eq!(out.stdout, b"done\n");
    }

    #[test]
    fn stdin_round_trips_through_cat() {
        let cat = find_program("cat").expect("cat is installed");
        let out = run(&cat, &[], Some("one\ntwo\n")).expect("run cat");
        assert!(out.status.success());
        assert_eq!(out.stdout, b"one\ntwo\n");
    }

    #[test]
    fn a_large_stdin_does_not_deadlock() {
        // Far more than a pipe buffer in both directions: cat writes while it reads.
        let line = "-A CF-ALLOW -s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT\n";
        let text = line.repeat((3 << 20) / line.len());
        assert!(text.len() > 2 << 20);
        let cat = find_program("cat").expect("cat is installed");
        let out = run(&cat, &[], Some(&text)).expect("run cat");
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), text.len());
        assert!(out.stdout == text.as_bytes());
    }

    #[test]
    fn a_failing_program_that_ignores_its_input_reports_its_status() {
        let text = "x".repeat(1 << 20);
        let out = sh("echo 'bad input' >&2; exit 2", Some(&text));
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stderr_summary(&out, 3), "bad input");
    }

    #[test]
    fn a_successful_program_that_ignores_its_input_is_an_error() {
        let text = "x".repeat(1 << 20);
        let err = run(
            Path::new("/bin/sh"),
            &["-c", "exec 0<&-; exit 0"],
            Some(&text),
        )
        .expect_err("input not read");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(err.to_string().starts_with("writing its input: "), "{err}");
    }

    #[test]
    fn a_missing_program_is_an_io_error() {
        assert_eq!(find_program("cf-allow-exec-no-such-program"), None);
        assert!(!is_legacy_iptables("cf-allow-exec-no-such-program"));
        if find_program("iptables-legacy").is_some() {
            assert!(is_legacy_iptables("iptables-legacy"));
        }
        if find_program("iptables-nft").is_some() {
            assert!(!is_legacy_iptables("iptables-nft"));
        }
        let err = run(Path::new("/nonexistent/cf-allow-exec"), &[], None).expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn path_comes_first_and_non_executable_files_are_skipped() {
        let first = tempfile::tempdir().expect("tempdir");
        let second = tempfile::tempdir().expect("tempdir");
        let name = "cf-allow-exec-test-tool";
        let plain = first.path().join(name);
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let path = std::env::join_paths([first.path(), second.path()]).expect("join");
        assert_eq!(
            find_in(&path, name),
            None,
            "a non-executable file is not a program"
        );
        assert!(!is_executable(&plain));

        let tool = second.path().join(name);
        std::fs::write(&tool, "#!/bin/sh\necho found\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_in(&path, name), Some(tool.clone()));
        assert!(is_executable(&tool));
        assert!(
            !is_executable(second.path()),
            "a directory is not a program"
        );

        let out = run(&tool, &[], None).expect("run the tool");
        assert_eq!(out.stdout, b"found\n");
    }

    #[test]
    fn the_sbin_directories_are_searched_after_path() {
        let empty = tempfile::tempdir().expect("tempdir");
        let found = find_in(empty.path().as_os_str(), "sh").expect("sh in a fallback dir");
        assert!(
            FALLBACK_DIRS.iter().any(|d| found.starts_with(d)),
            "{}",
            found.display()
        );
    }

    #[test]
    fn the_summary_keeps_the_first_meaningful_lines() {
        let out = sh(
            "printf '\\n  first  \\n\\nsecond\\nthird\\n' >&2; exit 1",
            None,
        );
        assert_eq!(stderr_summary(&out, 2), "first; second");
        assert_eq!(stderr_summary(&out, 10), "first; second; third");
        assert_eq!(stderr_summary(&sh("exit 4", None), 3), "exit status 4");
        assert_eq!(
            stderr_summary(&sh("kill -9 $$", None), 3),
            "killed by a signal"
        );
        assert_eq!(
            stderr_lines(" a \n\n b\n").collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }
}
