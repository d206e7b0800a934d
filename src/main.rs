//! cf-allow: keep a firewall allowlist exactly in sync with Cloudflare's IP ranges.
//!
//! This binary only wires things together: the CLI, the config, logging, the run lock and
//! the backends. The work happens in the `cf-allow-*` crates.

mod backends;
mod cli;
mod commands;
mod config;
mod list;
mod lock;
mod logging;
mod reach;
mod time;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};

/// Exit code for usage errors (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Exit code of `sync` when the list was applied (or would be) but Cloudflare is still
/// blocked by another layer of the host's firewall, or the verdict is unknown. Takes
/// precedence over 2 and 0.
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::debug!("error chain: {e:?}");
            eprintln!("cf-allow: error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || config::load(cli.config.as_deref());
    let (exit_code_flag, outcome) = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "cf-allow",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig => {
            let loaded = load()?;
            commands::check_config::run(&loaded)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ranges(args) => {
            let config = load()?.config;
            (false, commands::ranges::run(&config, args)?)
        }
        Command::Sync(args) => {
            let config = load()?.config;
            let synced = commands::sync::run(config, args, cli.wait, cli.quiet)?;
            if !synced.reachable {
                return Ok(ExitCode::from(EXIT_UNREACHABLE));
            }
            (args.exit_code, synced.outcome)
        }
        Command::Status(args) => {
            let config = load()?.config;
            (args.exit_code, commands::status::run(config, args)?)
        }
        Command::Doctor(args) => {
            let loaded = load()?;
            (args.exit_code, commands::doctor::run(loaded, args)?)
        }
        Command::Remove(args) => {
            let config = load()?.config;
            (
                args.exit_code,
                commands::remove::run(config, args, cli.wait, cli.quiet)?,
            )
        }
    };
    Ok(if exit_code_flag && outcome.changed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The error and its causes as one line: `outer: inner: root cause`, with repeated text
/// (a cause already quoted by its wrapper) left out and newlines folded.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if parts.last().is_some_and(|prev| prev.ends_with(&text)) || text.is_empty() {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}
