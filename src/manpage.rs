//! Man pages generated from the clap definitions: `cf-allow(1)` and one `cf-allow-<command>(1)`
//! per subcommand, each with EXIT STATUS, FILES and (for the commands that read it) the
//! configuration keys.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;

/// The EXIT STATUS section (roff).
const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: nothing to do, or the change was applied (without \fB\-\-exit\-code\fR).
.TP
\fB1\fR
Error: the firewall is exactly as it was before the run; the one line on stderr says what was
wrong (with \fB\-\-json\fR, stdout holds {"error": ...} too).
.TP
\fB2\fR
Only with \fB\-\-exit\-code\fR: something was changed (with \fB\-\-dry\-run\fR: would be), or
\fBstatus\fR/\fBdoctor\fR found a difference or a problem.
.TP
\fB3\fR
Applied (or would apply), but Cloudflare is still blocked by another layer on this host.
.TP
\fB4\fR
The firewall WAS changed, but the report could not be written to stdout (closed pipe, full
disk); run \fBcf\-allow status\fR.
.TP
\fB64\fR
Usage error (unknown flag, bad value).
"#;

/// The FILES section (roff).
const FILES: &str = r#".SH FILES
.TP
\fI/etc/cf\-allow/config.yaml\fR
The configuration (\fB\-\-config\fR, \fBCF_ALLOW_CONFIG\fR). As root it must be owned by root
and not writable by group or others, like its directory.
.TP
\fI/var/lib/cf\-allow/last\-good.json\fR
The last good list, ETags and bodies for conditional requests (mode 0600), in \fBstate_dir\fR.
.TP
\fI/var/lib/cf\-allow/lock\fR
The run lock of \fBstate_dir\fR; \fBsync\fR and \fBremove\fR also take the firewall lock of the
network namespace (the abstract unix socket \fI@cf\-allow/firewall\fR).
.TP
\fI/etc/csf/cf\-allow.allow\fR, \fI/etc/csf/cf\-allow.ignore\fR
The CSF backend's files (with one Include line each in csf.allow and csf.ignore).
"#;

/// The CONFIGURATION section (roff): every key with its default.
const CONFIGURATION: &str = r#".SH CONFIGURATION
Keys of \fI/etc/cf\-allow/config.yaml\fR (unknown keys are an error naming key and line):
.TP
\fBbackend\fR
nftables | iptables | csf; absent: detect.
.TP
\fBports\fR
TCP destination ports opened to Cloudflare (default [80, 443]; [] = all ports).
.TP
\fBsources\fR
Alternatives tried in order; each a URL or a list of URLs merged (https://, http://, file:///).
.TP
\fBtimeout_secs\fR
Bound on one request or file read (default 15).
.TP
\fBstate_dir\fR
Absolute path of the cache and lock (default /var/lib/cf\-allow).
.TP
\fBextra_cidrs\fR
Your own ranges, always allowed; reserved ranges are accepted here.
.TP
\fBguard.max_shrink_percent\fR, \fBguard.max_entries\fR, \fBguard.allow_reserved\fR
Sanity limits of the feed (defaults 50, 10000, false).
.TP
\fBnftables.table\fR, \fBnftables.into\fR, \fBnftables.lockdown\fR
cf\-allow's inet table (an nft identifier), or {family: inet, table, chain} of yours; drop other
sources on the ports.
.TP
\fBiptables.chain\fR, \fBiptables.hooks\fR, \fBiptables.ipset\fR, \fBiptables.lockdown\fR, \fBiptables.variant\fR, \fBiptables.lock_wait_secs\fR
cf\-allow's chain (default CF\-ALLOW), the input\-path chains that jump to it (default [INPUT]),
ipset sets, lockdown, auto | nft | legacy, the xtables lock bound.
.TP
\fBcsf.dir\fR, \fBcsf.apply\fR, \fBcsf.reload\fR, \fBcsf.reload_timeout_secs\fR
CSF's directory (/etc/csf), live | restart, the reload command (run without a shell, default
csf \-ra) and its bound (default 300).
"#;

/// `cf-allow(1)` (`None`) or `cf-allow-<name>(1)`.
pub fn render(subcommand: Option<&str>) -> io::Result<Vec<u8>> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let cmd = match subcommand {
        None => root,
        Some(name) => root
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no command {name}")))?,
    };
    let reads_config = !matches!(subcommand, Some("completions" | "man"));
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    page.extend_from_slice(EXIT_STATUS.as_bytes());
    if reads_config {
        page.extend_from_slice(FILES.as_bytes());
        page.extend_from_slice(CONFIGURATION.as_bytes());
    }
    page.extend_from_slice(see_also(&cmd, subcommand).as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

fn see_also(root_or_sub: &clap::Command, subcommand: Option<&str>) -> String {
    let names: Vec<String> = match subcommand {
        None => root_or_sub
            .get_subcommands()
            .map(|s| {
                format!(
                    "\\fBcf\\-allow\\-{}\\fR(1)",
                    s.get_name().replace('-', "\\-")
                )
            })
            .collect(),
        Some(_) => vec!["\\fBcf\\-allow\\fR(1)".to_string()],
    };
    format!(".SH \"SEE ALSO\"\n{}\n", names.join(", "))
}

/// Writes `cf-allow.1` and `cf-allow-<command>.1` for every subcommand into `dir`; returns
/// the files written.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut names: Vec<Option<String>> = vec![None];
    names.extend(
        Cli::command()
            .get_subcommands()
            .map(|s| Some(s.get_name().to_string())),
    );
    let mut written = Vec::new();
    for name in names {
        let file = dir.join(match &name {
            None => "cf-allow.1".to_string(),
            Some(n) => format!("cf-allow-{n}.1"),
        });
        std::fs::write(&file, render(name.as_deref())?)?;
        written.push(file);
    }
    Ok(written)
}
