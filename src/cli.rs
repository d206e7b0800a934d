//! Command-line definitions (clap derive). The man page and shell completions are generated
//! from these, so every flag documented here is documented everywhere.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backends::BackendKind;

/// Keep the firewall allowlist exactly in sync with Cloudflare's IP ranges.
///
/// cf-allow fetches Cloudflare's published IPv4 and IPv6 ranges, validates them, compares them
/// with what the firewall (nftables, iptables/ip6tables or CSF) holds, and applies only the
/// difference, atomically. A failed or suspicious download never empties the allowlist.
#[derive(Debug, Parser)]
#[command(
    name = "cf-allow",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = EXIT_STATUS
)]
pub struct Cli {
    /// Configuration file [default: /etc/cf-allow/config.yaml; a missing default file means
    /// built-in defaults]
    #[arg(long, global = true, env = "CF_ALLOW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors; no summary when nothing changed
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Seconds to wait for another cf-allow run to finish before giving up
    #[arg(long, global = true, default_value_t = 60, value_name = "SECS")]
    pub wait: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, for `--help` and the man page.
const EXIT_STATUS: &str = "Exit status:
  0   success (nothing to do, or changes applied without --exit-code)
  1   error: the firewall is exactly as it was; one line on stderr says why
  2   with --exit-code: something changed (or would, with --dry-run); status: not in sync,
      repairs pending, or Cloudflare not reachable
  3   sync: applied (or would apply), but Cloudflare is still blocked by another layer of the
      host's firewall, or the verdict is unknown; one warning per deciding rule names the fix
  64  usage error";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch, validate, diff against the firewall, and apply only the difference
    ///
    /// Then checks that Cloudflare's packets get through the host's whole input path (every
    /// table and chain, not only cf-allow's) and exits 3 when another layer still blocks them.
    Sync(SyncArgs),
    /// Fetch and validate the list and print it (nothing is applied)
    Ranges(RangesArgs),
    /// Show what cf-allow manages on the firewall and whether it matches the last good list
    Status(StatusArgs),
    /// Delete everything cf-allow created on the firewall; nothing else is touched
    Remove(RemoveArgs),
    /// Look for the usual causes of Cloudflare Error 521/523 on this host (read-only)
    Doctor(DoctorArgs),
    /// Check the configuration file and print the effective settings' summary
    CheckConfig(CheckConfigArgs),
    /// Print shell completions for SHELL to stdout
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into a directory
    Man {
        /// Write cf-allow.1 and cf-allow-COMMAND.1 for every command into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where the list comes from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Fetch from URL instead of the configured sources (repeat to merge several lists)
    #[arg(long = "source", value_name = "URL")]
    pub sources: Vec<String>,

    /// Use no network: the last good cached list, else the compiled-in list
    #[arg(long)]
    pub offline: bool,
}

/// `sync` flags.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Backend to use, overriding the config (default: detect)
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Pass the shrink guard (never the syntax or sanity checks)
    #[arg(long)]
    pub force: bool,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    /// Exit 2 when something changed (with --dry-run: would change)
    #[arg(long)]
    pub exit_code: bool,
}

/// `ranges` flags.
#[derive(Debug, Args)]
pub struct RangesArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Backend to inspect, overriding the config (default: detect)
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    /// Exit 2 when the firewall does not match the last good list, needs repairs, or does not
    /// let Cloudflare in
    #[arg(long)]
    pub exit_code: bool,
}

/// `remove` flags.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Backend to clean up, overriding the config (default: detect)
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Print what would be deleted, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    /// Exit 2 when something was (or would be) deleted
    #[arg(long)]
    pub exit_code: bool,
}

/// `doctor` flags.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Backend to check, overriding the config (default: detect)
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Do not probe the list sources over the network
    #[arg(long)]
    pub offline: bool,

    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,

    /// Exit 2 when any check is a warning or a failure
    #[arg(long)]
    pub exit_code: bool,
}

/// `check-config` flags.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}
