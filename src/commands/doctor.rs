//! `cf-allow doctor`: looks for the usual causes of Cloudflare Errors 521/522/523 on this
//! host and reports one check per line. Read-only: no firewall change, no cache write, no
//! download. The policy (which checks, in what order) and the verdicts live in
//! `cf_allow_doctor`; this module loads the config, reads the host's rules once (the verdict
//! engine's model), asks the backend what it holds, and prints.

use std::time::Duration;

use anyhow::{Context, Result};
use cf_allow_doctor::policy::{self, Facts};
use cf_allow_doctor::{basics, blocklists, docker, reachability, Check, Status};
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

    let (kind, backend) = choose_backend(args, &config);
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
    let (cloudflare, which) = match last_good.ok().flatten() {
        Some(list) => (list.ranges, "the last good list"),
        None => (
            cf_allow_fetch::embedded().ranges,
            "the list compiled into cf-allow (nothing cached)",
        ),
    };
    let allowed = cloudflare.union(&extra);
    // Not `open_and_inspect`: it logs the backend's warnings, which are checks here.
    let inspected = kind.map(|kind| {
        backends::open(kind, &config).and_then(|mut backend| {
            let found = backend.inspect().context("cannot read the current state")?;
            Ok((backend, found))
        })
    });
    let held = inspected
        .as_ref()
        .zip(kind)
        .map(|(opened, kind)| match opened {
            Ok((backend, found)) => Ok(basics::Held {
                name: backend.name(),
                ranges: &found.ranges,
                families: backend.families(),
                repairs: found.repairs.clone(),
                warnings: &found.warnings,
            }),
            Err(e) => Err(format!("{}: {}", kind.as_str(), crate::one_line(e))),
        });

    // The host's rules, read once by the verdict engine: the reachability verdict, the
    // forwarded (DNAT'd) ports and the block lists are questions to the same model (with
    // every ipset, also those no rule uses yet).
    let model = crate::reach::read_all_sets(&config);
    // What a sync would install, when it has something to do (the `firewall` check's plan).
    let pending = matches!(&held, Some(Ok(h)) if !h.plan(&allowed).is_empty());
    let resync = inspected
        .as_ref()
        .and_then(|opened| opened.as_ref().ok())
        .filter(|_| pending)
        .and_then(|(backend, _)| backend.placement());
    let report = kind
        .filter(|_| config.reachability.check)
        .map(|kind| crate::reach::verdict_on(&model, &allowed, kind, &config, resync.as_ref()));
    let facts = Facts {
        config_path: path.as_deref(),
        default_config_path: DEFAULT_PATH,
        backend,
        source_urls: (!args.offline)
            .then(|| config.sources.iter().flat_map(|alt| alt.urls()).collect()),
        state_dir: &config.state_dir,
        cached,
        cloudflare: &cloudflare,
        allowed: &allowed,
        which,
        held,
        label: labelled,
        reachability: reachability_verdict(kind, report.as_ref()),
        lockdown: kind.is_some_and(|kind| crate::reach::config_lockdown(kind, &config)),
        exposed: match &report {
            Some(report) => Ok(exposures(report)),
            None => Err("the reachability verdict is off".to_string()),
        },
        ports: &ports,
        timeout,
        settings: &config.doctor,
        own_nft: blocklists::OwnNft {
            table: config.nftables.table.clone(),
            into: config
                .nftables
                .into
                .as_ref()
                .map(|i| (i.family.as_str().to_string(), i.table.clone())),
        },
        csf_dir: &config.csf.dir,
    };
    let checks = policy::run(&facts, &model);

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

/// The backend to inspect, when one could be chosen, and how it was chosen (the `backend`
/// check's input).
fn choose_backend(
    args: &DoctorArgs,
    config: &Config,
) -> (Option<BackendKind>, basics::Backend<'static>) {
    let chosen = args.backend.or(config.backend);
    let how = match (args.backend, chosen) {
        (Some(_), _) => "chosen with --backend",
        (None, Some(_)) => "set in the config",
        (None, None) => "detected",
    };
    let kind = match backends::choose(args.backend, config) {
        Ok(kind) => kind,
        Err(e) => return (None, basics::Backend::NoneChosen(e.to_string())),
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
    let backend = basics::Backend::Chosen {
        name: kind.as_str(),
        how,
        missing,
    };
    (Some(kind), backend)
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

/// The verdict for the `reachability` check: the engine over the host's whole input path for
/// the allowed ranges on the ports, as the rules are now (read-only).
fn reachability_verdict(
    kind: Option<BackendKind>,
    report: Option<&crate::reach::Report>,
) -> Result<reachability::Verdict, String> {
    match (kind, report) {
        (None, _) => {
            Err("no backend could be chosen, so cf-allow's own rules are unknown".to_string())
        }
        (Some(_), None) => Err("reachability.check is off".to_string()),
        (Some(_), Some(report)) => Ok(reachability::Verdict {
            reachable: report.verdict.reachable,
            blocked: !report.verdict.blocked.is_empty(),
            summary: report.summary(),
            warnings: report.warnings.clone(),
        }),
    }
}
