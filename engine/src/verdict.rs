//! The verdict on an optimizer action: did the metric get better, stay the same or get
//! worse — or is there not enough data to say? Pure and clock-free (wasm-safe).
//!
//! A before/after of two window statistics ([`crate::optimizer::before_after`]) says where
//! the numbers went; it cannot tell a real change from noise. [`judge`] compares the whole
//! baseline window with the whole verify window, the way Netflix Kayenta's Mann-Whitney
//! classifier judges a canary and Argo Rollouts' analysis allows an *inconclusive* result:
//!
//! 1. Non-finite samples (NaN, ±∞: gaps of the history) are dropped and counted.
//! 2. Fewer than [`VerdictRules::min_samples`] on either side → [`Verdict::Inconclusive`]:
//!    no test is run on too little data.
//! 3. A two-sided Mann-Whitney U test (Wilcoxon rank-sum) — rank-based, so it assumes no
//!    distribution and one outlier moves it by one rank only. The normal approximation with
//!    the tie correction and a continuity correction of ½ (R's `wilcox.test(exact = FALSE,
//!    correct = TRUE)`) is accurate for n ≥ 8 per side. All samples tied (a flat metric)
//!    carry no information: p = 1, never NaN (Kayenta adds noise there; the tie correction
//!    makes that unnecessary).
//! 4. A change counts only when it is significant (p < [`VerdictRules::alpha`]) *and*
//!    large enough to matter: the median moved by at least [`VerdictRules::min_effect`] of
//!    the baseline median and by at least [`VerdictRules::abs_floor`] in the metric's unit
//!    (at n = 600 a 1 % shift is significant, yet nobody should act on it), *and* the
//!    median moved the same way as the ranks (Cliff's delta). The direction then reads as
//!    [`Verdict::Improved`] or [`Verdict::Worse`] by the target's comparator.
//!
//! Cost: one sort of the pooled samples (ranks, ties, and both sides' quantiles come out of
//! it), three allocations; well under the 1 ms budget for 2 × 600 samples
//! (`cargo bench -p engine --bench verdict`).
//!
//! Guardrails need the opposite of a test: a cheap, robust level watched every tick.
//! [`robust_level`] is the median of the latest window and [`Sustained`] trips only after
//! N consecutive over-limit ticks — never on one sample.
//!
//! How long to wait after a change before the verify window starts depends on how the
//! source measures: each source kind declares its [`Settle`] period and [`settle_for`]
//! adds one sample interval.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::{Comparator, MetricKind, Resource};
use crate::stats::{self, SampleValue};

#[cfg(test)]
mod tests;

/// The outcome of verifying an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A significant change of a size that matters, in the target's good direction.
    Improved,
    /// Enough samples, but no significant change, or one too small to count.
    NoChange,
    /// A significant change of a size that matters, in the target's bad direction.
    Worse,
    /// Too few samples on a side to judge.
    Inconclusive,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Improved,
        Verdict::NoChange,
        Verdict::Worse,
        Verdict::Inconclusive,
    ];

    /// The stable form (the serde form): `improved`, `no_change`, `worse`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::NoChange => "no_change",
            Verdict::Worse => "worse",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The human word, as reasons start: `improved`, `no change`, `worse`, `inconclusive`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::NoChange => "no change",
            Verdict::Worse => "worse",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// False only for [`Verdict::Inconclusive`].
    pub fn is_conclusive(self) -> bool {
        !matches!(self, Verdict::Inconclusive)
    }

    /// The verdict with baseline and verify swapped: improved ↔ worse.
    pub fn reversed(self) -> Verdict {
        match self {
            Verdict::Improved => Verdict::Worse,
            Verdict::Worse => Verdict::Improved,
            other => other,
        }
    }
}

/// What a verdict rests on. Statistics a side cannot give (no sample, no test run) are
/// `None`, never NaN, so the record round-trips through JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Finite samples used, before and after the change.
    pub baseline_n: usize,
    pub verify_n: usize,
    /// Non-finite samples (gaps) dropped from each side.
    pub baseline_dropped: usize,
    pub verify_dropped: usize,
    pub baseline_median: Option<f64>,
    pub verify_median: Option<f64>,
    /// 95th percentiles (linear interpolation, the `stats` definition).
    pub baseline_p95: Option<f64>,
    pub verify_p95: Option<f64>,
    /// verify median − baseline median, in the metric's unit.
    pub median_change: Option<f64>,
    /// `median_change` relative to the baseline median (−0.92 = −92 %); `None` when the
    /// baseline median is 0. What [`VerdictRules::min_effect`] is compared with.
    pub relative_change: Option<f64>,
    /// Cliff's delta, P(verify > baseline) − P(verify < baseline) over all pairs, −1…1:
    /// the rank effect size (0 = the windows overlap fully, ±1 = every verify sample lies
    /// above/below every baseline sample). Derived from the test's U at no cost; `None`
    /// when no test was run.
    pub cliffs_delta: Option<f64>,
    /// Two-sided Mann-Whitney p-value, 0…1; `None` when no test was run.
    pub p_value: Option<f64>,
    /// 1 − p.
    pub confidence: Option<f64>,
    /// The settle period skipped after the change before the verify window
    /// ([`VerdictRules::settle_secs`]).
    pub settle_secs: u32,
    /// One human sentence with the numbers, starting with the verdict's word.
    pub reason: String,
}

/// How strict [`judge`] is. Defaults: α = 0.05, 10 samples per side, a 5 % change of the
/// median, no absolute floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictRules {
    /// Significance level: a change counts only when p < alpha.
    pub alpha: f64,
    /// Fewer finite samples than this on either side → inconclusive.
    pub min_samples: usize,
    /// Smallest relative change of the median that counts (0.05 = 5 % of the baseline
    /// median).
    pub min_effect: f64,
    /// Smallest absolute change of the median that counts, in the metric's unit (1 ms for
    /// latency, 1 point for percentages); 0 = no floor.
    pub abs_floor: f64,
    /// The metric's kind, for the unit in reasons; `None` writes bare numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<MetricKind>,
    /// The settle period the caller skipped before the verify window, recorded in the
    /// evidence (see [`settle_for`]).
    pub settle_secs: u32,
}

impl Default for VerdictRules {
    fn default() -> Self {
        VerdictRules {
            alpha: 0.05,
            min_samples: 10,
            min_effect: 0.05,
            abs_floor: 0.0,
            kind: None,
            settle_secs: 0,
        }
    }
}

impl VerdictRules {
    /// The defaults with the unit and absolute floor of `kind`: 1 ms for latency, 1 point
    /// for utilization (percentages, hit ratios), none for throughput and plain numbers
    /// (their scale varies from a few requests to gigabytes per second).
    pub fn for_kind(kind: MetricKind) -> Self {
        VerdictRules {
            kind: Some(kind),
            abs_floor: match kind {
                MetricKind::Latency | MetricKind::Utilization => 1.0,
                MetricKind::Throughput | MetricKind::Number => 0.0,
            },
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), EngineError> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(EngineError::invalid(
                "verdict.alpha",
                format!("must be between 0 and 1 (exclusive), got {}", self.alpha),
            ));
        }
        if !(1..=100_000).contains(&self.min_samples) {
            return Err(EngineError::invalid(
                "verdict.min_samples",
                format!("must be within 1–100000, got {}", self.min_samples),
            ));
        }
        if !(self.min_effect.is_finite() && self.min_effect >= 0.0) {
            return Err(EngineError::invalid(
                "verdict.min_effect",
                format!("must be a finite share ≥ 0, got {}", self.min_effect),
            ));
        }
        if !(self.abs_floor.is_finite() && self.abs_floor >= 0.0) {
            return Err(EngineError::invalid(
                "verdict.abs_floor",
                format!("must be finite and ≥ 0, got {}", self.abs_floor),
            ));
        }
        Ok(())
    }
}

/// Judges `verify` (the window after the change and its settle period) against
/// `baseline` (the window before it). `better` is the target's comparator: `Le` means
/// lower is better (latency, utilization), `Ge` higher (hit ratio, throughput). Samples may
/// be raw `f64`s or the history's `Option<f32>`; non-finite ones are dropped and counted.
#[allow(clippy::too_many_lines)] // 144 lines today; split before it grows
pub fn judge<S: SampleValue>(
    baseline: &[S],
    verify: &[S],
    better: Comparator,
    rules: &VerdictRules,
) -> (Verdict, Evidence) {
    // One pooled sort gives the ranks, the tie groups and both sides in order.
    let mut pooled: Vec<(f64, bool)> = Vec::with_capacity(baseline.len() + verify.len());
    pooled.extend(
        baseline
            .iter()
            .filter_map(|s| s.value())
            .map(|v| (v, false)),
    );
    let n_b = pooled.len();
    pooled.extend(verify.iter().filter_map(|s| s.value()).map(|v| (v, true)));
    let n_v = pooled.len() - n_b;
    pooled.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    let mut sorted_b = Vec::with_capacity(n_b);
    let mut sorted_v = Vec::with_capacity(n_v);
    // Ranks are 1-based; a tie group shares the average of its ranks. Ranks and their sums
    // are multiples of ½ well below 2⁵³, so they are exact.
    let mut rank_sum_v = 0.0;
    let mut tie_term = 0.0;
    let mut groups = 0usize;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        // `==`, not `total_cmp`: −0 and +0 are one value (and adjacent in the sort).
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        for &(value, is_verify) in &pooled[i..j] {
            if is_verify {
                rank_sum_v += avg_rank;
                sorted_v.push(value);
            } else {
                sorted_b.push(value);
            }
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        groups += 1;
        i = j;
    }

    let baseline_median = stats::quantile_sorted(&sorted_b, 0.5);
    let verify_median = stats::quantile_sorted(&sorted_v, 0.5);
    let median_change = match (baseline_median, verify_median) {
        (Some(b), Some(v)) => Some(v - b).filter(|d| d.is_finite()),
        _ => None,
    };
    let relative_change = match (baseline_median, median_change) {
        (Some(b), Some(d)) if b != 0.0 => Some(d / b.abs()).filter(|r| r.is_finite()),
        _ => None,
    };
    let mut evidence = Evidence {
        baseline_n: n_b,
        verify_n: n_v,
        baseline_dropped: baseline.len() - n_b,
        verify_dropped: verify.len() - n_v,
        baseline_median,
        verify_median,
        baseline_p95: stats::quantile_sorted(&sorted_b, 0.95),
        verify_p95: stats::quantile_sorted(&sorted_v, 0.95),
        median_change,
        relative_change,
        cliffs_delta: None,
        p_value: None,
        confidence: None,
        settle_secs: rules.settle_secs,
        reason: String::new(),
    };
    let dropped = evidence.baseline_dropped + evidence.verify_dropped;
    let dropped_note = match dropped {
        0 => String::new(),
        1 => "; 1 non-finite sample dropped".to_owned(),
        n => format!("; {n} non-finite samples dropped"),
    };

    let need = rules.min_samples.max(1);
    if n_b < need || n_v < need {
        let short = match (n_b < need, n_v < need) {
            (true, true) => format!("{n_b} of {need} before the change, {n_v} of {need} after"),
            (true, false) => format!("{n_b} of {need} before the change"),
            _ => format!("{n_v} of {need} after the change"),
        };
        evidence.reason = format!("inconclusive: not enough samples ({short}){dropped_note}");
        return (Verdict::Inconclusive, evidence);
    }

    let (p, delta) = rank_test(n_b, n_v, rank_sum_v, tie_term, groups);
    evidence.p_value = Some(p);
    evidence.confidence = Some(1.0 - p);
    evidence.cliffs_delta = Some(delta);

    // Both sides hold ≥ 1 sample here, so the medians exist; a non-finite difference
    // (overflow) reads as no measurable change.
    let diff = median_change.unwrap_or(0.0);
    let significant = p < rules.alpha;
    let big_enough = match relative_change {
        Some(r) => r.abs() >= rules.min_effect,
        None => diff != 0.0,
    };
    let above_floor = diff.abs() >= rules.abs_floor;
    let agree = diff != 0.0 && delta != 0.0 && (diff > 0.0) == (delta > 0.0);

    let verdict = if significant && big_enough && above_floor && agree {
        let lower = diff < 0.0;
        match (better, lower) {
            (Comparator::Le, true) | (Comparator::Ge, false) => Verdict::Improved,
            _ => Verdict::Worse,
        }
    } else {
        Verdict::NoChange
    };

    let unit = rules
        .kind
        .map(|k| k.unit())
        .filter(|u| !u.is_empty())
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    let medians = format!(
        "median {} → {}{unit} ({})",
        num(baseline_median.unwrap_or(f64::NAN)),
        num(verify_median.unwrap_or(f64::NAN)),
        relative_change.map_or_else(|| "from 0".to_owned(), signed_pct)
    );
    let p95s = format!(
        "p95 {} → {}{unit}",
        num(evidence.baseline_p95.unwrap_or(f64::NAN)),
        num(evidence.verify_p95.unwrap_or(f64::NAN)),
    );
    let p_text = if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    };
    let why_not = if verdict != Verdict::NoChange {
        String::new()
    } else if !significant {
        format!(", not significant at α = {}", rules.alpha)
    } else if !big_enough {
        format!(
            ", but a change under {} % does not count",
            short_num(rules.min_effect * 100.0)
        )
    } else if !above_floor {
        format!(
            ", but a change under {}{unit} does not count",
            short_num(rules.abs_floor)
        )
    } else {
        ", but the median and the ranks disagree on the direction".to_owned()
    };
    evidence.reason = format!(
        "{}: {medians}, {p95s}; {n_b} vs {n_v} samples, {p_text}{why_not}{dropped_note}",
        verdict.word()
    );
    (verdict, evidence)
}

/// Two-sided Mann-Whitney U test of the pooled ranks: (p-value, Cliff's delta of verify
/// against baseline). Normal approximation with tie and continuity corrections.
fn rank_test(n_b: usize, n_v: usize, rank_sum_v: f64, tie_term: f64, groups: usize) -> (f64, f64) {
    let (n1, n2) = (n_b as f64, n_v as f64);
    // U of the verify side: the number of (baseline, verify) pairs where verify is larger,
    // ties counting ½.
    let u_v = rank_sum_v - n2 * (n2 + 1.0) / 2.0;
    let half = n1 * n2 / 2.0;
    let delta = (u_v - half) / half;
    if groups <= 1 {
        // Every sample has the same value: nothing to test (and the variance is 0).
        return (1.0, delta);
    }
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return (1.0, delta);
    }
    let z = ((u_v - half).abs() - 0.5).max(0.0) / variance.sqrt();
    let p = erfc(z * std::f64::consts::FRAC_1_SQRT_2).clamp(0.0, 1.0);
    (p, delta)
}

/// The complementary error function, with a relative error below 1.2 × 10⁻⁷ everywhere
/// (the Chebyshev-fitted rational approximation of Press et al., *Numerical Recipes*,
/// § 6.2), so small p-values keep their digits. std has no `erfc` on stable Rust.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A number for a reason: 580, 41.2, 3.1, 0.213, 0.00420 — three significant digits
/// below 1, one decimal up to 100, none above. Evidence shown elsewhere (the Before/after
/// row) is written with it too, so both read the same.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "n/a".to_owned()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.1}")
    } else {
        let decimals = ((-a.log10().floor()) as usize + 2).min(12);
        format!("{v:.decimals$}")
    }
}

/// "−92 %", "+4.5 %", "0 %" (a true minus sign).
fn signed_pct(share: f64) -> String {
    let pct = share * 100.0;
    let magnitude = if pct.abs() >= 10.0 {
        format!("{:.0}", pct.abs())
    } else {
        format!("{:.1}", pct.abs())
    };
    if magnitude.trim_start_matches(['0', '.']).is_empty() {
        "0 %".to_owned()
    } else if pct < 0.0 {
        format!("−{magnitude} %")
    } else {
        format!("+{magnitude} %")
    }
}

/// 5, 2.5, 0.1 — a setting as people typed it (one decimal at most).
fn short_num(v: f64) -> String {
    format!("{}", (v * 10.0).round() / 10.0)
}

// ---------------------------------------------------------------------------------------
// Guardrails: a robust level held for N consecutive ticks.
// ---------------------------------------------------------------------------------------

/// The robust level of a guardrail's latest window: its median, gaps skipped; `None`
/// without a sample. One spike moves a median by one rank at most, so a guardrail on it
/// trips on a shift of the bulk, never on one bad sample. Callers pass the latest window
/// (`&samples[len - window..]`). Allocates; [`robust_level_with`] reuses a buffer.
pub fn robust_level<S: SampleValue>(samples: &[S]) -> Option<f64> {
    stats::percentile(samples, 50.0)
}

/// [`robust_level`] reusing `scratch` (no allocation once it has grown).
pub fn robust_level_with<S: SampleValue>(samples: &[S], scratch: &mut Vec<f64>) -> Option<f64> {
    scratch.clear();
    scratch.extend(samples.iter().filter_map(|s| s.value()));
    stats::percentile_in_place(scratch, 50.0)
}

/// A condition that must hold for `need` consecutive observations before it counts: a
/// guardrail trips on a robust level over its limit for N ticks in a row, never on one.
/// A tick without data should not be observed at all (it neither confirms nor clears).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sustained {
    need: u32,
    run: u32,
}

impl Sustained {
    /// Trips after `need` consecutive over-limit observations (0 is taken as 1).
    pub fn new(need: u32) -> Self {
        Sustained {
            need: need.max(1),
            run: 0,
        }
    }

    /// Feeds one tick; true while the last `need` observations (at least) were all over.
    /// One observation under the limit restarts the count.
    pub fn observe(&mut self, over: bool) -> bool {
        self.run = if over { self.run.saturating_add(1) } else { 0 };
        self.run >= self.need
    }

    /// Whether the condition holds now, without observing.
    pub fn tripped(&self) -> bool {
        self.run >= self.need
    }

    /// Consecutive over-limit observations so far.
    pub fn run(&self) -> u32 {
        self.run
    }

    pub fn need(&self) -> u32 {
        self.need
    }

    pub fn reset(&mut self) {
        self.run = 0;
    }
}

// ---------------------------------------------------------------------------------------
// Settle periods: how long a source takes to show a change.
// ---------------------------------------------------------------------------------------

/// How long after a change a kind of source needs before its samples reflect it. Each
/// source kind declares its own (connectors' `KindEntry::settle`, the host's and pushes'
/// beside their sources): the engine knows no kind by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    pub secs: u32,
    /// Why it takes that long.
    pub why: &'static str,
}

/// The settle period of a source that declares none.
pub const DEFAULT_SETTLE: Settle = Settle {
    secs: 5,
    why: "no settle period declared: a few polls",
};

/// The settle period before a resource's verify window: its source's lag (`source`) plus
/// one sample interval, so the first sample counted was taken wholly after the source
/// caught up.
pub fn settle_for(source: Settle, resource: &Resource) -> u32 {
    source.secs.saturating_add(resource.settings.step_secs)
}
