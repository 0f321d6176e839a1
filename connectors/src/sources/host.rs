//! The host collector: CPU, memory, disks, network interfaces and top processes read
//! through one `sysinfo` state, one tick at a time.
//!
//! It owns the only `System`/`Disks` of the process because sysinfo computes usage from
//! the difference between two refreshes: a second owner would steal deltas. Interface
//! counters come from one read of `/proc/net/dev` on Linux: sysinfo's `Networks::refresh`
//! reads about ten sysfs files per interface plus the address list and measured ~650 µs
//! per tick here, more than everything else together (other systems use `Networks`).
//! Each tick refreshes only what is watched (CPU usage without frequency, memory, the
//! watched mounts, interface counters); process scans run on a slower cadence because
//! walking `/proc` is the most expensive read. A read that fails becomes a gap (`None`)
//! in its series and a rate-limited warning, never a panic and never a zero.
//!
//! [`source`] makes it a polled [`engine::source`] (the runtime's schedule, timeout and
//! health), doing the blocking sysinfo work on the blocking pool so it never stalls the
//! runtime.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::model::{
    default_target, Metric, MetricKind, Resource, ResourceId, ResourceSettings, ResourceType,
};
use engine::series::{ProcessSample, SeriesInfo, SeriesKey, Tick, TopProcesses, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo};
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, ProcessRefreshKind,
    ProcessesToUpdate, System, MINIMUM_CPU_UPDATE_INTERVAL,
};

/// How long after a change the host's readings reflect it.
pub const SETTLE: engine::verdict::Settle = engine::verdict::Settle {
    secs: 5,
    why: "CPU and I/O use are deltas between two refreshes; process scans run slower",
};

/// Include/exclude lists of names; a pattern ending in `*` matches a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameFilter {
    /// When non-empty, only matching names are watched.
    pub include: Vec<String>,
    /// Matching names are never watched (wins over `include`).
    pub exclude: Vec<String>,
}

impl NameFilter {
    pub fn allows(&self, name: &str) -> bool {
        let matches = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        };
        (self.include.is_empty() || self.include.iter().any(matches))
            && !self.exclude.iter().any(matches)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Tick period of [`spawn`]; raised to sysinfo's minimum CPU refresh gap (200 ms)
    /// if set lower.
    pub interval: Duration,
    /// How often the top-process scan runs (it walks all of `/proc`).
    pub process_interval: Duration,
    /// Processes kept in each top list.
    pub top_n: usize,
    /// How often mounts are re-listed to notice new or vanished disks. Interfaces are
    /// re-listed every tick because sysinfo reads the interface directory anyway.
    pub discovery_interval: Duration,
    /// Series cap per resource type, so discovery cannot grow memory without bound.
    pub max_series_per_type: usize,
    pub per_core: bool,
    /// Network interfaces; loopback and virtual interfaces are excluded by default.
    pub interfaces: NameFilter,
    /// Mount points (e.g. `include: ["/", "/var*"]`).
    pub mounts: NameFilter,
    /// Filesystem types never watched (pseudo and in-memory filesystems by default).
    pub excluded_filesystems: Vec<String>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            process_interval: Duration::from_secs(5),
            top_n: 5,
            discovery_interval: Duration::from_secs(30),
            max_series_per_type: 64,
            per_core: true,
            interfaces: NameFilter {
                include: Vec::new(),
                exclude: strings(&[
                    "lo", "docker*", "veth*", "br-*", "virbr*", "vnet*", "ifb*", "cni*",
                    "flannel*", "cali*", "vxlan*", "lxc*", "tap*", "dummy*", "kube-*",
                ]),
            },
            mounts: NameFilter::default(),
            excluded_filesystems: strings(&[
                "tmpfs",
                "devtmpfs",
                "overlay",
                "squashfs",
                "proc",
                "sysfs",
                "cgroup",
                "cgroup2",
                "devpts",
                "mqueue",
                "hugetlbfs",
                "debugfs",
                "tracefs",
                "securityfs",
                "pstore",
                "bpf",
                "autofs",
                "fusectl",
                "configfs",
                "binfmt_misc",
                "nsfs",
                "ramfs",
                "efivarfs",
                "fuse.lxcfs",
                "rpc_pipefs",
                "nfsd",
                "iso9660",
            ]),
        }
    }
}

/// Logs each failure cause once, then at most every `REPEAT` while it persists, so a
/// vanished disk does not write a line per second.
struct Warnings {
    seen: HashMap<String, Instant>,
}

impl Warnings {
    const REPEAT: Duration = Duration::from_secs(600);

    fn fail(&mut self, cause: &str, detail: &str) {
        let now = Instant::now();
        match self.seen.get(cause) {
            Some(at) if now.duration_since(*at) < Self::REPEAT => {}
            _ => {
                tracing::warn!(cause, detail, "collector read failed; recording gaps");
                self.seen.insert(cause.to_owned(), now);
            }
        }
    }

    fn recover(&mut self, cause: &str) {
        if self.seen.remove(cause).is_some() {
            tracing::info!(cause, "collector read recovered");
        }
    }

    /// Like `recover`, building the cause only when some failure is outstanding, so the
    /// healthy path allocates nothing.
    fn recover_with(&mut self, cause: impl FnOnce() -> String) {
        if !self.seen.is_empty() {
            self.recover(&cause());
        }
    }
}

struct DiskWatch {
    mount: PathBuf,
    used_pct: usize,
    read: usize,
    write: usize,
    /// When this disk's counters were last refreshed; `None` until the first baseline.
    last: Option<Instant>,
}

struct NicWatch {
    name: String,
    rx: usize,
    tx: usize,
    util: Option<usize>,
    speed_bits: Option<f64>,
    /// Cumulative (rx, tx) bytes at the previous read, and when it was taken.
    last: Option<(u64, u64, Instant)>,
}

/// Cumulative byte counters of every interface, re-read each tick into reused buffers.
struct NetCounters {
    #[cfg(target_os = "linux")]
    text: String,
    #[cfg(not(target_os = "linux"))]
    networks: sysinfo::Networks,
    /// (interface, rx bytes, tx bytes).
    entries: Vec<(String, u64, u64)>,
}

impl NetCounters {
    fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            text: String::new(),
            #[cfg(not(target_os = "linux"))]
            networks: sysinfo::Networks::new_with_refreshed_list(),
            entries: Vec::new(),
        }
    }

    #[cfg(target_os = "linux")]
    fn read(&mut self) -> Result<(), String> {
        use std::io::Read;
        self.text.clear();
        std::fs::File::open("/proc/net/dev")
            .and_then(|mut f| f.read_to_string(&mut self.text))
            .map_err(|e| format!("/proc/net/dev: {e}"))?;
        self.entries.clear();
        // Two header lines, then `  name: rx_bytes packets … (8 rx fields) tx_bytes …`.
        for line in self.text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let rx = fields.next().and_then(|v| v.parse().ok());
            let tx = fields.nth(7).and_then(|v| v.parse().ok());
            if let (Some(rx), Some(tx)) = (rx, tx) {
                self.entries.push((name.trim().to_owned(), rx, tx));
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn read(&mut self) -> Result<(), String> {
        self.networks.refresh(true);
        self.entries.clear();
        for (name, data) in self.networks.list() {
            self.entries.push((
                name.clone(),
                data.total_received(),
                data.total_transmitted(),
            ));
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<(u64, u64)> {
        self.entries
            .iter()
            .find(|e| e.0 == name)
            .map(|e| (e.1, e.2))
    }
}

/// Owns the sysinfo state and the series it feeds. See the module docs.
pub struct HostCollector {
    config: CollectorConfig,
    system: System,
    disks: Disks,
    net: NetCounters,
    series: Vec<SeriesInfo>,
    shared: Arc<[SeriesInfo]>,
    per_type: HashMap<ResourceType, usize>,
    cpu_total: Option<usize>,
    cpu_cores: Vec<usize>,
    load: [Option<usize>; 3],
    mem_used: Option<usize>,
    mem_available: Option<usize>,
    swap_used: Option<usize>,
    disk_watches: Vec<DiskWatch>,
    nics: Vec<NicWatch>,
    nic_names: HashSet<String>,
    net_rx: Option<usize>,
    net_tx: Option<usize>,
    last_cpu: Instant,
    last_processes: Option<Instant>,
    last_discovery: Instant,
    top: Option<Arc<TopProcesses>>,
    warnings: Warnings,
}

impl HostCollector {
    /// Discovers resources and takes the first baseline of every counter, so the first
    /// tick at least [`MINIMUM_CPU_UPDATE_INTERVAL`] later has real rates.
    pub fn new(config: CollectorConfig) -> Self {
        let mut system = System::new();
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing());
        let mut net = NetCounters::new();
        let net_error = net.read().err();
        let mut c = Self {
            config,
            system,
            disks,
            net,
            series: Vec::new(),
            shared: Arc::from(Vec::new()),
            per_type: HashMap::new(),
            cpu_total: None,
            cpu_cores: Vec::new(),
            load: [None; 3],
            mem_used: None,
            mem_available: None,
            swap_used: None,
            disk_watches: Vec::new(),
            nics: Vec::new(),
            nic_names: HashSet::new(),
            net_rx: None,
            net_tx: None,
            last_cpu: Instant::now(),
            last_processes: None,
            last_discovery: Instant::now(),
            top: None,
            warnings: Warnings {
                seen: HashMap::new(),
            },
        };
        c.register_fixed();
        c.discover_disks();
        c.discover_nics();
        if let Some(e) = net_error {
            c.warnings.fail("net", &e);
        }
        // The read above is the interface counters' baseline.
        let baseline = Instant::now();
        for nic in &mut c.nics {
            nic.last = c.net.get(&nic.name).map(|(rx, tx)| (rx, tx, baseline));
        }
        // Disk counters need a baseline too; the readings themselves are discarded.
        let mut scratch = vec![None; c.series.len()];
        c.read_disks(&mut scratch);
        if c.config.top_n > 0 {
            // Process CPU % is a delta too: take the baseline now.
            c.scan_processes(0);
        }
        c.shared = Arc::from(c.series.clone());
        c
    }

    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// Every series this collector produces; indices match [`Tick::values`] and only grow.
    pub fn series(&self) -> &[SeriesInfo] {
        &self.series
    }

    /// The latest top-process lists (refreshed every `process_interval`).
    pub fn top_processes(&self) -> Option<&Arc<TopProcesses>> {
        self.top.as_ref()
    }

    fn add(
        &mut self,
        rtype: ResourceType,
        resource: &str,
        name: &str,
        metric: &str,
        kind: Option<MetricKind>,
        unit: &str,
    ) -> Option<usize> {
        let count = self.per_type.entry(rtype).or_default();
        if *count >= self.config.max_series_per_type {
            self.warnings.fail(
                &format!("series-cap:{rtype}"),
                &format!("{resource}/{metric} not watched: max_series_per_type reached"),
            );
            return None;
        }
        *count += 1;
        self.series.push(SeriesInfo::new(
            SeriesKey::new(resource, metric),
            rtype,
            name,
            kind,
            unit,
        ));
        Some(self.series.len() - 1)
    }

    fn register_fixed(&mut self) {
        use MetricKind::*;
        use ResourceType::{Cpu, Memory};
        self.cpu_total = self.add(Cpu, "cpu", "CPU", "utilization", Some(Utilization), "%");
        for (i, metric) in ["load1", "load5", "load15"].iter().enumerate() {
            self.load[i] = self.add(Cpu, "cpu", "CPU", metric, None, "tasks");
        }
        if self.config.per_core {
            for i in 0..self.system.cpus().len() {
                let id = format!("cpu:core{i}");
                let name = format!("CPU core {i}");
                if let Some(s) = self.add(Cpu, &id, &name, "utilization", Some(Utilization), "%") {
                    self.cpu_cores.push(s);
                }
            }
        }
        self.mem_used = self.add(
            Memory,
            "memory",
            "Memory",
            "used_pct",
            Some(Utilization),
            "%",
        );
        self.mem_available = self.add(Memory, "memory", "Memory", "available_bytes", None, "bytes");
        // A host without swap has nothing to report: no series rather than a permanent gap.
        if self.system.total_swap() > 0 {
            self.swap_used = self.add(
                Memory,
                "memory",
                "Memory",
                "swap_used_pct",
                Some(Utilization),
                "%",
            );
        }
    }

    fn discover_disks(&mut self) {
        let mut found = Vec::new();
        for disk in self.disks.list() {
            let fs = disk.file_system().to_string_lossy();
            let mount = disk.mount_point();
            let Some(mount_str) = mount.to_str() else {
                continue;
            };
            if self.config.excluded_filesystems.iter().any(|x| *x == fs)
                || !self.config.mounts.allows(mount_str)
                || self.disk_watches.iter().any(|w| w.mount == mount)
                || found.iter().any(|m: &PathBuf| m == mount)
            {
                continue;
            }
            found.push(mount.to_path_buf());
        }
        for mount in found {
            let m = mount.to_string_lossy().into_owned();
            let id = format!("disk:{m}");
            let name = format!("Disk {m}");
            use MetricKind::*;
            let d = ResourceType::Disk;
            let (Some(used_pct), Some(read), Some(write)) = (
                self.add(d, &id, &name, "used_pct", Some(Utilization), "%"),
                self.add(d, &id, &name, "read_bytes", Some(Throughput), "bytes/s"),
                self.add(d, &id, &name, "write_bytes", Some(Throughput), "bytes/s"),
            ) else {
                continue;
            };
            self.disk_watches.push(DiskWatch {
                mount,
                used_pct,
                read,
                write,
                last: None,
            });
        }
    }

    fn discover_nics(&mut self) {
        let mut names: Vec<String> = self
            .net
            .entries
            .iter()
            .map(|e| &e.0)
            .filter(|n| !self.nic_names.contains(*n) && self.config.interfaces.allows(n))
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        names.sort();
        use MetricKind::*;
        let n = ResourceType::Network;
        if self.net_rx.is_none() {
            self.net_rx = self.add(
                n,
                "network",
                "Network",
                "rx_bytes",
                Some(Throughput),
                "bytes/s",
            );
            self.net_tx = self.add(
                n,
                "network",
                "Network",
                "tx_bytes",
                Some(Throughput),
                "bytes/s",
            );
        }
        for name in names {
            self.nic_names.insert(name.clone());
            let id = format!("net:{name}");
            let (Some(rx), Some(tx)) = (
                self.add(n, &id, &name, "rx_bytes", Some(Throughput), "bytes/s"),
                self.add(n, &id, &name, "tx_bytes", Some(Throughput), "bytes/s"),
            ) else {
                continue;
            };
            let speed_bits = link_speed_bits(&name);
            let util = match speed_bits {
                Some(_) => self.add(n, &id, &name, "utilization", Some(Utilization), "%"),
                None => None,
            };
            self.nics.push(NicWatch {
                name,
                rx,
                tx,
                util,
                speed_bits,
                last: None,
            });
        }
    }

    /// Reads every watched source once. `now` stamps the tick; rates use the monotonic
    /// time between refreshes, not `now`.
    pub fn tick(&mut self, now: UnixMillis) -> Tick {
        let before = self.series.len();
        let mut values = vec![None; before];
        self.read_cpu(&mut values);
        self.read_memory(&mut values);
        if self.last_discovery.elapsed() >= self.config.discovery_interval {
            self.last_discovery = Instant::now();
            self.disks
                .refresh_specifics(true, DiskRefreshKind::nothing());
            self.discover_disks();
        }
        self.read_disks(&mut values);
        self.read_networks(&mut values);
        let due = self
            .last_processes
            .is_none_or(|at| at.elapsed() >= self.config.process_interval);
        let top = if self.config.top_n > 0 && due {
            self.scan_processes(now);
            self.top.clone()
        } else {
            None
        };
        if self.series.len() != before {
            self.shared = Arc::from(self.series.clone());
        }
        values.resize(self.series.len(), None);
        Tick {
            at: now,
            series: Arc::clone(&self.shared),
            values,
            top_processes: top,
        }
    }

    fn read_cpu(&mut self, values: &mut [Option<f32>]) {
        // sysinfo needs a minimum gap between CPU refreshes; closer ticks report gaps
        // rather than repeating the previous value.
        if self.last_cpu.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL {
            self.system
                .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
            self.last_cpu = Instant::now();
            let cpus = self.system.cpus();
            if cpus.is_empty() {
                self.warnings.fail("cpu", "no CPU found in /proc/stat");
            } else {
                self.warnings.recover("cpu");
                set(values, self.cpu_total, pct(self.system.global_cpu_usage()));
                for (slot, cpu) in self.cpu_cores.iter().zip(cpus) {
                    values[*slot] = pct(cpu.cpu_usage());
                }
            }
        }
        match load_average() {
            Ok(loads) => {
                self.warnings.recover("loadavg");
                for (slot, v) in self.load.iter().zip(loads) {
                    set(values, *slot, Some(v));
                }
            }
            Err(e) => self.warnings.fail("loadavg", &e),
        }
    }

    fn read_memory(&mut self, values: &mut [Option<f32>]) {
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        let total = self.system.total_memory();
        if total == 0 {
            self.warnings.fail("memory", "total memory reads as 0");
            return;
        }
        self.warnings.recover("memory");
        let available = self.system.available_memory();
        set(
            values,
            self.mem_used,
            pct(100.0 * total.saturating_sub(available) as f32 / total as f32),
        );
        set(values, self.mem_available, Some(available as f32));
        let swap = self.system.total_swap();
        if swap > 0 {
            set(
                values,
                self.swap_used,
                pct(100.0 * self.system.used_swap() as f32 / swap as f32),
            );
        }
    }

    fn read_disks(&mut self, values: &mut [Option<f32>]) {
        let refresh = DiskRefreshKind::nothing().with_storage().with_io_usage();
        for w in &mut self.disk_watches {
            let cause = || format!("disk:{}", w.mount.display());
            let Some(disk) = self
                .disks
                .list_mut()
                .iter_mut()
                .find(|d| d.mount_point() == w.mount)
            else {
                self.warnings.fail(&cause(), "mount point is gone");
                w.last = None;
                continue;
            };
            let now = Instant::now();
            disk.refresh_specifics(refresh);
            let total = disk.total_space();
            if total == 0 || !Path::new(&w.mount).exists() {
                self.warnings
                    .fail(&cause(), "filesystem statistics unavailable");
                w.last = None;
                continue;
            }
            self.warnings.recover_with(cause);
            values[w.used_pct] =
                pct(100.0 * total.saturating_sub(disk.available_space()) as f32 / total as f32);
            if let Some(last) = w.last {
                let secs = now.duration_since(last).as_secs_f64();
                let usage = disk.usage();
                values[w.read] = rate(usage.read_bytes, secs);
                values[w.write] = rate(usage.written_bytes, secs);
            }
            w.last = Some(now);
        }
    }

    fn read_networks(&mut self, values: &mut Vec<Option<f32>>) {
        let now = Instant::now();
        if let Err(e) = self.net.read() {
            self.warnings.fail("net", &e);
            for nic in &mut self.nics {
                nic.last = None;
            }
            return;
        }
        self.warnings.recover("net");
        self.discover_nics();
        values.resize(self.series.len(), None);
        let (mut rx_total, mut tx_total, mut counted) = (0.0f64, 0.0f64, 0);
        for nic in &mut self.nics {
            let Some((rx_now, tx_now)) = self.net.get(&nic.name) else {
                self.warnings
                    .fail(&format!("net:{}", nic.name), "interface is gone");
                nic.last = None;
                continue;
            };
            self.warnings.recover_with(|| format!("net:{}", nic.name));
            let previous = nic.last.replace((rx_now, tx_now, now));
            let Some((rx_then, tx_then, then)) = previous else {
                continue;
            };
            let secs = now.duration_since(then).as_secs_f64();
            // A counter that went backwards was reset (interface re-created): no rate
            // can be known for this interval.
            let (Some(drx), Some(dtx)) = (rx_now.checked_sub(rx_then), tx_now.checked_sub(tx_then))
            else {
                continue;
            };
            if secs <= 0.0 {
                continue;
            }
            let (rx, tx) = (drx as f64 / secs, dtx as f64 / secs);
            values[nic.rx] = Some(rx as f32);
            values[nic.tx] = Some(tx as f32);
            rx_total += rx;
            tx_total += tx;
            counted += 1;
            if let (Some(slot), Some(bits)) = (nic.util, nic.speed_bits) {
                // Links are full duplex: the busier direction is the utilization.
                values[slot] = pct((100.0 * rx.max(tx) * 8.0 / bits) as f32);
            }
        }
        if counted > 0 {
            set(values, self.net_rx, Some(rx_total as f32));
            set(values, self.net_tx, Some(tx_total as f32));
        }
    }

    fn scan_processes(&mut self, now: UnixMillis) {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        self.last_processes = Some(Instant::now());
        let mut all: Vec<ProcessSample> = self
            .system
            .processes()
            .values()
            .map(|p| ProcessSample {
                pid: p.pid().as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                cpu_pct: if p.cpu_usage().is_finite() {
                    p.cpu_usage()
                } else {
                    0.0
                },
                rss_bytes: p.memory(),
            })
            .collect();
        if all.is_empty() {
            self.warnings
                .fail("processes", "no process visible in /proc");
            return;
        }
        self.warnings.recover("processes");
        let n = self.config.top_n;
        all.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct).then(a.pid.cmp(&b.pid)));
        let by_cpu = all.iter().take(n).cloned().collect();
        all.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
        all.truncate(n);
        self.top = Some(Arc::new(TopProcesses {
            at: now,
            by_cpu,
            by_memory: all,
        }));
    }
}

fn set(values: &mut [Option<f32>], slot: Option<usize>, value: Option<f32>) {
    if let Some(i) = slot {
        values[i] = value;
    }
}

/// A percentage, clamped against counter races; non-finite readings become gaps.
fn pct(v: f32) -> Option<f32> {
    v.is_finite().then(|| v.clamp(0.0, 100.0))
}

fn rate(bytes: u64, secs: f64) -> Option<f32> {
    (secs > 0.0).then(|| (bytes as f64 / secs) as f32)
}

/// Reads `/proc/loadavg` directly: sysinfo 0.37 unwraps the parse and would panic on a
/// malformed file, and reports 0 when the file is unreadable, which looks like an idle
/// host instead of a gap.
fn load_average() -> Result<[f32; 3], String> {
    #[cfg(target_os = "linux")]
    {
        let text =
            std::fs::read_to_string("/proc/loadavg").map_err(|e| format!("/proc/loadavg: {e}"))?;
        let mut it = text.split_whitespace().map(str::parse::<f32>);
        let mut out = [0.0; 3];
        for v in &mut out {
            *v = match it.next() {
                Some(Ok(x)) if x.is_finite() => x,
                _ => return Err(format!("/proc/loadavg: cannot parse {text:?}")),
            };
        }
        Ok(out)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let l = System::load_average();
        Ok([l.one as f32, l.five as f32, l.fifteen as f32])
    }
}

/// Link speed in bit/s from `/sys/class/net/IF/speed` (Mbit/s); virtual and down links
/// report -1 or an error, which means "unknown", so no utilization series.
fn link_speed_bits(interface: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/speed")).ok()?;
    let mbits: i64 = text.trim().parse().ok()?;
    (mbits > 0).then_some(mbits as f64 * 1e6)
}

/// The id of the host source.
pub const SOURCE_ID: &str = "host";

/// The host collector as a polled source on `collector.config().interval` (at least
/// sysinfo's minimum CPU refresh gap), owning one resource per collector resource with the
/// seed's default targets and `defaults` as settings.
pub fn source(collector: HostCollector, defaults: &ResourceSettings) -> Polled<HostPoll> {
    let info = SourceInfo {
        id: SOURCE_ID.to_owned(),
        kind: "host".to_owned(),
        resources: resources_from_series(collector.series(), defaults),
        owns: Vec::new(),
    };
    let interval = collector.config().interval.max(MINIMUM_CPU_UPDATE_INTERVAL);
    let mut schedule = Schedule::every(interval);
    // A process scan on a loaded host can take longer than a tick; the reads in progress
    // finish (ticks meanwhile are skipped and become gaps), they are not abandoned.
    schedule.timeout = Duration::from_secs(30).max(interval * 10);
    Polled::new(
        info,
        schedule,
        HostPoll {
            collector: Arc::new(std::sync::Mutex::new(collector)),
        },
    )
}

/// The collector, shared with the blocking task that reads it: a read that outlives its
/// caller (a timeout) still hands the collector back when it ends.
pub struct HostPoll {
    collector: Arc<std::sync::Mutex<HostCollector>>,
}

impl Poll for HostPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        let collector = self.collector.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || engine::sync::lock(&collector).tick(at))
                .await
                .map_err(|err| {
                    tracing::error!(%err, "Host collector tick failed");
                    SourceError::new(format!("the host collector failed: {err}"))
                })
        })
    }
}

/// One engine resource per collector resource id, exposing the series that have a metric
/// kind. The seed's default target applies to the resource's utilization metric.
pub fn resources_from_series(series: &[SeriesInfo], defaults: &ResourceSettings) -> Vec<Resource> {
    let mut resources: Vec<Resource> = Vec::new();
    for info in series {
        // Per-core series stay in history for charts; one card per core would drown the
        // overview on a many-core host.
        let Some(kind) = info.kind.filter(|_| !info.key.resource.starts_with("cpu:")) else {
            continue;
        };
        let position = resources
            .iter()
            .position(|r| r.id.as_str() == info.key.resource);
        let resource = match position {
            Some(i) => &mut resources[i],
            None => {
                let Ok(id) = ResourceId::new(&info.key.resource) else {
                    tracing::warn!(resource = %info.key.resource, "Collector resource id is not valid; skipped");
                    continue;
                };
                let mut resource = Resource::new(id, info.resource_type, &info.resource_name);
                resource.metrics.clear();
                resource.target = None;
                resource.settings = defaults.clone();
                resources.push(resource);
                resources.last_mut().expect("just pushed")
            }
        };
        if resource.metric(&info.key.metric).is_none() {
            resource.metrics.push(Metric::new(&info.key.metric, kind));
        }
    }
    for resource in &mut resources {
        resource.target = default_target(resource.resource_type).and_then(|mut target| {
            if resource.metric(&target.metric).is_none() {
                let utilization = resource
                    .metrics
                    .iter()
                    .find(|m| m.kind == MetricKind::Utilization)?;
                target.metric.clone_from(&utilization.name);
            }
            Some(target)
        });
    }
    resources.retain(|r| match r.validate() {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(resource = %r.id, %err, "Collector resource rejected by the engine; skipped");
            false
        }
    });
    resources
}

#[cfg(test)]
mod tests;
