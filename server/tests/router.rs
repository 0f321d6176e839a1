//! The router in-process (`tower::ServiceExt::oneshot`): health, readiness, 404 and the
//! asset headers, against a small site directory made for each test.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use server::config::{Cli, Settings};
use server::state::AppState;
use tower::ServiceExt;

/// A site directory, and this test's turn: the tests in this binary run one at a time.
/// With several routers rendering pages at once in one test process, a render now and
/// then never finishes (seen as a 408 after 30 s, whatever the SSR mode); `main` builds
/// one router, and 200 concurrent page loads against the real binary all complete.
struct Site(
    PathBuf,
    #[allow(dead_code)] std::sync::MutexGuard<'static, ()>,
);

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Site {
    /// A site like `scripts/build.sh` makes, with a wasm file large enough to compress.
    fn complete(name: &str) -> Site {
        let site = Site::empty(name);
        let pkg = site.0.join("pkg");
        let bundle = pkg.join("abc");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            bundle.join("perfpilot.js"),
            "export default function init() {}\n",
        )
        .unwrap();
        std::fs::write(
            bundle.join("__wasm_split.______________________.js"),
            "export {}\n",
        )
        .unwrap();
        // Every page needs a shared chunk and its own, as `splitter` writes them.
        let mut page_chunks = serde_json::Map::new();
        std::fs::write(bundle.join("shared.wasm"), b"\0asm\x01\0\0\0").unwrap();
        for (_, key) in app::PAGES {
            std::fs::write(bundle.join(format!("{key}.wasm")), b"\0asm\x01\0\0\0").unwrap();
            page_chunks.insert(
                key.into(),
                serde_json::json!(["shared.wasm", format!("{key}.wasm")]),
            );
        }
        std::fs::write(
            bundle.join("page_chunks.json"),
            serde_json::Value::Object(page_chunks).to_string(),
        )
        .unwrap();
        let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
            .iter()
            .copied()
            .chain((0..64 * 1024).map(|i| (i % 7) as u8))
            .collect();
        std::fs::write(bundle.join("perfpilot_bg.wasm"), wasm).unwrap();
        std::fs::write(pkg.join("perfpilot-def.css"), "body{}\n").unwrap();
        std::fs::write(
            site.0.join("favicon.svg"),
            "<svg xmlns='http://www.w3.org/2000/svg'/>",
        )
        .unwrap();
        std::fs::write(
            site.0.join("assets.json"),
            r#"{"bundle_dir":"abc","output_name":"perfpilot","stylesheet":"perfpilot-def.css"}"#,
        )
        .unwrap();
        site
    }

    fn empty(name: &str) -> Site {
        let dir =
            std::env::temp_dir().join(format!("perfpilot-router-{name}-{}", std::process::id()));
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Site(dir, turn)
    }

    fn router(&self) -> axum::Router {
        self.router_with(Cli::default())
    }

    /// The router with the given flags (the site root is this site's).
    fn router_with(&self, cli: Cli) -> axum::Router {
        self.router_and_monitor(cli).0
    }

    /// The router and the monitor behind it.
    fn router_and_monitor(&self, cli: Cli) -> (axum::Router, server::state::Monitor) {
        let cli = Cli {
            site_root: Some(self.0.clone()),
            ephemeral: true,
            ..cli
        };
        let settings = Settings::resolve(&cli).unwrap();
        let monitor = server::state::start(&settings).unwrap();
        let router = server::http::router::app(AppState::new(settings, monitor.clone()));
        (router, monitor)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn send(
    router: axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn healthz_answers_even_without_assets() {
    let site = Site::empty("healthz");
    let (status, _, body) = send(site.router(), get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"ok\n");
}

#[tokio::test]
async fn readyz_is_503_and_says_why_when_the_site_is_missing() {
    let site = Site::empty("readyz-missing");
    let (status, _, body) = send(site.router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("assets.json"), "{body}");
    assert!(body.contains("scripts/build.sh"), "{body}");
}

#[tokio::test]
async fn readyz_is_503_when_a_named_file_is_missing() {
    let site = Site::complete("readyz-partial");
    std::fs::remove_file(site.0.join("pkg/abc/perfpilot_bg.wasm")).unwrap();
    let (status, _, body) = send(site.router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("abc/perfpilot_bg.wasm"));
}

#[tokio::test]
async fn readyz_is_200_with_a_complete_site() {
    let site = Site::complete("readyz-ok");
    let (status, _, _) = send(site.router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_url_gets_the_styled_404_page() {
    let site = Site::complete("404");
    let (status, headers, body) = send(site.router(), get("/definitely/not/here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Page not found"), "{html:.400}");
    assert!(
        html.contains("/pkg/perfpilot-def.css"),
        "the 404 page is styled"
    );
}

#[tokio::test]
async fn home_page_links_the_hashed_bundle() {
    let site = Site::complete("home");
    let (status, _, body) = send(site.router(), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("/pkg/abc/perfpilot.js"), "{html:.600}");
    assert!(html.contains("/pkg/abc/perfpilot_bg.wasm"));
}

#[tokio::test]
async fn every_page_renders_and_preloads_its_own_chunks_only() {
    let site = Site::complete("preloads");
    for (path, key) in app::PAGES {
        // The resource page needs a resource.
        let url = if path == "/resource" {
            "/resource?id=cpu"
        } else {
            path
        };
        let (status, _, body) = send(site.router(), get(url)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let html = String::from_utf8(body).unwrap();
        for file in ["shared.wasm", &format!("{key}.wasm")] {
            let link = format!(
                "<link rel=\"preload\" href=\"/pkg/abc/{file}\" as=\"fetch\" \
                 type=\"application/wasm\" crossorigin=\"anonymous\">"
            );
            assert!(html.contains(&link), "{path}: {link} in {html:.2000}");
        }
        assert!(html.contains(
            "<link rel=\"modulepreload\" href=\"/pkg/abc/__wasm_split.______________________.js\">"
        ));
        for (_, other) in app::PAGES.iter().filter(|(_, other)| *other != key) {
            assert!(
                !html.contains(&format!("{other}.wasm")),
                "{path} preloads {other}"
            );
        }
    }
    let (status, _, body) = send(site.router(), get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8(body).unwrap().contains("shared.wasm"));
}

#[tokio::test]
async fn a_page_chunk_named_by_the_bundle_but_missing_makes_readyz_fail() {
    let site = Site::complete("readyz-chunk");
    std::fs::remove_file(site.0.join("pkg/abc/changes_route.wasm")).unwrap();
    let (status, _, body) = send(site.router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("abc/changes_route.wasm"));
}

#[tokio::test]
async fn wasm_is_served_compressed_and_cacheable_forever() {
    let site = Site::complete("wasm");
    for encoding in ["br", "gzip"] {
        let request = Request::get("/pkg/abc/perfpilot_bg.wasm")
            .header(header::ACCEPT_ENCODING, encoding)
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(site.router(), request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(headers[header::CONTENT_ENCODING], encoding);
        assert!(
            body.len() < 64 * 1024 / 4,
            "{encoding}: {} bytes",
            body.len()
        );
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
}

#[tokio::test]
async fn missing_pkg_file_is_404_not_the_app() {
    let site = Site::complete("pkg404");
    let (status, headers, _) = send(site.router(), get("/pkg/nope.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "no-store",
        "a missing file is not cached forever"
    );
}

#[tokio::test]
async fn favicon_is_served() {
    let site = Site::complete("favicon");
    let (status, headers, _) = send(site.router(), get("/favicon.svg")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    let (status, headers, _) = send(site.router(), get("/favicon.ico")).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/favicon.svg");
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let site = Site::complete("413");
    let request = Request::post("/api/anything")
        .header(header::CONTENT_LENGTH, 2 * 1024 * 1024)
        .body(Body::from(vec![b'x'; 2 * 1024 * 1024]))
        .unwrap();
    let (status, _, _) = send(site.router(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn precompressed_bundle_is_preferred_over_compressing_per_request() {
    let site = Site::complete("precompressed");
    let brotli_bytes = b"pretend brotli stream".to_vec();
    std::fs::write(site.0.join("pkg/abc/perfpilot_bg.wasm.br"), &brotli_bytes).unwrap();
    let request = Request::get("/pkg/abc/perfpilot_bg.wasm")
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(site.router(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert_eq!(body, brotli_bytes, "served as built, not compressed again");
}

#[tokio::test]
async fn cross_origin_posts_and_websocket_upgrades_get_403_and_change_nothing() {
    let site = Site::complete("origin");
    let router = site.router();
    let request = Request::post("/api/set_target")
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("resource=cpu&metric=utilization&value=10"))
        .unwrap();
    let (status, _, body) = send(router.clone(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let refusal: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(refusal["field"], "origin");
    assert_eq!(
        refusal["error"],
        "origin: requests from http://evil.example may not change this perfpilot at 127.0.0.1:3000"
    );
    let upgrade = Request::get("/ws/live")
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(router.clone(), upgrade).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The same edit from the page's own origin is accepted.
    let request = Request::post("/api/set_target")
        .extension(loopback())
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from("resource=cpu&metric=utilization&value=10"))
        .unwrap();
    let (status, _, body) = send(router, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8(body).unwrap().contains("\"change\":1"));
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let site = Site::complete("headers");
    let (_, headers, _) = send(site.router(), get("/")).await;
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let (_, headers, _) = send(site.router(), get("/healthz")).await;
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    );
}

/// The `'nonce-…'` value a page's Content-Security-Policy allows.
fn csp_nonce(policy: &str) -> String {
    let start = policy.find("'nonce-").expect("the policy names a nonce") + "'nonce-".len();
    let end = start + policy[start..].find('\'').unwrap();
    policy[start..end].to_owned()
}

#[tokio::test]
async fn pages_get_a_nonce_policy_that_differs_per_response_and_signs_every_inline_script() {
    let site = Site::complete("csp");
    let router = site.router();
    let mut nonces = Vec::new();
    for path in ["/", "/", "/changes", "/no/such/page"] {
        let (_, headers, body) = send(router.clone(), get(path)).await;
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "'wasm-unsafe-eval'",
            "style-src 'self';",
            "connect-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let nonce = csp_nonce(policy);
        assert!(nonce.len() >= 16, "{nonce}");
        let html = String::from_utf8(body).unwrap();
        // Every inline script carries this response's nonce; none goes without.
        let scripts = html.matches("<script").count();
        let signed = html.matches(&format!("<script nonce=\"{nonce}\"")).count()
            + html
                .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                .count();
        assert!(scripts >= 2, "{path}: the theme boot and hydration scripts");
        assert_eq!(scripts, signed, "{path}: unsigned scripts in {html}");
        assert!(
            !html.contains(" style=\""),
            "{path}: inline style attribute"
        );
        nonces.push(nonce);
    }
    let mut unique = nonces.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        nonces.len(),
        "one nonce per response: {nonces:?}"
    );
}

fn sub_path_cli() -> Cli {
    Cli {
        public_url: Some("https://ops.example.com/perf/".into()),
        ..Cli::default()
    }
}

#[tokio::test]
async fn under_a_public_url_everything_lives_below_its_path() {
    let site = Site::complete("subpath");
    let router = site.router_with(sub_path_cli());

    let (status, _, body) = send(router.clone(), get("/perf/")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    for link in [
        "href=\"/perf/pkg/perfpilot-def.css\"",
        "href=\"/perf/favicon.svg\"",
        "/perf/pkg/abc/perfpilot.js",
        "/perf/pkg/abc/perfpilot_bg.wasm",
        "href=\"/perf/pkg/abc/overview_route.wasm\"",
        "href=\"/perf/pkg/abc/__wasm_split.______________________.js\"",
        "href=\"/perf/before-after\"",
        "href=\"/perf/changes\"",
        "<meta name=\"perfpilot-base\" content=\"/perf\"",
    ] {
        assert!(html.contains(link), "{link} in {html:.3000}");
    }
    // The hydration script is told the root so it imports from /perf/pkg.
    assert!(html.contains("(\"/perf\", \"pkg/abc\""), "{html:.3000}");
    assert!(
        !html.contains("href=\"/pkg/"),
        "no root-relative asset links"
    );

    let (status, _, body) = send(router.clone(), get("/perf/changes")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("<h1>Changes</h1>"));

    let (status, _, _) = send(router.clone(), get("/perf/pkg/abc/perfpilot_bg.wasm")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = send(router.clone(), get("/perf/favicon.ico")).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/perf/favicon.svg");
    let (status, headers, _) = send(router.clone(), get("/perf")).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/perf/");

    // Health at the base for users of the proxy, and at the root for probes.
    for path in ["/perf/healthz", "/healthz"] {
        let (status, _, body) = send(router.clone(), get(path)).await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, &b"ok\n"[..]),
            "{path}"
        );
    }
    for path in ["/perf/readyz", "/readyz"] {
        let (status, _, _) = send(router.clone(), get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // Unknown pages under the base get the app's 404 page; outside it, a plain 404.
    let (status, _, body) = send(router.clone(), get("/perf/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(body).unwrap().contains("Page not found"));
    for path in ["/", "/changes", "/pkg/abc/perfpilot.js", "/perfx/"] {
        let (status, _, body) = send(router.clone(), get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "not found: perfpilot is served under /perf/\n"
        );
    }

    // Server functions and exports answer under the base.
    let edit = Request::post("/perf/api/set_target")
        .extension(loopback())
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, "https://ops.example.com")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from("resource=cpu&metric=utilization&value=10"))
        .unwrap();
    let (status, _, body) = send(router.clone(), edit).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8(body).unwrap().contains("\"change\":1"));
    let (status, headers, _) = send(
        router.clone(),
        get("/perf/api/export/cpu/utilization.csv?range=5m"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
}

#[tokio::test]
async fn without_a_public_url_the_root_paths_are_unchanged() {
    let site = Site::complete("root-paths");
    let (status, _, body) = send(site.router(), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("href=\"/pkg/perfpilot-def.css\""));
    assert!(html.contains("<meta name=\"perfpilot-base\" content=\"\""));
    assert!(html.contains("href=\"/changes\""));
    let (status, _, _) = send(site.router(), get("/perf/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The peer `main` would record for a client on this machine: the interim identity layer
/// makes it an admin, as it does for a local browser.
fn loopback() -> ConnectInfo<SocketAddr> {
    ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000)))
}

fn cross_origin_edit(path: &str, host: &str, origin: &str) -> Request<Body> {
    Request::post(path)
        .extension(loopback())
        .header(header::HOST, host)
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from("resource=cpu&metric=utilization&value=10"))
        .unwrap()
}

fn upgrade(path: &str, host: &str, origin: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, host)
        .header(header::ORIGIN, origin)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn with_a_public_url_only_its_origin_may_post_or_open_websockets() {
    let site = Site::complete("origin-public");
    let router = site.router_with(sub_path_cli());
    // The proxy forwards its own upstream Host; the browser's Origin is the public one.
    let host = "127.0.0.1:3000";
    for origin in [
        "http://127.0.0.1:3000",
        "http://ops.example.com",
        "https://ops.example.com:8443",
        "https://evil.example",
    ] {
        let (status, _, body) = send(
            router.clone(),
            cross_origin_edit("/perf/api/set_target", host, origin),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
        let refusal: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            refusal["error"],
            format!(
                "origin: requests from {origin} may not change this perfpilot at https://ops.example.com"
            )
        );
        let (status, _, _) = send(router.clone(), upgrade("/perf/ws/live", host, origin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
    }
    // A Host-matching origin is not enough, and the public origin passes whatever Host.
    let (status, _, body) = send(
        router.clone(),
        cross_origin_edit(
            "/perf/api/set_target",
            "evil.example",
            "https://ops.example.com",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = send(
        router.clone(),
        upgrade("/perf/ws/live", host, "https://ops.example.com"),
    )
    .await;
    assert_ne!(
        status,
        StatusCode::FORBIDDEN,
        "the public origin may upgrade"
    );
}

#[tokio::test]
async fn without_a_public_url_cross_origin_upgrades_and_posts_compare_with_host() {
    let site = Site::complete("origin-host");
    let router = site.router();
    let host = "127.0.0.1:3000";
    let (status, _, _) = send(
        router.clone(),
        cross_origin_edit("/api/add_mark", host, "http://127.0.0.1:3001"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        router.clone(),
        upgrade("/ws/live", host, "https://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        router.clone(),
        upgrade("/ws/live", host, "http://127.0.0.1:3000"),
    )
    .await;
    assert_ne!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn state_changing_endpoints_refuse_get() {
    let site = Site::complete("post-only");
    let router = site.router();
    let before = send(router.clone(), get("/api/changes")).await.0;
    for path in [
        "/api/set_target?resource=cpu&metric=utilization&value=10",
        "/api/add_mark?resource=cpu&label=x",
        "/api/restore_snapshot?id=1",
        "/api/push",
    ] {
        let (status, _, _) = send(router.clone(), get(path)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    assert_eq!(
        before,
        StatusCode::METHOD_NOT_ALLOWED,
        "read-only POST functions too"
    );
    // Nothing was changed by any of them.
    let request = Request::post("/api/changes")
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(router, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8(body).unwrap().contains("\"change\":0"));
}

#[tokio::test]
async fn mutations_over_the_rate_get_429_with_retry_after() {
    let site = Site::complete("rate");
    let router = site.router_with(Cli {
        mutation_rate: Some(1),
        mutation_burst: Some(3),
        ..Cli::default()
    });
    let edit = || cross_origin_edit("/api/set_target", "127.0.0.1:3000", "http://127.0.0.1:3000");
    for i in 0..3 {
        let (status, _, body) = send(router.clone(), edit()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "edit {i}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, headers, body) = send(router.clone(), edit()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("too many requests from 127.0.0.1: at most 1 per second with bursts of 3"),
        "{body}"
    );
    // Reads of pages and assets are not limited.
    let (status, _, _) = send(router, get("/")).await;
    assert_eq!(status, StatusCode::OK);
}

/// A panic in the monitor task (say, a bug in an analysis) stops live data, statuses and
/// actions; `/readyz` must say so instead of staying ready.
#[tokio::test]
async fn readyz_follows_the_monitor_task_and_says_when_it_died() {
    let site = Site::complete("readyz-monitor");
    let (router, monitor) = site.router_and_monitor(Cli::default());
    let (status, _, _) = send(router.clone(), get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    monitor.crash_for_test();
    for _ in 0..100 {
        let (status, _, body) = send(router.clone(), get("/readyz")).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("the monitor task has stopped"), "{body}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("/readyz still answers ready after the monitor task died");
}

/// A refused server function answers the app's JSON error with its real status, not 500
/// or a `ServerError|…` string.
#[tokio::test]
async fn a_refused_server_function_answers_json_with_its_status() {
    let site = Site::complete("refusal");
    let router = site.router();
    let request = Request::post("/api/set_target")
        .extension(loopback())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from("resource=cpu&metric=utilization&value=lots"))
        .unwrap();
    let (status, _, body) = send(router.clone(), request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with('{'), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], 422);
    assert_eq!(json["field"], "target.value");
    assert_eq!(
        json["error"],
        r#"target.value: must be a number, got "lots""#
    );
    // An argument that cannot be decoded at all is the client's mistake: 400.
    let request = Request::post("/api/set_target")
        .extension(loopback())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("resource=cpu"))
        .unwrap();
    let (status, _, body) = send(router, request).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// Free text with characters nobody can see is refused where it comes in, naming the field
/// and the rule: a mark's label of NUL bytes (it would reach the audit log and the
/// report's CSV and HTML raw), a silence's comment with a NUL or a bidirectional override.
#[tokio::test]
async fn control_characters_in_free_text_are_refused_naming_the_field() {
    let site = Site::complete("free-text");
    let router = site.router();
    let mark = |label: &str| {
        Request::post("/api/add_mark")
            .extension(loopback())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(format!("resource=cpu&label={label}")))
            .unwrap()
    };
    for label in ["%00%00%00", "deploy%1B%5B2J", "v2%E2%80%AEexe.txt"] {
        let (status, _, body) = send(router.clone(), mark(label)).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{label}: {text}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["field"], "label", "{json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("label: must not contain control characters"),
            "{json}"
        );
    }

    let silence = |comment: &str| {
        Request::post("/api/v1/silences")
            .extension(loopback())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({ "matcher": "cpu", "duration": "1h", "comment": comment })
                    .to_string(),
            ))
            .unwrap()
    };
    for comment in ["planned\0maintenance", "ok\u{202E}gnp", "bell\u{7}"] {
        let (status, _, body) = send(router.clone(), silence(comment)).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{comment:?}: {text}"
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["field"], "comment", "{json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("comment: must not contain control characters"),
            "{json}"
        );
    }
    // The same request with readable text is taken; a comment may have several lines.
    let (status, _, body) = send(router, silence("planned\nmaintenance")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

fn json_edit(body: &str) -> Request<Body> {
    Request::post("/api/v1/resources/cpu/target")
        .extension(loopback())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Two scripts at once, one moving the target's value and one its `for`: every round both
/// edits survive, because each is decided under the engine's lock against the current
/// target (before, the API read the target first and submitted a whole one, so one edit
/// could overwrite the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_partial_target_edits_through_the_json_api_both_survive() {
    let site = Site::complete("partial-edits");
    let (router, monitor) = site.router_and_monitor(Cli::default());
    for round in 1..=40u32 {
        let value = json_edit(&format!(
            r#"{{"metric":"utilization","value":{}}}"#,
            round + 10
        ));
        let hold = json_edit(&format!(r#"{{"metric":"utilization","for_secs":{round}}}"#));
        let (a, b) = tokio::join!(send(router.clone(), value), send(router.clone(), hold));
        assert_eq!(a.0, StatusCode::OK, "{}", String::from_utf8_lossy(&a.2));
        assert_eq!(b.0, StatusCode::OK, "{}", String::from_utf8_lossy(&b.2));
        let state = monitor.store.state();
        let target = state.resources["cpu"].target.clone().unwrap();
        assert_eq!(
            (target.value, target.for_secs),
            (f64::from(round + 10), round),
            "round {round}: an edit was lost"
        );
    }
    // The API's refusals use the one error shape.
    let (status, _, body) = send(router.clone(), json_edit(r#"{"metric":"utilization""#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["field"], "body");
    let (status, _, body) = send(router, json_edit(r#"{"metric":"utilization","value":-5}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["field"], "target.value", "{json}");
}
