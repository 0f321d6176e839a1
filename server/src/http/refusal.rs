//! Every refusal of a JSON route is the documented JSON body (`{"error": …}`, see
//! [`super::error`]), whoever refuses: a handler, an extractor (a path segment that is not
//! UTF-8), the router (404, 405), a limit layer (413), the timeout layer (408), and hyper
//! itself before any of those runs (a URL over 64 KiB, a request head it cannot read).
//!
//! Handlers answer with [`super::error::ApiError`]; this module catches the rest at the two
//! places they come from: a middleware for what the router and its layers make (plain
//! text or empty bodies), and a connection wrapper for what hyper writes on its own.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The JSON routes: the API under the base path (pages keep their HTML answers).
fn is_json_route(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| rest.starts_with("/api/"))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// Turns a refusal of a JSON route that is not JSON into the documented body, keeping its
/// status and headers (`Allow`, `Retry-After`).
pub async fn json_refusals(
    State(base): State<std::sync::Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let json_route = is_json_route(request.uri().path(), &base);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !json_route
        || method == Method::HEAD
        || !(status.is_client_error() || status.is_server_error())
        || is_json(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    // A body that is already the JSON shape (a server function's error sent as text)
    // only needs its type.
    let body = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) if value.get("error").is_some() => text.into_bytes(),
        _ => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            refusal_body(status, &method, &path, &text, allow.as_deref())
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The body of a refusal that its maker wrote as text (or not at all), in words.
fn refusal_body(
    status: StatusCode,
    method: &Method,
    path: &str,
    text: &str,
    allow: Option<&str>,
) -> Vec<u8> {
    let shown_path: String = path.chars().take(120).collect();
    let mut field = None;
    let error = match status {
        StatusCode::NOT_FOUND => format!("not found: no API route {method} {shown_path}"),
        StatusCode::METHOD_NOT_ALLOWED => match allow {
            Some(allow) if !allow.is_empty() => {
                format!("{method} is not allowed on {shown_path} (allowed: {allow})")
            }
            _ => format!("{method} is not allowed on {shown_path}"),
        },
        StatusCode::REQUEST_TIMEOUT => {
            "the request took longer than the server's --request-timeout and was stopped; \
             nothing it asked for was half-applied"
                .to_owned()
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            field = Some("body");
            "body: larger than the server's --max-body-bytes".to_owned()
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase(),
        _ => {
            // axum's path rejections name the segment: "Invalid URL: Invalid UTF-8 in `id`".
            if let Some(name) = text
                .split_once("Invalid UTF-8 in `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(name, _)| name)
            {
                field = Some(name);
                format!("{name}: must be UTF-8 text once percent-decoded")
            } else {
                // "origin: requests from … may not …": the refusal names its field first.
                field = text.split_once(": ").map(|(name, _)| name).filter(|name| {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                text.chars().take(500).collect()
            }
        }
    };
    let mut body = serde_json::json!({ "error": error });
    if let Some(field) = field {
        body["field"] = field.into();
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An API path no route has: the JSON 404 (rendering the app's not-found page for a
/// script would be both slower and unreadable).
pub async fn api_not_found(method: Method, uri: axum::http::Uri) -> super::error::ApiError {
    let path: String = uri.path().chars().take(120).collect();
    super::error::ApiError::new(
        StatusCode::NOT_FOUND,
        format!("not found: no API route {method} {path}"),
    )
}

/// The listener of the main port: a TCP listener whose connections answer hyper's own
/// refusals in JSON (see [`RefusalRewrite`]).
pub struct JsonRefusalListener(pub TcpListener);

impl axum::serve::Listener for JsonRefusalListener {
    type Io = RefusalRewrite<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (RefusalRewrite::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose writes pass through unchanged, except the bodiless answers hyper
/// writes itself when it cannot read a request (400, 414, 431, 505): hyper offers no hook
/// for them, so their head is recognised here and the JSON body added. hyper closes the
/// connection after such an answer, so nothing else follows it on the wire.
pub struct RefusalRewrite<T> {
    inner: T,
    pending: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// What hyper handed over: reported as written once the replacement is out.
    original_len: usize,
}

impl<T> RefusalRewrite<T> {
    pub fn new(inner: T) -> RefusalRewrite<T> {
        RefusalRewrite {
            inner,
            pending: None,
        }
    }
}

/// hyper's own refusal head, with the JSON body it lacks; `None` for everything else.
pub fn rewrite_hyper_refusal(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    let error = match rest.get(..4)? {
        "400 " => "the request could not be read as HTTP (a malformed request line or header)",
        "414 " => "url: longer than the server reads (64 KiB); send long values in a JSON body",
        "431 " => "headers: larger than the server reads",
        "505 " => "this HTTP version is not supported",
        _ => return None,
    };
    let head = head.strip_suffix("\r\n\r\n")?;
    let lines: Vec<&str> = head.split("\r\n").collect();
    let bodiless = lines
        .iter()
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"))
        && !lines
            .iter()
            .any(|line| line.to_ascii_lowercase().starts_with("content-type:"));
    if !bodiless {
        return None;
    }
    let mut body = serde_json::json!({ "error": error });
    if let Some((field, _)) = error.split_once(": ") {
        if !field.contains(' ') {
            body["field"] = field.into();
        }
    }
    let body = body.to_string();
    let mut out = String::with_capacity(head.len() + body.len() + 64);
    for line in lines
        .iter()
        .filter(|line| !line.to_ascii_lowercase().starts_with("content-length:"))
    {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    Some(out.into_bytes())
}

impl<T: AsyncRead + Unpin> AsyncRead for RefusalRewrite<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for RefusalRewrite<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match rewrite_hyper_refusal(buf) {
                Some(bytes) => {
                    this.pending = Some(Replacement {
                        bytes,
                        written: 0,
                        original_len: buf.len(),
                    })
                }
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let Some(replacement) = this.pending.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while replacement.written < replacement.bytes.len() {
            let result =
                ready!(Pin::new(&mut this.inner)
                    .poll_write(cx, &replacement.bytes[replacement.written..]));
            match result {
                Ok(0) => {
                    this.pending = None;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => replacement.written += n,
                Err(err) => {
                    this.pending = None;
                    return Poll::Ready(Err(err));
                }
            }
        }
        let reported = replacement.original_len;
        this.pending = None;
        Poll::Ready(Ok(reported))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_refusals_get_a_json_body_and_everything_else_passes() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 01:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite_hyper_refusal(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("date: "), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["field"], "url");
        assert!(json["error"].as_str().unwrap().contains("64 KiB"));

        // An application's answers (with a type or a body) are never touched.
        for passing in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n{\"x\":1}",
            b"\x00\xff not http",
        ] {
            assert!(rewrite_hyper_refusal(passing).is_none(), "{passing:?}");
        }
    }

    #[test]
    fn refusals_in_words_name_what_to_fix() {
        let body = |status, text: &str, allow| {
            let bytes = refusal_body(status, &Method::POST, "/api/v1/x", text, allow);
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let invalid = body(
            StatusCode::BAD_REQUEST,
            "Invalid URL: Invalid UTF-8 in `id`",
            None,
        );
        assert_eq!(invalid["field"], "id");
        let not_allowed = body(StatusCode::METHOD_NOT_ALLOWED, "", Some("GET,HEAD"));
        assert_eq!(
            not_allowed["error"],
            "POST is not allowed on /api/v1/x (allowed: GET,HEAD)"
        );
        assert_eq!(
            body(StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded", None)["field"],
            "body"
        );
        assert!(body(StatusCode::REQUEST_TIMEOUT, "", None)["error"]
            .as_str()
            .unwrap()
            .contains("--request-timeout"));
        assert_eq!(
            body(StatusCode::NOT_FOUND, "", None)["error"],
            "not found: no API route POST /api/v1/x"
        );
        let origin = body(
            StatusCode::FORBIDDEN,
            "origin: requests from http://evil.example may not change this perfpilot",
            None,
        );
        assert_eq!(origin["field"], "origin");
        assert!(body(StatusCode::FORBIDDEN, "Needs the editor role", None)["field"].is_null());
        assert!(is_json_route("/perf/api/audit", "/perf"));
        assert!(!is_json_route("/perf/changes", "/perf"));
        assert!(!is_json_route("/api/audit", "/perf"));
    }
}
