//! Files in a directory that root writes and other users may be able to reach: every path is
//! opened under a directory file descriptor, never through a symbolic link, and files are
//! replaced atomically through an exclusively created temporary file with an unpredictable
//! name (temp file, fsync, rename, fsync of the directory).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid, CWD};

/// The owner, group and permission bits of a file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owning user.
    pub uid: u32,
    /// Owning group.
    pub gid: u32,
}

impl Owner {
    fn of(stat: &rustix::fs::Stat) -> Owner {
        Owner {
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
        }
    }

    /// True when the group or others may write (the write bits `0o022`).
    pub fn writable_by_others(&self) -> bool {
        self.mode & 0o022 != 0
    }
}

/// Why a path is not trusted: the one line StrictModes-like checks print.
pub fn untrusted_reason(path: &Path, owner: &Owner) -> Option<String> {
    if owner.uid != 0 {
        Some(format!(
            "{} is owned by uid {} (mode {:04o}), not by root: make it root-owned (chown root {0})",
            path.display(),
            owner.uid,
            owner.mode
        ))
    } else if owner.writable_by_others() {
        Some(format!(
            "{} is writable by its group or others (owner uid {}, mode {:04o}): chmod go-w {0}",
            path.display(),
            owner.uid,
            owner.mode
        ))
    } else {
        None
    }
}

/// True when the process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An open directory; every file operation is relative to it and never follows a symbolic
/// link in the file's own name.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
}

impl Dir {
    /// Opens the directory `path` (a symbolic link to a directory is followed: the admin
    /// named it; what counts is the directory reached, see [`Dir::owner`]).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let e = io::Error::from(e);
            if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
                io::Error::new(
                    e.kind(),
                    format!("{} exists and is not a directory", path.display()),
                )
            } else {
                with_path(e, "open the directory", path)
            }
        })?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Creates `path` and its missing parents with `mode` (like `mkdir -p`), then opens it.
    pub fn create_all(path: &Path, mode: u32) -> io::Result<Dir> {
        if !path.is_dir() {
            match std::fs::symlink_metadata(path) {
                Ok(m) if !m.is_dir() && !m.file_type().is_symlink() => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a directory", path.display()),
                    ))
                }
                _ => {}
            }
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(path)
                .map_err(|e| with_path(e, "create the directory", path))?;
        }
        Dir::open(path)
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's owner and mode.
    pub fn owner(&self) -> io::Result<Owner> {
        Ok(Owner::of(&rustix::fs::fstat(&self.fd)?))
    }

    /// `Err` with the one-line reason when running as root and the directory is not owned
    /// by root or is writable by group or others.
    pub fn check_trusted(&self) -> io::Result<()> {
        if !running_as_root() {
            return Ok(());
        }
        match untrusted_reason(&self.path, &self.owner()?) {
            Some(reason) => Err(io::Error::new(io::ErrorKind::PermissionDenied, reason)),
            None => Ok(()),
        }
    }

    /// `dir/name`, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The owner and mode of `name` itself (a link is not followed); `None` when absent.
    pub fn owner_of(&self, name: &str) -> io::Result<Option<Owner>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Owner::of(&stat))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(with_path(e.into(), "stat", &self.join(name))),
        }
    }

    /// When `name` itself (a link is not followed) was last modified; `None` when absent.
    pub fn modified(&self, name: &str) -> io::Result<Option<std::time::SystemTime>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(
                std::time::UNIX_EPOCH
                    + std::time::Duration::new(
                        u64::try_from(stat.st_mtime).unwrap_or(0),
                        u32::try_from(stat.st_mtime_nsec)
                            .unwrap_or(0)
                            .min(999_999_999),
                    ),
            )),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(with_path(e.into(), "stat", &self.join(name))),
        }
    }

    /// Sets the modification time of `name` (never through a link) to now, creating it
    /// empty (0600) when missing; nothing is written or fsynced.
    pub fn touch(&self, name: &str) -> io::Result<()> {
        if self.owner_of(name)?.is_none() {
            drop(self.open_lock_file(name)?);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let at = rustix::fs::Timespec {
            tv_sec: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: now.subsec_nanos().into(),
        };
        let times = rustix::fs::Timestamps {
            last_access: at,
            last_modification: at,
        };
        rustix::fs::utimensat(&self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| with_path(e.into(), "touch", &self.join(name)))
    }

    /// Opens the regular file `name` for reading; `None` when it does not exist. A symbolic
    /// link, FIFO, device or directory there is an error (and is never opened in a way that
    /// blocks).
    pub fn open_file(&self, name: &str) -> io::Result<Option<File>> {
        let path = self.join(name);
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is a symbolic link; cf-allow does not follow links in its directories (remove it)",
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(with_path(e.into(), "open", &path)),
        };
        ensure_regular(&fd, &path)?;
        // Back to blocking reads for a regular file (O_NONBLOCK only mattered for open).
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())
            .map_err(|e| with_path(e.into(), "open", &path))?;
        Ok(Some(File::from(fd)))
    }

    /// The bytes of the regular file `name`, or `None` when it does not exist.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| with_path(e, "read", &self.join(name)))?;
        Ok(Some(bytes))
    }

    /// Replaces `name` with `bytes` atomically: an exclusively created temporary file with
    /// an unpredictable name in this directory, `mode` and (when given) `owner` set on it,
    /// fsync, rename over `name`, fsync of the directory. A symbolic link at `name` is
    /// replaced, never followed.
    pub fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        self.write_replacing(name, bytes, mode, owner, true)
    }

    /// [`Dir::write_atomic`] without the two fsyncs, for a cache of this boot that only
    /// saves work: the generation record and the verdict cache name the boot they describe,
    /// so after a crash nothing in them is used again anyway, and their readers refuse a
    /// file that is cut short. Still an exclusive temporary file renamed over `name`: a
    /// reader sees the old file or the new one.
    pub fn write_boot_cache(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.write_replacing(name, bytes, mode, None, false)
    }

    fn write_replacing(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
        durable: bool,
    ) -> io::Result<()> {
        let (tmp, file) = self.create_temp(name, mode)?;
        let result = (|| {
            let tmp_path = self.join(&tmp);
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                .map_err(|e| with_path(e.into(), "set the mode of", &tmp_path))?;
            if let Some((uid, gid)) = owner {
                rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| with_path(e.into(), "set the owner of", &tmp_path))?;
            }
            let mut file = File::from(file);
            file.write_all(bytes)
                .map_err(|e| with_path(e, "write", &tmp_path))?;
            if durable {
                file.sync_all()
                    .map_err(|e| with_path(e, "fsync", &tmp_path))?;
            }
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(|e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "cannot rename {} to {}: {}",
                        tmp_path.display(),
                        self.join(name).display(),
                        io::Error::from(e)
                    ),
                )
            })?;
            if durable {
                self.sync()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Creates `.name.<random>.tmp` exclusively (`O_EXCL|O_NOFOLLOW`), trying new names
    /// when one exists.
    fn create_temp(&self, name: &str, mode: u32) -> io::Result<(String, OwnedFd)> {
        let mut last = None;
        for _ in 0..16 {
            let tmp = format!(".{name}.{}.tmp", random_hex()?);
            match rustix::fs::openat(
                &self.fd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(rustix::io::Errno::EXIST) => last = Some(tmp),
                Err(e) => return Err(with_path(e.into(), "create", &self.join(&tmp))),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "cannot create a temporary file in {} (last tried {})",
                self.path.display(),
                last.unwrap_or_default()
            ),
        ))
    }

    /// Deletes `name` (a link itself, never its target); returns whether it existed.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => {
                self.sync()?;
                Ok(true)
            }
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(with_path(e.into(), "delete", &self.join(name))),
        }
    }

    /// Opens (creating with mode 0600 when missing) the regular file `name` for a lock,
    /// never through a link.
    pub(crate) fn open_lock_file(&self, name: &str) -> io::Result<File> {
        let path = self.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is a symbolic link; cf-allow does not follow links in its directories (remove it)",
                    path.display()
                ),
            ),
            e => with_path(e.into(), "open the lock file", &path),
        })?;
        ensure_regular(&fd, &path)?;
        Ok(File::from(fd))
    }

    fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| with_path(e.into(), "fsync", &self.path))
    }
}

fn ensure_regular(fd: &impl AsFd, path: &Path) -> io::Result<()> {
    let stat = rustix::fs::fstat(fd).map_err(|e| with_path(e.into(), "stat", path))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(())
}

/// 16 random hex digits from the kernel.
fn random_hex() -> io::Result<String> {
    let mut buf = [0u8; 8];
    rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty())?;
    Ok(crate::hex(&buf))
}

/// Replaces the file `path` with `bytes` atomically ([`Dir::write_atomic`]: an exclusive
/// temporary file with an unpredictable name, no link followed, fsync, rename, fsync of the
/// directory). The mode and owner of the regular file it replaces are kept; a new file (or one
/// replacing a symbolic link, whose own mode says nothing) gets `new_mode` and this process's
/// owner. The directory must exist.
pub fn replace(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    replace_with(path, bytes, new_mode, true)
}

/// [`replace`] for a cache of this boot ([`Dir::write_boot_cache`]: no fsync).
pub fn replace_boot_cache(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    replace_with(path, bytes, new_mode, false)
}

fn replace_with(path: &Path, bytes: &[u8], new_mode: u32, durable: bool) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dir = Dir::open(dir)?;
    let old = match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
            Some(Owner::of(&stat))
        }
        Ok(_) | Err(rustix::io::Errno::NOENT) => None,
        Err(e) => return Err(with_path(e.into(), "stat", path)),
    };
    let mode = old.map_or(new_mode, |o| o.mode);
    let owner = old.and_then(|o| {
        (o.uid != rustix::process::geteuid().as_raw()
            || o.gid != rustix::process::getegid().as_raw())
        .then_some((o.uid, o.gid))
    });
    dir.write_replacing(name, bytes, mode, owner, durable)
}

/// Splits `path` into its directory and file name, for [`Dir`]'s operations.
pub fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_link_at_the_target_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious\n").expect("seed");
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).expect("mkdir");
        symlink(&victim, state.join("last-good.json")).expect("symlink");
        let dir = Dir::open(&state).expect("open");
        let err = dir.read("last-good.json").expect_err("a link is not read");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        dir.write_atomic("last-good.json", b"new\n", 0o600, None)
            .expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious\n");
        assert_eq!(
            std::fs::read(state.join("last-good.json")).expect("read"),
            b"new\n"
        );
        let meta = std::fs::symlink_metadata(state.join("last-good.json")).expect("meta");
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(names(&state), ["last-good.json"], "no temp file left");
    }

    #[test]
    fn replace_keeps_a_files_mode_and_gives_a_link_the_new_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("snippet.conf");
        std::fs::write(&file, b"old\n").expect("seed");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&file, b"new\n", 0o600).expect("replace");
        assert_eq!(std::fs::read(&file).expect("read"), b"new\n");
        assert_eq!(
            std::fs::metadata(&file).expect("meta").mode() & 0o7777,
            0o640
        );

        // A link's own mode (0777) is never copied onto the file that replaces it.
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious\n").expect("seed");
        let link = tmp.path().join("metrics.prom");
        symlink(&victim, &link).expect("symlink");
        replace(&link, b"m 1\n", 0o644).expect("replace");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious\n");
        let meta = std::fs::symlink_metadata(&link).expect("meta");
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o644);

        let fresh = tmp.path().join("fresh");
        replace(&fresh, b"x", 0o600).expect("new file");
        assert_eq!(
            std::fs::metadata(&fresh).expect("meta").mode() & 0o7777,
            0o600
        );
        let err = replace(&tmp.path().join("missing/x"), b"x", 0o600).expect_err("no dir");
        assert!(
            err.to_string().contains("cannot open the directory"),
            "{err}"
        );
    }

    #[test]
    fn planted_temp_names_are_never_used() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious\n").expect("seed");
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).expect("mkdir");
        // The old predictable names: .NAME.<pid>.tmp and .NAME.cf-allow-<pid>.tmp.
        let pid = std::process::id();
        for planted in [format!(".f.{pid}.tmp"), format!(".f.cf-allow-{pid}.tmp")] {
            symlink(&victim, state.join(planted)).expect("symlink");
        }
        let dir = Dir::open(&state).expect("open");
        for round in 0..20 {
            dir.write_atomic("f", format!("{round}\n").as_bytes(), 0o644, None)
                .expect("write");
        }
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious\n");
        assert_eq!(std::fs::read(state.join("f")).expect("f"), b"19\n");
        assert_eq!(names(&state).len(), 3, "{:?}", names(&state));
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let dir = Dir::open(tmp.path()).expect("open");
        let err = dir.read("fifo").expect_err("a FIFO is refused");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(dir.read("missing").expect("absent"), None);
        let err = dir.open_lock_file("fifo").expect_err("not a lock either");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("state");
        std::fs::write(&file, b"").expect("seed");
        let err = Dir::create_all(&file, 0o755).expect_err("a file");
        assert!(
            err.to_string().contains("exists and is not a directory"),
            "{err}"
        );
        let made = Dir::create_all(&tmp.path().join("a/b"), 0o700).expect("mkdir -p");
        assert!(made.path().is_dir());
        assert!(made.remove("nothing").is_ok_and(|existed| !existed));
    }

    #[test]
    fn untrusted_owners_and_modes_are_named() {
        let root = Owner {
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        assert_eq!(untrusted_reason(Path::new("/x"), &root), None);
        let group = Owner {
            mode: 0o775,
            ..root
        };
        let reason = untrusted_reason(Path::new("/x"), &group).expect("group-writable");
        assert!(
            reason.contains("/x") && reason.contains("0775") && reason.contains("uid 0"),
            "{reason}"
        );
        let user = Owner { uid: 1000, ..root };
        let reason = untrusted_reason(Path::new("/x"), &user).expect("not root's");
        assert!(
            reason.contains("uid 1000") && reason.contains("0755"),
            "{reason}"
        );
    }
}
