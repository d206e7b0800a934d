//! Talking to nf_tables over netlink: dumps of tables, chains, sets, set elements and rules,
//! and change batches that commit whole or not at all.
//!
//! This is the only module with `unsafe` code. It uses `nftnl::Batch` for the batch framing,
//! libnftnl (through `nftnl-sys`) to build and parse the messages where nftnl's safe API
//! stops (set and element flags, user data, rule positions, dumps), and an `mnl` socket.
//! Everything it hands out is plain Rust data from [`crate::model`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Batch, MsgType, NlMsg};

use crate::error::Error;
use crate::intervals::{Element, Key};
use crate::model::{ChainInfo, Change, Expr, KeyKind, Position, RuleInfo, SetInfo, TableInfo, TAG};

/// Elements per NEWSETELEM/DELSETELEM message (keeps each message far below the maximum).
const ELEMENTS_PER_MESSAGE: usize = 256;
/// `NFTNL_UDATA_TABLE_COMMENT`.
const UDATA_TABLE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_CHAIN_COMMENT`.
const UDATA_CHAIN_COMMENT: u8 = 0;
/// `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_RULE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_KEYBYTEORDER`.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
/// `NFTNL_UDATA_SET_COMMENT`.
const UDATA_SET_COMMENT: u8 = 7;
/// `NFTNL_UDATA_SET_ELEM_FLAGS`.
const UDATA_SET_ELEM_FLAGS: u8 = 1;
/// `NFTNL_SET_ELEM_F_INTERVAL_OPEN`.
const ELEM_F_INTERVAL_OPEN: u32 = 1;
/// nft's `BYTEORDER_BIG_ENDIAN`.
const BYTEORDER_BIG_ENDIAN: u32 = 2;
/// Size of the receive buffer for one `recv` call.
const RECV_BUFFER_BYTES: usize = 1 << 17;
/// `SO_NETNS_COOKIE` (asm-generic/socket.h).
const SO_NETNS_COOKIE: i32 = 71;
/// How long to wait for an answer from the kernel.
const RECV_TIMEOUT_SECS: libc::time_t = 30;

/// An open netlink socket to nf_tables.
pub(crate) struct Netlink {
    socket: mnl::Socket,
    seq: u32,
    buffer: Vec<u32>,
}

impl Netlink {
    /// Opens a netfilter netlink socket.
    pub fn open() -> Result<Netlink, Error> {
        let socket = mnl::Socket::new(mnl::Bus::Netfilter).map_err(|e| match e.raw_os_error() {
            Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => {
                Error::Unsupported(format!("no nfnetlink: {e}"))
            }
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied,
            _ => Error::Socket(e.to_string()),
        })?;
        let netlink = Netlink {
            socket,
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(1),
            buffer: vec![0u32; RECV_BUFFER_BYTES / 4],
        };
        // Errors carry only the header of the failed message, not the whole message.
        netlink.set_int_option(libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        // The kernel answers at once; a missing answer must not hang a cron job forever.
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: a valid fd and a pointer to a timeval of the given size.
        unsafe {
            libc::setsockopt(
                netlink.fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast::<c_void>(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(netlink)
    }

    /// The ruleset generation id (`NFT_MSG_GETGEN`): a cheap query that also proves
    /// nf_tables answers (nfnetlink answers EINVAL for a subsystem it does not have, i.e.
    /// no nf_tables). Every commit of a non-empty batch, by anyone, changes the id.
    pub fn generation(&mut self) -> Result<u32, Error> {
        let seq = self.next_seq();
        let request = request(
            libc::NFT_MSG_GETGEN,
            libc::AF_UNSPEC as u8,
            libc::NLM_F_ACK,
            seq,
            |_| {},
        );
        let mut id = None;
        self.query(&request, seq, "the ruleset generation", |header| {
            let gen = OwnedGen::alloc().map_err(|_| parse_error("generation"))?;
            // SAFETY: header is a complete message from the kernel; gen is valid.
            if unsafe { sys::nftnl_gen_nlmsg_parse(header, gen.ptr.as_ptr()) } < 0 {
                return Err(parse_error("generation"));
            }
            // SAFETY: gen is a valid parsed generation object.
            id =
                Some(unsafe { sys::nftnl_gen_get_u32(gen.ptr.as_ptr(), sys::NFTNL_GEN_ID as u16) });
            Ok(())
        })
        .map_err(|e| match e {
            Error::Query { source, .. }
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EINVAL)
                        | Some(libc::EOPNOTSUPP)
                        | Some(libc::ENOENT)
                        | Some(libc::EPROTONOSUPPORT)
                ) =>
            {
                Error::Unsupported(source.to_string())
            }
            other => other,
        })?;
        id.ok_or_else(|| Error::Socket("the kernel sent no ruleset generation".to_owned()))
    }

    /// The network namespace's cookie (`SO_NETNS_COOKIE`, Linux 5.14+): unique for the
    /// namespace's lifetime and never reused until reboot. `None` on older kernels.
    pub fn netns_cookie(&self) -> Option<u64> {
        let mut cookie = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: a valid fd and a pointer to a u64 of the given size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&mut cookie as *mut u64).cast::<c_void>(),
                &mut len,
            )
        };
        (rc == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
    }

    /// Every table of every family.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>, Error> {
        let seq = self.next_seq();
        let request = dump_request(libc::NFT_MSG_GETTABLE, libc::AF_UNSPEC as u8, seq, |_| {});
        let mut tables = Vec::new();
        self.query(&request, seq, "the tables", |header| {
            let table = OwnedTable::parse(header)?;
            tables.push(table.info());
            Ok(())
        })?;
        Ok(tables)
    }

    /// Every chain of every family.
    pub fn chains(&mut self) -> Result<Vec<ChainInfo>, Error> {
        let seq = self.next_seq();
        let request = dump_request(libc::NFT_MSG_GETCHAIN, libc::AF_UNSPEC as u8, seq, |_| {});
        let mut chains = Vec::new();
        self.query(&request, seq, "the chains", |header| {
            let chain = OwnedChain::parse(header)?;
            chains.push(chain.info());
            Ok(())
        })?;
        Ok(chains)
    }

    /// The sets of one table (anonymous ones included).
    pub fn sets(&mut self, family: u8, table: &str) -> Result<Vec<SetInfo>, Error> {
        let seq = self.next_seq();
        let filter = OwnedSet::new(family, table, None)?;
        let request = dump_request(libc::NFT_MSG_GETSET, family, seq, |header| {
            // SAFETY: header points into the request buffer, filter is a valid set.
            unsafe { sys::nftnl_set_nlmsg_build_payload(header, filter.ptr.as_ptr()) }
        });
        let mut sets = Vec::new();
        let what = format!(
            "the sets of table {} {table}",
            crate::model::family_name(family)
        );
        self.query(&request, seq, &what, |header| {
            let set = OwnedSet::parse(header)?;
            sets.push(set.info());
            Ok(())
        })?;
        Ok(sets)
    }

    /// The elements of one set, as stored.
    pub fn elements(&mut self, family: u8, table: &str, set: &str) -> Result<Vec<Element>, Error> {
        let seq = self.next_seq();
        let filter = OwnedSet::new(family, table, Some(set))?;
        let request = dump_request(libc::NFT_MSG_GETSETELEM, family, seq, |header| {
            // SAFETY: header points into the request buffer, filter is a valid set.
            unsafe { sys::nftnl_set_elems_nlmsg_build_payload(header, filter.ptr.as_ptr()) }
        });
        let mut elements = Vec::new();
        let what = format!(
            "the elements of set {} {table} {set}",
            crate::model::family_name(family)
        );
        self.query(&request, seq, &what, |header| {
            let parsed = OwnedSet::parse_elements(header)?;
            elements.extend(parsed);
            Ok(())
        })?;
        Ok(elements)
    }

    /// The rules of one chain, in order.
    pub fn rules(&mut self, family: u8, table: &str, chain: &str) -> Result<Vec<RuleInfo>, Error> {
        let seq = self.next_seq();
        let filter = OwnedRule::new(family, table, chain)?;
        let request = dump_request(libc::NFT_MSG_GETRULE, family, seq, |header| {
            // SAFETY: header points into the request buffer, filter is a valid rule.
            unsafe { sys::nftnl_rule_nlmsg_build_payload(header, filter.ptr.as_ptr()) }
        });
        let mut rules = Vec::new();
        let what = format!(
            "the rules of chain {} {table} {chain}",
            crate::model::family_name(family)
        );
        self.query(&request, seq, &what, |header| {
            let rule = OwnedRule::parse(header)?;
            // A dump filtered by table and chain on old kernels may still return others.
            if rule.str_attr(sys::NFTNL_RULE_TABLE).as_deref() == Some(table)
                && rule.str_attr(sys::NFTNL_RULE_CHAIN).as_deref() == Some(chain)
            {
                rules.push(rule.info());
            }
            Ok(())
        })?;
        Ok(rules)
    }

    /// Sends `changes` as one batch and checks the kernel's answer to every message. The
    /// kernel applies the batch whole or not at all.
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        // Still one batch (one transaction), but built message by message: each message's
        // libnftnl objects are serialised into the batch and freed before the next one's are
        // made, so a 100k-element first apply never holds every element as an object and as
        // bytes at once. `messages[i]`: the change the batch's i-th message is from.
        let mut messages: Vec<&Change> = Vec::new();
        let mut set_id = 1u32;
        let mut batch = Batch::new();
        for change in changes {
            Message::build(change, &mut set_id, &mut |message| {
                batch.add(&message, MsgType::Add);
                messages.push(change);
            })?;
        }
        let batch = batch.finalize();
        let seqs = batch.sequence_numbers();
        // Sequence numbers: the begin and end messages get one when the kernel acks them.
        let framed = seqs.len() == messages.len() + 2;
        let first_message_seq = if framed { seqs.start + 1 } else { seqs.start };
        let describe = |seq: u32| -> String {
            seq.checked_sub(first_message_seq)
                .and_then(|i| messages.get(i as usize))
                .map(|change| change.to_string())
                .unwrap_or_else(|| "batch framing".to_owned())
        };
        let total: usize = batch.iter().map(|page| page.len()).sum();
        let mut bytes: Vec<u8> = Vec::with_capacity(total);
        for page in batch.iter() {
            bytes.extend_from_slice(page);
        }
        drop(batch);
        self.set_int_option(
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (bytes.len() * 2).max(1 << 20) as i32,
        );
        self.set_int_option(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20);
        tracing::debug!(
            messages = messages.len(),
            bytes = bytes.len(),
            "sending nftables batch"
        );
        let sent = self
            .socket
            .send(&bytes)
            .map_err(|e| self.send_error(e, "sending the batch"))?;
        if sent < bytes.len() {
            return Err(Error::Socket(format!(
                "sent {sent} of {} bytes of the batch",
                bytes.len()
            )));
        }
        // The kernel answers the whole batch before sendto returns; read every answer.
        let mut pending: BTreeSet<u32> = seqs.clone().collect();
        let mut errors: BTreeMap<u32, io::Error> = BTreeMap::new();
        while !pending.is_empty() {
            let wait = errors.is_empty();
            let Some(len) = self.recv(wait)? else { break };
            let bytes = self.bytes(len);
            for (header, offset) in messages_in(bytes) {
                // Skip anything that is not an answer to this batch (e.g. a late ack of an
                // earlier dump).
                if header.nlmsg_type != libc::NLMSG_ERROR as u16
                    || !seqs.contains(&header.nlmsg_seq)
                {
                    continue;
                }
                let Some(code) = error_code(bytes, offset) else {
                    continue;
                };
                pending.remove(&header.nlmsg_seq);
                if code != 0 {
                    errors.insert(header.nlmsg_seq, io::Error::from_raw_os_error(-code));
                }
            }
        }
        if let Some((seq, error)) = errors.into_iter().next() {
            if error.raw_os_error() == Some(libc::EPERM) {
                return Err(Error::PermissionDenied);
            }
            return Err(Error::Rejected {
                what: describe(seq),
                source: error,
            });
        }
        if !pending.is_empty() {
            return Err(Error::Socket(format!(
                "the kernel did not answer {} of the batch's messages",
                pending.len()
            )));
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn fd(&self) -> i32 {
        // SAFETY: the socket is open for the lifetime of self.
        unsafe { mnl::mnl_sys::mnl_socket_get_fd(self.socket.as_raw_socket()) }
    }

    fn set_int_option(&self, level: i32, name: i32, value: i32) {
        // SAFETY: a valid fd and a pointer to an int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd(),
                level,
                name,
                (&value as *const i32).cast::<c_void>(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(
                level,
                name,
                error = %io::Error::last_os_error(),
                "setsockopt on the netlink socket failed"
            );
        }
    }

    fn send_error(&self, error: io::Error, what: &str) -> Error {
        match error.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied,
            _ => Error::Socket(format!("{what}: {error}")),
        }
    }

    /// Receives one datagram; `None` when `wait` is false and nothing is queued.
    fn recv(&mut self, wait: bool) -> Result<Option<usize>, Error> {
        // MSG_TRUNC: recv returns the datagram's real length, so truncation is noticed.
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        let fd = self.fd();
        // SAFETY: the buffer is valid for its length in bytes.
        let n = unsafe {
            libc::recv(
                fd,
                self.buffer.as_mut_ptr().cast::<c_void>(),
                self.buffer.len() * 4,
                flags,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                if !wait {
                    return Ok(None);
                }
                return Err(Error::Socket(format!(
                    "no answer from the kernel within {RECV_TIMEOUT_SECS} seconds"
                )));
            }
            return Err(Error::Socket(format!("receiving from the kernel: {error}")));
        }
        let n = n as usize;
        if n > self.buffer.len() * 4 {
            return Err(Error::Socket(format!(
                "an answer from the kernel ({n} bytes) did not fit the receive buffer"
            )));
        }
        Ok(Some(n))
    }

    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: a u32 buffer viewed as bytes; len was returned by recv and is in bounds.
        unsafe { std::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), len) }
    }

    /// Sends a request and feeds every answer message to `each` until the kernel says done.
    fn query(
        &mut self,
        request: &[u8],
        seq: u32,
        what: &str,
        mut each: impl FnMut(&libc::nlmsghdr) -> Result<(), io::Error>,
    ) -> Result<(), Error> {
        self.socket
            .send(request)
            .map_err(|e| self.send_error(e, &format!("asking for {what}")))?;
        let portid = self.socket.portid();
        loop {
            let Some(len) = self.recv(true)? else {
                continue;
            };
            let bytes = self.bytes(len);
            for (header, offset) in messages_in(bytes) {
                if header.nlmsg_seq != seq || (header.nlmsg_pid != 0 && header.nlmsg_pid != portid)
                {
                    continue;
                }
                match header.nlmsg_type as i32 {
                    libc::NLMSG_DONE => return Ok(()),
                    libc::NLMSG_ERROR => {
                        let code = error_code(bytes, offset).unwrap_or(-libc::EPROTO);
                        if code == 0 {
                            return Ok(());
                        }
                        if code == -libc::EPERM {
                            return Err(Error::PermissionDenied);
                        }
                        return Err(Error::Query {
                            what: what.to_owned(),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                    libc::NLMSG_NOOP => {}
                    _ => {
                        // SAFETY: offset is a message start inside the u32-aligned buffer,
                        // and messages_in checked that the whole message is in bounds.
                        let header_ptr = unsafe {
                            &*(self.buffer.as_ptr().cast::<u8>().add(offset)
                                as *const libc::nlmsghdr)
                        };
                        each(header_ptr).map_err(|source| Error::Query {
                            what: what.to_owned(),
                            source,
                        })?;
                    }
                }
            }
        }
    }
}

/// The netlink messages in `bytes`: each header (copied) and its offset.
fn messages_in(bytes: &[u8]) -> Vec<(libc::nlmsghdr, usize)> {
    let header_len = std::mem::size_of::<libc::nlmsghdr>();
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset + header_len <= bytes.len() {
        // SAFETY: header_len bytes are in bounds; read_unaligned copies them.
        let header: libc::nlmsghdr =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(offset).cast()) };
        let len = header.nlmsg_len as usize;
        if len < header_len || offset + len > bytes.len() {
            break;
        }
        out.push((header, offset));
        offset += (len + 3) & !3;
    }
    out
}

/// The error code of the `NLMSG_ERROR` message at `offset` (0 for an acknowledgement).
fn error_code(bytes: &[u8], offset: usize) -> Option<i32> {
    let start = offset + std::mem::size_of::<libc::nlmsghdr>();
    let raw = bytes.get(start..start + 4)?;
    Some(i32::from_ne_bytes(raw.try_into().ok()?))
}

/// A dump request for `msg_type` in `family`, with a payload written by `payload`.
fn dump_request(
    msg_type: i32,
    family: u8,
    seq: u32,
    payload: impl FnOnce(*mut libc::nlmsghdr),
) -> Vec<u8> {
    request(
        msg_type,
        family,
        libc::NLM_F_DUMP | libc::NLM_F_ACK,
        seq,
        payload,
    )
}

/// A request for `msg_type` in `family` with `flags`, with a payload written by `payload`.
fn request(
    msg_type: i32,
    family: u8,
    flags: i32,
    seq: u32,
    payload: impl FnOnce(*mut libc::nlmsghdr),
) -> Vec<u8> {
    let mut request = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
    // SAFETY: the buffer is as large as the largest nftables message.
    let header = unsafe {
        sys::nftnl_nlmsg_build_hdr(
            request.as_mut_ptr().cast::<c_char>(),
            msg_type as u16,
            family as u16,
            flags as u16,
            seq,
        )
    };
    payload(header);
    // SAFETY: header points into `request`.
    let len = unsafe { (*header).nlmsg_len } as usize;
    request.truncate(len);
    request
}

fn cstring(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::Settings(format!("the name {s:?} contains a NUL byte")))
}

/// `type, len, value` user data holding one string (with its NUL, as nft writes it).
fn udata_string(kind: u8, value: &str) -> Vec<u8> {
    let mut out = vec![kind, (value.len() + 1) as u8];
    out.extend_from_slice(value.as_bytes());
    out.push(0);
    out
}

/// `type, len, value` user data holding one native-endian u32.
fn udata_u32(kind: u8, value: u32) -> Vec<u8> {
    let mut out = vec![kind, 4];
    out.extend_from_slice(&value.to_ne_bytes());
    out
}

/// The value of attribute `kind` in user data.
fn udata_find(data: &[u8], kind: u8) -> Option<&[u8]> {
    let mut i = 0;
    while i + 2 <= data.len() {
        let (t, len) = (data[i], data[i + 1] as usize);
        let value = data.get(i + 2..i + 2 + len)?;
        if t == kind {
            return Some(value);
        }
        i += 2 + len;
    }
    None
}

fn udata_comment(data: &[u8], kind: u8) -> Option<String> {
    let value = udata_find(data, kind)?;
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    Some(String::from_utf8_lossy(value).into_owned())
}

/// Copies a libnftnl string attribute.
///
/// # Safety
/// `ptr` is null or a NUL-terminated string.
unsafe fn owned_str(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: caller guarantees a NUL-terminated string.
        Some(
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Copies a libnftnl binary attribute.
///
/// # Safety
/// `ptr` is null or valid for `len` bytes.
unsafe fn owned_bytes(ptr: *const c_void, len: u32) -> Vec<u8> {
    if ptr.is_null() {
        Vec::new()
    } else {
        // SAFETY: caller guarantees validity for len bytes.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }.to_vec()
    }
}

fn parse_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cannot parse the {what} message"),
    )
}

macro_rules! owned_object {
    ($name:ident, $raw:ty, $alloc:path, $free:path) => {
        struct $name {
            ptr: NonNull<$raw>,
        }

        impl $name {
            fn alloc() -> Result<Self, Error> {
                // SAFETY: allocation has no preconditions; null is checked.
                NonNull::new(unsafe { $alloc() })
                    .map(|ptr| $name { ptr })
                    .ok_or_else(|| Error::Socket("libnftnl: out of memory".to_owned()))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: ptr came from the matching alloc and is freed once.
                unsafe { $free(self.ptr.as_ptr()) }
            }
        }
    };
}

owned_object!(
    OwnedTable,
    sys::nftnl_table,
    sys::nftnl_table_alloc,
    sys::nftnl_table_free
);
owned_object!(
    OwnedChain,
    sys::nftnl_chain,
    sys::nftnl_chain_alloc,
    sys::nftnl_chain_free
);
owned_object!(
    OwnedSet,
    sys::nftnl_set,
    sys::nftnl_set_alloc,
    sys::nftnl_set_free
);
owned_object!(
    OwnedGen,
    sys::nftnl_gen,
    sys::nftnl_gen_alloc,
    sys::nftnl_gen_free
);
owned_object!(
    OwnedRule,
    sys::nftnl_rule,
    sys::nftnl_rule_alloc,
    sys::nftnl_rule_free
);

impl OwnedTable {
    fn new(family: u8, name: &str, comment: Option<&str>) -> Result<Self, Error> {
        let table = Self::alloc()?;
        let name = cstring(name)?;
        let p = table.ptr.as_ptr();
        // SAFETY: p is a valid table; libnftnl copies strings and data.
        unsafe {
            sys::nftnl_table_set_u32(p, sys::NFTNL_TABLE_FAMILY as u16, family as u32);
            sys::nftnl_table_set_str(p, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
            if let Some(comment) = comment {
                let data = udata_string(UDATA_TABLE_COMMENT, comment);
                sys::nftnl_table_set_data(
                    p,
                    sys::NFTNL_TABLE_USERDATA as u16,
                    data.as_ptr().cast(),
                    data.len() as u32,
                );
            }
        }
        Ok(table)
    }

    fn parse(header: &libc::nlmsghdr) -> Result<Self, io::Error> {
        let table = Self::alloc().map_err(|_| parse_error("table"))?;
        // SAFETY: header is a complete message from the kernel; table is valid.
        if unsafe { sys::nftnl_table_nlmsg_parse(header, table.ptr.as_ptr()) } < 0 {
            return Err(parse_error("table"));
        }
        Ok(table)
    }

    fn info(&self) -> TableInfo {
        let p = self.ptr.as_ptr();
        // SAFETY: p is a valid parsed table; getters return owned-by-table data we copy.
        unsafe {
            let mut len = 0u32;
            let udata = if sys::nftnl_table_is_set(p, sys::NFTNL_TABLE_USERDATA as u16) {
                let data = sys::nftnl_table_get_data(p, sys::NFTNL_TABLE_USERDATA as u16, &mut len);
                owned_bytes(data, len)
            } else {
                Vec::new()
            };
            TableInfo {
                family: sys::nftnl_table_get_u32(p, sys::NFTNL_TABLE_FAMILY as u16) as u8,
                name: owned_str(sys::nftnl_table_get_str(p, sys::NFTNL_TABLE_NAME as u16))
                    .unwrap_or_default(),
                comment: udata_comment(&udata, UDATA_TABLE_COMMENT),
            }
        }
    }
}

impl OwnedChain {
    fn new(family: u8, table: &str, name: &str) -> Result<Self, Error> {
        let chain = Self::alloc()?;
        let (table, name) = (cstring(table)?, cstring(name)?);
        let p = chain.ptr.as_ptr();
        // SAFETY: p is a valid chain; libnftnl copies strings.
        unsafe {
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_FAMILY as u16, family as u32);
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
        }
        Ok(chain)
    }

    /// A filter base chain on `hook` (`NF_INET_*`), priority 0 (`filter`), policy accept,
    /// with cf-allow's comment when `tagged`.
    fn make_filter_base_chain(&self, hook: i32, tagged: bool) {
        let p = self.ptr.as_ptr();
        // SAFETY: p is a valid chain; libnftnl copies strings and data.
        unsafe {
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16, hook as u32);
            sys::nftnl_chain_set_s32(p, sys::NFTNL_CHAIN_PRIO as u16, 0);
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TYPE as u16, c"filter".as_ptr());
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_POLICY as u16, libc::NF_ACCEPT as u32);
            if tagged {
                let data = udata_string(UDATA_CHAIN_COMMENT, TAG);
                sys::nftnl_chain_set_data(
                    p,
                    sys::NFTNL_CHAIN_USERDATA as u16,
                    data.as_ptr().cast(),
                    data.len() as u32,
                );
            }
        }
    }

    fn parse(header: &libc::nlmsghdr) -> Result<Self, io::Error> {
        let chain = Self::alloc().map_err(|_| parse_error("chain"))?;
        // SAFETY: header is a complete message from the kernel; chain is valid.
        if unsafe { sys::nftnl_chain_nlmsg_parse(header, chain.ptr.as_ptr()) } < 0 {
            return Err(parse_error("chain"));
        }
        Ok(chain)
    }

    fn info(&self) -> ChainInfo {
        let p = self.ptr.as_ptr();
        // SAFETY: p is a valid parsed chain.
        unsafe {
            let is_set = |attr: u32| sys::nftnl_chain_is_set(p, attr as u16);
            ChainInfo {
                family: sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_FAMILY as u16) as u8,
                table: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_TABLE as u16))
                    .unwrap_or_default(),
                name: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_NAME as u16))
                    .unwrap_or_default(),
                hook: is_set(sys::NFTNL_CHAIN_HOOKNUM)
                    .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16)),
                policy: is_set(sys::NFTNL_CHAIN_POLICY)
                    .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_POLICY as u16)),
                kind: if is_set(sys::NFTNL_CHAIN_TYPE) {
                    owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_TYPE as u16))
                } else {
                    None
                },
                comment: if is_set(sys::NFTNL_CHAIN_USERDATA) {
                    let mut len = 0u32;
                    let data =
                        sys::nftnl_chain_get_data(p, sys::NFTNL_CHAIN_USERDATA as u16, &mut len);
                    udata_comment(&owned_bytes(data, len), UDATA_CHAIN_COMMENT)
                } else {
                    None
                },
            }
        }
    }
}

impl OwnedSet {
    fn new(family: u8, table: &str, name: Option<&str>) -> Result<Self, Error> {
        let set = Self::alloc()?;
        let table = cstring(table)?;
        let p = set.ptr.as_ptr();
        // SAFETY: p is a valid set; libnftnl copies strings.
        unsafe {
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, family as u32);
            sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        }
        if let Some(name) = name {
            let name = cstring(name)?;
            // SAFETY: as above.
            unsafe { sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, name.as_ptr()) };
        }
        Ok(set)
    }

    /// Declares the set's key, flags and user data (for NEWSET).
    fn define(&self, key: KeyKind, flags: u32, id: u32, comment: Option<&str>) {
        let p = self.ptr.as_ptr();
        let mut udata = udata_u32(UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG_ENDIAN);
        if let Some(comment) = comment {
            udata.extend(udata_string(UDATA_SET_COMMENT, comment));
        }
        // SAFETY: p is a valid set; libnftnl copies the data.
        unsafe {
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, key.type_id());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, key.len());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, flags);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, id);
            sys::nftnl_set_set_data(
                p,
                sys::NFTNL_SET_USERDATA as u16,
                udata.as_ptr().cast(),
                udata.len() as u32,
            );
        }
    }

    fn set_id(&self, id: u32) {
        // SAFETY: p is a valid set.
        unsafe { sys::nftnl_set_set_u32(self.ptr.as_ptr(), sys::NFTNL_SET_ID as u16, id) };
    }

    /// Adds elements (key, end flag, open-interval user data) to the set's element list.
    fn add_elements(&self, elements: &[Element]) -> Result<(), Error> {
        for element in elements {
            // SAFETY: allocation has no preconditions.
            let raw = unsafe { sys::nftnl_set_elem_alloc() };
            let Some(elem) = NonNull::new(raw) else {
                return Err(Error::Socket("libnftnl: out of memory".to_owned()));
            };
            let e = elem.as_ptr();
            // SAFETY: e is a valid element; libnftnl copies the key and user data; the set
            // takes ownership of the element.
            unsafe {
                sys::nftnl_set_elem_set(
                    e,
                    sys::NFTNL_SET_ELEM_KEY as u16,
                    element.key.as_ptr().cast(),
                    element.key.len() as u32,
                );
                if element.end {
                    sys::nftnl_set_elem_set_u32(
                        e,
                        sys::NFTNL_SET_ELEM_FLAGS as u16,
                        libc::NFT_SET_ELEM_INTERVAL_END as u32,
                    );
                }
                if element.open {
                    let udata = udata_u32(UDATA_SET_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN);
                    sys::nftnl_set_elem_set(
                        e,
                        sys::NFTNL_SET_ELEM_USERDATA as u16,
                        udata.as_ptr().cast(),
                        udata.len() as u32,
                    );
                }
                sys::nftnl_set_elem_add(self.ptr.as_ptr(), e);
            }
        }
        Ok(())
    }

    fn parse(header: &libc::nlmsghdr) -> Result<Self, io::Error> {
        let set = Self::alloc().map_err(|_| parse_error("set"))?;
        // SAFETY: header is a complete message from the kernel; set is valid.
        if unsafe { sys::nftnl_set_nlmsg_parse(header, set.ptr.as_ptr()) } < 0 {
            return Err(parse_error("set"));
        }
        Ok(set)
    }

    fn parse_elements(header: &libc::nlmsghdr) -> Result<Vec<Element>, io::Error> {
        let set = Self::alloc().map_err(|_| parse_error("set element"))?;
        let p = set.ptr.as_ptr();
        // SAFETY: header is a complete message from the kernel; set is valid.
        if unsafe { sys::nftnl_set_elems_nlmsg_parse(header, p) } < 0 {
            return Err(parse_error("set element"));
        }
        let mut out = Vec::new();
        // SAFETY: the iterator walks the set's own element list and is destroyed below.
        unsafe {
            let iter = sys::nftnl_set_elems_iter_create(p);
            if iter.is_null() {
                return Err(parse_error("set element"));
            }
            let mut e = sys::nftnl_set_elems_iter_next(iter);
            while !e.is_null() {
                let mut len = 0u32;
                let key = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                let key = if key.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(key.cast::<u8>(), len as usize)
                };
                let Some(key) = Key::new(key) else {
                    sys::nftnl_set_elems_iter_destroy(iter);
                    return Err(parse_error("set element (a key longer than 16 bytes)"));
                };
                let flags = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
                    sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
                } else {
                    0
                };
                let udata = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_USERDATA as u16) {
                    let mut len = 0u32;
                    let data =
                        sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_USERDATA as u16, &mut len);
                    owned_bytes(data, len)
                } else {
                    Vec::new()
                };
                let open = udata_find(&udata, UDATA_SET_ELEM_FLAGS)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(|v| u32::from_ne_bytes(v) & ELEM_F_INTERVAL_OPEN != 0)
                    .unwrap_or(false);
                out.push(Element {
                    key,
                    end: flags & libc::NFT_SET_ELEM_INTERVAL_END as u32 != 0,
                    open,
                });
                e = sys::nftnl_set_elems_iter_next(iter);
            }
            sys::nftnl_set_elems_iter_destroy(iter);
        }
        Ok(out)
    }

    fn info(&self) -> SetInfo {
        let p = self.ptr.as_ptr();
        // SAFETY: p is a valid parsed set.
        unsafe {
            let get = |attr: u32| {
                if sys::nftnl_set_is_set(p, attr as u16) {
                    sys::nftnl_set_get_u32(p, attr as u16)
                } else {
                    0
                }
            };
            let udata = if sys::nftnl_set_is_set(p, sys::NFTNL_SET_USERDATA as u16) {
                let mut len = 0u32;
                let data = sys::nftnl_set_get_data(p, sys::NFTNL_SET_USERDATA as u16, &mut len);
                owned_bytes(data, len)
            } else {
                Vec::new()
            };
            SetInfo {
                name: owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_NAME as u16))
                    .unwrap_or_default(),
                flags: get(sys::NFTNL_SET_FLAGS),
                key_type: get(sys::NFTNL_SET_KEY_TYPE),
                comment: udata_comment(&udata, UDATA_SET_COMMENT),
            }
        }
    }
}

impl OwnedRule {
    fn new(family: u8, table: &str, chain: &str) -> Result<Self, Error> {
        let rule = Self::alloc()?;
        let (table, chain) = (cstring(table)?, cstring(chain)?);
        let p = rule.ptr.as_ptr();
        // SAFETY: p is a valid rule; libnftnl copies strings.
        unsafe {
            sys::nftnl_rule_set_u32(p, sys::NFTNL_RULE_FAMILY as u16, family as u32);
            sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
            sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
        }
        Ok(rule)
    }

    fn set_handle(&self, handle: u64) {
        // SAFETY: p is a valid rule.
        unsafe {
            sys::nftnl_rule_set_u64(self.ptr.as_ptr(), sys::NFTNL_RULE_HANDLE as u16, handle)
        };
    }

    fn set_comment(&self, comment: &str) {
        let data = udata_string(UDATA_RULE_COMMENT, comment);
        // SAFETY: p is a valid rule; libnftnl copies the data.
        unsafe {
            sys::nftnl_rule_set_data(
                self.ptr.as_ptr(),
                sys::NFTNL_RULE_USERDATA as u16,
                data.as_ptr().cast(),
                data.len() as u32,
            );
        }
    }

    /// Appends one expression; `anon_set` names the anonymous set of a `LookupPorts`.
    fn add_expr(&self, expr: &Expr, anon_set: Option<(&CStr, u32)>) -> Result<(), Error> {
        let name: &CStr = match expr {
            Expr::Meta(_) => c"meta",
            Expr::CmpEq(_) => c"cmp",
            Expr::Payload { .. } => c"payload",
            Expr::Lookup(_) | Expr::LookupPorts(_) => c"lookup",
            Expr::Verdict(_) => c"immediate",
            Expr::Ct { .. } => c"ct",
            Expr::BitwiseAnd(_) => c"bitwise",
            Expr::CmpNeq(_) => c"cmp",
            Expr::Other(what) => {
                return Err(Error::Settings(format!("cannot build expression {what}")))
            }
        };
        // SAFETY: allocation has no preconditions.
        let raw = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
        let Some(e) = NonNull::new(raw) else {
            return Err(Error::Socket("libnftnl: out of memory".to_owned()));
        };
        let e = e.as_ptr();
        let reg1 = libc::NFT_REG_1 as u32;
        // SAFETY: e is a valid expression of the named type; libnftnl copies data; the rule
        // takes ownership of the expression.
        unsafe {
            match expr {
                Expr::Meta(key) => {
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_KEY as u16, *key);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_DREG as u16, reg1);
                }
                Expr::CmpEq(data) | Expr::CmpNeq(data) => {
                    let op = match expr {
                        Expr::CmpNeq(_) => libc::NFT_CMP_NEQ,
                        _ => libc::NFT_CMP_EQ,
                    };
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CMP_SREG as u16, reg1);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CMP_OP as u16, op as u32);
                    sys::nftnl_expr_set(
                        e,
                        sys::NFTNL_EXPR_CMP_DATA as u16,
                        data.as_ptr().cast(),
                        data.len() as u32,
                    );
                }
                Expr::Payload { base, offset, len } => {
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, reg1);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, *base);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, *offset);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, *len);
                }
                Expr::Lookup(set) => {
                    let set = cstring(set)?;
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_SREG as u16, reg1);
                    sys::nftnl_expr_set_str(e, sys::NFTNL_EXPR_LOOKUP_SET as u16, set.as_ptr());
                }
                Expr::LookupPorts(_) => {
                    let Some((set, id)) = anon_set else {
                        sys::nftnl_expr_free(e);
                        return Err(Error::Settings("port lookup without its set".to_owned()));
                    };
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_SREG as u16, reg1);
                    sys::nftnl_expr_set_str(e, sys::NFTNL_EXPR_LOOKUP_SET as u16, set.as_ptr());
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_SET_ID as u16, id);
                }
                Expr::Verdict(code) => {
                    sys::nftnl_expr_set_u32(
                        e,
                        sys::NFTNL_EXPR_IMM_DREG as u16,
                        libc::NFT_REG_VERDICT as u32,
                    );
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_IMM_VERDICT as u16, *code as u32);
                }
                Expr::Ct { key, original } => {
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CT_KEY as u16, *key);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CT_DREG as u16, reg1);
                    if *original {
                        // IP_CT_DIR_ORIGINAL
                        sys::nftnl_expr_set_u8(e, sys::NFTNL_EXPR_CT_DIR as u16, 0);
                    }
                }
                Expr::BitwiseAnd(mask) => {
                    let xor = vec![0u8; mask.len()];
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_BITWISE_SREG as u16, reg1);
                    sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_BITWISE_DREG as u16, reg1);
                    sys::nftnl_expr_set_u32(
                        e,
                        sys::NFTNL_EXPR_BITWISE_LEN as u16,
                        mask.len() as u32,
                    );
                    sys::nftnl_expr_set(
                        e,
                        sys::NFTNL_EXPR_BITWISE_MASK as u16,
                        mask.as_ptr().cast(),
                        mask.len() as u32,
                    );
                    sys::nftnl_expr_set(
                        e,
                        sys::NFTNL_EXPR_BITWISE_XOR as u16,
                        xor.as_ptr().cast(),
                        xor.len() as u32,
                    );
                }
                Expr::Other(_) => {}
            }
            sys::nftnl_rule_add_expr(self.ptr.as_ptr(), e);
        }
        Ok(())
    }

    fn parse(header: &libc::nlmsghdr) -> Result<Self, io::Error> {
        let rule = Self::alloc().map_err(|_| parse_error("rule"))?;
        // SAFETY: header is a complete message from the kernel; rule is valid.
        if unsafe { sys::nftnl_rule_nlmsg_parse(header, rule.ptr.as_ptr()) } < 0 {
            return Err(parse_error("rule"));
        }
        Ok(rule)
    }

    fn str_attr(&self, attr: u32) -> Option<String> {
        // SAFETY: p is a valid rule; the string is copied.
        unsafe {
            if sys::nftnl_rule_is_set(self.ptr.as_ptr(), attr as u16) {
                owned_str(sys::nftnl_rule_get_str(self.ptr.as_ptr(), attr as u16))
            } else {
                None
            }
        }
    }

    fn info(&self) -> RuleInfo {
        let p = self.ptr.as_ptr();
        // SAFETY: p is a valid parsed rule; the expression iterator is destroyed below.
        unsafe {
            let udata = if sys::nftnl_rule_is_set(p, sys::NFTNL_RULE_USERDATA as u16) {
                let mut len = 0u32;
                let data = sys::nftnl_rule_get_data(p, sys::NFTNL_RULE_USERDATA as u16, &mut len);
                owned_bytes(data, len)
            } else {
                Vec::new()
            };
            let mut exprs = Vec::new();
            let iter = sys::nftnl_expr_iter_create(p);
            if !iter.is_null() {
                let mut e = sys::nftnl_expr_iter_next(iter);
                while !e.is_null() {
                    exprs.push(read_expr(e));
                    e = sys::nftnl_expr_iter_next(iter);
                }
                sys::nftnl_expr_iter_destroy(iter);
            }
            RuleInfo {
                handle: sys::nftnl_rule_get_u64(p, sys::NFTNL_RULE_HANDLE as u16),
                comment: udata_comment(&udata, UDATA_RULE_COMMENT),
                exprs,
            }
        }
    }
}

/// Reads one expression of a dumped rule.
///
/// # Safety
/// `e` is a valid expression.
unsafe fn read_expr(e: *mut sys::nftnl_expr) -> Expr {
    // SAFETY: e is valid (caller); strings and data are copied.
    unsafe {
        let is_set = |attr: u32| sys::nftnl_expr_is_set(e, attr as u16);
        let u32_of = |attr: u32| sys::nftnl_expr_get_u32(e, attr as u16);
        let name =
            owned_str(sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16)).unwrap_or_default();
        match name.as_str() {
            "meta" if is_set(sys::NFTNL_EXPR_META_DREG) => {
                Expr::Meta(u32_of(sys::NFTNL_EXPR_META_KEY))
            }
            "cmp" if u32_of(sys::NFTNL_EXPR_CMP_OP) == libc::NFT_CMP_EQ as u32 => {
                let mut len = 0u32;
                let data = sys::nftnl_expr_get(e, sys::NFTNL_EXPR_CMP_DATA as u16, &mut len);
                Expr::CmpEq(owned_bytes(data, len))
            }
            "cmp" if u32_of(sys::NFTNL_EXPR_CMP_OP) == libc::NFT_CMP_NEQ as u32 => {
                let mut len = 0u32;
                let data = sys::nftnl_expr_get(e, sys::NFTNL_EXPR_CMP_DATA as u16, &mut len);
                Expr::CmpNeq(owned_bytes(data, len))
            }
            "ct" if is_set(sys::NFTNL_EXPR_CT_DREG) => Expr::Ct {
                key: u32_of(sys::NFTNL_EXPR_CT_KEY),
                original: is_set(sys::NFTNL_EXPR_CT_DIR)
                    && sys::nftnl_expr_get_u8(e, sys::NFTNL_EXPR_CT_DIR as u16) == 0,
            },
            "bitwise"
                if (!is_set(sys::NFTNL_EXPR_BITWISE_OP)
                    || u32_of(sys::NFTNL_EXPR_BITWISE_OP) == 0)
                    && u32_of(sys::NFTNL_EXPR_BITWISE_SREG)
                        == u32_of(sys::NFTNL_EXPR_BITWISE_DREG) =>
            {
                let mut len = 0u32;
                let xor = sys::nftnl_expr_get(e, sys::NFTNL_EXPR_BITWISE_XOR as u16, &mut len);
                let xor = owned_bytes(xor, len);
                let mask = sys::nftnl_expr_get(e, sys::NFTNL_EXPR_BITWISE_MASK as u16, &mut len);
                let mask = owned_bytes(mask, len);
                if xor.iter().all(|b| *b == 0) {
                    Expr::BitwiseAnd(mask)
                } else {
                    Expr::Other(name)
                }
            }
            "payload" if is_set(sys::NFTNL_EXPR_PAYLOAD_DREG) => Expr::Payload {
                base: u32_of(sys::NFTNL_EXPR_PAYLOAD_BASE),
                offset: u32_of(sys::NFTNL_EXPR_PAYLOAD_OFFSET),
                len: u32_of(sys::NFTNL_EXPR_PAYLOAD_LEN),
            },
            "lookup"
                if !is_set(sys::NFTNL_EXPR_LOOKUP_DREG)
                    && (!is_set(sys::NFTNL_EXPR_LOOKUP_FLAGS)
                        || u32_of(sys::NFTNL_EXPR_LOOKUP_FLAGS) == 0) =>
            {
                Expr::Lookup(
                    owned_str(sys::nftnl_expr_get_str(
                        e,
                        sys::NFTNL_EXPR_LOOKUP_SET as u16,
                    ))
                    .unwrap_or_default(),
                )
            }
            "immediate"
                if u32_of(sys::NFTNL_EXPR_IMM_DREG) == libc::NFT_REG_VERDICT as u32
                    && !is_set(sys::NFTNL_EXPR_IMM_CHAIN) =>
            {
                Expr::Verdict(u32_of(sys::NFTNL_EXPR_IMM_VERDICT) as i32)
            }
            _ => Expr::Other(name),
        }
    }
}

/// One message of a batch, owning its libnftnl object.
struct Message {
    object: Object,
    msg_type: i32,
    family: u8,
    flags: i32,
}

enum Object {
    Table(OwnedTable),
    Chain(OwnedChain),
    Set(OwnedSet),
    Elements(OwnedSet),
    Rule(OwnedRule),
}

impl Message {
    fn new(object: Object, msg_type: i32, family: u8, flags: i32) -> Message {
        Message {
            object,
            msg_type,
            family,
            flags: flags | libc::NLM_F_ACK,
        }
    }

    /// The message for one chunk of an element change's elements (`None` for any other
    /// change).
    fn element_chunk(change: &Change, chunk: &[Element]) -> Result<Option<Message>, Error> {
        let (family, table, set, msg_type, flags) = match change {
            Change::AddElements {
                family, table, set, ..
            } => (
                family,
                table,
                set,
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_EXCL,
            ),
            Change::DelElements {
                family, table, set, ..
            } => (family, table, set, libc::NFT_MSG_DELSETELEM, 0),
            _ => return Ok(None),
        };
        let holder = OwnedSet::new(*family, table, Some(set))?;
        holder.add_elements(chunk)?;
        Ok(Some(Message::new(
            Object::Elements(holder),
            msg_type,
            *family,
            flags,
        )))
    }

    /// The messages that make one change (a rule with a port list also creates its
    /// anonymous set; long element lists are split), each handed to `emit` as soon as it is
    /// made: an element list is emitted chunk by chunk, so its libnftnl objects are freed
    /// before the next chunk's are built.
    fn build(
        change: &Change,
        anon_id: &mut u32,
        emit: &mut dyn FnMut(Message),
    ) -> Result<(), Error> {
        let create = libc::NLM_F_CREATE;
        let out = match change {
            Change::AddTable { family, name } => vec![Message::new(
                Object::Table(OwnedTable::new(*family, name, Some(TAG))?),
                libc::NFT_MSG_NEWTABLE,
                *family,
                create,
            )],
            Change::DelTable { family, name } => vec![Message::new(
                Object::Table(OwnedTable::new(*family, name, None)?),
                libc::NFT_MSG_DELTABLE,
                *family,
                0,
            )],
            Change::AddInputChain {
                family,
                table,
                name,
            } => {
                let chain = OwnedChain::new(*family, table, name)?;
                chain.make_filter_base_chain(libc::NF_INET_LOCAL_IN, false);
                vec![Message::new(
                    Object::Chain(chain),
                    libc::NFT_MSG_NEWCHAIN,
                    *family,
                    create,
                )]
            }
            Change::AddForwardChain {
                family,
                table,
                name,
                tagged,
            } => {
                let chain = OwnedChain::new(*family, table, name)?;
                chain.make_filter_base_chain(libc::NF_INET_FORWARD, *tagged);
                vec![Message::new(
                    Object::Chain(chain),
                    libc::NFT_MSG_NEWCHAIN,
                    *family,
                    create,
                )]
            }
            Change::DelChain {
                family,
                table,
                name,
            } => vec![Message::new(
                Object::Chain(OwnedChain::new(*family, table, name)?),
                libc::NFT_MSG_DELCHAIN,
                *family,
                0,
            )],
            Change::AddSet {
                family,
                table,
                name,
                key,
            } => {
                // The kernel wants a transaction-local id for every new set.
                let id = *anon_id;
                *anon_id += 1;
                let set = OwnedSet::new(*family, table, Some(name))?;
                set.define(*key, libc::NFT_SET_INTERVAL as u32, id, Some(TAG));
                vec![Message::new(
                    Object::Set(set),
                    libc::NFT_MSG_NEWSET,
                    *family,
                    create | libc::NLM_F_EXCL,
                )]
            }
            Change::DelSet {
                family,
                table,
                name,
            } => vec![Message::new(
                Object::Set(OwnedSet::new(*family, table, Some(name))?),
                libc::NFT_MSG_DELSET,
                *family,
                0,
            )],
            Change::AddElements { elements, .. } | Change::DelElements { elements, .. } => {
                for chunk in elements.chunks(ELEMENTS_PER_MESSAGE) {
                    if let Some(message) = Message::element_chunk(change, chunk)? {
                        emit(message);
                    }
                }
                Vec::new()
            }
            Change::AddRule {
                family,
                table,
                chain,
                exprs,
                position,
            } => {
                let mut out = Vec::new();
                let rule = OwnedRule::new(*family, table, chain)?;
                let anon_name = c"__set%d";
                for expr in exprs {
                    if let Expr::LookupPorts(ports) = expr {
                        let id = *anon_id;
                        *anon_id += 1;
                        let set = OwnedSet::new(*family, table, Some("__set%d"))?;
                        set.define(
                            KeyKind::Port,
                            (libc::NFT_SET_ANONYMOUS | libc::NFT_SET_CONSTANT) as u32,
                            id,
                            None,
                        );
                        out.push(Message::new(
                            Object::Set(set),
                            libc::NFT_MSG_NEWSET,
                            *family,
                            create,
                        ));
                        let holder = OwnedSet::new(*family, table, Some("__set%d"))?;
                        holder.set_id(id);
                        let elements: Vec<Element> = ports
                            .iter()
                            .map(|p| Element {
                                key: Key::port(*p),
                                end: false,
                                open: false,
                            })
                            .collect();
                        holder.add_elements(&elements)?;
                        out.push(Message::new(
                            Object::Elements(holder),
                            libc::NFT_MSG_NEWSETELEM,
                            *family,
                            create | libc::NLM_F_EXCL,
                        ));
                        rule.add_expr(expr, Some((anon_name, id)))?;
                    } else {
                        rule.add_expr(expr, None)?;
                    }
                }
                rule.set_comment(TAG);
                let flags = match position {
                    Position::Top => create,
                    Position::Bottom => create | libc::NLM_F_APPEND,
                };
                out.push(Message::new(
                    Object::Rule(rule),
                    libc::NFT_MSG_NEWRULE,
                    *family,
                    flags,
                ));
                out
            }
            Change::DelRule {
                family,
                table,
                chain,
                handle,
            } => {
                let rule = OwnedRule::new(*family, table, chain)?;
                rule.set_handle(*handle);
                vec![Message::new(
                    Object::Rule(rule),
                    libc::NFT_MSG_DELRULE,
                    *family,
                    0,
                )]
            }
        };
        out.into_iter().for_each(emit);
        Ok(())
    }
}

// SAFETY: every message is far smaller than nft_nlmsg_maxsize(): names are bounded by the
// kernel's 256-byte limit and element lists are split into ELEMENTS_PER_MESSAGE chunks.
unsafe impl NlMsg for Message {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: buf has room for the largest message (NlMsg contract); objects are valid.
        unsafe {
            let header = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                self.msg_type as u16,
                self.family as u16,
                self.flags as u16,
                seq,
            );
            match &self.object {
                Object::Table(t) => sys::nftnl_table_nlmsg_build_payload(header, t.ptr.as_ptr()),
                Object::Chain(c) => sys::nftnl_chain_nlmsg_build_payload(header, c.ptr.as_ptr()),
                Object::Set(s) => sys::nftnl_set_nlmsg_build_payload(header, s.ptr.as_ptr()),
                Object::Elements(s) => {
                    sys::nftnl_set_elems_nlmsg_build_payload(header, s.ptr.as_ptr())
                }
                Object::Rule(r) => sys::nftnl_rule_nlmsg_build_payload(header, r.ptr.as_ptr()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_like_nft_writes_it() {
        let data = udata_string(UDATA_RULE_COMMENT, "cf-allow");
        assert_eq!(data, b"\x00\x09cf-allow\x00");
        assert_eq!(
            udata_comment(&data, UDATA_RULE_COMMENT).as_deref(),
            Some("cf-allow")
        );
        let mut set = udata_u32(UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG_ENDIAN);
        set.extend(udata_string(UDATA_SET_COMMENT, "x"));
        assert_eq!(udata_comment(&set, UDATA_SET_COMMENT).as_deref(), Some("x"));
        assert_eq!(udata_find(&set, 3), None);
        assert_eq!(
            udata_find(b"\x00\x09short", 0),
            None,
            "truncated data is no match"
        );
        // nft's element flag for an interval that runs to the top of the space.
        assert_eq!(
            udata_u32(UDATA_SET_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN),
            b"\x01\x04\x01\x00\x00\x00"
        );
    }

    #[test]
    fn message_walk_stops_at_truncated_data() {
        let mut bytes = vec![0u8; 40];
        bytes[0..4].copy_from_slice(&20u32.to_ne_bytes());
        bytes[20..24].copy_from_slice(&200u32.to_ne_bytes());
        let found = messages_in(&bytes);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, 0);
    }
}
