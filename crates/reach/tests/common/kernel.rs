//! The kernel side of the differential test: a server namespace that loads a ruleset and a
//! client namespace that sends real SYNs from many documentation source addresses.

use std::time::Duration;

use std::net::IpAddr;

use cf_allow_reach::{Family, HostModel, KnownIpset, KnownSet, Probe, RangeSet, ReadOptions};
use cf_allow_testkit::{veth_pair, Netns};
use serde_json::Value;

/// Client source addresses (documentation ranges only).
pub const SOURCES: [&str; 9] = [
    "192.0.2.10",
    "192.0.2.77",
    "192.0.2.200",
    "198.51.100.5",
    "198.51.100.130",
    "203.0.113.9",
    "2001:db8::10",
    "2001:db8::8000:0:0:5",
    "2001:db8:1::5",
];
/// Ports the server listens on (every probed port has a listener, so an RST never comes
/// from a closed port and a refused connect means the firewall rejected it).
pub const PORTS: [u16; 5] = [22, 80, 443, 1000, 8080];
/// The server's addresses.
pub const SERVER_V4: &str = "192.0.2.1";
pub const SERVER_V6: &str = "2001:db8::1";

/// The two namespaces, joined by a veth pair; the server's end is named in [`Lab::iface`].
pub struct Lab {
    pub server: Netns,
    pub client: Netns,
    pub iface: String,
}

impl Lab {
    pub fn new(label: &str) -> Lab {
        let server = Netns::new(&format!("{label}-s"));
        let client = Netns::new(&format!("{label}-c"));
        let client_addrs: Vec<String> = SOURCES
            .iter()
            .map(|a| {
                if a.contains(':') {
                    format!("{a}/64")
                } else if a.starts_with("192.0.2.") {
                    format!("{a}/24")
                } else {
                    format!("{a}/32")
                }
            })
            .collect();
        let client_refs: Vec<&str> = client_addrs.iter().map(String::as_str).collect();
        veth_pair(
            &server,
            &[&format!("{SERVER_V4}/24"), &format!("{SERVER_V6}/64")],
            &client,
            &client_refs,
        );
        let iface = server
            .sh("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1")
            .trim()
            .to_string();
        let client_iface = client
            .sh("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1")
            .trim()
            .to_string();
        // Routes back to the sources outside the on-link prefixes.
        server.sh(&format!(
            "ip route add 198.51.100.0/24 dev {iface} && ip route add 203.0.113.0/24 dev {iface} && \
             ip -6 route add 2001:db8:1::/64 dev {iface}"
        ));
        client.sh(&format!(
            "ip -6 addr add 2001:db8:1::5/64 dev {client_iface} nodad 2>/dev/null || true"
        ));
        client.sh(&format!(
            "ip route add {SERVER_V4}/32 dev {client_iface} 2>/dev/null || true; \
             ip -6 route add {SERVER_V6}/128 dev {client_iface} 2>/dev/null || true; \
             sysctl -qw net.ipv4.conf.all.arp_ignore=0"
        ));
        // Permanent neighbour entries both ways: the question is what the rules decide for the
        // TCP packets, and the engine does not evaluate ARP or neighbour discovery (a netdev
        // ingress chain with policy drop would otherwise drop ARP and fail every probe; see
        // crates/reach/README.md, "Known limits").
        let mac = |ns: &Netns, dev: &str| {
            ns.sh(&format!("cat /sys/class/net/{dev}/address"))
                .trim()
                .to_string()
        };
        let (server_mac, client_mac) = (mac(&server, &iface), mac(&client, &client_iface));
        for a in SOURCES {
            server.sh(&format!(
                "ip neigh replace {a} lladdr {client_mac} dev {iface} nud permanent"
            ));
        }
        client.sh(&format!(
            "ip neigh replace {SERVER_V4} lladdr {server_mac} dev {client_iface} nud permanent && \
             ip -6 neigh replace {SERVER_V6} lladdr {server_mac} dev {client_iface} nud permanent"
        ));
        for p in PORTS {
            server.tcp_listen(&format!("0.0.0.0:{p}"));
            server.tcp_listen(&format!("[::]:{p}"));
        }
        Lab {
            server,
            client,
            iface,
        }
    }

    /// Replaces the server's ruleset; `Err` with nft's message when it refuses the script.
    pub fn load(&self, script: &str) -> Result<(), String> {
        self.server.sh("nft flush ruleset");
        self.run_input("nft -f -", script)
    }

    /// Runs `script` in the server namespace with `input` on stdin; `Err` with its stderr.
    pub fn run_input(&self, script: &str, input: &str) -> Result<(), String> {
        let out = self
            .server
            .command("bash")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(input.as_bytes())?;
                }
                child.wait_with_output()
            })
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The engine's model, read inside the server namespace.
    pub fn model(&self) -> HostModel {
        self.server
            .run_in(|| HostModel::read(&ReadOptions::default()))
    }

    /// The engine's model read the way a sync reads it right after applying: every named
    /// address set of the server's ruleset and every `hash:net` ipset is given as known (what
    /// cf-allow passes for its own two sets), so the ruleset is read without set elements,
    /// those sets are filled from here, and every other named set, map and ipset is read on
    /// its own.
    pub fn model_with_known_sets(&self) -> HostModel {
        let known_sets = known_sets(&self.server.sh("nft -j list ruleset"));
        let known_ipsets = known_ipsets(&self.server.sh("ipset save 2>/dev/null; true"));
        self.server.run_in(move || {
            HostModel::read(&ReadOptions {
                known_sets,
                known_ipsets,
                ..ReadOptions::default()
            })
        })
    }

    /// Real SYNs for every probe not already `done`, all at once: true = a SYN-ACK came back
    /// within `timeout`.
    pub fn kernel(
        &self,
        probes: &[(&'static str, u16)],
        timeout: Duration,
        done: &[bool],
    ) -> Vec<bool> {
        self.parallel(probes, timeout, done)
    }

    /// Connects for every probe not already `done`, all at once.
    fn parallel(
        &self,
        probes: &[(&'static str, u16)],
        timeout: Duration,
        done: &[bool],
    ) -> Vec<bool> {
        std::thread::scope(|s| {
            let handles: Vec<_> = probes
                .iter()
                .zip(done)
                .map(|(&(src, port), &done)| {
                    s.spawn(move || !done && self.connect(src, port, timeout))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        })
    }

    /// True when the SYN from `src` to the server's `port` is answered with a SYN-ACK (the
    /// connect completes; what happens to the later ACK does not matter here).
    fn connect(&self, src: &str, port: u16, timeout: Duration) -> bool {
        let dest: std::net::SocketAddr = if src.contains(':') {
            format!("[{SERVER_V6}]:{port}")
        } else {
            format!("{SERVER_V4}:{port}")
        }
        .parse()
        .expect("destination");
        let Ok(source) = src.parse::<std::net::IpAddr>() else {
            return false;
        };
        self.client.run_in(move || {
            let Ok(socket) = socket2::Socket::new(
                socket2::Domain::for_address(dest),
                socket2::Type::STREAM,
                None,
            ) else {
                return false;
            };
            if socket
                .bind(&std::net::SocketAddr::new(source, 0).into())
                .is_err()
            {
                return false;
            }
            socket.connect_timeout(&dest.into(), timeout).is_ok()
        })
    }
}

/// The engine's answer for one (source, port): true = reachable. Panics when the engine says
/// unknown (the generated subset is fully supported).
pub fn engine(model: &HostModel, src: &str, port: u16) -> Result<bool, String> {
    let net = format!("{src}/{}", if src.contains(':') { 128 } else { 32 });
    let v = model.evaluate(&Probe {
        ranges: RangeSet::aggregated([net.parse().map_err(|e| format!("{e}"))?]),
        ports: vec![port],
        lockdown: false,
    });
    if !v.unknown.is_empty() {
        return Err(format!("unknown: {}", v.to_json()));
    }
    Ok(v.reachable)
}

/// Compares kernel and engine on `probes` for `script`; `Err` describes the disagreements.
pub fn compare(lab: &Lab, script: &str, probes: &[(&'static str, u16)]) -> Result<bool, String> {
    compare_loaded(lab, script, probes, &|lab: &Lab| lab.load(script))
}

/// [`compare`] with the ruleset loaded by `load` (`script` is what the report shows).
pub fn compare_loaded(
    lab: &Lab,
    script: &str,
    probes: &[(&'static str, u16)],
    load: &dyn Fn(&Lab) -> Result<(), String>,
) -> Result<bool, String> {
    if let Err(e) = load(lab) {
        return Err(format!("nft refused the ruleset: {e}\n{script}"));
    }
    let model = lab.model();
    let engine: Vec<Result<bool, String>> = probes
        .iter()
        .map(|&(src, port)| engine(&model, src, port))
        .collect();
    // The read a sync makes (its own sets known, the others read one by one) must give the
    // same answers as reading the whole ruleset.
    let known = lab.model_with_known_sets();
    let mut bad = Vec::new();
    for (&(src, port), e) in probes.iter().zip(&engine) {
        let k = self::engine(&known, src, port);
        let same = match (&k, e) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !same {
            bad.push(format!(
                "{src} → {port}: with the sets known the engine says {k:?}, reading them {e:?}"
            ));
        }
    }
    let mut kernel = lab.kernel(
        probes,
        Duration::from_millis(250),
        &vec![false; probes.len()],
    );
    // A probe the kernel seemed to block but the engine accepts gets a second, long chance,
    // so a slow machine cannot fake a disagreement.
    let recheck: Vec<bool> = kernel
        .iter()
        .zip(&engine)
        .map(|(k, e)| *k || !matches!(e, Ok(true)))
        .collect();
    if recheck.iter().any(|done| !done) {
        let again = lab.kernel(probes, Duration::from_secs(2), &recheck);
        for (k, a) in kernel.iter_mut().zip(again) {
            *k |= a;
        }
    }
    for ((&(src, port), k), e) in probes.iter().zip(kernel).zip(engine) {
        match e {
            Ok(e) if e == k => {}
            Ok(e) => bad.push(format!(
                "{src} → {port}: kernel {}, engine {}",
                verdict(k),
                verdict(e)
            )),
            Err(why) => bad.push(format!(
                "{src} → {port}: kernel {}, engine {why}",
                verdict(k)
            )),
        }
    }
    if bad.is_empty() {
        Ok(true)
    } else {
        Err(format!("{}\n--- ruleset ---\n{script}", bad.join("\n")))
    }
}

fn verdict(accepted: bool) -> &'static str {
    if accepted {
        "accepted"
    } else {
        "blocked"
    }
}

/// The tally of a differential run: rulesets compared with the kernel, and rulesets the
/// loader refused (skipped; printed with `CF_ALLOW_DIFF_VERBOSE`).
#[derive(Default)]
pub struct Tally {
    loaded: std::cell::Cell<u32>,
    refused: std::cell::Cell<u32>,
}

impl Tally {
    /// One comparison's result as the proptest outcome: a refused ruleset (`nft refused …`)
    /// is skipped, a disagreement fails the case.
    pub fn outcome<T>(
        &self,
        result: Result<T, String>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        match result {
            Ok(_) => {
                self.loaded.set(self.loaded.get() + 1);
                Ok(())
            }
            Err(e) if e.starts_with("nft refused") => {
                if std::env::var_os("CF_ALLOW_DIFF_VERBOSE").is_some() {
                    eprintln!("{e}");
                }
                self.refused.set(self.refused.get() + 1);
                Ok(())
            }
            Err(e) => Err(proptest::test_runner::TestCaseError::fail(e)),
        }
    }

    /// Rulesets compared.
    pub fn loaded(&self) -> u32 {
        self.loaded.get()
    }

    /// Rulesets refused and skipped.
    pub fn refused(&self) -> u32 {
        self.refused.get()
    }
}

/// The named sets of `nft -j list ruleset` whose elements are single addresses, prefixes and
/// ranges of one address type, as first and last address.
pub fn known_sets(ruleset: &str) -> Vec<KnownSet> {
    let doc: Value = serde_json::from_str(ruleset).expect("nft -j prints JSON");
    let mut out = Vec::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        let set = &item["set"];
        let Some(kind) = set["type"].as_str() else {
            continue; // not a set, or a concatenation
        };
        if kind != "ipv4_addr" && kind != "ipv6_addr" {
            continue;
        }
        let elems = set["elem"].as_array().cloned().unwrap_or_default();
        let ranges: Option<Vec<(IpAddr, IpAddr)>> = elems.iter().map(elem_range).collect();
        let Some(ranges) = ranges else { continue };
        out.push(KnownSet {
            family: set["family"].as_str().unwrap_or_default().to_owned(),
            table: set["table"].as_str().unwrap_or_default().to_owned(),
            name: set["name"].as_str().unwrap_or_default().to_owned(),
            ranges,
        });
    }
    out
}

/// One element as its first and last address; `None` for anything else (timeouts, comments).
fn elem_range(elem: &Value) -> Option<(IpAddr, IpAddr)> {
    if let Some(addr) = elem.as_str() {
        let addr: IpAddr = addr.parse().ok()?;
        return Some((addr, addr));
    }
    if let Some(prefix) = elem.get("prefix") {
        let addr: IpAddr = prefix["addr"].as_str()?.parse().ok()?;
        let len = prefix["len"].as_u64()? as u32;
        return Some(match addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(len).unwrap_or(0);
                let first = u32::from(a) & !host;
                (IpAddr::V4(first.into()), IpAddr::V4((first | host).into()))
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(len).unwrap_or(0);
                let first = u128::from(a) & !host;
                (IpAddr::V6(first.into()), IpAddr::V6((first | host).into()))
            }
        });
    }
    let range = elem.get("range")?.as_array()?;
    let first: IpAddr = range.first()?.as_str()?.parse().ok()?;
    let last: IpAddr = range.get(1)?.as_str()?.parse().ok()?;
    Some((first, last))
}

/// The `hash:net` sets of `ipset save`, each member as first and last address.
pub fn known_ipsets(save: &str) -> Vec<KnownIpset> {
    let mut out: Vec<KnownIpset> = Vec::new();
    for line in save.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["create", name, "hash:net", rest @ ..] => {
                let family = match rest.windows(2).find(|w| w[0] == "family") {
                    Some(w) if w[1] == "inet6" => Family::Ipv6,
                    _ => Family::Ipv4,
                };
                out.push(KnownIpset {
                    name: (*name).to_owned(),
                    family,
                    ranges: Vec::new(),
                });
            }
            ["add", name, member] => {
                let Some(set) = out.iter_mut().find(|s| s.name == *name) else {
                    continue;
                };
                let (addr, len) = member.split_once('/').unwrap_or((member, ""));
                let Ok(addr) = addr.parse::<IpAddr>() else {
                    continue;
                };
                let json = if len.is_empty() {
                    Value::String(addr.to_string())
                } else {
                    serde_json::json!({"prefix": {"addr": addr.to_string(), "len": len.parse::<u64>().unwrap_or(0)}})
                };
                set.ranges.extend(elem_range(&json));
            }
            _ => {}
        }
    }
    out
}
