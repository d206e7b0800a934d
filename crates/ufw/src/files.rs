//! Reading ufw's files and replacing them atomically (temporary file in the same directory,
//! fsync, rename, fsync of the directory), keeping their mode and owner.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::Error;

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// The bytes of `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(io_err(format!("read {}", path.display())))
}

/// Replaces the existing file `path` with `bytes`.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let meta = fs::metadata(path).map_err(io_err(format!("stat {}", path.display())))?;
    let mode = meta.mode() & 0o7777;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cf-allow-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(format!("create {}", tmp.display())))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(format!("set the mode of {}", tmp.display())))?;
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .map_err(io_err(format!("set the owner of {}", tmp.display())))?;
        file.write_all(bytes)
            .map_err(io_err(format!("write {}", tmp.display())))?;
        file.sync_all()
            .map_err(io_err(format!("fsync {}", tmp.display())))?;
        fs::rename(&tmp, path).map_err(io_err(format!(
            "rename {} to {}",
            tmp.display(),
            path.display()
        )))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(format!("fsync {}", dir.display())))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

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
