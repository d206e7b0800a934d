//! Running shell scripts inside `../shared/ufw/ufw-sandbox --client` (the real ufw enabled
//! with its defaults in private namespaces, plus a `client` network namespace on a veth
//! pair) and reading back what they print.
//!
//! Like [`csf_sandbox`](crate::csf_sandbox), a script prints what it observes after
//! `@@@ name` marker lines (`section name`); [`run`] returns the text of each section as
//! [`Sections`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::csf_sandbox::{lines, Sections};
use crate::{require_path, require_root, shared_dir};

/// The sandbox program.
pub fn path() -> PathBuf {
    shared_dir().join("ufw/ufw-sandbox")
}

/// True when the sandbox can run (root, the sandbox present); skips like
/// [`require_root`](crate::require_root) otherwise.
pub fn ready(test: &str) -> bool {
    require_root(test) && require_path(test, &path())
}

/// The sandbox's client addresses: inside the test feed (`ALLOWED_*`) and outside it
/// (`BLOCKED_*`); the sandbox side has the same addresses ending in `.1` / `::1`.
pub const ALLOWED_V4: &str = "198.51.100.2";
/// See [`ALLOWED_V4`].
pub const BLOCKED_V4: &str = "203.0.113.2";
/// See [`ALLOWED_V4`].
pub const ALLOWED_V6: &str = "2001:db8:1::2";
/// See [`ALLOWED_V4`].
pub const BLOCKED_V6: &str = "2001:db8:2::2";

/// Shell functions every script gets: `$W` (the test's work dir, shared with the sandbox),
/// `section NAME`, `save` (both families' filter tables without comments and counters),
/// `stats` (inode, mtime and size of ufw's user rules files), `listen PORT…` (a TCP
/// listener on every address of the sandbox), `connect SRC DST PORT` (a real TCP connect
/// from the client namespace; prints `ok` or `fail`), `connects` (the four client addresses
/// to port 443: `v4-allowed ok` …; the listener runs in the background: `wait` only for
/// the jobs you name) and `probe SRC DST PORT N` (N connects, 20 per second,
/// each printed `ok` or `fail` in the order they were started; when its output goes to a
/// file F, it creates `F.started` as it starts the first connect).
pub const PRELUDE: &str = r#"
set -u
W="$WORK"
section() { echo "@@@ $1"; }
save() { (iptables-save -t filter; ip6tables-save -t filter) | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'; }
stats() { for f in /etc/ufw/user.rules /etc/ufw/user6.rules; do stat -c '%n %i %Y %s' "$f"; done; }
listen() {
    python3 - "$@" >/dev/null 2>&1 <<'PY' &
import socket, sys, threading
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(port))); s.listen(128)
    while True:
        c, _ = s.accept(); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()
PY
    sleep 0.3
}
connect() {
    ip netns exec client python3 - "$@" <<'PY'
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.0); s.bind((src, 0))
try:
    s.connect((dst, port)); print("ok")
except OSError:
    print("fail")
PY
}
connects() {
    echo "v4-allowed $(connect 198.51.100.2 198.51.100.1 443)"
    echo "v4-blocked $(connect 203.0.113.2 203.0.113.1 443)"
    echo "v6-allowed $(connect 2001:db8:1::2 2001:db8:1::1 443)"
    echo "v6-blocked $(connect 2001:db8:2::2 2001:db8:2::1 443)"
}
probe() {
    ip netns exec client python3 - "$@" <<'PY'
import os, socket, sys, threading, time
src, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
out = [None] * n
def one(i):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(0.8); s.bind((src, 0))
    try:
        s.connect((dst, port)); out[i] = "ok"
    except OSError:
        out[i] = "fail"
    s.close()
threads = []
try:
    out_path = os.readlink("/proc/self/fd/1")
    if out_path.startswith("/"):
        open(out_path + ".started", "w").close()
except OSError:
    pass
for i in range(n):
    t = threading.Thread(target=one, args=(i,)); t.start(); threads.append(t); time.sleep(0.05)
for t in threads: t.join()
print("\n".join(out))
PY
}
"#;

/// Runs `script` after [`PRELUDE`] in a fresh `ufw-sandbox --client`, with `WORK=work` and
/// `env` set. Panics with the sandbox's output (and `failure_context()`) when it fails.
pub fn run(
    work: &Path,
    env: &[(&str, &OsStr)],
    script: &str,
    failure_context: impl FnOnce() -> String,
) -> Sections {
    let mut sandbox = Command::new(path());
    sandbox.arg("--client").env("FWSB_QUIET", "1");
    crate::csf_sandbox::script_in(
        sandbox,
        "ufw-sandbox",
        work,
        env,
        &format!("{PRELUDE}\n{script}"),
        failure_context,
    )
}
