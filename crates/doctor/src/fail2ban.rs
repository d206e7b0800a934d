//! The `fail2ban` check: Cloudflare addresses banned by a jail (FAIL, with the exact unban
//! command), and jails whose `ignoreip` does not cover Cloudflare's ranges (WARN: the usual
//! root cause is a web server that logs Cloudflare's address instead of the visitor's).
//!
//! Plain inputs only: the binary asks the running fail2ban (`fail2ban-client status`, `get
//! JAIL banip`, `get JAIL ignoreip`; cf-allow-outputs' `fail2ban::probe` does it) and passes
//! the jails here.

use std::net::IpAddr;

use cf_allow_diff::{IpNet, RangeSet};

use super::Check;

/// The check's stable id.
pub const ID: &str = "fail2ban";

/// One running jail, as cf-allow-outputs' `fail2ban::probe` reads it.
pub use cf_allow_outputs::fail2ban::Jail;

/// What to do when a jail's `ignoreip` does not cover the ranges.
pub const REAL_IP_FIX: &str = "fail2ban sees Cloudflare's address when the web server logs the TCP peer: set the web server's real-IP setting (nginx `set_real_ip_from` + `real_ip_header CF-Connecting-IP`, Apache mod_remoteip `RemoteIPHeader CF-Connecting-IP` + `RemoteIPTrustedProxy`; cf-allow writes them with outputs.nginx / outputs.apache), and add outputs.fail2ban so every jail's ignoreip holds Cloudflare's ranges";

/// The findings for `jails` (`None`: fail2ban is not running) against Cloudflare's `ranges`.
pub fn check(jails: Option<&[Jail]>, ranges: &RangeSet) -> Vec<Check> {
    let Some(jails) = jails else {
        return vec![Check::skip(ID, "fail2ban is not running")];
    };
    let mut findings = Vec::new();
    for jail in jails {
        let banned: Vec<(IpAddr, IpNet)> = jail
            .banned
            .iter()
            .filter_map(|addr| ranges.iter().find(|r| r.contains(addr)).map(|r| (*addr, r)))
            .collect();
        if !banned.is_empty() {
            let listed: Vec<String> = banned
                .iter()
                .map(|(a, r)| format!("{a} (in {r})"))
                .collect();
            let addrs: Vec<String> = banned.iter().map(|(a, _)| a.to_string()).collect();
            findings.push(Check::fail(
                ID,
                format!(
                    "jail {} has banned Cloudflare's {}",
                    jail.name,
                    listed.join(", ")
                ),
                format!(
                    "fail2ban-client set {} unbanip {}",
                    jail.name,
                    addrs.join(" ")
                ),
            ));
        }
        let uncovered: Vec<IpNet> = ranges
            .iter()
            .filter(|r| !jail.ignoreip.iter().any(|e| e.contains(r)))
            .collect();
        if let Some(first) = uncovered.first() {
            findings.push(Check::warn(
                ID,
                format!(
                    "jail {}: ignoreip does not cover {} of Cloudflare's {} ranges (first: {first})",
                    jail.name,
                    uncovered.len(),
                    ranges.len()
                ),
                REAL_IP_FIX,
            ));
        }
    }
    if findings.is_empty() {
        findings.push(Check::ok(
            ID,
            format!(
                "{} jail(s): no Cloudflare address banned, every range in ignoreip",
                jails.len()
            ),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn bans_fail_with_the_unban_command_and_gaps_warn() {
        let ranges = RangeSet::exact([net("198.51.100.0/24"), net("2001:db8:1::/64")]);
        let jails = [
            Jail {
                name: "sshd".into(),
                banned: vec![
                    "198.51.100.7".parse().expect("ip"),
                    "192.0.2.1".parse().expect("ip"),
                ],
                ignoreip: vec![net("127.0.0.0/8")],
            },
            Jail {
                name: "nginx".into(),
                banned: vec![],
                ignoreip: vec![net("198.51.0.0/16"), net("2001:db8::/32")],
            },
        ];
        let found = check(Some(&jails), &ranges);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].status, Status::Fail);
        assert_eq!(
            found[0].fix.as_deref(),
            Some("fail2ban-client set sshd unbanip 198.51.100.7")
        );
        assert_eq!(found[1].status, Status::Warn);
        assert!(
            found[1]
                .summary
                .contains("does not cover 2 of Cloudflare's 2"),
            "{}",
            found[1].summary
        );
        assert_eq!(check(Some(&jails[1..]), &ranges)[0].status, Status::Ok);
        assert_eq!(check(None, &ranges)[0].status, Status::Skip);
    }
}
