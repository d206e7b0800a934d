//! Block lists that hold Cloudflare's addresses: foreign nftables sets and ipsets (from the
//! one model of the host, [`cf_allow_reach::HostModel::sets`]) and CSF's deny files. The
//! reachability verdict says whether a rule drops Cloudflare now; these checks say what may
//! drop it later (a fail2ban set no rule uses yet, a ban lfd has not applied).

use std::path::{Path, PathBuf};

use cf_allow_diff::{IpNet, RangeSet};
use cf_allow_reach::{AddrSpan, HostModel, HostSet};

use crate::{cloudflare_overlap, AddrRange, Check};

/// The id of the sets check.
pub const ID: &str = "blocklists";
/// The id of the CSF deny files check.
pub const CSF_ID: &str = "csf-deny";

/// How to undo a block that keeps coming back.
const EXEMPT_CLOUDFLARE: &str = "exempt Cloudflare's ranges in the tool that adds these blocks \
     (fail2ban `ignoreip`, crowdsec whitelist, csf.ignore) and make the web server log the \
     visitor's address (CF-Connecting-IP) instead of Cloudflare's";

/// cf-allow's own nftables objects, which are never foreign block lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnNft {
    /// `nftables.table` (an `inet` table of its own).
    pub table: String,
    /// `nftables.into`: (family, table) when cf-allow's sets live in a foreign table.
    pub into: Option<(String, String)>,
}

impl OwnNft {
    /// True when `set` is one of cf-allow's own sets (any backend's).
    fn owns(&self, set: &HostSet) -> bool {
        if set.name.starts_with("cf-allow-") {
            return true;
        }
        if set.layer == "ipset" {
            // CSF's allowlists.
            return set.name.starts_with("chain_ALLOW") || set.name.starts_with("chain_6_ALLOW");
        }
        match &self.into {
            None => set.family == "inet" && set.table == self.table,
            Some((family, table)) => {
                set.family == *family
                    && set.table == *table
                    && matches!(set.name.as_str(), "cf_v4" | "cf_v6")
            }
        }
    }
}

/// `" and N more<what>"` for the hits after the first one, or nothing.
fn and_more(hits: usize, what: &str) -> String {
    match hits {
        0 | 1 => String::new(),
        n => format!(" and {} more{what}", n - 1),
    }
}

fn range(span: &AddrSpan) -> AddrRange {
    AddrRange {
        start: span.first,
        end: span.last,
    }
}

/// The `blocklists` checks: one warning per foreign set that holds a Cloudflare address
/// (sets only accept rules use are allowlists, and are left out), else one `ok`.
pub fn set_checks(model: &HostModel, cloudflare: &RangeSet, own: &OwnNft) -> Vec<Check> {
    if let Some(why) = model.unreadable_reason() {
        return vec![Check::skip(
            ID,
            format!("the host's sets cannot be read: {why}"),
        )];
    }
    let sets = model.sets();
    let foreign: Vec<&HostSet> = sets.iter().filter(|s| !own.owns(s)).collect();
    tracing::debug!(
        sets = sets.len(),
        foreign = foreign.len(),
        "blocklists: the model's sets"
    );
    let mut checks = Vec::new();
    if let Some(why) = model.ipset_problem() {
        checks.push(Check::warn(
            ID,
            format!("cannot read the ipsets: {why}"),
            "run as root",
        ));
    }
    for set in foreign.iter().filter(|s| !s.allowlist_only()) {
        let hits: Vec<(&AddrSpan, IpNet)> = set
            .elements
            .iter()
            .filter_map(|e| Some((e, cloudflare_overlap(&range(e), cloudflare)?)))
            .collect();
        let Some((element, cf)) = hits.first().copied() else {
            continue;
        };
        let more = and_more(hits.len(), " Cloudflare addresses");
        let usage = match set.users.first() {
            None => "; no rule uses it yet: a rule that drops with it would block Cloudflare"
                .to_string(),
            Some(user) => format!(
                "; used by {}{} (the reachability check says whether it blocks Cloudflare now)",
                user.rule,
                and_more(set.users.len(), " rules")
            ),
        };
        let (what, fix) = if set.layer == "ipset" {
            (
                format!("ipset {}", set.name),
                format!("ipset del {} {element}; {EXEMPT_CLOUDFLARE}", set.name),
            )
        } else {
            (
                format!("nftables set {}", set.path()),
                format!(
                    "check the rules that use @{} (`nft list table {} {}`); if it is a block list: nft delete element {} {{ {element} }}; {EXEMPT_CLOUDFLARE}",
                    set.name, set.family, set.table, set.path()
                ),
            )
        };
        checks.push(Check::warn(
            ID,
            format!("{what} holds {element} (Cloudflare's {cf}){more}{usage}"),
            fix,
        ));
    }
    if checks.is_empty() {
        let ipsets = foreign.iter().filter(|s| s.layer == "ipset").count();
        checks.push(Check::ok(
            ID,
            format!(
                "none of the {} foreign nftables sets and {ipsets} ipsets holds a Cloudflare address outside an allowlist",
                foreign.len() - ipsets
            ),
        ));
    }
    checks
}

/// The `csf-deny` check: Cloudflare addresses in `csf.deny` and lfd's `csf.tempban`.
pub fn csf_checks(cloudflare: &RangeSet, csf_dir: &Path) -> Vec<Check> {
    if !csf_dir.join("csf.conf").is_file() {
        return vec![Check::skip(
            CSF_ID,
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
                checks.push(Check::warn(CSF_ID, e.to_string(), "run as root"));
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
                CSF_ID,
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
            CSF_ID,
            "csf.deny and csf.tempban hold no Cloudflare address",
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use cf_allow_reach::{ReadOptions, Sources};

    const RULESET: &str = r#"{"nftables": [{"table": {"family": "inet", "name": "f2b-table", "handle": 1}}, {"set": {"family": "inet", "name": "addr-set-nginx", "table": "f2b-table", "type": "ipv6_addr", "handle": 1, "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8::", "len": 48}}, "2a06:98c0::7"]}}, {"set": {"family": "inet", "name": "other", "table": "f2b-table", "type": "ipv4_addr", "handle": 2, "elem": ["203.0.113.1"]}}, {"table": {"family": "inet", "name": "cf_allow", "handle": 2}}, {"set": {"family": "inet", "name": "cf_v4", "table": "cf_allow", "type": "ipv4_addr", "handle": 3, "flags": ["interval"], "elem": [{"prefix": {"addr": "104.16.0.0", "len": 13}}]}}]}"#;

    const IPSETS: &str =
        "create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 600\n\
add f2b-sshd 192.0.2.7 timeout 0\n\
add f2b-sshd 172.70.1.2 timeout 599\n\
create office hash:net family inet hashsize 1024 maxelem 65536\n\
add office 104.16.0.0/13\n\
create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536\n\
add cf-allow-v4 104.16.0.0/13\n";

    const SAVE: &str = "*filter\n:INPUT ACCEPT [0:0]\n\
-A INPUT -m set --match-set office src -j ACCEPT\n\
COMMIT\n";

    fn cloudflare() -> RangeSet {
        RangeSet::aggregated(
            ["104.16.0.0/13", "172.64.0.0/13", "2a06:98c0::/29"]
                .iter()
                .map(|s| s.parse().expect("cidr")),
        )
    }

    fn own() -> OwnNft {
        OwnNft {
            table: "cf_allow".into(),
            into: None,
        }
    }

    #[test]
    fn warns_about_foreign_sets_holding_cloudflare_and_skips_allowlists() {
        let mut s = Sources::nft_only(RULESET, Vec::new());
        s.ipset = Some(Ok(IPSETS.into()));
        s.iptables_legacy_v4 = Some(Ok(SAVE.into()));
        let model = HostModel::from_sources(&s, &ReadOptions::default());
        let checks = set_checks(&model, &cloudflare(), &own());
        let summaries: Vec<&str> = checks.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(checks.len(), 2, "{summaries:#?}");
        assert!(checks.iter().all(|c| c.id == ID));
        assert!(summaries[0].starts_with(
            "nftables set inet f2b-table addr-set-nginx holds 2a06:98c0::7 (Cloudflare's 2a06:98c0::/29); no rule uses it yet"
        ), "{}", summaries[0]);
        assert!(checks[0].fix.as_deref().is_some_and(
            |f| f.contains("nft delete element inet f2b-table addr-set-nginx { 2a06:98c0::7 }")
        ));
        assert!(summaries[1].starts_with(
            "ipset f2b-sshd holds 172.70.1.2 (Cloudflare's 172.64.0.0/13); no rule uses it yet"
        ));
        assert!(checks[1]
            .fix
            .as_deref()
            .is_some_and(|f| f.starts_with("ipset del f2b-sshd 172.70.1.2;")));
    }

    #[test]
    fn a_host_without_foreign_block_lists_is_ok_and_an_unreadable_one_skips() {
        let model = HostModel::from_sources(
            &Sources::nft_only(r#"{"nftables": []}"#, Vec::new()),
            &ReadOptions::default(),
        );
        let checks = set_checks(&model, &cloudflare(), &own());
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, crate::Status::Ok);
        let checks = set_checks(
            &HostModel::unreadable("nft is missing"),
            &cloudflare(),
            &own(),
        );
        assert_eq!(checks[0].status, crate::Status::Skip);
        assert!(checks[0].summary.contains("nft is missing"));
    }

    #[test]
    fn csf_deny_is_skipped_without_csf() {
        let dir = tempfile::tempdir().expect("dir");
        let checks = csf_checks(&cloudflare(), dir.path());
        assert_eq!(checks[0].status, crate::Status::Skip);
        std::fs::write(dir.path().join("csf.conf"), "").expect("conf");
        std::fs::write(dir.path().join("csf.deny"), "172.70.0.9 # lfd\n").expect("deny");
        let checks = csf_checks(&cloudflare(), dir.path());
        assert_eq!(checks[0].status, crate::Status::Fail);
        assert!(checks[0].summary.contains("line 1 blocks 172.70.0.9"));
    }
}
