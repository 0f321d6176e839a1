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
    /// Positive = better. `None` for a threshold change: moving the line improves
    /// nothing (see [`ComparisonRow::change_text`]).
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
    /// What the row is about: [`KIND_ACTION`], [`KIND_THRESHOLD`] or [`KIND_MARK`].
    #[serde(default)]
    pub kind: String,
    /// For an action: what it applied, in the actuator's words ("maxmemory 3mb → 64mb").
    #[serde(default)]
    pub applied: Option<String>,
    /// For a verified action: [`OUTCOME_KEPT`] or [`OUTCOME_ROLLED_BACK`].
    #[serde(default)]
    pub outcome: Option<String>,
    /// Why the action was kept or rolled back (or why it has no verdict), one sentence.
    #[serde(default)]
    pub outcome_why: Option<String>,
    /// The verifier's verdict in words: "improved", "no change", "worse", "inconclusive".
    #[serde(default)]
    pub verdict: Option<String>,
    /// What the verdict rests on, one line ([`evidence_line`]).
    #[serde(default)]
    pub evidence: Option<String>,
    /// [`BETTER`], [`WORSE`], [`SAME`], or empty when nothing is judged (a threshold
    /// change, a dry run, no data).
    #[serde(default)]
    pub direction: String,
    /// How the value moved ([`change_text`]), or for a threshold change the threshold's
    /// old → new ([`threshold_text`]).
    #[serde(default)]
    pub change_text: String,
}

/// [`ComparisonRow::kind`] of an optimizer action.
pub const KIND_ACTION: &str = "action";
/// [`ComparisonRow::kind`] of a target edit: the threshold moved, the system did not.
pub const KIND_THRESHOLD: &str = "threshold";
/// [`ComparisonRow::kind`] of a manual mark.
pub const KIND_MARK: &str = "mark";

/// [`ComparisonRow::outcome`] of an action whose change stayed.
pub const OUTCOME_KEPT: &str = "kept";
/// [`ComparisonRow::outcome`] of an action whose change was undone.
pub const OUTCOME_ROLLED_BACK: &str = "rolled back";

/// [`ComparisonRow::direction`] values.
pub const BETTER: &str = "better";
pub const WORSE: &str = "worse";
pub const SAME: &str = "same";

/// Changes smaller than this (percent of the before value) read as no change.
pub const DEAD_ZONE_PCT: f64 = 1.0;

/// Whether the row got better, worse or stayed the same. An action's verdict decides when
/// there is one (improved → better, worse → worse, no change or inconclusive → same);
/// otherwise the improvement's sign, with changes under [`DEAD_ZONE_PCT`] counting as
/// the same. Empty without data.
pub fn direction(
    improvement_pct: Option<f64>,
    verdict: Option<engine::verdict::Verdict>,
) -> &'static str {
    use engine::verdict::Verdict;
    match verdict {
        Some(Verdict::Improved) => BETTER,
        Some(Verdict::Worse) => WORSE,
        Some(Verdict::NoChange | Verdict::Inconclusive) => SAME,
        None => match improvement_pct {
            Some(p) if !p.is_finite() => "",
            Some(p) if p.abs() < DEAD_ZONE_PCT => SAME,
            Some(p) if p > 0.0 => BETTER,
            Some(_) => WORSE,
            None => "",
        },
    }
}

/// The symbol and word of a direction, so it never rests on colour alone: ("✓",
/// "better"), ("✗", "worse"), ("=", "no change"); empty for no direction. Marks rather
/// than arrows: a better latency goes down while a better hit ratio goes up.
pub fn direction_label(direction: &str) -> (&'static str, &'static str) {
    match direction {
        BETTER => ("✓", "better"),
        WORSE => ("✗", "worse"),
        SAME => ("=", "no change"),
        _ => ("", ""),
    }
}

/// How the value moved from `before` to `after` (not whether that is good: see
/// [`direction`]). Percentages change by points, with the relative change beside them:
/// "+38.5 points (+65.8 %)"; other units relatively: "−92.1 %" (a true minus sign), or by
/// the amount from a before of 0: "+3.1 ms". "n/a" without both values.
pub fn change_text(before: Option<f64>, after: Option<f64>, unit: &str) -> String {
    let (Some(b), Some(a)) = (before, after) else {
        return "n/a".to_owned();
    };
    if !(b.is_finite() && a.is_finite()) {
        return "n/a".to_owned();
    }
    let diff = a - b;
    let relative = (b != 0.0).then(|| diff / b.abs() * 100.0);
    if unit == "%" {
        let points = signed(diff, format!("{:.1}", diff.abs()));
        match relative {
            Some(r) => format!("{points} points ({} %)", signed(r, pct_magnitude(r))),
            None => format!("{points} points"),
        }
    } else {
        match relative {
            Some(r) => format!("{} %", signed(r, pct_magnitude(r))),
            None => with_unit(signed(diff, num(diff.abs())), unit),
        }
    }
}

/// A target edit's change: the threshold's old → new ("threshold 80 → 50 ms"; with the
/// comparator, statistic and metric when those changed too), or without the previous
/// target "threshold change (now ≤ 50 ms)". Never an improvement: only the line moved.
pub fn threshold_text(
    previous: Option<&engine::model::Target>,
    target: &engine::model::Target,
    unit: &str,
) -> String {
    let symbol = target.comparator.symbol();
    let Some(previous) = previous else {
        return format!(
            "threshold change (now {symbol} {})",
            with_unit(short(target.value), unit)
        );
    };
    let same_shape = previous.comparator == target.comparator
        && previous.statistic == target.statistic
        && previous.metric == target.metric;
    if same_shape {
        if short(previous.value) == short(target.value) {
            format!(
                "threshold unchanged ({symbol} {})",
                with_unit(short(target.value), unit)
            )
        } else {
            format!(
                "threshold {} → {}",
                short(previous.value),
                with_unit(short(target.value), unit)
            )
        }
    } else {
        let side = |t: &engine::model::Target| {
            format!(
                "{} {} {} {}",
                t.statistic.as_str(),
                t.metric,
                t.comparator.symbol(),
                with_unit(short(t.value), unit)
            )
        };
        format!("threshold {} → {}", side(previous), side(target))
    }
}

/// What a verdict rests on, in one line: "60 vs 60 samples · median 41.2 → 3.1 ms · p95
/// 580 → 6.0 ms · p < 0.001" (parts the evidence cannot give are left out).
pub fn evidence_line(evidence: &engine::verdict::Evidence, unit: &str) -> String {
    let mut parts = vec![format!(
        "{} vs {} samples",
        evidence.baseline_n, evidence.verify_n
    )];
    if let (Some(b), Some(v)) = (evidence.baseline_median, evidence.verify_median) {
        parts.push(format!("median {} → {}", num(b), with_unit(num(v), unit)));
    }
    if let (Some(b), Some(v)) = (evidence.baseline_p95, evidence.verify_p95) {
        parts.push(format!("p95 {} → {}", num(b), with_unit(num(v), unit)));
    }
    if let Some(p) = evidence.p_value.filter(|p| p.is_finite()) {
        parts.push(if p < 0.001 {
            "p < 0.001".to_owned()
        } else {
            format!("p = {p:.3}")
        });
    }
    parts.join(" · ")
}

/// `magnitude` (already formatted, without sign) with the sign of `value`: "+4.5",
/// "−92.1" (a true minus sign); no sign when it rounds to zero.
fn signed(value: f64, magnitude: String) -> String {
    if magnitude.trim_start_matches(['0', '.']).is_empty() {
        magnitude
    } else if value < 0.0 {
        format!("−{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// A relative change's magnitude: one decimal below 100, none from 100 ("772").
fn pct_magnitude(pct: f64) -> String {
    let a = pct.abs();
    if a >= 100.0 {
        format!("{a:.0}")
    } else {
        format!("{a:.1}")
    }
}

/// A measured number, written as the verdict's reasons write it.
fn num(v: f64) -> String {
    engine::verdict::num(v)
}

/// A setting as people typed it: 80, 65.5.
fn short(v: f64) -> String {
    format!("{}", (v * 10.0).round() / 10.0)
}

fn with_unit(number: String, unit: &str) -> String {
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
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
    use super::*;
    use engine::model::{Comparator, Statistic, Target};
    use engine::verdict::{Evidence, Verdict};

    #[test]
    fn percentages_change_by_points_with_the_relative_change_beside_them() {
        assert_eq!(
            change_text(Some(58.5), Some(97.0), "%"),
            "+38.5 points (+65.8 %)"
        );
        assert_eq!(
            change_text(Some(85.0), Some(65.0), "%"),
            "−20.0 points (−23.5 %)"
        );
        assert_eq!(change_text(Some(0.0), Some(5.0), "%"), "+5.0 points");
        assert_eq!(
            change_text(Some(50.0), Some(50.0), "%"),
            "0.0 points (0.0 %)"
        );
    }

    #[test]
    fn other_units_change_relatively_with_a_true_minus_sign() {
        assert_eq!(change_text(Some(41.2), Some(3.1), "ms"), "−92.5 %");
        assert_eq!(change_text(Some(5.0), Some(43.6), "ms"), "+772 %");
        assert_eq!(change_text(Some(0.0), Some(3.1), "ms"), "+3.1 ms");
        assert_eq!(change_text(None, Some(3.1), "ms"), "n/a");
        assert_eq!(change_text(Some(1.0), Some(f64::NAN), "ms"), "n/a");
    }

    #[test]
    fn direction_follows_the_verdict_of_an_action_else_the_improvement_with_a_dead_zone() {
        assert_eq!(direction(Some(61.7), Some(Verdict::Worse)), WORSE);
        assert_eq!(direction(Some(61.7), Some(Verdict::NoChange)), SAME);
        assert_eq!(direction(Some(-3.0), Some(Verdict::Inconclusive)), SAME);
        assert_eq!(direction(Some(-3.0), Some(Verdict::Improved)), BETTER);
        assert_eq!(direction(Some(23.5), None), BETTER);
        assert_eq!(direction(Some(-772.0), None), WORSE);
        assert_eq!(direction(Some(0.9), None), SAME);
        assert_eq!(direction(Some(-0.9), None), SAME);
        assert_eq!(direction(None, None), "");
        assert_eq!(direction_label(WORSE), ("✗", "worse"));
        assert_eq!(direction_label(SAME), ("=", "no change"));
        assert_eq!(direction_label(""), ("", ""));
    }

    #[test]
    fn a_threshold_change_says_old_to_new_and_never_improvement() {
        let old = Target::default_for("latency", 80.0);
        let new = Target {
            value: 50.0,
            ..old.clone()
        };
        assert_eq!(
            threshold_text(Some(&old), &new, "ms"),
            "threshold 80 → 50 ms"
        );
        assert_eq!(
            threshold_text(None, &new, "ms"),
            "threshold change (now ≤ 50 ms)"
        );
        assert_eq!(
            threshold_text(Some(&new), &new, "ms"),
            "threshold unchanged (≤ 50 ms)"
        );
        let ge = Target {
            comparator: Comparator::Ge,
            statistic: Statistic::Mean,
            ..new.clone()
        };
        assert_eq!(
            threshold_text(Some(&old), &ge, "ms"),
            "threshold p95 latency ≤ 80 ms → mean latency ≥ 50 ms"
        );
    }

    #[test]
    fn evidence_reads_as_one_line() {
        let evidence = Evidence {
            baseline_n: 60,
            verify_n: 60,
            baseline_dropped: 0,
            verify_dropped: 0,
            baseline_median: Some(41.2),
            verify_median: Some(3.1),
            baseline_p95: Some(580.0),
            verify_p95: Some(6.0),
            median_change: Some(-38.1),
            relative_change: Some(-0.925),
            cliffs_delta: Some(-1.0),
            p_value: Some(0.000_01),
            confidence: Some(0.999_99),
            settle_secs: 0,
            reason: String::new(),
        };
        assert_eq!(
            evidence_line(&evidence, "ms"),
            "60 vs 60 samples · median 41.2 → 3.1 ms · p95 580 → 6.0 ms · p < 0.001"
        );
        let thin = Evidence {
            baseline_n: 3,
            verify_n: 2,
            baseline_median: None,
            p_value: None,
            ..evidence
        };
        assert_eq!(
            evidence_line(&thin, "ms"),
            "3 vs 2 samples · p95 580 → 6.0 ms"
        );
    }

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
