//! The history on disk: what appending costs (the live path hands over an `Arc<Tick>`; the
//! writer thread turns samples into tier chunks), against the in-memory ring's append in
//! the same run; and reading 30 days back: the chart of 4 series from the hour tier, and
//! a 30-day backtest of one series on its minutes.
//!
//! Run: `cargo bench -p server --bench history_store`. The 30-day file (4 series, one
//! sample per second) is built once per run in a temp directory.

use std::sync::{Arc, LazyLock};

use divan::{black_box, Bencher};
use engine::history::tiers::{Tier, TierWriter};
use engine::history::{History, HistoryConfig};
use engine::model::{MetricKind, ResourceType};
use engine::series::{SeriesInfo, SeriesKey, Tick};
use server::persist::history::{import, HistoryStore, Retention};

fn main() {
    divan::main();
}

const DAY_MS: i64 = 86_400_000;
const END_MS: i64 = 1_800_000_000_000;

fn info(i: usize) -> SeriesInfo {
    SeriesInfo::new(
        SeriesKey::new(format!("custom:{i}"), "value"),
        ResourceType::Custom(i as u32),
        format!("series {i}"),
        Some(MetricKind::Utilization),
        "%",
    )
}

/// A plausible utilization: a daily wave, a slower drift and per-second noise quantized
/// as collectors report it.
fn value(i: usize, t: i64) -> f32 {
    let day = (t % DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU;
    let noise = ((t / 1000).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
    (40.0 + 25.0 * day.sin() + 5.0 * (i as f64) + 3.0 * noise) as f32
}

/// 30 days of 4 series at 1 Hz, written once.
static MONTH: LazyLock<(tempfile_dir::Dir, HistoryStore)> = LazyLock::new(|| {
    let dir = tempfile_dir::Dir::new();
    let series: Vec<(SeriesInfo, Vec<(i64, f32)>)> = (0..4)
        .map(|i| {
            let samples = (0..30 * 86_400)
                .map(|s| {
                    let t = END_MS - 30 * DAY_MS + s * 1000;
                    (t, value(i, t))
                })
                .collect();
            (info(i), samples)
        })
        .collect();
    import(&dir.0, 1_000, &series, 3_600).expect("build the 30-day file");
    let (store, _) = HistoryStore::open(
        &dir.0,
        1_000,
        Retention {
            raw_days: 3650,
            minute_days: 3650,
            hour_days: 36500,
            max_bytes: 1 << 40,
        },
        END_MS,
    )
    .expect("open the 30-day file");
    (dir, store)
});

mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir()
                .join(format!("perfpilot-bench-history-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The reference: one sample into the in-memory rings.
#[divan::bench]
fn append_in_memory(bencher: Bencher) {
    let mut history = History::new(HistoryConfig::default()).unwrap();
    let id = history.register(info(0)).unwrap();
    let mut t = 0i64;
    bencher.bench_local(|| {
        t += 1_000;
        black_box(history.append(id, t, Some(value(0, t))).unwrap());
    });
}

/// The writer thread's work per sample: raw slot, minute and hour aggregates.
#[divan::bench]
fn append_tier_writer(bencher: Bencher) {
    let mut writer = TierWriter::new(1_000);
    let key = SeriesKey::new("custom:0", "value");
    let mut t = 0i64;
    let mut none = |_: &SeriesKey, _: Tier, _: i64| None;
    bencher.bench_local(|| {
        t += 1_000;
        black_box(writer.append(&key, t, Some(value(0, t)), &mut none));
    });
}

/// The live path's part per tick of 100 series: handing the tick to the writer thread.
#[divan::bench]
fn hand_over_a_tick_of_100_series(bencher: Bencher) {
    let dir = tempfile_dir::Dir::new();
    let (store, _) = HistoryStore::open(&dir.0, 1_000, Retention::default(), 0).unwrap();
    let series: Arc<[SeriesInfo]> = (0..100).map(info).collect();
    let mut t = 0i64;
    bencher.bench_local(|| {
        t += 1_000;
        let tick = Tick {
            at: t,
            series: series.clone(),
            values: vec![Some(1.0); 100],
            top_processes: None,
        };
        store.tick(Arc::new(tick));
    });
    drop(store);
}

/// A 30-day chart of 4 series: the hour tier, 720 slots each.
#[divan::bench(sample_count = 20)]
fn chart_30_days_4_series(bencher: Bencher) {
    let (_, store) = &*MONTH;
    let keys: Vec<SeriesKey> = (0..4)
        .map(|i| SeriesKey::new(format!("custom:{i}"), "value"))
        .collect();
    bencher.bench(|| {
        black_box(
            store
                .read(&keys, Tier::Hour, END_MS - 30 * DAY_MS, END_MS)
                .unwrap(),
        );
    });
}

/// "Would this target have fired in the last 30 days?" on one series' minutes (43,200).
#[divan::bench(sample_count = 20)]
fn backtest_30_days_of_minutes(bencher: Bencher) {
    let (_, store) = &*MONTH;
    let target = engine::model::Target::default_for("value", 65.0);
    bencher.bench(|| {
        let key = SeriesKey::new("custom:0", "value");
        let points = store
            .read(&[key], Tier::Minute, END_MS - 30 * DAY_MS, END_MS)
            .unwrap();
        let means: Vec<Option<f32>> = points[0].iter().map(|p| Some(p.mean)).collect();
        let rule = engine::backtest::Rule::default();
        black_box(engine::backtest::backtest(&means, 60, &target, &rule).unwrap())
    });
}
