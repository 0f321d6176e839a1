//! The monitor: the one task that turns source batches into history, statuses and live
//! frames. Collect (sources) → history → Analyze → Optimize (actuators) → Verify → publish.
//!
//! It is the only writer of history and of the optimizer's trackers; request handlers
//! read history under a short read lock and configuration from the engine's `ChangeStore`.
//! Sources run on their own tasks ([`engine::source::runtime`]) and only hand batches over,
//! so a slow or failing one never stalls this loop. The host source is the clock: each of
//! its ticks evaluates every resource and publishes one frame (other sources' latest
//! samples count while fresh). If the clock goes quiet, a watchdog evaluates anyway so
//! cards show gaps instead of freezing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use app::identity::Identity;
use app::live::CardTick;
use connectors::actuators::{Actuators, RunnerConfig};
use connectors::sources::{host, owns, push};
use engine::actions::ActionOutcome;
use engine::actuator::Step;
use engine::alerts::{Alert, AlertChange, ForecastChange};
use engine::changes::{ChangeStore, MutationKind, StoreOptions};
use engine::history::{History, HistoryConfig};
use engine::model::{Resource, ResourceId, TargetState};
use engine::optimizer::{Analyzer, Condition, EventKind, Tracker};
use engine::series::{SeriesKey, Tick, TopProcesses, UnixMillis};
use engine::source::runtime::{SourceEvent, Sources};
use engine::source::Batch;
use engine::sync::{lock, read, write};
use tokio::sync::mpsc;

use super::actuate::{Acting, Finished};
use super::hub::Hub;
use super::overview::{card_metric, top_line};
use super::proof::Proof;
use super::sources::ConfiguredSources;
use crate::persist::{Loaded, Location, Persist};

/// How long a sample of a source other than the clock counts as its card's live value.
const FRESHNESS_MS: i64 = 15_000;

/// Opens the durable state, then starts the sources and the monitor with the configured
/// settings.
pub fn start(settings: &crate::config::Settings) -> anyhow::Result<Monitor> {
    let (location, leadership) = match (&settings.database, &settings.data_dir) {
        (Some(database), _) => {
            let fence = Arc::new(crate::persist::Fence::new(&database.replica));
            let address = database.advertise_url.clone();
            (
                Location::Postgres(Box::new(database.postgres.clone())),
                super::lease::Leadership::replicated(
                    &database.replica,
                    &address,
                    fence,
                    super::lease::Timing::of(database.lease),
                ),
            )
        }
        (None, Some(dir)) => (
            Location::Dir(dir.clone()),
            super::lease::Leadership::alone(),
        ),
        (None, None) => (Location::Memory, super::lease::Leadership::alone()),
    };
    let (persist, loaded) = Persist::open_fenced(&location, leadership.fence_handle())?;
    if let Some(key) = loaded.replica_key.clone() {
        leadership.set_forward_key(key);
    }
    let collector = host::HostCollector::new(host::CollectorConfig {
        interval: settings.collect_interval,
        ..Default::default()
    });
    let options = StoreOptions {
        autosave: engine::changes::AutoSave::new(settings.autosave_every, 100)?,
        // Refused when saved, not only when a breach would run it.
        allowed_programs: Some(Arc::new(settings.actions.allowed_programs.clone())),
        ..StoreOptions::default()
    };
    let history = HistoryConfig::default();
    let (stored, recent) = match &settings.data_dir {
        Some(dir) => crate::persist::history::HistoryStore::open(
            dir,
            history.step_ms,
            settings.history,
            engine::time::unix_now_ms(),
        )?,
        None => (
            crate::persist::history::HistoryStore::disabled(),
            Vec::new(),
        ),
    };
    Monitor::start(Parts {
        host: host::source(collector, &settings.resource_defaults),
        interval: settings.collect_interval,
        resource_defaults: settings.resource_defaults.clone(),
        data_dir: settings.data_dir.clone(),
        history,
        stored,
        recent,
        options,
        persist,
        loaded,
        actions: settings.actions.clone(),
        cache_levels: settings.cache_levels.clone(),
        alerts: settings.alerts.clone(),
        public_url: Some(settings.link_base()),
        leadership,
        shared: settings.database.as_ref().map(|d| d.postgres.clone()),
    })
}

/// What [`Monitor::start`] is built from.
pub struct Parts {
    pub host: engine::source::runtime::Polled<host::HostPoll>,
    /// How often configured sources (databases, caches) are read.
    pub interval: Duration,
    /// Settings of resources added from the configuration file.
    pub resource_defaults: engine::model::ResourceSettings,
    /// Where stored secrets go (`None` with `--ephemeral`).
    pub data_dir: Option<std::path::PathBuf>,
    pub history: HistoryConfig,
    /// History on disk, and what it held of the recent past at start-up.
    pub stored: crate::persist::history::HistoryStore,
    pub recent: Vec<crate::persist::history::Recent>,
    pub options: StoreOptions,
    pub persist: Persist,
    pub loaded: Loaded,
    pub actions: RunnerConfig,
    /// `[[cache_level]]`: resources counted as levels of cache groups.
    pub cache_levels: Vec<crate::config::CacheLevelEntry>,
    /// The alert policy and channels.
    pub alerts: crate::config::AlertSettings,
    /// Where links in notifications point: `--public-url`, else the listen address
    /// ([`crate::config::Settings::link_base`]).
    pub public_url: Option<String>,
    /// Whether this replica may act ([`super::lease`]); alone unless `--database-url`.
    pub leadership: super::lease::Leadership,
    /// `--database-url`: the store replicas share (the alert tables are there too).
    pub shared: Option<connectors::sources::postgres::PostgresSettings>,
}

/// The store to start with: the persisted one when there is one, with host resources it
/// does not know yet added (not counted as changes: they are what this host has, not an
/// edit); otherwise the host's resources at change 0.
///
/// The configured auto-save period wins over the persisted one: it is what the operator
/// asks for now. Snapshots are taken at change numbers divisible by it, and the counter
/// continues, so an unchanged period keeps its rhythm across restarts.
fn initial_store(
    host: Vec<Resource>,
    options: StoreOptions,
    loaded: Option<engine::changes::PersistedState>,
) -> anyhow::Result<ChangeStore> {
    let Some(mut state) = loaded else {
        return Ok(ChangeStore::with_resources(host, options)?);
    };
    if state.autosave != options.autosave {
        tracing::info!(
            persisted = state.autosave.every(),
            configured = options.autosave.every(),
            "Auto-save period differs from the stored one; the configured period applies"
        );
        state.autosave = options.autosave;
    }
    let known: std::collections::HashSet<ResourceId> =
        state.resources.iter().map(|r| r.id.clone()).collect();
    let mut added = 0;
    for resource in host {
        if !known.contains(&resource.id) {
            state.resources.push(resource);
            added += 1;
        }
    }
    if added > 0 {
        tracing::info!(
            added,
            "Host resources not in the stored configuration were added"
        );
    }
    ChangeStore::from_persisted(state, options)
        .map_err(|err| anyhow::anyhow!("the stored configuration is not valid: {err}"))
}

/// The alerts the store says are firing, as the monitor's alert states: what it starts
/// with, and what a replica taking over carries on from (not its own follower's view).
fn restored_alerts(alerting: &super::alerting::Alerting) -> HashMap<ResourceId, Alert> {
    alerting
        .restored()
        .into_iter()
        .filter_map(|(resource, started)| {
            Some((
                ResourceId::new(&resource).ok()?,
                Alert::firing_since(started),
            ))
        })
        .collect()
}

/// What running sources share, with the load balancers' desired states kept where this
/// perfpilot keeps them: the shared store for a replica (so the next leader knows which
/// servers the last one took out), else `lb-desired.json` in the data directory.
fn registries(
    leadership: &super::lease::Leadership,
    persist: &Persist,
    stored: Option<&str>,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<connectors::Registries> {
    let registries = connectors::Registries::default();
    // A replica starts following: its pools' sources watch but do not fail over.
    registries.lb.set_follows(!leadership.leads());
    if leadership.is_replicated() {
        let saving = persist.clone();
        registries.lb.keep_with(
            lb_desired(stored),
            Arc::new(move |all| match serde_json::to_string(&all) {
                Ok(body) => saving.save_lb_desired(body),
                Err(err) => tracing::warn!(%err, "The desired states do not serialize"),
            }),
        );
    } else if let Some(dir) = data_dir {
        registries
            .lb
            .keep_in(dir.join("lb-desired.json"))
            .map_err(|err| anyhow::anyhow!("the load balancers' desired state in {err}"))?;
    }
    Ok(registries)
}

/// The load balancers' desired states as a shared store keeps them (JSON), or none.
fn lb_desired(
    body: Option<&str>,
) -> std::collections::BTreeMap<String, connectors::sources::haproxy::Desired> {
    body.and_then(|body| match serde_json::from_str(body) {
        Ok(map) => Some(map),
        Err(err) => {
            tracing::warn!(%err, "The stored desired states do not parse; starting without them");
            None
        }
    })
    .unwrap_or_default()
}

/// History in memory, with the last day of what was on disk put back.
fn restored_history(
    config: HistoryConfig,
    recent: Vec<crate::persist::history::Recent>,
) -> anyhow::Result<History> {
    let mut history = History::new(config)?;
    let restored_series = recent.len();
    for series in recent {
        let minutes = series.minutes.iter().map(|p| (p.t, p.min, p.mean, p.max));
        let raw = series.raw.iter().map(|p| (p.t, p.mean));
        if let Err(err) = history.restore(series.info, minutes, raw) {
            tracing::warn!(%err, "History on disk not all restored");
            break;
        }
    }
    if restored_series > 0 {
        tracing::info!(
            series = restored_series,
            "Restored the last day of history from disk"
        );
    }
    Ok(history)
}

/// Messages to the monitor task.
pub(crate) enum Control {
    /// An accepted change; `scope` is the one resource it touched, `None` for all.
    Changed {
        scope: Option<ResourceId>,
        why: MutationKind,
    },
    /// A person acknowledged the resource's alert: the optimizer may act on it again.
    Acknowledged { resource: ResourceId },
    /// Changes the action journal says were left unverified: roll them back.
    Recover(Vec<crate::persist::OpenAction>),
    /// This replica takes over: its alert states become the shared store's.
    TakeOver,
    /// Panics the task: only for the test that `/readyz` follows the task's life.
    #[doc(hidden)]
    Crash,
}

/// Counters the monitor keeps about its own work, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    gaps: AtomicU64,
    /// f64 bits of the last tick's processing time in seconds.
    last_duration_bits: AtomicU64,
    /// Time spent refitting time-to-breach and counting anomalies, in nanoseconds: what
    /// foresight costs, read by the benchmark and `/metrics`.
    foresight_nanos: AtomicU64,
    /// By [`ActionOutcome::LABELS`].
    outcomes: [AtomicU64; ActionOutcome::LABELS.len()],
    /// By [`Step::ALL`] × (failed, ok).
    steps: [[AtomicU64; 2]; Step::ALL.len()],
}

/// A copy of the monitor's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickStats {
    pub ticks: u64,
    pub gaps: u64,
    pub last_duration_secs: f64,
    pub foresight_secs: f64,
}

/// Shared handles of the running monitor.
#[derive(Clone)]
pub struct Monitor {
    pub store: Arc<ChangeStore>,
    /// The durable side: journal, audit, snapshots, tokens.
    pub persist: Persist,
    /// Written only by the monitor task (tests seed it directly).
    pub history: Arc<RwLock<History>>,
    pub hub: Hub,
    pub sources: Arc<Sources>,
    /// Where `POST /api/push` hands validated samples.
    pub push: push::PushIngest,
    /// Configured sources: the running ones, fleets' handles, database and cache groups
    /// (see `state::sources`).
    pub configured: ConfiguredSources,
    /// History on disk (disabled with `--ephemeral`).
    pub stored: crate::persist::history::HistoryStore,
    /// True while the monitor task runs; a guard in the task clears it however the task
    /// ends, a panic included.
    alive: Arc<AtomicBool>,
    counters: Arc<Counters>,
    control: mpsc::UnboundedSender<Control>,
    /// The latest top-process scan (every few seconds), so cards can say who is busy.
    top: Arc<Mutex<Option<Arc<TopProcesses>>>>,
    /// Before/after comparisons; opened by handlers, completed by the monitor task.
    proof: Arc<Mutex<Proof>>,
    /// Alert notifications: channels, silences, the outbox.
    pub alerting: super::alerting::Alerting,
    /// Whether this replica leads: only the leader acts, verifies, notifies and takes
    /// edits; a follower collects and shows.
    pub leadership: super::lease::Leadership,
    /// The host's own resources, added to whatever configuration is adopted.
    host_resources: Arc<Vec<Resource>>,
    /// Each series' weeks before the day in memory, from disk, and their daily pattern:
    /// what time-to-breach fits and anomaly bands judge against.
    pub(super) older: super::forecasts::OlderPoints,
    /// One read-back of the shared configuration at a time: edits passed on through a
    /// follower each wait for it, and the ones after the first find nothing left to read.
    catching_up: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

/// Clears `alive` when the task ends, by return or by panic.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
        if std::thread::panicking() {
            tracing::error!("The monitor task panicked; live data has stopped");
        }
    }
}

impl Monitor {
    /// Registers the sources' resources (with the seed's default targets), then starts
    /// the sources and the task that consumes their batches.
    pub fn start(parts: Parts) -> anyhow::Result<Monitor> {
        let Parts {
            host,
            interval,
            resource_defaults,
            data_dir,
            history,
            stored,
            recent,
            options,
            persist,
            loaded,
            actions,
            cache_levels,
            alerts,
            public_url,
            leadership,
            shared,
        } = parts;
        let restored = loaded.state.is_some();
        let host_resources = engine::source::runtime::Source::info(&host).resources;
        // One clock: the change store's (snapshots) is the alerts' too (silences, quiet
        // hours, repeats).
        let wall_clock = options.clock.clone();
        let store = Arc::new(initial_store(
            host_resources.clone(),
            options,
            loaded.state,
        )?);
        // Queued before any change can be, so the file holds every resource first. A
        // replica writes it only once it leads (the fence would refuse it before).
        if !leadership.is_replicated() {
            persist.baseline(store.persisted());
        }
        if restored {
            let stats = store.stats();
            tracing::info!(
                change = stats.change,
                resources = store.state().resources.len(),
                snapshots = stats.snapshots_kept,
                audit_entries = loaded.audit_entries,
                before_after = loaded.events.len(),
                "Restored the stored state"
            );
        }
        let mut proof = Proof::default();
        proof.restore(loaded.events);
        // With history on disk, a before/after measuring at a stop finishes after the
        // restart from the restored history; without it, it is cut short at the stop.
        if stored.is_enabled() {
            proof.keep_pending_in(persist.clone(), loaded.pending);
        }
        let history = Arc::new(RwLock::new(restored_history(history, recent)?));
        let alerting = super::alerting::Alerting::open(
            data_dir.as_deref(),
            &alerts,
            &actions.secrets,
            super::alerting::Wiring {
                store: store.clone(),
                persist: persist.clone(),
                public_url,
                clock: wall_clock,
                leadership: leadership.clone(),
                shared,
            },
        )?;
        // Before any source starts: a pool's sources read their desired state when they do.
        let registries = registries(
            &leadership,
            &persist,
            loaded.lb_desired.as_deref(),
            data_dir.as_deref(),
        )?;
        let (sources, events) = Sources::new();
        let (push_source, push) = push::source();
        let (control, control_rx) = mpsc::unbounded_channel();
        let configured = ConfiguredSources {
            store: store.clone(),
            history: history.clone(),
            sources: sources.clone(),
            persist: persist.clone(),
            running: Arc::default(),
            registries,
            interval,
            resource_defaults,
            data_dir,
            cache_levels: cache_levels.into(),
        };
        let monitor = Monitor {
            control,
            persist,
            proof: Arc::new(Mutex::new(proof)),
            top: Arc::default(),
            store,
            history,
            hub: Hub::default(),
            sources: sources.clone(),
            push,
            alive: Arc::new(AtomicBool::new(true)),
            counters: Arc::default(),
            configured,
            stored,
            alerting: alerting.clone(),
            leadership,
            host_resources: Arc::new(host_resources),
            older: super::forecasts::OlderPoints::default(),
            catching_up: Arc::default(),
        };
        let clock = Duration::from_millis(history_step(&monitor));
        let task = MonitorTask::new(monitor.clone(), actions);
        tokio::spawn(task.run(events, control_rx, clock));
        tokio::spawn(alerting.run());
        tokio::spawn(async move {
            sources.add(Box::new(host)).await;
            sources.add(Box::new(push_source)).await;
        });
        monitor.configured.reconcile_sources();
        if !monitor.leadership.is_replicated() {
            // One replica leads from the start: what its last run left unverified is its.
            let recovering = monitor.clone();
            tokio::spawn(async move {
                if let Err(err) = recovering.recover_actions().await {
                    tracing::error!(%err, "Cannot read the action journal");
                }
            });
        }
        Ok(monitor)
    }

    /// Stops the sources (the monitor task ends with them), then finishes the before/afters
    /// still measuring with the part that was measured. Later calls do nothing more.
    pub async fn shutdown(&self) {
        self.sources.shutdown().await;
        let stored = self.stored.clone();
        let _ = tokio::task::spawn_blocking(move || stored.flush()).await;
        if self.stored.is_enabled() {
            // Kept in the database: they finish after the restart.
            return;
        }
        // History is memory-only: before/afters still measuring would be lost with it, so
        // they are finished with what was measured (the reason says so) and stored.
        let history = self.history();
        let now = engine::time::unix_now_ms();
        for (resource, at, body) in self.proof().complete_early(now, &history) {
            self.persist.save_event(at, &resource, body);
        }
    }

    fn spent_on_foresight(&self, started: std::time::Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters
            .foresight_nanos
            .fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn tick_stats(&self) -> TickStats {
        TickStats {
            ticks: self.counters.ticks.load(Ordering::Relaxed),
            gaps: self.counters.gaps.load(Ordering::Relaxed),
            last_duration_secs: f64::from_bits(
                self.counters.last_duration_bits.load(Ordering::Relaxed),
            ),
            foresight_secs: self.counters.foresight_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// Action executions so far, by outcome.
    pub fn action_outcomes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ActionOutcome::LABELS.into_iter().zip(
            self.counters
                .outcomes
                .iter()
                .map(|c| c.load(Ordering::Relaxed)),
        )
    }

    /// Actuator lifecycle steps so far, by step and result.
    pub fn actuator_steps(&self) -> Vec<(&'static str, bool, u64)> {
        Step::ALL
            .iter()
            .zip(self.counters.steps.iter())
            .flat_map(|(step, counts)| {
                [(false, &counts[0]), (true, &counts[1])]
                    .map(|(ok, count)| (step.as_str(), ok, count.load(Ordering::Relaxed)))
            })
            .collect()
    }

    /// Whether the monitor task is still running (for `/readyz`).
    pub fn is_running(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Makes the monitor task panic: only for the test that `/readyz` follows its life.
    #[doc(hidden)]
    pub fn crash_for_test(&self) {
        self.send(Control::Crash);
    }

    /// A person acknowledged `resource`'s firing alert; a resource the optimizer had
    /// stopped acting on (it needed attention) is acted on again.
    pub fn acknowledge_alert(
        &self,
        resource: &str,
        ack: &app::alerts::Acknowledgement,
        actor: &Identity,
    ) -> Result<(), app::error::AppError> {
        // A resource that needs attention is freed by the acknowledgement even when its
        // alert has resolved meanwhile (the answer then says there was no alert to
        // acknowledge; the optimizer may act again all the same).
        if let Ok(id) = ResourceId::new(resource) {
            self.send(Control::Acknowledged { resource: id });
        }
        self.alerting.acknowledge(resource, ack, actor)
    }

    pub(crate) fn send(&self, control: Control) {
        // A monitor that is gone shows in /readyz; nothing to tell it any more.
        let _ = self.control.send(control);
    }

    /// History under its read lock; hold it briefly and never across an `.await`.
    pub fn history(&self) -> RwLockReadGuard<'_, History> {
        read(&self.history)
    }

    pub(crate) fn proof(&self) -> std::sync::MutexGuard<'_, Proof> {
        lock(&self.proof)
    }

    pub(crate) fn top(&self) -> Option<Arc<TopProcesses>> {
        lock(&self.top).clone()
    }

    /// The full overview: every resource with its recent history
    /// ([`super::overview::build`]). A resource whose source is down says so in its reason.
    pub fn overview(&self) -> app::live::Overview {
        super::overview::build(
            &self.store,
            &self.history,
            &self.source_problems(),
            self.top().as_deref(),
            self.stored.problem().into_iter().collect(),
            self.alerting.pulse(),
            self.leadership.line(),
        )
    }

    /// `keys` over the last `span_ms` ending `now` from the history on disk
    /// ([`super::stored::chart`]; blocking: call it on the blocking pool).
    pub fn stored_chart(
        &self,
        keys: &[SeriesKey],
        span_ms: i64,
        step_ms: i64,
        now: UnixMillis,
    ) -> Result<engine::history::ChartSamples, String> {
        super::stored::chart(&self.stored, keys, span_ms, step_ms, now)
    }

    /// Why each resource of a failing source has no value: resource id → reason.
    pub fn source_problems(&self) -> BTreeMap<String, String> {
        let statuses = self.sources.statuses();
        let state = self.store.state();
        let mut problems = BTreeMap::new();
        for status in statuses.values() {
            let Some(problem) = status.health.problem() else {
                continue;
            };
            for id in state.resources.keys() {
                if owns(&status.resources, id.as_str()) {
                    problems.insert(
                        id.to_string(),
                        format!("no data: {} source: {problem}", status.id),
                    );
                }
            }
        }
        problems
    }

    pub(crate) fn unit_of(&self, resource: &Resource) -> String {
        let history = self.history();
        resource
            .target
            .as_ref()
            .and_then(|t| history.unit(&SeriesKey::new(resource.id.as_str(), t.metric.as_str())))
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Opens a before/after for a manual mark ("deployed v2.3") on a resource, and audits
    /// it.
    pub fn add_mark(
        &self,
        id: &ResourceId,
        label: &str,
        actor: &Identity,
    ) -> Result<(), app::error::AppError> {
        let state = self.store.state();
        let resource = state
            .resources
            .get(id)
            .ok_or_else(|| engine::error::EngineError::UnknownResource { id: id.clone() })?;
        let unit = self.unit_of(resource);
        let event = EventKind::Mark {
            label: label.to_owned(),
        };
        let now = engine::time::unix_now_ms();
        self.proof()
            .open(resource, event, now, unit)
            .map_err(|rule| app::error::AppError::new(422, rule))?;
        self.persist.audit_mark(id.as_str(), label, actor, now);
        Ok(())
    }

    /// Every comparison, measuring ones first, newest first.
    pub fn comparisons(&self) -> Vec<app::proof::ComparisonRow> {
        let state = self.store.state();
        let kind_of =
            |id: &ResourceId, metric: &str| state.resources.get(id)?.metric(metric).map(|m| m.kind);
        self.proof().rows(kind_of)
    }

    fn count_outcome(&self, outcome: &ActionOutcome) {
        if let Some(i) = ActionOutcome::LABELS
            .iter()
            .position(|label| *label == outcome.label())
        {
            self.counters.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_steps(&self, steps: &[engine::actuator::StepRecord]) {
        for record in steps {
            if let Some(i) = Step::ALL.iter().position(|s| *s == record.step) {
                self.counters.steps[i][usize::from(record.ok)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn history_step(monitor: &Monitor) -> u64 {
    monitor.history().config().step_ms.max(1) as u64
}

/// The monitor task's own state: nothing else touches it.
struct MonitorTask {
    monitor: Monitor,
    analyzer: Analyzer,
    trackers: HashMap<ResourceId, Tracker>,
    /// Every target's alert (firing ones restored from the alert store).
    alerts: HashMap<ResourceId, Alert>,
    acting: Acting,
    finished: mpsc::UnboundedReceiver<Finished>,
    /// When the clock source last ticked (the watchdog evaluates when it goes quiet).
    last_clock: tokio::time::Instant,
    /// Each target's latest time-to-breach, refitted once a minute or when the target
    /// changes (a fit reads the whole day in memory).
    forecasts: HashMap<ResourceId, Forecast>,
    /// Each target's forecast alert, moved by every refit.
    forecast_alerts: HashMap<ResourceId, engine::alerts::ForecastAlert>,
    /// Each card's anomalies in the last hour, recounted once a minute.
    anomaly_counts: HashMap<ResourceId, AnomalyCount>,
}

/// How often one card's metric left its band in the last hour, and when that was counted.
struct AnomalyCount {
    at_ms: i64,
    metric: String,
    rate: Option<engine::anomaly::Rate>,
}

/// One resource's time-to-breach, and what it was fitted for.
struct Forecast {
    at_ms: i64,
    target: engine::model::Target,
    text: Option<String>,
    crossing: Option<engine::forecast::Crossing>,
}

/// How often a target's time-to-breach is refitted.
const FORECAST_EVERY_MS: i64 = 60_000;
/// How often each card's anomalies in the last hour are recounted.
const ANOMALIES_EVERY_MS: i64 = 60_000;
/// How often a card whose last hour could not be judged yet is counted again.
const UNJUDGED_EVERY_MS: i64 = 5_000;

/// The time-to-breach of `target` on `series` as of `at`, in words; `None` when the
/// metric does not trend toward the target (or is past it already: the card says so).
impl MonitorTask {
    fn new(monitor: Monitor, actions: RunnerConfig) -> MonitorTask {
        let (acting, finished) = Acting::new(
            Actuators::new(actions, monitor.configured.registries().clone()),
            monitor.persist.clone(),
        );
        let alerts = restored_alerts(&monitor.alerting);
        MonitorTask {
            monitor,
            analyzer: Analyzer::new(),
            trackers: HashMap::new(),
            alerts,
            acting,
            finished,
            last_clock: tokio::time::Instant::now(),
            forecasts: HashMap::new(),
            forecast_alerts: HashMap::new(),
            anomaly_counts: HashMap::new(),
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<SourceEvent>,
        mut control: mpsc::UnboundedReceiver<Control>,
        clock: Duration,
    ) {
        let _alive = AliveGuard(self.monitor.alive.clone());
        let mut watchdog = tokio::time::interval(clock);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut standing = self.monitor.leadership.subscribe();
        loop {
            tokio::select! {
                // Every page's top bar says who leads: tell them at once.
                Ok(()) = standing.changed() => {
                    let monitor = &self.monitor;
                    monitor
                        .configured
                        .registries()
                        .lb
                        .set_follows(!monitor.leadership.leads());
                    monitor.hub.publish_overview(|| monitor.overview());
                }
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                Some(done) = self.finished.recv() => self.on_finished(done),
                Some(first) = control.recv() => self.on_changes(first, &mut control),
                _ = watchdog.tick() => {
                    // The clock source went quiet (stopped, or far behind): evaluate anyway,
                    // so cards show gaps and reasons instead of the last values forever.
                    if self.last_clock.elapsed() > clock * 3 {
                        let now = engine::time::unix_now_ms();
                        self.evaluate(now, None, None);
                    }
                }
            }
        }
        tracing::warn!("Sources stopped; live data has ended");
    }

    fn on_event(&mut self, event: SourceEvent) {
        match event.batch {
            Batch::Tick(tick) => {
                write(&self.monitor.history).append_tick(&tick);
                self.monitor.stored.tick(tick.clone());
                if &*event.source == host::SOURCE_ID {
                    self.last_clock = tokio::time::Instant::now();
                    let started = std::time::Instant::now();
                    let gaps = tick.values.iter().filter(|v| v.is_none()).count() as u64;
                    if let Some(top) = &tick.top_processes {
                        *lock(&self.monitor.top) = Some(top.clone());
                    }
                    self.evaluate(tick.at, Some(&tick), Some(&event.source));
                    let counters = &self.monitor.counters;
                    counters.ticks.fetch_add(1, Ordering::Relaxed);
                    counters.gaps.fetch_add(gaps, Ordering::Relaxed);
                    counters
                        .last_duration_bits
                        .store(started.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
                }
            }
            Batch::Samples(samples) => {
                let stored = {
                    let mut history = write(&self.monitor.history);
                    let stored = history.append_pushed(&samples);
                    if stored.is_ok() {
                        let to_disk = samples
                            .iter()
                            .filter_map(|s| {
                                let info = history.info(history.id(&s.series_key())?)?;
                                Some((info.clone(), s.timestamp, s.value as f32))
                            })
                            .collect();
                        self.monitor.stored.samples(to_disk);
                    }
                    stored
                };
                if let Some(ack) = event.ack {
                    let _ = ack.send(stored);
                }
            }
            Batch::Mark(mark) => {
                let marked = ResourceId::new(&mark.resource)
                    .map_err(app::error::AppError::from)
                    .and_then(|id| {
                        self.monitor
                            .add_mark(&id, &mark.label, &Identity::watcher())
                    });
                match marked {
                    Ok(()) => {
                        tracing::info!(resource = %mark.resource, label = %mark.label, "Source event")
                    }
                    Err(err) => {
                        tracing::warn!(resource = %mark.resource, %err, "Source event not marked")
                    }
                }
                if mark.label.starts_with("cold cache") && self.monitor.leadership.leads() {
                    self.monitor
                        .warm_up(&mark.resource, self.acting.actuators());
                }
            }
        }
    }

    /// A burst of edits (scripts, the API) arrives faster than it is worth republishing:
    /// reset for every change queued now, publish once.
    fn on_changes(&mut self, first: Control, control: &mut mpsc::UnboundedReceiver<Control>) {
        let now = engine::time::unix_now_ms();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Control::Changed { scope, why } => {
                    // A person changed the resource: whatever made the optimizer wait
                    // for one is theirs to have seen.
                    self.acting.acknowledged(scope.as_ref());
                    let reason = format!("configuration changed ({why:?}); re-evaluating");
                    match scope {
                        Some(id) => {
                            if let Some(tracker) = self.trackers.get_mut(&id) {
                                tracker.reset(now, &reason);
                            }
                        }
                        None => self.trackers.values_mut().for_each(|t| {
                            t.reset(now, &reason);
                        }),
                    }
                }
                Control::Acknowledged { resource } => {
                    if self.acting.attention(&resource).is_some() {
                        self.acting.acknowledged(Some(&resource));
                        if let Some(tracker) = self.trackers.get_mut(&resource) {
                            tracker.reset(now, "acknowledged; the optimizer may act again");
                        }
                    }
                }
                Control::Recover(open) => self.acting.recover(open, now),
                Control::TakeOver => {
                    self.monitor.alerting.refresh();
                    self.alerts = restored_alerts(&self.monitor.alerting);
                }
                Control::Crash => panic!("monitor crash requested by a test"),
            }
            next = control.try_recv().ok();
        }
        self.publish_statuses();
        let monitor = &self.monitor;
        monitor.hub.publish_overview(|| monitor.overview());
    }

    fn publish_statuses(&self) {
        let now = engine::time::unix_now_ms();
        let statuses: Vec<_> = self
            .trackers
            .iter()
            .map(|(id, t)| {
                let mut report = t.report();
                report.optimizer = self.acting.state(id, now);
                // The advice is computed from the window's samples on the clock's tick;
                // until the next one the published advice stands with its verdict.
                let published = self.monitor.store.status(id);
                if report.judged.is_some() {
                    report.advice = published.advice;
                }
                report.forecast = published.forecast;
                report.crossing = published.crossing;
                (id.clone(), report)
            })
            .collect();
        self.monitor.store.publish_statuses(statuses);
    }

    /// An action's execution or rollback finished: count it, move the tracker, open the
    /// before/after of a change that was really made, audit it, and show the new status
    /// everywhere.
    fn on_finished(&mut self, done: Finished) {
        let monitor = self.monitor.clone();
        let now = engine::time::unix_now_ms();
        let event = done.event();
        monitor.count_outcome(&event.outcome);
        monitor.count_steps(&event.steps);
        let state = monitor.store.state();
        let id = event.resource.clone();
        let tracker = self.trackers.get_mut(&id);
        let resource = state.resources.get(&id);
        let transition = match (tracker, resource, &event.outcome) {
            (Some(tracker), Some(resource), ActionOutcome::Succeeded { .. }) => {
                let unit = monitor.unit_of(resource);
                // The before/after names the action in words with its values.
                let kind = EventKind::Action {
                    action: done.action().describe(),
                    dry_run: false,
                };
                if let Err(err) = monitor.proof().open(resource, kind, now, unit) {
                    tracing::warn!(resource = %id, %err, "No before/after for this action");
                }
                Some(tracker.action_started(now, &event.action, &resource.settings))
            }
            (Some(tracker), _, ActionOutcome::Failed { error, rolled_back }) => {
                let error = match rolled_back {
                    Some(true) => format!("{error} (rolled back)"),
                    Some(false) => format!("{error} (the rollback failed too)"),
                    None => error.clone(),
                };
                Some(tracker.action_failed(now, &event.action, &error))
            }
            (Some(tracker), _, ActionOutcome::RolledBack { reason, restored }) => {
                Some(tracker.rolled_back(now, reason, *restored))
            }
            (Some(tracker), _, ActionOutcome::Recommended | ActionOutcome::DryRun { .. }) => {
                tracker.note_action(now);
                None
            }
            _ => None,
        };
        for entry in super::actuate::audit_entries(&done) {
            monitor.persist.audit(entry);
        }
        let attention = {
            let history = monitor.history();
            self.acting.finished(done, &history, &state, now)
        };
        let mut told = transition.map(|transition| {
            tracing::info!(
                resource = %id,
                to = transition.to.as_str(),
                reason = %transition.reason,
                "Status changed by an action"
            );
            format!("{}: {}", transition.to.as_str(), transition.reason)
        });
        if let (Some(why), Some(tracker)) = (attention, self.trackers.get_mut(&id)) {
            let transition = tracker.needs_attention(now, &why);
            tracing::warn!(resource = %id, reason = %transition.reason, "Needs attention");
            // One notification for the rollback and what it led to.
            told = Some(match told {
                Some(rolled_back) => format!("{rolled_back}; {}", transition.reason),
                None => format!("failed: {}", transition.reason),
            });
        }
        if let Some(summary) = told {
            monitor.alerting.outcome(id.as_str(), now, &summary);
        }
        self.publish_statuses();
        monitor.hub.publish_overview(|| monitor.overview());
    }

    /// How often `metric` of `id` left its band in the last hour: the resource chart's
    /// 1-hour band (same points, same daily pattern, same settings), so the card and the
    /// chart's caption agree. Recounted once a minute (`bench anomaly`: ~0.75 ms for an
    /// hour at 1 s); the count holds in between.
    fn anomalies_of(
        &mut self,
        id: &ResourceId,
        metric: &str,
        history: &History,
        at: UnixMillis,
    ) -> Option<engine::anomaly::Rate> {
        let fresh = self
            .anomaly_counts
            .get(id)
            // Nothing judged yet (a new resource, a backfill on its way): counted again
            // every few seconds until it can be, not a minute later.
            .filter(|c| {
                let every = if c.rate.is_some() {
                    ANOMALIES_EVERY_MS
                } else {
                    UNJUDGED_EVERY_MS
                };
                at - c.at_ms < every && c.metric == metric
            });
        if let Some(count) = fresh {
            return count.rate;
        }
        let started = std::time::Instant::now();
        let key = SeriesKey::new(id.as_str(), metric);
        let chart = history.chart(
            &engine::history::ChartRequest {
                keys: vec![key.clone()],
                span_ms: app::resource_data::ChartRange::OneHour.millis(),
                per_minute: false,
            },
            at,
        );
        let seasonality = self.monitor.older.seasonality(&key, &self.monitor, at);
        let rate = chart.series.first().and_then(|series| {
            engine::anomaly::seasonal_band(
                &series.means,
                chart.grid.start_ms,
                chart.grid.step_ms,
                &seasonality,
                &engine::anomaly::BandSettings::default(),
            )
            .rate()
        });
        self.anomaly_counts.insert(
            id.clone(),
            AnomalyCount {
                at_ms: at,
                metric: metric.to_owned(),
                rate,
            },
        );
        self.monitor.spent_on_foresight(started);
        rate
    }

    /// Runs the analysis of every resource with a target at `at` and publishes one frame.
    /// `tick` is the clock source's batch (its values are the cards' live values).
    #[allow(clippy::too_many_lines)] // 188 lines today; split before it grows
    fn evaluate(&mut self, at: UnixMillis, tick: Option<&Tick>, _clock: Option<&str>) {
        let monitor = self.monitor.clone();
        let top = monitor.top();
        let problems = monitor.source_problems();
        let state = monitor.store.state();
        let history = monitor.history();
        let mut statuses = Vec::with_capacity(state.resources.len());
        let mut cards = Vec::with_capacity(state.resources.len());
        let policy = monitor.alerting.policy();
        // A follower judges and shows like the leader, but acts on nothing: no action, no
        // verification, no notification. Its trackers and alert states stay current, so
        // when it takes over it carries on instead of starting every window again.
        let leading = monitor.leadership.leads();
        let mut pending = Vec::new();
        let mut alert_changes = Vec::new();
        let mut verifications = Vec::new();
        for (id, resource) in state.resources.iter() {
            let problem = problems.get(id.as_str());
            let metric = card_metric(resource);
            // Series of other sources are not in the clock's tick: show their latest
            // sample while it is fresh instead of a gap every second.
            let value = metric.filter(|_| problem.is_none()).and_then(|m| {
                tick.and_then(|t| t.value(id.as_str(), &m.name))
                    .or_else(|| {
                        let key = SeriesKey::new(id.as_str(), m.name.as_str());
                        let (t, value) = history.get(history.id(&key)?)?.latest()?;
                        (at - t <= FRESHNESS_MS).then_some(value).flatten()
                    })
            });
            let tracker = self
                .trackers
                .entry(id.clone())
                .or_insert_with(|| Tracker::new(at));
            let mut advice = None;
            // A resource whose source is down has no fresh samples: its verdict holds and
            // nothing acts on stale data.
            if let (Some(target), Some(kind), None) =
                (&resource.target, resource.target_kind(), problem)
            {
                let key = SeriesKey::new(id.as_str(), target.metric.as_str());
                if let Some(series) = history.id(&key).and_then(|sid| history.get(sid)) {
                    // The level's crossing, not the statistic's: a p95 target is crossed
                    // a little before the level is, so this errs on the late side.
                    let due = self
                        .forecasts
                        .get(id)
                        .is_none_or(|f| at - f.at_ms >= FORECAST_EVERY_MS || f.target != *target);
                    if due {
                        let started = std::time::Instant::now();
                        let older = monitor.older.of(&key, &monitor, at);
                        let (text, crossing) =
                            super::forecasts::forecast(series, &older, target, kind, at);
                        let change = if leading {
                            self.forecast_alerts.entry(id.clone()).or_default().observe(
                                at,
                                crossing.map(|c| c.eta_secs),
                                &policy,
                            )
                        } else {
                            None
                        };
                        match change {
                            Some(ForecastChange::Fired { since_ms }) => monitor.alerting.forecast(
                                id.as_str(),
                                &resource.name,
                                since_ms,
                                text.as_deref().unwrap_or_default(),
                            ),
                            Some(ForecastChange::Ended) => {
                                monitor.alerting.forecast_ended(id.as_str());
                            }
                            None => {}
                        }
                        self.forecasts.insert(
                            id.clone(),
                            Forecast {
                                at_ms: at,
                                target: target.clone(),
                                text,
                                crossing,
                            },
                        );
                        monitor.spent_on_foresight(started);
                    }
                    let samples = series.last_raw(resource.settings.window_samples());
                    let observation = self.analyzer.observe(&samples, target, &resource.settings);
                    let alert = self.alerts.entry(id.clone()).or_default();
                    let change = alert.observe(
                        at,
                        observation.observed,
                        observation.condition,
                        target,
                        kind,
                        &policy,
                    );
                    if let Some(text) = alert.pending_for(at, target) {
                        pending.push(app::alerts::PendingAlert {
                            resource: id.as_str().to_owned(),
                            name: resource.name.clone(),
                            text: format!(
                                "{text}: {}",
                                alert
                                    .last_value()
                                    .map(|v| engine::model::format_value(v, kind))
                                    .unwrap_or_default()
                            ),
                            since_ms: alert.breach_since_ms().unwrap_or(at),
                        });
                    }
                    if let Some(change) = change {
                        alert_changes.push((id.clone(), change));
                    }
                    if let Some(transition) =
                        tracker.observe(at, &observation, target, kind, &resource.settings)
                    {
                        tracing::info!(
                            resource = %id,
                            from = transition.from.as_str(),
                            to = transition.to.as_str(),
                            reason = %transition.reason,
                            "Status changed"
                        );
                    }
                    if leading {
                        self.acting
                            .consider(at, resource, tracker, &samples, observation.observed);
                    }
                    // The next step while the judged statistic breaches: built only then,
                    // so a steady state within target allocates nothing for it.
                    if let (Condition::Breached, Some(observed)) =
                        (observation.condition, observation.observed)
                    {
                        let recommendation = engine::actions::recommend_for(
                            resource.resource_type,
                            &samples,
                            observed,
                            target,
                            &resource.settings,
                            kind,
                        );
                        advice = Some(recommendation.summary);
                    }
                }
            }
            // A change in effect is watched and judged even while its source reports a
            // problem: a change that broke its own source is exactly what must not slip
            // past its guardrails and verdict (its gaps make the verdict inconclusive).
            if resource.target.is_some() && leading {
                if let Some(verification) = self.acting.watch(at, resource, tracker, &history) {
                    verifications.push(verification);
                }
            }
            let mut report = tracker.report();
            if let (Some(target), Some(kind), None) =
                (&resource.target, resource.target_kind(), problem)
            {
                if let Some(pending) = tracker.pending(at, target, kind) {
                    report.reason = pending;
                    report.pending = true;
                }
            }
            // Until a person looks, the status says why the optimizer holds back, whatever
            // the target's state is meanwhile.
            if let Some(why) = self.acting.attention(id) {
                report.reason = format!("needs attention: {why}");
            }
            report.advice = advice;
            let fitted = match (&resource.target, problem) {
                (Some(_), None) => self.forecasts.get(id),
                _ => None,
            };
            report.forecast = fitted.and_then(|f| f.text.clone());
            report.crossing = fitted.and_then(|f| f.crossing);
            if let (Some(metric), None) = (metric, problem) {
                report.anomalies = self.anomalies_of(id, &metric.name, &history, at);
            }
            report.optimizer = self.acting.state(id, at);
            if problem.is_some() {
                // The last window judged is stale while the source is down.
                report.judged = None;
            }
            cards.push(CardTick {
                id: id.as_str().to_owned(),
                value,
                status: report.status,
                reason: problem.cloned().unwrap_or_else(|| report.reason.clone()),
                top: top_line(resource.resource_type, top.as_deref()),
                evaluated: report.evaluated,
                pending: report.pending,
                target_state: TargetState::of(
                    resource.target.is_some(),
                    &report,
                    problem.is_some(),
                ),
                judged: report.judged.map(|v| v as f32),
                advice: report.advice.clone(),
                forecast: report.forecast.clone(),
                crossing: report.crossing,
                anomalies: report.anomalies,
                optimizer: report.optimizer.clone(),
            });
            statuses.push((id.clone(), report));
        }
        self.trackers
            .retain(|id, _| state.resources.contains_key(id));
        self.forecasts
            .retain(|id, _| state.resources.contains_key(id));
        self.anomaly_counts
            .retain(|id, _| state.resources.contains_key(id));
        monitor.older.retain(at, |key| {
            ResourceId::new(&key.resource)
                .ok()
                .and_then(|id| state.resources.get(&id))
                .and_then(|r| r.target.as_ref())
                .is_some_and(|t| t.metric == key.metric)
        });
        // A forecast alert of a removed resource or target ends with it.
        self.forecast_alerts.retain(|id, _| {
            let kept = state.resources.get(id).is_some_and(|r| r.target.is_some());
            if !kept {
                monitor.alerting.forecast_ended(id.as_str());
            }
            kept
        });
        // A firing alert whose resource or target went away resolves, saying so.
        for (id, alert) in self.alerts.iter_mut() {
            let why = match state.resources.get(id) {
                None => "the resource was removed",
                Some(r) if r.target.is_none() => "the target was removed",
                Some(_) => continue,
            };
            if let Some(change) = alert.withdraw(at, why) {
                alert_changes.push((id.clone(), change));
            }
        }
        self.alerts.retain(|id, alert| {
            state.resources.get(id).is_some_and(|r| r.target.is_some())
                || alert.phase() != engine::alerts::AlertPhase::Ok
        });
        // Verdicts first, so an action's before/after that ends on this tick has its own.
        for verification in &verifications {
            monitor.proof().settle_action(
                &verification.resource,
                verification.started_ms,
                verification.verdict.clone(),
            );
            monitor
                .persist
                .audit(super::actuate::verification_entry(verification));
        }
        // Before/after windows that ended with this tick, under the same read lock.
        for (resource, at, body) in monitor.proof().complete(at, &history) {
            monitor.persist.save_event(at, &resource, body);
        }
        drop(history);
        if !leading {
            alert_changes.clear();
        }
        for (id, change) in alert_changes {
            match change {
                AlertChange::Fired {
                    started_ms,
                    summary,
                    ..
                } => monitor.alerting.fired(id.as_str(), started_ms, &summary),
                AlertChange::Resolved {
                    started_ms,
                    ended_ms,
                    summary,
                } => monitor
                    .alerting
                    .resolved(id.as_str(), started_ms, ended_ms, &summary),
            }
        }
        for verification in verifications {
            if let Some(transition) = verification.transition {
                let summary = format!("verified: {}", transition.reason);
                monitor
                    .alerting
                    .outcome(verification.resource.as_str(), at, &summary);
            }
        }
        monitor.alerting.set_pending(pending);
        monitor.store.publish_statuses(statuses);
        monitor
            .hub
            .publish_tick(at, cards, monitor.alerting.pulse());
    }
}

impl Monitor {
    /// Replaces the configuration with what the shared store holds (plus this host's own
    /// resources) when it differs, and tells the live side as a restore would. Answers
    /// whether anything was adopted.
    pub(crate) async fn catch_up(&self) -> anyhow::Result<bool> {
        let _one_at_a_time = self.catching_up.lock().await;
        // Only the leader changes the configuration, and every change takes a number: the
        // same number is the same configuration.
        let stored = self.persist.stored_change().await?;
        let diverged = self.persist.take_diverged();
        if stored == self.store.state().change && !diverged {
            return Ok(false);
        }
        let loaded = self.persist.reload().await?;
        let Some(mut state) = loaded.state else {
            return Ok(false);
        };
        let known: std::collections::HashSet<ResourceId> =
            state.resources.iter().map(|r| r.id.clone()).collect();
        for resource in self.host_resources.iter() {
            if !known.contains(&resource.id) {
                state.resources.push(resource.clone());
            }
        }
        self.store
            .adopt(state)
            .map_err(|err| anyhow::anyhow!("the shared configuration is not valid: {err}"))?;
        self.configured.reconcile_sources();
        self.configured.sync_fleets();
        self.send(Control::Changed {
            scope: None,
            why: MutationKind::Restore,
        });
        Ok(true)
    }
}

impl Monitor {
    /// Hands the actions the journal says were left unverified to the monitor task, which
    /// rolls them back.
    pub(crate) async fn recover_actions(&self) -> anyhow::Result<()> {
        let open = self.persist.open_actions().await?;
        if !open.is_empty() {
            tracing::warn!(
                actions = open.len(),
                "Found changes left unverified by the last run; rolling them back"
            );
            self.send(Control::Recover(open));
        }
        Ok(())
    }
}

/// The monitor as a replica of a shared store, with the configuration file's sources it
/// applies whenever it takes the lease.
pub struct Replicated {
    pub monitor: Monitor,
    pub configured: Vec<crate::config::ConfiguredEntry>,
}

impl std::ops::Deref for Replicated {
    type Target = Monitor;

    fn deref(&self) -> &Monitor {
        &self.monitor
    }
}

impl super::lease::Replica for Replicated {
    fn took_over(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(err) = self.monitor.apply_configured(&self.configured).await {
                tracing::error!(%err, "Cannot apply the configuration file's sources");
            }
        })
    }

    fn promoted(&self) -> futures_util::future::BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.catch_up().await?;
            // The servers the last leader took out are this one's to bring back.
            let stored = self.persist.reload().await?;
            self.monitor
                .configured
                .registries()
                .lb
                .adopt(lb_desired(stored.lb_desired.as_deref()));
            self.persist.baseline(self.store.persisted());
            self.persist.flush().await;
            self.persist.check()?;
            // Whatever the last leader left half-done is this one's to undo, and the
            // alerts it had fired are the ones this one resolves.
            self.send(Control::TakeOver);
            self.recover_actions().await?;
            Ok(())
        })
    }

    fn follow(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(err) = self.catch_up().await {
                tracing::warn!(%err, "Cannot catch up with the shared configuration");
            }
            // The Alerts page of a follower shows what the leader fired.
            self.alerting.refresh();
        })
    }

    fn lead(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            // A batch the store failed (it restarted) left a change in memory only.
            if self.persist.is_diverged() {
                if let Err(err) = self.catch_up().await {
                    tracing::warn!(%err, "Cannot read the shared configuration back yet");
                }
            }
            self.alerting.refresh()
        })
    }
}
