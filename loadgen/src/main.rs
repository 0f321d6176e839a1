//! `loadgen`: opens N websocket clients to perfpilot's `/ws/live`, reads frames for D
//! seconds and reports how late each tick frame arrived.
//!
//! The delay of a frame is receipt wall time minus the tick's `at_unix_ms`, which is the
//! collector's *scheduled* tick time, so it includes the collector's own read, the
//! monitor's evaluation and serialization, and the hub's fan-out to every socket. Client
//! and server share the host's cores, so on a small machine the numbers are an upper
//! bound on what the server alone would show.
//!
//! `at_unix_ms` is the tick's slot on the wall-clock grid, which the engine derives from
//! the collector's start rounded to the nearest period: it differs from the instant the
//! tick really fired by a constant offset of up to ± half a period for the life of the
//! server. So besides the raw delay, loadgen reports the *spread*: receipt minus the
//! first receipt of the same tick by any client, which is the cost of the fan-out alone
//! and has no offset, and the smallest raw delay seen (offset + the fastest pipeline).
//!
//! Only loopback addresses are accepted: this is a load generator, and the only server
//! it may load is one started on this machine.
//!
//! ```text
//! loadgen --url ws://127.0.0.1:3000/ws/live --clients 1000 --duration 30
//! ```

use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: loadgen --url ws://127.0.0.1:PORT/ws/live [--clients N] [--duration SECS] [--connect-concurrency N]";

struct Args {
    url: String,
    clients: usize,
    duration: Duration,
    /// Handshakes in flight at once; a thousand simultaneous SYNs overflow the default
    /// accept backlog and measure the kernel, not the server.
    connect_concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut clients = 100;
    let mut duration = 30;
    let mut connect_concurrency = 64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag}: needs a value"));
        let number = |v: String, name: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{name}: must be a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--clients" => clients = number(value()?, "--clients")? as usize,
            "--duration" => duration = number(value()?, "--duration")?,
            "--connect-concurrency" => {
                connect_concurrency = number(value()?, "--connect-concurrency")? as usize
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let url = url.ok_or(format!("--url is required\n{USAGE}"))?;
    check_loopback(&url)?;
    if duration > 600 {
        return Err(format!("--duration: at most 600 seconds, got {duration}"));
    }
    if clients > 20_000 {
        return Err(format!("--clients: at most 20000, got {clients}"));
    }
    Ok(Args {
        url,
        clients,
        duration: Duration::from_secs(duration),
        connect_concurrency,
    })
}

/// Refuses any URL that does not resolve only to loopback addresses.
fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("ws://").ok_or(format!(
        "--url: must start with ws:// (no TLS), got {url:?}"
    ))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addrs: Vec<IpAddr> = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url: cannot resolve {authority:?}: {e}"))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() || !addrs.iter().all(IpAddr::is_loopback) {
        return Err(format!(
            "--url: must point at a loopback address (127.0.0.0/8 or ::1), got {authority:?}"
        ));
    }
    Ok(())
}

fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `at_unix_ms` of a tick frame, without parsing the whole JSON: the hub's frames start
/// with `{"type":"tick","at_unix_ms":` (serde's tag first, then fields in order), and a
/// full parse of every card for every client would cost the shared cores more than the
/// server's fan-out does.
fn tick_time(frame: &str) -> Option<i64> {
    let rest = frame.strip_prefix(r#"{"type":"tick","at_unix_ms":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[derive(Default)]
struct ClientResult {
    /// Each tick frame as (tick time in ms, receipt wall time in µs).
    received: Vec<(i64, i64)>,
    frames: u64,
    dropped: bool,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    connect_failed: AtomicU64,
}

async fn client(
    args: Arc<Args>,
    permits: Arc<Semaphore>,
    ready: Arc<Barrier>,
    counters: Arc<Counters>,
) -> ClientResult {
    let connected = {
        let _permit = permits.acquire().await.expect("semaphore open");
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(args.url.as_str()),
        )
        .await
    };
    let mut socket = match connected {
        Ok(Ok((socket, _))) => {
            counters.connected.fetch_add(1, Ordering::Relaxed);
            Some(socket)
        }
        _ => {
            counters.connect_failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    // Everyone starts the measured window together, after every handshake is done.
    ready.wait().await;
    let Some(socket) = socket.as_mut() else {
        return ClientResult {
            dropped: true,
            ..ClientResult::default()
        };
    };
    let mut result = ClientResult::default();
    let deadline = tokio::time::Instant::now() + args.duration;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        match next {
            Err(_) => break,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                result.dropped = true;
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let now_us = unix_now_us();
                result.frames += 1;
                if let Some(at_ms) = tick_time(text.as_str()) {
                    result.received.push((at_ms, now_us));
                }
            }
            // Pings are answered by tungstenite on the next read.
            Ok(Some(Ok(_))) => {}
        }
    }
    let _ = socket.close(None).await;
    result
}

/// Raw delays (receipt − tick time) and spreads (receipt − first receipt of that tick by
/// any client), in µs.
fn delays_and_spreads(received: &[(i64, i64)]) -> (Vec<i64>, Vec<i64>) {
    let mut first: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for &(at, us) in received {
        first
            .entry(at)
            .and_modify(|f| *f = (*f).min(us))
            .or_insert(us);
    }
    received
        .iter()
        .map(|&(at, us)| (us - at * 1000, us - first[&at]))
        .unzip()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let permits = Arc::new(Semaphore::new(args.connect_concurrency));
    let ready = Arc::new(Barrier::new(args.clients + 1));
    let counters = Arc::new(Counters::default());
    let connecting = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            tokio::spawn(client(
                args.clone(),
                permits.clone(),
                ready.clone(),
                counters.clone(),
            ))
        })
        .collect();
    ready.wait().await;
    eprintln!(
        "loadgen: {} connected, {} failed in {:.1}s; reading for {}s",
        counters.connected.load(Ordering::Relaxed),
        counters.connect_failed.load(Ordering::Relaxed),
        connecting.elapsed().as_secs_f64(),
        args.duration.as_secs()
    );
    let mut received = Vec::new();
    let mut frames = 0;
    let mut dropped = 0;
    for task in tasks {
        let result = task.await.unwrap_or_else(|_| ClientResult {
            dropped: true,
            ..ClientResult::default()
        });
        frames += result.frames;
        dropped += u64::from(result.dropped);
        received.extend(result.received);
    }
    let (mut delays, mut spreads) = delays_and_spreads(&received);
    delays.sort_unstable();
    spreads.sort_unstable();
    let ms = |us: i64| us as f64 / 1000.0;
    // One line, key=value, so scripts can pick fields with grep/awk.
    println!(
        "clients={} connect_failed={} dropped={} frames={} tick_frames={} ticks={} \
         p50_ms={:.2} p99_ms={:.2} max_ms={:.2} min_ms={:.2} \
         spread_p50_ms={:.2} spread_p99_ms={:.2} spread_max_ms={:.2}",
        args.clients,
        counters.connect_failed.load(Ordering::Relaxed),
        dropped,
        frames,
        delays.len(),
        received
            .iter()
            .map(|(at, _)| *at)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        ms(percentile(&delays, 50.0)),
        ms(percentile(&delays, 99.0)),
        ms(delays.last().copied().unwrap_or(0)),
        ms(delays.first().copied().unwrap_or(0)),
        ms(percentile(&spreads, 50.0)),
        ms(percentile(&spreads, 99.0)),
        ms(spreads.last().copied().unwrap_or(0)),
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tick_time_from_the_frame_prefix() {
        assert_eq!(
            tick_time(r#"{"type":"tick","at_unix_ms":1700000000000,"cards":[]}"#),
            Some(1_700_000_000_000)
        );
        assert_eq!(tick_time(r#"{"type":"overview","at_unix_ms":1}"#), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 99.0), 0);
    }

    #[test]
    fn spread_is_measured_from_the_first_receipt_of_each_tick() {
        let received = [(1_000, 1_010_000), (1_000, 1_012_500), (2_000, 2_003_000)];
        let (delays, spreads) = delays_and_spreads(&received);
        assert_eq!(delays, [10_000, 12_500, 3_000]);
        assert_eq!(spreads, [0, 2_500, 0]);
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(check_loopback("ws://127.0.0.1:3000/ws/live").is_ok());
        assert!(check_loopback("wss://127.0.0.1:3000/ws/live").is_err());
        assert!(check_loopback("ws://10.0.0.1:3000/ws/live")
            .unwrap_err()
            .contains("loopback"));
    }
}
