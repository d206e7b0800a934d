//! The checks about cf-allow itself: its config, its backend, its sources, its cached list
//! and what the backend holds.

use std::time::Duration;

use cf_allow_diff::{Family, Plan, RangeSet};

use crate::Check;

/// A list older than this means the timer is not running or every fetch fails.
pub const STALE_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The `config` check: `path` is the file loaded, `None` when the defaults apply
/// (`default_path` names where the file would be).
pub fn config_check(path: Option<&std::path::Path>, default_path: &str) -> Check {
    match path {
        Some(path) => Check::ok("config", format!("{} loaded", path.display())),
        None => Check::ok(
            "config",
            format!("no file at {default_path}: built-in defaults apply"),
        ),
    }
}

/// How the backend was chosen, and whether it can work here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend<'a> {
    /// No backend could be chosen (detection's error).
    NoneChosen(String),
    /// `name` chosen `how` (`detected`, `set in the config`, `chosen with --backend`);
    /// `missing` says why it is not available.
    Chosen {
        /// `nftables`, `iptables`, `csf`.
        name: &'a str,
        /// How it was chosen.
        how: &'a str,
        /// Why it cannot work here, when it cannot.
        missing: Option<&'a str>,
    },
}

/// The `backend` check.
pub fn backend_check(backend: &Backend) -> Check {
    match backend {
        Backend::NoneChosen(e) => Check::fail(
            "backend",
            e.clone(),
            "install nftables or iptables (or CSF), or set `backend:` in the config",
        ),
        Backend::Chosen {
            name,
            how,
            missing: None,
        } => Check::ok("backend", format!("{name} ({how}) is available")),
        Backend::Chosen {
            name,
            how,
            missing: Some(missing),
        } => Check::fail(
            "backend",
            format!("{name} ({how}) is not available: {missing}"),
            "run as root, install the backend, or choose another with `backend:` / --backend",
        ),
    }
}

/// The `sources` check from each URL's probe (`Err` = why it cannot be reached); `None`
/// when `--offline` skipped the probes.
pub fn sources_check(probes: Option<&[Result<String, String>]>) -> Check {
    let Some(probes) = probes else {
        return Check::skip("sources", "--offline: the sources were not probed");
    };
    let failures: Vec<&str> = probes
        .iter()
        .filter_map(|p| p.as_ref().err())
        .map(String::as_str)
        .collect();
    if failures.is_empty() {
        Check::ok(
            "sources",
            format!(
                "{n} of {n} source URLs are reachable (TCP connect or file read; nothing downloaded)",
                n = probes.len()
            ),
        )
    } else {
        Check::warn(
            "sources",
            format!(
                "{} of {} source URLs cannot be reached: {}",
                failures.len(),
                probes.len(),
                failures.join("; ")
            ),
            "check DNS, outbound HTTPS and any proxy; until a source answers, sync keeps using the cached list",
        )
    }
}

/// The cached list, as the `list` check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedList {
    /// How many ranges.
    pub ranges: usize,
    /// Where it came from.
    pub source: String,
    /// When, as RFC 3339.
    pub fetched_at: String,
    /// How long ago.
    pub age: Duration,
    /// The same, in words (`3 h`).
    pub age_text: String,
}

/// The `list` check: `Err` = the cache cannot be read, `None` = nothing cached.
pub fn list_check(
    state_dir: &std::path::Path,
    cached: &Result<Option<CachedList>, String>,
) -> Check {
    let sync_hint = "run `cf-allow sync`, and make sure the timer runs it \
                     (`systemctl enable --now cf-allow.timer`, or the cron file)";
    match cached {
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
            let what = format!(
                "{} ranges from {}, fetched {} ({} ago)",
                list.ranges, list.source, list.fetched_at, list.age_text
            );
            if list.age > STALE_AFTER {
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

/// What the backend holds, for the `firewall` check.
#[derive(Clone, Debug)]
pub struct Held<'a> {
    /// The backend's name.
    pub name: &'a str,
    /// The ranges it allows now.
    pub ranges: &'a RangeSet,
    /// The address families it holds ranges for on this host (`Backend::families`: ufw with
    /// `IPV6=no` holds none of IPv6); the others are not expected of it.
    pub families: Vec<Family>,
    /// Repairs it would make.
    pub repairs: Vec<String>,
    /// Its warnings.
    pub warnings: &'a [String],
}

impl Held<'_> {
    /// What a sync would do to converge on `expected` (the list plus extra_cidrs) in the
    /// families the backend holds here, with the repairs it would make.
    pub fn plan(&self, expected: &RangeSet) -> Plan {
        Plan::between(&expected.only(&self.families), self.ranges)
            .with_repairs(self.repairs.clone())
    }
}

/// The `firewall` check and one `backend-warning` per backend warning. `expected`: the list
/// plus extra_cidrs; `which`: where the list comes from, in words; `label` prefixes a
/// warning with its subject.
pub fn firewall_checks(
    expected: &RangeSet,
    which: &str,
    held: Result<Held, String>,
    label: impl Fn(&str, &str) -> String,
) -> Vec<Check> {
    let held = match held {
        Ok(h) => h,
        Err(e) => {
            return vec![Check::fail(
                "firewall",
                e,
                "run as root and fix what the message names; `cf-allow status` shows the same",
            )]
        }
    };
    let name = held.name;
    // What sync would converge to: the families the backend holds here (as sync and status).
    let left_out: Vec<&str> = Family::ALL
        .into_iter()
        .filter(|f| !held.families.contains(f) && expected.len_of(*f) > 0)
        .map(|f| match f {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
        .collect();
    let plan = held.plan(expected);
    let expected = &expected.only(&held.families);
    let mut out = vec![if !plan.add.is_empty() {
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
            pending.push(format!(
                "{} ranges no longer in the list",
                plan.remove.len()
            ));
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
            if left_out.is_empty() {
                format!(
                    "{name} allows all {} ranges of {which} plus extra_cidrs",
                    expected.len()
                )
            } else {
                format!(
                    "{name} allows all {} ranges of {which} plus extra_cidrs that it holds here ({} left out: {name} does not filter them on this host; the reachability check judges them)",
                    expected.len(),
                    left_out.join(", ")
                )
            },
        )
    }];
    for warning in held.warnings {
        let (summary, fix) = split_advice(warning);
        out.push(Check::warn(
            "backend-warning",
            label(name, &summary),
            fix.unwrap_or_else(|| {
                "cf-allow cannot change this itself; adjust the firewall or the config as the warning says, then run `cf-allow status`".to_string()
            }),
        ));
    }
    out
}

/// Splits "problem; set X to Y" into the problem and the advice, when the advice is there.
pub fn split_advice(warning: &str) -> (String, Option<String>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

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

    #[test]
    fn firewall_check_follows_the_plan() {
        let nets = |s: &[&str]| RangeSet::aggregated(s.iter().map(|n| n.parse().expect("net")));
        let want = nets(&["104.16.0.0/13", "172.64.0.0/13"]);
        let held = |r| Held {
            name: "nftables",
            ranges: r,
            families: vec![Family::Ipv4, Family::Ipv6],
            repairs: Vec::new(),
            warnings: &[],
        };
        let label = |n: &str, w: &str| format!("{n}: {w}");
        let half = nets(&["104.16.0.0/13"]);
        let got = firewall_checks(&want, "the last good list", Ok(held(&half)), label);
        assert_eq!(got[0].status, Status::Fail);
        assert!(got[0].summary.starts_with("1 of the 2 ranges"), "{got:?}");
        let got = firewall_checks(&want, "the last good list", Ok(held(&want)), label);
        assert_eq!(got[0].status, Status::Ok);
        let warnings = ["policy drop; set nftables.into: x".to_string()];
        // A backend that holds no IPv6 here (ufw with IPV6=no) is not asked for it.
        let both = want.union(&nets(&["2400:cb00::/32"]));
        let v4_only = Held {
            families: vec![Family::Ipv4],
            ..held(&want)
        };
        let got = firewall_checks(&both, "l", Ok(v4_only), label);
        assert_eq!(got[0].status, Status::Ok, "{got:?}");
        assert!(got[0].summary.contains("(IPv6 left out"), "{got:?}");
        let got = firewall_checks(&both, "l", Ok(held(&want)), label);
        assert_eq!(got[0].status, Status::Fail, "{got:?}");
        let h = Held {
            name: "nftables",
            ranges: &want,
            families: vec![Family::Ipv4, Family::Ipv6],
            repairs: vec!["x".into()],
            warnings: &warnings,
        };
        let got = firewall_checks(&want, "l", Ok(h), label);
        assert_eq!((got[0].status, got[1].status), (Status::Warn, Status::Warn));
        assert_eq!(got[1].summary, "nftables: policy drop");
        assert_eq!(
            list_check(std::path::Path::new("/s"), &Ok(None)).status,
            Status::Warn
        );
        assert_eq!(sources_check(None).status, Status::Skip);
        assert_eq!(
            sources_check(Some(&[Ok("a".into()), Err("b".into())])).status,
            Status::Warn
        );
    }
}
