//! The rules cf-allow wants in its chains, written exactly as `iptables-save` prints them,
//! so that what the kernel holds can be compared with what it should hold line by line.

use cf_allow_diff::{Family, IpNet};

use crate::settings::Layout;

/// The match every rule cf-allow writes into its chains carries: its ownership tag.
pub(crate) const TAG_MATCH: &str = " -m comment --comment cf-allow";

/// True when a rule spec carries cf-allow's tag.
pub(crate) fn is_tagged(spec: &str) -> bool {
    spec.contains(&format!("{TAG_MATCH} -j "))
}

/// `spec` without cf-allow's tag: the form cf-allow wrote before it tagged its rules.
pub(crate) fn untagged(spec: &str) -> String {
    spec.replacen(TAG_MATCH, "", 1)
}

/// `multiport` takes at most 15 ports per rule.
pub(crate) const MULTIPORT_MAX: usize = 15;

/// Which of cf-allow's two chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChainKind {
    /// `CF-ALLOW`: matched on the packet's destination port (INPUT, FORWARD, OUTPUT, …).
    Main,
    /// `CF-ALLOW-DOCKER`: jumped to from DOCKER-USER, which sees packets after Docker's DNAT,
    /// so it matches the connection's original destination port (`--ctorigdstport`).
    Docker,
}

impl ChainKind {
    /// Both kinds.
    pub const ALL: [ChainKind; 2] = [ChainKind::Main, ChainKind::Docker];
}

/// `iptables` or `ip6tables`, for messages.
pub(crate) fn tool(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    }
}

/// The ipset holding one family's ranges in ipset mode.
pub(crate) fn set_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "cf-allow-v4",
        Family::Ipv6 => "cf-allow-v6",
    }
}

/// The temporary set an ipset update is built in before it is swapped in.
pub(crate) fn tmp_set_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "cf-allow-v4-tmp",
        Family::Ipv6 => "cf-allow-v6-tmp",
    }
}

/// True for the name of either family's temporary set.
pub(crate) fn is_tmp_set(name: &str) -> bool {
    Family::ALL.iter().any(|f| tmp_set_name(*f) == name)
}

/// The ipset `family` keyword.
pub(crate) fn set_family(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "inet",
        Family::Ipv6 => "inet6",
    }
}

impl Layout {
    /// The chain of `kind`.
    pub fn chain(&self, kind: ChainKind) -> &str {
        match kind {
            ChainKind::Main => &self.main,
            ChainKind::Docker => &self.docker,
        }
    }

    /// Port matches for the main chain: one `-m multiport --dports` per 15 ports, or a
    /// single empty match for "all ports".
    fn dport_matches(&self) -> Vec<String> {
        if self.ports.is_empty() {
            return vec![String::new()];
        }
        self.ports
            .chunks(MULTIPORT_MAX)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(u16::to_string).collect();
                format!(" -m multiport --dports {}", list.join(","))
            })
            .collect()
    }

    /// Runs of consecutive ports (`80`, `8000:8010`) for `--ctorigdstport`, which takes one
    /// port or one range.
    fn port_runs(&self) -> Vec<String> {
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for &port in &self.ports {
            match runs.last_mut() {
                Some((_, end)) if u32::from(*end) + 1 == u32::from(port) => *end = port,
                _ => runs.push((port, port)),
            }
        }
        runs.into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect()
    }

    /// The ACCEPT rules of a chain: per range (or per set in ipset mode) and port group.
    pub fn accept_rules(&self, kind: ChainKind, family: Family, ranges: &[IpNet]) -> Vec<String> {
        let sources: Vec<String> = if self.ipset {
            vec![format!(
                "-p tcp -m set --match-set {} src",
                set_name(family)
            )]
        } else {
            ranges
                .iter()
                .filter(|net| Family::of(net) == family)
                .map(|net| format!("-s {net} -p tcp"))
                .collect()
        };
        let ports: Vec<String> = match (kind, self.ports.is_empty()) {
            (_, true) => vec![String::new()],
            (ChainKind::Main, false) => self.dport_matches(),
            (ChainKind::Docker, false) => self
                .port_runs()
                .into_iter()
                .map(|run| format!(" -m conntrack --ctorigdstport {run}"))
                .collect(),
        };
        let mut rules = Vec::with_capacity(sources.len() * ports.len());
        for source in &sources {
            for port in &ports {
                rules.push(format!("{source}{port}{TAG_MATCH} -j ACCEPT"));
            }
        }
        rules
    }

    /// The lockdown DROP rules that end a chain (none without lockdown). They drop only
    /// packets in the direction that opened the connection, so replies to connections this
    /// host (or a container) made are never dropped; in DOCKER-USER only connections Docker
    /// DNATed (published ports) are dropped.
    pub fn drop_rules(&self, kind: ChainKind) -> Vec<String> {
        if !self.lockdown {
            return Vec::new();
        }
        match kind {
            ChainKind::Main => self
                .dport_matches()
                .into_iter()
                .map(|m| format!("-p tcp{m} -m conntrack --ctdir ORIGINAL{TAG_MATCH} -j DROP"))
                .collect(),
            ChainKind::Docker if self.ports.is_empty() => {
                vec![format!("-p tcp -m conntrack --ctstate DNAT --ctdir ORIGINAL{TAG_MATCH} -j DROP")]
            }
            ChainKind::Docker => self
                .port_runs()
                .into_iter()
                .map(|run| {
                    format!(
                        "-p tcp -m conntrack --ctstate DNAT --ctorigdstport {run} --ctdir ORIGINAL{TAG_MATCH} -j DROP"
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn layout(ports: &[u16], ipset: bool, lockdown: bool) -> Layout {
        let settings = Settings {
            ipset,
            lockdown,
            ..Settings::default()
        };
        Layout::new(&settings, ports).expect("layout")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn main_chain_rules_use_multiport() {
        let l = layout(&[443, 80], false, true);
        let ranges = nets(&["192.0.2.0/24", "2001:db8::/32"]);
        assert_eq!(
            l.accept_rules(ChainKind::Main, Family::Ipv4, &ranges),
            ["-s 192.0.2.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"]
        );
        assert_eq!(
            l.accept_rules(ChainKind::Main, Family::Ipv6, &ranges),
            ["-s 2001:db8::/32 -p tcp -m multiport --dports 80,443 -m comment --comment cf-allow -j ACCEPT"]
        );
        assert_eq!(
            l.drop_rules(ChainKind::Main),
            ["-p tcp -m multiport --dports 80,443 -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP"]
        );
    }

    #[test]
    fn more_than_fifteen_ports_are_split() {
        let ports: Vec<u16> = (1000..1020).collect();
        let l = layout(&ports, false, false);
        let rules = l.accept_rules(ChainKind::Main, Family::Ipv4, &nets(&["192.0.2.0/24"]));
        assert_eq!(rules.len(), 2);
        assert!(rules[0].contains("--dports 1000,1001,"));
        assert!(rules[0].contains(",1014 -m comment"));
        assert!(rules[1].contains("--dports 1015,1016,1017,1018,1019 -m comment"));
    }

    #[test]
    fn docker_chain_matches_the_original_destination_port() {
        let l = layout(&[80, 443, 8080, 8081, 8082], false, true);
        assert_eq!(
            l.accept_rules(ChainKind::Docker, Family::Ipv4, &nets(&["192.0.2.0/24"])),
            [
                "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 80 -m comment --comment cf-allow -j ACCEPT",
                "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 443 -m comment --comment cf-allow -j ACCEPT",
                "-s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 8080:8082 -m comment --comment cf-allow -j ACCEPT",
            ]
        );
        assert_eq!(
            l.drop_rules(ChainKind::Docker)[0],
            "-p tcp -m conntrack --ctstate DNAT --ctorigdstport 80 --ctdir ORIGINAL -m comment --comment cf-allow -j DROP"
        );
    }

    #[test]
    fn all_ports_and_ipset_forms() {
        let l = layout(&[], true, true);
        assert_eq!(
            l.accept_rules(ChainKind::Main, Family::Ipv6, &[]),
            ["-p tcp -m set --match-set cf-allow-v6 src -m comment --comment cf-allow -j ACCEPT"]
        );
        assert_eq!(
            l.drop_rules(ChainKind::Main),
            ["-p tcp -m conntrack --ctdir ORIGINAL -m comment --comment cf-allow -j DROP"]
        );
        assert_eq!(
            l.drop_rules(ChainKind::Docker),
            ["-p tcp -m conntrack --ctstate DNAT --ctdir ORIGINAL -m comment --comment cf-allow -j DROP"]
        );
        let l = layout(&[443], true, false);
        assert_eq!(
            l.accept_rules(ChainKind::Docker, Family::Ipv4, &[]),
            ["-p tcp -m set --match-set cf-allow-v4 src -m conntrack --ctorigdstport 443 -m comment --comment cf-allow -j ACCEPT"]
        );
        assert!(l.drop_rules(ChainKind::Main).is_empty());
    }
}
