//! What a cache source reports besides its series (the server, its memory, the busiest
//! commands over the last interval, cold starts), and how the levels of a multi-level
//! cache combine. Pure and wasm-safe: the browser renders the same types.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheReport {
    pub at_unix_ms: i64,
    /// "Redis 7.0.15", "memcached 1.6.18".
    pub server: String,
    pub memory: CacheMemory,
    /// Busiest first (calls over the last interval); Redis only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandStat>,
    /// Keys (items) stored now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Why the memory setting cannot be tuned here (`CONFIG` renamed away, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning_unavailable: Option<String>,
    /// Why keys cannot be invalidated by pattern here (memcached cannot list keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_unavailable: Option<String>,
    /// The latest cold starts seen (restarts, a keyspace that emptied), newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cold: Vec<ColdStart>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheMemory {
    pub used_bytes: u64,
    /// The configured limit (`maxmemory`, `limit_maxbytes`); 0 = none.
    pub limit_bytes: u64,
    /// The cache host's memory when the server says it (Redis' `total_system_memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_bytes: Option<u64>,
    /// What happens at the limit (`maxmemory-policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// One command over the last interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStat {
    pub command: String,
    pub calls_per_s: f64,
    /// Server-side time per call over the interval, µs.
    pub usec_per_call: f64,
    /// Server-side percentiles since the statistics were last reset (`INFO latencystats`),
    /// µs; absent before Redis 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    pub at_unix_ms: i64,
    pub label: String,
}

/// One level of a multi-level cache, as its group's panel shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheLevel {
    pub resource: String,
    pub name: String,
    /// 1 is nearest the application; the misses of level n are the requests of level n+1.
    pub level: u8,
    /// Latest hit ratio (%), and hits and misses per second, while fresh.
    pub hit_ratio: Option<f64>,
    pub hits_per_s: Option<f64>,
    pub misses_per_s: Option<f64>,
}

/// Caches configured with the same `group`: the levels in front of one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheGroup {
    pub group: String,
    /// Nearest the application first.
    pub levels: Vec<CacheLevel>,
    /// The share of requests some level answered, %: 1 − Π(1 − hᵢ) over the levels with a
    /// hit ratio.
    pub combined_hit_ratio: Option<f64>,
}

impl CacheGroup {
    /// Orders `levels` and combines their hit ratios.
    pub fn of(group: String, mut levels: Vec<CacheLevel>) -> CacheGroup {
        levels.sort_by(|a, b| a.level.cmp(&b.level).then(a.name.cmp(&b.name)));
        let ratios: Vec<f64> = levels.iter().filter_map(|l| l.hit_ratio).collect();
        let combined_hit_ratio = (!ratios.is_empty()).then(|| {
            let missed = ratios
                .iter()
                .map(|h| 1.0 - (h / 100.0).clamp(0.0, 1.0))
                .product::<f64>();
            (1.0 - missed) * 100.0
        });
        CacheGroup {
            group,
            levels,
            combined_hit_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(name: &str, level: u8, hit_ratio: Option<f64>) -> CacheLevel {
        CacheLevel {
            resource: format!("cache:{name}"),
            name: name.into(),
            level,
            hit_ratio,
            hits_per_s: None,
            misses_per_s: None,
        }
    }

    #[test]
    fn levels_combine_as_chained_misses() {
        // L1 answers 80 %, L2 answers half of the rest: 90 % never reach the database.
        let group = CacheGroup::of(
            "app".into(),
            vec![level("redis", 2, Some(50.0)), level("local", 1, Some(80.0))],
        );
        assert_eq!(
            group.levels[0].name, "local",
            "nearest the application first"
        );
        let combined = group.combined_hit_ratio.unwrap();
        assert!((combined - 90.0).abs() < 1e-9, "{combined}");
        let idle = CacheGroup::of("x".into(), vec![level("a", 1, None)]);
        assert_eq!(idle.combined_hit_ratio, None, "no traffic, no ratio");
    }
}
