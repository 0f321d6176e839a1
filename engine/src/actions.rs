//! Optimize of the loop: what an action is told and the always-on recommendation. The
//! actuators that execute webhooks and commands live in the `connectors` crate, and the
//! lifecycle they go through in [`crate::actuator`].
//!
//! How the server drives it, per resource and tick:
//! 1. `Tracker::should_act` says the breach is confirmed and the cooldown is over;
//! 2. build an [`ActionRequest`] and run its actuator through [`crate::actuator::apply`];
//! 3. feed the [`ActionEvent`] back: `Succeeded` → `Tracker::action_started` (verify window
//!    starts), `Failed` → `Tracker::action_failed`, `DryRun` → `Tracker::note_action`
//!    (cooldown only: nothing was changed, so the status must not claim otherwise).
//!
//! Dry-run is the default of every resource: acting on production needs an explicit opt-in.

use serde::{Deserialize, Serialize};

use crate::model::{MetricKind, Resource, ResourceId, ResourceSettings, ResourceType, Target};
use crate::stats::{self, SampleValue};

/// Headroom above p90 of the VPA-style sizing advice (VPA's default safety margin).
pub const HEADROOM: f64 = 0.15;
const MAX_REPLICAS: u32 = 10_000;

/// Scaling advice computed for every confirmed breach, whatever action is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub current_replicas: u32,
    /// HPA rule: `ceil(current × observed / target)` (inverted for ≥ targets), unchanged
    /// while the ratio is within the tolerance band.
    pub desired_replicas: u32,
    /// observed / target for ≤ targets, target / observed for ≥ targets; `None` when
    /// undefined (a zero denominator).
    pub ratio: Option<f64>,
    /// VPA-style sizing: p90 of the window plus 15 %.
    pub p90_with_headroom: Option<f64>,
    pub summary: String,
}

/// Computes the recommendation for `observed` (the target's statistic over `samples`).
pub fn recommend<S: SampleValue>(
    samples: &[S],
    observed: f64,
    target: &Target,
    settings: &ResourceSettings,
    kind: MetricKind,
) -> Recommendation {
    let current = settings.replicas;
    let ratio = match target.comparator {
        crate::model::Comparator::Le if target.value > 0.0 => Some(observed / target.value),
        crate::model::Comparator::Ge if observed > 0.0 => Some(target.value / observed),
        _ => None,
    }
    .filter(|r| r.is_finite());
    let desired = match ratio {
        Some(r) if (r - 1.0).abs() > settings.tolerance_pct / 100.0 => (f64::from(current) * r)
            .ceil()
            .clamp(1.0, f64::from(MAX_REPLICAS))
            as u32,
        _ => current,
    };
    let p90_with_headroom = stats::percentile(samples, 90.0).map(|p| p * (1.0 + HEADROOM));
    let fmt = |v: f64| crate::model::format_value(v, kind);
    let scale = match ratio {
        Some(r) if desired != current => format!(
            "scale {current} → {desired} replicas ({} is {:.2}× the target {})",
            fmt(observed),
            r,
            fmt(target.value)
        ),
        Some(_) => format!(
            "keep {current} replicas (within the {} % tolerance)",
            settings.tolerance_pct
        ),
        None => format!("no scaling advice for a target of {}", fmt(target.value)),
    };
    let summary = match p90_with_headroom {
        Some(h) => format!("{scale}; size for p90 + 15 % = {}", fmt(h)),
        None => scale,
    };
    Recommendation {
        current_replicas: current,
        desired_replicas: desired,
        ratio,
        p90_with_headroom,
        summary,
    }
}

/// Everything an action is told about a breach; also the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub resource: ResourceId,
    pub resource_type: ResourceType,
    pub name: String,
    pub metric: String,
    pub kind: MetricKind,
    pub target: Target,
    pub observed: f64,
    pub recommendation: Recommendation,
    pub at_unix_ms: i64,
    pub dry_run: bool,
    /// For a fleet: the hosts past their targets, worst first (at most
    /// [`MAX_HOSTS`]), so an action can act on them (`PERFPILOT_HOST`, the webhook's
    /// `hosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostBreach>,
}

/// Most hosts an action is told about.
pub const MAX_HOSTS: usize = 20;

/// One fleet host past its target, as an action is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostBreach {
    pub instance: String,
    pub group: String,
    pub metric: String,
    pub observed: f64,
    pub target: f64,
}

impl ActionRequest {
    /// Builds the request for `resource`'s target; `None` when it has no target.
    pub fn new<S: SampleValue>(
        resource: &Resource,
        samples: &[S],
        observed: f64,
        at_unix_ms: i64,
    ) -> Option<Self> {
        let target = resource.target.clone()?;
        let kind = resource.target_kind()?;
        let recommendation = recommend(samples, observed, &target, &resource.settings, kind);
        Some(ActionRequest {
            resource: resource.id.clone(),
            resource_type: resource.resource_type,
            name: resource.name.clone(),
            metric: target.metric.clone(),
            kind,
            target,
            observed,
            recommendation,
            at_unix_ms,
            dry_run: resource.settings.dry_run,
            hosts: Vec::new(),
        })
    }
}

/// How one execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Recommend-only: the advice is the whole action.
    Recommended,
    /// Dry-run: what would have been done.
    DryRun { would: String },
    /// Applied and read back: its verify window starts.
    Succeeded { detail: String },
    /// Not in effect: capturing, applying or reading back failed. `rolled_back` says
    /// whether what may have been changed was restored (`None`: nothing to restore, or the
    /// actuator cannot).
    Failed {
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rolled_back: Option<bool>,
    },
    /// Applied, then undone: the verify window showed no improvement or a guardrail
    /// tripped. `restored` is whether the rollback's read-back showed the prior state.
    RolledBack { reason: String, restored: bool },
}

impl ActionOutcome {
    /// The `/metrics` label and audit word of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            ActionOutcome::Recommended => "recommended",
            ActionOutcome::DryRun { .. } => "dry_run",
            ActionOutcome::Succeeded { .. } => "succeeded",
            ActionOutcome::Failed { .. } => "failed",
            ActionOutcome::RolledBack { .. } => "rolled_back",
        }
    }

    /// Every label, in a fixed order (for counters).
    pub const LABELS: [&'static str; 5] = [
        "recommended",
        "dry_run",
        "succeeded",
        "failed",
        "rolled_back",
    ];
}

/// One action execution, for the event log and the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    pub resource: ResourceId,
    pub action: String,
    pub at_unix_ms: i64,
    pub dry_run: bool,
    /// Attempts made (0 for dry runs and recommendations).
    pub attempts: u32,
    pub duration_ms: u64,
    pub recommendation: Recommendation,
    pub outcome: ActionOutcome,
    /// The actuator lifecycle's steps, in order (none for dry runs and recommendations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<crate::actuator::StepRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Comparator, Statistic};

    fn le(value: f64) -> Target {
        Target {
            metric: "utilization".into(),
            comparator: Comparator::Le,
            value,
            statistic: Statistic::Mean,
            for_secs: 0,
        }
    }

    #[test]
    fn hpa_rule_scales_by_the_ratio_and_rounds_up() {
        let s = ResourceSettings {
            replicas: 4,
            ..Default::default()
        };
        let r = recommend(&[90.0; 10], 90.0, &le(60.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 6); // ceil(4 × 1.5)
        assert_eq!(r.ratio, Some(1.5));
        let r = recommend(&[91.0; 10], 91.0, &le(60.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 7); // ceil(4 × 1.5167)
        assert!(
            r.summary
                .starts_with("scale 4 → 7 replicas (91 % is 1.52× the target 60 %)"),
            "{}",
            r.summary
        );
        let r = recommend(&[20.0; 10], 20.0, &le(60.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 2, "scale down too");
    }

    #[test]
    fn hpa_rule_holds_inside_the_tolerance_and_handles_ge_and_zero() {
        let s = ResourceSettings {
            replicas: 3,
            ..Default::default()
        };
        let r = recommend(&[64.0; 10], 64.0, &le(60.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 3);
        assert!(r.summary.starts_with("keep 3 replicas"));
        let ge = Target {
            comparator: Comparator::Ge,
            ..le(1000.0)
        };
        let r = recommend(&[500.0; 10], 500.0, &ge, &s, MetricKind::Throughput);
        assert_eq!(r.desired_replicas, 6);
        let r = recommend(&[0.0; 10], 0.0, &ge, &s, MetricKind::Throughput);
        assert_eq!((r.ratio, r.desired_replicas), (None, 3));
        let r = recommend(&[5.0; 10], 5.0, &le(0.0), &s, MetricKind::Latency);
        assert_eq!(r.ratio, None);
    }

    #[test]
    fn vpa_sizing_is_p90_plus_fifteen_percent() {
        let samples: Vec<f64> = (1..=10).map(f64::from).collect();
        let r = recommend(
            &samples,
            5.5,
            &le(60.0),
            &ResourceSettings::default(),
            MetricKind::Utilization,
        );
        assert!((r.p90_with_headroom.unwrap() - 9.1 * 1.15).abs() < 1e-9);
        let none = recommend::<Option<f64>>(
            &[None],
            1.0,
            &le(60.0),
            &ResourceSettings::default(),
            MetricKind::Utilization,
        );
        assert_eq!(none.p90_with_headroom, None);
    }

    #[test]
    fn request_describes_the_breach() {
        let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
        let r = ActionRequest::new(&cpu, &[80.0; 5], 80.0, 42).unwrap();
        assert_eq!(
            (r.metric.as_str(), r.kind, r.observed, r.dry_run),
            ("utilization", MetricKind::Utilization, 80.0, true)
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["resource"], "cpu");
        assert_eq!(json["target"]["value"], 65.0);
        assert_eq!(json["recommendation"]["desired_replicas"], 2);
        let disk = Resource::new(ResourceId::new("disk:/").unwrap(), ResourceType::Disk, "/");
        assert!(
            ActionRequest::new(&disk, &[1.0], 1.0, 0).is_none(),
            "no target, nothing to act on"
        );
    }
}
