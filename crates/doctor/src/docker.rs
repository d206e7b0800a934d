//! Ports forwarded by DNAT (Docker's published ports: `nat PREROUTING → DOCKER → DNAT`),
//! from `iptables-save -t nat`, and the `docker` check: such connections are forwarded
//! before the INPUT hook, so an allowlist on INPUT does not guard them.

use crate::Check;

/// One DNAT rule of the nat table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnat {
    /// The chain it is in (`DOCKER`).
    pub chain: String,
    /// The TCP destination ports it matches (`--dport N` or `N:M`); `None` = every port.
    pub dports: Option<(u16, u16)>,
    /// Where it sends the connection (`172.17.0.2:8443`).
    pub to: String,
}

impl Dnat {
    /// True when the rule forwards connections to `port`.
    pub fn forwards(&self, port: u16) -> bool {
        self.dports.is_none_or(|(lo, hi)| lo <= port && port <= hi)
    }

    /// `443 is forwarded to 172.17.0.2:8443 by nat DOCKER`.
    pub fn describe(&self, port: u16) -> String {
        let to = match self.to.rsplit_once(':') {
            Some((_, p)) if p.parse::<u16>().is_ok() => self.to.clone(),
            _ => format!("{}:{port}", self.to),
        };
        format!("{port} is forwarded to {to} by nat {}", self.chain)
    }
}

/// Reads the nat table with `program` (`iptables-save`, `ip6tables-nft-save`, …).
pub fn read_nat(program: &str) -> Result<Vec<Dnat>, crate::Error> {
    Ok(parse_nat(&crate::run_program(program, &["-t", "nat"])?))
}

/// The DNAT rules of `iptables-save` output (only the `*nat` table).
pub fn parse_nat(text: &str) -> Vec<Dnat> {
    let mut out = Vec::new();
    let mut in_nat = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            in_nat = name.trim() == "nat";
            continue;
        }
        if !in_nat || !line.starts_with("-A ") {
            continue;
        }
        let words = crate::iptables::split_words(line);
        let at = |key: &str| {
            words
                .iter()
                .position(|w| w == key)
                .and_then(|i| words.get(i + 1))
        };
        if at("-j").map(String::as_str) != Some("DNAT") {
            continue;
        }
        if at("-p").is_some_and(|p| p != "tcp" && p != "6") {
            continue;
        }
        let Some(to) = at("--to-destination") else {
            continue;
        };
        let dports = match at("--dport") {
            None => None,
            Some(p) => {
                let (lo, hi) = p.split_once(':').unwrap_or((p, p));
                match (lo.parse(), hi.parse()) {
                    (Ok(lo), Ok(hi)) => Some((lo, hi)),
                    _ => continue,
                }
            }
        };
        out.push(Dnat {
            chain: words.get(1).cloned().unwrap_or_default(),
            dports,
            to: to.clone(),
        });
    }
    out
}

/// The `docker` check. `dnat`: the nat tables' DNAT rules; `docker_user`: whether the filter
/// table has a DOCKER-USER chain; `covered`: cf-allow's iptables backend hooks DOCKER-USER;
/// `ports`: the configured ports (empty = all); `lockdown`: the backend in use drops every
/// other source on those ports, which forwarded ports then escape.
pub fn check(
    dnat: &Result<Vec<Dnat>, String>,
    docker_user: &Result<bool, String>,
    covered: bool,
    ports: &[u16],
    lockdown: bool,
) -> Check {
    const ID: &str = "docker";
    const FIX: &str = "use `backend: iptables` with `iptables: {hooks: [INPUT, DOCKER-USER]}` so published container ports get the same allowlist";
    let published: Vec<String> = match dnat {
        Ok(rules) => {
            let mut found = Vec::new();
            for rule in rules {
                let mut ps: Vec<u16> = ports
                    .iter()
                    .copied()
                    .filter(|p| rule.forwards(*p))
                    .collect();
                if ports.is_empty() {
                    ps.extend(rule.dports.map(|(lo, _)| lo));
                }
                found.extend(ps.into_iter().map(|p| rule.describe(p)));
            }
            found
        }
        Err(_) => Vec::new(),
    };
    if covered {
        return Check::ok(
            ID,
            "DOCKER-USER is one of iptables.hooks: published container ports are covered",
        );
    }
    if !published.is_empty() && lockdown {
        return Check::fail(
            ID,
            format!(
                "{}: lockdown is on, but published container ports are not covered by cf-allow: every source reaches them, not only Cloudflare",
                published.join(", ")
            ),
            FIX,
        );
    }
    if !published.is_empty() {
        return Check::warn(
            ID,
            format!(
                "{}: published container ports are not covered by cf-allow, Docker forwards them before the INPUT hook cf-allow guards",
                published.join(", ")
            ),
            FIX,
        );
    }
    match docker_user {
        Ok(true) => Check::warn(
            ID,
            "a DOCKER-USER chain exists, but published container ports are not covered by cf-allow: Docker forwards them before the INPUT hook cf-allow uses",
            FIX,
        ),
        Ok(false) => Check::ok(
            ID,
            "no DOCKER-USER chain and no DNAT'd port (Docker's iptables rules are not in use)",
        ),
        Err(e) => Check::skip(ID, format!("cannot look for Docker's rules: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    // Captured with iptables-nft 1.8.9 after `docker run -p 443:8443`, as Docker 24 writes it.
    const NAT: &str = "*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 443 -j DNAT --to-destination 172.17.0.2:8443
-A DOCKER ! -i docker0 -p udp -m udp --dport 53 -j DNAT --to-destination 172.17.0.3:53
-A PREROUTING -p tcp -m tcp --dport 8000:8010 -j DNAT --to-destination 192.0.2.9
COMMIT
*filter
-A FORWARD -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4:80
COMMIT
";

    #[test]
    fn parses_dockers_dnat_rules() {
        let rules = parse_nat(NAT);
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            rules[0].describe(443),
            "443 is forwarded to 172.17.0.2:8443 by nat DOCKER"
        );
        assert!(rules[0].forwards(443) && !rules[0].forwards(80));
        assert!(rules[1].forwards(8005));
        assert_eq!(
            rules[1].describe(8005),
            "8005 is forwarded to 192.0.2.9:8005 by nat PREROUTING"
        );
    }

    #[test]
    fn published_ports_outside_the_hooks_are_a_warning() {
        let rules = Ok(parse_nat(NAT));
        let c = check(&rules, &Ok(true), false, &[80, 443], false);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.summary
                .starts_with("443 is forwarded to 172.17.0.2:8443 by nat DOCKER:"),
            "{c:?}"
        );
        assert!(c
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("hooks: [INPUT, DOCKER-USER]")));
        assert_eq!(
            check(&rules, &Ok(true), true, &[443], true).status,
            Status::Ok
        );
        let locked = check(&rules, &Ok(true), false, &[443], true);
        assert_eq!(locked.status, Status::Fail);
        assert!(locked.summary.contains("lockdown is on"), "{locked:?}");
        assert_eq!(
            check(&Ok(Vec::new()), &Ok(false), false, &[443], true).status,
            Status::Ok
        );
        assert_eq!(
            check(&Ok(Vec::new()), &Ok(true), false, &[443], false).status,
            Status::Warn
        );
        assert_eq!(
            check(&Err("x".into()), &Err("x".into()), false, &[443], false).status,
            Status::Skip
        );
    }
}
