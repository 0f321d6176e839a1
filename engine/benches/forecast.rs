//! Time-to-breach on one series (`cargo bench -p engine --bench forecast`). The issue's
//! budget: forecasts for 100 series at 1 Hz ≤ 1 % of a core with refits every few hours;
//! one fit per series a minute is 100 fits a minute, so a fit must stay well under 6 ms.

use divan::Bencher;
use engine::forecast::{time_to_breach, ForecastSettings, TimeToBreach};

/// The engine tests' deterministic noise (SplitMix64), shared rather than written again.
#[path = "../src/test_rng.rs"]
#[allow(dead_code)] // a bench uses part of it
mod test_rng;

fn main() {
    divan::main();
}

const MINUTE_MS: i64 = 60_000;

/// A disk filling 0.1 % an hour from 40 %, one sample every `step_secs`, over `days`, with a
/// small daily wave and deterministic noise (SplitMix64).
fn filling(days: i64, step_secs: i64) -> Vec<(i64, f64)> {
    let step_ms = step_secs * 1000;
    let mut rng = test_rng::Rng(7);
    (0..days * 86_400_000 / step_ms)
        .map(|i| {
            let noise = rng.next_f64() - 0.5;
            let t = i * step_ms;
            let hours = t as f64 / 3_600_000.0;
            let wave = (hours / 24.0 * std::f64::consts::TAU).sin();
            (t, 40.0 + 0.1 * hours + wave + noise)
        })
        .collect()
}

/// Six hours at 1 s (21,600 samples): what the in-memory ring holds for a new install.
#[divan::bench]
fn six_hours_at_one_second(bencher: Bencher) {
    let points = filling(1, 1).into_iter().take(6 * 3600).collect::<Vec<_>>();
    let now = points.last().unwrap().0;
    let settings = ForecastSettings::default();
    // 40.6 % now and rising 0.1 % an hour: 45 % is about 44 h away.
    let answer = time_to_breach(&points, 45.0, true, now, &settings);
    assert!(
        matches!(answer, TimeToBreach::Breaches { .. }),
        "{answer:?}"
    );
    bencher.bench_local(|| time_to_breach(divan::black_box(&points), 45.0, true, now, &settings));
}

/// Fourteen days at one minute (20,160 samples): seasonality learnt (daily and weekly);
/// 73.6 % now, 80 % about 64 h away.
#[divan::bench]
fn fourteen_days_at_one_minute(bencher: Bencher) {
    let points = filling(14, 60);
    let now = points.last().unwrap().0 + MINUTE_MS;
    let settings = ForecastSettings::default();
    let answer = time_to_breach(&points, 80.0, true, now, &settings);
    assert!(
        matches!(answer, TimeToBreach::Breaches { .. }),
        "{answer:?}"
    );
    bencher.bench_local(|| time_to_breach(divan::black_box(&points), 80.0, true, now, &settings));
}
