//! A pool of backends perfpilot health-checks itself (no balancer in front, or one that is
//! not HAProxy): the resource `lb:<name>` with backends up / total, availability and the
//! checks' response time, each backend checked with phases and reasons
//! ([`super::probe`]).
//!
//! Backends come from the settings (`targets`), from a watched file in Prometheus'
//! `file_sd` format (JSON, or YAML by its extension) and from DNS (`host:port` for A/AAAA,
//! `_service._proto.name` for SRV), re-resolved when the answer's TTL runs out. A backend
//! joining or leaving is a mark on the chart; a file that does not parse, or a name that
//! does not resolve, keeps the last good list and says why. No restart is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use engine::lb::{BackendView, LbReport};
use engine::model::{MetricKind, Resource, ResourceSettings, SourceSpec};
use engine::series::{Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo, SourceMark};
use serde::{Deserialize, Serialize};

use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::probe::{self, CheckSettings, EventLog};
use super::{Checked, MetricDef};
use crate::Refusal;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "lb_pool";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[lb_pool]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "Checked pool",
    family: engine::source::SourceFamily::LoadBalancer,
    settle: engine::verdict::Settle {
        secs: 3,
        why: "health checks run every second with rise/fall hysteresis (up to 3 checks)",
    },
    toml_table: "lb_pool",
    from_spec: kind::decode::<PoolSettings>,
    from_toml: kind::table::<PoolEntry>,
};
/// The most backends one pool checks.
const MAX_BACKENDS: usize = 1000;
/// How long one DNS query may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);
/// How soon a failed DNS lookup is tried again.
const DNS_RETRY: Duration = Duration::from_secs(5);
/// Bounds on re-resolving: a TTL of 0 is not a reason to ask every tick, nor a day-long
/// one to miss a change for a day.
const DNS_MIN_TTL: Duration = Duration::from_secs(1);
const DNS_MAX_TTL: Duration = Duration::from_secs(300);

/// A checked pool's source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// `host:port` backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// A Prometheus `file_sd` file (JSON, or YAML when it ends in .yml/.yaml), watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sd: Option<PathBuf>,
    /// `web.internal:8080` (A/AAAA) or `_http._tcp.web.internal` (SRV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// The DNS server to ask (`10.0.0.2:53`); the system's resolver when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    #[serde(default)]
    pub check: CheckSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One `[[lb_pool]]` entry of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub name: String,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub file_sd: Option<PathBuf>,
    #[serde(default)]
    pub dns: Option<String>,
    #[serde(default)]
    pub dns_server: Option<String>,
    #[serde(default)]
    pub check: CheckSettings,
    #[serde(default)]
    pub group: Option<String>,
}

impl TableEntry for PoolEntry {
    type Settings = PoolSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> PoolSettings {
        PoolSettings {
            targets: self.targets.clone(),
            file_sd: self.file_sd.clone(),
            dns: self.dns.clone(),
            dns_server: self.dns_server.clone(),
            check: self.check.clone(),
            group: self.group.clone(),
        }
    }
}

impl PoolSettings {
    pub fn validate(&self) -> Result<(), Refusal> {
        if self.targets.is_empty() && self.file_sd.is_none() && self.dns.is_none() {
            return Err(Refusal::new(
                "targets",
                "a pool needs backends: targets, file_sd or dns (or several)",
            ));
        }
        if self.targets.len() > MAX_BACKENDS {
            return Err(Refusal::new(
                "targets",
                format!(
                    "at most {MAX_BACKENDS} backends, got {}",
                    self.targets.len()
                ),
            ));
        }
        if let Some(bad) = self
            .targets
            .iter()
            .find(|t| probe::split_host_port(t).is_none())
        {
            return Err(Refusal::new("targets", format!("{bad:?} is not host:port")));
        }
        if let Some(path) = &self.file_sd {
            if !path.is_absolute() {
                return Err(Refusal::new(
                    "file_sd",
                    format!("must be an absolute path, got {}", path.display()),
                ));
            }
        }
        if let Some(dns) = &self.dns {
            let ok = if dns.starts_with('_') {
                dns.split('.').count() >= 3 && !dns.contains(':')
            } else {
                probe::split_host_port(dns).is_some()
            };
            if !ok {
                return Err(Refusal::new(
                    "dns",
                    format!(
                        "must be host:port (A/AAAA) or _service._proto.name (SRV), got {dns:?}"
                    ),
                ));
            }
        }
        if let Some(server) = &self.dns_server {
            if server.parse::<std::net::SocketAddr>().is_err() {
                return Err(Refusal::new(
                    "dns_server",
                    format!("must be an address and port like 10.0.0.2:53, got {server:?}"),
                ));
            }
        }
        self.check.validate("check.")?;
        super::secret::validate_group(&self.group)?;
        Ok(())
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<PoolSettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for PoolSettings {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "load balancer"
    }

    fn spec(&self) -> SourceSpec {
        PoolSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        PoolSettings::validate(self)
    }

    fn resource_id(&self, name: &str) -> Result<engine::model::ResourceId, Refusal> {
        super::haproxy::resource_id(name)
    }

    fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, Refusal> {
        resource(name, self, defaults)
    }

    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Nothing to connect to: perfpilot checks the backends itself once the pool runs.
    fn check(&self, password: Option<String>) -> BoxFuture<'_, Result<Checked, Refusal>> {
        Box::pin(async move {
            if password.is_some() {
                return Err(Refusal::new(
                    "password",
                    "a checked pool has no password; leave it empty",
                ));
            }
            PoolSettings::validate(self)?;
            Ok(Checked::found(format!(
                "checked by perfpilot ({} servers)",
                self.targets.len()
            )))
        })
    }

    fn source(
        &self,
        resource: &Resource,
        interval: Duration,
        _: &crate::Registries,
    ) -> Result<Box<dyn engine::source::runtime::Source>, String> {
        Ok(Box::new(source(resource, self.clone(), interval)?))
    }
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("response_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("error_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("backends_up_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("backends_up", None, "backends"),
    MetricDef::new("backends_total", None, "backends"),
];

/// Per backend: `<metric>:<backend>`.
const BACKEND_METRICS: &[(&str, &str)] =
    &[("up", "0/1"), ("check_ms", "ms"), ("availability_pct", "%")];

/// The resource a pool is: the checks' response time ≤ 200 ms (p95) by default.
pub fn resource(
    name: &str,
    settings: &PoolSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    super::lb_resource(name, METRICS, settings.spec(), defaults, Vec::new())
}

/// What discovery found now: every source's backends and what went wrong.
struct Found {
    backends: BTreeSet<String>,
    problems: Vec<String>,
}

/// A Prometheus `file_sd` entry.
#[derive(Debug, Deserialize)]
struct FileSdGroup {
    targets: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
}

/// Reads a `file_sd` file: a regular file of at most 1 MiB
/// ([`crate::files::FILE_SD_CAP`]), a FIFO or a device refused before it is opened; the
/// error says where and why. Blocking: the source calls it on the blocking pool.
pub fn read_file_sd(path: &Path) -> Result<Vec<String>, String> {
    let bytes = crate::files::read_blocking("file_sd", path, crate::files::FILE_SD_CAP)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("file_sd {}: is not UTF-8 text", path.display()))?;
    let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
    let groups: Vec<FileSdGroup> = if yaml {
        serde_norway::from_str(&text).map_err(|err| format!("file_sd {}: {err}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|err| format!("file_sd {}: {err}", path.display()))?
    };
    let mut targets = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        for target in &group.targets {
            if probe::split_host_port(target).is_none() {
                return Err(format!(
                    "file_sd {}: group {}: target {target:?} is not host:port",
                    path.display(),
                    i + 1
                ));
            }
            targets.push(target.clone());
        }
    }
    if targets.len() > MAX_BACKENDS {
        return Err(format!(
            "file_sd {}: at most {MAX_BACKENDS} targets, got {}",
            path.display(),
            targets.len()
        ));
    }
    Ok(targets)
}

struct FileSd {
    path: PathBuf,
    /// Modification time and length of the version last read.
    stamp: Option<(SystemTime, u64)>,
    targets: Vec<String>,
    problem: Option<String>,
}

impl FileSd {
    /// Reads the file again if it changed; the stat and the read run on the blocking pool,
    /// never on the runtime (see [`crate::files`]).
    async fn refresh(&mut self, events: &EventLog) {
        let path = self.path.clone();
        let known = self.stamp;
        let what = format!("file_sd {}", self.path.display());
        let looked = crate::files::off_runtime(&what, move || {
            let stamp = std::fs::metadata(&path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if stamp.is_some() && stamp == known {
                return Ok((stamp, None));
            }
            Ok((stamp, Some(read_file_sd(&path))))
        })
        .await;
        let (stamp, read) = match looked {
            Ok((_, None)) => return,
            Ok((stamp, Some(read))) => (stamp, read),
            Err(err) => (None, Err(err)),
        };
        self.stamp = stamp;
        match read {
            Ok(targets) => {
                if self.problem.take().is_some() {
                    events.record(None, format!("{} reads again", self.path.display()));
                }
                self.targets = targets;
            }
            Err(err) => {
                let why = format!(
                    "{err}; keeping the last good list ({} targets)",
                    self.targets.len()
                );
                if self.problem.as_ref() != Some(&why) {
                    events.record(None, why.clone());
                }
                self.problem = Some(why);
            }
        }
    }
}

struct DnsSd {
    name: String,
    resolver: hickory_resolver::TokioResolver,
    next_at: Instant,
    targets: Vec<String>,
    problem: Option<String>,
}

impl DnsSd {
    fn new(name: &str, server: Option<&str>) -> Result<DnsSd, String> {
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
        use hickory_resolver::name_server::TokioConnectionProvider;
        let resolver = match server {
            Some(server) => {
                let address: std::net::SocketAddr = server
                    .parse()
                    .map_err(|_| format!("dns_server: {server:?} is not an address:port"))?;
                let config = ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[address.ip()], address.port(), true),
                );
                hickory_resolver::Resolver::builder_with_config(
                    config,
                    TokioConnectionProvider::default(),
                )
            }
            None => hickory_resolver::Resolver::builder_tokio()
                .map_err(|err| format!("dns: the system's resolver configuration: {err}"))?,
        };
        // A server that does not answer must not hold the pool's tick: one try, briefly.
        let mut builder = resolver;
        builder.options_mut().timeout = DNS_TIMEOUT;
        builder.options_mut().attempts = 1;
        let resolver = builder.build();
        Ok(DnsSd {
            name: name.to_owned(),
            resolver,
            next_at: Instant::now(),
            targets: Vec::new(),
            problem: None,
        })
    }

    async fn refresh(&mut self, events: &EventLog) {
        if Instant::now() < self.next_at {
            return;
        }
        let answer = tokio::time::timeout(DNS_TIMEOUT * 2, self.lookup())
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {} s", (DNS_TIMEOUT * 2).as_secs())));
        match answer {
            Ok((targets, valid_until)) => {
                if self.problem.take().is_some() {
                    events.record(None, format!("{} resolves again", self.name));
                }
                self.targets = targets;
                let now = Instant::now();
                let ttl = valid_until.saturating_duration_since(now);
                self.next_at = now + ttl.clamp(DNS_MIN_TTL, DNS_MAX_TTL);
            }
            Err(err) => {
                let why = format!(
                    "dns {}: {err}; keeping the last good list ({} targets)",
                    self.name,
                    self.targets.len()
                );
                if self.problem.as_ref() != Some(&why) {
                    events.record(None, why.clone());
                }
                self.problem = Some(why);
                self.next_at = Instant::now() + DNS_RETRY;
            }
        }
    }

    async fn lookup(&self) -> Result<(Vec<String>, Instant), String> {
        if self.name.starts_with('_') {
            let found = self
                .resolver
                .srv_lookup(self.name.as_str())
                .await
                .map_err(|err| err.to_string())?;
            // Each SRV target resolved by the same resolver: the checks then need no
            // lookup of a name the system's resolver may not know.
            let mut valid_until = found.as_lookup().valid_until();
            let mut targets = Vec::new();
            for srv in found.iter() {
                let host = srv.target().to_utf8();
                let addresses = self
                    .resolver
                    .lookup_ip(host.as_str())
                    .await
                    .map_err(|err| format!("{}: {err}", host.trim_end_matches('.')))?;
                valid_until = valid_until.min(addresses.valid_until());
                targets.extend(addresses.iter().map(|ip| socket(ip, srv.port())));
            }
            Ok((targets, valid_until))
        } else {
            let (host, port) = probe::split_host_port(&self.name)
                .ok_or_else(|| format!("{:?} is not host:port", self.name))?;
            let found = self
                .resolver
                .lookup_ip(host)
                .await
                .map_err(|err| err.to_string())?;
            let targets = found.iter().map(|ip| socket(ip, port)).collect();
            Ok((targets, found.valid_until()))
        }
    }
}

/// `10.0.0.1:80`, `[::1]:80`.
fn socket(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The polled source of the pool `resource`.
pub fn source(
    resource: &Resource,
    settings: PoolSettings,
    interval: Duration,
) -> Result<Polled<PoolPoll>, String> {
    settings.validate()?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let events = Arc::new(EventLog::new(resource.id.as_str()));
    let on_verdict: probe::OnVerdict = {
        let events = events.clone();
        Arc::new(move |backend, up, why| {
            let what = if up {
                format!("{backend} up again: {why}")
            } else {
                format!("{backend} down: {why}")
            };
            events.record(Some(&backend), what);
            Box::pin(async {})
        })
    };
    let file = settings.file_sd.clone().map(|path| FileSd {
        path,
        stamp: None,
        targets: Vec::new(),
        problem: None,
    });
    let dns = match &settings.dns {
        Some(name) => Some(DnsSd::new(name, settings.dns_server.as_deref())?),
        None => None,
    };
    Ok(Polled::new(
        info,
        Schedule::every(interval),
        PoolPoll {
            resource_name: resource.name.clone(),
            checker: probe::Checker::new(settings.check.clone(), on_verdict)?,
            settings,
            file,
            dns,
            events,
            series: super::BackendSeries::new(resource, METRICS, BACKEND_METRICS),
            details: None,
        },
    ))
}

pub struct PoolPoll {
    resource_name: String,
    settings: PoolSettings,
    checker: probe::Checker,
    file: Option<FileSd>,
    dns: Option<DnsSd>,
    events: Arc<EventLog>,
    series: super::BackendSeries,
    details: Option<serde_json::Value>,
}

impl PoolPoll {
    async fn discover(&mut self) -> Found {
        let mut backends: BTreeSet<String> = self.settings.targets.iter().cloned().collect();
        let mut problems = Vec::new();
        if let Some(file) = &mut self.file {
            file.refresh(&self.events).await;
            backends.extend(file.targets.iter().cloned());
            problems.extend(file.problem.clone());
        }
        if let Some(dns) = &mut self.dns {
            dns.refresh(&self.events).await;
            backends.extend(dns.targets.iter().cloned());
            problems.extend(dns.problem.clone());
        }
        while backends.len() > MAX_BACKENDS {
            backends.pop_last();
        }
        Found { backends, problems }
    }

    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let found = self.discover().await;
        let list: Vec<(String, String)> = found
            .backends
            .iter()
            .map(|b| (b.clone(), b.clone()))
            .collect();
        let first = !self.series.started();
        let (joined, left) = self.checker.follow(&list, |_| false);
        if !first {
            for backend in joined {
                self.events
                    .record(Some(&backend), format!("{backend} joined the pool"));
            }
        }
        for backend in left {
            self.events
                .record(Some(&backend), format!("{backend} left the pool"));
        }
        if found.backends.is_empty() {
            return Err(SourceError::new(match found.problems.first() {
                Some(problem) => format!("no backends: {problem}"),
                None => "no backends: discovery found none".to_owned(),
            }));
        }
        let states = self.checker.states();
        let names: Vec<String> = found.backends.iter().cloned().collect();
        let checked: Vec<&probe::CheckState> = names.iter().filter_map(|n| states.get(n)).collect();
        let up = checked.iter().filter(|c| c.health.up).count();
        let total = names.len();
        let passing_ms: Vec<f32> = checked
            .iter()
            .filter(|c| c.last.ok)
            .filter_map(|c| c.last.phases.total_ms)
            .collect();
        let response = (!passing_ms.is_empty())
            .then(|| passing_ms.iter().sum::<f32>() / passing_ms.len() as f32);
        let failed_now = checked.iter().filter(|c| !c.last.ok).count();
        let error_pct =
            (!checked.is_empty()).then(|| failed_now as f32 * 100.0 / checked.len() as f32);
        // Backends not checked yet count as up (checks start up).
        let up_all = up + (total - checked.len());
        let mut values = vec![
            response,
            error_pct,
            Some(up_all as f32 * 100.0 / total as f32),
            Some(up_all as f32),
            Some(total as f32),
        ];
        for name in &names {
            let state = states.get(name);
            values.push(Some(if state.is_none_or(|s| s.health.up) {
                1.0
            } else {
                0.0
            }));
            values.push(state.and_then(|s| s.last.phases.total_ms));
            values.push(state.map(|s| s.availability_pct() as f32));
        }
        let report = LbReport {
            version: None,
            pid: None,
            uptime_s: None,
            reloads: 0,
            backend: self.resource_name.clone(),
            backends: names
                .iter()
                .map(|name| BackendView {
                    name: name.clone(),
                    address: name.clone(),
                    status: match states.get(name) {
                        None => "not checked yet".to_owned(),
                        Some(s) if s.health.up => "UP".to_owned(),
                        Some(_) => "DOWN".to_owned(),
                    },
                    desired: None,
                    weight: None,
                    sessions: None,
                    queue: None,
                    rate: None,
                    response_ms: None,
                    check: states.get(name).map(probe::CheckState::view),
                })
                .collect(),
            events: self.events.recent(),
            problems: found.problems,
        };
        self.details = Some(serde_json::to_value(report).expect("a report serializes"));
        Ok(Tick {
            at,
            series: self.series.for_backends(names),
            values,
            top_processes: None,
        })
    }
}

impl Poll for PoolPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }

    fn details(&mut self) -> Option<serde_json::Value> {
        self.details.take()
    }

    fn marks(&mut self) -> Vec<SourceMark> {
        self.events.take_marks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_reads_json_and_yaml_and_says_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("perfpilot-file-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("targets.json");
        std::fs::write(
            &json,
            r#"[{"targets": ["10.0.0.1:80", "web:8080"], "labels": {"env": "prod"}}, {"targets": ["[::1]:81"]}]"#,
        )
        .unwrap();
        assert_eq!(
            read_file_sd(&json).unwrap(),
            ["10.0.0.1:80", "web:8080", "[::1]:81"]
        );
        let yaml = dir.join("targets.yml");
        std::fs::write(
            &yaml,
            "- targets:\n    - 10.0.0.2:80\n  labels:\n    env: prod\n",
        )
        .unwrap();
        assert_eq!(read_file_sd(&yaml).unwrap(), ["10.0.0.2:80"]);
        std::fs::write(&json, r#"[{"targets": ["no-port"]}]"#).unwrap();
        let err = read_file_sd(&json).unwrap_err();
        assert!(
            err.contains("group 1: target \"no-port\" is not host:port"),
            "{err}"
        );
        std::fs::write(&json, "[{").unwrap();
        assert!(read_file_sd(&json).unwrap_err().starts_with("file_sd "));
        // Only a regular file of at most 1 MiB: never an endless device, never too much.
        assert_eq!(
            read_file_sd(Path::new("/dev/zero")).unwrap_err(),
            "file_sd: must be a regular file of at most 1 MiB, /dev/zero is a character device"
        );
        std::fs::write(&json, vec![b' '; 1024 * 1024 + 1]).unwrap();
        assert!(read_file_sd(&json)
            .unwrap_err()
            .ends_with("is 1048577 bytes"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn settings_name_the_field() {
        let mut s = PoolSettings {
            targets: vec!["10.0.0.1:80".into()],
            file_sd: None,
            dns: None,
            dns_server: None,
            check: CheckSettings::default(),
            group: None,
        };
        assert_eq!(s.validate(), Ok(()));
        s.targets = vec![];
        assert_eq!(s.validate().unwrap_err().field, "targets");
        s.file_sd = Some("relative.json".into());
        assert_eq!(s.validate().unwrap_err().field, "file_sd");
        s.file_sd = None;
        s.dns = Some("web.internal".into());
        assert_eq!(s.validate().unwrap_err().field, "dns");
        s.dns = Some("_http._tcp.web.internal".into());
        assert_eq!(s.validate(), Ok(()));
        s.dns_server = Some("localhost".into());
        assert_eq!(s.validate().unwrap_err().field, "dns_server");
    }
}
