//! The list compiled into cf-allow: the last resort when there is neither network nor cache.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_allow_diff::{IpNet, RangeSet};

use crate::{FetchedList, Origin};

/// Cloudflare's IPv4 ranges as published on [`EMBEDDED_VERIFIED`].
pub const EMBEDDED_V4: &[&str] = &[
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
];

/// Cloudflare's IPv6 ranges as published on [`EMBEDDED_VERIFIED`].
pub const EMBEDDED_V6: &[&str] = &[
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

/// The day the embedded list was last checked against Cloudflare's (UTC).
pub const EMBEDDED_VERIFIED: &str = "2026-11-25";

/// [`EMBEDDED_VERIFIED`] as seconds since the Unix epoch (midnight UTC).
const EMBEDDED_VERIFIED_UNIX: u64 = 1_795_564_800;

/// The compiled-in list (origin `embedded`, source `"embedded"`).
pub fn embedded() -> FetchedList {
    let nets = EMBEDDED_V4
        .iter()
        .chain(EMBEDDED_V6)
        .filter_map(|s| s.parse::<IpNet>().ok());
    FetchedList {
        ranges: RangeSet::aggregated(nets),
        source: "embedded".to_string(),
        etag: None,
        origin: Origin::Embedded,
        fetched_at: verified_at(),
    }
}

/// When the embedded list was verified.
fn verified_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EMBEDDED_VERIFIED_UNIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_range_parses() {
        let list = embedded();
        assert_eq!(list.ranges.ipv4().len(), EMBEDDED_V4.len());
        assert_eq!(list.ranges.ipv6().len(), EMBEDDED_V6.len());
    }
}
