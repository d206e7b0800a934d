//! Facts about the host that several checks use, read once: its addresses and its routes
//! (`ip -j addr`, `ip -j route`), its TCP listeners.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::listen::Listener;
use crate::Error;

/// One address configured on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddr {
    /// The interface (`eth0`).
    pub ifname: String,
    /// The address.
    pub addr: IpAddr,
    /// Scope `global` (not host, link or site).
    pub global: bool,
}

/// One route of a routing table, or the answer of a route lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `unicast`, `blackhole`, `unreachable`, `prohibit`, `local`, `broadcast`, …
    pub kind: String,
    /// The destination; `None` for a default route.
    pub dst: Option<IpNet>,
    /// The next hop.
    pub gateway: Option<IpAddr>,
    /// The outgoing interface.
    pub dev: Option<String>,
    /// The table, when not `main`.
    pub table: Option<String>,
    /// The source address the kernel picks.
    pub prefsrc: Option<IpAddr>,
    /// An IPv6 route.
    pub v6: bool,
    /// The next hops of a multipath route (gateway, interface).
    pub nexthops: Vec<(Option<IpAddr>, Option<String>)>,
}

impl Route {
    /// The route in `ip route` words: `blackhole 104.16.0.0/13`, `172.0.0.0/8 dev eth1`.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.kind != "unicast" {
            words.push(self.kind.clone());
        }
        words.push(match self.dst {
            Some(net) => net.to_string(),
            None => "default".to_string(),
        });
        if let Some(gw) = self.gateway {
            words.push(format!("via {gw}"));
        }
        if let Some(dev) = &self.dev {
            words.push(format!("dev {dev}"));
        }
        if let Some(table) = &self.table {
            words.push(format!("table {table}"));
        }
        words.join(" ")
    }

    /// True for a route that drops what it catches.
    pub fn discards(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "blackhole" | "unreachable" | "prohibit" | "throw"
        )
    }
}

/// What the checks know about the host.
#[derive(Clone, Debug)]
pub struct HostFacts {
    /// Addresses on the interfaces, or why they could not be read.
    pub addresses: Result<Vec<HostAddr>, String>,
    /// IPv4 and IPv6 routes of every table, or why they could not be read.
    pub routes: Result<Vec<Route>, String>,
    /// TCP sockets in LISTEN, or why they could not be read.
    pub listeners: Result<Vec<Listener>, String>,
}

impl HostFacts {
    /// Reads the facts of the current network namespace. Nothing is changed.
    pub fn read() -> HostFacts {
        HostFacts {
            addresses: read_addresses().map_err(|e| e.to_string()),
            routes: read_routes().map_err(|e| e.to_string()),
            listeners: crate::listen::read_listeners().map_err(|e| e.to_string()),
        }
    }

    /// The global addresses of one family.
    pub fn global_addresses(&self, v6: bool) -> Vec<IpAddr> {
        match &self.addresses {
            Ok(addrs) => addrs
                .iter()
                .filter(|a| a.global && a.addr.is_ipv6() == v6)
                .map(|a| a.addr)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The default routes of one family (main table).
    pub fn default_routes(&self, v6: bool) -> Vec<&Route> {
        match &self.routes {
            Ok(routes) => routes
                .iter()
                .filter(|r| r.v6 == v6 && r.dst.is_none() && r.table.is_none())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// `ip -j addr show`.
pub fn read_addresses() -> Result<Vec<HostAddr>, Error> {
    parse_addresses(&crate::run_program("ip", &["-j", "addr", "show"])?)
}

/// `ip -4 -j route show table all` and the same with `-6`.
pub fn read_routes() -> Result<Vec<Route>, Error> {
    let mut all = Vec::new();
    for (flag, v6) in [("-4", false), ("-6", true)] {
        let text = crate::run_program("ip", &[flag, "-j", "route", "show", "table", "all"])?;
        all.extend(parse_routes(&text, v6)?);
    }
    Ok(all)
}

/// The kernel's route toward `addr` (`ip -j route get ADDR`); `Err` with the kernel's
/// answer when there is none (`Network is unreachable`, a blackhole's `Invalid argument`).
pub fn route_get(addr: IpAddr) -> Result<Route, Error> {
    let text = crate::run_program("ip", &["-j", "route", "get", &addr.to_string()])?;
    parse_routes(&text, addr.is_ipv6())?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Parse {
            what: "ip -j route get".to_string(),
            detail: "no route in the answer".to_string(),
        })
}

fn json(text: &str, what: &str) -> Result<Vec<Value>, Error> {
    let doc: Value = serde_json::from_str(text).map_err(|e| Error::Parse {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    doc.as_array().cloned().ok_or_else(|| Error::Parse {
        what: what.to_string(),
        detail: "not a JSON array".to_string(),
    })
}

/// Parses `ip -j addr show`.
pub fn parse_addresses(text: &str) -> Result<Vec<HostAddr>, Error> {
    let mut out = Vec::new();
    for link in json(text, "ip -j addr show")? {
        let ifname = link["ifname"].as_str().unwrap_or_default().to_string();
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let Some(addr) = info["local"].as_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            out.push(HostAddr {
                ifname: ifname.clone(),
                addr,
                global: info["scope"] == "global",
            });
        }
    }
    Ok(out)
}

/// Parses `ip -j route show` or `ip -j route get` of one family.
pub fn parse_routes(text: &str, v6: bool) -> Result<Vec<Route>, Error> {
    let mut out = Vec::new();
    for r in json(text, "ip -j route")? {
        let text = |key: &str| r[key].as_str().map(str::to_string);
        let dst = match r["dst"].as_str() {
            None | Some("default") => None,
            Some(d) => match d.parse::<IpNet>() {
                Ok(net) => Some(net),
                Err(_) => match d.parse::<IpAddr>() {
                    Ok(addr) => Some(IpNet::from(addr)),
                    Err(_) => continue,
                },
            },
        };
        out.push(Route {
            kind: text("type").unwrap_or_else(|| "unicast".to_string()),
            dst,
            gateway: r["gateway"].as_str().and_then(|s| s.parse().ok()),
            dev: text("dev"),
            table: text("table").filter(|t| t != "main"),
            prefsrc: r["prefsrc"].as_str().and_then(|s| s.parse().ok()),
            v6,
            nexthops: r["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        h["gateway"].as_str().and_then(|s| s.parse().ok()),
                        h["dev"].as_str().map(str::to_string),
                    )
                })
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with iproute2 6.1 in a private namespace (veth d0, a 172/8 route, a blackhole).
    const ROUTES: &str = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"d0","flags":[]},{"type":"blackhole","dst":"104.16.0.0/13","flags":[]},{"dst":"172.0.0.0/8","dev":"d0","scope":"link","flags":[]},{"dst":"192.0.2.0/24","dev":"d0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.5","flags":[]},{"type":"local","dst":"192.0.2.5","dev":"d0","table":"local","protocol":"kernel","scope":"host","prefsrc":"192.0.2.5","flags":[]}]"#;
    const ADDRS: &str = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]},{"ifindex":3,"ifname":"d0","addr_info":[{"family":"inet","local":"192.0.2.5","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;

    #[test]
    fn parses_captured_routes() {
        let routes = parse_routes(ROUTES, false).expect("routes");
        assert_eq!(routes.len(), 5);
        assert_eq!(routes[0].describe(), "default via 192.0.2.1 dev d0");
        assert!(routes[1].discards());
        assert_eq!(routes[1].describe(), "blackhole 104.16.0.0/13");
        assert_eq!(routes[2].describe(), "172.0.0.0/8 dev d0");
        assert_eq!(
            routes[4].describe(),
            "local 192.0.2.5/32 dev d0 table local"
        );
        assert!(parse_routes("nope", false).is_err());
        // A multipath default route, as iproute2 prints it.
        let multi = r#"[{"dst":"default","protocol":"static","flags":[],"nexthops":[{"gateway":"192.0.2.1","dev":"d0","weight":1,"flags":[]},{"gateway":"198.51.100.1","dev":"d1","weight":1,"flags":[]}]}]"#;
        let routes = parse_routes(multi, false).expect("multipath");
        assert_eq!(routes[0].dev, None);
        assert_eq!(
            routes[0].nexthops[1],
            (
                Some(IpAddr::from([198, 51, 100, 1])),
                Some("d1".to_string())
            )
        );
    }

    #[test]
    fn parses_captured_addresses_and_facts() {
        let addrs = parse_addresses(ADDRS).expect("addrs");
        assert_eq!(addrs.len(), 4);
        let facts = HostFacts {
            addresses: Ok(addrs),
            routes: parse_routes(ROUTES, false).map_err(|e| e.to_string()),
            listeners: Ok(Vec::new()),
        };
        assert_eq!(
            facts.global_addresses(false),
            [IpAddr::from([192, 0, 2, 5])]
        );
        assert!(facts.global_addresses(true).is_empty());
        assert_eq!(facts.default_routes(false).len(), 1);
        assert!(facts.default_routes(true).is_empty());
    }
}
