//! The metrics file: node_exporter's textfile-collector format (the Prometheus text
//! exposition format, version 0.0.4), written atomically at the end of every run.
//!
//! On a failed run the firewall is as it was, so the last success time and the range counts
//! are carried over from the previous file; the run's own values (time, success, changes)
//! are the failed run's.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The facts of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// The backend's name, when the run got as far as choosing one.
    pub backend: Option<String>,
    /// The run succeeded.
    pub success: bool,
    /// When the run ended.
    pub finished_at: Option<SystemTime>,
    /// IPv4 and IPv6 ranges on the firewall after the run (`None`: unknown, e.g. a failed
    /// run; then the previous file's values are kept).
    pub ranges: Option<[usize; 2]>,
    /// Ranges this run added and removed.
    pub added: usize,
    pub removed: usize,
    /// Age of the list applied, in seconds, when known.
    pub list_age_secs: Option<u64>,
    /// The reachability verdict (Cloudflare can reach the ports through every layer), when
    /// the run computed one.
    pub reachable: Option<bool>,
}

/// Why the metrics file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the metrics file {path}: {source}")]
pub struct MetricsError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

/// What is carried over from the previous file on a failed run.
#[derive(Clone, Debug, Default, PartialEq)]
struct Carried {
    last_success: Option<String>,
    ranges: [Option<String>; 2],
}

/// Renders `metrics`, taking what a failed run does not know from `previous` (the text of
/// the previous file, if any).
pub fn render(metrics: &Metrics, previous: Option<&str>) -> String {
    let carried = previous.map(carried).unwrap_or_default();
    let backend = metrics.backend.as_deref().unwrap_or("unknown");
    let b = format!("backend=\"{}\"", escape(backend));
    let now = seconds(metrics.finished_at.unwrap_or_else(SystemTime::now));
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(String, String)]| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    family(
        "cf_allow_last_run_timestamp_seconds",
        "When the last cf-allow sync ended (Unix time), successful or not.",
        &[(String::new(), now.clone())],
    );
    let last_success = if metrics.success {
        Some(now)
    } else {
        carried.last_success
    };
    family(
        "cf_allow_last_success_timestamp_seconds",
        "When the last successful cf-allow sync ended (Unix time).",
        &last_success
            .map(|v| vec![(String::new(), v)])
            .unwrap_or_default(),
    );
    family(
        "cf_allow_last_run_success",
        "1 when the last cf-allow sync succeeded, 0 when it failed (the firewall is then as it was).",
        &[(b.clone(), u8::from(metrics.success).to_string())],
    );
    let ranges: Vec<(String, String)> = ["ipv4", "ipv6"]
        .iter()
        .enumerate()
        .filter_map(|(i, fam)| {
            let value = match metrics.ranges {
                Some(r) => Some(r[i].to_string()),
                None => carried.ranges[i].clone(),
            }?;
            Some((format!("{b},family=\"{fam}\""), value))
        })
        .collect();
    family(
        "cf_allow_ranges",
        "Cloudflare ranges (plus extra_cidrs) allowed on the firewall, per family.",
        &ranges,
    );
    family(
        "cf_allow_last_run_changes",
        "Ranges the last cf-allow sync added and removed.",
        &[
            (format!("{b},kind=\"added\""), metrics.added.to_string()),
            (format!("{b},kind=\"removed\""), metrics.removed.to_string()),
        ],
    );
    family(
        "cf_allow_list_age_seconds",
        "Age of the list of ranges applied: seconds since its source last confirmed it.",
        &metrics
            .list_age_secs
            .map(|age| vec![(String::new(), age.to_string())])
            .unwrap_or_default(),
    );
    family(
        "cf_allow_reachable",
        "1 when a TCP SYN from every Cloudflare range to every port passes every firewall layer of the host, else 0.",
        &metrics
            .reachable
            .map(|r| vec![(b.clone(), u8::from(r).to_string())])
            .unwrap_or_default(),
    );
    out
}

/// Renders `metrics` and writes them to `path` atomically (a temp file in the same
/// directory, fsynced, renamed over `path`), so a collector never reads half a file.
pub fn write(path: &Path, metrics: &Metrics) -> Result<(), MetricsError> {
    let previous = if metrics.success && metrics.ranges.is_some() {
        None
    } else {
        fs::read_to_string(path).ok()
    };
    let text = render(metrics, previous.as_deref());
    write_atomic(path, text.as_bytes()).map_err(|source| MetricsError {
        path: path.to_path_buf(),
        source,
    })
}

/// The hardened writer (exclusive temp file, no link followed, fsync, rename, fsync of the
/// directory); a new file is 0644, so the textfile collector (often not root) can read it.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    cf_allow_exec::files::replace(path, bytes, 0o644)
}

/// The values a failed run keeps from the previous file.
fn carried(text: &str) -> Carried {
    let mut c = Carried::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if value.parse::<f64>().is_err() {
            continue;
        }
        if series == "cf_allow_last_success_timestamp_seconds" {
            c.last_success = Some(value.to_string());
        } else if series.starts_with("cf_allow_ranges{") {
            for (i, fam) in ["ipv4", "ipv6"].iter().enumerate() {
                if series.contains(&format!("family=\"{fam}\"")) {
                    c.ranges[i] = Some(value.to_string());
                }
            }
        }
    }
    c
}

/// Unix time in seconds with millisecond precision.
fn seconds(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// A label value escaped as the exposition format wants (`\\`, `\"`, `\n`).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_millis(secs * 1000 + 250))
    }

    #[test]
    fn a_failed_run_keeps_the_last_success_and_the_range_counts() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cf-allow.prom");
        let ok = Metrics {
            backend: Some("nftables".into()),
            success: true,
            finished_at: at(1000),
            ranges: Some([15, 7]),
            added: 22,
            removed: 0,
            list_age_secs: Some(3),
            reachable: None,
        };
        write(&path, &ok).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("cf_allow_last_success_timestamp_seconds 1000.250\n"),
            "{text}"
        );
        assert!(text.contains("cf_allow_ranges{backend=\"nftables\",family=\"ipv6\"} 7\n"));
        assert!(
            !text.contains("cf_allow_reachable"),
            "no verdict, no series: {text}"
        );

        let failed = Metrics {
            backend: Some("nftables".into()),
            success: false,
            finished_at: at(2000),
            reachable: Some(false),
            ..Metrics::default()
        };
        write(&path, &failed).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("cf_allow_last_run_timestamp_seconds 2000.250\n"),
            "{text}"
        );
        assert!(
            text.contains("cf_allow_last_success_timestamp_seconds 1000.250\n"),
            "{text}"
        );
        assert!(text.contains("cf_allow_last_run_success{backend=\"nftables\"} 0\n"));
        assert!(text.contains("cf_allow_ranges{backend=\"nftables\",family=\"ipv4\"} 15\n"));
        assert!(text.contains("cf_allow_last_run_changes{backend=\"nftables\",kind=\"added\"} 0\n"));
        assert!(text.contains("cf_allow_reachable{backend=\"nftables\"} 0\n"));
        assert!(!text.contains("cf_allow_list_age_seconds"), "{text}");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn a_first_run_that_fails_has_no_success_time() {
        let text = render(&Metrics::default(), None);
        assert!(
            text.contains("cf_allow_last_run_success{backend=\"unknown\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("cf_allow_last_success_timestamp_seconds"),
            "{text}"
        );
        assert!(!text.contains("cf_allow_ranges"), "{text}");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
