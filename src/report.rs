//! After a sync: the metrics file (`metrics_file`) and the hooks (`on_change`,
//! `on_failure`). Neither can change the outcome of the run: a failure to write the metrics
//! or a failing hook is logged as a warning.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use cf_allow_report::{hooks, metrics};
use serde_json::{json, Value};

use crate::config::Config;

/// What a successful sync reports.
pub struct Facts {
    /// The run's JSON document (what `sync --json` prints), when
    /// [`Reporter::wants_document`] or `--json` asked for it.
    pub document: Option<Value>,
    /// True when the sync changed the firewall (ranges or repairs).
    pub changed: bool,
    /// IPv4 and IPv6 ranges on the firewall after the sync.
    pub ranges: [usize; 2],
    /// Ranges added and removed.
    pub added: usize,
    pub removed: usize,
    /// Age of the list applied.
    pub list_age: Duration,
    /// The reachability verdict, when the sync computed one.
    pub reachable: Option<bool>,
}

/// Collects what a sync did and reports it when the sync ends.
pub struct Reporter {
    metrics_file: Option<PathBuf>,
    on_change: Option<Vec<String>>,
    on_failure: Option<Vec<String>>,
    timeout: Duration,
    state_dir: PathBuf,
    dry_run: bool,
    backend: Option<&'static str>,
    facts: Option<Facts>,
}

impl Reporter {
    /// A reporter for a sync with `config`; a dry run reports nothing.
    pub fn new(config: &Config, dry_run: bool) -> Reporter {
        Reporter {
            metrics_file: config.metrics_file.clone(),
            on_change: config.on_change.clone(),
            on_failure: config.on_failure.clone(),
            timeout: Duration::from_secs(config.hook_timeout_secs.0),
            state_dir: config.state_dir.clone(),
            dry_run,
            backend: None,
            facts: None,
        }
    }

    /// The backend the sync uses.
    pub fn backend(&mut self, name: &'static str) {
        self.backend = Some(name);
    }

    /// True when a hook will read the run's JSON document (`on_change` is set and this is
    /// not a dry run), so the sync has to build it.
    pub fn wants_document(&self) -> bool {
        self.on_change.is_some() && !self.dry_run
    }

    /// The sync got to its end.
    pub fn succeeded(&mut self, facts: Facts) {
        self.facts = Some(facts);
    }

    /// Writes the metrics and runs the hook that applies to `result`.
    pub fn finish<T>(mut self, result: &Result<T>) {
        if self.dry_run {
            return;
        }
        let facts = match result {
            Ok(_) => self.facts.take(),
            Err(_) => None,
        };
        if let Some(path) = &self.metrics_file {
            let m = match &facts {
                Some(f) => metrics::Metrics {
                    backend: self.backend.map(str::to_owned),
                    success: true,
                    finished_at: Some(SystemTime::now()),
                    ranges: Some(f.ranges),
                    added: f.added,
                    removed: f.removed,
                    list_age_secs: Some(f.list_age.as_secs()),
                    reachable: f.reachable,
                },
                None => metrics::Metrics {
                    backend: self.backend.map(str::to_owned),
                    success: false,
                    finished_at: Some(SystemTime::now()),
                    // The firewall is as it was; the last good list is what it holds.
                    list_age_secs: cf_allow_fetch::last_good(&self.state_dir)
                        .ok()
                        .flatten()
                        .map(|list| list.age().as_secs()),
                    ..metrics::Metrics::default()
                },
            };
            if let Err(e) = metrics::write(path, &m) {
                tracing::warn!("{e}");
            }
        }
        let (hook, argv, document) = match (result, facts) {
            (Ok(_), Some(f)) if f.changed => {
                let Some(argv) = &self.on_change else { return };
                // The sync builds it whenever `on_change` is set (`wants_document`).
                let Some(document) = f.document else {
                    tracing::warn!(
                        "on_change: the run's document was not built; the hook was not run"
                    );
                    return;
                };
                ("on_change", argv, document)
            }
            (Err(e), _) => {
                let Some(argv) = &self.on_failure else { return };
                let document = json!({
                    "backend": self.backend,
                    "dry_run": false,
                    "changed": false,
                    "error": crate::one_line(e),
                });
                ("on_failure", argv, document)
            }
            _ => return,
        };
        let input = serde_json::to_string_pretty(&document).unwrap_or_default() + "\n";
        match hooks::run(hook, argv, &input, self.timeout) {
            Ok(()) => tracing::debug!("{hook}: {} succeeded", argv[0]),
            Err(e) => tracing::warn!("{e}; the run's result is unchanged"),
        }
    }
}
