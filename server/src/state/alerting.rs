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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::alerts::{
    Acknowledgement, AlertsPulse, AlertsView, ChannelView, DeliveryView, EpisodeView, FiringAlert,
    NewSilence, PendingAlert, SilenceView,
};
use app::audit::AuditKind;
use app::error::AppError;
use app::identity::Identity;
use connectors::actuators::webhook::Attempt;
use connectors::sinks::{Channel, ChannelEntry, Subject};
use engine::alerts::{glob_matches, retry_delay_ms, AlertPolicy, Notification, NotificationKind};
use engine::changes::{ChangeStore, Clock, SystemClock};
use engine::model::Resource;
use engine::sync::lock;

use crate::persist::alerts::{
    stream, AlertDb, ChannelCounts, FiringRow, OutboxRow, Outgoing, SilenceRow,
};
use crate::persist::{actor_entry, Persist};

/// The longest period a report covers (`crate::report`): alert episodes are kept that
/// long, and a day more, so any report can count them.
pub const MAX_REPORT_PERIOD_MS: i64 = 31 * 86_400_000;

/// A delivery still failing after this long is given up (and shown as failed).
const GIVE_UP_MS: i64 = 24 * 3600 * 1000;
/// The delivery task looks for repeats and ended silences at least this often.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Delivered notifications are kept this long for the Alerts page.
const KEEP_MS: i64 = 7 * 86_400_000;
/// At most this many deliveries run at once.
const PARALLEL: usize = 16;

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
    /// Held by [`Alerting::sweep`] and [`Alerting::resolved`] for their whole run: a sweep
    /// that read an alert as firing cannot queue its "firing" after its "resolved".
    order: Mutex<()>,
    /// Resolved alerts the store could not record yet; retried by the delivery task.
    unresolved: Mutex<Vec<Ended>>,
    /// Outbox rows being sent now: their lines are busy.
    in_flight: Mutex<HashSet<i64>>,
    /// Makes each test notification's key unique, even two in the same millisecond.
    tests: AtomicU64,
    /// Wall time: [`SystemClock`] in production, moved by hand in tests.
    clock: Arc<dyn Clock>,
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

fn db_error(err: rusqlite::Error) -> AppError {
    AppError::unavailable(format!("the alert store failed: {err}"))
}

impl Alerting {
    /// On the system clock.
    pub fn open(
        data_dir: Option<&std::path::Path>,
        settings: &crate::config::AlertSettings,
        secrets: &BTreeMap<String, String>,
        store: Arc<ChangeStore>,
        persist: Persist,
        public_url: Option<String>,
    ) -> anyhow::Result<Alerting> {
        Alerting::open_with_clock(
            data_dir,
            settings,
            secrets,
            store,
            persist,
            public_url,
            Arc::new(SystemClock::default()),
        )
    }

    /// Reading wall time from `clock`: when alerts are silenced, held, repeated, due and
    /// sent (tests move it by hand).
    pub fn open_with_clock(
        data_dir: Option<&std::path::Path>,
        settings: &crate::config::AlertSettings,
        secrets: &BTreeMap<String, String>,
        store: Arc<ChangeStore>,
        persist: Persist,
        public_url: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Alerting> {
        let db = AlertDb::open(data_dir)?;
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
                order: Mutex::new(()),
                unresolved: Mutex::new(Vec::new()),
                in_flight: Mutex::new(HashSet::new()),
                tests: AtomicU64::new(0),
                clock,
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

    pub fn pulse(&self) -> AlertsPulse {
        AlertsPulse {
            version: self.inner.version.load(Ordering::Relaxed),
            firing: lock(&self.inner.firing).len() as u32,
            pending: lock(&self.inner.pending).len() as u32,
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

    fn store_resolved(&self, ended: &Ended) -> rusqlite::Result<()> {
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
        let now = self.now_ms();
        let Some(subject) = self.subject_of(resource) else {
            return;
        };
        let outgoing: Vec<Outgoing> = self
            .inner
            .channels
            .iter()
            .filter(|c| c.entry.wants(NotificationKind::Outcome) && routes(&c.entry, &subject))
            .map(|c| Outgoing {
                channel: c.entry.name.clone(),
                stream: format!("outcome:{resource}"),
                due_ms: release_at(&c.entry, now),
                notification: self.notification(
                    resource,
                    NotificationKind::Outcome,
                    summary,
                    None,
                    format!("outcome/{resource}/{at_ms}/{}", c.entry.name),
                    now,
                ),
            })
            .collect();
        if outgoing.is_empty() {
            return;
        }
        if let Err(err) = self.inner.db.enqueue(&outgoing, now) {
            tracing::error!(resource, %err, "An outcome notification could not be stored");
        }
        self.bump();
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

    /// Delivers due notifications until the runtime stops. Spawned once.
    pub async fn run(self) {
        let mut last_prune = 0;
        loop {
            let now = self.now_ms();
            self.retry_unresolved();
            self.sweep(now);
            if now - last_prune > 3_600_000 {
                last_prune = now;
                let episodes = now - MAX_REPORT_PERIOD_MS - 86_400_000;
                if let Err(err) = self.inner.db.prune(now - KEEP_MS, episodes) {
                    tracing::warn!(%err, "Old notifications could not be pruned");
                }
            }
            let next_due = self.deliver_due(now).await;
            let wait = wait_until(next_due, self.now_ms());
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts sending every due head of line (one per episode and channel) whose line is
    /// not busy, each on its own task so a slow receiver delays only its own line; answers
    /// when the next waiting one is due. A finished send wakes the loop.
    async fn deliver_due(&self, now_ms: i64) -> Option<i64> {
        let pending = match self.inner.db.pending() {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(%err, "The outbox could not be read");
                return Some(now_ms + 5000);
            }
        };
        let mut heads: HashMap<(String, String), OutboxRow> = HashMap::new();
        for row in pending {
            heads
                .entry((row.channel.clone(), row.stream.clone()))
                .or_insert(row);
        }
        let busy = lock(&self.inner.in_flight).clone();
        let (mut due, waiting): (Vec<OutboxRow>, Vec<OutboxRow>) = heads
            .into_values()
            .filter(|row| !busy.contains(&row.id))
            .partition(|row| row.due_ms <= now_ms);
        due.sort_by_key(|r| r.id);
        for row in due {
            {
                let mut in_flight = lock(&self.inner.in_flight);
                // The rest start when a send finishes (it wakes the loop).
                if in_flight.len() >= PARALLEL {
                    break;
                }
                in_flight.insert(row.id);
            }
            let this = self.clone();
            tokio::spawn(async move {
                this.deliver(&row).await;
                lock(&this.inner.in_flight).remove(&row.id);
                this.bump();
                this.inner.wake.notify_one();
            });
        }
        waiting.iter().map(|r| r.due_ms).min()
    }

    async fn deliver(&self, row: &OutboxRow) {
        let Some(channel) = self.channel(&row.channel) else {
            let _ = self.inner.db.mark_failed(
                row.id,
                row.attempts,
                &format!("the channel {:?} is no longer configured", row.channel),
            );
            return;
        };
        let attempts = row.attempts + 1;
        let now = self.now_ms();
        let result = channel.send(&row.notification, now).await;
        let done = self.now_ms();
        let stored = match result {
            Attempt::Done(detail) => self.inner.db.mark_sent(row.id, attempts, done, &detail),
            Attempt::Fatal(error) => {
                tracing::warn!(channel = %row.channel, %error, "A notification was refused");
                self.inner.db.mark_failed(row.id, attempts, &error)
            }
            Attempt::Retry(error) if done - row.created_ms >= GIVE_UP_MS => {
                let error = format!("gave up after {attempts} attempts over 24 h: {error}");
                tracing::warn!(channel = %row.channel, %error, "A notification was given up");
                self.inner.db.mark_failed(row.id, attempts, &error)
            }
            Attempt::Retry(error) => {
                tracing::info!(channel = %row.channel, attempts, %error, "A notification will be retried");
                let due = release_at(&channel.entry, done + retry_delay_ms(attempts));
                self.inner.db.mark_retry(row.id, attempts, due, &error)
            }
        };
        if let Err(err) = stored {
            tracing::error!(%err, "A delivery's result could not be stored");
        }
    }

    fn channel(&self, name: &str) -> Option<&Channel> {
        self.inner.channels.iter().find(|c| c.entry.name == name)
    }

    /// The "send test" button: sends now, records the delivery, answers the receiver's
    /// answer or why it failed; audited. The send runs on its own task, so a caller that
    /// goes away mid-send leaves a finished delivery record, not a waiting one.
    pub async fn test(&self, channel: &str, actor: &Identity) -> Result<String, AppError> {
        if self.channel(channel).is_none() {
            return Err(AppError::not_found(format!(
                "no alert channel is named {channel:?}"
            )));
        }
        let this = self.clone();
        let (channel, actor) = (channel.to_owned(), actor.clone());
        tokio::spawn(async move { this.send_test(&channel, &actor).await })
            .await
            .map_err(|err| AppError::unavailable(format!("the test send stopped: {err}")))?
    }

    async fn send_test(&self, channel: &str, actor: &Identity) -> Result<String, AppError> {
        let target = self.channel(channel).expect("checked by the caller");
        let now = self.now_ms();
        let nonce = self.inner.tests.fetch_add(1, Ordering::Relaxed);
        let n = Notification {
            key: format!("test/{channel}/{now}/{nonce}"),
            kind: NotificationKind::Test,
            resource: "perfpilot".into(),
            resource_name: "perfpilot".into(),
            resource_type: String::new(),
            group: None,
            metric: String::new(),
            summary: format!("test notification from perfpilot, sent by {}", actor.user),
            target: None,
            value: None,
            started_ms: Some(now),
            ended_ms: None,
            url: self.inner.public_url.clone(),
            at_ms: now,
        };
        let row = Outgoing {
            channel: channel.to_owned(),
            stream: format!("test:{channel}"),
            // Sent below, not by the delivery task.
            due_ms: i64::MAX,
            notification: n.clone(),
        };
        let id = self.inner.db.enqueue_one(&row, now).map_err(db_error)?;
        let result = target.send(&n, now).await;
        let done = self.now_ms();
        self.bump();
        let (stored, answer) = match result {
            Attempt::Done(detail) => (
                self.inner.db.mark_sent(id, 1, done, &detail),
                Ok(format!(
                    "delivered to {} ({detail})",
                    target.entry.shown_url()
                )),
            ),
            Attempt::Fatal(error) | Attempt::Retry(error) => (
                self.inner.db.mark_failed(id, 1, &error),
                Err(AppError::new(
                    502,
                    format!("the channel did not accept it: {error}"),
                )),
            ),
        };
        let outcome = match &answer {
            Ok(text) => text.clone(),
            Err(err) => err.error.clone(),
        };
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::ChannelTest,
            None,
            now,
            format!("sent a test notification to {channel}: {outcome}"),
            serde_json::Value::Null,
            serde_json::json!({ "channel": channel, "delivered": answer.is_ok(), "result": outcome }),
        ));
        stored.map_err(db_error)?;
        answer
    }

    pub fn silence(&self, new: NewSilence, actor: &Identity) -> Result<i64, AppError> {
        let secs = new
            .validate()
            .map_err(|(field, rule)| AppError::invalid(field, rule))?;
        // Who: from a proxy's header or a token's name, stored with the silence.
        if let Some(rule) = engine::text::free_text_rule(&actor.user, false) {
            return Err(AppError::invalid("created_by", rule));
        }
        let now = self.now_ms();
        let ends = now + (secs as i64) * 1000;
        let (matcher, comment) = (new.matcher.trim(), new.comment.trim());
        let id = self
            .inner
            .db
            .add_silence(matcher, comment, &actor.user, now, ends)
            .map_err(db_error)?;
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Silence,
            None,
            now,
            format!(
                "silenced {matcher:?} for {}: {comment}",
                engine::model::format_duration(u32::try_from(secs).unwrap_or(u32::MAX))
            ),
            serde_json::Value::Null,
            serde_json::json!({ "id": id, "matcher": matcher, "ends_ms": ends, "comment": comment }),
        ));
        self.bump();
        Ok(id)
    }

    pub fn unsilence(&self, id: i64, actor: &Identity) -> Result<(), AppError> {
        let now = self.now_ms();
        let row = self
            .inner
            .db
            .expire_silence(id, &actor.user, now)
            .map_err(db_error)?
            .ok_or_else(|| AppError::not_found(format!("no active silence has the id {id}")))?;
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Unsilence,
            None,
            now,
            format!("ended the silence of {:?}", row.matcher),
            serde_json::json!({ "id": id, "matcher": row.matcher }),
            serde_json::Value::Null,
        ));
        self.bump();
        // Whatever it held back is owed now.
        self.inner.wake.notify_one();
        Ok(())
    }

    pub fn acknowledge(
        &self,
        resource: &str,
        ack: &Acknowledgement,
        actor: &Identity,
    ) -> Result<(), AppError> {
        let comment = ack.comment.trim();
        if comment.chars().count() > 500 {
            return Err(AppError::invalid(
                "comment",
                "must be at most 500 characters",
            ));
        }
        if let Some(rule) = engine::text::free_text_rule(comment, true) {
            return Err(AppError::invalid("comment", rule));
        }
        let now = self.now_ms();
        let changed = self
            .inner
            .db
            .acknowledge(resource, ack.started_ms, &actor.user, comment, now)
            .map_err(db_error)?;
        if !changed {
            let firing_since = lock(&self.inner.firing).get(resource).map(|r| r.started_ms);
            return Err(match (firing_since, ack.started_ms) {
                (Some(since), Some(asked)) if since != asked => AppError::new(
                    409,
                    format!(
                        "started_ms: the alert of {resource:?} you acknowledged has resolved, and it fired again at {}; look at it again",
                        app::format::utc_time(since)
                    ),
                ),
                _ => AppError::not_found(format!("no alert is firing for {resource:?}")),
            });
        }
        if let Some(row) = lock(&self.inner.firing).get_mut(resource) {
            row.acked_by = Some(actor.user.clone());
            row.acked_ms = Some(now);
            row.ack_comment = Some(comment.to_owned());
        }
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Acknowledge,
            Some(resource),
            now,
            format!(
                "{resource}: acknowledged the firing alert{}",
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(": {comment}")
                }
            ),
            serde_json::Value::Null,
            serde_json::json!({ "comment": comment }),
        ));
        self.bump();
        Ok(())
    }

    /// Everything the Alerts page shows.
    pub fn view(&self) -> Result<AlertsView, AppError> {
        let now = self.now_ms();
        let db = &self.inner.db;
        let silences = db.silences(now).map_err(db_error)?;
        let state = self.inner.store.state();
        let name_of = |resource: &str| {
            engine::model::ResourceId::new(resource)
                .ok()
                .and_then(|id| state.resources.get(&id).map(|r| r.name.clone()))
                .unwrap_or_else(|| resource.to_owned())
        };
        let firing = lock(&self.inner.firing)
            .values()
            .map(|row| FiringAlert {
                resource: row.resource.clone(),
                name: name_of(&row.resource),
                summary: row.summary.clone(),
                started_ms: row.started_ms,
                silenced_by: silenced_by(&silences, &row.resource, now),
                acked_by: row.acked_by.clone(),
                ack_comment: row.ack_comment.clone(),
            })
            .collect();
        let stats: HashMap<String, ChannelCounts> = db
            .channel_stats()
            .map_err(db_error)?
            .into_iter()
            .map(|counts| (counts.channel.clone(), counts))
            .collect();
        let channels = self
            .inner
            .channels
            .iter()
            .map(|c| {
                let ChannelCounts {
                    waiting,
                    failed,
                    last_error,
                    ..
                } = stats.get(&c.entry.name).cloned().unwrap_or_default();
                ChannelView {
                    name: c.entry.name.clone(),
                    kind: c.entry.kind.as_str().to_owned(),
                    url: c.entry.shown_url(),
                    routes: describe_routes(&c.entry),
                    quiet_hours: c.entry.quiet().map(|q| q.to_string()),
                    waiting,
                    failed,
                    last_error,
                }
            })
            .collect();
        Ok(AlertsView {
            now_ms: now,
            firing,
            pending: lock(&self.inner.pending).clone(),
            silences: silences
                .iter()
                .map(|s| SilenceView {
                    id: s.id,
                    matcher: s.matcher.clone(),
                    comment: s.comment.clone(),
                    created_by: s.created_by.clone(),
                    starts_ms: s.starts_ms,
                    ends_ms: s.ends_ms,
                    active: s.active(now),
                    expired_by: s.expired_by.clone(),
                })
                .collect(),
            history: db
                .episodes(now - KEEP_MS, now + 1, 100)
                .map_err(db_error)?
                .into_iter()
                .map(|e| EpisodeView {
                    resource: e.resource,
                    started_ms: e.started_ms,
                    ended_ms: e.ended_ms,
                    summary: e.summary,
                    end_summary: e.end_summary,
                })
                .collect(),
            channels,
            deliveries: db
                .recent(50)
                .map_err(db_error)?
                .into_iter()
                .map(|r| DeliveryView {
                    id: r.id,
                    channel: r.channel,
                    kind: r.notification.kind.as_str().to_owned(),
                    resource: r.notification.resource,
                    summary: r.notification.summary,
                    state: r.state,
                    attempts: r.attempts,
                    created_ms: r.created_ms,
                    due_ms: r.due_ms,
                    sent_ms: r.sent_ms,
                    detail: r.detail,
                })
                .collect(),
        })
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

    /// For `/metrics`: each pending and firing alert, and per channel the notifications
    /// waiting and failed.
    pub fn metrics(&self) -> AlertMetrics {
        let mut states: Vec<(String, &'static str)> = lock(&self.inner.pending)
            .iter()
            .map(|p| (p.resource.clone(), "pending"))
            .collect();
        states.extend(
            lock(&self.inner.firing)
                .keys()
                .map(|resource| (resource.clone(), "firing")),
        );
        let counts = self.inner.db.channel_stats().unwrap_or_default();
        let channels = self
            .inner
            .channels
            .iter()
            .map(|c| {
                counts
                    .iter()
                    .find(|n| n.channel == c.entry.name)
                    .cloned()
                    .unwrap_or_else(|| ChannelCounts {
                        channel: c.entry.name.clone(),
                        ..ChannelCounts::default()
                    })
            })
            .collect();
        AlertMetrics { states, channels }
    }

    /// Alert episodes overlapping a period (reports).
    pub fn episodes(&self, from_ms: i64, to_ms: i64) -> Vec<crate::persist::alerts::Episode> {
        self.inner
            .db
            .episodes(from_ms, to_ms, 10_000)
            .unwrap_or_default()
    }
}

/// What `/metrics` shows of alerting.
pub struct AlertMetrics {
    /// (resource, `pending` | `firing`)
    pub states: Vec<(String, &'static str)>,
    pub channels: Vec<ChannelCounts>,
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

/// How long the delivery task sleeps at `now_ms` when the next waiting notification is
/// due at `next_due`: until then, but at most [`SWEEP_EVERY`] (repeats and silences that
/// end are looked for that often).
fn wait_until(next_due: Option<i64>, now_ms: i64) -> Duration {
    next_due
        .map(|due| Duration::from_millis((due - now_ms).max(0) as u64))
        .unwrap_or(SWEEP_EVERY)
        .min(SWEEP_EVERY)
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

fn describe_routes(entry: &ChannelEntry) -> String {
    let mut parts = Vec::new();
    if !entry.resources.is_empty() {
        parts.push(entry.resources.join(", "));
    }
    if !entry.types.is_empty() {
        parts.push(format!("type {}", entry.types.join(", ")));
    }
    if !entry.groups.is_empty() {
        parts.push(format!("group {}", entry.groups.join(", ")));
    }
    let mut text = if parts.is_empty() {
        "every resource".to_owned()
    } else {
        parts.join(" · ")
    };
    let kinds: BTreeSet<&str> = [
        Some("firing"),
        entry.send_resolved.then_some("resolved"),
        entry.notify_outcomes.then_some("optimizer outcomes"),
    ]
    .into_iter()
    .flatten()
    .collect();
    text.push_str(&format!(
        " ({})",
        kinds.into_iter().collect::<Vec<_>>().join(", ")
    ));
    text
}

#[cfg(test)]
mod tests;
