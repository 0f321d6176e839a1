//! The host source as the server runs it, minus the server: its task at 1 Hz, every tick
//! appended to a full-size history. `scripts/bench-overhead.sh` measures this
//! process's CPU time and peak RSS against node_exporter until the real server exists.
//!
//! Usage: `collect_loop [SECONDS]` (default 60; 0 runs until killed). Prints one JSON
//! summary line on exit.

use std::time::{Duration, Instant};

use connectors::sources::host::{source, CollectorConfig, HostCollector};
use engine::history::{History, HistoryConfig};
use engine::model::ResourceSettings;
use engine::source::runtime::Sources;
use engine::source::Batch;

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS must be a whole number"))
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let started = Instant::now();
        let (sources, mut events) = Sources::new();
        let host = source(
            HostCollector::new(CollectorConfig::default()),
            &ResourceSettings::default(),
        );
        sources.add(Box::new(host)).await;
        let config = HistoryConfig::default();
        let mut history = History::new(config).expect("default history config is valid");
        let mut count = 0u64;
        let forever = Duration::from_secs(u64::MAX / 4);
        let deadline = tokio::time::Instant::now()
            + if secs == 0 {
                forever
            } else {
                Duration::from_secs(secs)
            };
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                event = events.recv() => match event {
                    Some(event) => {
                        if let Batch::Tick(tick) = event.batch {
                            history.append_tick(&tick);
                            count += 1;
                        }
                    }
                    None => break,
                },
            }
        }
        sources.shutdown().await;
        let series = history.series().len();
        let bytes = history.memory_bytes();
        println!(
            "{{\"ticks\":{count},\"seconds\":{:.1},\"series\":{series},\"history_bytes\":{bytes},\
             \"raw_bytes_per_sample\":4,\"ring_bytes_per_series\":{},\
             \"history_bytes_per_retained_raw_sample\":{:.2}}}",
            started.elapsed().as_secs_f64(),
            config.bytes_per_series(),
            bytes as f64 / (series.max(1) * config.raw_slots) as f64,
        );
    });
}
