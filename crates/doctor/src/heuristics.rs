//! The firewall heuristics: block lists and rules of other tools that hold Cloudflare's
//! addresses (ipset sets, iptables rules, nftables sets, CSF's deny files). They are one
//! group, [`checks`], so that the reachability verdict can replace them in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cf_allow_diff::{IpNet, RangeSet};

use crate::iptables::FilterTable;
use crate::{cloudflare_overlap, AddrRange, Check};

/// How to undo a block that keeps coming back.
const EXEMPT_CLOUDFLARE: &str = "exempt Cloudflare's ranges in the tool that adds these blocks \
     (fail2ban `ignoreip`, crowdsec whitelist, csf.ignore) and make the web server log the \
     visitor's address (CF-Connecting-IP) instead of Cloudflare's";

/// cf-allow's own nftables objects, which are never foreign block lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnNft {
    /// `nftables.table` (an `inet` table of its own).
    pub table: String,
    /// `nftables.into`: (family, table) when cf-allow's sets live in a foreign table.
    pub into: Option<(String, String)>,
}

/// What the heuristics need to know about cf-allow's configuration.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// Cloudflare's ranges.
    pub cloudflare: &'a RangeSet,
    /// The iptables backend is the one in use.
    pub iptables_backend: bool,
    /// `iptables.chain`.
    pub own_chain: &'a str,
    /// The configured ports (empty = all).
    pub ports: &'a [u16],
    /// cf-allow's nftables objects.
    pub own_nft: &'a OwnNft,
    /// CSF's directory (`/etc/csf`).
    pub csf_dir: &'a Path,
}

/// Every heuristic check, over the filter tables read once (`tables`).
pub fn checks(inputs: &Inputs, tables: &[TableRead]) -> Vec<Check> {
    let ports: Vec<String> = inputs.ports.iter().map(|p| p.to_string()).collect();
    let shadow = Shadow {
        iptables_backend: inputs.iptables_backend,
        own_chain: inputs.own_chain,
        ports: if ports.is_empty() {
            "all TCP ports".to_string()
        } else {
            format!("TCP {}", ports.join(", "))
        },
    };
    let mut out = ipset_checks(inputs.cloudflare, tables, &shadow);
    out.extend(iptables_checks(inputs.cloudflare, tables, &shadow));
    out.extend(nft_set_checks(inputs.cloudflare, inputs.own_nft));
    out.extend(csf_checks(inputs.cloudflare, inputs.csf_dir));
    out
}

/// A filter table read for one family, or why it could not be.
pub struct TableRead {
    pub label: &'static str,
    /// The command that edits this table (`iptables`, `ip6tables-nft`, `iptables-legacy`…).
    pub command: String,
    /// Read with the legacy program next to the configured one: not what cf-allow drives.
    pub legacy: bool,
    /// The table, or why it could not be read.
    pub table: Result<FilterTable, crate::Error>,
}

/// What decides whether a drop rule really blocks Cloudflare's connections.
struct Shadow<'a> {
    /// The iptables backend is in use.
    iptables_backend: bool,
    /// cf-allow's chain (`iptables.chain`).
    own_chain: &'a str,
    /// The configured ports, for messages.
    ports: String,
}

impl Shadow<'_> {
    /// True when cf-allow's accept comes first: the iptables backend's jump is the first
    /// rule of INPUT and the drop is in a chain reached from INPUT.
    fn covers(&self, read: &TableRead, table: &FilterTable, chain: &str) -> bool {
        self.iptables_backend
            && !read.legacy
            && table.jumps_first("INPUT", self.own_chain)
            && table.reachable_from("INPUT").iter().any(|c| c == chain)
    }

    /// The verdict for a drop of Cloudflare's traffic in `chain`.
    fn check(
        &self,
        read: &TableRead,
        table: &FilterTable,
        chain: &str,
        id: &str,
        summary: String,
        fix: String,
    ) -> Check {
        if self.covers(read, table, chain) {
            Check::warn(
                id,
                format!(
                    "{summary}; cf-allow's jump at the top of INPUT accepts Cloudflare on {} first, other ports stay blocked",
                    self.ports
                ),
                fix,
            )
        } else {
            Check::fail(id, summary, fix)
        }
    }
}

/// Reads the filter tables: the configured (or default) variant of each family, plus the
/// legacy tables when the nf_tables variant says they exist too.
pub fn read_iptables(variant: &cf_allow_iptables::Variant) -> Vec<TableRead> {
    use cf_allow_iptables::Variant;
    let mut out = Vec::new();
    for (tool, legacy_label) in [
        ("iptables", "iptables (legacy)"),
        ("ip6tables", "ip6tables (legacy)"),
    ] {
        let command = variant.program(tool, "");
        let table = crate::iptables::read_filter(&format!("{command}-save"));
        let also_legacy = !matches!(variant, Variant::Legacy)
            && matches!(&table, Ok(t) if t.legacy_tables_present);
        // The configured variant is what cf-allow drives, legacy or not.
        out.push(TableRead {
            label: tool,
            command,
            legacy: false,
            table,
        });
        if also_legacy {
            let command = Variant::Legacy.program(tool, "");
            out.push(TableRead {
                label: legacy_label,
                table: crate::iptables::read_filter(&format!("{command}-save")),
                command,
                legacy: true,
            });
        }
    }
    out
}

/// `" and N more<what>"` for the hits after the first one, or nothing.
fn and_more(hits: usize, what: &str) -> String {
    match hits {
        0 | 1 => String::new(),
        n => format!(" and {} more{what}", n - 1),
    }
}

fn is_own_chain(chain: &str, own: &str) -> bool {
    chain.starts_with(own)
}

fn ipset_checks(cloudflare: &RangeSet, tables: &[TableRead], shadow: &Shadow) -> Vec<Check> {
    const ID: &str = "ipset";
    if !crate::ipset::kernel_module_loaded() {
        return vec![Check::ok(
            ID,
            "no ipset sets (the ip_set kernel module is not loaded)",
        )];
    }
    let sets = match crate::ipset::read_sets() {
        Ok(sets) => sets,
        Err(e) if e.is_missing_program() => return vec![Check::skip(ID, e.to_string())],
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot read the ipset sets: {e}"),
                "run as root",
            )]
        }
    };
    let mut checks = Vec::new();
    for set in sets.iter().filter(|s| !crate::ipset::is_allow_set(&s.name)) {
        let hits: Vec<(&str, IpNet)> = set
            .entries
            .iter()
            .filter(|e| !e.nomatch)
            .filter_map(|e| {
                Some((
                    e.text.as_str(),
                    cloudflare_overlap(e.range.as_ref()?, cloudflare)?,
                ))
            })
            .collect();
        let Some((entry, range)) = hits.first().copied() else {
            continue;
        };
        let users: Vec<(&TableRead, &FilterTable, &crate::iptables::Rule)> = tables
            .iter()
            .filter_map(|read| Some((read, read.table.as_ref().ok()?)))
            .flat_map(|(read, t)| t.rules.iter().map(move |r| (read, t, r)))
            .filter(|(_, _, r)| !is_own_chain(&r.chain, shadow.own_chain))
            .filter(|(_, _, r)| r.source_sets.contains(&set.name))
            .collect();
        let more = and_more(hits.len(), " Cloudflare addresses");
        let held = format!(
            "ipset set {} holds {entry} (Cloudflare's {range}){more}",
            set.name
        );
        let fix = format!("ipset del {} {entry}; {EXEMPT_CLOUDFLARE}", set.name);
        if let Some((read, table, rule)) = users.iter().find(|(_, t, r)| t.drops(r)) {
            checks.push(shadow.check(
                read,
                table,
                &rule.chain,
                ID,
                format!("{held}, and `{}` drops it", rule.text),
                fix,
            ));
        } else if users.is_empty()
            || users
                .iter()
                .any(|(_, _, r)| r.target.as_deref() != Some("ACCEPT"))
        {
            checks.push(Check::warn(
                ID,
                format!(
                    "{held}; no iptables rule was found that drops with it, check how it is used"
                ),
                fix,
            ));
        }
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            format!(
                "none of the {} ipset sets blocks a Cloudflare address",
                sets.len()
            ),
        ));
    }
    checks
}

fn iptables_checks(cloudflare: &RangeSet, tables: &[TableRead], shadow: &Shadow) -> Vec<Check> {
    let mut checks = Vec::new();
    for read in tables {
        let table = match &read.table {
            Ok(t) => t,
            Err(e) if e.is_missing_program() => {
                checks.push(Check::skip(read.label, e.to_string()));
                continue;
            }
            Err(e) => {
                checks.push(Check::warn(
                    read.label,
                    format!("cannot read the filter table: {e}"),
                    "run as root",
                ));
                continue;
            }
        };
        // Blocking rules per chain: (rule, Cloudflare range).
        let mut by_chain: BTreeMap<&str, Vec<(&str, IpNet)>> = BTreeMap::new();
        for rule in &table.rules {
            if is_own_chain(&rule.chain, shadow.own_chain) || !table.drops(rule) {
                continue;
            }
            if let Some(range) = rule
                .source
                .as_ref()
                .and_then(|s| cloudflare_overlap(s, cloudflare))
            {
                by_chain
                    .entry(&rule.chain)
                    .or_default()
                    .push((&rule.text, range));
            }
        }
        if by_chain.is_empty() {
            checks.push(Check::ok(
                read.label,
                format!(
                    "no rule in the filter table drops a Cloudflare address by source ({} rules read)",
                    table.rules.len()
                ),
            ));
        }
        for (chain, hits) in by_chain {
            let (text, range) = hits[0];
            let more = and_more(hits.len(), " such rules");
            checks.push(shadow.check(
                read,
                table,
                chain,
                read.label,
                format!("chain {chain} drops Cloudflare's {range}: `{text}`{more}"),
                format!(
                    "delete the rule ({} {}); {EXEMPT_CLOUDFLARE}",
                    read.command,
                    text.replacen("-A ", "-D ", 1)
                ),
            ));
        }
    }
    checks
}

fn nft_set_checks(cloudflare: &RangeSet, own: &OwnNft) -> Vec<Check> {
    const ID: &str = "nftables-sets";
    let sets = match crate::nft::read_sets() {
        Ok(sets) => sets,
        Err(e) if e.is_missing_program() => return vec![Check::skip(ID, "nft is not installed")],
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot read the nftables ruleset: {e}"),
                "run as root",
            )]
        }
    };
    let is_own = |s: &crate::nft::NftSet| match &own.into {
        None => s.family == "inet" && s.table == own.table,
        Some((family, table)) => {
            s.family == *family && s.table == *table && matches!(s.name.as_str(), "cf_v4" | "cf_v6")
        }
    };
    let foreign: Vec<_> = sets.iter().filter(|s| !is_own(s)).collect();
    let mut checks = Vec::new();
    for set in &foreign {
        let hits: Vec<(&AddrRange, IpNet)> = set
            .elements
            .iter()
            .filter_map(|e| Some((e, cloudflare_overlap(e, cloudflare)?)))
            .collect();
        let Some((element, range)) = hits.first().copied() else {
            continue;
        };
        let more = and_more(hits.len(), "");
        checks.push(Check::warn(
            ID,
            format!(
                "set {} holds {element} (Cloudflare's {range}){more}; if a rule drops with this set, Cloudflare is blocked",
                set.path()
            ),
            format!(
                "check the rules that use @{} (`nft list table {} {}`); if it is a block list: nft delete element {} {{ {element} }}; {EXEMPT_CLOUDFLARE}",
                set.name, set.family, set.table, set.path()
            ),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            format!(
                "none of the {} foreign nftables sets holds a Cloudflare address",
                foreign.len()
            ),
        ));
    }
    checks
}

fn csf_checks(cloudflare: &RangeSet, csf_dir: &Path) -> Vec<Check> {
    const ID: &str = "csf-deny";
    if !csf_dir.join("csf.conf").is_file() {
        return vec![Check::skip(
            ID,
            format!(
                "CSF is not installed ({} does not exist)",
                csf_dir.join("csf.conf").display()
            ),
        )];
    }
    let mut checks = Vec::new();
    for (file, unblock) in [
        (csf_dir.join("csf.deny"), "csf -dr"),
        (PathBuf::from(crate::csf::TEMPBAN_FILE), "csf -tr"),
    ] {
        let entries = match crate::csf::read_deny_file(&file) {
            Ok(entries) => entries,
            Err(e) => {
                checks.push(Check::warn(ID, e.to_string(), "run as root"));
                continue;
            }
        };
        let hits: Vec<_> = entries
            .iter()
            .filter_map(|e| Some((e, cloudflare_overlap(&e.range, cloudflare)?)))
            .collect();
        if let Some((entry, range)) = hits.first() {
            let more = and_more(hits.len(), " Cloudflare entries");
            checks.push(Check::fail(
                ID,
                format!(
                    "{} line {} blocks {} (Cloudflare's {range}){more}",
                    file.display(),
                    entry.line,
                    entry.range
                ),
                format!("{unblock} {}; add Cloudflare's ranges to csf.ignore so lfd does not block them again", entry.range),
            ));
        }
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            ID,
            "csf.deny and csf.tempban hold no Cloudflare address",
        ));
    }
    checks
}
