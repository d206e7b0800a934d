//! Reading nftables state back in tests.

use crate::Netns;

/// The elements of set `family table set` inside `ns` as `nft -j` prints them, turned into
/// CIDR (`addr/len`), range (`from-to`) or address strings, sorted.
pub fn set_elements(ns: &Netns, family: &str, table: &str, set: &str) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&ns.sh(&format!("nft -j list set {family} {table} {set}")))
            .expect("nft -j list set");
    let mut out = Vec::new();
    for item in json["nftables"].as_array().expect("nftables array") {
        let Some(elems) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            if let Some(p) = e.get("prefix") {
                out.push(format!(
                    "{}/{}",
                    p["addr"].as_str().expect("addr"),
                    p["len"].as_u64().expect("len")
                ));
            } else if let Some(r) = e.get("range") {
                out.push(format!(
                    "{}-{}",
                    r[0].as_str().expect("from"),
                    r[1].as_str().expect("to")
                ));
            } else if let Some(s) = e.as_str() {
                out.push(s.to_owned());
            } else {
                out.push(e.to_string());
            }
        }
    }
    out.sort();
    out
}
