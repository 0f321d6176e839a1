//! `/metrics` of the real binary, checked by the real `promtool check metrics`
//! (Debian package `prometheus`, installed by `scripts/test.sh`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{free_port, http_get, Perfpilot};

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Waits until the monitor has processed at least two ticks, so values exist.
fn scrape_after_ticks(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, response) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{response:.300}");
        let ticks = body(&response)
            .lines()
            .find_map(|l| l.strip_prefix("perfpilot_collector_ticks_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if ticks >= 2 {
            return response;
        }
        assert!(Instant::now() < deadline, "no collector ticks within 20 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn metrics_listener_serves_valid_prometheus_text() {
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Perfpilot::start(&["--metrics-listen", &metrics_addr.to_string()]);
    let response = scrape_after_ticks(metrics_addr);
    assert!(
        response.contains("content-type: text/plain; version=0.0.4"),
        "{response:.300}"
    );
    let text = body(&response);

    for expected in [
        "perfpilot_resource_value{resource=\"cpu\",metric=\"utilization\",unit=\"%\"} ",
        "perfpilot_target_value{resource=\"cpu\",metric=\"utilization\",comparator=\"le\",statistic=\"p95\"} 65.0",
        "perfpilot_resource_status{resource=\"cpu\",status=\"not_optimized\"} ",
        "perfpilot_target_state{resource=\"cpu\",state=\"breaching\"} ",
        "perfpilot_changes_total 0",
        "perfpilot_snapshots_taken_total 0",
        "perfpilot_action_executions_total{outcome=\"succeeded\"} 0",
        "perfpilot_collector_gaps_total ",
        "perfpilot_monitor_tick_duration_seconds ",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // Foresight's work (each card's anomaly count from the first evaluation on) is timed.
    let foresight: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("perfpilot_foresight_seconds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no perfpilot_foresight_seconds_total in:\n{text}"));
    assert!(foresight > 0.0, "foresight took no time: {foresight}");
    // Exactly one status is set per resource.
    let cpu_status_sum: f64 = text
        .lines()
        .filter(|l| l.starts_with("perfpilot_resource_status{resource=\"cpu\","))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(cpu_status_sum, 1.0);
    // And exactly one target state.
    let cpu_state_sum: f64 = text
        .lines()
        .filter(|l| l.starts_with("perfpilot_target_state{resource=\"cpu\","))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(cpu_state_sum, 1.0);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (scripts/test.sh installs the Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The UI listener does not expose metrics unless asked to.
    let (status, _) = server.get("/metrics");
    assert_eq!(status, 404);
}

#[test]
fn metrics_can_be_mounted_on_the_main_listener_and_speak_openmetrics_when_asked() {
    let server = Perfpilot::start(&["--metrics-on-main-listener"]);
    let (status, response) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(body(&response).contains("perfpilot_changes_total"));

    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(
        response.contains("application/openmetrics-text"),
        "{response:.300}"
    );
    assert!(response.trim_end().ends_with("# EOF"));
}
