//! Running shell scripts inside `../shared/firewalld/firewalld-sandbox --client` (the real
//! firewalld on a private D-Bus, in private network + mount + PID namespaces, with a client
//! network namespace on a veth pair) and reading back what they print.
//!
//! Scripts print what they observe after `@@@ name` marker lines (the [`PRELUDE`]'s
//! `section name`); [`run`] returns the text of each section as [`Sections`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::csf_sandbox::Sections;
use crate::{require_path, require_root, shared_dir};

/// The sandbox program.
pub fn path() -> PathBuf {
    shared_dir().join("firewalld/firewalld-sandbox")
}

/// True when the sandbox can run (root, the sandbox present); skips like
/// [`require_root`](crate::require_root) otherwise.
pub fn ready(test: &str) -> bool {
    require_root(test) && require_path(test, &path())
}

/// Shell functions every script gets:
/// - `$W`: the test's work dir (shared with the sandbox through /tmp);
/// - `section NAME`: starts a section;
/// - `listen PORT…`: a TCP listener on `::` (both families) for each port in the sandbox;
/// - `connect SRC DST PORT`: a TCP connect from the client namespace, bound to SRC; prints
///   `SRC->DST:PORT ok` or `SRC->DST:PORT refused|unreachable|timeout`;
/// - `monitor_start` / `monitor_stop`: record the method calls sent to firewalld on the
///   private bus with `dbus-monitor`; `monitor_stop` prints the members that change
///   something (everything but get*/query*/list*/Get/GetAll/Introspect), one per line;
/// - `fw_state [FILTER]`: firewalld's runtime and permanent state (every zone, policy and
///   ipset with its entries; blank lines left out) with lines and ipsets matching the
///   extended regex FILTER left out;
/// - `etc_hashes [FILTER]`: sha256 of every file under /etc/firewalld, paths matching FILTER
///   left out.
pub const PRELUDE: &str = r#"
set -u
W="$WORK"
section() { echo "@@@ $1"; }
listen() {
    for p in "$@"; do
        python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); c.close()' "$p" >/dev/null 2>&1 &
    done
    sleep 0.3
}
connect() {
    ip netns exec client python3 -c '
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET); s.settimeout(2); s.bind((src, 0))
try:
    s.connect((dst, port)); r = "ok"
except ConnectionRefusedError: r = "refused"
except socket.timeout: r = "timeout"
except OSError as e: r = "unreachable"
print(f"{src}->{dst}:{port} {r}")' "$1" "$2" "$3"
}
monitor_start() {
    dbus-monitor --address "$DBUS_SYSTEM_BUS_ADDRESS" "type='method_call',destination='org.fedoraproject.FirewallD1'" >"$W/monitor.out" 2>&1 &
    MONITOR_PID=$!
    sleep 0.3
}
monitor_stop() {
    sleep 0.2; kill "$MONITOR_PID"; wait "$MONITOR_PID" 2>/dev/null
    sed -n 's/^method call .* member=\([A-Za-z0-9]*\).*/\1/p' "$W/monitor.out" \
        | grep -Ev '^(get|query|list|Get$|GetAll$|Introspect$)' || true
}
fw_state() {
    local filter=${1:-'^$'}
    {
        firewall-cmd --get-default-zone
        firewall-cmd --list-all-zones
        firewall-cmd --list-all-policies
        for s in $(firewall-cmd --get-ipsets | tr ' ' '\n' | grep -Ev "$filter"); do firewall-cmd --info-ipset="$s"; done
        echo "== permanent"
        firewall-cmd --permanent --list-all-zones
        firewall-cmd --permanent --list-all-policies
        for s in $(firewall-cmd --permanent --get-ipsets | tr ' ' '\n' | grep -Ev "$filter"); do firewall-cmd --permanent --info-ipset="$s"; done
    } 2>&1 | grep -Ev "$filter" | grep -v '^[[:space:]]*$'
}
etc_hashes() {
    local filter=${1:-'^$'}
    find /etc/firewalld -type f | sort | grep -Ev "$filter" | xargs -r sha256sum
}
"#;

/// Runs `script` after [`PRELUDE`] in a fresh sandbox with a client namespace, with
/// `WORK=work` and `env` set. Panics with the sandbox's output (and `failure_context()`)
/// when the sandbox fails.
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
        "firewalld-sandbox",
        work,
        env,
        &format!("{PRELUDE}\n{script}"),
        failure_context,
    )
}
