//! What a database source reports besides its series: the queries that took the most
//! time over the last interval (from `pg_stat_statements` deltas, not lifetime totals, and
//! no series per query: that is the cardinality trap exporters warn about).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStat {
    /// The normalized text (`$1` for constants), cut to 500 characters.
    pub query: String,
    pub calls_per_s: f64,
    pub mean_ms: f64,
    /// Time spent in this query over the window, ms.
    pub total_ms: f64,
    /// Its share of the time all queries spent over the window, %.
    pub share_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TopQueries {
    /// When the window ended.
    pub at_unix_ms: i64,
    /// Its length, s (0 before there are two readings to compare).
    pub window_s: f64,
    /// Most time spent first.
    pub top: Vec<QueryStat>,
    /// Why there is nothing to show ("pg_stat_statements is not installed …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Recommendations about transactions and pooling, from the latest numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<Advice>,
    /// Index advice, from its latest round (every 15 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexes: Option<IndexAdvice>,
}

/// A recommendation and the numbers that triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub title: String,
    pub evidence: String,
}

/// One database of a group, as its group's panel shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub resource: String,
    pub name: String,
    /// Latest transactions/s, probe p95 (ms) and connections (% of max), while fresh.
    pub tps: Option<f64>,
    pub latency_p95: Option<f64>,
    pub connections_pct: Option<f64>,
}

/// Databases configured with the same `group`: one logical database sharded over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseGroup {
    pub group: String,
    pub shards: Vec<Shard>,
    /// Load skew: the busiest shard's transactions/s over the mean (1 = even); `None`
    /// without load.
    pub skew: Option<f64>,
}

impl DatabaseGroup {
    /// The skew of `shards`' transactions/s.
    pub fn skew_of(shards: &[Shard]) -> Option<f64> {
        let loads: Vec<f64> = shards.iter().filter_map(|s| s.tps).collect();
        if loads.is_empty() {
            return None;
        }
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        let max = loads.iter().copied().fold(f64::MIN, f64::max);
        (mean > 0.0).then(|| max / mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(tps: Option<f64>) -> Shard {
        Shard {
            resource: "database:x".into(),
            name: "x".into(),
            tps,
            latency_p95: None,
            connections_pct: None,
        }
    }

    #[test]
    fn skew_is_the_busiest_over_the_mean() {
        let even = [shard(Some(100.0)), shard(Some(100.0))];
        assert_eq!(DatabaseGroup::skew_of(&even), Some(1.0));
        let hot = [
            shard(Some(300.0)),
            shard(Some(100.0)),
            shard(Some(200.0)),
            shard(None),
        ];
        assert_eq!(DatabaseGroup::skew_of(&hot), Some(1.5));
        assert_eq!(
            DatabaseGroup::skew_of(&[shard(Some(0.0))]),
            None,
            "no load, no skew"
        );
        assert_eq!(DatabaseGroup::skew_of(&[]), None);
    }
}

/// An index that would make a query cheaper, by the planner's own estimate with the index
/// created hypothetically (HypoPG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexCandidate {
    /// `schema.table`.
    pub table: String,
    pub columns: Vec<String>,
    /// The query it was found for.
    pub query: String,
    pub cost_before: f64,
    pub cost_after: f64,
    pub drop_pct: f64,
}

/// An index that costs writes and space for nothing: never scanned, or a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnusedIndex {
    pub table: String,
    pub index: String,
    pub bytes: u64,
    /// For a duplicate: the index that does the same and stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IndexAdvice {
    pub missing: Vec<IndexCandidate>,
    pub unused: Vec<UnusedIndex>,
    pub duplicate: Vec<UnusedIndex>,
    /// What could not be examined, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
    /// Statements the missing-index search left alone on purpose, each named with why
    /// ("skipped `SELECT now()`: calls a function (now), not a plain table query").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}
