//! The interfaces, their addresses and the IPv4 main-table routes over rtnetlink (one socket,
//! three dumps; what `ip -j addr show` and `ip -j route show table main` print, without
//! spawning `ip`). Safe code: the answers are parsed as bytes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTM_NEWLINK` / `RTM_GETLINK`.
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
/// `RTM_NEWADDR` / `RTM_GETADDR`.
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
/// `RTM_NEWROUTE` / `RTM_GETROUTE`.
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change; it is not consistent.
const NLM_F_DUMP_INTR: u16 = 0x10;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
/// `RTM_F_CLONED`: a cached route, not in the table (`ip route show` leaves them out).
const RTM_F_CLONED: u32 = 0x200;
const IFF_UP: u32 = 1;
const IFF_LOOPBACK: u32 = 8;
const HEADER: usize = 16;
/// `EPROTO`, for an error message too short to hold its code.
const EPROTO: i32 = 71;

/// One link: index, name, flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub loopback: bool,
}

/// What the three dumps return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dump {
    /// The links in the kernel's order.
    pub links: Vec<Link>,
    /// (interface index, address) in the kernel's order (IPv4 first).
    pub addrs: Vec<(u32, IpAddr)>,
    /// (output interface index, destination; `None` = default) of the IPv4 main table.
    pub routes4: Vec<(u32, Option<ipnet::IpNet>)>,
}

/// A receive buffer aligned for netlink headers.
#[repr(C, align(8))]
struct Buffer([u8; 1 << 16]);

/// Dumps links, addresses and IPv4 routes. `Err` when rtnetlink cannot be asked or a dump
/// came back inconsistent.
pub(crate) fn dump() -> io::Result<Dump> {
    let socket = mnl::Socket::new(mnl::Bus::Route)?;
    let mut buffer = Box::new(Buffer([0; 1 << 16]));
    let mut out = Dump::default();
    let mut seq = 1u32;
    // Links: ifinfomsg (16 bytes).
    query(
        &socket,
        &mut buffer,
        RTM_GETLINK,
        &[0u8; 16],
        seq,
        |t, body| {
            if t == RTM_NEWLINK {
                if let Some(link) = parse_link(body) {
                    out.links.push(link);
                }
            }
        },
    )?;
    seq += 1;
    // Addresses of every family: ifaddrmsg (8 bytes).
    let mut addr_req = [0u8; 8];
    addr_req[0] = AF_UNSPEC;
    query(
        &socket,
        &mut buffer,
        RTM_GETADDR,
        &addr_req,
        seq,
        |t, body| {
            if t == RTM_NEWADDR {
                if let Some(a) = parse_addr(body) {
                    out.addrs.push(a);
                }
            }
        },
    )?;
    seq += 1;
    // IPv4 routes: rtmsg (12 bytes).
    let mut route_req = [0u8; 12];
    route_req[0] = AF_INET;
    query(
        &socket,
        &mut buffer,
        RTM_GETROUTE,
        &route_req,
        seq,
        |t, body| {
            if t == RTM_NEWROUTE {
                if let Some(r) = parse_route4(body) {
                    out.routes4.push(r);
                }
            }
        },
    )?;
    Ok(out)
}

fn query(
    socket: &mnl::Socket,
    buffer: &mut Buffer,
    kind: u16,
    payload: &[u8],
    seq: u32,
    mut each: impl FnMut(u16, &[u8]),
) -> io::Result<()> {
    let len = HEADER + payload.len();
    let mut request = Vec::with_capacity(len);
    request.extend((len as u32).to_ne_bytes());
    request.extend(kind.to_ne_bytes());
    request.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend(seq.to_ne_bytes());
    request.extend(0u32.to_ne_bytes());
    request.extend(payload);
    socket.send(&request)?;
    let portid = socket.portid();
    loop {
        let n = socket.recv_raw(&mut buffer.0)?;
        let bytes = buffer.0.get(..n).unwrap_or_default();
        let mut offset = 0usize;
        while offset + HEADER <= bytes.len() {
            let msg_len = u32_at(bytes, offset).unwrap_or(0) as usize;
            if msg_len < HEADER || offset + msg_len > bytes.len() {
                return Err(io::Error::other("a truncated rtnetlink message"));
            }
            let t = u16_at(bytes, offset + 4).unwrap_or(0);
            let flags = u16_at(bytes, offset + 6).unwrap_or(0);
            let mseq = u32_at(bytes, offset + 8).unwrap_or(0);
            let pid = u32_at(bytes, offset + 12).unwrap_or(0);
            let body = &bytes[offset + HEADER..offset + msg_len];
            offset += (msg_len + 3) & !3;
            if mseq != seq || (pid != 0 && pid != portid) {
                continue;
            }
            if flags & NLM_F_DUMP_INTR != 0 {
                return Err(io::Error::other(
                    "an rtnetlink dump was interrupted by a change",
                ));
            }
            match t {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = body
                        .get(..4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(-EPROTO);
                    if code == 0 {
                        return Ok(());
                    }
                    return Err(io::Error::from_raw_os_error(-code));
                }
                _ => each(t, body),
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes after a fixed header of `fixed` bytes: (type, value).
fn attrs(body: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = (fixed + 3) & !3;
    while at + 4 <= body.len() {
        let (Some(len), Some(kind)) = (u16_at(body, at), u16_at(body, at + 2)) else {
            break;
        };
        let len = len as usize;
        if len < 4 || at + len > body.len() {
            break;
        }
        // The nested and byte-order bits are not part of the type.
        out.push((kind & 0x3fff, &body[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

fn parse_link(body: &[u8]) -> Option<Link> {
    let index = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let name = attrs(body, 16)
        .into_iter()
        .find(|(k, _)| *k == IFLA_IFNAME)
        .map(|(_, v)| {
            let v = v.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(v).into_owned()
        })?;
    Some(Link {
        index,
        name,
        up: flags & IFF_UP != 0,
        loopback: flags & IFF_LOOPBACK != 0,
    })
}

fn ip_of(family: u8, v: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

fn parse_addr(body: &[u8]) -> Option<(u32, IpAddr)> {
    let family = *body.first()?;
    let index = u32_at(body, 4)?;
    let attrs = attrs(body, 8);
    // `ip` prints IFA_LOCAL as `local` when present, else IFA_ADDRESS.
    let value = attrs
        .iter()
        .find(|(k, _)| *k == IFA_LOCAL)
        .or_else(|| attrs.iter().find(|(k, _)| *k == IFA_ADDRESS))
        .map(|(_, v)| *v)?;
    Some((index, ip_of(family, value)?))
}

fn parse_route4(body: &[u8]) -> Option<(u32, Option<ipnet::IpNet>)> {
    if *body.first()? != AF_INET {
        return None;
    }
    let dst_len = *body.get(1)?;
    let mut table = u32::from(*body.get(4)?);
    let flags = u32_at(body, 8)?;
    if flags & RTM_F_CLONED != 0 {
        return None;
    }
    let (mut dst, mut oif) = (None, None);
    for (k, v) in attrs(body, 12) {
        match k {
            RTA_DST => dst = ip_of(AF_INET, v),
            RTA_OIF => oif = u32_at(v, 0),
            RTA_TABLE => table = u32_at(v, 0)?,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    // `ip` prints no `dev` for a route without an output interface (multipath, reject).
    let oif = oif?;
    if dst_len == 0 {
        return Some((oif, None));
    }
    let net = ipnet::IpNet::new(dst.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), dst_len).ok()?;
    Some((oif, Some(net)))
}
