//! Whether the list sources can be reached: a TCP connect to each `https://` / `http://`
//! host, a read of each `file://` path. No request is sent and nothing is cached.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where a source URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A host and port to connect to.
    Tcp {
        /// Host name or address (without brackets).
        host: String,
        /// Port (443 / 80 unless given).
        port: u16,
    },
    /// A local file.
    File(String),
}

/// Splits a source URL into what to probe; `None` for anything that is not an `https://`,
/// `http://` or `file://` URL with a host or an absolute local path. Parsed with the `url`
/// crate, as the fetcher parses sources.
pub fn endpoint(url: &str) -> Option<Endpoint> {
    let url = url::Url::parse(url).ok()?;
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().ok()?;
            Some(Endpoint::File(path.to_string_lossy().into_owned()))
        }
        "https" | "http" => {
            let host = match url.host()? {
                url::Host::Domain(name) => name.to_string(),
                url::Host::Ipv4(addr) => addr.to_string(),
                url::Host::Ipv6(addr) => addr.to_string(),
            };
            Some(Endpoint::Tcp {
                host,
                port: url.port_or_known_default()?,
            })
        }
        _ => None,
    }
}

/// Probes `url`: `Ok(what was reached)` or `Err(why not)`, in words.
pub fn probe(url: &str, timeout: Duration) -> Result<String, String> {
    match endpoint(url) {
        None => Err(format!("{url} is not an https://, http:// or file:// URL")),
        // A FIFO would block the open forever: only a regular file is opened.
        Some(Endpoint::File(path)) => match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => Err(format!("{path} is not a regular file")),
            _ => std::fs::File::open(&path)
                .map(|_| format!("{path} is readable"))
                .map_err(|e| format!("cannot read {path}: {e}")),
        },
        Some(Endpoint::Tcp { host, port }) => {
            let addrs: Vec<SocketAddr> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect();
            let mut last = format!("{host} has no address");
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(_) => return Ok(format!("{host} port {port} accepts connections ({addr})")),
                    Err(e) => last = format!("cannot connect to {host} port {port} ({addr}): {e}"),
                }
            }
            Err(last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Option<Endpoint> {
        Some(Endpoint::Tcp {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn splits_urls_into_endpoints() {
        assert_eq!(
            endpoint("https://api.cloudflare.com/client/v4/ips"),
            tcp("api.cloudflare.com", 443)
        );
        assert_eq!(
            endpoint("HTTP://www.cloudflare.com/ips-v4"),
            tcp("www.cloudflare.com", 80)
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/x?y"),
            tcp("127.0.0.1", 8080)
        );
        assert_eq!(
            endpoint("https://[2001:db8::1]:8443/ips"),
            tcp("2001:db8::1", 8443)
        );
        assert_eq!(endpoint("https://[2001:db8::1]"), tcp("2001:db8::1", 443));
        assert_eq!(
            endpoint("file:///etc/cf.txt"),
            Some(Endpoint::File("/etc/cf.txt".into()))
        );
        assert_eq!(endpoint("ftp://x/y"), None);
        assert_eq!(endpoint("https://:443/"), None);
        assert_eq!(endpoint("https://host:99999/"), None);
    }

    #[test]
    fn probes_a_local_listener_and_files() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = format!("http://127.0.0.1:{port}/ips");
        assert!(probe(&url, Duration::from_secs(2)).is_ok());
        drop(listener);
        let err = probe(&url, Duration::from_secs(2)).expect_err("closed");
        assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = probe(
            &format!("file://{}", fifo.display()),
            Duration::from_secs(1),
        )
        .expect_err("a FIFO hung doctor before");
        assert!(err.contains("is not a regular file"), "{err}");
        let err = probe("file:///nonexistent/cf.txt", Duration::from_secs(1)).expect_err("no file");
        assert!(err.contains("cannot read /nonexistent/cf.txt"), "{err}");
    }
}
