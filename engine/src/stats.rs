//! Window statistics over sample series with gaps: mean, percentiles, max.
//!
//! The analyzer, the before/after computation, recommendations and the backtest all reduce
//! windows the same way, so they share these functions; they are pure and allocation-free
//! when given a scratch buffer, because the analyze tick runs them for every resource.

use serde::{Deserialize, Serialize};

use crate::model::Statistic;

/// One sample of a fixed-step series. Gaps are `None` or a non-finite value (NaN, ±∞),
/// so callers can pass whatever their storage uses (`Option<f32>` rings, raw `f64`s).
pub trait SampleValue: Copy {
    fn value(self) -> Option<f64>;
}

impl SampleValue for f64 {
    fn value(self) -> Option<f64> {
        self.is_finite().then_some(self)
    }
}

impl SampleValue for f32 {
    fn value(self) -> Option<f64> {
        self.is_finite().then_some(f64::from(self))
    }
}

impl<T: SampleValue> SampleValue for Option<T> {
    fn value(self) -> Option<f64> {
        self.and_then(SampleValue::value)
    }
}

impl<T: SampleValue> SampleValue for &T {
    fn value(self) -> Option<f64> {
        (*self).value()
    }
}

/// Summary of one window; all statistics are `None` when the window holds no sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct WindowStats {
    /// Number of non-gap samples.
    pub samples: usize,
    /// Number of gap samples.
    pub gaps: usize,
    pub mean: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl WindowStats {
    pub fn of<S: SampleValue>(samples: &[S]) -> Self {
        let mut scratch = Vec::with_capacity(samples.len());
        Self::with_scratch(samples, &mut scratch)
    }

    /// Same as [`WindowStats::of`], reusing `scratch` to avoid an allocation per call.
    pub fn with_scratch<S: SampleValue>(samples: &[S], scratch: &mut Vec<f64>) -> Self {
        collect_values(samples, scratch);
        let n = scratch.len();
        if n == 0 {
            return WindowStats {
                samples: 0,
                gaps: samples.len(),
                ..Default::default()
            };
        }
        let sum: f64 = scratch.iter().sum();
        let max = scratch.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        WindowStats {
            samples: n,
            gaps: samples.len() - n,
            mean: Some(sum / n as f64),
            p95: percentile_in_place(scratch, 95.0),
            max: Some(max),
        }
    }

    pub fn get(&self, statistic: Statistic) -> Option<f64> {
        match statistic {
            Statistic::Mean => self.mean,
            Statistic::P95 => self.p95,
            Statistic::Max => self.max,
        }
    }
}

fn collect_values<S: SampleValue>(samples: &[S], out: &mut Vec<f64>) {
    out.clear();
    out.extend(samples.iter().filter_map(|s| s.value()));
}

/// The statistic of a window, reusing `scratch`; `None` when the window has no sample.
pub fn statistic<S: SampleValue>(
    samples: &[S],
    statistic: Statistic,
    scratch: &mut Vec<f64>,
) -> Option<f64> {
    match statistic {
        Statistic::Mean => mean(samples),
        Statistic::Max => samples.iter().filter_map(|s| s.value()).reduce(f64::max),
        Statistic::P95 => {
            collect_values(samples, scratch);
            percentile_in_place(scratch, 95.0)
        }
    }
}

pub fn mean<S: SampleValue>(samples: &[S]) -> Option<f64> {
    let (sum, n) = samples
        .iter()
        .filter_map(|s| s.value())
        .fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Percentile `p` (0–100) with linear interpolation between closest ranks (the numpy and
/// Prometheus `quantile_over_time` definition). Reorders `values`; O(n) via selection.
pub fn percentile_in_place(values: &mut [f64], p: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let (_, lo_val, upper) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_val = *lo_val;
    if frac == 0.0 || upper.is_empty() {
        return Some(lo_val);
    }
    // The next rank is the smallest value above the selected one.
    let hi_val = upper.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lo_val + (hi_val - lo_val) * frac)
}

/// Quantile `q` (0–1) of ascending `sorted`, interpolated like [`percentile`]: for several
/// quantiles of one sorted set.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let lo_val = sorted[lo];
    if frac == 0.0 || lo + 1 >= n {
        return Some(lo_val);
    }
    Some(lo_val + (sorted[lo + 1] - lo_val) * frac)
}

/// Percentile of a series with gaps; allocates, so keep it off per-tick paths.
pub fn percentile<S: SampleValue>(samples: &[S], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().filter_map(|s| s.value()).collect();
    percentile_in_place(&mut v, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_skipped_whatever_their_encoding() {
        let s = [Some(1.0f32), None, Some(f32::NAN), Some(3.0)];
        let w = WindowStats::of(&s);
        assert_eq!(w.samples, 2);
        assert_eq!(w.gaps, 2);
        assert_eq!(w.mean, Some(2.0));
        assert_eq!(w.max, Some(3.0));
        let raw = [1.0f64, f64::INFINITY, 3.0];
        assert_eq!(mean(&raw), Some(2.0));
    }

    #[test]
    fn empty_window_has_no_statistics() {
        let w = WindowStats::of::<Option<f64>>(&[None, None]);
        assert_eq!(
            w,
            WindowStats {
                samples: 0,
                gaps: 2,
                mean: None,
                p95: None,
                max: None
            }
        );
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // numpy.percentile(range(1, 11), 95) == 9.55, 90 -> 9.1, 50 -> 5.5
        assert!((percentile(&v, 95.0).unwrap() - 9.55).abs() < 1e-9);
        assert!((percentile(&v, 90.0).unwrap() - 9.1).abs() < 1e-9);
        assert!((percentile(&v, 50.0).unwrap() - 5.5).abs() < 1e-9);
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile::<f64>(&[], 95.0), None);
    }

    #[test]
    fn statistic_matches_window_stats() {
        let s: Vec<Option<f64>> = (0..100)
            .map(|i| if i % 7 == 0 { None } else { Some(i as f64) })
            .collect();
        let w = WindowStats::of(&s);
        let mut scratch = Vec::new();
        for st in [Statistic::Mean, Statistic::P95, Statistic::Max] {
            assert_eq!(statistic(&s, st, &mut scratch), w.get(st), "{st:?}");
        }
    }
}
