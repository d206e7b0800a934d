//! Locks held for the life of a run: an exclusive `flock` on a file opened under a checked
//! directory (never through a link), and a lock per network namespace, an abstract unix
//! socket (abstract names belong to the network namespace and vanish with their holder, so
//! no file is needed and a crashed run leaves nothing behind).

use std::fs::File;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::files::Dir;

/// How often a taken lock is tried again.
const POLL: Duration = Duration::from_millis(50);

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else held it for the whole wait.
    #[error("{what} stayed taken for {waited} s{holder}; try again when it has finished")]
    Busy {
        /// The lock, for messages (`another cf-allow run holds /var/lib/cf-allow/lock`).
        what: String,
        /// Seconds waited.
        waited: u64,
        /// Who holds it, when known (`, by pid 123 (uid 0)`).
        holder: String,
    },
    /// The lock could not be opened or taken.
    #[error("cannot take the lock {what}: {source}")]
    Io {
        /// The lock.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

/// Polls `try_take` until it gives `Some`, or `wait` has passed.
fn poll<T>(
    what: &str,
    wait: Duration,
    mut try_take: impl FnMut() -> Result<Option<T>, LockError>,
    holder: impl Fn() -> String,
) -> Result<T, LockError> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        if let Some(taken) = try_take()? {
            return Ok(taken);
        }
        if start.elapsed() >= wait {
            return Err(LockError::Busy {
                what: what.to_string(),
                waited: wait.as_secs(),
                holder: holder(),
            });
        }
        if !announced {
            tracing::info!("waiting for {what}");
            announced = true;
        }
        std::thread::sleep(
            POLL.min(wait.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(1)),
        );
    }
}

/// An exclusive `flock` on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Locks `dir/name` (created 0600 when missing, never through a link), waiting up to
    /// `wait` for its holder.
    pub fn acquire(dir: &Dir, name: &str, wait: Duration) -> Result<FileLock, LockError> {
        let path = dir.join(name);
        let what = path.display().to_string();
        let file = dir.open_lock_file(name).map_err(|source| LockError::Io {
            what: what.clone(),
            source,
        })?;
        poll(
            &what,
            wait,
            || match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Ok(Some(())),
                Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
                Err(e) => Err(LockError::Io {
                    what: what.clone(),
                    source: e.into(),
                }),
            },
            String::new,
        )?;
        Ok(FileLock { _file: file, path })
    }

    /// The locked file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// The abstract socket name of the firewall lock of the current network namespace.
pub const NETNS_LOCK_NAME: &str = "cf-allow/firewall";

/// The lock of the current network namespace, held by every run that changes its firewall
/// (whatever its `state_dir`); released when dropped or when the process dies.
#[derive(Debug)]
pub struct NetnsLock {
    _listener: UnixListener,
}

impl NetnsLock {
    /// Takes the lock named `name` (normally [`NETNS_LOCK_NAME`]), waiting up to `wait`.
    pub fn acquire_named(name: &str, wait: Duration) -> Result<NetnsLock, LockError> {
        let what = format!("the firewall lock of this network namespace (@{name})");
        let addr =
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(|source| LockError::Io {
                what: what.clone(),
                source,
            })?;
        let listener = poll(
            &what,
            wait,
            || match UnixListener::bind_addr(&addr) {
                Ok(listener) => Ok(Some(listener)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
                Err(source) => Err(LockError::Io {
                    what: what.clone(),
                    source,
                }),
            },
            || holder(&addr),
        )?;
        Ok(NetnsLock {
            _listener: listener,
        })
    }

    /// Takes [`NETNS_LOCK_NAME`].
    pub fn acquire(wait: Duration) -> Result<NetnsLock, LockError> {
        NetnsLock::acquire_named(NETNS_LOCK_NAME, wait)
    }
}

/// `, held by pid P (uid U)` from the holder's socket credentials, when it can be reached.
fn holder(addr: &SocketAddr) -> String {
    UnixStream::connect_addr(addr)
        .ok()
        .and_then(|s| rustix::net::sockopt::socket_peercred(&s).ok())
        .map(|cred| {
            format!(
                ", held by pid {} (uid {})",
                cred.pid.as_raw_nonzero(),
                cred.uid.as_raw()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_lock_excludes_a_second_holder_until_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = Dir::open(tmp.path()).expect("dir");
        let first = FileLock::acquire(&dir, "lock", Duration::ZERO).expect("first");
        let err = FileLock::acquire(&dir, "lock", Duration::from_millis(120)).expect_err("held");
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        drop(first);
        FileLock::acquire(&dir, "lock", Duration::ZERO).expect("free again");
    }

    #[test]
    fn a_planted_link_is_not_followed_or_created() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("nologin");
        std::os::unix::fs::symlink(&target, tmp.path().join("lock")).expect("symlink");
        let dir = Dir::open(tmp.path()).expect("dir");
        let err = FileLock::acquire(&dir, "lock", Duration::ZERO).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!target.exists(), "the link's target was created");
    }

    #[test]
    fn the_netns_lock_is_exclusive_and_names_its_holder() {
        let name = format!("cf-allow-test/{}", std::process::id());
        let first = NetnsLock::acquire_named(&name, Duration::ZERO).expect("first");
        let err = NetnsLock::acquire_named(&name, Duration::from_millis(120)).expect_err("held");
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        NetnsLock::acquire_named(&name, Duration::ZERO).expect("free again");
    }
}
