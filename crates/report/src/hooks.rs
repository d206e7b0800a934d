//! `on_change` / `on_failure`: the admin's program, run directly (never through a shell)
//! with the run's JSON document on stdin, bounded by a timeout.
//!
//! The hook runs in its own process group; when the timeout passes, the whole group is
//! killed (SIGKILL). Its stdout and stderr go to cf-allow's stderr (stdout may carry
//! cf-allow's own JSON document). The caller logs a failure; a hook never changes the
//! outcome of the run.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why a hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The argv is empty.
    #[error("{hook} is an empty list; give the program and its arguments, e.g. [/usr/local/bin/notify, --quiet]")]
    Empty {
        /// `on_change` or `on_failure`.
        hook: String,
    },
    /// The program could not be started.
    #[error("{hook}: cannot run {program}: {source}")]
    Spawn {
        hook: String,
        program: String,
        source: io::Error,
    },
    /// The program ran and failed.
    #[error("{hook}: {program} failed ({detail})")]
    Failed {
        hook: String,
        program: String,
        detail: String,
    },
    /// The program did not finish in time and was killed.
    #[error("{hook}: {program} did not finish within {secs} s and was killed")]
    TimedOut {
        hook: String,
        program: String,
        secs: f64,
    },
}

/// Runs `argv` (program, then arguments) with `input` on stdin and the environment variable
/// `CF_ALLOW_HOOK=<hook>`; waits at most `timeout`.
pub fn run(hook: &str, argv: &[String], input: &str, timeout: Duration) -> Result<(), HookError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(HookError::Empty {
            hook: hook.to_string(),
        });
    };
    let spawn_error = |source| HookError::Spawn {
        hook: hook.to_string(),
        program: program.clone(),
        source,
    };
    let to_stderr =
        || -> io::Result<Stdio> { Ok(Stdio::from(io::stderr().as_fd().try_clone_to_owned()?)) };
    let mut child = Command::new(program)
        .args(args)
        .env("CF_ALLOW_HOOK", hook)
        .stdin(Stdio::piped())
        .stdout(to_stderr().map_err(spawn_error)?)
        .stderr(to_stderr().map_err(spawn_error)?)
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    // A hook that does not read its input is fine: the write error is ignored.
    if let Some(mut pipe) = child.stdin.take() {
        let input = input.as_bytes().to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    match wait_for(&mut child, timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(HookError::Failed {
            hook: hook.to_string(),
            program: program.clone(),
            detail: cf_allow_exec::exit_detail(status.code()),
        }),
        Ok(None) => {
            kill_group(&mut child);
            Err(HookError::TimedOut {
                hook: hook.to_string(),
                program: program.clone(),
                secs: timeout.as_secs_f64(),
            })
        }
        Err(e) => {
            kill_group(&mut child);
            Err(spawn_error(e))
        }
    }
}

/// The child's exit status, or `None` when it is still running after `timeout`.
fn wait_for(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILLs the child's process group (it leads it), then reaps the child.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let killed = cf_allow_exec::find_program("kill").is_some_and(|kill| {
        Command::new(kill)
            .args(["-KILL", "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_hook_gets_the_document_on_stdin_and_no_shell() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("got");
        // `tee FILE` copies stdin; a `$(…)` argument reaches it verbatim (no shell).
        let odd = dir.path().join("$(touch pwned)");
        run(
            "on_change",
            &argv(&[
                "tee",
                out.to_str().expect("utf-8"),
                odd.to_str().expect("utf-8"),
            ]),
            "{\"changed\":true}\n",
            Duration::from_secs(10),
        )
        .expect("hook runs");
        assert_eq!(
            std::fs::read_to_string(&out).expect("read"),
            "{\"changed\":true}\n"
        );
        assert!(odd.exists(), "the argument is a file name, not a command");
        assert!(!std::path::Path::new("pwned").exists());
    }

    #[test]
    fn failures_and_timeouts_are_errors_that_name_the_hook() {
        let err = run("on_failure", &argv(&["false"]), "", Duration::from_secs(10))
            .expect_err("false fails");
        assert_eq!(err.to_string(), "on_failure: false failed (exit status 1)");
        let err = run(
            "on_change",
            &argv(&["/nonexistent/hook"]),
            "",
            Duration::from_secs(10),
        )
        .expect_err("missing program");
        assert!(
            err.to_string()
                .starts_with("on_change: cannot run /nonexistent/hook: "),
            "{err}"
        );
        let err = run("on_change", &[], "", Duration::from_secs(1)).expect_err("empty");
        assert!(err.to_string().contains("empty list"), "{err}");

        // The whole group goes: sleep's parent shell and sleep itself.
        let dir = tempfile::tempdir().expect("tmp");
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let err = run(
            "on_change",
            &argv(&["sh", "-c", &script]),
            "",
            Duration::from_millis(500),
        )
        .expect_err("times out");
        assert_eq!(
            err.to_string(),
            "on_change: sh did not finish within 0.5 s and was killed"
        );
        let pid = std::fs::read_to_string(&pidfile).expect("pid file");
        // SIGKILL is asynchronous: give the kernel up to 10 s to finish the process off
        // (a bound on waiting, not a speed assertion). Reaped or a zombie counts as gone.
        let alive = || {
            let state =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            let running = state
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'));
            (running, state)
        };
        let start = Instant::now();
        while alive().0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (running, state) = alive();
        assert!(!running, "the hook's child survived: {state}");
    }
}
