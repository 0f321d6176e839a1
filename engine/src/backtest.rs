//! "Would this target have fired?": replays a target over a recorded series.
//!
//! Pure and wasm-safe so the browser can answer while the user drags a target on the chart,
//! with the same semantics as an alert rule: a breach episode is a run of consecutive
//! samples beyond the target that lasts at least the target's `for` duration; a gap (or a
//! met sample) ends the run, as missing data resets a Prometheus alert's `for`.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::Target;
use crate::stats::SampleValue;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    /// Number of separate breach episodes that would have fired.
    pub breaches: u32,
    /// Share of the non-gap samples during which the target was firing, 0–1.
    pub breach_fraction: f64,
    /// Samples during which it was firing.
    pub firing_samples: usize,
    /// Non-gap samples evaluated.
    pub evaluated_samples: usize,
}

/// Replays `target` over `values` (oldest first, one every `step_secs`).
pub fn backtest<S: SampleValue>(
    values: &[S],
    step_secs: u32,
    target: &Target,
) -> Result<BacktestResult, EngineError> {
    if step_secs == 0 {
        return Err(EngineError::invalid(
            "step_secs",
            "the sample interval must be at least 1 s, got 0",
        ));
    }
    // Samples a run must already have lasted before it fires: ceil(for / step).
    let need = target.for_secs.div_ceil(step_secs) as usize;
    let (mut breaches, mut firing_samples, mut evaluated) = (0u32, 0usize, 0usize);
    let mut run = 0usize;
    for v in values {
        let Some(v) = v.value() else {
            run = 0;
            continue;
        };
        evaluated += 1;
        if target.is_met(v) {
            run = 0;
            continue;
        }
        run += 1;
        // The sample `need` steps after the run's first one is the first that fires.
        if run > need {
            firing_samples += 1;
            if run == need + 1 {
                breaches += 1;
            }
        }
    }
    let breach_fraction = if evaluated == 0 {
        0.0
    } else {
        firing_samples as f64 / evaluated as f64
    };
    Ok(BacktestResult {
        breaches,
        breach_fraction,
        firing_samples,
        evaluated_samples: evaluated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Comparator, Statistic};
    use proptest::prelude::*;

    fn target(value: f64, comparator: Comparator, for_secs: u32) -> Target {
        Target {
            metric: "m".into(),
            comparator,
            value,
            statistic: Statistic::Mean,
            for_secs,
        }
    }

    #[test]
    fn counts_episodes_that_last_for_the_for_duration() {
        let t = target(65.0, Comparator::Le, 20);
        // step 10 s: a run needs 3 samples (0 s, 10 s, 20 s) to fire.
        let v = [
            70.0, 70.0, 50.0, 70.0, 70.0, 70.0, 70.0, 50.0, 70.0, 70.0, 70.0,
        ];
        let r = backtest(&v, 10, &t).unwrap();
        assert_eq!(r.breaches, 2);
        assert_eq!(r.firing_samples, 3);
        assert_eq!(r.evaluated_samples, 11);
        assert!((r.breach_fraction - 3.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn gaps_end_a_run_and_are_not_evaluated() {
        let t = target(65.0, Comparator::Le, 10);
        let v = [
            Some(70.0),
            None,
            Some(70.0),
            Some(f64::NAN),
            Some(70.0),
            Some(70.0),
        ];
        let r = backtest(&v, 10, &t).unwrap();
        assert_eq!(
            (r.breaches, r.firing_samples, r.evaluated_samples),
            (1, 1, 4)
        );
    }

    #[test]
    fn for_zero_fires_on_the_first_breaching_sample_and_ge_breaches_below() {
        let t = target(100.0, Comparator::Ge, 0);
        let r = backtest(&[150.0f32, 90.0, 120.0, 80.0, 70.0], 1, &t).unwrap();
        assert_eq!((r.breaches, r.firing_samples), (2, 3));
        let empty = backtest::<f64>(&[], 1, &t).unwrap();
        assert_eq!((empty.breaches, empty.breach_fraction), (0, 0.0));
        assert_eq!(
            backtest(&[1.0], 0, &t).unwrap_err().to_string(),
            "step_secs: the sample interval must be at least 1 s, got 0"
        );
    }

    /// Independent formulation: sample i fires when it and the `need` samples before it all
    /// exist and breach; an episode starts where firing starts.
    fn oracle(values: &[Option<f64>], step: u32, t: &Target) -> (u32, usize, usize) {
        let need = (t.for_secs as usize).div_ceil(step as usize);
        let bad = |i: usize| values[i].is_some_and(|v| !t.is_met(v));
        let firing: Vec<bool> = (0..values.len())
            .map(|i| i >= need && (i - need..=i).all(bad))
            .collect();
        let episodes = (0..values.len())
            .filter(|&i| firing[i] && (i == 0 || !firing[i - 1]))
            .count() as u32;
        (
            episodes,
            firing.iter().filter(|f| **f).count(),
            values.iter().flatten().count(),
        )
    }

    proptest! {
        #[test]
        fn backtest_matches_the_brute_force_oracle(
            values in prop::collection::vec(prop::option::weighted(0.9, 0.0f64..100.0), 0..300),
            step in 1u32..30,
            for_secs in 0u32..200,
            value in 0.0f64..100.0,
            ge in any::<bool>(),
        ) {
            let t = target(value, if ge { Comparator::Ge } else { Comparator::Le }, for_secs);
            let r = backtest(&values, step, &t).unwrap();
            let (breaches, firing, evaluated) = oracle(&values, step, &t);
            prop_assert_eq!(r.breaches, breaches);
            prop_assert_eq!(r.firing_samples, firing);
            prop_assert_eq!(r.evaluated_samples, evaluated);
            prop_assert!((0.0..=1.0).contains(&r.breach_fraction));
        }
    }
}
