//! `cf-allow doctor`: looks for the usual causes of Cloudflare Errors 521/522/523 on this
//! host and reports one check per line. Read-only: no firewall change, no cache write, no
//! download. The verdicts live in `cf_allow_doctor`; this module reads the inputs once and
//! wires them.

use std::time::Duration;

use anyhow::{Context, Result};
use cf_allow_diff::{Family, RangeSet};
use cf_allow_doctor::docker::Dnat;
use cf_allow_doctor::{
    basics, blocklists, dns, docker, listen, ports, route, service, Check, HostFacts, Status,
};
use serde_json::json;

use super::{labelled, print_json, Outcome};
use crate::backends::{self, BackendKind};
use crate::cli::DoctorArgs;
use crate::config::{Config, Loaded, DEFAULT_PATH};

/// The longest a probe (source connect, service connect, API request) may wait.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `doctor`. "Changed" means: at least one warning or failure.
pub fn run(loaded: Loaded, args: &DoctorArgs) -> Result<Outcome> {
    let Loaded { config, path } = loaded;
    // A config doctor cannot understand is an error (exit 1), not a finding.
    let extra = crate::list::extra_cidrs(&config)?;
    let timeout = Duration::from_secs(config.timeout_secs.0).min(MAX_PROBE_TIMEOUT);
    let ports: Vec<u16> = config.ports.iter().map(|p| p.0).collect();

    let mut checks = vec![basics::config_check(path.as_deref(), DEFAULT_PATH)];
    let kind = backend_check(args, &config, &mut checks);
    let probes: Option<Vec<Result<String, String>>> = (!args.offline).then(|| {
        config
            .sources
            .iter()
            .flat_map(|alt| alt.urls())
            .map(|url| cf_allow_doctor::sources::probe(&url, timeout))
            .collect()
    });
    checks.push(basics::sources_check(probes.as_deref()));
    let last_good = cf_allow_fetch::last_good(&config.state_dir);
    let cached = match &last_good {
        Err(e) => Err(e.to_string()),
        Ok(None) => Ok(None),
        Ok(Some(list)) => Ok(Some(basics::CachedList {
            ranges: list.ranges.len(),
            source: list.source.clone(),
            fetched_at: crate::time::rfc3339(list.fetched_at),
            age: list.age(),
            age_text: cf_allow_fetch::format_duration(list.age()),
        })),
    };
    checks.push(basics::list_check(&config.state_dir, &cached));
    let (cloudflare, which) = match last_good.ok().flatten() {
        Some(list) => (list.ranges, "the last good list"),
        None => (
            cf_allow_fetch::embedded().ranges,
            "the list compiled into cf-allow (nothing cached)",
        ),
    };
    let allowed = cloudflare.union(&extra);
    if let Some(kind) = kind {
        checks.extend(firewall_checks(kind, &config, &allowed, which));
    }
    // The host's rules, read once by the verdict engine: the reachability verdict, the
    // forwarded (DNAT'd) ports and the block lists are questions to the same model (with
    // every ipset, also those no rule uses yet).
    let model = crate::reach::read_with(&config, true);
    let report = kind
        .filter(|_| config.reachability.check)
        .map(|kind| crate::reach::verdict_on(&model, &allowed, kind, &config));
    checks.push(reachability_check(kind, report.as_ref()));

    // The host, read once.
    let facts = HostFacts::read();
    let dnat = read_dnat(&model, &ports);
    let forwarded: &[Dnat] = dnat.as_deref().unwrap_or(&[]);
    // Cloudflare's ranges only: extra_cidrs (an office, a VPN) may well be routed elsewhere.
    let ipv6_allowed = cloudflare.len_of(Family::Ipv6) > 0;
    let lookups = route::lookups(&cloudflare);

    checks.push(ports::check(&ports));
    let listens = listen::checks(&ports, &facts, forwarded, ipv6_allowed);
    checks.extend(listens.iter().cloned());
    checks.extend(service_checks(
        &ports,
        &listens,
        &facts,
        &lookups,
        ipv6_allowed,
        &config,
        timeout,
    ));
    let origin = dns_origin(&facts, &listens, &config);
    checks.extend(route::checks(&cloudflare, &facts, &lookups));
    checks.extend(dns::checks(&config.doctor, &origin, timeout));
    checks.extend(fail2ban_checks(&cloudflare, timeout));

    // Block lists the verdict does not see (sets no rule uses yet, CSF's deny files).
    let own_nft = blocklists::OwnNft {
        table: config.nftables.table.clone(),
        into: config
            .nftables
            .into
            .as_ref()
            .map(|i| (i.family.as_str().to_string(), i.table.clone())),
    };
    checks.extend(blocklists::set_checks(&model, &cloudflare, &own_nft));
    checks.extend(blocklists::csf_checks(&cloudflare, &config.csf.dir));

    let lockdown = kind.is_some_and(|kind| crate::reach::config_lockdown(kind, &config));
    let exposed = match &report {
        Some(report) => Ok(exposures(report)),
        None => Err("the reachability verdict is off".to_string()),
    };
    checks.push(docker::check(&dnat, lockdown, &exposed));

    let findings = checks.iter().any(|c| c.status.is_finding());
    if args.json {
        print_json(&json!({ "checks": checks, "ok": !findings }))?;
    } else {
        print_report(&checks);
    }
    Ok(Outcome { changed: findings })
}

fn print_report(checks: &[Check]) {
    for check in checks {
        println!(
            "{:<4}  {}: {}",
            check.status.label(),
            check.id,
            check.summary
        );
        if let (true, Some(fix)) = (check.status.is_finding(), &check.fix) {
            println!("      fix: {fix}");
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    println!(
        "{} ok, {} warnings, {} failures, {} skipped",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip)
    );
}

/// The `backend` check; returns the backend to inspect when one could be chosen.
fn backend_check(
    args: &DoctorArgs,
    config: &Config,
    checks: &mut Vec<Check>,
) -> Option<BackendKind> {
    let chosen = args.backend.or(config.backend);
    let how = match (args.backend, chosen) {
        (Some(_), _) => "chosen with --backend",
        (None, Some(_)) => "set in the config",
        (None, None) => "detected",
    };
    let kind = match backends::choose(args.backend, config) {
        Ok(kind) => kind,
        Err(e) => {
            checks.push(basics::backend_check(&basics::Backend::NoneChosen(
                e.to_string(),
            )));
            return None;
        }
    };
    // Detection only picks an available backend; one chosen by hand may not be.
    let missing = match kind {
        _ if chosen.is_none() => None,
        BackendKind::Nftables => (!cf_allow_nftables::available()).then_some(
            "the kernel does not answer nf_tables requests (not root, or no nf_tables support)",
        ),
        BackendKind::Iptables => {
            (!cf_allow_iptables::available()).then_some("iptables-restore is not installed")
        }
        BackendKind::Csf => (!cf_allow_csf::available())
            .then_some("CSF is not installed (/etc/csf/csf.conf and the csf program)"),
        BackendKind::Ufw => (!cf_allow_ufw::active())
            .then_some("ufw is not installed or not enabled (ENABLED=yes in /etc/ufw/ufw.conf)"),
        BackendKind::Firewalld => (!cf_allow_firewalld::running()).then_some(
            "firewalld is not running (nobody owns org.fedoraproject.FirewallD1 on the system bus)",
        ),
    };
    checks.push(basics::backend_check(&basics::Backend::Chosen {
        name: kind.as_str(),
        how,
        missing,
    }));
    Some(kind)
}

/// The `firewall` check (ranges and repairs) and one `backend-warning` per backend warning.
fn firewall_checks(
    kind: BackendKind,
    config: &Config,
    expected: &RangeSet,
    which: &str,
) -> Vec<Check> {
    // Not `open_and_inspect`: it logs the backend's warnings, which are checks here.
    let opened = backends::open(kind, config).and_then(|mut backend| {
        let found = backend.inspect().context("cannot read the current state")?;
        Ok((backend, found))
    });
    match opened {
        Ok((backend, found)) => basics::firewall_checks(
            expected,
            which,
            Ok(basics::Held {
                name: backend.name(),
                ranges: &found.ranges,
                repairs: found.repairs.clone(),
                warnings: &found.warnings,
            }),
            labelled,
        ),
        Err(e) => basics::firewall_checks(
            expected,
            which,
            Err(format!("{}: {}", kind.as_str(), crate::one_line(&e))),
            labelled,
        ),
    }
}

/// The configured ports that prerouting DNATs (Docker's, Podman's published ports), from
/// the verdict engine's model: one reader of the host's rules.
fn read_dnat(model: &cf_allow_reach::HostModel, ports: &[u16]) -> Result<Vec<Dnat>, String> {
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

/// The verdict's exposures (outsiders accepted on locked-down ports), with their warning
/// lines (which name the rule and a fix cf-allow accepts).
fn exposures(report: &crate::reach::Report) -> Vec<docker::Exposure> {
    let lines: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.contains("although lockdown is on"))
        .collect();
    report
        .verdict
        .exposed
        .iter()
        .map(|f| docker::Exposure {
            ports: f
                .ports
                .iter()
                .flat_map(|p| p.first..=p.last.min(p.first.saturating_add(64)))
                .collect(),
            warning: lines
                .iter()
                .find(|l| l.starts_with(&f.by.to_string()))
                .map_or_else(|| f.by.to_string(), |l| (*l).clone()),
        })
        .collect()
}

/// One `service:PORT` check per port whose `listen:PORT` check did not fail: a connect (and
/// on HTTPS ports a TLS handshake) to the address Cloudflare would use, per family.
fn service_checks(
    ports: &[u16],
    listens: &[Check],
    facts: &HostFacts,
    lookups: &route::Lookups,
    ipv6_allowed: bool,
    config: &Config,
    timeout: Duration,
) -> Vec<Check> {
    let mut targets = Vec::new();
    targets.extend(route::default_source(facts, lookups, false));
    if ipv6_allowed {
        targets.extend(route::default_source(facts, lookups, true));
    }
    let sni = config.doctor.hostnames.first().map(String::as_str);
    let now = service::now_secs();
    let mut out = Vec::new();
    for &port in ports {
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
                    service::probe(addr, ports::is_https(port), sni, timeout),
                )
            })
            .collect();
        out.push(service::evaluate(port, &probes, now));
    }
    out
}

/// What the `dns` check compares the records with.
fn dns_origin(facts: &HostFacts, listens: &[Check], config: &Config) -> dns::Origin {
    let addresses = match &facts.addresses {
        Ok(addrs) => addrs.iter().filter(|a| a.global).map(|a| a.addr).collect(),
        Err(_) => Vec::new(),
    };
    let v6_listener = |port: Option<u16>| {
        facts.listeners.as_ref().is_ok_and(|ls| {
            ls.iter().any(|l| {
                l.addr.is_ipv6() && !l.is_loopback_only() && port.is_none_or(|p| l.port == p)
            })
        })
    };
    let listens_v6 = if config.ports.is_empty() {
        v6_listener(None)
    } else {
        config.ports.iter().all(|p| {
            v6_listener(Some(p.0))
                || listens.iter().any(|c| {
                    c.id == format!("listen:{}", p.0) && c.summary.contains("is forwarded to")
                })
        })
    };
    dns::Origin {
        addresses,
        public: config.doctor.public_addresses.clone(),
        has_global_v6: !facts.global_addresses(true).is_empty(),
        listens_v6,
    }
}

/// The `fail2ban` check: bans inside Cloudflare's ranges and jails whose ignoreip misses them,
/// from what the running fail2ban answers (`fail2ban-client`, read-only).
fn fail2ban_checks(cloudflare: &RangeSet, timeout: std::time::Duration) -> Vec<Check> {
    let Some(client) = cf_allow_exec::find_program("fail2ban-client") else {
        return cf_allow_doctor::fail2ban::check(None, cloudflare);
    };
    match cf_allow_outputs::fail2ban::probe(&client, timeout) {
        Ok(jails) => cf_allow_doctor::fail2ban::check(jails.as_deref(), cloudflare),
        Err(e) => vec![Check::warn(
            cf_allow_doctor::fail2ban::ID,
            format!("fail2ban did not answer: {e}"),
            "check `fail2ban-client status` as root",
        )],
    }
}

/// The `reachability` check: the verdict engine over the host's whole input path for the
/// allowed ranges on `ports`, as the rules are now (read-only).
fn reachability_check(kind: Option<BackendKind>, report: Option<&crate::reach::Report>) -> Check {
    let verdict = match (kind, report) {
        (None, _) => {
            Err("no backend could be chosen, so cf-allow's own rules are unknown".to_string())
        }
        (Some(_), None) => Err("reachability.check is off".to_string()),
        (Some(_), Some(report)) => Ok(cf_allow_doctor::reachability::Verdict {
            reachable: report.verdict.reachable,
            blocked: !report.verdict.blocked.is_empty(),
            summary: report.summary(),
            warnings: report.warnings.clone(),
        }),
    };
    cf_allow_doctor::reachability::check(verdict)
}
