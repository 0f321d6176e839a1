//! Cross-site protection for a self-hosted app that has no sessions yet: a browser always
//! sends `Origin` on cross-origin POSTs and websocket upgrades, so a request whose
//! `Origin` names another site than perfpilot's own is refused with 403 before it can
//! change anything (Leptos server functions have no CSRF protection of their own,
//! leptos#3786). "Own" is the origin of `--public-url` when one is configured (behind a
//! proxy the `Host` that reaches us may be rewritten, and the public URL is what users
//! open — Grafana Live does the same, OWASP ASVS 4.4.2), else the `Host` the request was
//! sent to. Requests without `Origin` come from non-browser clients (curl, scripts,
//! Prometheus) and cannot carry a victim's browser credentials, so they pass.
//!
//! Also adds the security headers every response should carry; HTML pages get their
//! nonce-bearing Content-Security-Policy from the shell, everything else the strict one
//! here.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// This response's CSP nonce, chosen by [`page_policy`] and handed to the Leptos render
/// (which signs its inline scripts with it) through the request's extensions.
#[derive(Clone, Debug)]
pub struct CspNonce(pub Arc<str>);

/// The policy of every HTML page. Scripts: the bundle from this origin, plus the inline
/// theme boot and hydration scripts that carry this response's nonce; the wasm needs
/// `'wasm-unsafe-eval'`. No page uses inline `style` attributes or `<style>` (the charts
/// draw on canvas, sparklines are SVG with classes), so styles come from the stylesheet
/// only. `connect-src 'self'` covers server functions and the websocket: browsers match
/// `ws:`/`wss:` to the page's own origin under `'self'`.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Picks a fresh nonce for every request and, when the answer is an HTML page, sends the
/// policy that allows exactly the inline scripts signed with it (unless the handler set a
/// policy of its own: a report is an inert document with inline styles). The nonce is made here,
/// not read back from the render, so the header never depends on how Leptos streams.
pub async fn page_policy(mut request: Request, next: Next) -> Response {
    let nonce: Arc<str> = leptos::nonce::Nonce::new().as_inner().clone();
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html
        && !response
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY)
    {
        if let Ok(policy) = HeaderValue::from_str(&page_csp(&nonce)) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
    response
}

/// What the guard compares `Origin` with.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// `scheme://host[:port]` of `--public-url`, lower case, default port left out.
    public_origin: Option<Arc<str>>,
}

impl Guard {
    pub fn new(public_origin: Option<&str>) -> Guard {
        Guard {
            public_origin: public_origin.map(Arc::from),
        }
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
fn same_site(origin: &str, host: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    authority.eq_ignore_ascii_case(host)
}

/// Whether `origin` is the public URL's origin. Browsers serialize `Origin` in lower case
/// without the default port, as [`crate::config::PublicUrl`] stores it; a stray `:443`
/// or `:80` is tolerated all the same.
fn same_origin(origin: &str, public: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    let trimmed = match origin.split_once("://") {
        Some(("https", rest)) => rest.strip_suffix(":443").map(|r| format!("https://{r}")),
        Some(("http", rest)) => rest.strip_suffix(":80").map(|r| format!("http://{r}")),
        _ => None,
    };
    trimmed.as_deref().unwrap_or(&origin) == public
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

pub async fn origin_and_headers(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Response {
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
            let (allowed, own) = match &guard.public_origin {
                Some(public) => (same_origin(origin, public), public.to_string()),
                None => (same_site(origin, host), host.to_owned()),
            };
            if !allowed {
                tracing::warn!(%origin, %own, path = %request.uri().path(), "Refused a cross-origin request");
                return (
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin: requests from {origin} may not change this perfpilot at {own}\n"
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
        // Not a page (assets, JSON, SVG exports, errors): nothing in it may run.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{same_origin, same_site};

    #[test]
    fn same_site_compares_the_authority_exactly() {
        assert!(same_site("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(same_site("https://Ops.Example.com", "ops.example.com"));
        assert!(!same_site("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!same_site("http://evil.example", "ops.example.com"));
        assert!(!same_site("null", "ops.example.com"));
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        let public = "https://ops.example.com";
        assert!(same_origin("https://ops.example.com", public));
        assert!(same_origin("https://OPS.example.com:443", public));
        assert!(!same_origin("http://ops.example.com", public));
        assert!(!same_origin("https://ops.example.com:8443", public));
        assert!(!same_origin("https://ops.example.com.evil.example", public));
        assert!(!same_origin("null", public));
        assert!(same_origin(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080"
        ));
    }
}
