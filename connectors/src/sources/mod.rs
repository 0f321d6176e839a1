//! Sources: one module per kind of thing perfpilot reads, each with its configuration next
//! to its code. Every one is an [`engine::source`] run by the engine's source runtime.
//!
//! [`KINDS`] is the one place that lists every kind a resource's source spec can name
//! (databases, caches, load balancers, fleets); each kind's settings implement
//! [`ConfiguredKind`] in its own module. Adding, checking, starting and describing a
//! configured source all go through [`Configured`], so the server has one path for all of
//! them and names no kind.

use std::path::PathBuf;
use std::time::Duration;

use engine::model::{Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::source::runtime::Source;

pub use cache::Matching;
pub use kind::{ConfiguredKind, Keys, KindEntry, TableEntry};

use crate::Refusal;

pub mod cache;
pub(crate) mod database;
pub mod haproxy;
pub mod host;
pub mod kind;
pub mod memcached;
pub mod mysql;
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

/// Settings back from a resource's source spec; the refusal names the field.
pub(crate) fn settings_of<T: serde::de::DeserializeOwned>(spec: &SourceSpec) -> Result<T, Refusal> {
    serde_json::from_value(spec.settings.clone())
        .map_err(|err| Refusal::new("source.settings", err.to_string()))
}

/// The resource a load balancer of any kind is: `lb:<name>` with `metrics`, `defaults`
/// as settings plus `guardrails`, and `spec` as its source.
pub(crate) fn lb_resource(
    name: &str,
    metrics: &[MetricDef],
    spec: SourceSpec,
    defaults: &ResourceSettings,
    guardrails: Vec<engine::actuator::Guardrail>,
) -> Result<Resource, Refusal> {
    let id = haproxy::resource_id(name)?;
    let mut resource = Resource::new(id, engine::model::ResourceType::LoadBalancer, name);
    resource.metrics = MetricDef::metrics(metrics);
    resource.settings = defaults.clone();
    resource.settings.guardrails = guardrails;
    resource.source = Some(spec);
    resource
        .validate()
        .map_err(|err| Refusal::of_engine("resource", err))?;
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

/// Checks a configured source's settings without connecting; the refusal names the field
/// and the rule.
pub fn validate(spec: &SourceSpec) -> Result<(), Refusal> {
    Configured::from_spec(spec)?.validate()
}

/// Every configured kind, in the order the configuration file's tables are applied. A new
/// kind is its module (settings implementing [`ConfiguredKind`], its `ENTRY`) and one line
/// here.
pub static KINDS: &[KindEntry] = &[
    postgres::ENTRY,
    mysql::ENTRY,
    redis::ENTRY,
    memcached::ENTRY,
    haproxy::ENTRY,
    pool::ENTRY,
    nginx::ENTRY,
    prometheus::ENTRY,
];

/// How long after a change the source of `resource` shows it: its configured kind's
/// settle period, else the host's for the host's resources and the pushes' for custom
/// ones.
pub fn settle(resource: &Resource) -> engine::verdict::Settle {
    use engine::model::ResourceType;
    match (&resource.source, &resource.resource_type) {
        (Some(spec), _) => {
            kind_named(&spec.kind).map_or(engine::verdict::DEFAULT_SETTLE, |k| k.settle)
        }
        (
            None,
            ResourceType::Cpu | ResourceType::Memory | ResourceType::Disk | ResourceType::Network,
        ) => host::SETTLE,
        (None, ResourceType::Custom(_)) => push::SETTLE,
        (None, _) => engine::verdict::DEFAULT_SETTLE,
    }
}

/// The kind named `kind` in a source spec.
pub fn kind_named(kind: &str) -> Option<&'static KindEntry> {
    KINDS.iter().find(|entry| entry.kind == kind)
}

/// The kind whose table in the configuration file is `[[table]]`.
pub fn kind_of_table(table: &str) -> Option<&'static KindEntry> {
    KINDS.iter().find(|entry| entry.toml_table == table)
}

/// The settings of a configured source, of any kind: the one handle the server holds, each
/// method the kind's own ([`ConfiguredKind`]).
pub struct Configured(Box<dyn ConfiguredKind>);

/// What connecting once found: the server's name and version, and what will not work.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub server_version: String,
    /// `pg_stat_statements` is installed (databases only).
    pub statements: Option<bool>,
    /// Why tuning will be unavailable (a cache whose `CONFIG` is disabled).
    pub tuning_unavailable: Option<String>,
}

impl Checked {
    /// A check that found the server and nothing more to say.
    pub fn found(server_version: impl Into<String>) -> Checked {
        Checked {
            server_version: server_version.into(),
            statements: None,
            tuning_unavailable: None,
        }
    }
}

impl Clone for Configured {
    fn clone(&self) -> Configured {
        Configured(self.0.clone_box())
    }
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// Settings are equal when their specs are (the spec holds the kind and every setting).
impl PartialEq for Configured {
    fn eq(&self, other: &Configured) -> bool {
        self.0.spec() == other.0.spec()
    }
}

impl Configured {
    pub fn new(settings: impl ConfiguredKind) -> Configured {
        Configured(Box::new(settings))
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<Configured, Refusal> {
        match kind_named(&spec.kind) {
            Some(entry) => Ok(Configured((entry.from_spec)(spec)?)),
            None => Err(Refusal::new(
                "kind",
                format!(
                    "unknown source kind {:?} (known: {})",
                    spec.kind,
                    KINDS
                        .iter()
                        .map(|entry| entry.kind)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The settings as their own type, for code that works with one kind only (an
    /// actuator of that kind's settings, a database's index advice).
    pub fn settings<T: ConfiguredKind>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }

    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// What one is called in messages: "database", "cache", "load balancer", "store".
    pub fn noun(&self) -> &'static str {
        self.0.noun()
    }

    /// The field a failure to connect is shown on (`url`, a load balancer's `socket`).
    pub fn address_field(&self) -> &'static str {
        self.0.address_field()
    }

    pub fn spec(&self) -> SourceSpec {
        self.0.spec()
    }

    /// Checks new settings without connecting: each kind's rules, then the rule of group
    /// keys ([`engine::names`]). The change path (the API, the Settings forms, the
    /// configuration file) calls this; a running source built from stored settings checks
    /// only its kind's rules, so a group stored before the rule keeps working.
    pub fn validate(&self) -> Result<(), Refusal> {
        self.0.validate()?;
        match self.group() {
            Some(group) => secret::check_group(group),
            None => Ok(()),
        }
    }

    /// The resource id `name` gets: `database:<name>`, `cache:<name>`, `lb:<name>`,
    /// `fleet:<name>`; a name outside the one rule of names ([`engine::names`]) is refused
    /// with the field and the rule.
    pub fn resource_id(&self, name: &str) -> Result<ResourceId, Refusal> {
        if let Some(rule) = engine::names::resource_name_rule(name) {
            return Err(Refusal::new("name", rule));
        }
        self.0.resource_id(name)
    }

    pub fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, Refusal> {
        self.0.resource(name, defaults)
    }

    /// Where the password is kept: a file, an environment variable (memcached has none).
    pub fn password_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        self.0.password_location()
    }

    /// Whether this kind can log in with a password at all.
    pub fn takes_password(&self) -> bool {
        self.0.takes_password()
    }

    /// The password, read now from where the settings say it is (off the async runtime:
    /// see [`secret::read`]), with the kind's own rules (PostgreSQL's length).
    pub async fn password(&self) -> Result<Option<String>, String> {
        self.0.password().await
    }

    /// Keeps the password in `path` from now on (a password sent to the server).
    pub fn keep_password_in(&mut self, path: PathBuf) {
        self.0.keep_password_in(path);
    }

    pub fn group(&self) -> Option<&str> {
        self.0.group()
    }

    /// What to run when this cache comes back cold (its `warm_url` or `warm_command`).
    pub fn warm_action(&self) -> Option<engine::model::ActionConfig> {
        self.0.warm_action()
    }

    /// Whether keys can be invalidated by pattern, and how.
    pub fn keys(&self) -> Keys {
        self.0.keys()
    }

    /// Where invalidations are handed to the application (a cache's `invalidate_url`).
    pub fn invalidate_url(&self) -> Option<&str> {
        self.0.invalidate_url()
    }

    /// Counts (`unlink` false) or unlinks the keys matching `pattern` (caches whose
    /// [`Configured::keys`] are [`Keys::Listed`]).
    pub async fn scan_keys(&self, pattern: &str, unlink: bool) -> Result<Matching, String> {
        self.0.scan_keys(pattern, unlink).await
    }

    /// Connects once with `password` (not the stored one: a new password is checked before
    /// it is kept); the refusal names the field to blame, else [`Configured::address_field`].
    pub async fn check(&self, password: Option<String>) -> Result<Checked, Refusal> {
        self.0.check(password).await
    }

    /// The running source of `resource` (whose spec holds these settings).
    pub fn source(
        &self,
        resource: &Resource,
        interval: Duration,
        registries: &crate::Registries,
    ) -> Result<Box<dyn Source>, String> {
        self.0.source(resource, interval, registries)
    }

    /// A fleet's host metrics as these settings define them (fleets only).
    pub fn fleet_metrics(&self) -> Option<Vec<engine::fleet::FleetMetric>> {
        self.0.fleet_metrics()
    }

    /// The actuator of `action` on this kind's own service, if the kind takes it
    /// ([`ConfiguredKind::actuator`]).
    pub fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        registries: &crate::Registries,
    ) -> Option<Result<std::sync::Arc<dyn engine::actuator::Actuator>, Refusal>> {
        self.0.actuator(action, registries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_an_unknown_one_is_refused_naming_the_known() {
        let mut kinds: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
        let mut tables: Vec<&str> = KINDS.iter().map(|k| k.toml_table).collect();
        kinds.sort_unstable();
        kinds.dedup();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(kinds.len(), KINDS.len());
        assert_eq!(tables.len(), KINDS.len());
        let err = Configured::from_spec(&SourceSpec {
            kind: "oracle".into(),
            settings: serde_json::json!({}),
        })
        .unwrap_err();
        assert_eq!(err.field, "kind");
        assert!(
            err.rule.starts_with("unknown source kind \"oracle\""),
            "{err}"
        );
        for kind in KINDS {
            assert!(err.rule.contains(kind.kind), "{err}");
        }
    }

    #[test]
    fn every_kind_says_how_long_its_source_takes_to_show_a_change_and_why() {
        use engine::model::{ResourceId, ResourceType};
        for kind in KINDS {
            assert!(kind.settle.secs > 0, "{}", kind.kind);
            assert!(!kind.settle.why.is_empty(), "{}", kind.kind);
            assert!(!kind.title.is_empty(), "{}", kind.kind);
        }
        assert_eq!(kind_named("haproxy").unwrap().settle.secs, 10);
        assert_eq!(kind_named("postgres").unwrap().settle.secs, 2);
        let mut lb = Resource::new(
            ResourceId::new("lb:web").unwrap(),
            ResourceType::LoadBalancer,
            "web",
        );
        assert_eq!(settle(&lb), engine::verdict::DEFAULT_SETTLE);
        lb.source = Some(SourceSpec {
            kind: "haproxy".into(),
            settings: serde_json::Value::Null,
        });
        assert_eq!(settle(&lb).secs, 10);
        lb.source = Some(SourceSpec {
            kind: "something-new".into(),
            settings: serde_json::Value::Null,
        });
        assert_eq!(settle(&lb), engine::verdict::DEFAULT_SETTLE);
        let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "cpu");
        assert_eq!(settle(&cpu), host::SETTLE);
        let custom = Resource::new(
            ResourceId::new("custom:7").unwrap(),
            ResourceType::Custom(7),
            "queue",
        );
        assert_eq!(settle(&custom), push::SETTLE);
    }

    #[test]
    fn a_kind_round_trips_through_its_table_and_its_spec() {
        let text = "[[nginx]]\nname = \"web\"\nurl = \"http://127.0.0.1:8080/nginx_status\"\ngroup = \"edge\"\n";
        let entries = kind_of_table("nginx").unwrap().entries(text).unwrap();
        assert_eq!(entries.len(), 1);
        let (name, configured) = &entries[0];
        assert_eq!(name, "web");
        assert_eq!(configured.kind(), nginx::KIND);
        assert_eq!(configured.group(), Some("edge"));
        let back = Configured::from_spec(&configured.spec()).unwrap();
        assert_eq!(&back, configured);
        assert!(back.settings::<nginx::NginxSettings>().is_some());
        assert!(back.settings::<redis::RedisSettings>().is_none());
        assert_eq!(back.resource_id("web").unwrap().as_str(), "lb:web");
        assert_eq!(back.resource_id("Web").unwrap_err().field, "name");
        // A table the file does not have is no entries, not an error.
        assert!(kind_of_table("redis")
            .unwrap()
            .entries(text)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn defaults_fit_a_kind_without_passwords_keys_or_fleets() {
        let configured = Configured::new(nginx::NginxSettings {
            url: "http://127.0.0.1/status".into(),
            group: None,
        });
        assert!(!configured.takes_password());
        assert_eq!(configured.password_location(), (None, None));
        assert_eq!(configured.keys(), Keys::None);
        assert_eq!(configured.invalidate_url(), None);
        assert!(configured.warm_action().is_none());
        assert!(configured.fleet_metrics().is_none());
        assert_eq!(configured.address_field(), "url");
        assert_eq!(configured.noun(), "load balancer");
    }
}
