//! Health checks: one HTTP(S) or TCP check of a backend, timed phase by phase (DNS,
//! connect, TLS, first byte, total), and on failure **why**, in words a person reads
//! ("connection refused", "status 503 Service Unavailable", "body did not contain `ok`",
//! "TLS certificate expired 3 days ago", "timeout after 2 s (connecting)").
//!
//! The HTTP exchange is written here rather than through hyper: a check is one
//! `GET … Connection: close`, and hyper hides the phase boundaries (connect, TLS, first
//! byte) that are the point of a check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::lb::{CheckResult, Phases};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Refusal;

/// The most of a response a check reads (a health page is small).
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Http,
    Https,
    Tcp,
}

fn http() -> CheckKind {
    CheckKind::Http
}
fn slash() -> String {
    "/".into()
}
fn second() -> u64 {
    1000
}
fn two_seconds() -> u64 {
    2000
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}

/// How a backend is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    #[serde(default = "http")]
    pub kind: CheckKind,
    /// HTTP(S): the path asked for.
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default = "second")]
    pub interval_ms: u64,
    #[serde(default = "two_seconds")]
    pub timeout_ms: u64,
    /// Passed checks in a row before a down backend is up again.
    #[serde(default = "two")]
    pub rise: u32,
    /// Failed checks in a row before an up backend is down.
    #[serde(default = "three")]
    pub fall: u32,
    /// Statuses that pass; empty means 200–399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// The `Host` header and TLS server name; the backend's address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTPS: the CA (PEM) the backends' certificates are signed by, instead of the
    /// system's roots (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            kind: http(),
            path: slash(),
            interval_ms: second(),
            timeout_ms: two_seconds(),
            rise: two(),
            fall: three(),
            expect_status: Vec::new(),
            expect_body: None,
            host: None,
            ca_file: None,
        }
    }
}

impl CheckSettings {
    /// The first rule broken, naming the field (`prefix` is where the settings sit).
    pub fn validate(&self, prefix: &str) -> Result<(), Refusal> {
        let refuse =
            |field: &str, rule: String| Err(Refusal::new(format!("{prefix}{field}"), rule));
        if !(100..=60_000).contains(&self.interval_ms) {
            return refuse(
                "interval_ms",
                format!("must be between 100 and 60000, got {}", self.interval_ms),
            );
        }
        if !(50..=60_000).contains(&self.timeout_ms) || self.timeout_ms > self.interval_ms * 10 {
            return refuse(
                "timeout_ms",
                format!(
                    "must be between 50 and 60000 and at most 10 intervals, got {}",
                    self.timeout_ms
                ),
            );
        }
        for (field, value) in [("rise", self.rise), ("fall", self.fall)] {
            if !(1..=100).contains(&value) {
                return refuse(field, format!("must be between 1 and 100, got {value}"));
            }
        }
        if !self.path.starts_with('/')
            || self.path.len() > 1024
            || self
                .path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return refuse(
                "path",
                format!("must start with / and hold no spaces, got {:?}", self.path),
            );
        }
        if let Some(code) = self
            .expect_status
            .iter()
            .find(|c| !(100..=599).contains(*c))
        {
            return refuse(
                "expect_status",
                format!("{code} is not an HTTP status (100–599)"),
            );
        }
        if self
            .expect_body
            .as_ref()
            .is_some_and(|b| b.is_empty() || b.len() > 1024)
        {
            return refuse("expect_body", "must be 1–1024 characters".into());
        }
        if let Some(host) = &self.host {
            if host.is_empty()
                || host.len() > 253
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
            {
                return refuse("host", format!("not a host name: {host:?}"));
            }
        }
        if let Some(ca) = &self.ca_file {
            if self.kind != CheckKind::Https {
                return refuse("ca_file", "only https checks use a CA".into());
            }
            if !ca.is_absolute() {
                return refuse(
                    "ca_file",
                    format!("must be an absolute path, got {}", ca.display()),
                );
            }
        }
        if self.kind == CheckKind::Tcp
            && (self.expect_body.is_some() || !self.expect_status.is_empty())
        {
            return refuse(
                "kind",
                "a tcp check only connects; expect_status and expect_body need http or https"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    fn passes(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }
}

/// The TLS client checks use: the system's roots (read once per process), ring.
pub fn tls_connector() -> tokio_rustls::TlsConnector {
    static SYSTEM: std::sync::LazyLock<tokio_rustls::TlsConnector> =
        std::sync::LazyLock::new(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            connector_with(roots)
        });
    SYSTEM.clone()
}

/// The TLS client of checks that trust only the CA in `path` (PEM): a regular file of at
/// most 64 KiB, refused before it is opened otherwise. Blocking (a bounded read): sources
/// are built on the blocking pool (`ConfiguredSources::reconcile_sources`).
pub fn tls_connector_for(path: &std::path::Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = crate::files::read_blocking("ca_file", path, crate::files::CA_CAP)?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem);
    for cert in certs {
        let cert = cert.map_err(|err| format!("ca_file: {}: {err}", path.display()))?;
        roots
            .add(cert)
            .map_err(|err| format!("ca_file: {}: {err}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file: {}: no certificate in it", path.display()));
    }
    Ok(connector_with(roots))
}

fn connector_with(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where a check is when a timeout stops it.
#[derive(Clone, Copy)]
enum Stage {
    Resolving,
    Connecting,
    Handshaking,
    Waiting,
    Reading,
}

impl Stage {
    fn words(self) -> &'static str {
        match self {
            Stage::Resolving => "resolving the name",
            Stage::Connecting => "connecting",
            Stage::Handshaking => "in the TLS handshake",
            Stage::Waiting => "waiting for the response",
            Stage::Reading => "reading the response",
        }
    }
}

/// Checks `target` (`host:port`) once.
pub async fn check(
    target: &str,
    settings: &CheckSettings,
    tls: &tokio_rustls::TlsConnector,
) -> CheckResult {
    let at_ms = engine::time::unix_now_ms();
    let started = Instant::now();
    let mut phases = Phases::default();
    let mut stage = Stage::Resolving;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let outcome = tokio::time::timeout(
        timeout,
        run(target, settings, tls, started, &mut phases, &mut stage),
    )
    .await;
    let reason = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_) => Some(format!(
            "timeout after {} ({})",
            millis_in_words(settings.timeout_ms),
            stage.words()
        )),
    };
    phases.total_ms = Some(ms(started));
    CheckResult {
        ok: reason.is_none(),
        reason,
        phases,
        at_ms,
    }
}

/// `2 s`, `250 ms`.
fn millis_in_words(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn ms(since: Instant) -> f32 {
    since.elapsed().as_secs_f32() * 1000.0
}

async fn run(
    target: &str,
    settings: &CheckSettings,
    tls: &tokio_rustls::TlsConnector,
    started: Instant,
    phases: &mut Phases,
    stage: &mut Stage,
) -> Result<(), String> {
    let (host, _) =
        split_host_port(target).ok_or_else(|| format!("{target:?} is not host:port"))?;
    let address: SocketAddr = match target.parse() {
        Ok(address) => address,
        Err(_) => {
            let resolving = Instant::now();
            let found = tokio::net::lookup_host(target)
                .await
                .map_err(|err| format!("DNS lookup of {host} failed: {err}"))?
                .next();
            phases.dns_ms = Some(ms(resolving));
            found.ok_or_else(|| format!("DNS: {host} has no address"))?
        }
    };
    *stage = Stage::Connecting;
    let connecting = Instant::now();
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => format!("cannot connect: {err}"),
        })?;
    let _ = tcp.set_nodelay(true);
    phases.connect_ms = Some(ms(connecting));
    if settings.kind == CheckKind::Tcp {
        return Ok(());
    }
    let name = settings.host.clone().unwrap_or_else(|| host.to_owned());
    let mut stream: Box<dyn Stream> = if settings.kind == CheckKind::Https {
        *stage = Stage::Handshaking;
        let handshaking = Instant::now();
        let server_name = rustls::pki_types::ServerName::try_from(
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|_| format!("{name:?} cannot be a TLS server name"))?;
        let stream = tls
            .connect(server_name, tcp)
            .await
            .map_err(|err| tls_words(&err, &name))?;
        phases.tls_ms = Some(ms(handshaking));
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    *stage = Stage::Waiting;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: perfpilot-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        settings.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("the connection broke sending the request: {err}"))?;
    let mut response = Vec::with_capacity(4096);
    let mut buffer = [0u8; 8192];
    loop {
        let read = stream.read(&mut buffer).await;
        let n = match read {
            Ok(n) => n,
            // A server closing without close_notify after a complete answer is common.
            Err(_) if !response.is_empty() => 0,
            Err(err) => return Err(format!("the connection broke before a response: {err}")),
        };
        if n == 0 {
            break;
        }
        if response.is_empty() {
            phases.first_byte_ms = Some(ms(started));
            *stage = Stage::Reading;
        }
        response.extend_from_slice(&buffer[..n]);
        if response.len() >= MAX_RESPONSE || complete(&response) {
            break;
        }
    }
    if response.is_empty() {
        return Err("the connection closed before any response".into());
    }
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next());
    let status: u16 = match (
        version.starts_with("HTTP/"),
        code.and_then(|c| c.parse().ok()),
    ) {
        (true, Some(status)) => status,
        _ => {
            return Err(format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(60).collect::<String>()
            ))
        }
    };
    if !settings.passes(status) {
        let phrase = parts.next().unwrap_or_default().trim();
        return Err(if phrase.is_empty() {
            format!("status {status}")
        } else {
            format!("status {status} {phrase}")
        });
    }
    if let Some(expected) = &settings.expect_body {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        if !body.contains(expected.as_str()) {
            return Err(format!("body did not contain `{expected}`"));
        }
    }
    Ok(())
}

/// Whether a response is all there: its head, and a body of `Content-Length` bytes (a
/// response without a length ends when the server closes).
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|length| response.len() >= end + 4 + length)
}

/// `host:port` or `[v6]:port` → (host, port).
pub fn split_host_port(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// A TLS failure in words; an expired certificate says since when.
fn tls_words(err: &std::io::Error, name: &str) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS handshake failed: {err}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::ExpiredContext { time, not_after } => {
                let days = time
                    .as_secs()
                    .saturating_sub(not_after.as_secs())
                    .div_ceil(86_400);
                format!(
                    "TLS certificate expired {days} day{} ago",
                    if days == 1 { "" } else { "s" }
                )
            }
            C::Expired => "TLS certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "TLS certificate is not valid yet".into()
            }
            C::UnknownIssuer => "TLS certificate not trusted (unknown issuer)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("TLS certificate is not for {name}")
            }
            C::Revoked => "TLS certificate revoked".into(),
            other => format!("TLS certificate refused: {other:?}"),
        },
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Check results kept per backend for its availability.
const AVAILABILITY_WINDOW: usize = 100;

/// A backend's health check, between its task and the source's ticks.
#[derive(Debug, Clone)]
pub struct CheckState {
    pub health: engine::lb::Health,
    pub last: CheckResult,
    /// When the verdict last changed.
    pub since_ms: i64,
    recent: std::collections::VecDeque<bool>,
    /// Why it went down, while down.
    pub down_reason: Option<String>,
}

impl CheckState {
    /// Checks passed of the last 100, in %.
    pub fn availability_pct(&self) -> f64 {
        if self.recent.is_empty() {
            return 100.0;
        }
        let passed = self.recent.iter().filter(|ok| **ok).count();
        passed as f64 * 100.0 / self.recent.len() as f64
    }

    pub fn view(&self) -> engine::lb::CheckView {
        engine::lb::CheckView {
            up: self.health.up,
            last: self.last.clone(),
            since_ms: self.since_ms,
            availability_pct: self.availability_pct(),
            down_reason: self.down_reason.clone(),
        }
    }
}

/// A verdict changed: (backend, up, why in words).
pub type OnVerdict = Arc<
    dyn Fn(String, bool, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Checks a changing set of backends, each on its own task at the check's interval, with
/// rise/fall; tells `on_verdict` when a backend's verdict changes. Dropping it stops
/// every check.
pub struct Checker {
    settings: CheckSettings,
    states: Arc<std::sync::Mutex<std::collections::BTreeMap<String, CheckState>>>,
    tasks: std::collections::BTreeMap<String, (String, tokio::task::JoinHandle<()>)>,
    tls: tokio_rustls::TlsConnector,
    on_verdict: OnVerdict,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("backends", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// Fails when the check's `ca_file` cannot be read.
    pub fn new(settings: CheckSettings, on_verdict: OnVerdict) -> Result<Checker, String> {
        let tls = match &settings.ca_file {
            Some(path) => tls_connector_for(path)?,
            None => tls_connector(),
        };
        Ok(Checker {
            settings,
            states: Arc::default(),
            tasks: std::collections::BTreeMap::new(),
            tls,
            on_verdict,
        })
    }

    /// Checks exactly `backends` (name, address) from now on: new ones start (down if
    /// `starts_down` says so: they earn their way back with `rise` passes), gone ones
    /// stop, a changed address restarts. Answers the names that joined and that left.
    pub fn follow(
        &mut self,
        backends: &[(String, String)],
        starts_down: impl Fn(&str) -> bool,
    ) -> (Vec<String>, Vec<String>) {
        let left: Vec<String> = self
            .tasks
            .keys()
            .filter(|name| !backends.iter().any(|(n, _)| n == *name))
            .cloned()
            .collect();
        for name in &left {
            if let Some((_, task)) = self.tasks.remove(name) {
                task.abort();
            }
            engine::sync::lock(&self.states).remove(name);
        }
        let mut joined = Vec::new();
        for (name, address) in backends {
            match self.tasks.get(name) {
                Some((known, _)) if known == address => continue,
                Some(_) => {
                    if let Some((_, task)) = self.tasks.remove(name) {
                        task.abort();
                    }
                    engine::sync::lock(&self.states).remove(name);
                }
                None => joined.push(name.clone()),
            }
            let task = tokio::spawn(check_loop(
                self.settings.clone(),
                self.states.clone(),
                name.clone(),
                address.clone(),
                self.tls.clone(),
                starts_down(name),
                self.on_verdict.clone(),
            ));
            self.tasks.insert(name.clone(), (address.clone(), task));
        }
        (joined, left)
    }

    /// Every checked backend's state now.
    pub fn states(&self) -> std::collections::BTreeMap<String, CheckState> {
        engine::sync::lock(&self.states).clone()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

async fn check_loop(
    settings: CheckSettings,
    states: Arc<std::sync::Mutex<std::collections::BTreeMap<String, CheckState>>>,
    name: String,
    address: String,
    tls: tokio_rustls::TlsConnector,
    starts_down: bool,
    on_verdict: OnVerdict,
) {
    let mut ticker = tokio::time::interval(settings.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = check(&address, &settings, &tls).await;
        let transition = {
            let mut states = engine::sync::lock(&states);
            let state = states.entry(name.clone()).or_insert_with(|| {
                let mut health = engine::lb::Health::new(settings.rise, settings.fall);
                health.up = !starts_down;
                CheckState {
                    health,
                    last: result.clone(),
                    since_ms: result.at_ms,
                    recent: std::collections::VecDeque::new(),
                    down_reason: None,
                }
            });
            state.recent.push_back(result.ok);
            if state.recent.len() > AVAILABILITY_WINDOW {
                state.recent.pop_front();
            }
            let changed = state.health.observe(result.ok);
            if let Some(up) = changed {
                state.since_ms = result.at_ms;
                state.down_reason = if up { None } else { result.reason.clone() };
            }
            state.last = result.clone();
            changed
        };
        if let Some(up) = transition {
            let why = match &result.reason {
                Some(reason) if !up => format!("{reason} ({} failed checks)", settings.fall),
                _ => format!("passed {} checks in a row", settings.rise),
            };
            (on_verdict)(name.clone(), up, why).await;
        }
    }
}

/// Events kept for a pool's page.
const EVENTS_KEPT: usize = 50;

/// What happened to a pool (failovers, reconciles, backends joining and leaving): kept
/// for its page, and handed to the monitor as marks on its chart (audited, with a
/// before/after).
#[derive(Debug)]
pub struct EventLog {
    resource: String,
    events: std::sync::Mutex<std::collections::VecDeque<engine::lb::LbEvent>>,
    marks: std::sync::Mutex<Vec<engine::source::SourceMark>>,
}

impl EventLog {
    pub fn new(resource: &str) -> EventLog {
        EventLog {
            resource: resource.to_owned(),
            events: std::sync::Mutex::default(),
            marks: std::sync::Mutex::default(),
        }
    }

    pub fn record(&self, backend: Option<&str>, what: String) {
        tracing::info!(resource = %self.resource, backend, what, "Load balancer");
        let mut events = engine::sync::lock(&self.events);
        events.push_front(engine::lb::LbEvent {
            at_ms: engine::time::unix_now_ms(),
            server: backend.map(str::to_owned),
            what: what.clone(),
        });
        events.truncate(EVENTS_KEPT);
        drop(events);
        engine::sync::lock(&self.marks).push(engine::source::SourceMark {
            resource: self.resource.clone(),
            label: what,
        });
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<engine::lb::LbEvent> {
        engine::sync::lock(&self.events).iter().cloned().collect()
    }

    /// The marks not yet handed over.
    pub fn take_marks(&self) -> Vec<engine::source::SourceMark> {
        std::mem::take(&mut *engine::sync::lock(&self.marks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            }
        });
        address
    }

    fn settings() -> CheckSettings {
        CheckSettings {
            timeout_ms: 1000,
            ..CheckSettings::default()
        }
    }

    #[tokio::test]
    async fn a_healthy_backend_passes_with_its_phases() {
        let address = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let result = check(&address.to_string(), &settings(), &tls_connector()).await;
        assert!(result.ok, "{result:?}");
        assert_eq!(result.phases.dns_ms, None, "an address needs no lookup");
        assert!(result.phases.connect_ms.is_some() && result.phases.first_byte_ms.is_some());
        assert!(result.phases.total_ms >= result.phases.first_byte_ms);
    }

    #[tokio::test]
    async fn failures_say_why() {
        let tls = tls_connector();
        let unavailable =
            serve_once(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
        let result = check(&unavailable.to_string(), &settings(), &tls).await;
        assert_eq!(
            result.reason.as_deref(),
            Some("status 503 Service Unavailable")
        );

        let wrong_body = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfail").await;
        let mut s = settings();
        s.expect_body = Some("ok".into());
        let result = check(&wrong_body.to_string(), &s, &tls).await;
        assert_eq!(result.reason.as_deref(), Some("body did not contain `ok`"));

        // A port nothing listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let result = check(&format!("127.0.0.1:{port}"), &settings(), &tls).await;
        assert_eq!(result.reason.as_deref(), Some("connection refused"));

        // Accepts, never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap();
        let mut s = settings();
        s.timeout_ms = 200;
        let result = check(&address.to_string(), &s, &tls).await;
        assert_eq!(
            result.reason.as_deref(),
            Some("timeout after 200 ms (waiting for the response)")
        );
        drop(silent);

        let garbage = serve_once(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let result = check(&garbage.to_string(), &settings(), &tls).await;
        assert!(
            result
                .reason
                .as_deref()
                .unwrap()
                .starts_with("not an HTTP response"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn tcp_checks_only_connect() {
        let address = serve_once(b"").await;
        let s = CheckSettings {
            kind: CheckKind::Tcp,
            ..settings()
        };
        let result = check(&address.to_string(), &s, &tls_connector()).await;
        assert!(result.ok, "{result:?}");
        assert_eq!(result.phases.first_byte_ms, None);
    }

    #[test]
    fn settings_name_the_field() {
        let mut s = CheckSettings::default();
        assert_eq!(s.validate("check."), Ok(()));
        s.interval_ms = 10;
        assert_eq!(s.validate("check.").unwrap_err().field, "check.interval_ms");
        s = CheckSettings::default();
        s.path = "health".into();
        assert_eq!(s.validate("check.").unwrap_err().field, "check.path");
        s = CheckSettings::default();
        s.expect_status = vec![200, 999];
        assert!(s
            .validate("")
            .unwrap_err()
            .to_string()
            .starts_with("expect_status: 999"));
        s = CheckSettings {
            kind: CheckKind::Tcp,
            expect_body: Some("ok".into()),
            ..CheckSettings::default()
        };
        assert_eq!(s.validate("").unwrap_err().field, "kind");
        s = CheckSettings::default();
        s.fall = 0;
        assert_eq!(s.validate("").unwrap_err().field, "fall");
        s = CheckSettings {
            ca_file: Some("/etc/ca.pem".into()),
            ..CheckSettings::default()
        };
        assert!(s
            .validate("")
            .unwrap_err()
            .to_string()
            .starts_with("ca_file: only https"));
        s.kind = CheckKind::Https;
        assert_eq!(s.validate(""), Ok(()));
        s.ca_file = Some("ca.pem".into());
        assert!(s
            .validate("")
            .unwrap_err()
            .to_string()
            .starts_with("ca_file: must be an absolute"));
        let missing = tls_connector_for(std::path::Path::new("/nonexistent/ca.pem"));
        assert!(missing.is_err_and(|e| e.starts_with("ca_file: cannot read /nonexistent/ca.pem")));
        // A FIFO or a directory is refused before it is opened (opening a FIFO would wait
        // for a writer).
        let dir = std::env::temp_dir().join(format!("perfpilot-probe-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let directory = tls_connector_for(&dir).map(drop).unwrap_err();
        assert!(
            directory.starts_with("ca_file: must be a regular file of at most 64 KiB"),
            "{directory}"
        );
        assert!(directory.ends_with("is a directory"), "{directory}");
        let fifo = dir.join("ca.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        let refused = tls_connector_for(&fifo).map(drop).unwrap_err();
        assert!(refused.ends_with("is a FIFO"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn responses_are_complete_by_their_length() {
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"));
        assert!(complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab"));
        assert!(
            !complete(b"HTTP/1.1 200 OK\r\n\r\nab"),
            "no length: until close"
        );
        assert_eq!(split_host_port("[::1]:80"), Some(("[::1]", 80)));
        assert_eq!(split_host_port("web:0"), None);
    }
}
