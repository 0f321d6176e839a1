//! The optimizer's hands, driven by the monitor task through the shared actuator
//! lifecycle (`engine::actuator`):
//!
//! 1. a confirmed breach (`Tracker::should_act`) runs the resource's actuator on its own
//!    task — capture → apply → read back — so the monitor keeps ticking;
//! 2. the outcome returns to the monitor task, which alone moves the tracker (in effect →
//!    Optimizing and a before/after; failed → Failed; dry run → cooldown only);
//! 3. while the change is verified, its guardrails are watched every tick on a robust
//!    level (the median of the last seconds against the baseline's median, never closer
//!    than a floor), and one held past its bound for several ticks rolls it back at once;
//! 4. when the verify window ends, a statistical verdict (`engine::verdict`: a rank test
//!    and an effect size between the baseline and the verify window after its settle
//!    period) decides: improved → kept; worse → rolled back; no change / inconclusive →
//!    as the resource's settings say. An actuator that cannot roll back leaves the change
//!    and the status says so;
//! 5. a rolled-back change is not tried again in the same breach; rollbacks in a row back
//!    off exponentially and, after `attention_after`, the resource needs a person: the
//!    optimizer stops acting on it until its alert is acknowledged or it is edited.
//!
//! Every execution and rollback, each lifecycle step at its own time, every verdict with
//! its evidence and every keep is counted for `/metrics` and written to the audit log as
//! the optimizer.

use std::collections::HashMap;

use app::audit::{AuditKind, AuditRecord};
use app::identity::Identity;
use connectors::actuators::{Actuators, Execution};
use engine::actions::{ActionEvent, ActionOutcome, ActionRequest};
use engine::actuator::{Captured, Guardrail, Journal, JournalEntry, Step};
use engine::changes::State;
use engine::history::History;
use engine::model::{
    ActionConfig, OptimizationStatus, OptimizerPhase, OptimizerState, Resource, ResourceId,
    SourceSpec,
};
use engine::optimizer::{ActionVerdict, Tracker, Transition};
use engine::series::SeriesKey;
use engine::verdict::{Sustained, Verdict, VerdictRules};
use tokio::sync::mpsc;

use crate::persist::{journal_id, OpenAction, Persist};

/// A guard series' latest sample counts for this long.
const GUARD_FRESHNESS_MS: i64 = 15_000;
/// The recent stretch of a guard series whose median is its level.
const GUARD_LEVEL_MS: i64 = 10_000;
/// Rollbacks in a row double the wait before the next try, up to this many doublings.
const MAX_BACKOFF_DOUBLINGS: u32 = 5;
/// How long a finished change's outcome (kept, rolled back, failed) stays on its card: long
/// enough to be seen by someone who looks after an alert, short enough that an old outcome
/// is not read as news.
const RECENT_MS: i64 = 10 * 60 * 1000;

/// An execution or rollback that finished, on its way back to the monitor task.
#[derive(Debug)]
pub enum Finished {
    Executed {
        request: ActionRequest,
        action: ActionConfig,
        source: Option<SourceSpec>,
        guardrails: Vec<Guardrail>,
        execution: Box<Execution>,
    },
    RolledBack {
        request: ActionRequest,
        /// The action undone, so the audit log can say what it was in words.
        action: ActionConfig,
        event: ActionEvent,
        /// Undone because the replica verifying it stopped (`Acting::recover`), not
        /// because it did not help.
        recovered: bool,
    },
}

impl Finished {
    pub fn event(&self) -> &ActionEvent {
        match self {
            Finished::Executed { execution, .. } => &execution.event,
            Finished::RolledBack { event, .. } => event,
        }
    }

    pub fn request(&self) -> &ActionRequest {
        match self {
            Finished::Executed { request, .. } | Finished::RolledBack { request, .. } => request,
        }
    }

    /// The action executed or undone.
    pub fn action(&self) -> &ActionConfig {
        match self {
            Finished::Executed { action, .. } | Finished::RolledBack { action, .. } => action,
        }
    }
}

/// A change in effect and being verified: what a rollback needs.
struct InEffect {
    request: ActionRequest,
    action: ActionConfig,
    source: Option<SourceSpec>,
    captured: Captured,
    /// What the actuator says it applied ("maxmemory 3mb → 64mb").
    applied: String,
    /// When the apply step started: the baseline ends there (capture, apply and read
    /// back may take seconds, and what they measured is already the change's).
    applied_at_ms: i64,
    /// When the verify window started and ends; kept here so a configuration change that
    /// resets the status does not end the change's guardrails and verdict.
    started_ms: i64,
    verify_at_ms: i64,
    guardrails: Vec<GuardWatch>,
}

/// One guardrail of a change in effect, with what judging it needs.
struct GuardWatch {
    guardrail: Guardrail,
    /// The series' median over the baseline window before the action.
    baseline: Option<f64>,
    /// The absolute floor of a relative bound, from the series' metric kind.
    floor: f64,
    held: Sustained,
}

/// Why the optimizer holds back on a resource after rollbacks.
#[derive(Debug, Default)]
struct Backoff {
    /// Rollbacks (and failed applies) in a row; a kept change resets it.
    failures: u32,
    last_failure_ms: i64,
    /// A rollback happened in the breach still going on: no second try until it ends.
    same_breach: bool,
    /// Set after `attention_after` failures in a row, until a person acknowledges.
    attention: Option<String>,
}

/// What verifying a change decided, for the monitor to record and announce.
#[derive(Debug)]
pub struct Verification {
    pub resource: ResourceId,
    /// When the change was applied (its before/after's event time).
    pub started_ms: i64,
    pub verdict: ActionVerdict,
    /// The tracker's transition when the change was kept; a rollback's comes when the
    /// rollback finishes.
    pub transition: Option<Transition>,
}

/// Owned by the monitor task: at most one execution or rollback per resource at a time.
pub struct Acting {
    actuators: Actuators,
    /// Executions and rollbacks running, with what each is doing.
    busy: HashMap<ResourceId, OptimizerState>,
    in_effect: HashMap<ResourceId, InEffect>,
    backoff: HashMap<ResourceId, Backoff>,
    /// The latest finished change's outcome per resource, shown for [`RECENT_MS`].
    recent: HashMap<ResourceId, OptimizerState>,
    done: mpsc::UnboundedSender<Finished>,
    /// The action journal's home: where each change ended is written there.
    persist: Persist,
}

/// The action journal in the durable store: every apply and rollback the optimizer runs
/// is written there (with what undoing it needs) and committed before it runs.
pub struct StoreJournal(pub Persist);

impl Journal for StoreJournal {
    fn before<'a>(
        &'a self,
        entry: JournalEntry<'a>,
    ) -> engine::source::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let resource = entry.request.resource.as_str();
            let id = journal_id(resource, entry.request.at_unix_ms);
            let (state, body) = match entry.step {
                Step::Apply => (
                    "applying",
                    Some(serde_json::json!({
                        "request": entry.request,
                        "action": entry.action,
                        "source": entry.source,
                        "captured": entry.captured,
                    })),
                ),
                _ => ("rolling_back", None),
            };
            self.0
                .journal_before(&id, resource, state, body)
                .await
                .map_err(|err| err.to_string())
        })
    }
}

impl Acting {
    /// Acting through `actuators`, each apply and rollback written first into the action
    /// journal of `persist`.
    pub fn new(
        actuators: Actuators,
        persist: Persist,
    ) -> (Acting, mpsc::UnboundedReceiver<Finished>) {
        let (done, finished) = mpsc::unbounded_channel();
        let acting = Acting {
            actuators: actuators.with_journal(std::sync::Arc::new(StoreJournal(persist.clone()))),
            busy: HashMap::new(),
            in_effect: HashMap::new(),
            backoff: HashMap::new(),
            recent: HashMap::new(),
            done,
            persist,
        };
        (acting, finished)
    }

    /// The actuators, for work outside the optimizer's lifecycle (a cache's warm-up: it
    /// fills the cache again and leaves no setting to undo, so it is not journaled).
    pub fn actuators(&self) -> Actuators {
        self.actuators.clone().without_journal()
    }

    /// Writes where `request`'s change ended into the action journal.
    fn mark(&self, request: &ActionRequest, state: &'static str) {
        let resource = request.resource.as_str();
        self.persist
            .journal_state(&journal_id(resource, request.at_unix_ms), resource, state);
    }

    /// Rolls back the changes the journal says were left applying, in effect or rolling
    /// back by a process that stopped or lost the lead: nobody verified them, so none
    /// stays. Each goes through the normal rollback (its outcome moves the tracker and is
    /// audited).
    pub fn recover(&mut self, open: Vec<OpenAction>, now_ms: i64) {
        for left in open {
            let body = &left.body;
            let parsed = (|| {
                Some((
                    serde_json::from_value::<ActionRequest>(body["request"].clone()).ok()?,
                    serde_json::from_value::<ActionConfig>(body["action"].clone()).ok()?,
                    serde_json::from_value::<Option<SourceSpec>>(body["source"].clone()).ok()?,
                    serde_json::from_value::<Captured>(body["captured"].clone()).ok()?,
                ))
            })();
            let Some((request, action, source, captured)) = parsed else {
                tracing::error!(id = %left.id, "An unfinished action's journal entry does not parse; left as it is");
                continue;
            };
            let id = request.resource.clone();
            if self.busy.contains_key(&id) || self.in_effect.contains_key(&id) {
                continue;
            }
            let was = match left.state.as_str() {
                "applying" => "being applied",
                "rolling_back" => "being rolled back",
                _ => "being verified",
            };
            let why = format!(
                "perfpilot stopped or lost the lead while this change was {was}; undone so that no change stays in effect unverified"
            );
            tracing::warn!(resource = %id, action = %action.describe(), %why, "Rolling back an unfinished action");
            self.busy.insert(
                id.clone(),
                OptimizerState {
                    phase: OptimizerPhase::Acting,
                    detail: format!("rolling back {} (left unverified)", action.describe()),
                    since_unix_ms: now_ms,
                    until_unix_ms: None,
                },
            );
            let actuators = self.actuators.clone();
            let done = self.done.clone();
            tokio::spawn(async move {
                let event = actuators
                    .roll_back(&request, &action, source.as_ref(), &captured, why)
                    .await;
                let _ = done.send(Finished::RolledBack {
                    request,
                    action,
                    event,
                    recovered: true,
                });
            });
        }
    }

    /// Starts `resource`'s action when its tracker says the breach calls for one and
    /// nothing is running for it already. `samples` are the evaluation window the
    /// recommendation is computed from.
    pub fn consider(
        &mut self,
        now_ms: i64,
        resource: &Resource,
        tracker: &Tracker,
        samples: &[f32],
        observed: Option<f64>,
    ) {
        let (Some(target), Some(observed)) = (&resource.target, observed) else {
            return;
        };
        if self.held_back(now_ms, resource, tracker) {
            return;
        }
        if self.busy.contains_key(&resource.id)
            || self.in_effect.contains_key(&resource.id)
            || !tracker.should_act(now_ms, target, &resource.settings)
        {
            return;
        }
        let Some(mut request) = ActionRequest::new(resource, samples, observed, now_ms) else {
            return;
        };
        // A fleet acts on its hosts: the action is told which ones are past their targets.
        if resource.fleet.is_some() {
            if let Some(fleet) = self.actuators.registries().fleets.get(resource.id.as_str()) {
                request.set_hosts(fleet.breaching_hosts(engine::actions::MAX_HOSTS));
            }
        }
        self.busy.insert(
            resource.id.clone(),
            OptimizerState {
                phase: OptimizerPhase::Acting,
                // The action in the words every surface uses ("Set Redis maxmemory to 64 MB").
                detail: resource.settings.action.describe(),
                since_unix_ms: now_ms,
                until_unix_ms: None,
            },
        );
        tracing::info!(
            resource = %resource.id,
            action = resource.settings.action.kind(),
            dry_run = request.dry_run,
            "Acting on a confirmed breach"
        );
        let actuators = self.actuators.clone();
        let action = resource.settings.action.clone();
        let source = resource.source.clone();
        let guardrails = resource.settings.guardrails.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let execution = actuators.execute(&request, &action, source.as_ref()).await;
            let _ = done.send(Finished::Executed {
                request,
                action,
                source,
                guardrails,
                execution: Box::new(execution),
            });
        });
    }

    /// The monitor has moved the tracker for `done`; another execution may start after the
    /// cooldown, and a change now in effect is remembered for its verification. A
    /// rollback or a failed apply counts against the resource: answers why it now needs a
    /// person, the first time it does.
    #[allow(clippy::too_many_lines)] // 123 lines today; split before it grows
    pub fn finished(
        &mut self,
        done: Finished,
        history: &History,
        state: &State,
        started_at: i64,
    ) -> Option<String> {
        let id = done.event().resource.clone();
        self.busy.remove(&id);
        match (&done, &done.event().outcome) {
            (_, ActionOutcome::Recommended | ActionOutcome::DryRun { .. }) => {}
            (Finished::Executed { .. }, ActionOutcome::Succeeded { .. }) => {
                self.mark(done.request(), "in_effect")
            }
            (_, ActionOutcome::RolledBack { restored: true, .. }) => {
                self.mark(done.request(), "rolled_back")
            }
            _ => self.mark(done.request(), "failed"),
        }
        let failed = matches!(
            done.event().outcome,
            ActionOutcome::RolledBack { .. } | ActionOutcome::Failed { .. }
        );
        if failed {
            let attention_after = state
                .resources
                .get(&id)
                .map_or(3, |r| r.settings.attention_after);
            let event = done.event();
            // A change that was undone is not tried again in its breach; an apply that
            // failed (nothing changed, or it was restored at once) only counts and waits.
            let (why, undone) = match &event.outcome {
                ActionOutcome::RolledBack { reason, .. } => (reason.clone(), true),
                ActionOutcome::Failed { error, rolled_back } => {
                    (error.clone(), *rolled_back == Some(true))
                }
                _ => (String::new(), false),
            };
            let applied = done
                .request()
                .verdict
                .as_ref()
                .map_or_else(|| event.action.clone(), |v| v.applied.clone());
            let (phase, detail) = match &event.outcome {
                ActionOutcome::RolledBack { restored: true, .. } => {
                    (OptimizerPhase::RolledBack, applied)
                }
                ActionOutcome::RolledBack { .. } => (
                    OptimizerPhase::Failed,
                    format!("the rollback of {applied} did not restore the prior state"),
                ),
                _ => (OptimizerPhase::Failed, why.clone()),
            };
            self.recent.insert(
                id.clone(),
                OptimizerState {
                    phase,
                    detail,
                    since_unix_ms: event.at_unix_ms,
                    until_unix_ms: None,
                },
            );
            // A change undone because its verifier stopped says nothing about whether it
            // helped: the breach may be acted on again once the cooldown has passed.
            if matches!(
                (&done, &event.outcome),
                (
                    Finished::RolledBack {
                        recovered: true,
                        ..
                    },
                    ActionOutcome::RolledBack { restored: true, .. }
                )
            ) {
                return None;
            }
            return self.failed(&id, event.at_unix_ms, &why, undone, attention_after);
        }
        let Finished::Executed {
            request,
            action,
            source,
            guardrails,
            execution,
        } = done
        else {
            return None;
        };
        let Execution {
            captured: Some(captured),
            event,
        } = *execution
        else {
            return None;
        };
        let ActionOutcome::Succeeded { detail } = &event.outcome else {
            return None;
        };
        let baseline_ms = state
            .resources
            .get(&id)
            .map_or(300_000, |r| i64::from(r.settings.baseline_secs) * 1000);
        let applied_at_ms = event
            .steps
            .iter()
            .find(|s| s.step == engine::actuator::Step::Apply && s.at_unix_ms > 0)
            .map_or(event.at_unix_ms, |s| s.at_unix_ms);
        let started = applied_at_ms;
        let guardrails = guardrails
            .into_iter()
            .map(|guardrail| {
                let (resource, metric) = guardrail.series(id.as_str());
                let samples = super::proof::window_samples(
                    history,
                    &SeriesKey::new(resource, metric),
                    (started - baseline_ms, started),
                );
                let floor = ResourceId::new(resource)
                    .ok()
                    .and_then(|rid| state.resources.get(&rid))
                    .and_then(|r| r.metric(metric))
                    .map_or(1.0, |m| engine::actuator::default_floor(m.kind));
                let held = Sustained::new(guardrail.hold());
                GuardWatch {
                    baseline: engine::verdict::robust_level(&samples),
                    guardrail,
                    floor,
                    held,
                }
            })
            .collect();
        let applied = if detail.is_empty() {
            event.action.clone()
        } else {
            detail.clone()
        };
        let verify_ms = state
            .resources
            .get(&id)
            .map_or(120_000, |r| i64::from(r.settings.verify_secs) * 1000);
        self.recent.remove(&id);
        self.in_effect.insert(
            id,
            InEffect {
                request,
                action,
                source,
                captured,
                applied,
                applied_at_ms,
                started_ms: started_at,
                verify_at_ms: started_at + verify_ms,
                guardrails,
            },
        );
        None
    }

    /// Counts a rollback or failed apply; the `attention_after`th in a row asks a person.
    fn failed(
        &mut self,
        id: &ResourceId,
        at_ms: i64,
        last: &str,
        undone: bool,
        attention_after: u32,
    ) -> Option<String> {
        let backoff = self.backoff.entry(id.clone()).or_default();
        backoff.failures += 1;
        backoff.last_failure_ms = at_ms;
        backoff.same_breach |= undone;
        if backoff.failures < attention_after.max(1) || backoff.attention.is_some() {
            return None;
        }
        let why = format!(
            "{} changes in a row did not help (the last: {last}); the optimizer stops acting on this resource until someone acknowledges its alert or edits it",
            backoff.failures
        );
        backoff.attention = Some(why.clone());
        Some(why)
    }

    /// Whether the optimizer holds back on `resource` now: a person is needed, a change
    /// was rolled back in the breach still going on, or rollbacks in a row have not yet
    /// waited out their doubling back-off. A breach that ended clears the same-breach hold.
    fn held_back(&mut self, now_ms: i64, resource: &Resource, tracker: &Tracker) -> bool {
        let Some(backoff) = self.backoff.get_mut(&resource.id) else {
            return false;
        };
        if tracker.status() == OptimizationStatus::Optimized {
            backoff.same_breach = false;
        }
        if backoff.attention.is_some() || backoff.same_breach {
            return true;
        }
        let doublings = backoff
            .failures
            .saturating_sub(1)
            .min(MAX_BACKOFF_DOUBLINGS);
        let wait = i64::from(resource.settings.cooldown_secs) * 1000 * (1i64 << doublings);
        now_ms - backoff.last_failure_ms < wait
    }

    /// Why `id` needs a person, if it does.
    pub fn attention(&self, id: &ResourceId) -> Option<&str> {
        self.backoff.get(id)?.attention.as_deref()
    }

    /// What the optimizer is doing or did lately about `id`, as of `now_ms`, for its
    /// status: an execution or rollback running, a change being verified, a person
    /// needed, or the outcome of a change that finished less than [`RECENT_MS`] ago;
    /// `None` when it has done nothing recently.
    pub fn state(&self, id: &ResourceId, now_ms: i64) -> Option<OptimizerState> {
        if let Some(running) = self.busy.get(id) {
            return Some(running.clone());
        }
        if let Some(effect) = self.in_effect.get(id) {
            return Some(OptimizerState {
                phase: OptimizerPhase::Verifying,
                detail: effect.applied.clone(),
                since_unix_ms: effect.started_ms,
                until_unix_ms: Some(effect.verify_at_ms),
            });
        }
        if let Some(backoff) = self.backoff.get(id).filter(|b| b.attention.is_some()) {
            return Some(OptimizerState {
                phase: OptimizerPhase::NeedsAttention,
                detail: format!(
                    "{} changes in a row did not help; acknowledge its alert or edit it to let the optimizer act again",
                    backoff.failures
                ),
                since_unix_ms: backoff.last_failure_ms,
                until_unix_ms: None,
            });
        }
        self.recent
            .get(id)
            .filter(|outcome| now_ms - outcome.since_unix_ms < RECENT_MS)
            .cloned()
    }

    /// A person acknowledged `id`'s alert or edited it (`None`: every resource, e.g. a
    /// restored snapshot): the optimizer may act on it again, from a clean slate.
    pub fn acknowledged(&mut self, id: Option<&ResourceId>) {
        match id {
            Some(id) => {
                self.backoff.remove(id);
            }
            None => self.backoff.clear(),
        }
    }

    /// Every evaluation of a resource with a target: while its action is verified, trips
    /// its guardrails; when the verify window ends, judges the change and keeps it or
    /// rolls it back. Answers what was decided, for the monitor to record.
    #[allow(clippy::too_many_lines)] // 133 lines today; split before it grows
    pub fn watch(
        &mut self,
        now_ms: i64,
        resource: &Resource,
        tracker: &mut Tracker,
        history: &History,
    ) -> Option<Verification> {
        let id = &resource.id;
        if self.busy.contains_key(id) {
            // A rollback is running; its outcome moves the tracker.
            return None;
        }
        let effect = self.in_effect.get(id)?;
        let Some(target) = &resource.target else {
            // No target to judge it against any more: the change stays as it is.
            if let Some(effect) = self.in_effect.remove(id) {
                self.mark(&effect.request, "kept");
            }
            return None;
        };
        // The change's own clock: a configuration change that reset the status does not
        // end its guardrails or its verdict (it is then recorded without moving the status).
        let (verify_at, started, applied_at) =
            (effect.verify_at_ms, effect.started_ms, effect.applied_at_ms);
        let applied = effect.applied.clone();
        let tracked = tracker.action_started_at() == Some(started);
        if let Some(why) = self.tripped(id, history, now_ms) {
            tracing::warn!(resource = %id, %why, "Guardrail tripped; rolling back");
            return Some(self.rolling_back(id, started, applied, None, why, now_ms));
        }
        if verify_at > now_ms {
            return None;
        }
        let key = SeriesKey::new(id.as_str(), target.metric.as_str());
        let baseline = i64::from(resource.settings.baseline_secs) * 1000;
        // The first seconds after a change show the source's lag, not the change: judged
        // from after the settle period (at most half the window, so something is left).
        let settle_secs =
            engine::verdict::settle_for(connectors::sources::settle(resource), resource)
                .min(resource.settings.verify_secs / 2);
        let judged_from = started + i64::from(settle_secs) * 1000;
        let before =
            super::proof::window_samples(history, &key, (applied_at - baseline, applied_at));
        let after = super::proof::window_samples(history, &key, (judged_from, verify_at));
        let result = engine::optimizer::before_after(&before, &after, target);
        let rules = VerdictRules {
            settle_secs,
            ..resource
                .target_kind()
                .map(VerdictRules::for_kind)
                .unwrap_or_default()
        };
        let (verdict, evidence) =
            engine::verdict::judge(&before, &after, target.comparator, &rules);
        let keep = match verdict {
            Verdict::Improved => true,
            Verdict::Worse => false,
            Verdict::NoChange => resource.settings.on_no_change.keeps(result.target_met),
            Verdict::Inconclusive => resource.settings.on_inconclusive.keeps(result.target_met),
        };
        let can_roll_back = self.in_effect.get(id).is_some_and(|effect| {
            self.actuators
                .can_roll_back(&effect.action, effect.source.as_ref())
        });
        let policy = |verdict: Verdict| match verdict {
            Verdict::NoChange => format!(
                " (settings.on_no_change = {})",
                resource.settings.on_no_change.as_str()
            ),
            Verdict::Inconclusive => format!(
                " (settings.on_inconclusive = {})",
                resource.settings.on_inconclusive.as_str()
            ),
            _ => String::new(),
        };
        if !keep && can_roll_back {
            let why = format!("verification: {}{}", evidence.reason, policy(verdict));
            tracing::warn!(resource = %id, reason = %why, "Rolling back");
            let judged = Some((verdict, evidence));
            return Some(self.rolling_back(id, started, applied, judged, why, now_ms));
        }
        let why = if keep {
            format!("kept: {}{}", evidence.reason, policy(verdict))
        } else {
            format!(
                "left in effect, as this action cannot be rolled back: {}",
                evidence.reason
            )
        };
        let effect = self.in_effect.remove(id);
        if let Some(effect) = &effect {
            self.mark(&effect.request, "kept");
        }
        let (phase, detail) = if keep {
            (OptimizerPhase::Kept, applied.clone())
        } else {
            (
                OptimizerPhase::Failed,
                format!(
                    "{applied} verified badly and stays in effect, as it cannot be rolled back"
                ),
            )
        };
        self.recent.insert(
            id.clone(),
            OptimizerState {
                phase,
                detail,
                since_unix_ms: now_ms,
                until_unix_ms: None,
            },
        );
        let mut result = result;
        result.reason = format!("{} — {}", result.reason, evidence.reason);
        if keep {
            if let Some(effect) = effect {
                self.keep(id, effect);
            }
            self.backoff.remove(id);
        } else {
            // Not made to last (no `kept` step), counted like a rollback, and the status
            // says it failed whatever the target reads.
            result.target_met = false;
            let attention_after = resource.settings.attention_after;
            if let Some(attention) = self.failed(id, now_ms, &why, true, attention_after) {
                result.reason = format!("{}; needs attention: {attention}", result.reason);
            }
        }
        let transition = if tracked {
            tracker.verified(now_ms, &result)
        } else {
            None
        };
        if let Some(transition) = &transition {
            tracing::info!(
                resource = %id,
                to = transition.to.as_str(),
                reason = %transition.reason,
                "Action verified"
            );
        }
        Some(Verification {
            resource: id.clone(),
            started_ms: started,
            verdict: ActionVerdict {
                applied,
                verdict: Some(verdict),
                evidence: Some(evidence),
                kept: true,
                why,
                at_unix_ms: now_ms,
            },
            transition,
        })
    }

    /// Starts rolling back `id`'s change (applied at `started`) for `why`; the
    /// verification to record, with the verdict and evidence when the window was judged
    /// (`None`: a guardrail ended it first).
    fn rolling_back(
        &mut self,
        id: &ResourceId,
        started: i64,
        applied: String,
        judged: Option<(Verdict, engine::verdict::Evidence)>,
        why: String,
        now_ms: i64,
    ) -> Verification {
        let (verdict, evidence) = judged.unzip();
        let verdict = ActionVerdict {
            applied,
            verdict,
            evidence,
            kept: false,
            why: why.clone(),
            at_unix_ms: now_ms,
        };
        self.roll_back(id, why, verdict.clone());
        Verification {
            resource: id.clone(),
            started_ms: started,
            verdict,
            transition: None,
        }
    }

    /// Why a guardrail of `id`'s change in effect has tripped, if one has: its series'
    /// median over the last seconds past its bound for [`Guardrail::hold`] evaluations in
    /// a row.
    fn tripped(&mut self, id: &ResourceId, history: &History, now_ms: i64) -> Option<String> {
        let effect = self.in_effect.get_mut(id)?;
        let mut tripped = None;
        for watch in &mut effect.guardrails {
            let (resource, metric) = watch.guardrail.series(id.as_str());
            let key = SeriesKey::new(resource, metric);
            let fresh = history
                .id(&key)
                .and_then(|sid| history.get(sid))
                .and_then(|series| series.latest())
                .is_some_and(|(at, value)| value.is_some() && now_ms - at <= GUARD_FRESHNESS_MS);
            if !fresh {
                // No news is not a trip, but it breaks a run.
                watch.held.reset();
                continue;
            }
            let recent =
                super::proof::window_samples(history, &key, (now_ms - GUARD_LEVEL_MS, now_ms + 1));
            let why = engine::verdict::robust_level(&recent).and_then(|level| {
                watch
                    .guardrail
                    .tripped(id.as_str(), level, watch.baseline, watch.floor)
            });
            if watch.held.observe(why.is_some()) && tripped.is_none() {
                tripped =
                    why.map(|why| format!("{why} for {} evaluations in a row", watch.held.need()));
            }
        }
        tripped
    }

    /// A change that verified well stays; its actuator may make it outlive a restart.
    fn keep(&self, id: &ResourceId, effect: InEffect) {
        let Ok(Some(actuator)) = self
            .actuators
            .for_action(&effect.action, effect.source.as_ref())
        else {
            return;
        };
        let id = id.clone();
        tokio::spawn(async move {
            match actuator.kept(&effect.request).await {
                Some(Ok(done)) => {
                    tracing::info!(resource = %id, detail = %done.detail, "Kept change persisted")
                }
                Some(Err(err)) => {
                    tracing::warn!(resource = %id, error = %err.error, "Kept change could not be persisted; it stays in effect until a restart")
                }
                None => {}
            }
        });
    }

    fn roll_back(&mut self, id: &ResourceId, why: String, verdict: ActionVerdict) {
        let Some(mut effect) = self.in_effect.remove(id) else {
            return;
        };
        self.busy.insert(
            id.clone(),
            OptimizerState {
                phase: OptimizerPhase::Acting,
                detail: format!("rolling back {}", verdict.applied),
                since_unix_ms: verdict.at_unix_ms,
                until_unix_ms: None,
            },
        );
        effect.request.verdict = Some(verdict);
        let actuators = self.actuators.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let event = actuators
                .roll_back(
                    &effect.request,
                    &effect.action,
                    effect.source.as_ref(),
                    &effect.captured,
                    why,
                )
                .await;
            let _ = done.send(Finished::RolledBack {
                request: effect.request,
                action: effect.action,
                event,
                recovered: false,
            });
        });
    }
}

/// The audit entries of one execution or rollback: one for the whole of it (what was
/// observed against which target, and what the actuator did, step by step), then one per
/// lifecycle step at the time the step started, so `since`/`until` find each where it
/// happened.
pub fn audit_entries(done: &Finished) -> Vec<AuditRecord> {
    let request = done.request();
    let ActionEvent {
        resource, outcome, ..
    } = done.event();
    // In words with its values ("Set Redis maxmemory to 64 MB"), not the config's kind.
    let action = done.action().describe();
    let result = match outcome {
        ActionOutcome::Recommended => format!("recommended: {}", request.recommendation.summary),
        ActionOutcome::DryRun { would } => format!("dry run, would {would}"),
        ActionOutcome::Succeeded { detail } if detail.is_empty() => "succeeded".to_owned(),
        ActionOutcome::Succeeded { detail } => format!("succeeded: {detail}"),
        ActionOutcome::Failed {
            error,
            rolled_back: Some(true),
        } => format!("failed: {error}; rolled back"),
        ActionOutcome::Failed { error, .. } => format!("failed: {error}"),
        ActionOutcome::RolledBack {
            reason,
            restored: true,
        } => format!("rolled back ({reason})"),
        ActionOutcome::RolledBack { reason, .. } => {
            format!("rollback did not restore the prior state ({reason})")
        }
    };
    let event = done.event();
    let optimizer = Identity::optimizer();
    let mut entries = vec![crate::persist::actor_entry(
        &optimizer,
        AuditKind::Action,
        Some(resource.as_str()),
        event.at_unix_ms,
        format!("{resource}: {action} — {result}"),
        serde_json::json!({
            "observed": request.observed,
            "target": request.target,
            "recommendation": request.recommendation,
        }),
        serde_json::json!({
            "outcome": outcome,
            "attempts": event.attempts,
            "duration_ms": event.duration_ms,
            "dry_run": event.dry_run,
            "steps": event.steps,
        }),
    )];
    for step in &event.steps {
        let at = if step.at_unix_ms > 0 {
            step.at_unix_ms
        } else {
            event.at_unix_ms
        };
        let how = if step.ok { "done" } else { "failed" };
        let detail = if step.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", step.detail)
        };
        entries.push(crate::persist::actor_entry(
            &optimizer,
            AuditKind::Action,
            Some(resource.as_str()),
            at,
            format!(
                "{resource}: {action} — step {} {how}{detail}",
                step.step.as_str()
            ),
            serde_json::Value::Null,
            serde_json::json!({ "step": step }),
        ));
    }
    entries
}

/// The audit entry of a verification: the verdict with its evidence, and whether the
/// change was kept or is being rolled back (the rollback's steps follow as their own
/// entries).
pub fn verification_entry(verification: &Verification) -> AuditRecord {
    let ActionVerdict {
        applied,
        verdict,
        evidence,
        kept,
        why,
        at_unix_ms,
    } = &verification.verdict;
    let resource = verification.resource.as_str();
    let word = verdict.map_or("guardrail", |v| v.word());
    let decision = if *kept { "kept" } else { "rolling back" };
    crate::persist::actor_entry(
        &Identity::optimizer(),
        AuditKind::Action,
        Some(resource),
        *at_unix_ms,
        format!("{resource}: verified {applied}: {word}; {decision} ({why})"),
        serde_json::json!({ "applied": applied, "started_ms": verification.started_ms }),
        serde_json::json!({
            "verdict": verdict,
            "evidence": evidence,
            "kept": kept,
            "why": why,
        }),
    )
}
