//! Fleets: many hosts read from a Prometheus-compatible store, judged against targets
//! inherited from three levels — a default per metric, a group's target, a host's
//! override. The store is one resource (`fleet:<name>`); its [`Fleet`] holds the metrics
//! every host is judged on and the three levels of targets, so an edit at any level is one
//! counted change that snapshots, diffs and restores like any other.
//!
//! Pure and wasm-safe: the browser resolves inheritance and reads the wire types too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backtest::{backtest, Rule};
use crate::error::EngineError;
use crate::model::{Comparator, Metric, ResourceSettings, Statistic, Target};
use crate::optimizer::{Analyzer, Condition};
use crate::stats::SampleValue;

/// The group key of the whole fleet: the default level.
pub const ALL_HOSTS: &str = "*";

/// Most points the store returns per series (Prometheus' own query limit); every range
/// query picks a step that stays under it.
pub const MAX_POINTS: u64 = 11_000;

// The configuration is the model's (a resource holds it); judging it is this module's.
pub use crate::model::{Fleet, FleetMetric, FleetTargets};

/// A level of the inheritance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "level", content = "key", rename_all = "snake_case")]
pub enum Scope {
    Default,
    Group(String),
    Host(String),
}

impl Scope {
    /// "the fleet default", "group env=prod", "host web-1:9100".
    pub fn describe(&self) -> String {
        match self {
            Scope::Default => "the fleet default".into(),
            Scope::Group(key) => format!("group {key}"),
            Scope::Host(host) => format!("host {host}"),
        }
    }
}

/// Where an effective target comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// perfpilot's own default for the metric (the seed's table).
    BuiltIn,
    Default,
    Group,
    Host,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::BuiltIn => "built_in",
            Origin::Default => "default",
            Origin::Group => "group",
            Origin::Host => "host",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Origin::BuiltIn => "built-in default",
            Origin::Default => "fleet default",
            Origin::Group => "group target",
            Origin::Host => "host override",
        }
    }
}

/// perfpilot's default for a fleet metric: the seed's CPU ≤ 65 % (p95) and memory ≤ 60 %
/// (mean); other metrics have none until someone sets one.
pub fn built_in_target(metric: &str) -> Option<Target> {
    let (comparator, value, statistic) = match metric {
        "cpu" => (Comparator::Le, 65.0, Statistic::P95),
        "memory" => (Comparator::Le, 60.0, Statistic::Mean),
        _ => return None,
    };
    Some(Target {
        metric: metric.to_owned(),
        comparator,
        value,
        statistic,
        for_secs: 300,
    })
}

impl Fleet {
    pub fn metric(&self, name: &str) -> Option<&FleetMetric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The metrics as targets see them (name and kind).
    pub fn target_metrics(&self) -> Vec<Metric> {
        self.metrics
            .iter()
            .map(|m| Metric::new(&m.name, m.kind))
            .collect()
    }

    /// Every target at every level must name one of the fleet's metrics and keep its
    /// metric's rules; the field names the level.
    pub fn validate(&self, settings: &ResourceSettings) -> Result<(), EngineError> {
        if self.metrics.is_empty() {
            return Err(EngineError::invalid(
                "fleet.metrics",
                "a fleet needs at least one metric",
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let well_formed = !m.name.is_empty()
                && m.name.len() <= 64
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                return Err(EngineError::invalid(
                    format!("fleet.metrics[{i}].name"),
                    format!("`{}` must be 1–64 characters of a–z, 0–9 and _", m.name),
                ));
            }
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(EngineError::invalid(
                    format!("fleet.metrics[{i}].name"),
                    format!("metric `{}` is defined twice", m.name),
                ));
            }
        }
        let metrics = self.target_metrics();
        for (scope, metric, target) in self.targets.iter() {
            if target.metric != metric {
                return Err(EngineError::invalid(
                    "target.metric",
                    format!(
                        "the target of {} for `{metric}` names metric `{}`",
                        scope.describe(),
                        target.metric
                    ),
                ));
            }
            target.validate(&metrics, settings)?;
        }
        Ok(())
    }
}

impl FleetTargets {
    /// The target set at exactly `scope` for `metric`.
    pub fn get(&self, scope: &Scope, metric: &str) -> Option<&Target> {
        match scope {
            Scope::Default => self.defaults.get(metric),
            Scope::Group(key) => self.groups.get(key)?.get(metric),
            Scope::Host(host) => self.hosts.get(host)?.get(metric),
        }
    }

    /// Sets (or, with `None`, removes) the target of `metric` at `scope`. A level left
    /// with no target is dropped, so "reset to inherited" leaves no trace.
    pub fn set(&mut self, scope: &Scope, metric: &str, target: Option<Target>) {
        fn put(map: &mut BTreeMap<String, Target>, metric: &str, target: Option<Target>) {
            match target {
                Some(t) => {
                    map.insert(metric.to_owned(), t);
                }
                None => {
                    map.remove(metric);
                }
            }
        }
        match scope {
            Scope::Default => put(&mut self.defaults, metric, target),
            Scope::Group(key) | Scope::Host(key) => {
                let levels = if matches!(scope, Scope::Group(_)) {
                    &mut self.groups
                } else {
                    &mut self.hosts
                };
                let map = levels.entry(key.clone()).or_default();
                put(map, metric, target);
                if map.is_empty() {
                    levels.remove(key);
                }
            }
        }
    }

    /// The target that applies to `host` in `group` for `metric`, and where it comes from.
    pub fn effective(&self, metric: &str, group: &str, host: &str) -> Option<(Target, Origin)> {
        if let Some(t) = self.get(&Scope::Host(host.to_owned()), metric) {
            return Some((t.clone(), Origin::Host));
        }
        self.inherited(&Scope::Host(host.to_owned()), metric, group)
    }

    /// What `scope` would get for `metric` without a target of its own (`group` is the
    /// host's group when `scope` is a host).
    pub fn inherited(&self, scope: &Scope, metric: &str, group: &str) -> Option<(Target, Origin)> {
        if let Scope::Host(_) = scope {
            if let Some(t) = self.get(&Scope::Group(group.to_owned()), metric) {
                return Some((t.clone(), Origin::Group));
            }
        }
        if !matches!(scope, Scope::Default) {
            if let Some(t) = self.defaults.get(metric) {
                return Some((t.clone(), Origin::Default));
            }
        }
        built_in_target(metric).map(|t| (t, Origin::BuiltIn))
    }

    /// The target `scope` has for `metric`, its own or inherited.
    pub fn at(&self, scope: &Scope, metric: &str, group: &str) -> Option<(Target, Origin)> {
        let own = match scope {
            Scope::Default => Origin::Default,
            Scope::Group(_) => Origin::Group,
            Scope::Host(_) => Origin::Host,
        };
        match self.get(scope, metric) {
            Some(t) => Some((t.clone(), own)),
            None => self.inherited(scope, metric, group),
        }
    }

    /// The target an edit at `scope` makes for `metric`: the shape of the target the level
    /// has or inherits (statistic, direction, `for`), with `value` and, when given,
    /// `for_secs`; the default shape when nothing applies yet.
    pub fn candidate(
        &self,
        scope: &Scope,
        metric: &str,
        group: &str,
        value: f64,
        for_secs: Option<u32>,
    ) -> Target {
        let base = self
            .at(scope, metric, group)
            .map(|(t, _)| t)
            .unwrap_or_else(|| Target::default_for(metric, value));
        Target {
            metric: metric.to_owned(),
            value,
            for_secs: for_secs.unwrap_or(base.for_secs),
            ..base
        }
    }

    /// Every target with its level and metric.
    pub fn iter(&self) -> impl Iterator<Item = (Scope, &str, &Target)> {
        let defaults = self
            .defaults
            .iter()
            .map(|(m, t)| (Scope::Default, m.as_str(), t));
        let groups = self.groups.iter().flat_map(|(k, ts)| {
            ts.iter()
                .map(move |(m, t)| (Scope::Group(k.clone()), m.as_str(), t))
        });
        let hosts = self.hosts.iter().flat_map(|(k, ts)| {
            ts.iter()
                .map(move |(m, t)| (Scope::Host(k.clone()), m.as_str(), t))
        });
        defaults.chain(groups).chain(hosts)
    }
}

/// A host's group key: its values of the `group_by` labels, `env=prod,role=db`, in the
/// order configured; without `group_by` every host is in [`ALL_HOSTS`].
pub fn group_key(labels: &BTreeMap<String, String>, group_by: &[String]) -> String {
    if group_by.is_empty() {
        return ALL_HOSTS.to_owned();
    }
    group_by
        .iter()
        .map(|l| format!("{l}={}", labels.get(l).map(String::as_str).unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

/// How far past its target `observed` is, relative to the target (0.25 = a quarter past;
/// negative = inside it). Sorts hosts worst-first across metrics of different units.
pub fn severity(target: &Target, observed: f64) -> f64 {
    let scale = target.value.abs().max(1e-9);
    match target.comparator {
        Comparator::Le => (observed - target.value) / scale,
        Comparator::Ge => (target.value - observed) / scale,
    }
}

/// One host's metric judged on its recent samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub observed: Option<f64>,
    pub condition: Condition,
    pub severity: Option<f64>,
    /// The metric's newest value is still warming up ([`CellState::Warming`]): `observed`
    /// is that value, to be shown muted; nothing is judged on it (`condition` is
    /// `NoData`: not enough data yet, never a breach; no severity).
    pub warming: bool,
}

impl Judged {
    /// The cell's standing: [`CellState::Warming`] while the newest value warms up.
    pub fn state(&self) -> CellState {
        if self.warming {
            CellState::Warming
        } else {
            CellState::of(self.condition)
        }
    }
}

/// Judges the newest `window` samples of one host's metric (oldest first) on the target's
/// statistic, with the rule of a local resource ([`Analyzer::observe_window`]: coverage,
/// statistic, dead-band). Coverage is of the samples the host's ring holds of the window:
/// a store younger than the window has nothing before, which is not a gap of the host's.
pub fn judge(
    samples: &[Option<f32>],
    window: usize,
    target: &Target,
    tolerance_pct: f64,
) -> Judged {
    let window = &samples[samples.len().saturating_sub(window.max(1))..];
    let obs = Analyzer::new().observe_window(window, window.len(), target, tolerance_pct);
    Judged {
        observed: obs.observed,
        condition: obs.condition,
        severity: obs.observed.map(|v| severity(target, v)),
        warming: false,
    }
}

/// [`judge`], unless the metric's newest value is still warming up (`warming`: that
/// value). A `rate()` right after its series first appeared (a new store, a new host, a
/// series back after a gap) is extrapolated from the series' first samples and reads far
/// off (a 20 % host read 51 %) until its range is full: such a value is shown, muted and
/// marked, and judged nothing — not enough data yet, never a breach, no severity. The
/// source decides what is warming (it knows each series' first sample and rate range);
/// warming values are never in `samples`.
pub fn judge_warming(
    samples: &[Option<f32>],
    window: usize,
    target: &Target,
    tolerance_pct: f64,
    warming: Option<f32>,
) -> Judged {
    match warming {
        Some(value) => Judged {
            observed: Some(f64::from(value)),
            condition: Condition::NoData,
            severity: None,
            warming: true,
        },
        None => judge(samples, window, target, tolerance_pct),
    }
}

/// "Would this group target have fired?" over every host of the group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupBacktest {
    /// Hosts with at least one evaluated sample.
    pub hosts: usize,
    /// Hosts on which the target would have fired at least once.
    pub hosts_breached: usize,
    /// Share of all hosts' evaluated samples during which it was firing, 0–1: the share of
    /// host-time in breach.
    pub breach_fraction: f64,
    /// Separate breach episodes over all hosts.
    pub breaches: u32,
    /// Hosts with samples but no window full enough to judge (a new store, new hosts).
    #[serde(default)]
    pub hosts_warming: usize,
    /// The largest share of a window that held samples on a warming host, 0–1.
    #[serde(default)]
    pub best_coverage: f64,
    /// The rule's window: what "enough data" is measured against.
    #[serde(default)]
    pub window_secs: u32,
}

/// [`group_replay`] with the default rule (a 60 s window, a 10 % band). The fleet's own
/// rule is its resource's settings: the server calls [`group_replay`] with
/// `Rule::of(&fleet_resource.settings)`; this form is kept only for callers that have not
/// moved yet.
pub fn group_backtest<S: SampleValue>(
    hosts: &[Vec<S>],
    step_secs: u32,
    target: &Target,
) -> Result<GroupBacktest, EngineError> {
    group_replay(hosts, step_secs, target, &Rule::default())
}

/// Replays `target` over each host's series (one every `step_secs`) with the live
/// status's rule ([`crate::backtest::replay`]: the statistic over `rule`'s window in
/// steps, coverage, the tolerance band, `for`, recovery after stabilization), the same
/// rule the host's cell is judged with. A host's breaches are the episodes its status
/// would have spent breached.
pub fn group_replay<S: SampleValue>(
    hosts: &[Vec<S>],
    step_secs: u32,
    target: &Target,
    rule: &Rule,
) -> Result<GroupBacktest, EngineError> {
    let mut out = GroupBacktest {
        hosts: 0,
        hosts_breached: 0,
        breach_fraction: 0.0,
        breaches: 0,
        hosts_warming: 0,
        best_coverage: 0.0,
        window_secs: rule.window_secs,
    };
    let (mut firing, mut evaluated) = (0usize, 0usize);
    for series in hosts {
        let result = backtest(series, step_secs, target, rule)?;
        if result.evaluated_samples == 0 {
            if result.best_coverage > 0.0 {
                out.hosts_warming += 1;
                out.best_coverage = out.best_coverage.max(result.best_coverage);
            }
            continue;
        }
        out.hosts += 1;
        if result.breaches > 0 {
            out.hosts_breached += 1;
        }
        out.breaches += result.breaches;
        firing += result.firing_samples;
        evaluated += result.evaluated_samples;
    }
    if evaluated > 0 {
        out.breach_fraction = firing as f64 / evaluated as f64;
    }
    Ok(out)
}

impl GroupBacktest {
    /// "Would have been breached on 12 of 40 hosts, 3.1 % of the time, in the last 24 h".
    pub fn text(&self, period: &str) -> String {
        if self.hosts == 0 && self.hosts_warming > 0 {
            // The words every surface uses for a window too thin to judge, as a resource's
            // backtest says them: "Not enough data yet (10 of 300 s) …".
            let why = crate::optimizer::not_enough_data(self.best_coverage, self.window_secs);
            let hosts = match self.hosts_warming {
                1 => "its 1 host".to_owned(),
                n => format!("any of its {n} hosts"),
            };
            return format!(
                "N{} on {hosts} in the last {period} to test this target against.",
                &why[1..]
            );
        }
        if self.hosts == 0 {
            return format!("No host of this group has data in the last {period}.");
        }
        if self.hosts_breached == 0 {
            return format!(
                "Would not have been breached on any of {} hosts in the last {period}.",
                self.hosts
            );
        }
        format!(
            "Would have been breached on {} of {} hosts, {:.1} % of the time, in the last {period}.",
            self.hosts_breached,
            self.hosts,
            self.breach_fraction * 100.0
        )
    }
}

/// The step of a range query over `range_secs`: at least `min_step_secs` (the store's
/// scrape interval: finer steps repeat samples), and coarse enough that no series
/// exceeds [`MAX_POINTS`]. Rounded up to a whole number of `min_step_secs` so results
/// can be cached per step.
pub fn step_for(range_secs: u64, min_step_secs: u64, wanted_points: u64) -> u64 {
    let min_step = min_step_secs.max(1);
    let wanted = wanted_points.clamp(1, MAX_POINTS - 1);
    let step = range_secs.div_ceil(wanted).max(min_step);
    step.div_ceil(min_step) * min_step
}

// The wire types of the fleet pages: shared by the server and the browser.

/// A cell's standing: how one host's metric compares with its effective target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    Met,
    /// Past the target but inside the dead-band: not counted as a breach.
    Near,
    Breached,
    /// No target applies to this metric.
    NoTarget,
    NoData,
    /// The newest value is a rate still warming up (see [`judge_warming`]): shown muted
    /// with "warming up", never judged or counted as a breach.
    Warming,
}

impl CellState {
    pub fn of(condition: Condition) -> CellState {
        match condition {
            Condition::Met => CellState::Met,
            Condition::DeadBand => CellState::Near,
            Condition::Breached => CellState::Breached,
            Condition::NoData => CellState::NoData,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Met => "met",
            CellState::Near => "near",
            CellState::Breached => "breached",
            CellState::NoTarget => "no_target",
            CellState::NoData => "no_data",
            CellState::Warming => "warming",
        }
    }
}

/// One metric of one host on the fleet page (short field names: a page of 1,000 hosts
/// carries 4,000 of them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The target's statistic over the evaluation window (or the latest value without a
    /// target).
    #[serde(rename = "v")]
    pub value: Option<f32>,
    #[serde(rename = "s")]
    pub state: CellState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    pub instance: String,
    pub group: String,
    /// False when the selector says the host is down (`up == 0`) or it is gone.
    pub up: bool,
    /// The worst severity over its metrics (see [`severity`]).
    pub worst: Option<f32>,
    /// In the order of [`FleetView::metrics`].
    pub cells: Vec<Cell>,
}

impl HostRow {
    pub fn breaching(&self) -> bool {
        self.cells.iter().any(|c| c.state == CellState::Breached)
    }

    /// Up, with at least one metric still warming up (not judged yet on it).
    pub fn warming(&self) -> bool {
        self.up && self.cells.iter().any(|c| c.state == CellState::Warming)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub key: String,
    pub hosts: usize,
    pub breaching: usize,
    pub down: usize,
    /// Hosts with a metric still warming up ([`HostRow::warming`]), counted apart: a
    /// warming value is never a breach.
    #[serde(default)]
    pub warming: usize,
}

/// Hosts, breaching, warming up and down over `hosts`: the fleet page's summary. A host
/// breaching on one metric while another warms up is counted in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub hosts: usize,
    pub breaching: usize,
    pub warming: usize,
    pub down: usize,
}

impl Counts {
    pub fn of<'a>(hosts: impl IntoIterator<Item = &'a HostRow>) -> Counts {
        let mut c = Counts::default();
        for h in hosts {
            c.hosts += 1;
            c.breaching += usize::from(h.breaching());
            c.warming += usize::from(h.warming());
            c.down += usize::from(!h.up);
        }
        c
    }
}

/// Each group's counts, worst-first (most breaching hosts, then most down).
pub fn group_summaries(hosts: &[HostRow]) -> Vec<GroupSummary> {
    let mut groups: BTreeMap<&str, Vec<&HostRow>> = BTreeMap::new();
    for h in hosts {
        groups.entry(h.group.as_str()).or_default().push(h);
    }
    let mut out: Vec<GroupSummary> = groups
        .into_iter()
        .map(|(key, members)| {
            let c = Counts::of(members);
            GroupSummary {
                key: key.to_owned(),
                hosts: c.hosts,
                breaching: c.breaching,
                down: c.down,
                warming: c.warming,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.breaching, b.down)
            .cmp(&(a.breaching, a.down))
            .then_with(|| a.key.cmp(&b.key))
    });
    out
}

/// The fleet page's data: every host worst-first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    pub id: String,
    pub name: String,
    pub metrics: Vec<FleetMetric>,
    pub group_by: Vec<String>,
    /// When the store last answered (unix ms).
    pub refreshed_unix_ms: Option<i64>,
    /// The store's scrape interval: the page refreshes on it, not faster.
    pub interval_secs: u32,
    /// Why the data shown is old (the store unreachable, refusing…), or `None`.
    pub stale: Option<String>,
    /// Groups worst-first (most breaching hosts).
    pub groups: Vec<GroupSummary>,
    /// Hosts worst-first.
    pub hosts: Vec<HostRow>,
    pub queries_per_min: f64,
    pub query_budget_per_min: u32,
}

/// A range query's result on its grid: per host, one value per step from `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub start_secs: i64,
    pub step_secs: u64,
    pub points: usize,
    pub hosts: BTreeMap<String, Vec<Option<f32>>>,
}

/// One host as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostDetail {
    pub instance: String,
    pub group: String,
    pub labels: BTreeMap<String, String>,
    pub up: bool,
    pub metrics: Vec<HostMetric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMetric {
    pub metric: FleetMetric,
    pub observed: Option<f64>,
    pub state: CellState,
    /// The effective target and where it comes from.
    pub target: Option<(Target, Origin)>,
    /// What it would be without a host override.
    pub inherited: Option<(Target, Origin)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricKind;

    fn le(metric: &str, value: f64) -> Target {
        Target {
            metric: metric.into(),
            comparator: Comparator::Le,
            value,
            statistic: Statistic::Max,
            for_secs: 0,
        }
    }

    #[test]
    fn host_overrides_group_overrides_default_overrides_built_in() {
        let mut t = FleetTargets::default();
        let (_, origin) = t.effective("cpu", "env=prod", "a").unwrap();
        assert_eq!(origin, Origin::BuiltIn);
        assert!(t.effective("disk", "env=prod", "a").is_none());
        t.set(&Scope::Default, "cpu", Some(le("cpu", 80.0)));
        assert_eq!(
            t.effective("cpu", "env=prod", "a").unwrap(),
            (le("cpu", 80.0), Origin::Default)
        );
        t.set(
            &Scope::Group("env=prod".into()),
            "cpu",
            Some(le("cpu", 50.0)),
        );
        assert_eq!(
            t.effective("cpu", "env=prod", "a").unwrap().1,
            Origin::Group
        );
        assert_eq!(
            t.effective("cpu", "env=dev", "a").unwrap().1,
            Origin::Default
        );
        t.set(&Scope::Host("a".into()), "cpu", Some(le("cpu", 95.0)));
        assert_eq!(
            t.effective("cpu", "env=prod", "a").unwrap(),
            (le("cpu", 95.0), Origin::Host)
        );
        // What the host would fall back to is the group's.
        assert_eq!(
            t.inherited(&Scope::Host("a".into()), "cpu", "env=prod")
                .unwrap(),
            (le("cpu", 50.0), Origin::Group)
        );
        // Reset to inherited leaves no empty level behind.
        t.set(&Scope::Host("a".into()), "cpu", None);
        assert!(t.hosts.is_empty());
        assert_eq!(
            t.effective("cpu", "env=prod", "a").unwrap().1,
            Origin::Group
        );
        t.set(&Scope::Group("env=prod".into()), "cpu", None);
        assert!(t.groups.is_empty());
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn group_keys_follow_the_configured_label_order() {
        let labels: BTreeMap<String, String> =
            [("role".into(), "db".into()), ("env".into(), "prod".into())].into();
        assert_eq!(
            group_key(&labels, &["env".into(), "role".into()]),
            "env=prod,role=db"
        );
        assert_eq!(group_key(&labels, &["dc".into()]), "dc=");
        assert_eq!(group_key(&labels, &[]), ALL_HOSTS);
    }

    #[test]
    fn steps_never_exceed_the_store_point_limit_and_are_whole_scrape_intervals() {
        assert_eq!(step_for(3600, 15, 720), 15);
        assert_eq!(step_for(86_400, 15, 720), 120);
        let week = 7 * 86_400;
        let step = step_for(week, 15, MAX_POINTS);
        assert!(week / step < MAX_POINTS, "{step}");
        assert_eq!(step % 15, 0);
        assert_eq!(step_for(30 * 86_400, 1, 100_000), 236);
    }

    #[test]
    fn group_backtest_counts_hosts_and_host_time() {
        let t = le("load", 50.0);
        let hosts = vec![
            // Breached half the time.
            vec![Some(90.0f32), Some(90.0), Some(10.0), Some(10.0)],
            // Never.
            vec![Some(10.0f32), Some(10.0), Some(10.0), Some(10.0)],
            // Breached a quarter of its evaluated samples, with a gap.
            vec![None, Some(60.0f32), Some(10.0), Some(10.0), Some(10.0)],
            // No data at all: not counted.
            vec![None::<f32>, None],
        ];
        // Judged sample by sample: a one-step window, no band, recovery at once.
        let per_sample = Rule {
            window_secs: 60,
            tolerance_pct: 0.0,
            stabilization_secs: 0,
        };
        let r = group_replay(&hosts, 60, &t, &per_sample).unwrap();
        assert_eq!((r.hosts, r.hosts_breached, r.breaches), (3, 2, 2));
        assert!((r.breach_fraction - 3.0 / 12.0).abs() < 1e-9, "{r:?}");
        assert_eq!(
            r.text("24 h"),
            "Would have been breached on 2 of 3 hosts, 25.0 % of the time, in the last 24 h."
        );
    }

    #[test]
    fn group_replay_judges_hosts_with_the_fleets_rule() {
        // The built-in CPU ≤ 65 % (p95, for 5 m) with a fleet's 5 m window and 10 % band,
        // over an hour at 15 s steps.
        let cpu = built_in_target("cpu").unwrap();
        let rule = Rule {
            window_secs: 300,
            tolerance_pct: 10.0,
            stabilization_secs: 60,
        };
        // A steady 70 % host is past the target but inside its band: not a breach, and
        // the target says where breaches start. A host alternating 20/80 breaches its p95.
        let steady = vec![Some(70.0f32); 240];
        let alternating: Vec<Option<f32>> = (0..240)
            .map(|i| Some(if i % 2 == 0 { 20.0 } else { 80.0 }))
            .collect();
        let r = group_replay(&[steady, alternating], 15, &cpu, &rule).unwrap();
        assert_eq!((r.hosts, r.hosts_breached, r.breaches), (2, 1, 1));
        assert_eq!(
            cpu.threshold_text(MetricKind::Utilization, rule.tolerance_pct),
            "≤ 65 % (breaches above 71.5 %)"
        );
        assert_eq!(
            judge(&[Some(70.0); 20], 20, &cpu, rule.tolerance_pct).condition,
            Condition::DeadBand
        );
    }

    #[test]
    fn hosts_with_only_minutes_of_data_are_not_enough_data_not_no_data() {
        // A new store: two hosts with 10 samples each at 1 s steps, against a 5 m window.
        let cpu = built_in_target("cpu").unwrap();
        let rule = Rule {
            window_secs: 300,
            tolerance_pct: 10.0,
            stabilization_secs: 60,
        };
        let mut young: Vec<Option<f32>> = vec![None; 290];
        young.extend(std::iter::repeat_n(Some(40.0f32), 10));
        let r = group_replay(&[young.clone(), young, vec![None; 300]], 1, &cpu, &rule).unwrap();
        assert_eq!((r.hosts, r.hosts_warming), (0, 2), "{r:?}");
        assert_eq!(
            r.text("24 hours"),
            "Not enough data yet (10 of 300 s) on any of its 2 hosts in the last 24 hours to test this target against."
        );
        let none = group_replay(&[vec![None::<f32>; 300]], 1, &cpu, &rule).unwrap();
        assert_eq!(
            none.text("24 hours"),
            "No host of this group has data in the last 24 hours."
        );
    }

    #[test]
    fn judging_uses_the_statistic_coverage_and_dead_band() {
        let t = Target {
            statistic: Statistic::Mean,
            ..le("cpu", 50.0)
        };
        let j = judge(&[Some(100.0), Some(60.0), Some(60.0)], 2, &t, 10.0);
        assert_eq!((j.observed, j.condition), (Some(60.0), Condition::Breached));
        assert!((j.severity.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(
            judge(&[Some(54.0)], 1, &t, 10.0).condition,
            Condition::DeadBand
        );
        assert_eq!(
            judge(&[Some(54.0), None, None], 3, &t, 10.0).condition,
            Condition::NoData
        );
        let ge = Target {
            comparator: Comparator::Ge,
            ..t
        };
        assert!(severity(&ge, 40.0) > 0.0 && severity(&ge, 60.0) < 0.0);
    }

    #[test]
    fn a_warming_value_is_shown_but_never_judged_or_counted_as_a_breach() {
        let cpu = built_in_target("cpu").unwrap();
        // A window that would breach, and a newest value still warming up (a 20 % host's
        // first rate reading 51 %): the value is shown, nothing is judged on it.
        let window = [Some(90.0f32); 4];
        let j = judge_warming(&window, 4, &cpu, 10.0, Some(51.0));
        assert!(j.warming);
        assert_eq!(j.state(), CellState::Warming);
        assert_eq!((j.observed, j.severity), (Some(51.0), None));
        assert_eq!(j.condition, Condition::NoData);
        // Without a warming value it is the ordinary judgement.
        let j = judge_warming(&window, 4, &cpu, 10.0, None);
        assert_eq!((j.warming, j.state()), (false, CellState::Breached));
        assert_eq!(CellState::Warming.as_str(), "warming");

        fn row(instance: &str, group: &str, up: bool, states: &[CellState]) -> HostRow {
            HostRow {
                instance: instance.into(),
                group: group.into(),
                up,
                worst: None,
                cells: states
                    .iter()
                    .map(|&state| Cell {
                        value: Some(51.0),
                        state,
                    })
                    .collect(),
            }
        }
        let hosts = vec![
            row("a", "g1", true, &[CellState::Warming, CellState::Met]),
            row("b", "g1", true, &[CellState::Warming, CellState::Breached]),
            row("c", "g1", true, &[CellState::Met, CellState::Met]),
            row("d", "g2", true, &[CellState::Warming, CellState::NoTarget]),
            row("e", "g2", false, &[CellState::NoData, CellState::NoData]),
        ];
        assert!(!hosts[0].breaching() && hosts[0].warming());
        // Breaching on another metric while warming up: counted in both.
        assert!(hosts[1].breaching() && hosts[1].warming());
        assert!(!hosts[4].warming(), "a host that is down is not warming up");
        assert_eq!(
            Counts::of(&hosts),
            Counts {
                hosts: 5,
                breaching: 1,
                warming: 3,
                down: 1
            }
        );
        let groups = group_summaries(&hosts);
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.key.as_str(), g.hosts, g.breaching, g.warming, g.down))
                .collect::<Vec<_>>(),
            vec![("g1", 3, 1, 2, 0), ("g2", 2, 0, 1, 1)]
        );
        // Nothing but warming values: no breach anywhere.
        let warming_only = vec![row(
            "x",
            "g",
            true,
            &[CellState::Warming, CellState::Warming],
        )];
        assert_eq!(Counts::of(&warming_only).breaching, 0);
        assert_eq!(group_summaries(&warming_only)[0].breaching, 0);
    }

    #[test]
    fn validation_names_the_level_and_the_metric() {
        let fleet = Fleet {
            metrics: vec![FleetMetric {
                name: "cpu".into(),
                kind: MetricKind::Utilization,
                unit: "%".into(),
            }],
            targets: FleetTargets::default(),
        };
        let mut bad = fleet.clone();
        bad.targets
            .set(&Scope::Group("env=x".into()), "cpu", Some(le("cpu", 150.0)));
        let err = bad
            .validate(&ResourceSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("target.value"), "{err}");
        let mut unknown = fleet.clone();
        unknown
            .targets
            .set(&Scope::Default, "disk", Some(le("disk", 5.0)));
        let err = unknown
            .validate(&ResourceSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`disk` is not a metric"), "{err}");
        fleet.validate(&ResourceSettings::default()).unwrap();
    }
}
