//! The Grafana dashboard in `docs/grafana/perfpilot.json`, checked against a real
//! Prometheus (Debian's `prometheus`, a throwaway instance on a free port with its own
//! config and data directory) scraping a real perfpilot every second: every panel's
//! PromQL parses and returns data, and the dashboard's variables find their values.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{free_port, http_get, urlencode, Perfpilot, TempDir};

/// A Prometheus that dies with the test.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &std::path::Path, scrape: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: perfpilot\n    static_configs:\n      - targets: ['{scrape}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus (scripts/setup.sh --test installs the Debian package)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { child, addr }
    }

    /// The `data` of a successful API answer; `None` while Prometheus is not up.
    fn api(&self, path: &str) -> Option<serde_json::Value> {
        let (status, response) = http_get(self.addr, path);
        let body = response.split_once("\r\n\r\n")?.1;
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        if status != 200 || json["status"] != "success" {
            return None;
        }
        Some(json["data"].clone())
    }

    fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let (status, response) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", urlencode(expr)),
        );
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: serde_json::Value =
            serde_json::from_str(body).map_err(|err| format!("{status}: {err}: {body:.300}"))?;
        if json["status"] != "success" {
            return Err(format!("{status}: {}", json["error"]));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

#[test]
fn every_dashboard_panel_queries_a_real_prometheus_scraping_perfpilot() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/perfpilot.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _server = Perfpilot::start(&["--metrics-listen", &metrics.to_string()]);
    let dir = TempDir::new("perfpilot-prometheus");
    let prometheus = Prometheus::start(&dir.0, metrics);

    // Scraped a few times, so rates over the window have two samples at least.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scraped = prometheus
            .query("count_over_time(perfpilot_changes_total{job=\"perfpilot\"}[1m])")
            .ok()
            .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok());
        if scraped.is_some_and(|n| n >= 4.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped perfpilot 4 times: {scraped:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let substitute = |expr: &str| {
        expr.replace("$job", "perfpilot")
            .replace("$resource", ".*")
            .replace("$__rate_interval", "1m")
    };
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = substitute(target["expr"].as_str().unwrap());
            let result = prometheus
                .query(&expr)
                .unwrap_or_else(|err| panic!("panel {:?}: {expr}: {err}", panel["title"]));
            assert!(
                !result.is_empty(),
                "panel {:?} returns no data: {expr}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} queries");

    // The variables: the job and the resources perfpilot watches.
    let jobs = prometheus
        .api(&format!(
            "/api/v1/label/job/values?match[]={}",
            urlencode("perfpilot_changes_total")
        ))
        .unwrap();
    assert_eq!(jobs, serde_json::json!(["perfpilot"]));
    let resources = prometheus
        .api(&format!(
            "/api/v1/label/resource/values?match[]={}",
            urlencode("perfpilot_resource_value{job=\"perfpilot\"}")
        ))
        .unwrap();
    assert!(
        resources.as_array().unwrap().iter().any(|r| r == "cpu"),
        "{resources}"
    );
}
