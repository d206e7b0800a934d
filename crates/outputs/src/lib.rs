//! cf-allow's outputs: the same validated list that goes to the firewall, written as the web
//! servers' real-IP trust (nginx `set_real_ip_from`, Apache mod_remoteip, Caddy
//! `trusted_proxies`, an HAProxy ACL file) and as fail2ban's `ignoreip`.
//!
//! Each output owns one file, proven by its first line ([`HEADER_MARK`]): a file without it
//! is never overwritten or deleted. A file is written (atomically) only when its content
//! changes; then the server's own config test runs, and only when it passes is the server
//! reloaded. A failed test or reload puts the previous file back byte for byte.

#![forbid(unsafe_code)]

mod error;
pub mod fail2ban;
mod file;
pub mod render;
mod settings;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cf_allow_diff::RangeSet;

pub use error::Error;
pub use settings::{Apache, Fail2ban, Server, Settings};

/// The words every owned file starts with (after `# `).
pub const HEADER_MARK: &str = "Managed by cf-allow";

/// Default longest run of a test or reload program.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// nginx's realip module.
    Nginx,
    /// Apache's mod_remoteip.
    Apache,
    /// Caddy's `trusted_proxies`.
    Caddy,
    /// An HAProxy ACL file.
    Haproxy,
    /// fail2ban's `ignoreip`.
    Fail2ban,
}

impl Kind {
    /// The output's name, as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Apache => "apache",
            Kind::Caddy => "caddy",
            Kind::Haproxy => "haproxy",
            Kind::Fail2ban => "fail2ban",
        }
    }

    fn default_path(self) -> &'static str {
        match self {
            Kind::Nginx => "/etc/nginx/conf.d/cf-allow-realip.conf",
            Kind::Apache => "/etc/apache2/conf-available/cf-allow-realip.conf",
            Kind::Caddy => "/etc/caddy/cf-allow-realip.caddy",
            Kind::Haproxy => "/etc/haproxy/cf-allow.acl",
            Kind::Fail2ban => "/etc/fail2ban/jail.d/cf-allow.local",
        }
    }

    fn default_test(self) -> &'static [&'static str] {
        match self {
            Kind::Nginx => &["nginx", "-t"],
            Kind::Apache => &["apachectl", "-t"],
            Kind::Caddy => &[
                "caddy",
                "validate",
                "--config",
                "/etc/caddy/Caddyfile",
                "--adapter",
                "caddyfile",
            ],
            Kind::Haproxy => &["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"],
            Kind::Fail2ban => &["fail2ban-client", "--test"],
        }
    }

    fn default_reload(self) -> &'static [&'static str] {
        match self {
            Kind::Nginx => &["nginx", "-s", "reload"],
            Kind::Apache => &["apachectl", "graceful"],
            Kind::Caddy => &[
                "caddy",
                "reload",
                "--config",
                "/etc/caddy/Caddyfile",
                "--adapter",
                "caddyfile",
            ],
            Kind::Haproxy => &["systemctl", "reload", "haproxy"],
            Kind::Fail2ban => &["fail2ban-client", "reload"],
        }
    }
}

/// One configured output, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Which.
    pub kind: Kind,
    /// The owned file.
    pub path: PathBuf,
    /// The config test (empty: none).
    pub test: Vec<String>,
    /// The reload (empty: none).
    pub reload: Vec<String>,
    /// Apache: the enabling symlink.
    pub link: Option<PathBuf>,
    /// fail2ban: the configuration directory read for the admin's entries.
    pub config_dir: Option<PathBuf>,
    /// Longest run of the test or the reload.
    pub timeout: Duration,
}

/// What one output did (or would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The output's name.
    pub name: &'static str,
    /// Its file.
    pub path: PathBuf,
    /// True when the file was (or would be) written or removed.
    pub changed: bool,
}

/// How an owned file compares with what it should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The output's name.
    pub name: &'static str,
    /// Its file.
    pub path: PathBuf,
    /// `in_sync`, `missing`, `drifted` or `not_owned`.
    pub file: &'static str,
    /// Whether the server has the file in its configuration (`nginx -T`, Apache's
    /// `DUMP_INCLUDES`, fail2ban's jails ignoring every range); `None`: not known.
    pub loaded: Option<bool>,
    /// Why `loaded` is false or unknown, when there is something to say.
    pub detail: Option<String>,
}

fn argv(given: &Option<Vec<String>>, default: &[&str]) -> Vec<String> {
    given
        .clone()
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
}

impl Settings {
    /// The configured outputs, in a fixed order (nginx, apache, caddy, haproxy, fail2ban).
    pub fn outputs(&self) -> Vec<Output> {
        let timeout = self
            .timeout_secs
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let base = |kind: Kind,
                    path: &Option<PathBuf>,
                    test: &Option<Vec<String>>,
                    reload: &Option<Vec<String>>| Output {
            kind,
            path: path
                .clone()
                .unwrap_or_else(|| PathBuf::from(kind.default_path())),
            test: argv(test, kind.default_test()),
            reload: argv(reload, kind.default_reload()),
            link: None,
            config_dir: None,
            timeout,
        };
        let mut all = Vec::new();
        if let Some(s) = &self.nginx {
            all.push(base(Kind::Nginx, &s.path, &s.test, &s.reload));
        }
        if let Some(s) = &self.apache {
            let mut o = base(Kind::Apache, &s.path, &s.test, &s.reload);
            o.link = match &s.link {
                Some(l) if l.as_os_str().is_empty() => None,
                Some(l) => Some(l.clone()),
                None => Some(PathBuf::from(
                    "/etc/apache2/conf-enabled/cf-allow-realip.conf",
                )),
            };
            all.push(o);
        }
        if let Some(s) = &self.caddy {
            all.push(base(Kind::Caddy, &s.path, &s.test, &s.reload));
        }
        if let Some(s) = &self.haproxy {
            all.push(base(Kind::Haproxy, &s.path, &s.test, &s.reload));
        }
        if let Some(s) = &self.fail2ban {
            let mut o = base(Kind::Fail2ban, &s.path, &s.test, &s.reload);
            o.config_dir = Some(
                s.config_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/etc/fail2ban")),
            );
            all.push(o);
        }
        all
    }

    /// Checks what serde cannot: timeouts within 1-3600 s, non-empty paths, program names.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.timeout_secs {
            if !(1..=3600).contains(&t) {
                return Err(format!(
                    "outputs.timeout_secs: {t} is not a timeout in seconds (1-3600)"
                ));
            }
        }
        for o in self.outputs() {
            let name = o.kind.name();
            if o.path.as_os_str().is_empty() || !o.path.is_absolute() {
                return Err(format!(
                    "outputs.{name}.path: {:?} is not an absolute path",
                    o.path
                ));
            }
            if let Some(link) = o.link.as_ref().filter(|l| !l.is_absolute()) {
                return Err(format!(
                    "outputs.{name}.link: {link:?} is not an absolute path"
                ));
            }
            for (role, v) in [("test", &o.test), ("reload", &o.reload)] {
                if v.first().is_some_and(|p| p.is_empty()) {
                    return Err(format!("outputs.{name}.{role}: the program name is empty"));
                }
            }
        }
        Ok(())
    }
}

impl Output {
    /// The output's name.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The file's content for `ranges`.
    pub fn render(&self, ranges: &RangeSet) -> Result<String, Error> {
        Ok(match self.kind {
            Kind::Nginx => render::nginx(ranges),
            Kind::Apache => render::apache(ranges),
            Kind::Caddy => render::caddy(ranges),
            Kind::Haproxy => render::haproxy(ranges),
            Kind::Fail2ban => {
                let dir = self
                    .config_dir
                    .as_deref()
                    .unwrap_or(Path::new("/etc/fail2ban"));
                let admin = fail2ban::AdminIgnore::read(dir, &self.path)?;
                render::fail2ban(ranges, &admin)
            }
        })
    }

    /// Makes the file hold `ranges`: written only when it differs, then tested and the server
    /// reloaded; a failed test or reload puts the previous file back.
    pub fn sync(&self, ranges: &RangeSet, dry_run: bool) -> Result<Change, Error> {
        if ranges.is_empty() {
            return Err(Error::EmptyList {
                name: self.name(),
                path: self.path.clone(),
            });
        }
        let want = self.render(ranges)?;
        let before = self.owned_content()?;
        let link_missing = self.link_missing();
        let changed = before.as_deref() != Some(want.as_bytes()) || link_missing;
        if changed && !dry_run {
            self.programs_present()?;
            let previous = file::Previous::capture(self.name(), &self.path, before)?;
            file::write_atomic(self.name(), &self.path, want.as_bytes())?;
            let linked = match link_missing.then(|| self.make_link()) {
                Some(Err(e)) => {
                    previous.restore()?;
                    return Err(e);
                }
                Some(Ok(made)) => made,
                None => false,
            };
            self.test_and_reload(|| {
                if linked {
                    self.drop_link();
                }
                previous.restore()
            })?;
            tracing::info!("{}: wrote {}", self.name(), self.path.display());
        }
        Ok(self.change(changed))
    }

    /// Deletes the owned file (and Apache's link), then tests and reloads; a failed test
    /// (a config that still includes it) puts it back.
    pub fn remove(&self, dry_run: bool) -> Result<Change, Error> {
        let before = self.owned_content()?;
        let changed = before.is_some() || self.link_is_ours();
        if changed && !dry_run {
            self.programs_present()?;
            let previous = file::Previous::capture(self.name(), &self.path, before)?;
            let had_link = self.link_is_ours();
            if had_link {
                self.drop_link();
            }
            file::remove(self.name(), &self.path)?;
            self.test_and_reload(|| {
                let restored = previous.restore();
                if had_link {
                    let _ = self.make_link();
                }
                restored
            })?;
            tracing::info!("{}: removed {}", self.name(), self.path.display());
        }
        Ok(self.change(changed))
    }

    /// Drift of the file against `ranges`, and whether the server loaded it.
    pub fn status(&self, ranges: &RangeSet) -> Result<State, Error> {
        let want = self.render(ranges)?;
        let file = match file::read_optional(self.name(), &self.path)? {
            None => "missing",
            Some(bytes) if !render::is_owned(&bytes) => "not_owned",
            Some(bytes) if bytes == want.as_bytes() && !self.link_missing() => "in_sync",
            Some(_) => "drifted",
        };
        let (loaded, detail) = self.loaded(ranges);
        Ok(State {
            name: self.name(),
            path: self.path.clone(),
            file,
            loaded,
            detail,
        })
    }

    fn change(&self, changed: bool) -> Change {
        Change {
            name: self.name(),
            path: self.path.clone(),
            changed,
        }
    }

    /// The file's bytes when it exists and is ours; `NotOwned` when it exists without the header.
    fn owned_content(&self) -> Result<Option<Vec<u8>>, Error> {
        match file::read_optional(self.name(), &self.path)? {
            Some(bytes) if !render::is_owned(&bytes) => Err(Error::NotOwned {
                name: self.name(),
                path: self.path.clone(),
            }),
            other => Ok(other),
        }
    }

    /// Fails before anything is written when the test or reload program is not installed.
    fn programs_present(&self) -> Result<(), Error> {
        for (role, v) in [("test", &self.test), ("reload", &self.reload)] {
            if let Some(program) = v.first() {
                if resolve(program).is_none() {
                    return Err(Error::ProgramMissing {
                        name: self.name(),
                        role,
                        program: program.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs the test, then the reload; on either failing, `undo` runs first and the error
    /// names the program's output.
    fn test_and_reload(&self, undo: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
        if let Err(output) = run(&self.test, self.timeout) {
            undo()?;
            return Err(Error::TestFailed {
                name: self.name(),
                command: self.test.join(" "),
                path: self.path.clone(),
                output,
            });
        }
        if let Err(output) = run(&self.reload, self.timeout) {
            undo()?;
            return Err(Error::ReloadFailed {
                name: self.name(),
                command: self.reload.join(" "),
                path: self.path.clone(),
                output,
            });
        }
        Ok(())
    }

    fn link_missing(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| std::fs::symlink_metadata(l).is_err())
    }

    /// True when the link exists and points at the owned file.
    fn link_is_ours(&self) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        let Ok(target) = std::fs::read_link(link) else {
            return false;
        };
        let target = link
            .parent()
            .map_or(target.clone(), |dir| dir.join(&target));
        target == self.path
            || matches!(
                (std::fs::canonicalize(&target), std::fs::canonicalize(&self.path)),
                (Ok(a), Ok(b)) if a == b
            )
    }

    /// Creates the link (relative, as a2enconf does when the file is in the sibling
    /// `conf-available`); true when created.
    fn make_link(&self) -> Result<bool, Error> {
        let Some(link) = &self.link else {
            return Ok(false);
        };
        let target = relative_target(link, &self.path);
        std::os::unix::fs::symlink(&target, link).map_err(|source| Error::Io {
            name: self.name(),
            what: "cannot create the link",
            path: link.clone(),
            source,
        })?;
        Ok(true)
    }

    fn drop_link(&self) {
        if let Some(link) = &self.link {
            if let Err(e) = std::fs::remove_file(link) {
                tracing::warn!("{}: cannot remove {}: {e}", self.name(), link.display());
            }
        }
    }

    fn loaded(&self, ranges: &RangeSet) -> (Option<bool>, Option<String>) {
        let path = self.path.display().to_string();
        match self.kind {
            Kind::Nginx if self.test.iter().any(|a| a == "-t") => {
                let dump: Vec<String> = self
                    .test
                    .iter()
                    .map(|a| {
                        if a == "-t" {
                            "-T".to_string()
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                match run_stdout(&dump, self.timeout) {
                    Ok(text) => (
                        Some(text.contains(&format!("# configuration file {path}:"))),
                        None,
                    ),
                    Err(e) => (None, Some(e)),
                }
            }
            Kind::Apache if !self.test.is_empty() => {
                let mut dump = self.test.clone();
                dump.extend(["-D".to_string(), "DUMP_INCLUDES".to_string()]);
                let link = self.link.as_ref().map(|l| l.display().to_string());
                match run_stdout(&dump, self.timeout) {
                    Ok(text) => {
                        let included = text.lines().any(|l| {
                            let l = l.trim_end();
                            l.ends_with(&format!(" {path}"))
                                || link.as_ref().is_some_and(|k| l.ends_with(&format!(" {k}")))
                        });
                        (Some(included), None)
                    }
                    Err(e) => (None, Some(e)),
                }
            }
            Kind::Fail2ban => {
                let Some(client) = resolve("fail2ban-client") else {
                    return (None, Some("fail2ban-client is not installed".into()));
                };
                match fail2ban::probe(&client, self.timeout) {
                    Ok(None) => (None, Some("fail2ban is not running".into())),
                    Ok(Some(jails)) => {
                        let short: Vec<&str> = jails
                            .iter()
                            .filter(|j| {
                                !ranges
                                    .iter()
                                    .all(|r| j.ignoreip.iter().any(|e| e.contains(&r)))
                            })
                            .map(|j| j.name.as_str())
                            .collect();
                        if short.is_empty() {
                            (Some(true), None)
                        } else {
                            (
                                Some(false),
                                Some(format!(
                                    "jails not ignoring every range: {}",
                                    short.join(", ")
                                )),
                            )
                        }
                    }
                    Err(e) => (None, Some(e)),
                }
            }
            _ => (None, None),
        }
    }
}

/// The path of `program`: as given when it holds a `/`, else found on PATH or in sbin.
fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        cf_allow_exec::is_executable(&p).then_some(p)
    } else {
        cf_allow_exec::find_program(program)
    }
}

/// Runs `argv` (nothing when empty) within `limit`; `Err` is the program's message.
fn run(argv: &[String], limit: Duration) -> Result<(), String> {
    run_stdout(argv, limit).map(|_| ())
}

fn run_stdout(argv: &[String], limit: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(String::new());
    };
    let path = resolve(program).ok_or_else(|| format!("{program} is not installed"))?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cf_allow_exec::run_bounded(&path, &args, None, limit).map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = cf_allow_exec::stderr_lines(&stderr)
        .chain(cf_allow_exec::stderr_lines(&stdout))
        .take(4)
        .collect();
    Err(cf_allow_exec::summary(lines.into_iter(), out.status.code()))
}

/// `../conf-available/NAME` when `path` sits in a sibling directory of `link`, else `path`.
fn relative_target(link: &Path, path: &Path) -> PathBuf {
    match (
        link.parent().and_then(Path::parent),
        path.parent(),
        path.file_name(),
    ) {
        (Some(grand), Some(dir), Some(name)) if dir.parent() == Some(grand) => {
            match dir.file_name() {
                Some(d) => Path::new("..").join(d).join(name),
                None => path.to_path_buf(),
            }
        }
        _ => path.to_path_buf(),
    }
}
