//! ipset: reading cf-allow's `hash:net` sets and changing them with `ipset restore`.

use cf_allow_diff::{Family, IpNet};

use crate::exec::Program;
use crate::rules::{set_family, set_name, tmp_set_name};
use crate::Error;

/// The ipset program.
pub(crate) struct Ipset {
    program: Program,
}

impl Ipset {
    pub fn new() -> Ipset {
        Ipset {
            program: Program::new("ipset", "ipset"),
        }
    }

    /// True when the `ipset` program is installed.
    pub fn installed() -> bool {
        crate::exec::find_program("ipset").is_some()
    }

    /// The header of every set in this network namespace (`ipset list -t`): names, and how
    /// many rules use each set and how many entries it holds.
    pub fn list(&self) -> Result<Vec<SetHeader>, Error> {
        let out = self.program.run(&["list", "-t"], None, 0)?;
        Ok(parse_headers(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The members of one of cf-allow's sets, as stored, refusing a set of that name that
    /// is not a `hash:net` of the right family (something else is in the way).
    pub fn read(&self, name: &str, family: Family) -> Result<Vec<IpNet>, Error> {
        let out = self.program.run(&["save", name], None, 0)?;
        parse_save(&String::from_utf8_lossy(&out.stdout), name, family)
    }

    /// Runs `ipset restore` with `script`. On failure, also returns the line it stopped at.
    pub fn restore(&self, script: &str) -> Result<(), (Error, Option<usize>)> {
        self.restore_with(&["restore"], script)
    }

    /// `ipset -exist restore`: adding a member that is there or deleting one that is not
    /// is not an error (for undoing steps a failed restore may not have reached).
    pub fn restore_ignoring_existing(&self, script: &str) -> Result<(), (Error, Option<usize>)> {
        self.restore_with(&["-exist", "restore"], script)
    }

    fn restore_with(&self, args: &[&str], script: &str) -> Result<(), (Error, Option<usize>)> {
        match self.program.run(args, Some(script), 0) {
            Ok(_) => Ok(()),
            Err(err) => {
                let line = failed_line(&err.to_string());
                Err((err, line))
            }
        }
    }
}

/// One set as `ipset list -t` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SetHeader {
    /// The set's name.
    pub name: String,
    /// `References:`: how many iptables rules use the set.
    references: Option<usize>,
    /// `Number of entries:`.
    entries: Option<usize>,
    /// `maxelem` of the `Header:` line.
    maxelem: Option<usize>,
    /// The `Header:` line has the `comment` extension (cf-allow's sets do; see
    /// [`MEMBER_TAG`]).
    pub comment: bool,
}

impl SetHeader {
    /// How many members the set can hold.
    pub fn maxelem(&self) -> Option<usize> {
        self.maxelem
    }

    /// How many iptables rules use the set, and how many entries it holds.
    pub fn counts(&self) -> Result<(usize, usize), Error> {
        let field = |value: Option<usize>, key: &str| {
            value.ok_or_else(|| Error::Parse {
                program: "ipset list -t".to_string(),
                detail: format!("no `{key}` line for {}", self.name),
            })
        };
        Ok((
            field(self.references, "References:")?,
            field(self.entries, "Number of entries:")?,
        ))
    }
}

/// The headers of `ipset list -t`, one per `Name:` line.
pub(crate) fn parse_headers(text: &str) -> Vec<SetHeader> {
    let mut sets: Vec<SetHeader> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Name:") {
            sets.push(SetHeader {
                name: name.trim().to_string(),
                ..SetHeader::default()
            });
            continue;
        }
        let Some(set) = sets.last_mut() else {
            continue;
        };
        let number = |key: &str| line.strip_prefix(key).and_then(|n| n.trim().parse().ok());
        if let Some(n) = number("References:") {
            set.references = Some(n);
        } else if let Some(n) = number("Number of entries:") {
            set.entries = Some(n);
        } else if let Some(header) = line.strip_prefix("Header:") {
            let words: Vec<&str> = header.split_whitespace().collect();
            set.comment = words.contains(&"comment");
            set.maxelem = words
                .windows(2)
                .find(|w| w[0] == "maxelem")
                .and_then(|w| w[1].parse().ok());
        }
    }
    sets
}

/// cf-allow's ownership tag on a set: the set has the `comment` extension and every
/// member carries this comment (`ipset save` prints it the same way).
pub(crate) const MEMBER_TAG: &str = " comment \"cf-allow\"";

/// The `create` line for a fresh set of `family` sized for `len` members, with the
/// `comment` extension that holds cf-allow's tag. The hash starts with a bucket per four
/// members (a power of two, at least ipset's default 1024): a set created at the default
/// size is rehashed at every doubling while 100k members are added, which cost `ipset
/// restore` about a fifth more CPU than the sized set.
pub(crate) fn create_line(name: &str, family: Family, len: usize) -> String {
    let maxelem = len.max(65536);
    let hashsize = (len / 4).next_power_of_two().max(1024);
    format!(
        "create {name} hash:net family {} hashsize {hashsize} maxelem {maxelem} comment",
        set_family(family)
    )
}

/// The `add` line for a member of one of cf-allow's sets, with its tag.
pub(crate) fn add_line(name: &str, net: &IpNet) -> String {
    let mut line = String::with_capacity(name.len() + 64);
    line.push_str("add ");
    line.push_str(name);
    line.push(' ');
    cf_allow_diff::text::push_net(&mut line, net);
    line.push_str(MEMBER_TAG);
    line
}

/// Every set name cf-allow owns.
pub(crate) fn owned_names() -> [&'static str; 4] {
    [
        set_name(Family::Ipv4),
        set_name(Family::Ipv6),
        tmp_set_name(Family::Ipv4),
        tmp_set_name(Family::Ipv6),
    ]
}

pub(crate) fn parse_save(text: &str, name: &str, family: Family) -> Result<Vec<IpNet>, Error> {
    let mut members = Vec::new();
    let mut header_ok = false;
    let mut tagged = false;
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        match (tokens.next(), tokens.next()) {
            (Some("create"), Some(n)) if n == name => {
                let kind = tokens.next().unwrap_or_default();
                let rest: Vec<&str> = tokens.collect();
                let fam = rest
                    .windows(2)
                    .find(|w| w[0] == "family")
                    .map(|w| w[1])
                    .unwrap_or("inet");
                if kind != "hash:net" || fam != set_family(family) {
                    return Err(Error::Foreign(format!(
                        "the ipset {name} exists but is `{kind} family {fam}`, not `hash:net family {}`; cf-allow did not create it: rename or destroy it, or turn iptables.ipset off",
                        set_family(family)
                    )));
                }
                tagged = rest.contains(&"comment");
                if rest.contains(&"timeout") {
                    return Err(Error::Foreign(format!(
                        "the ipset {name} has timeouts, so cf-allow did not create it: rename or destroy it"
                    )));
                }
                header_ok = true;
            }
            (Some("add"), Some(n)) if n == name => {
                let member = tokens.next().unwrap_or_default();
                let comment: Vec<&str> = tokens.collect();
                if tagged && comment != ["comment", "\"cf-allow\""] {
                    return Err(Error::Foreign(format!(
                        "the ipset {name} holds {member}, which cf-allow did not add (its comment is not \"cf-allow\"); cf-allow neither changes nor destroys it: delete that member (ipset del {name} {member}), or rename the set"
                    )));
                }
                let net = parse_member(member, family).ok_or_else(|| Error::Parse {
                    program: "ipset save".to_string(),
                    detail: format!("member `{member}` of {name}"),
                })?;
                members.push(net);
            }
            _ => {}
        }
    }
    if !header_ok {
        return Err(Error::Parse {
            program: "ipset save".to_string(),
            detail: format!("no create line for {name}"),
        });
    }
    Ok(members)
}

/// A member as ipset prints it: a CIDR, or a bare address for a host prefix.
fn parse_member(text: &str, family: Family) -> Option<IpNet> {
    let net = if text.contains('/') {
        text.parse::<IpNet>().ok()?
    } else {
        IpNet::from(text.parse::<std::net::IpAddr>().ok()?)
    };
    (Family::of(&net) == family).then_some(net)
}

/// `ipset v7.17: Error in line 3: …` → 3.
fn failed_line(message: &str) -> Option<usize> {
    let rest = &message[message.find("Error in line ")? + "Error in line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_including_hosts() {
        let text = "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x594d27fe\nadd cf-allow-v4 192.0.2.1\nadd cf-allow-v4 198.51.100.0/24\n";
        let members = parse_save(text, "cf-allow-v4", Family::Ipv4).expect("parse");
        assert_eq!(
            members,
            vec![
                "192.0.2.1/32".parse::<IpNet>().expect("cidr"),
                "198.51.100.0/24".parse().expect("cidr")
            ]
        );
    }

    #[test]
    fn a_foreign_set_of_the_same_name_is_refused() {
        let text = "create cf-allow-v4 hash:ip family inet hashsize 1024 maxelem 65536\n";
        let err = parse_save(text, "cf-allow-v4", Family::Ipv4).expect_err("foreign");
        assert!(
            err.to_string().contains("not `hash:net family inet`"),
            "{err}"
        );
    }

    #[test]
    fn a_tagged_set_refuses_a_member_without_cf_allows_comment() {
        let ours = "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536 comment\nadd cf-allow-v4 192.0.2.0/24 comment \"cf-allow\"\n";
        let members = parse_save(ours, "cf-allow-v4", Family::Ipv4).expect("ours");
        assert_eq!(members.len(), 1);
        let admin = format!("{ours}add cf-allow-v4 203.0.113.9 comment \"admin\"\n");
        let err = parse_save(&admin, "cf-allow-v4", Family::Ipv4).expect_err("admin's member");
        assert!(
            err.to_string()
                .contains("holds 203.0.113.9, which cf-allow did not add"),
            "{err}"
        );
        assert!(
            parse_headers("Name: cf-allow-v4\nHeader: family inet maxelem 65536 comment\n")[0]
                .comment
        );
        assert_eq!(
            create_line("x", Family::Ipv4, 1),
            "create x hash:net family inet hashsize 1024 maxelem 65536 comment"
        );
        assert_eq!(
            create_line("x", Family::Ipv6, 50_000),
            "create x hash:net family inet6 hashsize 16384 maxelem 65536 comment"
        );
        assert_eq!(
            add_line("x", &"2001:db8::/32".parse().expect("net")),
            "add x 2001:db8::/32 comment \"cf-allow\""
        );
        assert_eq!(
            create_line("x", Family::Ipv4, 200_000),
            "create x hash:net family inet hashsize 65536 maxelem 200000 comment"
        );
    }

    #[test]
    fn parses_the_headers_of_every_set() {
        let text = "Name: f2b-sshd\nType: hash:ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\nSize in memory: 216\nReferences: 1\nNumber of entries: 3\n\nName: cf-allow-v4\nType: hash:net\nReferences: 0\nNumber of entries: 15\nName: odd\n";
        let sets = parse_headers(text);
        let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["f2b-sshd", "cf-allow-v4", "odd"]);
        assert_eq!(sets[0].counts().expect("counts"), (1, 3));
        assert_eq!(sets[0].maxelem(), Some(65536));
        assert_eq!(sets[1].maxelem(), None);
        assert_eq!(sets[1].counts().expect("counts"), (0, 15));
        assert_eq!(
            sets[2].counts().expect_err("no counts").to_string(),
            "cannot parse the output of ipset list -t: no `References:` line for odd"
        );
    }

    #[test]
    fn finds_the_failed_line() {
        assert_eq!(
            failed_line("ipset restore failed: ipset v7.17: Error in line 3: Syntax error"),
            Some(3)
        );
        assert_eq!(failed_line("other"), None);
    }
}
