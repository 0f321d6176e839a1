//! Alerts: every target is an alert rule. Pure and clock-free like the optimizer (callers
//! pass `now`), so every transition is unit-tested.
//!
//! ```text
//!   Ok ──breached──▶ Pending ──breached for `for`──▶ Firing ──clear for keep_firing_for──▶ Ok
//!    ▲                  │                              │            (sends "resolved")
//!    └──not breached────┘                              └──not clear: stays Firing
//! ```
//!
//! Two thresholds make the hysteresis: "breached" is the card's (beyond the target and its
//! tolerance band), "clear" is back past the target by `resolve_margin_pct` of its value.
//! A value wobbling between the two moves nothing, so it sends nothing. Pending never
//! notifies; a gap (no data) holds every timer.
//!
//! Also here: the pure parts of routing (resource globs, quiet hours) and the delivery
//! backoff, so the notifier only does I/O.

use serde::{Deserialize, Serialize};

use crate::model::{format_duration, format_value, Comparator, MetricKind, ResourceType, Target};
use crate::optimizer::Condition;

/// How an alert resolves. One policy for every target (the `[alerts]` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertPolicy {
    /// A firing alert resolves only when the value is back past the target by this share
    /// of the target value (%).
    pub resolve_margin_pct: f64,
    /// …and has stayed there this long.
    pub keep_firing_for_secs: u32,
    /// A forecast alert fires once the time-to-breach has said "breaches within
    /// `forecast_horizon_secs`" for this long ([`ForecastAlert`]).
    #[serde(default = "default_forecast_for_secs")]
    pub forecast_for_secs: u32,
    /// Only crossings predicted this soon alert.
    #[serde(default = "default_forecast_horizon_secs")]
    pub forecast_horizon_secs: u32,
}

fn default_forecast_for_secs() -> u32 {
    1800
}

fn default_forecast_horizon_secs() -> u32 {
    86_400
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            resolve_margin_pct: 5.0,
            keep_firing_for_secs: 0,
            forecast_for_secs: default_forecast_for_secs(),
            forecast_horizon_secs: default_forecast_horizon_secs(),
        }
    }
}

impl AlertPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.resolve_margin_pct) || self.resolve_margin_pct.is_nan() {
            return Err("resolve_margin_pct must be between 0 and 100".into());
        }
        if self.keep_firing_for_secs > 86_400 {
            return Err("keep_firing_for must be at most 24 h".into());
        }
        if self.forecast_for_secs > 86_400 {
            return Err("forecast_for_secs must be at most 24 h".into());
        }
        if !(60..=7 * 86_400).contains(&self.forecast_horizon_secs) {
            return Err("forecast_horizon_secs must be between 60 s and 7 days".into());
        }
        Ok(())
    }

    /// True when `observed` is back past the target by the margin.
    pub fn is_clear(&self, target: &Target, observed: f64) -> bool {
        let margin = target.value.abs() * self.resolve_margin_pct / 100.0;
        match target.comparator {
            Comparator::Le => observed <= target.value - margin,
            Comparator::Ge => observed >= target.value + margin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertPhase {
    Ok,
    Pending,
    Firing,
}

impl AlertPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertPhase::Ok => "ok",
            AlertPhase::Pending => "pending",
            AlertPhase::Firing => "firing",
        }
    }
}

/// What a transition tells the notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlertChange {
    Fired {
        started_ms: i64,
        value: f64,
        summary: String,
    },
    Resolved {
        started_ms: i64,
        ended_ms: i64,
        summary: String,
    },
}

/// The alert of one resource's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    phase: AlertPhase,
    breach_since_ms: Option<i64>,
    clear_since_ms: Option<i64>,
    /// When the current firing episode started (its identity).
    started_ms: Option<i64>,
    last_value: Option<f64>,
}

impl Default for Alert {
    fn default() -> Self {
        Alert::new()
    }
}

impl Alert {
    pub fn new() -> Alert {
        Alert {
            phase: AlertPhase::Ok,
            breach_since_ms: None,
            clear_since_ms: None,
            started_ms: None,
            last_value: None,
        }
    }

    /// An alert that was firing when perfpilot stopped: it continues (and resolves) as
    /// the same episode.
    pub fn firing_since(started_ms: i64) -> Alert {
        Alert {
            phase: AlertPhase::Firing,
            started_ms: Some(started_ms),
            ..Alert::new()
        }
    }

    pub fn phase(&self) -> AlertPhase {
        self.phase
    }

    pub fn started_ms(&self) -> Option<i64> {
        self.started_ms
    }

    /// Since when the breach has lasted (pending or firing).
    pub fn breach_since_ms(&self) -> Option<i64> {
        self.breach_since_ms
    }

    pub fn last_value(&self) -> Option<f64> {
        self.last_value
    }

    /// Feeds one analysis of the target's window (`observed` and its `condition`, as the
    /// optimizer's analyzer computed them).
    pub fn observe(
        &mut self,
        now_ms: i64,
        observed: Option<f64>,
        condition: Condition,
        target: &Target,
        kind: MetricKind,
        policy: &AlertPolicy,
    ) -> Option<AlertChange> {
        let value = match (observed, condition) {
            (Some(v), c) if c != Condition::NoData => v,
            // A gap neither confirms nor denies.
            _ => return None,
        };
        self.last_value = Some(value);
        let breached = condition == Condition::Breached;
        match self.phase {
            AlertPhase::Ok | AlertPhase::Pending => {
                if !breached {
                    self.phase = AlertPhase::Ok;
                    self.breach_since_ms = None;
                    return None;
                }
                let since = *self.breach_since_ms.get_or_insert(now_ms);
                let held = held_secs(since, now_ms);
                if held < target.for_secs {
                    self.phase = AlertPhase::Pending;
                    return None;
                }
                self.phase = AlertPhase::Firing;
                self.clear_since_ms = None;
                self.started_ms = Some(now_ms);
                Some(AlertChange::Fired {
                    started_ms: now_ms,
                    value,
                    summary: breach_summary(target, kind, value, held),
                })
            }
            AlertPhase::Firing => {
                if !policy.is_clear(target, value) {
                    self.clear_since_ms = None;
                    return None;
                }
                let since = *self.clear_since_ms.get_or_insert(now_ms);
                if held_secs(since, now_ms) < policy.keep_firing_for_secs {
                    return None;
                }
                let started_ms = self.started_ms.unwrap_or(now_ms);
                *self = Alert {
                    last_value: Some(value),
                    ..Alert::new()
                };
                Some(AlertChange::Resolved {
                    started_ms,
                    ended_ms: now_ms,
                    summary: format!(
                        "resolved: {} {} {} target {}",
                        target.statistic.as_str(),
                        format_value(value, kind),
                        target.comparator.symbol(),
                        format_value(target.value, kind)
                    ),
                })
            }
        }
    }

    /// The target (or the resource) is gone: a firing alert resolves, saying why.
    pub fn withdraw(&mut self, now_ms: i64, why: &str) -> Option<AlertChange> {
        let was = std::mem::take(self);
        match was.phase {
            AlertPhase::Firing => Some(AlertChange::Resolved {
                started_ms: was.started_ms.unwrap_or(now_ms),
                ended_ms: now_ms,
                summary: format!("resolved: {why}"),
            }),
            _ => None,
        }
    }

    /// "breaching for 2 m 40 s of 5 m" while pending.
    pub fn pending_for(&self, now_ms: i64, target: &Target) -> Option<String> {
        if self.phase != AlertPhase::Pending {
            return None;
        }
        let since = self.breach_since_ms?;
        Some(format!(
            "breaching for {} of {}",
            format_duration(held_secs(since, now_ms)),
            format_duration(target.for_secs)
        ))
    }
}

fn held_secs(since: i64, now: i64) -> u32 {
    u32::try_from((now - since).max(0) / 1000).unwrap_or(u32::MAX)
}

fn breach_summary(target: &Target, kind: MetricKind, value: f64, held: u32) -> String {
    let op = match target.comparator {
        Comparator::Le => ">",
        Comparator::Ge => "<",
    };
    format!(
        "{} {} {op} target {} for {}",
        target.statistic.as_str(),
        format_value(value, kind),
        format_value(target.value, kind),
        format_duration(held)
    )
}

/// A target's forecast alert: its time-to-breach said "breaches within the horizon" at
/// every refit for `forecast_for_secs`, so it is told once (to channels that asked for
/// forecasts); it ends, saying nothing, when a refit no longer predicts that. A forecast
/// that flickers never fires, as a pending alert that recovers never does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForecastAlert {
    /// Since when every refit predicted a crossing within the horizon.
    since_ms: Option<i64>,
    fired: bool,
}

/// What one refit did to a forecast alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastChange {
    /// Held for its `for`: tell the channels, once.
    Fired { since_ms: i64 },
    /// A fired forecast no longer predicts a crossing within the horizon.
    Ended,
}

impl ForecastAlert {
    /// One refit at `now_ms`: `eta_secs` until the predicted crossing, if any.
    pub fn observe(
        &mut self,
        now_ms: i64,
        eta_secs: Option<u64>,
        policy: &AlertPolicy,
    ) -> Option<ForecastChange> {
        let soon = eta_secs.is_some_and(|eta| eta <= u64::from(policy.forecast_horizon_secs));
        if !soon {
            let ended = self.fired;
            *self = ForecastAlert::default();
            return ended.then_some(ForecastChange::Ended);
        }
        let since_ms = *self.since_ms.get_or_insert(now_ms);
        if self.fired || held_secs(since_ms, now_ms) < policy.forecast_for_secs {
            return None;
        }
        self.fired = true;
        Some(ForecastChange::Fired { since_ms })
    }

    /// Since when it has fired, if it has.
    pub fn fired_since(&self) -> Option<i64> {
        self.since_ms.filter(|_| self.fired)
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Firing,
    Resolved,
    /// An optimizer outcome (applied, verified, rolled back).
    Outcome,
    /// The "send test" button.
    Test,
    /// A scheduled performance report.
    Report,
    /// A target predicted to breach soon ([`ForecastAlert`]).
    Forecast,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Firing => "firing",
            NotificationKind::Resolved => "resolved",
            NotificationKind::Outcome => "outcome",
            NotificationKind::Test => "test",
            NotificationKind::Report => "report",
            NotificationKind::Forecast => "forecast",
        }
    }
}

/// One notification as every channel renders it (webhook JSON, Slack text, an
/// Alertmanager alert). Stored in the outbox as it was decided, so a retry sends the
/// same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: the same notification always has the same key, so a receiver can
    /// drop a repeat delivery (after a crash between its answer and our bookkeeping).
    pub key: String,
    pub kind: NotificationKind,
    pub resource: String,
    #[serde(default)]
    pub resource_name: String,
    /// The type's word (`cpu`, …, `custom`; see [`Notification::type_word`]); the id is
    /// `resource`.
    #[serde(default)]
    pub resource_type: String,
    /// The configured group of a database or cache; channels send
    /// [`Notification::group_or_resource`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default)]
    pub metric: String,
    /// In words: "mean 90 % > target 65 % for 5 m".
    pub summary: String,
    /// The target, described ("p95 utilization ≤ 65 % for 5 m").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When the alert started firing (its identity with the resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// The resource page (under `--public-url` when it is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When perfpilot decided to send it.
    pub at_ms: i64,
}

impl Notification {
    /// The resource's type word (`cpu`, …, `custom`), never a custom resource's id: a
    /// notification stored before types were words said `custom:42`.
    pub fn type_word(&self) -> &str {
        match self.resource_type.parse::<ResourceType>() {
            Ok(t) => t.kind(),
            Err(_) => self.resource_type.as_str(),
        }
    }

    /// The resource's group, or its own id when it has none (a group of one): always
    /// something, so Alertmanager (which drops empty labels) can group on it.
    pub fn group_or_resource(&self) -> &str {
        self.group
            .as_deref()
            .filter(|g| !g.is_empty())
            .unwrap_or(self.resource.as_str())
    }
}

/// A `*`-glob over a resource id (`cache:*`, `disk:/*`, `*`): `*` matches any run of
/// characters, everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Daily quiet hours in UTC, `22:00-07:00` (may span midnight): notifications due inside
/// are held and released at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Minutes after midnight UTC.
    pub start_min: u32,
    pub end_min: u32,
}

const DAY_MS: i64 = 86_400_000;

impl QuietHours {
    pub fn parse(text: &str) -> Result<QuietHours, String> {
        let rule = "quiet hours are `HH:MM-HH:MM` in UTC, e.g. `22:00-07:00`";
        let (start, end) = text.trim().split_once('-').ok_or(rule)?;
        let minute = |s: &str| -> Result<u32, String> {
            let (h, m) = s.trim().split_once(':').ok_or(rule)?;
            let h: u32 = h.parse().map_err(|_| rule)?;
            let m: u32 = m.parse().map_err(|_| rule)?;
            if h > 23 || m > 59 {
                return Err(rule.into());
            }
            Ok(h * 60 + m)
        };
        let (start_min, end_min) = (minute(start)?, minute(end)?);
        if start_min == end_min {
            return Err("quiet hours must not start and end at the same minute".into());
        }
        Ok(QuietHours { start_min, end_min })
    }

    /// When a notification due at `now_ms` may go: `now_ms` outside quiet hours, else the
    /// end of this quiet period.
    pub fn release_at(&self, now_ms: i64) -> i64 {
        let day_start = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let minute = (now_ms - day_start) / 60_000;
        let (start, end) = (i64::from(self.start_min), i64::from(self.end_min));
        let end_today = day_start + end * 60_000;
        if start < end {
            if (start..end).contains(&minute) {
                return end_today;
            }
        } else if minute >= start {
            return end_today + DAY_MS;
        } else if minute < end {
            return end_today;
        }
        now_ms
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} UTC",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

/// Delay before retry `attempt` (1-based) of a failed delivery: 1 s doubling to 5 m.
pub fn retry_delay_ms(attempt: u32) -> i64 {
    1000i64
        .saturating_mul(1 << attempt.saturating_sub(1).min(9))
        .min(300_000)
}

#[cfg(test)]
mod tests;
