//! A fleet from a Prometheus-compatible store (`[[prometheus]]`): hosts discovered from a
//! selector (`up{job="node"}`), grouped by labels, each judged on node_exporter's CPU,
//! memory, disk and network (PromQL templates) and on metrics the user defines with their
//! own PromQL, against targets inherited default → group → host (`engine::fleet`).
//!
//! Efficient by design: one refresh is one query for the hosts plus one query per metric
//! for every host at once (aggregated `by (instance)`), on the store's scrape interval,
//! never faster; range queries pick a step under the store's 11,000 points per series and
//! are cached per step; every query spends from the store's budget per minute.
//!
//! The running source and the pages share one [`Fleet`] handle per store, found by its
//! resource id ([`handle`]): the source refreshes it, the server reads views from it and
//! tells it about target edits ([`Fleet::set_fleet`]).

pub mod api;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::fleet::{
    self, CellState, FleetMetric, FleetView, GroupBacktest, HostDetail, HostMetric, HostRow,
    Origin, RangeSeries, Scope,
};
use engine::model::{MetricKind, Resource, ResourceId, ResourceSettings, SourceSpec, Target};
use engine::series::{SeriesInfo, Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo};
use engine::sync::lock;
use serde::{Deserialize, Serialize};

use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::{Checked, MetricDef};
use crate::Refusal;
use api::{Failure, Store};

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "prometheus";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[prometheus]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "Prometheus fleet",
    family: engine::source::SourceFamily::Fleet,
    settle: engine::verdict::Settle {
        secs: 30,
        why: "a scrape interval (15 s by default) plus the lag of rate() windows",
    },
    toml_table: "prometheus",
    from_spec: kind::decode::<PrometheusSettings>,
    from_toml: kind::table::<PrometheusEntry>,
};
/// When the store does not publish its scrape interval (and none is configured).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// How long a host's metric is judged over unless `window_secs` says otherwise.
const DEFAULT_WINDOW_SECS: u32 = 300;
/// Samples kept per host and metric (the evaluation window is at most this many).
const RING: usize = 120;
/// Range results cached (per query, scope, step and end).
const CACHE_ENTRIES: usize = 64;

fn default_selector() -> String {
    "up{job=\"node\"}".into()
}

fn default_true() -> bool {
    true
}

fn default_budget() -> u32 {
    600
}

/// A store's source settings. Secrets are never here: `bearer_token_file`/`_env` or, with
/// `username`, `password_file`/`_env` name where they are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// The store's base URL: `http://prometheus:9090`, `https://vm.example.com/select/0/prometheus`.
    pub url: String,
    /// The series that lists the hosts, one per `instance`: `up{job="node"}`. A value of 0
    /// marks the host down.
    #[serde(default = "default_selector")]
    pub selector: String,
    /// Labels that group hosts: `["env", "role"]`.
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Basic authentication's user; the password is in `password_file` or `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// node_exporter's CPU, memory, disk and network for every host.
    #[serde(default = "default_true")]
    pub node_metrics: bool,
    /// Metrics of the user's own PromQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric: Vec<CustomMetric>,
    /// Refresh interval; by default the store's own scrape interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u32>,
    /// How long a host's metric is judged over (the target's statistic over this window);
    /// 5 minutes by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u32>,
    /// Queries per minute this perfpilot may send the store (refreshes, charts, backtests).
    #[serde(default = "default_budget")]
    pub query_budget_per_min: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `[[prometheus.metric]]`: a metric of every host from the user's PromQL, one series per
/// `instance` (`avg by (instance) (…)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetric {
    pub name: String,
    pub query: String,
    /// `%`, `ms`, `B/s`, `connections`…
    pub unit: String,
    /// `utilization` (0–100 %), `throughput` or `latency`; by default from the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One `[[prometheus]]` entry of the configuration file: a name and the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusEntry {
    pub name: String,
    pub url: String,
    #[serde(default = "default_selector")]
    pub selector: String,
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_true")]
    pub node_metrics: bool,
    #[serde(default)]
    pub metric: Vec<CustomMetric>,
    #[serde(default)]
    pub interval_secs: Option<u32>,
    #[serde(default)]
    pub window_secs: Option<u32>,
    #[serde(default = "default_budget")]
    pub query_budget_per_min: u32,
    #[serde(default)]
    pub group: Option<String>,
}

impl TableEntry for PrometheusEntry {
    type Settings = PrometheusSettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> PrometheusSettings {
        PrometheusSettings {
            url: self.url.clone(),
            selector: self.selector.clone(),
            group_by: self.group_by.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            bearer_token_env: self.bearer_token_env.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            node_metrics: self.node_metrics,
            metric: self.metric.clone(),
            interval_secs: self.interval_secs,
            window_secs: self.window_secs,
            query_budget_per_min: self.query_budget_per_min,
            group: self.group.clone(),
        }
    }
}

/// A node_exporter metric: its name, kind, unit and PromQL with `{M}` for the selector's
/// matchers and `{W}` for the rate window.
struct Template {
    name: &'static str,
    kind: MetricKind,
    unit: &'static str,
    query: &'static str,
}

const FILESYSTEMS: &str = r#"fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|autofs|fuse.*""#;

const NODE: &[Template] = &[
    Template {
        name: "cpu",
        kind: MetricKind::Utilization,
        unit: "%",
        query: r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"{M}}[{W}])))"#,
    },
    Template {
        name: "memory",
        kind: MetricKind::Utilization,
        unit: "%",
        query: r#"100 * (1 - max by (instance) (node_memory_MemAvailable_bytes{{M0}}) / max by (instance) (node_memory_MemTotal_bytes{{M0}}))"#,
    },
    Template {
        name: "disk",
        kind: MetricKind::Utilization,
        unit: "%",
        query: r#"100 * max by (instance) (1 - node_filesystem_avail_bytes{{FS}{M}} / node_filesystem_size_bytes{{FS}{M}})"#,
    },
    Template {
        name: "network",
        kind: MetricKind::Throughput,
        unit: "bytes/s",
        query: r#"sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"{M}}[{W}]) + rate(node_network_transmit_bytes_total{device!="lo"{M}}[{W}]))"#,
    },
];

/// A query with its rate window: `{W}` in node_exporter's templates.
fn with_window(query: &str, secs: u64) -> String {
    query.replace("{W}", &format!("{secs}s"))
}

/// The matchers inside a selector's braces (`job="node"` of `up{job="node"}`).
fn matchers(selector: &str) -> Result<&str, Refusal> {
    let selector = selector.trim();
    match (selector.find('{'), selector.rfind('}')) {
        (None, None) => Ok(""),
        (Some(open), Some(close)) if open < close && close == selector.len() - 1 => {
            Ok(selector[open + 1..close].trim().trim_end_matches(','))
        }
        _ => Err(Refusal::new(
            "selector",
            format!("{selector:?} is not a series selector such as up{{job=\"node\"}}"),
        )),
    }
}

/// The selector with more matchers (a host's `instance`, a group's labels).
fn narrowed(selector: &str, extra: &[(String, String)]) -> Result<String, String> {
    if extra.is_empty() {
        return Ok(selector.to_owned());
    }
    let inner = matchers(selector)?;
    let name = selector.trim().split('{').next().unwrap_or("").trim();
    let mut parts: Vec<String> = Vec::new();
    if !inner.is_empty() {
        parts.push(inner.to_owned());
    }
    for (label, value) in extra {
        parts.push(format!("{label}={}", quoted(value)));
    }
    Ok(format!("{name}{{{}}}", parts.join(",")))
}

/// A PromQL string literal.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kind_of(metric: &CustomMetric, i: usize) -> Result<MetricKind, Refusal> {
    Ok(match metric.kind.as_deref() {
        Some("utilization") => MetricKind::Utilization,
        Some("throughput") => MetricKind::Throughput,
        Some("latency") => MetricKind::Latency,
        Some(other) => {
            return Err(Refusal::new(
                format!("metric[{i}].kind"),
                format!("must be utilization, throughput or latency, got {other:?}"),
            ))
        }
        None if metric.unit == "%" => MetricKind::Utilization,
        None if metric.unit == "ms" => MetricKind::Latency,
        None => MetricKind::Throughput,
    })
}

/// Label names as Prometheus allows them.
fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PrometheusSettings {
    #[allow(clippy::too_many_lines)] // 137 lines today; split before it grows
    pub fn validate(&self) -> Result<(), Refusal> {
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .ok_or_else(|| {
                Refusal::new(
                    "url",
                    format!(
                        "must be the store's http:// or https:// base URL, got {:?}",
                        engine::redact::redact(&self.url)
                    ),
                )
            })?;
        if rest.is_empty()
            || rest.contains('@')
            || rest.contains('?')
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Refusal::new(
                "url",
                format!(
                    "not a usable base URL (no user:password@, no query string): {:?}",
                    engine::redact::redact(&self.url)
                ),
            ));
        }
        if rest.trim_end_matches('/').ends_with("/api/v1") {
            return Err(Refusal::new(
                "url",
                "give the store's base URL, without /api/v1",
            ));
        }
        matchers(&self.selector)?;
        if self.selector.trim().is_empty() {
            return Err(Refusal::new(
                "selector",
                "must name the series that lists the hosts, such as up{job=\"node\"}",
            ));
        }
        for (i, label) in self.group_by.iter().enumerate() {
            if !valid_label(label) || label == "instance" {
                return Err(Refusal::new(
                    format!("group_by[{i}]"),
                    format!("{label:?} is not a label to group by (letters, digits and _, not `instance`)"),
                ));
            }
        }
        if self.group_by.len() > 4 {
            return Err(Refusal::new("group_by", "at most 4 labels"));
        }
        let bearer = self.bearer_token_file.is_some() || self.bearer_token_env.is_some();
        let basic = self.password_file.is_some() || self.password_env.is_some();
        if self.bearer_token_file.is_some() && self.bearer_token_env.is_some() {
            return Err(Refusal::new(
                "bearer_token_file",
                "give the token in a file or an environment variable, not both",
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err(Refusal::new(
                "password_file",
                "give the password in a file or an environment variable, not both",
            ));
        }
        if bearer && (basic || self.username.is_some()) {
            return Err(Refusal::new(
                "bearer_token_file",
                "use a bearer token or a user and password, not both",
            ));
        }
        if basic && self.username.is_none() {
            return Err(Refusal::new(
                "username",
                "a password needs the user it belongs to",
            ));
        }
        let per_refresh = 1 + self.fleet_metrics().map(|m| m.len()).unwrap_or(0) as u32;
        if self.query_budget_per_min < per_refresh {
            return Err(Refusal::new(
                "query_budget_per_min",
                format!(
                    "one refresh takes {per_refresh} queries (the hosts and one per metric); the budget must allow at least that, got {}",
                    self.query_budget_per_min
                ),
            ));
        }
        if !(1..=100_000).contains(&self.query_budget_per_min) {
            return Err(Refusal::new(
                "query_budget_per_min",
                format!("must be within 1–100000, got {}", self.query_budget_per_min),
            ));
        }
        if let Some(secs) = self.interval_secs {
            if !(1..=3600).contains(&secs) {
                return Err(Refusal::new(
                    "interval_secs",
                    format!("must be within 1–3600, got {secs}"),
                ));
            }
        }
        if let Some(secs) = self.window_secs {
            if !(10..=86_400).contains(&secs) {
                return Err(Refusal::new(
                    "window_secs",
                    format!("must be within 10–86400, got {secs}"),
                ));
            }
        }
        if !self.node_metrics && self.metric.is_empty() {
            return Err(Refusal::new(
                "metric",
                "with node_metrics off, define at least one [[prometheus.metric]]",
            ));
        }
        for (i, m) in self.metric.iter().enumerate() {
            kind_of(m, i)?;
            if m.query.trim().is_empty() {
                return Err(Refusal::new(
                    format!("metric[{i}].query"),
                    "must be PromQL giving one series per instance",
                ));
            }
            if m.unit.trim().is_empty() || m.unit.len() > 16 {
                return Err(Refusal::new(
                    format!("metric[{i}].unit"),
                    "1–16 characters, such as % or ms",
                ));
            }
        }
        super::secret::validate_group(&self.group)?;
        let fleet = engine::fleet::Fleet {
            metrics: self.fleet_metrics()?,
            targets: Default::default(),
        };
        fleet
            .validate(&ResourceSettings::default())
            .map_err(|err| Refusal::new("metric", err.to_string()))
    }

    /// The metrics every host is judged on: node_exporter's, then the user's.
    pub fn fleet_metrics(&self) -> Result<Vec<FleetMetric>, Refusal> {
        let mut out: Vec<FleetMetric> = Vec::new();
        if self.node_metrics {
            out.extend(NODE.iter().map(|t| FleetMetric {
                name: t.name.into(),
                kind: t.kind,
                unit: t.unit.into(),
            }));
        }
        for (i, m) in self.metric.iter().enumerate() {
            out.push(FleetMetric {
                name: m.name.clone(),
                kind: kind_of(m, i)?,
                unit: m.unit.clone(),
            });
        }
        Ok(out)
    }

    /// Each metric's PromQL for this store, `{W}` standing for the rate window.
    fn templates(&self) -> Result<Vec<String>, Refusal> {
        let m = matchers(&self.selector)?;
        let with_comma = if m.is_empty() {
            String::new()
        } else {
            format!(",{m}")
        };
        let mut out = Vec::new();
        if self.node_metrics {
            for t in NODE {
                out.push(
                    t.query
                        .replace("{FS}", FILESYSTEMS)
                        .replace("{M0}", m)
                        .replace("{M}", &with_comma),
                );
            }
        }
        out.extend(self.metric.iter().map(|m| m.query.clone()));
        Ok(out)
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<PrometheusSettings, Refusal> {
        super::settings_of(spec)
    }

    /// Where the secret is: the bearer token, or the basic-auth password.
    pub fn secret_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        if self.username.is_some() {
            (self.password_file.as_ref(), self.password_env.as_ref())
        } else {
            (
                self.bearer_token_file.as_ref(),
                self.bearer_token_env.as_ref(),
            )
        }
    }

    pub fn keep_secret_in(&mut self, path: PathBuf) {
        if self.username.is_some() {
            self.password_file = Some(path);
            self.password_env = None;
        } else {
            self.bearer_token_file = Some(path);
            self.bearer_token_env = None;
        }
    }

    fn base(&self) -> String {
        self.url.trim_end_matches('/').to_owned()
    }

    /// The `Authorization` header with `secret` (read from where the settings say).
    fn authorization(&self, secret: Option<String>) -> Option<String> {
        use base64::Engine;
        let secret = secret?;
        Some(match &self.username {
            Some(user) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
            ),
            None => format!("Bearer {}", secret.trim()),
        })
    }

    fn store(&self, secret: Option<String>) -> Store {
        Store {
            base: self.base(),
            authorization: self.authorization(secret),
            client: crate::actuators::webhook::client(),
        }
    }
}

impl ConfiguredKind for PrometheusSettings {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "store"
    }

    fn spec(&self) -> SourceSpec {
        PrometheusSettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        PrometheusSettings::validate(self)
    }

    fn resource_id(&self, name: &str) -> Result<ResourceId, Refusal> {
        resource_id(name)
    }

    fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, Refusal> {
        resource(name, self, defaults)
    }

    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    fn check(&self, password: Option<String>) -> BoxFuture<'_, Result<Checked, Refusal>> {
        Box::pin(async move {
            let report = check(self, password).await?;
            Ok(Checked::found(format!(
                "Prometheus-compatible store ({} hosts, every {} s)",
                report.hosts,
                report.interval.as_secs()
            )))
        })
    }

    fn source(
        &self,
        resource: &Resource,
        interval: Duration,
        registries: &crate::Registries,
    ) -> Result<Box<dyn engine::source::runtime::Source>, String> {
        Ok(Box::new(source(
            resource,
            self.clone(),
            interval,
            registries.fleets.clone(),
        )?))
    }

    fn takes_password(&self) -> bool {
        true
    }

    /// The bearer token's, or with `username` the basic-auth password's.
    fn password_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        self.secret_location()
    }

    fn keep_password_in(&mut self, path: PathBuf) {
        self.keep_secret_in(path);
    }

    fn fleet_metrics(&self) -> Option<Vec<FleetMetric>> {
        PrometheusSettings::fleet_metrics(self).ok()
    }
}

pub fn resource_id(name: &str) -> Result<ResourceId, Refusal> {
    ResourceId::new(&format!("fleet:{name}")).map_err(|err| Refusal::new("name", err.to_string()))
}

const OWN: &[MetricDef] = &[
    MetricDef::new("breaching_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("query_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("hosts", None, "hosts"),
    MetricDef::new("hosts_down", None, "hosts"),
];

/// The resource a store is: `fleet:<name>`, its hosts judged over `window_secs` (5 minutes
/// by default: 20 refreshes at the usual 15 s), its own target on the share of hosts
/// breaching; its hosts' metrics and targets in `fleet`.
pub fn resource(
    name: &str,
    settings: &PrometheusSettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    let id = resource_id(name)?;
    let mut resource = Resource::new(id, engine::model::ResourceType::Fleet, name);
    resource.metrics = MetricDef::metrics(OWN);
    // The fleet's own standing: at most a tenth of its hosts past their targets. It is
    // what the fleet card shows, what alerts and the fleet's action follow, and what a
    // target edit's before/after compares.
    resource.target = Some(engine::model::Target {
        metric: "breaching_pct".into(),
        comparator: engine::model::Comparator::Le,
        value: 10.0,
        statistic: engine::model::Statistic::Mean,
        for_secs: 300,
    });
    resource.settings = defaults.clone();
    resource.settings.window_secs = settings.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
    resource.source = Some(settings.spec());
    resource.fleet = Some(Box::new(engine::fleet::Fleet {
        metrics: settings.fleet_metrics()?,
        targets: Default::default(),
    }));
    resource
        .validate()
        .map_err(|err| Refusal::of_engine("resource", err))?;
    Ok(resource)
}

/// What a test query found: the hosts the selector lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub hosts: usize,
    pub interval: Duration,
}

/// One test query of the selector and of every metric: unreachable (refused on `url`),
/// unauthorized (on `password`), bad PromQL (the store's own message) and "no series
/// match" (on `selector`, or `metric` naming the metric) are refused with the reason.
pub async fn check(
    settings: &PrometheusSettings,
    secret: Option<String>,
) -> Result<CheckReport, Refusal> {
    settings.validate()?;
    let store = settings.store(secret);
    let now = engine::time::unix_now_ms() as f64 / 1000.0;
    // The first query also proves the store is there and takes our credentials; only
    // the store refusing the query itself is the selector's fault.
    let hosts = store
        .query(&settings.selector, now)
        .await
        .map_err(|failure| match failure {
            Failure::Query(reason) => Refusal::new("selector", reason),
            Failure::Credentials(reason) => Refusal::new("password", reason),
            Failure::Other(reason) => Refusal::new("url", reason),
        })?;
    let with_instance = hosts
        .iter()
        .filter(|s| s.labels.contains_key("instance"))
        .count();
    if hosts.is_empty() {
        return Err(Refusal::new(
            "selector",
            format!("no series match {} in the store now", settings.selector),
        ));
    }
    if with_instance == 0 {
        return Err(Refusal::new(
            "selector",
            format!(
                "the series of {} have no `instance` label to tell hosts apart",
                settings.selector
            ),
        ));
    }
    let interval = interval_of(settings, &store).await;
    let names = settings.fleet_metrics()?;
    let window = rate_window(interval).as_secs();
    for (template, metric) in settings.templates()?.iter().zip(&names) {
        // node_exporter's metrics are in the list too, so the metric is named rather than
        // numbered (`metric[i]` numbers the user's own).
        store
            .query(&with_window(template, window), now)
            .await
            .map_err(|e| Refusal::new("metric", format!("`{}`: {e}", metric.name)))?;
    }
    Ok(CheckReport {
        hosts: with_instance,
        interval,
    })
}

async fn interval_of(settings: &PrometheusSettings, store: &Store) -> Duration {
    match settings.interval_secs {
        Some(secs) => Duration::from_secs(secs.into()),
        None => store
            .scrape_interval()
            .await
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_INTERVAL),
    }
}

/// Rates over four scrape intervals (Prometheus' advice), at least 10 s.
fn rate_window(interval: Duration) -> Duration {
    (interval * 4).max(Duration::from_secs(10))
}

/// The longest range a query's rates read (`rate`, `irate`, `increase`: `[5m]`, a
/// subquery's `[1h:1m]`), `{W}` standing for `window`; a rate whose range cannot be read
/// counts as `window`. `None` when the query takes no rate: a gauge (memory, disk) never
/// warms up.
fn rate_range(query: &str, window: Duration) -> Option<Duration> {
    let compact: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("rate(") && !compact.contains("increase(") {
        return None;
    }
    let longest = compact
        .split('[')
        .skip(1)
        .filter_map(|rest| {
            let range = rest.split([']', ':']).next().unwrap_or("");
            if range == "{W}" {
                Some(window)
            } else {
                promql_duration(range)
            }
        })
        .max();
    Some(longest.unwrap_or(window))
}

/// A PromQL duration (`90s`, `5m`, `1h30m`, `500ms`); `None` for anything else.
fn promql_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len): (u64, usize) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next()? {
                's' => (1_000, 1),
                'm' => (60_000, 1),
                'h' => (3_600_000, 1),
                'd' => (86_400_000, 1),
                'w' => (604_800_000, 1),
                'y' => (31_536_000_000, 1),
                _ => return None,
            }
        };
        total = total.checked_add(Duration::from_millis(n.checked_mul(unit_ms)?))?;
        rest = &rest[len..];
    }
    Some(total)
}

/// How long a metric's values warm up after its series' first sample: a `rate()` over
/// `[r]` right after a series appears (a new store, a new host, a series back after a
/// gap) holds only the series' first samples and extrapolates from them — a 20 % host
/// read 51 % — until `r` is full; one scrape interval more, as the first value we see is
/// itself a scrape or more after the first sample. `None` for a gauge.
fn warm_up(query: &str, window: Duration, interval: Duration) -> Option<Duration> {
    rate_range(query, window).map(|range| range + interval)
}

/// Whether a value read at `now_ms` is still warming up: its run of values began at
/// `first_ms` (`i64::MIN`: before anything this source read), less than `warm_up` ago.
fn is_warming(first_ms: Option<i64>, now_ms: i64, warm_up: Option<Duration>) -> bool {
    match (first_ms, warm_up) {
        (Some(first), Some(warm_up)) => {
            now_ms.saturating_sub(first) < i64::try_from(warm_up.as_millis()).unwrap_or(i64::MAX)
        }
        _ => false,
    }
}

/// Gaps the warm-up of every run of a range result's values (one every `step_secs`): a
/// run that begins inside the range (the series appeared, or came back after a gap) loses
/// its points within `warm_up` of its first point, which are extrapolated from its first
/// samples. A run already going at the range's first point began before it and is kept
/// whole. Charts and backtests so see warm-up as what it is: no data yet.
fn gap_warm_up(values: &mut [Option<f32>], step_secs: u64, warm_up: Duration) {
    let warm_ms = u64::try_from(warm_up.as_millis()).unwrap_or(u64::MAX);
    let mut before_range = true;
    let mut run: Option<usize> = None;
    for (k, value) in values.iter_mut().enumerate() {
        if value.is_none() {
            before_range = false;
            run = None;
            continue;
        }
        if before_range {
            continue;
        }
        let start = *run.get_or_insert(k);
        if ((k - start) as u64).saturating_mul(step_secs.saturating_mul(1000)) < warm_ms {
            *value = None;
        }
    }
}

/// Every running store's handle, by resource id: one set per process (in
/// [`crate::Registries`]), filled by the stores' sources, read by the server (fleet
/// pages, `/metrics`, the optimizer).
#[derive(Clone, Default)]
pub struct FleetHandles(Arc<Mutex<HashMap<String, Arc<Fleet>>>>);

impl std::fmt::Debug for FleetHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(lock(&self.0).keys()).finish()
    }
}

impl FleetHandles {
    /// The handle of the store `id` while its source runs.
    pub fn get(&self, id: &str) -> Option<Arc<Fleet>> {
        lock(&self.0).get(id).cloned()
    }

    /// Every running store's handle.
    pub fn all(&self) -> Vec<Arc<Fleet>> {
        lock(&self.0).values().cloned().collect()
    }

    /// Forgets the handles of stores the configuration no longer has.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.0).retain(|id, _| keep(id));
    }
}

struct Host {
    labels: BTreeMap<String, String>,
    group: String,
    up: bool,
    /// Per metric (in the fleet's order), the newest samples last.
    /// Kept contiguous after every change, so judging reads one slice. Values still
    /// warming up are never here (a gap in their place).
    rings: Vec<VecDeque<Option<f32>>>,
    /// Per metric: when its current run of values began (unix ms; `i64::MIN` when before
    /// anything this source read), for the warm-up of rates ([`is_warming`]).
    first_ms: Vec<Option<i64>>,
    /// Per metric: its newest value while it is warming up, shown muted and never judged.
    warming: Vec<Option<f32>>,
}

#[derive(Default)]
struct Observed {
    hosts: BTreeMap<String, Host>,
    refreshed_ms: Option<i64>,
    /// The last refresh's error, until one succeeds.
    error: Option<String>,
    query_ms: Option<f32>,
}

/// A token bucket of queries per minute.
struct Budget {
    per_min: f64,
    tokens: f64,
    at: Instant,
    /// When queries were sent, for queries per minute.
    sent: VecDeque<Instant>,
}

impl Budget {
    fn take(&mut self, n: usize) -> Result<(), String> {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_min / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_min);
        self.at = now;
        if self.tokens < n as f64 {
            return Err(format!(
                "the query budget of {} queries per minute for this store is spent; try again in {} s",
                self.per_min,
                ((n as f64 - self.tokens) * 60.0 / self.per_min).ceil()
            ));
        }
        self.tokens -= n as f64;
        for _ in 0..n {
            self.sent.push_back(now);
        }
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        Ok(())
    }
}

/// A cached range result: its query and scope, step, end and the result.
type Cached = (String, u64, i64, Arc<RangeSeries>);

/// One store's fleet: what the source last read and the configuration it is judged on.
pub struct Fleet {
    pub id: String,
    pub name: String,
    settings: PrometheusSettings,
    store: Store,
    /// Each metric's PromQL, `{W}` for the rate window.
    templates: Vec<String>,
    /// Each metric's warm-up at the refresh's rate window ([`warm_up`]); `None`: a gauge.
    warm_up: Vec<Option<Duration>>,
    interval: Duration,
    config: Mutex<(engine::fleet::Fleet, ResourceSettings)>,
    observed: Mutex<Observed>,
    /// Moves whenever what the hosts are judged on changes (a refresh, new targets), so
    /// the source's every-second tick judges again only then.
    generation: std::sync::atomic::AtomicU64,
    budget: Mutex<Budget>,
    cache: Mutex<VecDeque<Cached>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One host's cell in a judgement pass.
struct Judgement {
    state: CellState,
    value: Option<f64>,
    severity: Option<f64>,
    target: Option<(Target, Origin)>,
}

impl Fleet {
    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn group_by(&self) -> &[String] {
        &self.settings.group_by
    }

    /// Takes the configuration after a change (a target edit at any level, a restore).
    pub fn set_fleet(&self, fleet: engine::fleet::Fleet, settings: ResourceSettings) {
        let mut config = lock(&self.config);
        if config.0.targets == fleet.targets && config.1 == settings {
            return;
        }
        // The metric list is fixed for a running source (a new list restarts it).
        config.0.targets = fleet.targets;
        config.1 = settings;
        self.bump();
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn fleet(&self) -> engine::fleet::Fleet {
        lock(&self.config).0.clone()
    }

    /// Samples a host's metric is judged on: the fleet's `window_secs` (its source
    /// settings, so a change restarts the source with it) at the refresh interval.
    fn window_samples(&self) -> usize {
        let window = u64::from(self.settings.window_secs.unwrap_or(DEFAULT_WINDOW_SECS));
        ((window / self.interval.as_secs().max(1)) as usize).clamp(1, RING)
    }

    /// Judges one host's metric `i` with the configuration `config`.
    fn judge(
        &self,
        config: &(engine::fleet::Fleet, ResourceSettings),
        window: usize,
        instance: &str,
        host: &Host,
        i: usize,
    ) -> Judgement {
        let metric = &config.0.metrics[i].name;
        let ring = host.rings[i].as_slices().0;
        // The newest value while it warms up: shown, muted, never judged.
        let warming = host.warming.get(i).copied().flatten();
        let target = config.0.targets.effective(metric, &host.group, instance);
        match &target {
            _ if !host.up => Judgement {
                state: CellState::NoData,
                value: None,
                severity: None,
                target,
            },
            None => Judgement {
                state: if warming.is_some() {
                    CellState::Warming
                } else if ring.last().copied().flatten().is_some() {
                    CellState::NoTarget
                } else {
                    CellState::NoData
                },
                value: warming
                    .or_else(|| ring.last().copied().flatten())
                    .map(f64::from),
                severity: None,
                target,
            },
            Some((t, _)) => {
                let judged = fleet::judge_warming(ring, window, t, config.1.tolerance_pct, warming);
                Judgement {
                    state: judged.state(),
                    value: judged.observed,
                    severity: judged.severity,
                    target,
                }
            }
        }
    }

    /// The fleet page: every host judged now, worst-first, with its groups.
    pub fn view(&self) -> FleetView {
        let config = lock(&self.config).clone();
        let observed = lock(&self.observed);
        let window = self.window_samples();
        let mut hosts: Vec<HostRow> = observed
            .hosts
            .iter()
            .map(|(instance, host)| {
                let mut worst: Option<f64> = None;
                let cells = (0..config.0.metrics.len())
                    .map(|i| {
                        let j = self.judge(&config, window, instance, host, i);
                        if let Some(s) = j.severity {
                            worst = Some(worst.map_or(s, |w| w.max(s)));
                        }
                        fleet::Cell {
                            value: j.value.map(|v| v as f32),
                            state: j.state,
                        }
                    })
                    .collect();
                HostRow {
                    instance: instance.clone(),
                    group: host.group.clone(),
                    up: host.up,
                    worst: worst.map(|w| w as f32),
                    cells,
                }
            })
            .collect();
        // Breaching hosts by how far past, then hosts that are down, then the rest by
        // how close to their targets.
        let rank = |h: &HostRow| -> (u8, f32) {
            let tier = if h.breaching() {
                0
            } else if !h.up {
                1
            } else {
                2
            };
            (tier, -h.worst.unwrap_or(f32::NEG_INFINITY))
        };
        hosts.sort_by(|a, b| {
            rank(a)
                .partial_cmp(&rank(b))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.instance.cmp(&b.instance))
        });
        // Per group: hosts, breaching, down and warming up (counted apart, never breaching).
        let groups = fleet::group_summaries(&hosts);
        let stale = self.stale_reason(&observed);
        let refreshed_unix_ms = observed.refreshed_ms;
        drop(observed);
        FleetView {
            id: self.id.clone(),
            name: self.name.clone(),
            metrics: config.0.metrics.clone(),
            group_by: self.settings.group_by.clone(),
            refreshed_unix_ms,
            interval_secs: self.interval.as_secs() as u32,
            stale,
            groups,
            hosts,
            queries_per_min: self.queries_per_min(),
            query_budget_per_min: self.settings.query_budget_per_min,
        }
    }

    fn stale_reason(&self, observed: &Observed) -> Option<String> {
        let now = engine::time::unix_now_ms();
        let since = observed
            .refreshed_ms
            .map(|ms| format!("; showing what it said at {} UTC", clock_time(ms)))
            .unwrap_or_default();
        if let Some(error) = &observed.error {
            return Some(format!("{error}{since}"));
        }
        match observed.refreshed_ms {
            None => Some("waiting for the store's first answer".into()),
            Some(ms) if now - ms > 3 * self.interval.as_millis() as i64 + 10_000 => Some(format!(
                "the store has not been read for {} s{since}",
                (now - ms) / 1000
            )),
            _ => None,
        }
    }

    /// Queries sent in the last minute.
    pub fn queries_per_min(&self) -> f64 {
        let mut budget = lock(&self.budget);
        let now = Instant::now();
        while budget
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            budget.sent.pop_front();
        }
        budget.sent.len() as f64
    }

    /// One host with every metric's effective target and where it comes from.
    pub fn host(&self, instance: &str) -> Option<HostDetail> {
        let config = lock(&self.config).clone();
        let observed = lock(&self.observed);
        let host = observed.hosts.get(instance)?;
        let window = self.window_samples();
        let metrics = (0..config.0.metrics.len())
            .map(|i| {
                let j = self.judge(&config, window, instance, host, i);
                let metric = config.0.metrics[i].clone();
                let inherited = config.0.targets.inherited(
                    &Scope::Host(instance.to_owned()),
                    &metric.name,
                    &host.group,
                );
                HostMetric {
                    metric,
                    observed: j.value,
                    state: j.state,
                    target: j.target,
                    inherited,
                }
            })
            .collect();
        Some(HostDetail {
            instance: instance.to_owned(),
            group: host.group.clone(),
            labels: host.labels.clone(),
            up: host.up,
            metrics,
        })
    }

    /// The hosts of a group (`*`: all).
    pub fn members(&self, group: &str) -> Vec<String> {
        lock(&self.observed)
            .hosts
            .iter()
            .filter(|(_, h)| group == fleet::ALL_HOSTS || h.group == group)
            .map(|(i, _)| i.clone())
            .collect()
    }

    /// The hosts past their targets, worst first, at most `limit`: what a fleet's action
    /// is told.
    pub fn breaching_hosts(&self, limit: usize) -> Vec<engine::actions::HostBreach> {
        let config = lock(&self.config).clone();
        let observed = lock(&self.observed);
        let window = self.window_samples();
        let mut out: Vec<(f64, engine::actions::HostBreach)> = Vec::new();
        for (instance, host) in &observed.hosts {
            for i in 0..config.0.metrics.len() {
                let j = self.judge(&config, window, instance, host, i);
                if let (CellState::Breached, Some(value), Some((target, _))) =
                    (j.state, j.value, &j.target)
                {
                    out.push((
                        j.severity.unwrap_or(0.0),
                        engine::actions::HostBreach {
                            instance: instance.clone(),
                            group: host.group.clone(),
                            metric: config.0.metrics[i].name.clone(),
                            observed: value,
                            target: target.value,
                        },
                    ));
                }
            }
        }
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        // One entry per host: its worst metric.
        let mut seen = std::collections::HashSet::new();
        out.into_iter()
            .filter(|(_, h)| seen.insert(h.instance.clone()))
            .map(|(_, h)| h)
            .take(limit)
            .collect()
    }

    /// Every host × metric with its effective target, for `/metrics`.
    pub fn export(&self) -> Vec<ExportRow> {
        let config = lock(&self.config).clone();
        let observed = lock(&self.observed);
        let window = self.window_samples();
        let mut out = Vec::with_capacity(observed.hosts.len() * config.0.metrics.len());
        for (instance, host) in &observed.hosts {
            for i in 0..config.0.metrics.len() {
                let j = self.judge(&config, window, instance, host, i);
                // A value warming up is not a reading to export.
                let value = j.value.filter(|_| j.state != CellState::Warming);
                out.push(ExportRow {
                    instance: instance.clone(),
                    group: host.group.clone(),
                    metric: config.0.metrics[i].name.clone(),
                    target: j.target.map(|(t, o)| (t.value, o)),
                    value,
                    state: j.state,
                });
            }
        }
        out
    }

    /// One metric over the last `range_secs` for `scope`'s hosts (a host, a group, every
    /// host), at a step giving about `points` points (never more than the store's
    /// limit), cached per step. `None` for `metric` means the selector's own series.
    pub async fn range(
        &self,
        metric: &str,
        scope: &Scope,
        range_secs: u64,
        points: u64,
    ) -> Result<Arc<RangeSeries>, String> {
        let config = lock(&self.config).0.clone();
        let i = config
            .metrics
            .iter()
            .position(|m| m.name == metric)
            .ok_or_else(|| format!("metric: `{metric}` is not a metric of this fleet"))?;
        let step = fleet::step_for(range_secs, self.interval.as_secs().max(1), points);
        let now = engine::time::unix_now_ms() / 1000;
        let end = now - now.rem_euclid(step as i64);
        let start = end - (range_secs as i64 / step as i64) * step as i64;
        // Keyed by the whole span: ranges of one step (a chart and a backtest) differ.
        let key = format!("{metric}\u{0}{scope:?}\u{0}{range_secs}");
        if let Some(hit) = lock(&self.cache)
            .iter()
            .find(|(k, s, e, _)| *k == key && *s == step && *e == end)
        {
            return Ok(hit.3.clone());
        }
        let extra = self.narrowing(scope)?;
        // A rate over at least one step, so a coarse step averages instead of sampling.
        let window = rate_window(self.interval).as_secs().max(step);
        let metric_query = with_window(&self.templates[i], window);
        let query = match extra.is_empty() {
            true => metric_query,
            false => format!(
                "({metric_query}) and on (instance) {}",
                narrowed(&self.settings.selector, &extra)?
            ),
        };
        // A rate's first range after its series appears is extrapolated: left out
        // ([`gap_warm_up`]). Read from a warm-up before `start` (a few more points), so a
        // run already going there is past its warm-up at `start`, and one beginning later
        // is seen beginning.
        let warm = self.range_warm_up(i, step);
        let lead = warm.map_or(0, |w| {
            w.as_millis().div_ceil(u128::from(step) * 1000) as usize
        });
        let read_from = start - (lead as i64) * step as i64;
        lock(&self.budget).take(1)?;
        let ranges = self.store.query_range(&query, read_from, end, step).await?;
        let points = ((end - start) / step as i64) as usize + 1;
        let read = points + lead;
        let mut hosts = BTreeMap::new();
        for r in ranges {
            let Some(instance) = r.labels.get("instance") else {
                continue;
            };
            let mut values = vec![None; read];
            for (t, v) in r.points {
                let k = ((t as i64 - read_from) as f64 / step as f64).round();
                if (0.0..read as f64).contains(&k) {
                    values[k as usize] = v.map(|v| v as f32);
                }
            }
            if let Some(warm) = warm {
                gap_warm_up(&mut values, step, warm);
            }
            values.drain(..lead);
            // A series with nothing left in the range is not in it.
            if values.iter().any(Option::is_some) {
                hosts.insert(instance.clone(), values);
            }
        }
        let series = Arc::new(RangeSeries {
            start_secs: start,
            step_secs: step,
            points,
            hosts,
        });
        let mut cache = lock(&self.cache);
        cache.retain(|(k, s, e, _)| !(*k == key && *s == step && *e != end));
        cache.push_back((key, step, end, series.clone()));
        while cache.len() > CACHE_ENTRIES {
            cache.pop_front();
        }
        Ok(series)
    }

    /// Metric `i`'s warm-up in a range result at `step_secs` (its rate over the rate
    /// window, or a step when coarser: [`Fleet::range`]); `None` for a gauge.
    fn range_warm_up(&self, i: usize, step_secs: u64) -> Option<Duration> {
        let window = rate_window(self.interval).as_secs().max(step_secs);
        warm_up(
            &self.templates[i],
            Duration::from_secs(window),
            self.interval,
        )
    }

    /// The matchers that narrow the selector to `scope`'s hosts. A group key must name
    /// only the fleet's `group_by` labels, in their order (it came from a URL).
    fn narrowing(&self, scope: &Scope) -> Result<Vec<(String, String)>, String> {
        Ok(match scope {
            Scope::Default => Vec::new(),
            Scope::Host(instance) => vec![("instance".into(), instance.clone())],
            Scope::Group(group) => {
                let pairs: Vec<(String, String)> = group
                    .split(',')
                    .map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    })
                    .collect::<Option<_>>()
                    .unwrap_or_default();
                let labels: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                if labels.is_empty() || labels != self.settings.group_by {
                    return Err(format!(
                        "key: {group:?} is not a group of this fleet (groups are {} values)",
                        self.settings
                            .group_by
                            .iter()
                            .map(|l| format!("{l}=…"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
                pairs
            }
        })
    }

    /// "Would have been breached on N of M hosts, X % of the time": `target` replayed over
    /// every host of `group` for the last `range_secs`.
    pub async fn group_backtest(
        &self,
        group: &str,
        target: &Target,
        range_secs: u64,
    ) -> Result<(GroupBacktest, u64), String> {
        let scope = if group == fleet::ALL_HOSTS {
            Scope::Default
        } else {
            Scope::Group(group.to_owned())
        };
        let series = self
            .range(&target.metric, &scope, range_secs, 1_440)
            .await?;
        let hosts: Vec<Vec<Option<f32>>> = series.hosts.values().cloned().collect();
        let result = fleet::group_backtest(&hosts, series.step_secs as u32, target)
            .map_err(|e| e.to_string())?;
        Ok((result, series.step_secs))
    }

    /// One refresh: the hosts, then every metric for all of them.
    async fn refresh(&self) -> Result<(), String> {
        let started = Instant::now();
        lock(&self.budget).take(1 + self.templates.len())?;
        let now = engine::time::unix_now_ms() as f64 / 1000.0;
        let listed = self.store.query(&self.settings.selector, now).await?;
        let mut values: Vec<HashMap<String, Option<f64>>> = Vec::new();
        let metrics = lock(&self.config).0.metrics.clone();
        let window = rate_window(self.interval).as_secs();
        for (template, metric) in self.templates.iter().zip(&metrics) {
            let samples = self
                .store
                .query(&with_window(template, window), now)
                .await
                .map_err(|e| format!("metric `{}`: {e}", metric.name))?;
            values.push(
                samples
                    .into_iter()
                    .filter_map(|s| Some((s.labels.get("instance")?.clone(), s.value)))
                    .collect(),
            );
        }
        let mut observed = lock(&self.observed);
        let mut seen = std::collections::HashSet::new();
        let now_ms = (now * 1000.0) as i64;
        // Unreachable for longer than a rate window: the store may have restarted, and its
        // rates then start over from new samples, so every run of values starts anew.
        let restarted = observed.error.is_some()
            && observed.refreshed_ms.is_some_and(|ms| {
                now_ms - ms
                    > i64::try_from(rate_window(self.interval).as_millis()).unwrap_or(i64::MAX)
            });
        for sample in listed {
            let Some(instance) = sample.labels.get("instance").cloned() else {
                continue;
            };
            let group = fleet::group_key(&sample.labels, &self.settings.group_by);
            let up = sample.value.is_some_and(|v| v != 0.0);
            let n = values.len();
            let host = observed
                .hosts
                .entry(instance.clone())
                .or_insert_with(|| Host {
                    labels: BTreeMap::new(),
                    group: group.clone(),
                    up,
                    rings: vec![VecDeque::with_capacity(RING); n],
                    first_ms: vec![None; n],
                    warming: vec![None; n],
                });
            host.labels = sample
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            host.group = group;
            host.up = up;
            for (i, by_host) in values.iter().enumerate() {
                let value = by_host.get(&instance).copied().flatten().map(|v| v as f32);
                // A run of values begins with the first one seen after none (a new host,
                // a gap: the store had too few samples for a rate) or after a restart.
                match value {
                    None => host.first_ms[i] = None,
                    Some(_) if host.first_ms[i].is_none() || restarted => {
                        host.first_ms[i] = Some(now_ms)
                    }
                    Some(_) => {}
                }
                let warming =
                    value.filter(|_| is_warming(host.first_ms[i], now_ms, self.warm_up[i]));
                host.warming[i] = warming;
                // A warming value is not data: a gap in its place. The first real value of
                // a ring that holds none starts it, as a store younger than the window has
                // nothing before (not a gap of the host's).
                let real = if warming.is_some() { None } else { value };
                let ring = &mut host.rings[i];
                if real.is_some() && !ring.iter().any(Option::is_some) {
                    ring.clear();
                }
                if ring.len() == RING {
                    ring.pop_front();
                }
                ring.push_back(real);
                ring.make_contiguous();
            }
            seen.insert(instance);
        }
        // A host the selector no longer lists is gone (not down: `up` would say so).
        observed.hosts.retain(|instance, _| seen.contains(instance));
        observed.refreshed_ms = Some(engine::time::unix_now_ms());
        observed.error = None;
        observed.query_ms = Some(started.elapsed().as_secs_f32() * 1000.0);
        drop(observed);
        self.bump();
        Ok(())
    }

    /// Fills every host's rings from one range query per metric over the evaluation
    /// window, so statuses are right from the first page, not after 5 minutes.
    async fn prefill(&self) -> Result<(), String> {
        let config = lock(&self.config).clone();
        let window_secs = u64::from(self.settings.window_secs.unwrap_or(DEFAULT_WINDOW_SECS))
            .max(self.interval.as_secs());
        // A few dozen points are enough to judge a window on, and keep the first read of
        // a thousand hosts small.
        let samples = (self.window_samples() as u64).min(30);
        let mut filled: Vec<Arc<RangeSeries>> = Vec::new();
        for m in &config.0.metrics {
            filled.push(
                self.range(&m.name, &Scope::Default, window_secs, samples)
                    .await?,
            );
        }
        let mut observed = lock(&self.observed);
        let now_ms = engine::time::unix_now_ms();
        for (instance, host) in observed.hosts.iter_mut() {
            for (i, series) in filled.iter().enumerate() {
                let Some(values) = series.hosts.get(instance) else {
                    continue;
                };
                // The newest value is the refresh's own; the range adds the ones before,
                // from the host's first sample on (a store younger than the window has
                // nothing before, which is not a gap of the host's). The range has its
                // warm-ups gapped already.
                let ring = &mut host.rings[i];
                let mut newest = ring.pop_back().flatten();
                let before = &values[..values.len().saturating_sub(1)];
                let first = before
                    .iter()
                    .position(Option::is_some)
                    .unwrap_or(before.len());
                // The refresh took its first sight of each value as the start of its run;
                // the range knows better: the run going at its end is past its warm-up
                // from the run's first point kept (the range gapped what came before), so
                // it began a warm-up before that point at the latest.
                let seen_now = newest.is_some() || host.warming[i].is_some();
                if seen_now && before.last().is_some_and(Option::is_some) {
                    let start = before
                        .iter()
                        .rposition(Option::is_none)
                        .map_or(0, |k| k + 1);
                    let kept_ms =
                        (series.start_secs + start as i64 * series.step_secs as i64) * 1000;
                    let warm_ms = self
                        .range_warm_up(i, series.step_secs)
                        .map_or(0, |w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
                    host.first_ms[i] = Some(kept_ms.saturating_sub(warm_ms));
                    if !is_warming(host.first_ms[i], now_ms, self.warm_up[i]) {
                        if let Some(value) = host.warming[i].take() {
                            newest = Some(value);
                        }
                    }
                }
                ring.clear();
                ring.extend(before[first..].iter().copied());
                ring.push_back(newest);
                while ring.len() > RING {
                    ring.pop_front();
                }
                ring.make_contiguous();
            }
        }
        drop(observed);
        self.bump();
        Ok(())
    }
}

fn clock_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A host's metric for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub instance: String,
    pub group: String,
    pub metric: String,
    pub target: Option<(f64, Origin)>,
    pub value: Option<f64>,
    pub state: CellState,
}

/// The running source of `resource`: refreshes its [`Fleet`] on the store's interval and
/// ticks the store's own series every `tick` (the monitor's interval) between refreshes.
pub fn source(
    resource: &Resource,
    settings: PrometheusSettings,
    tick: Duration,
    handles: FleetHandles,
) -> Result<Polled<FleetPoll>, String> {
    settings.validate()?;
    let (file, env) = settings.secret_location();
    // Blocking but bounded (a regular file of at most 64 KiB, never a FIFO): sources are
    // built on the blocking pool (`ConfiguredSources::reconcile_sources`).
    let secret = super::secret::read_blocking(&file.cloned(), &env.cloned()).map_err(|e| {
        if settings.username.is_none() {
            e.replace("password_file", "bearer_token_file")
                .replace("password_env", "bearer_token_env")
        } else {
            e
        }
    });
    let fleet_config = resource
        .fleet
        .clone()
        .ok_or_else(|| format!("resource `{}` is not a fleet", resource.id))?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let store = settings.store(secret.clone().ok().flatten());
    Ok(Polled::new(
        info,
        Schedule::every(tick),
        FleetPoll {
            resource_id: resource.id.to_string(),
            name: resource.name.clone(),
            settings,
            store,
            secret_problem: secret.err(),
            config: (*fleet_config, resource.settings.clone()),
            series: MetricDef::series(OWN, resource),
            fleet: None,
            handles,
            next_refresh: None,
            last: None,
        },
    ))
}

pub struct FleetPoll {
    resource_id: String,
    name: String,
    settings: PrometheusSettings,
    store: Store,
    secret_problem: Option<String>,
    config: (engine::fleet::Fleet, ResourceSettings),
    series: Arc<[SeriesInfo]>,
    fleet: Option<Arc<Fleet>>,
    /// Where `fleet` is registered while this source runs.
    handles: FleetHandles,
    next_refresh: Option<Instant>,
    /// The fleet's generation last judged, and the tick values it gave.
    last: Option<(u64, Vec<Option<f32>>)>,
}

impl FleetPoll {
    /// The handle, made on the first tick (the store's interval is asked for once).
    async fn fleet(&mut self) -> Result<Arc<Fleet>, String> {
        if let Some(fleet) = &self.fleet {
            return Ok(fleet.clone());
        }
        if let Some(problem) = &self.secret_problem {
            return Err(problem.clone());
        }
        let interval = interval_of(&self.settings, &self.store).await;
        let templates = self.settings.templates()?;
        let warm_ups: Vec<Option<Duration>> = templates
            .iter()
            .map(|t| warm_up(t, rate_window(interval), interval))
            .collect();
        let fleet = Arc::new(Fleet {
            id: self.resource_id.clone(),
            name: self.name.clone(),
            settings: self.settings.clone(),
            store: self.store.clone(),
            templates,
            warm_up: warm_ups,
            interval,
            config: Mutex::new(self.config.clone()),
            observed: Mutex::default(),
            generation: Default::default(),
            budget: Mutex::new(Budget {
                per_min: self.settings.query_budget_per_min.into(),
                tokens: self.settings.query_budget_per_min.into(),
                at: Instant::now(),
                sent: VecDeque::new(),
            }),
            cache: Mutex::default(),
        });
        lock(&self.handles.0).insert(self.resource_id.clone(), fleet.clone());
        self.fleet = Some(fleet.clone());
        Ok(fleet)
    }

    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let fleet = self.fleet().await.map_err(SourceError::new)?;
        let due = self.next_refresh.is_none_or(|t| Instant::now() >= t);
        if due {
            let first = lock(&fleet.observed).refreshed_ms.is_none();
            let refreshed = fleet.refresh().await;
            if let Err(error) = refreshed {
                lock(&fleet.observed).error = Some(error.clone());
                return Err(SourceError::new(error));
            }
            self.next_refresh = Some(Instant::now() + fleet.interval);
            if first {
                if let Err(error) = fleet.prefill().await {
                    tracing::warn!(fleet = %self.resource_id, %error, "Cannot read the fleet's recent history; statuses start from now");
                }
            }
        }
        let stale = {
            let observed = lock(&fleet.observed);
            fleet.stale_reason(&observed)
        };
        if let Some(stale) = stale {
            return Err(SourceError::new(stale));
        }
        // Between refreshes and edits the hosts are judged the same: tick the last values.
        let generation = fleet.generation();
        let values = match &self.last {
            Some((judged, values)) if *judged == generation => values.clone(),
            _ => {
                let view = fleet.view();
                let hosts = view.hosts.len();
                let down = view.hosts.iter().filter(|h| !h.up).count();
                let breaching = view.hosts.iter().filter(|h| h.breaching()).count();
                // Of the hosts judged: one still warming up and not breaching on another
                // metric is not judged yet (not enough data), so not in the share.
                let judged = view
                    .hosts
                    .iter()
                    .filter(|h| h.breaching() || !h.warming())
                    .count();
                let breaching_pct =
                    (judged > 0).then(|| (breaching as f64 * 100.0 / judged as f64) as f32);
                let query_ms = lock(&fleet.observed).query_ms;
                let values = vec![
                    breaching_pct,
                    query_ms,
                    Some(hosts as f32),
                    Some(down as f32),
                ];
                self.last = Some((generation, values.clone()));
                values
            }
        };
        Ok(Tick {
            at,
            series: self.series.clone(),
            values,
            top_processes: None,
        })
    }
}

impl Drop for FleetPoll {
    fn drop(&mut self) {
        // The source stopped (removed, or restarted with new settings): its handle goes
        // with it, unless a newer source of the same fleet registered its own.
        if let Some(mine) = &self.fleet {
            let mut fleets = lock(&self.handles.0);
            if fleets
                .get(&self.resource_id)
                .is_some_and(|f| Arc::ptr_eq(f, mine))
            {
                fleets.remove(&self.resource_id);
            }
        }
    }
}

impl Poll for FleetPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PrometheusSettings {
        serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9090"})).unwrap()
    }

    #[test]
    fn templates_carry_the_selector_matchers() {
        let s = PrometheusSettings {
            selector: r#"up{job="node",env!="dev"}"#.into(),
            ..settings()
        };
        let q: Vec<String> = s
            .templates()
            .unwrap()
            .iter()
            .map(|t| with_window(t, 60))
            .collect();
        assert_eq!(
            q[0],
            r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",job="node",env!="dev"}[60s])))"#
        );
        assert!(
            q[1].contains(r#"node_memory_MemTotal_bytes{job="node",env!="dev"}"#),
            "{}",
            q[1]
        );
        assert!(
            q[2].contains(r#"fuse.*",job="node",env!="dev"}"#),
            "{}",
            q[2]
        );
        let bare = settings().templates().unwrap();
        assert!(
            bare[1].contains("node_memory_MemTotal_bytes{job=\"node\"}"),
            "{}",
            bare[1]
        );
        let none = PrometheusSettings {
            selector: "node_uname_info".into(),
            ..settings()
        };
        let q = none.templates().unwrap();
        assert!(
            q[0].contains(r#"{mode="idle"}"#) && q[1].contains("MemTotal_bytes{}"),
            "{q:?}"
        );
    }

    #[test]
    fn rates_warm_up_for_their_range_and_a_scrape_interval_and_gauges_never() {
        let interval = Duration::from_secs(15);
        let window = rate_window(interval);
        assert_eq!(window, Duration::from_secs(60));
        let warm = |q: &str| warm_up(q, window, interval).map(|d| d.as_secs());
        // node_exporter's: CPU and network are rates over the window; memory and disk
        // are gauges.
        let node = settings().templates().unwrap();
        assert_eq!(
            node.iter().map(|t| warm(t.as_str())).collect::<Vec<_>>(),
            vec![Some(75), None, None, Some(75)]
        );
        // At a 1 s interval the window is at least 10 s.
        assert_eq!(
            warm_up(
                &node[0],
                rate_window(Duration::from_secs(1)),
                Duration::from_secs(1)
            ),
            Some(Duration::from_secs(11))
        );
        // A user's PromQL: its own range, the longest one, spaces allowed.
        assert_eq!(
            warm("sum by (instance) (rate(http_requests_total[5m]))"),
            Some(315)
        );
        assert_eq!(warm("avg by (instance) (irate (x_total[30s]))"), Some(45));
        assert_eq!(
            warm("max by (instance) (increase(a_total[1h30m]) / rate(b_total[90s]))"),
            Some(5415)
        );
        assert_eq!(warm("max_over_time(rate(x_total[1m])[10m:1m])"), Some(615));
        assert_eq!(warm(r#"rate(x_total{dev=~"[a-z]+"}[2m])"#), Some(135));
        assert_eq!(warm("rate(x_total[500ms])"), Some(15));
        // A range it cannot read counts as the window; no rate, no warm-up.
        assert_eq!(warm("rate(x_total[$range])"), Some(75));
        assert_eq!(warm("max by (instance) (fleet_load)"), None);
        assert_eq!(promql_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(promql_duration("5"), None);
        assert_eq!(promql_duration(""), None);

        // Warming while less than the warm-up has passed since the run's first value.
        let w = Some(Duration::from_secs(75));
        assert!(is_warming(Some(1_000_000), 1_000_000 + 74_999, w));
        assert!(!is_warming(Some(1_000_000), 1_000_000 + 75_000, w));
        assert!(!is_warming(Some(i64::MIN), 0, w), "before anything read");
        assert!(!is_warming(None, 0, w));
        assert!(!is_warming(Some(0), 0, None), "a gauge never warms up");
    }

    #[test]
    fn a_range_gaps_each_runs_warm_up_unless_it_began_before_the_range() {
        let v = |x: f32| Some(x);
        // A 60 s warm-up at 15 s steps: a run's first four points go.
        let warm = Duration::from_secs(60);
        // Going at the range's first point: kept whole.
        let mut whole = vec![v(20.0); 6];
        gap_warm_up(&mut whole, 15, warm);
        assert_eq!(whole, vec![v(20.0); 6]);
        // Appearing inside the range (the store or the host is new), then back after a gap.
        let mut values = vec![
            None,
            v(51.0),
            v(40.0),
            v(30.0),
            v(25.0),
            v(20.0),
            v(20.0),
            None,
            v(45.0),
            v(20.0),
        ];
        gap_warm_up(&mut values, 15, warm);
        assert_eq!(
            values,
            vec![
                None,
                None,
                None,
                None,
                None,
                v(20.0),
                v(20.0),
                None,
                None,
                None
            ]
        );
        // A step coarser than the warm-up loses the run's first point only.
        let mut coarse = vec![None, v(51.0), v(20.0)];
        gap_warm_up(&mut coarse, 120, Duration::from_secs(75));
        assert_eq!(coarse, vec![None, None, v(20.0)]);
    }

    #[test]
    fn narrowing_adds_matchers_and_quotes_values() {
        assert_eq!(
            narrowed(
                r#"up{job="node"}"#,
                &[("instance".into(), "a\"b:9100".into())]
            )
            .unwrap(),
            r#"up{job="node",instance="a\"b:9100"}"#
        );
        assert_eq!(
            narrowed("node_uname_info", &[("env".into(), "prod".into())]).unwrap(),
            r#"node_uname_info{env="prod"}"#
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = |f: fn(&mut PrometheusSettings)| {
            let mut s = settings();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(bad(|s| s.url = "prometheus:9090".into()).starts_with("url:"));
        assert!(bad(|s| s.url = "http://u:p@host:9090".into()).starts_with("url:"));
        // The refusal quotes the URL without its password.
        let echoed = bad(|s| s.url = "http://perf:SECRET@127.0.0.1:9090".into());
        assert!(!echoed.contains("SECRET"), "{echoed}");
        assert!(
            echoed.contains("http://perf:***@127.0.0.1:9090"),
            "{echoed}"
        );
        assert!(bad(|s| s.url = "http://host:9090/api/v1".into()).starts_with("url:"));
        assert!(bad(|s| s.selector = "up{job=\"node\"".into()).starts_with("selector:"));
        assert!(bad(|s| s.group_by = vec!["env-name".into()]).starts_with("group_by[0]:"));
        assert!(bad(|s| s.password_env = Some("X".into())).starts_with("username:"));
        assert!(bad(|s| {
            s.bearer_token_env = Some("T".into());
            s.username = Some("u".into());
        })
        .starts_with("bearer_token_file:"));
        assert!(bad(|s| s.query_budget_per_min = 0).starts_with("query_budget_per_min:"));
        // One refresh is the hosts plus four node_exporter metrics.
        let err = bad(|s| s.query_budget_per_min = 4);
        assert!(err.contains("one refresh takes 5 queries"), "{err}");
        assert!(bad(|s| s.metric = vec![CustomMetric {
            name: "cpu".into(),
            query: "x".into(),
            unit: "%".into(),
            kind: None
        }])
        .contains("defined twice"));
        settings().validate().unwrap();
    }

    #[test]
    fn the_budget_refuses_past_its_rate_and_says_when_to_retry() {
        let mut b = Budget {
            per_min: 6.0,
            tokens: 6.0,
            at: Instant::now(),
            sent: VecDeque::new(),
        };
        b.take(5).unwrap();
        let err = b.take(2).unwrap_err();
        assert!(err.contains("6 queries per minute"), "{err}");
        assert!(
            err.contains("try again in 10 s") || err.contains("try again in 9 s"),
            "{err}"
        );
        assert_eq!(b.sent.len(), 5);
    }
}
