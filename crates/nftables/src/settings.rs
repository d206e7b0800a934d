//! The `nftables:` section of the config file.

use serde::{Deserialize, Serialize};

use crate::layout::OWN_CHAIN;

/// Settings of the nftables backend (`nftables:` in the config file).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Name of cf-allow's own `inet` table (own-table mode).
    pub table: String,
    /// Put the sets and the tagged rules into this existing chain instead of an own table.
    pub into: Option<IntoTarget>,
    /// Drop every other source on the configured ports.
    pub lockdown: bool,
}

impl Settings {
    /// Where cf-allow's sets and input rules live: own-table mode, `inet TABLE` and its
    /// chain `input`; into mode, the existing table and chain.
    pub(crate) fn place(&self) -> Place<'_> {
        match &self.into {
            Some(into) => Place {
                family: into.family.as_str(),
                table: &into.table,
                chain: &into.chain,
                into: true,
            },
            None => Place {
                family: "inet",
                table: &self.table,
                chain: OWN_CHAIN,
                into: false,
            },
        }
    }

    /// What identifies the sets' location in a generation record (`own TABLE`,
    /// `into TABLE`).
    pub(crate) fn record_key(&self) -> String {
        let mode = if self.into.is_some() { "into" } else { "own" };
        format!("{mode} {}", self.place().table)
    }
}

/// Where cf-allow's sets and input rules live.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place<'a> {
    /// The table's family as nft spells it (`inet` in own-table mode).
    pub family: &'static str,
    pub table: &'a str,
    pub chain: &'a str,
    /// Into mode: the chain belongs to the user.
    pub into: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            table: "cf_allow".to_owned(),
            into: None,
            lockdown: false,
        }
    }
}

/// An existing chain that receives cf-allow's sets and rules (into mode).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntoTarget {
    /// The table's family. Only `inet` can hold both the IPv4 and the IPv6 set.
    #[serde(default)]
    pub family: TableFamily,
    /// The existing table (e.g. `filter`).
    pub table: String,
    /// The existing chain in that table (e.g. `input`).
    pub chain: String,
}

/// The family of an nftables table named in the config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFamily {
    /// `inet`: IPv4 and IPv6.
    #[default]
    Inet,
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
}

impl TableFamily {
    /// The family as nft spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TableFamily::Inet => "inet",
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s: Settings = serde_yaml_ng::from_str("{}").expect("empty section");
        assert_eq!(s, Settings::default());
        assert_eq!(s.table, "cf_allow");
        assert!(s.into.is_none());
        assert!(!s.lockdown);
    }

    #[test]
    fn into_target_parses_and_unknown_keys_are_refused() {
        let s: Settings = serde_yaml_ng::from_str(
            "into: {family: inet, table: filter, chain: input}\nlockdown: true\n",
        )
        .expect("into section");
        assert_eq!(
            s.into,
            Some(IntoTarget {
                family: TableFamily::Inet,
                table: "filter".into(),
                chain: "input".into()
            })
        );
        let err = serde_yaml_ng::from_str::<Settings>("tabel: x\n").expect_err("typo");
        assert!(err.to_string().contains("tabel"), "{err}");
        let err = serde_yaml_ng::from_str::<Settings>("into: {table: f, chain: i, x: 1}\n")
            .expect_err("unknown into key");
        assert!(err.to_string().contains('x'), "{err}");
    }
}
