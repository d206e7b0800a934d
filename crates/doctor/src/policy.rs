//! doctor's policy: which checks run, in what order, from what. The binary passes plain data
//! ([`Facts`]: what only it can know — the config, the chosen backend and what it holds, the
//! reachability verdict it asked of the model with its backends' placements) and the one
//! [`HostModel`] it read; [`run`] does doctor's own read-only probes (listeners, routes,
//! services, DNS, fail2ban, CSF's deny files) and returns every check.

use std::path::Path;
use std::time::Duration;

use cf_allow_diff::{Family, RangeSet};
use cf_allow_reach::HostModel;

use crate::docker::{Dnat, Exposure};
use crate::{
    basics, blocklists, dns, docker, listen, ports, reachability, route, service, Check, HostFacts,
    Settings, Status,
};

/// What doctor is told: the config's values and what the binary read with its backends.
pub struct Facts<'a> {
    /// The config file that was loaded (`None`: built-in defaults).
    pub config_path: Option<&'a Path>,
    /// Where the config is looked for by default.
    pub default_config_path: &'a str,
    /// How the backend was chosen, and whether it can work here.
    pub backend: basics::Backend<'a>,
    /// The source URLs to probe (`None`: `--offline`).
    pub source_urls: Option<Vec<String>>,
    /// `state_dir`.
    pub state_dir: &'a Path,
    /// The last good list in `state_dir`.
    pub cached: Result<Option<basics::CachedList>, String>,
    /// Cloudflare's ranges (the last good list, else the compiled-in one).
    pub cloudflare: &'a RangeSet,
    /// What the `firewall` check expects: `cloudflare` plus `extra_cidrs`.
    pub allowed: &'a RangeSet,
    /// Where the list comes from, in words.
    pub which: &'a str,
    /// What the backend holds (`None`: no backend could be chosen; `Err`: it cannot be
    /// read, with the reason).
    pub held: Option<Result<basics::Held<'a>, String>>,
    /// Prefixes a backend warning with its subject.
    pub label: fn(&str, &str) -> String,
    /// The reachability verdict (`Err`: why it was not evaluated).
    pub reachability: Result<reachability::Verdict, String>,
    /// The backend locks its ports down.
    pub lockdown: bool,
    /// The verdict's exposures (outsiders accepted on locked-down ports).
    pub exposed: Result<Vec<Exposure>, String>,
    /// The configured ports (empty: all).
    pub ports: &'a [u16],
    /// The longest a probe may wait.
    pub timeout: Duration,
    /// The config's `doctor:` section.
    pub settings: &'a Settings,
    /// cf-allow's own nftables objects.
    pub own_nft: blocklists::OwnNft,
    /// CSF's directory.
    pub csf_dir: &'a Path,
}

/// Every check, in the order doctor reports them: the config and the list, cf-allow's own
/// firewall, the verdict over the host's input path, the ports and their listeners and
/// services, routes, DNS, fail2ban, the block lists, the forwarded ports.
pub fn run(facts: &Facts, model: &HostModel) -> Vec<Check> {
    let mut checks = vec![
        basics::config_check(facts.config_path, facts.default_config_path),
        basics::backend_check(&facts.backend),
    ];
    let probes: Option<Vec<Result<String, String>>> = facts.source_urls.as_ref().map(|urls| {
        urls.iter()
            .map(|url| crate::sources::probe(url, facts.timeout))
            .collect()
    });
    checks.push(basics::sources_check(probes.as_deref()));
    checks.push(basics::list_check(facts.state_dir, &facts.cached));
    if let Some(held) = &facts.held {
        checks.extend(basics::firewall_checks(
            facts.allowed,
            facts.which,
            held.clone(),
            facts.label,
        ));
    }
    checks.push(reachability::check(facts.reachability.clone()));

    // The host, read once.
    let host = HostFacts::read();
    let dnat = forwarded(model, facts.ports);
    let forwarded: &[Dnat] = dnat.as_deref().unwrap_or(&[]);
    // Cloudflare's ranges only: extra_cidrs (an office, a VPN) may well be routed elsewhere.
    let ipv6_allowed = facts.cloudflare.len_of(Family::Ipv6) > 0;
    let lookups = route::lookups(facts.cloudflare);

    checks.push(ports::check(facts.ports));
    let listens = listen::checks(facts.ports, &host, forwarded, ipv6_allowed);
    checks.extend(listens.iter().cloned());
    checks.extend(service_checks(
        facts,
        &listens,
        &host,
        &lookups,
        ipv6_allowed,
    ));
    let origin = dns_origin(facts, &host, &listens);
    checks.extend(route::checks(facts.cloudflare, &host, &lookups));
    checks.extend(dns::checks(facts.settings, &origin, facts.timeout));
    checks.extend(fail2ban_checks(facts.cloudflare, facts.timeout));
    // Block lists the verdict does not see (sets no rule uses yet, CSF's deny files).
    checks.extend(blocklists::set_checks(
        model,
        facts.cloudflare,
        &facts.own_nft,
    ));
    checks.extend(blocklists::csf_checks(facts.cloudflare, facts.csf_dir));
    checks.push(docker::check(&dnat, facts.lockdown, &facts.exposed));
    checks
}

/// The configured ports that prerouting DNATs (Docker's, Podman's published ports), from
/// the model: one reader of the host's rules.
pub fn forwarded(model: &HostModel, ports: &[u16]) -> Result<Vec<Dnat>, String> {
    if let Some(why) = model.unreadable_reason() {
        return Err(why.to_string());
    }
    let mut out: Vec<Dnat> = Vec::new();
    for f in model.forwarded(ports) {
        let d = Dnat {
            port: f.port,
            to: f.to.clone(),
            by: format!("{} {}", f.by.table, f.by.chain),
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// One `service:PORT` check per port whose `listen:PORT` check did not fail: a connect (and
/// on HTTPS ports a TLS handshake) to the address Cloudflare would use, per family.
fn service_checks(
    facts: &Facts,
    listens: &[Check],
    host: &HostFacts,
    lookups: &route::Lookups,
    ipv6_allowed: bool,
) -> Vec<Check> {
    let mut targets = Vec::new();
    targets.extend(route::default_source(host, lookups, false));
    if ipv6_allowed {
        targets.extend(route::default_source(host, lookups, true));
    }
    let sni = facts.settings.hostnames.first().map(String::as_str);
    let now = service::now_secs();
    let mut out = Vec::new();
    for &port in facts.ports {
        let listen_id = format!("listen:{port}");
        if listens
            .iter()
            .any(|c| c.id == listen_id && c.status == Status::Fail)
        {
            out.push(Check::skip(
                format!("service:{port}"),
                format!("nothing to connect to (see {listen_id})"),
            ));
            continue;
        }
        let probes: Vec<_> = targets
            .iter()
            .map(|ip| {
                let addr = std::net::SocketAddr::new(*ip, port);
                (
                    addr,
                    service::probe(addr, ports::is_https(port), sni, facts.timeout),
                )
            })
            .collect();
        out.push(service::evaluate(port, &probes, now));
    }
    out
}

/// What the `dns` check compares the records with.
fn dns_origin(facts: &Facts, host: &HostFacts, listens: &[Check]) -> dns::Origin {
    let addresses = match &host.addresses {
        Ok(addrs) => addrs.iter().filter(|a| a.global).map(|a| a.addr).collect(),
        Err(_) => Vec::new(),
    };
    let v6_listener = |port: Option<u16>| {
        host.listeners.as_ref().is_ok_and(|ls| {
            ls.iter().any(|l| {
                l.addr.is_ipv6() && !l.is_loopback_only() && port.is_none_or(|p| l.port == p)
            })
        })
    };
    let listens_v6 = if facts.ports.is_empty() {
        v6_listener(None)
    } else {
        facts.ports.iter().all(|&p| {
            v6_listener(Some(p))
                || listens
                    .iter()
                    .any(|c| c.id == format!("listen:{p}") && c.summary.contains("is forwarded to"))
        })
    };
    dns::Origin {
        addresses,
        public: facts.settings.public_addresses.clone(),
        has_global_v6: !host.global_addresses(true).is_empty(),
        listens_v6,
    }
}

/// The `fail2ban` check: bans inside Cloudflare's ranges and jails whose ignoreip misses them,
/// from what the running fail2ban answers (`fail2ban-client`, read-only).
fn fail2ban_checks(cloudflare: &RangeSet, timeout: Duration) -> Vec<Check> {
    let Some(client) = cf_allow_exec::find_program("fail2ban-client") else {
        return crate::fail2ban::check(None, cloudflare);
    };
    match cf_allow_outputs::fail2ban::probe(&client, timeout) {
        Ok(jails) => crate::fail2ban::check(jails.as_deref(), cloudflare),
        Err(e) => vec![Check::warn(
            crate::fail2ban::ID,
            format!("fail2ban did not answer: {e}"),
            "check `fail2ban-client status` as root",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cf_allow_testkit::{require_root, Netns};

    fn facts<'a>(
        cloudflare: &'a RangeSet,
        settings: &'a Settings,
        dir: &'a Path,
        ports: &'a [u16],
    ) -> Facts<'a> {
        Facts {
            config_path: None,
            default_config_path: "/etc/cf-allow/config.yaml",
            backend: basics::Backend::NoneChosen("no backend here".into()),
            source_urls: None,
            state_dir: dir,
            cached: Ok(None),
            cloudflare,
            allowed: cloudflare,
            which: "the test list",
            held: None,
            label: |_, w| w.to_string(),
            reachability: Err("no backend".into()),
            lockdown: false,
            exposed: Err("off".into()),
            ports,
            timeout: Duration::from_millis(200),
            settings,
            own_nft: blocklists::OwnNft::default(),
            csf_dir: dir,
        }
    }

    #[test]
    fn the_checks_come_in_doctors_order() {
        if !require_root("policy::the_checks_come_in_doctors_order") {
            return;
        }
        let ns = Netns::new("doc-policy");
        let ids: Vec<String> = ns.run_in(|| {
            let cloudflare = RangeSet::aggregated(["104.16.0.0/13".parse().expect("cidr")]);
            let settings = Settings::default();
            let dir = tempfile::tempdir().expect("dir");
            let ports = [443];
            let facts = facts(&cloudflare, &settings, dir.path(), &ports);
            let model = HostModel::unreadable("not read in this test");
            run(&facts, &model).into_iter().map(|c| c.id).collect()
        });
        let mut seen: Vec<&str> = ids.iter().map(String::as_str).collect();
        seen.dedup();
        assert_eq!(
            seen,
            [
                "config",
                "backend",
                "sources",
                "list",
                "reachability",
                "ports",
                "listen:443",
                "service:443",
                "route",
                "dns",
                "fail2ban",
                "blocklists",
                "csf-deny",
                "docker"
            ],
            "{ids:?}"
        );
    }
}
