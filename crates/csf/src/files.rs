//! Atomic file changes that can be rolled back: every write goes to a temporary file in the
//! same directory, is fsynced and renamed over the target; the first change to a path
//! records its original bytes and owner so that [`FileTxn::rollback`] puts them back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cf_allow_exec::files::{self, Dir, Owner};

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

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The directory of `path` (opened under a descriptor, see [`Dir`]) and the file's name.
fn locate(path: &Path) -> Result<(Dir, String), Error> {
    let (dir, name) = files::split(path).map_err(io_err(format!("write {}", path.display())))?;
    let dir = Dir::open(dir).map_err(io_err(format!("open {}", dir.display())))?;
    Ok((dir, name.to_string()))
}

/// Replaces `path` with `bytes` atomically ([`Dir::write_atomic`]: exclusive temp file with
/// an unpredictable name, no link followed, fsync, rename, fsync of the directory). Keeps the
/// mode and owner of the file it replaces; a new file is 0600.
fn write_atomic(path: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), Error> {
    let (dir, name) = locate(path)?;
    let mode = owner.map_or(NEW_FILE_MODE, |o| o.mode);
    dir.write_atomic(&name, bytes, mode, owner.map(|o| (o.uid, o.gid)))
        .map_err(io_err(format!("replace {}", path.display())))
}

fn delete(path: &Path) -> Result<(), Error> {
    let (dir, name) = locate(path)?;
    dir.remove(&name)
        .map(|_| ())
        .map_err(io_err(format!("delete {}", path.display())))
}

/// The bytes and owner of `path` itself (a link is refused, not followed).
fn original(path: &Path) -> Result<(Option<Vec<u8>>, Option<Owner>), Error> {
    let (dir, name) = locate(path)?;
    let what = || format!("read {}", path.display());
    let bytes = dir.read(&name).map_err(io_err(what()))?;
    let owner = dir.owner_of(&name).map_err(io_err(what()))?;
    Ok((bytes, owner))
}

fn original_bytes(path: &Path) -> Option<Vec<u8>> {
    original(path).ok().and_then(|(bytes, _)| bytes)
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
                let (bytes, owner) = original(path)?;
                self.originals.push(Original {
                    path: path.to_path_buf(),
                    current: bytes.clone(),
                    bytes,
                    owner,
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
            let now = original_bytes(&original.path);
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
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn planted_links_and_temp_names_in_the_csf_directory_are_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious\n").expect("seed");
        let csf = dir.path().join("csf");
        fs::create_dir(&csf).expect("mkdir");
        let pid = std::process::id();
        std::os::unix::fs::symlink(
            &victim,
            csf.join(format!(".cf-allow.ignore.cf-allow-{pid}.tmp")),
        )
        .expect("plant the old temp name");
        std::os::unix::fs::symlink(&victim, csf.join("cf-allow.allow")).expect("plant a link");
        let mut txn = FileTxn::new();
        assert!(txn
            .write(&csf.join("cf-allow.ignore"), b"new\n")
            .expect("write"));
        let err = txn
            .write(&csf.join("cf-allow.allow"), b"new\n")
            .expect_err("a link in place of our file");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
        assert_eq!(
            fs::read(csf.join("cf-allow.ignore")).expect("ours"),
            b"new\n"
        );
    }

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
