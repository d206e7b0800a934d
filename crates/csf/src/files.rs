//! Atomic file changes that can be rolled back: every write goes to a temporary file in the
//! same directory, is fsynced and renamed over the target; the first change to a path
//! records its original bytes and owner so that [`FileTxn::rollback`] puts them back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// Permissions of a file cf-allow creates (CSF's own files are 0600).
const NEW_FILE_MODE: u32 = 0o600;

/// The bytes of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            what: format!("read {}", path.display()),
            source,
        }),
    }
}

#[derive(Clone, Copy, Debug)]
struct Owner {
    mode: u32,
    uid: u32,
    gid: u32,
}

fn owner_of(path: &Path) -> Option<Owner> {
    fs::metadata(path).ok().map(|m| Owner {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    })
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Replaces `path` with `bytes`: temporary file, fsync, rename, fsync of the directory.
/// Keeps the mode and owner of the file it replaces.
fn write_atomic(path: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cf-allow-{}.tmp", std::process::id()));
    let result = (|| {
        let mode = owner.map_or(NEW_FILE_MODE, |o| o.mode);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(format!("create {}", tmp.display())))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(format!("set the mode of {}", tmp.display())))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid))
                .map_err(io_err(format!("set the owner of {}", tmp.display())))?;
        }
        file.write_all(bytes)
            .map_err(io_err(format!("write {}", tmp.display())))?;
        file.sync_all()
            .map_err(io_err(format!("fsync {}", tmp.display())))?;
        fs::rename(&tmp, path).map_err(io_err(format!(
            "rename {} to {}",
            tmp.display(),
            path.display()
        )))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync {}", dir.display())))
}

fn delete(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: format!("delete {}", path.display()),
            source,
        }),
    }
}

struct Original {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
    owner: Option<Owner>,
    /// What the path holds now: `bytes` until this transaction changes it.
    current: Option<Vec<u8>>,
}

/// A set of file changes that can be undone as a whole.
#[derive(Default)]
pub struct FileTxn {
    originals: Vec<Original>,
}

impl FileTxn {
    /// A transaction with nothing changed yet.
    pub fn new() -> FileTxn {
        FileTxn::default()
    }

    fn remember(&mut self, path: &Path) -> Result<&mut Original, Error> {
        let index = match self.originals.iter().position(|o| o.path == path) {
            Some(index) => index,
            None => {
                let bytes = read_optional(path)?;
                self.originals.push(Original {
                    path: path.to_path_buf(),
                    current: bytes.clone(),
                    bytes,
                    owner: owner_of(path),
                });
                self.originals.len() - 1
            }
        };
        Ok(&mut self.originals[index])
    }

    /// Writes `bytes` to `path` atomically (unless it holds them already); returns whether
    /// it wrote.
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<bool, Error> {
        let file = self.remember(path)?;
        if file.current.as_deref() == Some(bytes) {
            return Ok(false);
        }
        write_atomic(path, bytes, file.owner)?;
        file.current = Some(bytes.to_vec());
        tracing::info!(file = %path.display(), "wrote");
        Ok(true)
    }

    /// Deletes `path` (if it exists); returns whether it did.
    pub fn delete(&mut self, path: &Path) -> Result<bool, Error> {
        let file = self.remember(path)?;
        if file.current.is_none() {
            return Ok(false);
        }
        delete(path)?;
        file.current = None;
        tracing::info!(file = %path.display(), "deleted");
        Ok(true)
    }

    /// Puts every changed file back as it was. Returns the first error, after trying all.
    pub fn rollback(self) -> Result<(), Error> {
        let mut first = None;
        for original in self.originals.into_iter().rev() {
            let now = read_optional(&original.path).ok().flatten();
            if now == original.bytes {
                continue;
            }
            let result = match &original.bytes {
                Some(bytes) => write_atomic(&original.path, bytes, original.owner),
                None => delete(&original.path),
            };
            if let Err(e) = result {
                tracing::error!(file = %original.path.display(), error = %e, "could not restore");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_rolls_back_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = dir.path().join("csf.allow");
        let created = dir.path().join("cf-allow.allow");
        fs::write(&kept, b"1.2.3.4 # admin\n").expect("seed");
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o640)).expect("chmod");

        let mut txn = FileTxn::new();
        assert!(txn.write(&kept, b"changed\n").expect("write"));
        assert!(!txn.write(&kept, b"changed\n").expect("same bytes"));
        assert!(txn.write(&created, b"new\n").expect("create"));
        assert_eq!(fs::read(&kept).expect("read"), b"changed\n");
        assert_eq!(fs::metadata(&kept).expect("meta").mode() & 0o777, 0o640);
        assert_eq!(fs::metadata(&created).expect("meta").mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());

        txn.rollback().expect("rollback");
        assert_eq!(fs::read(&kept).expect("read"), b"1.2.3.4 # admin\n");
        assert_eq!(fs::metadata(&kept).expect("meta").mode() & 0o777, 0o640);
        assert!(!created.exists());
    }

    #[test]
    fn delete_rolls_back_to_the_original() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cf-allow.ignore");
        fs::write(&file, b"x\n").expect("seed");
        let mut txn = FileTxn::new();
        assert!(txn.delete(&file).expect("delete"));
        assert!(!txn.delete(&file).expect("already gone"));
        assert!(!file.exists());
        txn.rollback().expect("rollback");
        assert_eq!(fs::read(&file).expect("read"), b"x\n");
    }
}
