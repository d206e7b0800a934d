//! `cf-allow sync`: fetch → validate → diff against the backend → apply only the difference.

use anyhow::{Context, Result};
use cf_allow_diff::{check_shrink, Family, Plan};
use serde_json::{json, Value};

use super::{families_json, list_json, print_json, Outcome};
use crate::backends;
use crate::cli::SyncArgs;
use crate::config::Config;
use crate::list::{self, Desired};
use crate::reach::State;
use crate::report::{Facts, Reporter};

/// What `main` needs to know about a sync.
pub struct Synced {
    /// Whether something changed (or would).
    pub outcome: Outcome,
    /// False when the verdict says Cloudflare is blocked somewhere, or cannot tell, or (with
    /// lockdown) that other sources get through too (exit 3).
    pub reachable: bool,
}

/// Runs `sync`, then writes the metrics file and runs the hooks (issue 16), failed runs
/// included.
pub fn run(config: Config, args: &SyncArgs, wait_secs: u64, quiet: bool) -> Result<Synced> {
    let mut reporter = Reporter::new(&config, args.dry_run);
    let result = sync(config, args, wait_secs, quiet, &mut reporter);
    reporter.finish(&result);
    result
}

fn sync(
    config: Config,
    args: &SyncArgs,
    wait_secs: u64,
    quiet: bool,
    reporter: &mut Reporter,
) -> Result<Synced> {
    let kind = backends::choose(args.backend, &config)?;
    reporter.backend(kind.as_str());
    let _lock = super::lock(&config.state_dir, wait_secs)?;
    let desired = list::desired(&config, &args.source)?;
    let max_shrink = config.guard.max_shrink_percent.0;
    let (mut backend, found) = super::open_and_inspect(kind, &config)?;
    let name = backend.name();
    let plan = Plan::between(&desired.ranges.only(&backend.families()), &found.ranges)
        .with_repairs(found.repairs);

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

    // The verdict over the host's whole input path: after applying, or (dry run with
    // changes) on the state the plan would produce.
    let placement = backend.placement();
    // Not a dry run with changes: the backend's sets now hold `plan.desired`.
    // What changed, for a verdict that carries over (see `reach::Applied`): nftables says
    // whether its batch held set elements only; ipset mode commits nothing to nf_tables,
    // which the verdict cache's generation check proves.
    let from = match backend.elements_committed() {
        Some(generation) => Some(Some(generation)),
        None if backends::ipset_mode(kind, &config) => Some(None),
        None => None,
    };
    let applied = from
        .filter(|_| changed && !args.dry_run)
        .map(|from| crate::reach::Applied {
            from,
            before: &found.ranges,
            added: &plan.add,
            removed: &plan.remove,
        });
    let state = if args.dry_run && changed {
        State::Projected(placement.as_ref())
    } else {
        State::Synced(&plan.desired, applied)
    };
    let reach = crate::reach::verdict(&desired.ranges, kind, state, &config);
    if let Some(reach) = &reach {
        reach.log();
    }
    let reachable = reach.as_ref().is_none_or(crate::reach::Report::ok);

    // outputs: after the firewall, from the same validated list.
    let outputs = super::outputs::sync(&config, &desired.ranges, args.dry_run)?;
    let outputs_changed = super::outputs::any_changed(&outputs);
    let changed_any = changed || outputs_changed;

    let mut warnings = found.warnings.clone();
    warnings.extend(reach.iter().flat_map(|r| r.warnings.iter().cloned()));
    // The run's JSON document, built only when something reads it (`--json`, an
    // `on_change` hook): at 100k ranges a first apply's document was an eighth of the run.
    let document = (args.json || reporter.wants_document()).then(|| {
        let mut document = plan_json(name, args.dry_run, &plan, &desired, &warnings);
        document["reachability"] = crate::reach::json_of(reach.as_ref());
        document["outputs"] = super::outputs::changes_json(&outputs);
        document["changed"] = json!(changed_any);
        document
    });
    if let (true, Some(document)) = (args.json, &document) {
        print_json(document)?;
    } else {
        if changed || !quiet || !reachable {
            print_plan(name, args.dry_run, &plan);
            for line in backend.describe(&plan) {
                println!("  {line}");
            }
            if let Some(reach) = &reach {
                println!("{name}: {}", reach.summary());
            }
        }
        let verb = if args.dry_run { "would write" } else { "wrote" };
        super::outputs::print_changes(&outputs, verb, quiet);
    }
    // --- metrics and hooks (issue 16) ---
    reporter.succeeded(Facts {
        document,
        changed: changed_any,
        ranges: [
            desired.ranges.len_of(Family::Ipv4),
            desired.ranges.len_of(Family::Ipv6),
        ],
        added: plan.add.len(),
        removed: plan.remove.len(),
        list_age: desired.list.age(),
        reachable: reach.as_ref().map(|r| r.verdict.reachable),
    });
    Ok(Synced {
        outcome: Outcome {
            changed: changed_any,
        },
        reachable,
    })
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
    use std::fmt::Write as _;
    let verb = if dry_run { "would change" } else { "changed" };
    if plan.is_empty() {
        println!(
            "{backend}: in sync ({} ranges), nothing to do",
            plan.unchanged
        );
        return;
    }
    // One buffer, printed at once: stdout is line-buffered, and a first apply of 100k
    // ranges was 100k writes.
    let mut text = format!(
        "{backend}: {verb}: +{} -{} ranges, {} unchanged\n",
        plan.add.len(),
        plan.remove.len(),
        plan.unchanged
    );
    for family in Family::ALL {
        for (sign, set) in [("  + ", &plan.add), ("  - ", &plan.remove)] {
            for net in set.iter_family(family) {
                text.push_str(sign);
                cf_allow_diff::text::push_net(&mut text, &net);
                text.push('\n');
            }
        }
    }
    for repair in &plan.repairs {
        let _ = writeln!(text, "  * {repair}");
    }
    print!("{text}");
}
