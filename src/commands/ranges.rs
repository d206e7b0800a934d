//! `cf-allow ranges`: fetch, validate and print the list. It changes no firewall, so it takes
//! no run lock (cache writes are atomic renames).

use anyhow::Result;
use serde_json::json;

use super::{families_json, list_json, print_json, Outcome};
use crate::cli::RangesArgs;
use crate::config::Config;
use crate::list;

/// Runs `ranges`.
pub fn run(config: &Config, args: &RangesArgs) -> Result<Outcome> {
    let desired = list::desired(config, &args.source)?;
    if args.json {
        print_json(&json!({
            "ranges": families_json(&desired.ranges),
            "list": list_json(&desired.list),
        }))?;
    } else {
        // One buffer, one write: stdout is line-buffered, and a 100k list was 100k writes.
        crate::output::write_stdout(desired.ranges.to_string().as_bytes())?;
    }
    Ok(Outcome { changed: false })
}
