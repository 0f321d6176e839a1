//! "What changed": around a moment (an alert firing, a change applied), which series moved
//! the most — the first places to look. Each series is scored by how far its level after
//! the moment sits from its level before, in robust standard deviations of the before
//! window: `(median(after) − median(before)) / (1.4826 × MAD(before))`, the MAD floored so
//! that a flat series does not turn a tiny wobble into a huge score. Pure and clock-free.

use serde::{Deserialize, Serialize};

/// Fewest samples on each side for a score: fewer say nothing about a level.
pub const MIN_BEFORE: usize = 10;
pub const MIN_AFTER: usize = 5;
/// Below this a shift is ordinary variation, not a change worth listing.
pub const NOTABLE_SCORE: f64 = 3.0;
/// The windows around a moment `at`: before is the half hour ending [`LEAD_MS`] before it;
/// after is the ten minutes from then, so what moved while an alert waited out its `for`
/// counts as after.
pub const BEFORE_MS: i64 = 30 * 60_000;
pub const LEAD_MS: i64 = 5 * 60_000;
pub const AFTER_MS: i64 = 10 * 60_000;
/// MAD to a standard deviation's scale, for normally distributed data.
const MAD_SCALE: f64 = 1.4826;

/// How one series' level moved across the moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub before: f64,
    pub after: f64,
    /// Signed: robust standard deviations of the before window (positive: it rose).
    pub score: f64,
}

/// The shift of a series with `before` samples (the window before the moment) and `after`
/// samples (from the moment on); `None` with too few samples on either side.
pub fn shift(before: &[f64], after: &[f64]) -> Option<Shift> {
    let before: Vec<f64> = before.iter().copied().filter(|v| v.is_finite()).collect();
    let after: Vec<f64> = after.iter().copied().filter(|v| v.is_finite()).collect();
    if before.len() < MIN_BEFORE || after.len() < MIN_AFTER {
        return None;
    }
    let mut before = before;
    let level = median(&mut before);
    let mut deviations: Vec<f64> = before.iter().map(|v| (v - level).abs()).collect();
    let spread = MAD_SCALE * median(&mut deviations);
    // A flat line's MAD is 0: a hundredth of its level (or of 1 at 0) stands in, so a step
    // on it scores high but a rounding wobble does not.
    let floor = (level.abs() * 0.01).max(0.01);
    let mut after = after;
    let now = median(&mut after);
    Some(Shift {
        before: level,
        after: now,
        score: (now - level) / spread.max(floor),
    })
}

/// The `top` notable shifts among `candidates` (each a key and its shift), largest first.
pub fn ranked<K>(candidates: impl IntoIterator<Item = (K, Shift)>, top: usize) -> Vec<(K, Shift)> {
    let mut notable: Vec<(K, Shift)> = candidates
        .into_iter()
        .filter(|(_, s)| s.score.abs() >= NOTABLE_SCORE)
        .collect();
    notable.sort_by(|a, b| b.1.score.abs().total_cmp(&a.1.score.abs()));
    notable.truncate(top);
    notable
}

/// The median of a non-empty set (reorders it).
fn median(values: &mut [f64]) -> f64 {
    crate::stats::percentile_in_place(values, 50.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(level: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| level + [0.0, 1.0, -1.0, 0.5, -0.5][i % 5])
            .collect()
    }

    #[test]
    fn a_step_scores_high_and_noise_does_not() {
        let step = shift(&noisy(20.0, 60), &noisy(60.0, 20)).unwrap();
        assert_eq!((step.before, step.after), (20.0, 60.0));
        assert!(step.score > 30.0, "{step:?}");
        let same = shift(&noisy(20.0, 60), &noisy(20.0, 20)).unwrap();
        assert!(same.score.abs() < NOTABLE_SCORE, "{same:?}");
        let fell = shift(&noisy(80.0, 60), &noisy(10.0, 20)).unwrap();
        assert!(fell.score < -30.0, "{fell:?}");
    }

    #[test]
    fn a_flat_series_needs_more_than_a_wobble_and_too_few_samples_say_nothing() {
        let flat = vec![5.0; 30];
        let wobble = shift(&flat, &[5.02; 10]).unwrap();
        assert!(wobble.score.abs() < NOTABLE_SCORE, "{wobble:?}");
        let moved = shift(&flat, &[6.0; 10]).unwrap();
        assert!(moved.score >= NOTABLE_SCORE, "{moved:?}");
        assert!(shift(&flat[..MIN_BEFORE - 1], &[6.0; 10]).is_none());
        assert!(shift(&flat, &[6.0; MIN_AFTER - 1]).is_none());
    }

    #[test]
    fn ranked_keeps_the_largest_notable_shifts_first() {
        let s = |score| Shift {
            before: 0.0,
            after: 0.0,
            score,
        };
        let found = ranked(
            [("a", s(4.0)), ("b", s(-12.0)), ("c", s(1.0)), ("d", s(7.0))],
            2,
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b", "d"]);
    }
}
