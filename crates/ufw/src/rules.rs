//! ufw's user rules files (`user.rules`, `user6.rules`) exactly as ufw 0.36 writes them,
//! and cf-allow's entries in them.
//!
//! Between `### RULES ###` and `### END RULES ###` every rule is an entry: a
//! `### tuple ### …` line (what `ufw status` shows and what ufw reads back), the
//! `-A ufw-user-input …` lines ufw generates from it, and one blank line. cf-allow's
//! entries are `allow tcp PORTS ANY-DST any RANGE in comment=<hex of "cf-allow">`; every
//! other byte of the file is kept as it is.

use std::ops::Range;

use cf_allow_diff::{Family, IpNet};

use crate::Error;

/// `comment=` value ufw writes for the comment `cf-allow` (hex of its bytes).
pub(crate) fn tag_field() -> String {
    format!("comment={}", cf_allow_exec::hex(crate::TAG.as_bytes()))
}

/// ufw accepts at most 15 ports in one multiport rule.
const MAX_PORTS: usize = 15;

/// The chain ufw loads a family's user rules into.
pub(crate) fn input_chain(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ufw-user-input",
        Family::Ipv6 => "ufw6-user-input",
    }
}

/// The file a family's user rules live in.
pub(crate) fn file_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "user.rules",
        Family::Ipv6 => "user6.rules",
    }
}

fn any_dst(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "0.0.0.0/0",
        Family::Ipv6 => "::/0",
    }
}

/// A source as ufw writes it: a host without its prefix length, else the CIDR.
fn ufw_source(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// The configured ports in the groups cf-allow writes one rule for: sorted, at most 15 per
/// rule; one empty group for "all ports".
pub(crate) fn port_groups(ports: &[u16]) -> Vec<Vec<u16>> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        return vec![Vec::new()];
    }
    sorted.chunks(MAX_PORTS).map(<[u16]>::to_vec).collect()
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One rule cf-allow wants: a range and a group of ports (empty = all ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnRule {
    pub net: IpNet,
    pub ports: Vec<u16>,
}

impl OwnRule {
    /// Every rule for `net` with the configured `ports`.
    pub fn all_for(net: IpNet, ports: &[u16]) -> Vec<OwnRule> {
        port_groups(ports)
            .into_iter()
            .map(|ports| OwnRule { net, ports })
            .collect()
    }

    /// The `-A` rule spec after the chain name, as ufw writes it in its file.
    pub fn file_spec(&self) -> String {
        let src = ufw_source(&self.net);
        match self.ports.as_slice() {
            [] => format!("-p tcp -s {src} -j ACCEPT"),
            [port] => format!("-p tcp --dport {port} -s {src} -j ACCEPT"),
            many => format!(
                "-p tcp -m multiport --dports {} -s {src} -j ACCEPT",
                join(many)
            ),
        }
    }

    /// The same rule as `iptables-save` prints it.
    pub fn saved_spec(&self) -> String {
        let net = self.net;
        match self.ports.as_slice() {
            [] => format!("-s {net} -p tcp -j ACCEPT"),
            [port] => format!("-s {net} -p tcp -m tcp --dport {port} -j ACCEPT"),
            many => format!(
                "-s {net} -p tcp -m multiport --dports {} -j ACCEPT",
                join(many)
            ),
        }
    }

    /// The entry's lines as ufw writes them (tuple, rule, blank line).
    pub fn entry(&self) -> String {
        let family = Family::of(&self.net);
        let dport = if self.ports.is_empty() {
            "any".to_string()
        } else {
            join(&self.ports)
        };
        format!(
            "### tuple ### allow tcp {dport} {} any {} in {}\n-A {} {}\n\n",
            any_dst(family),
            ufw_source(&self.net),
            tag_field(),
            input_chain(family),
            self.file_spec()
        )
    }

    /// The rule in the words of the ufw command that adds it.
    pub fn words(&self) -> String {
        let src = ufw_source(&self.net);
        if self.ports.is_empty() {
            format!("ufw allow proto tcp from {src} comment {}", crate::TAG)
        } else {
            format!(
                "ufw allow proto tcp from {src} to any port {} comment {}",
                join(&self.ports),
                crate::TAG
            )
        }
    }
}

/// Who an entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Not tagged: the admin's (or text outside any entry).
    Admin,
    /// Tagged and shaped like cf-allow's rules: cf-allow's, for this range.
    Own(IpNet),
    /// Tagged, but not a rule cf-allow writes (another action, protocol, interface, …).
    ForeignTagged,
}

/// The fields of a `### tuple ###` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tuple {
    pub fields: Vec<String>,
}

impl Tuple {
    fn parse(rest: &str) -> Tuple {
        Tuple {
            fields: rest.split_whitespace().map(str::to_string).collect(),
        }
    }

    fn field(&self, i: usize) -> &str {
        self.fields.get(i).map(String::as_str).unwrap_or("")
    }

    fn tagged(&self) -> bool {
        self.fields.last().is_some_and(|f| *f == tag_field())
    }

    /// The action (`allow`, `deny`, `reject`, `limit`, with `_log`/`_log-all` suffixes).
    pub fn action(&self) -> &str {
        self.field(0)
    }

    /// The source range (`0.0.0.0/0` and `::/0` are "anywhere").
    pub fn source(&self) -> Option<IpNet> {
        parse_net(self.field(5))
    }

    fn owner(&self, family: Family) -> Owner {
        if !self.tagged() {
            return Owner::Admin;
        }
        let f = &self.fields;
        let shaped = f.len() == 8
            && f[0] == "allow"
            && f[1] == "tcp"
            && ports_field(&f[2]).is_some()
            && f[3] == any_dst(family)
            && f[4] == "any"
            && f[6] == "in";
        match self.source() {
            Some(net) if shaped && Family::of(&net) == family => Owner::Own(net),
            _ => Owner::ForeignTagged,
        }
    }

    /// Whether this rule's protocol and destination ports cover TCP traffic to `port`
    /// (`None` = any port).
    fn matches_tcp_port(&self, port: Option<u16>) -> bool {
        if !matches!(self.field(1), "tcp" | "any") {
            return false;
        }
        let dport = self.field(2);
        if dport == "any" {
            return true;
        }
        let Some(port) = port else {
            return true;
        };
        dport.split(',').any(|item| match item.split_once(':') {
            Some((lo, hi)) => matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&port)),
            None => item.parse::<u16>() == Ok(port),
        })
    }

    /// The rule in the words of the ufw command that adds it, without `ufw`
    /// (`deny from 203.0.113.0/24`, `allow proto tcp from 192.0.2.0/24 to any port 80,443`).
    pub fn words(&self) -> String {
        let proto = match self.field(1) {
            "any" => String::new(),
            p => format!(" proto {p}"),
        };
        let src = match self.field(5) {
            "0.0.0.0/0" | "::/0" => "any",
            s => s,
        };
        let port = match self.field(2) {
            "any" => String::new(),
            p => format!(" to any port {p}"),
        };
        format!("{}{proto} from {src}{port}", self.action())
    }
}

/// A list of destination ports as cf-allow writes them (`any` or `80,443`).
fn ports_field(text: &str) -> Option<Vec<u16>> {
    if text == "any" {
        return Some(Vec::new());
    }
    text.split(',').map(|p| p.parse::<u16>().ok()).collect()
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// One entry of the RULES section (or the text before the first one).
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// Its lines (indices into [`RulesFile::lines`]).
    pub lines: Range<usize>,
    /// Its tuple; `None` for the blank lines before the first entry.
    pub tuple: Option<Tuple>,
    pub owner: Owner,
    /// How many rules of the family's input chain come before this entry's.
    pub chain_before: usize,
    /// How many rules of the input chain this entry has.
    pub chain_rules: usize,
}

/// A parsed user rules file.
#[derive(Clone, Debug)]
pub(crate) struct RulesFile {
    pub family: Family,
    /// Its lines, each with its line terminator.
    pub lines: Vec<String>,
    /// The index of the `### END RULES ###` line.
    end: usize,
    /// The entries between `### RULES ###` and `### END RULES ###`.
    pub segments: Vec<Segment>,
}

impl RulesFile {
    /// Parses `bytes`; `path` names the file in errors. Anything ufw 0.36 would not have
    /// written between the markers is an error, so nothing is changed in a file cf-allow does
    /// not understand.
    pub fn parse(family: Family, bytes: &[u8], path: &str) -> Result<RulesFile, Error> {
        let format = |detail: String| Error::Format {
            path: path.to_string(),
            detail,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format("not UTF-8 text, not a file ufw wrote".into()))?;
        let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        let find = |marker: &str| -> Result<usize, Error> {
            let found: Vec<usize> = (0..lines.len())
                .filter(|i| lines[*i].trim_end() == marker)
                .collect();
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(format(format!("no `{marker}` line"))),
                _ => Err(format(format!("`{marker}` appears {} times", found.len()))),
            }
        };
        let start = find("### RULES ###")?;
        let end = find("### END RULES ###")?;
        if end < start {
            return Err(format(
                "`### END RULES ###` comes before `### RULES ###`".into(),
            ));
        }
        if !lines[end].ends_with('\n') {
            return Err(format(
                "the file ends right after `### END RULES ###`".into(),
            ));
        }
        let chain = input_chain(family);
        let chain_prefix = format!("-A {chain} ");
        let mut segments: Vec<Segment> = Vec::new();
        let mut chain_count = 0;
        let mut current = Segment {
            lines: start + 1..start + 1,
            tuple: None,
            owner: Owner::Admin,
            chain_before: 0,
            chain_rules: 0,
        };
        for (i, raw) in lines.iter().enumerate().take(end).skip(start + 1) {
            let line = raw.trim_end_matches('\n');
            if let Some(rest) = line.strip_prefix("### tuple ###") {
                if !current.lines.is_empty() {
                    segments.push(current);
                }
                let tuple = Tuple::parse(rest);
                current = Segment {
                    lines: i..i + 1,
                    owner: tuple.owner(family),
                    tuple: Some(tuple),
                    chain_before: chain_count,
                    chain_rules: 0,
                };
                continue;
            }
            if line.trim().is_empty() {
                current.lines.end = i + 1;
            } else if line.starts_with("-A ") && current.tuple.is_some() {
                if line.starts_with(&chain_prefix) {
                    current.chain_rules += 1;
                    chain_count += 1;
                }
                current.lines.end = i + 1;
            } else {
                return Err(format(format!(
                    "line {} is not part of a `### tuple ###` entry: {line}",
                    i + 1
                )));
            }
        }
        if !current.lines.is_empty() {
            segments.push(current);
        }
        Ok(RulesFile {
            family,
            lines,
            end,
            segments,
        })
    }

    /// The non-blank lines of a segment, joined.
    fn content(&self, segment: &Segment) -> String {
        self.lines[segment.lines.clone()]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim_end_matches('\n'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `-A <input chain>` rule specs of the whole file, in order.
    pub fn chain_specs(&self) -> Vec<String> {
        let prefix = format!("-A {} ", input_chain(self.family));
        self.segments
            .iter()
            .flat_map(|s| self.lines[s.lines.clone()].iter())
            .filter_map(|l| l.trim_end_matches('\n').strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// Which cf-allow entries would stay if the file should hold exactly `wanted` on
    /// `ports`: for each wanted rule the first entry with exactly its bytes.
    fn match_wanted(&self, wanted: &[OwnRule]) -> (Vec<Option<usize>>, Vec<bool>) {
        let mut taken = vec![false; self.segments.len()];
        let mut found = Vec::with_capacity(wanted.len());
        for rule in wanted {
            let want = content_of(&rule.entry());
            let hit = self.segments.iter().enumerate().position(|(i, s)| {
                !taken[i]
                    && matches!(s.owner, Owner::Own(net) if net == rule.net)
                    && self.content(s) == want
            });
            if let Some(i) = hit {
                taken[i] = true;
            }
            found.push(hit);
        }
        (found, taken)
    }

    /// What cf-allow holds: the ranges whose every rule is present exactly, and the repairs a
    /// sync makes to cf-allow's other entries, in ufw's words.
    pub fn held(&self, ports: &[u16]) -> (Vec<IpNet>, Vec<String>) {
        let mut nets: Vec<IpNet> = Vec::new();
        for s in &self.segments {
            if let Owner::Own(net) = s.owner {
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
        let mut held = Vec::new();
        let mut wanted = Vec::new();
        for net in nets {
            let rules = OwnRule::all_for(net, ports);
            let (found, _) = self.match_wanted(&rules);
            if found.iter().all(Option::is_some) {
                held.push(net);
                wanted.extend(rules);
            }
        }
        let (_, taken) = self.match_wanted(&wanted);
        let file = file_name(self.family);
        let notes = self
            .segments
            .iter()
            .zip(&taken)
            .filter(|(s, taken)| matches!(s.owner, Owner::Own(_)) && !**taken)
            .filter_map(|(s, _)| s.tuple.as_ref())
            .map(|t| {
                format!(
                    "ufw: replace the cf-allow rule `{}` in {file}: it is not the rule cf-allow writes for the configured ports (edited by hand, a duplicate or old ports)",
                    t.words()
                )
            })
            .collect();
        (held, notes)
    }

    /// Warnings about tagged entries cf-allow did not write.
    pub fn foreign_tagged(&self) -> Vec<String> {
        let file = file_name(self.family);
        self.segments
            .iter()
            .filter(|s| s.owner == Owner::ForeignTagged)
            .filter_map(|s| s.tuple.as_ref())
            .map(|t| format!(
                "ufw: the rule `{}` in {file} has the comment {} but is not a rule cf-allow writes; it is left alone (give it another comment)",
                t.words(),
                crate::TAG
            ))
            .collect()
    }

    /// Warnings about the admin's `deny`/`reject` rules that come before cf-allow's rule for
    /// one of `nets` (or anywhere, for a range cf-allow has no rule for yet) and match it.
    pub fn blocking_denies(&self, nets: &[IpNet], ports: &[u16]) -> Vec<String> {
        let file = file_name(self.family);
        let first_own = |net: &IpNet| {
            self.segments
                .iter()
                .position(|s| s.owner == Owner::Own(*net))
                .unwrap_or(self.segments.len())
        };
        let probe: Vec<Option<u16>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().copied().map(Some).collect()
        };
        let mut warnings = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            let Some(t) = s.tuple.as_ref().filter(|_| s.owner == Owner::Admin) else {
                continue;
            };
            if !(t.action().starts_with("deny") || t.action().starts_with("reject")) {
                continue;
            }
            let Some(src) = t.source() else { continue };
            if !probe.iter().any(|p| t.matches_tcp_port(*p)) {
                continue;
            }
            let hit: Vec<String> = nets
                .iter()
                .filter(|n| Family::of(n) == self.family)
                .filter(|n| overlaps(&src, n) && i < first_own(n))
                .map(IpNet::to_string)
                .collect();
            if let Some(first) = hit.first() {
                let more = if hit.len() > 1 {
                    format!(" and {} more", hit.len() - 1)
                } else {
                    String::new()
                };
                warnings.push(format!(
                    "ufw: your rule `{}` in {file} comes before cf-allow's rules and matches the Cloudflare range {first}{more}: ufw applies the first matching rule, so Cloudflare is blocked there; delete it or narrow it",
                    t.words()
                ));
            }
        }
        warnings
    }

    /// The file holding exactly `wanted` as cf-allow's entries: entries already right stay
    /// where they are, cf-allow's other entries go, missing ones are appended after the last
    /// entry. Returns the new bytes and the input chain's change: the 1-based positions of
    /// deleted rules (in the old chain) and the specs of appended rules.
    pub fn edit(&self, wanted: &[OwnRule]) -> FileEdit {
        let (found, taken) = self.match_wanted(wanted);
        let mut text = String::new();
        let mut deleted = Vec::new();
        let mut body_end = self.end;
        if let Some(last) = self.segments.last() {
            body_end = last.lines.end;
        }
        for line in &self.lines[..self.segments.first().map_or(body_end, |s| s.lines.start)] {
            text.push_str(line);
        }
        for (s, taken) in self.segments.iter().zip(&taken) {
            if matches!(s.owner, Owner::Own(_)) && !taken {
                deleted.extend(s.chain_before + 1..=s.chain_before + s.chain_rules);
                continue;
            }
            for line in &self.lines[s.lines.clone()] {
                text.push_str(line);
            }
        }
        let mut appended = Vec::new();
        let mut added = Vec::new();
        for (rule, hit) in wanted.iter().zip(&found) {
            if hit.is_none() {
                text.push_str(&rule.entry());
                appended.push(rule.file_spec());
                added.push(rule.clone());
            }
        }
        for line in &self.lines[body_end..] {
            text.push_str(line);
        }
        let removed = self
            .segments
            .iter()
            .zip(&taken)
            .filter(|(s, t)| matches!(s.owner, Owner::Own(_)) && !**t)
            .filter_map(|(s, _)| s.tuple.as_ref().map(Tuple::words))
            .collect();
        FileEdit {
            text,
            deleted,
            appended,
            added,
            removed,
        }
    }

    /// The positions (1-based) and saved specs of cf-allow's rules that stay, to check the
    /// running chain against.
    pub fn kept_own_positions(&self, wanted: &[OwnRule]) -> Vec<(usize, String)> {
        let (found, _) = self.match_wanted(wanted);
        wanted
            .iter()
            .zip(found)
            .filter_map(|(rule, hit)| {
                let s = &self.segments[hit?];
                (s.chain_rules == 1).then(|| (s.chain_before + 1, rule.saved_spec()))
            })
            .collect()
    }

    /// The number of input chain rules in the file.
    pub fn chain_len(&self) -> usize {
        self.segments.iter().map(|s| s.chain_rules).sum()
    }
}

/// The change [`RulesFile::edit`] computed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileEdit {
    /// The new file.
    pub text: String,
    /// Positions (1-based, old numbering) of the input chain's rules to delete.
    pub deleted: Vec<usize>,
    /// Rule specs to append to the input chain.
    pub appended: Vec<String>,
    /// The rules added (for messages).
    pub added: Vec<OwnRule>,
    /// The entries removed, in ufw's words.
    pub removed: Vec<String>,
}

fn content_of(entry: &str) -> String {
    entry
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `user.rules` as ufw 0.36 wrote it after `ufw allow 22/tcp`, `ufw deny from
    /// 203.0.113.0/24` and `ufw allow from 192.0.2.5 to any port 8080 proto tcp comment 'my
    /// app'` (header shortened).
    const ADMIN: &str = "*filter
:ufw-user-input - [0:0]
:ufw-user-output - [0:0]
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in
-A ufw-user-input -p tcp --dport 22 -j ACCEPT

### tuple ### deny any any 0.0.0.0/0 any 203.0.113.0/24 in
-A ufw-user-input -s 203.0.113.0/24 -j DROP

### tuple ### allow tcp 8080 0.0.0.0/0 any 192.0.2.5 in comment=6d7920617070
-A ufw-user-input -p tcp --dport 8080 -s 192.0.2.5 -j ACCEPT

### END RULES ###

### LOGGING ###
-A ufw-after-logging-input -j LOG --log-prefix \"[UFW BLOCK] \" -m limit --limit 3/min --limit-burst 10
### END LOGGING ###
COMMIT
";

    /// The entry ufw itself wrote for `ufw allow proto tcp from 173.245.48.0/20 to any port
    /// 80,443 comment cf-allow`.
    const UFW_ENTRY: &str = "### tuple ### allow tcp 80,443 0.0.0.0/0 any 173.245.48.0/20 in comment=63662d616c6c6f77\n-A ufw-user-input -p tcp -m multiport --dports 80,443 -s 173.245.48.0/20 -j ACCEPT\n\n";

    fn net(s: &str) -> IpNet {
        s.parse().expect("test CIDR")
    }

    fn parse(text: &str) -> RulesFile {
        RulesFile::parse(Family::Ipv4, text.as_bytes(), "user.rules").expect("parse")
    }

    #[test]
    fn entries_are_byte_identical_to_ufws_own() {
        let rule = OwnRule {
            net: net("173.245.48.0/20"),
            ports: vec![80, 443],
        };
        assert_eq!(rule.entry(), UFW_ENTRY);
        // What ufw wrote for `… from 192.0.2.7/32 to any port 443` and `… from 192.0.2.0/24`.
        let host = OwnRule {
            net: net("192.0.2.7/32"),
            ports: vec![443],
        };
        assert_eq!(host.entry(), "### tuple ### allow tcp 443 0.0.0.0/0 any 192.0.2.7 in comment=63662d616c6c6f77\n-A ufw-user-input -p tcp --dport 443 -s 192.0.2.7 -j ACCEPT\n\n");
        assert_eq!(
            host.saved_spec(),
            "-s 192.0.2.7/32 -p tcp -m tcp --dport 443 -j ACCEPT"
        );
        let all = OwnRule {
            net: net("192.0.2.0/24"),
            ports: vec![],
        };
        assert_eq!(all.entry(), "### tuple ### allow tcp any 0.0.0.0/0 any 192.0.2.0/24 in comment=63662d616c6c6f77\n-A ufw-user-input -p tcp -s 192.0.2.0/24 -j ACCEPT\n\n");
        let v6 = OwnRule {
            net: net("2001:db8::7/128"),
            ports: vec![443],
        };
        assert_eq!(v6.entry(), "### tuple ### allow tcp 443 ::/0 any 2001:db8::7 in comment=63662d616c6c6f77\n-A ufw6-user-input -p tcp --dport 443 -s 2001:db8::7 -j ACCEPT\n\n");
        assert_eq!(
            rule.words(),
            "ufw allow proto tcp from 173.245.48.0/20 to any port 80,443 comment cf-allow"
        );
    }

    #[test]
    fn port_lists_are_sorted_and_split_at_fifteen() {
        assert_eq!(port_groups(&[443, 80, 443]), vec![vec![80, 443]]);
        assert_eq!(port_groups(&[]), vec![Vec::<u16>::new()]);
        let many: Vec<u16> = (1..=16).collect();
        let groups = port_groups(&many);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 15);
        assert_eq!(groups[1], vec![16]);
    }

    #[test]
    fn sync_appends_after_the_admins_rules_and_remove_restores_the_bytes() {
        let file = parse(ADMIN);
        assert_eq!(file.chain_len(), 3);
        let wanted: Vec<OwnRule> = ["173.245.48.0/20", "103.21.244.0/22"]
            .iter()
            .flat_map(|n| OwnRule::all_for(net(n), &[443, 80]))
            .collect();
        let edit = file.edit(&wanted);
        assert!(edit.deleted.is_empty());
        assert_eq!(edit.appended.len(), 2);
        let expected = ADMIN.replace(
            "### END RULES ###",
            &format!("{UFW_ENTRY}{}### END RULES ###", wanted[1].entry()),
        );
        assert_eq!(edit.text, expected);

        // In sync: nothing changes.
        let synced = parse(&edit.text);
        let (held, notes) = synced.held(&[80, 443]);
        assert_eq!(held, vec![net("173.245.48.0/20"), net("103.21.244.0/22")]);
        assert!(notes.is_empty(), "{notes:?}");
        let again = synced.edit(&wanted);
        assert!(again.deleted.is_empty() && again.appended.is_empty());
        assert_eq!(again.text, edit.text);
        assert_eq!(
            synced.kept_own_positions(&wanted),
            vec![(4, wanted[0].saved_spec()), (5, wanted[1].saved_spec())]
        );

        // One range dropped: its rule (chain position 4) goes, the other stays.
        let shrink = synced.edit(&wanted[1..]);
        assert_eq!(shrink.deleted, vec![4]);
        assert!(shrink.appended.is_empty());

        // Remove: the admin's bytes exactly.
        let removed = synced.edit(&[]);
        assert_eq!(removed.text, ADMIN);
        assert_eq!(removed.deleted, vec![4, 5]);
    }

    #[test]
    fn hand_edits_and_duplicates_are_repaired() {
        let edited = ADMIN.replace(
            "### END RULES ###",
            &format!(
                "{}{UFW_ENTRY}{UFW_ENTRY}### END RULES ###",
                UFW_ENTRY.replace("80,443", "8443")
            ),
        );
        let file = parse(&edited);
        let (held, notes) = file.held(&[80, 443]);
        assert_eq!(held, vec![net("173.245.48.0/20")]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        let wanted = OwnRule::all_for(net("173.245.48.0/20"), &[80, 443]);
        let edit = file.edit(&wanted);
        assert_eq!(edit.deleted, vec![4, 6]);
        assert!(edit.appended.is_empty());
        assert_eq!(
            edit.text,
            ADMIN.replace(
                "### END RULES ###",
                &format!("{UFW_ENTRY}### END RULES ###")
            )
        );
    }

    #[test]
    fn tagged_rules_of_another_shape_are_foreign_and_kept() {
        let text = ADMIN.replace(
            "### END RULES ###",
            "### tuple ### deny tcp 80 0.0.0.0/0 any 192.0.2.0/24 in comment=63662d616c6c6f77\n-A ufw-user-input -p tcp --dport 80 -s 192.0.2.0/24 -j DROP\n\n### END RULES ###",
        );
        let file = parse(&text);
        assert_eq!(file.foreign_tagged().len(), 1);
        assert_eq!(file.held(&[80]).0, Vec::<IpNet>::new());
        assert_eq!(file.edit(&[]).text, text);
    }

    #[test]
    fn an_admin_deny_before_cf_allows_rules_is_reported() {
        let file = parse(ADMIN);
        let nets = [net("203.0.113.0/24"), net("173.245.48.0/20")];
        let warnings = file.blocking_denies(&nets, &[443]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("`deny from 203.0.113.0/24`"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("203.0.113.0/24"));
        assert!(file
            .blocking_denies(&[net("173.245.48.0/20")], &[443])
            .is_empty());
        // A port-specific deny matches only its port.
        let port_deny = parse(&ADMIN.replace(
            "### tuple ### deny any any",
            "### tuple ### deny tcp 8000:9000",
        ));
        assert!(port_deny.blocking_denies(&nets, &[443]).is_empty());
        assert_eq!(port_deny.blocking_denies(&nets, &[8080]).len(), 1);
    }

    #[test]
    fn files_ufw_did_not_write_are_refused() {
        for (text, needle) in [
            ("*filter\nCOMMIT\n", "no `### RULES ###` line"),
            (
                "### RULES ###\n-A ufw-user-input -j ACCEPT\n### END RULES ###\n",
                "line 2 is not part of",
            ),
            (
                "### RULES ###\n\n### tuple ### allow any any 0.0.0.0/0 any 0.0.0.0/0 in\nhello\n### END RULES ###\n",
                "line 4",
            ),
            ("### RULES ###\n### END RULES ###", "ends right after"),
        ] {
            let err = RulesFile::parse(Family::Ipv4, text.as_bytes(), "user.rules")
                .expect_err(text)
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(RulesFile::parse(Family::Ipv4, b"\xff", "user.rules").is_err());
    }
}
