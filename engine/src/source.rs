//! Sources: where samples come from. The input port of the engine.
//!
//! A source owns some resources (their cards), produces samples for them on its own
//! schedule and says how it is doing ([`SourceHealth`]) in words a person reads. The host
//! collector and custom pushes are sources; so are databases, caches and load balancers.
//! Each runs on its own task ([`crate::source::runtime`]), so a slow or failing one never
//! stalls another or the monitor: its cards show a gap and its reason instead.
//!
//! Most sources are *polled*: implement [`Poll`] (one `collect` per interval) and wrap it
//! in [`runtime::Polled`], which brings the schedule, the timeout, the backoff and the
//! health reports. A source that is driven from outside (pushes) implements [`Source`]
//! directly.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Resource;
use crate::push::PushedSample;
use crate::series::{Tick, UnixMillis};

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a source produced nothing: a sentence for the card ("connection refused",
/// "password authentication failed for user \"perf\"").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceError {
    pub reason: String,
}

impl SourceError {
    /// A credential the reason quotes (a URL's password, a token) is masked.
    pub fn new(reason: impl Into<String>) -> SourceError {
        SourceError {
            reason: crate::redact::redact(&Into::<String>::into(reason)),
        }
    }
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SourceError {}

/// How a source is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceHealth {
    /// Not produced anything yet.
    Starting,
    /// Producing samples since then.
    Up { since_unix_ms: UnixMillis },
    /// Failing since then for `reason`; the next try is at `retry_at_unix_ms`.
    Down {
        reason: String,
        since_unix_ms: UnixMillis,
        retry_at_unix_ms: UnixMillis,
    },
    /// Removed or shut down.
    Stopped,
}

impl SourceHealth {
    pub fn is_up(&self) -> bool {
        matches!(self, SourceHealth::Up { .. })
    }

    /// The reason a card of this source shows instead of a value, if any.
    pub fn problem(&self) -> Option<String> {
        match self {
            SourceHealth::Down { reason, .. } => Some(reason.clone()),
            SourceHealth::Stopped => Some("source stopped".to_owned()),
            _ => None,
        }
    }
}

/// One source as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Stable id: `host`, `push`, `postgres:orders`.
    pub id: String,
    /// What kind of thing it reads: `host`, `push`, `postgres`.
    pub kind: String,
    pub health: SourceHealth,
    /// When it last produced a sample.
    pub last_sample_unix_ms: Option<UnixMillis>,
    /// The resource ids it produces samples for (a trailing `*` is a prefix).
    pub resources: Vec<String>,
    /// What the source found besides series (a database's top queries), as it last
    /// reported it; shared, so copying the status map stays cheap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<std::sync::Arc<serde_json::Value>>,
}

/// What a configured source kind is, in the order lists show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFamily {
    /// Added on the database form; its settings have `url`, `password_file`/
    /// `password_env`, `probe_query` and `group`.
    Database,
    Cache,
    LoadBalancer,
    Fleet,
}

/// What a source hands the monitor.
#[derive(Debug, Clone)]
pub enum Batch {
    /// One reading of every series of the source at one instant (polled sources).
    Tick(std::sync::Arc<Tick>),
    /// Samples with their own timestamps, stored all-or-nothing (pushes).
    Samples(Vec<PushedSample>),
    /// Something happened to a resource that its chart and before/after list should show
    /// (a cache restarted cold): a mark, as if a person had set it.
    Mark(SourceMark),
}

/// An event a source saw on one of its resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMark {
    pub resource: String,
    /// What happened, e.g. "cold cache: restarted (uptime reset)".
    pub label: String,
}

/// A source whose samples are read on an interval: the runtime calls [`Poll::collect`] on
/// the source's own task, never twice at once, under a timeout.
pub trait Poll: Send + 'static {
    /// Reads every series once; the tick's `at` must be `at`. An error is the reason the
    /// card shows until the next success (the runtime retries with backoff).
    fn collect(&mut self, at: UnixMillis) -> BoxFuture<'_, Result<Tick, SourceError>>;

    /// What the source found besides series since it was last asked (asked after every
    /// successful collect); `None` leaves the last report as it was.
    fn details(&mut self) -> Option<serde_json::Value> {
        None
    }

    /// Events seen since it was last asked (asked after every successful collect, and
    /// handed to the monitor after the tick).
    fn marks(&mut self) -> Vec<SourceMark> {
        Vec::new()
    }
}

/// What the runtime needs to know about a source before it runs it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub id: String,
    pub kind: String,
    /// The resources it owns now, with their default targets; registered at start-up.
    pub resources: Vec<Resource>,
    /// Resource ids it produces samples for, when they are not all in `resources` (a
    /// trailing `*` is a prefix: the push source owns `custom:*`).
    pub owns: Vec<String>,
}

/// The schedule of a polled source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    /// A collect that has not answered by then is abandoned and counts as a failure.
    pub timeout: Duration,
    /// The longest wait between retries of a failing source.
    pub max_backoff: Duration,
}

impl Schedule {
    /// Every `interval`, a read abandoned after 5 intervals (at least 5 s), retries backing
    /// off to at most a minute.
    pub fn every(interval: Duration) -> Schedule {
        Schedule {
            interval,
            timeout: (interval * 5).max(Duration::from_secs(5)),
            max_backoff: Duration::from_secs(60),
        }
    }

    /// The wait before retry `failures` (1 for the first failure): the interval doubled
    /// per failure, at most `max_backoff`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.interval
            .saturating_mul(factor)
            .min(self.max_backoff.max(self.interval))
    }
}

#[cfg(feature = "runtime")]
pub mod runtime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let schedule = Schedule {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (1..=6).map(|n| schedule.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(schedule.backoff(200).as_secs(), 10);
    }

    #[test]
    fn only_a_down_or_stopped_source_has_a_problem() {
        assert_eq!(SourceHealth::Starting.problem(), None);
        assert_eq!(SourceHealth::Up { since_unix_ms: 1 }.problem(), None);
        let down = SourceHealth::Down {
            reason: "connection refused".into(),
            since_unix_ms: 1,
            retry_at_unix_ms: 2,
        };
        assert_eq!(down.problem().as_deref(), Some("connection refused"));
    }
}
