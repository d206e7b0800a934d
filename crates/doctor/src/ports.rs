//! The `ports` check: Cloudflare's proxy connects to an origin only on a fixed set of ports.

use crate::Check;

/// The HTTP ports Cloudflare proxies.
pub const HTTP_PORTS: [u16; 7] = [80, 8080, 8880, 2052, 2082, 2086, 2095];
/// The HTTPS ports Cloudflare proxies.
pub const HTTPS_PORTS: [u16; 6] = [443, 2053, 2083, 2087, 2096, 8443];

/// True for a port Cloudflare proxies HTTPS to.
pub fn is_https(port: u16) -> bool {
    HTTPS_PORTS.contains(&port)
}

/// True for a port Cloudflare proxies at all.
pub fn is_proxied(port: u16) -> bool {
    is_https(port) || HTTP_PORTS.contains(&port)
}

/// The `ports` check over the configured ports (empty = all ports).
pub fn check(ports: &[u16]) -> Check {
    const ID: &str = "ports";
    if ports.is_empty() {
        return Check::skip(ID, "ports: [] (all ports are opened to Cloudflare)");
    }
    let other: Vec<String> = ports
        .iter()
        .filter(|p| !is_proxied(**p))
        .map(u16::to_string)
        .collect();
    if other.is_empty() {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        return Check::ok(
            ID,
            format!("TCP {} are ports Cloudflare proxies", list.join(", ")),
        );
    }
    Check::warn(
        ID,
        format!(
            "TCP {} {} not among the ports Cloudflare proxies (HTTP 80, 8080, 8880, 2052, 2082, 2086, 2095; HTTPS 443, 2053, 2083, 2087, 2096, 8443): Cloudflare never connects there (Spectrum aside)",
            other.join(", "),
            if other.len() == 1 { "is" } else { "are" }
        ),
        "serve the site on one of Cloudflare's ports (and point an Origin Rule at it), or remove the port from `ports:`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn only_cloudflares_ports_pass() {
        assert_eq!(check(&[80, 443, 8443, 2096]).status, Status::Ok);
        let c = check(&[443, 22, 3000]);
        assert_eq!(c.status, Status::Warn);
        assert!(c.summary.starts_with("TCP 22, 3000 are not among"), "{c:?}");
        assert_eq!(check(&[]).status, Status::Skip);
        assert!(is_https(2053) && !is_https(2052) && is_proxied(2052));
    }
}
