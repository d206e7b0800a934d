//! The `outputs:` step of `sync`, `remove` and `status`: web-server real-IP trust and
//! fail2ban's ignoreip, kept on the same validated list as the firewall (after it).

use anyhow::Result;
use cf_allow_diff::RangeSet;
use cf_allow_outputs::{Change, State};
use serde_json::{json, Value};

use crate::config::Config;

/// Writes every configured output from `ranges` (only those whose content changes), in
/// order; the first failure stops and is the error.
pub fn sync(config: &Config, ranges: &RangeSet, dry_run: bool) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for output in config.outputs.outputs() {
        changes.push(output.sync(ranges, dry_run)?);
    }
    Ok(changes)
}

/// Deletes every configured output's owned file.
pub fn remove(config: &Config, dry_run: bool) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for output in config.outputs.outputs() {
        changes.push(output.remove(dry_run)?);
    }
    Ok(changes)
}

/// Drift and load state of every configured output against `ranges`.
pub fn status(config: &Config, ranges: &RangeSet) -> Result<Vec<State>> {
    let mut states = Vec::new();
    for output in config.outputs.outputs() {
        states.push(output.status(ranges)?);
    }
    Ok(states)
}

/// True when any output changed.
pub fn any_changed(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.changed)
}

/// `[{"name": "nginx", "path": …, "changed": true}]`.
pub fn changes_json(changes: &[Change]) -> Value {
    changes
        .iter()
        .map(|c| json!({"name": c.name, "path": c.path, "changed": c.changed}))
        .collect()
}

/// One line per output: `nginx: wrote /etc/…` / `… in sync`.
pub fn print_changes(changes: &[Change], verb: &str, quiet: bool) {
    for c in changes {
        if c.changed {
            println!("{}: {verb} {}", c.name, c.path.display());
        } else if !quiet {
            println!("{}: {} in sync, nothing to do", c.name, c.path.display());
        }
    }
}

/// True when every output's file is as the list wants it.
pub fn all_in_sync(states: &[State]) -> bool {
    states.iter().all(|s| s.file == "in_sync")
}

/// `[{"name", "path", "file", "loaded", "detail"}]` for `status --json`.
pub fn states_json(states: &[State]) -> Value {
    states
        .iter()
        .map(|s| {
            json!({"name": s.name, "path": s.path, "file": s.file, "loaded": s.loaded, "detail": s.detail})
        })
        .collect()
}

/// `output:  nginx /etc/… in_sync, loaded` lines for `status`.
pub fn print_states(states: &[State]) {
    for s in states {
        let loaded = match s.loaded {
            Some(true) => "loaded by the server",
            Some(false) => "NOT loaded by the server",
            None => "load state unknown",
        };
        let file = match s.file {
            "in_sync" => "in sync",
            "missing" => "MISSING (run `cf-allow sync`)",
            "drifted" => "DRIFTED (run `cf-allow sync`)",
            _ => "NOT OWNED (no cf-allow header: left alone)",
        };
        let detail = s
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        println!(
            "output:  {} {} {file}, {loaded}{detail}",
            s.name,
            s.path.display()
        );
    }
}
