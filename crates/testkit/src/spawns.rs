//! Which programs a run of the binary spawns: a directory of logging wrappers to put first on
//! `PATH`. Each wrapper appends `NAME ARGS…` to a log, then execs the real program (found
//! when the wrappers are made), so the run behaves as without them.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Logging wrappers for some programs (deleted on drop).
pub struct Spawns {
    dir: tempfile::TempDir,
    log: PathBuf,
    wrapped: Vec<String>,
}

impl Spawns {
    /// Wraps each of `programs` that is installed (the others are left out: a run cannot
    /// spawn them anyway).
    pub fn wrap(programs: &[&str]) -> Spawns {
        let dir = tempfile::tempdir().expect("temp dir for the wrappers");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("wrapper dir");
        let log = dir.path().join("spawns.log");
        std::fs::write(&log, "").expect("spawn log");
        let mut wrapped = Vec::new();
        for program in programs {
            let Some(real) = crate::which(program) else {
                continue;
            };
            let script = format!(
                "#!/bin/sh\nprintf '%s\\n' \"{program} $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            );
            let path = bin.join(program);
            std::fs::write(&path, script).expect("write wrapper");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
            wrapped.push(program.to_string());
        }
        Spawns { dir, log, wrapped }
    }

    /// The directory of the wrappers.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// `PATH` with the wrappers first, then this process's `PATH`.
    pub fn path_env(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin_dir()];
        dirs.extend(std::env::split_paths(&rest));
        std::env::join_paths(dirs).expect("PATH of the wrappers")
    }

    /// The programs that were wrapped (installed).
    pub fn wrapped(&self) -> &[String] {
        &self.wrapped
    }

    /// Every logged run, `NAME ARGS…`, in order.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .expect("read the spawn log")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many times `program` ran.
    pub fn count(&self, program: &str) -> usize {
        self.runs()
            .iter()
            .filter(|l| l.split(' ').next() == Some(program))
            .count()
    }

    /// Forgets the runs logged so far.
    pub fn clear(&self) {
        std::fs::write(&self.log, "").expect("clear the spawn log");
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }
}
