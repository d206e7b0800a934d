//! `cf-allow status`: what cf-allow manages now, and whether it matches the last good list.

use anyhow::{Context, Result};
use cf_allow_diff::Plan;
use cf_allow_fetch::Origin;
use serde_json::json;

use super::{families_json, list_json, print_json, Outcome};
use crate::backends;
use crate::cli::StatusArgs;
use crate::config::Config;

/// Runs `status`. "Changed" means: not in sync with the last good list, or repairs pending.
pub fn run(config: Config, args: &StatusArgs) -> Result<Outcome> {
    let kind = backends::choose(args.backend, &config)?;
    // The list the last sync applied: the cache, else (a sync that ran offline without one)
    // the compiled-in list.
    let last_good = cf_allow_fetch::last_good(&config.state_dir)
        .context("cannot read the cached list")?
        .unwrap_or_else(cf_allow_fetch::embedded);
    let extra = crate::list::extra_cidrs(&config)?;
    let (backend, found) = super::open_and_inspect(kind, &config)?;
    let name = backend.name();

    let expected = last_good.ranges.union(&extra);
    let plan = Plan::between(&expected, &found.ranges).with_repairs(found.repairs);
    // outputs: drift of the owned files against the same list, and whether each server loaded it.
    let outputs = super::outputs::status(&config, &expected)?;
    let in_sync = plan.is_empty() && super::outputs::all_in_sync(&outputs);

    if args.json {
        print_json(&json!({
            "backend": name,
            "present": found.present,
            "ranges": families_json(&found.ranges),
            "count": found.ranges.len(),
            "in_sync": in_sync,
            "missing": families_json(&plan.add),
            "unexpected": families_json(&plan.remove),
            "repairs": plan.repairs,
            "warnings": found.warnings,
            "last_good": list_json(&last_good),
            "outputs": super::outputs::states_json(&outputs),
        }))?;
        return Ok(Outcome { changed: !in_sync });
    }

    let installed = if found.present {
        "installed"
    } else {
        "nothing installed"
    };
    println!("backend: {name} ({installed})");
    println!(
        "ranges:  {} IPv4, {} IPv6",
        found.ranges.ipv4.len(),
        found.ranges.ipv6.len()
    );
    if last_good.origin == Origin::Embedded {
        println!(
            "list:    {} ranges compiled into cf-allow (no list cached yet)",
            last_good.ranges.len()
        );
    } else {
        println!(
            "list:    {} ranges from {} fetched {}",
            last_good.ranges.len(),
            last_good.source,
            crate::time::rfc3339(last_good.fetched_at)
        );
    }
    super::outputs::print_states(&outputs);
    if in_sync {
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
    for repair in &plan.repairs {
        println!("  repair:  {repair}");
    }
    for warning in &found.warnings {
        println!("  warning: {warning}");
    }
    Ok(Outcome { changed: !in_sync })
}
