//! The CSF backend: reads the files and the running chains, writes the files in one
//! transaction and applies the difference live (or runs the reload command).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cf_allow_diff::{Backend, Family, Inspection, Placement, Plan, RangeSet};
use cf_allow_exec::{find_program, ExecError};

use crate::conf::CsfConf;
use crate::entries::{parse_file, ranges_of, render_allow, render_ignore, wanted_allow, Entry};
use crate::files::{read_optional, FileTxn};
use crate::include::{self, IncludeState};
use crate::live::{self, Live, LiveDelta, LiveLayout, LiveState, Programs};
use crate::lock::csf_lock;
use crate::{ApplyMode, Error, Settings, ALLOW_FILE, IGNORE_FILE, LFD_PID_FILES};

/// True when CSF looks installed: `/etc/csf/csf.conf` exists and `csf` is on PATH or in the
/// sbin directories.
pub fn available() -> bool {
    Settings::default().dir.join("csf.conf").is_file() && find_program("csf").is_some()
}

/// The CSF backend.
#[derive(Debug)]
pub struct CsfBackend {
    settings: Settings,
    ports: Vec<u16>,
    dir: PathBuf,
}

/// Everything one operation reads before it decides.
struct Host {
    conf: CsfConf,
    layout: LiveLayout,
    programs: Programs,
    csf: PathBuf,
    allow_text: Vec<u8>,
    ignore_text: Vec<u8>,
    own_allow: Option<Vec<u8>>,
    own_ignore: Option<Vec<u8>>,
    /// The entries of cf-allow.allow.
    own: Vec<Entry>,
    /// The entries of csf.allow and its other includes (the admin's).
    others: Vec<Entry>,
}

impl Host {
    /// What CSF has running now.
    fn live_state(&self) -> Result<LiveState, Error> {
        LiveState::read(&self.layout, &self.programs)
    }
}

impl CsfBackend {
    /// A backend for `settings`; `ports` are the TCP ports opened to Cloudflare (empty: all).
    pub fn new(settings: Settings, ports: Vec<u16>) -> Result<Self, Error> {
        let mut ports = ports;
        if ports.contains(&0) {
            return Err(Error::BadPort);
        }
        ports.sort_unstable();
        ports.dedup();
        let dir = if settings.dir.is_absolute() {
            settings.dir.clone()
        } else {
            std::env::current_dir()
                .map_err(|source| Error::Io {
                    what: "read the current directory".into(),
                    source,
                })?
                .join(&settings.dir)
        };
        Ok(CsfBackend {
            settings,
            ports,
            dir,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn own_allow_path(&self) -> PathBuf {
        self.path(ALLOW_FILE)
    }

    fn own_ignore_path(&self) -> PathBuf {
        self.path(IGNORE_FILE)
    }

    fn target(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    fn load(&self) -> Result<Host, Error> {
        if !self.dir.is_dir() {
            return Err(Error::BadDir(self.dir.clone()));
        }
        cf_allow_exec::files::Dir::open(&self.dir)
            .and_then(|dir| dir.check_trusted())
            .map_err(|e| Error::Untrusted(e.to_string()))?;
        let conf = CsfConf::load(&self.path("csf.conf"))?;
        let csf = find_program("csf").ok_or(Error::CsfMissing)?;
        let allow_text = read_optional(&self.path("csf.allow"))?.unwrap_or_default();
        let ignore_text = read_optional(&self.path("csf.ignore"))?.unwrap_or_default();
        let own_allow = read_optional(&self.own_allow_path())?;
        let own_ignore = read_optional(&self.own_ignore_path())?;
        let own = own_allow
            .as_deref()
            .map(|b| parse_file(&String::from_utf8_lossy(b)))
            .unwrap_or_default();
        let others = self.admin_entries(&allow_text);
        Ok(Host {
            layout: LiveLayout::from_conf(&conf),
            programs: Programs::from_conf(&conf),
            conf,
            csf,
            allow_text,
            ignore_text,
            own_allow,
            own_ignore,
            own,
            others,
        })
    }

    /// The entries CSF loads from csf.allow and every file it includes, except ours.
    fn admin_entries(&self, allow_text: &[u8]) -> Vec<Entry> {
        let own = Self::target(&self.own_allow_path());
        let mut queue = vec![String::from_utf8_lossy(allow_text).into_owned()];
        let mut seen = vec![own.clone()];
        let mut entries = Vec::new();
        while let Some(text) = queue.pop() {
            for line in text.lines() {
                let line = line.trim_end_matches('\r');
                if let Some(path) = line.strip_prefix("Include") {
                    let path = path.trim_start();
                    if !seen.iter().any(|s| s == path) && seen.len() < 64 {
                        seen.push(path.to_string());
                        if let Ok(Some(bytes)) = read_optional(Path::new(path)) {
                            queue.push(String::from_utf8_lossy(&bytes).into_owned());
                        }
                    }
                } else if let Some(entry) = Entry::parse(line) {
                    entries.push(entry);
                }
            }
        }
        entries
    }

    fn warnings(&self, host: &Host, ranges: &RangeSet, state: &LiveState) -> Vec<String> {
        let mut warnings = Vec::new();
        let v6 = ranges.len_of(Family::Ipv6);
        // Before the first sync cf-allow.allow holds no ranges yet: warn then too, when the
        // admin needs it most (the feed has IPv6 ranges unless the sources were changed).
        if (v6 > 0 || host.own_allow.is_none()) && !host.conf.ipv6() {
            let what = if v6 > 0 {
                format!("the {v6} IPv6 Cloudflare ranges")
            } else {
                "every IPv6 Cloudflare range".to_string()
            };
            warnings.push(format!(
                "csf.conf has IPV6 = \"0\": CSF silently skips {what}, so visitors over IPv6 get Error 523; set IPV6 = \"1\" and run csf -r"
            ));
        }
        if host.conf.testing() {
            warnings.push(
                "csf.conf has TESTING = \"1\": a cron job flushes the whole firewall every few minutes and lfd does not run; set TESTING = \"0\" and run csf -r once the firewall works"
                    .into(),
            );
        }
        if self.path("csf.disable").exists() {
            warnings.push("CSF is disabled (csf -x): its rules load only after csf -e".into());
        }
        if !state.running(Family::Ipv4) {
            warnings.push(
                "CSF is not running (no ALLOWIN chain in iptables): cf-allow only writes its files, which CSF loads when it starts"
                    .into(),
            );
        } else if host.conf.ipv6() && !state.running(Family::Ipv6) {
            warnings.push(
                "CSF's ip6tables chains are missing although IPV6 = \"1\": run csf -r so that the IPv6 ranges are loaded"
                    .into(),
            );
        }
        if host.conf.ignore_allow() {
            warnings.push(
                "csf.conf has IGNORE_ALLOW = \"1\": lfd never blocks any plain address in csf.allow (yours included), but not port filters such as tcp|in|d=443|s=…; cf-allow.ignore is what keeps lfd from blocking Cloudflare"
                    .into(),
            );
        }
        if !lfd_running() {
            warnings.push(
                "lfd is not running: login failures are not blocked, and cf-allow.ignore takes effect when lfd starts"
                    .into(),
            );
        }
        warnings
    }

    /// Writes the wanted files (and Include lines) into `txn`; returns whether
    /// cf-allow.ignore or its Include line changed.
    fn write_files(
        &self,
        txn: &mut FileTxn,
        host: &Host,
        ranges: &RangeSet,
    ) -> Result<(bool, bool), Error> {
        let allow_path = self.own_allow_path();
        let ignore_path = self.own_ignore_path();
        let mut wrote = txn.write(&allow_path, render_allow(ranges, &self.ports).as_bytes())?;
        let ignore_changed = txn.write(&ignore_path, render_ignore(ranges).as_bytes())?;
        wrote |= txn.write(
            &self.path("csf.allow"),
            &include::with(&host.allow_text, &Self::target(&allow_path)),
        )?;
        let include_changed = txn.write(
            &self.path("csf.ignore"),
            &include::with(&host.ignore_text, &Self::target(&ignore_path)),
        )?;
        Ok((
            wrote || ignore_changed || include_changed,
            ignore_changed || include_changed,
        ))
    }

    /// Runs the reload command; on failure restores the files and runs it once more so
    /// that CSF reloads what it had.
    fn reload(&self, txn: FileTxn) -> Result<(), Error> {
        let command = self.settings.reload.clone();
        tracing::info!(command = %command, "reloading CSF");
        let Err(detail) = run_reload(&command, self.settings.reload_timeout()) else {
            return Ok(());
        };
        if let Err(restore) = txn.rollback() {
            return Err(Error::RestoreFailed {
                error: Box::new(Error::Command { command, detail }),
                restore: Box::new(restore),
            });
        }
        let rerun = match run_reload(&command, self.settings.reload_timeout()) {
            Ok(()) => "; running it again with them succeeded".to_string(),
            Err(e) => format!("; running it again with them failed too: {e}"),
        };
        Err(Error::Reload {
            command,
            detail,
            rerun,
        })
    }

    fn restart_lfd(&self, host: &Host) -> Result<(), Error> {
        if !lfd_running() {
            tracing::info!("lfd is not running; it reads cf-allow.ignore when it starts");
            return Ok(());
        }
        tracing::info!("restarting lfd so that it reads cf-allow.ignore");
        live::run(&host.csf, &["--lfd", "restart"], None).map(|_| ())
    }

    /// Restarts lfd after a live change; when that fails, applies `undo` to the running
    /// firewall and rolls `txn` back, so that nothing is left changed.
    fn restart_lfd_or_undo(&self, host: &Host, undo: LiveDelta, txn: FileTxn) -> Result<(), Error> {
        if let Err(e) = self.restart_lfd(host) {
            if let Err(undo_err) = undo.apply(&host.programs) {
                tracing::error!(error = %undo_err, "could not undo the live change");
            }
            return Err(Self::fail(txn, e));
        }
        Ok(())
    }

    fn fail(txn: FileTxn, error: Error) -> Error {
        match txn.rollback() {
            Ok(()) => error,
            Err(restore) => Error::RestoreFailed {
                error: Box::new(error),
                restore: Box::new(restore),
            },
        }
    }
}

/// Runs the reload command as an argument vector (never through a shell), bounded by
/// `timeout`. `Err` is the one-line detail for [`Error::Reload`].
pub(crate) fn run_reload(command: &str, timeout: Duration) -> Result<(), String> {
    let words = cf_allow_exec::split_words(command)?;
    let program = if words[0].contains('/') {
        PathBuf::from(&words[0])
    } else {
        find_program(&words[0]).ok_or_else(|| format!("{} is not installed", words[0]))?
    };
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    match cf_allow_exec::run_checked(&program, &args, None, timeout) {
        Ok(_) => Ok(()),
        Err(ExecError::Failed { detail, code, .. }) => Err(match code {
            Some(code) if detail != cf_allow_exec::exit_detail(Some(code)) => {
                format!("exit status {code}: {detail}")
            }
            _ => detail,
        }),
        Err(ExecError::TimedOut { secs, .. }) => Err(format!(
            "it did not finish within {secs} s (csf.reload_timeout_secs) and was killed"
        )),
        Err(ExecError::Missing { program }) => Err(format!("{program} is not installed")),
        Err(ExecError::Spawn { source, .. }) => Err(source.to_string()),
    }
}

/// True when lfd's pid file names a live lfd process.
fn lfd_running() -> bool {
    LFD_PID_FILES.iter().any(|file| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .is_some_and(|cmdline| cmdline.starts_with(b"lfd"))
    })
}

fn summarize(objects: &[Live]) -> String {
    match objects {
        [] => String::new(),
        [one] => one.describe(),
        [first, rest @ ..] => format!("{} and {} more", first.describe(), rest.len()),
    }
}

impl Backend for CsfBackend {
    type Error = Error;

    /// CSF inserts allow rules at the top of its `ALLOWIN` chain, and so does cf-allow.
    fn placement(&self) -> Option<Placement> {
        Some(Placement::IptablesChainTop {
            legacy: cf_allow_exec::is_legacy_iptables("iptables"),
            chain: "ALLOWIN".to_owned(),
        })
    }

    fn name(&self) -> &'static str {
        "csf"
    }

    fn inspect(&mut self) -> Result<Inspection, Error> {
        let host = self.load()?;
        let ranges = ranges_of(&host.own);
        let allow_target = Self::target(&self.own_allow_path());
        let ignore_target = Self::target(&self.own_ignore_path());
        let allow_include = include::state(&host.allow_text, &allow_target);
        let ignore_include = include::state(&host.ignore_text, &ignore_target);
        let present = host.own_allow.is_some()
            || host.own_ignore.is_some()
            || allow_include != IncludeState::Missing
            || ignore_include != IncludeState::Missing;
        let state = host.live_state()?;
        let mut repairs = Vec::new();
        let mut warnings = self.warnings(&host, &ranges, &state);
        if present {
            let file_repair = |now: &Option<Vec<u8>>, wanted: String, name: &str| match now {
                None => Some(format!("create {name}")),
                Some(b) if *b != wanted.into_bytes() => Some(format!(
                    "rewrite {name} (its lines differ from the configured ranges and ports)"
                )),
                Some(_) => None,
            };
            repairs.extend(file_repair(
                &host.own_allow,
                render_allow(&ranges, &self.ports),
                ALLOW_FILE,
            ));
            repairs.extend(file_repair(
                &host.own_ignore,
                render_ignore(&ranges),
                IGNORE_FILE,
            ));
            for (state, file, target) in [
                (&allow_include, "csf.allow", &allow_target),
                (&ignore_include, "csf.ignore", &ignore_target),
            ] {
                match state {
                    IncludeState::Ok => {}
                    IncludeState::Missing => repairs.push(format!("add the line `Include {target}` to {file}")),
                    IncludeState::Broken => repairs.push(format!(
                        "rewrite the Include line for {target} in {file} as `Include {target}` (CSF does not load it as written)"
                    )),
                }
            }
            let missing =
                LiveDelta::between(&host.layout, &host.own, &host.own, &host.others, &state).add;
            if !missing.is_empty() {
                let text = format!(
                    "{} live rule(s) for cf-allow.allow missing from CSF's running firewall: {}",
                    missing.len(),
                    summarize(&missing)
                );
                match self.settings.apply {
                    ApplyMode::Live => repairs.push(format!("add {text}")),
                    ApplyMode::Restart => warnings.push(format!("{text}; run csf -r")),
                }
            }
        }
        Ok(Inspection {
            ranges,
            present,
            repairs,
            warnings,
        })
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), Error> {
        // The reload command of `apply: restart` takes CSF's lock itself.
        let _lock = match self.settings.apply {
            ApplyMode::Live => csf_lock()?,
            ApplyMode::Restart => None,
        };
        let host = self.load()?;
        let mut txn = FileTxn::new();
        let (changed, ignore_changed) = match self.write_files(&mut txn, &host, &plan.desired) {
            Ok(result) => result,
            Err(e) => return Err(Self::fail(txn, e)),
        };
        match self.settings.apply {
            ApplyMode::Restart => {
                if changed {
                    self.reload(txn)?;
                }
                Ok(())
            }
            ApplyMode::Live => {
                // What CSF reads back from the file just written: its checkip refuses a /0.
                let new_entries: Vec<Entry> = wanted_allow(&plan.desired, &self.ports)
                    .into_iter()
                    .filter(|e| e.net().prefix_len() > 0)
                    .collect();
                let state = match host.live_state() {
                    Ok(s) => s,
                    Err(e) => return Err(Self::fail(txn, e)),
                };
                let delta =
                    LiveDelta::between(&host.layout, &new_entries, &host.own, &host.others, &state);
                if !delta.is_empty() {
                    tracing::info!(
                        added = delta.add.len(),
                        deleted = delta.delete.len(),
                        "changing CSF's running allow rules"
                    );
                    if let Err(e) = delta.apply(&host.programs) {
                        return Err(Self::fail(txn, e));
                    }
                }
                if ignore_changed {
                    let undo = LiveDelta {
                        add: delta.delete,
                        delete: delta.add,
                    };
                    self.restart_lfd_or_undo(&host, undo, txn)?;
                }
                Ok(())
            }
        }
    }

    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>, Error> {
        let _lock = match self.settings.apply {
            ApplyMode::Live if !dry_run => csf_lock()?,
            _ => None,
        };
        let host = self.load()?;
        let allow_path = self.own_allow_path();
        let ignore_path = self.own_ignore_path();
        let mut report = Vec::new();
        for (text, file, target) in [
            (&host.allow_text, "csf.allow", &allow_path),
            (&host.ignore_text, "csf.ignore", &ignore_path),
        ] {
            if include::state(text, &Self::target(target)) != IncludeState::Missing {
                report.push(format!("line `Include {}` in {file}", target.display()));
            }
        }
        for (now, path) in [
            (&host.own_allow, &allow_path),
            (&host.own_ignore, &ignore_path),
        ] {
            if now.is_some() {
                report.push(format!("file {}", path.display()));
            }
        }
        let delta = match self.settings.apply {
            ApplyMode::Live => {
                let state = host.live_state()?;
                LiveDelta::between(&host.layout, &[], &host.own, &host.others, &state)
            }
            ApplyMode::Restart => LiveDelta::default(),
        };
        report.extend(
            delta
                .delete
                .iter()
                .map(|o| format!("live rule {}", o.describe())),
        );
        if dry_run || report.is_empty() {
            return Ok(report);
        }
        let mut txn = FileTxn::new();
        let files = (|| -> Result<bool, Error> {
            let mut ignore_changed = txn.write(
                &self.path("csf.ignore"),
                &include::without(&host.ignore_text, &Self::target(&ignore_path)),
            )?;
            txn.write(
                &self.path("csf.allow"),
                &include::without(&host.allow_text, &Self::target(&allow_path)),
            )?;
            txn.delete(&allow_path)?;
            ignore_changed |= txn.delete(&ignore_path)?;
            Ok(ignore_changed)
        })();
        let ignore_changed = match files {
            Ok(changed) => changed,
            Err(e) => return Err(Self::fail(txn, e)),
        };
        match self.settings.apply {
            ApplyMode::Restart => self.reload(txn)?,
            ApplyMode::Live => {
                if let Err(e) = delta.apply(&host.programs) {
                    return Err(Self::fail(txn, e));
                }
                if ignore_changed {
                    let undo = LiveDelta {
                        add: delta.delete,
                        delete: Vec::new(),
                    };
                    self.restart_lfd_or_undo(&host, undo, txn)?;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_command_is_bounded_and_never_run_by_a_shell() {
        let err = run_reload("sleep 1000", Duration::from_millis(300)).expect_err("killed");
        assert!(err.contains("did not finish within"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        // With `sh -c` this ran `touch`; without a shell it is refused before anything runs.
        let err = run_reload(
            &format!("true; touch {}", marker.display()),
            Duration::from_secs(5),
        )
        .expect_err("shell syntax");
        assert!(err.contains("without a shell"), "{err}");
        assert!(!marker.exists());
        run_reload(
            &format!("touch '{}'", marker.display()),
            Duration::from_secs(60),
        )
        .expect("an argument vector runs");
        assert!(marker.exists());
        let err = run_reload("sh -c 'echo boom >&2; exit 3'", Duration::from_secs(60))
            .expect_err("exit 3");
        assert_eq!(err, "exit status 3: boom");
    }
}
