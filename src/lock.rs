//! One run at a time: an exclusive lock on `state_dir/lock` (opened under the checked
//! state directory, never through a link), and the firewall lock of the network namespace
//! (an abstract unix socket, see `cf_allow_exec::lock`), so that two configs with different
//! `state_dir`s cannot change the same firewall at once. Both are held for the life of the
//! run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cf_allow_exec::files::Dir;
use cf_allow_exec::lock::{FileLock, LockError, NetnsLock};

/// Holds both locks until dropped.
#[derive(Debug)]
pub struct RunLock {
    _state: FileLock,
    _netns: NetnsLock,
}

/// Takes the lock in `state_dir`, then the network namespace's, waiting up to `wait` in all
/// for other runs to finish.
pub fn acquire(state_dir: &Path, wait: Duration) -> Result<RunLock> {
    let start = Instant::now();
    let dir = state_dir_checked(state_dir)?;
    let state =
        FileLock::acquire(&dir, "lock", wait).map_err(|e| busy(e, "another cf-allow run"))?;
    let netns = NetnsLock::acquire(wait.saturating_sub(start.elapsed())).map_err(|e| {
        busy(
            e,
            "another cf-allow run (with another config) changing this firewall",
        )
    })?;
    Ok(RunLock {
        _state: state,
        _netns: netns,
    })
}

/// Creates (0755) and opens `state_dir`; refuses, as root, one not owned by root or
/// writable by group or others.
pub fn state_dir_checked(state_dir: &Path) -> Result<Dir> {
    let dir = Dir::create_all(state_dir, 0o755)
        .with_context(|| format!("state_dir {}", state_dir.display()))?;
    dir.check_trusted()
        .with_context(|| format!("refusing state_dir {}", state_dir.display()))?;
    Ok(dir)
}

fn busy(e: LockError, who: &str) -> anyhow::Error {
    match e {
        LockError::Busy {
            what,
            waited,
            holder,
        } => anyhow::anyhow!(
            "{who} holds {what} (waited {waited} s{holder}); try again when it has finished"
        ),
        e => anyhow::Error::new(e),
    }
}
