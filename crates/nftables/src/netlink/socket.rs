//! The netlink socket to nf_tables: opening it, requests, and reading the kernel's answers.

use std::io;
use std::os::raw::{c_char, c_void};

use nftnl::nftnl_sys::{self as sys, libc};

use crate::error::Error;

/// Size of the receive buffer for one `recv` call.
const RECV_BUFFER_BYTES: usize = 1 << 17;
/// `SO_NETNS_COOKIE` (asm-generic/socket.h).
const SO_NETNS_COOKIE: i32 = 71;
/// How long to wait for an answer from the kernel.
const RECV_TIMEOUT_SECS: libc::time_t = 30;

/// An open netlink socket to nf_tables.
pub(crate) struct Netlink {
    pub(super) socket: mnl::Socket,
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

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn fd(&self) -> i32 {
        // SAFETY: the socket is open for the lifetime of self.
        unsafe { mnl::mnl_sys::mnl_socket_get_fd(self.socket.as_raw_socket()) }
    }

    pub(super) fn set_int_option(&self, level: i32, name: i32, value: i32) {
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

    pub(super) fn send_error(&self, error: io::Error, what: &str) -> Error {
        match error.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied,
            _ => Error::Socket(format!("{what}: {error}")),
        }
    }

    /// Receives one datagram; `None` when `wait` is false and nothing is queued.
    pub(super) fn recv(&mut self, wait: bool) -> Result<Option<usize>, Error> {
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

    pub(super) fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: a u32 buffer viewed as bytes; len was returned by recv and is in bounds.
        unsafe { std::slice::from_raw_parts(self.buffer.as_ptr().cast::<u8>(), len) }
    }

    /// Sends a request and feeds every answer message to `each` until the kernel says done.
    pub(super) fn query(
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
pub(super) fn messages_in(bytes: &[u8]) -> Vec<(libc::nlmsghdr, usize)> {
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
pub(super) fn error_code(bytes: &[u8], offset: usize) -> Option<i32> {
    let start = offset + std::mem::size_of::<libc::nlmsghdr>();
    let raw = bytes.get(start..start + 4)?;
    Some(i32::from_ne_bytes(raw.try_into().ok()?))
}

/// A dump request for `msg_type` in `family`, with a payload written by `payload`.
pub(super) fn dump_request(
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
pub(super) fn request(
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

#[cfg(test)]
mod tests {
    use super::*;

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
