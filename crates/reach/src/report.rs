//! Turning evaluated boxes into findings, JSON and warning lines.

use std::collections::BTreeMap;

use cf_allow_diff::Family;
use serde_json::{json, Value};

use crate::space::{merge_spans, span_to_nets, Bx, Span};
use crate::{Finding, PortSpan, RuleRef, Verdict};

/// The findings of one rule: one per distinct set of ports, each with exactly the source
/// sub-ranges that have that set.
pub(crate) fn findings(
    family: Family,
    by: RuleRef,
    expr: Option<String>,
    boxes: Vec<Bx>,
) -> Vec<Finding> {
    // Elementary source segments from every box boundary.
    let mut cuts: Vec<u128> = Vec::with_capacity(boxes.len() * 2);
    for b in &boxes {
        cuts.push(b.s.0);
        if let Some(n) = b.s.1.checked_add(1) {
            cuts.push(n);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let max = crate::space::max_addr(family);
    let mut by_ports: BTreeMap<Vec<Span<u16>>, Vec<Span<u128>>> = BTreeMap::new();
    for (i, &lo) in cuts.iter().enumerate() {
        let hi = match cuts.get(i + 1) {
            Some(n) => n - 1,
            None => max,
        };
        if lo > max {
            continue;
        }
        let ports: Vec<Span<u16>> = boxes
            .iter()
            .filter(|b| b.s.0 <= lo && hi <= b.s.1)
            .map(|b| b.p)
            .collect();
        if ports.is_empty() {
            continue;
        }
        let ports = merge_spans(ports, |p: u16| p.checked_add(1));
        by_ports.entry(ports).or_default().push((lo, hi));
    }
    by_ports
        .into_iter()
        .map(|(ports, spans)| {
            let spans = merge_spans(spans, |a: u128| a.checked_add(1));
            Finding {
                family,
                ranges: spans
                    .into_iter()
                    .flat_map(|s| span_to_nets(family, s))
                    .collect(),
                ports: ports
                    .into_iter()
                    .map(|(first, last)| PortSpan { first, last })
                    .collect(),
                by: by.clone(),
                expr: expr.clone(),
            }
        })
        .collect()
}

fn ports_json(ports: &[PortSpan]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                if p.first == p.last {
                    json!(p.first)
                } else {
                    json!(p.to_string())
                }
            })
            .collect(),
    )
}

fn finding_json(f: &Finding) -> Value {
    let mut v = json!({
        "family": f.family.as_str(),
        "ranges": f.ranges.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "ports": ports_json(&f.ports),
        "by": {
            "layer": f.by.layer,
            "table": f.by.table,
            "chain": f.by.chain,
            "handle": f.by.handle,
            "rule": f.by.rule,
        },
    });
    if let (Some(e), Some(obj)) = (&f.expr, v.as_object_mut()) {
        obj.insert("expr".into(), json!(e));
    }
    v
}

pub(crate) fn to_json(v: &Verdict) -> Value {
    json!({
        "reachable": v.reachable,
        "checked": {"ranges": v.checked.ranges, "ports": v.checked.ports},
        "blocked": v.blocked.iter().map(finding_json).collect::<Vec<_>>(),
        "unknown": v.unknown.iter().map(finding_json).collect::<Vec<_>>(),
        "exposed": v.exposed.iter().map(finding_json).collect::<Vec<_>>(),
        "locked_down": v.locked_down,
    })
}

/// One deciding rule's findings merged: its rule, sorted ranges, merged ports, expression and
/// first finding.
struct Merged<'a> {
    by: &'a RuleRef,
    ranges: Vec<String>,
    ports: Vec<PortSpan>,
    expr: Option<&'a str>,
    first: &'a Finding,
}

/// `list` merged by deciding rule, in the order the rules first appear.
fn by_rule(list: &[Finding]) -> Vec<Merged<'_>> {
    let mut out: Vec<Merged> = Vec::new();
    for f in list {
        let i = match out.iter().position(|m| m.by == &f.by) {
            Some(i) => i,
            None => {
                out.push(Merged {
                    by: &f.by,
                    ranges: Vec::new(),
                    ports: Vec::new(),
                    expr: f.expr.as_deref(),
                    first: f,
                });
                out.len() - 1
            }
        };
        out[i].ranges.extend(f.ranges.iter().map(|n| n.to_string()));
        out[i].ports.extend(f.ports.iter().copied());
    }
    for m in &mut out {
        m.ranges.sort();
        m.ranges.dedup();
        m.ports = merge_spans(
            m.ports.iter().map(|p| (p.first, p.last)).collect(),
            |p: u16| p.checked_add(1),
        )
        .into_iter()
        .map(|(first, last)| PortSpan { first, last })
        .collect();
    }
    out
}

/// One line per rule letting outsiders through a locked-down port.
pub(crate) fn exposed_warnings(
    v: &Verdict,
    fix: &dyn Fn(&Finding) -> Option<String>,
) -> Vec<String> {
    by_rule(&v.exposed)
        .into_iter()
        .map(|m| {
            let verb = if m.by.rule.starts_with("policy") {
                "lets (chain policy)"
            } else {
                "lets"
            };
            let mut line = format!(
                "{} {verb} sources outside the list ({}) reach {} although lockdown is on",
                m.by,
                describe_ranges(&m.ranges),
                describe_ports(&m.ports)
            );
            if let Some(f) = fix(m.first) {
                line.push_str(&format!("; fix: {f}"));
            }
            line
        })
        .collect()
}

fn describe_ranges(ranges: &[String]) -> String {
    match ranges.len() {
        0 => "no range".into(),
        1..=3 => ranges.join(", "),
        n => format!("{} and {} more", ranges[..2].join(", "), n - 2),
    }
}

fn describe_ports(ports: &[PortSpan]) -> String {
    if ports.len() == 1 && ports[0].first == 0 && ports[0].last == u16::MAX {
        return "every TCP port".into();
    }
    format!(
        "TCP {}",
        ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(crate) fn warnings(v: &Verdict, fix: &dyn Fn(&Finding) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (list, blocks) in [(&v.blocked, true), (&v.unknown, false)] {
        // One line per deciding rule.
        for m in by_rule(list) {
            let verb = if !blocks {
                "may block"
            } else if m.by.rule.starts_with("policy") {
                "drops (chain policy)"
            } else if m.by.rule.contains("reject") || m.by.rule.contains("REJECT") {
                "rejects"
            } else {
                "drops"
            };
            let mut line = format!(
                "{} {verb} {} on {}",
                m.by,
                describe_ranges(&m.ranges),
                describe_ports(&m.ports)
            );
            if blocks {
                line.push_str(" (Error 523)");
            }
            if let Some(e) = m.expr {
                line.push_str(&format!(" — cannot evaluate {e}"));
            }
            if let Some(f) = fix(m.first) {
                line.push_str(&format!("; fix: {f}"));
            }
            out.push(line);
        }
    }
    out
}

fn port_span(v: &Value) -> Option<PortSpan> {
    if let Some(p) = v.as_u64() {
        let p = u16::try_from(p).ok()?;
        return Some(PortSpan { first: p, last: p });
    }
    let (a, b) = v.as_str()?.split_once('-')?;
    Some(PortSpan {
        first: a.parse().ok()?,
        last: b.parse().ok()?,
    })
}

fn finding_of(v: &Value) -> Option<Finding> {
    let family = match v.get("family")?.as_str()? {
        "ipv4" => Family::Ipv4,
        "ipv6" => Family::Ipv6,
        _ => return None,
    };
    let ranges = v
        .get("ranges")?
        .as_array()?
        .iter()
        .map(|n| n.as_str()?.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    let ports = v
        .get("ports")?
        .as_array()?
        .iter()
        .map(port_span)
        .collect::<Option<Vec<_>>>()?;
    let by = v.get("by")?;
    let text = |k: &str| by.get(k).and_then(Value::as_str).map(str::to_owned);
    let handle = match by.get("handle")? {
        Value::Null => None,
        h => Some(h.as_u64()?),
    };
    let expr = match v.get("expr") {
        None => None,
        Some(e) => Some(e.as_str()?.to_owned()),
    };
    Some(Finding {
        family,
        ranges,
        ports,
        by: RuleRef {
            layer: text("layer")?,
            table: text("table")?,
            chain: text("chain")?,
            handle,
            rule: text("rule")?,
        },
        expr,
    })
}

/// The verdict [`to_json`] printed as `v`; `None` when `v` is not one.
pub(crate) fn from_json(v: &Value) -> Option<Verdict> {
    let findings = |k: &str| -> Option<Vec<Finding>> {
        v.get(k)?.as_array()?.iter().map(finding_of).collect()
    };
    let checked = v.get("checked")?;
    let verdict = Verdict {
        reachable: v.get("reachable")?.as_bool()?,
        checked: crate::Checked {
            ranges: usize::try_from(checked.get("ranges")?.as_u64()?).ok()?,
            ports: checked
                .get("ports")?
                .as_array()?
                .iter()
                .map(|p| u16::try_from(p.as_u64()?).ok())
                .collect::<Option<Vec<_>>>()?,
        },
        blocked: findings("blocked")?,
        unknown: findings("unknown")?,
        exposed: findings("exposed")?,
        locked_down: v.get("locked_down")?.as_bool()?,
    };
    // Exactly what was printed, or nothing.
    (to_json(&verdict) == *v).then_some(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(
        family: Family,
        ranges: &[&str],
        ports: &[(u16, u16)],
        expr: Option<&str>,
    ) -> Finding {
        Finding {
            family,
            ranges: ranges.iter().map(|r| r.parse().expect("cidr")).collect(),
            ports: ports
                .iter()
                .map(|&(first, last)| PortSpan { first, last })
                .collect(),
            by: RuleRef {
                layer: "nftables".into(),
                table: "inet filter".into(),
                chain: "input".into(),
                handle: expr.is_none().then_some(7),
                rule: "ip saddr 173.245.48.0/20 drop".into(),
            },
            expr: expr.map(str::to_owned),
        }
    }

    #[test]
    fn a_verdict_round_trips_through_its_json_and_anything_else_is_refused() {
        let verdict = Verdict {
            reachable: false,
            checked: crate::Checked {
                ranges: 22,
                ports: vec![80, 443],
            },
            blocked: vec![finding(
                Family::Ipv4,
                &["173.245.48.0/20"],
                &[(80, 80), (443, 443)],
                None,
            )],
            unknown: vec![finding(
                Family::Ipv6,
                &["2400:cb00::/32"],
                &[(1, 1024)],
                Some("meta hour"),
            )],
            exposed: vec![finding(Family::Ipv4, &["0.0.0.0/1"], &[(443, 443)], None)],
            locked_down: true,
        };
        let json = to_json(&verdict);
        assert_eq!(from_json(&json), Some(verdict));
        let mut damaged = json.clone();
        damaged["blocked"][0]["ranges"][0] = json!("not a range");
        assert_eq!(from_json(&damaged), None);
        let mut extra = json;
        extra["more"] = json!(1);
        assert_eq!(from_json(&extra), None);
        assert_eq!(from_json(&json!(null)), None);
    }
}
