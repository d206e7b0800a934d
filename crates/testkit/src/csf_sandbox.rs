//! Running shell scripts inside `../shared/csf/csf-sandbox` (a private network + mount
//! namespace with the real CSF installed over overlays) and reading back what they print.
//!
//! A script prints what it observes after `@@@ name` marker lines (the [`PRELUDE`]'s
//! `section name`); [`run`] returns the text of each section as [`Sections`].

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{require_path, require_root, shared_dir};

/// The sandbox program.
pub fn path() -> PathBuf {
    shared_dir().join("csf/csf-sandbox")
}

/// True when the sandbox can run (root, the sandbox present); skips like
/// [`require_root`](crate::require_root) otherwise.
pub fn ready(test: &str) -> bool {
    require_root(test) && require_path(test, &path())
}

/// Shell functions every script gets: `$W` (the test's work dir, shared with the sandbox),
/// `section NAME` (starts a section), `save` (both families' filter tables without comments
/// and counters), `allow_rules` (CSF's sorted `ALLOW*` rules) and `stats` (inode, mtime and
/// size of CSF's allow/ignore files and cf-allow's managed files), `ipv6_on` (sets
/// `IPV6 = "1"` in csf.conf).
pub const PRELUDE: &str = r#"
set -u
W="$WORK"
section() { echo "@@@ $1"; }
save() { (iptables-save -t filter; ip6tables-save -t filter) | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'; }
allow_rules() { save | grep '^-A ALLOW' | sort; }
stats() { for f in /etc/csf/csf.allow /etc/csf/csf.ignore /etc/csf/cf-allow.allow /etc/csf/cf-allow.ignore; do stat -c '%n %i %Y %s' "$f" 2>/dev/null || echo "$f absent"; done; }
ipv6_on() { sed -i 's/^IPV6 = "0"/IPV6 = "1"/' /etc/csf/csf.conf; }
"#;

/// Runs `script` after [`PRELUDE`] in a fresh sandbox, with `WORK=work` and `env` set.
/// Panics with the sandbox's output (and `failure_context()`) when the sandbox fails.
pub fn run(
    work: &Path,
    env: &[(&str, &OsStr)],
    script: &str,
    failure_context: impl FnOnce() -> String,
) -> Sections {
    script_in(
        Command::new(path()),
        "csf-sandbox",
        work,
        env,
        &format!("{PRELUDE}\n{script}"),
        failure_context,
    )
}

/// Runs `bash -c script` through `sandbox` (a sandbox program with its options, named `what`)
/// with `WORK=work` and `env` set, and splits its stdout into [`Sections`] ([`sections_of`]).
pub(crate) fn script_in(
    mut sandbox: Command,
    what: &str,
    work: &Path,
    env: &[(&str, &OsStr)],
    script: &str,
    failure_context: impl FnOnce() -> String,
) -> Sections {
    sandbox
        .arg("bash")
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .env("WORK", work);
    sections_of(sandbox, what, failure_context)
}

/// Runs `cmd` (a sandbox named `what`) and splits its stdout into [`Sections`]; panics with
/// its output (and `failure_context()`) when it fails.
pub(crate) fn sections_of(
    mut cmd: Command,
    what: &str,
    failure_context: impl FnOnce() -> String,
) -> Sections {
    let output = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        failure_context()
    );
    Sections::parse(&stdout)
}

/// The text printed after each `@@@ name` marker (text before the first one is `(start)`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sections(BTreeMap<String, String>);

impl Sections {
    /// Splits `stdout` at its `@@@ name` lines.
    pub fn parse(stdout: &str) -> Sections {
        let mut sections = BTreeMap::new();
        let mut name = String::from("(start)");
        for line in stdout.lines() {
            if let Some(next) = line.strip_prefix("@@@ ") {
                name = next.to_string();
                sections.insert(name.clone(), String::new());
            } else {
                let text: &mut String = sections.entry(name.clone()).or_default();
                text.push_str(line);
                text.push('\n');
            }
        }
        Sections(sections)
    }

    /// The text of section `name`; panics listing every section when there is none.
    pub fn section(&self, name: &str) -> &str {
        self.0
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no section {name} in {self:#?}"))
    }

    /// Adds (or replaces) a section.
    pub fn insert(&mut self, name: &str, text: String) {
        self.0.insert(name.to_string(), text);
    }
}

impl fmt::Debug for Sections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `orig.<kind>` in `work` (`kind`: `allow` or `ignore`) as a sync should leave CSF's
/// `csf.<kind>`: byte-identical but for one `Include /etc/csf/cf-allow.<kind>` line after the
/// last complete line (so before an unterminated last line).
pub fn with_include(work: &Path, kind: &str) -> Vec<u8> {
    let orig = std::fs::read(work.join(format!("orig.{kind}"))).expect("original file copy");
    let cut = orig
        .iter()
        .rposition(|b| *b == b'\n')
        .expect("a complete line")
        + 1;
    let mut want = orig[..cut].to_vec();
    want.extend_from_slice(format!("Include /etc/csf/cf-allow.{kind}\n").as_bytes());
    want.extend_from_slice(&orig[cut..]);
    want
}

/// Asserts that `remove` restored what the admin had: section `after_remove_rules` says
/// `equal` (the allow rules match those saved before cf-allow ran), `after_remove_files`
/// says `2` (both managed files are gone), and `removed.allow` / `removed.ignore` in `work`
/// are byte-identical to `orig.allow` / `orig.ignore`.
pub fn assert_removed_cleanly(s: &Sections, work: &Path) {
    assert_eq!(
        s.section("after_remove_rules").trim(),
        "equal",
        "{}",
        s.section("after_remove_rules")
    );
    assert_eq!(s.section("after_remove_files").trim(), "2");
    for (removed, orig) in [
        ("removed.allow", "orig.allow"),
        ("removed.ignore", "orig.ignore"),
    ] {
        assert_eq!(
            std::fs::read(work.join(removed)).expect("removed file copy"),
            std::fs::read(work.join(orig)).expect("original file copy"),
            "{removed} differs from {orig}"
        );
    }
}

/// The non-empty lines of `text`.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_at_markers() {
        let s = Sections::parse("before\n@@@ a\none\ntwo\n@@@ b\n@@@ c\nthree\n");
        assert_eq!(s.section("(start)"), "before\n");
        assert_eq!(s.section("a"), "one\ntwo\n");
        assert_eq!(s.section("b"), "");
        assert_eq!(s.section("c"), "three\n");
        assert_eq!(lines("x\n\ny\n"), vec!["x", "y"]);
    }
}
