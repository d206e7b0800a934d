//! Test helpers shared by cf-allow's crates: deciding whether privileged tests may run,
//! private network namespaces, and a loopback HTTP server that serves canned responses;
//! also a veth [`lab`], a Docker-shaped host ([`docker_host`]), the [`csf_sandbox`], [`firewalld_sandbox`], [`server_sandbox`] and
//! [`ufw_sandbox`] runners, [`nft`] / [`iptables`] read-back helpers and [`spawns`] (which
//! programs a run spawns).
//!
//! Tests that need root (or `../shared`) call [`require_root`] / [`require_path`] first: they
//! skip with a printed notice when it is missing, and fail instead when `CI=true`.

#![forbid(unsafe_code)]

pub mod csf_sandbox;
pub mod docker_host;
pub mod firewalld_sandbox;
pub mod fuzz;
mod http;
pub mod iptables;
pub mod lab;
mod netns;
pub mod nft;
pub mod server_sandbox;
pub mod spawns;
pub mod ufw_sandbox;

pub use http::{Reply, Request, Server};
pub use netns::{veth_pair, Netns};

use std::path::{Path, PathBuf};

/// Cloudflare's published ranges as of this writing: 15 IPv4 and 7 IPv6.
pub const CLOUDFLARE_V4: [&str; 15] = [
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
];

/// Cloudflare's published IPv6 ranges.
pub const CLOUDFLARE_V6: [&str; 7] = [
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

/// Both of Cloudflare's lists, IPv4 first.
pub fn cloudflare_ranges() -> Vec<&'static str> {
    CLOUDFLARE_V4
        .iter()
        .chain(CLOUDFLARE_V6.iter())
        .copied()
        .collect()
}

/// Cloudflare's API JSON for the given ranges.
pub fn api_json(v4: &[&str], v6: &[&str], etag: &str) -> String {
    let quote = |l: &[&str]| {
        l.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"result":{{"ipv4_cidrs":[{}],"ipv6_cidrs":[{}],"etag":"{etag}"}},"success":true,"errors":[],"messages":[]}}"#,
        quote(v4),
        quote(v6)
    )
}

/// True when running as root. Otherwise prints a skip notice naming `test` and returns
/// false, or panics when `CI=true` (CI must run every test).
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    skip(test, "it needs root (network namespaces, netfilter)")
}

/// True when `path` exists. Otherwise skips (or fails under `CI=true`) like [`require_root`].
pub fn require_path(test: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    skip(test, &format!("{} is missing", path.display()))
}

/// True when every program is on PATH; otherwise skips like [`require_root`].
pub fn require_programs(test: &str, programs: &[&str]) -> bool {
    for program in programs {
        if which(program).is_none() {
            return skip(test, &format!("the program {program} is not installed"));
        }
    }
    true
}

/// The full path of `program` on PATH (and in the sbin directories, which root has).
pub fn which(program: &str) -> Option<PathBuf> {
    cf_allow_exec::find_program(program)
}

/// The `shared/` folder next to the repository (`../shared` from the workspace root).
pub fn shared_dir() -> PathBuf {
    workspace_root().join("../shared")
}

/// The workspace root (where the top-level Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

fn skip(test: &str, why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run because {why}, and CI=true requires every test to run");
    }
    // Written to the real stderr, not through `eprintln!`, which the test harness captures:
    // a skip must be visible in the test run's output.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    false
}

/// Takes an exclusive `flock` on `file` (held until it is closed), as another program holding
/// a lock file would.
pub fn flock_exclusive(file: &std::fs::File) {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).expect("flock LOCK_EX");
}

/// Sends SIGKILL to the process group `pgid` (a child started in a group of its own).
pub fn kill_process_group(pgid: u32) {
    let pid = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a process group id");
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Clears CAP_NET_ADMIN from the calling thread's effective set (capabilities are per thread
/// in Linux), so that netlink requests from this thread are refused by the kernel.
pub fn drop_net_admin_on_this_thread() {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    let mut sets = capabilities(None).expect("capget");
    sets.effective.remove(CapabilitySet::NET_ADMIN);
    set_capabilities(None, sets).expect("capset");
}
