//! Plain data describing nftables objects as read from the kernel, and the changes cf-allow
//! sends. The netlink module converts between these and libnftnl objects.

use std::fmt;

use crate::intervals::Element;

/// `NFPROTO_INET`.
pub(crate) const FAMILY_INET: u8 = 1;
/// `NFPROTO_IPV4`.
pub(crate) const FAMILY_IP: u8 = 2;
/// `NFPROTO_IPV6`.
pub(crate) const FAMILY_IP6: u8 = 10;

/// The family name as nft prints it.
pub(crate) fn family_name(family: u8) -> &'static str {
    match family {
        FAMILY_INET => "inet",
        FAMILY_IP => "ip",
        FAMILY_IP6 => "ip6",
        0 => "unspec",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        _ => "unknown",
    }
}

/// The comment that marks everything cf-allow creates.
pub(crate) const TAG: &str = "cf-allow";

/// A table, as listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableInfo {
    pub family: u8,
    pub name: String,
    pub comment: Option<String>,
}

/// A chain, as listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainInfo {
    pub family: u8,
    pub table: String,
    pub name: String,
    /// Hook number (base chains only).
    pub hook: Option<u32>,
    /// Policy verdict (base chains only): 0 drop, 1 accept.
    pub policy: Option<u32>,
    /// Chain type (`filter`, `nat`, `route`; base chains only).
    pub kind: Option<String>,
    /// The chain's comment (kernels since 5.10 keep it).
    pub comment: Option<String>,
}

impl ChainInfo {
    /// True when the chain carries cf-allow's comment.
    pub fn is_tagged(&self) -> bool {
        self.comment.as_deref() == Some(TAG)
    }
}

/// A set, as listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetInfo {
    pub name: String,
    pub flags: u32,
    pub key_type: u32,
    pub comment: Option<String>,
}

impl SetInfo {
    /// True when the set carries cf-allow's comment.
    pub fn is_tagged(&self) -> bool {
        self.comment.as_deref() == Some(TAG)
    }
}

/// A rule, as listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleInfo {
    pub handle: u64,
    pub comment: Option<String>,
    pub exprs: Vec<Expr>,
}

impl RuleInfo {
    /// True when the rule carries cf-allow's comment.
    pub fn is_tagged(&self) -> bool {
        self.comment.as_deref() == Some(TAG)
    }
}

/// The expressions cf-allow's rules are made of; anything else reads back as `Other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// Load a meta key (`NFT_META_*`) into register 1.
    Meta(u32),
    /// Compare register 1 for equality with these bytes.
    CmpEq(Vec<u8>),
    /// Load `len` bytes at `offset` of header `base` into register 1.
    Payload { base: u32, offset: u32, len: u32 },
    /// Look register 1 up in a named set.
    Lookup(String),
    /// Look register 1 up in an anonymous set of TCP ports (created with the rule).
    LookupPorts(Vec<u16>),
    /// A verdict (`NF_ACCEPT`, `NF_DROP`).
    Verdict(i32),
    /// Load a conntrack key (`NFT_CT_*`) into register 1; `original`: of the original
    /// direction's tuple (`ct original proto-dst`), else without a direction.
    Ct { key: u32, original: bool },
    /// Register 1 = (register 1 & mask) ^ 0 (how nft tests flags: `ct status dnat`).
    BitwiseAnd(Vec<u8>),
    /// Compare register 1 for inequality with these bytes.
    CmpNeq(Vec<u8>),
    /// An expression cf-allow does not create.
    Other(String),
}

/// Which keys a set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `ipv4_addr`.
    Ipv4,
    /// `ipv6_addr`.
    Ipv6,
    /// `inet_service` (TCP/UDP port).
    Port,
}

impl KeyKind {
    /// nft's datatype number for the key.
    pub fn type_id(self) -> u32 {
        match self {
            KeyKind::Ipv4 => 7,
            KeyKind::Ipv6 => 8,
            KeyKind::Port => 13,
        }
    }

    /// Key length in bytes.
    pub fn len(self) -> u32 {
        match self {
            KeyKind::Ipv4 => 4,
            KeyKind::Ipv6 => 16,
            KeyKind::Port => 2,
        }
    }
}

/// Where a new rule goes in its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Before every other rule.
    Top,
    /// After every other rule.
    Bottom,
}

/// One message of a change batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    AddTable {
        family: u8,
        name: String,
    },
    DelTable {
        family: u8,
        name: String,
    },
    /// A filter base chain on the input hook, priority 0, policy accept.
    AddInputChain {
        family: u8,
        table: String,
        name: String,
    },
    /// A filter base chain on the forward hook, priority 0, policy accept; `tagged`: with
    /// cf-allow's comment (a chain cf-allow creates in someone else's table).
    AddForwardChain {
        family: u8,
        table: String,
        name: String,
        tagged: bool,
    },
    DelChain {
        family: u8,
        table: String,
        name: String,
    },
    /// A named interval set tagged with cf-allow's comment.
    AddSet {
        family: u8,
        table: String,
        name: String,
        key: KeyKind,
    },
    DelSet {
        family: u8,
        table: String,
        name: String,
    },
    AddElements {
        family: u8,
        table: String,
        set: String,
        elements: Vec<Element>,
    },
    DelElements {
        family: u8,
        table: String,
        set: String,
        elements: Vec<Element>,
    },
    AddRule {
        family: u8,
        table: String,
        chain: String,
        exprs: Vec<Expr>,
        position: Position,
    },
    DelRule {
        family: u8,
        table: String,
        chain: String,
        handle: u64,
    },
}

impl fmt::Display for Change {
    /// The change in nft's words, for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddTable { family, name } => {
                write!(f, "add table {} {name}", family_name(*family))
            }
            Change::DelTable { family, name } => {
                write!(f, "delete table {} {name}", family_name(*family))
            }
            Change::AddInputChain {
                family,
                table,
                name,
            } => write!(f, "add chain {} {table} {name}", family_name(*family)),
            Change::AddForwardChain {
                family,
                table,
                name,
                ..
            } => write!(f, "add chain {} {table} {name}", family_name(*family)),
            Change::DelChain {
                family,
                table,
                name,
            } => write!(f, "delete chain {} {table} {name}", family_name(*family)),
            Change::AddSet {
                family,
                table,
                name,
                ..
            } => write!(f, "add set {} {table} {name}", family_name(*family)),
            Change::DelSet {
                family,
                table,
                name,
            } => write!(f, "delete set {} {table} {name}", family_name(*family)),
            Change::AddElements {
                family,
                table,
                set,
                elements,
            } => write!(
                f,
                "add {} elements to set {} {table} {set}",
                elements.len(),
                family_name(*family)
            ),
            Change::DelElements {
                family,
                table,
                set,
                elements,
            } => write!(
                f,
                "delete {} elements from set {} {table} {set}",
                elements.len(),
                family_name(*family)
            ),
            Change::AddRule {
                family,
                table,
                chain,
                position,
                ..
            } => write!(
                f,
                "{} rule to chain {} {table} {chain}",
                match position {
                    Position::Top => "insert",
                    Position::Bottom => "add",
                },
                family_name(*family)
            ),
            Change::DelRule {
                family,
                table,
                chain,
                handle,
            } => write!(
                f,
                "delete rule {} {table} {chain} handle {handle}",
                family_name(*family)
            ),
        }
    }
}
