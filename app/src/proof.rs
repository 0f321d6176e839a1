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
    /// The target value, for the overlay chart's line.
    #[serde(default)]
    pub target_value: f64,
    /// The before and after windows, each reduced to at most [`OVERLAY_POINTS`] means,
    /// for the overlay chart (empty while measuring).
    #[serde(default)]
    pub before_series: Vec<Option<f32>>,
    #[serde(default)]
    pub after_series: Vec<Option<f32>>,
}

/// Points per window in the before/after overlay.
pub const OVERLAY_POINTS: usize = 60;

/// Reduces samples to at most `points` bucket means (gaps ignored; an all-gap bucket is a
/// gap), so a 5-minute window travels as 60 numbers.
pub fn reduce(samples: &[Option<f32>], points: usize) -> Vec<Option<f32>> {
    if samples.len() <= points || points == 0 {
        return samples.to_vec();
    }
    let per = samples.len().div_ceil(points);
    samples
        .chunks(per)
        .map(|chunk| {
            let present: Vec<f32> = chunk.iter().flatten().copied().collect();
            (!present.is_empty()).then(|| present.iter().sum::<f32>() / present.len() as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::reduce;

    #[test]
    fn reduce_keeps_short_series_and_averages_buckets_ignoring_gaps() {
        let short = vec![Some(1.0), None];
        assert_eq!(reduce(&short, 60), short);
        let long: Vec<Option<f32>> = (0..6)
            .map(|i| if i == 1 { None } else { Some(i as f32) })
            .collect();
        assert_eq!(reduce(&long, 3), vec![Some(0.0), Some(2.5), Some(4.5)]);
        assert_eq!(reduce(&[None, None, None, None], 2), vec![None, None]);
    }
}
