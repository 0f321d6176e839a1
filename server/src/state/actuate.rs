//! The optimizer's hands, driven by the monitor task through the shared actuator
//! lifecycle (`engine::actuator`):
//!
//! 1. a confirmed breach (`Tracker::should_act`) runs the resource's actuator on its own
//!    task — capture → apply → read back — so the monitor keeps ticking;
//! 2. the outcome returns to the monitor task, which alone moves the tracker (in effect →
//!    Optimizing and a before/after; failed → Failed; dry run → cooldown only);
//! 3. while the change is verified, its guardrails are watched every tick: one crossed
//!    rolls it back at once;
//! 4. when the verify window ends, its before/after decides: kept (Optimized), or rolled
//!    back to the captured state and read back (Failed, "rolled back: …"). An actuator that
//!    cannot roll back leaves the change and the status says Failed with the verdict.
//!
//! Every execution and rollback, with each lifecycle step, is counted for `/metrics` and
//! written to the audit log as the optimizer.

use std::collections::{HashMap, HashSet};

use app::audit::{AuditKind, AuditRecord};
use app::identity::Identity;
use connectors::actuators::{Actuators, Execution};
use engine::actions::{ActionEvent, ActionOutcome, ActionRequest};
use engine::actuator::{Captured, Guardrail};
use engine::changes::State;
use engine::history::History;
use engine::model::{ActionConfig, Resource, ResourceId, SourceSpec};
use engine::optimizer::Tracker;
use engine::series::SeriesKey;
use tokio::sync::mpsc;

/// A guard series' latest sample counts for this long.
const GUARD_FRESHNESS_MS: i64 = 15_000;

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
        event: ActionEvent,
    },
}

impl Finished {
    pub fn event(&self) -> &ActionEvent {
        match self {
            Finished::Executed { execution, .. } => &execution.event,
            Finished::RolledBack { event, .. } => event,
        }
    }

    fn request(&self) -> &ActionRequest {
        match self {
            Finished::Executed { request, .. } | Finished::RolledBack { request, .. } => request,
        }
    }
}

/// A change in effect and being verified: what a rollback needs.
struct InEffect {
    request: ActionRequest,
    action: ActionConfig,
    source: Option<SourceSpec>,
    captured: Captured,
    guardrails: Vec<Guardrail>,
    /// Each guardrail's series mean over the baseline window before the action.
    baselines: Vec<Option<f64>>,
}

/// Owned by the monitor task: at most one execution or rollback per resource at a time.
pub struct Acting {
    actuators: Actuators,
    busy: HashSet<ResourceId>,
    in_effect: HashMap<ResourceId, InEffect>,
    done: mpsc::UnboundedSender<Finished>,
}

impl Acting {
    pub fn new(actuators: Actuators) -> (Acting, mpsc::UnboundedReceiver<Finished>) {
        let (done, finished) = mpsc::unbounded_channel();
        let acting = Acting {
            actuators,
            busy: HashSet::new(),
            in_effect: HashMap::new(),
            done,
        };
        (acting, finished)
    }

    /// The actuators, for work outside the optimizer's lifecycle (a cache's warm-up).
    pub fn actuators(&self) -> Actuators {
        self.actuators.clone()
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
        if self.busy.contains(&resource.id)
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
            if let Some(fleet) = connectors::sources::prometheus::handle(resource.id.as_str()) {
                request.hosts = fleet.breaching_hosts(engine::actions::MAX_HOSTS);
            }
        }
        self.busy.insert(resource.id.clone());
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
    /// cooldown, and a change now in effect is remembered for its verification.
    pub fn finished(&mut self, done: Finished, history: &History, state: &State) {
        let id = done.event().resource.clone();
        self.busy.remove(&id);
        let Finished::Executed {
            request,
            action,
            source,
            guardrails,
            execution,
        } = done
        else {
            return;
        };
        let Execution {
            captured: Some(captured),
            event,
        } = *execution
        else {
            return;
        };
        if !matches!(event.outcome, ActionOutcome::Succeeded { .. }) {
            return;
        }
        let baseline_ms = state
            .resources
            .get(&id)
            .map_or(300_000, |r| i64::from(r.settings.baseline_secs) * 1000);
        let started = event.at_unix_ms;
        let baselines = guardrails
            .iter()
            .map(|g| {
                let (resource, metric) = g.series(id.as_str());
                let samples = super::proof::window_samples(
                    history,
                    &SeriesKey::new(resource, metric),
                    (started - baseline_ms, started),
                );
                engine::stats::mean(&samples)
            })
            .collect();
        self.in_effect.insert(
            id,
            InEffect {
                request,
                action,
                source,
                captured,
                guardrails,
                baselines,
            },
        );
    }

    /// Every evaluation of a resource with a target: while its action is verified, trips
    /// its guardrails; when the verify window ends, keeps the change or rolls it back.
    /// Answers the verdict of a change kept (a rollback's outcome comes later, as a
    /// finished execution).
    pub fn watch(
        &mut self,
        now_ms: i64,
        resource: &Resource,
        tracker: &mut Tracker,
        history: &History,
    ) -> Option<engine::optimizer::Transition> {
        let id = &resource.id;
        if self.busy.contains(id) {
            // A rollback is running; its outcome moves the tracker.
            return None;
        }
        let (Some(verify_at), Some(started), Some(target)) = (
            tracker.verify_at(),
            tracker.action_started_at(),
            &resource.target,
        ) else {
            // A configuration change ended the verification: the change stays.
            self.in_effect.remove(id);
            return None;
        };
        if let Some(why) = self.tripped(id, history, now_ms) {
            tracing::warn!(resource = %id, %why, "Guardrail tripped; rolling back");
            self.roll_back(id, why);
            return None;
        }
        if verify_at > now_ms {
            return None;
        }
        let key = SeriesKey::new(id.as_str(), target.metric.as_str());
        let baseline = i64::from(resource.settings.baseline_secs) * 1000;
        let before = super::proof::window_samples(history, &key, (started - baseline, started));
        let after = super::proof::window_samples(history, &key, (started, verify_at));
        let result = engine::optimizer::before_after(&before, &after, target);
        let can_roll_back = self.in_effect.get(id).is_some_and(|effect| {
            self.actuators
                .can_roll_back(&effect.action, effect.source.as_ref())
        });
        if !result.target_met && can_roll_back {
            tracing::warn!(resource = %id, reason = %result.reason, "Verification failed; rolling back");
            self.roll_back(id, format!("verification failed: {}", result.reason));
            return None;
        }
        if let Some(effect) = self.in_effect.remove(id) {
            self.keep(id, effect);
        }
        let transition = tracker.verified(now_ms, &result)?;
        tracing::info!(
            resource = %id,
            to = transition.to.as_str(),
            reason = %transition.reason,
            "Action verified"
        );
        Some(transition)
    }

    /// Why a guardrail of `id`'s change in effect has tripped, if one has.
    fn tripped(&self, id: &ResourceId, history: &History, now_ms: i64) -> Option<String> {
        let effect = self.in_effect.get(id)?;
        effect
            .guardrails
            .iter()
            .zip(&effect.baselines)
            .find_map(|(guardrail, baseline)| {
                let (resource, metric) = guardrail.series(id.as_str());
                let series = history.get(history.id(&SeriesKey::new(resource, metric))?)?;
                let (at, value) = series.latest()?;
                if now_ms - at > GUARD_FRESHNESS_MS {
                    return None;
                }
                guardrail.tripped(id.as_str(), f64::from(value?), *baseline)
            })
    }

    /// A change that verified well stays; its actuator may make it outlive a restart.
    fn keep(&self, id: &ResourceId, effect: InEffect) {
        let Some(actuator) = self
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

    fn roll_back(&mut self, id: &ResourceId, why: String) {
        let Some(effect) = self.in_effect.remove(id) else {
            return;
        };
        self.busy.insert(id.clone());
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
                event,
            });
        });
    }
}

/// The audit entry of one execution or rollback: what was observed against which target
/// (before), and what the actuator did, step by step (after).
pub fn audit_entry(done: &Finished) -> AuditRecord {
    let request = done.request();
    let ActionEvent {
        resource,
        action,
        outcome,
        ..
    } = done.event();
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
    crate::persist::actor_entry(
        &Identity::optimizer(),
        AuditKind::Action,
        Some(resource.as_str()),
        event.at_unix_ms,
        format!("{resource}: {action} {result}"),
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
    )
}
