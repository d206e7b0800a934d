//! cf-allow: keep a firewall allowlist exactly in sync with Cloudflare's IP ranges.
//!
//! This binary only wires things together: the CLI, the config, logging, the run lock and
//! the backends. The work happens in the `cf-allow-*` crates.

#![forbid(unsafe_code)]

mod backends;
mod cli;
mod commands;
mod config;
#[cfg(test)]
mod fuzz;
mod list;
mod lock;
mod logging;
mod manpage;
mod output;
mod reach;
mod report;
mod time;
mod verdict_cache;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};

/// Exit code for usage errors (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Exit code of `sync` when the list was applied (or would be) but Cloudflare is still
/// blocked by another layer of the host's firewall, or the verdict is unknown. Takes
/// precedence over 2 and 0.
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|matches| {
        let cli = Cli::from_arg_matches(&matches)?;
        Ok((cli, matches))
    });
    let cli = match parsed {
        Ok((cli, matches)) => {
            if let Some(line) = wait_without_lock(&cli, &matches) {
                output::error_line(&line);
                return ExitCode::from(EXIT_USAGE);
            }
            cli
        }
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let json = wants_json(&cli.command);
    output::install_panic_hook();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(cli).and_then(|code| {
            output::flush_stdout()?;
            Ok(code)
        })
    }));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            tracing::debug!("error chain: {e:?}");
            if let Some(lost) = e.downcast_ref::<output::OutputError>() {
                return ExitCode::from(output::output_failed(&lost.0.to_string()));
            }
            let line = one_line(&e);
            output::error_line(&line);
            if json {
                let document = output::error_json(&line);
                let text = serde_json::to_string_pretty(&document).unwrap_or_default() + "\n";
                if let Err(lost) = output::write_stdout(text.as_bytes()) {
                    tracing::debug!("{lost}");
                }
            }
            if output::applied() {
                ExitCode::from(output::EXIT_CHANGED_OUTPUT_FAILED)
            } else {
                ExitCode::from(1)
            }
        }
        // `println!` panics when stdout is closed or full: the report is lost, not the run.
        Err(payload) => match output::stdout_panic(payload.as_ref()) {
            Some(reason) => ExitCode::from(output::output_failed(&reason)),
            None => std::panic::resume_unwind(payload),
        },
    }
}

/// `--wait` given to a command that takes no lock (only `sync` and `remove` do): a usage
/// error rather than a flag that silently does nothing.
fn wait_without_lock(cli: &Cli, matches: &clap::ArgMatches) -> Option<String> {
    let given = |m: &clap::ArgMatches| {
        m.value_source("wait") == Some(clap::parser::ValueSource::CommandLine)
    };
    let explicit = given(matches) || matches.subcommand().is_some_and(|(_, sub)| given(sub));
    let locks = matches!(cli.command, Command::Sync(_) | Command::Remove(_));
    (explicit && !locks).then(|| {
        format!(
            "--wait applies only to sync and remove, which take the run lock; {} takes none",
            matches.subcommand_name().unwrap_or("this command")
        )
    })
}

/// True when the command was asked for `--json`.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Sync(a) => a.json,
        Command::Ranges(a) => a.json,
        Command::Status(a) => a.json,
        Command::Remove(a) => a.json,
        Command::Doctor(a) => a.json,
        Command::CheckConfig(a) => a.json,
        Command::Completions { .. } | Command::Man { .. } => false,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || config::load(cli.config.as_deref());
    let (exit_code_flag, outcome) = match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "cf-allow", &mut script);
            output::write_stdout(&script)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man { dir: None } => {
            output::write_stdout(&manpage::render(None)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man { dir: Some(dir) } => {
            let written = manpage::write_all(dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            for file in written {
                println!("{}", file.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig(args) => {
            let loaded = load()?;
            commands::check_config::run(&loaded, args)?;
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
