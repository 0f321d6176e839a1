//! Anomaly bands (`cargo bench -p engine --bench anomaly`): what one chart load and one
//! overview refresh cost. The 1-hour chart judges 3,600 one-second points, each against
//! the 600 before it; the 1-day chart 1,440 minutes against 40; the server also counts
//! every card's anomalies over the last hour once a minute.

use divan::Bencher;
use engine::anomaly::{band, BandSettings};

/// The engine tests' deterministic noise (SplitMix64), shared rather than written again.
#[path = "../src/test_rng.rs"]
#[allow(dead_code)] // a bench uses part of it
mod test_rng;

fn main() {
    divan::main();
}

/// `n` values: noise around 50 with a daily swing (SplitMix64, deterministic).
fn series(n: usize, step_secs: u32) -> Vec<Option<f32>> {
    let mut rng = test_rng::Rng(7);
    (0..n)
        .map(|i| {
            let noise = (rng.next_f64() - 0.5) * 4.0;
            let secs = i as f64 * f64::from(step_secs);
            let swing = (secs / 86_400.0 * std::f64::consts::TAU).sin();
            Some((50.0 + 20.0 * swing + noise) as f32)
        })
        .collect()
}

/// The 1-hour chart (and one card's hourly count): 3,600 points at 1 s.
#[divan::bench]
fn one_hour_at_one_second(bencher: Bencher) {
    let values = series(3_600, 1);
    let settings = BandSettings::default();
    bencher.bench(|| band(divan::black_box(&values), 1, &settings));
}

/// The 1-day chart: 1,440 minutes.
#[divan::bench]
fn one_day_at_one_minute(bencher: Bencher) {
    let values = series(1_440, 60);
    let settings = BandSettings::default();
    bencher.bench(|| band(divan::black_box(&values), 60, &settings));
}

/// The 30-day chart: 720 hours.
#[divan::bench]
fn thirty_days_at_one_hour(bencher: Bencher) {
    let values = series(720, 3_600);
    let settings = BandSettings::default();
    bencher.bench(|| band(divan::black_box(&values), 3_600, &settings));
}
