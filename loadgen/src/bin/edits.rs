//! `edits`: the target-edit benchmark. C keep-alive HTTP/1.1 clients POST
//! `/api/set_target` until COUNT edits are acknowledged, then it reports throughput and
//! latency and checks the server's books: every acknowledged edit has its own change
//! number, the counter moved by exactly COUNT, the audit log gained exactly COUNT
//! `set_target` rows, and exactly ⌊end / N⌋ − ⌊start / N⌋ snapshots were taken.
//!
//! Loopback only, like the websocket load generator beside it.
//!
//! ```text
//! edits --addr 127.0.0.1:3000 --clients 64 --count 100000 [--resource cpu --metric utilization]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USAGE: &str =
    "usage: edits --addr 127.0.0.1:PORT [--clients C] [--count N] [--resource ID] [--metric NAME] [--api form|json]";

struct Args {
    addr: SocketAddr,
    clients: usize,
    count: usize,
    resource: String,
    metric: String,
    /// `form`: the UI's `/api/set_target` server function; `json`: the automation API.
    json_api: bool,
}

fn parse_args() -> Result<Args, String> {
    let (mut addr, mut clients, mut count) = (None, 64, 100_000);
    let (mut resource, mut metric) = ("cpu".to_owned(), "utilization".to_owned());
    let mut json_api = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag}: needs a value"));
        let positive = |v: String, name: &str| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{name}: must be a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                addr = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|_| format!("--addr: must be IP:PORT, got {v:?}"))?,
                )
            }
            "--clients" => clients = positive(value()?, "--clients")?,
            "--count" => count = positive(value()?, "--count")?,
            "--resource" => resource = value()?,
            "--metric" => metric = value()?,
            "--api" => {
                json_api = match value()?.as_str() {
                    "form" => false,
                    "json" => true,
                    other => return Err(format!("--api: must be form or json, got {other:?}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let addr = addr.ok_or(format!("--addr is required\n{USAGE}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--addr: must be a loopback address (127.0.0.0/8 or ::1), got {addr}"
        ));
    }
    if clients > 4_096 {
        return Err(format!("--clients: at most 4096, got {clients}"));
    }
    Ok(Args {
        addr,
        clients,
        count,
        resource,
        metric,
        json_api,
    })
}

/// One keep-alive connection speaking just enough HTTP/1.1 for these requests.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads its answer: status and body.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        form: &str,
    ) -> std::io::Result<(u16, String)> {
        let content_type = if form.starts_with('{') {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        let host = &self.host;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
             Accept: application/json\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n{form}",
            form.len()
        );
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP status line: {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or_else(|| {
            std::io::Error::other("answer without Content-Length (compressed or chunked?)")
        })?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The whole number after `"key":` in a JSON text (enough for the fields read here).
fn number_after(json: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let digits: String = json[start..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Counter, auto-save period and snapshots taken, from the Changes server function.
async fn books(conn: &mut Conn) -> Result<(u64, u64, u64), String> {
    let (status, body) = conn
        .request("POST", "/api/changes", "")
        .await
        .map_err(|e| format!("/api/changes: {e}"))?;
    if status != 200 {
        return Err(format!("/api/changes answered {status}: {body}"));
    }
    let field = |k: &str| number_after(&body, k).ok_or(format!("/api/changes has no {k}: {body}"));
    Ok((
        field("change")?,
        field("autosave_every")?,
        field("snapshots_taken")?,
    ))
}

async fn audit_total(conn: &mut Conn, since_ms: u128) -> Result<u64, String> {
    let path = format!("/api/audit?kind=set_target&since={since_ms}&limit=1");
    let (status, body) = conn
        .request("GET", &path, "")
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    if status != 200 {
        return Err(format!("{path} answered {status}: {body}"));
    }
    number_after(&body, "total").ok_or(format!("{path} has no total: {body}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_lines)] // 127 lines today; split before it grows
async fn run(args: Args) -> Result<bool, String> {
    let mut control = Conn::open(args.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", args.addr))?;
    let (start_change, every, start_snapshots) = books(&mut control).await?;
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let claimed = Arc::new(AtomicUsize::new(0));
    let changes = Arc::new(Mutex::new(Vec::with_capacity(args.count)));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (claimed, changes, failures) = (claimed.clone(), changes.clone(), failures.clone());
        let (addr, count) = (args.addr, args.count);
        let prefix = format!("resource={}&metric={}&value=", args.resource, args.metric);
        let (json_api, metric) = (args.json_api, args.metric.clone());
        let json_path = format!("/api/v1/resources/{}/target", args.resource);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut conn = match Conn::open(addr).await {
                Ok(conn) => conn,
                Err(err) => {
                    eprintln!("connect: {err}");
                    return latencies;
                }
            };
            let mut mine = Vec::new();
            loop {
                let i = claimed.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                // 0.00–99.99: always a valid utilization target.
                let value = format!("{}.{:02}", (i / 100) % 100, i % 100);
                let (path, body) = if json_api {
                    (
                        json_path.as_str(),
                        format!(r#"{{"metric":"{metric}","value":{value}}}"#),
                    )
                } else {
                    ("/api/set_target", format!("{prefix}{value}"))
                };
                let sent = Instant::now();
                match conn.request("POST", path, &body).await {
                    Ok((200, body)) => {
                        latencies.push(sent.elapsed());
                        match number_after(&body, "change") {
                            Some(change) => mine.push(change),
                            None => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok((status, body)) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("set_target answered {status}: {body}");
                    }
                    Err(err) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("set_target: {err}");
                        match Conn::open(addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            changes.lock().unwrap().extend(mine);
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(args.count);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| format!("client task: {e}"))?);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let acknowledged = latencies.len();
    let (end_change, _, end_snapshots) = books(&mut control).await?;
    let audited = audit_total(&mut control, since_ms).await?;
    let mut numbers = changes.lock().unwrap().clone();
    numbers.sort_unstable();
    numbers.dedup();
    let expected_snapshots = end_change / every - start_change / every;
    println!(
        "edits: {acknowledged} acknowledged of {} by {} clients in {:.3} s = {:.0} edits/s; \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.count,
        args.clients,
        elapsed.as_secs_f64(),
        acknowledged as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "books: counter {start_change} → {end_change}, distinct change numbers {}, \
         audit rows {audited}, snapshots taken {} (expected {expected_snapshots} at every {every}), failures {}",
        numbers.len(),
        end_snapshots - start_snapshots,
        failures.load(Ordering::Relaxed),
    );
    let checks = [
        ("every edit acknowledged", acknowledged == args.count),
        ("one change number each", numbers.len() == acknowledged),
        (
            "counter moved by the edits",
            end_change - start_change == acknowledged as u64,
        ),
        (
            "zero lost: audit rows == acknowledged",
            audited == acknowledged as u64,
        ),
        (
            "snapshots exactly every Nth",
            end_snapshots - start_snapshots == expected_snapshots,
        ),
    ];
    let mut ok = true;
    for (what, passed) in checks {
        println!("check: {what}: {}", if passed { "ok" } else { "FAILED" });
        ok &= passed;
    }
    Ok(ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
