//! Reading, atomically writing and restoring the owned files.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// The file's bytes, `None` when it does not exist.
pub fn read_optional(name: &'static str, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            name,
            what: "cannot read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces `path` with `bytes` atomically (`cf_allow_exec::files::replace`; mode 0644, or
/// the old file's mode and owner).
pub fn write_atomic(name: &'static str, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_with_mode(name, path, bytes, None)
}

fn write_with_mode(
    name: &'static str,
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
) -> Result<(), Error> {
    // The hardened writer: exclusive temp file, no link followed, fsync, rename, fsync of
    // the directory; the replaced file's mode and owner are kept.
    cf_allow_exec::files::replace(path, bytes, mode.unwrap_or(0o644)).map_err(|source| Error::Io {
        name,
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

/// Deletes `path` (already absent is fine).
pub fn remove(name: &'static str, path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            name,
            what: "cannot remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The file as it was before a change, to put back when the server refuses the change.
pub struct Previous {
    name: &'static str,
    path: PathBuf,
    content: Option<(Vec<u8>, u32)>,
}

impl Previous {
    /// Remembers `content` (the file's bytes, `None` when absent) and the file's mode.
    pub fn capture(
        name: &'static str,
        path: &Path,
        content: Option<Vec<u8>>,
    ) -> Result<Previous, Error> {
        let content = match content {
            None => None,
            Some(bytes) => {
                let mode = fs::metadata(path)
                    .map_err(|source| Error::Io {
                        name,
                        what: "cannot read",
                        path: path.to_path_buf(),
                        source,
                    })?
                    .permissions()
                    .mode()
                    & 0o7777;
                Some((bytes, mode))
            }
        };
        Ok(Previous {
            name,
            path: path.to_path_buf(),
            content,
        })
    }

    /// Puts the file back byte for byte (or deletes it when there was none).
    pub fn restore(&self) -> Result<(), Error> {
        match &self.content {
            Some((bytes, mode)) => write_with_mode(self.name, &self.path, bytes, Some(*mode)),
            None => remove(self.name, &self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_the_mode_and_restore_is_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.conf");
        fs::write(&path, b"old\nbytes").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let prev = Previous::capture("t", &path, read_optional("t", &path).expect("read"))
            .expect("capture");
        write_atomic("t", &path, b"new\n").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"new\n");
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o640
        );
        prev.restore().expect("restore");
        assert_eq!(fs::read(&path).expect("read"), b"old\nbytes");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

        let absent = dir.path().join("new.conf");
        let prev = Previous::capture("t", &absent, None).expect("capture");
        write_atomic("t", &absent, b"x").expect("write");
        prev.restore().expect("restore");
        assert!(!absent.exists());
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = write_atomic(
            "nginx",
            Path::new("/nonexistent-cf-allow/conf.d/x.conf"),
            b"x",
        )
        .expect_err("no dir");
        assert!(
            err.to_string()
                == "nginx: cannot write /nonexistent-cf-allow/conf.d/x.conf: cannot open the directory /nonexistent-cf-allow/conf.d: No such file or directory (os error 2)",
            "{err}"
        );
    }
}
