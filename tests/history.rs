//! History on disk, against the real binary: it survives a restart (the chart continues
//! with a visible gap), twenty `kill -9`s at random moments (the store always opens, at
//! most one flush interval is lost, no sample appears for a time perfpilot was not
//! running), serves the 7- and 30-day ranges and exports, and `perfpilot history stats`
//! reads it; a full disk stops history, not perfpilot, and history resumes when space
//! returns.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tests::{body_json, perfpilot_bin, Browser, Perfpilot, TempDir};

/// The writer's flush interval: the most a kill -9 may lose (plus a tick).
const FLUSH_MS: i64 = 15_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The times (ms) of the CPU samples a range of the chart holds.
fn sample_times(server: &Perfpilot, range: &str) -> (serde_json::Value, Vec<i64>) {
    let (status, body) = server.get(&format!("/api/series?resource=cpu&range={range}"));
    assert_eq!(status, 200, "{body}");
    let view = body_json(&body);
    let start = view["start_ms"].as_i64().unwrap();
    let step = view["step_ms"].as_i64().unwrap();
    let times = view["means"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_number())
        .map(|(i, _)| start + i as i64 * step)
        .collect();
    (view, times)
}

#[test]
fn history_survives_restarts_and_kill_9_with_a_gap_and_serves_long_ranges() {
    let dir = TempDir::new("perfpilot-history");
    let mut runs: Vec<(i64, i64)> = Vec::new();

    // A run long enough for a flush, killed without warning.
    let first = Perfpilot::start_with_data(&dir.0, &[]);
    let started = now_ms();
    std::thread::sleep(Duration::from_millis(FLUSH_MS as u64 + 3_000));
    let killed = now_ms();
    first.kill_9();
    runs.push((started, killed));

    // Twenty more kills at random moments (a fixed seed, so a failure can be replayed).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Killed within its first two seconds: opening, the first ticks and writes.
        let life = 300 + seed % 2_000;
        let run = Perfpilot::start_with_data(&dir.0, &[]);
        let started = now_ms();
        std::thread::sleep(Duration::from_millis(life));
        let killed = now_ms();
        run.kill_9();
        runs.push((started, killed));
    }

    // It always opened (start_with_data waits for /healthz); now the chart shows the first
    // run up to at most one flush before its kill, a gap, and this run.
    let server = Perfpilot::start_with_data(&dir.0, &[]);
    let restarted = now_ms();
    std::thread::sleep(Duration::from_secs(3));
    let (_, times) = sample_times(&server, "1h");
    let (first_start, first_kill) = runs[0];
    let kept: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| (first_start - 1_000..=first_kill + 1_000).contains(t))
        .collect();
    assert!(!kept.is_empty(), "the first run's samples were kept");
    let last_kept = *kept.last().unwrap();
    assert!(
        last_kept >= first_kill - FLUSH_MS - 2_000,
        "at most one flush interval lost: last kept sample {} ms before the kill",
        first_kill - last_kept
    );
    // No sample is invented: every stored time lies inside a run.
    for t in &times {
        let inside = runs
            .iter()
            .chain(std::iter::once(&(restarted, now_ms())))
            .any(|(from, to)| (from - 1_000..=to + 1_000).contains(t));
        assert!(
            inside,
            "a sample at {t} when perfpilot was not running: {runs:?}"
        );
    }
    // …and the time it was down is a gap, not a flat line.
    let (view, _) = sample_times(&server, "5m");
    let means = view["means"].as_array().unwrap();
    let gap = means.iter().filter(|v| v.is_null()).count();
    assert!(gap > 0, "the downtime shows as a gap");

    // The long ranges read the disk: the minute tier in 10-minute slots for a week, the
    // hour tier for a month, with min and max kept.
    let (week, week_times) = sample_times(&server, "7d");
    assert_eq!(week["step_ms"], 600_000);
    assert_eq!(week["means"].as_array().unwrap().len(), 1_008);
    assert!(!week_times.is_empty(), "this week's minutes: {week:.300}");
    assert!(week["lows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.is_number()));
    let (month, month_times) = sample_times(&server, "30d");
    assert_eq!(month["step_ms"], 3_600_000);
    assert!(!month_times.is_empty());
    let (status, csv) = server.get("/api/export/cpu/utilization.csv?range=30d");
    assert_eq!(status, 200, "{csv:.300}");
    let csv = csv.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(
        csv.lines().count() >= 2,
        "a header and at least one hour: {csv:.300}"
    );

    // The browser shows the earlier data and the gap.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let browser = Browser::start().await;
        browser
            .client
            .goto(&server.url("/resource?id=cpu&range=5m"))
            .await
            .unwrap();
        browser.wait_for_hydration().await;
        tests::wait_for(&browser.client, fantoccini::Locator::Css("canvas")).await;
        browser.screenshot("history-after-restart.png").await;
        browser
            .client
            .goto(&server.url("/resource?id=cpu&range=7d"))
            .await
            .unwrap();
        browser.wait_for_hydration().await;
        tests::wait_for(&browser.client, fantoccini::Locator::Css("canvas")).await;
        let backtest = tests::text_of(&browser.client, "#backtest").await;
        assert!(!backtest.contains("error"), "{backtest}");
        browser.screenshot("history-7d.png").await;
        browser.close().await;
    });
    drop(server);

    // `perfpilot history stats` reads the file (read-only).
    let out = Command::new(perfpilot_bin())
        .args(["--data-dir", dir.0.to_str().unwrap(), "history", "stats"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("raw") && text.contains("cpu/utilization"),
        "{text}"
    );
}

/// Unmounts the small file system on drop.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_full_disk_stops_history_not_perfpilot_and_history_resumes() {
    let dir = TempDir::new("perfpilot-full");
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        mount.status.success(),
        "this test needs a small file system it can fill (mount -t tmpfs, as root): {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    let _mounted = Mounted(dir.0.clone());
    let data = dir.0.join("data");
    let server = Perfpilot::start_with_data(&data, &[]);
    std::thread::sleep(Duration::from_secs(2));
    // Fill the disk.
    let filler = dir.0.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .args(["bs=64k", "count=1000"])
        .output();
    let deadline = Instant::now() + Duration::from_secs(40);
    let ready = loop {
        let (status, body) = server.get("/readyz");
        if body.contains("history is not being written") {
            break (status, body);
        }
        assert!(Instant::now() < deadline, "never said why: {status} {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ready.0, 200, "still ready for live data: {}", ready.1);
    let (_, overview) = tests::http_request(server.addr, "POST", "/api/overview", &[], "");
    let overview = body_json(&overview);
    assert!(
        overview["notices"][0]
            .as_str()
            .is_some_and(|n| n.contains("history is not being written")),
        "the banner's text: {overview:.500}"
    );
    let before = overview["at_unix_ms"].as_i64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (_, later) = tests::http_request(server.addr, "POST", "/api/overview", &[], "");
    assert!(
        body_json(&later)["at_unix_ms"].as_i64().unwrap() > before,
        "live data keeps flowing"
    );
    // Space returns: history resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, body) = server.get("/readyz");
        if body.ends_with("\r\n\r\nready\n") {
            break;
        }
        assert!(Instant::now() < deadline, "history never resumed: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(server);
}
