//! Running the real `cf-allow` binary inside `../shared/firewalld/firewalld-sandbox` and
//! `../shared/ufw/ufw-sandbox` (`--client`: a client namespace on a veth pair, documentation
//! addresses only), and real TCP connects from the client. One sandbox run per test: the
//! script prints what it observes after `@@@ name` markers ([`Sections`]).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use cf_allow_testkit::csf_sandbox::Sections;
use cf_allow_testkit::{require_path, require_root, shared_dir};

/// The sandbox side's IPv4 address (`fwsb0`).
pub const SERVER_V4: &str = "198.51.100.1";
/// The client's IPv4 address (`fwsb1`).
pub const CLIENT_V4: &str = "198.51.100.2";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "2001:db8:1::2";
/// The sandbox side's IPv6 address.
pub const SERVER_V6: &str = "2001:db8:1::1";

/// Shell functions every script gets: `$W` (the test's work dir, shared with the sandbox),
/// `section NAME`, `cfa ARGS…` (cf-allow with `$W/config.yaml`; stderr appended to
/// `$W/stderr` and, per call, to the section as `stderr: …` lines; then `exit=CODE`),
/// `listen PORT…` (a TCP listener on every address that answers one byte) and
/// `connect SRC DST PORT` (from the client namespace: prints `connected` or `blocked …`).
pub const PRELUDE: &str = r#"
set -u
W="$WORK"
section() { echo "@@@ $1"; }
cfa() {
    "$BIN" --config "$W/config.yaml" "$@" 2>"$W/last-stderr"; local rc=$?
    cat "$W/last-stderr" >>"$W/stderr"; sed 's/^/stderr: /' "$W/last-stderr"; echo "exit=$rc"
}
listen() {
    for port in "$@"; do
        rm -f "$W/listening-$port"
        /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
open(sys.argv[2], "w").close()
while True:
    c, _ = s.accept()
    c.sendall(b"+")
    c.close()
' "$port" "$W/listening-$port" </dev/null >/dev/null 2>&1 &
        for _ in $(seq 200); do [ -e "$W/listening-$port" ] && break; sleep 0.02; done
    done
}
connect() {
    ip netns exec client /usr/bin/python3 -c '
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
s.bind((src, 0))
try:
    s.connect((dst, port))
    print("connected" if s.recv(1) == b"+" else "blocked: no byte")
except OSError as e:
    print("blocked:", type(e).__name__, e)
' "$1" "$2" "$3"
}
"#;

/// The config text for `yaml` with `sources:` = a feed of Cloudflare's ranges plus the
/// client's documentation ranges (written into `env`), `guard.allow_reserved` on.
pub fn client_config(env: &crate::common::Env, yaml: &str) -> String {
    let mut ranges = cf_allow_testkit::cloudflare_ranges();
    ranges.extend(["198.51.100.0/24", "2001:db8:1::/64"]);
    let feed = env.feed("feed.txt", &ranges);
    format!("{yaml}sources: [{feed}]\nguard: {{allow_reserved: true, max_shrink_percent: 100}}\n")
}

/// A test env whose config is [`client_config`] of `yaml`.
pub fn client_env(yaml: &str) -> crate::common::Env {
    let env = crate::common::Env::new("");
    env.write_config(&client_config(&env, yaml));
    env
}

/// A firewall-manager sandbox of `../shared`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `firewalld/firewalld-sandbox`.
    Firewalld,
    /// `ufw/ufw-sandbox`.
    Ufw,
}

impl Kind {
    /// The sandbox program.
    pub fn path(self) -> PathBuf {
        match self {
            Kind::Firewalld => shared_dir().join("firewalld/firewalld-sandbox"),
            Kind::Ufw => shared_dir().join("ufw/ufw-sandbox"),
        }
    }

    /// True when the sandbox can run (root, the sandbox present, python3 for the listener);
    /// skips like `require_root` otherwise.
    pub fn ready(self, test: &str) -> bool {
        require_root(test)
            && require_path(test, &self.path())
            && require_path(test, Path::new("/usr/bin/python3"))
    }
}

/// Runs `script` after [`PRELUDE`] in a fresh `kind` sandbox with `--client`, with `WORK=work`,
/// `BIN` = the cf-allow binary and `env`. Panics with the output when the sandbox fails.
pub fn run(kind: Kind, work: &Path, env: &[(&str, &OsStr)], script: &str) -> Sections {
    let output = Command::new(kind.path())
        .arg("--client")
        .arg("bash")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .envs(env.iter().copied())
        .env("WORK", work)
        .env("BIN", crate::common::BIN)
        .env("FWSB_QUIET", "1")
        .output()
        .expect("run the sandbox");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{kind:?} sandbox failed: {}\nstdout:\n{stdout}\nstderr:\n{}\ncf-allow stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(work.join("stderr")).unwrap_or_default()
    );
    Sections::parse(&stdout)
}

/// A `cfa` section: its stdout (JSON when asked for), the `stderr: ` lines, the exit code.
#[derive(Debug)]
pub struct Cfa {
    /// What cf-allow printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// Its exit code.
    pub code: i32,
}

impl Cfa {
    /// Splits the section `name` of `s`.
    pub fn of(s: &Sections, name: &str) -> Cfa {
        let text = s.section(name);
        let (body, exit) = text
            .rsplit_once("exit=")
            .unwrap_or_else(|| panic!("no exit code in {name}: {text}\n{s:#?}"));
        let code = exit.trim().parse().expect("exit code");
        let mut stdout = String::new();
        let mut stderr = String::new();
        for line in body.lines() {
            match line.strip_prefix("stderr: ") {
                Some(err) => {
                    stderr.push_str(err);
                    stderr.push('\n');
                }
                None => {
                    stdout.push_str(line);
                    stdout.push('\n');
                }
            }
        }
        Cfa {
            stdout,
            stderr,
            code,
        }
    }

    /// Stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}
