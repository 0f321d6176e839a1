//! The report's numbers as one CSV, each field quoted and defused against spreadsheet
//! formulas. It only formats [`ReportData`], as the HTML page does.

use std::fmt::Write as _;

use super::gather::ReportData;
use super::html::{comparison_change, comparison_outcome};

/// One CSV field (RFC 4180 quoting, OWASP's CSV-injection rule): invisible characters
/// shown as "�" (see [`esc`](super::html::esc)), a field starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return prefixed with `'` so a spreadsheet shows it rather than
/// running it, and a field with `,`, `"` or a line break quoted, its quotes doubled.
fn csv_field(text: &str) -> String {
    let text = engine::text::visible(text);
    // A spreadsheet runs a cell starting with one of these as a formula; a resource name
    // or a summary comes from configuration or the monitored system, so it is defused.
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.into_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The same numbers as one CSV: `table,resource,name,value,unit,detail`, where `table` is
/// `compliance`, `before_after`, `alert` or `action`.
pub fn csv(data: &ReportData) -> String {
    let mut out = String::from("table,resource,name,value,unit,detail\n");
    let mut row =
        |table: &str, resource: &str, name: &str, value: String, unit: &str, detail: &str| {
            let _ = writeln!(
                out,
                "{table},{},{},{value},{},{}",
                csv_field(resource),
                csv_field(name),
                csv_field(unit),
                csv_field(detail)
            );
        };
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    for r in &data.resources {
        let target = r.target.as_deref().unwrap_or("");
        row(
            "compliance",
            &r.id,
            "compliance_pct",
            opt(r.compliance_pct),
            "%",
            target,
        );
        // What the replay behind the compliance found, and how it judged.
        let found = r.compliance.as_ref();
        let judged_on = found.map_or("", |c| c.judged_on.as_str());
        let count = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
        row(
            "compliance",
            &r.id,
            "breaches",
            count(found.map(|c| c.breaches as i64)),
            "",
            judged_on,
        );
        row(
            "compliance",
            &r.id,
            "judged_s",
            count(found.map(|c| c.judged_ms / 1000)),
            "s",
            judged_on,
        );
        row(
            "compliance",
            &r.id,
            "not_enough_data_s",
            count(found.map(|c| c.no_data_ms / 1000)),
            "s",
            judged_on,
        );
        row("compliance", &r.id, "mean", opt(r.mean), &r.unit, target);
        row("compliance", &r.id, "worst", opt(r.worst), &r.unit, target);
        row(
            "compliance",
            &r.id,
            "alerts",
            r.alerts.to_string(),
            "",
            target,
        );
        row(
            "compliance",
            &r.id,
            "firing_s",
            (r.firing_ms / 1000).to_string(),
            "s",
            target,
        );
    }
    for c in &data.comparisons {
        let detail = format!(
            "{} at {}: {} → {}, {} ({}); {}",
            c.event,
            app::format::utc_iso(c.at_unix_ms),
            c.before.as_deref().unwrap_or("–"),
            c.after.as_deref().unwrap_or("–"),
            comparison_change(c).0,
            c.target,
            comparison_outcome(c).0,
        );
        // A target edit moved the threshold, not the system: no improvement to report.
        let (name, unit) = if c.kind == app::proof::KIND_THRESHOLD {
            ("threshold_change", "")
        } else {
            ("improvement_pct", "%")
        };
        row(
            "before_after",
            &c.resource_id,
            name,
            opt(c.improvement_pct),
            unit,
            &detail,
        );
    }
    for e in &data.alerts {
        let lasted = e
            .ended_ms
            .map(|end| ((end - e.started_ms) / 1000).to_string())
            .unwrap_or_default();
        let detail = format!("{} at {}", e.summary, app::format::utc_iso(e.started_ms));
        row("alert", &e.resource, "lasted_s", lasted, "s", &detail);
    }
    for a in &data.actions {
        let detail = format!("{} at {}", a.what, app::format::utc_iso(a.at_unix_ms));
        row(
            "action",
            a.resource.as_deref().unwrap_or(""),
            "action",
            String::new(),
            "",
            &detail,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::alerts::Episode;
    use crate::report::tests::{data_with, T0};

    #[test]
    fn the_csv_defuses_formulas_and_control_characters() {
        // NUL and other control characters are refused where people type text
        // (`engine::text`); what reached a record before is shown, never written raw.
        assert_eq!(csv_field("a\0b"), "a\u{FFFD}b");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("@SUM(1)"), "'@SUM(1)");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("\t=1"), "'\t=1");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let data = data_with(
            Vec::new(),
            vec![Episode {
                resource: "custom:1".into(),
                started_ms: T0,
                ended_ms: Some(T0 + 60_000),
                summary: "=HYPERLINK(\"http://evil\",\"x\")\0, then more".into(),
                end_summary: None,
            }],
        );
        let csv = csv(&data);
        let line = csv.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "alert,custom:1,lasted_s,60,s,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\u{FFFD}, then more at 2023-11-14T22:13:20Z\""
        );
        assert!(!csv.contains('\0'));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1+2,3"), "\"'-1+2,3\"");
        assert_eq!(csv_field("cpu"), "cpu");
    }
}
