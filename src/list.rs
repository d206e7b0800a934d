//! The list cf-allow wants on the firewall: Cloudflare's ranges plus `extra_cidrs`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cf_allow_diff::RangeSet;
use cf_allow_fetch::{FetchOptions, FetchedList, Validation};

use crate::cli::SourceArgs;
use crate::config::Config;

/// The fetched list and the ranges to apply.
pub struct Desired {
    /// Cloudflare's list as fetched (or from the cache / compiled in).
    pub list: FetchedList,
    /// The list plus `extra_cidrs`, aggregated.
    pub ranges: RangeSet,
}

/// The validation limits from the `guard` section.
fn validation(config: &Config) -> Validation {
    Validation {
        allow_reserved: config.guard.allow_reserved,
        max_entries: config.guard.max_entries,
    }
}

/// Fetch options from the config, with `--source` / `--offline` applied.
fn fetch_options(config: &Config, args: &SourceArgs) -> FetchOptions {
    let alternatives = if args.sources.is_empty() {
        config.sources.iter().map(|alt| alt.urls()).collect()
    } else {
        vec![args.sources.clone()]
    };
    let mut options = FetchOptions::new(alternatives, PathBuf::from(&config.state_dir));
    options.timeout = Duration::from_secs(config.timeout_secs.0);
    options.offline = args.offline;
    options.validation = validation(config);
    options.max_body_bytes = body_limit(config.guard.max_entries);
    options
}

/// The body-size limit: 1 MiB, or room for `max_entries` entries of the longest form
/// (an IPv6 CIDR in JSON quotes with a comma, under 64 bytes) when that is more, so that
/// raising `guard.max_entries` is all a large list needs.
pub fn body_limit(max_entries: usize) -> u64 {
    (max_entries as u64).saturating_mul(64).max(1024 * 1024)
}

/// The config's `extra_cidrs`, validated like a feed except that one family may be absent
/// and reserved ranges (an internal load balancer in 10.0.0.0/8) are the admin's own choice:
/// still syntax-checked and never wider than a feed may be.
pub fn extra_cidrs(config: &Config) -> Result<RangeSet> {
    let own = Validation {
        allow_reserved: true,
        ..validation(config)
    };
    cf_allow_fetch::validate_cidrs("extra_cidrs", &config.extra_cidrs, &own).context("config")
}

/// What the firewall should hold without fetching: the last good list (the cache, else the
/// compiled-in list) plus `extra_cidrs`.
pub fn expected(config: &Config) -> Result<RangeSet> {
    let last_good = last_good(config)?;
    Ok(last_good.ranges.union(&extra_cidrs(config)?))
}

/// The list the last sync applied: the cache, else (a sync that ran offline without one) the
/// compiled-in list.
pub fn last_good(config: &Config) -> Result<FetchedList> {
    Ok(cf_allow_fetch::last_good(&config.state_dir)
        .context("cannot read the cached list")?
        .unwrap_or_else(cf_allow_fetch::embedded))
}

/// Fetches and validates the list, then adds `extra_cidrs`.
pub fn desired(config: &Config, args: &SourceArgs) -> Result<Desired> {
    if args.offline && !args.sources.is_empty() {
        bail!("--offline uses no source: drop --source, or drop --offline to fetch from it");
    }
    for url in &args.sources {
        crate::config::SourceUrl::parse(url).map_err(anyhow::Error::msg)?;
    }
    let extra = extra_cidrs(config)?;
    let list = cf_allow_fetch::fetch(&fetch_options(config, args))?;
    let ranges = list.ranges.union(&extra);
    if ranges.len() > config.guard.max_entries {
        bail!(
            "the list and extra_cidrs hold {} ranges, more than guard.max_entries ({})",
            ranges.len(),
            config.guard.max_entries
        );
    }
    Ok(Desired { list, ranges })
}
