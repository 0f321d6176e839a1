//! The analyze tick: window statistic + status state machine for 1,000 resources
//! (`cargo bench -p engine --bench analyze`). Budget: ≤ 1 ms per tick.

use divan::Bencher;
use engine::model::{Comparator, MetricKind, ResourceSettings, Statistic, Target};
use engine::optimizer::{Analyzer, Tracker};

fn main() {
    divan::main();
}

const RESOURCES: usize = 1000;

/// One tick over 1,000 resources with 60-sample windows (1 s step, 60 s window), one
/// sample in 20 missing, a third of them breaching.
#[divan::bench(args = [Statistic::Mean, Statistic::P95, Statistic::Max])]
fn analyze_tick_1000_resources(bencher: Bencher, statistic: Statistic) {
    let settings = ResourceSettings::default();
    let target = Target {
        metric: "utilization".into(),
        comparator: Comparator::Le,
        value: 65.0,
        statistic,
        for_secs: 300,
    };
    let series: Vec<Vec<Option<f32>>> = (0..RESOURCES)
        .map(|r| {
            (0..settings.window_samples())
                .map(|i| (i % 20 != 7).then_some((r % 3) as f32 * 30.0 + (i % 10) as f32))
                .collect()
        })
        .collect();
    let mut trackers: Vec<Tracker> = (0..RESOURCES).map(|_| Tracker::new(0)).collect();
    let mut analyzer = Analyzer::new();
    let mut now = 0i64;
    bencher.bench_local(|| {
        now += 1000;
        let mut transitions = 0usize;
        for (samples, tracker) in series.iter().zip(trackers.iter_mut()) {
            let obs = analyzer.observe(samples, &target, &settings);
            transitions += usize::from(
                tracker
                    .observe(now, &obs, &target, MetricKind::Utilization, &settings)
                    .is_some(),
            );
        }
        transitions
    });
}
