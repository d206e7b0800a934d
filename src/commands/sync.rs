//! `cf-allow sync`: fetch → validate → diff against the backend → apply only the difference.

use anyhow::{Context, Result};
use cf_allow_diff::{check_shrink, Family, Plan};
use serde_json::{json, Value};

use super::{families_json, list_json, print_json, Outcome};
use crate::backends;
use crate::cli::SyncArgs;
use crate::config::Config;
use crate::list::{self, Desired};

/// Runs `sync`.
pub fn run(config: Config, args: &SyncArgs, wait_secs: u64, quiet: bool) -> Result<Outcome> {
    let kind = backends::choose(args.backend, &config)?;
    let _lock = super::lock(&config.state_dir, wait_secs)?;
    let desired = list::desired(&config, &args.source)?;
    let max_shrink = config.guard.max_shrink_percent.0;
    let (mut backend, found) = super::open_and_inspect(kind, &config)?;
    let name = backend.name();
    let plan = Plan::between(&desired.ranges, &found.ranges).with_repairs(found.repairs);

    if !args.force {
        check_shrink(found.ranges.len(), plan.remove.len(), max_shrink)?;
    } else if !plan.remove.is_empty() {
        tracing::warn!("--force: the shrink guard is not checked");
    }

    let changed = !plan.is_empty();
    if changed && !args.dry_run {
        backend
            .apply(&plan)
            .with_context(|| format!("{name}: the change was not applied"))?;
        tracing::debug!(
            "{name}: added {}, removed {}, {} unchanged{}",
            plan.add.len(),
            plan.remove.len(),
            plan.unchanged,
            if plan.repairs.is_empty() {
                String::new()
            } else {
                format!(", repaired: {}", plan.repairs.join("; "))
            }
        );
    }

    if args.json {
        print_json(&plan_json(
            name,
            args.dry_run,
            &plan,
            &desired,
            &found.warnings,
        ))?;
    } else if changed || !quiet {
        print_plan(name, args.dry_run, &plan);
        for line in backend.describe(&plan) {
            println!("  {line}");
        }
    }
    Ok(Outcome { changed })
}

fn plan_json(
    backend: &str,
    dry_run: bool,
    plan: &Plan,
    desired: &Desired,
    warnings: &[String],
) -> Value {
    json!({
        "backend": backend,
        "dry_run": dry_run,
        "changed": !plan.is_empty(),
        "added": families_json(&plan.add),
        "removed": families_json(&plan.remove),
        "unchanged": plan.unchanged,
        "repairs": plan.repairs,
        "warnings": warnings,
        "list": list_json(&desired.list),
    })
}

fn print_plan(backend: &str, dry_run: bool, plan: &Plan) {
    let verb = if dry_run { "would change" } else { "changed" };
    if plan.is_empty() {
        println!(
            "{backend}: in sync ({} ranges), nothing to do",
            plan.unchanged
        );
        return;
    }
    println!(
        "{backend}: {verb}: +{} -{} ranges, {} unchanged",
        plan.add.len(),
        plan.remove.len(),
        plan.unchanged
    );
    for family in Family::ALL {
        for net in plan.add.iter_family(family) {
            println!("  + {net}");
        }
        for net in plan.remove.iter_family(family) {
            println!("  - {net}");
        }
    }
    for repair in &plan.repairs {
        println!("  * {repair}");
    }
}
