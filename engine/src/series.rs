//! Series identity and the per-tick sample shape shared by the collector, the history and
//! the push endpoint.
//!
//! A series is one metric of one resource, named by `(resource id, metric)` such as
//! `("cpu:core3", "utilization")`. The types live apart from `collect` because the browser
//! (wasm32, no `runtime` feature) renders them too, and apart from `history` because the
//! history must not care where samples come from.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{MetricKind, ResourceType};

/// Unix time in milliseconds: the one time unit of samples, history and pushes.
pub type UnixMillis = i64;

/// `(resource id, metric name)`, e.g. `("disk:/", "used_pct")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Resource id: `cpu`, `cpu:core3`, `memory`, `disk:/var`, `net:eth0`, `network`, `custom:42`.
    pub resource: String,
    /// Metric name within the resource: `utilization`, `rx_bytes`, `queue_depth`.
    pub metric: String,
}

impl SeriesKey {
    pub fn new(resource: impl Into<String>, metric: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            metric: metric.into(),
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource, self.metric)
    }
}

/// What a series is, for charts, targets and Prometheus labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub key: SeriesKey,
    pub resource_type: ResourceType,
    /// Human name of the resource ("CPU core 3", "Disk /var", "eth0").
    pub resource_name: String,
    /// `None` for plain gauges that are neither a percentage, a rate nor a latency (load
    /// average, available bytes); targets can still be set on them, `unit` says what they
    /// measure.
    pub kind: Option<MetricKind>,
    /// Display unit: `%`, `bytes/s`, `bytes`, `tasks`, or whatever a push declared.
    pub unit: String,
}

impl SeriesInfo {
    pub fn new(
        key: SeriesKey,
        resource_type: ResourceType,
        resource_name: impl Into<String>,
        kind: Option<MetricKind>,
        unit: impl Into<String>,
    ) -> Self {
        Self {
            key,
            resource_type,
            resource_name: resource_name.into(),
            kind,
            unit: unit.into(),
        }
    }
}

/// One process in a top-N list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    pub pid: u32,
    pub name: String,
    /// Percent of one core (can exceed 100 for multi-threaded processes).
    pub cpu_pct: f32,
    pub rss_bytes: u64,
}

/// The heaviest processes at one instant, by CPU and by resident memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TopProcesses {
    pub at: UnixMillis,
    pub by_cpu: Vec<ProcessSample>,
    pub by_memory: Vec<ProcessSample>,
}

/// Everything one collector tick produced.
///
/// `values[i]` belongs to `series[i]`; `None` is a gap (the read failed or the source is
/// gone), never a zero. Series indices are stable for the life of a collector: new
/// disks or interfaces are appended at the end, vanished ones keep their slot and report
/// gaps. `series` is shared (`Arc`) because it changes only on discovery, while a tick is
/// cloned to every subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub at: UnixMillis,
    pub series: Arc<[SeriesInfo]>,
    pub values: Vec<Option<f32>>,
    /// Present on the ticks where the slower process scan ran.
    pub top_processes: Option<Arc<TopProcesses>>,
}

impl Tick {
    /// Iterates `(series, value)` pairs of this tick.
    pub fn iter(&self) -> impl Iterator<Item = (&SeriesInfo, Option<f32>)> {
        self.series.iter().zip(self.values.iter().copied())
    }

    /// The value of one series in this tick, if the series exists and was read.
    pub fn value(&self, resource: &str, metric: &str) -> Option<f32> {
        self.iter()
            .find(|(s, _)| s.key.resource == resource && s.key.metric == metric)
            .and_then(|(_, v)| v)
    }
}
