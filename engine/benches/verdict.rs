//! The verdict on an action: Mann-Whitney over a baseline and a verify window
//! (`cargo bench -p engine --bench verdict`). Budget: ≤ 1 ms for 2 × 600 samples.

use divan::Bencher;
use engine::model::Comparator;
use engine::verdict::{judge, VerdictRules};

fn main() {
    divan::main();
}

/// `n` samples around `center` with ±30 % uniform noise (SplitMix64: deterministic, no
/// dependency).
fn noisy(mut state: u64, n: usize, center: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
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
