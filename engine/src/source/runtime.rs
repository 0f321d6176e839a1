//! Running sources: one tokio task each, their batches on one channel to the monitor,
//! their health in one map ([`Sources`], its only owner).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{
    Batch, BoxFuture, Poll, Schedule, SourceError, SourceHealth, SourceInfo, SourceStatus,
};
use crate::history::{Appended, HistoryError};
use crate::series::UnixMillis;

/// A batch on its way to the monitor. `ack`, when present, hears how each sample was
/// stored (a push answers its client only once its samples are in history).
#[derive(Debug)]
pub struct SourceEvent {
    pub source: Arc<str>,
    pub batch: Batch,
    pub ack: Option<oneshot::Sender<Result<Vec<Appended>, HistoryError>>>,
}

/// Why acknowledged samples were not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    /// History refused them all (e.g. the series limit).
    #[error("{0}")]
    Refused(HistoryError),
    /// perfpilot is stopping (or its monitor is gone).
    #[error("perfpilot is not taking samples now (stopping, or its monitor stopped)")]
    Stopped,
}

/// A source that runs on its own task.
pub trait Source: Send + 'static {
    fn info(&self) -> SourceInfo;
    /// Produces batches through `ctx` until `ctx.stopped()` resolves.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()>;
}

/// What a running source reaches: the monitor's channel, its own health entry and its
/// stop signal.
pub struct SourceContext {
    id: Arc<str>,
    events: mpsc::Sender<SourceEvent>,
    statuses: Arc<ArcSwap<BTreeMap<String, SourceStatus>>>,
    stop: watch::Receiver<bool>,
}

impl SourceContext {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Hands a batch to the monitor; false once the monitor is gone.
    pub async fn emit(&self, batch: Batch, at: UnixMillis) -> bool {
        self.note_sample(at);
        let event = SourceEvent {
            source: self.id.clone(),
            batch,
            ack: None,
        };
        self.events.send(event).await.is_ok()
    }

    /// Hands a batch to the monitor and waits until it is stored.
    pub async fn emit_acked(
        &self,
        batch: Batch,
        at: UnixMillis,
    ) -> Result<Vec<Appended>, NotStored> {
        let (ack, stored) = oneshot::channel();
        let event = SourceEvent {
            source: self.id.clone(),
            batch,
            ack: Some(ack),
        };
        self.events
            .send(event)
            .await
            .map_err(|_| NotStored::Stopped)?;
        let outcome = stored
            .await
            .map_err(|_| NotStored::Stopped)?
            .map_err(NotStored::Refused)?;
        self.note_sample(at);
        Ok(outcome)
    }

    /// Records the source's health (shown on its cards and in `/readyz`-style listings).
    pub fn set_health(&self, health: SourceHealth) {
        // A reason is shown on cards and pages: never a credential it quotes.
        let health = match health {
            SourceHealth::Down {
                reason,
                since_unix_ms,
                retry_at_unix_ms,
            } => SourceHealth::Down {
                reason: crate::redact::redact(&reason),
                since_unix_ms,
                retry_at_unix_ms,
            },
            other => other,
        };
        let id = self.id.to_string();
        self.statuses.rcu(|map| {
            let mut next = BTreeMap::clone(map);
            if let Some(status) = next.get_mut(&id) {
                status.health = health.clone();
            }
            next
        });
    }

    /// Records what the source found besides series (shown where its resources are).
    pub fn set_details(&self, details: serde_json::Value) {
        let id = self.id.to_string();
        let details = Arc::new(details);
        self.statuses.rcu(|map| {
            let mut next = BTreeMap::clone(map);
            if let Some(status) = next.get_mut(&id) {
                status.details = Some(details.clone());
            }
            next
        });
    }

    fn note_sample(&self, at: UnixMillis) {
        let id = self.id.to_string();
        self.statuses.rcu(|map| {
            let mut next = BTreeMap::clone(map);
            if let Some(status) = next.get_mut(&id) {
                status.last_sample_unix_ms = Some(at);
            }
            next
        });
    }

    /// Resolves once the source is asked to stop.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow_and_update() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Every running source. Adding one starts its task; removing one stops it and forgets
/// its health. Batches of all of them arrive on the one receiver [`Sources::new`] returns.
pub struct Sources {
    events: mpsc::Sender<SourceEvent>,
    statuses: Arc<ArcSwap<BTreeMap<String, SourceStatus>>>,
    running: Mutex<HashMap<String, Running>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("statuses", &self.statuses())
            .finish_non_exhaustive()
    }
}

/// Batches buffered between all sources and the monitor; a monitor that falls behind
/// makes sources wait (polled ones then skip ticks, which become gaps).
const EVENT_CAPACITY: usize = 64;

impl Sources {
    pub fn new() -> (Arc<Sources>, mpsc::Receiver<SourceEvent>) {
        let (events, receiver) = mpsc::channel(EVENT_CAPACITY);
        let sources = Arc::new(Sources {
            events,
            statuses: Arc::default(),
            running: Mutex::new(HashMap::new()),
        });
        (sources, receiver)
    }

    /// Starts `source` on its own task; an already running source of the same id is
    /// stopped first.
    pub async fn add(self: &Arc<Self>, source: Box<dyn Source>) {
        let info = source.info();
        self.remove(&info.id).await;
        let id: Arc<str> = Arc::from(info.id.as_str());
        let status = SourceStatus {
            id: info.id.clone(),
            kind: info.kind.clone(),
            health: SourceHealth::Starting,
            last_sample_unix_ms: None,
            details: None,
            resources: if info.owns.is_empty() {
                info.resources.iter().map(|r| r.id.to_string()).collect()
            } else {
                info.owns.clone()
            },
        };
        self.statuses.rcu(|map| {
            let mut next = BTreeMap::clone(map);
            next.insert(info.id.clone(), status.clone());
            next
        });
        let (stop, stop_rx) = watch::channel(false);
        let context = SourceContext {
            id: id.clone(),
            events: self.events.clone(),
            statuses: self.statuses.clone(),
            stop: stop_rx,
        };
        let work = tokio::spawn(source.run(context));
        let statuses = self.statuses.clone();
        // A source whose task dies (a panic in its code) says so on its cards instead of
        // going quiet.
        let task = tokio::spawn(async move {
            if let Err(err) = work.await {
                let reason = if err.is_panic() {
                    "the source crashed (a bug in perfpilot); restart it by saving its settings"
                } else {
                    "the source's task was cancelled"
                };
                tracing::error!(source = %id, %err, "Source task ended");
                let now = crate::time::unix_now_ms();
                let id = id.to_string();
                statuses.rcu(|map| {
                    let mut next = BTreeMap::clone(map);
                    if let Some(status) = next.get_mut(&id) {
                        status.health = SourceHealth::Down {
                            reason: reason.to_owned(),
                            since_unix_ms: now,
                            retry_at_unix_ms: i64::MAX,
                        };
                    }
                    next
                });
            }
        });
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(info.id, Running { stop, task });
    }

    /// Stops the source `id` (waiting up to 5 s for its task) and forgets it.
    pub async fn remove(&self, id: &str) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let mut task = running.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        self.statuses.rcu(|map| {
            let mut next = BTreeMap::clone(map);
            next.remove(id);
            next
        });
    }

    /// Stops every source.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.remove(&id).await;
        }
    }

    /// Every source's status, by id.
    pub fn statuses(&self) -> Arc<BTreeMap<String, SourceStatus>> {
        self.statuses.load_full()
    }
}

/// A [`Poll`] run on its [`Schedule`]: collects at every multiple of the interval on the
/// wall clock (so a tick's time is when it fired and dashboards can measure delivery),
/// abandons a collect that outlives the timeout, and backs off while the source fails.
pub struct Polled<P: Poll> {
    info: SourceInfo,
    schedule: Schedule,
    poll: P,
}

impl<P: Poll> Polled<P> {
    pub fn new(info: SourceInfo, schedule: Schedule, poll: P) -> Polled<P> {
        Polled {
            info,
            schedule,
            poll,
        }
    }
}

impl<P: Poll> Source for Polled<P> {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Polled {
                schedule, mut poll, ..
            } = *self;
            let period = schedule.interval.max(Duration::from_millis(1));
            let period_ms = period.as_millis().max(1) as i64;
            let now_ms = crate::time::unix_now_ms();
            let wait_ms = (period_ms - now_ms.rem_euclid(period_ms)) % period_ms;
            let start = tokio::time::Instant::now() + Duration::from_millis(wait_ms as u64);
            let start_ms = now_ms + wait_ms;
            let mut interval = tokio::time::interval_at(start, period);
            // A tick that runs late is skipped and its slot becomes a gap, never a
            // doubled or shifted sample.
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut failures = 0u32;
            let mut down_since = 0;
            let mut retry_at = i64::MIN;
            loop {
                let scheduled = tokio::select! {
                    _ = ctx.stopped() => break,
                    at = interval.tick() => at,
                };
                let n = (scheduled.duration_since(start).as_millis() as i64 + period_ms / 2)
                    / period_ms;
                let at = start_ms + n * period_ms;
                if at < retry_at {
                    continue;
                }
                let collected = tokio::select! {
                    _ = ctx.stopped() => break,
                    result = tokio::time::timeout(schedule.timeout, poll.collect(at)) => result,
                };
                let result = collected.unwrap_or_else(|_| {
                    Err(SourceError::new(format!(
                        "no answer within {} ms",
                        schedule.timeout.as_millis()
                    )))
                });
                match result {
                    Ok(tick) => {
                        if failures > 0
                            || !matches!(ctx_health(&ctx), Some(SourceHealth::Up { .. }))
                        {
                            if failures > 0 {
                                tracing::info!(source = %ctx.id(), "Source recovered");
                            }
                            ctx.set_health(SourceHealth::Up { since_unix_ms: at });
                        }
                        failures = 0;
                        retry_at = i64::MIN;
                        if let Some(details) = poll.details() {
                            ctx.set_details(details);
                        }
                        let marks = poll.marks();
                        if !ctx.emit(Batch::Tick(Arc::new(tick)), at).await {
                            break;
                        }
                        for mark in marks {
                            if !ctx.emit(Batch::Mark(mark), at).await {
                                break;
                            }
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        let reason = crate::redact::redact(&err.reason);
                        if failures == 1 {
                            down_since = at;
                            tracing::warn!(source = %ctx.id(), %reason, "Source failed");
                        }
                        let wait = schedule.backoff(failures);
                        retry_at = at + wait.as_millis() as i64;
                        ctx.set_health(SourceHealth::Down {
                            reason,
                            since_unix_ms: down_since,
                            retry_at_unix_ms: retry_at,
                        });
                    }
                }
            }
            ctx.set_health(SourceHealth::Stopped);
        })
    }
}

fn ctx_health(ctx: &SourceContext) -> Option<SourceHealth> {
    ctx.statuses
        .load()
        .get(ctx.id())
        .map(|status| status.health.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{SeriesInfo, SeriesKey, Tick};

    /// Fails while `failing` is set, then produces one value per tick.
    struct Flaky {
        failing: Arc<std::sync::atomic::AtomicBool>,
        series: Arc<[SeriesInfo]>,
    }

    impl Poll for Flaky {
        fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>> {
            let failing = self.failing.load(std::sync::atomic::Ordering::SeqCst);
            let series = self.series.clone();
            Box::pin(async move {
                if failing {
                    return Err(SourceError::new("connection refused"));
                }
                Ok(Tick {
                    at,
                    series,
                    values: vec![Some(1.0)],
                    top_processes: None,
                })
            })
        }
    }

    fn info() -> SourceInfo {
        SourceInfo {
            id: "flaky".into(),
            kind: "test".into(),
            resources: Vec::new(),
            owns: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_source_reports_why_backs_off_and_recovers() {
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let series: Arc<[SeriesInfo]> = Arc::from(vec![SeriesInfo::new(
            SeriesKey::new("custom:1", "x"),
            crate::model::ResourceType::Custom(1),
            "x",
            None,
            "",
        )]);
        let (sources, mut events) = Sources::new();
        let schedule = Schedule::every(Duration::from_millis(100));
        let poll = Flaky {
            failing: failing.clone(),
            series,
        };
        sources
            .add(Box::new(Polled::new(info(), schedule, poll)))
            .await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        let health = sources.statuses()["flaky"].health.clone();
        match health {
            SourceHealth::Down {
                reason,
                since_unix_ms,
                retry_at_unix_ms,
            } => {
                assert_eq!(reason, "connection refused");
                assert!(retry_at_unix_ms > since_unix_ms);
            }
            other => panic!("expected down, got {other:?}"),
        }
        assert!(events.try_recv().is_err(), "a failing source emits nothing");
        failing.store(false, std::sync::atomic::Ordering::SeqCst);
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("recovers within the backoff")
            .expect("a batch");
        assert_eq!(&*event.source, "flaky");
        assert!(sources.statuses()["flaky"].health.is_up());
        assert!(sources.statuses()["flaky"].last_sample_unix_ms.is_some());
        sources.remove("flaky").await;
        assert!(!sources.statuses().contains_key("flaky"));
    }

    struct Panics;

    impl Source for Panics {
        fn info(&self) -> SourceInfo {
            SourceInfo {
                id: "panics".into(),
                kind: "test".into(),
                resources: Vec::new(),
                owns: Vec::new(),
            }
        }

        fn run(self: Box<Self>, _ctx: SourceContext) -> BoxFuture<'static, ()> {
            Box::pin(async { panic!("bug") })
        }
    }

    #[tokio::test]
    async fn a_crashed_source_says_so() {
        let (sources, _events) = Sources::new();
        sources.add(Box::new(Panics)).await;
        for _ in 0..100 {
            if let SourceHealth::Down { reason, .. } = &sources.statuses()["panics"].health {
                assert!(reason.contains("crashed"), "{reason}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the crash was not reported");
    }
}
