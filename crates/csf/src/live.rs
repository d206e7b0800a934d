//! CSF's running allow rules: the exact rules CSF's `linefilter` creates from csf.allow
//! lines, reading them back from `iptables-save` / `ipset save`, and changing them in one
//! `iptables-restore --noflush` transaction per family (plus one `ipset restore`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cf_allow_diff::{Family, IpNet};

use crate::conf::{CsfConf, Iface};
use crate::entries::{parse_net, Entry};
use crate::Error;

/// CSF's two allow chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    /// `ALLOWIN`: matched on the source address.
    AllowIn,
    /// `ALLOWOUT`: matched on the destination address.
    AllowOut,
}

impl Chain {
    fn name(self) -> &'static str {
        match self {
            Chain::AllowIn => "ALLOWIN",
            Chain::AllowOut => "ALLOWOUT",
        }
    }
}

/// One iptables rule in ALLOWIN/ALLOWOUT of the shape CSF builds for an allow entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// The chain.
    pub chain: Chain,
    /// Source (ALLOWIN) or destination (ALLOWOUT) range.
    pub net: IpNet,
    /// `-i`/`-o` match.
    pub iface: Iface,
    /// TCP destination port, for advanced filters.
    pub dport: Option<u16>,
    /// `ACCEPT` (or `LOGACCEPT` in WATCH_MODE).
    pub target: String,
}

impl Rule {
    /// The rule's address family.
    pub fn family(&self) -> Family {
        Family::of(&self.net)
    }

    /// The rule specification after `-I`/`-D`, as iptables accepts it.
    pub fn spec(&self) -> String {
        let (iface_flag, addr_flag) = match self.chain {
            Chain::AllowIn => ("-i", "-s"),
            Chain::AllowOut => ("-o", "-d"),
        };
        let negate = if self.iface.negated { "! " } else { "" };
        let port = self
            .dport
            .map(|p| format!(" -p tcp --dport {p}"))
            .unwrap_or_default();
        format!(
            "{} {negate}{iface_flag} {} {addr_flag} {}{port} -j {}",
            self.chain.name(),
            self.iface.name,
            self.net,
            self.target
        )
    }

    /// Reads one `iptables-save` line; `None` for anything that is not of CSF's allow shape.
    pub fn from_save_line(line: &str) -> Option<Rule> {
        let mut tokens = line.split_whitespace();
        if tokens.next()? != "-A" {
            return None;
        }
        let chain = match tokens.next()? {
            "ALLOWIN" => Chain::AllowIn,
            "ALLOWOUT" => Chain::AllowOut,
            _ => return None,
        };
        let (mut src, mut dst, mut iin, mut iout) = (None, None, None, None);
        let (mut proto, mut dport, mut target) = (None, None, None);
        let mut negate = false;
        while let Some(token) = tokens.next() {
            if token == "!" {
                negate = true;
                continue;
            }
            let value = tokens.next()?;
            match (token, negate) {
                ("-s", false) => src = Some(parse_net(value)?),
                ("-d", false) => dst = Some(parse_net(value)?),
                ("-i", n) => {
                    iin = Some(Iface {
                        negated: n,
                        name: value.into(),
                    })
                }
                ("-o", n) => {
                    iout = Some(Iface {
                        negated: n,
                        name: value.into(),
                    })
                }
                ("-p", false) if value == "tcp" => proto = Some(value),
                ("-m", false) if value == "tcp" => {}
                ("--dport", false) => dport = Some(value.parse::<u16>().ok()?),
                ("-j", false) => target = Some(value.to_string()),
                _ => return None,
            }
            negate = false;
        }
        if proto.is_some() != dport.is_some() {
            return None;
        }
        let (net, iface) = match chain {
            Chain::AllowIn if dst.is_none() && iout.is_none() => (src?, iin?),
            Chain::AllowOut if src.is_none() && iin.is_none() && dport.is_none() => (dst?, iout?),
            _ => return None,
        };
        Some(Rule {
            chain,
            net,
            iface,
            dport,
            target: target?,
        })
    }
}

/// One live object CSF creates for an allow entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Live {
    /// A rule in ALLOWIN or ALLOWOUT.
    Rule(Rule),
    /// An element of `chain_ALLOW` / `chain_6_ALLOW` (with `LF_IPSET = "1"`).
    SetElement(IpNet),
}

impl Live {
    /// The object's address family.
    pub fn family(&self) -> Family {
        match self {
            Live::Rule(r) => r.family(),
            Live::SetElement(n) => Family::of(n),
        }
    }

    /// How an admin reads it (`iptables ALLOWIN ! -i lo -s … -j ACCEPT`).
    pub fn describe(&self) -> String {
        match self {
            Live::Rule(r) => format!("{} {}", tool_name(r.family()), r.spec()),
            Live::SetElement(n) => format!("ipset {} {n}", allow_set_name(Family::of(n))),
        }
    }
}

fn tool_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// CSF's ipset for plain allow entries of a family.
pub fn allow_set_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "chain_ALLOW",
        Family::Ipv6 => "chain_6_ALLOW",
    }
}

/// How CSF, configured by csf.conf, turns allow entries into live objects.
#[derive(Clone, Debug)]
pub struct LiveLayout {
    ipv6: bool,
    ipset: bool,
    accept: String,
    /// The device match of IPv4 rules (`-i`/`-o`), and of advanced filters in both families.
    dev4: Iface,
    /// The device match of plain IPv6 entries.
    dev6: Iface,
}

impl LiveLayout {
    /// The layout csf.conf describes.
    pub fn from_conf(conf: &CsfConf) -> LiveLayout {
        LiveLayout {
            ipv6: conf.ipv6(),
            ipset: conf.ipset(),
            accept: conf.accept_target().to_string(),
            dev4: conf.ethdev(),
            dev6: conf.eth6dev(),
        }
    }

    /// True when CSF loads entries of this family at all.
    pub fn loads(&self, family: Family) -> bool {
        family == Family::Ipv4 || self.ipv6
    }

    /// The objects CSF creates for one entry (none for IPv6 with `IPV6 = "0"`).
    pub fn objects(&self, entry: &Entry) -> Vec<Live> {
        let family = Family::of(&entry.net());
        if !self.loads(family) {
            return Vec::new();
        }
        let rule = |chain, iface: &Iface, dport| {
            Live::Rule(Rule {
                chain,
                net: entry.net(),
                iface: iface.clone(),
                dport,
                target: self.accept.clone(),
            })
        };
        match entry {
            Entry::Plain(net) if self.ipset => vec![Live::SetElement(*net)],
            Entry::Plain(_) => {
                let dev = match family {
                    Family::Ipv4 => &self.dev4,
                    Family::Ipv6 => &self.dev6,
                };
                vec![
                    rule(Chain::AllowIn, dev, None),
                    rule(Chain::AllowOut, dev, None),
                ]
            }
            // CSF builds advanced filters with the IPv4 device match in both families.
            Entry::TcpIn { port, .. } => vec![rule(Chain::AllowIn, &self.dev4, Some(*port))],
        }
    }

    /// The objects of many entries, counted (CSF creates a rule per line, duplicates too).
    pub fn count(&self, entries: &[Entry]) -> BTreeMap<Live, usize> {
        let mut counts = BTreeMap::new();
        for object in entries.iter().flat_map(|e| self.objects(e)) {
            *counts.entry(object).or_insert(0) += 1;
        }
        counts
    }
}

/// The programs CSF is configured to use.
#[derive(Clone, Debug)]
pub struct Programs {
    save: [Option<PathBuf>; 2],
    restore: [Option<PathBuf>; 2],
    ipset: Option<PathBuf>,
}

fn index(family: Family) -> usize {
    match family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    }
}

impl Programs {
    /// The paths from csf.conf (`IPTABLES_SAVE`, …), else from PATH.
    pub fn from_conf(conf: &CsfConf) -> Programs {
        Programs {
            save: [
                conf.program("IPTABLES_SAVE", "iptables-save"),
                conf.program("IP6TABLES_SAVE", "ip6tables-save"),
            ],
            restore: [
                conf.program("IPTABLES_RESTORE", "iptables-restore"),
                conf.program("IP6TABLES_RESTORE", "ip6tables-restore"),
            ],
            ipset: conf.program("IPSET", "ipset"),
        }
    }

    fn need<'a>(path: &'a Option<PathBuf>, name: &str) -> Result<&'a Path, Error> {
        path.as_deref()
            .ok_or_else(|| Error::ProgramMissing(name.to_string()))
    }
}

/// Runs `program args` with `input` on stdin; returns stdout, or an error with stderr.
/// The bound on iptables-save/-restore, ipset and `csf --lfd restart`.
pub const PROGRAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `program args…` (bounded by [`PROGRAM_TIMEOUT`]) and returns its stdout.
pub fn run(program: &Path, args: &[&str], input: Option<&str>) -> Result<String, Error> {
    tracing::debug!(command = %cf_allow_exec::command_line(program, args), "running");
    let output = cf_allow_exec::run_checked(program, args, input, PROGRAM_TIMEOUT)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What CSF has running now.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    /// Per family: CSF's ALLOWIN chain exists (CSF is running).
    pub running: [bool; 2],
    /// Rules of CSF's allow shape in ALLOWIN/ALLOWOUT, counted.
    pub rules: BTreeMap<Rule, usize>,
    /// Per family: the elements of CSF's allow ipset, when it exists.
    pub sets: [Option<BTreeSet<IpNet>>; 2],
}

impl LiveState {
    /// Reads the filter tables (and ipsets, with `LF_IPSET`) of the families CSF loads.
    pub fn read(layout: &LiveLayout, programs: &Programs) -> Result<LiveState, Error> {
        let mut state = LiveState::default();
        for family in Family::ALL {
            if !layout.loads(family) {
                continue;
            }
            let i = index(family);
            let save = Programs::need(&programs.save[i], &format!("{}-save", tool_name(family)))?;
            let text = run(save, &["-t", "filter"], None)?;
            state.running[i] = text.lines().any(|l| l.starts_with(":ALLOWIN "));
            for rule in text.lines().filter_map(Rule::from_save_line) {
                *state.rules.entry(rule).or_insert(0) += 1;
            }
            if layout.ipset && state.running[i] {
                let ipset = Programs::need(&programs.ipset, "ipset")?;
                let set = allow_set_name(family);
                let prefix = format!("add {set} ");
                // A missing set is not an error: CSF has not created it.
                if let Ok(text) = run(ipset, &["save", set], None) {
                    let members = text
                        .lines()
                        .filter_map(|l| l.strip_prefix(&prefix))
                        .filter_map(|m| parse_net(m.split_whitespace().next().unwrap_or("")))
                        .collect();
                    state.sets[i] = Some(members);
                }
            }
        }
        Ok(state)
    }

    /// True when CSF runs for `family`.
    pub fn running(&self, family: Family) -> bool {
        self.running[index(family)]
    }

    fn can_hold(&self, object: &Live) -> bool {
        let i = index(object.family());
        match object {
            Live::Rule(_) => self.running[i],
            Live::SetElement(_) => self.sets[i].is_some(),
        }
    }

    fn count(&self, object: &Live) -> usize {
        match object {
            Live::Rule(r) => self.rules.get(r).copied().unwrap_or(0),
            Live::SetElement(n) => {
                let i = index(Family::of(n));
                usize::from(self.sets[i].as_ref().is_some_and(|s| s.contains(n)))
            }
        }
    }
}

/// The live objects to add and delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveDelta {
    /// Objects to create.
    pub add: Vec<Live>,
    /// Objects to delete.
    pub delete: Vec<Live>,
}

impl LiveDelta {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// The change that turns the live objects of `old` entries into those of `new`, given
    /// what is running and what the admin's own csf.allow lines (`others`) account for:
    /// an object the admin's lines also create is never deleted, and a rule the admin's
    /// lines create is not counted as cf-allow's.
    pub fn between(
        layout: &LiveLayout,
        new: &[Entry],
        old: &[Entry],
        others: &[Entry],
        state: &LiveState,
    ) -> LiveDelta {
        let want = layout.count(new);
        let had = layout.count(old);
        let theirs = layout.count(others);
        let mut delta = LiveDelta::default();
        let keys: BTreeSet<&Live> = want.keys().chain(had.keys()).collect();
        for object in keys {
            if !state.can_hold(object) {
                continue;
            }
            let get = |m: &BTreeMap<Live, usize>| m.get(object).copied().unwrap_or(0);
            let (want, had, theirs) = (get(&want), get(&had), get(&theirs));
            let live = state.count(object);
            let (mine, wanted_live) = match object {
                // A set holds an element once, whoever listed it.
                Live::SetElement(_) => (live, usize::from(want > 0 || theirs > 0)),
                Live::Rule(_) => (live.saturating_sub(theirs), want),
            };
            if wanted_live > mine {
                delta
                    .add
                    .extend(std::iter::repeat_n(object.clone(), wanted_live - mine));
            } else if mine > wanted_live && had > want {
                let surplus = (mine - wanted_live).min(had - want);
                delta
                    .delete
                    .extend(std::iter::repeat_n(object.clone(), surplus));
            }
        }
        delta
    }

    /// Applies the change: one `iptables-restore --noflush` per family, then one
    /// `ipset -exist restore`. When a step fails, the steps already made are undone.
    pub fn apply(&self, programs: &Programs) -> Result<(), Error> {
        let steps = self.steps(programs)?;
        for (done, step) in steps.iter().enumerate() {
            if let Err(e) = step.run(false) {
                for undo in steps[..done].iter().rev() {
                    if let Err(undo_err) = undo.run(true) {
                        tracing::error!(error = %undo_err, "could not undo a live change");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn steps(&self, programs: &Programs) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        for family in Family::ALL {
            let rules = |list: &[Live]| -> Vec<String> {
                list.iter()
                    .filter_map(|o| match o {
                        Live::Rule(r) if r.family() == family => Some(r.spec()),
                        _ => None,
                    })
                    .collect()
            };
            let (add, delete) = (rules(&self.add), rules(&self.delete));
            if add.is_empty() && delete.is_empty() {
                continue;
            }
            let i = index(family);
            let restore = Programs::need(
                &programs.restore[i],
                &format!("{}-restore", tool_name(family)),
            )?;
            let script = |add: &[String], delete: &[String]| {
                let mut text = String::from("*filter\n");
                for spec in delete {
                    text.push_str(&format!("-D {spec}\n"));
                }
                // CSF inserts allow rules at the top of the chain (-I), so do we.
                for spec in add {
                    text.push_str(&format!("-I {spec}\n"));
                }
                text.push_str("COMMIT\n");
                text
            };
            steps.push(Step {
                program: restore.to_path_buf(),
                args: vec!["-w", "--noflush"],
                forward: script(&add, &delete),
                backward: script(&delete, &add),
            });
        }
        let elements = |list: &[Live], verb: &str| -> String {
            list.iter()
                .filter_map(|o| match o {
                    Live::SetElement(n) => {
                        Some(format!("{verb} {} {n}\n", allow_set_name(Family::of(n))))
                    }
                    Live::Rule(_) => None,
                })
                .collect()
        };
        let forward = elements(&self.delete, "del") + &elements(&self.add, "add");
        if !forward.is_empty() {
            let ipset = Programs::need(&programs.ipset, "ipset")?;
            steps.push(Step {
                program: ipset.to_path_buf(),
                args: vec!["-exist", "restore"],
                forward,
                backward: elements(&self.add, "del") + &elements(&self.delete, "add"),
            });
        }
        Ok(steps)
    }
}

struct Step {
    program: PathBuf,
    args: Vec<&'static str>,
    forward: String,
    backward: String,
}

impl Step {
    fn run(&self, backward: bool) -> Result<(), Error> {
        let input = if backward {
            &self.backward
        } else {
            &self.forward
        };
        run(&self.program, &self.args, Some(input)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn layout(conf: &str) -> LiveLayout {
        LiveLayout::from_conf(&CsfConf::parse(conf, Path::new("csf.conf")).expect("conf"))
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("cidr")
    }

    #[test]
    fn save_lines_csf_writes_read_back_to_the_rules_we_render() {
        let l = layout("IPV6 = \"1\"\nLF_IPSET = \"0\"\n");
        // Lines observed from `iptables-save` after `csf -r` (CSF 15.10).
        let observed = [
            "-A ALLOWIN -s 103.21.244.0/22 ! -i lo -p tcp -m tcp --dport 443 -j ACCEPT",
            "-A ALLOWIN -s 173.245.48.0/20 ! -i lo -j ACCEPT",
            "-A ALLOWOUT -d 173.245.48.0/20 ! -o lo -j ACCEPT",
        ];
        let parsed: Vec<Live> = observed
            .iter()
            .map(|l| Live::Rule(Rule::from_save_line(l).expect("CSF shape")))
            .collect();
        let mut rendered = l.objects(&Entry::TcpIn {
            net: net("103.21.244.0/22"),
            port: 443,
        });
        rendered.extend(l.objects(&Entry::Plain(net("173.245.48.0/20"))));
        assert_eq!(parsed, rendered);
        assert_eq!(
            rendered[0].describe(),
            "iptables ALLOWIN ! -i lo -s 103.21.244.0/22 -p tcp --dport 443 -j ACCEPT"
        );
        for foreign in [
            "-A ALLOWIN -m set --match-set chain_ALLOW src -j ACCEPT",
            "-A ALLOWIN -s 1.2.3.4/32 ! -i lo -p udp -m udp --dport 53 -j ACCEPT",
            "-A ALLOWIN -s 1.2.3.4/32 -m comment --comment x -j ACCEPT",
            "-A DENYIN -s 1.2.3.4/32 ! -i lo -j DROP",
            "-A LOCALINPUT ! -i lo -j ALLOWIN",
        ] {
            assert_eq!(Rule::from_save_line(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn ipv6_is_skipped_when_off_and_ipset_takes_plain_entries() {
        let off = layout("IPV6 = \"0\"\n");
        assert!(off.objects(&Entry::Plain(net("2400:cb00::/32"))).is_empty());
        let ipset = layout(
            "IPV6 = \"1\"\nLF_IPSET = \"1\"\nETH_DEVICE = \"eth0\"\nETH6_DEVICE = \"eth1\"\n",
        );
        assert_eq!(
            ipset.objects(&Entry::Plain(net("2400:cb00::/32"))),
            vec![Live::SetElement(net("2400:cb00::/32"))]
        );
        let Live::Rule(rule) = &ipset.objects(&Entry::TcpIn {
            net: net("2400:cb00::/32"),
            port: 80,
        })[0] else {
            panic!("advanced filters are rules even with LF_IPSET");
        };
        assert_eq!(
            rule.iface.name, "eth0",
            "CSF uses ETH_DEVICE for advanced filters"
        );
    }

    #[test]
    fn delta_adds_missing_and_deletes_only_what_was_ours() {
        let l = layout("IPV6 = \"1\"\n");
        let a = Entry::TcpIn {
            net: net("198.51.100.0/24"),
            port: 443,
        };
        let b = Entry::TcpIn {
            net: net("203.0.113.0/24"),
            port: 443,
        };
        let rule = |e: &Entry| match &l.objects(e)[0] {
            Live::Rule(r) => r.clone(),
            Live::SetElement(_) => panic!("rule expected"),
        };
        let mut state = LiveState {
            running: [true, true],
            ..LiveState::default()
        };
        state.rules.insert(rule(&a), 1);
        // Old file had a; new has b: add b, delete a.
        let d = LiveDelta::between(&l, &[b], &[a], &[], &state);
        assert_eq!(d.add, vec![Live::Rule(rule(&b))]);
        assert_eq!(d.delete, vec![Live::Rule(rule(&a))]);
        // The admin lists a too: it stays.
        let d = LiveDelta::between(&l, &[b], &[a], &[a], &state);
        assert!(d.delete.is_empty());
        // Admin's rule present, ours missing: one more is added.
        let d = LiveDelta::between(&l, &[a], &[a], &[a], &state);
        assert_eq!(d.add, vec![Live::Rule(rule(&a))]);
        // CSF not running: nothing live.
        let stopped = LiveState::default();
        assert!(LiveDelta::between(&l, &[b], &[a], &[], &stopped).is_empty());
    }
}
