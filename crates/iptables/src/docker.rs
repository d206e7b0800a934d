//! Telling whether this host publishes container ports through iptables: Docker's
//! `DOCKER-USER` chain in the filter table, DNAT rules in the nat table.

use cf_allow_diff::Family;

use crate::exec::Program;
use crate::rules::tool;
use crate::saved::target;
use crate::settings::{Settings, DOCKER_USER};

/// What the host's iptables (both families, the configured variant) show about published
/// ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Docker's `DOCKER-USER` chain exists in the filter table of iptables or ip6tables.
    pub docker_user: bool,
    /// The nat-table chains holding DNAT rules (`iptables nat DOCKER`), each named once.
    pub dnat_chains: Vec<String>,
}

impl Published {
    /// True when anything DNATs or Docker's hook chain exists.
    pub fn any(&self) -> bool {
        self.docker_user || !self.dnat_chains.is_empty()
    }
}

/// Reads the filter and nat tables of both families with `<tool>-save` (nothing is changed).
/// A family or table that cannot be read counts as empty: this only chooses defaults.
pub fn published(settings: &Settings) -> Published {
    let mut found = Published::default();
    for family in [Family::Ipv4, Family::Ipv6] {
        let tool = tool(family);
        let save = Program::new(settings.variant.program(tool, "-save"), "iptables");
        let read = |table: &str| match save.run(&["-t", table], None, settings.lock_wait_secs) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(error) => {
                tracing::debug!(%error, tool, table, "cannot read the table for published ports");
                String::new()
            }
        };
        if docker_user_in(&read("filter")) {
            found.docker_user = true;
        }
        for chain in dnat_chains_in(&read("nat")) {
            let name = format!("{tool} nat {chain}");
            if !found.dnat_chains.contains(&name) {
                found.dnat_chains.push(name);
            }
        }
    }
    found
}

/// True when an `iptables-save -t filter` declares the chain `DOCKER-USER`.
pub(crate) fn docker_user_in(filter_save: &str) -> bool {
    filter_save
        .lines()
        .any(|l| l.strip_prefix(':').and_then(|l| l.split(' ').next()) == Some(DOCKER_USER))
}

/// The chains of an `iptables-save -t nat` that hold a `-j DNAT` rule, in order.
pub(crate) fn dnat_chains_in(nat_save: &str) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for line in nat_save.lines() {
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let Some((chain, spec)) = rest.split_once(' ') else {
            continue;
        };
        if target(spec) == Some("DNAT") && !chains.iter().any(|c| c == chain) {
            chains.push(chain.to_owned());
        }
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_user_is_found_by_its_chain_line() {
        assert!(docker_user_in(
            "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\nCOMMIT\n"
        ));
        assert!(!docker_user_in(
            "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USERS - [0:0]\n-A INPUT -j DOCKER-USER\nCOMMIT\n"
        ));
    }

    #[test]
    fn dnat_rules_are_found_by_their_target() {
        let nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
            -A DOCKER -i docker0 -j RETURN\n\
            -A DOCKER ! -i docker0 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.51.100.2:8443\n\
            -A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.51.100.2:80\n\
            -A POSTROUTING -s 198.51.100.0/24 ! -o docker0 -j MASQUERADE\nCOMMIT\n";
        assert_eq!(dnat_chains_in(nat), ["DOCKER"]);
        assert!(dnat_chains_in("*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n").is_empty());
    }
}
