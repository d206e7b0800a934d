//! One module per subcommand. Each returns whether it changed something (or would have),
//! so that `main` can pick the exit code.

pub mod check_config;
pub mod doctor;
pub mod outputs;
pub mod ranges;
pub mod remove;
pub mod status;
pub mod sync;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use cf_allow_diff::{Family, Inspection, RangeSet};
use cf_allow_fetch::FetchedList;

use crate::backends::{self, BackendKind, Firewall};
use crate::config::Config;
use crate::lock::{self, RunLock};

/// What `main` needs to know about a run.
pub struct Outcome {
    /// True when the firewall changed (or, for dry runs and status, would change).
    pub changed: bool,
}

/// Per-family JSON lists: `{"ipv4": [...], "ipv6": [...]}`.
pub fn families_json(set: &RangeSet) -> Value {
    json!({
        "ipv4": set.to_strings(Family::Ipv4),
        "ipv6": set.to_strings(Family::Ipv6),
    })
}

/// A fetched list's provenance and per-family counts: the `list` object of the `sync` and
/// `ranges` JSON documents and `last_good` of `status`.
pub fn list_json(list: &FetchedList) -> Value {
    json!({
        "ipv4": list.ranges.len_of(Family::Ipv4),
        "ipv6": list.ranges.len_of(Family::Ipv6),
        "source": list.source,
        "etag": list.etag,
        "origin": list.origin,
        "fetched_at": crate::time::rfc3339(list.fetched_at),
    })
}

/// Prints one JSON document on stdout (a failed write is an [`OutputError`]).
///
/// [`OutputError`]: crate::output::OutputError
pub fn print_json(value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    crate::output::write_stdout(text.as_bytes())?;
    Ok(())
}

/// Takes the run lock in `state_dir`.
pub fn lock(state_dir: &Path, wait_secs: u64) -> Result<RunLock> {
    lock::acquire(state_dir, Duration::from_secs(wait_secs))
}

/// Builds the backend of `kind` from `config`, reads what it manages now, and logs the
/// backend's warnings.
pub fn open_and_inspect(
    kind: BackendKind,
    config: &Config,
) -> Result<(Box<dyn Firewall>, Inspection)> {
    let mut backend = backends::open_recording(kind, config)?;
    let name = backend.name();
    let found = backend
        .inspect()
        .with_context(|| format!("{name}: cannot read the current state"))?;
    for warning in &found.warnings {
        tracing::warn!("{}", labelled(name, warning));
    }
    Ok((backend, found))
}

/// `warning` prefixed with the backend's `name`, unless it already starts with a one-word
/// subject of its own (`ip6tables: …`, `ipset: …`), which is more precise.
pub fn labelled(name: &str, warning: &str) -> String {
    let has_subject = warning
        .split_once(": ")
        .is_some_and(|(subject, _)| !subject.is_empty() && !subject.contains(' '));
    if has_subject {
        warning.to_string()
    } else {
        format!("{name}: {warning}")
    }
}
