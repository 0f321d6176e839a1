//! Prometheus exposition (`/metrics`, text format, prometheus-client).
//!
//! Values are read from the engine at scrape time rather than copied into gauges on every
//! tick: nothing is updated in the hot path, and a scrape always sees the published
//! state. Label cardinality is bounded by the collector's series cap.
//!
//! Served on its own listener (`--metrics-listen`, loopback by default) because it is for
//! Prometheus, not for the public; `--metrics-on-main-listener` also mounts it on the UI
//! listener.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use engine::model::{OptimizationStatus, TargetState};

use crate::state::monitor::Monitor;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry behind `/metrics`.
#[derive(Clone)]
pub struct Exposition {
    registry: Arc<Registry>,
}

impl Exposition {
    pub fn new(monitor: Monitor) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(EngineCollector { monitor }));
        registry.register_collector(Box::new(ProcessCollector));
        Exposition {
            registry: Arc::new(registry),
        }
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A router serving `/metrics` only.
    pub fn router(self) -> Router {
        Router::new().route("/metrics", get(serve)).with_state(self)
    }
}

/// Content negotiation as Prometheus client libraries do it: OpenMetrics for scrapers
/// that ask for it (Prometheus does), the classic text format for everyone else
/// (curl, `promtool check metrics`, older agents).
async fn serve(State(exposition): State<Exposition>, headers: axum::http::HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match exposition.render() {
        Ok(body) if wants_openmetrics => {
            ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
        }
        Ok(body) => ([(header::CONTENT_TYPE, CLASSIC)], classic_text(&body)).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: counter families are named
/// with their `_total` suffix, and `# UNIT`, `# EOF` and empty label sets go.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => match line.split_once("{} ") {
                Some((name, value))
                    if name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') =>
                {
                    out.push_str(&format!("{name} {value}"))
                }
                _ => out.push_str(line),
            },
        }
        out.push('\n');
    }
    out
}

type Labels = Vec<(&'static str, String)>;

fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

#[derive(Debug)]
struct EngineCollector {
    monitor: Monitor,
}

impl Collector for EngineCollector {
    #[allow(clippy::too_many_lines)] // 254 lines today; split before it grows
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let monitor = &self.monitor;
        let leadership = &monitor.leadership;
        if leadership.is_replicated() {
            gauge_family(
                &mut encoder,
                "perfpilot_leader",
                "1 while this replica holds the lease of the shared store and acts, 0 while it follows",
                None,
                [(
                    vec![("replica", leadership.replica().to_owned())],
                    f64::from(u8::from(leadership.leads())),
                )],
            )?;
            if let Some(age) = leadership.lease_age_secs() {
                gauge_family(
                    &mut encoder,
                    "perfpilot_lease_age",
                    "Time since the leader last renewed its lease (it steps down at 6 s; the lease lasts 8 s)",
                    Some(&Unit::Seconds),
                    [(Vec::new(), age)],
                )?;
            }
        }
        {
            let history = monitor.history();
            let latest: Vec<(Labels, f64)> = history
                .series()
                .iter()
                .filter_map(|info| {
                    let series = history.get(history.id(&info.key)?)?;
                    let (_, value) = series.latest()?;
                    Some((
                        vec![
                            ("resource", info.key.resource.clone()),
                            ("metric", info.key.metric.clone()),
                            ("unit", info.unit.clone()),
                        ],
                        f64::from(value?),
                    ))
                })
                .collect();
            gauge_family(
                &mut encoder,
                "perfpilot_resource_value",
                "Latest sample of each watched series (absent while the series is in a gap)",
                None,
                latest,
            )?;
            gauge_family(
                &mut encoder,
                "perfpilot_history",
                "Memory held by the history rings",
                Some(&Unit::Bytes),
                [(Vec::new(), history.memory_bytes() as f64)],
            )?;
        }

        // Fleets: every host's effective target (with where it comes from), its value and
        // whether it breaches, so the store's own alerting can use perfpilot's targets.
        let mut fleet_targets: Vec<(Labels, f64)> = Vec::new();
        let mut fleet_values: Vec<(Labels, f64)> = Vec::new();
        let mut fleet_breached: Vec<(Labels, f64)> = Vec::new();
        for fleet in monitor.configured.registries().fleets.all() {
            if monitor.configured.fleet(&fleet.id).is_err() {
                continue;
            }
            for row in fleet.export() {
                let labels = || -> Labels {
                    vec![
                        ("fleet", fleet.id.clone()),
                        ("instance", row.instance.clone()),
                        ("group", row.group.clone()),
                        ("metric", row.metric.clone()),
                    ]
                };
                if let Some((value, origin)) = row.target {
                    let mut l = labels();
                    l.push(("origin", origin.as_str().to_owned()));
                    fleet_targets.push((l, value));
                    fleet_breached.push((
                        labels(),
                        f64::from(u8::from(row.state == engine::fleet::CellState::Breached)),
                    ));
                }
                if let Some(value) = row.value {
                    fleet_values.push((labels(), value));
                }
            }
        }
        gauge_family(
            &mut encoder,
            "perfpilot_fleet_target_value",
            "Effective target of each fleet host's metric; origin is host, group, default or built_in",
            None,
            fleet_targets,
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_fleet_value",
            "Each fleet host's metric as judged: the target's statistic over the evaluation window",
            None,
            fleet_values,
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_fleet_breached",
            "1 while a fleet host's metric is past its effective target (beyond the dead-band)",
            None,
            fleet_breached,
        )?;

        let views = monitor.store.views();
        gauge_family(
            &mut encoder,
            "perfpilot_target_value",
            "Target value of each resource that has one",
            None,
            views.iter().filter_map(|view| {
                let target = view.resource.target.as_ref()?;
                Some((
                    vec![
                        ("resource", view.resource.id.as_str().to_owned()),
                        ("metric", target.metric.clone()),
                        (
                            "comparator",
                            format!("{:?}", target.comparator).to_lowercase(),
                        ),
                        ("statistic", target.statistic.as_str().to_owned()),
                    ],
                    target.value,
                ))
            }),
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_resource_status",
            "Optimization status of each resource, one-hot by status",
            None,
            views.iter().flat_map(|view| {
                OptimizationStatus::ALL.into_iter().map(move |status| {
                    (
                        vec![
                            ("resource", view.resource.id.as_str().to_owned()),
                            ("status", status.as_str().to_owned()),
                        ],
                        if view.status.status == status {
                            1.0
                        } else {
                            0.0
                        },
                    )
                })
            }),
        )?;
        // The target's state as the UI shows it (`TargetState::of`), one-hot by state.
        let problems = monitor.source_problems();
        gauge_family(
            &mut encoder,
            "perfpilot_target_state",
            "Target state of each resource (within_target, pending, breaching, no_data, evaluating, no_target), one-hot by state",
            None,
            views.iter().flat_map(|view| {
                let current = TargetState::of(
                    view.resource.target.is_some(),
                    &view.status,
                    problems.contains_key(view.resource.id.as_str()),
                );
                TargetState::ALL.into_iter().map(move |state| {
                    (
                        vec![
                            ("resource", view.resource.id.as_str().to_owned()),
                            ("state", state.as_str().to_owned()),
                        ],
                        f64::from(u8::from(state == current)),
                    )
                })
            }),
        )?;

        let stats = monitor.store.stats();
        counter(
            &mut encoder,
            "perfpilot_changes",
            "Accepted configuration changes",
            stats.change,
        )?;
        counter(
            &mut encoder,
            "perfpilot_snapshots_taken",
            "In-memory snapshots auto-saved since start",
            stats.snapshots_taken,
        )?;

        let ticks = monitor.tick_stats();
        counter(
            &mut encoder,
            "perfpilot_collector_ticks",
            "Collector ticks processed by the monitor",
            ticks.ticks,
        )?;
        counter(
            &mut encoder,
            "perfpilot_collector_gaps",
            "Samples recorded as gaps because a read failed or a series vanished",
            ticks.gaps,
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_monitor_tick_duration",
            "Time the monitor spent on the last tick (history append and analysis)",
            Some(&Unit::Seconds),
            [(Vec::new(), ticks.last_duration_secs)],
        )?;
        let foresight = encoder.encode_descriptor(
            "perfpilot_foresight",
            "Time spent refitting time-to-breach forecasts and counting anomalies",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(ticks.foresight_secs).encode(foresight)?;
        let mut executions = encoder.encode_descriptor(
            "perfpilot_action_executions",
            "Optimizer action executions by outcome",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in monitor.action_outcomes() {
            let labels: Labels = vec![("outcome", outcome.to_owned())];
            ConstCounter::new(count).encode(executions.encode_family(&labels)?)?;
        }
        let mut steps = encoder.encode_descriptor(
            "perfpilot_actuator_steps",
            "Actuator lifecycle steps (capture, apply, read_back, roll_back, read_back_roll_back) by result",
            None,
            MetricType::Counter,
        )?;
        for (step, ok, count) in monitor.actuator_steps() {
            let labels: Labels = vec![
                ("step", step.to_owned()),
                ("result", if ok { "ok" } else { "failed" }.to_owned()),
            ];
            ConstCounter::new(count).encode(steps.encode_family(&labels)?)?;
        }
        let alerting = monitor.alerting.metrics();
        gauge_family(
            &mut encoder,
            "perfpilot_alert",
            "1 for each alert pending (breached, not yet for its `for`) or firing",
            None,
            alerting.states.into_iter().map(|(resource, state)| {
                (
                    vec![("resource", resource), ("state", state.to_owned())],
                    1.0,
                )
            }),
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_notifications_waiting",
            "Notifications in the outbox not yet delivered (held, or being retried), per channel",
            None,
            alerting
                .channels
                .iter()
                .map(|c| (vec![("channel", c.channel.clone())], f64::from(c.waiting))),
        )?;
        gauge_family(
            &mut encoder,
            "perfpilot_notifications_failed",
            "Notifications given up (refused, or failing for 24 h), per channel, kept 7 days",
            None,
            alerting
                .channels
                .iter()
                .map(|c| (vec![("channel", c.channel.clone())], f64::from(c.failed))),
        )?;
        let sources = monitor.sources.statuses();
        gauge_family(
            &mut encoder,
            "perfpilot_source_up",
            "1 while a source produces samples, 0 while it is starting, failing or stopped",
            None,
            sources.values().map(|status| {
                (
                    vec![("source", status.id.clone()), ("kind", status.kind.clone())],
                    if status.health.is_up() { 1.0 } else { 0.0 },
                )
            }),
        )?;
        Ok(())
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(process) = ProcessStats::read() else {
            return Ok(());
        };
        let metric = encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(process.cpu_seconds).encode(metric)?;
        gauge_family(
            &mut encoder,
            "process_resident_memory",
            "Resident memory size",
            Some(&Unit::Bytes),
            [(Vec::new(), process.resident_bytes)],
        )?;
        gauge_family(
            &mut encoder,
            "process_virtual_memory",
            "Virtual memory size",
            Some(&Unit::Bytes),
            [(Vec::new(), process.virtual_bytes)],
        )?;
        gauge_family(
            &mut encoder,
            "process_open_fds",
            "Open file descriptors",
            None,
            [(Vec::new(), process.open_fds)],
        )?;
        gauge_family(
            &mut encoder,
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            [(Vec::new(), process.start_time_secs)],
        )?;
        Ok(())
    }
}

struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    start_time_secs: f64,
}

impl ProcessStats {
    /// Linux only; elsewhere the process metrics are simply absent.
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may itself contain spaces and parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let ticks_per_sec = 100.0; // USER_HZ: 100 on every Linux ABI perfpilot targets.
        let page_size = 4096.0;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .unwrap_or(0.0);
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / ticks_per_sec,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page_size,
            open_fds,
            start_time_secs: boot_time + field(22)? / ticks_per_sec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::classic_text;

    #[test]
    fn classic_text_names_counters_with_total_and_drops_openmetrics_only_lines() {
        let om = "# HELP a_things Things.\n# TYPE a_things counter\na_things_total 3\n\
                  # HELP b_bytes Bytes.\n# TYPE b_bytes gauge\n# UNIT b_bytes bytes\nb_bytes{} 1.0\n\
                  c{x=\"{} y\"} 2\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP a_things_total Things.\n# TYPE a_things_total counter\na_things_total 3\n\
             # HELP b_bytes Bytes.\n# TYPE b_bytes gauge\nb_bytes 1.0\nc{x=\"{} y\"} 2\n"
        );
    }
}
