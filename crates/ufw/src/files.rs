//! Reading ufw's files and replacing them atomically (temporary file in the same directory,
//! fsync, rename, fsync of the directory), keeping their mode and owner; and ufw's own lock.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Error;

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The bytes of `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(io_err(format!("read {}", path.display())))
}

/// Replaces the existing file `path` with `bytes`, keeping its mode and owner (the hardened
/// writer: exclusive temp file, no link followed, fsync, rename, fsync of the directory).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // ufw's files exist (ufw ships them); one that vanished is an error, not recreated.
    fs::symlink_metadata(path).map_err(io_err(format!("stat {}", path.display())))?;
    cf_allow_exec::files::replace(path, bytes, 0o640)
        .map_err(io_err(format!("replace {}", path.display())))
}

/// The lock every ufw command holds while it reads and changes the rules (ufw's
/// `create_lock()`: an exclusive `lockf` on this file).
pub(crate) const LOCK_FILE: &str = "/run/ufw.lock";

/// ufw's lock, held by cf-allow from `inspect` to the end of `apply` so that a `ufw allow` or
/// `ufw delete` run meanwhile waits and then sees cf-allow's change. Released on drop.
#[derive(Debug)]
pub(crate) struct UfwLock {
    _file: fs::File,
}

/// Takes ufw's lock on `path`, waiting up to `wait_secs` for a running ufw command.
pub(crate) fn lock(path: &Path, wait_secs: u32) -> Result<UfwLock, Error> {
    use rustix::fs::{fcntl_lock, FlockOperation};
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(wait_secs));
    loop {
        match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(UfwLock { _file: file }),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Busy {
                        path: path.display().to_string(),
                        secs: wait_secs,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Error::Io {
                    what: format!("lock {}", path.display()),
                    source: e.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn replace_keeps_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("user.rules");
        fs::write(&path, b"old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&path, b"new").expect("replace");
        assert_eq!(read(&path).expect("read"), b"new");
        let mode = fs::metadata(&path).expect("stat").mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
        assert!(replace(&dir.path().join("missing"), b"x").is_err());
    }
}
