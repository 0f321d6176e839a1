use proptest::prelude::*;

use super::*;
use crate::model::{ResourceId, ResourceType};

use crate::test_rng::Rng;

/// `n` samples around `center` with uniform multiplicative noise of ±`spread`.
fn noisy(seed: u64, n: usize, center: f64, spread: f64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| center * (1.0 + spread * (2.0 * rng.next_f64() - 1.0)))
        .collect()
}

fn latency_rules() -> VerdictRules {
    VerdictRules {
        kind: Some(MetricKind::Latency),
        ..VerdictRules::default()
    }
}

#[test]
fn identical_samples_read_no_change_with_p_one() {
    let before = noisy(1, 60, 40.0, 0.3);
    let after: Vec<f64> = before.iter().rev().copied().collect();
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &latency_rules());
    assert_eq!(verdict, Verdict::NoChange);
    assert!(ev.p_value.unwrap() > 0.99, "{ev:?}");
    assert_eq!(ev.cliffs_delta, Some(0.0));
    assert_eq!(ev.relative_change, Some(0.0));
    assert!(
        ev.reason.starts_with("no change: median ") && ev.reason.contains("not significant"),
        "{}",
        ev.reason
    );
}

#[test]
fn two_draws_of_one_distribution_read_no_change() {
    let (verdict, ev) = judge(
        &noisy(1, 60, 40.0, 0.3),
        &noisy(2, 60, 40.0, 0.3),
        Comparator::Le,
        &latency_rules(),
    );
    assert_eq!(verdict, Verdict::NoChange, "{}", ev.reason);
    // p ≈ 0.254: the medians differ by 5.9 %, but that is noise.
    assert!(ev.p_value.unwrap() > 0.2, "{ev:?}");
}

#[test]
fn false_alarms_stay_below_alpha() {
    // 200 pairs of windows from one distribution: at α = 0.05 at most 5 % may read as a
    // change (the effect gate only lowers that; 7 of 200 with these seeds).
    let rules = latency_rules();
    let alarms = (0..200u64)
        .filter(|s| {
            let before = noisy(1000 + s, 60, 40.0, 0.3);
            let after = noisy(5000 + s, 60, 40.0, 0.3);
            judge(&before, &after, Comparator::Le, &rules).0 != Verdict::NoChange
        })
        .count();
    assert!(alarms <= 10, "{alarms} false alarms of 200");
}

#[test]
fn a_tenfold_latency_drop_reads_improved() {
    let before = noisy(3, 60, 41.0, 0.3);
    let after = noisy(4, 60, 3.1, 0.3);
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &latency_rules());
    assert_eq!(verdict, Verdict::Improved);
    let p = ev.p_value.unwrap();
    assert!(p < 0.001 && p > 0.0, "{p}");
    assert!((ev.confidence.unwrap() - (1.0 - p)).abs() < 1e-15);
    // The windows do not overlap: every verify sample lies below every baseline one.
    assert_eq!(ev.cliffs_delta, Some(-1.0));
    let rel = ev.relative_change.unwrap();
    assert!((rel + 0.923).abs() < 0.001, "{rel}");
    assert_eq!((ev.baseline_n, ev.verify_n), (60, 60));
    assert_eq!(
        ev.reason,
        "improved: median 42.1 → 3.2 ms (−92 %), p95 50.6 → 3.9 ms; 60 vs 60 samples, p < 0.001"
    );
}

#[test]
fn a_clear_latency_rise_reads_worse() {
    let (verdict, ev) = judge(
        &noisy(11, 60, 20.0, 0.3),
        &noisy(12, 60, 60.0, 0.3),
        Comparator::Le,
        &latency_rules(),
    );
    assert_eq!(verdict, Verdict::Worse);
    assert!(ev.p_value.unwrap() < 0.001);
    assert_eq!(ev.cliffs_delta, Some(1.0));
    assert!(
        ev.reason
            .starts_with("worse: median 21.5 → 63.1 ms (+193 %)"),
        "{}",
        ev.reason
    );
}

#[test]
fn higher_is_better_for_ge_targets() {
    let rules = VerdictRules::for_kind(MetricKind::Utilization);
    let before = noisy(5, 60, 58.0, 0.05);
    let after = noisy(6, 60, 97.0, 0.02);
    let (verdict, ev) = judge(&before, &after, Comparator::Ge, &rules);
    assert_eq!(verdict, Verdict::Improved, "{}", ev.reason);
    assert!(ev.p_value.unwrap() < 0.001);
    assert!(
        ev.reason
            .starts_with("improved: median 57.7 → 97.0 % (+68 %)"),
        "{}",
        ev.reason
    );
    // The same move under a ≤ target is a regression, and back down is worse for ≥.
    assert_eq!(
        judge(&before, &after, Comparator::Le, &rules).0,
        Verdict::Worse
    );
    assert_eq!(
        judge(&after, &before, Comparator::Ge, &rules).0,
        Verdict::Worse
    );
}

#[test]
fn a_significant_but_tiny_change_reads_no_change() {
    // 600 samples each, the median 0.9 % lower: p ≈ 2 × 10⁻³⁴, yet under the 5 % that counts.
    let before = noisy(7, 600, 100.0, 0.02);
    let after = noisy(8, 600, 99.0, 0.02);
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &latency_rules());
    assert_eq!(verdict, Verdict::NoChange);
    assert!(ev.p_value.unwrap() < 1e-20, "{ev:?}");
    assert!(
        ev.reason
            .ends_with("p < 0.001, but a change under 5 % does not count"),
        "{}",
        ev.reason
    );
    // With a 0.5 % minimum effect the same data counts.
    let lenient = VerdictRules {
        min_effect: 0.005,
        ..latency_rules()
    };
    assert_eq!(
        judge(&before, &after, Comparator::Le, &lenient).0,
        Verdict::Improved
    );
}

#[test]
fn a_change_below_the_absolute_floor_reads_no_change() {
    // 2.0 → 1.5 ms is −25 % and significant, but under the 1 ms floor of latency.
    let before = noisy(9, 60, 2.0, 0.05);
    let after = noisy(10, 60, 1.5, 0.05);
    let rules = VerdictRules::for_kind(MetricKind::Latency);
    assert_eq!(rules.abs_floor, 1.0);
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &rules);
    assert_eq!(verdict, Verdict::NoChange);
    assert!(ev.p_value.unwrap() < 0.001);
    assert!(
        ev.reason
            .ends_with("but a change under 1 ms does not count"),
        "{}",
        ev.reason
    );
    let no_floor = VerdictRules {
        abs_floor: 0.0,
        ..rules
    };
    assert_eq!(
        judge(&before, &after, Comparator::Le, &no_floor).0,
        Verdict::Improved
    );
}

#[test]
fn too_few_samples_read_inconclusive() {
    let rules = latency_rules();
    let (verdict, ev) = judge(
        &noisy(1, 5, 40.0, 0.3),
        &noisy(2, 60, 4.0, 0.3),
        Comparator::Le,
        &rules,
    );
    assert_eq!(verdict, Verdict::Inconclusive);
    assert_eq!(
        ev.reason,
        "inconclusive: not enough samples (5 of 10 before the change)"
    );
    assert_eq!(
        (ev.p_value, ev.cliffs_delta, ev.confidence),
        (None, None, None)
    );
    // What there is, is still shown.
    assert!(ev.baseline_median.is_some() && ev.verify_median.is_some());

    let (verdict, ev) = judge(
        &noisy(1, 5, 40.0, 0.3),
        &noisy(2, 3, 4.0, 0.3),
        Comparator::Le,
        &rules,
    );
    assert_eq!(verdict, Verdict::Inconclusive);
    assert_eq!(
        ev.reason,
        "inconclusive: not enough samples (5 of 10 before the change, 3 of 10 after)"
    );

    let (verdict, ev) = judge::<f64>(&[], &[], Comparator::Ge, &rules);
    assert_eq!(verdict, Verdict::Inconclusive);
    assert_eq!((ev.baseline_median, ev.verify_p95), (None, None));
}

#[test]
fn non_finite_samples_are_dropped_and_counted() {
    let clean_before = noisy(3, 60, 41.0, 0.3);
    let clean_after = noisy(4, 60, 3.1, 0.3);
    let mut before = clean_before.clone();
    before.insert(0, f64::NAN);
    before.insert(10, f64::INFINITY);
    before.push(f64::NEG_INFINITY);
    let mut after = clean_after.clone();
    after.insert(30, f64::NAN);
    let rules = latency_rules();
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &rules);
    let (clean_verdict, clean) = judge(&clean_before, &clean_after, Comparator::Le, &rules);
    assert_eq!(verdict, clean_verdict);
    assert_eq!((ev.baseline_dropped, ev.verify_dropped), (3, 1));
    assert_eq!((ev.baseline_n, ev.verify_n), (60, 60));
    assert_eq!(ev.p_value, clean.p_value);
    assert_eq!(ev.baseline_median, clean.baseline_median);
    assert_eq!(
        ev.reason,
        format!("{}; 4 non-finite samples dropped", clean.reason)
    );

    // The history's own encoding works as is: gaps as None.
    let ring_before: Vec<Option<f32>> = clean_before
        .iter()
        .map(|v| Some(*v as f32))
        .chain([None, Some(f32::NAN)])
        .collect();
    let ring_after: Vec<Option<f32>> = clean_after.iter().map(|v| Some(*v as f32)).collect();
    let (verdict, ev) = judge(&ring_before, &ring_after, Comparator::Le, &rules);
    assert_eq!(verdict, Verdict::Improved);
    assert_eq!(ev.baseline_dropped, 2);

    // Gaps can make a side too short.
    let mostly_gaps: Vec<f64> = (0..60)
        .map(|i| if i % 10 == 0 { 40.0 } else { f64::NAN })
        .collect();
    let (verdict, ev) = judge(&mostly_gaps, &clean_after, Comparator::Le, &rules);
    assert_eq!(verdict, Verdict::Inconclusive);
    assert_eq!(
        ev.reason,
        "inconclusive: not enough samples (6 of 10 before the change); 54 non-finite samples dropped"
    );
}

#[test]
fn heavy_ties_give_finite_p_values() {
    let rules = VerdictRules::default();
    let before: Vec<f64> = [1.0, 1.0, 1.0, 2.0, 2.0, 3.0].repeat(10);
    let after: Vec<f64> = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0].repeat(10);
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &rules);
    let p = ev.p_value.unwrap();
    assert!(p.is_finite() && p > 0.0 && p < 0.001, "{p}");
    assert_eq!(verdict, Verdict::Worse);

    // One value everywhere: nothing to test, p = 1 (the variance is 0; never NaN).
    let flat = vec![5.0; 20];
    let (verdict, ev) = judge(&flat, &flat, Comparator::Le, &rules);
    assert_eq!(verdict, Verdict::NoChange);
    assert_eq!(ev.p_value, Some(1.0));
    assert_eq!(ev.cliffs_delta, Some(0.0));

    // Each side flat, different values: a clean, finite result.
    let (verdict, ev) = judge(&flat, &[3.0; 20], Comparator::Le, &rules);
    assert_eq!(verdict, Verdict::Improved);
    let p = ev.p_value.unwrap();
    assert!(p.is_finite() && p > 0.0 && p < 1e-6, "{p}");
    assert_eq!(ev.cliffs_delta, Some(-1.0));

    // Zeros and negative zeros are one value.
    let zeros: Vec<f64> = (0..20)
        .map(|i| if i % 2 == 0 { 0.0 } else { -0.0 })
        .collect();
    let (verdict, ev) = judge(&zeros, &[0.0; 20], Comparator::Le, &rules);
    assert_eq!((verdict, ev.p_value), (Verdict::NoChange, Some(1.0)));
}

#[test]
fn p_value_matches_the_hand_computed_example() {
    // baseline 1..=10, verify 6..=15 (N = 20). Pooled ranks: 1–5 → 1…5; the pairs 6…10
    // tie and share 6.5, 8.5, 10.5, 12.5, 14.5; 11–15 → 16…20.
    //   R_baseline = 15 + 52.5 = 67.5, U_baseline = 67.5 − 10·11/2 = 12.5,
    //   U_verify = 100 − 12.5 = 87.5, mean n₁n₂/2 = 50.
    //   Ties: five groups of 2, Σ(t³ − t) = 5 · 6 = 30.
    //   σ² = n₁n₂/12 · ((N + 1) − Σ(t³ − t)/(N(N − 1))) = 100/12 · (21 − 30/380)
    //      = 174.3421…, σ = 13.2039
    //   z = (|87.5 − 50| − ½)/σ = 37/13.2039 = 2.80221
    //   p = 2(1 − Φ(z)) = erfc(z/√2) = 0.0050754 (R: wilcox.test(exact = FALSE)$p.value)
    //   Cliff's delta = 2 · 87.5/100 − 1 = 0.75.
    let before: Vec<f64> = (1..=10).map(f64::from).collect();
    let after: Vec<f64> = (6..=15).map(f64::from).collect();
    let (verdict, ev) = judge(&before, &after, Comparator::Le, &VerdictRules::default());
    let p = ev.p_value.unwrap();
    assert!((p - 0.005_075_39).abs() < 1e-6, "{p}");
    assert_eq!(ev.cliffs_delta, Some(0.75));
    assert_eq!(
        (ev.baseline_median, ev.verify_median),
        (Some(5.5), Some(10.5))
    );
    assert_eq!(verdict, Verdict::Worse);
    assert!(ev.reason.contains("p = 0.005"), "{}", ev.reason);
}

#[test]
fn erfc_is_accurate_in_the_tails() {
    // Reference values of erfc (Abramowitz & Stegun, table 7.1 and its complements).
    for (x, want) in [
        (0.0, 1.0),
        (0.5, 0.479_500_122_186_953_5),
        (1.0, 0.157_299_207_050_285_1),
        (2.0, 0.004_677_734_981_047_266),
        (3.0, 2.209_049_699_858_544e-5),
        (5.0, 1.537_459_794_428_035e-12),
    ] {
        let got = erfc(x);
        assert!(
            ((got - want) / want).abs() < 2.5e-7,
            "erfc({x}) = {got}, want {want}"
        );
    }
    assert!((erfc(-1.0) - (2.0 - 0.157_299_207_050_285_1)).abs() < 1e-7);
}

#[test]
fn medians_and_p95s_match_the_stats_module() {
    let before = noisy(21, 61, 10.0, 0.5);
    let after = noisy(22, 40, 12.0, 0.5);
    let (_, ev) = judge(&before, &after, Comparator::Le, &VerdictRules::default());
    let close = |a: Option<f64>, b: Option<f64>| (a.unwrap() - b.unwrap()).abs() < 1e-12;
    assert!(close(ev.baseline_median, stats::percentile(&before, 50.0)));
    assert!(close(ev.verify_median, stats::percentile(&after, 50.0)));
    assert!(close(ev.baseline_p95, stats::percentile(&before, 95.0)));
    assert!(close(ev.verify_p95, stats::percentile(&after, 95.0)));
}

#[test]
fn reasons_carry_settle_and_serde_forms_are_stable() {
    let rules = VerdictRules {
        settle_secs: 11,
        ..latency_rules()
    };
    let (verdict, ev) = judge(
        &noisy(3, 60, 41.0, 0.3),
        &noisy(4, 60, 3.1, 0.3),
        Comparator::Le,
        &rules,
    );
    assert_eq!(ev.settle_secs, 11);
    assert_eq!(serde_json::to_string(&verdict).unwrap(), "\"improved\"");
    assert_eq!(
        serde_json::to_string(&Verdict::NoChange).unwrap(),
        "\"no_change\""
    );
    for v in Verdict::ALL {
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{}\"", v.as_str()));
        assert_eq!(v.reversed().reversed(), v);
    }
    assert_eq!(Verdict::NoChange.word(), "no change");
    assert!(!Verdict::Inconclusive.is_conclusive());
    let back: Evidence = serde_json::from_str(&serde_json::to_string(&ev).unwrap()).unwrap();
    assert_same_evidence(&back, &ev);
    // Inconclusive evidence (None statistics) round-trips too.
    let (_, short) = judge::<f64>(&[], &[1.0], Comparator::Le, &rules);
    let back: Evidence = serde_json::from_str(&serde_json::to_string(&short).unwrap()).unwrap();
    assert_same_evidence(&back, &short);
    let rules_back: VerdictRules =
        serde_json::from_str(&serde_json::to_string(&rules).unwrap()).unwrap();
    assert_eq!(rules_back, rules);
    let partial: VerdictRules = serde_json::from_str(r#"{"alpha": 0.01}"#).unwrap();
    assert_eq!(
        partial,
        VerdictRules {
            alpha: 0.01,
            ..VerdictRules::default()
        }
    );
}

/// Equal up to the last bit of each float (serde_json's default float parsing is
/// best-effort, not always correctly rounded).
fn assert_same_evidence(a: &Evidence, b: &Evidence) {
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => x == y || ((x - y) / y).abs() < 1e-12,
        (x, y) => x.is_none() && y.is_none(),
    };
    assert_eq!(
        (
            a.baseline_n,
            a.verify_n,
            a.baseline_dropped,
            a.verify_dropped
        ),
        (
            b.baseline_n,
            b.verify_n,
            b.baseline_dropped,
            b.verify_dropped
        )
    );
    assert_eq!((a.settle_secs, &a.reason), (b.settle_secs, &b.reason));
    for (x, y) in [
        (a.baseline_median, b.baseline_median),
        (a.verify_median, b.verify_median),
        (a.baseline_p95, b.baseline_p95),
        (a.verify_p95, b.verify_p95),
        (a.median_change, b.median_change),
        (a.relative_change, b.relative_change),
        (a.cliffs_delta, b.cliffs_delta),
        (a.p_value, b.p_value),
        (a.confidence, b.confidence),
    ] {
        assert!(close(x, y), "{x:?} vs {y:?}");
    }
}

#[test]
fn rules_are_validated() {
    assert!(VerdictRules::default().validate().is_ok());
    assert!(VerdictRules::for_kind(MetricKind::Throughput)
        .validate()
        .is_ok());
    let bad = [
        VerdictRules {
            alpha: 0.0,
            ..Default::default()
        },
        VerdictRules {
            alpha: f64::NAN,
            ..Default::default()
        },
        VerdictRules {
            min_samples: 0,
            ..Default::default()
        },
        VerdictRules {
            min_effect: -0.1,
            ..Default::default()
        },
        VerdictRules {
            abs_floor: f64::INFINITY,
            ..Default::default()
        },
    ];
    for rules in bad {
        assert!(rules.validate().is_err(), "{rules:?}");
    }
}

#[test]
fn numbers_in_reasons_keep_their_digits() {
    assert_eq!(num(580.4), "580");
    assert_eq!(num(41.24), "41.2");
    assert_eq!(num(6.0), "6.0");
    assert_eq!(num(0.2134), "0.213");
    assert_eq!(num(0.0042), "0.00420");
    assert_eq!(num(0.0), "0.0");
    assert_eq!(num(f64::NAN), "n/a");
    assert_eq!(signed_pct(-0.9229), "−92 %");
    assert_eq!(signed_pct(0.045), "+4.5 %");
    assert_eq!(signed_pct(0.0001), "0 %");
    assert_eq!(short_num(5.0), "5");
    assert_eq!(short_num(0.5), "0.5");
}

fn sample() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1000.0f64..1000.0,
        1 => Just(f64::NAN),
        2 => Just(0.0),
        2 => Just(5.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Swapping the windows flips improved ↔ worse and keeps no change and inconclusive,
    /// with the same p-value. (With no effect gates: a relative gate measured against the
    /// baseline is asymmetric by nature, −4.8 % one way is +5.04 % the other.)
    #[test]
    fn swapping_the_windows_flips_the_verdict(
        baseline in prop::collection::vec(sample(), 0..80),
        verify in prop::collection::vec(sample(), 0..80),
        shift in -500.0f64..500.0,
        ge in any::<bool>(),
        min_samples in 0usize..20,
    ) {
        let verify: Vec<f64> = verify.iter().map(|v| v + shift).collect();
        let better = if ge { Comparator::Ge } else { Comparator::Le };
        let rules = VerdictRules {
            min_samples,
            min_effect: 0.0,
            abs_floor: 0.0,
            ..VerdictRules::default()
        };
        let (forward, f) = judge(&baseline, &verify, better, &rules);
        let (backward, b) = judge(&verify, &baseline, better, &rules);
        prop_assert_eq!(backward, forward.reversed());
        prop_assert_eq!(f.p_value, b.p_value);
        prop_assert_eq!(f.cliffs_delta.map(|d| -d), b.cliffs_delta);
        if let Some(p) = f.p_value {
            prop_assert!((0.0..=1.0).contains(&p), "p = {}", p);
        }
        if let Some(d) = f.cliffs_delta {
            prop_assert!((-1.0..=1.0).contains(&d), "delta = {}", d);
        }
        prop_assert!(f.reason.starts_with(forward.word()), "{}", f.reason);
    }

    /// With the default gates the flip still holds whenever the change is clear both ways.
    #[test]
    fn a_clear_change_flips_under_default_rules(
        seed in any::<u64>(),
        factor in prop_oneof![Just(0.1f64), Just(0.5), Just(1.0), Just(2.0), Just(10.0)],
        ge in any::<bool>(),
    ) {
        let baseline = noisy(seed, 60, 40.0, 0.2);
        let verify = noisy(seed.wrapping_add(1), 60, 40.0 * factor, 0.2);
        let better = if ge { Comparator::Ge } else { Comparator::Le };
        let rules = VerdictRules::default();
        let (forward, _) = judge(&baseline, &verify, better, &rules);
        let (backward, _) = judge(&verify, &baseline, better, &rules);
        if factor != 1.0 {
            prop_assert!(forward != Verdict::NoChange && forward.is_conclusive());
            prop_assert_eq!(backward, forward.reversed());
        }
    }
}

#[test]
fn robust_level_is_the_median_and_ignores_one_spike() {
    assert_eq!(robust_level(&[3.0f64, 1.0, 2.0]), Some(2.0));
    assert_eq!(robust_level(&[4.0f64, 1.0, 2.0, 3.0]), Some(2.5));
    assert_eq!(robust_level(&[f64::NAN, 7.0, f64::INFINITY]), Some(7.0));
    assert_eq!(robust_level::<f64>(&[]), None);
    assert_eq!(robust_level(&[None::<f32>, None]), None);
    let mut window = vec![20.0; 59];
    window.push(5000.0);
    assert_eq!(robust_level(&window), Some(20.0));
    let mut scratch = Vec::new();
    assert_eq!(robust_level_with(&window, &mut scratch), Some(20.0));
    let ring = [Some(1.0f32), None, Some(3.0)];
    assert_eq!(robust_level_with(&ring, &mut scratch), Some(2.0));
}

#[test]
fn sustained_trips_only_after_consecutive_ticks() {
    let mut s = Sustained::new(3);
    assert!(!s.observe(true));
    assert!(!s.observe(true));
    assert!(
        !s.observe(false),
        "one tick under the limit restarts the count"
    );
    assert_eq!(s.run(), 0);
    assert!(!s.observe(true));
    assert!(!s.observe(true));
    assert!(s.observe(true));
    assert!(s.tripped());
    assert!(s.observe(true), "stays tripped while over");
    assert!(!s.observe(false));
    s.observe(true);
    s.reset();
    assert_eq!((s.run(), s.tripped()), (0, false));

    let mut once = Sustained::new(0);
    assert_eq!(once.need(), 1);
    assert!(once.observe(true));

    let json = serde_json::to_string(&Sustained::new(2)).unwrap();
    assert_eq!(
        serde_json::from_str::<Sustained>(&json).unwrap(),
        Sustained::new(2)
    );
}

#[test]
fn the_settle_period_is_the_sources_lag_plus_one_sample_interval() {
    let lag = Settle {
        secs: 10,
        why: "averages over the last requests",
    };
    let mut cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "cpu");
    assert_eq!(settle_for(lag, &cpu), 10 + 1);
    cpu.settings.step_secs = 10;
    assert_eq!(settle_for(lag, &cpu), 20);
    assert_eq!(settle_for(DEFAULT_SETTLE, &cpu), 15);
}
