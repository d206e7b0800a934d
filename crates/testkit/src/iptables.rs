//! Reading iptables state back in tests.

use crate::Netns;

/// The filter table as `save_program -t filter` (e.g. `ip6tables-legacy-save`) prints it
/// inside `ns`, comment lines dropped and chain counters zeroed.
pub fn filter_table(ns: &Netns, save_program: &str) -> String {
    normalize(&ns.sh(&format!("{save_program} -t filter")))
}

/// Drops comment lines and zeroes the `[packets:bytes]` counters of chain lines.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let line = match (line.find(" ["), line.starts_with(':')) {
            (Some(at), true) => format!("{} [0:0]", &line[..at]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The rules of one chain in a save (the text after `-A <chain> `).
pub fn chain_rules(save: &str, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    save.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_counters_go() {
        let save = "# Generated\n*filter\n:INPUT ACCEPT [12:345]\n-A INPUT -j CF-ALLOW\nCOMMIT\n";
        assert_eq!(
            normalize(save),
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j CF-ALLOW\nCOMMIT\n"
        );
        assert_eq!(chain_rules(save, "INPUT"), vec!["-j CF-ALLOW"]);
    }
}
