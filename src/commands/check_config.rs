//! `cf-allow check-config`: parse and validate the configuration without touching anything.

use anyhow::Result;

use crate::config::Loaded;

/// Validates the config (including `extra_cidrs`) and prints a short summary.
pub fn run(loaded: &Loaded) -> Result<()> {
    let config = &loaded.config;
    let extra = crate::list::extra_cidrs(config)?;
    match &loaded.path {
        Some(path) => println!("config {}: OK", path.display()),
        None => println!(
            "config {}: not present, built-in defaults apply",
            crate::config::DEFAULT_PATH
        ),
    }
    println!(
        "backend: {}",
        config.backend.map_or("detect", |b| b.as_str())
    );
    let ports: Vec<String> = config.ports.iter().map(|p| p.to_string()).collect();
    println!(
        "ports: {}",
        if ports.is_empty() {
            "all".to_string()
        } else {
            ports.join(", ")
        }
    );
    for (i, alt) in config.sources.iter().enumerate() {
        println!("source {}: {}", i + 1, alt.urls().join(" + "));
    }
    println!("state_dir: {}", config.state_dir.display());
    println!("extra_cidrs: {} ranges", extra.len());
    for output in config.outputs.outputs() {
        println!("output: {} {}", output.name(), output.path.display());
    }
    Ok(())
}
