//! The optimizer's hands. When a resource's tracker says a confirmed breach should be
//! acted on, its configured action (webhook or allow-listed command; recommendations and
//! dry runs only describe) runs on its own task — a webhook with retries can take seconds
//! and the monitor must keep ticking. The outcome comes back to the monitor task, which
//! alone moves the tracker: a success starts the verify window (Optimizing) and a
//! before/after, a failure goes to Failed, a dry run only starts the cooldown. Every
//! execution is counted for `/metrics` and written to the audit log as the optimizer.

use std::collections::HashSet;

use app::audit::{AuditRecord, KIND_ACTION};
use app::identity::Identity;
use engine::actions::{ActionEvent, ActionOutcome, ActionRequest, ActionRunner, RunnerConfig};
use engine::model::{Resource, ResourceId};
use engine::optimizer::Tracker;
use tokio::sync::mpsc;

/// One finished execution, on its way back to the monitor task.
#[derive(Debug)]
pub struct Executed {
    pub request: ActionRequest,
    pub event: ActionEvent,
}

/// Owned by the monitor task: at most one execution per resource at a time.
pub struct Actuator {
    runner: ActionRunner,
    running: HashSet<ResourceId>,
    done: mpsc::UnboundedSender<Executed>,
}

impl Actuator {
    pub fn new(config: RunnerConfig) -> (Actuator, mpsc::UnboundedReceiver<Executed>) {
        let (done, finished) = mpsc::unbounded_channel();
        let actuator = Actuator {
            runner: ActionRunner::new(config),
            running: HashSet::new(),
            done,
        };
        (actuator, finished)
    }

    /// Starts `resource`'s action when its tracker says the breach calls for one and none
    /// is running for it already. `samples` are the evaluation window the recommendation
    /// is computed from.
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
        if self.running.contains(&resource.id)
            || !tracker.should_act(now_ms, target, &resource.settings)
        {
            return;
        }
        let Some(request) = ActionRequest::new(resource, samples, observed, now_ms) else {
            return;
        };
        self.running.insert(resource.id.clone());
        tracing::info!(
            resource = %resource.id,
            action = resource.settings.action.kind(),
            dry_run = request.dry_run,
            "Acting on a confirmed breach"
        );
        let runner = self.runner.clone();
        let action = resource.settings.action.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            let event = runner.execute(&request, &action).await;
            let _ = done.send(Executed { request, event });
        });
    }

    /// The execution for `id` is over; another may start after the cooldown.
    pub fn finished(&mut self, id: &ResourceId) {
        self.running.remove(id);
    }
}

/// The `/metrics` label of an outcome (one of `monitor::ACTION_OUTCOMES`).
pub fn outcome_label(outcome: &ActionOutcome) -> &'static str {
    match outcome {
        ActionOutcome::Recommended => "recommended",
        ActionOutcome::DryRun { .. } => "dry_run",
        ActionOutcome::Succeeded { .. } => "succeeded",
        ActionOutcome::Failed { .. } => "failed",
    }
}

/// The audit entry of one execution: what was observed against which target (before),
/// and what the action did (after).
pub fn audit_entry(executed: &Executed) -> AuditRecord {
    let ActionEvent {
        resource,
        action,
        outcome,
        ..
    } = &executed.event;
    let result = match outcome {
        ActionOutcome::Recommended => {
            format!("recommended: {}", executed.request.recommendation.summary)
        }
        ActionOutcome::DryRun { would } => format!("dry run, would {would}"),
        ActionOutcome::Succeeded { detail } if detail.is_empty() => "succeeded".to_owned(),
        ActionOutcome::Succeeded { detail } => format!("succeeded: {detail}"),
        ActionOutcome::Failed { error } => format!("failed: {error}"),
    };
    crate::persist::actor_entry(
        &Identity::optimizer(),
        KIND_ACTION,
        Some(resource.as_str()),
        executed.event.at_unix_ms,
        format!("{resource}: {action} {result}"),
        serde_json::json!({
            "observed": executed.request.observed,
            "target": executed.request.target,
            "recommendation": executed.request.recommendation,
        }),
        serde_json::json!({
            "outcome": outcome,
            "attempts": executed.event.attempts,
            "duration_ms": executed.event.duration_ms,
            "dry_run": executed.event.dry_run,
        }),
    )
}
