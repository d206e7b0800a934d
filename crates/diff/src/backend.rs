//! The one interface every firewall backend implements.

use crate::plan::Plan;
use crate::ranges::RangeSet;

/// What a backend found on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The ranges cf-allow's objects hold now, exactly as stored (not aggregated), so that a
    /// plan removes entries that really exist.
    pub ranges: RangeSet,
    /// True when any object cf-allow owns exists (a table, chain, set, file or rule).
    pub present: bool,
    /// Structural differences from the configured layout that [`Backend::apply`] repairs,
    /// in words an admin understands ("create table inet cf_allow", "move the jump to
    /// CF-ALLOW back to the top of INPUT", …). Empty when only ranges may differ.
    pub repairs: Vec<String>,
    /// Things an admin should know that cf-allow cannot fix by itself.
    pub warnings: Vec<String>,
}

/// Where a backend puts the rules that accept Cloudflare, so that the reachability verdict
/// can project what a sync would install (`sync --dry-run`, backend detection) without
/// applying it. The accepted ranges and ports are the plan's; this says only where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// nftables: cf-allow's own base chain `chain` in `table inet <table>`, on the input hook
    /// at filter priority `priority`, policy accept.
    NftOwnChain {
        /// The table's name (family `inet`).
        table: String,
        /// The base chain's name.
        chain: String,
        /// The hook priority (0 = `filter`).
        priority: i32,
        /// With `lockdown`: every other source is dropped on the ports (after the accepts).
        lockdown: bool,
        /// cf-allow's base chain on the forward hook in the same table, which applies the same
        /// accept (and, with `lockdown`, drop) to DNAT'd connections by their original
        /// destination port (published container ports); `None` when there is none.
        forward: Option<String>,
    },
    /// nftables: cf-allow's rules at the top of the existing chain `<family> <table> <chain>`.
    NftChainTop {
        /// `inet`, `ip` or `ip6`.
        family: String,
        /// The existing table.
        table: String,
        /// The existing chain.
        chain: String,
        /// With `lockdown`: every other source is dropped on the ports (after the accepts).
        lockdown: bool,
        /// The chain in the same table (on the forward hook) whose top holds the same rules for
        /// DNAT'd connections, matched by their original destination port; `None` when none.
        forward: Option<String>,
    },
    /// iptables and ip6tables: cf-allow's chain `chain` in the filter table, which accepts,
    /// and a jump to it at position 1 of each chain in `hooks`.
    IptablesJump {
        /// True for the x_tables API (iptables-legacy), false for nf_tables (iptables-nft).
        legacy: bool,
        /// cf-allow's chain (`CF-ALLOW`).
        chain: String,
        /// The chains that jump to it first (`INPUT`, `DOCKER-USER`).
        hooks: Vec<String>,
        /// With `lockdown`: every other source is dropped on the ports (after the accepts).
        lockdown: bool,
    },
    /// iptables and ip6tables: accept rules at the top of an existing filter chain (CSF's
    /// `ALLOWIN`, which CSF's `INPUT` jumps to).
    IptablesChainTop {
        /// True for the x_tables API (iptables-legacy), false for nf_tables (iptables-nft).
        legacy: bool,
        /// The existing chain.
        chain: String,
    },
    /// Accept rules appended to existing chains, after the rules already there: ufw's
    /// `ufw-user-input` / `ufw6-user-input` (cf-allow's rules are ufw rules, added after the
    /// admin's own, and ufw applies the first that matches), firewalld's `_allow` chain of
    /// each of cf-allow's zones (where firewalld puts priority-0 rich rules that accept). A
    /// listed chain that does not exist gets nothing (ufw or firewalld loads no rules there).
    ChainEnds {
        /// The chains.
        chains: Vec<ChainEnd>,
    },
}

/// One chain of [`Placement::ChainEnds`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEnd {
    /// True for the x_tables API (iptables-legacy), false for nf_tables (nft, iptables-nft).
    pub legacy: bool,
    /// The table's family: `ip`, `ip6` or `inet`.
    pub family: String,
    /// The table (`filter`, `firewalld`).
    pub table: String,
    /// The chain.
    pub chain: String,
}

/// A firewall that cf-allow keeps in sync.
///
/// Implementations read the kernel (or files) every time instead of trusting a state file,
/// so drift is repaired, and apply a plan as one atomic transaction: on error the firewall
/// is exactly as it was.
///
/// # The sync loop (the one meaning of a plan)
///
/// The binary runs, for every backend alike: `inspect` → `Plan::between(desired restricted
/// to `families()`, inspection.ranges)` with the inspection's repairs → `apply(&plan)` when
/// the plan is not empty. After a successful `apply`, cf-allow's objects hold exactly
/// `plan.desired` (for the families the backend manages) and the structure is as configured.
/// `plan.add` and `plan.remove` are the exact difference between `plan.desired` and what
/// `inspect` read; a backend that edits entries in place (nftables set elements, ipset
/// members, firewalld ipset entries, ufw rules) applies exactly those, a backend whose
/// transaction rewrites a whole chain or file (iptables-restore without ipset, CSF's
/// `csf.allow`) writes `plan.desired`; both reach the same state. `plan.repairs` is the
/// inspection's list of structural drift, carried for the report: a backend re-derives the
/// structure it needs at `apply` (it never parses these words).
pub trait Backend {
    /// The backend's typed error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The backend's name as the CLI spells it (`nftables`, `iptables`, `csf`).
    fn name(&self) -> &'static str;

    /// Reads what cf-allow manages now.
    fn inspect(&mut self) -> Result<Inspection, Self::Error>;

    /// Applies `plan` (built from [`Backend::inspect`]'s result) atomically: creates missing
    /// structure, makes the repairs, adds and removes exactly the planned ranges.
    fn apply(&mut self, plan: &Plan) -> Result<(), Self::Error>;

    /// The plan in the firewall's own words, one command per line (`ufw allow proto tcp from
    /// … comment cf-allow`), for backends whose admins think in such commands; printed after
    /// the `+`/`-` lines. Empty (the default) for the others.
    fn describe(&self, _plan: &Plan) -> Vec<String> {
        Vec::new()
    }

    /// Deletes everything cf-allow created, and nothing else. Returns what was (with
    /// `dry_run`: would be) deleted, one line per object; empty when nothing was there.
    fn remove(&mut self, dry_run: bool) -> Result<Vec<String>, Self::Error>;

    /// The address families this backend holds ranges for on this host, as found by the last
    /// [`Backend::inspect`] (both, unless the firewall cannot carry one: ufw with `IPV6=no`).
    /// The plan leaves the others out (the backend's warning says why), so a sync on such a
    /// host is idempotent instead of planning the same additions every time.
    fn families(&self) -> Vec<crate::ranges::Family> {
        crate::ranges::Family::ALL.to_vec()
    }

    /// After [`Backend::apply`]: `Some(generation)` when the change was one commit that
    /// touched only the elements of cf-allow's sets (no rule, chain or table), made on top of
    /// the ruleset `generation` the backend had read, and the ruleset was at the next
    /// generation right after (nothing else committed in between). The verdict then carries
    /// a clean verdict of `generation` over by evaluating only the changed ranges. `None`
    /// (the default) when the backend cannot tell: its firewall has no generation id.
    fn elements_committed(&self) -> Option<u32> {
        None
    }

    /// Where this backend's accept rules sit, for the reachability verdict's projection;
    /// `None` when the backend cannot say (the verdict is then taken only after applying,
    /// and detection does not consider the backend).
    fn placement(&self) -> Option<Placement> {
        None
    }
}
