//! The router in-process (`tower::ServiceExt::oneshot`): health, readiness, 404 and the
//! asset headers, against a small site directory made for each test.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use server::config::{Cli, Settings};
use server::state::AppState;
use tower::ServiceExt;

struct Site(PathBuf);

impl Site {
    /// A site like `scripts/build.sh` makes, with a wasm file large enough to compress.
    fn complete(name: &str) -> Site {
        let site = Site::empty(name);
        let pkg = site.0.join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(
            pkg.join("perfpilot-abc.js"),
            "export default function init() {}\n",
        )
        .unwrap();
        let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
            .iter()
            .copied()
            .chain((0..64 * 1024).map(|i| (i % 7) as u8))
            .collect();
        std::fs::write(pkg.join("perfpilot-abc_bg.wasm"), wasm).unwrap();
        std::fs::write(pkg.join("perfpilot-def.css"), "body{}\n").unwrap();
        std::fs::write(
            site.0.join("favicon.svg"),
            "<svg xmlns='http://www.w3.org/2000/svg'/>",
        )
        .unwrap();
        std::fs::write(
            site.0.join("assets.json"),
            r#"{"output_name":"perfpilot-abc","stylesheet":"perfpilot-def.css"}"#,
        )
        .unwrap();
        site
    }

    fn empty(name: &str) -> Site {
        let dir =
            std::env::temp_dir().join(format!("perfpilot-router-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Site(dir)
    }

    fn router(&self) -> axum::Router {
        let cli = Cli {
            site_root: Some(self.0.clone()),
            ephemeral: true,
            ..Cli::default()
        };
        let settings = Settings::resolve(&cli).unwrap();
        let monitor = server::monitor::start(&settings).unwrap();
        server::router::app(AppState::new(settings, monitor))
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
    std::fs::remove_file(site.0.join("pkg/perfpilot-abc_bg.wasm")).unwrap();
    let (status, _, body) = send(site.router(), get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("perfpilot-abc_bg.wasm"));
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
    assert!(html.contains("/pkg/perfpilot-abc.js"), "{html:.600}");
    assert!(html.contains("/pkg/perfpilot-abc_bg.wasm"));
}

#[tokio::test]
async fn wasm_is_served_compressed_and_cacheable_forever() {
    let site = Site::complete("wasm");
    for encoding in ["br", "gzip"] {
        let request = Request::get("/pkg/perfpilot-abc_bg.wasm")
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
    let (status, _, _) = send(site.router(), get("/pkg/nope.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
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
    std::fs::write(site.0.join("pkg/perfpilot-abc_bg.wasm.br"), &brotli_bytes).unwrap();
    let request = Request::get("/pkg/perfpilot-abc_bg.wasm")
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
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "origin: requests from http://evil.example may not change this perfpilot at 127.0.0.1:3000\n"
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
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "frame-ancestors 'none'"
    );
}
