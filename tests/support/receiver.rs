//! The receiving ends of notification channels, on free loopback ports: webhook receivers
//! ([`webhook_receiver`], [`Receiver`], which can be made to fail) and an SMTP sink
//! ([`SmtpSink`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

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
