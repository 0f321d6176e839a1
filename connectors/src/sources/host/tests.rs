//! These run against the real `/proc` and `/sys` of the machine running the tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use super::*;
use engine::history::{History, HistoryConfig};
use engine::time::unix_now_ms;

fn fast_config() -> CollectorConfig {
    CollectorConfig {
        interval: Duration::from_millis(250),
        ..CollectorConfig::default()
    }
}

/// Sleeps past sysinfo's minimum CPU refresh gap and ticks.
fn tick_after_gap(c: &mut HostCollector) -> Tick {
    thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
    c.tick(unix_now_ms())
}

fn cpu_count_from_proc() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

#[test]
fn readings_are_in_sane_ranges() {
    let mut c = HostCollector::new(fast_config());
    let tick = tick_after_gap(&mut c);
    assert_eq!(tick.values.len(), tick.series.len());
    assert_eq!(&tick.series[..], c.series());

    let total = tick
        .value("cpu", "utilization")
        .expect("cpu utilization read");
    assert!((0.0..=100.0).contains(&total), "cpu {total}");
    let cores: Vec<&SeriesInfo> = c
        .series()
        .iter()
        .filter(|s| s.key.resource.starts_with("cpu:core"))
        .collect();
    let parallelism = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    assert!(
        cores.len() == parallelism || cores.len() == cpu_count_from_proc(),
        "{} per-core series, available_parallelism {parallelism}, /proc/cpuinfo {}",
        cores.len(),
        cpu_count_from_proc()
    );
    for core in cores {
        let v = tick.value(&core.key.resource, "utilization").unwrap();
        assert!((0.0..=100.0).contains(&v), "{} = {v}", core.key);
    }
    for metric in ["load1", "load5", "load15"] {
        assert!(tick.value("cpu", metric).unwrap() >= 0.0);
    }

    let used = tick.value("memory", "used_pct").unwrap();
    assert!(used > 0.0 && used < 100.0, "memory used {used}");
    assert!(tick.value("memory", "available_bytes").unwrap() > 0.0);
    if let Some(swap) = tick.value("memory", "swap_used_pct") {
        assert!((0.0..=100.0).contains(&swap));
    }

    // Every series is labelled consistently with its resource id.
    for s in c.series() {
        let expected = match s.key.resource.split(':').next().unwrap() {
            "cpu" => ResourceType::Cpu,
            "memory" => ResourceType::Memory,
            "disk" => ResourceType::Disk,
            "net" | "network" => ResourceType::Network,
            other => panic!("unexpected resource {other}"),
        };
        assert_eq!(s.resource_type, expected, "{}", s.key);
    }
}

#[test]
fn the_root_filesystem_and_real_interfaces_are_watched() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let root_fs = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 2 && f[1] == "/")
        .map(|f| f[2].to_owned())
        .next_back()
        .unwrap();
    let config = fast_config();
    let mut c = HostCollector::new(config.clone());
    let first = tick_after_gap(&mut c);
    let second = tick_after_gap(&mut c);
    if !config.excluded_filesystems.contains(&root_fs) {
        let used = second.value("disk:/", "used_pct").expect("disk:/ used_pct");
        assert!(used > 0.0 && used <= 100.0, "disk / used {used}");
        // The constructor takes the counter baseline, so even the first tick has rates.
        assert!(first.value("disk:/", "read_bytes").is_some());
        assert!(second.value("disk:/", "write_bytes").unwrap() >= 0.0);
    }
    assert!(c
        .series()
        .iter()
        .all(|s| !s.key.resource.starts_with("disk:/proc")));

    let interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &interfaces {
        let watched = c
            .series()
            .iter()
            .any(|s| s.key.resource == format!("net:{name}"));
        assert_eq!(watched, config.interfaces.allows(name), "interface {name}");
        if watched {
            assert!(second.value(&format!("net:{name}"), "rx_bytes").unwrap() >= 0.0);
            let has_util = c
                .series()
                .iter()
                .any(|s| s.key.resource == format!("net:{name}") && s.key.metric == "utilization");
            assert_eq!(has_util, link_speed_bits(name).is_some(), "{name}");
        }
    }
    assert!(c.series().iter().all(|s| s.key.resource != "net:lo"));
    if interfaces.iter().any(|n| config.interfaces.allows(n)) {
        assert!(second.value("network", "rx_bytes").unwrap() >= 0.0);
    }
}

#[test]
fn a_busy_loop_raises_cpu_utilization() {
    let config = CollectorConfig {
        process_interval: Duration::ZERO,
        ..fast_config()
    };
    let mut c = HostCollector::new(config);
    let sample = |c: &mut HostCollector, n: usize| {
        let mut totals = Vec::new();
        let mut max_core = 0.0f32;
        let mut top = None;
        for _ in 0..n {
            let tick = tick_after_gap(c);
            totals.push(tick.value("cpu", "utilization").unwrap());
            for (s, v) in tick.iter() {
                if s.key.resource.starts_with("cpu:core") {
                    max_core = max_core.max(v.unwrap());
                }
            }
            top = tick.top_processes.clone().or(top);
        }
        let mean = totals.iter().sum::<f32>() / totals.len() as f32;
        (mean, max_core, top.unwrap())
    };
    let (idle_mean, _, _) = sample(&mut c, 4);

    let stop = Arc::new(AtomicBool::new(false));
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                x
            })
        })
        .collect();
    // ~2 s of spinning.
    let (busy_mean, busy_max_core, top) = sample(&mut c, 8);
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }

    assert!(busy_max_core > 50.0, "busiest core only {busy_max_core} %");
    // Other work on a shared machine may already keep it busy; then "measurably more"
    // means close to saturated.
    assert!(
        busy_mean >= (idle_mean + 10.0).min(90.0),
        "idle {idle_mean} %, busy {busy_mean} %"
    );
    let me = std::process::id();
    assert!(
        top.by_cpu.iter().any(|p| p.pid == me && p.cpu_pct > 50.0),
        "this process is not among the top CPU users: {:?}",
        top.by_cpu
    );
    assert!(top.by_cpu.len() <= 5 && top.by_memory.len() <= 5);
    assert!(top
        .by_memory
        .windows(2)
        .all(|w| w[0].rss_bytes >= w[1].rss_bytes));
    assert!(top.by_memory[0].rss_bytes > 0);
}

#[test]
fn vanished_sources_become_gaps_without_panicking() {
    let mut c = HostCollector::new(fast_config());
    let used_pct = c
        .add(
            ResourceType::Disk,
            "disk:/gone",
            "Disk /gone",
            "used_pct",
            None,
            "%",
        )
        .unwrap();
    let read = c
        .add(
            ResourceType::Disk,
            "disk:/gone",
            "Disk /gone",
            "read_bytes",
            None,
            "bytes/s",
        )
        .unwrap();
    let write = c
        .add(
            ResourceType::Disk,
            "disk:/gone",
            "Disk /gone",
            "write_bytes",
            None,
            "bytes/s",
        )
        .unwrap();
    c.disk_watches.push(DiskWatch {
        mount: PathBuf::from("/perfpilot-test-not-mounted"),
        used_pct,
        read,
        write,
        last: None,
    });
    let rx = c
        .add(
            ResourceType::Network,
            "net:gone0",
            "gone0",
            "rx_bytes",
            None,
            "bytes/s",
        )
        .unwrap();
    let tx = c
        .add(
            ResourceType::Network,
            "net:gone0",
            "gone0",
            "tx_bytes",
            None,
            "bytes/s",
        )
        .unwrap();
    c.nics.push(NicWatch {
        name: "perfpilot-gone0".into(),
        rx,
        tx,
        util: None,
        speed_bits: Some(1e9),
        last: Some((0, 0, Instant::now())),
    });
    for _ in 0..2 {
        let tick = tick_after_gap(&mut c);
        for slot in [used_pct, read, write, rx, tx] {
            assert_eq!(tick.values[slot], None, "{}", tick.series[slot].key);
        }
        // The healthy series are unaffected.
        assert!(tick.value("cpu", "utilization").is_some());
        assert!(tick.value("memory", "used_pct").is_some());
    }
    assert!(c
        .warnings
        .seen
        .contains_key("disk:/perfpilot-test-not-mounted"));
    assert!(c.warnings.seen.contains_key("net:perfpilot-gone0"));
}

#[test]
fn series_per_type_are_capped() {
    let config = CollectorConfig {
        max_series_per_type: 2,
        ..fast_config()
    };
    let c = HostCollector::new(config);
    for rtype in [
        ResourceType::Cpu,
        ResourceType::Memory,
        ResourceType::Disk,
        ResourceType::Network,
    ] {
        let n = c
            .series()
            .iter()
            .filter(|s| s.resource_type == rtype)
            .count();
        assert!(n <= 2, "{rtype}: {n} series");
    }
    assert_eq!(
        c.series()
            .iter()
            .filter(|s| s.resource_type == ResourceType::Cpu)
            .count(),
        2
    );
}

#[test]
fn ticks_too_close_together_leave_cpu_gaps_instead_of_repeats() {
    let mut c = HostCollector::new(fast_config());
    let _ = tick_after_gap(&mut c);
    let quick = c.tick(unix_now_ms());
    assert_eq!(quick.value("cpu", "utilization"), None);
    assert!(quick.value("memory", "used_pct").is_some());
}

#[test]
fn name_filters_exclude_virtual_interfaces_by_default() {
    let f = CollectorConfig::default().interfaces;
    for name in ["lo", "docker0", "veth1a2b", "br-1234", "virbr0", "ifb0"] {
        assert!(!f.allows(name), "{name} should be excluded");
    }
    for name in ["eth0", "ens3", "enp0s31f6", "wlan0", "bond0"] {
        assert!(f.allows(name), "{name} should be watched");
    }
    let only = NameFilter {
        include: vec!["eth*".into()],
        exclude: vec!["eth9".into()],
    };
    assert!(only.allows("eth0"));
    assert!(!only.allows("eth9"));
    assert!(!only.allows("wlan0"));
}

#[test]
fn ticks_feed_the_history() {
    let mut c = HostCollector::new(fast_config());
    let mut h = History::new(HistoryConfig::default()).unwrap();
    let t0 = 1_700_000_000_000;
    for i in 0..3 {
        thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(50));
        let tick = c.tick(t0 + i * 1_000);
        assert_eq!(h.append_tick(&tick), 0);
    }
    assert_eq!(h.series().len(), c.series().len());
    let id = h.id(&SeriesKey::new("memory", "used_pct")).unwrap();
    let raw = h.get(id).unwrap().last_raw(10);
    assert_eq!(raw.len(), 3);
    assert!(raw.iter().all(|v| (0.0..=100.0).contains(v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_source_publishes_consecutive_ticks() {
    use engine::source::runtime::Sources;
    use engine::source::Batch;
    let collector = HostCollector::new(fast_config());
    let expected_series = collector.series().len();
    let (sources, mut events) = Sources::new();
    sources
        .add(Box::new(source(collector, &ResourceSettings::default())))
        .await;
    let mut ats = Vec::new();
    while ats.len() < 4 {
        let event = events.recv().await.expect("tick");
        assert_eq!(&*event.source, SOURCE_ID);
        let Batch::Tick(tick) = event.batch else {
            panic!("the host source sends ticks");
        };
        assert!(tick.series.len() >= expected_series);
        assert_eq!(tick.values.len(), tick.series.len());
        ats.push(tick.at);
    }
    // Stamps come from the interval schedule: exact multiples of the period apart.
    for w in ats.windows(2) {
        assert!(w[1] > w[0] && (w[1] - w[0]) % 250 == 0, "{ats:?}");
    }
    let status = sources.statuses()[SOURCE_ID].clone();
    assert!(status.health.is_up(), "{status:?}");
    assert!(status.resources.iter().any(|r| r == "cpu"), "{status:?}");
    assert!(status.last_sample_unix_ms.unwrap() >= ats[3]);
    sources.shutdown().await;
    assert!(sources.statuses().is_empty());
}
