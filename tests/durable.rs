//! Durable state end to end, against the real binary: a restart restores the
//! configuration, the change counter, the snapshots and the audit log exactly; a SIGKILL
//! in the middle of concurrent edits loses no acknowledged edit; audit entries record who,
//! from where and before → after; `--ephemeral` writes no file; a damaged database stops
//! start-up with a clear message; and the `/audit` page filters in headless Chromium.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::Locator;
use tests::{click, http_get, http_post_form, Browser, Perfpilot, TempDir};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"))
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Sets `resource`'s utilization target; returns the change number it was acknowledged
/// with.
fn set_target(server: &Perfpilot, resource: &str, value: f64) -> u64 {
    let metric = metric_of(resource);
    let (status, body) = http_post_form(
        server.addr,
        "/api/set_target",
        &format!("resource={resource}&metric={metric}&value={value}"),
    );
    assert_eq!(status, 200, "set_target {resource} {value}: {body}");
    json(&body)["change"].as_u64().expect("a change number")
}

/// The percentage metric each host resource the tests edit has.
fn metric_of(resource: &str) -> &'static str {
    match resource {
        "memory" => "used_pct",
        _ => "utilization",
    }
}

fn changes(server: &Perfpilot) -> serde_json::Value {
    let (status, body) = http_post_form(server.addr, "/api/changes", "");
    assert_eq!(status, 200, "list changes: {body}");
    json(&body)
}

/// `GET /api/audit?<query>`: the entries, newest first.
fn audit(server: &Perfpilot, query: &str) -> Vec<serde_json::Value> {
    let (status, response) = http_get(server.addr, &format!("/api/audit?{query}"));
    assert_eq!(status, 200, "audit {query}: {response}");
    json(body_of(&response))["entries"]
        .as_array()
        .expect("entries")
        .clone()
}

fn target_of(server: &Perfpilot, resource: &str) -> f64 {
    let (status, body) = http_post_form(server.addr, "/api/overview", "");
    assert_eq!(status, 200, "overview: {body}");
    json(&body)["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == resource)
        .and_then(|c| c["target"]["value"].as_f64())
        .unwrap_or_else(|| panic!("{resource} has a target: {body}"))
}

#[test]
fn a_restart_restores_targets_counter_snapshots_and_audit_exactly() {
    let data = TempDir::new("perfpilot-durable-restart");
    let server = Perfpilot::start_with_data(&data.0, &["--autosave-every", "5"]);
    for (i, value) in [61.0, 62.5, 63.0, 64.0, 65.0, 66.0, 67.25]
        .into_iter()
        .enumerate()
    {
        let resource = if i % 2 == 0 { "cpu" } else { "memory" };
        assert_eq!(set_target(&server, resource, value), i as u64 + 1);
    }
    let before_changes = changes(&server);
    let before_audit = audit(&server, "limit=1000");
    let (cpu, memory) = (target_of(&server, "cpu"), target_of(&server, "memory"));
    assert_eq!((cpu, memory), (67.25, 66.0));
    assert_eq!(before_changes["change"], 7);
    assert_eq!(before_changes["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(before_audit.len(), 7);
    assert!(server.terminate().success());

    let server = Perfpilot::start_with_data(&data.0, &["--autosave-every", "5"]);
    let after_changes = changes(&server);
    assert_eq!(after_changes["change"], 7, "the counter continues");
    assert_eq!(
        after_changes["snapshots"], before_changes["snapshots"],
        "snapshots, with their hashes and verification, are restored"
    );
    assert_eq!(audit(&server, "limit=1000"), before_audit);
    assert_eq!(
        (target_of(&server, "cpu"), target_of(&server, "memory")),
        (cpu, memory)
    );
    // The rhythm survives: changes 8, 9, 10 → the snapshot at 10.
    for value in [50.0, 51.0, 52.0] {
        set_target(&server, "cpu", value);
    }
    let snapshots: Vec<u64> = changes(&server)["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["change"].as_u64().unwrap())
        .collect();
    assert_eq!(snapshots, vec![10, 5]);
}

/// `GET /api/comparisons`: the before/after rows, measuring ones first.
fn comparisons(server: &Perfpilot) -> Vec<serde_json::Value> {
    let (status, response) = http_get(server.addr, "/api/comparisons");
    assert_eq!(status, 200, "comparisons: {response}");
    json(body_of(&response)).as_array().expect("rows").clone()
}

#[test]
fn finished_before_afters_and_marks_survive_a_restart() {
    let data = TempDir::new("perfpilot-durable-proof");
    let windows = ["--baseline-secs", "1", "--verify-secs", "2"];
    let server = Perfpilot::start_with_data(&data.0, &windows);
    // Let a few samples exist before the mark, so the baseline has values.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = http_post_form(server.addr, "/api/add_mark", "resource=cpu&label=v9");
    assert_eq!(status, 200, "add_mark: {body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let finished = loop {
        let rows = comparisons(&server);
        if rows.iter().any(|r| r["pending"] == false) {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mark's before/after finishes: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(server.terminate().success());

    let server = Perfpilot::start_with_data(&data.0, &windows);
    let done = |rows: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rows.iter()
            .filter(|r| r["pending"] == false)
            .cloned()
            .collect()
    };
    assert_eq!(done(&comparisons(&server)), done(&finished));
    let marks = audit(&server, "kind=mark");
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0]["after"]["label"], "v9");
}

#[test]
fn a_before_after_measuring_at_a_restart_finishes_from_the_stored_history() {
    let data = TempDir::new("perfpilot-durable-cut");
    let windows = ["--baseline-secs", "1", "--verify-secs", "8"];
    let server = Perfpilot::start_with_data(&data.0, &windows);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = http_post_form(server.addr, "/api/add_mark", "resource=cpu&label=v10");
    assert_eq!(status, 200, "add_mark: {body}");
    std::thread::sleep(Duration::from_millis(2500));
    let rows = comparisons(&server);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["pending"], true, "still measuring: {rows:?}");
    assert!(server.terminate().success());

    // Still measuring after the restart, then finished from the history on disk (its
    // baseline is from before the stop), not cut short.
    let server = Perfpilot::start_with_data(&data.0, &windows);
    let rows = comparisons(&server);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pending"], true, "resumed: {rows:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = comparisons(&server);
        if rows[0]["pending"] == false {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never finished: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(rows[0]["event"], "mark: v10");
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(!reason.starts_with("cut short"), "{reason}");
    assert!(
        rows[0]["before"].is_string(),
        "the baseline came back from disk: {rows:?}"
    );
    assert!(rows[0]["after"].is_string(), "{rows:?}");
}

#[test]
fn kill_9_during_concurrent_edits_loses_no_acknowledged_edit() {
    const CLIENTS: usize = 4;
    const EACH: usize = 250;
    let data = TempDir::new("perfpilot-durable-kill");
    let server = Perfpilot::start_with_data(&data.0, &[]);
    let addr = server.addr;
    let acknowledged: Arc<Mutex<Vec<(u64, String, f64)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (acknowledged, count, stop) = (acknowledged.clone(), count.clone(), stop.clone());
            std::thread::spawn(move || {
                let resource = ["cpu", "memory"][c % 2];
                for i in 0..EACH {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Unique per client and edit, so each acknowledged value is findable.
                    let value = (c * EACH + i) as f64 / 100.0;
                    let metric = metric_of(resource);
                    let form = format!("resource={resource}&metric={metric}&value={value}");
                    // The server dies mid-stream: a refused connection or a cut answer is
                    // an edit that was never acknowledged.
                    let answer =
                        std::panic::catch_unwind(|| http_post_form(addr, "/api/set_target", &form));
                    let Ok((200, body)) = answer else { break };
                    let Ok(saved) = serde_json::from_str::<serde_json::Value>(&body) else {
                        break;
                    };
                    let change = saved["change"].as_u64().expect("a change number");
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((change, resource.to_owned(), value));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Mid-stream: well after the first acknowledgements, well before the last.
    while count.load(Ordering::Relaxed) < CLIENTS * EACH / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < CLIENTS * EACH,
        "the kill came mid-stream"
    );

    let server = Perfpilot::start_with_data(&data.0, &[]);
    let journal: BTreeMap<u64, serde_json::Value> = audit(&server, "kind=set_target&limit=1000")
        .into_iter()
        .map(|e| (e["change"].as_u64().unwrap(), e))
        .collect();
    let highest = acknowledged.iter().map(|a| a.0).max().unwrap();
    for (change, resource, value) in &acknowledged {
        let entry = journal
            .get(change)
            .unwrap_or_else(|| panic!("acknowledged change {change} is in the journal"));
        assert_eq!(entry["resource"], resource.as_str(), "change {change}");
        assert_eq!(
            entry["after"]["value"].as_f64(),
            Some(*value),
            "change {change}"
        );
    }
    // The journal is gap-free from 1: nothing committed out of order survives a hole.
    let numbers: Vec<u64> = journal.keys().copied().collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    let counter = changes(&server)["change"].as_u64().unwrap();
    assert!(
        counter >= highest,
        "counter {counter} < acknowledged {highest}"
    );
    assert_eq!(
        counter,
        numbers.len() as u64,
        "the counter is the journal's last number"
    );
}

#[test]
fn audit_entries_record_who_from_where_and_before_after() {
    let server = Perfpilot::start(&[]);
    let default_cpu = target_of(&server, "cpu");
    set_target(&server, "cpu", 70.0);
    set_target(&server, "cpu", 75.5);
    let (status, body) = http_post_form(
        server.addr,
        "/api/add_mark",
        "resource=cpu&label=deployed%20v2.3",
    );
    assert_eq!(status, 200, "add_mark: {body}");
    let entries = audit(&server, "");
    assert_eq!(entries.len(), 3, "{entries:?}");
    let (mark, second, first) = (&entries[0], &entries[1], &entries[2]);
    for entry in &entries {
        // The interim auth layer: a loopback peer is an anonymous admin.
        assert_eq!(entry["user"], "anonymous");
        assert_eq!(entry["role"], "admin");
        assert_eq!(entry["source"], "anonymous");
        assert_eq!(entry["client_ip"], "127.0.0.1");
        assert_eq!(entry["resource"], "cpu");
    }
    assert_eq!(
        (first["change"].as_u64(), second["change"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(first["kind"], "set_target");
    assert_eq!(first["before"]["value"].as_f64(), Some(default_cpu));
    assert_eq!(first["after"]["value"].as_f64(), Some(70.0));
    assert_eq!(second["before"]["value"].as_f64(), Some(70.0));
    assert_eq!(second["after"]["value"].as_f64(), Some(75.5));
    let what = second["what"].as_str().unwrap();
    assert!(
        what.starts_with("cpu: target ") && what.contains(" → "),
        "{what}"
    );
    assert!(what.contains("70") && what.contains("75.5"), "{what}");
    assert_eq!(mark["kind"], "mark");
    assert_eq!(mark["change"], serde_json::Value::Null);
    assert_eq!(mark["after"]["label"], "deployed v2.3");

    // Filters narrow; bad ones are 400s naming the field and the rule.
    assert_eq!(audit(&server, "kind=mark").len(), 1);
    assert_eq!(audit(&server, "q=75.5").len(), 1);
    assert_eq!(audit(&server, "limit=2").len(), 2);
    assert!(audit(&server, "user=alice").is_empty());
    assert!(audit(&server, "resource=memory").is_empty());
    let since = second["at_unix_ms"].as_i64().unwrap();
    let recent = audit(&server, &format!("since={since}&kind=set_target"));
    assert!(recent.iter().any(|e| e["change"] == 2), "{recent:?}");
    assert!(recent
        .iter()
        .all(|e| e["at_unix_ms"].as_i64().unwrap() >= since));
    assert!(audit(&server, &format!("until={since}&since=0&q=75.5")).is_empty());
    for (query, start) in [
        ("limit=0", "limit: must be a whole number from 1 to 1000"),
        ("kind=delete", "kind: must be one of "),
        (
            "since=yesterday",
            "since: must be a time in unix milliseconds",
        ),
        ("colour=red", "colour: is not a filter"),
    ] {
        let (status, response) = http_get(server.addr, &format!("/api/audit?{query}"));
        assert_eq!(status, 400, "{query}: {response}");
        let error = json(body_of(&response))["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.starts_with(start), "{query}: {error}");
    }
}

#[test]
fn ephemeral_writes_no_file_and_says_so() {
    let cwd = TempDir::new("perfpilot-ephemeral-cwd");
    let port = tests::free_port();
    let site = tests::site_root();
    let child = Command::new(tests::perfpilot_bin())
        .current_dir(&cwd.0)
        .args(["--ephemeral", "--metrics-listen", "off", "--site-root"])
        .arg(&site)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "perfpilot listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_post_form(
        addr,
        "/api/set_target",
        "resource=cpu&metric=utilization&value=70",
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(addr, "/api/audit");
    assert_eq!(status, 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    // The log goes wherever the subscriber writes; look at both streams.
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("--ephemeral") && stderr.contains("no file is written"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&cwd.0).unwrap().collect();
    assert!(left.is_empty(), "--ephemeral wrote {left:?}");
}

#[test]
fn a_damaged_database_stops_start_up_with_a_clear_message() {
    let data = TempDir::new("perfpilot-durable-corrupt");
    let db = data.0.join("perfpilot.db");
    std::fs::write(&db, vec![0x5a_u8; 64 * 1024]).unwrap();
    let output = Command::new(tests::perfpilot_bin())
        .args(["--data-dir", data.0.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{}", tests::free_port())])
        .args(["--metrics-listen", "off"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "start-up must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&db.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("not a database"),
        "says what is wrong: {stderr}"
    );
    assert!(
        stderr.contains("Move it aside"),
        "says what to do: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_lists_and_filters_entries_in_the_browser() {
    let server = Perfpilot::start(&[]);
    set_target(&server, "cpu", 71.0);
    set_target(&server, "memory", 72.0);
    set_target(&server, "cpu", 73.0);
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/audit")).await.unwrap();
    browser.wait_for_hydration().await;
    let rows = |selector: &'static str| async move {
        client.find_all(Locator::Css(selector)).await.unwrap().len()
    };
    assert_eq!(rows("#audit tbody tr").await, 3);

    client
        .find(Locator::Id("audit-resource"))
        .await
        .unwrap()
        .send_keys("cpu")
        .await
        .unwrap();
    click(client, Locator::Id("audit-apply")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("resource=cpu")
        && rows("#audit tbody tr").await == 2)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the filter narrows the list to cpu"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows("#audit tbody tr[data-resource='cpu']").await, 2);
    browser.screenshot("audit.png").await;

    // A filter nothing matches shows the empty state, not an empty table.
    client
        .goto(&server.url("/audit?user=nobody"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    assert!(client.find(Locator::Id("audit-empty")).await.is_ok());
    browser.screenshot("audit-empty.png").await;
    browser.close().await;
}
