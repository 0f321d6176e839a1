//! Test harness for the end-to-end suites: starts the real `perfpilot` binary on a free
//! port and a real headless Chromium through chromedriver, and cleans both up on drop.
//!
//! Nothing is installed here: `scripts/test.sh` installs Chromium and builds the binary
//! and site, then passes their paths in `PERFPILOT_BIN` and `PERFPILOT_SITE_ROOT`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub mod fleet_support;

/// Where screenshots and other artefacts of a test run go: `target/e2e/`.
pub fn artefact_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(addr: SocketAddr, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {addr}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {addr} within 30 s");
}

/// Sends one raw HTTP/1.0 request and reads the whole answer: enough for status and body
/// checks without another client stack. Returns the status and the full response.
fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to perfpilot");
    // A server that never answers fails the test instead of holding the whole run.
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:.200}"));
    (status, response)
}

fn body_of(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// A request written by hand (every header is the caller's): status and body.
pub fn http_raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let (status, response) = exchange(addr, request);
    (status, body_of(&response))
}

/// A GET. Returns the status and the whole response (headers and body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    )
}

/// A form-encoded POST (how Leptos server functions take arguments by default), sent
/// with the server's own origin. Returns the status and the body.
pub fn http_post_form(addr: SocketAddr, path: &str, form: &str) -> (u16, String) {
    let (status, response) = exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nAccept: application/json\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    (status, body_of(&response))
}

/// A JSON POST (the custom-metric push API). Returns the status and the body.
pub fn http_post_json(addr: SocketAddr, path: &str, json: &str) -> (u16, String) {
    let (status, response) = exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{json}",
            json.len()
        ),
    );
    (status, body_of(&response))
}

/// Any request with extra headers (identity headers, `Authorization`), sent with the
/// server's own origin. Returns the status and the body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> (u16, String) {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let (status, response) = exchange(
        addr,
        &format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nAccept: application/json\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{extra}Content-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    (status, body_of(&response))
}

/// Clicks the element `locator` finds; panics naming the locator if there is none.
pub async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .unwrap_or_else(|err| panic!("nothing to click at {locator:?}: {err}"))
        .click()
        .await
        .unwrap_or_else(|err| panic!("clicking {locator:?} failed: {err}"));
}

/// Clicks `locator` until `expect` (CSS) appears, at most 20 s: a region of the page that
/// waits for its data hydrates after `body[data-hydrated]`, and a click before that is
/// lost. Only for clicks that are safe to repeat (opening a confirmation, a link).
pub async fn click_until(client: &Client, locator: Locator<'_>, expect: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(element) = client.find(locator).await {
            let _ = element.click().await;
        }
        let appeared = client
            .wait()
            .at_most(Duration::from_secs(2))
            .for_element(Locator::Css(expect))
            .await
            .is_ok();
        if appeared {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clicking {locator:?} never showed {expect}"
        );
    }
}

/// Waits (fantoccini's default wait) for the element `locator` finds; panics naming it.
pub async fn wait_for(client: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    client
        .wait()
        .for_element(locator)
        .await
        .unwrap_or_else(|err| panic!("waited in vain for {locator:?}: {err}"))
}

/// The text of the element matching `css`, waiting up to 15 s for it to appear.
pub async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css} appears: {err}"))
        .text()
        .await
        .unwrap()
}

/// The current `value` property of an input.
pub async fn input_value(client: &Client, css: &str) -> String {
    client
        .find(fantoccini::Locator::Css(css))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Polls (up to 15 s) until the element's text satisfies `check`, and returns that text:
/// live updates and server answers arrive asynchronously.
pub async fn eventually_text(
    client: &Client,
    css: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last text: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How far the page scrolls sideways (0 when it fits the window), and the first elements
/// that stick out (those inside a deliberate horizontal scroller are not counted).
pub async fn horizontal_overflow(client: &Client) -> (i64, String) {
    let result = client
        .execute(
            "const root = document.documentElement, w = root.clientWidth;
             const name = e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className
               + '@' + Math.round(e.getBoundingClientRect().right);
             const out = [...document.querySelectorAll('body *')]
               .filter(e => !e.closest('.table-wrap, .table-scroll'))
               .filter(e => e.getBoundingClientRect().right > w + 1)
               .slice(0, 8).map(name).join(' ');
             // Negative while a vertical scrollbar comes or goes (a reflow between the
             // two reads): that is not sideways scrolling.
             return [Math.max(0, root.scrollWidth - w), out];",
            vec![],
        )
        .await
        .expect("measure the page width");
    (
        result[0].as_i64().unwrap_or(-1),
        result[1].as_str().unwrap_or_default().to_owned(),
    )
}

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

/// Copies a directory tree (the site, for a test that alters its copy).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
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

    /// Starts with its durable state in `data_dir` (a test's own [`TempDir`]).
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

/// The JSON of an answer, with or without its head.
pub fn body_json(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or(response, |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body:.500}"))
}

/// Sets `resource`'s evaluation window through the settings panel's server function (a
/// counted change).
pub fn set_window(server: &Perfpilot, resource: &str, window_secs: u32) {
    let (status, body) = server.get(&format!(
        "/api/resource_settings?resource={}",
        urlencode(resource)
    ));
    assert_eq!(status, 200, "{body}");
    let mut settings = body_json(&body);
    settings["window_secs"] = window_secs.into();
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

/// chromedriver plus a WebDriver session on a fresh Chromium profile.
pub struct Browser {
    pub client: Client,
    /// chromedriver's address, for the Chrome DevTools commands fantoccini has no call for.
    driver_addr: SocketAddr,
    // Fields drop in order: the session, then chromedriver, then the profile directory.
    _driver: Driver,
    _profile: TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut driver = Driver(
            Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| {
                    panic!(
                    "cannot start {driver_bin}: {err} (scripts/test.sh installs chromium-driver)"
                )
                }),
        );
        wait_for_port(driver_addr, "chromedriver", &mut driver.0);

        let profile = TempDir::new("perfpilot-chromium");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.0.display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("start a Chromium session through chromedriver");
        Browser {
            client,
            driver_addr,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Waits until the page has hydrated: clicks before that are silently lost.
    pub async fn wait_for_hydration(&self) {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(fantoccini::Locator::Css("body[data-hydrated='true']"))
            .await
            .expect("the page hydrates within 30 s");
    }

    /// Runs a Chrome DevTools Protocol command on the session's tab (chromedriver's
    /// `goog/cdp/execute`) and returns its result.
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        let session = self
            .client
            .session_id()
            .await
            .expect("ask for the session id")
            .expect("a WebDriver session");
        let body = serde_json::json!({ "cmd": cmd, "params": params }).to_string();
        let request = format!(
            "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.driver_addr,
            body.len()
        );
        // chromedriver answers HTTP/1.0 with nothing and keeps HTTP/1.1 connections open
        // even after `Connection: close`, so the answer ends at its Content-Length.
        let mut stream = TcpStream::connect(self.driver_addr).expect("connect to chromedriver");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        let (status, response) = loop {
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|err| panic!("{cmd}: no answer from chromedriver: {err}"));
            assert!(n > 0, "{cmd}: chromedriver closed the connection");
            response.extend_from_slice(&chunk[..n]);
            let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&response[..end]).into_owned();
            let length: usize = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .expect("chromedriver sends Content-Length");
            let body = &response[end + 4..];
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).map(str::to_owned);
                break (status, String::from_utf8_lossy(body).into_owned());
            }
        };
        assert_eq!(status.as_deref(), Some("200"), "{cmd}: {response}");
        let mut answer: serde_json::Value = serde_json::from_str(&response)
            .unwrap_or_else(|err| panic!("{cmd}: not JSON ({err}): {response}"));
        answer["value"].take()
    }

    /// Makes the tab's `prefers-color-scheme` `"dark"` or `"light"` (`""`: the real
    /// setting), as if the operating system's appearance changed; pages see it live.
    pub async fn emulate_color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            serde_json::json!({
                "features": [{ "name": "prefers-color-scheme", "value": scheme }]
            }),
        )
        .await;
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let path = artefact_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// A test that panics before [`Browser::close`] would leave Chromium running (killing
    /// chromedriver orphans it): its processes are the ones started with this profile.
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                "--",
                &format!("--user-data-dir={}", self._profile.0.display()),
            ])
            .status();
    }
}

/// chromedriver, killed and reaped on drop so a failing test leaves no process behind.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed on drop (avoids a dependency for one helper).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where Debian's PostgreSQL 15 keeps its programs (they are not on PATH).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL 15 cluster for one test binary: `initdb` in a temp dir, run as
/// the `postgres` OS user (PostgreSQL refuses root), listening on a free loopback port and
/// a private socket directory, `pg_stat_statements` preloaded. Never the system's own
/// cluster. Stopped and removed on drop.
pub struct Postgres {
    pub port: u16,
    pub dir: PathBuf,
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = std::env::temp_dir().join(format!(
            "perfpilot-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("sock")).expect("create the cluster dir");
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir));
        run(Command::new("chmod").arg("700").arg(&dir));
        let data = dir.join("data");
        run(as_postgres(&format!("{PG_BIN}/initdb"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data));
        let pg = Postgres {
            port: free_port(),
            dir,
        };
        pg.start_server();
        pg.psql("postgres", "CREATE EXTENSION pg_stat_statements");
        pg
    }

    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c shared_preload_libraries=pg_stat_statements -c fsync=off",
            self.port,
            self.dir.join("sock").display()
        );
        run(as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
    }

    /// Stops the server at once (`-m immediate`, as a crash would), leaving its data.
    pub fn kill(&self) {
        run(as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// Starts it again after [`Postgres::kill`], on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    /// Runs `sql` as the superuser over the private socket; returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = as_postgres(&format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Opens a session that begins a transaction and then sits idle in it until the
    /// returned child is killed (or dropped with its stdin).
    pub fn idle_in_transaction(&self, db: &str) -> std::process::Child {
        let mut child = as_postgres(&format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-h"])
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string(), "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start psql");
        child
            .stdin
            .as_mut()
            .expect("psql's stdin")
            .write_all(b"BEGIN; SELECT 1;\n")
            .expect("write to psql");
        child
    }

    /// Runs pgbench against `db` over the socket with `args` (e.g. `-i`, or `-c 4 -T 5`).
    pub fn pgbench(&self, db: &str, args: &[&str]) {
        run(as_postgres(&format!("{PG_BIN}/pgbench"))
            .arg("-h")
            .arg(self.dir.join("sock"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .arg(db));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", program]);
    command.stdin(Stdio::null());
    command
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percent-encodes `text` for a URL query or form value.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A throwaway Redis for one test binary: Debian's `redis-server` on a free loopback
/// port, no persistence, its files in a temp dir. Stopped on drop.
pub struct Redis {
    pub port: u16,
    pub password: Option<String>,
    /// For a TLS-only server: the CA that signed its certificate (PEM).
    pub ca_file: Option<PathBuf>,
    dir: PathBuf,
    args: Vec<String>,
}

impl Redis {
    /// Starts one; `password` becomes `requirepass`, `extra` are more `redis-server`
    /// arguments (e.g. `--rename-command CONFIG ""`).
    pub fn start(password: Option<&str>, extra: &[&str]) -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis dir");
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "yes".into(),
            "--pidfile".into(),
            dir.join("redis.pid").display().to_string(),
            "--logfile".into(),
            dir.join("redis.log").display().to_string(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        if let Some(password) = password {
            args.extend(["--requirepass".into(), password.to_owned()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let redis = Redis {
            port,
            password: password.map(str::to_owned),
            ca_file: None,
            dir,
            args,
        };
        redis.restart();
        redis
    }

    /// A TLS-only one (`--port 0 --tls-port P`), its certificate for 127.0.0.1 signed by a
    /// throwaway CA made with `openssl` (at [`Redis::ca_file`]).
    pub fn start_tls() -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis dir");
        let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(&dir).args(args));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=perfpilot test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let path = |name: &str| dir.join(name).display().to_string();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            &path("redis.pid"),
            "--logfile",
            &path("redis.log"),
            "--dir",
            &path(""),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let redis = Redis {
            port,
            password: None,
            ca_file: Some(dir.join("ca.crt")),
            dir,
            args,
        };
        redis.restart();
        redis
    }

    /// Starts it (again, after [`Redis::kill`]) on the same port, empty.
    pub fn restart(&self) {
        let _ = std::fs::remove_file(self.dir.join("redis.pid"));
        run(Command::new("redis-server").args(&self.args));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(std::time::Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("redis.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).output();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.try_cli(&["PING"]).is_some() {
                assert!(std::time::Instant::now() < deadline, "redis did not stop");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca_file {
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        command.args(args);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let out = command.stdin(Stdio::null()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect") && !text.is_empty())
            .then_some(text)
    }

    /// Runs one command with `redis-cli`; returns its answer.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// Sends `gets` GETs a second (`hit_pct` % of them for keys that exist) until the
    /// returned flag is cleared; the load runs on its own thread.
    pub fn load(&self, gets_per_s: u32, hit_pct: u32) -> Load {
        let commands = {
            let mut batch = String::new();
            if let Some(password) = &self.password {
                batch.push_str(&format!("AUTH {password}\r\n"));
            }
            batch.push_str("SET load:hit 1\r\n");
            batch
        };
        let per_tick = (gets_per_s / 10).max(1);
        let hits = per_tick * hit_pct / 100;
        let mut tick = String::new();
        for i in 0..per_tick {
            tick.push_str(if i < hits {
                "GET load:hit\r\n"
            } else {
                "GET load:miss\r\n"
            });
        }
        Load::start(self.port, commands, tick)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway memcached for one test binary on a free loopback port. Stopped on drop.
pub struct Memcached {
    pub port: u16,
    pid_file: PathBuf,
}

impl Memcached {
    pub fn start() -> Memcached {
        let port = free_port();
        let pid_file = std::env::temp_dir().join(format!(
            "perfpilot-memcached-{}-{port}.pid",
            std::process::id()
        ));
        run(Command::new("memcached").args([
            "-p",
            &port.to_string(),
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-m",
            "64",
            "-u",
            "nobody",
            "-d",
            "-P",
            &pid_file.display().to_string(),
        ]));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "memcached did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Memcached { port, pid_file }
    }

    /// `gets_per_s` gets a second, `hit_pct` % of them for a key that exists.
    pub fn load(&self, gets_per_s: u32, hit_pct: u32) -> Load {
        let per_tick = (gets_per_s / 10).max(1);
        let hits = per_tick * hit_pct / 100;
        let mut tick = String::new();
        for i in 0..per_tick {
            tick.push_str(if i < hits {
                "get load:hit\r\n"
            } else {
                "get load:miss\r\n"
            });
        }
        Load::start(self.port, "set load:hit 0 0 1\r\nx\r\n".into(), tick)
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).output();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// A steady load of text-protocol commands on one connection, ten batches a second, until
/// dropped; answers are read and discarded on another thread.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    fn start(port: u16, first: String, tick: String) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        std::thread::spawn(move || {
            let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            drain(&stream);
            let _ = stream.write_all(first.as_bytes());
            while !running.load(Ordering::Relaxed) {
                if stream.write_all(tick.as_bytes()).is_err() {
                    // The server went away (a restart in the test): connect again.
                    std::thread::sleep(Duration::from_millis(200));
                    match std::net::TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => {
                            stream = s;
                            drain(&stream);
                            let _ = stream.write_all(first.as_bytes());
                        }
                        Err(_) => continue,
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Load { stop }
    }
}

/// Reads and discards what `stream` answers, on its own thread.
fn drain(stream: &TcpStream) {
    if let Ok(mut reader) = stream.try_clone() {
        std::thread::spawn(move || {
            let mut sink = [0u8; 8192];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Requests a tiny HTTP endpoint received: (headers, body).
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A real HTTP listener on loopback that answers 200 to every request and keeps them.
pub fn webhook_receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = std::sync::Arc::default();
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break (head.to_owned(), body[..length].to_owned());
                    }
                }
            };
            // Recorded before the answer: a caller that saw the 200 finds the request.
            keep.lock().unwrap().push((head, body));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, received)
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Request {
    /// The status it was answered with.
    pub status: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: std::time::Instant,
    /// Unix ms when it arrived (to compare with times in its body).
    pub received_ms: i64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// A real HTTP listener on loopback that keeps every request and answers with the status
/// set in `status` (200 to begin with): a webhook, Slack or Alertmanager receiver that can
/// be made to fail.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    pub status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            status: std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200)),
            requests: std::sync::Arc::default(),
        };
        let keep = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let keep = keep.clone();
                std::thread::spawn(move || keep.serve(stream));
            }
        });
        receiver
    }

    fn serve(&self, mut stream: std::net::TcpStream) {
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        let (head, body) = loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break (head.to_owned(), body[..length].to_owned());
                }
            }
        };
        let mut lines = head.lines();
        let path = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_owned();
        let headers = lines
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let status = self.status.load(std::sync::atomic::Ordering::SeqCst);
        // Kept before answering: a client that saw the answer finds the request here.
        self.requests.lock().unwrap().push(Request {
            status,
            path,
            headers,
            body,
            at: std::time::Instant::now(),
            received_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        });
        let _ = stream.write_all(
            format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .as_bytes(),
        );
    }

    pub fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests to paths starting with `prefix`, oldest first.
    pub fn on(&self, prefix: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Waits until `check` holds for the requests to `prefix`, or panics saying `what`.
    pub fn wait_for(
        &self,
        prefix: &str,
        secs: u64,
        what: &str,
        check: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.on(prefix);
            if check(&got) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within {secs} s; got {:#?}",
                got.iter().map(|r| (&r.path, &r.body)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A throwaway Alertmanager 0.25 (Debian's `prometheus-alertmanager`) on a free loopback
/// port, with its own config and data directory, forwarding every alert group at once
/// (group_wait 0, group_interval 1 s) to `forward_to` with `send_resolved`: what it
/// forwards proves what it received. Stopped on drop.
pub struct Alertmanager {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Alertmanager {
    pub fn start(forward_to: &str) -> Alertmanager {
        let dir = TempDir::new("perfpilot-alertmanager");
        let port = free_port();
        let config = dir.0.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: forward\n  group_by: ['alertname', 'resource']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: forward\n  webhook_configs:\n  - url: {forward_to}\n    send_resolved: true\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (scripts/setup.sh --test installs it)");
        let am = Alertmanager {
            port,
            child,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = format!("127.0.0.1:{port}").parse() {
                let (status, _) = http_get_maybe(addr, "/-/ready");
                if status == 200 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Alertmanager did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// Its alerts API: what it holds now.
    pub fn alerts(&self) -> serde_json::Value {
        let (status, body) = http_get(self.addr(), "/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        body_json(&body)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET that answers status 0 when nothing listens yet.
pub fn http_get_maybe(addr: SocketAddr, path: &str) -> (u16, String) {
    match std::net::TcpStream::connect(addr) {
        Ok(_) => http_get(addr, path),
        Err(_) => (0, String::new()),
    }
}

/// One message an [`SmtpSink`] accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent (dot-stuffing undone).
    pub data: String,
}

/// A local SMTP server on a free loopback port that accepts every message and keeps it
/// (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no AUTH): the receiving end of
/// an email channel in tests.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub mails: std::sync::Arc<std::sync::Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink = SmtpSink {
            port: listener.local_addr().unwrap().port(),
            mails: std::sync::Arc::default(),
        };
        let keep = sink.mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let keep = keep.clone();
                std::thread::spawn(move || smtp_session(stream, &keep));
            }
        });
        sink
    }

    pub fn wait_for(&self, secs: u64, what: &str, check: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mails = self.mails.lock().unwrap().clone();
            if check(&mails) {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s; got {mails:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn smtp_session(stream: TcpStream, keep: &std::sync::Mutex<Vec<Mail>>) {
    use std::io::BufRead;
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = std::io::BufReader::new(stream);
    let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes()).is_ok();
    if !say("220 perfpilot-test-sink ESMTP") {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let ok = if upper.starts_with("EHLO") {
            say("250-perfpilot-test-sink") && say("250 8BITMIME")
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            say("250 OK")
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            say("250 OK")
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            say("250 OK")
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().to_owned());
            say("250 OK")
        } else if upper.starts_with("DATA") {
            if !say("354 end with <CRLF>.<CRLF>") {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            keep.lock().unwrap().push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            });
            say("250 OK queued")
        } else if upper.starts_with("QUIT") {
            say("221 bye");
            return;
        } else {
            say("502 not implemented")
        };
        if !ok {
            return;
        }
    }
}

/// How a [`TestBackend`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMode {
    Ok,
    /// Answers after this many milliseconds.
    Slow(u64),
    /// `503 Service Unavailable`.
    Failing,
}

/// A small HTTP backend on a free loopback port that can be made slow, failing or dead
/// (its listener closed: connections refused) and brought back, on command.
pub struct TestBackend {
    pub port: u16,
    mode: Arc<std::sync::Mutex<BackendMode>>,
    alive: Arc<std::sync::atomic::AtomicBool>,
    served: Arc<std::sync::atomic::AtomicU64>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Open connections, closed by `kill` as a dying process's would be.
    open: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl TestBackend {
    pub fn start() -> TestBackend {
        let backend = TestBackend {
            port: free_port(),
            mode: Arc::new(std::sync::Mutex::new(BackendMode::Ok)),
            alive: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            served: Arc::default(),
            thread: std::sync::Mutex::new(None),
            open: Arc::default(),
        };
        backend.revive();
        backend
    }

    pub fn set(&self, mode: BackendMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes the listener: new connections are refused.
    pub fn kill(&self) {
        use std::sync::atomic::Ordering;
        self.alive.store(false, Ordering::SeqCst);
        // Wakes the accept loop so it drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn revive(&self) {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.alive.store(true, Ordering::SeqCst);
        let (mode, alive, served) = (self.mode.clone(), self.alive.clone(), self.served.clone());
        let open = self.open.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !alive.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    let mut open = open.lock().unwrap();
                    open.retain(|s| s.peer_addr().is_ok());
                    open.push(clone);
                }
                let (mode, served) = (mode.clone(), served.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 2048];
                    // Several requests may come on one keep-alive connection.
                    loop {
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        request.drain(..end);
                        let current = *mode.lock().unwrap();
                        let answer: &[u8] = match current {
                            BackendMode::Ok => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            BackendMode::Slow(ms) => {
                                std::thread::sleep(Duration::from_millis(ms));
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                            }
                            BackendMode::Failing => {
                                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
                            }
                        };
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        *self.thread.lock().unwrap() = Some(thread);
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway HAProxy 2.6 (Debian's) in front of test backends: its own config in a temp
/// dir, a frontend and an admin-level stats socket, run in the foreground as a child.
/// `reload` does what `haproxy -sf` does in production. Stopped on drop.
pub struct Haproxy {
    pub port: u16,
    pub socket: PathBuf,
    config: PathBuf,
    _dir: TempDir,
    child: std::sync::Mutex<std::process::Child>,
}

impl Haproxy {
    /// Backend `web` with `servers` (name, port) at weight 10, round robin; HAProxy's own
    /// health checks off, so perfpilot's checks decide.
    pub fn start(servers: &[(&str, u16)]) -> Haproxy {
        Self::start_with(servers, "")
    }

    /// As [`Haproxy::start`], with `options` after every `server` line (`check inter
    /// 200` turns HAProxy's own health checks on).
    pub fn start_with(servers: &[(&str, u16)], options: &str) -> Haproxy {
        let dir = TempDir::new("perfpilot-haproxy");
        let port = free_port();
        let socket = dir.0.join("admin.sock");
        let config = dir.0.join("haproxy.cfg");
        let mut text = format!(
            "global\n    stats socket {} mode 600 level admin\n    maxconn 2000\n\n\
             defaults\n    mode http\n    timeout connect 500ms\n    timeout client 10s\n    timeout server 10s\n\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend web\n\n\
             backend web\n    balance roundrobin\n",
            socket.display()
        );
        for (name, server_port) in servers {
            text.push_str(&format!(
                "    server {name} 127.0.0.1:{server_port} weight 10 {options}\n"
            ));
        }
        std::fs::write(&config, text).expect("write haproxy.cfg");
        let child = Self::spawn(&config, None);
        let haproxy = Haproxy {
            port,
            socket,
            config,
            _dir: dir,
            child: std::sync::Mutex::new(child),
        };
        haproxy.wait_ready(None);
        haproxy
    }

    fn spawn(config: &std::path::Path, replacing: Option<u32>) -> std::process::Child {
        let mut command = Command::new("haproxy");
        command.arg("-db").arg("-f").arg(config);
        if let Some(old) = replacing {
            command.arg("-sf").arg(old.to_string());
        }
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy (Debian's haproxy package)")
    }

    /// Waits until the stats socket answers, from a process other than `old`.
    fn wait_ready(&self, old: Option<u32>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = self.try_pid() {
                if Some(pid) != old {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_pid(&self) -> Option<u32> {
        let info = self.try_command("show info")?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid: "))
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn pid(&self) -> u32 {
        self.try_pid().expect("haproxy answers show info")
    }

    fn try_command(&self, line: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// One runtime API command's answer.
    pub fn command(&self, line: &str) -> String {
        self.try_command(line)
            .unwrap_or_else(|| panic!("haproxy did not answer {line:?}"))
    }

    /// The `status` column of `show stat` for server `name` of backend `web`.
    pub fn status(&self, name: &str) -> String {
        let stat = self.command("show stat web 4 -1");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = header.iter().position(|c| *c == "status").unwrap();
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|cells| cells.get(1) == Some(&name))
            .map(|cells| cells[column].to_owned())
            .unwrap_or_default()
    }

    /// What `get weight web/<name>` says (the current weight).
    pub fn weight(&self, name: &str) -> u32 {
        self.command(&format!("get weight web/{name}"))
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no weight for {name}"))
    }

    /// A new process takes over (`haproxy -sf <old>`), forgetting every runtime change;
    /// answers when the new one serves the socket. Returns the new process id.
    pub fn reload(&self) -> u32 {
        let old = self.pid();
        let new = Self::spawn(&self.config, Some(old));
        let mut child = self.child.lock().unwrap();
        let mut previous = std::mem::replace(&mut *child, new);
        drop(child);
        self.wait_ready(Some(old));
        let _ = previous.wait();
        self.pid()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Requests through a load balancer from a few threads, counting what clients saw.
pub struct HttpLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// (unix ms the request was sent, status or 0 for a connection error, ms it took).
    pub results: Arc<std::sync::Mutex<Vec<(i64, u16, f64)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl HttpLoad {
    /// `clients` threads, each sending one request at a time to `port`.
    pub fn start(port: u16, clients: usize) -> HttpLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let results: Arc<std::sync::Mutex<Vec<(i64, u16, f64)>>> = Arc::default();
        let threads = (0..clients)
            .map(|_| {
                let (stop, results) = (stop.clone(), results.clone());
                std::thread::spawn(move || {
                    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let at = now_ms();
                        let status = try_get(addr);
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        results.lock().unwrap().push((at, status, ms));
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        HttpLoad {
            stop,
            results,
            threads,
        }
    }

    /// Client errors (not 200) of requests sent in `[from, to)` unix ms, and all sent there.
    pub fn errors_between(&self, from: i64, to: i64) -> (usize, usize) {
        let results = self.results.lock().unwrap();
        let inside: Vec<_> = results
            .iter()
            .filter(|(at, _, _)| *at >= from && *at < to)
            .collect();
        (
            inside
                .iter()
                .filter(|(_, status, _)| *status != 200)
                .count(),
            inside.len(),
        )
    }

    /// The p95 of response times (ms) of requests sent in `[from, to)`.
    pub fn p95_between(&self, from: i64, to: i64) -> Option<f64> {
        let results = self.results.lock().unwrap();
        let mut times: Vec<f64> = results
            .iter()
            .filter(|(at, status, _)| *at >= from && *at < to && *status == 200)
            .map(|(_, _, ms)| *ms)
            .collect();
        if times.is_empty() {
            return None;
        }
        times.sort_by(f64::total_cmp);
        Some(times[((times.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)])
    }
}

impl Drop for HttpLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One `GET /` with `Connection: close`: the status, or 0 when the connection failed.
fn try_get(addr: SocketAddr) -> u16 {
    let attempt = || -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        Ok(text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    };
    attempt().unwrap_or(0)
}

/// A throwaway MariaDB 10.11 for one test binary: Debian's `mariadbd`, started by root and
/// running as the `mysql` OS user, on a free loopback port with its data, socket and logs
/// in a temp dir, `performance_schema` on (unless `extra` says otherwise), and the user
/// [`Mariadb::USER`] (password [`Mariadb::PASSWORD`]) holding what the source and the
/// settings actuator need. Never the system's own server. Killed and removed on drop.
pub struct Mariadb {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Mariadb {
    pub const USER: &'static str = "perf";
    pub const PASSWORD: &'static str = "maria-secret-Vb4nQ8";

    pub fn start() -> Mariadb {
        Mariadb::start_with(&[])
    }

    /// One started with `extra` `mariadbd` options after the harness's own (a later
    /// option wins: `--performance-schema=OFF`).
    pub fn start_with(extra: &[&str]) -> Mariadb {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("perfpilot-mariadb-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the MariaDB dir");
        // Its own temporary directory: bootstraps started at the same moment by tests
        // running side by side otherwise clash on the same `#sql-temptable-…` names in /tmp.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create the MariaDB tmp dir");
        run(Command::new("chown").args(["-R", "mysql:mysql"]).arg(&dir));
        run(Command::new("chmod").arg("700").arg(&dir));
        let data = dir.join("data");
        // A small redo log: the default 96 MB file is written out on every start.
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=8M",
            ])
            .stdin(Stdio::null()));
        let path = |name: &str| dir.join(name).display().to_string();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", path("mysqld.sock")),
            format!("--pid-file={}", path("mariadbd.pid")),
            format!("--log-error={}", path("error.log")),
            "--user=mysql".into(),
            "--skip-name-resolve".into(),
            "--skip-log-bin".into(),
            "--performance-schema=ON".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-log-file-size=8M".into(),
            "--innodb-flush-log-at-trx-commit=0".into(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut db = Mariadb {
            port,
            dir,
            args,
            child: None,
        };
        db.restart();
        db.mysql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SUPER ON *.* TO '{user}'@'%'; \
             GRANT SELECT ON performance_schema.* TO '{user}'@'%'",
            user = Mariadb::USER,
            password = Mariadb::PASSWORD
        ));
        db
    }

    /// `mysql://perf@127.0.0.1:<port>/<db>`: no password, as perfpilot takes it.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{}@127.0.0.1:{}/{db}", Mariadb::USER, self.port)
    }

    /// Stops the server at once (SIGKILL, as a crash would), leaving its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, after [`Mariadb::kill`]) on the same port and waits until it
    /// answers (crash recovery included).
    pub fn restart(&mut self) {
        self.kill();
        let out =
            std::fs::File::create(self.dir.join("mariadbd.out")).expect("create mariadbd.out");
        let err = out.try_clone().expect("clone mariadbd.out");
        // Kept at once, so a start that fails the test is still killed on drop.
        self.child = Some(
            Command::new("/usr/sbin/mariadbd")
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect(
                    "start /usr/sbin/mariadbd (scripts/setup.sh --test installs mariadb-server)",
                ),
        );
        let log = || std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("mariadbd exited before answering ({status}): {}", log());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within 60 s: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .args(["-uroot", "-N", "-B"])
            .stdin(Stdio::null());
        command
    }

    fn answers(&self) -> bool {
        self.client()
            .args(["-e", "SELECT 1"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// Runs `sql` (one or more statements) as root over the private socket; returns the
    /// client's tab-separated output without headers.
    pub fn mysql(&self, sql: &str) -> String {
        let out = self
            .client()
            .args(["-e", sql])
            .output()
            .expect("run mariadb");
        assert!(
            out.status.success(),
            "mariadb {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
