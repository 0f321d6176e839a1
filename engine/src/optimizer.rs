//! Analyze and Verify of the seed's Collect → Analyze → Optimize → Verify loop.
//!
//! Everything here is pure and clock-free (callers pass `now`), so each status transition
//! is unit-tested and the analyze tick stays cheap (no allocation per resource once the
//! [`Analyzer`]'s scratch buffer has grown). Executing actions lives in `actions`.
//!
//! Status state machine of one resource ([`Tracker`]):
//!
//! ```text
//!  (not evaluated) ──met/dead-band──▶ Optimized ──breached for `for`──▶ NotOptimized
//!        │                              ▲   ▲                              │   ▲
//!        └──breached for `for`──────────┼───┼──────────────────────────────┘   │
//!                                       │   └─met for stabilization── NotOptimized/Failed
//!  NotOptimized/Failed ──action started──▶ Optimizing ──verify: target met──▶ Optimized
//!                                          Optimizing ──verify: not met / error──▶ Failed
//!  any ──target or settings edited──▶ (not evaluated)
//! ```
//!
//! Flapping is prevented three ways: a dead-band (default 10 % of the target value) where
//! the status holds, the target's `for` duration before a breach counts, and a
//! stabilization window a recovery must last before it counts.

use serde::{Deserialize, Serialize};

use crate::model::{
    format_duration, format_value, Comparator, MetricKind, OptimizationStatus, ResourceSettings,
    StatusReport, Target,
};
use crate::stats::{self, SampleValue, WindowStats};

/// Below this share of real samples in the window no decision is taken: a collector
/// hiccup must not read as recovery or breach.
pub const MIN_COVERAGE: f64 = 0.5;

/// Where the observed statistic stands against the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Target met.
    Met,
    /// Beyond the target but inside the tolerance band: the status holds.
    DeadBand,
    /// Beyond target and band.
    Breached,
    /// Too few samples in the window to decide.
    NoData,
}

/// The outcome of analyzing one resource's window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The target's statistic over the window.
    pub observed: Option<f64>,
    /// Share of non-gap samples in the window, 0–1.
    pub coverage: f64,
    pub condition: Condition,
}

/// "not enough data yet (12 of 60 s)": why a window of `window_secs` with this
/// `coverage` (an [`Observation`]'s) decided nothing — at least [`MIN_COVERAGE`] of it
/// must hold samples. Every surface says it in these words: the status before its first
/// verdict, the backtest when no window of the range could be judged.
pub fn not_enough_data(coverage: f64, window_secs: u32) -> String {
    let have = (coverage.clamp(0.0, 1.0) * f64::from(window_secs)).round() as u32;
    format!("not enough data yet ({have} of {window_secs} s)")
}

/// Reusable analyzer; keep one per loop so its scratch buffer is allocated once.
#[derive(Debug, Default)]
pub struct Analyzer {
    scratch: Vec<f64>,
}

impl Analyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Analyzes the most recent evaluation window of `samples` (oldest first, one every
    /// `settings.step_secs`) against `target`.
    pub fn observe<S: SampleValue>(
        &mut self,
        samples: &[S],
        target: &Target,
        settings: &ResourceSettings,
    ) -> Observation {
        let n = settings.window_samples();
        let window = &samples[samples.len().saturating_sub(n)..];
        self.observe_window(window, n, target, settings.tolerance_pct)
    }

    /// The rule itself, on a window already cut: coverage is the share of `window_len`
    /// slots that hold a sample (below [`MIN_COVERAGE`] nothing is decided), the
    /// target's statistic over them, then met / inside the tolerance band / breached.
    /// [`Analyzer::observe`] (the live status, the backtest's replay) and the fleet's
    /// `judge` all come here.
    pub fn observe_window<S: SampleValue>(
        &mut self,
        window: &[S],
        window_len: usize,
        target: &Target,
        tolerance_pct: f64,
    ) -> Observation {
        let n = window_len.max(1);
        let present = window.iter().filter(|s| s.value().is_some()).count();
        let coverage = present as f64 / n as f64;
        if present == 0 || coverage < MIN_COVERAGE {
            return Observation {
                observed: None,
                coverage,
                condition: Condition::NoData,
            };
        }
        let observed = stats::statistic(window, target.statistic, &mut self.scratch);
        let condition = match observed {
            None => Condition::NoData,
            Some(v) if target.is_met(v) => Condition::Met,
            Some(v) if target.is_breached(v, tolerance_pct) => Condition::Breached,
            Some(_) => Condition::DeadBand,
        };
        Observation {
            observed,
            coverage,
            condition,
        }
    }
}

/// One status change with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: OptimizationStatus,
    pub to: OptimizationStatus,
    pub reason: String,
    pub at_unix_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct InFlight {
    started_ms: i64,
    verify_at_ms: i64,
}

/// The status state machine of one resource (see the module header). Serializable so the
/// server can persist it across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    status: OptimizationStatus,
    reason: String,
    since_ms: i64,
    evaluated: bool,
    breach_since_ms: Option<i64>,
    met_since_ms: Option<i64>,
    in_flight: Option<InFlight>,
    last_action_ms: Option<i64>,
    /// The statistic of the latest observation with data (for the pending line).
    last_observed: Option<f64>,
    /// The statistic of the latest observation, `None` when its window was too thin: what
    /// the status shows as judged.
    #[serde(default)]
    judged: Option<f64>,
}

fn secs_ms(secs: u32) -> i64 {
    i64::from(secs) * 1000
}

fn held_secs(since: i64, now: i64) -> u32 {
    u32::try_from((now - since).max(0) / 1000).unwrap_or(u32::MAX)
}

impl Tracker {
    pub fn new(now_ms: i64) -> Self {
        Tracker {
            status: OptimizationStatus::NotOptimized,
            reason: "not evaluated yet".into(),
            since_ms: now_ms,
            evaluated: false,
            breach_since_ms: None,
            met_since_ms: None,
            in_flight: None,
            last_action_ms: None,
            last_observed: None,
            judged: None,
        }
    }

    pub fn status(&self) -> OptimizationStatus {
        self.status
    }

    pub fn report(&self) -> StatusReport {
        StatusReport {
            status: self.status,
            reason: self.reason.clone(),
            since_unix_ms: self.since_ms,
            evaluated: self.evaluated,
            pending: false,
            judged: self.judged,
            optimizer: None,
            advice: None,
            forecast: None,
            crossing: None,
            anomalies: None,
        }
    }

    /// While the target is breached but not yet for its `for` duration (and the breach has
    /// not fired): "breaching for 2 m 40 s of 5 m: p95 72.0 % > target 65 %".
    pub fn pending(&self, now_ms: i64, target: &Target, kind: MetricKind) -> Option<String> {
        let since = self.breach_since_ms?;
        let held = held_secs(since, now_ms);
        let fired_from = !self.evaluated || self.status == OptimizationStatus::Optimized;
        if held >= target.for_secs || !fired_from || target.for_secs == 0 {
            return None;
        }
        let op = match target.comparator {
            Comparator::Le => ">",
            Comparator::Ge => "<",
        };
        Some(format!(
            "breaching for {} of {}: {} {} {op} target {}",
            format_duration(held),
            format_duration(target.for_secs),
            target.statistic.as_str(),
            format_value(self.last_observed?, kind),
            format_value(target.value, kind)
        ))
    }

    fn go(&mut self, now_ms: i64, to: OptimizationStatus, reason: String) -> Transition {
        let from = self.status;
        self.status = to;
        self.reason.clone_from(&reason);
        self.since_ms = now_ms;
        self.evaluated = true;
        Transition {
            from,
            to,
            reason,
            at_unix_ms: now_ms,
        }
    }

    /// Feeds one analysis. Returns the transition it caused, if any. While an action's
    /// verify window runs (Optimizing) only [`Tracker::verified`] decides.
    pub fn observe(
        &mut self,
        now_ms: i64,
        obs: &Observation,
        target: &Target,
        kind: MetricKind,
        settings: &ResourceSettings,
    ) -> Option<Transition> {
        self.judged = obs.observed;
        let Some(observed) = obs.observed else {
            // A window too thin to judge holds every timer (below). Before the first
            // verdict the reason says why there is none yet, in the backtest's words.
            if !self.evaluated {
                let why = not_enough_data(obs.coverage, settings.window_secs);
                if self.reason != why {
                    self.reason = why;
                }
            }
            return None;
        };
        self.last_observed = Some(observed);
        match obs.condition {
            // A gap neither confirms nor denies: hold every timer.
            Condition::NoData => return None,
            Condition::Breached => {
                self.met_since_ms = None;
                self.breach_since_ms.get_or_insert(now_ms);
            }
            Condition::Met => {
                self.breach_since_ms = None;
                self.met_since_ms.get_or_insert(now_ms);
            }
            Condition::DeadBand => {
                self.breach_since_ms = None;
                self.met_since_ms = None;
            }
        }
        if self.status == OptimizationStatus::Optimizing {
            return None;
        }
        let value = |v: f64| format_value(v, kind);
        let stat = target.statistic.as_str();
        if let Some(since) = self.breach_since_ms {
            let held = held_secs(since, now_ms);
            let confirmed = held >= target.for_secs;
            let breached_from = !self.evaluated || self.status == OptimizationStatus::Optimized;
            if confirmed && breached_from {
                let op = match target.comparator {
                    Comparator::Le => ">",
                    Comparator::Ge => "<",
                };
                let reason = format!(
                    "{stat} {} {op} target {} for {}",
                    value(observed),
                    value(target.value),
                    format_duration(held)
                );
                return Some(self.go(now_ms, OptimizationStatus::NotOptimized, reason));
            }
            return None;
        }
        // Built only on a transition: the steady state must not allocate (1,000 resources
        // per tick).
        let ok = || {
            format!(
                "{stat} {} {} target {}",
                value(observed),
                target.comparator.symbol(),
                value(target.value)
            )
        };
        if !self.evaluated {
            // First verdict: no history to flap against, so a met or in-band value counts now.
            let reason = match obs.condition {
                Condition::Met => ok(),
                // Past the target as written: say so, and where breaches start.
                _ => {
                    let past = match target.comparator {
                        Comparator::Le => ">",
                        Comparator::Ge => "<",
                    };
                    let band = target
                        .band_text(kind, settings.tolerance_pct)
                        .map(|b| format!(" ({b})"))
                        .unwrap_or_default();
                    format!(
                        "{stat} {} {past} target {}, within the tolerance band{band}",
                        value(observed),
                        value(target.value)
                    )
                }
            };
            return Some(self.go(now_ms, OptimizationStatus::Optimized, reason));
        }
        if matches!(
            self.status,
            OptimizationStatus::NotOptimized | OptimizationStatus::Failed
        ) {
            if let Some(since) = self.met_since_ms {
                let held = held_secs(since, now_ms);
                if held >= settings.stabilization_secs {
                    let reason = format!("recovered: {} for {}", ok(), format_duration(held));
                    return Some(self.go(now_ms, OptimizationStatus::Optimized, reason));
                }
            }
        }
        None
    }

    /// True when the configured action should run now: the breach is confirmed, nothing is
    /// in flight, the cooldown has passed and the action does something (recommendations
    /// alone do not change the resource, so they never move it to Optimizing).
    pub fn should_act(&self, now_ms: i64, target: &Target, settings: &ResourceSettings) -> bool {
        let breaching = self.evaluated
            && matches!(
                self.status,
                OptimizationStatus::NotOptimized | OptimizationStatus::Failed
            )
            && self
                .breach_since_ms
                .is_some_and(|s| held_secs(s, now_ms) >= target.for_secs);
        let cooled = self
            .last_action_ms
            .is_none_or(|t| now_ms - t >= secs_ms(settings.cooldown_secs));
        breaching
            && cooled
            && self.in_flight.is_none()
            && !matches!(settings.action, crate::model::ActionConfig::Recommend)
    }

    /// Cooldown bookkeeping for actions that did not move the status (dry runs).
    pub fn note_action(&mut self, now_ms: i64) {
        self.last_action_ms = Some(now_ms);
    }

    /// An action was applied: the verify window starts.
    pub fn action_started(
        &mut self,
        now_ms: i64,
        action: &str,
        settings: &ResourceSettings,
    ) -> Transition {
        self.last_action_ms = Some(now_ms);
        self.in_flight = Some(InFlight {
            started_ms: now_ms,
            verify_at_ms: now_ms + secs_ms(settings.verify_secs),
        });
        let reason = format!(
            "{action} applied; verifying for {}",
            format_duration(settings.verify_secs)
        );
        self.go(now_ms, OptimizationStatus::Optimizing, reason)
    }

    /// The action errored: no verify window, straight to Failed.
    pub fn action_failed(&mut self, now_ms: i64, action: &str, error: &str) -> Transition {
        self.in_flight = None;
        self.go(
            now_ms,
            OptimizationStatus::Failed,
            format!("{action} failed: {error}"),
        )
    }

    /// When the running action's verify window ends, if one is running.
    pub fn verify_at(&self) -> Option<i64> {
        self.in_flight.map(|f| f.verify_at_ms)
    }

    /// When the running action started (the event time of its before/after).
    pub fn action_started_at(&self) -> Option<i64> {
        self.in_flight.map(|f| f.started_ms)
    }

    /// Ends the verify window with its before/after verdict.
    pub fn verified(&mut self, now_ms: i64, result: &BeforeAfter) -> Option<Transition> {
        self.in_flight.take()?;
        // Whatever happened during the window, recovery/breach timing restarts from here.
        self.breach_since_ms = None;
        self.met_since_ms = None;
        let to = if result.target_met {
            OptimizationStatus::Optimized
        } else {
            OptimizationStatus::Failed
        };
        Some(self.go(now_ms, to, result.reason.clone()))
    }

    /// The action was undone (its verification failed or a guardrail tripped): Failed,
    /// with why and whether the rollback read back the prior state.
    pub fn rolled_back(&mut self, now_ms: i64, reason: &str, restored: bool) -> Transition {
        self.in_flight = None;
        self.breach_since_ms = None;
        self.met_since_ms = None;
        let reason = if restored {
            format!("rolled back: {reason}")
        } else {
            format!("rollback did not restore the prior state after: {reason}")
        };
        self.go(now_ms, OptimizationStatus::Failed, reason)
    }

    /// The optimizer gave up on this resource until a person looks (rollbacks in a row):
    /// Failed, saying so and why.
    pub fn needs_attention(&mut self, now_ms: i64, why: &str) -> Transition {
        self.in_flight = None;
        self.go(
            now_ms,
            OptimizationStatus::Failed,
            format!("needs attention: {why}"),
        )
    }

    /// The target or settings changed: forget the verdict and re-evaluate from scratch.
    pub fn reset(&mut self, now_ms: i64, why: &str) -> Transition {
        let last_action_ms = self.last_action_ms;
        let from = self.status;
        *self = Tracker::new(now_ms);
        self.reason = format!("not evaluated yet ({why})");
        self.last_action_ms = last_action_ms;
        Transition {
            from,
            to: self.status,
            reason: self.reason.clone(),
            at_unix_ms: now_ms,
        }
    }
}

/// The seed's benchmark row, computed: a baseline window before an event vs a window after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    pub before: WindowStats,
    pub after: WindowStats,
    pub target: Target,
    /// The target's statistic before and after.
    pub before_value: Option<f64>,
    pub after_value: Option<f64>,
    /// Positive = better. For ≤ targets (before−after)/before×100, for ≥ targets
    /// (after−before)/before×100; `None` without data or when before is 0.
    pub improvement_pct: Option<f64>,
    pub target_met: bool,
    pub reason: String,
}

/// Compares `before` and `after` windows against `target` (pure; wasm-safe).
pub fn before_after<S: SampleValue>(before: &[S], after: &[S], target: &Target) -> BeforeAfter {
    let (b, a) = (WindowStats::of(before), WindowStats::of(after));
    let (bv, av) = (b.get(target.statistic), a.get(target.statistic));
    let improvement_pct = match (bv, av) {
        (Some(bv), Some(av)) if bv != 0.0 => Some(match target.comparator {
            Comparator::Le => (bv - av) / bv * 100.0,
            Comparator::Ge => (av - bv) / bv * 100.0,
        }),
        _ => None,
    };
    let target_met = av.is_some_and(|v| target.is_met(v));
    let stat = target.statistic.as_str();
    let num = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), crate::model::format_number);
    let change = improvement_pct.map_or_else(String::new, |p| format!(", {:.1} % improvement", p));
    let reason = match av {
        None => "no samples in the window after the event".to_owned(),
        Some(v) => {
            let op = if target_met {
                target.comparator.symbol()
            } else {
                match target.comparator {
                    Comparator::Le => ">",
                    Comparator::Ge => "<",
                }
            };
            format!(
                "{stat} {} {op} target {} after (was {}{change})",
                num(Some(v)),
                num(Some(target.value)),
                num(bv)
            )
        }
    };
    BeforeAfter {
        before: b,
        after: a,
        target: target.clone(),
        before_value: bv,
        after_value: av,
        improvement_pct,
        target_met,
        reason,
    }
}

/// What caused a before/after record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// An optimizer action ran.
    Action { action: String, dry_run: bool },
    /// The target was edited by change `change`.
    TargetEdit { change: u64 },
    /// A manual mark, e.g. "deployed v2.3".
    Mark { label: String },
}

/// A before/after attached to its cause: what the UI lists per resource and the server
/// journals, for actions, target edits and marks alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRecord {
    pub resource: crate::model::ResourceId,
    pub at_unix_ms: i64,
    pub event: EventKind,
    pub windows: EventWindows,
    pub result: BeforeAfter,
    /// For an optimizer action: what it applied, the verifier's verdict and what became of
    /// the change. `None` for target edits and marks (and actions recorded before
    /// verdicts existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionVerdict>,
}

/// How an optimizer action's verification ended, attached to its before/after row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionVerdict {
    /// What the actuator applied, in its own words ("maxmemory 3mb → 64mb").
    pub applied: String,
    /// The verifier's rank-test verdict; `None` when a guardrail ended the change before
    /// the verify window could be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::verdict::Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::verdict::Evidence>,
    /// True when the change stayed; false when it was rolled back (or is being).
    pub kept: bool,
    /// Why it was kept or rolled back, one sentence.
    pub why: String,
    /// When the verifier decided.
    pub at_unix_ms: i64,
}

impl ComparisonRecord {
    /// Computes the record once the after window is over; `before`/`after` are the samples
    /// of `windows.before` and `windows.after`.
    pub fn compute<S: SampleValue>(
        resource: crate::model::ResourceId,
        event: EventKind,
        windows: EventWindows,
        before: &[S],
        after: &[S],
        target: &Target,
    ) -> Self {
        ComparisonRecord {
            resource,
            at_unix_ms: windows.before.1,
            event,
            windows,
            result: before_after(before, after, target),
            action: None,
        }
    }
}

/// The time ranges of an event's before/after, in unix ms, half-open `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventWindows {
    pub before: (i64, i64),
    pub after: (i64, i64),
}

impl EventWindows {
    /// Baseline = `baseline_secs` before the event; after = `verify_secs` from it.
    pub fn around(at_unix_ms: i64, settings: &ResourceSettings) -> Self {
        EventWindows {
            before: (at_unix_ms - secs_ms(settings.baseline_secs), at_unix_ms),
            after: (at_unix_ms, at_unix_ms + secs_ms(settings.verify_secs)),
        }
    }

    /// The before/after can be computed once the after window is over.
    pub fn complete_at(&self) -> i64 {
        self.after.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActionConfig, Statistic, WebhookAction};

    fn cpu_target() -> Target {
        Target {
            metric: "utilization".into(),
            comparator: Comparator::Le,
            value: 65.0,
            statistic: Statistic::P95,
            for_secs: 300,
        }
    }

    fn settings() -> ResourceSettings {
        ResourceSettings {
            stabilization_secs: 60,
            cooldown_secs: 300,
            verify_secs: 120,
            ..Default::default()
        }
    }

    /// Feeds a constant observation at `t_secs` (as unix ms) through analyzer and tracker.
    fn feed(tr: &mut Tracker, t_secs: i64, value: f64) -> Option<Transition> {
        let samples = vec![Some(value); 60];
        let obs = Analyzer::new().observe(&samples, &cpu_target(), &settings());
        tr.observe(
            t_secs * 1000,
            &obs,
            &cpu_target(),
            MetricKind::Utilization,
            &settings(),
        )
    }

    /// The status carries the statistic its latest observation computed, the very number
    /// the verdict compared with the target, and none once a window is too thin to judge.
    #[test]
    fn the_report_carries_the_judged_statistic_of_the_latest_window() {
        let mut tr = Tracker::new(0);
        assert_eq!(tr.report().judged, None);
        let mut window = vec![Some(10.0); 60];
        window[59] = Some(90.0);
        window[58] = Some(90.0);
        window[57] = Some(90.0);
        let obs = Analyzer::new().observe(&window, &cpu_target(), &settings());
        let transition = tr.observe(
            1000,
            &obs,
            &cpu_target(),
            MetricKind::Utilization,
            &settings(),
        );
        assert_eq!(tr.report().judged, obs.observed);
        assert!(obs.observed.is_some_and(|p95| p95 > 10.0 && p95 < 90.0));
        assert!(transition.is_some_and(|t| t.reason.contains(&format_value(
            obs.observed.unwrap(),
            MetricKind::Utilization
        ))));
        let thin = Analyzer::new().observe(&[None::<f64>; 60], &cpu_target(), &settings());
        tr.observe(
            2000,
            &thin,
            &cpu_target(),
            MetricKind::Utilization,
            &settings(),
        );
        assert_eq!(tr.report().judged, None);
        // The verdict holds; the window's statistic is gone.
        assert!(tr.report().evaluated);
    }

    #[test]
    fn analyzer_classifies_met_dead_band_breach_and_gaps() {
        let t = cpu_target();
        let s = settings();
        let mut a = Analyzer::new();
        let obs = |a: &mut Analyzer, v: Option<f64>| a.observe(&vec![v; 60], &t, &s).condition;
        assert_eq!(obs(&mut a, Some(65.0)), Condition::Met);
        assert_eq!(
            obs(&mut a, Some(71.5)),
            Condition::DeadBand,
            "65 + 10 % is still inside the band"
        );
        assert_eq!(obs(&mut a, Some(71.6)), Condition::Breached);
        assert_eq!(obs(&mut a, None), Condition::NoData);
        let mostly_gaps: Vec<Option<f64>> = (0..60).map(|i| (i % 3 == 0).then_some(90.0)).collect();
        assert_eq!(a.observe(&mostly_gaps, &t, &s).condition, Condition::NoData);
        // Only the most recent window counts.
        let mut long = vec![Some(99.0); 500];
        long.extend(vec![Some(10.0); 60]);
        assert_eq!(a.observe(&long, &t, &s).observed, Some(10.0));
    }

    #[test]
    fn first_met_evaluation_reads_optimized() {
        let mut tr = Tracker::new(0);
        assert_eq!(tr.report().reason, "not evaluated yet");
        let t = feed(&mut tr, 1, 50.0).unwrap();
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::NotOptimized,
                OptimizationStatus::Optimized
            )
        );
        assert_eq!(t.reason, "p95 50 % ≤ target 65 %");
    }

    #[test]
    fn first_evaluation_inside_the_band_reads_optimized() {
        let mut tr = Tracker::new(0);
        let t = feed(&mut tr, 1, 70.0).unwrap();
        assert_eq!(t.to, OptimizationStatus::Optimized);
        // Never read as plainly within target: past it, inside the band, and where the
        // band ends.
        assert_eq!(
            t.reason,
            "p95 70 % > target 65 %, within the tolerance band (breaches above 71.5 %)"
        );
    }

    #[test]
    fn too_thin_a_window_says_how_much_data_there_is_before_the_first_verdict() {
        let mut tr = Tracker::new(0);
        let thin: Vec<Option<f64>> = (0..60).map(|i| (i >= 48).then_some(90.0)).collect();
        let obs = Analyzer::new().observe(&thin, &cpu_target(), &settings());
        assert_eq!(obs.condition, Condition::NoData);
        let kind = MetricKind::Utilization;
        assert_eq!(tr.observe(0, &obs, &cpu_target(), kind, &settings()), None);
        assert_eq!(tr.report().reason, "not enough data yet (12 of 60 s)");
        assert_eq!(tr.report().reason, not_enough_data(obs.coverage, 60));
        assert!(!tr.report().evaluated);
        // After a verdict a gap holds it, reason and all.
        feed(&mut tr, 1, 50.0).unwrap();
        let before = tr.report().reason;
        tr.observe(2000, &obs, &cpu_target(), kind, &settings());
        assert_eq!(tr.report().reason, before);
    }

    #[test]
    fn first_breach_waits_for_the_for_duration() {
        let mut tr = Tracker::new(0);
        assert_eq!(feed(&mut tr, 0, 90.0), None);
        assert_eq!(feed(&mut tr, 299, 90.0), None);
        let t = feed(&mut tr, 300, 90.0).unwrap();
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::NotOptimized,
                OptimizationStatus::NotOptimized
            )
        );
        assert_eq!(t.reason, "p95 90 % > target 65 % for 5 m");
    }

    #[test]
    fn optimized_to_not_optimized_after_a_sustained_breach_only() {
        let mut tr = Tracker::new(0);
        feed(&mut tr, 0, 50.0).unwrap();
        assert_eq!(feed(&mut tr, 10, 72.1), None);
        assert_eq!(feed(&mut tr, 200, 72.1), None);
        // A dip into the dead band resets `for`.
        assert_eq!(feed(&mut tr, 250, 70.0), None);
        assert_eq!(feed(&mut tr, 260, 72.1), None);
        assert_eq!(feed(&mut tr, 559, 72.1), None);
        let t = feed(&mut tr, 560, 72.1).unwrap();
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::Optimized,
                OptimizationStatus::NotOptimized
            )
        );
        assert_eq!(t.reason, "p95 72.1 % > target 65 % for 5 m");
        assert_eq!(tr.report().since_unix_ms, 560_000);
    }

    #[test]
    fn gaps_hold_the_status_and_the_timers() {
        let mut tr = Tracker::new(0);
        feed(&mut tr, 0, 50.0).unwrap();
        assert_eq!(feed(&mut tr, 10, 90.0), None);
        let gap = Analyzer::new().observe(&[None::<f64>; 60], &cpu_target(), &settings());
        assert_eq!(
            tr.observe(
                100_000,
                &gap,
                &cpu_target(),
                MetricKind::Utilization,
                &settings()
            ),
            None
        );
        assert_eq!(tr.status(), OptimizationStatus::Optimized);
        assert_eq!(
            feed(&mut tr, 310, 90.0).unwrap().to,
            OptimizationStatus::NotOptimized
        );
    }

    fn breached() -> Tracker {
        let mut tr = Tracker::new(0);
        feed(&mut tr, 0, 90.0);
        feed(&mut tr, 300, 90.0).unwrap();
        tr
    }

    #[test]
    fn not_optimized_recovers_only_after_stabilization() {
        let mut tr = breached();
        assert_eq!(feed(&mut tr, 400, 60.0), None);
        assert_eq!(
            feed(&mut tr, 430, 70.0),
            None,
            "dead band: holds and restarts the stabilization clock"
        );
        assert_eq!(feed(&mut tr, 440, 60.0), None);
        assert_eq!(feed(&mut tr, 499, 60.0), None);
        let t = feed(&mut tr, 500, 60.0).unwrap();
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::NotOptimized,
                OptimizationStatus::Optimized
            )
        );
        assert_eq!(t.reason, "recovered: p95 60 % ≤ target 65 % for 1 m");
    }

    fn webhook_settings() -> ResourceSettings {
        ResourceSettings {
            action: ActionConfig::Webhook(WebhookAction {
                url: "http://hook/".into(),
                timeout_ms: 1000,
                max_retries: 0,
                secret: None,
                rollback_url: None,
            }),
            dry_run: false,
            ..settings()
        }
    }

    #[test]
    fn recommend_only_never_acts_but_webhooks_do() {
        let tr = breached();
        assert!(!tr.should_act(300_000, &cpu_target(), &settings()));
        assert!(tr.should_act(300_000, &cpu_target(), &webhook_settings()));
        assert!(
            !Tracker::new(0).should_act(300_000, &cpu_target(), &webhook_settings()),
            "not evaluated yet"
        );
    }

    #[test]
    fn not_optimized_to_optimizing_to_optimized_when_verified() {
        let mut tr = breached();
        let s = webhook_settings();
        let t = tr.action_started(300_000, "webhook", &s);
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::NotOptimized,
                OptimizationStatus::Optimizing
            )
        );
        assert_eq!(t.reason, "webhook applied; verifying for 2 m");
        assert_eq!(tr.verify_at(), Some(420_000));
        assert!(!tr.should_act(310_000, &cpu_target(), &s), "in flight");
        assert_eq!(
            feed(&mut tr, 330, 50.0),
            None,
            "only the verify decides while optimizing"
        );
        let ba = before_after(&[85.0; 60], &[60.0; 60], &cpu_target());
        let t = tr.verified(420_000, &ba).unwrap();
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::Optimizing,
                OptimizationStatus::Optimized
            )
        );
        assert_eq!(
            t.reason,
            "p95 60 ≤ target 65 after (was 85, 29.4 % improvement)"
        );
        assert_eq!(
            tr.verified(430_000, &ba),
            None,
            "nothing in flight any more"
        );
    }

    #[test]
    fn optimizing_to_failed_when_the_target_is_still_missed() {
        let mut tr = breached();
        tr.action_started(300_000, "webhook", &webhook_settings());
        let ba = before_after(&[85.0; 60], &[80.0; 60], &cpu_target());
        let t = tr.verified(420_000, &ba).unwrap();
        assert_eq!(
            (t.from, t.to),
            (OptimizationStatus::Optimizing, OptimizationStatus::Failed)
        );
        assert_eq!(
            t.reason,
            "p95 80 > target 65 after (was 85, 5.9 % improvement)"
        );
    }

    #[test]
    fn optimizing_to_failed_when_the_action_errors() {
        let mut tr = breached();
        tr.action_started(300_000, "command", &webhook_settings());
        let t = tr.action_failed(300_500, "command", "exit status 2");
        assert_eq!(
            (t.from, t.to),
            (OptimizationStatus::Optimizing, OptimizationStatus::Failed)
        );
        assert_eq!(t.reason, "command failed: exit status 2");
        assert_eq!(tr.verify_at(), None);
    }

    #[test]
    fn failed_retries_after_cooldown_and_recovers_after_stabilization() {
        let mut tr = breached();
        let s = webhook_settings();
        tr.action_started(300_000, "webhook", &s);
        tr.action_failed(301_000, "webhook", "HTTP 500");
        feed(&mut tr, 302, 90.0);
        assert!(
            !tr.should_act(500_000, &cpu_target(), &s),
            "cooldown of 5 m not over"
        );
        feed(&mut tr, 602, 90.0);
        assert!(tr.should_act(602_000, &cpu_target(), &s));
        let t = tr.action_started(602_000, "webhook", &s);
        assert_eq!(
            (t.from, t.to),
            (OptimizationStatus::Failed, OptimizationStatus::Optimizing)
        );

        let mut tr = breached();
        tr.action_started(300_000, "webhook", &s);
        tr.action_failed(301_000, "webhook", "HTTP 500");
        assert_eq!(feed(&mut tr, 310, 40.0), None);
        let t = feed(&mut tr, 370, 40.0).unwrap();
        assert_eq!(
            (t.from, t.to),
            (OptimizationStatus::Failed, OptimizationStatus::Optimized)
        );
    }

    #[test]
    fn failed_stays_failed_while_breaching() {
        let mut tr = breached();
        tr.action_started(300_000, "webhook", &webhook_settings());
        tr.action_failed(301_000, "webhook", "timeout");
        for t in (302..2000).step_by(50) {
            assert_eq!(feed(&mut tr, t, 90.0), None);
        }
        assert_eq!(tr.status(), OptimizationStatus::Failed);
    }

    #[test]
    fn reset_on_edit_forgets_the_verdict_but_keeps_the_cooldown() {
        let mut tr = breached();
        let s = webhook_settings();
        tr.action_started(300_000, "webhook", &s);
        let t = tr.reset(301_000, "target edited");
        assert_eq!(
            (t.from, t.to),
            (
                OptimizationStatus::Optimizing,
                OptimizationStatus::NotOptimized
            )
        );
        assert_eq!(t.reason, "not evaluated yet (target edited)");
        feed(&mut tr, 302, 90.0);
        feed(&mut tr, 602, 90.0).unwrap();
        assert!(!tr.should_act(550_000, &cpu_target(), &s));
    }

    #[test]
    fn greater_or_equal_targets_breach_below() {
        let t = Target {
            metric: "hit_ratio".into(),
            comparator: Comparator::Ge,
            value: 90.0,
            statistic: Statistic::Mean,
            for_secs: 0,
        };
        let s = settings();
        let mut a = Analyzer::new();
        let mut tr = Tracker::new(0);
        let o = a.observe(&[95.0; 60], &t, &s);
        assert_eq!(
            tr.observe(0, &o, &t, MetricKind::Utilization, &s)
                .unwrap()
                .to,
            OptimizationStatus::Optimized
        );
        let o = a.observe(&[80.0; 60], &t, &s);
        let tr2 = tr
            .observe(1000, &o, &t, MetricKind::Utilization, &s)
            .unwrap();
        assert_eq!(tr2.reason, "mean 80 % < target 90 % for 0 s");
    }

    #[test]
    fn a_breach_shorter_than_its_for_is_pending_and_says_how_long() {
        let t = Target {
            metric: "utilization".into(),
            comparator: Comparator::Le,
            value: 65.0,
            statistic: Statistic::Mean,
            for_secs: 300,
        };
        let s = settings();
        let mut a = Analyzer::new();
        let mut tr = Tracker::new(0);
        let kind = MetricKind::Utilization;
        tr.observe(0, &a.observe(&[10.0; 60], &t, &s), &t, kind, &s);
        assert_eq!(tr.pending(0, &t, kind), None, "met: nothing pending");
        tr.observe(10_000, &a.observe(&[100.0; 60], &t, &s), &t, kind, &s);
        assert_eq!(
            tr.pending(170_000, &t, kind).as_deref(),
            Some("breaching for 2 m 40 s of 5 m: mean 100 % > target 65 %")
        );
        assert_eq!(
            tr.report().status,
            OptimizationStatus::Optimized,
            "the verdict holds"
        );
        // Fired: the status says it; nothing is pending any more.
        let fired = tr.observe(310_000, &a.observe(&[100.0; 60], &t, &s), &t, kind, &s);
        assert_eq!(fired.unwrap().to, OptimizationStatus::NotOptimized);
        assert_eq!(tr.pending(320_000, &t, kind), None);
    }

    fn seed(before: f64, after: f64, target: f64) -> BeforeAfter {
        let t = Target {
            metric: "m".into(),
            comparator: Comparator::Le,
            value: target,
            statistic: Statistic::Mean,
            for_secs: 0,
        };
        before_after(&[before; 30], &[after; 30], &t)
    }

    #[test]
    fn seed_benchmark_rows() {
        for (name, b, a, t, pct) in [
            ("CPU", 85.0, 65.0, 65.0, 23.5),
            ("Memory", 75.0, 60.0, 60.0, 20.0),
            ("Database", 120.0, 80.0, 80.0, 33.3),
            ("Network", 70.0, 50.0, 50.0, 28.6),
        ] {
            let r = seed(b, a, t);
            let got = r.improvement_pct.unwrap();
            assert_eq!((got * 10.0).round() / 10.0, pct, "{name}: {got}");
            assert!(r.target_met, "{name}");
            assert_eq!((r.before_value, r.after_value), (Some(b), Some(a)));
        }
    }

    #[test]
    fn before_after_handles_regressions_gaps_and_ge_targets() {
        let r = seed(60.0, 75.0, 65.0);
        assert_eq!(r.improvement_pct, Some(-25.0));
        assert!(!r.target_met);
        let r = seed(0.0, 10.0, 65.0);
        assert_eq!(r.improvement_pct, None, "no percentage of zero");
        let t = Target {
            metric: "tp".into(),
            comparator: Comparator::Ge,
            value: 1000.0,
            statistic: Statistic::P95,
            for_secs: 0,
        };
        let r = before_after(&[Some(800.0), None], &[Some(1200.0), Some(f64::NAN)], &t);
        assert_eq!(r.improvement_pct, Some(50.0));
        assert!(r.target_met);
        assert_eq!(r.after.gaps, 1);
        let r = before_after::<Option<f64>>(&[Some(1.0)], &[None], &t);
        assert!(!r.target_met);
        assert_eq!(r.reason, "no samples in the window after the event");
        let r = before_after(&[1.0f32, 3.0], &[1.0, 1.0], &t);
        assert_eq!((r.before.mean, r.before.p95), (Some(2.0), Some(2.9)));
    }

    #[test]
    fn event_windows_surround_the_event() {
        let w = EventWindows::around(1_000_000, &settings());
        assert_eq!(w.before, (700_000, 1_000_000));
        assert_eq!(w.after, (1_000_000, 1_120_000));
        assert_eq!(w.complete_at(), 1_120_000);
    }

    #[test]
    fn marks_get_the_same_before_after_as_actions() {
        let w = EventWindows::around(1_000_000, &settings());
        let label = EventKind::Mark {
            label: "deployed v2.3".into(),
        };
        let t = Target {
            statistic: Statistic::Mean,
            ..cpu_target()
        };
        let id = crate::model::ResourceId::new("cpu").unwrap();
        let r = ComparisonRecord::compute(id, label, w, &[85.0f32; 300], &[65.0; 120], &t);
        assert_eq!(r.at_unix_ms, 1_000_000);
        assert!(r.result.target_met);
        assert_eq!(
            r.result.reason,
            "mean 65 ≤ target 65 after (was 85, 23.5 % improvement)"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["event"]["kind"], "mark");
        assert_eq!(json["event"]["label"], "deployed v2.3");
    }
}
