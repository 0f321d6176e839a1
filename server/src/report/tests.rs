//! Tests across the report's concerns (gathering and rendering), and the fixtures the
//! submodules' tests share.

use app::proof::ComparisonRow;
use engine::history::{Downsampled, Grid, SeriesHistory, Tier};
use engine::model::Resource;

use super::gather::{from_memory, ReportData, ResourceReport, SLOTS};
use super::{csv, html, Period};
use crate::persist::alerts::Episode;

pub(super) const T0: i64 = 1_700_000_000_000;

pub(super) fn data_with(resources: Vec<ResourceReport>, alerts: Vec<Episode>) -> ReportData {
    ReportData {
        period: Period::last(86_400_000, T0 + 300_000),
        generated_ms: T0 + 300_000,
        judged_on: "the share of the judged time each target was not breached".into(),
        resources,
        comparisons: Vec::new(),
        alerts,
        actions: Vec::new(),
        top_processes: Vec::new(),
        top_queries: Vec::new(),
        notes: Vec::new(),
    }
}

fn resource_report(id: &str, series: Downsampled, chart: Option<Downsampled>) -> ResourceReport {
    ResourceReport {
        id: id.into(),
        name: id.into(),
        resource_type: id.into(),
        metric: Some("utilization".into()),
        unit: "%".into(),
        target: Some("p95 utilization ≤ 65 %".into()),
        compliance_pct: None,
        compliance: None,
        slots_with_data: series.points.iter().flatten().count(),
        slots: series.points.len(),
        mean: None,
        worst: None,
        alerts: 0,
        firing_ms: 0,
        series: Some(series),
        chart,
    }
}

/// The figure of one resource in a report.
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<figure data-resource=\"{id}\">"))
        .unwrap_or_else(|| panic!("a chart of {id}"));
    &html[start..start + html[start..].find("</figure>").unwrap()]
}

/// A new install: five minutes of 1 s samples in a 24 h report. They are one or two
/// slots of the period's 5 m grid (the Mean and Worst columns', and what the chart
/// used to draw: a line of one point, nothing), but the chart is drawn from the
/// samples over their own five minutes, across the whole plot.
#[test]
fn five_minutes_of_a_new_install_are_charted_over_their_own_extent() {
    let mut data = SeriesHistory::new(&engine::history::HistoryConfig::default());
    for i in 0..300 {
        data.append(T0 + i * 1000, Some(40.0 + (i % 7) as f32));
    }
    let period = Period::last(86_400_000, T0 + 300_000);
    let grid = Grid {
        start_ms: period.from_ms,
        step_ms: period.span_ms() / SLOTS,
        points: SLOTS as usize,
    };
    let (slots, chart) = from_memory(&data, period, grid);
    assert!(slots.points.iter().flatten().count() <= 2, "{slots:?}");
    let chart = chart.expect("a chart over the data's own extent");
    assert_eq!(chart.points.iter().flatten().count(), 300);

    let nothing = Downsampled {
        tier: Tier::Aggregate,
        origin: grid.start_ms,
        width: grid.step_ms,
        points: vec![None; grid.points],
    };
    let report = data_with(
        vec![
            resource_report("cpu", slots, Some(chart)),
            resource_report("memory", nothing, None),
        ],
        Vec::new(),
    );
    let resources: std::collections::HashMap<String, Resource> = [
        ("cpu", engine::model::ResourceType::Cpu),
        ("memory", engine::model::ResourceType::Memory),
    ]
    .into_iter()
    .map(|(id, t)| {
        let resource = Resource::new(engine::model::ResourceId::new(id).unwrap(), t, id);
        (id.to_owned(), resource)
    })
    .collect();
    let html = html(&report, &resources);

    let cpu = figure(&html, "cpu");
    let lines: Vec<_> = crate::svg::polylines(cpu)
        .into_iter()
        .filter(|(stroke, _)| stroke == crate::svg::MEAN_STROKE)
        .collect();
    assert_eq!(lines.len(), 1, "{cpu}");
    let xs = || lines[0].1.iter().map(|p| p.0);
    assert!(lines[0].1.len() >= 250, "{} points", lines[0].1.len());
    assert!(
        xs().max().unwrap() - xs().min().unwrap() > 800,
        "the line spans the plot: {cpu}"
    );
    assert!(cpu.contains("the data covers only"), "labelled: {cpu}");

    let memory = figure(&html, "memory");
    assert!(memory.contains("no data in this period"), "{memory}");
    assert!(!memory.contains("<circle"));
}

fn comparison(kind: &str, event: &str) -> ComparisonRow {
    ComparisonRow {
        resource_id: "cache:main".into(),
        resource_name: "main".into(),
        event: event.into(),
        at_unix_ms: T0,
        ready_at_unix_ms: T0 + 60_000,
        pending: false,
        before: Some("58.5 %".into()),
        after: Some("97 %".into()),
        target: "mean hit_ratio ≥ 90 %".into(),
        improvement_pct: Some(65.8),
        target_met: Some(true),
        reason: String::new(),
        unit: "%".into(),
        target_value: 90.0,
        before_series: Vec::new(),
        after_series: Vec::new(),
        kind: kind.into(),
        applied: None,
        outcome: None,
        outcome_why: None,
        verdict: None,
        evidence: None,
        direction: String::new(),
        change_text: String::new(),
    }
}

/// The report says what the page says: a rolled-back action is rolled back (not
/// "met"), a target edit is a threshold change (not an improvement).
#[test]
fn before_afters_report_rollbacks_and_threshold_changes_honestly() {
    let mut data = data_with(Vec::new(), Vec::new());
    data.comparisons = vec![
        ComparisonRow {
            applied: Some("maxmemory 3mb → 64mb".into()),
            outcome: Some("rolled back".into()),
            outcome_why: Some("the hit ratio did not change".into()),
            verdict: Some("no change".into()),
            direction: "same".into(),
            change_text: "+38.5 points (+65.8 %)".into(),
            ..comparison("action", "action redis maxmemory")
        },
        ComparisonRow {
            improvement_pct: None,
            change_text: "threshold 80 → 90 %".into(),
            ..comparison("threshold", "target edit (change #3)")
        },
    ];
    let html = html(&data, &std::collections::HashMap::new());
    assert!(!html.contains(">Improvement<"), "no improvement column");
    assert!(
        html.contains("rolled back: the hit ratio did not change (verdict: no change)"),
        "{html}"
    );
    assert!(html.contains("+38.5 points (+65.8 %), no change"), "{html}");
    assert!(
        html.contains("action redis maxmemory (maxmemory 3mb → 64mb)"),
        "{html}"
    );
    assert!(html.contains("threshold 80 → 90 %"), "{html}");
    assert!(
        html.contains("threshold change; target met after"),
        "{html}"
    );
    let csv = csv(&data);
    assert!(
        csv.contains("before_after,cache:main,threshold_change,,,"),
        "{csv}"
    );
    assert!(
        csv.contains("before_after,cache:main,improvement_pct,65.800,%,"),
        "{csv}"
    );
    assert!(
        csv.contains("rolled back: the hit ratio did not change"),
        "{csv}"
    );
}
