//! perfpilot behind Debian's real nginx under a sub-path, driven by real headless
//! Chromium: the documented `docs/nginx.conf` (with a loopback listener and fixed identity
//! headers) in front of the real binary started with `--public-url …/perf/`. Every request
//! the browser makes through nginx must stay under `/perf/` and succeed.
//!
//! `scripts/setup.sh --test` installs nginx; `NGINX` overrides `/usr/sbin/nginx`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use tests::{
    click, eventually_text, free_port, http_get, input_value, text_of, wait_for, Browser,
    Perfpilot, TempDir,
};

/// nginx in the foreground with everything it writes inside `dir`; killed on drop.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    /// `docs/nginx.conf` made runnable unprivileged: plain HTTP on `port`, the upstream at
    /// `upstream`, and the identity an SSO layer would have established.
    fn start(port: u16, upstream: SocketAddr) -> Nginx {
        let bin = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
        assert!(
            Path::new(&bin).is_file(),
            "nginx not found at {bin}: scripts/setup.sh --test installs it"
        );
        let documented =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/nginx.conf"))
                .expect("read docs/nginx.conf");
        let mut server = documented;
        for (from, to) in [
            ("listen 443 ssl;", format!("listen 127.0.0.1:{port};")),
            ("server 127.0.0.1:3000;", format!("server {upstream};")),
            (
                "proxy_set_header Remote-User   \"\";",
                "proxy_set_header Remote-User   alice;".to_owned(),
            ),
            (
                "proxy_set_header Remote-Groups \"\";",
                "proxy_set_header Remote-Groups perf-editors;".to_owned(),
            ),
            // nginx talks to perfpilot from 127.0.0.2, the only trusted proxy, so the test
            // itself (127.0.0.1) can show that identity headers from elsewhere are ignored.
            (
                "proxy_set_header Remote-User   alice;",
                "proxy_set_header Remote-User   alice;\n        proxy_bind 127.0.0.2;".to_owned(),
            ),
        ] {
            assert!(server.contains(from), "docs/nginx.conf has `{from}`");
            server = server.replace(from, &to);
        }
        let dir = TempDir::new("perfpilot-nginx");
        let d = dir.0.display();
        let conf = format!(
            "worker_processes 1;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             log_format requests '$status $request_method $request_uri \"$http_user_agent\"';\n\
             access_log {d}/requests.log requests;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {server}\n}}\n"
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new(&bin)
            .arg("-p")
            .arg(&dir.0)
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            // One process: no privileged master handing sockets to `nobody` workers.
            .arg("-g")
            .arg(format!(
                "daemon off; master_process off; pid {}/nginx.pid;",
                dir.0.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {bin}: {err}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("nginx exited ({status}) before listening: {err}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { addr, child, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("access.log")).unwrap_or_default()
    }

    /// Every request nginx has answered so far (a websocket once it closed).
    fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(self.dir.0.join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let mut next = || parts.next().unwrap_or_default().to_owned();
                let (status, method, uri, agent) = (next(), next(), next(), next());
                Request {
                    status: status.parse().unwrap_or(0),
                    method,
                    path: uri.split('?').next().unwrap_or_default().to_owned(),
                    uri,
                    agent: agent.trim_matches('"').to_owned(),
                }
            })
            .collect()
    }
}

/// One line of the test's `requests.log`.
#[derive(Debug)]
struct Request {
    status: u16,
    method: String,
    path: String,
    uri: String,
    agent: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn cards_updated_at(client: &Client) -> i64 {
    match client.find(Locator::Css(".cards")).await {
        Ok(cards) => cards
            .attr("data-updated")
            .await
            .unwrap()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

/// CSP violations the page has reported so far. Chromium queues `csp-violation` reports
/// from the start of the document, and a buffered `ReportingObserver` receives them.
async fn csp_violations(client: &Client) -> Vec<String> {
    let reports = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const seen = [];
             const note = (reports) => reports.forEach(r => seen.push(
               r.body.effectiveDirective + ' blocked ' + (r.body.blockedURL || 'inline')
               + ' at ' + r.body.sourceFile + ':' + r.body.lineNumber));
             const observer = new ReportingObserver(note,
               { types: ['csp-violation'], buffered: true });
             observer.observe();
             setTimeout(() => { note(observer.takeRecords()); observer.disconnect(); done(seen); }, 500);",
            vec![],
        )
        .await
        .expect("read CSP reports");
    reports
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 175 lines today; split before it grows
async fn through_nginx_under_a_sub_path_the_app_hydrates_goes_live_navigates_and_edits() {
    let nginx_port = free_port();
    let public_url = format!("http://127.0.0.1:{nginx_port}/perf/");
    let server = Perfpilot::start(&[
        "--public-url",
        &public_url,
        "--auth",
        "proxy",
        "--trusted-proxies",
        "127.0.0.2/32",
        "--editor-groups",
        "perf-editors",
    ]);
    let nginx = Nginx::start(nginx_port, server.addr);

    // Probes at the base through the proxy; the root is not perfpilot's any more.
    let (status, response) = http_get(nginx.addr, "/perf/healthz");
    assert_eq!(status, 200, "{response}");
    let (status, _) = http_get(nginx.addr, "/perf/readyz");
    assert_eq!(status, 200);
    let (status, _) = http_get(nginx.addr, "/pkg/anything.js");
    assert_eq!(status, 404);

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&nginx.url("/perf/")).await.unwrap();
    browser.wait_for_hydration().await;
    assert_eq!(path_of(client).await, "/perf/");

    // Live values arrive over the websocket through nginx.
    let first = cards_updated_at(client).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while cards_updated_at(client).await <= first {
        assert!(Instant::now() < deadline, "no live update through nginx");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The page ran under its Content-Security-Policy without a single violation.
    let violations = csp_violations(client).await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");

    // Client-side navigation keeps the prefix, both ways.
    click(client, Locator::LinkText("Changes")).await;
    wait_for(client, Locator::XPath("//h1[text()='Changes']")).await;
    assert_eq!(path_of(client).await, "/perf/changes");
    for (link, path, heading) in [
        ("Before / after", "/perf/before-after", "Before / after"),
        ("Settings", "/perf/settings", "Settings"),
    ] {
        click(client, Locator::LinkText(link)).await;
        wait_for(client, Locator::XPath(&format!("//h1[text()='{heading}']"))).await;
        assert_eq!(path_of(client).await, path);
    }
    click(client, Locator::LinkText("Overview")).await;
    wait_for(client, Locator::Css("article.card[data-resource='cpu']")).await;
    assert_eq!(path_of(client).await, "/perf/");

    // A card's link leads to its resource page under the prefix; an edit there is a
    // server-function POST through nginx, from the public origin.
    client
        .find(Locator::Css(
            "article.card[data-resource='cpu'] .card-title a",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(client, Locator::Id("target-value")).await;
    assert_eq!(path_of(client).await, "/perf/resource");
    browser.wait_for_hydration().await;
    assert_eq!(input_value(client, "#target-value").await, "65");
    let field = client.find(Locator::Id("target-value")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("70").await.unwrap();
    click(client, Locator::Id("target-save")).await;
    let notice = eventually_text(client, "#target-notice", "the save notice", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(notice, "Saved as change #1.");
    let access = nginx.access_log();
    assert!(
        access.contains("\"POST /perf/api/set_target HTTP/1.1\" 200"),
        "the edit went through nginx: {access}"
    );
    // The edit is alice's: nginx injected her identity and perfpilot trusted it because
    // the TCP peer was the allow-listed proxy; the client IP is the browser's, from
    // X-Forwarded-For.
    let (status, audit) = http_get(nginx.addr, "/perf/api/audit?kind=set_target");
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit.contains("\"change\":1")
            && audit.contains("\"user\":\"alice\"")
            && audit.contains("\"role\":\"editor\"")
            && audit.contains("\"source\":\"proxy\"")
            && audit.contains("\"client_ip\":\"127.0.0.1\""),
        "change #1 is attributed to alice: {audit}"
    );
    assert!(
        text_of(client, "#whoami").await.contains("alice"),
        "the top bar says who is signed in"
    );
    // The same headers sent straight to perfpilot, bypassing nginx, are ignored.
    let body = r#"{"metric":"utilization","value":71}"#;
    let (status, forged) = tests::http_raw(
        server.addr,
        &format!(
            "POST /perf/api/v1/resources/cpu/target HTTP/1.0\r\nHost: {}\r\n\
             Remote-User: alice\r\nRemote-Groups: perf-editors\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            server.addr,
            body.len()
        ),
    );
    assert_eq!(
        status, 403,
        "forged identity headers are not trusted: {forged}"
    );
    assert!(forged.contains("you are anonymous (viewer)"), "{forged}");

    // The export links are under the prefix too, and answer through nginx.
    let csv = client
        .find(Locator::LinkText("CSV"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        csv.starts_with("/perf/api/export/cpu/utilization.csv"),
        "{csv}"
    );
    let (status, response) = http_get(nginx.addr, &csv);
    assert_eq!(status, 200, "{response:.300}");

    // Still no CSP violation after navigating, charting and saving; and the policy is
    // really enforced: an inline script without the nonce is refused and reported.
    let violations = csp_violations(client).await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    let ran = client
        .execute(
            "const s = document.createElement('script');
             s.textContent = 'window.__unsigned = true';
             document.head.appendChild(s);
             return window.__unsigned === true;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        ran,
        serde_json::Value::Bool(false),
        "an unsigned inline script ran"
    );
    let violations = csp_violations(client).await;
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("script-src-elem blocked inline")),
        "the refused script is reported: {violations:?}"
    );
    browser.screenshot("nginx-resource.png").await;
    browser.close().await;

    // nginx logs a websocket when it closes: the live socket went through it, upgraded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nginx
        .access_log()
        .contains("\"GET /perf/ws/live HTTP/1.1\" 101")
    {
        assert!(
            Instant::now() < deadline,
            "the websocket went through nginx: {}",
            nginx.access_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything the browser fetched while it hydrated, went live, navigated and saved
    // (and every request of the test's own through nginx) stayed under /perf/ and
    // succeeded: a root-absolute URL in the HTML, the stylesheet or the wasm shows up here
    // as a request outside the prefix, which nginx answers with 404. The one exception is
    // the probe above that shows the root is not perfpilot's.
    let requests = nginx.requests();
    assert!(
        requests.iter().any(|r| r.agent.contains("Chrome")),
        "the browser's requests are logged: {requests:#?}"
    );
    let stray: Vec<&Request> = requests
        .iter()
        .filter(|r| !(r.status == 404 && r.method == "GET" && r.uri == "/pkg/anything.js"))
        .filter(|r| !r.path.starts_with("/perf/") || r.status >= 400)
        .collect();
    assert!(
        stray.is_empty(),
        "requests outside /perf/ or failed through nginx: {stray:#?}"
    );
    // The stylesheet's own url() too: the brand mark's image loads under the prefix.
    assert!(
        requests.iter().any(|r| r.path == "/perf/favicon.svg"
            && r.status == 200
            && r.agent.contains("Chrome")),
        "the brand mark's image is fetched under the prefix: {requests:#?}"
    );
}
