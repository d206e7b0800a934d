//! The reader and evaluator against real firewall managers (`../shared` sandboxes): the
//! verdict for the client's address equals a real TCP connect from the client namespace.

mod common;

use std::process::Command;

use cf_allow_testkit::{require_path, require_root, shared_dir};

/// Runs, inside `sandbox --client`, a server listening on 22 and 443, the verdict for the
/// client's addresses, and real connects from the client; asserts that the verdict blocks
/// exactly what fails for real, and returns the verdict JSON.
fn run(test: &str, sandbox: &str) -> Option<serde_json::Value> {
    if !require_root(test) {
        return None;
    }
    let path = shared_dir().join(sandbox);
    let bin = common::verdict_bin();
    if !require_path(test, &path) || !require_path(test, &bin) {
        return None;
    }
    let script = format!(
        r#"python3 -c '
import socket, threading
def serve(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(16)
    while True: s.accept()[0].close()
for p in (22, 443):
    threading.Thread(target=serve, args=(socket.AF_INET, "0.0.0.0", p), daemon=True).start()
    threading.Thread(target=serve, args=(socket.AF_INET6, "::", p), daemon=True).start()
threading.Event().wait()' &
for i in $(seq 150); do [ "$(ss -Hltn | grep -cE ':(22|443) ')" -ge 4 ] && break; sleep 0.1; done
{bin} --ports 22,443 198.51.100.2/32 2001:db8:1::2/128
for dst in 198.51.100.1 2001:db8:1::1; do for p in 22 443; do
  if ip netns exec client timeout 3 bash -c "exec 3<>/dev/tcp/$dst/$p" 2>/dev/null; then echo "CONNECT $dst $p ok"; else echo "CONNECT $dst $p fail"; fi
done; done
kill %1"#,
        bin = bin.display()
    );
    let out = Command::new(&path)
        .args(["--client", "--", "bash", "-c", &script])
        .env("FWSB_QUIET", "1")
        .output()
        .expect("run the sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{sandbox} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let connects = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CONNECT "))
        .collect::<Vec<_>>()
        .join("; ");
    let v = common::verdict_json(&stdout);
    // Every probe is decided, and exactly the blocked ones fail for real.
    assert!(v["unknown"].as_array().is_some_and(|u| u.is_empty()), "{v}");
    assert_eq!(
        blocked_pairs(&v),
        failed_pairs(&connects),
        "verdict {v}\nconnects {connects}"
    );
    Some(v)
}

/// The (family, port) pairs the verdict blocks.
fn blocked_pairs(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in v["blocked"].as_array().into_iter().flatten() {
        for p in f["ports"].as_array().into_iter().flatten() {
            out.push(format!("{} {p}", f["family"].as_str().unwrap_or("")));
        }
    }
    out.sort();
    out
}

/// The (family, port) pairs whose real connect failed.
fn failed_pairs(connects: &str) -> Vec<String> {
    let mut out: Vec<String> = connects
        .split("; ")
        .filter(|c| c.ends_with(" fail"))
        .map(|c| {
            let w: Vec<&str> = c.split(' ').collect();
            let fam = if w[0].contains(':') { "ipv6" } else { "ipv4" };
            format!("{fam} {}", w[1])
        })
        .collect();
    out.sort();
    out
}

#[test]
fn firewalld_verdict_equals_real_connects() {
    let Some(v) = run(
        "firewalld_verdict_equals_real_connects",
        "firewalld/firewalld-sandbox",
    ) else {
        return;
    };
    // ssh is open in the public zone; 443 meets firewalld's final reject.
    assert_eq!(blocked_pairs(&v), ["ipv4 443", "ipv6 443"], "{v}");
    assert_eq!(v["blocked"][0]["by"]["table"], "inet firewalld");
    assert_eq!(
        v["blocked"][0]["by"]["rule"],
        "reject with icmpx admin-prohibited"
    );
}

#[test]
fn ufw_verdict_equals_real_connects() {
    let Some(v) = run("ufw_verdict_equals_real_connects", "ufw/ufw-sandbox") else {
        return;
    };
    assert_eq!(blocked_pairs(&v), ["ipv4 443", "ipv6 443"], "{v}");
}
