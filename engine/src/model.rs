//! The vocabulary of the seed document (AIR-008): resource types, metric kinds and
//! optimization statuses, plus the configuration built from them (resources, metrics,
//! targets, settings) with its validation rules. Stable string forms are part of the public contract: they
//! appear in URLs, config files, JSON and Prometheus labels.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;

/// What kind of thing a resource is. `Custom(id)` is a user-defined resource fed through
/// the push endpoint; its id is unique among custom resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Cpu,
    Memory,
    Disk,
    Network,
    Database,
    Cache,
    /// A load balancer's backend pool (`lb:<name>`).
    LoadBalancer,
    /// Many hosts read from a Prometheus-compatible store (`fleet:<name>`).
    Fleet,
    Custom(u32),
}

impl ResourceType {
    /// The built-in (non-custom) types, in display order.
    pub const BUILT_IN: [ResourceType; 8] = [
        ResourceType::Cpu,
        ResourceType::Memory,
        ResourceType::Disk,
        ResourceType::Network,
        ResourceType::Database,
        ResourceType::Cache,
        ResourceType::LoadBalancer,
        ResourceType::Fleet,
    ];

    /// Every type's word ([`ResourceType::kind`]), in display order.
    pub const KINDS: [&'static str; 9] = [
        "cpu", "memory", "disk", "network", "database", "cache", "lb", "fleet", "custom",
    ];

    /// The type's word without a custom resource's id: `cpu`, …, `lb`, `fleet`, `custom`
    /// (the [`Display`](fmt::Display) form is `custom:42`, the id of one custom resource).
    /// What alert channels route on and notifications call `resource_type`.
    pub fn kind(self) -> &'static str {
        match self {
            ResourceType::Cpu => "cpu",
            ResourceType::Memory => "memory",
            ResourceType::Disk => "disk",
            ResourceType::Network => "network",
            ResourceType::Database => "database",
            ResourceType::Cache => "cache",
            ResourceType::LoadBalancer => "lb",
            ResourceType::Fleet => "fleet",
            ResourceType::Custom(_) => "custom",
        }
    }

    /// Human label for the UI ("CPU", "Custom 42").
    pub fn label(self) -> String {
        match self {
            ResourceType::Cpu => "CPU".into(),
            ResourceType::Memory => "Memory".into(),
            ResourceType::Disk => "Disk".into(),
            ResourceType::Network => "Network".into(),
            ResourceType::Database => "Database".into(),
            ResourceType::Cache => "Cache".into(),
            ResourceType::LoadBalancer => "Load balancer".into(),
            ResourceType::Fleet => "Fleet".into(),
            ResourceType::Custom(id) => format!("Custom {id}"),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceType::Cpu => f.write_str("cpu"),
            ResourceType::Memory => f.write_str("memory"),
            ResourceType::Disk => f.write_str("disk"),
            ResourceType::Network => f.write_str("network"),
            ResourceType::Database => f.write_str("database"),
            ResourceType::Cache => f.write_str("cache"),
            ResourceType::LoadBalancer => f.write_str("lb"),
            ResourceType::Fleet => f.write_str("fleet"),
            ResourceType::Custom(id) => write!(f, "custom:{id}"),
        }
    }
}

/// Why a string is not a [`ResourceType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource type `{input}` is not valid: expected one of cpu, memory, disk, network, database, cache, lb, fleet or custom:<id> with id 0..=4294967295")]
pub struct ParseResourceTypeError {
    pub input: String,
}

impl FromStr for ResourceType {
    type Err = ParseResourceTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseResourceTypeError {
            input: s.to_owned(),
        };
        Ok(match s {
            "cpu" => ResourceType::Cpu,
            "memory" => ResourceType::Memory,
            "disk" => ResourceType::Disk,
            "network" => ResourceType::Network,
            "database" => ResourceType::Database,
            "cache" => ResourceType::Cache,
            "lb" => ResourceType::LoadBalancer,
            "fleet" => ResourceType::Fleet,
            other => {
                let id = other.strip_prefix("custom:").ok_or_else(err)?;
                // `u32::from_str` accepts a leading '+', which would break round-tripping.
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                ResourceType::Custom(id.parse().map_err(|_| err())?)
            }
        })
    }
}

impl Serialize for ResourceType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The three kinds of metric the seed names, plus a plain number. The unit follows from
/// the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Percent of capacity, 0–100.
    Utilization,
    /// Units per second (bytes/s, requests/s), ≥ 0.
    Throughput,
    /// Milliseconds, ≥ 0.
    Latency,
    /// A number without a unit (a queue depth, a count of workers): what a pushed metric
    /// is, since a push names no unit. Shown bare, never with a rate's "/s".
    Number,
}

impl MetricKind {
    /// The unit shown after a value; empty for [`MetricKind::Number`].
    pub fn unit(self) -> &'static str {
        match self {
            MetricKind::Utilization => "%",
            MetricKind::Throughput => "/s",
            MetricKind::Latency => "ms",
            MetricKind::Number => "",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Utilization => "utilization",
            MetricKind::Throughput => "throughput",
            MetricKind::Latency => "latency",
            MetricKind::Number => "number",
        }
    }
}

/// Where a resource stands against its target (seed names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizationStatus {
    /// Target breached, nothing done yet (also the state before any evaluation).
    #[default]
    NotOptimized,
    /// An action was applied and its verify window is running.
    Optimizing,
    /// Target met.
    Optimized,
    /// The action did not meet the target in its verify window, or errored.
    Failed,
}

impl OptimizationStatus {
    pub const ALL: [OptimizationStatus; 4] = [
        OptimizationStatus::NotOptimized,
        OptimizationStatus::Optimizing,
        OptimizationStatus::Optimized,
        OptimizationStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OptimizationStatus::NotOptimized => "not_optimized",
            OptimizationStatus::Optimizing => "optimizing",
            OptimizationStatus::Optimized => "optimized",
            OptimizationStatus::Failed => "failed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OptimizationStatus::NotOptimized => "Not optimized",
            OptimizationStatus::Optimizing => "Optimizing",
            OptimizationStatus::Optimized => "Optimized",
            OptimizationStatus::Failed => "Failed",
        }
    }
}

/// Where a resource's target stands, in the words people use: what every surface shows
/// (cards, pages, alerts, `/metrics`). [`OptimizationStatus`] is the optimizer's state
/// machine and reads backwards to a person ("Not optimized" for a firing alert);
/// what the optimizer does about a breach is [`OptimizerState`], shown apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// The resource has no target: nothing is judged.
    #[default]
    NoTarget,
    /// Too little data yet for a first verdict.
    Evaluating,
    /// The target is met (or inside its tolerance band).
    WithinTarget,
    /// Breached, but not yet for the target's `for`.
    Pending,
    /// Breached for the target's `for` (the alert fires), until it has recovered.
    Breaching,
    /// The source is down or the window holds too few samples to judge.
    NoData,
}

impl TargetState {
    /// Worst first: the order the overview sorts and counts by.
    pub const ALL: [TargetState; 6] = [
        TargetState::Breaching,
        TargetState::Pending,
        TargetState::NoData,
        TargetState::Evaluating,
        TargetState::WithinTarget,
        TargetState::NoTarget,
    ];

    /// Stable snake_case form (JSON, CSS classes, the `state` label of `/metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::NoTarget => "no_target",
            TargetState::Evaluating => "evaluating",
            TargetState::WithinTarget => "within_target",
            TargetState::Pending => "pending",
            TargetState::Breaching => "breaching",
            TargetState::NoData => "no_data",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TargetState::NoTarget => "No target",
            TargetState::Evaluating => "Evaluating",
            TargetState::WithinTarget => "Within target",
            TargetState::Pending => "Pending",
            TargetState::Breaching => "Breaching",
            TargetState::NoData => "No data",
        }
    }

    /// 0 for the worst ([`TargetState::Breaching`]), in the order of [`TargetState::ALL`].
    pub fn rank(self) -> u8 {
        match self {
            TargetState::Breaching => 0,
            TargetState::Pending => 1,
            TargetState::NoData => 2,
            TargetState::Evaluating => 3,
            TargetState::WithinTarget => 4,
            TargetState::NoTarget => 5,
        }
    }

    /// The one derivation, from what the monitor publishes: whether the resource has a
    /// target, its status and whether its source reports a problem. A pending breach
    /// shows before the first verdict too (it holds that verdict back); a window with no
    /// judged statistic after a verdict is no data, whatever the held verdict says; an
    /// action being verified or one that failed leaves the breach standing until the
    /// tracker sees the target met again.
    pub fn of(has_target: bool, status: &StatusReport, source_down: bool) -> TargetState {
        if !has_target {
            return TargetState::NoTarget;
        }
        if source_down {
            return TargetState::NoData;
        }
        if status.pending {
            return TargetState::Pending;
        }
        if !status.evaluated {
            return TargetState::Evaluating;
        }
        if status.judged.is_none() {
            return TargetState::NoData;
        }
        match status.status {
            OptimizationStatus::Optimized => TargetState::WithinTarget,
            OptimizationStatus::NotOptimized
            | OptimizationStatus::Optimizing
            | OptimizationStatus::Failed => TargetState::Breaching,
        }
    }
}

/// What the optimizer is doing, or did lately, about one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerPhase {
    /// An action (or a rollback) is running.
    Acting,
    /// A change is in effect and its verify window runs.
    Verifying,
    /// A change verified well and stays.
    Kept,
    /// A change was undone.
    RolledBack,
    /// An apply errored, a rollback did not restore, or a change that verified badly
    /// could not be undone.
    Failed,
    /// Changes in a row did not help: the optimizer waits for a person.
    NeedsAttention,
}

impl OptimizerPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerPhase::Acting => "acting",
            OptimizerPhase::Verifying => "verifying",
            OptimizerPhase::Kept => "kept",
            OptimizerPhase::RolledBack => "rolled_back",
            OptimizerPhase::Failed => "failed",
            OptimizerPhase::NeedsAttention => "needs_attention",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OptimizerPhase::Acting => "Acting",
            OptimizerPhase::Verifying => "Verifying",
            OptimizerPhase::Kept => "Kept",
            OptimizerPhase::RolledBack => "Rolled back",
            OptimizerPhase::Failed => "Failed",
            OptimizerPhase::NeedsAttention => "Needs attention",
        }
    }

    /// The optimizer is busy with the resource right now (the overview's "acting" count).
    pub fn is_active(self) -> bool {
        matches!(self, OptimizerPhase::Acting | OptimizerPhase::Verifying)
    }
}

/// The optimizer's state for one resource, when it has done something lately; derived
/// by the monitor from what its actuator bookkeeping holds and published with the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptimizerState {
    pub phase: OptimizerPhase,
    /// What the change is or was ("maxmemory 3mb → 64mb"), or why a person is needed, in
    /// a few words.
    pub detail: String,
    pub since_unix_ms: i64,
    /// While verifying: when the verify window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<i64>,
}

impl OptimizerState {
    /// One short line as of `now_ms`: "Verifying a change: maxmemory 3mb → 64mb, 40 s
    /// left", "Rolled back: maxmemory 3mb → 64mb".
    pub fn line(&self, now_ms: i64) -> String {
        let head = match self.phase {
            OptimizerPhase::Verifying => "Verifying a change",
            OptimizerPhase::Kept => "Kept a change",
            other => other.label(),
        };
        let mut line = if self.detail.is_empty() {
            head.to_owned()
        } else {
            format!("{head}: {}", self.detail)
        };
        if let Some(until) = self.until_unix_ms {
            let left = u32::try_from((until - now_ms).max(0) / 1000).unwrap_or(u32::MAX);
            line.push_str(&format!(", {} left", format_duration(left)));
        }
        line
    }
}

// ---------------------------------------------------------------------------------------
// Resources, metrics, targets and settings: the configuration the change store owns.
// ---------------------------------------------------------------------------------------

/// Longest accepted resource id; ids appear in URLs and Prometheus labels.
pub const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 200;
const MAX_METRICS: usize = 32;
const MAX_METRIC_NAME_LEN: usize = 64;
/// Durations above a week are almost certainly unit mistakes (ms typed as s).
const MAX_DURATION_SECS: u32 = 7 * 24 * 3600;

/// The stable id of a resource ("cpu", "memory", "disk:/", "net:eth0", "custom:42").
///
/// Backed by `Arc<str>` because ids are keys of every map the store clones on each
/// mutation: cloning an id must not allocate.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(Arc<str>);

impl ResourceId {
    /// Validates `id`: 1–128 characters, none of them whitespace or control characters
    /// (ids travel in URL paths and label values).
    pub fn new(id: &str) -> Result<Self, EngineError> {
        if id.is_empty() {
            return Err(EngineError::invalid("id", "must not be empty"));
        }
        if id.len() > MAX_ID_LEN {
            return Err(EngineError::invalid(
                "id",
                format!("must be at most {MAX_ID_LEN} bytes, got {}", id.len()),
            ));
        }
        if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(EngineError::invalid(
                "id",
                format!("must not contain whitespace or control characters, got {c:?} in `{id}`"),
            ));
        }
        Ok(ResourceId(Arc::from(id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl FromStr for ResourceId {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceId::new(s)
    }
}

impl std::borrow::Borrow<str> for ResourceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ResourceId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One metric a resource exposes, e.g. `utilization` (utilization) or `read_bytes` (throughput).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
}

impl Metric {
    pub fn new(name: &str, kind: MetricKind) -> Self {
        Metric {
            name: name.to_owned(),
            kind,
        }
    }
}

/// Direction of a target: stay at or below (`le`, latency, utilization) or at or above
/// (`ge`, throughput, hit ratio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    Le,
    Ge,
}

impl Comparator {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Le => "≤",
            Comparator::Ge => "≥",
        }
    }
}

/// Which statistic of the evaluation window a target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    Mean,
    P95,
    Max,
}

impl Statistic {
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Mean => "mean",
            Statistic::P95 => "p95",
            Statistic::Max => "max",
        }
    }
}

/// A metric's name in words, the one place a name becomes a label (cards, charts,
/// alerts, reports, the audit log): "hit_ratio" → "hit ratio", "latency_p95" → "latency
/// (p95)", "requests_per_s" → "requests" (the unit says "/s"), "queue_depth" → "queue
/// depth". The name itself stays what URLs, JSON and Prometheus labels carry.
pub fn metric_label(name: &str) -> String {
    let known = match name {
        "cpu" => "CPU",
        "read_bytes" => "bytes read",
        "write_bytes" => "bytes written",
        "rx_bytes" => "bytes received",
        "tx_bytes" => "bytes sent",
        "tps" => "transactions",
        "canary_ms" => "canary query time",
        "rollback_pct" => "rollbacks",
        "cache_hit_pct" => "cache hit ratio",
        "connections_pct" => "connections in use",
        "temp_bytes_per_s" => "temporary file writes",
        "memory_pct" => "memory used",
        "evicted_per_s" => "evictions",
        "expired_per_s" => "expirations",
        "ops_per_s" => "operations",
        "command_ms" => "command time",
        "response_ms" => "response time",
        "error_pct" => "errors",
        "accepts_per_s" => "accepted connections",
        "dropped_per_s" => "dropped connections",
        "breaching_pct" => "hosts breaching",
        "query_ms" => "query time",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let (base, percentile) = split_percentile(name);
    // The unit is shown with the value; in the name it only repeats it.
    let base = ["_per_s", "_per_min", "_pct", "_ms"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix).filter(|b| !b.is_empty()))
        .unwrap_or(base);
    let words = base.replace('_', " ");
    match percentile {
        Some(p) => format!("{words} ({p})"),
        None => words,
    }
}

/// `latency_p95` → (`latency`, `p95`): a series that is itself a percentile.
fn split_percentile(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('_') {
        Some((base, tail))
            if !base.is_empty()
                && tail.len() >= 3
                && tail.starts_with('p')
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            (base, Some(tail))
        }
        _ => (name, None),
    }
}

/// What a target judges, in words: "p95 utilization", "mean hit ratio". A target on a
/// series that is itself a percentile names that percentile once: "p95 latency" for the
/// p95 of `latency_p95` (never "p95 latency_p95"), "max of p99 latency" otherwise.
pub fn judged_label(statistic: Statistic, metric: &str) -> String {
    let stat = statistic.as_str();
    match split_percentile(metric) {
        (base, Some(p)) if p == stat => format!("{p} {}", metric_label(base)),
        (base, Some(p)) => format!("{stat} of {p} {}", metric_label(base)),
        (_, None) => format!("{stat} {}", metric_label(metric)),
    }
}

/// A partial edit of one metric's target: whatever is `None` keeps its current value.
/// Decided against the current configuration under the store's writer lock
/// ([`crate::changes::Mutation::EditTarget`]), so two concurrent edits of different
/// fields both survive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEdit {
    pub metric: String,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub for_secs: Option<u32>,
}

/// An objective on one metric of one resource, e.g. "p95 utilization ≤ 65 % for 5 m".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub metric: String,
    pub comparator: Comparator,
    pub value: f64,
    pub statistic: Statistic,
    /// How long the breach must last before it counts (Prometheus `for`); 0 = immediately.
    #[serde(default)]
    pub for_secs: u32,
}

impl Target {
    /// The default shape of a new target on `metric`: stay at or below `value`, judged on
    /// p95 with a 5-minute `for` (the seed's defaults). The browser's backtest preview uses
    /// it too, so what it shows is what gets saved.
    pub fn default_for(metric: &str, value: f64) -> Target {
        Target {
            metric: metric.to_owned(),
            comparator: Comparator::Le,
            value,
            statistic: Statistic::P95,
            for_secs: 300,
        }
    }

    /// The target `edit` produces from `current`: the existing target of the edited metric
    /// with the given fields replaced, or (another metric, or none yet) the default shape,
    /// which needs a value.
    pub fn edited(current: Option<&Target>, edit: &TargetEdit) -> Result<Target, EngineError> {
        let mut target = match (current.filter(|t| t.metric == edit.metric), edit.value) {
            (Some(existing), value) => Target {
                value: value.unwrap_or(existing.value),
                ..existing.clone()
            },
            (None, Some(value)) => Target::default_for(&edit.metric, value),
            (None, None) => {
                return Err(EngineError::invalid(
                    "target.value",
                    format!(
                        "is required: metric `{}` has no target yet to keep the value of",
                        edit.metric
                    ),
                ))
            }
        };
        if let Some(for_secs) = edit.for_secs {
            target.for_secs = for_secs;
        }
        Ok(target)
    }

    /// True when `observed` satisfies the target exactly (no tolerance).
    pub fn is_met(&self, observed: f64) -> bool {
        match self.comparator {
            Comparator::Le => observed <= self.value,
            Comparator::Ge => observed >= self.value,
        }
    }

    /// True when `observed` is beyond the target *and* beyond the dead-band of
    /// `tolerance_pct` % of the target value. Between the two the status holds, which is
    /// what keeps it from flapping around the threshold (HPA's 10 % band).
    pub fn is_breached(&self, observed: f64, tolerance_pct: f64) -> bool {
        let level = self.breach_level(tolerance_pct);
        match self.comparator {
            Comparator::Le => observed > level,
            Comparator::Ge => observed < level,
        }
    }

    /// Where a breach starts: the target's value moved outwards by the dead-band of
    /// `tolerance_pct` % of it (≤ 65 with 10 % breaches above 71.5; ≥ 90 below 81). Part of
    /// the target as shown, never hidden: see [`Target::threshold_text`].
    pub fn breach_level(&self, tolerance_pct: f64) -> f64 {
        let band = self.value.abs() * tolerance_pct / 100.0;
        match self.comparator {
            Comparator::Le => self.value + band,
            Comparator::Ge => self.value - band,
        }
    }

    /// "breaches above 71.5 %" (or "below" for an "at least" target), or `None` when the
    /// band is empty and the target's value is where breaches start.
    pub fn band_text(&self, kind: MetricKind, tolerance_pct: f64) -> Option<String> {
        let level = self.breach_level(tolerance_pct);
        if level == self.value || !level.is_finite() {
            return None;
        }
        let side = match self.comparator {
            Comparator::Le => "above",
            Comparator::Ge => "below",
        };
        Some(format!("breaches {side} {}", format_value(level, kind)))
    }

    /// The comparator and value as written with where breaches start:
    /// "≤ 65 % (breaches above 71.5 %)"; just "≤ 65 %" without a tolerance band.
    pub fn threshold_text(&self, kind: MetricKind, tolerance_pct: f64) -> String {
        let written = format!(
            "{} {}",
            self.comparator.symbol(),
            format_value(self.value, kind)
        );
        match self.band_text(kind, tolerance_pct) {
            Some(band) => format!("{written} ({band})"),
            None => written,
        }
    }

    /// [`Target::describe`] with the tolerance band stated:
    /// "p95 utilization ≤ 65 % (breaches above 71.5 %) for 5 m".
    pub fn describe_with_band(&self, kind: MetricKind, tolerance_pct: f64) -> String {
        let mut s = format!(
            "{} {}",
            judged_label(self.statistic, &self.metric),
            self.threshold_text(kind, tolerance_pct)
        );
        if self.for_secs > 0 {
            s.push_str(" for ");
            s.push_str(&format_duration(self.for_secs));
        }
        s
    }

    /// Human form, e.g. "p95 utilization ≤ 65 % for 5 m", "p95 latency ≤ 50 ms" (a target
    /// on `latency_p95` judged on its p95: the metric in words, the statistic once).
    pub fn describe(&self, kind: MetricKind) -> String {
        let mut s = format!(
            "{} {} {}",
            judged_label(self.statistic, &self.metric),
            self.comparator.symbol(),
            format_value(self.value, kind)
        );
        if self.for_secs > 0 {
            s.push_str(" for ");
            s.push_str(&format_duration(self.for_secs));
        }
        s
    }

    /// Checks the target against the metrics and settings of the resource it belongs to.
    pub fn validate(
        &self,
        metrics: &[Metric],
        settings: &ResourceSettings,
    ) -> Result<(), EngineError> {
        let Some(metric) = metrics.iter().find(|m| m.name == self.metric) else {
            let known: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(EngineError::invalid(
                "target.metric",
                format!(
                    "`{}` is not a metric of this resource (known: {})",
                    self.metric,
                    known.join(", ")
                ),
            ));
        };
        validate_metric_value("target.value", metric.kind, self.value)?;
        validate_duration("target.for_secs", self.for_secs, 0)?;
        if self.for_secs != 0 && self.for_secs < settings.step_secs {
            return Err(EngineError::invalid(
                "target.for_secs",
                format!(
                    "must be 0 or at least the sample interval of {} s, got {} s",
                    settings.step_secs, self.for_secs
                ),
            ));
        }
        Ok(())
    }
}

/// Checks that `value` is a possible reading of a metric of `kind`.
pub fn validate_metric_value(field: &str, kind: MetricKind, value: f64) -> Result<(), EngineError> {
    if !value.is_finite() {
        return Err(EngineError::invalid(
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    match kind {
        MetricKind::Utilization if !(0.0..=100.0).contains(&value) => Err(EngineError::invalid(
            field,
            format!("utilization must be within 0–100 %, got {value}"),
        )),
        MetricKind::Latency if value < 0.0 => Err(EngineError::invalid(
            field,
            format!("latency must not be negative, got {value}"),
        )),
        MetricKind::Throughput if value < 0.0 => Err(EngineError::invalid(
            field,
            format!("throughput must not be negative, got {value}"),
        )),
        _ => Ok(()),
    }
}

fn validate_duration(field: &str, secs: u32, min: u32) -> Result<(), EngineError> {
    if secs < min || secs > MAX_DURATION_SECS {
        return Err(EngineError::invalid(
            field,
            format!("must be within {min}–{MAX_DURATION_SECS} s, got {secs} s"),
        ));
    }
    Ok(())
}

/// "72.1 %", "80 ms", "1200 /s", "0.01 ms", "12" (a plain number): the unit follows the
/// metric kind, the number is [`format_number`]'s.
pub fn format_value(value: f64, kind: MetricKind) -> String {
    match kind.unit() {
        "" => format_number(value),
        unit => format!("{} {unit}", format_number(value)),
    }
}

/// A number as readings and targets are shown: from 1 up one decimal at most ("72.1",
/// "65", "1234.5"); below 1 two significant digits, so a small target keeps its precision
/// ("0.5", "0.25", "0.01", "0.004") instead of rounding to "0"; zero is "0".
pub fn format_number(value: f64) -> String {
    let a = value.abs();
    if !value.is_finite() {
        return format!("{value}");
    }
    if a >= 1.0 || a == 0.0 {
        let rounded = (value * 10.0).round() / 10.0;
        return format!("{rounded}");
    }
    // 0 < a < 1: the first significant digit is `-floor(log10 a)` places after the point.
    let decimals = ((-a.log10().floor()) as usize + 1).min(12);
    let fixed = format!("{value:.decimals$}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" | "" => "0".to_owned(),
        other => other.to_owned(),
    }
}

/// "2026-11-26 23:04:05" for a unix-ms time, in UTC so server and browser agree.
pub fn utc_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// "2026-11-26T23:04:05Z", for `<time datetime>`.
pub fn utc_iso(unix_ms: i64) -> String {
    utc_time(unix_ms).replacen(' ', "T", 1) + "Z"
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// "30 s", "5 m", "1 h 30 m": compact, for status reasons.
pub fn format_duration(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// What the optimizer does when a target stays breached. Recommendations are always
/// computed; `Webhook` and `Command` additionally act on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionConfig {
    #[default]
    Recommend,
    Webhook(WebhookAction),
    Command(CommandAction),
    /// Change one setting of the resource's own database (`ALTER SYSTEM` + reload), with
    /// the prior value captured and restored on a bad verification.
    DatabaseSetting(DatabaseSettingAction),
    /// Change one memory setting of the resource's own cache (Redis `CONFIG SET`,
    /// memcached `cache_memlimit`) within the cache's configured bound, with the prior
    /// value captured and restored on a bad verification.
    CacheSetting(CacheSettingAction),
    /// Move a load balancer's server weights toward their measured capacity (a slower or
    /// erroring server gets less), with the prior weights captured and restored on a bad
    /// verification.
    LbWeights(LbWeightsAction),
}

fn default_step_pct() -> u8 {
    50
}

fn default_min_weight() -> u32 {
    1
}

/// How far one weight shift goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbWeightsAction {
    /// How far each weight moves toward its capacity share, in % of the distance.
    #[serde(default = "default_step_pct")]
    pub step_pct: u8,
    /// No server in the pool goes below this weight.
    #[serde(default = "default_min_weight")]
    pub min_weight: u32,
}

/// `parameter = value` on the resource's cache; which parameters and values are allowed
/// is the cache connector's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettingAction {
    pub parameter: String,
    pub value: String,
}

/// `parameter = value` on the resource's database; which parameters are allowed is the
/// database connector's rule (reloadable ones only: a restart is never done for you).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettingAction {
    pub parameter: String,
    pub value: String,
}

impl ActionConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ActionConfig::Recommend => "recommend",
            ActionConfig::Webhook(_) => "webhook",
            ActionConfig::Command(_) => "command",
            ActionConfig::DatabaseSetting(_) => "database_setting",
            ActionConfig::CacheSetting(_) => "cache_setting",
            ActionConfig::LbWeights(_) => "lb_weights",
        }
    }

    /// What the action does, in words with its values: "Set Redis maxmemory to 128 MB",
    /// "Set database parameter work_mem to 8 MB", "Call webhook http://deployer:8080/scale",
    /// "Run command /usr/local/bin/scale-up 2". The one wording of an action wherever it
    /// is shown (audit log, before/after, settings); a URL's credentials and query are
    /// left out, since they may carry a token.
    pub fn describe(&self) -> String {
        match self {
            ActionConfig::Recommend => "Recommend only".to_owned(),
            ActionConfig::Webhook(w) => format!("Call webhook {}", shown_url(&w.url)),
            ActionConfig::Command(c) => {
                let line = std::iter::once(c.program.as_str())
                    .chain(c.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("Run command {line}")
            }
            ActionConfig::DatabaseSetting(d) => format!(
                "Set database parameter {} to {}",
                d.parameter,
                setting_value_words(&d.value)
            ),
            ActionConfig::CacheSetting(c) => {
                let (server, value) = match c.parameter.as_str() {
                    "maxmemory" => ("Redis", size_words(&c.value)),
                    "maxmemory-policy" => ("Redis", c.value.clone()),
                    "cache_memlimit" => ("memcached", size_words(&c.value)),
                    _ => ("the cache's", c.value.clone()),
                };
                format!("Set {server} {} to {value}", c.parameter)
            }
            ActionConfig::LbWeights(w) => format!(
                "Shift load-balancer weights {} % toward measured capacity",
                w.step_pct
            ),
        }
    }

    /// [`ActionConfig::describe`] for when only the kind is known (entries recorded before
    /// the description was): "Call a webhook", "Change a cache setting".
    pub fn kind_label(kind: &str) -> Option<&'static str> {
        Some(match kind {
            "recommend" => "Recommend only",
            "webhook" => "Call a webhook",
            "command" => "Run a command",
            "database_setting" => "Change a database setting",
            "cache_setting" => "Change a cache setting",
            "lb_weights" => "Shift load-balancer weights",
            _ => return None,
        })
    }
}

/// `scheme://host[:port]/path` of a URL: no userinfo, query or fragment (any of which may
/// hold a credential).
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// A memory size as a cache takes it ("128mb", "1gb", "134217728" bytes) in words:
/// "128 MB", "1 GB", "1.5 GB"; anything else as written.
fn size_words(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    let (digits, factor) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("b", 1),
    ]
    .iter()
    .find_map(|(unit, f)| v.strip_suffix(unit).map(|d| (d.trim().to_owned(), *f)))
    .unwrap_or((v.clone(), 1));
    let Some(bytes) = digits
        .parse::<u64>()
        .ok()
        .and_then(|d| d.checked_mul(factor))
    else {
        return value.to_owned();
    };
    let (amount, unit) = [(1u64 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")]
        .into_iter()
        .find(|(size, _)| bytes >= *size)
        .map_or((bytes as f64, "bytes"), |(size, unit)| {
            (bytes as f64 / size as f64, unit)
        });
    format!("{} {unit}", format_number(amount))
}

/// A PostgreSQL setting's value with its unit apart: "8MB" → "8 MB", "200ms" → "200 ms";
/// a value without a unit (which the parameter's own unit applies to) as written.
fn setting_value_words(value: &str) -> String {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|&i| i > 0);
    match split {
        Some(i)
            if matches!(
                &v[i..],
                "B" | "kB" | "MB" | "GB" | "TB" | "us" | "ms" | "s" | "min" | "h" | "d"
            ) =>
        {
            format!("{} {}", &v[..i], &v[i..])
        }
        _ => v.to_owned(),
    }
}

/// POST a JSON description of the breach to `url` (http:// only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    pub url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Name of a signing secret held by the action runner's configuration. The secret
    /// itself never enters resource state, so snapshots and audit records cannot leak it.
    #[serde(default)]
    pub secret: Option<String>,
    /// Where to POST (same body, `"phase": "rollback"`) to undo the change when its
    /// verification fails or a guardrail trips; without it the change is left in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_url: Option<String>,
}

/// Exec `program` with `args` (no shell); the runner only starts allow-listed programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Run (also from the allow-list, also without a shell) to undo the change when its
    /// verification fails or a guardrail trips; without it the change is left in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackCommand>,
}

/// The program and arguments that undo a command action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackCommand {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
}

fn default_timeout_ms() -> u32 {
    5_000
}

fn default_retries() -> u32 {
    2
}

impl ActionConfig {
    #[allow(clippy::too_many_lines)] // 121 lines today; split before it grows
    fn validate(&self) -> Result<(), EngineError> {
        let timeout = |field: &str, ms: u32| {
            if !(1..=120_000).contains(&ms) {
                return Err(EngineError::invalid(
                    field,
                    format!("must be within 1–120000 ms, got {ms}"),
                ));
            }
            Ok(())
        };
        match self {
            ActionConfig::Recommend => Ok(()),
            ActionConfig::Webhook(w) => {
                validate_http_url("settings.action.url", &w.url)?;
                if let Some(url) = &w.rollback_url {
                    validate_http_url("settings.action.rollback_url", url)?;
                }
                timeout("settings.action.timeout_ms", w.timeout_ms)?;
                if w.max_retries > 10 {
                    return Err(EngineError::invalid(
                        "settings.action.max_retries",
                        format!("must be within 0–10, got {}", w.max_retries),
                    ));
                }
                if w.secret.as_deref().is_some_and(str::is_empty) {
                    return Err(EngineError::invalid(
                        "settings.action.secret",
                        "must not be empty when set",
                    ));
                }
                Ok(())
            }
            ActionConfig::DatabaseSetting(d) => {
                let name_ok = !d.parameter.is_empty()
                    && d.parameter.len() <= 64
                    && d.parameter.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    });
                if !name_ok {
                    return Err(EngineError::invalid(
                        "settings.action.parameter",
                        format!(
                            "must be a database parameter name like work_mem or max_connections, got {:?}",
                            d.parameter
                        ),
                    ));
                }
                if d.value.trim().is_empty()
                    || d.value.len() > 256
                    || d.value.contains(['\0', '\n'])
                {
                    return Err(EngineError::invalid(
                        "settings.action.value",
                        "must be a value of 1–256 characters on one line, like 64MB",
                    ));
                }
                Ok(())
            }
            ActionConfig::LbWeights(w) => {
                if !(1..=100).contains(&w.step_pct) {
                    return Err(EngineError::invalid(
                        "settings.action.step_pct",
                        format!("must be within 1–100 %, got {}", w.step_pct),
                    ));
                }
                if !(1..=256).contains(&w.min_weight) {
                    return Err(EngineError::invalid(
                        "settings.action.min_weight",
                        format!(
                            "must be within 1–256 (HAProxy's weights), got {}",
                            w.min_weight
                        ),
                    ));
                }
                Ok(())
            }
            ActionConfig::CacheSetting(c) => {
                let name_ok = !c.parameter.is_empty()
                    && c.parameter.len() <= 64
                    && c.parameter
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch == '-');
                if !name_ok {
                    return Err(EngineError::invalid(
                        "settings.action.parameter",
                        format!(
                            "must be a cache setting name like maxmemory, got {:?}",
                            c.parameter
                        ),
                    ));
                }
                if c.value.trim().is_empty()
                    || c.value.len() > 64
                    || !c.value.chars().all(|ch| ch.is_ascii_graphic())
                {
                    return Err(EngineError::invalid(
                        "settings.action.value",
                        "must be a value of 1–64 visible characters, like 256mb or allkeys-lru",
                    ));
                }
                Ok(())
            }
            ActionConfig::Command(c) => {
                if c.program.is_empty() || c.program.contains('\0') {
                    return Err(EngineError::invalid(
                        "settings.action.program",
                        "must be a non-empty program path",
                    ));
                }
                validate_args("settings.action.args", &c.args)?;
                if let Some(rollback) = &c.rollback {
                    if rollback.program.is_empty() || rollback.program.contains('\0') {
                        return Err(EngineError::invalid(
                            "settings.action.rollback.program",
                            "must be a non-empty program path",
                        ));
                    }
                    validate_args("settings.action.rollback.args", &rollback.args)?;
                }
                timeout("settings.action.timeout_ms", c.timeout_ms)
            }
        }
    }

    /// Every program this action may start (for the allow-list check).
    pub fn programs(&self) -> Vec<&str> {
        match self {
            ActionConfig::Command(c) => std::iter::once(c.program.as_str())
                .chain(c.rollback.as_ref().map(|r| r.program.as_str()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn validate_http_url(field: &str, url: &str) -> Result<(), EngineError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        EngineError::invalid(
            field,
            format!("must start with http:// (TLS is terminated by your proxy), got `{url}`"),
        )
    })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EngineError::invalid(
            field,
            format!("must be an absolute http:// URL with a host, got `{url}`"),
        ));
    }
    Ok(())
}

fn validate_args(field: &str, args: &[String]) -> Result<(), EngineError> {
    if args.len() > 64 {
        return Err(EngineError::invalid(
            field,
            format!("at most 64 arguments, got {}", args.len()),
        ));
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(EngineError::invalid(
            format!("{field}[{i}]"),
            "must not contain NUL bytes",
        ));
    }
    Ok(())
}

/// Per-resource knobs of the Collect → Analyze → Optimize → Verify loop. The statistic and
/// the `for` duration belong to the [`Target`] because they only mean something with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSettings {
    /// Sample interval of the resource's series.
    pub step_secs: u32,
    /// Evaluation window the target's statistic is computed over.
    pub window_secs: u32,
    /// Dead-band around the target, in % of the target value.
    pub tolerance_pct: f64,
    /// How long a recovered resource must stay within target before it reads Optimized.
    pub stabilization_secs: u32,
    /// Minimum time between two actions on this resource.
    pub cooldown_secs: u32,
    /// Window after an action over which its effect is measured.
    pub verify_secs: u32,
    /// Window before an event used as the "before" of its before/after record.
    pub baseline_secs: u32,
    /// Current replica count, the basis of the HPA-style recommendation.
    pub replicas: u32,
    /// When true (the default) actions are described, never executed.
    pub dry_run: bool,
    pub action: ActionConfig,
    /// Bounds watched while an action is verified; crossing one rolls it back at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
    /// What becomes of a change whose verification finds no change (a rank test that
    /// sees no significant, large enough effect): rolled back by default, a change that
    /// does nothing should not linger.
    #[serde(default = "VerdictPolicy::no_change_default")]
    pub on_no_change: VerdictPolicy,
    /// What becomes of a change whose verification is inconclusive (too few samples):
    /// kept when the target is met after it, rolled back otherwise, by default.
    #[serde(default = "VerdictPolicy::inconclusive_default")]
    pub on_inconclusive: VerdictPolicy,
    /// Rollbacks in a row after which the optimizer stops acting on the resource and asks
    /// a person (the status says "needs attention"; alert channels with `notify_outcomes`
    /// are told once) until someone acknowledges its alert or edits the resource.
    #[serde(default = "default_attention_after")]
    pub attention_after: u32,
}

fn default_attention_after() -> u32 {
    3
}

/// What the verifier does with a change for a verdict that is neither better nor worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictPolicy {
    RollBack,
    Keep,
    /// Keep it when the target is met after the change, roll it back otherwise.
    KeepIfMet,
}

impl VerdictPolicy {
    fn no_change_default() -> Self {
        VerdictPolicy::RollBack
    }

    fn inconclusive_default() -> Self {
        VerdictPolicy::KeepIfMet
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VerdictPolicy::RollBack => "roll_back",
            VerdictPolicy::Keep => "keep",
            VerdictPolicy::KeepIfMet => "keep_if_met",
        }
    }

    /// Whether the change stays, given whether the target is met after it.
    pub fn keeps(self, target_met: bool) -> bool {
        match self {
            VerdictPolicy::RollBack => false,
            VerdictPolicy::Keep => true,
            VerdictPolicy::KeepIfMet => target_met,
        }
    }
}

impl Default for ResourceSettings {
    fn default() -> Self {
        ResourceSettings {
            step_secs: 1,
            window_secs: 60,
            tolerance_pct: 10.0,
            stabilization_secs: 60,
            cooldown_secs: 300,
            verify_secs: 120,
            baseline_secs: 300,
            replicas: 1,
            dry_run: true,
            action: ActionConfig::Recommend,
            guardrails: Vec::new(),
            on_no_change: VerdictPolicy::RollBack,
            on_inconclusive: VerdictPolicy::KeepIfMet,
            attention_after: default_attention_after(),
        }
    }
}

impl ResourceSettings {
    pub fn validate(&self) -> Result<(), EngineError> {
        validate_duration("settings.step_secs", self.step_secs, 1)?;
        for (field, secs) in [
            ("settings.window_secs", self.window_secs),
            ("settings.verify_secs", self.verify_secs),
            ("settings.baseline_secs", self.baseline_secs),
        ] {
            validate_duration(field, secs, 1)?;
            if secs < self.step_secs {
                return Err(EngineError::invalid(
                    field,
                    format!(
                        "window must not be shorter than the sample interval of {} s, got {secs} s",
                        self.step_secs
                    ),
                ));
            }
        }
        validate_duration("settings.stabilization_secs", self.stabilization_secs, 0)?;
        validate_duration("settings.cooldown_secs", self.cooldown_secs, 0)?;
        if !self.tolerance_pct.is_finite() || !(0.0..=100.0).contains(&self.tolerance_pct) {
            return Err(EngineError::invalid(
                "settings.tolerance_pct",
                format!(
                    "must be within 0–100 % of the target value, got {}",
                    self.tolerance_pct
                ),
            ));
        }
        if !(1..=10_000).contains(&self.replicas) {
            return Err(EngineError::invalid(
                "settings.replicas",
                format!("must be within 1–10000, got {}", self.replicas),
            ));
        }
        if self.guardrails.len() > 8 {
            return Err(EngineError::invalid(
                "settings.guardrails",
                format!("at most 8 guardrails, got {}", self.guardrails.len()),
            ));
        }
        for (i, guardrail) in self.guardrails.iter().enumerate() {
            guardrail.validate(&format!("settings.guardrails[{i}]"))?;
        }
        if !(1..=20).contains(&self.attention_after) {
            return Err(EngineError::invalid(
                "settings.attention_after",
                format!(
                    "must be within 1–20 rollbacks in a row, got {}",
                    self.attention_after
                ),
            ));
        }
        self.action.validate()
    }

    /// Number of samples in the evaluation window (at least one).
    pub fn window_samples(&self) -> usize {
        (self.window_secs / self.step_secs).max(1) as usize
    }
}

/// One watched thing: its identity, metrics, target and settings. This is configuration;
/// its live [`StatusReport`] is published beside it (see [`ResourceView`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub id: ResourceId,
    pub resource_type: ResourceType,
    pub name: String,
    pub metrics: Vec<Metric>,
    /// `None` means "no objective": the resource is charted but never breaches.
    #[serde(default)]
    pub target: Option<Target>,
    #[serde(default)]
    pub settings: ResourceSettings,
    /// The configured source that produces this resource's samples (a database, a cache,
    /// …); `None` for resources of the built-in sources (the host, pushes). Part of the
    /// configuration, so adding, changing and removing one is a counted change that
    /// snapshots and restore carry. Never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// A fleet's host metrics and their targets at three levels (fleet resources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Box<Fleet>>,
}

/// A configured source: its kind (`postgres`, `redis`, …) and its settings as the kind's
/// connector reads them (`connectors::sources::<kind>`, which validates them). Secrets are
/// never part of it: settings name where a secret is kept (`password_file`,
/// `password_env`), and the connector refuses a password given inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub kind: String,
    pub settings: serde_json::Value,
}

impl Resource {
    /// A resource with the default metrics, target (seed table) and settings of its type.
    pub fn new(id: ResourceId, resource_type: ResourceType, name: &str) -> Self {
        Resource {
            id,
            resource_type,
            name: name.to_owned(),
            metrics: default_metrics(resource_type),
            target: default_target(resource_type),
            settings: ResourceSettings::default(),
            source: None,
            fleet: None,
        }
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Kind of the target's metric, if there is a target.
    pub fn target_kind(&self) -> Option<MetricKind> {
        let t = self.target.as_ref()?;
        self.metric(&t.metric).map(|m| m.kind)
    }

    /// Checks every rule a resource must satisfy.
    pub fn validate(&self) -> Result<(), EngineError> {
        validate_name(&self.name)?;
        if self.metrics.is_empty() || self.metrics.len() > MAX_METRICS {
            return Err(EngineError::invalid(
                "metrics",
                format!(
                    "a resource exposes 1–{MAX_METRICS} metrics, got {}",
                    self.metrics.len()
                ),
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let ok = !m.name.is_empty()
                && m.name.len() <= MAX_METRIC_NAME_LEN
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(EngineError::invalid(
                    format!("metrics[{i}].name"),
                    format!(
                        "must be 1–{MAX_METRIC_NAME_LEN} characters of a–z, 0–9 and _, got {:?}",
                        m.name
                    ),
                ));
            }
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return Err(EngineError::invalid(
                    format!("metrics[{i}].name"),
                    format!("metric `{}` is listed twice", m.name),
                ));
            }
        }
        self.settings.validate()?;
        if let Some(fleet) = &self.fleet {
            fleet.validate(&self.settings)?;
        }
        if let Some(t) = &self.target {
            t.validate(&self.metrics, &self.settings)?;
        }
        Ok(())
    }
}

/// A display name: 1–200 characters, not blank.
pub fn validate_name(name: &str) -> Result<(), EngineError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN {
        return Err(EngineError::invalid(
            "name",
            format!("must be 1–{MAX_NAME_LEN} characters and not blank, got {name:?}"),
        ));
    }
    Ok(())
}

/// The metrics a resource of `t` exposes by default; the first is the one targets use.
pub fn default_metrics(t: ResourceType) -> Vec<Metric> {
    use MetricKind::*;
    let list: &[(&str, MetricKind)] = match t {
        ResourceType::Cpu => &[("utilization", Utilization)],
        ResourceType::Memory => &[("utilization", Utilization)],
        ResourceType::Disk => &[
            ("utilization", Utilization),
            ("read_bytes", Throughput),
            ("write_bytes", Throughput),
        ],
        ResourceType::Network => &[
            ("utilization", Utilization),
            ("rx_bytes", Throughput),
            ("tx_bytes", Throughput),
        ],
        ResourceType::Database => &[("latency", Latency), ("queries", Throughput)],
        ResourceType::Cache => &[("hit_ratio", Utilization), ("latency", Latency)],
        ResourceType::LoadBalancer => &[("response_ms", Latency), ("error_pct", Utilization)],
        // The store itself: the share of its hosts past their targets, and how long the
        // store takes to answer. The hosts' own metrics are in `Resource::fleet`.
        ResourceType::Fleet => &[("breaching_pct", Utilization), ("query_ms", Latency)],
        ResourceType::Custom(_) => &[("value", Utilization)],
    };
    list.iter().map(|&(n, k)| Metric::new(n, k)).collect()
}

/// The seed's benchmark table as default objectives: CPU ≤ 65 %, memory ≤ 60 %,
/// database latency ≤ 80 ms, network bandwidth ≤ 50 %, and a cache's hit ratio ≥ 90 %
/// (higher is better: judged on the mean, as a p95 of a ratio that should stay high
/// would hide the bad minutes); a load balancer's response time ≤ 200 ms (p95). Other
/// types have no default.
pub fn default_target(t: ResourceType) -> Option<Target> {
    let (metric, comparator, value, statistic) = match t {
        ResourceType::Cpu => ("utilization", Comparator::Le, 65.0, Statistic::P95),
        ResourceType::Memory => ("utilization", Comparator::Le, 60.0, Statistic::Mean),
        ResourceType::Database => ("latency", Comparator::Le, 80.0, Statistic::P95),
        ResourceType::Network => ("utilization", Comparator::Le, 50.0, Statistic::Mean),
        ResourceType::Cache => ("hit_ratio", Comparator::Ge, 90.0, Statistic::Mean),
        ResourceType::LoadBalancer => ("response_ms", Comparator::Le, 200.0, Statistic::P95),
        _ => return None,
    };
    Some(Target {
        metric: metric.into(),
        comparator,
        value,
        statistic,
        for_secs: 300,
    })
}

/// A resource's live standing, owned by the optimizer loop and published by the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub status: OptimizationStatus,
    /// Human reason, e.g. "p95 72.1 % > target 65 % for 5 m".
    pub reason: String,
    pub since_unix_ms: i64,
    /// False until the analyzer has judged the resource once (not enough samples yet, or
    /// no target): the status is then the seed's initial `NotOptimized`, not a verdict.
    #[serde(default)]
    pub evaluated: bool,
    /// The target is being breached but not yet for its `for` duration: `reason` then says
    /// for how long ("breaching for 2 m 40 s of 5 m: …") while `status` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The target's statistic over the latest evaluation window, exactly as the analyzer
    /// computed it for this verdict (`Analyzer::observe`); `None` when that window had too
    /// few samples or nothing was judged yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<f64>,
    /// What the optimizer is doing or did lately about the resource; `None` when it has
    /// done nothing recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerState>,
    /// While the judged statistic breaches the target: the recommendation for it
    /// (`actions::recommend_for`'s summary), the card's next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// When the target's metric trends toward the target: when it will cross it, with its
    /// interval ("breaches 80 % in ~3 h 10 m (2 h 40 m – 4 h 5 m)", `engine::forecast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<String>,
    /// The same crossing in numbers, for the chart's forecast line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing: Option<crate::forecast::Crossing>,
    /// How often the card's metric left its usual band in the last hour (the resource
    /// chart's 1-hour band, recounted once a minute); `None` before it could be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<crate::anomaly::Rate>,
}

impl Default for StatusReport {
    fn default() -> Self {
        StatusReport {
            status: OptimizationStatus::NotOptimized,
            reason: "not evaluated yet".into(),
            since_unix_ms: 0,
            evaluated: false,
            pending: false,
            judged: None,
            optimizer: None,
            advice: None,
            forecast: None,
            crossing: None,
            anomalies: None,
        }
    }
}

/// What the UI shows for one resource: its configuration plus its current status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    #[serde(flatten)]
    pub resource: Arc<Resource>,
    pub status: StatusReport,
}

/// Consecutive evaluations (one a second) a guardrail's level must stay past its bound
/// before it trips: one slow sample is noise, five in a row is a change.
pub const GUARDRAIL_HOLD_TICKS: u32 = 5;

/// A bound on a metric watched while an action is being verified: crossing it rolls the
/// action back at once instead of waiting for the window's verdict. It is judged on a
/// robust level (the median of the last [`GUARDRAIL_HOLD_TICKS`]-odd seconds, against the
/// baseline's median), held for [`Guardrail::hold`] evaluations in a row, and a relative
/// bound never sits closer to its baseline than an absolute floor (`floor`, else the
/// metric kind's: 1 ms, 1 point, 1/s), so sub-millisecond noise cannot trip "3×".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    /// The resource whose metric is watched; the acting resource when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub metric: String,
    /// Rolls back when the value goes above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Rolls back when the value goes above this many times its median over the baseline
    /// window before the action (e.g. 2 for "latency over 2× baseline").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_factor: Option<f64>,
    /// The least a relative bound sits above its baseline, in the metric's unit; the
    /// metric kind's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// Evaluations in a row past the bound before it trips; [`GUARDRAIL_HOLD_TICKS`]
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<u32>,
}

/// The absolute floor of a relative guardrail when it names none: what a person would
/// call "no real change" for the kind of metric.
pub fn default_floor(kind: MetricKind) -> f64 {
    match kind {
        MetricKind::Latency => 1.0,
        MetricKind::Utilization => 1.0,
        MetricKind::Throughput => 1.0,
        MetricKind::Number => 1.0,
    }
}

impl Guardrail {
    pub fn validate(&self, field: &str) -> Result<(), EngineError> {
        if self.metric.trim().is_empty() {
            return Err(EngineError::invalid(
                format!("{field}.metric"),
                "must name a metric",
            ));
        }
        match (self.max, self.max_factor) {
            (None, None) => Err(EngineError::invalid(
                field,
                "needs a bound: `max` (a value) or `max_factor` (× its baseline median)",
            )),
            (Some(max), _) if !max.is_finite() => Err(EngineError::invalid(
                format!("{field}.max"),
                format!("must be a finite number, got {max}"),
            )),
            (_, Some(factor)) if !(factor.is_finite() && factor > 1.0) => {
                Err(EngineError::invalid(
                    format!("{field}.max_factor"),
                    format!("must be a number above 1 (× the baseline), got {factor}"),
                ))
            }
            _ => Ok(()),
        }?;
        if let Some(floor) = self.floor.filter(|f| !(f.is_finite() && *f >= 0.0)) {
            return Err(EngineError::invalid(
                format!("{field}.floor"),
                format!("must be a finite number of at least 0, got {floor}"),
            ));
        }
        if let Some(hold) = self.hold.filter(|h| !(1..=600).contains(h)) {
            return Err(EngineError::invalid(
                format!("{field}.hold"),
                format!("must be within 1–600 evaluations in a row, got {hold}"),
            ));
        }
        Ok(())
    }

    /// The series it watches, for `acting` resource's actions.
    pub fn series<'a>(&'a self, acting: &'a str) -> (&'a str, &'a str) {
        (self.resource.as_deref().unwrap_or(acting), &self.metric)
    }

    /// Evaluations in a row past the bound before it trips.
    pub fn hold(&self) -> u32 {
        self.hold.unwrap_or(GUARDRAIL_HOLD_TICKS).max(1)
    }

    /// The bound in force given the baseline level (`None` without a baseline for a
    /// factor-only guardrail: then it cannot trip). A relative bound is at least `floor`
    /// (this guardrail's own, else the one given) above the baseline.
    pub fn limit(&self, baseline: Option<f64>, floor: f64) -> Option<f64> {
        let floor = self.floor.unwrap_or(floor).max(0.0);
        let by_factor = self
            .max_factor
            .zip(baseline)
            .map(|(f, b)| (f * b).max(b + floor));
        match (self.max, by_factor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Why a level of `value` is past this guardrail's bound, if it is (one evaluation;
    /// the caller holds it for [`Guardrail::hold`] in a row before tripping).
    pub fn tripped(
        &self,
        acting: &str,
        value: f64,
        baseline: Option<f64>,
        floor: f64,
    ) -> Option<String> {
        let limit = self.limit(baseline, floor)?;
        if value <= limit {
            return None;
        }
        let (resource, metric) = self.series(acting);
        let bound = match (self.max_factor, baseline) {
            (Some(f), Some(b)) if Some(f * b) == Some(limit) => {
                format!("{f}× its baseline median {}", round(b))
            }
            (Some(f), Some(b)) if Some(b + self.floor.unwrap_or(floor)) == Some(limit) => {
                format!(
                    "its baseline median {} + {} (the floor of a {f}× bound)",
                    round(b),
                    round(limit - b)
                )
            }
            _ => format!("{}", round(limit)),
        };
        Some(format!(
            "guardrail: {resource}/{metric} at {} (median) is above {bound}",
            round(value)
        ))
    }
}

/// What a fleet judges its hosts on, and the targets of its three levels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub metrics: Vec<FleetMetric>,
    #[serde(default)]
    pub targets: FleetTargets,
}

/// One metric of every host (`cpu`, `memory`, … or one the user defined with PromQL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetMetric {
    pub name: String,
    pub kind: MetricKind,
    pub unit: String,
}

/// Targets per metric at each level. A level without a target for a metric inherits the
/// one above it: host → group → default → the built-in default (the seed's table).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTargets {
    /// Metric → target, for every host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, Target>,
    /// Group key (`env=prod,role=db`) → metric → target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, BTreeMap<String, Target>>,
    /// Host (`instance` label) → metric → target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, BTreeMap<String, Target>>,
}

/// Two decimals, for bounds shown to people.
pub(crate) fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_type_string_form_round_trips() {
        let all = ResourceType::BUILT_IN.into_iter().chain([
            ResourceType::Custom(0),
            ResourceType::Custom(42),
            ResourceType::Custom(u32::MAX),
        ]);
        for t in all {
            let s = t.to_string();
            assert_eq!(s.parse::<ResourceType>().unwrap(), t, "{s}");
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<ResourceType>(&json).unwrap(), t);
        }
        assert_eq!(ResourceType::Custom(42).to_string(), "custom:42");
    }

    #[test]
    fn resource_type_kind_is_the_word_without_the_custom_id() {
        assert_eq!(ResourceType::Custom(42).kind(), "custom");
        assert_eq!(ResourceType::LoadBalancer.kind(), "lb");
        for t in ResourceType::BUILT_IN {
            assert_eq!(t.kind(), t.to_string(), "a built-in type is its own word");
        }
        let kinds: Vec<&str> = ResourceType::BUILT_IN
            .into_iter()
            .chain([ResourceType::Custom(0)])
            .map(ResourceType::kind)
            .collect();
        assert_eq!(kinds, ResourceType::KINDS);
    }

    #[test]
    fn resource_type_rejects_malformed_input_with_the_rule() {
        for bad in [
            "",
            "CPU",
            "custom:",
            "custom:+1",
            "custom:-1",
            "custom:4294967296",
            "gpu",
        ] {
            let err = bad.parse::<ResourceType>().unwrap_err();
            assert!(err.to_string().contains("expected one of"), "{bad}: {err}");
        }
    }

    #[test]
    fn metrics_and_targets_read_as_words() {
        assert_eq!(metric_label("latency_p95"), "latency (p95)");
        assert_eq!(metric_label("hit_ratio"), "hit ratio");
        assert_eq!(metric_label("requests_per_s"), "requests");
        assert_eq!(metric_label("response_ms"), "response time");
        assert_eq!(metric_label("queue_depth"), "queue depth");
        assert_eq!(metric_label("utilization"), "utilization");
        assert_eq!(judged_label(Statistic::P95, "latency_p95"), "p95 latency");
        assert_eq!(
            judged_label(Statistic::Max, "latency_p99"),
            "max of p99 latency"
        );
        assert_eq!(judged_label(Statistic::Mean, "hit_ratio"), "mean hit ratio");
        let on_p95 = Target {
            metric: "latency_p95".into(),
            comparator: Comparator::Le,
            value: 50.0,
            statistic: Statistic::P95,
            for_secs: 0,
        };
        assert_eq!(on_p95.describe(MetricKind::Latency), "p95 latency ≤ 50 ms");
        assert_eq!(
            on_p95.describe_with_band(MetricKind::Latency, 10.0),
            "p95 latency ≤ 50 ms (breaches above 55 ms)"
        );
    }

    #[test]
    fn a_plain_number_has_no_unit() {
        assert_eq!(MetricKind::Number.unit(), "");
        assert_eq!(format_value(12.0, MetricKind::Number), "12");
        assert_eq!(format_value(0.25, MetricKind::Number), "0.25");
        let kind: MetricKind = serde_json::from_str("\"number\"").unwrap();
        assert_eq!(kind, MetricKind::Number);
        assert!(validate_metric_value("target.value", MetricKind::Number, -3.0).is_ok());
    }

    #[test]
    fn actions_are_described_with_their_values() {
        let cache = |parameter: &str, value: &str| {
            ActionConfig::CacheSetting(CacheSettingAction {
                parameter: parameter.into(),
                value: value.into(),
            })
            .describe()
        };
        assert_eq!(cache("maxmemory", "128mb"), "Set Redis maxmemory to 128 MB");
        assert_eq!(
            cache("maxmemory", "67108864"),
            "Set Redis maxmemory to 64 MB"
        );
        assert_eq!(
            cache("maxmemory", "1536mb"),
            "Set Redis maxmemory to 1.5 GB"
        );
        assert_eq!(
            cache("maxmemory-policy", "allkeys-lru"),
            "Set Redis maxmemory-policy to allkeys-lru"
        );
        assert_eq!(
            cache("cache_memlimit", "32mb"),
            "Set memcached cache_memlimit to 32 MB"
        );
        let database = |value: &str| {
            ActionConfig::DatabaseSetting(DatabaseSettingAction {
                parameter: "work_mem".into(),
                value: value.into(),
            })
            .describe()
        };
        assert_eq!(database("8MB"), "Set database parameter work_mem to 8 MB");
        assert_eq!(database("4096"), "Set database parameter work_mem to 4096");
        let hook = ActionConfig::Webhook(WebhookAction {
            url: "http://ops:s3cret@deployer:8080/scale?token=abc".into(),
            timeout_ms: 1000,
            max_retries: 0,
            secret: None,
            rollback_url: None,
        });
        assert_eq!(hook.describe(), "Call webhook http://deployer:8080/scale");
        let command = ActionConfig::Command(CommandAction {
            program: "/usr/local/bin/scale-up".into(),
            args: vec!["--by".into(), "2".into()],
            timeout_ms: 1000,
            rollback: None,
        });
        assert_eq!(
            command.describe(),
            "Run command /usr/local/bin/scale-up --by 2"
        );
        assert_eq!(
            ActionConfig::kind_label("cache_setting"),
            Some("Change a cache setting")
        );
    }

    #[test]
    fn small_values_keep_their_precision_in_every_kind() {
        let cases = [
            (0.01, "0.01"),
            (0.004, "0.004"),
            (0.5, "0.5"),
            (12.34, "12.3"),
            (65.0, "65"),
            (1234.5, "1234.5"),
        ];
        for kind in [
            MetricKind::Utilization,
            MetricKind::Throughput,
            MetricKind::Latency,
        ] {
            for (value, number) in cases {
                assert_eq!(
                    format_value(value, kind),
                    format!("{number} {}", kind.unit()),
                    "{value} as {kind:?}"
                );
            }
        }
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(0.999), "1");
        assert_eq!(format_number(-0.004), "-0.004");
        assert_eq!(format_number(1e-15), "0");
        // A reading stored as f32 shows as what was typed.
        assert_eq!(format_number(f64::from(0.02f32)), "0.02");
        assert_eq!(format_number(f64::from(0.009f32)), "0.009");
    }

    #[test]
    fn a_small_target_is_shown_and_judged_exactly() {
        let t = Target {
            metric: "latency".into(),
            comparator: Comparator::Le,
            value: 0.01,
            statistic: Statistic::P95,
            for_secs: 0,
        };
        let kind = MetricKind::Latency;
        assert_eq!(t.threshold_text(kind, 0.0), "≤ 0.01 ms");
        assert_eq!(
            t.threshold_text(kind, 10.0),
            "≤ 0.01 ms (breaches above 0.011 ms)"
        );
        assert_eq!(t.describe(kind), "p95 latency ≤ 0.01 ms");
        for tolerance in [0.0, 10.0] {
            assert!(
                t.is_breached(0.02, tolerance),
                "0.02 breaches ({tolerance} %)"
            );
            assert!(
                !t.is_breached(0.009, tolerance),
                "0.009 meets ({tolerance} %)"
            );
        }
        assert!(!t.is_met(0.02) && t.is_met(0.009) && t.is_met(0.01));
        // Kept as typed through validation and an edit.
        let metrics = [Metric::new("latency", kind)];
        t.validate(&metrics, &ResourceSettings::default()).unwrap();
        let edited = Target::edited(
            Some(&t),
            &TargetEdit {
                metric: "latency".into(),
                value: Some(0.004),
                for_secs: None,
            },
        )
        .unwrap();
        assert_eq!(edited.value, 0.004);
        assert_eq!(edited.describe(kind), "p95 latency ≤ 0.004 ms");
    }

    #[test]
    fn target_state_is_derived_from_the_status_in_one_order() {
        let judged = |status, pending| StatusReport {
            status,
            evaluated: true,
            pending,
            judged: Some(72.0),
            ..StatusReport::default()
        };
        let breached = judged(OptimizationStatus::NotOptimized, false);
        let met = judged(OptimizationStatus::Optimized, false);
        assert_eq!(
            TargetState::of(false, &breached, true),
            TargetState::NoTarget
        );
        assert_eq!(TargetState::of(true, &breached, true), TargetState::NoData);
        assert_eq!(
            TargetState::of(true, &breached, false),
            TargetState::Breaching
        );
        assert_eq!(
            TargetState::of(true, &met, false),
            TargetState::WithinTarget
        );
        // A breach in progress shows before any verdict and over the held one.
        let pending = StatusReport {
            evaluated: false,
            ..judged(OptimizationStatus::NotOptimized, true)
        };
        assert_eq!(TargetState::of(true, &pending, false), TargetState::Pending);
        assert_eq!(
            TargetState::of(true, &judged(OptimizationStatus::Optimized, true), false),
            TargetState::Pending
        );
        assert_eq!(
            TargetState::of(true, &StatusReport::default(), false),
            TargetState::Evaluating
        );
        // A verdict whose latest window held too few samples is no data.
        let thin = StatusReport {
            judged: None,
            ..met.clone()
        };
        assert_eq!(TargetState::of(true, &thin, false), TargetState::NoData);
        for status in [OptimizationStatus::Optimizing, OptimizationStatus::Failed] {
            assert_eq!(
                TargetState::of(true, &judged(status, false), false),
                TargetState::Breaching
            );
        }
        let ranks: Vec<u8> = TargetState::ALL.iter().map(|s| s.rank()).collect();
        assert_eq!(ranks, [0, 1, 2, 3, 4, 5]);
        let words: std::collections::BTreeSet<&str> =
            TargetState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words.len(), TargetState::ALL.len());
    }

    #[test]
    fn optimizer_state_says_what_it_does_in_one_line() {
        let verifying = OptimizerState {
            phase: OptimizerPhase::Verifying,
            detail: "maxmemory 64mb → 128mb".into(),
            since_unix_ms: 0,
            until_unix_ms: Some(120_000),
        };
        assert_eq!(
            verifying.line(80_000),
            "Verifying a change: maxmemory 64mb → 128mb, 40 s left"
        );
        assert_eq!(
            verifying.line(130_000),
            "Verifying a change: maxmemory 64mb → 128mb, 0 s left"
        );
        let rolled_back = OptimizerState {
            phase: OptimizerPhase::RolledBack,
            until_unix_ms: None,
            ..verifying
        };
        assert_eq!(rolled_back.line(0), "Rolled back: maxmemory 64mb → 128mb");
        assert!(OptimizerPhase::Verifying.is_active() && !OptimizerPhase::Kept.is_active());
    }
}
