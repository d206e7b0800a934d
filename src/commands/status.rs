//! `cf-allow status`: what cf-allow manages now, and whether it matches the last good list.

use anyhow::Result;
use cf_allow_diff::Plan;
use cf_allow_fetch::Origin;
use serde_json::json;

use super::{families_json, list_json, print_json, Outcome};
use crate::backends;
use crate::cli::StatusArgs;
use crate::config::Config;

/// Runs `status`. "Changed" means: not in sync with the last good list, repairs pending, or
/// Cloudflare not reachable through the host's whole input path.
pub fn run(config: Config, args: &StatusArgs) -> Result<Outcome> {
    let kind = backends::choose(args.backend, &config)?;
    let last_good = crate::list::last_good(&config)?;
    let extra = crate::list::extra_cidrs(&config)?;
    let (backend, found) = super::open_and_inspect(kind, &config)?;
    let name = backend.name();

    let expected = last_good.ranges.union(&extra);
    let plan = Plan::between(&expected.only(&backend.families()), &found.ranges)
        .with_repairs(found.repairs);
    // outputs: drift of the owned files against the same list, and whether each server loaded it.
    let outputs = super::outputs::status(&config, &expected)?;
    let in_sync = plan.is_empty() && super::outputs::all_in_sync(&outputs);
    // With something to do, the verdict can tell whether the sync would fix what blocks.
    let resync = (!plan.is_empty()).then(|| backend.placement()).flatten();
    let reach = crate::reach::verdict(
        &expected,
        kind,
        crate::reach::State::Now(resync.as_ref()),
        &config,
    );
    let reachable = reach.as_ref().is_none_or(crate::reach::Report::ok);
    let mut warnings = found.warnings.clone();
    warnings.extend(reach.iter().flat_map(|r| r.warnings.iter().cloned()));

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
            "warnings": warnings,
            "last_good": list_json(&last_good),
            "outputs": super::outputs::states_json(&outputs),
            "reachability": crate::reach::json_of(reach.as_ref()),
        }))?;
        return Ok(Outcome {
            changed: !in_sync || !reachable,
        });
    }

    let installed = if found.present {
        "installed"
    } else {
        "nothing installed"
    };
    println!("backend: {name} ({installed})");
    println!(
        "ranges:  {} IPv4, {} IPv6",
        found.ranges.ipv4().len(),
        found.ranges.ipv6().len()
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
    if let Some(reach) = &reach {
        println!("reach:   {}", reach.summary());
        for warning in &reach.warnings {
            println!("  warning: {warning}");
        }
    }
    Ok(Outcome {
        changed: !in_sync || !reachable,
    })
}
