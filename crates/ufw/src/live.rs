//! The running `ufw-user-input` / `ufw6-user-input` chains: read with `iptables-save`,
//! changed with one `iptables-restore --noflush` transaction per family.

use std::process::Output;

use cf_allow_diff::Family;
use tracing::debug;

use crate::rules::input_chain;
use crate::Error;

/// `iptables` or `ip6tables`.
pub(crate) fn tool(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// The rules of a family's running input chain (`None` when the chain does not exist), as
/// `iptables-save` prints them after `-A <chain> `.
pub(crate) fn read_chain(family: Family) -> Result<Option<Vec<String>>, Error> {
    let out = run(
        &format!("{}-save", tool(family)),
        &["-t", "filter"],
        None,
        0,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let chain = input_chain(family);
    let declared = format!(":{chain} ");
    if !text.lines().any(|l| l.starts_with(&declared)) {
        return Ok(None);
    }
    let prefix = format!("-A {chain} ");
    Ok(Some(
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|s| s.trim_end().to_string())
            .collect(),
    ))
}

/// Runs `commands` (lines of the filter table) in one `iptables-restore --noflush`.
pub(crate) fn restore(family: Family, commands: &[String], lock_wait: u32) -> Result<(), Error> {
    let mut script = String::from("*filter\n");
    for command in commands {
        script.push_str(command);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    debug!(family = tool(family), script, "iptables-restore input");
    let wait = lock_wait.to_string();
    run(
        &format!("{}-restore", tool(family)),
        &["-w", &wait, "--noflush"],
        Some(&script),
        lock_wait,
    )
    .map(|_| ())
}

/// Commands that put the input chain back to `rules` (as `iptables-save` printed them).
pub(crate) fn rebuild_commands(family: Family, rules: &[String]) -> Vec<String> {
    let chain = input_chain(family);
    std::iter::once(format!("-F {chain}"))
        .chain(rules.iter().map(|r| format!("-A {chain} {r}")))
        .collect()
}

fn run(program: &str, args: &[&str], stdin: Option<&str>, lock_wait: u32) -> Result<Output, Error> {
    let path = cf_allow_exec::find_program(program).ok_or_else(|| Error::ProgramMissing {
        program: program.to_string(),
        package: "iptables",
    })?;
    let output = cf_allow_exec::run(&path, args, stdin).map_err(|source| Error::Spawn {
        program: program.to_string(),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lower = stderr.to_lowercase();
    Err(if lower.contains("xtables lock") {
        Error::Locked { secs: lock_wait }
    } else if lower.contains("permission denied") || lower.contains("operation not permitted") {
        Error::Permission {
            program: program.to_string(),
        }
    } else {
        Error::Command {
            program: program.to_string(),
            detail: cf_allow_exec::stderr_summary(&output, 3),
        }
    })
}
