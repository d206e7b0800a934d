//! CSF's own lock, taken through crates/exec's hardened lock.

use std::path::Path;
use std::time::Duration;

use cf_allow_exec::files::{self, Dir};
use cf_allow_exec::lock::{FileLock, LockError};

use crate::{Error, CSF_LOCK};

/// How long a CSF rebuild may hold its lock before cf-allow gives up.
const CSF_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Takes CSF's own lock (the one `csf -r` holds while it flushes and rebuilds) so that a
/// rebuild cannot interleave with a live change. `None` when CSF has no state directory.
pub(crate) fn csf_lock() -> Result<Option<FileLock>, Error> {
    let (dir, name) = files::split(Path::new(CSF_LOCK)).map_err(|source| Error::Io {
        what: format!("lock {CSF_LOCK}"),
        source,
    })?;
    if !dir.is_dir() {
        return Ok(None);
    }
    let dir = Dir::open(dir).map_err(|source| Error::Io {
        what: format!("lock {CSF_LOCK}"),
        source,
    })?;
    match FileLock::acquire(&dir, name, CSF_LOCK_WAIT) {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Busy { .. }) => Err(Error::CsfBusy),
        Err(LockError::Io { source, .. }) => Err(Error::Io {
            what: format!("lock {CSF_LOCK}"),
            source,
        }),
    }
}
