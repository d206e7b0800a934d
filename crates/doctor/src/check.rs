//! One finding of the doctor.

use serde::Serialize;

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong found.
    Ok,
    /// Probably a problem, or something that could not be verified.
    Warn,
    /// A cause of Cloudflare errors on this host.
    Fail,
    /// Not applicable, or the tool it needs is not installed.
    Skip,
}

impl Status {
    /// `OK`, `WARN`, `FAIL` or `SKIP`, for the text report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }

    /// True for warnings and failures.
    pub fn is_finding(self) -> bool {
        matches!(self, Status::Warn | Status::Fail)
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier (`config`, `listen:443`, `ipset`, …); several findings of one probe
    /// share it.
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// What was found, in one line.
    pub summary: String,
    /// What to do about it (warnings and failures).
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(id: impl Into<String>, summary: impl Into<String>) -> Check {
        Check::new(id, Status::Ok, summary, None)
    }

    /// A skipped check; `summary` says why.
    pub fn skip(id: impl Into<String>, summary: impl Into<String>) -> Check {
        Check::new(id, Status::Skip, summary, None)
    }

    /// A warning with its fix.
    pub fn warn(
        id: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Warn, summary, Some(fix.into()))
    }

    /// A failure with its fix.
    pub fn fail(
        id: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Fail, summary, Some(fix.into()))
    }

    fn new(
        id: impl Into<String>,
        status: Status,
        summary: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            id: id.into(),
            status,
            summary: summary.into(),
            fix,
        }
    }
}
