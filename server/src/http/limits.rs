//! Per-client limits that protect the server from one noisy client: the token bucket
//! shared by `POST /api/push` and the server-function POSTs, the client address both key
//! on, and the cap on concurrent live websockets.
//!
//! The client is the one `auth.rs` decided on ([`Identity::client_ip`]: the
//! `X-Forwarded-For` client when the peer is a trusted proxy), so every user behind
//! nginx gets a bucket of their own instead of sharing the proxy's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::identity::Identity;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Client IPs tracked by one limiter before idle ones are forgotten.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The address a request is accounted to: the identity's client (proxy-aware), else the
/// TCP peer. Without either (a router served without connect info) every client shares
/// the unspecified address's bucket: stricter, never looser.
pub fn client_ip(request: &Request) -> IpAddr {
    let extensions = request.extensions();
    extensions
        .get::<Identity>()
        .and_then(|identity| identity.client_ip)
        .or_else(|| crate::http::auth::peer_ip(extensions))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Token buckets per client IP: `rate` tokens per second up to `burst`; a request takes
/// one. Full buckets carry no information, so they are the ones forgotten when the map
/// grows; if every tracked client is active the map is cleared rather than allowed to
/// grow without bound (a burst of new addresses then gets fresh buckets, which is the
/// lesser harm).
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client` at `now`, or says how long until one is available.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = engine::sync::lock(&self.buckets);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refill(b, now, rate, burst) < burst);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = refill(bucket, now, self.rate, self.burst);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }
}

fn refill(bucket: &mut Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
    bucket.updated = bucket.updated.max(now);
    bucket.tokens
}

/// Whole seconds to put in `Retry-After` (at least 1: 0 would invite a busy loop).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The mutation limiter as middleware state.
#[derive(Clone)]
pub struct MutationLimit {
    pub limiter: Arc<RateLimiter>,
    pub rate: u32,
    pub burst: u32,
}

/// The layer of the routes that change configuration (server functions, the JSON API):
/// each POST takes a token from the client's bucket; over the limit it gets 429 with
/// `Retry-After` before the handler runs. (Server functions that only read are GETs.)
pub async fn mutations(
    State(limit): State<MutationLimit>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST {
        let client = client_ip(&request);
        if let Err(wait) = limit.limiter.check(client, Instant::now()) {
            let secs = retry_after_secs(wait);
            let message = format!(
                "too many requests from {client}: at most {} per second with bursts of {} \
                 (--mutation-rate/--mutation-burst); retry in {secs} s",
                limit.rate, limit.burst
            );
            tracing::warn!(%client, "Rate-limited a mutation");
            return super::error::ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
                .retry_after(secs)
                .into_response();
        }
    }
    next.run(request).await
}

/// Counts live websockets against `--max-websockets`. A [`SocketPermit`] is held for the
/// life of one socket.
#[derive(Debug)]
pub struct SocketLimit {
    open: AtomicUsize,
    max: usize,
}

impl SocketLimit {
    pub fn new(max: usize) -> Arc<SocketLimit> {
        Arc::new(SocketLimit {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A permit, or `None` when `max` sockets are already open.
    pub fn try_acquire(self: &Arc<Self>) -> Option<SocketPermit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| SocketPermit(self.clone()))
    }
}

/// Gives the socket's slot back when dropped (the socket closed, or its upgrade failed).
#[derive(Debug)]
pub struct SocketPermit(Arc<SocketLimit>);

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(20, 40);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..40 {
            assert_eq!(limiter.check(ip, t0), Ok(()));
        }
        let wait = limiter.check(ip, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(50));
        assert_eq!(retry_after_secs(wait), 1);
        // 100 ms at 20/s refills two tokens.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check(ip, t1), Ok(()));
        assert_eq!(limiter.check(ip, t1), Ok(()));
        assert!(limiter.check(ip, t1).is_err());
        // Other clients have their own bucket.
        assert_eq!(limiter.check("::1".parse().unwrap(), t1), Ok(()));
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let limiter = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 10) {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            assert_eq!(limiter.check(ip, t0), Ok(()));
        }
        assert!(limiter.tracked() <= MAX_TRACKED_CLIENTS);
    }

    #[test]
    fn the_identity_client_wins_over_the_peer() {
        let mut request = Request::new(axum::body::Body::empty());
        assert_eq!(client_ip(&request), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [10, 0, 0, 1],
                5000,
            ))));
        assert_eq!(client_ip(&request), "10.0.0.1".parse::<IpAddr>().unwrap());
        request.extensions_mut().insert(Identity::anonymous(
            app::identity::Role::Viewer,
            Some("192.0.2.7".parse().unwrap()),
        ));
        assert_eq!(client_ip(&request), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn socket_permits_are_counted_and_returned() {
        let limit = SocketLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire().is_some());
    }
}
