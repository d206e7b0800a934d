//! The `reachability` check: the verdict engine's answer (crates/reach, asked by the binary)
//! to "would a TCP SYN from every Cloudflare range to every port get through every layer of
//! this host's input path?", as a doctor check. FAIL when a rule blocks part of the list, WARN
//! when the engine cannot tell, each naming the deciding rule and its fix.

use super::Check;

/// The check's stable id.
pub const ID: &str = "reachability";

/// What the verdict said, in plain values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Every range reaches every port.
    pub reachable: bool,
    /// Some part is blocked (not only unknown).
    pub blocked: bool,
    /// One line per deciding rule, each ending in `; fix: …`.
    pub warnings: Vec<String>,
    /// One line: what was checked and the outcome.
    pub summary: String,
}

/// The check for `verdict` (`None`: not evaluated, with the reason).
pub fn check(verdict: Result<Verdict, String>) -> Check {
    let verdict = match verdict {
        Ok(v) => v,
        Err(why) => return Check::skip(ID, why),
    };
    if verdict.reachable {
        return Check::ok(ID, verdict.summary);
    }
    let mut what = Vec::new();
    let mut fixes = Vec::new();
    for line in &verdict.warnings {
        match line.split_once("; fix: ") {
            Some((rule, fix)) => {
                what.push(rule.to_string());
                if !fixes.iter().any(|f| f == fix) {
                    fixes.push(fix.to_string());
                }
            }
            None => what.push(line.clone()),
        }
    }
    if what.is_empty() {
        what.push(verdict.summary.clone());
    }
    let fix = if fixes.is_empty() {
        "see crates/reach/README.md for the rules the verdict evaluates".to_string()
    } else {
        fixes.join("; or ")
    };
    if verdict.blocked {
        Check::fail(ID, what.join("; "), fix)
    } else {
        Check::warn(ID, what.join("; "), fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn verdict(reachable: bool, blocked: bool, warnings: &[&str]) -> Verdict {
        Verdict {
            reachable,
            blocked,
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
            summary: "22 ranges on TCP 80, 443".into(),
        }
    }

    #[test]
    fn blocked_is_a_failure_naming_the_rule_and_the_fix() {
        let c = check(Ok(verdict(
            false,
            true,
            &["inet firewalld filter_INPUT: \"reject\" (handle 7) rejects Cloudflare's 22 ranges on TCP 443 (Error 523); fix: set `backend: firewalld`"],
        )));
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("filter_INPUT"), "{c:?}");
        assert_eq!(c.fix.as_deref(), Some("set `backend: firewalld`"));
    }

    #[test]
    fn unknown_is_a_warning_and_reachable_is_ok() {
        let c = check(Ok(verdict(false, false, &["x may block; fix: y"])));
        assert_eq!(c.status, Status::Warn);
        assert_eq!(check(Ok(verdict(true, false, &[]))).status, Status::Ok);
        assert_eq!(check(Err("off".into())).status, Status::Skip);
    }
}
