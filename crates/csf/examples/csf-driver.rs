//! A small driver for the CSF backend, used by the crate's sandbox tests (the same flow as
//! `cf-allow sync|status|remove`, without fetching):
//!
//! ```text
//! csf-driver DIR PORTS MODE sync LIST_FILE     # PORTS: 80,443 or "all"; MODE: live|restart
//! csf-driver DIR PORTS MODE status
//! csf-driver DIR PORTS MODE remove [--dry-run]
//! ```
//!
//! `CSF_DRIVER_RELOAD` overrides the reload command.

use std::process::ExitCode;

use cf_allow_csf::{ApplyMode, CsfBackend, Settings};
use cf_allow_diff::{Backend, IpNet, Plan, RangeSet};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let [dir, ports, mode, command, rest @ ..] = args.as_slice() else {
        return Err("usage: csf-driver DIR PORTS MODE sync LIST|status|remove [--dry-run]".into());
    };
    let ports: Vec<u16> = if ports == "all" {
        Vec::new()
    } else {
        ports.split(',').map(str::parse).collect::<Result<_, _>>()?
    };
    let apply = match mode.as_str() {
        "live" => ApplyMode::Live,
        "restart" => ApplyMode::Restart,
        other => return Err(format!("unknown mode {other}").into()),
    };
    let mut settings = Settings {
        dir: dir.into(),
        apply,
        ..Settings::default()
    };
    if let Ok(reload) = std::env::var("CSF_DRIVER_RELOAD") {
        settings.reload = reload;
    }
    let mut backend = CsfBackend::new(settings, ports)?;
    match command.as_str() {
        "sync" => {
            let list = std::fs::read_to_string(rest.first().ok_or("sync needs a list file")?)?;
            let nets = list
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::parse::<IpNet>)
                .collect::<Result<Vec<_>, _>>()?;
            let desired = RangeSet::aggregated(nets);
            let inspection = backend.inspect()?;
            print_notes(&inspection.repairs, &inspection.warnings);
            let plan = Plan::between(&desired, &inspection.ranges).with_repairs(inspection.repairs);
            println!("add: {}", plan.add.len());
            println!("remove: {}", plan.remove.len());
            if plan.is_empty() {
                println!("changed: no");
            } else {
                backend.apply(&plan)?;
                println!("changed: yes");
            }
        }
        "status" => {
            let inspection = backend.inspect()?;
            println!("present: {}", inspection.present);
            println!("ranges: {}", inspection.ranges.len());
            print_notes(&inspection.repairs, &inspection.warnings);
        }
        "remove" => {
            let dry_run = rest.iter().any(|a| a == "--dry-run");
            for line in backend.remove(dry_run)? {
                println!("removed: {line}");
            }
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}

fn print_notes(repairs: &[String], warnings: &[String]) {
    for r in repairs {
        println!("repair: {r}");
    }
    for w in warnings {
        println!("warning: {w}");
    }
}
