//! Suggested targets (`cargo bench -p engine --bench suggest`): three values and their
//! backtests from a metric's judged history. The budget is ≤ 300 ms for 30 days;
//! the server judges 30 days as 720 hourly slots (the history on disk's hour tier), and a
//! month at one value a minute (43,200) is the bound for any finer history.

use divan::Bencher;
use engine::backtest::Rule;
use engine::model::{Comparator, MetricKind, Statistic, Target};
use engine::suggest::suggest;

/// The engine tests' deterministic noise (SplitMix64), shared rather than written again.
#[path = "../src/test_rng.rs"]
#[allow(dead_code)] // a bench uses part of it
mod test_rng;

fn main() {
    divan::main();
}

/// `n` values, one every `step_secs`: a daily swing 20–60 % with deterministic noise
/// (SplitMix64) and a spike a day.
fn month(n: usize, step_secs: u32) -> Vec<Option<f32>> {
    let mut rng = test_rng::Rng(11);
    (0..n)
        .map(|i| {
            let noise = (rng.next_f64() - 0.5) * 4.0;
            let secs = i as f64 * f64::from(step_secs);
            let swing = (secs / 86_400.0 * std::f64::consts::TAU).sin();
            let spike = if (secs as u64 % 86_400) < u64::from(step_secs) {
                40.0
            } else {
                0.0
            };
            Some((40.0 + 20.0 * swing + noise + spike) as f32)
        })
        .collect()
}

fn shape() -> Target {
    Target {
        metric: "cpu".into(),
        comparator: Comparator::Le,
        value: 0.0,
        statistic: Statistic::P95,
        for_secs: 300,
    }
}

/// What the server does for 30 days: 720 hourly slots.
#[divan::bench]
fn thirty_days_hourly(bencher: Bencher) {
    let values = month(720, 3600);
    let rule = Rule::default();
    bencher.bench(|| suggest(&values, 3600, &shape(), &rule, MetricKind::Utilization).unwrap());
}

/// The bound for a finer history: 30 days at one value a minute.
#[divan::bench]
fn thirty_days_per_minute(bencher: Bencher) {
    let values = month(43_200, 60);
    let rule = Rule::default();
    bencher.bench(|| suggest(&values, 60, &shape(), &rule, MetricKind::Utilization).unwrap());
}
