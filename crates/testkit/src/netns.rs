//! Private network namespaces made with `ip netns`, deleted on drop.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace (`ip netns add`) with loopback up; deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace whose name starts with `label`.
    pub fn new(label: &str) -> Netns {
        let name = format!(
            "cfa-{}-{}-{}",
            label.chars().take(12).collect::<String>(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run_ok(
            Command::new("ip").args(["netns", "add", &name]),
            "ip netns add",
        );
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs a shell snippet inside the namespace and returns its output, whatever its status.
    pub fn sh_output(&self, script: &str) -> Output {
        self.command("bash")
            .args(["-c", script])
            .output()
            .expect("run bash in the namespace")
    }

    /// Runs a shell snippet inside the namespace; panics with its stderr when it fails.
    /// Returns its stdout.
    pub fn sh(&self, script: &str) -> String {
        self.stdout_of(script, self.sh_output(script))
    }

    /// `script`'s stdout; panics with its stderr when it failed.
    fn stdout_of(&self, script: &str, out: Output) -> String {
        assert!(
            out.status.success(),
            "in netns {}: `{script}` failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Connects two namespaces with a veth pair and assigns the given addresses (with prefix
/// length, e.g. `192.0.2.1/24` or `2001:db8::1/64`) to each end.
pub fn veth_pair(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let (ea, eb) = (
        format!("cfa{}a{n}", std::process::id() % 10000),
        format!("cfa{}b{n}", std::process::id() % 10000),
    );
    a.sh(&format!(
        "ip link add {ea} type veth peer name {eb} && ip link set {eb} netns {}",
        b.name()
    ));
    for (ns, dev, addrs) in [(a, &ea, a_addrs), (b, &eb, b_addrs)] {
        for addr in addrs {
            let flags = if addr.contains(':') { " nodad" } else { "" };
            ns.sh(&format!("ip addr add {addr} dev {dev}{flags}"));
        }
        ns.sh(&format!("ip link set {dev} up"));
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name);
            f()
        })
        .join()
        .expect("thread inside the namespace panicked")
    }

    /// Accepts TCP connections on `addr` (e.g. `0.0.0.0:443` or `[::]:443`) inside this
    /// namespace for the rest of the process, answering each with one byte and closing.
    pub fn tcp_listen(&self, addr: &str) {
        let name = self.name.clone();
        let addr: std::net::SocketAddr = addr.parse().expect("listen address");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            enter(&name);
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )
            .expect("socket");
            if addr.is_ipv6() {
                let _ = socket.set_only_v6(true);
            }
            socket.set_reuse_address(true).expect("SO_REUSEADDR");
            socket.bind(&addr.into()).expect("bind listener");
            socket.listen(128).expect("listen");
            let listener: std::net::TcpListener = socket.into();
            tx.send(()).expect("listener ready");
            for stream in listener.incoming().flatten() {
                use std::io::Write;
                let mut stream = stream;
                let _ = stream.write_all(b"+");
            }
        });
        rx.recv().expect("listener thread");
    }

    /// Tries a TCP connection from `source` (an address of this namespace) to `dest`
    /// (`ip:port`); true when it connects and reads the listener's byte within `timeout`.
    pub fn tcp_connect(&self, source: &str, dest: &str, timeout: std::time::Duration) -> bool {
        let source: std::net::IpAddr = source.parse().expect("source address");
        let dest: std::net::SocketAddr = dest.parse().expect("destination");
        self.run_in(move || {
            use std::io::Read;
            let socket = match socket2::Socket::new(
                socket2::Domain::for_address(dest),
                socket2::Type::STREAM,
                None,
            ) {
                Ok(s) => s,
                Err(_) => return false,
            };
            if socket
                .bind(&std::net::SocketAddr::new(source, 0).into())
                .is_err()
            {
                return false;
            }
            if socket.connect_timeout(&dest.into(), timeout).is_err() {
                return false;
            }
            let mut stream: std::net::TcpStream = socket.into();
            let _ = stream.set_read_timeout(Some(timeout));
            let mut byte = [0u8; 1];
            matches!(stream.read(&mut byte), Ok(1))
        })
    }
}

fn enter(name: &str) {
    let file = File::open(format!("/run/netns/{name}")).expect("open netns file");
    // Switches only this thread.
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
}

impl Netns {
    /// Runs a shell snippet inside the namespace with `input` on its stdin; panics with its
    /// stderr when it fails. Returns its stdout.
    pub fn sh_with_input(&self, script: &str, input: &str) -> String {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command("bash")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bash in the namespace");
        let mut stdin = child.stdin.take().expect("stdin");
        // Written from a thread while the output is read, so a large input cannot deadlock.
        let (out, written) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || stdin.write_all(input.as_bytes()));
            (
                child.wait_with_output().expect("wait for bash"),
                writer.join(),
            )
        });
        let stdout = self.stdout_of(script, out);
        written
            .expect("the stdin writer panicked")
            .expect("write stdin");
        stdout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_with_input_passes_more_than_a_pipe_holds_both_ways() {
        if !crate::require_root("sh_with_input_passes_more_than_a_pipe_holds_both_ways") {
            return;
        }
        let ns = Netns::new("stdin");
        let input = "0123456789abcdef\n".repeat(64 * 1024);
        assert_eq!(ns.sh_with_input("cat", &input), input);
    }
}
