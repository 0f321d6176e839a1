//! Sources: one module per kind of thing perfpilot reads, each with its configuration next
//! to its code. Every one is an [`engine::source`] run by the engine's source runtime.
//!
//! [`Configured`] is the one place that knows every kind a resource's source spec can
//! name (databases, caches, load balancers): adding, checking, starting and describing a configured source
//! all go through it, so the server has one path for all of them.

use std::path::PathBuf;
use std::time::Duration;

use engine::model::{Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::source::runtime::Source;

pub mod cache;
pub mod haproxy;
pub mod host;
pub mod memcached;
pub mod nginx;
pub mod pool;
pub mod postgres;
pub mod probe;
pub mod prometheus;
pub mod push;
pub mod redis;
pub mod secret;

/// A metric of a configured source's resource, with its kind (when a target may be set
/// on it) and unit.
pub(crate) struct MetricDef {
    pub name: &'static str,
    pub kind: Option<engine::model::MetricKind>,
    pub unit: &'static str,
}

impl MetricDef {
    pub const fn new(
        name: &'static str,
        kind: Option<engine::model::MetricKind>,
        unit: &'static str,
    ) -> MetricDef {
        MetricDef { name, kind, unit }
    }

    /// The resource's metrics: those a target may be set on.
    pub fn metrics(defs: &[MetricDef]) -> Vec<engine::model::Metric> {
        defs.iter()
            .filter_map(|m| Some(engine::model::Metric::new(m.name, m.kind?)))
            .collect()
    }

    /// One series per metric of `resource`, in `defs` order (a tick's values follow it).
    pub fn series(
        defs: &[MetricDef],
        resource: &Resource,
    ) -> std::sync::Arc<[engine::series::SeriesInfo]> {
        defs.iter()
            .map(|m| {
                engine::series::SeriesInfo::new(
                    engine::series::SeriesKey::new(resource.id.as_str(), m.name),
                    resource.resource_type,
                    resource.name.clone(),
                    m.kind,
                    m.unit,
                )
            })
            .collect()
    }
}

/// A pool's series: its own metrics, then `<metric>:<backend>` for every backend. The
/// list is rebuilt only when the backends change: history maps a tick's values by the
/// list's identity.
pub(crate) struct BackendSeries {
    resource: Resource,
    metrics: &'static [MetricDef],
    per_backend: &'static [(&'static str, &'static str)],
    current: Option<(Vec<String>, std::sync::Arc<[engine::series::SeriesInfo]>)>,
}

impl BackendSeries {
    pub fn new(
        resource: &Resource,
        metrics: &'static [MetricDef],
        per_backend: &'static [(&'static str, &'static str)],
    ) -> BackendSeries {
        BackendSeries {
            resource: resource.clone(),
            metrics,
            per_backend,
            current: None,
        }
    }

    /// Whether a list was made yet (the first tick's backends are not "joins").
    pub fn started(&self) -> bool {
        self.current.is_some()
    }

    /// The series for these backends, in this order (a tick's values follow it).
    pub fn for_backends(
        &mut self,
        names: Vec<String>,
    ) -> std::sync::Arc<[engine::series::SeriesInfo]> {
        if let Some((known, series)) = &self.current {
            if *known == names {
                return series.clone();
            }
        }
        let r = &self.resource;
        let info = |metric: String, kind, unit: &str| {
            engine::series::SeriesInfo::new(
                engine::series::SeriesKey::new(r.id.as_str(), metric),
                r.resource_type,
                r.name.clone(),
                kind,
                unit,
            )
        };
        let mut list: Vec<_> = self
            .metrics
            .iter()
            .map(|m| info(m.name.to_owned(), m.kind, m.unit))
            .collect();
        for name in &names {
            for (metric, unit) in self.per_backend {
                list.push(info(format!("{metric}:{name}"), None, unit));
            }
        }
        let series: std::sync::Arc<[engine::series::SeriesInfo]> = list.into();
        self.current = Some((names, series.clone()));
        series
    }
}

/// Settings as a resource's source spec of `kind`.
pub(crate) fn spec_of<T: serde::Serialize>(kind: &str, settings: &T) -> SourceSpec {
    SourceSpec {
        kind: kind.to_owned(),
        settings: serde_json::to_value(settings).expect("settings always serialize"),
    }
}

/// Settings back from a resource's source spec; the error names the field.
pub(crate) fn settings_of<T: serde::de::DeserializeOwned>(spec: &SourceSpec) -> Result<T, String> {
    serde_json::from_value(spec.settings.clone()).map_err(|err| format!("source.settings: {err}"))
}

/// The resource a load balancer of any kind is: `lb:<name>` with `metrics`, `defaults`
/// as settings plus `guardrails`, and `spec` as its source.
pub(crate) fn lb_resource(
    name: &str,
    metrics: &[MetricDef],
    spec: SourceSpec,
    defaults: &ResourceSettings,
    guardrails: Vec<engine::actuator::Guardrail>,
) -> Result<Resource, String> {
    let id = haproxy::resource_id(name)?;
    let mut resource = Resource::new(id, engine::model::ResourceType::LoadBalancer, name);
    resource.metrics = MetricDef::metrics(metrics);
    resource.settings = defaults.clone();
    resource.settings.guardrails = guardrails;
    resource.source = Some(spec);
    resource.validate().map_err(|err| err.to_string())?;
    Ok(resource)
}

/// Whether a source that declares `owns` (resource ids, or a prefix ending in `*` such as
/// `custom:*`) produces the samples of `resource`.
pub fn owns(owns: &[String], resource: &str) -> bool {
    owns.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    })
}

/// Checks a configured source's settings without connecting; the error names the field
/// and the rule.
pub fn validate(spec: &SourceSpec) -> Result<(), String> {
    Configured::from_spec(spec)?.validate()
}

/// The settings of a configured source, of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Configured {
    Postgres(postgres::PostgresSettings),
    Redis(redis::RedisSettings),
    Memcached(memcached::MemcachedSettings),
    Haproxy(haproxy::HaproxySettings),
    Pool(pool::PoolSettings),
    Nginx(nginx::NginxSettings),
    Prometheus(prometheus::PrometheusSettings),
}

/// What connecting once found: the server's name and version, and what will not work.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub server_version: String,
    /// `pg_stat_statements` is installed (databases only).
    pub statements: Option<bool>,
    /// Why tuning will be unavailable (a cache whose `CONFIG` is disabled).
    pub tuning_unavailable: Option<String>,
}

impl Configured {
    pub fn from_spec(spec: &SourceSpec) -> Result<Configured, String> {
        Ok(match spec.kind.as_str() {
            postgres::KIND => Configured::Postgres(postgres::PostgresSettings::from_spec(spec)?),
            redis::KIND => Configured::Redis(redis::RedisSettings::from_spec(spec)?),
            memcached::KIND => {
                Configured::Memcached(memcached::MemcachedSettings::from_spec(spec)?)
            }
            haproxy::KIND => Configured::Haproxy(haproxy::HaproxySettings::from_spec(spec)?),
            pool::KIND => Configured::Pool(pool::PoolSettings::from_spec(spec)?),
            nginx::KIND => Configured::Nginx(nginx::NginxSettings::from_spec(spec)?),
            prometheus::KIND => {
                Configured::Prometheus(prometheus::PrometheusSettings::from_spec(spec)?)
            }
            other => {
                return Err(format!(
                "kind: unknown source kind {other:?} (known: postgres, redis, memcached, haproxy, lb_pool, nginx, prometheus)"
            ))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Configured::Postgres(_) => postgres::KIND,
            Configured::Redis(_) => redis::KIND,
            Configured::Memcached(_) => memcached::KIND,
            Configured::Haproxy(_) => haproxy::KIND,
            Configured::Pool(_) => pool::KIND,
            Configured::Nginx(_) => nginx::KIND,
            Configured::Prometheus(_) => prometheus::KIND,
        }
    }

    pub fn spec(&self) -> SourceSpec {
        match self {
            Configured::Postgres(s) => s.spec(),
            Configured::Redis(s) => s.spec(),
            Configured::Memcached(s) => s.spec(),
            Configured::Haproxy(s) => s.spec(),
            Configured::Pool(s) => s.spec(),
            Configured::Nginx(s) => s.spec(),
            Configured::Prometheus(s) => s.spec(),
        }
    }

    /// Checks new settings without connecting: each kind's rules, then the rule of group
    /// keys ([`engine::names`]). The change path (the API, the Settings forms, the
    /// configuration file) calls this; a running source built from stored settings checks
    /// only its kind's rules, so a group stored before the rule keeps working.
    pub fn validate(&self) -> Result<(), String> {
        let kind = match self {
            Configured::Postgres(s) => s.validate().map(drop),
            Configured::Redis(s) => s.validate().map(drop),
            Configured::Memcached(s) => s.validate(),
            Configured::Haproxy(s) => s.validate().map(drop),
            Configured::Pool(s) => s.validate(),
            Configured::Nginx(s) => s.validate(),
            Configured::Prometheus(s) => s.validate(),
        };
        kind?;
        match self.group() {
            Some(group) => secret::check_group(group),
            None => Ok(()),
        }
    }

    /// The resource id `name` gets: `database:<name>`, `cache:<name>`, `lb:<name>`,
    /// `fleet:<name>`; a name outside the one rule of names ([`engine::names`]) is refused
    /// with the field and the rule.
    pub fn resource_id(&self, name: &str) -> Result<ResourceId, String> {
        engine::names::check_resource_name("name", name)?;
        match self {
            Configured::Postgres(_) => postgres::resource_id(name),
            Configured::Redis(_) | Configured::Memcached(_) => cache::resource_id(name),
            Configured::Haproxy(_) | Configured::Pool(_) | Configured::Nginx(_) => {
                haproxy::resource_id(name)
            }
            Configured::Prometheus(_) => prometheus::resource_id(name),
        }
    }

    pub fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, String> {
        match self {
            Configured::Postgres(s) => postgres::resource(name, s, defaults),
            Configured::Redis(s) => redis::resource(name, s, defaults),
            Configured::Memcached(s) => memcached::resource(name, s, defaults),
            Configured::Haproxy(s) => haproxy::resource(name, s, defaults),
            Configured::Pool(s) => pool::resource(name, s, defaults),
            Configured::Nginx(s) => nginx::resource(name, s, defaults),
            Configured::Prometheus(s) => prometheus::resource(name, s, defaults),
        }
    }

    /// Where the password is kept: a file, an environment variable (memcached has none).
    pub fn password_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        match self {
            Configured::Postgres(s) => (s.password_file.as_ref(), s.password_env.as_ref()),
            Configured::Redis(s) => (s.password_file.as_ref(), s.password_env.as_ref()),
            Configured::Prometheus(s) => s.secret_location(),
            Configured::Memcached(_)
            | Configured::Haproxy(_)
            | Configured::Pool(_)
            | Configured::Nginx(_) => (None, None),
        }
    }

    /// Whether this kind can log in with a password at all.
    pub fn takes_password(&self) -> bool {
        !matches!(
            self,
            Configured::Memcached(_)
                | Configured::Haproxy(_)
                | Configured::Pool(_)
                | Configured::Nginx(_)
        )
    }

    /// The password, read now from where the settings say it is (off the async runtime:
    /// see [`secret::read`]).
    pub async fn password(&self) -> Result<Option<String>, String> {
        if let Configured::Postgres(s) = self {
            // With PostgreSQL's own rule (its length, for SCRAM).
            return s.password().await;
        }
        let (file, env) = self.password_location();
        let (file, env) = (file.cloned(), env.cloned());
        secret::read(&file, &env).await
    }

    /// Keeps the password in `path` from now on (a password sent to the server).
    pub fn keep_password_in(&mut self, path: PathBuf) {
        match self {
            Configured::Postgres(s) => {
                s.password_file = Some(path);
                s.password_env = None;
            }
            Configured::Redis(s) => {
                s.password_file = Some(path);
                s.password_env = None;
            }
            Configured::Prometheus(s) => s.keep_secret_in(path),
            Configured::Memcached(_)
            | Configured::Haproxy(_)
            | Configured::Pool(_)
            | Configured::Nginx(_) => {}
        }
    }

    pub fn group(&self) -> Option<&str> {
        match self {
            Configured::Postgres(s) => s.group.as_deref(),
            Configured::Redis(s) => s.group.as_deref(),
            Configured::Memcached(s) => s.group.as_deref(),
            Configured::Haproxy(s) => s.group.as_deref(),
            Configured::Pool(s) => s.group.as_deref(),
            Configured::Nginx(s) => s.group.as_deref(),
            Configured::Prometheus(s) => s.group.as_deref(),
        }
    }

    /// What to run when this cache comes back cold (its `warm_url` or `warm_command`).
    pub fn warm_action(&self) -> Option<engine::model::ActionConfig> {
        match self {
            Configured::Postgres(_)
            | Configured::Haproxy(_)
            | Configured::Pool(_)
            | Configured::Nginx(_)
            | Configured::Prometheus(_) => None,
            Configured::Redis(s) => cache::warm_action(&s.warm_url, &s.warm_command),
            Configured::Memcached(s) => cache::warm_action(&s.warm_url, &s.warm_command),
        }
    }

    /// Where invalidations are handed to the application (a cache's `invalidate_url`).
    pub fn invalidate_url(&self) -> Option<&str> {
        match self {
            Configured::Postgres(_)
            | Configured::Haproxy(_)
            | Configured::Pool(_)
            | Configured::Nginx(_)
            | Configured::Prometheus(_) => None,
            Configured::Redis(s) => s.invalidate_url.as_deref(),
            Configured::Memcached(s) => s.invalidate_url.as_deref(),
        }
    }

    /// Connects once with `password` (not the stored one: a new password is checked before
    /// it is kept); the error is the reason in a person's words.
    pub async fn check(&self, password: Option<String>) -> Result<Checked, String> {
        match self {
            Configured::Postgres(s) => {
                let report = postgres::check_with(s, password).await?;
                Ok(Checked {
                    server_version: format!("PostgreSQL {}", report.server_version),
                    statements: Some(report.statements),
                    tuning_unavailable: None,
                })
            }
            Configured::Redis(s) => {
                let report = redis::check_with(s, password).await?;
                Ok(Checked {
                    server_version: report.server_version,
                    statements: None,
                    tuning_unavailable: report.tuning_unavailable,
                })
            }
            Configured::Memcached(s) => {
                if password.is_some() {
                    return Err("password: memcached's text protocol has no authentication; leave the password empty".into());
                }
                let report = memcached::check(s).await?;
                Ok(Checked {
                    server_version: report.server_version,
                    statements: None,
                    tuning_unavailable: None,
                })
            }
            Configured::Haproxy(s) => {
                if password.is_some() {
                    return Err("password: HAProxy's runtime API has no password (protect its socket's mode and owner); leave it empty".into());
                }
                let report = haproxy::check(s).await?;
                Ok(Checked {
                    server_version: format!(
                        "{} ({} servers)",
                        report.server_version, report.servers
                    ),
                    statements: None,
                    tuning_unavailable: None,
                })
            }
            Configured::Nginx(s) => {
                if password.is_some() {
                    return Err("password: stub_status has no password; leave it empty".into());
                }
                nginx::fetch(s).await?;
                Ok(Checked {
                    server_version: "nginx (stub_status)".into(),
                    statements: None,
                    tuning_unavailable: None,
                })
            }
            Configured::Prometheus(s) => {
                let report = prometheus::check(s, password).await?;
                Ok(Checked {
                    server_version: format!(
                        "Prometheus-compatible store ({} hosts, every {} s)",
                        report.hosts,
                        report.interval.as_secs()
                    ),
                    statements: None,
                    tuning_unavailable: None,
                })
            }
            Configured::Pool(s) => {
                if password.is_some() {
                    return Err("password: a checked pool has no password; leave it empty".into());
                }
                s.validate()?;
                let report = haproxy::CheckReport {
                    server_version: "checked by perfpilot".into(),
                    servers: s.targets.len(),
                };
                Ok(Checked {
                    server_version: format!(
                        "{} ({} servers)",
                        report.server_version, report.servers
                    ),
                    statements: None,
                    tuning_unavailable: None,
                })
            }
        }
    }

    /// The running source of `resource` (whose spec holds these settings).
    pub fn source(
        &self,
        resource: &Resource,
        interval: Duration,
    ) -> Result<Box<dyn Source>, String> {
        Ok(match self.clone() {
            Configured::Postgres(s) => Box::new(postgres::source(resource, s, interval)?),
            Configured::Redis(s) => Box::new(redis::source(resource, s, interval)?),
            Configured::Memcached(s) => Box::new(memcached::source(resource, s, interval)?),
            Configured::Haproxy(s) => Box::new(haproxy::source(resource, s, interval)?),
            Configured::Pool(s) => Box::new(pool::source(resource, s, interval)?),
            Configured::Nginx(s) => Box::new(nginx::source(resource, s, interval)?),
            Configured::Prometheus(s) => Box::new(prometheus::source(resource, s, interval)?),
        })
    }

    /// A fleet's host metrics as these settings define them (fleets only).
    pub fn fleet_metrics(&self) -> Option<Vec<engine::fleet::FleetMetric>> {
        match self {
            Configured::Prometheus(s) => s.fleet_metrics().ok(),
            _ => None,
        }
    }
}
