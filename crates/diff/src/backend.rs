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

/// A firewall that cf-allow keeps in sync.
///
/// Implementations read the kernel (or files) every time instead of trusting a state file,
/// so drift is repaired, and apply a plan as one atomic transaction: on error the firewall
/// is exactly as it was.
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
}
