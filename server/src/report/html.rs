//! The report as one self-contained HTML page: inline CSS and SVG charts, print friendly
//! (the browser's "Save as PDF" gives a clean document). It only formats [`ReportData`].

use std::fmt::Write as _;

use app::proof::ComparisonRow;
use engine::history::{Downsampled, Tier};
use engine::model::{format_duration, Resource};

use super::gather::{Compliance, ReportData};

/// Text for HTML content and attribute values: markup characters escaped, and what a
/// reader could not see (control and invisible formatting characters, refused where
/// people type text but possible in older records or a monitored system's names) shown
/// as "�".
fn esc(text: &str) -> String {
    engine::text::visible(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A before/after's change as the page shows it, with its direction in words ("−92.1 %,
/// better"), and the class of its cell (`""`, `" good"` or `" bad"`).
pub(super) fn comparison_change(c: &ComparisonRow) -> (String, &'static str) {
    let text = if c.change_text.is_empty() {
        "–".to_owned()
    } else {
        c.change_text.clone()
    };
    let (_, word) = app::proof::direction_label(&c.direction);
    let class = match c.direction.as_str() {
        app::proof::BETTER => " good",
        app::proof::WORSE => " bad",
        _ => "",
    };
    if word.is_empty() {
        (text, class)
    } else {
        (format!("{text}, {word}"), class)
    }
}

/// What became of a before/after, in words, and the class of its cell: an action kept or
/// rolled back (and why, with the verdict); a threshold change is not an improvement; a
/// mark says whether the target was met after it.
pub(super) fn comparison_outcome(c: &ComparisonRow) -> (String, &'static str) {
    use app::proof::{KIND_ACTION, KIND_THRESHOLD, OUTCOME_KEPT};
    let met_after = match c.target_met {
        Some(true) => "target met after",
        Some(false) => "target missed after",
        None => "not measured",
    };
    if c.kind == KIND_ACTION {
        let verdict = c
            .verdict
            .as_deref()
            .map(|v| format!(" (verdict: {v})"))
            .unwrap_or_default();
        let why = c.outcome_why.as_deref().filter(|w| !w.is_empty());
        match c.outcome.as_deref() {
            Some(OUTCOME_KEPT) => (format!("kept{verdict}"), "good"),
            Some(outcome) => match why {
                Some(why) => (format!("{outcome}: {why}{verdict}"), "bad"),
                None => (format!("{outcome}{verdict}"), "bad"),
            },
            None => (why.unwrap_or("no verdict recorded").to_owned(), "muted"),
        }
    } else if c.kind == KIND_THRESHOLD {
        (format!("threshold change; {met_after}"), "")
    } else {
        let class = match c.target_met {
            Some(true) => "good",
            Some(false) => "bad",
            None => "",
        };
        (met_after.to_owned(), class)
    }
}

/// "1 breach in 23 h 59 m judged", or why nothing was judged.
pub(super) fn replay_words(c: &Compliance) -> String {
    if c.judged_ms <= 0 {
        return "not enough data to judge".to_owned();
    }
    let breaches = match c.breaches {
        0 => "no breach".to_owned(),
        1 => "1 breach".to_owned(),
        n => format!("{n} breaches"),
    };
    format!("{breaches} in {} judged", duration_ms(c.judged_ms))
}

fn duration_ms(ms: i64) -> String {
    format_duration(u32::try_from(ms / 1000).unwrap_or(u32::MAX))
}

fn number(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(
        || "–".to_owned(),
        |v| {
            // The cards' rule: one decimal from 1 up, a small value keeps its digits.
            let v = engine::model::format_number(v);
            if unit.is_empty() {
                v
            } else {
                format!("{v} {unit}")
            }
        },
    )
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:2rem auto;max-width:1000px;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
.muted{color:#57606a}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .45rem;border-bottom:1px solid #d0d7de;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}.bad{color:#b91c1c;font-weight:600}.good{color:#15803d}
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.75rem;margin:1rem 0}
.summary div{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .75rem}.summary b{display:block;font-size:1.3rem}
figure{margin:1rem 0;break-inside:avoid}figure svg{width:100%;height:auto}code{font-size:.85em;white-space:pre-wrap;word-break:break-word}
td,th,li,p{overflow-wrap:anywhere}
@media screen and (max-width:600px){body{margin:1rem auto}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block}
table.stack thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
table.stack tr{border-bottom:2px solid #d0d7de;padding:.3rem 0}
table.stack td{border:0;padding:.15rem .25rem;text-align:left;white-space:normal}
table.stack td[data-label]::before{content:attr(data-label);display:inline-block;min-width:7rem;margin-right:.5rem;font-size:.75rem;font-weight:600;text-transform:uppercase;letter-spacing:.03em;color:#57606a}}
@media print{@page{margin:12mm}body{margin:0;padding:0;max-width:none;font-size:10.5px}h2,h3{break-after:avoid}
thead{display:table-header-group}tr,figure,.summary div{break-inside:avoid}figure svg{max-width:100%}a{color:inherit;text-decoration:none}}
";

/// The report as one self-contained HTML document.
#[allow(clippy::too_many_lines)] // 208 lines today; split before it grows
pub fn html(data: &ReportData, resources: &std::collections::HashMap<String, Resource>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let period = data.period.describe();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>perfpilot report {p}</title><style>{STYLE}</style></head><body>\
         <h1>Performance report</h1><p class=\"muted\">{p} · generated {g} UTC by perfpilot · compliance: {j}</p>",
        p = esc(&period),
        g = esc(&app::format::utc_time(data.generated_ms)),
        j = esc(&data.judged_on)
    );
    for note in &data.notes {
        let _ = write!(out, "<p class=\"bad\">{}</p>", esc(note));
    }
    let rollbacks = data
        .actions
        .iter()
        .filter(|a| a.what.contains("rolled back"))
        .count();
    let _ = write!(
        out,
        "<div class=\"summary\"><div><b>{}</b>resources</div><div><b>{}</b>target compliance</div><div><b>{}</b>alerts</div><div><b>{}</b>optimizer actions</div><div><b>{}</b>rollbacks</div><div><b>{}</b>before/afters</div></div>",
        data.resources.len(),
        data.compliance_pct().map_or_else(|| "n/a".into(), |c| format!("{c:.1} %")),
        data.alerts.len(),
        data.actions.len(),
        rollbacks,
        data.comparisons.len()
    );

    out.push_str("<h2 id=\"before-after\">Before / after</h2>");
    if data.comparisons.is_empty() {
        out.push_str("<p class=\"muted\">No change, action or mark completed its before/after in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>When</th><th>Resource</th><th>Event</th><th>Target</th><th class=\"num\">Before</th><th class=\"num\">After</th><th class=\"num\">Change</th><th>Outcome</th></tr></thead><tbody>");
        for c in &data.comparisons {
            let (change, change_class) = comparison_change(c);
            let (outcome, outcome_class) = comparison_outcome(c);
            let event = match &c.applied {
                Some(applied) => format!("{} ({applied})", c.event),
                None => c.event.clone(),
            };
            let _ = write!(
                out,
                "<tr data-kind=\"{}\"><td data-label=\"When\">{}</td><td data-label=\"Resource\">{}</td><td data-label=\"Event\">{}</td><td data-label=\"Target\">{}</td><td class=\"num\" data-label=\"Before\">{}</td><td class=\"num\" data-label=\"After\">{}</td><td class=\"num{change_class}\" data-label=\"Change\">{}</td><td class=\"{outcome_class}\" data-label=\"Outcome\">{}</td></tr>",
                esc(&c.kind),
                esc(&app::format::utc_time(c.at_unix_ms)),
                esc(&c.resource_name),
                esc(&event),
                esc(&c.target),
                esc(c.before.as_deref().unwrap_or("–")),
                esc(c.after.as_deref().unwrap_or("–")),
                esc(&change),
                esc(&outcome),
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"compliance\">Target compliance</h2><table class=\"stack\"><thead><tr><th>Resource</th><th>Target</th><th class=\"num\">Compliance</th><th class=\"num\">Mean</th><th class=\"num\">Worst</th><th class=\"num\">Alerts</th><th class=\"num\" title=\"How long the target was breaching (its alert firing)\">Breaching</th><th class=\"num\">Data</th></tr></thead><tbody>");
    for r in &data.resources {
        let bad = r.compliance_pct.is_some_and(|c| c < 95.0);
        // How it was judged and what the replay found, under the target.
        let judged = r
            .compliance
            .as_ref()
            .map(|c| {
                format!(
                    "<br><span class=\"muted\">{}</span>",
                    esc(&format!("{}: {}", c.judged_on, replay_words(c)))
                )
            })
            .unwrap_or_default();
        let mut data_cell = if r.slots == 0 {
            "none".to_owned()
        } else {
            format!("{:.0} %", r.slots_with_data as f64 * 100.0 / r.slots as f64)
        };
        if let Some(c) = r.compliance.as_ref().filter(|c| c.no_data_ms >= 1000) {
            let _ = write!(data_cell, ", {} not enough data", duration_ms(c.no_data_ms));
        }
        let _ = write!(
            out,
            "<tr data-resource=\"{}\"><td data-label=\"Resource\">{} <span class=\"muted\">{}</span></td><td data-label=\"Target\">{}{judged}</td><td class=\"num{}\" data-label=\"Compliance\">{}</td><td class=\"num\" data-label=\"Mean\">{}</td><td class=\"num\" data-label=\"Worst\">{}</td><td class=\"num\" data-label=\"Alerts\">{}</td><td class=\"num\" data-label=\"Breaching\">{}</td><td class=\"num\" data-label=\"Data\">{}</td></tr>",
            esc(&r.id),
            esc(&r.name),
            esc(&r.id),
            esc(r.target.as_deref().unwrap_or("no target")),
            if bad { " bad" } else { "" },
            r.compliance_pct.map_or_else(|| "–".into(), |c| format!("{c:.1} %")),
            esc(&number(r.mean, &r.unit)),
            esc(&number(r.worst, &r.unit)),
            r.alerts,
            if r.firing_ms > 0 { format_duration((r.firing_ms / 1000) as u32) } else { "–".into() },
            esc(&data_cell)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2 id=\"charts\">Charts</h2>");
    let mut charts = 0;
    // A metric with no sample in the period still gets its chart, saying so.
    let nothing = Downsampled {
        tier: Tier::Aggregate,
        origin: data.period.from_ms,
        width: data.period.span_ms().max(1),
        points: Vec::new(),
    };
    for r in &data.resources {
        let (Some(metric), Some(resource)) = (&r.metric, resources.get(&r.id)) else {
            continue;
        };
        // Over the data's own extent when it covers less than most of the period.
        let drawn = r.chart.as_ref().or(r.series.as_ref()).unwrap_or(&nothing);
        match crate::svg::svg_in(
            resource,
            metric,
            &r.unit,
            drawn,
            data.period.from_ms,
            data.period.to_ms,
            "no data in this period",
        ) {
            Ok(svg) => {
                if drawn.points.iter().any(Option::is_some) {
                    charts += 1;
                }
                let svg = svg.trim_start_matches(|c| c != '<');
                let svg = match svg.find("<svg") {
                    Some(i) => &svg[i..],
                    None => svg,
                };
                let _ = write!(
                    out,
                    "<figure data-resource=\"{}\">{svg}</figure>",
                    esc(&r.id)
                );
            }
            Err(err) => {
                let _ = write!(
                    out,
                    "<p class=\"bad\">{}: the chart could not be drawn: {}</p>",
                    esc(&r.id),
                    esc(&err.to_string())
                );
            }
        }
    }
    if charts == 0 {
        out.push_str("<p class=\"muted\">No target metric has data in this period.</p>");
    }

    out.push_str("<h2 id=\"alerts\">Alerts</h2>");
    if data.alerts.is_empty() {
        out.push_str("<p class=\"muted\">No alert fired in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>Resource</th><th>Fired</th><th>Why</th><th>Resolved</th></tr></thead><tbody>");
        for e in &data.alerts {
            let _ = write!(
                out,
                "<tr><td data-label=\"Resource\">{}</td><td data-label=\"Fired\">{}</td><td data-label=\"Why\">{}</td><td data-label=\"Resolved\">{}</td></tr>",
                esc(&e.resource),
                esc(&app::format::utc_time(e.started_ms)),
                esc(&e.summary),
                match (e.ended_ms, &e.end_summary) {
                    (Some(at), Some(why)) => esc(&format!("{} — {why}", app::format::utc_time(at))),
                    (Some(at), None) => esc(&app::format::utc_time(at)),
                    (None, _) => "still breaching".into(),
                }
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"actions\">Optimizer actions</h2>");
    if data.actions.is_empty() {
        out.push_str("<p class=\"muted\">The optimizer took no action in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>When</th><th>Resource</th><th>What happened</th></tr></thead><tbody>");
        for a in &data.actions {
            let _ = write!(
                out,
                "<tr><td data-label=\"When\">{}</td><td data-label=\"Resource\">{}</td><td data-label=\"What happened\">{}</td></tr>",
                esc(&app::format::utc_time(a.at_unix_ms)),
                esc(a.resource.as_deref().unwrap_or("")),
                esc(&a.what)
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"top\">Top processes and queries <span class=\"muted\">(at report time)</span></h2>");
    if data.top_processes.is_empty() && data.top_queries.is_empty() {
        out.push_str("<p class=\"muted\">No process scan or query statistics yet.</p>");
    }
    if !data.top_processes.is_empty() {
        out.push_str("<ul>");
        for p in &data.top_processes {
            let _ = write!(out, "<li>{}</li>", esc(p));
        }
        out.push_str("</ul>");
    }
    for (resource, queries) in &data.top_queries {
        let _ = write!(out, "<h3>{}</h3><table class=\"stack\"><thead><tr><th>Query</th><th class=\"num\">Calls/s</th><th class=\"num\">Mean</th><th class=\"num\">Share</th></tr></thead><tbody>", esc(resource));
        for q in queries {
            let _ = write!(
                out,
                "<tr><td data-label=\"Query\"><code>{}</code></td><td class=\"num\" data-label=\"Calls/s\">{:.1}</td><td class=\"num\" data-label=\"Mean\">{:.2} ms</td><td class=\"num\" data-label=\"Share\">{:.1} %</td></tr>",
                esc(&q.query),
                q.calls_per_s,
                q.mean_ms,
                q.share_pct
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_shows_invisible_characters() {
        assert_eq!(
            esc("<b onclick='x'>\"&\""),
            "&lt;b onclick=&#39;x&#39;&gt;&quot;&amp;&quot;"
        );
        assert_eq!(esc("a\0b\u{202E}c"), "a\u{FFFD}b\u{FFFD}c");
    }
}
