//! The csf.allow / csf.ignore lines cf-allow writes, and reading them back the way CSF's
//! `linefilter` does.

use std::net::IpAddr;

use cf_allow_diff::{IpNet, RangeSet};

/// The first line of every file cf-allow owns.
pub const HEADER: &str = "# Managed by cf-allow: Cloudflare's published ranges. Do not edit: every sync rewrites this file.\n\
# Remove it with `cf-allow remove --backend csf`; your own entries belong in csf.allow / csf.ignore.\n";

/// One allow entry of the two forms cf-allow writes (and the same forms in an admin's lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry {
    /// `1.2.3.0/24`: CSF allows the range on every port, in and out.
    Plain(IpNet),
    /// `tcp|in|d=443|s=1.2.3.0/24`: CSF allows the range in on one TCP port.
    TcpIn {
        /// The source range.
        net: IpNet,
        /// The TCP destination port.
        port: u16,
    },
}

impl Entry {
    /// The range of the entry.
    pub fn net(&self) -> IpNet {
        match self {
            Entry::Plain(net) | Entry::TcpIn { net, .. } => *net,
        }
    }

    /// The line as cf-allow writes it (without newline).
    pub fn render(&self) -> String {
        match self {
            Entry::Plain(net) => net.to_string(),
            Entry::TcpIn { net, port } => format!("tcp|in|d={port}|s={net}"),
        }
    }

    /// Reads one line as CSF would: comments, blank lines and any line containing
    /// `Include` are skipped; the entry is the first whitespace-separated word. Returns
    /// `None` for lines that are not one of the two forms (other advanced filters, hosts
    /// names, garbage).
    pub fn parse(line: &str) -> Option<Entry> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.contains("Include") {
            return None;
        }
        let word = line.split(char::is_whitespace).next()?.to_ascii_lowercase();
        if let Some(net) = parse_net(&word) {
            return Some(Entry::Plain(net));
        }
        parse_advanced(&word)
    }
}

/// An IP address or CIDR as CSF's `checkip` accepts it (prefix 1..=32 / 1..=128).
pub fn parse_net(word: &str) -> Option<IpNet> {
    let (addr, prefix) = match word.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (word, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let p: u8 = p.parse().ok()?;
            if p == 0 || p > max {
                return None;
            }
            p
        }
        Some(_) => return None,
        None => max,
    };
    IpNet::new(addr, prefix).ok().map(|n| n.trunc())
}

/// CSF's advanced filter, reduced to the one shape cf-allow writes: TCP, inbound, a single
/// destination port, a source address.
fn parse_advanced(word: &str) -> Option<Entry> {
    if !word.contains('|') && !word.contains(':') {
        return None;
    }
    let word = if word.contains('|') {
        word.to_string()
    } else {
        word.replace(':', "|")
    };
    let fields: Vec<&str> = word.split('|').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let mut from = 0;
    let mut protocol = "tcp";
    if matches!(field(0), "tcp" | "udp" | "icmp") {
        protocol = field(0);
        from = 1;
    }
    let mut inbound = true;
    for x in from..2 {
        if field(x) == "out" || field(x) == "in" {
            inbound = field(x) == "in";
            from = x + 1;
            break;
        }
    }
    let mut dport = None;
    let mut has_sport = false;
    for x in from..3 {
        if let Some(d) = field(x).strip_prefix("d=") {
            dport = Some(d);
            from = x + 1;
            break;
        } else if field(x).starts_with("s=") {
            has_sport = true;
            from = x + 1;
            break;
        }
    }
    let mut source = None;
    for x in from..4 {
        if field(x).starts_with("d=") {
            return None;
        } else if let Some(s) = field(x).strip_prefix("s=") {
            source = Some(parse_net(s)?);
            break;
        }
    }
    let rest_has_owner = fields
        .iter()
        .any(|f| f.starts_with("u=") || f.starts_with("g="));
    if protocol != "tcp" || !inbound || has_sport || rest_has_owner {
        return None;
    }
    let dport = dport?;
    if dport.is_empty() || !dport.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Entry::TcpIn {
        net: source?,
        port: dport.parse().ok()?,
    })
}

/// The entries cf-allow wants in `cf-allow.allow`: per range one line per port, or the plain
/// form when `ports` is empty. IPv4 first, sorted.
pub fn wanted_allow(ranges: &RangeSet, ports: &[u16]) -> Vec<Entry> {
    ranges
        .iter()
        .flat_map(|net| {
            if ports.is_empty() {
                vec![Entry::Plain(net)]
            } else {
                ports
                    .iter()
                    .map(|&port| Entry::TcpIn { net, port })
                    .collect()
            }
        })
        .collect()
}

/// The full text of `cf-allow.allow`.
pub fn render_allow(ranges: &RangeSet, ports: &[u16]) -> String {
    render(wanted_allow(ranges, ports).iter().map(Entry::render))
}

/// The full text of `cf-allow.ignore`: the plain ranges.
pub fn render_ignore(ranges: &RangeSet) -> String {
    render(ranges.iter().map(|n| n.to_string()))
}

fn render(lines: impl Iterator<Item = String>) -> String {
    let mut text = String::from(HEADER);
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The entries of a file's text, in order, as CSF reads them.
pub fn parse_file(text: &str) -> Vec<Entry> {
    text.lines().filter_map(Entry::parse).collect()
}

/// The ranges named by a file's entries, exactly as written.
pub fn ranges_of(entries: &[Entry]) -> RangeSet {
    RangeSet::exact(entries.iter().map(Entry::net))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test CIDR")
    }

    #[test]
    fn parses_the_forms_csf_accepts() {
        assert_eq!(
            Entry::parse("1.2.3.0/24 # office"),
            Some(Entry::Plain(net("1.2.3.0/24")))
        );
        assert_eq!(
            Entry::parse("  1.2.3.4"),
            Some(Entry::Plain(net("1.2.3.4/32")))
        );
        assert_eq!(
            Entry::parse("tcp|in|d=443|s=2400:CB00::/32"),
            Some(Entry::TcpIn {
                net: net("2400:cb00::/32"),
                port: 443
            })
        );
        assert_eq!(
            Entry::parse("d=22|s=1.2.3.4"),
            Some(Entry::TcpIn {
                net: net("1.2.3.4/32"),
                port: 22
            })
        );
        assert_eq!(
            Entry::parse("tcp:in:d=80:s=1.2.3.0/24"),
            Some(Entry::TcpIn {
                net: net("1.2.3.0/24"),
                port: 80
            })
        );
        for skipped in [
            "# 1.2.3.4",
            "1.2.3.4 # Include me",
            "Include /etc/csf/x",
            "udp|in|d=53|s=1.2.3.4",
            "tcp|out|d=80|d=1.2.3.4",
            "tcp|in|d=80,443|s=1.2.3.4",
            "tcp|in|d=80_90|s=1.2.3.4",
            "1.2.3.0/0",
            "example.com",
            "",
        ] {
            assert_eq!(Entry::parse(skipped), None, "{skipped}");
        }
    }

    #[test]
    fn renders_one_line_per_port_or_plain() {
        let ranges = RangeSet::exact([net("173.245.48.0/20"), net("2400:cb00::/32")]);
        assert_eq!(
            render_allow(&ranges, &[80, 443]),
            format!(
                "{HEADER}tcp|in|d=80|s=173.245.48.0/20\ntcp|in|d=443|s=173.245.48.0/20\n\
                 tcp|in|d=80|s=2400:cb00::/32\ntcp|in|d=443|s=2400:cb00::/32\n"
            )
        );
        assert_eq!(
            render_allow(&ranges, &[]),
            format!("{HEADER}173.245.48.0/20\n2400:cb00::/32\n")
        );
        assert_eq!(render_ignore(&ranges), render_allow(&ranges, &[]));
        assert!(!HEADER.contains("Include"));
    }

    #[test]
    fn rendered_files_read_back_to_the_same_ranges() {
        let ranges = RangeSet::exact([net("104.16.0.0/13"), net("2a06:98c0::/29")]);
        let entries = parse_file(&render_allow(&ranges, &[443]));
        assert_eq!(entries, wanted_allow(&ranges, &[443]));
        assert_eq!(ranges_of(&entries), ranges);
    }
}
