//! The real `perfpilot` process: [`Perfpilot`] (started ephemeral, on a data directory, on
//! a given port, with its log in a file; stopped by SIGTERM or SIGKILL), the binary and
//! site it runs, and settings changed through its API (`set_window`, `set_target`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::{body_json, http_get, http_post_json, http_request, urlencode};
use crate::sys::{free_port, wait_for_port};

/// A running `perfpilot` process, killed on drop.
pub struct Perfpilot {
    pub addr: SocketAddr,
    child: Child,
}

/// The built site the tests serve (`PERFPILOT_SITE_ROOT`, else `target/site`).
pub fn site_root() -> PathBuf {
    std::env::var_os("PERFPILOT_SITE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site"))
}

/// The binary the tests run (`PERFPILOT_BIN`, else the debug build).
pub fn perfpilot_bin() -> String {
    std::env::var("PERFPILOT_BIN")
        .unwrap_or_else(|_| format!("{}/../target/debug/perfpilot", env!("CARGO_MANIFEST_DIR")))
}

impl Perfpilot {
    /// Starts with its state in memory (`--ephemeral`), so parallel tests share no
    /// files; pass `--data-dir` through [`Perfpilot::start_with_data`] to test durability.
    pub fn start(extra_args: &[&str]) -> Perfpilot {
        let mut args = vec!["--ephemeral"];
        args.extend_from_slice(extra_args);
        Perfpilot::start_on(free_port(), &args)
    }

    /// Starts with its durable state in `data_dir` (a test's own
    /// [`TempDir`](crate::TempDir)).
    pub fn start_with_data(data_dir: &std::path::Path, extra_args: &[&str]) -> Perfpilot {
        Perfpilot::start_with_data_on(free_port(), data_dir, extra_args)
    }

    /// [`Perfpilot::start_with_data`] on a given port (a restart where clients expect it).
    pub fn start_with_data_on(
        port: u16,
        data_dir: &std::path::Path,
        extra_args: &[&str],
    ) -> Perfpilot {
        let dir = data_dir.to_str().expect("a UTF-8 temp path");
        let mut args = vec!["--data-dir", dir];
        args.extend_from_slice(extra_args);
        Perfpilot::start_on(port, &args)
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts on a given port (to restart a server where a browser expects it).
    pub fn start_on(port: u16, extra_args: &[&str]) -> Perfpilot {
        Perfpilot::spawn(port, &site_root(), extra_args)
    }

    /// Starts ephemeral, serving the browser bundle from `site` instead of the built one
    /// (a test's altered copy).
    pub fn start_with_site(site: &std::path::Path, extra_args: &[&str]) -> Perfpilot {
        let mut args = vec!["--ephemeral"];
        args.extend_from_slice(extra_args);
        Perfpilot::spawn(free_port(), site, &args)
    }

    /// Starts with the given arguments, its log (stderr) going to `log`, so a test can read
    /// what it logged.
    pub fn start_logged(log: &std::path::Path, extra_args: &[&str]) -> Perfpilot {
        Perfpilot::start_logged_on(free_port(), log, extra_args)
    }

    /// [`Perfpilot::start_logged`] on a given port (its `--public-url` must name it).
    pub fn start_logged_on(port: u16, log: &std::path::Path, extra_args: &[&str]) -> Perfpilot {
        let file = std::fs::File::create(log).expect("create the log file");
        // Everything, so a test can check that nothing it logs holds a secret.
        Perfpilot::spawn_with(port, &site_root(), extra_args, Stdio::from(file), "debug")
    }

    fn spawn(port: u16, site: &std::path::Path, extra_args: &[&str]) -> Perfpilot {
        Perfpilot::spawn_with(port, site, extra_args, Stdio::inherit(), "warn")
    }

    fn spawn_with(
        port: u16,
        site: &std::path::Path,
        extra_args: &[&str],
        stderr: Stdio,
        log_level: &str,
    ) -> Perfpilot {
        let bin = perfpilot_bin();
        assert!(
            std::path::Path::new(&bin).is_file(),
            "perfpilot binary not found at {bin}: run scripts/test.sh (it builds it)"
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--site-root")
            .arg(site)
            .args(extra_args)
            // Parallel tests would fight over the default metrics port.
            .args(if extra_args.contains(&"--metrics-listen") {
                &[][..]
            } else {
                &["--metrics-listen", "off"][..]
            })
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {bin}: {err}"));
        wait_for_port(addr, "perfpilot", &mut child);
        Perfpilot { addr, child }
    }

    /// Sends SIGTERM and waits for the process to exit (at most 15 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for perfpilot") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "perfpilot did not exit within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }
}

impl Perfpilot {
    /// The overview's card of `id`, polled until `check` accepts it (at most `secs`).
    pub fn card(
        &self,
        id: &str,
        secs: u64,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, body) = http_request(self.addr, "POST", "/api/overview", &[], "");
            let overview = body_json(&body);
            let found = overview["cards"]
                .as_array()
                .and_then(|cards| cards.iter().find(|c| c["id"] == id).cloned());
            if let Some(card) = found.filter(|c| check(c)) {
                return card;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last: {body:.1500}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The latest value of a series, from `/metrics` on the main listener (started with
    /// `--metrics-on-main-listener`).
    pub fn metric(&self, id: &str, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        let prefix = format!("perfpilot_resource_value{{resource=\"{id}\",metric=\"{name}\",");
        body.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// Sets `resource`'s evaluation window through the settings panel's server function (a
/// counted change).
pub fn set_window(server: &Perfpilot, resource: &str, window_secs: u32) {
    set_settings(server, resource, &[("window_secs", window_secs)]);
}

/// Sets some of `resource`'s settings (`window_secs`, `verify_secs`, …) through the
/// settings panel's server function, the others as they are (one counted change).
pub fn set_settings(server: &Perfpilot, resource: &str, values: &[(&str, u32)]) {
    let (status, body) = server.get(&format!(
        "/api/resource_settings?resource={}",
        urlencode(resource)
    ));
    assert_eq!(status, 200, "{body}");
    let mut settings = body_json(&body);
    for (name, value) in values {
        settings[*name] = (*value).into();
    }
    let form = format!(
        "resource={}&settings={}",
        urlencode(resource),
        urlencode(&settings.to_string())
    );
    let (status, answer) = http_request(
        server.addr,
        "POST",
        "/api/set_resource_settings",
        &[],
        &form,
    );
    assert_eq!(status, 200, "{answer}");
}

/// Sets `resource`'s target `metric ≤ value` breaching after `for_secs`, through the JSON
/// API as an editor would.
pub fn set_target(server: &Perfpilot, resource: &str, metric: &str, value: f64, for_secs: u32) {
    let (status, answer) = http_post_json(
        server.addr,
        &format!("/api/v1/resources/{}/target", urlencode(resource)),
        &format!(r#"{{"metric":"{metric}","value":{value},"for_secs":{for_secs}}}"#),
    );
    assert_eq!(status, 200, "{answer}");
}

impl Drop for Perfpilot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes `value(t)` for `resource`'s `metric` at each of `times` (ms since the epoch) in
/// one request, creating the resource; panics when the push is refused.
pub fn push_series(
    server: &Perfpilot,
    resource: &str,
    metric: &str,
    times: &[i64],
    value: impl Fn(i64) -> f64,
) {
    let samples: Vec<String> = times
        .iter()
        .map(|&t| {
            format!(
                r#"{{"resource":"{resource}","metric":"{metric}","value":{:.2},"timestamp":{t}}}"#,
                value(t)
            )
        })
        .collect();
    let (status, body) = http_post_json(
        server.addr,
        "/api/push",
        &format!(r#"{{"samples":[{}]}}"#, samples.join(",")),
    );
    assert_eq!(status, 200, "{body:.500}");
}

/// Forty minutes of `metric` for two pushed resources: `stepped` from about 20 to about 80
/// four minutes ago, `flat` near 20 (both with a small wobble) — what "what changed" must
/// tell apart.
pub fn push_a_step_and_a_flat_series(server: &Perfpilot, stepped: &str, flat: &str, metric: &str) {
    let times = recent_times(40);
    let now = *times.last().unwrap();
    let wobble = |t: i64| ((t / 10_000) % 5) as f64 * 0.4;
    push_series(server, stepped, metric, &times, |t| {
        let level = if now - t < 4 * 60_000 { 80.0 } else { 20.0 };
        level + wobble(t)
    });
    push_series(server, flat, metric, &times, |t| 20.0 + wobble(t));
}

/// `minutes` of push times up to the current second: every 10 s, then the last minute
/// every second (so a target's own window has its samples). Pushes reach an hour back.
pub fn recent_times(minutes: i64) -> Vec<i64> {
    let now = crate::now_ms();
    let second = now - now % 1000;
    let mut times: Vec<i64> = (6..=minutes * 6)
        .rev()
        .map(|k| second - k * 10_000)
        .collect();
    times.extend((0..60).rev().map(|k| second - k * 1000));
    times
}
