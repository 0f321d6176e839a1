//! Alerting: turns alert transitions into notifications, routes them to channels
//! (resources, types, groups; silences; acknowledgements; quiet hours; repeats) through the
//! durable outbox (`persist::alerts`), and delivers them.
//!
//! Ownership: the monitor task owns the alerts' state machines ([`engine::alerts::Alert`])
//! and calls [`Alerting::fired`] / [`Alerting::resolved`] on a transition; the delivery
//! task ([`Alerting::run`]) owns sending. Everything owed is derived from the store by
//! [`Alerting::sweep`] (firing alerts × channels: never told, or due for a repeat), so a
//! restart, a silence that ends or an acknowledgement needs no bookkeeping of its own.
//!
//! Order: deliveries of one alert episode to one channel go one at a time, oldest first,
//! so "resolved" never overtakes its "firing", even through retries.
//!
//! Time: wall time comes from one injected [`Clock`] (the system's in production), so the
//! unit tests (`alerting/tests.rs`) move it by hand through silences, quiet hours and
//! repeats instead of waiting for them.
//!
//! Layout: this root holds the [`Alerting`] handle, its `Inner`, opening it, and the state
//! machine the monitor feeds (firing, resolved, outcomes, reports, the sweep);
//! `delivery` is the delivery task, `admin` what people do (silences, acknowledgements,
//! channel tests), `view` what is read out (the Alerts page, the pulse, `/metrics`,
//! episodes for reports).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use app::alerts::PendingAlert;
use app::error::AppError;
use connectors::sinks::{Channel, ChannelEntry, Subject};
use engine::alerts::{glob_matches, AlertPolicy, Notification, NotificationKind};
use engine::changes::{ChangeStore, Clock};
use engine::model::Resource;
use engine::sync::lock;

use crate::persist::alerts::{stream, AlertDb, FiringRow, Outgoing, SilenceRow};
use crate::persist::Persist;

mod admin;
mod delivery;
mod view;

pub use view::AlertMetrics;

/// The longest period a report covers (`crate::report`): alert episodes are kept that
/// long, and a day more, so any report can count them.
pub const MAX_REPORT_PERIOD_MS: i64 = 31 * 86_400_000;

/// Delivered notifications are kept this long for the Alerts page.
const KEEP_MS: i64 = 7 * 86_400_000;

#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

struct Inner {
    db: AlertDb,
    channels: Vec<Channel>,
    policy: AlertPolicy,
    store: Arc<ChangeStore>,
    persist: Persist,
    /// `https://ops.example.com/perf/` (`--public-url`, else the listen address: see
    /// `Settings::link_base`): resource links in notifications.
    public_url: Option<String>,
    wake: tokio::sync::Notify,
    version: AtomicU64,
    /// Firing alerts (mirror of the store's `firing` table).
    firing: Mutex<BTreeMap<String, FiringRow>>,
    /// Pending alerts, as the monitor saw them at its last tick.
    pending: Mutex<Vec<PendingAlert>>,
    /// Forecast alerts that fired and have not ended, by resource.
    forecasts: Mutex<BTreeMap<String, app::alerts::ForecastAlertView>>,
    /// Held by [`Alerting::sweep`] and [`Alerting::resolved`] for their whole run: a sweep
    /// that read an alert as firing cannot queue its "firing" after its "resolved".
    order: Mutex<()>,
    /// Resolved alerts the store could not record yet; retried by the delivery task.
    unresolved: Mutex<Vec<Ended>>,
    /// Outbox rows being sent now: their lines are busy.
    in_flight: Mutex<HashSet<i64>>,
    /// Makes each test notification's key unique, even two in the same millisecond.
    tests: AtomicU64,
    /// Wall time: the change store's clock in production, moved by hand in tests.
    clock: Arc<dyn Clock>,
    /// Only the leader delivers (and the sweep queues only there).
    leadership: super::lease::Leadership,
}

/// An alert episode that ended.
#[derive(Debug, Clone)]
struct Ended {
    resource: String,
    started_ms: i64,
    ended_ms: i64,
    summary: String,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("channels", &self.inner.channels)
            .finish_non_exhaustive()
    }
}

fn db_error(err: crate::persist::sql::SqlError) -> AppError {
    AppError::unavailable(format!("the alert store failed: {err}"))
}

/// What alerting reads and writes besides its own store.
pub struct Wiring {
    pub store: Arc<ChangeStore>,
    pub persist: Persist,
    /// Where links in notifications point.
    pub public_url: Option<String>,
    /// Wall time: the change store's clock in production, moved by hand in tests.
    pub clock: Arc<dyn Clock>,
    /// Only the leader delivers.
    pub leadership: super::lease::Leadership,
    /// `--database-url`: the alert tables are the shared store's, not `alerts.db`.
    pub shared: Option<connectors::sources::postgres::PostgresSettings>,
}

impl Alerting {
    /// Reading wall time from `clock`: when alerts are silenced, held, repeated, due and
    /// sent (tests move it by hand).
    pub fn open(
        data_dir: Option<&std::path::Path>,
        settings: &crate::config::AlertSettings,
        secrets: &BTreeMap<String, String>,
        wiring: Wiring,
    ) -> anyhow::Result<Alerting> {
        let Wiring {
            store,
            persist,
            public_url,
            clock,
            leadership,
            shared,
        } = wiring;
        let db = match &shared {
            Some(settings) => AlertDb::shared(settings)?,
            None => AlertDb::open(data_dir)?,
        };
        let firing = db
            .firing()?
            .into_iter()
            .map(|row| (row.resource.clone(), row))
            .collect();
        let client = connectors::actuators::webhook::client();
        let channels = settings
            .channels
            .iter()
            .map(|entry| Channel::new(entry.clone(), secrets, client.clone()))
            .collect();
        Ok(Alerting {
            inner: Arc::new(Inner {
                db,
                channels,
                policy: settings.policy,
                store,
                persist,
                public_url,
                wake: tokio::sync::Notify::new(),
                version: AtomicU64::new(1),
                firing: Mutex::new(firing),
                pending: Mutex::new(Vec::new()),
                forecasts: Mutex::new(BTreeMap::new()),
                order: Mutex::new(()),
                unresolved: Mutex::new(Vec::new()),
                in_flight: Mutex::new(HashSet::new()),
                tests: AtomicU64::new(0),
                clock,
                leadership,
            }),
        })
    }

    /// Wall time, unix milliseconds, on this alerting's clock.
    fn now_ms(&self) -> i64 {
        self.inner.clock.wall_unix_ms()
    }

    pub fn policy(&self) -> AlertPolicy {
        self.inner.policy
    }

    /// Alerts firing when perfpilot last stopped: resource → when they started.
    pub fn restored(&self) -> Vec<(String, i64)> {
        lock(&self.inner.firing)
            .values()
            .map(|row| (row.resource.clone(), row.started_ms))
            .collect()
    }

    /// Reads the firing alerts again from the store (another replica fired, resolved or
    /// acknowledged them); the page is told when they changed.
    pub fn refresh(&self) {
        let rows = match self.inner.db.firing() {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(%err, "Cannot read the firing alerts");
                return;
            }
        };
        let fresh: BTreeMap<String, FiringRow> = rows
            .into_iter()
            .map(|row| (row.resource.clone(), row))
            .collect();
        let mut firing = lock(&self.inner.firing);
        if *firing != fresh {
            *firing = fresh;
            drop(firing);
            self.bump();
        }
    }

    fn bump(&self) {
        self.inner.version.fetch_add(1, Ordering::Relaxed);
    }

    /// The monitor's pending alerts at this tick; the page is told when the set changes.
    pub fn set_pending(&self, pending: Vec<PendingAlert>) {
        let mut current = lock(&self.inner.pending);
        let same = current.len() == pending.len()
            && current
                .iter()
                .zip(&pending)
                .all(|(a, b)| a.resource == b.resource && a.since_ms == b.since_ms);
        *current = pending;
        drop(current);
        if !same {
            self.bump();
        }
    }

    /// An alert started firing: stored, then notified by the sweep.
    pub fn fired(&self, resource: &str, started_ms: i64, summary: &str) {
        if let Err(err) = self.inner.db.fire(resource, started_ms, summary) {
            // The breach is still detected after a restart; nothing else to do.
            tracing::error!(resource, %err, "A firing alert could not be stored");
            return;
        }
        lock(&self.inner.firing).insert(
            resource.to_owned(),
            FiringRow {
                resource: resource.to_owned(),
                started_ms,
                summary: summary.to_owned(),
                acked_by: None,
                acked_ms: None,
                ack_comment: None,
            },
        );
        tracing::warn!(resource, summary, "Alert firing");
        self.sweep(self.now_ms());
        self.bump();
        self.inner.wake.notify_one();
    }

    /// An alert resolved: every channel that was told it fired is told, in the same
    /// transaction that ends it. If the store fails, it is retried until it takes it (no
    /// repeats are sent meanwhile: the alert is no longer firing here).
    pub fn resolved(&self, resource: &str, started_ms: i64, ended_ms: i64, summary: &str) {
        let ended = Ended {
            resource: resource.to_owned(),
            started_ms,
            ended_ms,
            summary: summary.to_owned(),
        };
        {
            let _order = lock(&self.inner.order);
            let mut firing = lock(&self.inner.firing);
            if firing
                .get(resource)
                .is_some_and(|row| row.started_ms == started_ms)
            {
                firing.remove(resource);
            }
        }
        tracing::info!(resource, summary, "Alert resolved");
        if let Err(err) = self.store_resolved(&ended) {
            tracing::error!(resource, %err, "A resolved alert could not be stored; will retry");
            lock(&self.inner.unresolved).push(ended);
        }
        self.bump();
        self.inner.wake.notify_one();
    }

    fn store_resolved(&self, ended: &Ended) -> Result<(), crate::persist::sql::SqlError> {
        let _order = lock(&self.inner.order);
        let stream = stream(&ended.resource, ended.started_ms);
        let now = self.now_ms();
        let told = self.inner.db.channels_told(&stream)?;
        let outgoing: Vec<Outgoing> = self
            .inner
            .channels
            .iter()
            .filter(|c| told.contains(&c.entry.name) && c.entry.wants(NotificationKind::Resolved))
            .map(|c| {
                let mut n = self.notification(
                    &ended.resource,
                    NotificationKind::Resolved,
                    &ended.summary,
                    None,
                    format!("{stream}/{}/resolved", c.entry.name),
                    now,
                );
                n.started_ms = Some(ended.started_ms);
                n.ended_ms = Some(ended.ended_ms);
                Outgoing {
                    channel: c.entry.name.clone(),
                    stream: stream.clone(),
                    due_ms: release_at(&c.entry, now),
                    notification: n,
                }
            })
            .collect();
        self.inner.db.resolve(
            &ended.resource,
            ended.started_ms,
            ended.ended_ms,
            &ended.summary,
            &outgoing,
            now,
        )
    }

    /// Resolutions the store refused earlier, tried again.
    fn retry_unresolved(&self) {
        let waiting = std::mem::take(&mut *lock(&self.inner.unresolved));
        for ended in waiting {
            if let Err(err) = self.store_resolved(&ended) {
                tracing::warn!(resource = %ended.resource, %err, "A resolved alert still cannot be stored");
                lock(&self.inner.unresolved).push(ended);
            }
        }
    }

    /// An optimizer outcome, for channels that asked for them.
    pub fn outcome(&self, resource: &str, at_ms: i64, summary: &str) {
        self.tell_opted_in(
            NotificationKind::Outcome,
            resource,
            &format!("outcome/{resource}/{at_ms}"),
            summary,
        );
    }

    /// A target predicted to breach within the horizon, held for the policy's `for`
    /// (`engine::alerts::ForecastAlert`): told once to the channels that asked for
    /// forecasts (unless a silence matches the resource, as for its alert), and listed on
    /// the Alerts page until it ends.
    pub fn forecast(&self, resource: &str, name: &str, since_ms: i64, summary: &str) {
        lock(&self.inner.forecasts).insert(
            resource.to_owned(),
            app::alerts::ForecastAlertView {
                resource: resource.to_owned(),
                name: name.to_owned(),
                summary: summary.to_owned(),
                since_ms,
            },
        );
        let now = self.now_ms();
        let silences = self.inner.db.silences(now).unwrap_or_default();
        if silenced_by(&silences, resource, now).is_some() {
            self.bump();
            return;
        }
        self.tell_opted_in(
            NotificationKind::Forecast,
            resource,
            &format!("forecast/{resource}/{since_ms}"),
            summary,
        );
    }

    /// A forecast alert ended: the refit no longer predicts a crossing soon.
    pub fn forecast_ended(&self, resource: &str) {
        if lock(&self.inner.forecasts).remove(resource).is_some() {
            self.bump();
        }
    }

    /// A notification `kind` only channels that asked for it get (outcomes, forecasts),
    /// keyed `<key>/<channel>` so a repeat delivery is recognised.
    fn tell_opted_in(&self, kind: NotificationKind, resource: &str, key: &str, summary: &str) {
        let now = self.now_ms();
        let Some(subject) = self.subject_of(resource) else {
            return;
        };
        let outgoing: Vec<Outgoing> = self
            .inner
            .channels
            .iter()
            .filter(|c| c.entry.wants(kind) && routes(&c.entry, &subject))
            .map(|c| Outgoing {
                channel: c.entry.name.clone(),
                stream: format!("{}:{resource}", kind.as_str()),
                due_ms: release_at(&c.entry, now),
                notification: self.notification(
                    resource,
                    kind,
                    summary,
                    None,
                    format!("{key}/{}", c.entry.name),
                    now,
                ),
            })
            .collect();
        self.bump();
        if outgoing.is_empty() {
            return;
        }
        if let Err(err) = self.inner.db.enqueue(&outgoing, now) {
            tracing::error!(resource, %err, kind = kind.as_str(), "A notification could not be stored");
        }
        self.inner.wake.notify_one();
    }

    /// Queues what is owed now: a firing alert's first notification on every channel that
    /// routes it (unless silenced), and its repeats (unless acknowledged). Alertmanager is
    /// refreshed regardless once told, silenced or acknowledged, or it would resolve the
    /// alert by itself. Nothing is repeated on a channel while the previous notification of
    /// the episode is still waiting there (held by quiet hours, or being retried).
    pub fn sweep(&self, now_ms: i64) {
        let _order = lock(&self.inner.order);
        let firing: Vec<FiringRow> = lock(&self.inner.firing).values().cloned().collect();
        if firing.is_empty() {
            return;
        }
        let silences = self.inner.db.silences(now_ms).unwrap_or_default();
        let mut outgoing = Vec::new();
        for alert in &firing {
            let silenced = silenced_by(&silences, &alert.resource, now_ms).is_some();
            let Some(subject) = self.subject_of(&alert.resource) else {
                continue;
            };
            let stream = alert.stream();
            for channel in &self.inner.channels {
                let entry = &channel.entry;
                if !entry.wants(NotificationKind::Firing) || !routes(entry, &subject) {
                    continue;
                }
                let Ok(sent) = self.inner.db.firing_sent(&stream, &entry.name) else {
                    continue;
                };
                let refresh = entry.kind == connectors::sinks::ChannelKind::Alertmanager;
                if sent.waiting > 0 || (silenced && !(refresh && sent.last_ms.is_some())) {
                    continue;
                }
                let owed = match sent.last_ms {
                    None => true,
                    Some(_) if !refresh && alert.acked_by.is_some() => false,
                    Some(last) => now_ms - last >= entry.repeat_every_ms(),
                };
                let count = sent.count;
                if !owed {
                    continue;
                }
                let mut n = self.notification(
                    &alert.resource,
                    NotificationKind::Firing,
                    &alert.summary,
                    None,
                    format!("{stream}/{}/firing/{count}", entry.name),
                    now_ms,
                );
                n.started_ms = Some(alert.started_ms);
                outgoing.push(Outgoing {
                    channel: entry.name.clone(),
                    stream: stream.clone(),
                    due_ms: release_at(entry, now_ms),
                    notification: n,
                });
            }
        }
        if outgoing.is_empty() {
            return;
        }
        match self.inner.db.enqueue(&outgoing, now_ms) {
            Ok(added) if added > 0 => {
                self.bump();
                self.inner.wake.notify_one();
            }
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "Notifications could not be queued"),
        }
    }

    fn subject_of(&self, resource: &str) -> Option<OwnedSubject> {
        let state = self.inner.store.state();
        let id = engine::model::ResourceId::new(resource).ok()?;
        let r = state.resources.get(&id)?;
        Some(OwnedSubject {
            resource: resource.to_owned(),
            resource_type: r.resource_type.kind().to_owned(),
            group: group_of(r),
        })
    }

    fn notification(
        &self,
        resource: &str,
        kind: NotificationKind,
        summary: &str,
        value: Option<f64>,
        key: String,
        now_ms: i64,
    ) -> Notification {
        let state = self.inner.store.state();
        let found = engine::model::ResourceId::new(resource)
            .ok()
            .and_then(|id| state.resources.get(&id).cloned());
        let (name, resource_type, group, metric, target) = match &found {
            Some(r) => (
                r.name.clone(),
                r.resource_type.kind().to_owned(),
                group_of(r),
                r.target
                    .as_ref()
                    .map(|t| t.metric.clone())
                    .unwrap_or_default(),
                r.target
                    .as_ref()
                    .zip(r.target_kind())
                    .map(|(t, kind)| t.describe(kind)),
            ),
            None => (
                resource.to_owned(),
                String::new(),
                None,
                String::new(),
                None,
            ),
        };
        Notification {
            key,
            kind,
            resource: resource.to_owned(),
            resource_name: name,
            resource_type,
            group,
            metric,
            summary: summary.to_owned(),
            target,
            value,
            started_ms: None,
            ended_ms: None,
            url: self
                .inner
                .public_url
                .as_ref()
                .map(|base| format!("{base}resource?id={}", app::format::urlencode(resource))),
            at_ms: now_ms,
        }
    }

    fn channel(&self, name: &str) -> Option<&Channel> {
        self.inner.channels.iter().find(|c| c.entry.name == name)
    }

    /// Queues a scheduled report on `channels`, once per send time (`key` repeats are
    /// ignored, so a restart does not send it twice).
    pub fn report(
        &self,
        channels: &[String],
        sent_for_ms: i64,
        summary: &str,
        url: Option<String>,
    ) {
        let now = self.now_ms();
        let outgoing: Vec<Outgoing> = self
            .inner
            .channels
            .iter()
            .filter(|c| channels.contains(&c.entry.name) && c.entry.wants(NotificationKind::Report))
            .map(|c| {
                let mut n = self.notification(
                    "perfpilot",
                    NotificationKind::Report,
                    summary,
                    None,
                    format!("report/{sent_for_ms}/{}", c.entry.name),
                    now,
                );
                n.resource_name = "perfpilot".into();
                n.url = url.clone();
                Outgoing {
                    channel: c.entry.name.clone(),
                    stream: format!("report:{}", c.entry.name),
                    due_ms: release_at(&c.entry, now),
                    notification: n,
                }
            })
            .collect();
        match self.inner.db.enqueue(&outgoing, now) {
            Ok(added) if added > 0 => {
                tracing::info!(summary, "Scheduled report queued");
                self.bump();
                self.inner.wake.notify_one();
            }
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "A scheduled report could not be queued"),
        }
    }

    pub fn public_url(&self) -> Option<&str> {
        self.inner.public_url.as_deref()
    }
}

struct OwnedSubject {
    resource: String,
    resource_type: String,
    group: Option<String>,
}

fn routes(entry: &ChannelEntry, subject: &OwnedSubject) -> bool {
    entry.routes(Subject {
        resource: &subject.resource,
        resource_type: &subject.resource_type,
        group: subject.group.as_deref(),
    })
}

fn release_at(entry: &ChannelEntry, now_ms: i64) -> i64 {
    entry.quiet().map_or(now_ms, |q| q.release_at(now_ms))
}

fn silenced_by(silences: &[SilenceRow], resource: &str, now_ms: i64) -> Option<i64> {
    silences
        .iter()
        .find(|s| s.active(now_ms) && glob_matches(&s.matcher, resource))
        .map(|s| s.id)
}

/// A database's or cache's `group`, from its source settings.
fn group_of(resource: &Resource) -> Option<String> {
    resource
        .source
        .as_ref()?
        .settings
        .get("group")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
