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
fn sigterm_shuts_down_gracefully_with_exit_code_zero() {
    let server = tests::Perfpilot::start(&[]);
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
