//! HAProxy as a source, and its failover: a backend pool is the resource `lb:<name>`,
//! read every second through the runtime API (`show info`, `show stat`): requests/s,
//! error %, response time, backends up / total, queue, sessions; per server its check
//! verdict, check time, availability, weight and sessions.
//!
//! With `check` set, perfpilot health-checks every server itself (phases and reasons,
//! [`super::probe`]) on the check's own interval, with rise/fall. With `failover` (the
//! default) a server that goes down is drained (`set server … state drain`), then taken
//! out of the pool (`maint`) after `drain_ms`; it is made ready again after `rise`
//! passed checks. Each transition is a mark on the pool's chart (audited, with a
//! before/after).
//!
//! **Reconcile**: HAProxy forgets runtime changes when it reloads. perfpilot keeps the
//! desired state (the servers it took out, the weights it set) and re-applies it on the
//! first tick that sees a new process id or a smaller uptime, a mark saying what it did.
//!
//! Servers are discovered from HAProxy itself: a server added or removed there (a reload
//! with a new configuration, `add server`) is checked or forgotten on the next tick.

pub mod runtime_api;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::lb::{AdminState, BackendView, LbReport};
use engine::model::{MetricKind, Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::series::{Tick, UnixMillis};
use engine::source::runtime::Polled;
use engine::source::{BoxFuture, Poll, Schedule, SourceError, SourceInfo, SourceMark};
use engine::sync::lock;
use serde::{Deserialize, Serialize};

use self::runtime_api::{Endpoint, StatRow};
use super::kind::{self, ConfiguredKind, KindEntry, TableEntry};
use super::probe::{self, CheckSettings};
use super::{Checked, MetricDef};
use crate::Refusal;

/// The kind name in a resource's [`SourceSpec`].
pub const KIND: &str = "haproxy";
/// The kind in [`super::KINDS`]: specs of [`KIND`], the `[[haproxy]]` table.
pub const ENTRY: KindEntry = KindEntry {
    kind: KIND,
    title: "HAProxy",
    family: engine::source::SourceFamily::LoadBalancer,
    settle: engine::verdict::Settle {
        secs: 10,
        why: "HAProxy's rtime/qtime/ctime are averages over the last 1024 requests",
    },
    toml_table: "haproxy",
    from_spec: kind::decode::<HaproxySettings>,
    from_toml: kind::table::<HaproxyEntry>,
};
/// One runtime API command's budget.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

fn yes() -> bool {
    true
}

fn default_drain_ms() -> u64 {
    2000
}

/// A HAProxy backend pool's source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxySettings {
    /// The runtime API: `/run/haproxy/admin.sock`, `unix:/path` or `host:port`. It needs
    /// `level admin` for failover and weights.
    pub socket: String,
    /// The HAProxy backend this pool is.
    pub backend: String,
    /// perfpilot's own health check of every server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSettings>,
    /// Drain and take out a server that fails its checks; ready again after `rise`.
    #[serde(default = "yes")]
    pub failover: bool,
    /// How long a drained server keeps its open sessions before `maint`.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One `[[haproxy]]` entry of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyEntry {
    pub name: String,
    pub socket: String,
    pub backend: String,
    #[serde(default)]
    pub check: Option<CheckSettings>,
    #[serde(default = "yes")]
    pub failover: bool,
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    #[serde(default)]
    pub group: Option<String>,
}

impl TableEntry for HaproxyEntry {
    type Settings = HaproxySettings;

    fn name(&self) -> &str {
        &self.name
    }

    fn settings(&self) -> HaproxySettings {
        HaproxySettings {
            socket: self.socket.clone(),
            backend: self.backend.clone(),
            check: self.check.clone(),
            failover: self.failover,
            drain_ms: self.drain_ms,
            group: self.group.clone(),
        }
    }
}

impl HaproxySettings {
    pub fn validate(&self) -> Result<Endpoint, Refusal> {
        let endpoint = Endpoint::parse(&self.socket)?;
        if self.backend.is_empty()
            || self.backend.len() > 128
            || !self
                .backend
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(Refusal::new(
                "backend",
                format!(
                    "must be a HAProxy backend name (letters, digits, - _ . :), got {:?}",
                    self.backend
                ),
            ));
        }
        if let Some(check) = &self.check {
            check.validate("check.")?;
        }
        if self.drain_ms > 600_000 {
            return Err(Refusal::new(
                "drain_ms",
                format!("must be at most 600000 (10 minutes), got {}", self.drain_ms),
            ));
        }
        super::secret::validate_group(&self.group)?;
        Ok(endpoint)
    }

    pub fn spec(&self) -> SourceSpec {
        super::spec_of(KIND, self)
    }

    pub fn from_spec(spec: &SourceSpec) -> Result<HaproxySettings, Refusal> {
        super::settings_of(spec)
    }
}

impl ConfiguredKind for HaproxySettings {
    /// Weights shifted between this pool's servers through its runtime API.
    fn actuator(
        &self,
        action: &engine::model::ActionConfig,
        registries: &crate::Registries,
    ) -> Option<Result<Arc<dyn engine::actuator::Actuator>, Refusal>> {
        let engine::model::ActionConfig::LbWeights(weights) = action else {
            return None;
        };
        Some(Ok(Arc::new(crate::actuators::lb_weights::LbWeights::new(
            weights.clone(),
            Ok(self.clone()),
            registries.lb.clone(),
        ))))
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn noun(&self) -> &'static str {
        "load balancer"
    }

    fn spec(&self) -> SourceSpec {
        HaproxySettings::spec(self)
    }

    fn validate(&self) -> Result<(), Refusal> {
        HaproxySettings::validate(self).map(drop)
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
            if password.is_some() {
                return Err(Refusal::new(
                    "password",
                    "HAProxy's runtime API has no password (protect its socket's mode and owner); leave it empty",
                ));
            }
            let report = check(self).await?;
            Ok(Checked::found(format!(
                "{} ({} servers)",
                report.server_version, report.servers
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
            registries.lb.clone(),
        )?))
    }

    /// A connection failure is the runtime API's socket's.
    fn address_field(&self) -> &'static str {
        "socket"
    }
}

/// The resource id of a backend pool: `lb:<name>`.
pub fn resource_id(name: &str) -> Result<ResourceId, Refusal> {
    ResourceId::new(&format!("lb:{name}")).map_err(|err| Refusal::new("name", err.to_string()))
}

const METRICS: &[MetricDef] = &[
    MetricDef::new("response_ms", Some(MetricKind::Latency), "ms"),
    MetricDef::new("error_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("requests_per_s", Some(MetricKind::Throughput), "/s"),
    MetricDef::new("backends_up_pct", Some(MetricKind::Utilization), "%"),
    MetricDef::new("backends_up", None, "backends"),
    MetricDef::new("backends_total", None, "backends"),
    MetricDef::new("queue", None, "requests"),
    MetricDef::new("sessions", None, "sessions"),
];

/// Per server: `<metric>:<server>`.
const SERVER_METRICS: &[(&str, &str)] = &[
    ("up", "0/1"),
    ("check_ms", "ms"),
    ("availability_pct", "%"),
    ("weight", "weight"),
    ("server_sessions", "sessions"),
];

/// The resource a backend pool is: response time ≤ 200 ms (p95) by default.
pub fn resource(
    name: &str,
    settings: &HaproxySettings,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    // A weight shift is rolled back at once if errors double (and rise by a point).
    let guardrails = vec![engine::actuator::Guardrail {
        resource: None,
        metric: "error_pct".into(),
        max: None,
        max_factor: Some(2.0),
        floor: None,
        hold: None,
    }];
    super::lb_resource(name, METRICS, settings.spec(), defaults, guardrails)
}

/// What connecting once found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub server_version: String,
    pub servers: usize,
}

/// Connects once: HAProxy answers (else refused on `socket`), and has the backend (else
/// refused on `backend`).
pub async fn check(settings: &HaproxySettings) -> Result<CheckReport, Refusal> {
    let endpoint = settings.validate()?;
    let at_socket = |reason: String| Refusal::new("socket", reason);
    let info = runtime_api::command(&endpoint, "show info", COMMAND_TIMEOUT)
        .await
        .and_then(|text| runtime_api::parse_info(&text))
        .map_err(at_socket)?;
    let stat = runtime_api::command(&endpoint, "show stat", COMMAND_TIMEOUT)
        .await
        .map_err(at_socket)?;
    let rows = runtime_api::parse_stat(&stat, &settings.backend).map_err(at_socket)?;
    if rows.is_empty() {
        let known = runtime_api::backends(&stat);
        return Err(Refusal::new(
            "backend",
            format!(
                "HAProxy has no backend named {:?} (it has: {})",
                settings.backend,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    Ok(CheckReport {
        server_version: format!("HAProxy {}", info.version),
        servers: rows.iter().filter(|r| r.name != "BACKEND").count(),
    })
}

/// The polled source of the pool `resource`.
pub fn source(
    resource: &Resource,
    settings: HaproxySettings,
    interval: Duration,
    desired_states: DesiredStates,
) -> Result<Polled<HaproxyPoll>, String> {
    let endpoint = settings.validate()?;
    let info = SourceInfo {
        id: resource.id.to_string(),
        kind: KIND.to_owned(),
        resources: vec![resource.clone()],
        owns: Vec::new(),
    };
    let mut schedule = Schedule::every(interval);
    schedule.timeout = COMMAND_TIMEOUT * 2;
    let shared = Arc::new(Shared {
        endpoint,
        settings,
        desired: desired_states.of(resource.id.as_str()),
        desired_states,
        events: probe::EventLog::new(resource.id.as_str()),
        verdicts: Mutex::new(BTreeMap::new()),
        followed: std::sync::atomic::AtomicBool::new(false),
    });
    let checker = match shared.settings.check.clone() {
        Some(check) => {
            let shared = shared.clone();
            let on_verdict: probe::OnVerdict = Arc::new(move |server, up, why| {
                let shared = shared.clone();
                Box::pin(async move { shared.on_verdict(&server, up, &why).await })
            });
            Some(probe::Checker::new(check, on_verdict)?)
        }
        None => None,
    };
    Ok(Polled::new(
        info,
        schedule,
        HaproxyPoll {
            shared,
            checker,
            series: super::BackendSeries::new(resource, METRICS, SERVER_METRICS),
            last_info: None,
            reloads: 0,
            last_totals: None,
            last_status: BTreeMap::new(),
            details: None,
        },
    ))
}

/// Every pool's desired state, and where it is kept.
#[derive(Default)]
struct Registry {
    pools: BTreeMap<String, Arc<Mutex<Desired>>>,
    /// Read from the file at start-up, handed to each pool when it first asks.
    stored: BTreeMap<String, Desired>,
    file: Option<std::path::PathBuf>,
    /// Where the desired states go instead of a file (a store replicas share).
    hook: Option<SaveDesired>,
    /// A replica that follows leaves failover and reconciles to the leader.
    follows: bool,
}

/// Keeps every pool's desired state somewhere other than a file.
pub type SaveDesired = Arc<dyn Fn(BTreeMap<String, Desired>) + Send + Sync>;

/// Every pool's desired state in the process (one, in [`crate::Registries`]): shared by
/// each pool's source (failover, reconcile) and its weights actuator, and kept when the
/// source is restarted by a settings change and across restarts ([`Self::keep_in`]).
#[derive(Clone, Default)]
pub struct DesiredStates(Arc<Mutex<Registry>>);

impl std::fmt::Debug for DesiredStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registry = lock(&self.0);
        f.debug_struct("DesiredStates")
            .field("pools", &registry.pools.keys().collect::<Vec<_>>())
            .field("file", &registry.file)
            .finish()
    }
}

impl DesiredStates {
    /// Keeps every pool's desired state in `path` from now on, starting from what it
    /// holds: a server perfpilot took out is still perfpilot's to bring back after
    /// perfpilot restarts (HAProxy keeps it out meanwhile). Called once at start-up,
    /// before any source.
    pub fn keep_in(&self, path: std::path::PathBuf) -> Result<(), String> {
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|err| {
                format!(
                    "{}: {err}; move it aside to start without it",
                    path.display()
                )
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(format!("{}: {err}", path.display())),
        };
        let mut registry = lock(&self.0);
        registry.stored = stored;
        registry.file = Some(path);
        Ok(())
    }

    /// Whether this process may change the load balancers on its own (fail over,
    /// re-apply after a reload): not while it follows another replica.
    pub fn may_act(&self) -> bool {
        !lock(&self.0).follows
    }

    /// Follows another replica (`true`) or leads (`false`).
    pub fn set_follows(&self, follows: bool) {
        lock(&self.0).follows = follows;
    }

    /// Keeps every pool's desired state through `save` from now on, starting from
    /// `stored` (what it saved last): the file's role for replicas of a shared store.
    pub fn keep_with(&self, stored: BTreeMap<String, Desired>, save: SaveDesired) {
        let mut registry = lock(&self.0);
        registry.stored = stored;
        registry.hook = Some(save);
    }

    /// Takes `stored` as every pool's desired state (a replica taking over from another):
    /// running pools get theirs at once, the others when they start.
    pub fn adopt(&self, mut stored: BTreeMap<String, Desired>) {
        let mut registry = lock(&self.0);
        for (resource, desired) in &registry.pools {
            *lock(desired) = stored.remove(resource).unwrap_or_default();
        }
        registry.stored = stored;
    }

    /// The desired state of the pool `resource`: one per pool, whoever asks first.
    pub fn of(&self, resource: &str) -> Arc<Mutex<Desired>> {
        let mut registry = lock(&self.0);
        let stored = registry.stored.remove(resource).unwrap_or_default();
        registry
            .pools
            .entry(resource.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(stored)))
            .clone()
    }

    /// Writes every pool's desired state to the file (when there is one), whole and
    /// atomically. Callers hold no pool's lock.
    pub fn save(&self) {
        let registry = lock(&self.0);
        if registry.file.is_none() && registry.hook.is_none() {
            return;
        }
        let mut all: BTreeMap<String, Desired> = registry.stored.clone();
        for (resource, desired) in &registry.pools {
            let desired = lock(desired).clone();
            if desired != Desired::default() {
                all.insert(resource.clone(), desired);
            }
        }
        let (file, hook) = (registry.file.clone(), registry.hook.clone());
        drop(registry);
        if let Some(save) = hook {
            save(all);
            return;
        }
        let Some(path) = file else {
            return;
        };
        let staging = path.with_extension("json.new");
        let written = serde_json::to_vec_pretty(&all)
            .map_err(std::io::Error::other)
            .and_then(|body| std::fs::write(&staging, body))
            .and_then(|()| std::fs::rename(&staging, &path));
        if let Err(err) = written {
            tracing::warn!(file = %path.display(), %err, "The load balancers' desired state could not be saved");
        }
    }
}

/// What perfpilot wants HAProxy to hold, re-applied after a reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Servers perfpilot took out (drain or maint). Absent: left alone.
    pub states: BTreeMap<String, AdminState>,
    /// Weights perfpilot set.
    pub weights: BTreeMap<String, u32>,
}

/// What the source's ticks and its check tasks share.
#[derive(Debug)]
struct Shared {
    endpoint: Endpoint,
    settings: HaproxySettings,
    desired: Arc<Mutex<Desired>>,
    /// Where `desired` is saved with every pool's.
    desired_states: DesiredStates,
    events: probe::EventLog,
    /// Each checked server's last verdict (up or not), whoever acted on it.
    verdicts: Mutex<BTreeMap<String, bool>>,
    /// Whether this pool's last tick saw its replica following.
    followed: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Acts on the checks' last verdicts that the desired state does not reflect, once,
    /// when this replica has just taken over: what it missed while it followed (a server
    /// the last leader took out that passes again, one that failed while nobody could
    /// act).
    async fn catch_up_with_checks(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if !self.desired_states.may_act() {
            self.followed.store(true, Ordering::Relaxed);
            return;
        }
        // Only on the tick that finds this replica leading after it followed: a single
        // perfpilot acts on every verdict as it comes (and a person may have made a
        // failing server ready on purpose since).
        if !self.followed.swap(false, Ordering::Relaxed) || !self.settings.failover {
            return;
        }
        let missed: Vec<(String, bool)> = {
            let desired = lock(&self.desired);
            lock(&self.verdicts)
                .iter()
                .filter(|(server, up)| **up == desired.states.contains_key(*server))
                .map(|(server, up)| (server.clone(), *up))
                .collect()
        };
        for (server, up) in missed {
            let why = if up { "checks pass" } else { "checks fail" };
            self.on_verdict(&server, up, why).await;
        }
    }

    fn event(&self, server: Option<&str>, what: String) {
        self.events.record(server, what);
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<(), String> {
        runtime_api::set_state(
            &self.endpoint,
            &self.settings.backend,
            server,
            state,
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// A check verdict changed: fail over (drain, then maint) or bring the server back.
    async fn on_verdict(self: &Arc<Self>, server: &str, up: bool, why: &str) {
        lock(&self.verdicts).insert(server.to_owned(), up);
        if !self.settings.failover {
            let what = if up {
                format!("{server} passes its checks again")
            } else {
                format!("{server} fails its checks: {why}")
            };
            self.event(Some(server), what);
            return;
        }
        if !self.desired_states.may_act() {
            let verdict = if up {
                "passes its checks again"
            } else {
                "fails its checks"
            };
            self.event(
                Some(server),
                format!("{server} {verdict} ({why}); failover is the leading replica's"),
            );
            return;
        }
        if up {
            if lock(&self.desired).states.remove(server).is_none() {
                return;
            }
            self.desired_states.save();
            match self.set_state(server, AdminState::Ready).await {
                Ok(()) => self.event(
                    Some(server),
                    format!(
                        "{server} ready again: passed {} checks in a row",
                        self.settings.check.as_ref().map_or(1, |c| c.rise)
                    ),
                ),
                Err(err) => self.event(
                    Some(server),
                    format!("{server} could not be made ready: {err}"),
                ),
            }
            return;
        }
        lock(&self.desired)
            .states
            .insert(server.to_owned(), AdminState::Drain);
        self.desired_states.save();
        match self.set_state(server, AdminState::Drain).await {
            Ok(()) => self.event(Some(server), format!("{server} drained: {why}")),
            Err(err) => {
                self.event(
                    Some(server),
                    format!("{server} is down ({why}) but could not be drained: {err}"),
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(self.settings.drain_ms)).await;
        let still_down = {
            let mut desired = lock(&self.desired);
            match desired.states.get_mut(server) {
                Some(state @ AdminState::Drain) => {
                    *state = AdminState::Maint;
                    true
                }
                _ => false,
            }
        };
        if still_down {
            self.desired_states.save();
            match self.set_state(server, AdminState::Maint).await {
                Ok(()) => self.event(
                    Some(server),
                    format!("{server} out of the pool (maint) after its drain"),
                ),
                Err(err) => self.event(
                    Some(server),
                    format!("{server} could not be put in maint: {err}"),
                ),
            }
        }
    }

    /// Re-applies the desired state after HAProxy reloaded.
    async fn reconcile(&self, why: &str) {
        if !self.desired_states.may_act() {
            self.event(None, format!("{why}; re-applying is the leading replica's"));
            return;
        }
        let desired = lock(&self.desired).clone();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (server, state) in &desired.states {
            match self.set_state(server, *state).await {
                Ok(()) => done.push(format!("{server} {}", state.as_str())),
                Err(err) => failed.push(format!("{server} {}: {err}", state.as_str())),
            }
        }
        for (server, weight) in &desired.weights {
            match runtime_api::set_weight(
                &self.endpoint,
                &self.settings.backend,
                server,
                *weight,
                COMMAND_TIMEOUT,
            )
            .await
            {
                Ok(()) => done.push(format!("{server} weight {weight}")),
                Err(err) => failed.push(format!("{server} weight {weight}: {err}")),
            }
        }
        let mut what = format!("reconcile: {why}");
        if done.is_empty() && failed.is_empty() {
            what.push_str("; nothing to re-apply");
        }
        if !done.is_empty() {
            what.push_str(&format!("; re-applied {}", done.join(", ")));
        }
        if !failed.is_empty() {
            what.push_str(&format!("; failed {}", failed.join(", ")));
        }
        self.event(None, what);
    }
}

pub struct HaproxyPoll {
    shared: Arc<Shared>,
    /// perfpilot's checks of the servers, when configured.
    checker: Option<probe::Checker>,
    /// The series of the last tick and the servers they were made for.
    series: super::BackendSeries,
    last_info: Option<runtime_api::Info>,
    reloads: u32,
    /// Backend requests and errors at the last tick, and when.
    last_totals: Option<(u64, u64, UnixMillis)>,
    /// Each server's HAProxy status at the last tick (HAProxy's own checks move it).
    last_status: BTreeMap<String, String>,
    /// The report made with the last tick, until the runtime asks for it.
    details: Option<serde_json::Value>,
}

impl HaproxyPoll {
    async fn tick(&mut self, at: UnixMillis) -> Result<Tick, SourceError> {
        let shared = self.shared.clone();
        let info = runtime_api::command(&shared.endpoint, "show info", COMMAND_TIMEOUT)
            .await
            .and_then(|text| runtime_api::parse_info(&text))
            .map_err(SourceError::new)?;
        if let Some(last) = &self.last_info {
            if last.pid != info.pid || info.uptime_s < last.uptime_s {
                self.reloads += 1;
                let why = if last.pid != info.pid {
                    format!("HAProxy reloaded (process {} → {})", last.pid, info.pid)
                } else {
                    "HAProxy restarted (its uptime went back)".to_owned()
                };
                shared.reconcile(&why).await;
            }
        }
        self.last_info = Some(info);
        shared.catch_up_with_checks().await;
        let stat = runtime_api::command(
            &shared.endpoint,
            &format!("show stat {} 6 -1", shared.settings.backend),
            COMMAND_TIMEOUT,
        )
        .await
        .map_err(SourceError::new)?;
        if stat.trim_start().starts_with("No such proxy") {
            let all = runtime_api::command(&shared.endpoint, "show stat", COMMAND_TIMEOUT)
                .await
                .map_err(SourceError::new)?;
            let known = runtime_api::backends(&all);
            return Err(SourceError::new(format!(
                "HAProxy has no backend named {:?} (it has: {})",
                shared.settings.backend,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let rows =
            runtime_api::parse_stat(&stat, &shared.settings.backend).map_err(SourceError::new)?;
        let Some(total) = rows.iter().find(|r| r.name == "BACKEND").cloned() else {
            return Err(SourceError::new(format!(
                "HAProxy has no backend named {:?} (any more)",
                shared.settings.backend
            )));
        };
        let servers: Vec<StatRow> = rows.into_iter().filter(|r| r.name != "BACKEND").collect();
        self.follow_servers(&servers);
        self.follow_haproxy_checks(&servers);
        Ok(self.reading(at, &total, &servers))
    }

    /// HAProxy's own health checks taking a server out of rotation or back: events (and
    /// marks), with HAProxy's reason. HAProxy has already acted; perfpilot records it.
    fn follow_haproxy_checks(&mut self, servers: &[StatRow]) {
        for server in servers {
            let down = server.status.starts_with("DOWN");
            let before = self
                .last_status
                .insert(server.name.clone(), server.status.clone());
            let Some(before) = before else { continue };
            let was_down = before.starts_with("DOWN");
            if down && !was_down {
                let why = server.check.as_deref().unwrap_or("no reason given");
                self.shared.event(
                    Some(&server.name),
                    format!("{} DOWN by HAProxy's own check: {why}", server.name),
                );
            } else if was_down && !down && server.status.starts_with("UP") {
                self.shared.event(
                    Some(&server.name),
                    format!("{} UP again by HAProxy's own check", server.name),
                );
            }
        }
        self.last_status
            .retain(|name, _| servers.iter().any(|s| s.name == *name));
    }

    /// Starts checking servers that appeared, stops those that went.
    fn follow_servers(&mut self, servers: &[StatRow]) {
        let Some(checker) = self.checker.as_mut() else {
            return;
        };
        let backends: Vec<(String, String)> = servers
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.addr.clone()?)))
            .collect();
        let desired = self.shared.desired.clone();
        // Taken out before this source (re)started: it earns its way back with `rise`.
        let (joined, left) =
            checker.follow(&backends, |name| lock(&desired).states.contains_key(name));
        for name in &left {
            lock(&self.shared.desired).states.remove(name);
            self.shared
                .event(Some(name), format!("{name} left the backend"));
        }
        if !left.is_empty() {
            self.shared.desired_states.save();
        }
        if self.series.started() {
            for name in joined {
                let address = backends
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, a)| a.as_str())
                    .unwrap_or_default();
                self.shared.event(
                    Some(&name),
                    format!("{name} joined the backend ({address})"),
                );
            }
        }
    }

    fn reading(&mut self, at: UnixMillis, total: &StatRow, servers: &[StatRow]) -> Tick {
        let checks = self
            .checker
            .as_ref()
            .map(probe::Checker::states)
            .unwrap_or_default();
        let up = |server: &StatRow| -> bool {
            let haproxy_up = !["DOWN", "MAINT", "DRAIN", "NOLB"]
                .iter()
                .any(|s| server.status.starts_with(s));
            haproxy_up && checks.get(&server.name).is_none_or(|c| c.health.up)
        };
        let up_count = servers.iter().filter(|s| up(s)).count();
        let (requests, errors) = (total.requests.unwrap_or(0), total.errors.unwrap_or(0));
        let (rate, error_pct) = match self.last_totals {
            Some((last_requests, last_errors, last_at))
                if at > last_at && requests >= last_requests =>
            {
                let served = (requests - last_requests) as f64;
                let failed = errors.saturating_sub(last_errors) as f64;
                let seconds = (at - last_at) as f64 / 1000.0;
                (
                    Some((served / seconds) as f32),
                    Some(if served > 0.0 {
                        (failed / served * 100.0).min(100.0) as f32
                    } else {
                        0.0
                    }),
                )
            }
            _ => (None, None),
        };
        self.last_totals = Some((requests, errors, at));
        let total_count = servers.len();
        let mut values: Vec<Option<f32>> = vec![
            total.rtime_ms.map(|v| v as f32),
            error_pct,
            rate,
            (total_count > 0).then(|| up_count as f32 * 100.0 / total_count as f32),
            Some(up_count as f32),
            Some(total_count as f32),
            total.queue.map(|v| v as f32),
            total.sessions.map(|v| v as f32),
        ];
        for server in servers {
            let check = checks.get(&server.name);
            values.push(Some(if up(server) { 1.0 } else { 0.0 }));
            values.push(check.and_then(|c| c.last.phases.total_ms));
            values.push(check.map(|c| c.availability_pct() as f32));
            values.push(server.weight.map(|w| w as f32));
            values.push(server.sessions.map(|v| v as f32));
        }
        self.details = Some(self.report(servers, &checks));
        Tick {
            at,
            series: self
                .series
                .for_backends(servers.iter().map(|s| s.name.clone()).collect()),
            values,
            top_processes: None,
        }
    }

    fn report(
        &self,
        servers: &[StatRow],
        checks: &BTreeMap<String, probe::CheckState>,
    ) -> serde_json::Value {
        let desired = lock(&self.shared.desired).clone();
        let report = LbReport {
            version: self
                .last_info
                .as_ref()
                .map(|i| format!("HAProxy {}", i.version)),
            pid: self.last_info.as_ref().map(|i| i.pid),
            uptime_s: self.last_info.as_ref().map(|i| i.uptime_s),
            reloads: self.reloads,
            backend: self.shared.settings.backend.clone(),
            backends: servers
                .iter()
                .map(|s| BackendView {
                    name: s.name.clone(),
                    address: s.addr.clone().unwrap_or_default(),
                    status: s.status.clone(),
                    desired: desired.states.get(&s.name).copied(),
                    weight: s.weight,
                    sessions: s.sessions,
                    queue: s.queue,
                    rate: s.rate.map(|r| r as f64),
                    response_ms: s.rtime_ms.map(|r| r as f64),
                    check: checks.get(&s.name).map(probe::CheckState::view),
                })
                .collect(),
            events: self.shared.events.recent(),
            problems: Vec::new(),
        };
        serde_json::to_value(report).expect("a report serializes")
    }
}

impl Poll for HaproxyPoll {
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
        Box::pin(self.tick(at))
    }

    fn details(&mut self) -> Option<serde_json::Value> {
        self.details.take()
    }

    fn marks(&mut self) -> Vec<SourceMark> {
        self.shared.events.take_marks()
    }
}
