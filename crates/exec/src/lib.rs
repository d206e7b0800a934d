//! Finding and running the external programs cf-allow drives (iptables, ipset, nft, csf…).
//!
//! The backends keep their own typed errors and embed [`ExecError`] (program missing, spawn
//! failed, exited non-zero, timed out) for running programs. [`files`] writes files
//! atomically without following links, [`lock`] holds the run locks.

#![forbid(unsafe_code)]

pub mod files;
pub mod lock;

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    match run_within(program, args, stdin, None) {
        Ok(output) => Ok(output),
        Err(Ended::Io(e)) => Err(e),
        Err(Ended::TimedOut) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

/// Why [`run_within`] returned no output.
enum Ended {
    Io(io::Error),
    TimedOut,
}

/// [`run`], killing the program (and everything it started, its process group) when it has
/// not finished after `timeout`.
fn run_within(
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Output, Ended> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if timeout.is_some() {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(Ended::Io)?;
    let pipe = child.stdin.take();
    let (output, written) = std::thread::scope(|scope| {
        let writer = match (stdin, pipe) {
            (Some(text), Some(mut pipe)) => {
                Some(scope.spawn(move || pipe.write_all(text.as_bytes())))
            }
            _ => None,
        };
        let output = match timeout {
            None => child.wait_with_output().map_err(Ended::Io),
            Some(limit) => wait_bounded(child, limit),
        };
        let written = match writer.map(|w| w.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the input writer panicked")),
        };
        (output, written)
    });
    let output = output?;
    match written {
        Err(e) if output.status.success() => Err(Ended::Io(io::Error::new(
            e.kind(),
            format!("writing its input: {e}"),
        ))),
        _ => Ok(output),
    }
}

/// Waits for `child` at most `limit`, reading its output meanwhile; kills its process group
/// when the time is up.
///
/// Output is read from threads. A daemon the program leaves behind holding its pipes (a
/// reload that starts a server) does not block the caller: once the program has exited,
/// output not yet at end-of-file within a short grace period is left unread.
fn wait_bounded(mut child: Child, limit: Duration) -> Result<Output, Ended> {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    // Woken the moment the child exits (a pidfd becomes readable then), instead of polling:
    // a 10 ms poll added up to 10 ms to each of the programs a sync runs. Without pidfd
    // (Linux before 5.3) it polls every millisecond.
    let pid = rustix::process::Pid::from_child(&child);
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let now = Instant::now();
                if now >= deadline {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Ended::TimedOut);
                }
                let left = deadline - now;
                match &pidfd {
                    Some(fd) => {
                        let timeout = rustix::event::Timespec::try_from(left).unwrap_or(
                            rustix::event::Timespec {
                                tv_sec: 1,
                                tv_nsec: 0,
                            },
                        );
                        let mut fds =
                            [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                        // EINTR or a spurious wake-up: try_wait tells.
                        let _ = rustix::event::poll(&mut fds, Some(&timeout));
                    }
                    None => std::thread::sleep(left.min(Duration::from_millis(1))),
                }
            }
            Err(e) => return Err(Ended::Io(e)),
        }
    };
    let collect =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Running a program failed: the one error every backend embeds (`#[from]`).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program is not installed.
    #[error("{program} is not installed (not found on PATH or in /usr/local/sbin, /usr/sbin, /sbin, /usr/bin)")]
    Missing {
        /// The program's name.
        program: String,
    },
    /// The program could not be started (or its input not written).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        source: io::Error,
    },
    /// The program exited non-zero or was killed by a signal.
    #[error("`{command}` failed: {detail}")]
    Failed {
        /// The command line.
        command: String,
        /// Its first error lines, or its exit status.
        detail: String,
        /// Its exit code (`None`: killed by a signal).
        code: Option<i32>,
    },
    /// The program did not finish in time and was killed.
    #[error("`{command}` did not finish within {secs} s and was killed")]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        secs: u64,
    },
}

/// `bytes` as lower-case hex digits (digests, random names, ufw's comment field).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `program args…` as one line, for messages.
pub fn command_line(program: &Path, args: &[&str]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args…` like [`run`] but at most `timeout` (killed with its process group
/// after it); returns the output whatever the exit status, for callers that read the error
/// output themselves. Missing program, spawn failure and timeout are [`ExecError`]s.
pub fn run_bounded(
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, ExecError> {
    let command = || command_line(program, args);
    match run_within(program, args, stdin, Some(timeout)) {
        Ok(output) => Ok(output),
        Err(Ended::Io(e)) if e.kind() == io::ErrorKind::NotFound => Err(ExecError::Missing {
            program: program.to_string_lossy().into_owned(),
        }),
        Err(Ended::Io(source)) => Err(ExecError::Spawn {
            command: command(),
            source,
        }),
        Err(Ended::TimedOut) => Err(ExecError::TimedOut {
            command: command(),
            secs: timeout.as_secs(),
        }),
    }
}

/// Runs `program args…` like [`run`] but at most `timeout` (killed after it), and turns a
/// non-zero exit into [`ExecError::Failed`] (its first 3 stderr lines).
pub fn run_checked(
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, ExecError> {
    let output = run_bounded(program, args, stdin, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ExecError::Failed {
            command: command_line(program, args),
            detail: stderr_summary(&output, 3),
            code: output.status.code(),
        })
    }
}

/// Finds `name` ([`find_program`]) and runs it with [`run_checked`].
pub fn run_program(
    name: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, ExecError> {
    let program = find_program(name).ok_or_else(|| ExecError::Missing {
        program: name.to_string(),
    })?;
    run_checked(&program, args, stdin, timeout)
}

/// Splits a command line into its words: whitespace separates, single and double quotes
/// group, a backslash escapes the next character. No variables, globbing, pipes or
/// redirections: the words are run as an argument vector, never by a shell. `Err` names
/// what is not supported.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                let next = chars.next().ok_or("a trailing backslash")?;
                word.get_or_insert_with(String::new).push(next);
            }
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '|' | '&' | ';' | '<' | '>' | '$' | '`' | '*' | '?' | '(' | ')' | '#' | '~') => {
                return Err(format!(
                    "`{c}` is shell syntax; the command is run without a shell (write a script and name it)"
                ))
            }
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    words.extend(word);
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
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

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    fn sh(script: &str, stdin: Option<&str>) -> Output {
        run(Path::new("/bin/sh"), &["-c", script], stdin).expect("run sh")
    }

    #[test]
    fn a_command_that_outlives_its_bound_is_killed_with_its_children() {
        let started = Instant::now();
        let err = run_checked(
            Path::new("/bin/sh"),
            &["-c", "sleep 1000 & sleep 1000"],
            None,
            Duration::from_millis(300),
        )
        .expect_err("timed out");
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("did not finish within"), "{err}");
        // The background sleep held the output pipes: the group was killed or this waited.
        assert!(started.elapsed() < Duration::from_secs(100));
    }

    #[test]
    fn checked_runs_name_each_failure() {
        let ok = run_checked(
            Path::new("/bin/sh"),
            &["-c", "echo hi"],
            None,
            Duration::from_secs(60),
        )
        .expect("ok");
        assert_eq!(ok.stdout, b"hi\n");
        let failed = run_checked(
            Path::new("/bin/sh"),
            &["-c", "echo nope >&2; exit 3"],
            None,
            Duration::from_secs(60),
        )
        .expect_err("exit 3");
        assert!(
            matches!(failed, ExecError::Failed { code: Some(3), .. }),
            "{failed}"
        );
        assert!(failed.to_string().ends_with("failed: nope"), "{failed}");
        let missing = run_program(
            "cf-allow-exec-no-such-program",
            &[],
            None,
            Duration::from_secs(1),
        )
        .expect_err("missing");
        assert!(matches!(missing, ExecError::Missing { .. }), "{missing}");
        let missing = run_checked(
            Path::new("/nonexistent/x"),
            &[],
            None,
            Duration::from_secs(1),
        )
        .expect_err("missing");
        assert!(matches!(missing, ExecError::Missing { .. }), "{missing}");
    }

    #[test]
    fn command_lines_split_without_a_shell() {
        assert_eq!(split_words("csf -ra").expect("plain"), ["csf", "-ra"]);
        assert_eq!(
            split_words(" /usr/sbin/csf  'a b' \"c\\\"d\" e\\ f ").expect("quotes"),
            ["/usr/sbin/csf", "a b", "c\"d", "e f"]
        );
        assert_eq!(split_words("x ''").expect("empty word"), ["x", ""]);
        for bad in [
            "csf -r; rm -rf /",
            "csf -r | tee",
            "$(id)",
            "a > b",
            "",
            "  ",
            "'open",
            "x \\",
        ] {
            assert!(split_words(bad).is_err(), "{bad}");
        }
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

    #[test]
    fn a_bounded_run_returns_output_and_status() {
        let out = run_bounded(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            None,
            Duration::from_secs(30),
        )
        .expect("run");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_bounded_run_kills_a_program_past_its_limit() {
        let err = run_bounded(
            Path::new("/bin/sh"),
            &["-c", "sleep 30"],
            None,
            Duration::from_millis(200),
        )
        .expect_err("killed");
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("killed"), "{err}");
    }

    #[test]
    fn a_bounded_run_does_not_wait_for_a_daemon_holding_its_pipes() {
        let out = run_bounded(
            Path::new("/bin/sh"),
            &["-c", "echo started; (sleep 20 &) ; exit 0"],
            None,
            Duration::from_secs(15),
        )
        .expect("run");
        assert!(out.status.success());
    }
}
