//! Cost of one collector tick on this machine. Each sample is one tick preceded (outside
//! the timing) by a sleep past sysinfo's minimum CPU refresh gap, so every timed tick
//! does the full CPU read, as at 1 Hz.

use std::time::Duration;

use connectors::sources::host::{CollectorConfig, HostCollector};
use engine::time::unix_now_ms;

fn main() {
    divan::main();
}

fn gap() {
    std::thread::sleep(Duration::from_millis(210));
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn tick_without_process_scan(bencher: divan::Bencher) {
    let mut c = HostCollector::new(CollectorConfig {
        process_interval: Duration::from_secs(3_600),
        ..CollectorConfig::default()
    });
    bencher
        .with_inputs(gap)
        .bench_local_values(|()| c.tick(unix_now_ms()));
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn tick_with_process_scan(bencher: divan::Bencher) {
    let mut c = HostCollector::new(CollectorConfig {
        process_interval: Duration::ZERO,
        ..CollectorConfig::default()
    });
    bencher
        .with_inputs(gap)
        .bench_local_values(|()| c.tick(unix_now_ms()));
}
