//! The sanity checks every list passes before cf-allow uses it.

use std::borrow::Cow;

use cf_allow_diff::{Family, IpNet, Ipv4Net, Ipv6Net, RangeSet};

use crate::error::{EntryIssue, FetchError, Problem};

/// Limits from the config's `guard` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    /// Accept private, loopback, documentation and other reserved ranges.
    pub allow_reserved: bool,
    /// The most entries a list may hold.
    pub max_entries: usize,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            allow_reserved: false,
            max_entries: 10_000,
        }
    }
}

/// The shortest IPv4 prefix a list may hold.
pub const MIN_PREFIX_V4: u8 = 8;
/// The shortest IPv6 prefix a list may hold.
pub const MIN_PREFIX_V6: u8 = 16;

/// One entry of a list, with where it came from for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// `line 7`, `entry 3`, `ipv4_cidrs entry 2`.
    pub position: Position,
    /// The text as given (trimmed): borrowed from a text list's body, owned for API JSON.
    pub text: Cow<'a, str>,
    /// The family the entry must have (the API JSON's `ipv4_cidrs` / `ipv6_cidrs`).
    pub expected: Option<Family>,
}

/// Where an entry is, as numbers: written out only for a message (formatting a position for
/// every line of a 100k-entry list was most of what parsing it cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// A line of a text list, from 1.
    Line(usize),
    /// An entry of a list given directly (`extra_cidrs`), from 1.
    Entry(usize),
    /// An entry of one of the API JSON's fields, from 1.
    Field(&'static str, usize),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Entry(n) => write!(f, "entry {n}"),
            Position::Field(field, n) => write!(f, "{field} entry {n}"),
        }
    }
}

impl Entry<'_> {
    /// `line 7 "10.0.0.0/8"`, with the text escaped and shortened for the terminal.
    fn describe(&self) -> String {
        const MAX: usize = 60;
        let mut shown: String = self.text.chars().take(MAX).collect();
        if self.text.chars().count() > MAX {
            shown.push('…');
        }
        format!("{} \"{}\"", self.position, shown.escape_debug())
    }
}

/// Checks the entry count and every entry, returning the networks.
pub(crate) fn check_entries(entries: &[Entry], v: &Validation) -> Result<Vec<IpNet>, Problem> {
    if entries.len() > v.max_entries {
        return Err(Problem::TooMany {
            count: entries.len(),
            max: v.max_entries,
        });
    }
    let mut nets = Vec::with_capacity(entries.len());
    for e in entries {
        nets.push(
            check_entry(&e.text, e.expected, v).map_err(|issue| Problem::Entry {
                entry: e.describe(),
                issue,
            })?,
        );
    }
    Ok(nets)
}

/// Checks a merged list: both families present, at most `max_entries`.
pub(crate) fn check_list(nets: &[IpNet], v: &Validation) -> Result<(), Problem> {
    if nets.len() > v.max_entries {
        return Err(Problem::TooMany {
            count: nets.len(),
            max: v.max_entries,
        });
    }
    let v4 = nets.iter().filter(|n| matches!(n, IpNet::V4(_))).count();
    let v6 = nets.len() - v4;
    match (v4, v6) {
        (0, present) => Err(Problem::MissingFamily {
            missing: Family::Ipv4,
            present,
        }),
        (present, 0) => Err(Problem::MissingFamily {
            missing: Family::Ipv6,
            present,
        }),
        _ => Ok(()),
    }
}

/// Re-checks networks that were valid once (the cache) against today's limits.
pub(crate) fn recheck(set: &RangeSet, v: &Validation) -> Result<(), Problem> {
    let nets: Vec<IpNet> = set.iter().collect();
    for (i, net) in nets.iter().enumerate() {
        check_net(*net, v).map_err(|issue| Problem::Entry {
            entry: format!("entry {} \"{net}\"", i + 1),
            issue,
        })?;
    }
    check_list(&nets, v)
}

/// Validates ranges given directly (config `extra_cidrs`) the same way as a feed, except
/// that one family alone is fine. Returns them aggregated.
pub fn validate_cidrs(
    what: &str,
    entries: &[String],
    v: &Validation,
) -> Result<RangeSet, FetchError> {
    let entries: Vec<Entry> = entries
        .iter()
        .enumerate()
        .map(|(i, text)| Entry {
            position: Position::Entry(i + 1),
            text: Cow::Borrowed(text.trim()),
            expected: None,
        })
        .collect();
    check_entries(&entries, v)
        .map(RangeSet::aggregated)
        .map_err(|problem| FetchError::InvalidEntries {
            what: what.to_string(),
            problem,
        })
}

/// Parses and checks one entry.
pub(crate) fn check_entry(
    text: &str,
    expected: Option<Family>,
    v: &Validation,
) -> Result<IpNet, EntryIssue> {
    if let Some(hint) = leading_zero(text) {
        return Err(EntryIssue::NotCidr { hint });
    }
    let net = cf_allow_diff::text::parse_net(text).map_err(|_| EntryIssue::NotCidr {
        hint: not_cidr_hint(text),
    })?;
    if let Some(expected) = expected {
        if Family::of(&net) != expected {
            return Err(EntryIssue::WrongFamily { expected });
        }
    }
    check_net(net, v)
}

/// A number with a leading zero in an IPv4 entry (`010.0.0.0/8`, `10.0.0.0/08`): ipnet reads
/// it as decimal, `inet_aton` as octal; refused as ambiguous.
fn leading_zero(text: &str) -> Option<String> {
    if text.contains(':') {
        return None;
    }
    text.split(['.', '/'])
        .find(|part| {
            part.len() > 1 && part.starts_with('0') && part.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|part| {
            let digits = part.trim_start_matches('0');
            let fixed = if digits.is_empty() { "0" } else { digits };
            format!("`{part}` has a leading zero, which some tools read as octal; write {fixed}")
        })
}

/// Checks a parsed network: no host bits, not too wide, not reserved (unless allowed).
fn check_net(net: IpNet, v: &Validation) -> Result<IpNet, EntryIssue> {
    if net.trunc() != net {
        return Err(EntryIssue::HostBits { meant: net.trunc() });
    }
    let min = match net {
        IpNet::V4(_) => MIN_PREFIX_V4,
        IpNet::V6(_) => MIN_PREFIX_V6,
    };
    if net.prefix_len() < min {
        return Err(EntryIssue::TooWide {
            prefix: net.prefix_len(),
            min,
        });
    }
    if !v.allow_reserved {
        if let Some(issue) = reserved_issue(&net) {
            return Err(issue);
        }
    }
    Ok(net)
}

fn not_cidr_hint(text: &str) -> String {
    let slashes = text.matches('/').count();
    if slashes > 1 || (text.contains('.') && text.contains(':')) {
        return "two entries glued together? a line break is missing".into();
    }
    if slashes == 0 && text.parse::<std::net::IpAddr>().is_ok() {
        let len = if text.contains(':') { 128 } else { 32 };
        return format!("no prefix length; write {text}/{len} for one address");
    }
    if text.split_whitespace().count() > 1 {
        return "more than one word on the line".into();
    }
    String::new()
}

/// A reserved range: the network, its kind and the article that goes with the kind.
type Reserved = (&'static str, &'static str, &'static str);

/// IPv4 special-purpose ranges (IANA registry), the more specific first.
const RESERVED_V4: &[Reserved] = &[
    ("0.0.0.0/8", "a", "\"this network\""),
    ("10.0.0.0/8", "a", "private"),
    ("100.64.0.0/10", "a", "CGNAT (shared address space)"),
    ("127.0.0.0/8", "a", "loopback"),
    ("169.254.0.0/16", "a", "link-local"),
    ("172.16.0.0/12", "a", "private"),
    ("192.0.0.0/24", "an", "IETF protocol assignments"),
    ("192.0.2.0/24", "a", "documentation"),
    ("192.88.99.0/24", "a", "6to4 relay anycast"),
    ("192.168.0.0/16", "a", "private"),
    ("198.18.0.0/15", "a", "benchmarking"),
    ("198.51.100.0/24", "a", "documentation"),
    ("203.0.113.0/24", "a", "documentation"),
    ("224.0.0.0/4", "a", "multicast"),
    ("255.255.255.255/32", "a", "broadcast"),
    ("240.0.0.0/4", "a", "reserved"),
];

/// IPv6 special-purpose ranges, then everything IANA has not assigned outside 2000::/3.
const RESERVED_V6: &[Reserved] = &[
    ("::/128", "an", "unspecified"),
    ("::1/128", "a", "loopback"),
    ("::ffff:0:0/96", "an", "IPv4-mapped"),
    ("::/96", "an", "IPv4-compatible"),
    ("64:ff9b::/96", "a", "NAT64"),
    ("64:ff9b:1::/48", "a", "NAT64 (local use)"),
    ("100::/64", "a", "discard-only"),
    ("2001::/32", "a", "Teredo"),
    ("2001:2::/48", "a", "benchmarking"),
    ("2001:20::/28", "an", "ORCHIDv2"),
    ("2001::/23", "an", "IETF protocol assignments"),
    ("2001:db8::/32", "a", "documentation"),
    ("2002::/16", "a", "6to4"),
    ("3fff::/20", "a", "documentation"),
    ("5f00::/16", "an", "SRv6 SID"),
    ("fc00::/7", "a", "unique local (ULA)"),
    ("fe80::/10", "a", "link-local"),
    ("fec0::/10", "a", "site-local"),
    ("ff00::/8", "a", "multicast"),
    ("::/8", "an", "IETF-reserved"),
    ("100::/8", "an", "IETF-reserved"),
    ("200::/7", "an", "IETF-reserved"),
    ("400::/6", "an", "IETF-reserved"),
    ("800::/5", "an", "IETF-reserved"),
    ("1000::/4", "an", "IETF-reserved"),
    ("4000::/3", "an", "IETF-reserved"),
    ("6000::/3", "an", "IETF-reserved"),
    ("8000::/3", "an", "IETF-reserved"),
    ("a000::/3", "an", "IETF-reserved"),
    ("c000::/3", "an", "IETF-reserved"),
    ("e000::/4", "an", "IETF-reserved"),
    ("f000::/5", "an", "IETF-reserved"),
    ("f800::/6", "an", "IETF-reserved"),
    ("fe00::/9", "an", "IETF-reserved"),
];

/// A parsed reserved range with its bounds as numbers, so that the check per entry is two
/// integer comparisons per range (it was two `IpNet::contains` calls, 14 % of a 100k sync).
struct ReservedRange {
    net: IpNet,
    first: u128,
    last: u128,
    article: &'static str,
    kind: &'static str,
}

/// The first and last address of `net` as numbers (IPv4 in the low 32 bits).
fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// The reserved tables parsed once per process (they were parsed again for every entry,
/// 30-odd parses per range of a 100k list).
fn reserved_table(net: &IpNet) -> &'static [ReservedRange] {
    static TABLES: std::sync::OnceLock<[Vec<ReservedRange>; 2]> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let parse = |table: &[Reserved]| -> Vec<ReservedRange> {
            table
                .iter()
                .filter_map(|&(cidr, article, kind)| {
                    let net = parse_table_entry(cidr)?;
                    let (first, last) = bounds(&net);
                    Some(ReservedRange {
                        net,
                        first,
                        last,
                        article,
                        kind,
                    })
                })
                .collect()
        };
        [parse(RESERVED_V4), parse(RESERVED_V6)]
    });
    match net {
        IpNet::V4(_) => &tables[0],
        IpNet::V6(_) => &tables[1],
    }
}

/// The first reserved range `net` lies in or overlaps, as an issue. Two CIDR blocks overlap
/// only when one contains the other, so overlapping bounds are the whole test.
fn reserved_issue(net: &IpNet) -> Option<EntryIssue> {
    let (first, last) = bounds(net);
    reserved_table(net)
        .iter()
        .find(|r| first <= r.last && r.first <= last)
        .map(|r| EntryIssue::Reserved {
            range: r.net,
            kind: r.kind,
            article: r.article,
            inside: r.first <= first && last <= r.last,
        })
}

fn parse_table_entry(cidr: &str) -> Option<IpNet> {
    if cidr.contains(':') {
        cidr.parse::<Ipv6Net>().ok().map(IpNet::V6)
    } else {
        cidr.parse::<Ipv4Net>().ok().map(IpNet::V4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Validation {
        Validation::default()
    }

    fn issue(text: &str) -> String {
        match check_entry(text, None, &strict()) {
            Ok(net) => format!("ok {net}"),
            Err(issue) => issue.to_string(),
        }
    }

    #[test]
    fn leading_zeros_in_ipv4_are_refused() {
        for text in ["010.0.0.0/8", "192.0.02.0/24", "10.0.0.0/08", "00.0.0.0/8"] {
            let err = check_entry(text, None, &strict())
                .expect_err(text)
                .to_string();
            assert!(err.contains("leading zero"), "{text}: {err}");
        }
        assert!(check_entry("104.16.0.0/13", None, &strict()).is_ok());
        assert!(check_entry("2400:cb00::/32", None, &strict()).is_ok());
    }

    #[test]
    fn reserved_tables_parse() {
        for (cidr, _, _) in RESERVED_V4.iter().chain(RESERVED_V6) {
            let net = parse_table_entry(cidr).expect("table entry parses");
            assert_eq!(net.trunc(), net, "{cidr} has host bits");
        }
    }

    #[test]
    fn cloudflare_ranges_pass() {
        for cidr in crate::embedded::EMBEDDED_V4
            .iter()
            .chain(crate::embedded::EMBEDDED_V6)
        {
            assert!(issue(cidr).starts_with("ok "), "{cidr}: {}", issue(cidr));
        }
    }

    #[test]
    fn entry_issues_read_well() {
        assert_eq!(issue("10.0.0.0/8"), "is a private range (10.0.0.0/8)");
        assert_eq!(
            issue("172.0.0.0/8"),
            "overlaps the private range 172.16.0.0/12"
        );
        assert_eq!(
            issue("0.0.0.0/0"),
            "is too wide: prefix /0 is wider than /8"
        );
        assert_eq!(
            issue("16.0.0.0/4"),
            "is too wide: prefix /4 is wider than /8"
        );
        assert_eq!(
            issue("2000::/12"),
            "is too wide: prefix /12 is wider than /16"
        );
        assert_eq!(
            issue("104.16.1.0/13"),
            "has host bits set; did you mean 104.16.0.0/13?"
        );
        assert_eq!(
            issue("131.0.72.0/222400:cb00::/32"),
            "is not a CIDR (two entries glued together? a line break is missing)"
        );
        assert_eq!(
            issue("104.16.0.1"),
            "is not a CIDR (no prefix length; write 104.16.0.1/32 for one address)"
        );
        assert_eq!(
            issue("2001:db8::/32"),
            "is a documentation range (2001:db8::/32)"
        );
        assert_eq!(
            issue("fd00::/16"),
            "is a unique local (ULA) range (fc00::/7)"
        );
        assert_eq!(
            issue("::ffff:0:0/96"),
            "is an IPv4-mapped range (::ffff:0.0.0.0/96)"
        );
        assert_eq!(
            issue("100.64.0.0/10"),
            "is a CGNAT (shared address space) range (100.64.0.0/10)"
        );
        assert_eq!(
            issue("198.18.0.0/16"),
            "is a benchmarking range (198.18.0.0/15)"
        );
        assert_eq!(
            issue("255.255.255.255/32"),
            "is a broadcast range (255.255.255.255/32)"
        );
        assert_eq!(issue("240.0.0.0/8"), "is a reserved range (240.0.0.0/4)");
        assert_eq!(issue("2002::/16"), "is a 6to4 range (2002::/16)");
        assert_eq!(issue("4000::/16"), "is an IETF-reserved range (4000::/3)");
        assert_eq!(issue("224.0.0.0/8"), "is a multicast range (224.0.0.0/4)");
        assert_eq!(issue("2400:cb00::/32"), "ok 2400:cb00::/32");
    }

    #[test]
    fn allow_reserved_lets_documentation_ranges_through_but_not_wide_prefixes() {
        let v = Validation {
            allow_reserved: true,
            ..Validation::default()
        };
        assert!(check_entry("192.0.2.0/24", None, &v).is_ok());
        assert!(check_entry("2001:db8::/32", None, &v).is_ok());
        assert!(check_entry("0.0.0.0/0", None, &v).is_err());
        assert!(check_entry("::/0", None, &v).is_err());
    }

    #[test]
    fn validate_cidrs_accepts_one_family_and_names_the_entry() {
        let v = strict();
        let ok = validate_cidrs("extra_cidrs", &["104.16.0.0/13".into()], &v).expect("valid");
        assert_eq!(ok.len(), 1);
        let err = validate_cidrs(
            "extra_cidrs",
            &["104.16.0.0/13".into(), "192.168.1.0/24".into()],
            &v,
        )
        .expect_err("private");
        assert_eq!(
            err.to_string(),
            "extra_cidrs: entry 2 \"192.168.1.0/24\" is a private range (192.168.0.0/16)"
        );
    }

    /// The bounds test finds the same range, and says inside or containing the same way, as
    /// `IpNet::contains` both ways round (the definition it replaced), for any address and
    /// prefix of either family, near the reserved ranges or anywhere.
    mod reserved_bounds {
        use super::*;
        use proptest::prelude::*;

        fn by_contains(net: &IpNet) -> Option<(IpNet, bool)> {
            reserved_table(net).iter().find_map(|r| {
                let inside = r.net.contains(net);
                (inside || net.contains(&r.net)).then_some((r.net, inside))
            })
        }

        fn by_bounds(net: &IpNet) -> Option<(IpNet, bool)> {
            match reserved_issue(net)? {
                EntryIssue::Reserved { range, inside, .. } => Some((range, inside)),
                _ => None,
            }
        }

        fn any_net() -> impl Strategy<Value = IpNet> {
            let near = |table: usize| {
                (0..34usize, any::<u128>(), 0u8..=128).prop_map(move |(i, noise, len)| {
                    let tables = [RESERVED_V4, RESERVED_V6];
                    let (cidr, _, _) = tables[table][i % tables[table].len()];
                    let base = parse_table_entry(cidr).expect("table entry");
                    let (first, _) = bounds(&base);
                    // An address at or just around the reserved range's start.
                    let addr = first ^ (noise & 0xffff);
                    net_of(table == 1, addr, len)
                })
            };
            prop_oneof![
                (any::<u32>(), 0u8..=32).prop_map(|(a, l)| net_of(false, u128::from(a), l)),
                (any::<u128>(), 0u8..=128).prop_map(|(a, l)| net_of(true, a, l)),
                near(0),
                near(1),
            ]
        }

        fn net_of(six: bool, addr: u128, len: u8) -> IpNet {
            if six {
                IpNet::V6(Ipv6Net::new(addr.into(), len).expect("len").trunc())
            } else {
                let a = std::net::Ipv4Addr::from(addr as u32);
                IpNet::V4(Ipv4Net::new(a, len.min(32)).expect("len").trunc())
            }
        }

        proptest! {
            #[test]
            fn bounds_agree_with_contains(net in any_net()) {
                prop_assert_eq!(by_bounds(&net), by_contains(&net));
            }
        }
    }
}
