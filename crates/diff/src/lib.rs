//! The pure core of cf-allow: sets of CIDR ranges, the plan that turns what a firewall holds
//! into what it should hold, the guards that refuse suspicious plans, and the [`Backend`]
//! trait every firewall backend implements. Nothing here performs I/O.

#![forbid(unsafe_code)]

mod backend;
mod guard;
mod plan;
mod ranges;
pub mod text;

pub use backend::{Backend, ChainEnd, Inspection, Placement};
pub use guard::{check_shrink, ShrinkError};
pub use plan::Plan;
pub use ranges::{Family, RangeSet};

pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};
