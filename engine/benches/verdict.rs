//! The verdict on an action: Mann-Whitney over a baseline and a verify window
//! (`cargo bench -p engine --bench verdict`). Budget: ≤ 1 ms for 2 × 600 samples.

use divan::Bencher;
use engine::model::Comparator;
use engine::verdict::{judge, VerdictRules};

/// The engine tests' deterministic noise (SplitMix64), shared rather than written again.
#[path = "../src/test_rng.rs"]
#[allow(dead_code)] // a bench uses part of it
mod test_rng;

fn main() {
    divan::main();
}

/// `n` samples around `center` with ±30 % uniform noise (SplitMix64: deterministic, no
/// dependency).
fn noisy(seed: u64, n: usize, center: f64) -> Vec<f64> {
    let mut rng = test_rng::Rng(seed);
    (0..n)
        .map(|_| {
            let u = rng.next_f64();
            center * (1.0 + 0.3 * (2.0 * u - 1.0))
        })
        .collect()
}

/// A latency drop with overlapping noise (41 → 30 ms), every value distinct.
#[divan::bench(args = [60, 600])]
fn judge_distinct(bencher: Bencher, n: usize) {
    let before = noisy(1, n, 41.0);
    let after = noisy(2, n, 30.0);
    let rules = VerdictRules::default();
    bencher.bench_local(|| {
        judge(
            divan::black_box(before.as_slice()),
            divan::black_box(after.as_slice()),
            Comparator::Le,
            &rules,
        )
    });
}

/// The same rounded to whole milliseconds: long tie groups (the tie correction's case).
#[divan::bench(args = [600])]
fn judge_ties(bencher: Bencher, n: usize) {
    let before: Vec<f64> = noisy(3, n, 41.0).iter().map(|v| v.round()).collect();
    let after: Vec<f64> = noisy(4, n, 30.0).iter().map(|v| v.round()).collect();
    let rules = VerdictRules::default();
    bencher.bench_local(|| {
        judge(
            divan::black_box(before.as_slice()),
            divan::black_box(after.as_slice()),
            Comparator::Le,
            &rules,
        )
    });
}
