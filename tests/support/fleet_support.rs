//! What the fleet tests run: a real Prometheus (Debian's, a throwaway instance with its
//! own config and data directory on a free port, stoppable and restartable), real
//! `prometheus-node-exporter`s, and `FleetSim`, an exporter that presents many hosts with
//! known, varied load (node_exporter's metric names; `honor_labels` keeps its `instance`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{free_port, http_get, urlencode};

fn wait_listening(addr: SocketAddr, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {addr}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Prometheus that dies with the test; [`Prometheus::stop`] and
/// [`Prometheus::restart`] keep its port and data.
pub struct Prometheus {
    pub addr: SocketAddr,
    dir: PathBuf,
    web_config: Option<PathBuf>,
    /// `Authorization` for the test's own queries (a store with basic auth).
    pub authorization: Option<String>,
    child: Option<Child>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Prometheus {
    /// `scrape_configs` is the YAML list under `scrape_configs:` (may be empty); the data
    /// directory is `dir/data` (backfilled blocks placed there are loaded at start).
    pub fn start(dir: &Path, interval: &str, scrape_configs: &str) -> Prometheus {
        Prometheus::start_with_web(dir, interval, scrape_configs, None)
    }

    /// With a `--web.config.file` (basic auth users).
    pub fn start_with_web(
        dir: &Path,
        interval: &str,
        scrape_configs: &str,
        web_config: Option<&str>,
    ) -> Prometheus {
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n{scrape_configs}\n"
            ),
        )
        .unwrap();
        let web_config = web_config.map(|text| {
            let path = dir.join("web.yml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut p = Prometheus {
            addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            dir: dir.to_owned(),
            web_config,
            authorization: None,
            child: None,
        };
        p.restart();
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        let mut command = Command::new("prometheus");
        command
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(web) = &self.web_config {
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let mut child = command
            .spawn()
            .expect("run prometheus (scripts/setup.sh --test installs the Debian package)");
        wait_listening(self.addr, "prometheus", &mut child);
        self.child = Some(child);
    }

    /// The samples of an instant query (no auth).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", urlencode(expr));
        let response = match &self.authorization {
            None => http_get(self.addr, &path).1,
            Some(auth) => {
                let (status, body) =
                    crate::http_request(self.addr, "GET", &path, &[("Authorization", auth)], "");
                format!("HTTP/1.0 {status}\r\n\r\n{body}")
            }
        };
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `expr` has at least `n` series.
    pub fn wait_series(&self, expr: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.query(expr).len();
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} has {got} series, wanted {n}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A real `prometheus-node-exporter` on a free loopback port, with only the collectors the
/// fleet reads.
pub struct NodeExporter {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeExporter {
    pub fn start() -> NodeExporter {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address={addr}"))
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.filesystem",
                "--collector.netdev",
                "--collector.uname",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus-node-exporter (scripts/setup.sh --test installs it)");
        wait_listening(addr, "node_exporter", &mut child);
        NodeExporter { addr, child }
    }
}

/// The simulated hosts' groups.
pub const ENVS: [&str; 3] = ["prod", "staging", "dev"];
pub const ROLES: [&str; 4] = ["web", "db", "cache", "batch"];

/// One simulated host's known load.
pub struct SimHost {
    pub instance: String,
    pub env: &'static str,
    pub role: &'static str,
    /// CPU busy %, an integer 0–99.
    pub cpu: f64,
    /// Memory used %, never a whole number (so no value sits on a threshold).
    pub memory: f64,
    pub disk: f64,
    /// Bytes per second received plus sent.
    pub network: f64,
}

pub fn sim_host(i: usize) -> SimHost {
    SimHost {
        instance: format!("host-{i:04}"),
        env: ENVS[i % 3],
        role: ROLES[(i / 3) % 4],
        cpu: ((i * 37) % 100) as f64,
        memory: ((i * 53) % 90) as f64 + 5.5,
        disk: ((i * 29) % 80) as f64 + 10.25,
        network: ((i * 7919) % 1000) as f64 * 1000.0,
    }
}

/// An exporter presenting `hosts` hosts: counters that grow at each host's known rate from
/// the exporter's start, gauges at their known values.
pub struct FleetSim {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for FleetSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

impl FleetSim {
    pub fn start(hosts: usize) -> FleetSim {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head.
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let body = exposition(hosts, started.elapsed().as_secs_f64() + 1000.0);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body.as_bytes());
            }
        });
        FleetSim { addr, stop }
    }
}

fn exposition(hosts: usize, t: f64) -> String {
    let mut out = String::with_capacity(hosts * 900);
    let gib16 = 16.0 * 1024.0 * 1024.0 * 1024.0;
    let disk = 100e9;
    out.push_str("# TYPE node_uname_info gauge\n# TYPE node_cpu_seconds_total counter\n# TYPE node_memory_MemTotal_bytes gauge\n# TYPE node_memory_MemAvailable_bytes gauge\n# TYPE node_filesystem_size_bytes gauge\n# TYPE node_filesystem_avail_bytes gauge\n# TYPE node_network_receive_bytes_total counter\n# TYPE node_network_transmit_bytes_total counter\n");
    for i in 0..hosts {
        let h = sim_host(i);
        let l = format!(
            r#"instance="{}",env="{}",role="{}""#,
            h.instance, h.env, h.role
        );
        let busy = h.cpu / 100.0;
        out.push_str(&format!(
            "node_uname_info{{{l},nodename=\"{}\"}} 1\n\
             node_cpu_seconds_total{{{l},cpu=\"0\",mode=\"idle\"}} {:.6}\n\
             node_cpu_seconds_total{{{l},cpu=\"0\",mode=\"user\"}} {:.6}\n\
             node_memory_MemTotal_bytes{{{l}}} {gib16}\n\
             node_memory_MemAvailable_bytes{{{l}}} {:.1}\n\
             node_filesystem_size_bytes{{{l},device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"}} {disk}\n\
             node_filesystem_avail_bytes{{{l},device=\"/dev/sda1\",fstype=\"ext4\",mountpoint=\"/\"}} {:.1}\n\
             node_network_receive_bytes_total{{{l},device=\"eth0\"}} {:.1}\n\
             node_network_transmit_bytes_total{{{l},device=\"eth0\"}} {:.1}\n",
            h.instance,
            t * (1.0 - busy),
            t * busy,
            gib16 * (1.0 - h.memory / 100.0),
            disk * (1.0 - h.disk / 100.0),
            t * h.network / 2.0,
            t * h.network / 2.0,
        ));
    }
    out
}

/// Writes `series` (`(labels, [(unix secs, value)])`, each oldest first) as one gauge in
/// OpenMetrics and backfills it into `data_dir` with `promtool tsdb
/// create-blocks-from openmetrics`.
pub fn backfill(data_dir: &Path, metric: &str, series: &[(String, Vec<(i64, f64)>)]) {
    std::fs::create_dir_all(data_dir).unwrap();
    let input = data_dir.with_extension("om");
    let mut text = format!("# HELP {metric} Backfilled for a test.\n# TYPE {metric} gauge\n");
    for (labels, points) in series {
        for (t, v) in points {
            text.push_str(&format!("{metric}{{{labels}}} {v} {t}\n"));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data_dir)
        .output()
        .expect("run promtool (Debian's prometheus package)");
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// `Basic <base64 of user:password>`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}
