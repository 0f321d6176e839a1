//! A performance report of 7 days × 50 series (BENCHMARKS.md "Reports"): reading the
//! period from the history on disk (minute tier) and writing the HTML with its 50 inline
//! SVG charts, and the CSV. The data is real perfpilot storage: 7 days of 1 Hz samples
//! imported into a temp data directory, a monitor started on it, 50 resources with
//! targets added through the change path.
//!
//! Run: `cargo bench -p server --bench report`

use std::sync::LazyLock;

use clap::Parser;
use divan::{black_box, Bencher};
use engine::model::{Resource, ResourceId, ResourceType, Target};
use engine::series::{SeriesInfo, SeriesKey};
use server::config::{Cli, Settings};
use server::report::{self, Period};
use server::state::Monitor;

fn main() {
    divan::main();
}

const DAY_MS: i64 = 86_400_000;
const SERIES: usize = 50;

struct Fixture {
    _runtime: tokio::runtime::Runtime,
    monitor: Monitor,
    period: Period,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("perfpilot-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = engine::time::unix_now_ms() / 1000 * 1000;
    let start = now - 7 * DAY_MS;
    for i in 0..SERIES {
        let info = SeriesInfo::new(
            SeriesKey::new(format!("custom:{i}"), "value"),
            ResourceType::Custom(i as u32),
            format!("series {i}"),
            Some(engine::model::MetricKind::Utilization),
            "%",
        );
        let samples: Vec<(i64, f32)> = (0..7 * 86_400)
            .map(|s| {
                let t = start + s * 1000;
                let day = (t % DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU;
                let noise = ((t / 1000).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
                (
                    t,
                    (40.0 + 25.0 * day.sin() + (i % 10) as f64 + 3.0 * noise) as f32,
                )
            })
            .collect();
        server::persist::history::import(&dir, 1_000, &[(info, samples)], 3_600)
            .expect("import a week");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cli = Cli::parse_from([
        "perfpilot",
        "--data-dir",
        dir.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    let settings = Settings::resolve(&cli).expect("settings");
    let monitor = runtime.block_on(async {
        let monitor = server::state::start(&settings).expect("start the monitor");
        for i in 0..SERIES {
            let id = ResourceId::new(&format!("custom:{i}")).unwrap();
            let mut resource =
                Resource::new(id, ResourceType::Custom(i as u32), &format!("series {i}"));
            resource.target = Some(Target::default_for("value", 60.0));
            monitor
                .apply(
                    engine::changes::Mutation::AddResource { resource },
                    app::identity::Identity::configuration(),
                )
                .await
                .expect("add a resource");
        }
        monitor
    });
    Fixture {
        _runtime: runtime,
        monitor,
        period: Period::last(7 * DAY_MS, now),
        dir,
    }
});

/// Reading 7 days of 50 series from disk and computing every number.
#[divan::bench(sample_count = 10)]
fn gather_7_days_of_50_series(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| black_box(report::gather(&f.monitor, f.period, Vec::new())));
}

/// The whole HTML report (gather + 50 SVG charts) and the CSV.
#[divan::bench(sample_count = 10)]
fn html_report_7_days_of_50_series(bencher: Bencher) {
    let f = &*FIXTURE;
    let state = f.monitor.store.state();
    let resources = state
        .resources
        .values()
        .map(|r| (r.id.to_string(), (**r).clone()))
        .collect();
    bencher.bench(|| {
        let data = report::gather(&f.monitor, f.period, Vec::new());
        assert_eq!(
            data.resources
                .iter()
                .filter(|r| r.compliance_pct.is_some())
                .count(),
            SERIES
        );
        black_box((report::html(&data, &resources), report::csv(&data)))
    });
}
