//! The filter table of iptables and ip6tables, from `iptables-save -t filter`.

use crate::{AddrRange, Error};

/// The filter table of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterTable {
    /// Chain names, built-in and user-defined.
    pub chains: Vec<String>,
    /// Every rule, in order.
    pub rules: Vec<Rule>,
    /// The program warned that legacy tables exist too (read them with `*-legacy-save`).
    pub legacy_tables_present: bool,
}

/// One `-A` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The chain it is in.
    pub chain: String,
    /// The line as printed, e.g. `-A INPUT -s 104.16.0.0/13 -j DROP`.
    pub text: String,
    /// `-s`, unless negated.
    pub source: Option<AddrRange>,
    /// `--match-set NAME src…` (not negated; first direction `src`).
    pub source_sets: Vec<String>,
    /// `-j` / `-g` target.
    pub target: Option<String>,
    /// No match at all besides comments: the rule applies to every packet that reaches it.
    pub unconditional: bool,
}

impl FilterTable {
    /// True when `chain` exists.
    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    /// The chains a packet entering `chain` can reach through jumps and gotos, `chain`
    /// included.
    pub fn reachable_from(&self, chain: &str) -> Vec<String> {
        let mut seen = vec![chain.to_string()];
        let mut i = 0;
        while i < seen.len() {
            let from = seen[i].clone();
            for target in self
                .rules
                .iter()
                .filter(|r| r.chain == from)
                .filter_map(|r| r.target.as_deref())
            {
                if self.has_chain(target) && !seen.iter().any(|s| s == target) {
                    seen.push(target.to_string());
                }
            }
            i += 1;
        }
        seen
    }

    /// True when the first rule of `chain` jumps to `target` for every packet.
    pub fn jumps_first(&self, chain: &str, target: &str) -> bool {
        self.rules
            .iter()
            .find(|r| r.chain == chain)
            .is_some_and(|r| r.unconditional && r.target.as_deref() == Some(target))
    }

    /// True when `rule` drops or rejects what it matches: target DROP or REJECT, or a
    /// chain that drops everything reaching its end (CSF's `LOGDROPIN`, …).
    pub fn drops(&self, rule: &Rule) -> bool {
        match rule.target.as_deref() {
            Some("DROP" | "REJECT") => true,
            Some(chain) => self
                .rules
                .iter()
                .rfind(|r| r.chain == chain)
                .is_some_and(|last| {
                    last.unconditional && matches!(last.target.as_deref(), Some("DROP" | "REJECT"))
                }),
            None => false,
        }
    }
}

/// Reads the filter table with `program` (`iptables-save`, `ip6tables-legacy-save`, …); the
/// nf_tables variants say on stderr when legacy tables exist too.
pub fn read_filter(program: &str) -> Result<FilterTable, Error> {
    let output = crate::program::run_program_output(program, &["-t", "filter"])?;
    let mut table = parse_save(&String::from_utf8_lossy(&output.stdout));
    table.legacy_tables_present =
        cf_allow_iptables::legacy_tables_present(&String::from_utf8_lossy(&output.stderr));
    Ok(table)
}

/// Parses `iptables-save` output; only the `*filter` table is kept.
pub fn parse_save(text: &str) -> FilterTable {
    let mut table = FilterTable::default();
    let mut in_filter = false;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            in_filter = name.trim() == "filter";
            continue;
        }
        if !in_filter {
            continue;
        }
        if let Some(chain) = line.strip_prefix(':') {
            if let Some(name) = chain.split_whitespace().next() {
                table.chains.push(name.to_string());
            }
        } else if line.starts_with("-A ") {
            if let Some(rule) = parse_rule(line) {
                table.rules.push(rule);
            }
        }
    }
    table
}

fn parse_rule(line: &str) -> Option<Rule> {
    let words = split_words(line);
    let chain = words.get(1)?.clone();
    let mut rule = Rule {
        chain,
        text: line.to_string(),
        source: None,
        source_sets: Vec::new(),
        target: None,
        unconditional: true,
    };
    let mut i = 2;
    let mut negated = false;
    let mut in_comment = false;
    while i < words.len() {
        let word = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        match word {
            "!" => {
                negated = true;
                i += 1;
                continue;
            }
            "-s" | "--source" => {
                rule.unconditional = false;
                if !negated {
                    rule.source = next.and_then(AddrRange::parse);
                }
                i += 1;
            }
            "--match-set" => {
                rule.unconditional = false;
                let flags = words.get(i + 2).map(String::as_str).unwrap_or("");
                if let (false, Some(name), Some("src")) = (negated, next, flags.split(',').next()) {
                    rule.source_sets.push(name.to_string());
                }
                i += 2;
            }
            "-j" | "-g" | "--jump" | "--goto" => {
                rule.target = next.map(str::to_string);
                // Target options follow; nothing after them is a match.
                break;
            }
            "-m" => {
                in_comment = next == Some("comment");
                if !in_comment {
                    rule.unconditional = false;
                }
                i += 1;
            }
            "--comment" if in_comment => i += 1,
            _ => rule.unconditional = false,
        }
        negated = false;
        i += 1;
    }
    Some(rule)
}

/// Splits a save line into words; double-quoted words keep their spaces.
pub(crate) fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                any = false;
            }
            c => current.push(c),
        }
    }
    if any || !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with iptables-save v1.8.9 (nf_tables) in a private namespace, with a CSF-like
    // LOGDROPIN chain and a DENYIN entry added.
    const SAVE: &str = "# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 12:54:09 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:f2b-x - [0:0]
:DENYIN - [0:0]
:LOGDROPIN - [0:0]
-A INPUT -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable
-A INPUT -s 104.16.0.0/13 -j DROP
-A INPUT ! -s 10.0.0.0/8 -p tcp -m multiport --dports 80,443 -j f2b-x
-A INPUT -m set ! --match-set trusted src -j DROP
-A f2b-x -s 1.2.3.4/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-x -j RETURN
-A DENYIN -s 172.64.1.1/32 -m comment --comment \"do not delete\" -j LOGDROPIN
-A LOGDROPIN -p tcp -m limit --limit 30/min -j LOG --log-prefix \"Firewall: *TCP_IN Blocked* \"
-A LOGDROPIN -m comment --comment \"end\" -j DROP
COMMIT
# Completed on Wed Nov 25 12:54:09 2026
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -s 104.16.0.0/13 -j DROP
COMMIT
";

    #[test]
    fn parses_chains_rules_sources_sets_and_targets() {
        let t = parse_save(SAVE);
        assert_eq!(t.chains.len(), 7);
        assert!(t.has_chain("DOCKER-USER"));
        assert_eq!(t.rules.len(), 9, "the nat table is ignored");
        let r = &t.rules;
        assert_eq!(r[0].source_sets, ["f2b-sshd"]);
        assert_eq!(r[0].target.as_deref(), Some("REJECT"));
        assert_eq!(r[1].source, AddrRange::parse("104.16.0.0/13"));
        assert_eq!(r[2].source, None, "negated sources are not sources");
        assert_eq!(r[2].target.as_deref(), Some("f2b-x"));
        assert!(
            r[3].source_sets.is_empty(),
            "negated set matches are not sources"
        );
        assert_eq!(r[6].source, AddrRange::parse("172.64.1.1"));
        assert!(!r[6].unconditional && r[8].unconditional && r[5].unconditional);
    }

    #[test]
    fn drop_targets_include_chains_that_end_in_a_drop() {
        let t = parse_save(SAVE);
        assert!(t.drops(&t.rules[0]));
        assert!(t.drops(&t.rules[1]));
        assert!(!t.drops(&t.rules[2]), "f2b-x ends with RETURN");
        assert!(
            t.drops(&t.rules[6]),
            "LOGDROPIN ends with an unconditional DROP"
        );
        assert!(!t.drops(&t.rules[5]));
    }

    #[test]
    fn follows_jumps_and_finds_the_first_rule() {
        let t = parse_save(SAVE);
        assert_eq!(t.reachable_from("INPUT"), ["INPUT", "f2b-x"]);
        assert_eq!(t.reachable_from("DENYIN"), ["DENYIN", "LOGDROPIN"]);
        assert!(!t.jumps_first("INPUT", "CF-ALLOW"));
        let ours = parse_save("*filter\n:INPUT ACCEPT [0:0]\n:CF-ALLOW - [0:0]\n-A INPUT -j CF-ALLOW\n-A INPUT -s 104.16.0.0/13 -j DROP\nCOMMIT\n");
        assert!(ours.jumps_first("INPUT", "CF-ALLOW"));
        assert_eq!(ours.reachable_from("INPUT"), ["INPUT", "CF-ALLOW"]);
    }

    #[test]
    fn quoted_words_keep_spaces() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a \"b\" c" -j DROP"#),
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "a \"b\" c",
                "-j",
                "DROP"
            ]
        );
        assert_eq!(split_words(r#"--comment """#), ["--comment", ""]);
    }
}
