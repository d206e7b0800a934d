//! Ports forwarded by DNAT (Docker's, Podman's published ports: `nat PREROUTING → DOCKER →
//! DNAT`, netavark's `dnat ip to`) and the `docker` check. The forwarded ports come from the
//! reachability engine's model (crates/reach, asked by the binary: one reader of the host's
//! rules), and whether they are covered under lockdown from its verdict (`exposed`).

use crate::Check;

/// The check's stable id.
pub const ID: &str = "docker";

/// One port a nat rule in prerouting DNATs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnat {
    /// The destination port on this host.
    pub port: u16,
    /// Where it goes (`198.51.100.2:8443`, `local port 8080` for a redirect).
    pub to: String,
    /// The nat rule's table and chain (`ip nat DOCKER`, `inet netavark nv_…_dnat`).
    pub by: String,
}

impl Dnat {
    /// True when the rule forwards connections to `port`.
    pub fn forwards(&self, port: u16) -> bool {
        self.port == port
    }

    /// `443 is forwarded to 198.51.100.2:8443 by ip nat DOCKER`.
    pub fn describe(&self) -> String {
        format!("{} is forwarded to {} by {}", self.port, self.to, self.by)
    }
}

/// What the verdict said about outsiders on the forwarded ports (with lockdown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The forwarded ports other sources reach although lockdown is on.
    pub ports: Vec<u16>,
    /// The verdict's warning line for it (names the rule that lets them through and, after
    /// `; fix: `, a fix cf-allow accepts).
    pub warning: String,
}

/// The `docker` check. `dnat`: the forwarded ports of `ports` (from the model);
/// `lockdown`: the backend in use drops every other source on the ports; `exposed`: the
/// verdict's exposures of those ports (`Err`: no verdict, with the reason).
pub fn check(
    dnat: &Result<Vec<Dnat>, String>,
    lockdown: bool,
    exposed: &Result<Vec<Exposure>, String>,
) -> Check {
    let dnat = match dnat {
        Ok(d) => d,
        Err(e) => return Check::skip(ID, format!("cannot read the nat rules: {e}")),
    };
    if dnat.is_empty() {
        return Check::ok(
            ID,
            "no configured port is DNAT'd (no published container port on them)",
        );
    }
    let described = dnat
        .iter()
        .map(Dnat::describe)
        .collect::<Vec<_>>()
        .join(", ");
    if !lockdown {
        return Check::ok(
            ID,
            format!(
                "{described}: lockdown is off, so every source reaches them, as every other configured port"
            ),
        );
    }
    match exposed {
        Err(why) => Check::warn(
            ID,
            format!("{described}: cannot tell whether lockdown covers them ({why})"),
            "turn `reachability.check` on so the verdict evaluates the forward path",
        ),
        Ok(list) => {
            let open: Vec<&Exposure> = list
                .iter()
                .filter(|e| e.ports.iter().any(|p| dnat.iter().any(|d| d.forwards(*p))))
                .collect();
            match open.first() {
                None => Check::ok(
                    ID,
                    format!("{described}: covered, only the list gets through (lockdown)"),
                ),
                Some(first) => {
                    let (what, fix) = match first.warning.split_once("; fix: ") {
                        Some((w, f)) => (w.to_owned(), f.to_owned()),
                        None => (
                            first.warning.clone(),
                            "use `backend: iptables` with `iptables: {hooks: [INPUT, DOCKER-USER], lockdown: true}`, or `backend: nftables` with `nftables: {lockdown: true}` (its forward chain)".to_owned(),
                        ),
                    };
                    Check::fail(
                        ID,
                        format!(
                            "{described}: lockdown is on, but these published ports are not covered: {what}"
                        ),
                        fix,
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn dnat() -> Dnat {
        Dnat {
            port: 443,
            to: "198.51.100.2:8443".into(),
            by: "ip nat DOCKER".into(),
        }
    }

    #[test]
    fn published_ports_are_judged_by_the_verdict() {
        assert_eq!(
            dnat().describe(),
            "443 is forwarded to 198.51.100.2:8443 by ip nat DOCKER"
        );
        let d = Ok(vec![dnat()]);
        assert_eq!(check(&d, false, &Ok(Vec::new())).status, Status::Ok);
        let covered = check(&d, true, &Ok(Vec::new()));
        assert_eq!(covered.status, Status::Ok);
        assert!(covered.summary.contains("covered"), "{covered:?}");
        let open = Ok(vec![Exposure {
            ports: vec![443],
            warning: "ip filter DOCKER: \"-A DOCKER … -j ACCEPT\" lets sources outside the list reach TCP 443; fix: set `backend: iptables` with hooks".into(),
        }]);
        let failed = check(&d, true, &open);
        assert_eq!(failed.status, Status::Fail);
        assert!(
            failed.summary.starts_with(
                "443 is forwarded to 198.51.100.2:8443 by ip nat DOCKER: lockdown is on"
            ) && failed.summary.contains("ip filter DOCKER"),
            "{failed:?}"
        );
        assert_eq!(
            failed.fix.as_deref(),
            Some("set `backend: iptables` with hooks")
        );
        // An exposure of another (local) port is not this check's.
        let other = Ok(vec![Exposure {
            ports: vec![80],
            warning: "x".into(),
        }]);
        assert_eq!(check(&d, true, &other).status, Status::Ok);
        assert_eq!(check(&d, true, &Err("off".into())).status, Status::Warn);
        assert_eq!(
            check(&Ok(Vec::new()), true, &Ok(Vec::new())).status,
            Status::Ok
        );
        assert_eq!(
            check(&Err("x".into()), true, &Ok(Vec::new())).status,
            Status::Skip
        );
    }
}
