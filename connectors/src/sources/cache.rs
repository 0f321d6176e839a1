//! What the cache sources (Redis, memcached) share: the resource a cache is, its series,
//! and the tracker that turns two counter readings into rates, keeps the client-side
//! probe latencies and notices a cache that came back cold.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use engine::cache::{CacheReport, ColdStart};
use engine::model::{MetricKind, Resource, ResourceId, ResourceSettings, ResourceType};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::SourceMark;

use super::MetricDef;
use crate::Refusal;

/// Probes kept for the client-side percentiles (a minute at 1 Hz).
const PROBE_WINDOW: usize = 60;
/// A keyspace that held at least this many keys and lost 90 % of them in one interval
/// was emptied (a flush, a failover to an empty replica), not evicted.
const EMPTIED_FROM_KEYS: u64 = 100;
/// Cold starts kept for the page.
const COLD_KEPT: usize = 10;

/// Checks what a cache runs when it comes back cold: an `http://` URL to POST to, or an
/// allow-listed program and its arguments (no shell).
pub(crate) fn validate_warm(
    url: &Option<String>,
    command: &Option<Vec<String>>,
) -> Result<(), Refusal> {
    if let Some(url) = url {
        if !url.starts_with("http://") || url.len() > 2048 || url.chars().any(char::is_whitespace) {
            return Err(Refusal::new(
                "warm_url",
                format!("must be an http:// URL, got {url:?}"),
            ));
        }
    }
    if let Some(command) = command {
        if command.first().is_none_or(|p| !p.starts_with('/')) || command.len() > 64 {
            return Err(Refusal::new("warm_command", "must be an absolute program path and its arguments, like [\"/usr/local/bin/warm\", \"--all\"]"));
        }
    }
    if url.is_some() && command.is_some() {
        return Err(Refusal::new(
            "warm_url",
            "give either warm_url or warm_command, not both",
        ));
    }
    Ok(())
}

/// Checks the hook an application owning its invalidation gets: an `http://` URL.
pub(crate) fn validate_hook(url: &Option<String>) -> Result<(), Refusal> {
    match url {
        Some(url)
            if !url.starts_with("http://")
                || url.len() > 2048
                || url.chars().any(char::is_whitespace) =>
        {
            Err(Refusal::new(
                "invalidate_url",
                format!("must be an http:// URL, got {url:?}"),
            ))
        }
        _ => Ok(()),
    }
}

/// The action a cache's warm-up settings describe.
pub(crate) fn warm_action(
    url: &Option<String>,
    command: &Option<Vec<String>>,
) -> Option<engine::model::ActionConfig> {
    use engine::model::{ActionConfig, CommandAction, WebhookAction};
    if let Some(url) = url {
        return Some(ActionConfig::Webhook(WebhookAction {
            url: url.clone(),
            timeout_ms: 5_000,
            max_retries: 2,
            secret: None,
            rollback_url: None,
        }));
    }
    let (program, args) = command.as_ref()?.split_first()?;
    Some(ActionConfig::Command(CommandAction {
        program: program.clone(),
        args: args.to_vec(),
        timeout_ms: 60_000,
        rollback: None,
    }))
}

/// The resource id of a cache: `cache:<name>`.
pub fn resource_id(name: &str) -> Result<ResourceId, Refusal> {
    ResourceId::new(&format!("cache:{name}")).map_err(|err| Refusal::new("name", err.to_string()))
}

/// What a preview or an invalidation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Matching {
    /// Keys that matched (and, for an invalidation, were unlinked).
    pub keys: u64,
    /// About how many keys were looked at.
    pub scanned: u64,
    /// The whole keyspace was scanned (no bound was hit).
    pub complete: bool,
}

/// A cache added from the Settings form or `POST /api/v1/caches`: the fields Redis and
/// memcached share, blanks already dropped.
#[derive(Debug, Clone, Default)]
pub struct NewCache {
    /// `redis` or `memcached`.
    pub kind: String,
    /// A Redis URL, or memcached's `host:port`.
    pub address: String,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub password_env: Option<String>,
    pub group: Option<String>,
    pub level: u8,
}

/// The settings of a cache added from the form, with the defaults of everything the
/// form does not ask (warm-up and invalidation hooks are the configuration file's).
pub fn configured(new: NewCache) -> Result<super::Configured, Refusal> {
    use super::{memcached, redis};
    match new.kind.as_str() {
        redis::KIND => Ok(super::Configured::new(redis::RedisSettings {
            url: new.address,
            tls_ca_file: new.tls_ca_file,
            username: new.username,
            password_file: new.password_file,
            password_env: new.password_env,
            group: new.group,
            level: new.level,
            max_memory_share_pct: redis::default_max_memory_share_pct(),
            rewrite_config: false,
            warm_url: None,
            warm_command: None,
            invalidate_url: None,
        })),
        memcached::KIND => {
            if new.username.is_some() || new.password_file.is_some() || new.password_env.is_some() {
                return Err(Refusal::new(
                    "password",
                    "memcached's text protocol has no authentication or TLS; leave username, password and CA file empty",
                ));
            }
            Ok(super::Configured::new(memcached::MemcachedSettings {
                address: new.address,
                group: new.group,
                level: new.level,
                max_memory_share_pct: redis::default_max_memory_share_pct(),
                warm_url: None,
                warm_command: None,
                invalidate_url: None,
            }))
        }
        other => Err(Refusal::new(
            "kind",
            format!("must be redis or memcached, got {other:?}"),
        )),
    }
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("hit_ratio", Some(MetricKind::Utilization), "%"),
    MetricDef::new("hits_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("misses_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("ops_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("memory_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("evicted_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("expired_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("latency", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p50", Some(MetricKind::Latency), "ms"),
    MetricDef::new("latency_p99", Some(MetricKind::Latency), "ms"),
    MetricDef::new("command_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("clients", None, "clients"),
    MetricDef::new("blocked_clients", None, "clients"),
    MetricDef::new("keys", None, "keys"),
    MetricDef::new("fragmentation_ratio", None, "ratio"),
];

/// The resource a cache is: the seed's default target (hit ratio ≥ 90 %), `defaults` as
/// settings, guardrails for memory tuning, and `spec` as its source.
pub fn resource(
    name: &str,
    spec: engine::model::SourceSpec,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    let id = resource_id(name)?;
    let mut resource = Resource::new(id, ResourceType::Cache, name);
    resource.metrics = MetricDef::metrics(METRICS);
    resource.settings = defaults.clone();
    // A memory change is rolled back at once if evictions double (and rise by at least
    // 1/s), latency triples or the host runs out of memory while it is verified.
    resource.settings.guardrails = vec![
        engine::actuator::Guardrail {
            resource: None,
            metric: "latency_p99".into(),
            max: None,
            // Sub-millisecond probes are noisy: only a tripling of the median, at least a
            // millisecond above it and held for seconds, is a signal.
            max_factor: Some(3.0),
            floor: None,
            hold: None,
        },
        engine::actuator::Guardrail {
            resource: None,
            metric: "evicted_per_s".into(),
            max: None,
            max_factor: Some(2.0),
            floor: None,
            hold: None,
        },
        engine::actuator::Guardrail {
            resource: Some("memory".into()),
            metric: "used_pct".into(),
            max: Some(90.0),
            max_factor: None,
            floor: None,
            hold: None,
        },
    ];
    resource.source = Some(spec);
    resource
        .validate()
        .map_err(|err| Refusal::of_engine("resource", err))?;
    Ok(resource)
}

pub(crate) fn series(resource: &Resource) -> Arc<[SeriesInfo]> {
    MetricDef::series(METRICS, resource)
}

/// One reading of a cache's counters and gauges.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    pub hits: u64,
    pub misses: u64,
    /// Commands (Redis) or gets + sets (memcached) processed.
    pub ops: u64,
    pub evicted: u64,
    pub expired: Option<u64>,
    pub used_bytes: u64,
    /// 0 = no limit.
    pub limit_bytes: u64,
    pub host_bytes: Option<u64>,
    pub clients: u64,
    pub blocked_clients: Option<u64>,
    pub keys: u64,
    pub fragmentation: Option<f64>,
    /// Identifies one run of the server (Redis' `run_id`, memcached's pid).
    pub run: String,
    pub uptime_s: u64,
    /// Server time per command over the interval, ms (Redis' commandstats).
    pub command_ms: Option<f64>,
}

/// Rates between readings, probe percentiles and cold-start detection for one cache.
pub(crate) struct Tracker {
    resource: String,
    last: Option<(Instant, Reading)>,
    probes: VecDeque<f64>,
    marks: Vec<SourceMark>,
    pub cold: VecDeque<ColdStart>,
}

impl Tracker {
    pub fn new(resource: &str) -> Tracker {
        Tracker {
            resource: resource.to_owned(),
            last: None,
            probes: VecDeque::with_capacity(PROBE_WINDOW),
            marks: Vec::new(),
            cold: VecDeque::new(),
        }
    }

    /// The tick of `reading` (taken at `now` after a probe of `probe_ms`) for `series`, and
    /// `report` as the source's details, with the cold starts seen so far.
    pub fn tick(
        &mut self,
        at: UnixMillis,
        now: Instant,
        probe_ms: f64,
        reading: Reading,
        mut report: CacheReport,
        series: &Arc<[SeriesInfo]>,
    ) -> (Tick, Option<serde_json::Value>) {
        let values = self.values(at, now, probe_ms, reading);
        report.cold = self.cold.iter().cloned().collect();
        let tick = Tick {
            at,
            series: series.clone(),
            values,
            top_processes: None,
        };
        (tick, serde_json::to_value(&report).ok())
    }

    /// The values of every series (in [`METRICS`] order) for `reading`, taken at `now`
    /// after a probe that took `probe_ms`.
    fn values(
        &mut self,
        at: UnixMillis,
        now: Instant,
        probe_ms: f64,
        reading: Reading,
    ) -> Vec<Option<f32>> {
        if self.probes.len() == PROBE_WINDOW {
            self.probes.pop_front();
        }
        self.probes.push_back(probe_ms);
        let probes = self.probes.make_contiguous();
        let (p50, p99) = (
            engine::stats::percentile(probes, 50.0),
            engine::stats::percentile(probes, 99.0),
        );
        let previous = self.last.take();
        if let Some((_, before)) = &previous {
            if let Some(label) = cold_start(before, &reading) {
                self.cold_start(at, label);
            }
        }
        // A restart resets the counters: no rate across it.
        let rates = previous
            .as_ref()
            .filter(|(_, before)| before.run == reading.run)
            .and_then(|(then, before)| {
                let secs = now.duration_since(*then).as_secs_f64();
                (secs > 0.0).then(|| {
                    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
                    let hits = reading.hits.saturating_sub(before.hits);
                    let misses = reading.misses.saturating_sub(before.misses);
                    Rates {
                        hit_ratio: (hits + misses > 0)
                            .then(|| hits as f64 / (hits + misses) as f64 * 100.0),
                        hits: rate(before.hits, reading.hits),
                        misses: rate(before.misses, reading.misses),
                        ops: rate(before.ops, reading.ops),
                        evicted: rate(before.evicted, reading.evicted),
                        expired: before.expired.zip(reading.expired).map(|(a, b)| rate(a, b)),
                    }
                })
            });
        let memory_pct = match (reading.limit_bytes, reading.host_bytes) {
            (0, Some(host)) if host > 0 => Some(reading.used_bytes as f64 / host as f64 * 100.0),
            (0, _) => None,
            (limit, _) => Some(reading.used_bytes as f64 / limit as f64 * 100.0),
        };
        let values = vec![
            rates.and_then(|r| r.hit_ratio),
            rates.map(|r| r.hits),
            rates.map(|r| r.misses),
            rates.map(|r| r.ops),
            memory_pct.map(|p| p.min(100.0)),
            rates.map(|r| r.evicted),
            rates.and_then(|r| r.expired),
            Some(probe_ms),
            p50,
            p99,
            reading.command_ms,
            Some(reading.clients as f64),
            reading.blocked_clients.map(|b| b as f64),
            Some(reading.keys as f64),
            reading.fragmentation,
        ];
        debug_assert_eq!(values.len(), METRICS.len());
        self.last = Some((now, reading));
        values.into_iter().map(|v| v.map(|v| v as f32)).collect()
    }

    fn cold_start(&mut self, at: UnixMillis, label: String) {
        self.marks.push(SourceMark {
            resource: self.resource.clone(),
            label: label.clone(),
        });
        self.cold.push_front(ColdStart {
            at_unix_ms: at,
            label,
        });
        self.cold.truncate(COLD_KEPT);
    }

    pub fn take_marks(&mut self) -> Vec<SourceMark> {
        std::mem::take(&mut self.marks)
    }
}

#[derive(Debug, Clone, Copy)]
struct Rates {
    hit_ratio: Option<f64>,
    hits: f64,
    misses: f64,
    ops: f64,
    evicted: f64,
    expired: Option<f64>,
}

/// Why `now` is a cold cache after `before`, if it is: the server restarted, or its
/// keyspace emptied.
fn cold_start(before: &Reading, now: &Reading) -> Option<String> {
    if before.run != now.run || now.uptime_s < before.uptime_s {
        return Some(format!(
            "cold cache: restarted (uptime {} s, {} keys)",
            now.uptime_s, now.keys
        ));
    }
    if before.keys >= EMPTIED_FROM_KEYS && now.keys <= before.keys / 10 {
        return Some(format!(
            "cold cache: keyspace emptied ({} → {} keys)",
            before.keys, now.keys
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reading(hits: u64, misses: u64, keys: u64, run: &str, uptime_s: u64) -> Reading {
        Reading {
            hits,
            misses,
            ops: hits + misses,
            keys,
            run: run.into(),
            uptime_s,
            used_bytes: 50,
            limit_bytes: 200,
            ..Reading::default()
        }
    }

    #[test]
    fn rates_hit_ratio_and_cold_starts() {
        let mut tracker = Tracker::new("cache:c");
        let t0 = Instant::now();
        let first = tracker.values(0, t0, 0.2, reading(100, 0, 500, "a", 10));
        assert_eq!(first[0], None, "one reading has no rate");
        assert_eq!(first[4], Some(25.0), "memory as % of the limit");
        let second = tracker.values(
            1000,
            t0 + Duration::from_secs(2),
            0.2,
            reading(280, 20, 500, "a", 12),
        );
        assert_eq!(second[0], Some(90.0), "180 hits, 20 misses");
        assert_eq!(second[1], Some(90.0), "hits per second over 2 s");
        assert!(tracker.take_marks().is_empty());

        let emptied = tracker.values(
            2000,
            t0 + Duration::from_secs(3),
            0.2,
            reading(280, 40, 3, "a", 13),
        );
        assert_eq!(emptied[0], Some(0.0), "only misses after the flush");
        let marks = tracker.take_marks();
        assert_eq!(marks.len(), 1);
        assert_eq!(
            marks[0].label,
            "cold cache: keyspace emptied (500 → 3 keys)"
        );

        let restarted = tracker.values(
            3000,
            t0 + Duration::from_secs(4),
            0.2,
            reading(0, 1, 0, "b", 1),
        );
        assert_eq!(restarted[0], None, "no rate across a restart");
        assert!(tracker.take_marks()[0]
            .label
            .starts_with("cold cache: restarted"));
        assert_eq!(tracker.cold.len(), 2);
        assert_eq!(tracker.cold[0].at_unix_ms, 3000, "newest first");
    }
}
