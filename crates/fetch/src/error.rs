//! Errors: every message is one line that names the source and what was wrong with it.

use std::fmt;
use std::path::PathBuf;

use cf_allow_diff::{Family, IpNet};

/// Why fetching or validating a list failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A source could not be reached at all: DNS, connect, TLS, timeout or a broken transfer.
    /// Only these failures let [`crate::fetch`] fall back to the cache or the embedded list.
    #[error("source {url} is unreachable: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong, as the network stack reported it.
        reason: String,
    },
    /// A source answered, but not with a valid list (an alarm, never a reason to fall back).
    #[error("source {url}{}", problem.after_subject())]
    Invalid {
        /// The URL, or the URLs of a merged alternative joined with ", ".
        url: String,
        /// What was wrong.
        problem: Problem,
    },
    /// Ranges given directly (such as the config's `extra_cidrs`) failed validation.
    #[error("{what}: {problem}")]
    InvalidEntries {
        /// Where the ranges came from, e.g. `extra_cidrs`.
        what: String,
        /// What was wrong.
        problem: Problem,
    },
    /// No alternative yielded a valid list and at least one of them was reached.
    #[error("no source gave a valid list: {}", join(failures))]
    NoValidList {
        /// One error per alternative, in the order they were tried.
        failures: Vec<FetchError>,
    },
    /// The source list is empty.
    #[error("no sources are configured")]
    NoSources,
    /// The cache file exists but cannot be read (a corrupt cache is not an error).
    #[error("cannot read the cache {}: {reason}", path.display())]
    CacheRead {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// True when the source could not be reached (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        match self {
            FetchError::Unreachable { .. } => true,
            FetchError::NoValidList { failures } => failures.iter().all(|f| f.is_unreachable()),
            _ => false,
        }
    }
}

/// The failures' messages joined with "; ".
pub(crate) fn join(failures: &[FetchError]) -> String {
    failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What was wrong with an answer or a list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An HTTP status other than 200 or 304.
    #[error("returned HTTP {status}")]
    Status {
        /// Code and reason, e.g. `503 Service Unavailable`.
        status: String,
    },
    /// An HTML page (Content-Type text/html or a body starting with `<`).
    #[error("returned an HTML page ({detail}), not a list of CIDRs")]
    Html {
        /// `HTTP 200, text/html` or `file`.
        detail: String,
    },
    /// An empty (or all-whitespace) body.
    #[error("returned an empty body ({detail})")]
    Empty {
        /// `HTTP 200` or `file`.
        detail: String,
    },
    /// A body that is not UTF-8.
    #[error("returned a body that is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A body larger than the limit.
    #[error("returned more than {limit} bytes (the body size limit)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// JSON that does not parse.
    #[error("returned malformed JSON ({0})")]
    BadJson(String),
    /// JSON that parses but is not Cloudflare's IP list.
    #[error("returned JSON that is not Cloudflare's IP list ({0})")]
    NotIpList(String),
    /// The API said `"success": false` or listed errors.
    #[error("reported an API failure ({0})")]
    ApiFailure(String),
    /// A redirect cf-allow refuses to follow.
    #[error("redirected where cf-allow does not follow ({0})")]
    Redirect(String),
    /// 304 Not Modified although nothing is cached for the URL.
    #[error("answered 304 Not Modified, but no copy of its list is cached")]
    UnexpectedNotModified,
    /// A `file://` source that cannot be read.
    #[error("cannot be read ({0})")]
    Unreadable(String),
    /// A URL cf-allow cannot fetch.
    #[error("is not a supported source URL ({0})")]
    UnsupportedUrl(String),
    /// A list without a single CIDR.
    #[error("holds no CIDRs")]
    NoEntries,
    /// One entry is not acceptable.
    #[error("{entry} {issue}")]
    Entry {
        /// Where and what, e.g. `line 7 "10.0.0.0/8"`.
        entry: String,
        /// What is wrong with it.
        issue: EntryIssue,
    },
    /// Only one address family is present.
    #[error("has no {} ranges (only {present} {}); a list must hold both families", label(*missing), label(other(*missing)))]
    MissingFamily {
        /// The absent family.
        missing: Family,
        /// How many entries the other family has.
        present: usize,
    },
    /// More entries than `guard.max_entries`.
    #[error("has {count} entries, more than guard.max_entries ({max})")]
    TooMany {
        /// Entries in the list.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl Problem {
    /// The text that follows `source URL`: problems about entries get a colon.
    fn after_subject(&self) -> String {
        match self {
            Problem::Entry { .. } => format!(": {self}"),
            _ => format!(" {self}"),
        }
    }
}

fn label(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

fn other(family: Family) -> Family {
    match family {
        Family::Ipv4 => Family::Ipv6,
        Family::Ipv6 => Family::Ipv4,
    }
}

/// What is wrong with one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryIssue {
    /// Not a CIDR at all; `hint` may say why.
    NotCidr {
        /// A hint such as "two entries glued together", or empty.
        hint: String,
    },
    /// In the wrong list of the API JSON (an IPv6 range in `ipv4_cidrs`).
    WrongFamily {
        /// The family the list should hold.
        expected: Family,
    },
    /// Address bits beyond the prefix are set.
    HostBits {
        /// The network the entry probably meant.
        meant: IpNet,
    },
    /// A prefix shorter than /8 (IPv4) or /16 (IPv6).
    TooWide {
        /// The entry's prefix length.
        prefix: u8,
        /// The shortest prefix allowed for its family.
        min: u8,
    },
    /// Inside or overlapping a reserved range.
    Reserved {
        /// The reserved range.
        range: IpNet,
        /// Its kind, e.g. `private`.
        kind: &'static str,
        /// `a` or `an`, to go with `kind`.
        article: &'static str,
        /// True when the entry lies inside the reserved range, false when it contains it.
        inside: bool,
    },
}

impl fmt::Display for EntryIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryIssue::NotCidr { hint } if hint.is_empty() => f.write_str("is not a CIDR"),
            EntryIssue::NotCidr { hint } => write!(f, "is not a CIDR ({hint})"),
            EntryIssue::WrongFamily { expected } => {
                write!(f, "is not an {} CIDR", label(*expected))
            }
            EntryIssue::HostBits { meant } => {
                write!(f, "has host bits set; did you mean {meant}?")
            }
            EntryIssue::TooWide { prefix, min } => {
                write!(f, "is too wide: prefix /{prefix} is wider than /{min}")
            }
            EntryIssue::Reserved {
                range,
                kind,
                article,
                inside: true,
            } => write!(f, "is {article} {kind} range ({range})"),
            EntryIssue::Reserved {
                range,
                kind,
                inside: false,
                ..
            } => write!(f, "overlaps the {kind} range {range}"),
        }
    }
}
