//! Guards that refuse plans which look like a broken list rather than a real change.

use thiserror::Error;

/// A plan would remove more of the applied ranges than the configured limit allows.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "the new list would remove {removed} of the {current} ranges applied now ({percent}%, more than the {limit}% allowed by guard.max_shrink_percent); check the source, or pass --force"
)]
pub struct ShrinkError {
    /// Ranges the plan removes.
    pub removed: usize,
    /// Ranges applied now.
    pub current: usize,
    /// `removed` as a whole percentage of `current`, rounded up.
    pub percent: usize,
    /// The configured limit.
    pub limit: u8,
}

/// Refuses removing more than `max_percent` percent of the `current` ranges.
///
/// An empty firewall can always be filled; removing exactly the limit is allowed.
pub fn check_shrink(current: usize, removed: usize, max_percent: u8) -> Result<(), ShrinkError> {
    if current == 0 || removed.saturating_mul(100) <= current.saturating_mul(max_percent as usize) {
        return Ok(());
    }
    Err(ShrinkError {
        removed,
        current,
        percent: (removed * 100).div_ceil(current),
        limit: max_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_within_limit_passes() {
        assert_eq!(check_shrink(22, 11, 50), Ok(()));
        assert_eq!(check_shrink(0, 0, 0), Ok(()));
        assert_eq!(check_shrink(22, 0, 0), Ok(()));
    }

    #[test]
    fn shrink_over_limit_is_refused_with_numbers() {
        let err = check_shrink(22, 12, 50).expect_err("over the limit");
        assert_eq!(err.percent, 55);
        assert_eq!(
            err.to_string(),
            "the new list would remove 12 of the 22 ranges applied now (55%, more than the 50% allowed by guard.max_shrink_percent); check the source, or pass --force"
        );
    }
}
