//! libnftnl's table, chain, set and rule objects: built for a batch, parsed from a dump,
//! and the dumps that read them.

use std::ffi::{CStr, CString};
use std::io;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;

use nftnl::nftnl_sys::{self as sys, libc};

use super::socket::{dump_request, request, Netlink};
use crate::error::Error;
use crate::intervals::{Element, Key};
use crate::model::{ChainInfo, Expr, KeyKind, RuleInfo, SetInfo, TableInfo, TAG};

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

impl Netlink {
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
        pub(super) struct $name {
            pub(super) ptr: NonNull<$raw>,
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
    pub(super) fn new(family: u8, name: &str, comment: Option<&str>) -> Result<Self, Error> {
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
    pub(super) fn new(family: u8, table: &str, name: &str) -> Result<Self, Error> {
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
    pub(super) fn make_filter_base_chain(&self, hook: i32, tagged: bool) {
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
    pub(super) fn new(family: u8, table: &str, name: Option<&str>) -> Result<Self, Error> {
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
    pub(super) fn define(&self, key: KeyKind, flags: u32, id: u32, comment: Option<&str>) {
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

    pub(super) fn set_id(&self, id: u32) {
        // SAFETY: p is a valid set.
        unsafe { sys::nftnl_set_set_u32(self.ptr.as_ptr(), sys::NFTNL_SET_ID as u16, id) };
    }

    /// Adds elements (key, end flag, open-interval user data) to the set's element list.
    pub(super) fn add_elements(&self, elements: &[Element]) -> Result<(), Error> {
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
    pub(super) fn new(family: u8, table: &str, chain: &str) -> Result<Self, Error> {
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

    pub(super) fn set_handle(&self, handle: u64) {
        // SAFETY: p is a valid rule.
        unsafe {
            sys::nftnl_rule_set_u64(self.ptr.as_ptr(), sys::NFTNL_RULE_HANDLE as u16, handle)
        };
    }

    pub(super) fn set_comment(&self, comment: &str) {
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
    pub(super) fn add_expr(
        &self,
        expr: &Expr,
        anon_set: Option<(&CStr, u32)>,
    ) -> Result<(), Error> {
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
}
