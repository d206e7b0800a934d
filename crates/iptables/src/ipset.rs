//! ipset: reading cf-allow's `hash:net` sets and changing them with `ipset restore`.

use cf_allow_diff::{Family, IpNet};

use crate::exec::Program;
use crate::ipset_dump::{self, DumpedHeader, DumpedMember, DumpedSet};
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

    /// The header of every set in this network namespace (what `ipset list -t` prints):
    /// names, and how many rules use each set and how many entries it holds. Read with
    /// ipset's netlink dump of the headers; when that fails, `ipset list -t` is run instead.
    pub fn list(&self) -> Result<Vec<SetHeader>, Error> {
        match ipset_dump::headers() {
            Ok(headers) => return Ok(headers.into_iter().map(SetHeader::from).collect()),
            Err(e) => {
                tracing::debug!(error = %e, "ipset: the netlink header dump failed; running ipset list -t")
            }
        }
        self.list_with_program()
    }

    /// [`Ipset::list`] with `ipset list -t`.
    pub fn list_with_program(&self) -> Result<Vec<SetHeader>, Error> {
        let out = self.program.run(&["list", "-t"], None, 0)?;
        Ok(parse_headers(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The members of one of cf-allow's sets, as stored, refusing a set of that name that
    /// is not a `hash:net` of the right family (something else is in the way).
    ///
    /// The set is read with ipset's own netlink dump (what `ipset save NAME` asks the kernel
    /// for); when that fails, `ipset save NAME` is run instead.
    pub fn read(&self, name: &str, family: Family) -> Result<Vec<IpNet>, Error> {
        match ipset_dump::dump(name) {
            Ok(Some(set)) => return members_of(set, name, family, "the ipset netlink dump"),
            Ok(None) => tracing::debug!(
                set = name,
                "ipset: the dump found no such set; running ipset save"
            ),
            Err(e) => {
                tracing::debug!(set = name, error = %e, "ipset: the netlink dump failed; running ipset save")
            }
        }
        self.read_with_program(name, family)
    }

    /// [`Ipset::read`] with `ipset save NAME`.
    pub fn read_with_program(&self, name: &str, family: Family) -> Result<Vec<IpNet>, Error> {
        let out = self.program.run(&["save", name], None, 0)?;
        let set =
            parse_save(&String::from_utf8_lossy(&out.stdout), name, family).ok_or_else(|| {
                Error::Parse {
                    program: "ipset save".to_string(),
                    detail: format!("no create line for {name}"),
                }
            })?;
        members_of(set, name, family, "ipset save")
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

impl From<DumpedHeader> for SetHeader {
    fn from(h: DumpedHeader) -> SetHeader {
        SetHeader {
            name: h.name,
            references: h.references,
            entries: h.entries,
            maxelem: h.maxelem,
            comment: h.comment,
        }
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
/// The comment itself, and as `ipset save` prints it.
pub(crate) const TAG: &str = "cf-allow";
const TAG_QUOTED: &str = "\"cf-allow\"";

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

/// `ipset save NAME`'s text as the set it describes; `None` without a `create` line for it.
pub(crate) fn parse_save(text: &str, name: &str, family: Family) -> Option<DumpedSet> {
    let mut set: Option<DumpedSet> = None;
    for line in text.lines() {
        let mut tokens = line.split_whitespace();
        match (tokens.next(), tokens.next()) {
            (Some("create"), Some(n)) if n == name => {
                let kind = tokens.next().unwrap_or_default().to_owned();
                let rest: Vec<&str> = tokens.collect();
                let fam = rest
                    .windows(2)
                    .find(|w| w[0] == "family")
                    .map_or("inet", |w| w[1]);
                set = Some(DumpedSet {
                    kind,
                    family: fam.to_owned(),
                    comment: rest.contains(&"comment"),
                    timeout: rest.contains(&"timeout"),
                    members: Vec::new(),
                });
            }
            (Some("add"), Some(n)) if n == name => {
                let Some(set) = set.as_mut() else { continue };
                let member = tokens.next().unwrap_or_default();
                let tagged = tokens.eq(["comment", TAG_QUOTED]);
                set.members.push(DumpedMember {
                    net: parse_member(member, family).ok_or_else(|| member.to_owned()),
                    tagged,
                });
            }
            _ => {}
        }
    }
    set
}

/// The members of cf-allow's set `name` of `family`, as `program` read them, refusing a
/// set of that name that is not a `hash:net` of the right family, has timeouts, or (with
/// the `comment` extension, cf-allow's tag) holds a member without cf-allow's comment:
/// something else is in the way.
pub(crate) fn members_of(
    set: DumpedSet,
    name: &str,
    family: Family,
    program: &str,
) -> Result<Vec<IpNet>, Error> {
    if set.kind != "hash:net" || set.family != set_family(family) {
        return Err(Error::Foreign(format!(
            "the ipset {name} exists but is `{} family {}`, not `hash:net family {}`; cf-allow did not create it: rename or destroy it, or turn iptables.ipset off",
            set.kind,
            set.family,
            set_family(family)
        )));
    }
    if set.timeout {
        return Err(Error::Foreign(format!(
            "the ipset {name} has timeouts, so cf-allow did not create it: rename or destroy it"
        )));
    }
    let mut members = Vec::with_capacity(set.members.len());
    for member in set.members {
        let shown = || match &member.net {
            Ok(net) => member_text(net),
            Err(text) => text.clone(),
        };
        if set.comment && !member.tagged {
            return Err(Error::Foreign(format!(
                "the ipset {name} holds {}, which cf-allow did not add (its comment is not \"cf-allow\"); cf-allow neither changes nor destroys it: delete that member (ipset del {name} {}), or rename the set",
                shown(),
                shown()
            )));
        }
        match member.net {
            Ok(net) if Family::of(&net) == family => members.push(net),
            _ => {
                return Err(Error::Parse {
                    program: program.to_string(),
                    detail: format!("member `{}` of {name}", shown()),
                })
            }
        }
    }
    Ok(members)
}

/// A member as ipset prints it: a host prefix as a bare address.
fn member_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
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

    /// What [`Ipset::read_with_program`] makes of `text`.
    fn from_save(text: &str, name: &str, family: Family) -> Result<Vec<IpNet>, Error> {
        let set = parse_save(text, name, family).expect("a create line");
        members_of(set, name, family, "ipset save")
    }

    #[test]
    fn parses_members_including_hosts() {
        let text = "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x594d27fe\nadd cf-allow-v4 192.0.2.1\nadd cf-allow-v4 198.51.100.0/24\n";
        let members = from_save(text, "cf-allow-v4", Family::Ipv4).expect("parse");
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
        let err = from_save(text, "cf-allow-v4", Family::Ipv4).expect_err("foreign");
        assert!(
            err.to_string().contains("not `hash:net family inet`"),
            "{err}"
        );
    }

    #[test]
    fn a_tagged_set_refuses_a_member_without_cf_allows_comment() {
        let ours = "create cf-allow-v4 hash:net family inet hashsize 1024 maxelem 65536 comment\nadd cf-allow-v4 192.0.2.0/24 comment \"cf-allow\"\n";
        let members = from_save(ours, "cf-allow-v4", Family::Ipv4).expect("ours");
        assert_eq!(members.len(), 1);
        let admin = format!("{ours}add cf-allow-v4 203.0.113.9 comment \"admin\"\n");
        let err = from_save(&admin, "cf-allow-v4", Family::Ipv4).expect_err("admin's member");
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

    /// The netlink dump and `ipset save` agree, member for member and refusal for refusal,
    /// and the header dump and `ipset list -t` set for set,
    /// on the sets cf-allow creates and on every kind of set that may be in their way
    /// (checked against the kernel in a private network namespace).
    #[test]
    fn the_netlink_dump_reads_what_ipset_save_and_list_print() {
        let test = "the_netlink_dump_reads_what_ipset_save_and_list_print";
        if !cf_allow_testkit::require_root(test)
            || !cf_allow_testkit::require_programs(test, &["ipset"])
        {
            return;
        }
        let ns = cf_allow_testkit::Netns::new("ipsetdump");
        let v4 = set_name(Family::Ipv4);
        let v6 = set_name(Family::Ipv6);
        // (what is loaded, the set read, its family, what both readers must return)
        let tag = MEMBER_TAG;
        let big: String = (0..70_000u32)
            .map(|i| {
                format!(
                    "add {v4} 10.{}.{}.{}/28{tag}\n",
                    i >> 12,
                    (i >> 4) & 255,
                    (i & 15) << 4
                )
            })
            .collect();
        let cases: Vec<(String, &str, Family, Result<usize, &str>)> = vec![
            (
                format!("{}\nadd {v4} 192.0.2.0/24{tag}\nadd {v4} 198.51.100.7{tag}\nadd {v4} 203.0.112.0/23{tag}\n", create_line(v4, Family::Ipv4, 3)),
                v4, Family::Ipv4, Ok(3),
            ),
            (
                format!("{}\nadd {v6} 2001:db8:1::/48{tag}\nadd {v6} 2001:db8::1{tag}\nadd {v6} 2001:db8:8000::/33{tag}\n", create_line(v6, Family::Ipv6, 3)),
                v6, Family::Ipv6, Ok(3),
            ),
            (format!("{}\n{big}", create_line(v4, Family::Ipv4, 70_000)), v4, Family::Ipv4, Ok(70_000)),
            (
                format!("{}\nadd {v4} 192.0.2.0/24{tag}\nadd {v4} 203.0.113.9 comment \"admin\"\n", create_line(v4, Family::Ipv4, 2)),
                v4, Family::Ipv4, Err("which cf-allow did not add"),
            ),
            (
                format!("{}\nadd {v4} 203.0.113.0/24 comment \"cf-allow\"\nadd {v4} 203.0.113.128/25 nomatch comment \"cf-allow\"\n", create_line(v4, Family::Ipv4, 2)),
                v4, Family::Ipv4, Err("which cf-allow did not add"),
            ),
            (format!("{}\nadd {v4} 192.0.2.0/24\n", create_line(v4, Family::Ipv4, 1)), v4, Family::Ipv4, Err("which cf-allow did not add")),
            (format!("create {v4} hash:net family inet counters comment\nadd {v4} 192.0.2.0/24{tag}\n"), v4, Family::Ipv4, Err("which cf-allow did not add")),
            (format!("create {v4} hash:ip family inet\nadd {v4} 192.0.2.1\n"), v4, Family::Ipv4, Err("not `hash:net family inet`")),
            (format!("create {v4} hash:net family inet6\n"), v4, Family::Ipv4, Err("not `hash:net family inet`")),
            (format!("create {v4} hash:net family inet timeout 600\nadd {v4} 192.0.2.0/24\n"), v4, Family::Ipv4, Err("has timeouts")),
            // A set of a version before the tag: no comment extension, members as they are.
            (format!("create {v4} hash:net family inet\nadd {v4} 192.0.2.0/24\nadd {v4} 198.51.100.0/25\n"), v4, Family::Ipv4, Ok(2)),
            (format!("create {v4} hash:net family inet comment\n"), v4, Family::Ipv4, Ok(0)),
        ];
        for (script, name, family, expected) in cases {
            ns.sh("ipset destroy 2>/dev/null; true");
            ns.sh_with_input("ipset restore", &script);
            let (name2, name3) = (name.to_owned(), name.to_owned());
            let dumped = ns.run_in(move || {
                ipset_dump::dump(&name2).map(|set| {
                    set.map(|set| members_of(set, &name2, family, "the ipset netlink dump"))
                })
            });
            let dumped = dumped
                .expect("the dump works")
                .expect("the dump finds the set");
            let saved = ns.run_in(move || Ipset::new().read_with_program(&name3, family));
            let first_line = script.lines().next().unwrap_or_default();
            match (&dumped, &saved, expected) {
                (Ok(d), Ok(s), Ok(count)) => {
                    assert_eq!(d, s, "{first_line}: the two readers disagree");
                    assert_eq!(d.len(), count, "{first_line}");
                }
                (Err(d), Err(s), Err(words)) => {
                    assert_eq!(d.to_string(), s.to_string(), "{first_line}");
                    assert!(d.to_string().contains(words), "{first_line}: {d}");
                }
                _ => panic!("{first_line}: dump {dumped:?}, save {saved:?}, expected {expected:?}"),
            }
        }
        // The headers of every set: the netlink dump and `ipset list -t` agree (names, rules
        // using each set, entries, maxelem, the comment extension).
        ns.sh("ipset destroy 2>/dev/null; true");
        ns.sh_with_input(
            "ipset restore",
            &format!(
                "{}\nadd {v4} 192.0.2.0/24{tag}\ncreate f2b-sshd hash:ip family inet maxelem 1000\nadd f2b-sshd 203.0.113.9\nadd f2b-sshd 203.0.113.10\ncreate empty6 hash:net family inet6 timeout 60\n",
                create_line(v4, Family::Ipv4, 1)
            ),
        );
        ns.sh("iptables-nft -A INPUT -m set --match-set f2b-sshd src -j DROP && iptables-nft -A INPUT -m set --match-set f2b-sshd src -p tcp -j DROP");
        let dumped = ns.run_in(|| {
            ipset_dump::headers().map(|h| h.into_iter().map(SetHeader::from).collect::<Vec<_>>())
        });
        let dumped = dumped.expect("the header dump works");
        let listed = ns
            .run_in(|| Ipset::new().list_with_program())
            .expect("ipset list -t");
        assert_eq!(dumped, listed);
        let f2b = dumped
            .iter()
            .find(|h| h.name == "f2b-sshd")
            .expect("f2b-sshd");
        assert_eq!(f2b.counts().expect("counts"), (2, 2));
        assert_eq!(f2b.maxelem(), Some(1000));
        let ours = dumped.iter().find(|h| h.name == v4).expect("cf-allow-v4");
        assert!(ours.comment);
        assert_eq!(dumped.len(), 3);
        // No such set: the dump says so (and the caller then runs `ipset save`, which fails).
        ns.sh("iptables-nft -F INPUT; ipset destroy 2>/dev/null; true");
        let missing = ns.run_in(|| ipset_dump::dump("cf-allow-v4"));
        assert!(matches!(missing, Ok(None)), "{missing:?}");
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
