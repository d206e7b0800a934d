//! A generic sandbox for real servers (nginx, Apache, fail2ban…) from the host's Debian
//! packages: private network + mount + PID namespaces in which /etc and /var are overlays
//! on a tmpfs and /run is a fresh tmpfs, so a server can be configured, started, reloaded
//! and killed without touching the host. When the script ends, the PID namespace's init
//! exits and the kernel kills everything left in it; the overlays vanish.
//!
//! Inside, the network namespace `client` is joined to the sandbox by a veth pair
//! (documentation addresses only):
//! sandbox `sbx0`: 198.51.100.1/24 203.0.113.1/24 2001:db8:1::1/64;
//! client `sbx1`: 198.51.100.2/24 203.0.113.2/24 2001:db8:1::2/64.
//!
//! Scripts print what they observe after `@@@ name` lines (`section name`), read back as
//! [`Sections`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::csf_sandbox::sections_of;
pub use crate::csf_sandbox::Sections;
use crate::{require_programs, require_root};

/// True when the sandbox can run (root, `unshare` and `ip`); skips like
/// [`require_root`](crate::require_root) otherwise.
pub fn ready(test: &str, servers: &[&str]) -> bool {
    let mut programs = vec!["unshare", "ip"];
    programs.extend_from_slice(servers);
    require_root(test) && require_programs(test, &programs)
}

/// Set-up run as the sandbox's PID 1; then `$1` (the test's script) runs under bash.
const SETUP: &str = r#"
set -euo pipefail
die() { echo "server-sandbox: $*" >&2; exit 1; }
# Safety: a network and a mount namespace of our own, else nothing is touched.
[[ $(readlink /proc/self/ns/net) != "$SBX_HOST_NET" ]] || die "ABORT: not in a private network namespace"
[[ $(readlink /proc/self/ns/mnt) != "$SBX_HOST_MNT" ]] || die "ABORT: not in a private mount namespace"
mount --make-rprivate /
S=$(mktemp -d /tmp/server-sandbox.XXXXXX)
mount -t tmpfs -o mode=0700,size=512m sbx-scratch "$S"
for d in etc var; do
    mkdir -p "$S/$d.up" "$S/$d.work"
    mount -t overlay "sbx-$d" -o "lowerdir=/$d,upperdir=$S/$d.up,workdir=$S/$d.work" "/$d"
done
mount -t tmpfs -o mode=0755,nosuid,nodev sbx-run /run
mkdir -p /run/lock /run/netns && chmod 1777 /run/lock
mount -t proc -o nosuid,nodev,noexec proc /proc
for d in /usr /boot /opt; do
    [[ -d $d ]] && mount --bind "$d" "$d" && mount -o remount,bind,ro "$d"
done
export PYTHONDONTWRITEBYTECODE=1
[[ $(readlink /proc/self/ns/net) != "$SBX_HOST_NET" ]] || die "ABORT: network namespace changed"
ip link set lo up
ip netns add client
ip link add sbx0 type veth peer name sbx1
ip link set sbx1 netns client
for a in 198.51.100.1/24 203.0.113.1/24; do ip addr add $a dev sbx0; done
ip -6 addr add 2001:db8:1::1/64 dev sbx0 nodad
ip link set sbx0 up
ip netns exec client sh -ec '
    ip link set lo up
    for a in 198.51.100.2/24 203.0.113.2/24; do ip addr add $a dev sbx1; done
    ip -6 addr add 2001:db8:1::2/64 dev sbx1 nodad
    ip link set sbx1 up'
set +e
bash -c "$1"
rc=$?
umount -l "$S" 2>/dev/null
rmdir "$S" 2>/dev/null
exit $rc
"#;

/// Shell functions every script gets: `$W` (the test's work dir, shared with the
/// sandbox), `section NAME`, `client CMD…` (runs CMD in the client namespace) and
/// `wait_for CMD…` (retries CMD, output discarded, for up to 10 s until it succeeds).
pub const PRELUDE: &str = r#"
set -u
W="$WORK"
section() { echo "@@@ $1"; }
client() { ip netns exec client "$@"; }
wait_for() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; "$@"; }
"#;

/// Runs `script` after [`PRELUDE`] in a fresh sandbox, with `WORK=work` and `env` set.
/// Panics with the sandbox's output (and `failure_context()`) when the script fails.
pub fn run(
    work: &Path,
    env: &[(&str, &OsStr)],
    script: &str,
    failure_context: impl FnOnce() -> String,
) -> Sections {
    let link = |ns: &str| {
        std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|l| l.display().to_string())
            .unwrap_or_else(|e| panic!("read /proc/self/ns/{ns}: {e}"))
    };
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--net",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "--",
        "bash",
        "-c",
        SETUP,
        "server-sandbox",
    ])
    .arg(format!("{PRELUDE}\n{script}"))
    .envs(env.iter().copied())
    .env("WORK", work)
    .env("SBX_HOST_NET", link("net"))
    .env("SBX_HOST_MNT", link("mnt"));
    sections_of(cmd, "server sandbox", failure_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_has_its_own_etc_run_and_network() {
        if !ready("the_sandbox_has_its_own_etc_run_and_network", &[]) {
            return;
        }
        let work = tempfile_dir();
        let s = run(
            &work,
            &[],
            r#"
            echo sandbox > /etc/cf-allow-sandbox-probe
            touch /run/cf-allow-sandbox-probe
            section etc; cat /etc/cf-allow-sandbox-probe
            (cd /etc && exec python3 -m http.server --bind 198.51.100.1 8000 >/dev/null 2>&1) &
            wait_for client curl -sf http://198.51.100.1:8000/
            section http; client curl -sf http://198.51.100.1:8000/cf-allow-sandbox-probe
            section pid; echo $$
            "#,
            String::new,
        );
        assert_eq!(s.section("etc"), "sandbox\n");
        assert_eq!(
            s.section("http"),
            "sandbox\n",
            "the client reaches a server over the veth"
        );
        assert!(!Path::new("/etc/cf-allow-sandbox-probe").exists());
        assert!(!Path::new("/run/cf-allow-sandbox-probe").exists());
        let _ = std::fs::remove_dir(&work);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cf-allow-sbx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("work dir");
        dir
    }
}
