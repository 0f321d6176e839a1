//! Headless Chromium through chromedriver and fantoccini: [`Browser`] (the session, its
//! profile, Chrome DevTools commands, screenshots) and page helpers (clicks, waits, text,
//! sideways overflow).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::fs::{artefact_dir, TempDir};
use crate::sys::{free_port, wait_for_port};

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

    /// Lays pages out as a `width` × `height` viewport (`mobile`: a phone's, with its
    /// meta viewport honoured), as Chromium's device toolbar does.
    pub async fn emulate_viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile
            }),
        )
        .await;
    }

    /// Screenshots of `css`'s element, scrolled to the middle, at a desktop's and a phone's
    /// width in both themes: `<name>-{1280,390}-{light,dark}.png`, for a person to look at.
    pub async fn screenshots_of(&self, css: &str, name: &str) {
        for (width, mobile) in [(1280u32, false), (390, true)] {
            self.emulate_viewport(width, 900, mobile).await;
            for theme in ["light", "dark"] {
                self.emulate_color_scheme(theme).await;
                self.client
                    .execute(
                        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
                        vec![css.into()],
                    )
                    .await
                    .expect("scroll to the element");
                // A chart redraws on a theme change.
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.screenshot(&format!("{name}-{width}-{theme}.png"))
                    .await;
            }
        }
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
