//! Reading one ipset straight from the kernel: ipset's own netlink dump (`IPSET_CMD_SAVE`,
//! the request `ipset save NAME` sends), parsed in process. At 100k members this is a
//! fraction of running `ipset save` and parsing its text, which formats every member (and
//! looks up a resolver file per member) only for cf-allow to parse it back.
//!
//! Only reads: nothing here changes a set (changes go through `ipset restore`). Safe code
//! only: `mnl`'s socket, and messages built and parsed as bytes. The kernel answers a dump
//! while the reader receives (it builds each datagram in `recv`), so the loop ends at the
//! dump's `NLMSG_DONE` or error without a timeout of its own. Any failure here is an
//! [`io::Error`] and the caller falls back to the `ipset` program.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use cf_allow_diff::IpNet;

/// `NFNL_SUBSYS_IPSET`.
const SUBSYS_IPSET: u16 = 6;
/// `IPSET_CMD_LIST`, `IPSET_CMD_SAVE`: the kernel answers a save request with list messages.
const CMD_LIST: u16 = 7;
const CMD_SAVE: u16 = 8;
/// `IPSET_PROTOCOL_MIN`: every kernel since 3.x accepts it, and the dump's format is the
/// same in protocol 7.
const PROTOCOL: u8 = 6;
/// `NLM_F_REQUEST`, `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// `NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `AF_INET`, as ipset sends it in every request's `nfgenmsg`.
const AF_INET: u8 = 2;
/// `NFPROTO_IPV4`, `NFPROTO_IPV6`: a set's family in the dump.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// The sequence number of the one request each socket sends.
const SEQ: u32 = 1;

// Command-level attributes.
const ATTR_PROTOCOL: u16 = 1;
const ATTR_SETNAME: u16 = 2;
const ATTR_TYPENAME: u16 = 3;
const ATTR_FAMILY: u16 = 5;
const ATTR_FLAGS: u16 = 6;
const ATTR_DATA: u16 = 7;
const ATTR_ADT: u16 = 8;
// Data attributes (the set's header and each member).
const ATTR_IP: u16 = 1;
const ATTR_CIDR: u16 = 3;
const ATTR_TIMEOUT: u16 = 6;
const ATTR_CADT_FLAGS: u16 = 8;
const ATTR_LINENO: u16 = 9;
const ATTR_COMMENT: u16 = 26;
// Header-only data attributes (`IPSET_ATTR_CADT_MAX` + 3, + 8, + 9).
const ATTR_MAXELEM: u16 = 19;
const ATTR_ELEMENTS: u16 = 24;
const ATTR_REFERENCES: u16 = 25;
// Inside `ATTR_IP`.
const ATTR_IPADDR_IPV4: u16 = 1;
const ATTR_IPADDR_IPV6: u16 = 2;
/// `IPSET_FLAG_NOMATCH` (a member's flags) and `IPSET_FLAG_WITH_COMMENT` (the header's).
const FLAG_NOMATCH: u32 = 1 << 2;
const FLAG_WITH_COMMENT: u32 = 1 << 4;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits of an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `NLA_F_NET_BYTEORDER`.
const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// `IPSET_FLAG_LIST_HEADER`: a list of the sets' headers, without their members.
const FLAG_LIST_HEADER: u32 = 1 << 2;

/// The kernel's dump datagrams are at most 32 KiB; a larger buffer never truncates one.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// One set as the kernel holds it, in the terms `ipset save` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DumpedSet {
    /// The set type (`hash:net`).
    pub kind: String,
    /// `inet`, `inet6`, or the family's number.
    pub family: String,
    /// The set has the `comment` extension.
    pub comment: bool,
    /// The set has the `timeout` extension.
    pub timeout: bool,
    /// The members, in the kernel's order.
    pub members: Vec<DumpedMember>,
}

/// One member of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DumpedMember {
    /// The member's prefix, or the text that is not one.
    pub net: Result<IpNet, String>,
    /// It carries cf-allow's comment (`cf-allow`) and nothing else (no `nomatch`, timeout,
    /// counters or skb data).
    pub tagged: bool,
}

/// Dumps the set `name`. `Ok(None)` when the kernel has no set of that name.
pub(crate) fn dump(name: &str) -> io::Result<Option<DumpedSet>> {
    let mut set = DumpedSet::default();
    let mut found = false;
    let exists = query(&request(Some(name), None), |bytes| {
        found |= read_message(bytes, name, &mut set)?;
        Ok(())
    })?;
    Ok((exists && found).then_some(set))
}

/// The header of every set (what `ipset list -t` prints), in the kernel's order.
pub(crate) fn headers() -> io::Result<Vec<DumpedHeader>> {
    let mut out: Vec<DumpedHeader> = Vec::new();
    query(&request(None, Some(FLAG_LIST_HEADER)), |bytes| {
        let mut header = DumpedHeader::default();
        for attr in attrs(bytes) {
            match attr? {
                (ATTR_SETNAME, value) => header.name = string(value).to_owned(),
                (ATTR_DATA, value) => read_counts(value, &mut header)?,
                _ => {}
            }
        }
        if header.name.is_empty() {
            return Err(invalid("a set without a name"));
        }
        // Headers only: one message per set.
        out.push(header);
        Ok(())
    })?;
    Ok(out)
}

/// One set's header: what cf-allow reads from `ipset list -t`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DumpedHeader {
    pub name: String,
    pub references: Option<usize>,
    pub entries: Option<usize>,
    pub maxelem: Option<usize>,
    pub comment: bool,
}

/// The counts and the comment flag of a set's header data.
fn read_counts(bytes: &[u8], header: &mut DumpedHeader) -> io::Result<()> {
    for attr in attrs(bytes) {
        let (kind, value) = attr?;
        let number = || be_u32(value).map(|n| Some(n as usize));
        match kind {
            ATTR_REFERENCES => header.references = number()?,
            ATTR_ELEMENTS => header.entries = number()?,
            ATTR_MAXELEM => header.maxelem = number()?,
            ATTR_CADT_FLAGS => header.comment = be_u32(value)? & FLAG_WITH_COMMENT != 0,
            _ => {}
        }
    }
    Ok(())
}

/// Sends `request` and feeds each answer message's attributes (after its `nfgenmsg`) to
/// `each` until the dump ends. `Ok(false)` when the kernel says there is no such set.
fn query(request: &[u8], mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<bool> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    socket.send(request)?;
    let portid = socket.portid();
    let mut buffer = vec![0u8; RECV_BUFFER_BYTES];
    loop {
        let len = socket.recv_raw(&mut buffer)?;
        if len == 0 || len >= buffer.len() {
            return Err(invalid(
                "an empty datagram, or one that filled the receive buffer",
            ));
        }
        for message in messages(&buffer[..len])? {
            let (kind, payload) = (message.kind, message.payload);
            if message.seq != SEQ || (message.pid != 0 && message.pid != portid) {
                continue;
            }
            match kind {
                // Both carry a status: 0, or a negative errno (a dump that failed midway
                // ends with it in its NLMSG_DONE).
                NLMSG_DONE | NLMSG_ERROR => {
                    let code = payload
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .ok_or_else(|| invalid("a short status message"))?;
                    return match -code {
                        0 => Ok(true),
                        // ENOENT: no set of that name.
                        2 => Ok(false),
                        errno if errno < 4096 => Err(io::Error::from_raw_os_error(errno)),
                        // ipset's own codes (IPSET_ERR_PROTOCOL = 4097, …).
                        other => Err(invalid(&format!("ipset error {other}"))),
                    };
                }
                NLMSG_NOOP => {}
                _ if kind == (SUBSYS_IPSET << 8) | CMD_LIST
                    || kind == (SUBSYS_IPSET << 8) | CMD_SAVE =>
                {
                    // nfgenmsg: family, version, resource id.
                    each(payload.get(4..).ok_or_else(|| invalid("a short message"))?)?;
                }
                _ => {}
            }
        }
    }
}

/// A dump request: `nlmsghdr`, `nfgenmsg`, the protocol, and the set's name (one set; `None`:
/// every set) and the command flags (`IPSET_FLAG_LIST_HEADER`: headers only), when given.
fn request(name: Option<&str>, flags: Option<u32>) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out.extend([AF_INET, 0, 0, 0]);
    put_attr(&mut out, ATTR_PROTOCOL, &[PROTOCOL]);
    if let Some(name) = name {
        let mut text = name.as_bytes().to_vec();
        text.push(0);
        put_attr(&mut out, ATTR_SETNAME, &text);
    }
    if let Some(flags) = flags {
        put_attr(
            &mut out,
            ATTR_FLAGS | NLA_F_NET_BYTEORDER,
            &flags.to_be_bytes(),
        );
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&((SUBSYS_IPSET << 8) | CMD_SAVE).to_ne_bytes());
    out[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out[8..12].copy_from_slice(&SEQ.to_ne_bytes());
    out
}

fn put_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend(((4 + value.len()) as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// One netlink message of a datagram.
struct Message<'a> {
    kind: u16,
    seq: u32,
    pid: u32,
    payload: &'a [u8],
}

/// The messages of one datagram.
fn messages(mut bytes: &[u8]) -> io::Result<Vec<Message<'_>>> {
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len < 16 || len > bytes.len() {
            return Err(invalid("a message runs past its datagram"));
        }
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let seq = u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let pid = u32::from_ne_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        out.push(Message {
            kind,
            seq,
            pid,
            payload: &bytes[16..len],
        });
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(out)
}

/// The attributes in `bytes`: type (flag bits cleared) and value.
fn attrs(mut bytes: &[u8]) -> impl Iterator<Item = io::Result<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            bytes = &[];
            return Some(Err(invalid("an attribute runs past its message")));
        }
        let value = &bytes[4..len];
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some(Ok((kind, value)))
    })
}

/// Reads one message of the dump into `set`. True when it was about the set `name`.
fn read_message(bytes: &[u8], name: &str, set: &mut DumpedSet) -> io::Result<bool> {
    let mut ours = false;
    for attr in attrs(bytes) {
        let (kind, value) = attr?;
        match kind {
            ATTR_SETNAME => ours = string(value) == name,
            ATTR_TYPENAME if ours => set.kind = string(value).to_owned(),
            ATTR_FAMILY if ours => {
                set.family = match value.first() {
                    Some(&NFPROTO_IPV4) => "inet".to_owned(),
                    Some(&NFPROTO_IPV6) => "inet6".to_owned(),
                    Some(other) => other.to_string(),
                    None => return Err(invalid("an empty family")),
                }
            }
            ATTR_DATA if ours => read_header(value, set)?,
            ATTR_ADT if ours => {
                for member in attrs(value) {
                    let (kind, value) = member?;
                    if kind == ATTR_DATA {
                        set.members.push(read_member(value)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ours)
}

/// The set's header: which extensions it has.
fn read_header(bytes: &[u8], set: &mut DumpedSet) -> io::Result<()> {
    for attr in attrs(bytes) {
        match attr? {
            (ATTR_TIMEOUT, _) => set.timeout = true,
            (ATTR_CADT_FLAGS, value) => set.comment = be_u32(value)? & FLAG_WITH_COMMENT != 0,
            _ => {}
        }
    }
    Ok(())
}

/// One member: its address and prefix length, comment, and whether it has anything else.
fn read_member(bytes: &[u8]) -> io::Result<DumpedMember> {
    let mut addr = None;
    let mut cidr = None;
    let mut comment = false;
    let mut extra = false;
    for attr in attrs(bytes) {
        match attr? {
            (ATTR_IP, value) => {
                for inner in attrs(value) {
                    addr = match inner? {
                        (ATTR_IPADDR_IPV4, v) => <[u8; 4]>::try_from(v)
                            .ok()
                            .map(|b| std::net::IpAddr::V4(Ipv4Addr::from(b))),
                        (ATTR_IPADDR_IPV6, v) => <[u8; 16]>::try_from(v)
                            .ok()
                            .map(|b| std::net::IpAddr::V6(Ipv6Addr::from(b))),
                        _ => None,
                    };
                }
            }
            (ATTR_CIDR, value) => cidr = value.first().copied(),
            (ATTR_COMMENT, value) => comment = string(value) == crate::ipset::TAG,
            (ATTR_CADT_FLAGS, value) => extra |= be_u32(value)? & FLAG_NOMATCH != 0,
            (ATTR_LINENO, _) => {}
            _ => extra = true,
        }
    }
    let net = match (addr, cidr) {
        (Some(addr), Some(len)) => IpNet::new(addr, len).map_err(|_| format!("{addr}/{len}")),
        // A member without a prefix length is a host.
        (Some(addr), None) => Ok(IpNet::from(addr)),
        (None, _) => Err("a member without an address".to_owned()),
    };
    Ok(DumpedMember {
        net,
        tagged: comment && !extra,
    })
}

/// A NUL-terminated string attribute, without its NUL (and anything after it).
fn string(value: &[u8]) -> &str {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    std::str::from_utf8(&value[..end]).unwrap_or("")
}

fn be_u32(value: &[u8]) -> io::Result<u32> {
    <[u8; 4]>::try_from(value.get(..4).unwrap_or_default())
        .map(u32::from_be_bytes)
        .map_err(|_| invalid("a short number"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("ipset dump: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_what_ipset_save_sends() {
        let bytes = request(Some("cf-allow-v4"), None);
        // 16 header + 4 nfgenmsg + 8 protocol + 4 + 12 ("cf-allow-v4\0") = 44.
        assert_eq!(bytes.len(), 44);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 44);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), SEQ);
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 0x608);
        assert_eq!(u16::from_ne_bytes([bytes[6], bytes[7]]), 0x301);
        assert_eq!(&bytes[16..20], &[2, 0, 0, 0]);
        let found: Vec<(u16, Vec<u8>)> = attrs(&bytes[20..])
            .map(|a| a.map(|(k, v)| (k, v.to_vec())))
            .collect::<io::Result<_>>()
            .expect("attributes");
        assert_eq!(found, vec![(1, vec![6]), (2, b"cf-allow-v4\0".to_vec())]);
    }

    #[test]
    fn damaged_bytes_are_errors_not_members() {
        // An attribute longer than what is left.
        assert!(attrs(&[9, 0, 1, 0, 0]).any(|a| a.is_err()));
        // A message longer than its datagram.
        let mut bytes = vec![0u8; 20];
        bytes[0..4].copy_from_slice(&64u32.to_ne_bytes());
        assert!(messages(&bytes).is_err());
        // A member with an address of the wrong length has no prefix.
        let mut ip = Vec::new();
        put_attr(&mut ip, ATTR_IPADDR_IPV4, &[192, 0, 2]);
        let mut member = Vec::new();
        put_attr(&mut member, ATTR_IP, &ip);
        put_attr(&mut member, ATTR_CIDR, &[24]);
        assert!(read_member(&member).expect("parses").net.is_err());
    }
}
