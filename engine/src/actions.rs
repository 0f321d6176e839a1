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

/// The advice computed for every confirmed breach, whatever action is configured: a
/// host's CPU gets scaling advice, every other kind advice that fits it
/// ([`recommend_for`]). The fields are the webhook body's and the command's environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub current_replicas: u32,
    /// HPA rule for a CPU: `ceil(current × observed / target)` (inverted for ≥ targets),
    /// unchanged while the ratio is within the tolerance band, at most one step up
    /// ([`scale_up_cap`]), and unchanged past [`MAX_SCALE_FACTOR`]. Every other kind keeps
    /// the current count: scaling is not its advice.
    pub desired_replicas: u32,
    /// observed / target for ≤ targets, target / observed for ≥ targets; `None` when
    /// undefined (a zero denominator).
    pub ratio: Option<f64>,
    /// VPA-style sizing: p90 of the window plus 15 %.
    pub p90_with_headroom: Option<f64>,
    pub summary: String,
}

/// Past this ratio to the target (observed / target, or target / observed for an "at
/// least" target) scaling is not the answer: the target or the workload changed.
pub const MAX_SCALE_FACTOR: f64 = 10.0;

/// Most replicas one recommendation scales up to from `current`: HPA's default scale-up
/// policy (double, or four more, whichever is more).
pub fn scale_up_cap(current: u32) -> u32 {
    current
        .saturating_mul(2)
        .max(current.saturating_add(4))
        .min(MAX_REPLICAS)
}

/// observed / target for ≤ targets, target / observed for ≥ targets; `None` when
/// undefined (a zero denominator).
fn ratio_of(observed: f64, target: &Target) -> Option<f64> {
    match target.comparator {
        crate::model::Comparator::Le if target.value > 0.0 => Some(observed / target.value),
        crate::model::Comparator::Ge if observed > 0.0 => Some(target.value / observed),
        _ => None,
    }
    .filter(|r| r.is_finite())
}

/// "p95 78 % against ≤ 65 %".
fn standing(observed: f64, target: &Target, kind: MetricKind) -> String {
    format!(
        "{} {} against {} {}",
        target.statistic.as_str(),
        crate::model::format_value(observed, kind),
        target.comparator.symbol(),
        crate::model::format_value(target.value, kind)
    )
}

/// How far past the target `observed` is: "20 % over", "8.9 % under", "8859× the
/// target"; `None` when the target is met or has no scale (0).
fn gap(observed: f64, target: &Target) -> Option<String> {
    let t = target.value;
    if !t.is_finite() || t <= 0.0 || !observed.is_finite() || target.is_met(observed) {
        return None;
    }
    let pct = |p: f64| {
        if p >= 10.0 {
            format!("{p:.0}")
        } else {
            format!("{p:.1}")
        }
    };
    Some(match target.comparator {
        crate::model::Comparator::Le if observed / t >= MAX_SCALE_FACTOR => {
            format!("{:.0}× the target", observed / t)
        }
        crate::model::Comparator::Le => format!("{} % over", pct((observed - t) / t * 100.0)),
        crate::model::Comparator::Ge => format!("{} % under", pct((t - observed) / t * 100.0)),
    })
}

/// [`standing`] with its [`gap`]: "mean 72 % against ≤ 60 % (20 % over)".
fn standing_with_gap(observed: f64, target: &Target, kind: MetricKind) -> String {
    let s = standing(observed, target, kind);
    match gap(observed, target) {
        Some(g) => format!("{s} ({g})"),
        None => s,
    }
}

fn replicas(n: u32) -> String {
    if n == 1 {
        "1 replica".to_owned()
    } else {
        format!("{n} replicas")
    }
}

/// The HPA/VPA-style scaling advice for `observed` (the target's statistic over
/// `samples`): what a host's CPU gets (see [`recommend_for`]). Scaling up is capped at one
/// step ([`scale_up_cap`]); past [`MAX_SCALE_FACTOR`] it advises no scaling at all.
pub fn recommend<S: SampleValue>(
    samples: &[S],
    observed: f64,
    target: &Target,
    settings: &ResourceSettings,
    kind: MetricKind,
) -> Recommendation {
    let current = settings.replicas;
    let ratio = ratio_of(observed, target);
    let asked = ratio
        .filter(|r| (r - 1.0).abs() > settings.tolerance_pct / 100.0)
        .map(|r| {
            (f64::from(current) * r)
                .ceil()
                .clamp(1.0, f64::from(MAX_REPLICAS)) as u32
        });
    let p90_with_headroom = stats::percentile(samples, 90.0).map(|p| p * (1.0 + HEADROOM));
    let standing = standing(observed, target, kind);
    let (desired, scale, sizing) = match (ratio, asked) {
        (None, _) => (current, format!("no scaling advice ({standing})"), true),
        (Some(_), None) => (
            current,
            format!(
                "keep {} ({standing}, within the {} % tolerance)",
                replicas(current),
                settings.tolerance_pct
            ),
            true,
        ),
        (Some(r), Some(_)) if r > MAX_SCALE_FACTOR => (
            current,
            format!(
                "far past the target (×{r:.0}): scaling alone will not fix this; look at what \
                 changed ({standing})"
            ),
            false,
        ),
        (Some(_), Some(asked)) if asked == current => (
            current,
            format!("keep {} ({standing})", replicas(current)),
            true,
        ),
        (Some(_), Some(asked)) if asked > scale_up_cap(current) => {
            let step = scale_up_cap(current);
            (
                step,
                format!(
                    "scale {current} → {} ({standing}; one step towards the {asked} the ratio \
                     asks for)",
                    replicas(step)
                ),
                true,
            )
        }
        (Some(_), Some(asked)) => (
            asked,
            format!("scale {current} → {} ({standing})", replicas(asked)),
            true,
        ),
    };
    let summary = match p90_with_headroom {
        Some(h) if sizing => format!(
            "{scale}; size for p90 + 15 % = {}",
            crate::model::format_value(h, kind)
        ),
        _ => scale,
    };
    Recommendation {
        current_replicas: current,
        desired_replicas: desired,
        ratio,
        p90_with_headroom,
        summary,
    }
}

/// What to look at for a breach of `metric` on a resource of `resource_type`, in a few
/// words; `None` when there is nothing specific to say (a custom metric).
fn advice(resource_type: ResourceType, metric: &str, kind: MetricKind) -> Option<&'static str> {
    use MetricKind::{Latency, Throughput, Utilization};
    Some(match (resource_type, kind) {
        (ResourceType::Cpu, _) => "find what is busy (see the top processes) or add capacity",
        (ResourceType::Memory, _) => "free or add memory",
        (ResourceType::Disk, Utilization) => "free space or grow the volume",
        (ResourceType::Disk, _) => "find the heaviest reader or writer, or spread the I/O",
        (ResourceType::Network, _) => "move traffic off this link or add bandwidth",
        (ResourceType::Database, Latency) => {
            "look at the top queries and index advice on this page"
        }
        (ResourceType::Database, _) if metric.contains("connections") => {
            "raise max_connections or pool connections"
        }
        (ResourceType::Database, _) if metric.contains("cache_hit") => {
            "raise shared_buffers or look at the top queries reading from disk"
        }
        (ResourceType::Database, _) if metric.starts_with("temp_bytes") => {
            "raise work_mem or look at the top queries sorting on disk"
        }
        (ResourceType::Database, _) => "look at the top queries on this page",
        (ResourceType::Cache, _) if metric == "hit_ratio" || metric.starts_with("misses") => {
            "raise maxmemory / look at evictions"
        }
        (ResourceType::Cache, _) if metric.starts_with("memory") => {
            "raise maxmemory or shorten TTLs; look at evictions"
        }
        (ResourceType::Cache, _) if metric.starts_with("evicted") => {
            "raise maxmemory or shorten TTLs"
        }
        (ResourceType::Cache, Latency) => "look at the busiest commands on this page",
        (ResourceType::Cache, _) => return None,
        (ResourceType::LoadBalancer, _) if metric.starts_with("error") => {
            "shift weight away from the failing backend (see Backends)"
        }
        (ResourceType::LoadBalancer, _) if metric.starts_with("backends_up") => {
            "bring backends back or add some (see Backends)"
        }
        (ResourceType::LoadBalancer, Latency) => {
            "shift weight away from the slowest backend (see Backends)"
        }
        (ResourceType::LoadBalancer, Throughput | Utilization | MetricKind::Number) => return None,
        (ResourceType::Fleet, Latency) => "look at the store's load (it answers slowly)",
        (ResourceType::Fleet, _) => "see the fleet page, worst first",
        (ResourceType::Custom(_), _) => return None,
    })
}

/// The recommendation for a breach of `target` on a resource of `resource_type`: a host's
/// CPU utilization may be scaled ([`recommend`]); every other kind gets advice that fits
/// it, with its numbers ("raise maxmemory / look at evictions: mean 82 % against ≥ 90 %
/// (8.9 % under)"), and never a replica count (`desired_replicas` stays the current one);
/// a custom metric only its numbers ("p95 is 120 ms against ≤ 100 ms (20 % over)").
pub fn recommend_for<S: SampleValue>(
    resource_type: ResourceType,
    samples: &[S],
    observed: f64,
    target: &Target,
    settings: &ResourceSettings,
    kind: MetricKind,
) -> Recommendation {
    if resource_type == ResourceType::Cpu && kind == MetricKind::Utilization {
        return recommend(samples, observed, target, settings, kind);
    }
    let numbers = standing_with_gap(observed, target, kind);
    let summary = match (
        resource_type,
        kind,
        advice(resource_type, &target.metric, kind),
    ) {
        // The share of a fleet's hosts past their targets.
        (ResourceType::Fleet, k, Some(advice)) if k != MetricKind::Latency => {
            format!("hosts past their targets, {numbers}: {advice}")
        }
        (_, _, Some(advice)) => format!("{advice}: {numbers}"),
        // "p95 is 120 ms against ≤ 100 ms (20 % over)": the numbers, no action verb.
        (_, _, None) => {
            let rest = numbers
                .split_once(' ')
                .map_or(numbers.as_str(), |(_, rest)| rest);
            format!("{} is {rest}", target.statistic.as_str())
        }
    };
    Recommendation {
        current_replicas: settings.replicas,
        desired_replicas: settings.replicas,
        ratio: ratio_of(observed, target),
        p90_with_headroom: stats::percentile(samples, 90.0).map(|p| p * (1.0 + HEADROOM)),
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
    /// On a rollback: the verifier's verdict and its evidence (why the change is undone),
    /// so the rollback webhook's body and command (`PERFPILOT_VERDICT`) carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::optimizer::ActionVerdict>,
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
        let recommendation = recommend_for(
            resource.resource_type,
            samples,
            observed,
            &target,
            &resource.settings,
            kind,
        );
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
            verdict: None,
        })
    }

    /// Tells a fleet's action which hosts are past their targets (worst first, at most
    /// [`MAX_HOSTS`]) and says how many in the recommendation: "3 hosts past their
    /// targets: see the fleet page, worst first (web-1 first)".
    pub fn set_hosts(&mut self, hosts: Vec<HostBreach>) {
        if self.resource_type == ResourceType::Fleet {
            if let Some(worst) = hosts.first() {
                let count = match hosts.len() {
                    1 => "1 host past its target".to_owned(),
                    n if n >= MAX_HOSTS => format!("{MAX_HOSTS} or more hosts past their targets"),
                    n => format!("{n} hosts past their targets"),
                };
                self.recommendation.summary = format!(
                    "{count}: see the fleet page, worst first ({} first)",
                    worst.instance
                );
            }
        }
        self.hosts = hosts;
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
                .starts_with("scale 4 → 7 replicas (mean 91 % against ≤ 60 %); size for p90"),
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
    fn cpu_scaling_is_capped_at_one_step_and_refused_far_past_the_target() {
        let p95 = |value: f64| Target {
            statistic: Statistic::P95,
            ..le(value)
        };
        let s = ResourceSettings {
            replicas: 2,
            ..Default::default()
        };
        let r = recommend(&[78.0; 10], 78.0, &p95(65.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 3);
        assert_eq!(
            r.summary,
            "scale 2 → 3 replicas (p95 78 % against ≤ 65 %); size for p90 + 15 % = 89.7 %"
        );
        // Three times the target asks for 30 of 10: one step (double) is 20.
        let s = ResourceSettings {
            replicas: 10,
            ..Default::default()
        };
        let r = recommend(&[90.0; 10], 90.0, &p95(30.0), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 20);
        assert!(
            r.summary.starts_with(
                "scale 10 → 20 replicas (p95 90 % against ≤ 30 %; one step towards the 30 the \
                 ratio asks for)"
            ),
            "{}",
            r.summary
        );
        assert_eq!(
            scale_up_cap(1),
            5,
            "four more beats doubling for a small count"
        );
        assert_eq!(scale_up_cap(10_000), 10_000);
        // A target of 0.01 %: 8859× the target is no scaling problem.
        let s = ResourceSettings::default();
        let r = recommend(&[88.59; 10], 88.59, &p95(0.01), &s, MetricKind::Utilization);
        assert_eq!(r.desired_replicas, 1);
        assert_eq!(
            r.summary,
            "far past the target (×8859): scaling alone will not fix this; look at what changed \
             (p95 88.6 % against ≤ 0.01 %)"
        );
        // Scaling down to one says "replica".
        let r = recommend(&[10.0; 10], 10.0, &p95(65.0), &s, MetricKind::Utilization);
        assert!(r.summary.starts_with("keep 1 replica ("), "{}", r.summary);
    }

    fn advice_of(
        t: ResourceType,
        metric: &str,
        kind: MetricKind,
        comparator: Comparator,
        value: f64,
        observed: f64,
    ) -> Recommendation {
        let target = Target {
            metric: metric.into(),
            comparator,
            value,
            statistic: Statistic::P95,
            for_secs: 0,
        };
        let settings = ResourceSettings {
            replicas: 3,
            ..Default::default()
        };
        recommend_for(t, &[observed; 10], observed, &target, &settings, kind)
    }

    #[test]
    #[allow(clippy::too_many_lines)] // 146 lines today; split before it grows
    fn each_kind_gets_advice_that_fits_it() {
        use Comparator::{Ge, Le};
        use MetricKind::{Latency, Throughput, Utilization};
        let cases = [
            (
                ResourceType::Memory,
                "used_pct",
                Utilization,
                Le,
                60.0,
                72.0,
                "free or add memory: p95 72 % against ≤ 60 % (20 % over)",
            ),
            (
                ResourceType::Disk,
                "used_pct",
                Utilization,
                Le,
                80.0,
                95.0,
                "free space or grow the volume: p95 95 % against ≤ 80 % (19 % over)",
            ),
            (
                ResourceType::Network,
                "utilization",
                Utilization,
                Le,
                50.0,
                75.0,
                "move traffic off this link or add bandwidth: p95 75 % against ≤ 50 % (50 % over)",
            ),
            (
                ResourceType::Database,
                "latency",
                Latency,
                Le,
                80.0,
                120.0,
                "look at the top queries and index advice on this page: p95 120 ms against ≤ 80 \
                 ms (50 % over)",
            ),
            (
                ResourceType::Database,
                "connections_pct",
                Utilization,
                Le,
                80.0,
                95.0,
                "raise max_connections or pool connections: p95 95 % against ≤ 80 % (19 % over)",
            ),
            (
                ResourceType::Cache,
                "hit_ratio",
                Utilization,
                Ge,
                90.0,
                82.0,
                "raise maxmemory / look at evictions: p95 82 % against ≥ 90 % (8.9 % under)",
            ),
            (
                ResourceType::Cache,
                "memory_pct",
                Utilization,
                Le,
                90.0,
                97.0,
                "raise maxmemory or shorten TTLs; look at evictions: p95 97 % against ≤ 90 % \
                 (7.8 % over)",
            ),
            (
                ResourceType::LoadBalancer,
                "response_ms",
                Latency,
                Le,
                200.0,
                450.0,
                "shift weight away from the slowest backend (see Backends): p95 450 ms against \
                 ≤ 200 ms (125 % over)",
            ),
            (
                ResourceType::LoadBalancer,
                "error_pct",
                Utilization,
                Le,
                1.0,
                5.0,
                "shift weight away from the failing backend (see Backends): p95 5 % against ≤ 1 \
                 % (400 % over)",
            ),
            (
                ResourceType::Fleet,
                "breaching_pct",
                Utilization,
                Le,
                10.0,
                40.0,
                "hosts past their targets, p95 40 % against ≤ 10 % (300 % over): see the fleet \
                 page, worst first",
            ),
            (
                ResourceType::Custom(7),
                "queue_ms",
                Latency,
                Le,
                100.0,
                120.0,
                "p95 is 120 ms against ≤ 100 ms (20 % over)",
            ),
            (
                ResourceType::Custom(7),
                "jobs",
                Throughput,
                Ge,
                100.0,
                5.0,
                "p95 is 5 /s against ≥ 100 /s (95 % under)",
            ),
        ];
        for (t, metric, kind, comparator, value, observed, want) in cases {
            let r = advice_of(t, metric, kind, comparator, value, observed);
            assert_eq!(r.summary, want, "{t} {metric}");
            assert!(
                !r.summary.contains("replica"),
                "{t} {metric}: {}",
                r.summary
            );
            assert!(!r.summary.contains("scale"), "{t} {metric}: {}", r.summary);
            assert_eq!(
                (r.current_replicas, r.desired_replicas),
                (3, 3),
                "{t} {metric}: no scaling"
            );
        }
        // A host's CPU is the one kind that scales.
        let r = advice_of(
            ResourceType::Cpu,
            "utilization",
            Utilization,
            Le,
            65.0,
            78.0,
        );
        assert!(
            r.summary
                .starts_with("scale 3 → 4 replicas (p95 78 % against ≤ 65 %)"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_cold_cache_is_not_told_to_scale_to_thousands_of_replicas() {
        // The issue's case: a hit ratio of 0.0102 % against ≥ 90 % read "scale 1 → 8859
        // replicas".
        let cache = Resource::new(
            ResourceId::new("cache:sessions").unwrap(),
            ResourceType::Cache,
            "sessions",
        );
        let r = ActionRequest::new(&cache, &[0.0102; 10], 0.0102, 0).unwrap();
        assert_eq!(r.recommendation.desired_replicas, 1);
        assert_eq!(
            r.recommendation.summary,
            "raise maxmemory / look at evictions: mean 0.01 % against ≥ 90 % (100 % under)"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["recommendation"]["desired_replicas"], 1);
        assert_eq!(json["recommendation"]["current_replicas"], 1);
    }

    #[test]
    fn a_fleet_is_told_how_many_hosts_and_which_first() {
        let mut fleet = Resource::new(
            ResourceId::new("fleet:web").unwrap(),
            ResourceType::Fleet,
            "web",
        );
        fleet.target = Some(Target {
            metric: "breaching_pct".into(),
            ..le(10.0)
        });
        let mut r = ActionRequest::new(&fleet, &[40.0; 10], 40.0, 0).unwrap();
        assert_eq!(
            r.recommendation.summary,
            "hosts past their targets, mean 40 % against ≤ 10 % (300 % over): see the fleet \
             page, worst first"
        );
        let host = |i: usize| HostBreach {
            instance: format!("web-{i}"),
            group: "eu".into(),
            metric: "cpu".into(),
            observed: 90.0,
            target: 65.0,
        };
        r.set_hosts(vec![host(1), host(2), host(3)]);
        assert_eq!(
            r.recommendation.summary,
            "3 hosts past their targets: see the fleet page, worst first (web-1 first)"
        );
        assert_eq!(r.hosts.len(), 3);
        r.set_hosts((0..MAX_HOSTS).map(host).collect());
        assert!(
            r.recommendation
                .summary
                .starts_with("20 or more hosts past their targets"),
            "{}",
            r.recommendation.summary
        );
        assert_eq!(r.recommendation.desired_replicas, 1);
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
