//! TCP listeners of the current network namespace, from `/proc/net/tcp` and `/proc/net/tcp6`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::Error;

/// The kernel's state number for LISTEN.
const TCP_LISTEN: &str = "0A";

/// A socket in LISTEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The local address (`0.0.0.0` / `::` for any).
    pub addr: IpAddr,
    /// The local port.
    pub port: u16,
}

impl Listener {
    /// True when remote hosts cannot reach it (bound to a loopback address only).
    pub fn is_loopback_only(&self) -> bool {
        self.addr.is_loopback()
    }
}

/// Reads both files of the current network namespace. A missing `tcp6` (IPv6 disabled) is
/// not an error.
pub fn read_listeners() -> Result<Vec<Listener>, Error> {
    let mut all = Vec::new();
    for (file, required) in [("/proc/net/tcp", true), ("/proc/net/tcp6", false)] {
        match std::fs::read_to_string(file) {
            Ok(text) => all.extend(parse_proc_net_tcp(&text)?),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Read {
                    path: Path::new(file).to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(all)
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` and returns the sockets in LISTEN.
pub fn parse_proc_net_tcp(text: &str) -> Result<Vec<Listener>, Error> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[3] != TCP_LISTEN {
            continue;
        }
        let parse_err = || Error::Parse {
            what: "/proc/net/tcp".to_string(),
            detail: format!("bad local address in {line:?}"),
        };
        let (addr, port) = fields[1].split_once(':').ok_or_else(parse_err)?;
        let port = u16::from_str_radix(port, 16).map_err(|_| parse_err())?;
        let addr = parse_hex_addr(addr).ok_or_else(parse_err)?;
        out.push(Listener { addr, port });
    }
    Ok(out)
}

/// The kernel prints addresses as 32-bit words in host byte order, in hex.
fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| {
            hex.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect();
    let bytes: Vec<u8> = words?.into_iter().flat_map(u32::to_ne_bytes).collect();
    match bytes.len() {
        4 if hex.len() == 8 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 if hex.len() == 32 => {
            let arr: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(arr)))
        }
        _ => None,
    }
}

/// The `listen:PORT` checks. `dnat`: ports forwarded to containers or other hosts (never
/// "nothing listens" for those); `ipv6_allowed`: Cloudflare's IPv6 ranges are allowed, so a
/// port must listen on IPv6 too when the host has a global IPv6 address.
pub fn checks(
    ports: &[u16],
    facts: &crate::host::HostFacts,
    dnat: &[crate::docker::Dnat],
    ipv6_allowed: bool,
) -> Vec<crate::Check> {
    use crate::Check;
    if ports.is_empty() {
        return vec![Check::skip(
            "listen",
            "ports: [] (all ports are opened to Cloudflare): no particular port to check",
        )];
    }
    let listeners = match &facts.listeners {
        Ok(l) => l,
        Err(e) => {
            return vec![Check::warn(
                "listen",
                format!("cannot list the TCP listeners: {e}"),
                "check that /proc is mounted",
            )]
        }
    };
    let has_global_v6 = !facts.global_addresses(true).is_empty();
    let mut out = Vec::new();
    for &port in ports {
        let id = format!("listen:{port}");
        let on_port: Vec<_> = listeners.iter().filter(|l| l.port == port).collect();
        let mut addrs: Vec<String> = on_port.iter().map(|l| l.addr.to_string()).collect();
        addrs.dedup();
        let forwarded: Vec<String> = dnat
            .iter()
            .filter(|d| d.forwards(port))
            .map(crate::docker::Dnat::describe)
            .collect();
        let on_v6 = on_port
            .iter()
            .any(|l| l.addr.is_ipv6() && !l.is_loopback_only());
        out.push(if on_port.is_empty() && !forwarded.is_empty() {
            Check::ok(
                id,
                format!("{}: the container (or host) behind it answers Cloudflare", forwarded.join(", ")),
            )
        } else if on_port.is_empty() {
            Check::fail(
                id,
                format!("nothing listens on TCP {port}: Cloudflare's connections are refused (Error 521/523)"),
                format!("start the web server (or proxy) on port {port}, or remove {port} from `ports:`"),
            )
        } else if on_port.iter().all(|l| l.is_loopback_only()) {
            Check::fail(
                id,
                format!(
                    "TCP {port} listens only on {}: Cloudflare cannot reach it (Error 521/523)",
                    addrs.join(", ")
                ),
                "make the server listen on 0.0.0.0 and :: (or the public addresses)",
            )
        } else if ipv6_allowed && has_global_v6 && !on_v6 && forwarded.is_empty() {
            Check::warn(
                id,
                format!(
                    "TCP {port} listens on {} but not on IPv6, although this host has a global IPv6 address and Cloudflare's IPv6 ranges are allowed: a proxied AAAA record fails (Error 521/523)",
                    addrs.join(", ")
                ),
                format!("make the server listen on [::]:{port} too, or remove the AAAA records of this origin"),
            )
        } else {
            Check::ok(id, format!("TCP {port} is listening on {}", addrs.join(", ")))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on x86_64 in a namespace with listeners on 192.0.2.5:80, 127.0.0.1:8080,
    // [::]:443, [2001:db8::5]:80 and [::1]:8443, and one established connection.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 050200C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 605571 1 000000007077f728 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 605572 2 0000000086addaf9 100 0 0 10 0
   2: 0100007F:1F90 0100007F:A53E 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000003f1e735e 20 0 0 10 -1
   3: 0100007F:A53E 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 605573 2 0000000000319c29 20 0 0 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 605568 1 00000000ecc4976c 100 0 0 10 0
   1: B80D0120000000000000000005000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 605570 1 00000000f1bdf2b2 100 0 0 10 0
   2: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 605569 1 0000000009e328d0 100 0 0 10 0
";

    fn render(list: &[Listener]) -> Vec<String> {
        list.iter()
            .map(|l| std::net::SocketAddr::new(l.addr, l.port).to_string())
            .collect()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_captured_ipv4_and_ipv6_listeners() {
        let v4 = parse_proc_net_tcp(TCP).expect("tcp");
        assert_eq!(render(&v4), ["192.0.2.5:80", "127.0.0.1:8080"]);
        assert!(v4[1].is_loopback_only() && !v4[0].is_loopback_only());
        let v6 = parse_proc_net_tcp(TCP6).expect("tcp6");
        assert_eq!(render(&v6), ["[::]:443", "[2001:db8::5]:80", "[::1]:8443"]);
    }

    #[test]
    fn garbage_is_an_error_and_a_header_alone_is_empty() {
        assert!(parse_proc_net_tcp("header\n   0: zz:0050 00000000:0000 0A\n").is_err());
        assert!(parse_proc_net_tcp("header\n").expect("empty").is_empty());
    }

    #[test]
    fn listen_checks_know_forwarded_ports_and_ipv6() {
        use crate::host::{HostAddr, HostFacts};
        use crate::Status;
        let v4: Vec<Listener> = parse_proc_net_tcp(TCP).expect("tcp");
        let facts = |listeners: Vec<Listener>| HostFacts {
            addresses: Ok(vec![HostAddr {
                ifname: "d0".into(),
                addr: "2001:db8::5".parse().expect("addr"),
                global: true,
            }]),
            routes: Ok(Vec::new()),
            listeners: Ok(listeners),
        };
        let dnat = vec![crate::docker::Dnat {
            port: 443,
            to: "172.17.0.2:8443".into(),
            by: "ip nat DOCKER".into(),
        }];
        let got = checks(&[80, 443, 8080], &facts(v4.clone()), &dnat, true);
        let show: Vec<(Status, &str)> =
            got.iter().map(|c| (c.status, c.summary.as_str())).collect();
        assert_eq!(show[0].0, Status::Warn, "{show:?}");
        assert!(show[0].1.contains("not on IPv6"), "{show:?}");
        assert_eq!(show[1], (Status::Ok, "443 is forwarded to 172.17.0.2:8443 by ip nat DOCKER: the container (or host) behind it answers Cloudflare"));
        assert_eq!(show[2].0, Status::Fail);
        let got = checks(&[80], &facts(v4), &[], false);
        assert_eq!(
            got[0].status,
            Status::Ok,
            "IPv6 not allowed: IPv4 is enough"
        );
    }

    #[test]
    fn reads_this_namespace() {
        read_listeners().expect("/proc/net/tcp is readable");
    }
}
