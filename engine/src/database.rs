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
}
