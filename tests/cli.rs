//! The binary's command-line contract: bad configuration and a busy port end the process
//! with a message a person can act on and a non-zero exit code.

use std::net::TcpListener;
use std::process::Command;

use tests::TempDir;

fn perfpilot() -> Command {
    let bin = std::env::var("PERFPILOT_BIN")
        .unwrap_or_else(|_| format!("{}/../target/debug/perfpilot", env!("CARGO_MANIFEST_DIR")));
    let mut cmd = Command::new(bin);
    cmd.env("RUST_LOG", "error");
    cmd
}

fn stderr_of(cmd: &mut Command) -> (i32, String) {
    let output = cmd.output().expect("run perfpilot");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unknown_config_key_names_file_line_and_key() {
    let dir = TempDir::new("perfpilot-cli");
    let file = dir.0.join("perfpilot.toml");
    std::fs::write(&file, "# perfpilot\nlisten = \"127.0.0.1:0\"\nlisen = 1\n").unwrap();
    let (code, stderr) = stderr_of(perfpilot().arg("--config").arg(&file));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "config file {}: line 3, column 1:",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `lisen`"), "{stderr}");
}

#[test]
fn a_bad_public_url_exits_2_naming_the_field_and_rule() {
    for (flag, env) in [
        (Some("https://ops.example.com/perf/?x=1"), None),
        (None, Some("perf/")),
    ] {
        let mut cmd = perfpilot();
        cmd.args(["--listen", "127.0.0.1:0", "--check-config"]);
        if let Some(url) = flag {
            cmd.args(["--public-url", url]);
        }
        if let Some(url) = env {
            cmd.env("PERFPILOT_PUBLIC_URL", url);
        }
        let (code, stderr) = stderr_of(&mut cmd);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.starts_with("error: public_url: must "), "{stderr}");
    }
    let dir = TempDir::new("perfpilot-cli");
    let file = dir.0.join("proxy.toml");
    std::fs::write(&file, "public_url = \"https://ops.example.com/perf\"\n").unwrap();
    let output = perfpilot()
        .arg("--config")
        .arg(&file)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("url: \"https://ops.example.com/perf/\""),
        "normalized with its trailing slash: {stdout}"
    );
}

#[test]
fn malformed_config_names_the_line() {
    let dir = TempDir::new("perfpilot-cli");
    let file = dir.0.join("broken.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nrequest_timeout = [\n").unwrap();
    let (code, stderr) = stderr_of(perfpilot().arg("--config").arg(&file));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("broken.toml: line"), "{stderr}");
}

#[test]
fn port_in_use_is_one_line_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // In memory: this test is about the port, and must leave no data directory behind.
    let (code, stderr) = stderr_of(
        perfpilot()
            .arg("--ephemeral")
            .arg("--listen")
            .arg(addr.to_string()),
    );
    assert_ne!(code, 0);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0], format!("error: cannot listen on {addr}: address already in use (is another perfpilot running?)"));
}

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("perfpilot-cli");
    let file = dir.0.join("ok.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:4321\"\nmax_body_bytes = 4096\n",
    )
    .unwrap();
    let output = perfpilot()
        .arg("--config")
        .arg(&file)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("127.0.0.1:4321"), "{stdout}");
}

#[test]
fn check_config_refuses_an_unknown_alert_channel_type_naming_channel_and_field() {
    let dir = TempDir::new("perfpilot-cli");
    let file = dir.0.join("alerts.toml");
    std::fs::write(
        &file,
        "[[alert_channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\ntypes = [\"custom\", \"nosuchtype\"]\n",
    )
    .unwrap();
    let (code, stderr) = stderr_of(perfpilot().arg("--config").arg(&file).arg("--check-config"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "alert_channel: entry 1 (\"ops\"): types: unknown resource type \"nosuchtype\" (one of cpu, memory, disk, network, database, cache, lb, fleet, custom)"
        ),
        "{stderr}"
    );
    // The type of every custom resource is accepted.
    std::fs::write(
        &file,
        "[[alert_channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\ntypes = [\"custom\", \"lb\"]\n",
    )
    .unwrap();
    let (code, stderr) = stderr_of(perfpilot().arg("--config").arg(&file).arg("--check-config"));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn sigterm_shuts_down_gracefully_with_exit_code_zero() {
    let server = tests::Perfpilot::start(&[]);
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// Refusals made below the handlers, over a real connection: hyper's own (a URL over
/// 64 KiB), the router's (404, 405, a path segment that is not UTF-8) and the limits'
/// (413) are the documented JSON body with their status, like every handler's refusal.
#[test]
fn refusals_below_the_handlers_are_json_with_their_status() {
    let server = tests::Perfpilot::start(&[
        "--max-body-bytes",
        "4096",
        "--request-timeout",
        "1",
        "--mutation-rate",
        "1",
        "--mutation-burst",
        "1",
    ]);
    let addr = server.addr;
    let long_query = "q".repeat(100_000);
    let oversized_body = "x".repeat(8_192);
    let cases: Vec<(String, u16, Option<&str>)> = vec![
        (
            format!("GET /api/audit?q={long_query} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            414,
            Some("url"),
        ),
        (
            format!("GET /api/export/%c0%ae%c0%ae%2f/utilization.csv?range=1h HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
            400,
            Some("resource"),
        ),
        (
            format!("POST /api/v1/resources/%c0%ae/target HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
            400,
            Some("id"),
        ),
        (
            format!("GET /api/v1/nosuch HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
            404,
            None,
        ),
        (
            format!("PUT /api/v1/databases HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            405,
            None,
        ),
        (
            format!("POST /api/push HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{oversized_body}", oversized_body.len()),
            413,
            Some("body"),
        ),
    ];
    for (request, want, field) in cases {
        let shown: String = request.chars().take(80).collect();
        let (status, body) = tests::http_raw(addr, &request);
        assert_eq!(status, want, "{shown}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|err| panic!("{shown}: not JSON ({err}): {body:?}"));
        let error = json["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{shown}: {body}");
        if let Some(field) = field {
            assert_eq!(json["field"], field, "{shown}: {body}");
        }
    }
    // A body that never finishes arriving: the timeout's 408.
    let (status, body) = tests::http_raw(
        addr,
        &format!("POST /api/push HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{\"samples\""),
    );
    assert_eq!(status, 408, "{body}");
    let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("--request-timeout"),
        "{body}"
    );
    // Edits faster than --mutation-rate: the limiter's 429, JSON with Retry-After.
    let edit = format!(
        "POST /api/v1/resources/cpu/target HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"value\": 70}}"
    );
    let answers: Vec<(u16, String)> = (0..3).map(|_| tests::http_raw(addr, &edit)).collect();
    let (_, limited) = answers
        .iter()
        .find(|(status, _)| *status == 429)
        .unwrap_or_else(|| panic!("no 429 in {answers:?}"));
    let refusal: serde_json::Value = serde_json::from_str(limited).unwrap();
    assert!(refusal["error"].is_string(), "{limited}");
    // Pages keep their HTML answers.
    let (status, page) = server.get("/no-such-page");
    assert_eq!(status, 404);
    assert!(
        page.contains("<html") || page.contains("<!DOCTYPE"),
        "{page:.300}"
    );
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
}
