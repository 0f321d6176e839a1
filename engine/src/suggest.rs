//! Suggested targets: three values for a metric's target (tight, balanced, loose), each
//! from where the metric has been and each with its backtest over the same history, so a
//! person picks by how often it would have fired rather than by guessing a number.
//!
//! The levels come from the values the backtest judges (the [`crate::backtest::judged_series`]
//! of the history: raw samples, or each slot's high for "stay under" targets): the 95th
//! percentile (tight: fires on the worst 5 % of the time), the 99th percentile plus a tenth
//! of the typical spread (balanced), and the highest value seen plus a quarter of the
//! spread (loose: would not have fired). "Stay above" targets mirror them. Each value is
//! rounded to two significant digits, away from firing, and kept within a utilization's
//! 0–100 %. Pure and clock-free: the server reads the history and calls [`suggest`].

use serde::{Deserialize, Serialize};

use crate::backtest::{backtest, BacktestResult, Rule};
use crate::error::EngineError;
use crate::model::{Comparator, MetricKind, Target};
use crate::stats::quantile_sorted;

/// Fewest judged values a suggestion is made from: less than that says too little about
/// where a metric lives.
pub const MIN_VALUES: usize = 30;

/// One suggested value with what it would have done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// `tight`, `balanced` or `loose`.
    pub name: String,
    /// How the value was found, in words ("the 95th percentile").
    pub basis: String,
    pub value: f64,
    /// The target with this value replayed over the history it came from.
    pub backtest: BacktestResult,
    /// Breach episodes per 7 days of judged history.
    pub breaches_per_week: f64,
}

/// Tight, balanced and loose, in that order, over `values` (oldest first, one every
/// `step_secs`, as [`crate::backtest::judged_series`] gives them) for `shape` (the
/// target's comparator, statistic and `for`; its value is replaced) judged with `rule`.
pub fn suggest(
    values: &[Option<f32>],
    step_secs: u32,
    shape: &Target,
    rule: &Rule,
    kind: MetricKind,
) -> Result<Vec<Suggestion>, EngineError> {
    let mut seen: Vec<f64> = values
        .iter()
        .flatten()
        .map(|v| f64::from(*v))
        .filter(|v| v.is_finite())
        .collect();
    if seen.len() < MIN_VALUES {
        return Err(EngineError::invalid(
            "history",
            format!(
                "too little history to suggest a target: {} values, at least {MIN_VALUES} needed",
                seen.len()
            ),
        ));
    }
    seen.sort_by(f64::total_cmp);
    // "Stay above" targets are the same question asked of the other tail.
    let rising = shape.comparator == Comparator::Le;
    // `seen` is not empty (MIN_VALUES above), so every quantile exists.
    let at = |q: f64| quantile_sorted(&seen, q).unwrap_or_default();
    let tail = |q: f64| at(if rising { q } else { 1.0 - q });
    let middle = at(0.5);
    let spread = (tail(0.99) - middle).abs().max(tiny(middle));
    let away = |level: f64, margin: f64| {
        if rising {
            level + margin
        } else {
            level - margin
        }
    };
    let choices = [
        ("tight", "the 95th percentile".to_owned(), tail(0.95)),
        (
            "balanced",
            "the 99th percentile plus a tenth of the spread".to_owned(),
            away(tail(0.99), spread * 0.1),
        ),
        (
            "loose",
            "the highest value seen plus a quarter of the spread".to_owned(),
            away(tail(1.0), spread * 0.25),
        ),
    ];
    let judged_days = (values.len() as f64 * f64::from(step_secs.max(1)) / 86_400.0).max(1e-9);
    choices
        .into_iter()
        .map(|(name, basis, level)| {
            let value = bounded(rounded(level, rising), kind);
            let target = Target {
                value,
                ..shape.clone()
            };
            let result = backtest(values, step_secs, &target, rule)?;
            Ok(Suggestion {
                name: name.to_owned(),
                basis: if rising { basis } else { mirrored(&basis) },
                value,
                breaches_per_week: f64::from(result.breaches) * 7.0 / judged_days,
                backtest: result,
            })
        })
        .collect()
}

/// A spread for a flat series: a hundredth of its level, or of 1 when it sits at 0.
fn tiny(level: f64) -> f64 {
    (level.abs() * 0.01).max(0.01)
}

/// `value` to two significant digits, rounded away from firing (up for "stay under").
fn rounded(value: f64, up: bool) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(value.abs().log10().floor() as i32 - 1);
    let steps = value / scale;
    let steps = if up { steps.ceil() } else { steps.floor() };
    // Multiplying back can leave binary noise (0.30000000000000004).
    let digits = (-scale.log10().floor()).max(0.0) as i32;
    let unit = 10f64.powi(digits);
    (steps * scale * unit).round() / unit
}

/// A utilization is a share: 0–100 %. Rates and latencies are never negative.
fn bounded(value: f64, kind: MetricKind) -> f64 {
    match kind {
        MetricKind::Utilization => value.clamp(0.0, 100.0),
        MetricKind::Throughput | MetricKind::Latency => value.max(0.0),
        MetricKind::Number => value,
    }
}

fn mirrored(basis: &str) -> String {
    basis
        .replace("95th", "5th")
        .replace("99th", "1st")
        .replace("plus", "minus")
        .replace("highest", "lowest")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Statistic;

    fn shape(comparator: Comparator) -> Target {
        Target {
            metric: "cpu".into(),
            comparator,
            value: 0.0,
            statistic: Statistic::P95,
            for_secs: 0,
        }
    }

    /// Judged value by value, as the chart's coarse ranges are.
    fn per_value() -> Rule {
        Rule {
            window_secs: 1,
            tolerance_pct: 0.0,
            stabilization_secs: 0,
        }
    }

    /// A week of hourly values: a daily swing 20–60 %, and one 85 % spike.
    fn week() -> Vec<Option<f32>> {
        (0..168)
            .map(|hour| {
                let swing = ((hour % 24) as f32 / 24.0 * std::f32::consts::TAU).sin();
                Some(if hour == 100 {
                    85.0
                } else {
                    40.0 + 20.0 * swing
                })
            })
            .collect()
    }

    #[test]
    fn tight_balanced_and_loose_fire_less_and_less_and_loose_never() {
        let values = week();
        let found = suggest(
            &values,
            3600,
            &shape(Comparator::Le),
            &per_value(),
            MetricKind::Utilization,
        )
        .unwrap();
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["tight", "balanced", "loose"]);
        assert!(
            found[0].value < found[1].value && found[1].value < found[2].value,
            "{found:?}"
        );
        assert!(
            found[0].backtest.breaches > found[2].backtest.breaches,
            "{found:?}"
        );
        assert!(
            found[0].backtest.breaches >= found[1].backtest.breaches,
            "{found:?}"
        );
        assert_eq!(found[2].backtest.breaches, 0, "{found:?}");
        // Above the spike, within a share's bounds, two significant digits.
        assert!(
            found[2].value > 85.0 && found[2].value <= 100.0,
            "{found:?}"
        );
        for s in &found {
            assert_eq!(rounded(s.value, true), s.value, "{s:?}");
        }
        // A week of history: the count is the rate per week.
        assert!((found[0].breaches_per_week - f64::from(found[0].backtest.breaches)).abs() < 1e-9);
    }

    #[test]
    fn a_stay_above_target_takes_the_low_tail() {
        let values: Vec<Option<f32>> = week().into_iter().map(|v| v.map(|v| 100.0 - v)).collect();
        let found = suggest(
            &values,
            3600,
            &shape(Comparator::Ge),
            &per_value(),
            MetricKind::Utilization,
        )
        .unwrap();
        assert!(
            found[0].value > found[1].value && found[1].value > found[2].value,
            "{found:?}"
        );
        assert!(found[2].value < 15.0 && found[2].value >= 0.0, "{found:?}");
        assert_eq!(found[2].backtest.breaches, 0, "{found:?}");
        assert!(found[0].basis.contains("5th"), "{found:?}");
        assert!(found[2].basis.contains("lowest"), "{found:?}");
    }

    #[test]
    fn a_flat_series_still_gets_three_rising_values_and_too_little_is_refused() {
        let flat = vec![Some(0.0f32); 60];
        let found = suggest(
            &flat,
            60,
            &shape(Comparator::Le),
            &per_value(),
            MetricKind::Latency,
        )
        .unwrap();
        assert!(
            found[0].value < found[1].value && found[1].value < found[2].value,
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .all(|s| s.value >= 0.0 && s.backtest.breaches == 0),
            "{found:?}"
        );
        let few = vec![Some(1.0f32); MIN_VALUES - 1];
        let err = suggest(
            &few,
            60,
            &shape(Comparator::Le),
            &per_value(),
            MetricKind::Latency,
        )
        .unwrap_err();
        assert!(err.to_string().contains("too little history"), "{err}");
    }

    #[test]
    fn values_round_to_two_significant_digits_away_from_firing() {
        assert_eq!(rounded(71.234, true), 72.0);
        assert_eq!(rounded(71.234, false), 71.0);
        assert_eq!(rounded(0.3001, true), 0.31);
        assert_eq!(rounded(1234.0, true), 1300.0);
        assert_eq!(rounded(-3.21, true), -3.2);
    }
}
