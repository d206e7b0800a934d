//! The `route` check: the kernel's routes toward Cloudflare's ranges must leave by the
//! default route of their family. A more specific route (an AWS-style 172.0.0.0/8 catching
//! 172.64.0.0/13, a VPN, a Docker or libvirt bridge) or a blackhole sends the answers to
//! Cloudflare's connections elsewhere: Errors 521/522/523.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cf_allow_diff::{Family, RangeSet};
use ipnet::IpNet;

use crate::host::{HostFacts, Route};
use crate::Check;

const ID: &str = "route";

/// The kernel's answer for the first address of each range (`ip -j route get`).
pub type Lookups = Vec<(IpNet, Result<Route, String>)>;

/// Asks the kernel for the route toward the first address of each of `ranges`. Read-only.
pub fn lookups(ranges: &RangeSet) -> Lookups {
    ranges
        .iter()
        .map(|net| {
            (
                net,
                crate::host::route_get(net.network()).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// What sends Cloudflare ranges the wrong way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Catcher {
    /// A table route that discards (`blackhole 104.16.0.0/13`).
    Discards(String),
    /// A table route leaving another way than the default route.
    Elsewhere(String),
    /// The kernel's lookup fails (its answer) or hits a discarding route.
    LookupFails(String),
    /// The kernel's lookup leaves another way (`via … dev …`).
    LookupElsewhere(String),
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A route of a table that could carry traffic toward a Cloudflare range.
fn is_forwarding(route: &Route) -> bool {
    !matches!(
        route.kind.as_str(),
        "local" | "broadcast" | "multicast" | "anycast" | "nat"
    ) && route.table.as_deref() != Some("local")
}

/// True when `route` leaves the way a default route of its family does.
fn same_way(route: &Route, defaults: &[&Route]) -> bool {
    defaults.iter().any(|d| {
        std::iter::once((d.gateway, d.dev.clone()))
            .chain(d.nexthops.iter().cloned())
            .any(|(gateway, dev)| {
                dev.is_some()
                    && dev == route.dev
                    && (route.gateway.is_none() || gateway == route.gateway)
            })
    })
}

/// The `route` checks for `cloudflare` (the ranges cf-allow allows), from the routing tables
/// and the kernel's lookups.
pub fn checks(cloudflare: &RangeSet, facts: &HostFacts, lookups: &Lookups) -> Vec<Check> {
    let routes = match &facts.routes {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot read the routing tables: {e}"),
                "install iproute2 (`ip`) so doctor can read the routes toward Cloudflare",
            )]
        }
    };
    let mut out = Vec::new();
    // What catches Cloudflare ranges → the ranges it catches.
    let mut caught: BTreeMap<Catcher, Vec<IpNet>> = BTreeMap::new();
    for (family, v6) in [(Family::Ipv4, false), (Family::Ipv6, true)] {
        if cloudflare.len_of(family) == 0 {
            continue;
        }
        let defaults = facts.default_routes(v6);
        if defaults.is_empty() {
            let name = family.as_str();
            out.push(Check::warn(
                ID,
                format!(
                    "no {name} default route: the answers to Cloudflare's {} {name} ranges have no way out (Error 522/523)",
                    cloudflare.len_of(family)
                ),
                format!(
                    "add the {name} default route (`ip {}route add default via GATEWAY`), or stop allowing {name} if this origin does not serve it",
                    if v6 { "-6 " } else { "" }
                ),
            ));
        }
        for range in cloudflare.iter_family(family) {
            let mut explained = false;
            for route in routes.iter().filter(|r| r.v6 == v6 && is_forwarding(r)) {
                let Some(dst) = route.dst else { continue };
                if dst.prefix_len() == 0 || !overlaps(&dst, &range) {
                    continue;
                }
                if route.discards() || (!defaults.is_empty() && !same_way(route, &defaults)) {
                    explained = true;
                    let catcher = match route.discards() {
                        true => Catcher::Discards(route.describe()),
                        false => Catcher::Elsewhere(route.describe()),
                    };
                    caught.entry(catcher).or_default().push(range);
                }
            }
            if explained || defaults.is_empty() {
                continue;
            }
            let what = lookups
                .iter()
                .find(|(net, _)| *net == range)
                .map(|(_, r)| r);
            let offending = match what {
                Some(Err(e)) => Some(Catcher::LookupFails(e.clone())),
                Some(Ok(r)) if r.discards() => Some(Catcher::LookupFails(r.kind.clone())),
                Some(Ok(r)) if !same_way(r, &defaults) => {
                    let via = Route {
                        dst: None,
                        ..r.clone()
                    }
                    .describe();
                    Some(Catcher::LookupElsewhere(
                        via.trim_start_matches("default ").to_string(),
                    ))
                }
                _ => None,
            };
            if let Some(catcher) = offending {
                caught.entry(catcher).or_default().push(range);
            }
        }
    }
    for (catcher, ranges) in &caught {
        let list = ranges
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let policy_fix = format!(
            "find the policy rule or table that catches them (`ip rule`, `ip route get {}`) and remove or narrow it so Cloudflare's ranges leave by the default route",
            ranges.first().map(|r| r.network().to_string()).unwrap_or_default()
        );
        let (summary, fix) = match catcher {
            Catcher::Discards(route) => (
                format!("route `{route}` discards what is sent to Cloudflare's {list}: the answers to Cloudflare's connections never leave (Error 522/523)"),
                format!("delete that route (`ip route del {route}`) so Cloudflare's ranges leave by the default route"),
            ),
            Catcher::Elsewhere(route) => (
                format!("route `{route}` sends Cloudflare's {list} elsewhere, not by the default route: the answers to Cloudflare's connections are lost (Error 522/523)"),
                format!("delete or narrow that route (`ip route del {route}`, or split it so it no longer covers {list}) so Cloudflare's ranges leave by the default route"),
            ),
            Catcher::LookupFails(why) => (
                format!("the kernel finds no way out toward Cloudflare's {list} ({why}) although a default route exists: a policy rule or another table discards the answers (Error 522/523)"),
                policy_fix,
            ),
            Catcher::LookupElsewhere(via) => (
                format!("the kernel routes Cloudflare's {list} by `{via}` (a policy rule or another table), not by the default route: the answers to Cloudflare's connections are lost (Error 522/523)"),
                policy_fix,
            ),
        };
        out.push(Check::fail(ID, summary, fix));
    }
    if out.is_empty() {
        out.push(Check::ok(
            ID,
            format!(
                "all {} Cloudflare ranges are routed by the default route of their family",
                cloudflare.len()
            ),
        ));
    }
    out
}

/// The source address the kernel picks toward `addr`'s family default route: the address
/// Cloudflare connects to when nothing else says so.
pub fn default_source(facts: &HostFacts, lookups: &Lookups, v6: bool) -> Option<IpAddr> {
    lookups
        .iter()
        .filter(|(net, _)| net.network().is_ipv6() == v6)
        .find_map(|(_, r)| r.as_ref().ok().and_then(|r| r.prefsrc))
        .or_else(|| facts.global_addresses(v6).first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::parse_routes;

    fn list(nets: &[&str]) -> RangeSet {
        RangeSet::aggregated(nets.iter().map(|s| s.parse::<IpNet>().expect("net")))
    }

    fn facts(v4: &str, v6: &str) -> HostFacts {
        let mut routes = parse_routes(v4, false).expect("v4");
        routes.extend(parse_routes(v6, true).expect("v6"));
        HostFacts {
            addresses: Ok(Vec::new()),
            routes: Ok(routes),
            listeners: Ok(Vec::new()),
        }
    }

    const V4: &str = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"d0"},{"type":"blackhole","dst":"104.16.0.0/13"},{"dst":"172.0.0.0/8","dev":"d1","scope":"link"},{"dst":"192.0.2.0/24","dev":"d0","prefsrc":"192.0.2.5"}]"#;

    #[test]
    fn names_the_broad_route_the_blackhole_and_the_missing_default() {
        let cf = list(&[
            "104.16.0.0/13",
            "172.64.0.0/13",
            "173.245.48.0/20",
            "2400:cb00::/32",
        ]);
        let got = checks(&cf, &facts(V4, "[]"), &Vec::new());
        let text: Vec<String> = got
            .iter()
            .map(|c| format!("{:?} {}", c.status, c.summary))
            .collect();
        assert_eq!(got.len(), 3, "{text:#?}");
        assert!(
            text[0].starts_with("Warn no ipv6 default route"),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with(
                "Fail route `172.0.0.0/8 dev d1` sends Cloudflare's 172.64.0.0/13 elsewhere"
            )),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.starts_with("Fail route `blackhole 104.16.0.0/13` discards what is sent to Cloudflare's 104.16.0.0/13")), "{text:#?}");
        assert!(!text.iter().any(|t| t.contains("173.245.48.0/20")));
    }

    #[test]
    fn a_specific_route_by_the_default_gateway_is_fine_and_lookups_count() {
        let v4 = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"d0"},{"dst":"104.16.0.0/12","gateway":"192.0.2.1","dev":"d0"}]"#;
        let v6 = r#"[{"dst":"default","gateway":"2001:db8::1","dev":"d0"}]"#;
        let cf = list(&["104.16.0.0/13", "2400:cb00::/32"]);
        let ok = checks(&cf, &facts(v4, v6), &Vec::new());
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].status, crate::Status::Ok, "{ok:?}");
        // A policy rule sends one range elsewhere: only the kernel's lookup shows it.
        let lookups: Lookups = vec![(
            "2400:cb00::/32".parse().expect("net"),
            Ok(Route {
                kind: "unicast".into(),
                dst: None,
                gateway: None,
                dev: Some("wg0".into()),
                table: None,
                prefsrc: None,
                v6: true,
                nexthops: Vec::new(),
            }),
        )];
        let got = checks(&cf, &facts(v4, v6), &lookups);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, crate::Status::Fail);
        assert_eq!(got[0].summary, "the kernel routes Cloudflare's 2400:cb00::/32 by `dev wg0` (a policy rule or another table), not by the default route: the answers to Cloudflare's connections are lost (Error 522/523)");
        assert!(
            got[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("ip route get 2400:cb00::")),
            "{got:?}"
        );
    }

    #[test]
    fn a_multipath_default_route_covers_each_of_its_next_hops() {
        let v4 = r#"[{"dst":"default","nexthops":[{"gateway":"192.0.2.1","dev":"d0"},{"gateway":"198.51.100.1","dev":"d1"}]}]"#;
        let cf = list(&["104.16.0.0/13"]);
        let via = |gw: [u8; 4], dev: &str| -> Lookups {
            vec![(
                "104.16.0.0/13".parse().expect("net"),
                Ok(Route {
                    kind: "unicast".into(),
                    dst: None,
                    gateway: Some(IpAddr::from(gw)),
                    dev: Some(dev.into()),
                    table: None,
                    prefsrc: None,
                    v6: false,
                    nexthops: Vec::new(),
                }),
            )]
        };
        let ok = checks(&cf, &facts(v4, "[]"), &via([198, 51, 100, 1], "d1"));
        assert_eq!(ok[0].status, crate::Status::Ok, "{ok:?}");
        let bad = checks(&cf, &facts(v4, "[]"), &via([203, 0, 113, 1], "d2"));
        assert_eq!(bad[0].status, crate::Status::Fail, "{bad:?}");
    }

    #[test]
    fn unreadable_routes_are_a_warning() {
        let f = HostFacts {
            addresses: Ok(Vec::new()),
            routes: Err("ip is not installed".into()),
            listeners: Ok(Vec::new()),
        };
        let got = checks(&list(&["104.16.0.0/13"]), &f, &Vec::new());
        assert_eq!(got[0].status, crate::Status::Warn);
    }
}
