//! What a dashboard shows: the overview (every card with its recent history) and the
//! metric and "who is busy" line of a card. Built from the configuration, the statuses and
//! history; serialized by the hub.

use std::collections::BTreeMap;
use std::sync::RwLock;

use app::alerts::AlertsPulse;
use app::live::{Card, Overview, TargetLine, SPARK_POINTS};
use engine::changes::ChangeStore;
use engine::history::History;
use engine::model::{
    format_duration, Comparator, Metric, MetricKind, Resource, ResourceType, TargetState,
};
use engine::series::{SeriesKey, TopProcesses};

/// The full overview: every resource of `store` with its recent history. A resource with
/// a problem (`problems`: resource id → why its source has no value) says so in its
/// reason. `history` is read-locked only while the cards are built; `notices` are what is
/// wrong with the server itself, `alerts` the alert counters shown with it.
pub fn build(
    store: &ChangeStore,
    history: &RwLock<History>,
    problems: &BTreeMap<String, String>,
    top: Option<&TopProcesses>,
    notices: Vec<String>,
    alerts: AlertsPulse,
    replica: Option<app::live::ReplicaLine>,
) -> Overview {
    let views = store.views();
    let history = engine::sync::read(history);
    let mut at_unix_ms = 0;
    let cards = views
        .iter()
        .map(|view| {
            let resource = &view.resource;
            let metric = card_metric(resource);
            let (spark, unit) = match metric {
                Some(m) => {
                    let key = SeriesKey::new(resource.id.as_str(), m.name.as_str());
                    let series = history
                        .id(&key)
                        .and_then(|sid| Some((sid, history.get(sid)?)));
                    let spark = series
                        .map(|(_, s)| {
                            if let Some((t, _)) = s.latest() {
                                at_unix_ms = at_unix_ms.max(t);
                            }
                            s.last_raw(SPARK_POINTS)
                                .into_iter()
                                .map(|v| (!v.is_nan()).then_some(v))
                                .collect()
                        })
                        .unwrap_or_default();
                    let unit = series
                        .and_then(|(sid, _)| history.info(sid).map(|i| i.unit.clone()))
                        .unwrap_or_else(|| m.kind.unit().to_owned());
                    (spark, unit)
                }
                None => (Vec::new(), String::new()),
            };
            let target = resource.target.as_ref().and_then(|t| {
                let kind = resource.metric(&t.metric)?.kind;
                Some(TargetLine {
                    value: t.value,
                    text: t.describe(kind),
                    upper_bound: t.comparator == Comparator::Le,
                })
            });
            let problem = problems.get(resource.id.as_str());
            let judged = view
                .status
                .judged
                .filter(|_| problem.is_none())
                .map(|v| v as f32);
            Card {
                id: resource.id.as_str().to_owned(),
                resource_type: resource.resource_type.to_string(),
                name: resource.name.clone(),
                metric: metric.map(|m| m.name.clone()).unwrap_or_default(),
                unit,
                value: if problem.is_some() {
                    None
                } else {
                    spark.last().copied().flatten()
                },
                spark,
                target,
                status: view.status.status,
                reason: problem
                    .cloned()
                    .unwrap_or_else(|| view.status.reason.clone()),
                top: top_line(resource.resource_type, top),
                evaluated: view.status.evaluated,
                pending: view.status.pending && problem.is_none(),
                target_state: TargetState::of(
                    resource.target.is_some(),
                    &view.status,
                    problem.is_some(),
                ),
                judged,
                judged_label: judged_label(resource),
                advice: view.status.advice.clone().filter(|_| problem.is_none()),
                forecast: view.status.forecast.clone().filter(|_| problem.is_none()),
                crossing: view.status.crossing.filter(|_| problem.is_none()),
                anomalies: view.status.anomalies.filter(|_| problem.is_none()),
                optimizer: view.status.optimizer.clone(),
            }
        })
        .collect();
    drop(history);
    let stats = store.stats();
    Overview {
        at_unix_ms,
        cards,
        change: stats.change,
        autosave_every: stats.autosave.every(),
        notices,
        alerts,
        replica,
    }
}

/// "rustc (pid 4242) 95.1 %" for CPU, "postgres (pid 7) 1.2 GiB" for memory.
pub(crate) fn top_line(resource_type: ResourceType, top: Option<&TopProcesses>) -> Option<String> {
    let top = top?;
    match resource_type {
        ResourceType::Cpu => top
            .by_cpu
            .first()
            .map(|p| format!("{} (pid {}) {:.1} %", p.name, p.pid, p.cpu_pct)),
        ResourceType::Memory => top.by_memory.first().map(|p| {
            let usage = app::format::reading(p.rss_bytes as f64, "bytes");
            format!("{} (pid {}) {usage}", p.name, p.pid)
        }),
        _ => None,
    }
}

/// What a target judges, in a few words: "p95 over 1 m" (its statistic over the
/// resource's evaluation window, `Analyzer::observe`'s); empty without a target.
pub(crate) fn judged_label(resource: &Resource) -> String {
    resource
        .target
        .as_ref()
        .map(|t| {
            format!(
                "{} over {}",
                t.statistic.as_str(),
                format_duration(resource.settings.window_secs)
            )
        })
        .unwrap_or_default()
}

/// The metric a card shows: the target's, else the first utilization metric, else the
/// first metric.
pub(crate) fn card_metric(resource: &Resource) -> Option<&Metric> {
    resource
        .target
        .as_ref()
        .and_then(|t| resource.metric(&t.metric))
        .or_else(|| {
            resource
                .metrics
                .iter()
                .find(|m| m.kind == MetricKind::Utilization)
        })
        .or_else(|| resource.metrics.first())
}
