//! `cf-allow remove`: delete everything cf-allow created on the backend, nothing else.

use anyhow::{Context, Result};
use serde_json::json;

use super::{print_json, Outcome};
use crate::backends;
use crate::cli::RemoveArgs;
use crate::config::Config;

/// Runs `remove`.
pub fn run(config: Config, args: &RemoveArgs, wait_secs: u64, quiet: bool) -> Result<Outcome> {
    let kind = backends::choose(args.backend, &config)?;
    let _lock = super::lock(&config.state_dir, wait_secs)?;
    let mut backend = backends::open(kind, &config)?;
    let name = backend.name();
    let removed = backend
        .remove(args.dry_run)
        .with_context(|| format!("{name}: remove failed"))?;
    if !args.dry_run {
        for line in &removed {
            tracing::debug!("{name}: removed {line}");
        }
    }
    // outputs: their owned files go too.
    let outputs = super::outputs::remove(&config, args.dry_run)?;
    let outputs_changed = super::outputs::any_changed(&outputs);
    if !args.json {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        super::outputs::print_changes(&outputs, verb, true);
    }

    if args.json {
        print_json(&json!({
            "backend": name,
            "dry_run": args.dry_run,
            "changed": !removed.is_empty() || outputs_changed,
            "removed": removed,
            "outputs": super::outputs::changes_json(&outputs),
        }))?;
    } else if removed.is_empty() {
        if !quiet {
            println!("{name}: nothing to remove");
        }
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for line in &removed {
            // A line with its own subject (`ip6tables: the jump …`) keeps it in front.
            match line.split_once(": ") {
                Some((subject, rest)) if !subject.is_empty() && !subject.contains(' ') => {
                    println!("{subject}: {verb} {rest}")
                }
                _ => println!("{name}: {verb} {line}"),
            }
        }
    }
    Ok(Outcome {
        changed: !removed.is_empty() || outputs_changed,
    })
}
