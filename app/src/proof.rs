//! Wire type of the before/after table: one row per event (target edit, manual mark,
//! optimizer action), pending while its after-window is still being measured.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub resource_id: String,
    pub resource_name: String,
    /// "target edit (change #3)", "mark: deployed v2.3".
    pub event: String,
    pub at_unix_ms: i64,
    /// When the after-window ends and the row is computed.
    pub ready_at_unix_ms: i64,
    pub pending: bool,
    /// The target's statistic before and after, formatted with the unit.
    pub before: Option<String>,
    pub after: Option<String>,
    /// The target the event was judged against, e.g. "p95 utilization ≤ 65 % for 5 m".
    pub target: String,
    /// Positive = better.
    pub improvement_pct: Option<f64>,
    pub target_met: Option<bool>,
    pub reason: String,
    pub unit: String,
}
