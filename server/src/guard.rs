//! Cross-site protection for a self-hosted app that has no sessions yet: a browser always
//! sends `Origin` on cross-origin POSTs and websocket upgrades, so a request whose
//! `Origin` names another site than the one it was sent to is refused with 403 before it
//! can change anything (Leptos server functions have no CSRF protection of their own,
//! leptos#3786). Requests without `Origin` come from non-browser clients (curl, scripts,
//! Prometheus) and cannot carry a victim's browser credentials, so they pass. Also adds
//! the security headers every response should carry.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
fn same_site(origin: &str, host: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    authority.eq_ignore_ascii_case(host)
}

fn needs_origin_check(request: &Request) -> bool {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    upgrade || mutating
}

pub async fn origin_and_headers(request: Request, next: Next) -> Response {
    if needs_origin_check(&request) {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(origin) = origin {
            if !same_site(origin, host) {
                tracing::warn!(%origin, %host, path = %request.uri().path(), "Refused a cross-origin request");
                return (
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin: requests from {origin} may not change this perfpilot at {host}\n"
                    ),
                )
                    .into_response();
            }
        }
    }
    let mut response: Response<Body> = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::same_site;

    #[test]
    fn same_site_compares_the_authority_exactly() {
        assert!(same_site("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(same_site("https://Ops.Example.com", "ops.example.com"));
        assert!(!same_site("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!same_site("http://evil.example", "ops.example.com"));
        assert!(!same_site("null", "ops.example.com"));
    }
}
