//! History costs on the hot path: one append per series per tick, and the range queries
//! behind a chart (1 h raw → 600 points, 24 h aggregate → 1,440 points).

use engine::history::{History, HistoryConfig, SeriesHistory};
use engine::model::{MetricKind, ResourceType};
use engine::series::{SeriesInfo, SeriesKey, Tick};

fn main() {
    divan::main();
}

const T0: i64 = 1_700_000_000_000;

/// A series that has run for a full day, so every ring is wrapped (steady state).
fn full_series() -> SeriesHistory {
    let mut s = SeriesHistory::new(&HistoryConfig::default());
    for i in 0..86_400 {
        let v = if i % 97 == 0 {
            None
        } else {
            Some((i % 100) as f32)
        };
        s.append(T0 + i * 1_000, v);
    }
    s
}

#[divan::bench]
fn append_one_sample(bencher: divan::Bencher) {
    let mut s = full_series();
    let mut t = T0 + 86_400_000;
    bencher.bench_local(|| {
        t += 1_000;
        s.append(divan::black_box(t), Some(42.0))
    });
}

#[divan::bench]
fn append_tick_of_32_series(bencher: divan::Bencher) {
    let series: Vec<SeriesInfo> = (0..32)
        .map(|i| {
            SeriesInfo::new(
                SeriesKey::new(format!("cpu:core{i}"), "utilization"),
                ResourceType::Cpu,
                "core",
                Some(MetricKind::Utilization),
                "%",
            )
        })
        .collect();
    let mut tick = Tick {
        at: T0,
        series: series.into(),
        values: (0..32).map(|i| Some(i as f32)).collect(),
        top_processes: None,
    };
    let mut h = History::new(HistoryConfig::default()).unwrap();
    bencher.bench_local(|| {
        tick.at += 1_000;
        h.append_tick(divan::black_box(&tick))
    });
}

#[divan::bench]
fn range_1h_raw_to_600_points(bencher: divan::Bencher) {
    let s = full_series();
    let end = T0 + 86_400_000;
    bencher.bench_local(|| s.range(divan::black_box(end - 3_600_000), end, 600));
}

#[divan::bench]
fn range_24h_aggregate_to_1440_points(bencher: divan::Bencher) {
    let s = full_series();
    let end = T0 + 86_400_000;
    bencher.bench_local(|| s.range(divan::black_box(end - 86_400_000), end, 1_440));
}

#[divan::bench]
fn last_300_raw(bencher: divan::Bencher) {
    let s = full_series();
    bencher.bench_local(|| s.last_raw(divan::black_box(300)));
}
