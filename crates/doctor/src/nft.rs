//! Named sets of the nftables ruleset, from `nft -j list ruleset`.

use serde_json::Value;

use crate::{AddrRange, Error};

/// One named set and its address elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    /// `inet`, `ip`, `ip6`, …
    pub family: String,
    /// The table.
    pub table: String,
    /// The set's name.
    pub name: String,
    /// Its elements that are addresses, prefixes or ranges (the first component of a
    /// concatenation); other elements (ports, marks) are left out.
    pub elements: Vec<AddrRange>,
}

impl NftSet {
    /// `family table name`, as `nft list set` takes it.
    pub fn path(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.name)
    }
}

/// Runs `nft -j list ruleset` and returns its sets.
pub fn read_sets() -> Result<Vec<NftSet>, Error> {
    parse_ruleset(&crate::run_program("nft", &["-j", "list", "ruleset"])?)
}

/// Parses `nft -j list ruleset` output and returns its named sets.
pub fn parse_ruleset(json: &str) -> Result<Vec<NftSet>, Error> {
    let doc: Value = serde_json::from_str(json).map_err(|e| Error::Parse {
        what: "nft -j list ruleset".to_string(),
        detail: e.to_string(),
    })?;
    let items = doc["nftables"].as_array().ok_or_else(|| Error::Parse {
        what: "nft -j list ruleset".to_string(),
        detail: "no `nftables` array".to_string(),
    })?;
    let mut sets = Vec::new();
    for item in items {
        let Some(set) = item.get("set") else {
            continue;
        };
        let text = |key: &str| set[key].as_str().unwrap_or_default().to_string();
        let elements = set["elem"]
            .as_array()
            .map(|elems| elems.iter().filter_map(element_range).collect())
            .unwrap_or_default();
        sets.push(NftSet {
            family: text("family"),
            table: text("table"),
            name: text("name"),
            elements,
        });
    }
    Ok(sets)
}

/// An element as `nft -j` prints it: `"addr"`, `{"prefix": {...}}`, `{"range": [a, b]}`,
/// `{"elem": {"val": …}}` (with timeout or comment) or `{"concat": [...]}`.
fn element_range(elem: &Value) -> Option<AddrRange> {
    match elem {
        Value::String(s) => AddrRange::parse(s),
        Value::Object(map) => {
            if let Some(p) = map.get("prefix") {
                AddrRange::parse(&format!("{}/{}", p["addr"].as_str()?, p["len"].as_u64()?))
            } else if let Some(r) = map.get("range") {
                AddrRange::parse(&format!("{}-{}", r[0].as_str()?, r[1].as_str()?))
            } else if let Some(inner) = map.get("elem") {
                element_range(&inner["val"])
            } else if let Some(parts) = map.get("concat") {
                element_range(parts.get(0)?)
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with nftables v1.0.6 in a private namespace.
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "f2b-table", "handle": 1}}, {"set": {"family": "inet", "name": "addr-set-sshd", "table": "f2b-table", "type": "ipv4_addr", "handle": 1, "flags": ["interval"], "elem": [{"prefix": {"addr": "104.16.0.0", "len": 24}}, {"range": ["192.0.2.1", "192.0.2.9"]}, "203.0.113.5"]}}, {"set": {"family": "inet", "name": "six", "table": "f2b-table", "type": "ipv6_addr", "handle": 2, "flags": ["timeout"], "elem": ["2001:db8::1", {"elem": {"val": "2606:4700::1", "timeout": 3600, "expires": 3599}}]}}, {"set": {"family": "inet", "name": "cc", "table": "f2b-table", "type": ["ipv4_addr", "inet_service"], "handle": 3, "elem": [{"concat": ["104.16.0.3", 443]}]}}, {"set": {"family": "inet", "name": "ports", "table": "f2b-table", "type": "inet_service", "handle": 4, "elem": [22, 80]}}, {"set": {"family": "ip", "name": "empty", "table": "t", "type": "ipv4_addr", "handle": 5}}]}"#;

    #[test]
    fn parses_captured_sets_and_every_element_form() {
        let sets = parse_ruleset(RULESET).expect("parses");
        let paths: Vec<String> = sets.iter().map(NftSet::path).collect();
        assert_eq!(
            paths,
            [
                "inet f2b-table addr-set-sshd",
                "inet f2b-table six",
                "inet f2b-table cc",
                "inet f2b-table ports",
                "ip t empty"
            ]
        );
        let show = |s: &NftSet| s.elements.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            show(&sets[0]),
            [
                "104.16.0.0-104.16.0.255",
                "192.0.2.1-192.0.2.9",
                "203.0.113.5"
            ]
        );
        assert_eq!(show(&sets[1]), ["2001:db8::1", "2606:4700::1"]);
        assert_eq!(show(&sets[2]), ["104.16.0.3"]);
        assert!(sets[3].elements.is_empty() && sets[4].elements.is_empty());
    }

    #[test]
    fn non_json_is_a_parse_error() {
        assert!(parse_ruleset("table inet x {}").is_err());
        assert!(parse_ruleset("{}").is_err());
    }
}
