//! `cf-allow doctor`: looks for the usual causes of Cloudflare Error 521/523 on this host and
//! reports one check per line. Read-only: no firewall change, no cache write, no download.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use cf_allow_diff::{IpNet, Plan, RangeSet};
use cf_allow_doctor::iptables::FilterTable;
use cf_allow_doctor::{cloudflare_overlap, AddrRange, Check, Status};
use cf_allow_fetch::FetchedList;
use serde_json::json;

use super::{labelled, print_json, Outcome};
use crate::backends::{self, BackendKind};
use crate::cli::DoctorArgs;
use crate::config::{Config, Loaded, DEFAULT_PATH};

/// A list older than this means the timer is not running or every fetch fails.
const STALE_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The longest a source probe may wait for one connection.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to undo a block that keeps coming back.
const EXEMPT_CLOUDFLARE: &str = "exempt Cloudflare's ranges in the tool that adds these blocks \
     (fail2ban `ignoreip`, crowdsec whitelist, csf.ignore) and make the web server log the \
     visitor's address (CF-Connecting-IP) instead of Cloudflare's";

/// Runs `doctor`. "Changed" means: at least one warning or failure.
pub fn run(loaded: Loaded, args: &DoctorArgs) -> Result<Outcome> {
    let Loaded { config, path } = loaded;
    // A config doctor cannot understand is an error (exit 1), not a finding.
    let extra = crate::list::extra_cidrs(&config)?;

    let mut checks = vec![config_check(path.as_deref())];
    let kind = backend_checks(args, &config, &mut checks);
    checks.push(sources_check(&config, args.offline));
    let last_good = cf_allow_fetch::last_good(&config.state_dir);
    checks.push(list_check(&config.state_dir, &last_good));
    let (cloudflare, which) = match last_good.ok().flatten() {
        Some(list) => (list.ranges, "the last good list"),
        None => (
            cf_allow_fetch::embedded().ranges,
            "the list compiled into cf-allow (nothing cached)",
        ),
    };
    if let Some(kind) = kind {
        firewall_checks(kind, &config, &cloudflare, which, &extra, &mut checks);
    }
    listen_checks(&config, &mut checks);

    let tables = read_iptables(&config.iptables.variant);
    let ports: Vec<String> = config.ports.iter().map(|p| p.to_string()).collect();
    let shadow = Shadow {
        iptables_backend: kind == Some(BackendKind::Iptables),
        own_chain: &config.iptables.chain,
        ports: if ports.is_empty() {
            "all TCP ports".to_string()
        } else {
            format!("TCP {}", ports.join(", "))
        },
    };
    checks.extend(ipset_checks(&cloudflare, &tables, &shadow));
    checks.extend(iptables_checks(&cloudflare, &tables, &shadow));
    checks.extend(nft_set_checks(&cloudflare, &config.nftables));
    checks.extend(csf_checks(&cloudflare, &config.csf.dir));
    checks.push(docker_check(&tables, kind, &config.iptables.hooks));

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

fn config_check(path: Option<&Path>) -> Check {
    match path {
        Some(path) => Check::ok("config", format!("{} loaded", path.display())),
        None => Check::ok(
            "config",
            format!("no file at {DEFAULT_PATH}: built-in defaults apply"),
        ),
    }
}

/// The `backend` check; returns the backend to inspect when one could be chosen.
fn backend_checks(
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
            checks.push(Check::fail(
                "backend",
                e.to_string(),
                "install nftables or iptables (or CSF), or set `backend:` in the config",
            ));
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
        BackendKind::Firewalld => (!cf_allow_firewalld::running()).then_some(
            "firewalld is not running (nobody owns org.fedoraproject.FirewallD1 on the system bus)",
        ),
    };
    let name = kind.as_str();
    checks.push(match missing {
        None => Check::ok("backend", format!("{name} ({how}) is available")),
        Some(missing) => Check::fail(
            "backend",
            format!("{name} ({how}) is not available: {missing}"),
            "run as root, install the backend, or choose another with `backend:` / --backend",
        ),
    });
    Some(kind)
}

fn sources_check(config: &Config, offline: bool) -> Check {
    if offline {
        return Check::skip("sources", "--offline: the sources were not probed");
    }
    let timeout = Duration::from_secs(config.timeout_secs.0).min(MAX_PROBE_TIMEOUT);
    let urls: Vec<String> = config.sources.iter().flat_map(|alt| alt.urls()).collect();
    let failures: Vec<String> = urls
        .iter()
        .filter_map(|url| cf_allow_doctor::sources::probe(url, timeout).err())
        .collect();
    if failures.is_empty() {
        Check::ok(
            "sources",
            format!(
                "{n} of {n} source URLs are reachable (TCP connect or file read; nothing downloaded)",
                n = urls.len()
            ),
        )
    } else {
        Check::warn(
            "sources",
            format!(
                "{} of {} source URLs cannot be reached: {}",
                failures.len(),
                urls.len(),
                failures.join("; ")
            ),
            "check DNS, outbound HTTPS and any proxy; until a source answers, sync keeps using the cached list",
        )
    }
}

fn list_check(
    state_dir: &Path,
    last_good: &Result<Option<FetchedList>, cf_allow_fetch::FetchError>,
) -> Check {
    let sync_hint = "run `cf-allow sync`, and make sure the timer runs it \
                     (`systemctl enable --now cf-allow.timer`, or the cron file)";
    match last_good {
        Err(e) => Check::warn(
            "list",
            format!("cannot read the cached list: {e}"),
            sync_hint,
        ),
        Ok(None) => Check::warn(
            "list",
            format!(
                "no list cached in {}: cf-allow has never synced on this host",
                state_dir.display()
            ),
            sync_hint,
        ),
        Ok(Some(list)) => {
            let age = cf_allow_fetch::format_duration(list.age());
            let what = format!(
                "{} ranges from {}, fetched {} ({age} ago)",
                list.ranges.len(),
                list.source,
                crate::time::rfc3339(list.fetched_at)
            );
            if list.age() > STALE_AFTER {
                Check::warn(
                    "list",
                    format!("the last good list is stale: {what}; the timer is not running or every fetch fails"),
                    "check `systemctl status cf-allow.timer` and `journalctl -u cf-allow`, then run `cf-allow sync`",
                )
            } else {
                Check::ok("list", format!("last good list: {what}"))
            }
        }
    }
}

/// The `firewall` check (ranges and repairs) and one `backend-warning` per backend warning.
/// `list` is Cloudflare's list, `which` where it comes from, in words.
fn firewall_checks(
    kind: BackendKind,
    config: &Config,
    list: &RangeSet,
    which: &str,
    extra: &RangeSet,
    checks: &mut Vec<Check>,
) {
    // Not `open_and_inspect`: it logs the backend's warnings, which are checks here.
    let opened = backends::open(kind, config).and_then(|mut backend| {
        let found = backend.inspect().context("cannot read the current state")?;
        Ok((backend, found))
    });
    let (backend, found) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            checks.push(Check::fail(
                "firewall",
                format!("{}: {}", kind.as_str(), crate::one_line(&e)),
                "run as root and fix what the message names; `cf-allow status` shows the same",
            ));
            return;
        }
    };
    let name = backend.name();
    let expected = list.union(extra);
    let plan = Plan::between(&expected, &found.ranges).with_repairs(found.repairs);
    checks.push(if !plan.add.is_empty() {
        let first: Vec<String> = plan.add.iter().take(3).map(|n| n.to_string()).collect();
        Check::fail(
            "firewall",
            format!(
                "{} of the {} ranges of {which} plus extra_cidrs are missing from {name} (e.g. {}): Cloudflare's connections from them are not allowed",
                plan.add.len(),
                expected.len(),
                first.join(", ")
            ),
            "run `cf-allow sync`",
        )
    } else if !plan.is_empty() {
        let mut pending: Vec<String> = plan.repairs.clone();
        if !plan.remove.is_empty() {
            pending.push(format!("{} ranges no longer in the list", plan.remove.len()));
        }
        Check::warn(
            "firewall",
            format!(
                "{name} allows all {} ranges, but changes are pending: {}",
                expected.len(),
                pending.join("; ")
            ),
            "run `cf-allow sync`",
        )
    } else {
        Check::ok(
            "firewall",
            format!("{name} allows all {} ranges of {which} plus extra_cidrs", expected.len()),
        )
    });
    for warning in &found.warnings {
        let (summary, fix) = split_advice(warning);
        checks.push(Check::warn(
            "backend-warning",
            labelled(name, &summary),
            fix.unwrap_or_else(|| {
                "cf-allow cannot change this itself; adjust the firewall or the config as the warning says, then run `cf-allow status`".to_string()
            }),
        ));
    }
}

/// Splits "problem; set X to Y" into the problem and the advice, when the advice is there.
fn split_advice(warning: &str) -> (String, Option<String>) {
    for verb in ["set ", "run ", "add ", "use ", "enable "] {
        if let Some(at) = warning.rfind(&format!("; {verb}")) {
            return (
                warning[..at].to_string(),
                Some(warning[at + 2..].to_string()),
            );
        }
    }
    (warning.to_string(), None)
}

fn listen_checks(config: &Config, checks: &mut Vec<Check>) {
    if config.ports.is_empty() {
        checks.push(Check::skip(
            "listen",
            "ports: [] (all ports are opened to Cloudflare): no particular port to check",
        ));
        return;
    }
    let listeners = match cf_allow_doctor::listen::read_listeners() {
        Ok(l) => l,
        Err(e) => {
            checks.push(Check::warn(
                "listen",
                format!("cannot list the TCP listeners: {e}"),
                "check that /proc is mounted",
            ));
            return;
        }
    };
    for port in config.ports.iter().map(|p| p.0) {
        let id = format!("listen:{port}");
        let on_port: Vec<_> = listeners.iter().filter(|l| l.port == port).collect();
        let mut addrs: Vec<String> = on_port.iter().map(|l| l.addr.to_string()).collect();
        addrs.dedup();
        checks.push(if on_port.is_empty() {
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
        } else {
            Check::ok(id, format!("TCP {port} is listening on {}", addrs.join(", ")))
        });
    }
}

/// A filter table read for one family, or why it could not be.
struct TableRead {
    label: &'static str,
    /// The command that edits this table (`iptables`, `ip6tables-nft`, `iptables-legacy`…).
    command: String,
    /// Read with the legacy program next to the configured one: not what cf-allow drives.
    legacy: bool,
    table: Result<FilterTable, cf_allow_doctor::Error>,
}

/// What decides whether a drop rule really blocks Cloudflare's connections.
struct Shadow<'a> {
    /// The iptables backend is in use.
    iptables_backend: bool,
    /// cf-allow's chain (`iptables.chain`).
    own_chain: &'a str,
    /// The configured ports, for messages.
    ports: String,
}

impl Shadow<'_> {
    /// True when cf-allow's accept comes first: the iptables backend's jump is the first
    /// rule of INPUT and the drop is in a chain reached from INPUT.
    fn covers(&self, read: &TableRead, table: &FilterTable, chain: &str) -> bool {
        self.iptables_backend
            && !read.legacy
            && table.jumps_first("INPUT", self.own_chain)
            && table.reachable_from("INPUT").iter().any(|c| c == chain)
    }

    /// The verdict for a drop of Cloudflare's traffic in `chain`.
    fn check(
        &self,
        read: &TableRead,
        table: &FilterTable,
        chain: &str,
        id: &str,
        summary: String,
        fix: String,
    ) -> Check {
        if self.covers(read, table, chain) {
            Check::warn(
                id,
                format!(
                    "{summary}; cf-allow's jump at the top of INPUT accepts Cloudflare on {} first, other ports stay blocked",
                    self.ports
                ),
                fix,
            )
        } else {
            Check::fail(id, summary, fix)
        }
    }
}

/// Reads the filter tables: the configured (or default) variant of each family, plus the
/// legacy tables when the nf_tables variant says they exist too.
fn read_iptables(variant: &cf_allow_iptables::Variant) -> Vec<TableRead> {
    use cf_allow_iptables::Variant;
    let mut out = Vec::new();
    for (tool, legacy_label) in [
        ("iptables", "iptables (legacy)"),
        ("ip6tables", "ip6tables (legacy)"),
    ] {
        let command = variant.program(tool, "");
        let table = cf_allow_doctor::iptables::read_filter(&format!("{command}-save"));
        let also_legacy = !matches!(variant, Variant::Legacy)
            && matches!(&table, Ok(t) if t.legacy_tables_present);
        // The configured variant is what cf-allow drives, legacy or not.
        out.push(TableRead {
            label: tool,
            command,
            legacy: false,
            table,
        });
        if also_legacy {
            let command = Variant::Legacy.program(tool, "");
            out.push(TableRead {
                label: legacy_label,
                table: cf_allow_doctor::iptables::read_filter(&format!("{command}-save")),
                command,
                legacy: true,
            });
        }
    }
    out
}

/// `" and N more<what>"` for the hits after the first one, or nothing.
fn and_more(hits: usize, what: &str) -> String {
    match hits {
        0 | 1 => String::new(),
        n => format!(" and {} more{what}", n - 1),
    }
}

fn is_own_chain(chain: &str, own: &str) -> bool {
    chain.starts_with(own)
}

fn ipset_checks(cloudflare: &RangeSet, tables: &[TableRead], shadow: &Shadow) -> Vec<Check> {
    const ID: &str = "ipset";
    if !cf_allow_doctor::ipset::kernel_module_loaded() {
        return vec![Check::ok(
            ID,
            "no ipset sets (the ip_set kernel module is not loaded)",
        )];
    }
    let sets = match cf_allow_doctor::ipset::read_sets() {
        Ok(sets) => sets,
        Err(e) if e.is_missing_program() => return vec![Check::skip(ID, e.to_string())],
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot read the ipset sets: {e}"),
                "run as root",
            )]
        }
    };
    let mut checks = Vec::new();
    for set in sets
        .iter()
        .filter(|s| !cf_allow_doctor::ipset::is_allow_set(&s.name))
    {
        let hits: Vec<(&str, IpNet)> = set
            .entries
            .iter()
            .filter(|e| !e.nomatch)
            .filter_map(|e| {
                Some((
                    e.text.as_str(),
                    cloudflare_overlap(e.range.as_ref()?, cloudflare)?,
                ))
            })
            .collect();
        let Some((entry, range)) = hits.first().copied() else {
            continue;
        };
        let users: Vec<(&TableRead, &FilterTable, &cf_allow_doctor::iptables::Rule)> = tables
            .iter()
            .filter_map(|read| Some((read, read.table.as_ref().ok()?)))
            .flat_map(|(read, t)| t.rules.iter().map(move |r| (read, t, r)))
            .filter(|(_, _, r)| !is_own_chain(&r.chain, shadow.own_chain))
            .filter(|(_, _, r)| r.source_sets.contains(&set.name))
            .collect();
        let more = and_more(hits.len(), " Cloudflare addresses");
        let held = format!(
            "ipset set {} holds {entry} (Cloudflare's {range}){more}",
            set.name
        );
        let fix = format!("ipset del {} {entry}; {EXEMPT_CLOUDFLARE}", set.name);
        if let Some((read, table, rule)) = users.iter().find(|(_, t, r)| t.drops(r)) {
            checks.push(shadow.check(
                read,
                table,
                &rule.chain,
                ID,
                format!("{held}, and `{}` drops it", rule.text),
                fix,
            ));
        } else if users.is_empty()
            || users
                .iter()
                .any(|(_, _, r)| r.target.as_deref() != Some("ACCEPT"))
        {
            checks.push(Check::warn(
                ID,
                format!(
                    "{held}; no iptables rule was found that drops with it, check how it is used"
                ),
                fix,
            ));
        }
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            format!(
                "none of the {} ipset sets blocks a Cloudflare address",
                sets.len()
            ),
        ));
    }
    checks
}

fn iptables_checks(cloudflare: &RangeSet, tables: &[TableRead], shadow: &Shadow) -> Vec<Check> {
    let mut checks = Vec::new();
    for read in tables {
        let table = match &read.table {
            Ok(t) => t,
            Err(e) if e.is_missing_program() => {
                checks.push(Check::skip(read.label, e.to_string()));
                continue;
            }
            Err(e) => {
                checks.push(Check::warn(
                    read.label,
                    format!("cannot read the filter table: {e}"),
                    "run as root",
                ));
                continue;
            }
        };
        // Blocking rules per chain: (rule, Cloudflare range).
        let mut by_chain: BTreeMap<&str, Vec<(&str, IpNet)>> = BTreeMap::new();
        for rule in &table.rules {
            if is_own_chain(&rule.chain, shadow.own_chain) || !table.drops(rule) {
                continue;
            }
            if let Some(range) = rule
                .source
                .as_ref()
                .and_then(|s| cloudflare_overlap(s, cloudflare))
            {
                by_chain
                    .entry(&rule.chain)
                    .or_default()
                    .push((&rule.text, range));
            }
        }
        if by_chain.is_empty() {
            checks.push(Check::ok(
                read.label,
                format!(
                    "no rule in the filter table drops a Cloudflare address by source ({} rules read)",
                    table.rules.len()
                ),
            ));
        }
        for (chain, hits) in by_chain {
            let (text, range) = hits[0];
            let more = and_more(hits.len(), " such rules");
            checks.push(shadow.check(
                read,
                table,
                chain,
                read.label,
                format!("chain {chain} drops Cloudflare's {range}: `{text}`{more}"),
                format!(
                    "delete the rule ({} {}); {EXEMPT_CLOUDFLARE}",
                    read.command,
                    text.replacen("-A ", "-D ", 1)
                ),
            ));
        }
    }
    checks
}

fn nft_set_checks(cloudflare: &RangeSet, settings: &cf_allow_nftables::Settings) -> Vec<Check> {
    const ID: &str = "nftables-sets";
    let sets = match cf_allow_doctor::nft::read_sets() {
        Ok(sets) => sets,
        Err(e) if e.is_missing_program() => return vec![Check::skip(ID, "nft is not installed")],
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot read the nftables ruleset: {e}"),
                "run as root",
            )]
        }
    };
    let is_own = |s: &cf_allow_doctor::nft::NftSet| match &settings.into {
        None => s.family == "inet" && s.table == settings.table,
        Some(into) => {
            s.family == into.family.as_str()
                && s.table == into.table
                && matches!(s.name.as_str(), "cf_v4" | "cf_v6")
        }
    };
    let foreign: Vec<_> = sets.iter().filter(|s| !is_own(s)).collect();
    let mut checks = Vec::new();
    for set in &foreign {
        let hits: Vec<(&AddrRange, IpNet)> = set
            .elements
            .iter()
            .filter_map(|e| Some((e, cloudflare_overlap(e, cloudflare)?)))
            .collect();
        let Some((element, range)) = hits.first().copied() else {
            continue;
        };
        let more = and_more(hits.len(), "");
        checks.push(Check::warn(
            ID,
            format!(
                "set {} holds {element} (Cloudflare's {range}){more}; if a rule drops with this set, Cloudflare is blocked",
                set.path()
            ),
            format!(
                "check the rules that use @{} (`nft list table {} {}`); if it is a block list: nft delete element {} {{ {element} }}; {EXEMPT_CLOUDFLARE}",
                set.name, set.family, set.table, set.path()
            ),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            format!(
                "none of the {} foreign nftables sets holds a Cloudflare address",
                foreign.len()
            ),
        ));
    }
    checks
}

fn csf_checks(cloudflare: &RangeSet, csf_dir: &Path) -> Vec<Check> {
    const ID: &str = "csf-deny";
    if !csf_dir.join("csf.conf").is_file() {
        return vec![Check::skip(
            ID,
            format!(
                "CSF is not installed ({} does not exist)",
                csf_dir.join("csf.conf").display()
            ),
        )];
    }
    let mut checks = Vec::new();
    for (file, unblock) in [
        (csf_dir.join("csf.deny"), "csf -dr"),
        (
            Path::new(cf_allow_doctor::csf::TEMPBAN_FILE).to_path_buf(),
            "csf -tr",
        ),
    ] {
        let entries = match cf_allow_doctor::csf::read_deny_file(&file) {
            Ok(entries) => entries,
            Err(e) => {
                checks.push(Check::warn(ID, e.to_string(), "run as root"));
                continue;
            }
        };
        let hits: Vec<_> = entries
            .iter()
            .filter_map(|e| Some((e, cloudflare_overlap(&e.range, cloudflare)?)))
            .collect();
        if let Some((entry, range)) = hits.first() {
            let more = and_more(hits.len(), " Cloudflare entries");
            checks.push(Check::fail(
                ID,
                format!(
                    "{} line {} blocks {} (Cloudflare's {range}){more}",
                    file.display(),
                    entry.line,
                    entry.range
                ),
                format!("{unblock} {}; add Cloudflare's ranges to csf.ignore so lfd does not block them again", entry.range),
            ));
        }
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            "csf.deny and csf.tempban hold no Cloudflare address",
        ));
    }
    checks
}

fn docker_check(tables: &[TableRead], kind: Option<BackendKind>, hooks: &[String]) -> Check {
    const ID: &str = "docker";
    let Some(read) = tables.first() else {
        return Check::skip(ID, "iptables was not read");
    };
    let table = match &read.table {
        Ok(t) => t,
        Err(e) => return Check::skip(ID, format!("cannot look for DOCKER-USER: {e}")),
    };
    if !table.has_chain("DOCKER-USER") {
        return Check::ok(
            ID,
            "no DOCKER-USER chain (Docker's iptables rules are not in use)",
        );
    }
    let covered = kind == Some(BackendKind::Iptables) && hooks.iter().any(|h| h == "DOCKER-USER");
    if covered {
        Check::ok(
            ID,
            "DOCKER-USER is one of iptables.hooks: published container ports are covered",
        )
    } else {
        Check::warn(
            ID,
            "a DOCKER-USER chain exists, but published container ports are not covered by cf-allow: Docker forwards them before the INPUT hook cf-allow uses",
            "use `backend: iptables` with `iptables: {hooks: [INPUT, DOCKER-USER]}` if Cloudflare reaches containers through published ports",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_is_split_from_the_problem() {
        let (problem, fix) =
            split_advice("chain inet filter input drops; set nftables.into: {family: inet} to fix");
        assert_eq!(problem, "chain inet filter input drops");
        assert_eq!(
            fix.as_deref(),
            Some("set nftables.into: {family: inet} to fix")
        );
        assert_eq!(split_advice("CSF is disabled").1, None);
    }
}
