//! Helpers for the end-to-end tests: a temp dir with a config and feeds, and a way to run the
//! real `cf-allow` binary (optionally inside a network namespace).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cf_allow_testkit::Netns;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cf-allow");

/// A temp dir holding `config.yaml` (with `state_dir` inside it) and feed files.
pub struct Env {
    /// The temp dir (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A config with `state_dir` in the temp dir, followed by `yaml`.
    pub fn new(yaml: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = Env { dir };
        env.write_config(yaml);
        env
    }

    /// Rewrites the config: `state_dir` in the temp dir, then `yaml`.
    pub fn write_config(&self, yaml: &str) {
        let text = format!("state_dir: {}\n{yaml}", self.state_dir().display());
        std::fs::write(self.config(), text).expect("write config");
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// The state dir named in the config.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a plain-text feed (one CIDR per line) and returns its `file://` URL.
    pub fn feed(&self, name: &str, ranges: &[&str]) -> String {
        let path = self.path(name);
        std::fs::write(&path, ranges.join("\n") + "\n").expect("write feed");
        file_url(&path)
    }

    /// Cloudflare's 15 + 7 ranges as a feed.
    pub fn cloudflare_feed(&self) -> String {
        self.feed("cloudflare.txt", &cf_allow_testkit::cloudflare_ranges())
    }

    /// `cf-allow --config CONFIG ARGS…`, inside `ns` when given.
    pub fn cmd(&self, ns: Option<&Netns>, args: &[&str]) -> Command {
        let mut cmd = match ns {
            Some(ns) => ns.command(BIN),
            None => Command::new(BIN),
        };
        cmd.arg("--config").arg(self.config()).args(args);
        cmd.env_remove("CF_ALLOW_CONFIG");
        cmd
    }

    /// Runs `cf-allow` with `args` and returns what it did.
    pub fn run(&self, ns: Option<&Netns>, args: &[&str]) -> Run {
        Run::of(self.cmd(ns, args).output().expect("run cf-allow"))
    }
}

/// `file://` URL of a path.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Converts a process output.
    pub fn of(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The one `cf-allow: error: …` line on stderr.
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("cf-allow: error: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line:\n{}", self.stderr);
        lines[0].to_string()
    }
}

/// The JSON document a sandbox script printed in section `name` (`cfa … --json`, followed by
/// its `exit=CODE` line), and that exit code.
pub fn section_json(
    s: &cf_allow_testkit::csf_sandbox::Sections,
    name: &str,
) -> (serde_json::Value, i32) {
    let text = s.section(name);
    let (doc, exit) = text
        .rsplit_once("exit=")
        .unwrap_or_else(|| panic!("no exit code in {name}: {text}\n{s:#?}"));
    let exit: i32 = exit.trim().parse().expect("exit code");
    let value = serde_json::from_str(doc.trim())
        .unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}\n{s:#?}"));
    (value, exit)
}
