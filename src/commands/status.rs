//! `cf-allow status`: what cf-allow manages now, and whether it matches the last good list.

use anyhow::{Context, Result};
use cf_allow_diff::{Plan, RangeSet};
use serde_json::json;

use super::{families_json, print_json, Outcome};
use crate::backends;
use crate::cli::StatusArgs;
use crate::config::Config;

/// Runs `status`. "Changed" means: not in sync with the last good list, or repairs pending.
pub fn run(mut config: Config, args: &StatusArgs) -> Result<Outcome> {
    let kind = backends::choose(args.backend, &config)?;
    let last_good =
        cf_allow_fetch::last_good(&config.state_dir).context("cannot read the cached list")?;
    let extra = crate::list::extra_cidrs(&config)?;
    let (backend, found) = super::open_and_inspect(kind, &mut config)?;
    let name = backend.name();

    let expected: Option<RangeSet> = last_good.as_ref().map(|l| l.ranges.union(&extra));
    let plan = expected
        .as_ref()
        .map(|want| Plan::between(want, &found.ranges).with_repairs(found.repairs.clone()));
    let in_sync = plan.as_ref().map(|p| p.is_empty());

    if args.json {
        print_json(&json!({
            "backend": name,
            "present": found.present,
            "ranges": families_json(&found.ranges),
            "count": found.ranges.len(),
            "in_sync": in_sync,
            "missing": plan.as_ref().map(|p| families_json(&p.add)),
            "unexpected": plan.as_ref().map(|p| families_json(&p.remove)),
            "repairs": found.repairs,
            "warnings": found.warnings,
            "last_good": last_good.as_ref().map(|l| json!({
                "source": l.source,
                "etag": l.etag,
                "origin": l.origin,
                "fetched_at": crate::time::rfc3339(l.fetched_at),
                "ipv4": l.ranges.ipv4.len(),
                "ipv6": l.ranges.ipv6.len(),
            })),
        }))?;
    } else {
        println!(
            "backend: {name} ({})",
            if found.present {
                "installed"
            } else {
                "nothing installed"
            }
        );
        println!(
            "ranges:  {} IPv4, {} IPv6",
            found.ranges.ipv4.len(),
            found.ranges.ipv6.len()
        );
        match (&last_good, &plan) {
            (Some(list), Some(plan)) => {
                println!(
                    "list:    {} ranges from {} fetched {}",
                    list.ranges.len(),
                    list.source,
                    crate::time::rfc3339(list.fetched_at)
                );
                if plan.is_empty() {
                    println!("state:   in sync");
                } else {
                    println!(
                        "state:   OUT OF SYNC: {} missing, {} unexpected, {} repairs (run `cf-allow sync`)",
                        plan.add.len(),
                        plan.remove.len(),
                        plan.repairs.len()
                    );
                    for net in plan.add.iter() {
                        println!("  missing    {net}");
                    }
                    for net in plan.remove.iter() {
                        println!("  unexpected {net}");
                    }
                }
            }
            _ => println!("list:    no list cached yet (run `cf-allow sync`)"),
        }
        for repair in &found.repairs {
            println!("  repair:  {repair}");
        }
        for warning in &found.warnings {
            println!("  warning: {warning}");
        }
    }
    Ok(Outcome {
        changed: in_sync != Some(true),
    })
}
