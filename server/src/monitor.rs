//! The monitor: the one task that turns collector ticks into history, statuses and live
//! frames. Collect → (history) → Analyze → publish.
//!
//! It is the only writer of the history rings and of the optimizer trackers; request
//! handlers read history under a short read lock and read configuration from the
//! engine's `ChangeStore`. Each tick is serialized once and the same bytes go to every
//! websocket through the hub's broadcast channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use app::identity::Identity;
use axum::extract::ws::Utf8Bytes;
use engine::changes::{ChangeRecord, ChangeStore, Mutation, MutationKind, StoreOptions};
use engine::collect::{CollectorHandle, HostCollector};
use engine::history::{History, HistoryConfig};
use engine::model::{default_target, Metric, MetricKind, Resource, ResourceId};
use engine::optimizer::{Analyzer, EventKind, Tracker};
use engine::series::{SeriesInfo, SeriesKey, Tick};
use tokio::sync::{broadcast, mpsc};

use app::live::{Card, CardTick, LiveMessage, Overview, TargetLine, SPARK_POINTS};

use crate::persist::{Loaded, Location, Persist};

/// How long a pushed sample counts as the live value of its card.
const PUSH_FRESHNESS_MS: i64 = 15_000;

/// Frames buffered per websocket before a slow client skips ahead to a fresh overview.
const HUB_CAPACITY: usize = 8;

/// Opens the durable state, then starts the host collector and the monitor with the
/// configured settings.
pub fn start(settings: &crate::config::Settings) -> anyhow::Result<Monitor> {
    let location = match &settings.data_dir {
        Some(dir) => Location::Dir(dir.clone()),
        None => Location::Memory,
    };
    let (persist, loaded) = Persist::open(&location)?;
    let collector = HostCollector::new(engine::collect::CollectorConfig {
        interval: settings.collect_interval,
        ..Default::default()
    });
    let options = StoreOptions {
        autosave: engine::changes::AutoSave::new(settings.autosave_every, 100)?,
        // Refused when saved, not only when a breach would run it.
        allowed_programs: Some(Arc::new(settings.actions.allowed_programs.clone())),
        ..StoreOptions::default()
    };
    Monitor::start(
        collector,
        HistoryConfig::default(),
        options,
        &settings.resource_defaults,
        persist,
        loaded,
        settings.actions.clone(),
    )
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

/// Why a change was not made, or not made durable.
pub use app::backend::CommitError;

/// Messages to the monitor task from request handlers.
enum Control {
    /// An accepted change; `scope` is the one resource it touched, `None` for all.
    Changed {
        scope: Option<ResourceId>,
        why: MutationKind,
    },
}

/// Counters the monitor keeps about its own work, for `/metrics`.
#[derive(Debug, Default)]
struct TickCounters {
    ticks: AtomicU64,
    gaps: AtomicU64,
    /// f64 bits of the last tick's processing time in seconds.
    last_duration_bits: AtomicU64,
}

/// A copy of the monitor's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickStats {
    pub ticks: u64,
    pub gaps: u64,
    pub last_duration_secs: f64,
}

/// Outcomes an optimizer action can end with, as `/metrics` labels them.
pub const ACTION_OUTCOMES: [&str; 4] = ["recommended", "dry_run", "succeeded", "failed"];

/// Shared handles of the running monitor.
#[derive(Clone)]
pub struct Monitor {
    pub store: Arc<ChangeStore>,
    /// The durable side: journal, audit, snapshots, tokens.
    pub persist: Persist,
    pub history: Arc<RwLock<History>>,
    frames: broadcast::Sender<Utf8Bytes>,
    running: Arc<AtomicBool>,
    counters: Arc<TickCounters>,
    action_counts: Arc<[AtomicU64; ACTION_OUTCOMES.len()]>,
    control: mpsc::UnboundedSender<Control>,
    /// The latest top-process scan (every few seconds), so cards can say who is busy.
    top: Arc<std::sync::Mutex<Option<Arc<engine::series::TopProcesses>>>>,
    /// Before/after comparisons; opened by handlers, completed by the monitor task.
    proof: Arc<std::sync::Mutex<crate::proof::Proof>>,
    /// Taken by [`Monitor::shutdown`]; the collector runs while it is here.
    collector: Arc<std::sync::Mutex<Option<CollectorHandle>>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Registers one engine resource per collector resource (with the seed's default
    /// targets), then starts the task that consumes ticks.
    pub fn start(
        collector: HostCollector,
        history_config: HistoryConfig,
        store_options: StoreOptions,
        resource_defaults: &engine::model::ResourceSettings,
        persist: Persist,
        loaded: Loaded,
        actions: engine::actions::RunnerConfig,
    ) -> anyhow::Result<Monitor> {
        let resources = resources_from_series(collector.series(), resource_defaults);
        let restored = loaded.state.is_some();
        let store = Arc::new(initial_store(resources, store_options, loaded.state)?);
        // Queued before any change can be, so the file holds every resource first.
        persist.baseline(store.persisted());
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
        let mut proof = crate::proof::Proof::default();
        proof.restore(loaded.events);
        let history = Arc::new(RwLock::new(History::new(history_config)?));
        let (frames, _) = broadcast::channel(HUB_CAPACITY);
        let running = Arc::new(AtomicBool::new(true));
        let collector = engine::collect::spawn(collector, 4);
        let ticks = collector.subscribe();
        let (control, control_rx) = mpsc::unbounded_channel();
        let monitor = Monitor {
            control,
            persist,
            proof: Arc::new(std::sync::Mutex::new(proof)),
            top: Arc::default(),
            store,
            history,
            frames,
            running,
            counters: Arc::default(),
            action_counts: Arc::new(Default::default()),
            collector: Arc::new(std::sync::Mutex::new(Some(collector))),
        };
        tokio::spawn(monitor.clone().run(ticks, control_rx, actions));
        Ok(monitor)
    }

    /// Stops the collector (the monitor task ends with it). Later calls do nothing.
    pub async fn shutdown(&self) {
        let handle = self
            .collector
            .lock()
            .expect("collector lock poisoned")
            .take();
        if let Some(handle) = handle {
            handle.shutdown().await;
        }
        // History is memory-only: before/afters still measuring would be lost with it, so
        // they are finished with what was measured (the reason says so) and stored.
        let history = self.history.read().expect("history lock poisoned");
        let now = engine::collect::unix_now_ms();
        for (resource, at, body) in self.proof().complete_early(now, &history) {
            self.persist.save_event(at, &resource, body);
        }
    }

    pub fn tick_stats(&self) -> TickStats {
        TickStats {
            ticks: self.counters.ticks.load(Ordering::Relaxed),
            gaps: self.counters.gaps.load(Ordering::Relaxed),
            last_duration_secs: f64::from_bits(
                self.counters.last_duration_bits.load(Ordering::Relaxed),
            ),
        }
    }

    /// Action executions so far, by outcome.
    pub fn action_outcomes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ACTION_OUTCOMES
            .into_iter()
            .zip(self.action_counts.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    /// Whether the monitor is still consuming ticks (for `/readyz`).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.frames.subscribe()
    }

    /// Applies `mutation` on behalf of `actor` and resolves once it is durable: the one way
    /// configuration changes (server functions through [`app::backend::apply`], and the
    /// push route). The journal record is queued under the engine's writer lock, so the
    /// journal is in change order; the live side hears about the change only once it is
    /// committed.
    pub async fn commit(
        &self,
        mutation: Mutation,
        actor: Identity,
    ) -> Result<ChangeRecord, CommitError> {
        self.persist.check().map_err(unavailable)?;
        let persist = &self.persist;
        let record = self
            .store
            .apply_with(mutation, |record, state| {
                persist.enqueue_change(record, state, &actor)
            })
            .map_err(CommitError::Refused)?;
        self.persist
            .durable(record.change)
            .await
            .map_err(unavailable)?;
        self.changed(&record);
        Ok(record)
    }

    /// Tells the monitor about an accepted change: the trackers it affects start over
    /// (an edited target must not inherit the old target's timers) and every dashboard
    /// gets a fresh overview.
    pub fn changed(&self, record: &engine::changes::ChangeRecord) {
        if let (MutationKind::SetTarget, Some(after)) = (record.kind, &record.after) {
            let event = EventKind::TargetEdit {
                change: record.change,
            };
            let unit = self.unit_of(after);
            // A target edit on a resource always has a target, so this cannot be refused.
            let _ = self.proof().open(after, event, record.at_unix_ms, unit);
        }
        let scope = match (record.kind, &record.resource) {
            (MutationKind::Restore, _) | (_, None) => None,
            (_, Some(id)) => Some(id.clone()),
        };
        let _ = self.control.send(Control::Changed {
            scope,
            why: record.kind,
        });
    }

    fn proof(&self) -> std::sync::MutexGuard<'_, crate::proof::Proof> {
        self.proof.lock().expect("proof lock poisoned")
    }

    fn unit_of(&self, resource: &Resource) -> String {
        let history = self.history.read().expect("history lock poisoned");
        resource
            .target
            .as_ref()
            .and_then(|t| history.id(&SeriesKey::new(resource.id.as_str(), t.metric.as_str())))
            .and_then(|id| history.info(id).map(|i| i.unit.clone()))
            .unwrap_or_default()
    }

    /// Opens a before/after for a manual mark ("deployed v2.3") on a resource, and audits
    /// it.
    pub fn add_mark(&self, id: &ResourceId, label: &str, actor: &Identity) -> Result<(), String> {
        let state = self.store.state();
        let resource = state
            .resources
            .get(id)
            .ok_or_else(|| format!("resource: no resource with id {:?}", id.as_str()))?;
        let unit = self.unit_of(resource);
        let event = EventKind::Mark {
            label: label.to_owned(),
        };
        let now = engine::collect::unix_now_ms();
        self.proof().open(resource, event, now, unit)?;
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

    fn broadcast_overview(&self) {
        if self.frames.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(&LiveMessage::Overview(self.overview())) {
            Ok(json) => {
                let _ = self.frames.send(Utf8Bytes::from(json));
            }
            Err(err) => tracing::error!(%err, "Cannot serialize the overview"),
        }
    }

    async fn run(
        self,
        mut ticks: broadcast::Receiver<Arc<Tick>>,
        mut control: mpsc::UnboundedReceiver<Control>,
        actions: engine::actions::RunnerConfig,
    ) {
        let mut analyzer = Analyzer::new();
        let mut trackers: HashMap<ResourceId, Tracker> = HashMap::new();
        let (mut actuator, mut executed) = crate::actuate::Actuator::new(actions);
        loop {
            let received = tokio::select! {
                tick = ticks.recv() => tick,
                Some(done) = executed.recv() => {
                    actuator.finished(&done.event.resource);
                    self.action_executed(&done, &mut trackers);
                    continue;
                }
                Some(first) = control.recv() => {
                    // A burst of edits (scripts, the API) arrives faster than it is worth
                    // republishing: reset for every change queued now, publish once.
                    let now = engine::collect::unix_now_ms();
                    let mut next = Some(first);
                    while let Some(Control::Changed { scope, why }) = next {
                        let reason = format!("configuration changed ({why:?}); re-evaluating");
                        match scope {
                            Some(id) => {
                                if let Some(tracker) = trackers.get_mut(&id) {
                                    tracker.reset(now, &reason);
                                }
                            }
                            None => trackers.values_mut().for_each(|t| {
                                t.reset(now, &reason);
                            }),
                        }
                        next = control.try_recv().ok();
                    }
                    let statuses: Vec<_> = trackers.iter().map(|(id, t)| (id.clone(), t.report())).collect();
                    self.store.publish_statuses(statuses);
                    self.broadcast_overview();
                    continue;
                }
            };
            let tick = match received {
                Ok(tick) => tick,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(
                        skipped,
                        "Monitor fell behind the collector; skipped ticks become gaps"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let started = std::time::Instant::now();
            let cards = self.evaluate(&tick, &mut analyzer, &mut trackers, &mut actuator);
            let gaps = tick.values.iter().filter(|v| v.is_none()).count() as u64;
            self.counters.ticks.fetch_add(1, Ordering::Relaxed);
            self.counters.gaps.fetch_add(gaps, Ordering::Relaxed);
            self.counters
                .last_duration_bits
                .store(started.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
            if self.frames.receiver_count() > 0 {
                let frame = LiveMessage::Tick {
                    at_unix_ms: tick.at,
                    cards,
                };
                match serde_json::to_string(&frame) {
                    Ok(json) => {
                        let _ = self.frames.send(Utf8Bytes::from(json));
                    }
                    Err(err) => tracing::error!(%err, "Cannot serialize a live frame"),
                }
            }
        }
        self.running.store(false, Ordering::Relaxed);
        tracing::warn!("Collector stopped; live data has ended");
    }

    /// An action finished: count it, move the tracker, open the before/after of a change
    /// that was really made, audit it, and show the new status everywhere.
    fn action_executed(
        &self,
        done: &crate::actuate::Executed,
        trackers: &mut HashMap<ResourceId, Tracker>,
    ) {
        use engine::actions::ActionOutcome;
        let label = crate::actuate::outcome_label(&done.event.outcome);
        if let Some(i) = ACTION_OUTCOMES.iter().position(|o| *o == label) {
            self.action_counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let now = engine::collect::unix_now_ms();
        let state = self.store.state();
        let id = &done.event.resource;
        if let (Some(tracker), Some(resource)) = (trackers.get_mut(id), state.resources.get(id)) {
            let action = &done.event.action;
            let transition = match &done.event.outcome {
                ActionOutcome::Succeeded { .. } => {
                    let unit = self.unit_of(resource);
                    let event = EventKind::Action {
                        action: action.clone(),
                        dry_run: false,
                    };
                    if let Err(err) = self.proof().open(resource, event, now, unit) {
                        tracing::warn!(resource = %id, %err, "No before/after for this action");
                    }
                    Some(tracker.action_started(now, action, &resource.settings))
                }
                ActionOutcome::Failed { error } => Some(tracker.action_failed(now, action, error)),
                ActionOutcome::Recommended | ActionOutcome::DryRun { .. } => {
                    tracker.note_action(now);
                    None
                }
            };
            if let Some(transition) = transition {
                tracing::info!(
                    resource = %id,
                    to = transition.to.as_str(),
                    reason = %transition.reason,
                    "Status changed by an action"
                );
            }
        }
        self.persist.audit(crate::actuate::audit_entry(done));
        let statuses: Vec<_> = trackers
            .iter()
            .map(|(id, t)| (id.clone(), t.report()))
            .collect();
        self.store.publish_statuses(statuses);
        self.broadcast_overview();
    }

    /// Appends the tick to history and runs the analysis of every resource with a target.
    fn evaluate(
        &self,
        tick: &Tick,
        analyzer: &mut Analyzer,
        trackers: &mut HashMap<ResourceId, Tracker>,
        actuator: &mut crate::actuate::Actuator,
    ) -> Vec<CardTick> {
        if let Some(top) = &tick.top_processes {
            *self.top.lock().expect("top lock poisoned") = Some(top.clone());
        }
        let top = self.top.lock().expect("top lock poisoned").clone();
        let state = self.store.state();
        let mut statuses = Vec::with_capacity(state.resources.len());
        let mut cards = Vec::with_capacity(state.resources.len());
        {
            let mut history = self.history.write().expect("history lock poisoned");
            history.append_tick(tick);
        }
        let history = self.history.read().expect("history lock poisoned");
        for (id, resource) in state.resources.iter() {
            let metric = card_metric(resource);
            // Pushed (custom) series are not in the collector's tick: show their latest
            // sample while it is fresh instead of a gap every second.
            let value = metric.and_then(|m| {
                tick.value(id.as_str(), &m.name).or_else(|| {
                    let key = SeriesKey::new(id.as_str(), m.name.as_str());
                    let (at, value) = history.get(history.id(&key)?)?.latest()?;
                    (tick.at - at <= PUSH_FRESHNESS_MS)
                        .then_some(value)
                        .flatten()
                })
            });
            let tracker = trackers
                .entry(id.clone())
                .or_insert_with(|| Tracker::new(tick.at));
            if let (Some(target), Some(kind)) = (&resource.target, resource.target_kind()) {
                let key = SeriesKey::new(id.as_str(), target.metric.as_str());
                if let Some(series) = history.id(&key).and_then(|sid| history.get(sid)) {
                    let samples = series.last_raw(resource.settings.window_samples());
                    let observation = analyzer.observe(&samples, target, &resource.settings);
                    if let Some(transition) =
                        tracker.observe(tick.at, &observation, target, kind, &resource.settings)
                    {
                        tracing::info!(
                            resource = %id,
                            from = transition.from.as_str(),
                            to = transition.to.as_str(),
                            reason = %transition.reason,
                            "Status changed"
                        );
                    }
                    actuator.consider(tick.at, resource, tracker, &samples, observation.observed);
                }
                // An action's verify window ended: its before/after decides the status.
                if let (Some(verify_at), Some(started)) =
                    (tracker.verify_at(), tracker.action_started_at())
                {
                    if verify_at <= tick.at {
                        let baseline = i64::from(resource.settings.baseline_secs) * 1000;
                        let before = crate::proof::window_samples(
                            &history,
                            &key,
                            (started - baseline, started),
                        );
                        let after =
                            crate::proof::window_samples(&history, &key, (started, verify_at));
                        let result = engine::optimizer::before_after(&before, &after, target);
                        if let Some(transition) = tracker.verified(tick.at, &result) {
                            tracing::info!(
                                resource = %id,
                                to = transition.to.as_str(),
                                reason = %transition.reason,
                                "Action verified"
                            );
                        }
                    }
                }
            }
            let report = tracker.report();
            cards.push(CardTick {
                id: id.as_str().to_owned(),
                value,
                status: report.status,
                reason: report.reason.clone(),
                top: top_line(resource.resource_type, top.as_deref()),
                evaluated: report.evaluated,
            });
            statuses.push((id.clone(), report));
        }
        trackers.retain(|id, _| state.resources.contains_key(id));
        // Before/after windows that ended with this tick, under the same read lock.
        for (resource, at, body) in self.proof().complete(tick.at, &history) {
            self.persist.save_event(at, &resource, body);
        }
        drop(history);
        self.store.publish_statuses(statuses);
        cards
    }

    /// The full overview: every resource with its recent history.
    pub fn overview(&self) -> Overview {
        let views = self.store.views();
        let history = self.history.read().expect("history lock poisoned");
        let mut at_unix_ms = 0;
        let mut cards: Vec<Card> = views
            .iter()
            .map(|view| {
                let resource = &view.resource;
                let metric = card_metric(resource);
                let (spark, unit) = match metric {
                    Some(m) => {
                        let key = SeriesKey::new(resource.id.as_str(), m.name.as_str());
                        let series = history
                            .id(&key)
                            .and_then(|sid| Some((sid, history.get(sid)?)));
                        let spark = series
                            .map(|(_, s)| {
                                if let Some((t, _)) = s.latest() {
                                    at_unix_ms = at_unix_ms.max(t);
                                }
                                s.last_raw(SPARK_POINTS)
                                    .into_iter()
                                    .map(|v| (!v.is_nan()).then_some(v))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let unit = series
                            .and_then(|(sid, _)| history.info(sid).map(|i| i.unit.clone()))
                            .unwrap_or_else(|| m.kind.unit().to_owned());
                        (spark, unit)
                    }
                    None => (Vec::new(), String::new()),
                };
                let target = resource.target.as_ref().and_then(|t| {
                    let kind = resource.metric(&t.metric)?.kind;
                    Some(TargetLine {
                        value: t.value,
                        text: t.describe(kind),
                        upper_bound: t.comparator == engine::model::Comparator::Le,
                    })
                });
                Card {
                    id: resource.id.as_str().to_owned(),
                    resource_type: resource.resource_type.to_string(),
                    name: resource.name.clone(),
                    metric: metric.map(|m| m.name.clone()).unwrap_or_default(),
                    unit,
                    value: spark.last().copied().flatten(),
                    spark,
                    target,
                    status: view.status.status,
                    reason: view.status.reason.clone(),
                    top: None,
                    evaluated: view.status.evaluated,
                }
            })
            .collect();
        let top = self.top.lock().expect("top lock poisoned").clone();
        for card in &mut cards {
            if let Ok(resource_type) = card.resource_type.parse() {
                card.top = top_line(resource_type, top.as_deref());
            }
        }
        let stats = self.store.stats();
        Overview {
            at_unix_ms,
            cards,
            change: stats.change,
            autosave_every: stats.autosave.every(),
        }
    }
}

fn unavailable(err: crate::persist::PersistError) -> CommitError {
    CommitError::Unavailable(err.to_string())
}

/// "rustc (pid 4242) 95.1 %" for CPU, "postgres (pid 7) 1.2 GiB" for memory.
fn top_line(
    resource_type: engine::model::ResourceType,
    top: Option<&engine::series::TopProcesses>,
) -> Option<String> {
    use engine::model::ResourceType;
    let top = top?;
    match resource_type {
        ResourceType::Cpu => top
            .by_cpu
            .first()
            .map(|p| format!("{} (pid {}) {:.1} %", p.name, p.pid, p.cpu_pct)),
        ResourceType::Memory => top.by_memory.first().map(|p| {
            let usage = app::format::reading(p.rss_bytes as f64, "bytes");
            format!("{} (pid {}) {usage}", p.name, p.pid)
        }),
        _ => None,
    }
}

/// The metric a card shows: the target's, else the first utilization metric, else the
/// first metric.
fn card_metric(resource: &Resource) -> Option<&Metric> {
    resource
        .target
        .as_ref()
        .and_then(|t| resource.metric(&t.metric))
        .or_else(|| {
            resource
                .metrics
                .iter()
                .find(|m| m.kind == MetricKind::Utilization)
        })
        .or_else(|| resource.metrics.first())
}

/// One engine resource per collector resource id, exposing the series that have a metric
/// kind. The seed's default target applies to the resource's utilization metric.
pub fn resources_from_series(
    series: &[SeriesInfo],
    defaults: &engine::model::ResourceSettings,
) -> Vec<Resource> {
    let mut resources: Vec<Resource> = Vec::new();
    for info in series {
        // Per-core series stay in history for charts; one card per core would drown the
        // overview on a many-core host.
        let Some(kind) = info.kind.filter(|_| !info.key.resource.starts_with("cpu:")) else {
            continue;
        };
        let position = resources
            .iter()
            .position(|r| r.id.as_str() == info.key.resource);
        let resource = match position {
            Some(i) => &mut resources[i],
            None => {
                let Ok(id) = ResourceId::new(&info.key.resource) else {
                    tracing::warn!(resource = %info.key.resource, "Collector resource id is not valid; skipped");
                    continue;
                };
                let mut resource = Resource::new(id, info.resource_type, &info.resource_name);
                resource.metrics.clear();
                resource.target = None;
                resource.settings = defaults.clone();
                resources.push(resource);
                resources.last_mut().expect("just pushed")
            }
        };
        if resource.metric(&info.key.metric).is_none() {
            resource.metrics.push(Metric::new(&info.key.metric, kind));
        }
    }
    for resource in &mut resources {
        resource.target = default_target(resource.resource_type).and_then(|mut target| {
            if resource.metric(&target.metric).is_none() {
                let utilization = resource
                    .metrics
                    .iter()
                    .find(|m| m.kind == MetricKind::Utilization)?;
                target.metric.clone_from(&utilization.name);
            }
            Some(target)
        });
    }
    resources.retain(|r| match r.validate() {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(resource = %r.id, %err, "Collector resource rejected by the engine; skipped");
            false
        }
    });
    resources
}
