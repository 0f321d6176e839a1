//! What is read out of alerting: the Alerts page and API ([`AlertsView`]), the pulse the
//! page polls, what `/metrics` shows, and alert episodes for reports.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use app::alerts::{
    AlertsPulse, AlertsView, ChannelView, DeliveryView, EpisodeView, FiringAlert, SilenceView,
};
use app::error::AppError;
use connectors::sinks::ChannelEntry;
use engine::sync::lock;

use super::{db_error, silenced_by, Alerting, KEEP_MS};
use crate::persist::alerts::ChannelCounts;

impl Alerting {
    pub fn pulse(&self) -> AlertsPulse {
        AlertsPulse {
            version: self.inner.version.load(Ordering::Relaxed),
            firing: lock(&self.inner.firing).len() as u32,
            pending: lock(&self.inner.pending).len() as u32,
        }
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
            forecasts: lock(&self.inner.forecasts).values().cloned().collect(),
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
            // Filled by the monitor, which holds the history.
            what_changed: None,
        })
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
        entry.notify_forecasts.then_some("forecasts"),
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
