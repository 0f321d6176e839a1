//! HTTP by hand: one HTTP/1.0 request per connection, written out on a `TcpStream` (no
//! client stack), to perfpilot or any loopback service; JSON answers; URL encoding.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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

/// The body of a whole response (what follows the headers).
pub fn body_of(response: &str) -> String {
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

/// The JSON of an answer, with or without its head.
pub fn body_json(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or(response, |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body:.500}"))
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

/// A GET that answers status 0 when nothing listens yet.
pub fn http_get_maybe(addr: SocketAddr, path: &str) -> (u16, String) {
    match std::net::TcpStream::connect(addr) {
        Ok(_) => http_get(addr, path),
        Err(_) => (0, String::new()),
    }
}
