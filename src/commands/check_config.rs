//! `cf-allow check-config`: parse and validate the configuration without touching anything.

use anyhow::Result;
use serde_json::json;

use crate::cli::CheckConfigArgs;
use crate::config::Loaded;

/// Validates the config (including `extra_cidrs`) and prints a short summary (`--json`: one
/// document). Source URLs are shown with their credentials redacted.
pub fn run(loaded: &Loaded, args: &CheckConfigArgs) -> Result<()> {
    let config = &loaded.config;
    let extra = crate::list::extra_cidrs(config)?;
    let ports: Vec<String> = config.ports.iter().map(|p| p.to_string()).collect();
    let sources: Vec<Vec<String>> = config
        .sources
        .iter()
        .map(|alt| {
            alt.urls()
                .iter()
                .map(|u| cf_allow_fetch::redact_url(u))
                .collect()
        })
        .collect();
    let backend = config.backend.map_or("detect", |b| b.as_str());
    if args.json {
        return super::print_json(&json!({
            "config": loaded.path.as_ref().map(|p| p.display().to_string()),
            "defaults": loaded.path.is_none(),
            "ok": true,
            "backend": backend,
            "ports": config.ports.iter().map(|p| p.0).collect::<Vec<_>>(),
            "sources": sources,
            "state_dir": config.state_dir.display().to_string(),
            "extra_cidrs": extra.len(),
        }));
    }
    match &loaded.path {
        Some(path) => println!("config {}: OK", path.display()),
        None => println!(
            "config {}: not present, built-in defaults apply",
            crate::config::DEFAULT_PATH
        ),
    }
    println!("backend: {backend}");
    println!(
        "ports: {}",
        if ports.is_empty() {
            "all".to_string()
        } else {
            ports.join(", ")
        }
    );
    for (i, alt) in sources.iter().enumerate() {
        println!("source {}: {}", i + 1, alt.join(" + "));
    }
    println!("state_dir: {}", config.state_dir.display());
    println!("extra_cidrs: {} ranges", extra.len());
    for output in config.outputs.outputs() {
        println!("output: {} {}", output.name(), output.path.display());
    }
    Ok(())
}
