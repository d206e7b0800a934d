//! A list of changes sent as one batch (one transaction), and every answer checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::raw::{c_char, c_void};

use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Batch, MsgType, NlMsg};

use super::objects::{OwnedChain, OwnedRule, OwnedSet, OwnedTable};
use super::socket::{error_code, messages_in, Netlink};
use crate::error::Error;
use crate::intervals::{Element, Key};
use crate::model::{Change, Expr, KeyKind, Position, TAG};

/// Elements per NEWSETELEM/DELSETELEM message (keeps each message far below the maximum).
const ELEMENTS_PER_MESSAGE: usize = 256;

impl Netlink {
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
