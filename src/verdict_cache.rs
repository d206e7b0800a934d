//! The verdict cache (`state_dir/verdict-cache`): a no-op run reuses the last verdict instead
//! of reading and evaluating the host's rules again, when nothing that verdict depends on
//! can have changed.
//!
//! The file holds the verdict and its warning lines, under a SHA-256 over everything they
//! were computed from:
//!
//! - this binary (version, and the device, inode, size and mtime of `/proc/self/exe`), the
//!   whole config and the backend (the fixes the warnings propose depend on them), and
//!   whether `iptables-restore` is iptables-legacy;
//! - the boot id, the network namespace's cookie and the nf_tables generation id, which every
//!   commit to the ruleset changes (nft, iptables-nft, firewalld, Docker, cf-allow itself);
//!   the generation is read before and after the rules, and a verdict is only stored when
//!   it did not move in between;
//! - every interface with its index, flags, addresses and routes (rtnetlink and
//!   `/proc/thread-self/net/ipv6_route`), the forwarding sysctls, and whether
//!   iptables-legacy tables are loaded (none may be: their rules have no generation id);
//! - the probe: the ranges, the ports and lockdown.
//!
//! The key is kept in two parts beside the digest: the digest of everything but the
//! generation and the ranges, and the digest of the ranges. Right after cf-allow's own commit
//! of set elements only ([`carries_over`]), a clean verdict recorded for the generation it
//! committed on and for the ranges its sets held then is carried over by evaluating only
//! the changed ranges ([`cf_allow_reach::HostModel::evaluate_change`]).
//!
//! A host whose verdict depends on state without a generation id — iptables-legacy tables,
//! an ipset other than cf-allow's matched by a rule, sets with timeouts or filled from the
//! packet path, a partly unreadable ruleset — is never cached: every run reads and
//! evaluates it again. cf-allow's own ipsets have no generation either, but right after a
//! sync they hold what that sync found or set (its list): in ipset mode a sync's verdict is
//! recorded for the next sync only (`ipsets held by the sync` in the key), and a change of
//! their members commits nothing to nf_tables, so a clean verdict carries over while the
//! generation has not moved since it was recorded. `status` reads the ipsets itself and
//! neither reuses nor records a verdict in ipset mode.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;

use cf_allow_diff::Family;
use cf_allow_exec::files::Dir;
use cf_allow_nftables::RulesetStamp;
use cf_allow_reach::{HostModel, Network, Probe, Verdict};
use serde_json::{json, Value};

use crate::backends::BackendKind;
use crate::config::Config;

/// The file in `state_dir`.
pub const FILE: &str = "verdict-cache";
/// The first line of the file.
const MAGIC: &str = "cf-allow verdict cache v2";

/// The key of a verdict: what it was computed from.
pub struct Key {
    stamp: RulesetStamp,
    digest: String,
    /// The digest of everything but the ruleset generation and the probe's ranges.
    base: String,
    /// The digest of the probe's ranges.
    ranges: String,
}

impl Key {
    /// The key for `probe` on the host as it is now; `None` when the host cannot be cached
    /// (no nf_tables generation or namespace cookie, iptables-legacy tables loaded).
    /// `ipsets_held`: the model takes cf-allow's ipsets from the sync that just found or set
    /// them to the probe's ranges (ipset mode; a verdict recorded so is reused only by
    /// such a sync).
    pub fn now(
        network: &Network,
        probe: &Probe,
        kind: BackendKind,
        config: &Config,
        ipsets_held: bool,
    ) -> Option<Key> {
        if network.legacy_loaded() {
            tracing::debug!("reachability: not cached: iptables-legacy tables are loaded");
            return None;
        }
        let stamp = match cf_allow_nftables::ruleset_stamp() {
            Ok(stamp) => stamp,
            Err(e) => {
                tracing::debug!("reachability: not cached: {e}");
                return None;
            }
        };
        let mut text = format!("{MAGIC}\n{}\n", env!("CARGO_PKG_VERSION"));
        match std::fs::metadata("/proc/self/exe") {
            Ok(m) => {
                let _ = writeln!(
                    text,
                    "exe {} {} {} {}.{}",
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                );
            }
            Err(e) => {
                tracing::debug!("reachability: not cached: /proc/self/exe: {e}");
                return None;
            }
        }
        let _ = writeln!(text, "host {}", stamp.host);
        let _ = writeln!(text, "network {}", network.fingerprint());
        let _ = writeln!(text, "backend {}", kind.as_str());
        let _ = writeln!(text, "ipsets held by the sync {ipsets_held}");
        let _ = writeln!(text, "config {config:?}");
        let _ = writeln!(
            text,
            "iptables-restore legacy {}",
            cf_allow_exec::is_legacy_iptables("iptables-restore")
        );
        let _ = writeln!(
            text,
            "probe ports {:?} lockdown {}",
            probe.ports, probe.lockdown
        );
        let base = sha256(text.as_bytes());
        let ranges = ranges_digest(&probe.ranges);
        let digest = sha256(format!("{base} {} {ranges}", stamp.generation).as_bytes());
        Some(Key {
            stamp,
            digest,
            base,
            ranges,
        })
    }

    /// The ruleset generation the key was taken at.
    pub fn generation(&self) -> u32 {
        self.stamp.generation
    }

    fn header(&self) -> String {
        format!("{MAGIC}\n{}\n", self.digest)
    }
}

fn sha256(bytes: &[u8]) -> String {
    cf_allow_exec::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The digest of a list of ranges (see [`add_ranges`]).
fn ranges_digest(ranges: &cf_allow_diff::RangeSet) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    add_ranges(&mut context, ranges);
    cf_allow_exec::hex(context.finish().as_ref())
}

/// Feeds `ranges` into the key as bytes, not as text (at 100,000 ranges formatting them
/// cost more than the rest of the key): per family its name and number of ranges, then
/// each range's address and prefix length, so that two different lists never give the same
/// bytes.
fn add_ranges(context: &mut ring::digest::Context, ranges: &cf_allow_diff::RangeSet) {
    // Gathered into one buffer per family: one `update` per range costs more than hashing.
    let mut bytes = Vec::new();
    for family in Family::ALL {
        bytes.clear();
        bytes.extend(family.as_str().as_bytes());
        bytes.extend((ranges.len_of(family) as u64).to_be_bytes());
        for net in ranges.iter_family(family) {
            match net.addr() {
                std::net::IpAddr::V4(a) => bytes.extend(a.octets()),
                std::net::IpAddr::V6(a) => bytes.extend(a.octets()),
            }
            bytes.push(net.prefix_len());
        }
        context.update(&bytes);
    }
}

/// The state directory, when it can hold the cache (exists, and is trusted when running as
/// root: nobody else could have written the file).
fn dir(config: &Config) -> Option<Dir> {
    let dir = Dir::open(&config.state_dir).ok()?;
    dir.check_trusted().ok()?;
    Some(dir)
}

/// The file's bytes, when the state directory can hold it and it is there.
fn read(config: &Config) -> Option<Vec<u8>> {
    let dir = dir(config)?;
    match dir.read(FILE) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(
                "reachability: cannot read {}: {e}",
                dir.join(FILE).display()
            );
            None
        }
    }
}

/// The verdict and warning lines recorded for `key`, if the cache holds them.
pub fn hit(config: &Config, key: &Key) -> Option<(Verdict, Vec<String>)> {
    let bytes = read(config)?;
    let body = bytes.strip_prefix(key.header().as_bytes())?;
    let doc: Value = serde_json::from_slice(body).ok()?;
    let verdict = Verdict::from_json(doc.get("verdict")?)?;
    let warnings = doc
        .get("warnings")?
        .as_array()?
        .iter()
        .map(|w| w.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    Some((verdict, warnings))
}

/// True when the recorded verdict may be carried over to `key` after cf-allow's own commit
/// of set elements on top of generation `from` ([`cf_allow_reach::HostModel::evaluate_change`]):
/// it was recorded for everything `key` covers but the generation and the ranges (same
/// binary, config, backend, boot, namespace, interfaces, routes, forwarding, ports and
/// lockdown), at generation `from`, for the ranges the sets held then (`before`), and it
/// is clean: reachable, nothing blocked, unknown or exposed, no warning.
pub fn carries_over(
    config: &Config,
    key: &Key,
    from: u32,
    before: &cf_allow_diff::RangeSet,
) -> bool {
    let Some(bytes) = read(config) else {
        return false;
    };
    let Some(body) = bytes
        .strip_prefix(format!("{MAGIC}\n").as_bytes())
        .and_then(|rest| Some(&rest[rest.iter().position(|&b| b == b'\n')? + 1..]))
    else {
        return false;
    };
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let clean = doc
        .get("verdict")
        .and_then(Verdict::from_json)
        .is_some_and(|v| v.is_clean());
    clean
        && doc["warnings"].as_array().is_some_and(Vec::is_empty)
        && doc["base"].as_str() == Some(key.base.as_str())
        && doc["generation"].as_u64() == Some(u64::from(from))
        && doc["ranges"].as_str() == Some(ranges_digest(before).as_str())
}

/// Records the verdict computed from `model` for `key` with its warning lines, when it may
/// be reused: `model` holds nothing that changes without a new generation, and the
/// generation did not move while the rules were read. Otherwise removes a recorded verdict.
/// Failures only cost speed: logged, not returned.
pub fn store(
    config: &Config,
    key: &Key,
    model: &HostModel,
    verdict: &Verdict,
    warnings: &[String],
) {
    let Some(dir) = dir(config) else {
        return;
    };
    let why_not = if let Some(reason) = model.uncacheable_reason() {
        Some(reason.to_owned())
    } else {
        match cf_allow_nftables::ruleset_stamp() {
            Ok(after) if after == key.stamp => None,
            Ok(_) => Some("the ruleset changed while it was read".to_owned()),
            Err(e) => Some(e.to_string()),
        }
    };
    match why_not {
        None => {
            let mut bytes = key.header().into_bytes();
            bytes.extend(
                json!({
                    "verdict": verdict.to_json(),
                    "warnings": warnings,
                    "base": key.base,
                    "generation": key.stamp.generation,
                    "ranges": key.ranges,
                })
                .to_string()
                .into_bytes(),
            );
            match dir.write_boot_cache(FILE, &bytes, 0o600) {
                Ok(()) => tracing::debug!(
                    "reachability: verdict recorded in {} (ruleset generation {})",
                    dir.join(FILE).display(),
                    key.stamp.generation
                ),
                Err(e) => tracing::debug!("reachability: cannot record the verdict: {e}"),
            }
        }
        Some(why) => {
            tracing::debug!("reachability: verdict not recorded: {why}");
            forget(&dir);
        }
    }
}

/// Removes the recorded verdict, if there is one.
fn forget(dir: &Dir) {
    if let Err(e) = dir.remove(FILE) {
        tracing::debug!(
            "reachability: cannot remove {}: {e}",
            dir.join(FILE).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::add_ranges;
    use cf_allow_diff::RangeSet;

    fn digest(nets: &[&str]) -> Vec<u8> {
        let nets: Vec<ipnet::IpNet> = nets.iter().map(|n| n.parse().expect("net")).collect();
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        add_ranges(&mut context, &RangeSet::exact(nets));
        context.finish().as_ref().to_vec()
    }

    #[test]
    fn different_lists_give_different_keys() {
        let lists: [&[&str]; 6] = [
            &[],
            &["192.0.2.0/24"],
            &["192.0.2.0/25"],
            &["198.51.100.0/24"],
            &["192.0.2.0/24", "2001:db8::/32"],
            &["2001:db8::/32"],
        ];
        for (i, a) in lists.iter().enumerate() {
            assert_eq!(digest(a), digest(a));
            for b in &lists[i + 1..] {
                assert_ne!(digest(a), digest(b), "{a:?} and {b:?}");
            }
        }
    }
}
