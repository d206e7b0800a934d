//! The text of each owned file, from the list alone (fail2ban: plus the admin's entries).

use std::fmt::Write;

use cf_allow_diff::{Family, RangeSet};

use crate::fail2ban::AdminIgnore;
use crate::Kind;

/// The first line of every owned file; a file without it is never overwritten or deleted.
pub fn header(kind: Kind) -> String {
    format!(
        "# {} ({}): do not edit, `cf-allow sync` rewrites this file and `cf-allow remove` deletes it.\n",
        crate::HEADER_MARK,
        kind.name()
    )
}

/// True when `bytes` start with cf-allow's header.
pub fn is_owned(bytes: &[u8]) -> bool {
    bytes.starts_with(format!("# {}", crate::HEADER_MARK).as_bytes())
}

fn counts(ranges: &RangeSet) -> String {
    format!(
        "# Cloudflare's ranges: {} IPv4, {} IPv6.\n",
        ranges.len_of(Family::Ipv4),
        ranges.len_of(Family::Ipv6)
    )
}

/// nginx (http context, `conf.d/`): trust `CF-Connecting-IP` from these peers only.
pub fn nginx(ranges: &RangeSet) -> String {
    let mut s = header(Kind::Nginx) + &counts(ranges);
    s.push_str("# Only a TCP peer inside these ranges may set the visitor's address.\n");
    for net in ranges.iter() {
        let _ = writeln!(s, "set_real_ip_from {net};");
    }
    s.push_str("real_ip_header CF-Connecting-IP;\n");
    s
}

/// Apache mod_remoteip.
pub fn apache(ranges: &RangeSet) -> String {
    let mut s = header(Kind::Apache) + &counts(ranges);
    s.push_str("# Needs mod_remoteip (a2enmod remoteip). Only a TCP peer inside these ranges\n");
    s.push_str("# may set the visitor's address (logged with %a).\n");
    s.push_str("RemoteIPHeader CF-Connecting-IP\n");
    for net in ranges.iter() {
        let _ = writeln!(s, "RemoteIPTrustedProxy {net}");
    }
    s
}

/// Caddy: lines for the global `servers { import … }` block.
pub fn caddy(ranges: &RangeSet) -> String {
    let mut s = header(Kind::Caddy) + &counts(ranges);
    s.push_str(
        "# Import inside the global options' servers block: { servers { import <this file> } }\n",
    );
    s.push_str("trusted_proxies static");
    for net in ranges.iter() {
        let _ = write!(s, " {net}");
    }
    s.push_str("\nclient_ip_headers CF-Connecting-IP\n");
    s
}

/// HAProxy: an ACL file, one range a line (`acl from_cloudflare src -f <this file>`).
pub fn haproxy(ranges: &RangeSet) -> String {
    let mut s = header(Kind::Haproxy) + &counts(ranges);
    s.push_str("# acl from_cloudflare src -f <this file>\n");
    for net in ranges.iter() {
        let _ = writeln!(s, "{net}");
    }
    s
}

/// fail2ban (`jail.d/cf-allow.local`): `ignoreip` of `[DEFAULT]` and of every jail that sets
/// its own, each the admin's entries followed by the ranges.
pub fn fail2ban(ranges: &RangeSet, admin: &AdminIgnore) -> String {
    let mut s = header(Kind::Fail2ban) + &counts(ranges);
    s.push_str(
        "# ignoreip: the entries of the admin's own configuration, then Cloudflare's ranges.\n",
    );
    let cf: Vec<String> = ranges.iter().map(|n| n.to_string()).collect();
    for (section, entries) in admin.sections() {
        let mut all: Vec<&str> = entries.iter().map(String::as_str).collect();
        for net in &cf {
            if !all.contains(&net.as_str()) {
                all.push(net);
            }
        }
        let _ = write!(s, "\n[{section}]\nignoreip = {}\n", all.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use cf_allow_diff::IpNet;

    fn set(nets: &[&str]) -> RangeSet {
        RangeSet::exact(nets.iter().map(|n| n.parse::<IpNet>().expect("net")))
    }

    #[test]
    fn nginx_file_is_exact() {
        assert_eq!(
            nginx(&set(&["198.51.100.0/24", "2001:db8::/32"])),
            "# Managed by cf-allow (nginx): do not edit, `cf-allow sync` rewrites this file and `cf-allow remove` deletes it.\n\
             # Cloudflare's ranges: 1 IPv4, 1 IPv6.\n\
             # Only a TCP peer inside these ranges may set the visitor's address.\n\
             set_real_ip_from 198.51.100.0/24;\n\
             set_real_ip_from 2001:db8::/32;\n\
             real_ip_header CF-Connecting-IP;\n"
        );
    }

    #[test]
    fn apache_file_is_exact() {
        let text = apache(&set(&["198.51.100.0/24", "2001:db8::/32"]));
        assert!(text.starts_with("# Managed by cf-allow (apache)"));
        assert!(text.ends_with(
            "RemoteIPHeader CF-Connecting-IP\n\
             RemoteIPTrustedProxy 198.51.100.0/24\n\
             RemoteIPTrustedProxy 2001:db8::/32\n"
        ));
    }

    #[test]
    fn caddy_file_is_exact() {
        assert_eq!(
            caddy(&set(&["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"])),
            "# Managed by cf-allow (caddy): do not edit, `cf-allow sync` rewrites this file and `cf-allow remove` deletes it.\n\
             # Cloudflare's ranges: 2 IPv4, 1 IPv6.\n\
             # Import inside the global options' servers block: { servers { import <this file> } }\n\
             trusted_proxies static 198.51.100.0/24 203.0.113.0/24 2001:db8::/32\n\
             client_ip_headers CF-Connecting-IP\n"
        );
    }

    #[test]
    fn haproxy_file_is_exact() {
        assert_eq!(
            haproxy(&set(&["198.51.100.0/24", "2001:db8::/32"])),
            "# Managed by cf-allow (haproxy): do not edit, `cf-allow sync` rewrites this file and `cf-allow remove` deletes it.\n\
             # Cloudflare's ranges: 1 IPv4, 1 IPv6.\n\
             # acl from_cloudflare src -f <this file>\n\
             198.51.100.0/24\n\
             2001:db8::/32\n"
        );
    }

    #[test]
    fn ownership_is_the_header() {
        assert!(is_owned(nginx(&set(&["198.51.100.0/24"])).as_bytes()));
        assert!(!is_owned(b"set_real_ip_from 198.51.100.0/24;\n"));
        assert!(!is_owned(b""));
    }
}
