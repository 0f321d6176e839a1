//! Optimize of the loop: what an action is told, the always-on recommendation, and (with
//! the `runtime` feature) the runner that executes webhooks and commands.
//!
//! How the server drives it, per resource and tick:
//! 1. `Tracker::should_act` says the breach is confirmed and the cooldown is over;
//! 2. build an [`ActionRequest`] and call [`ActionRunner::execute`];
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
    DryRun {
        would: String,
    },
    Succeeded {
        detail: String,
    },
    Failed {
        error: String,
    },
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
}

#[cfg(feature = "runtime")]
pub use runner::{sign, ActionRunner, RunnerConfig, SIGNATURE_HEADER};

#[cfg(feature = "runtime")]
mod runner {
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use hmac::{Hmac, Mac};
    use http_body_util::{BodyExt, Full, Limited};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use sha2::Sha256;

    use super::{ActionEvent, ActionOutcome, ActionRequest};
    use crate::model::{ActionConfig, CommandAction, WebhookAction};

    /// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when a secret is configured.
    pub const SIGNATURE_HEADER: &str = "X-Perfpilot-Signature";
    /// Output kept from a command or a webhook response, for the event detail.
    const MAX_DETAIL: usize = 512;
    const MAX_RESPONSE: usize = 64 * 1024;

    /// Server-side configuration no API user can change: which programs may run and the
    /// webhook signing secrets, by name.
    #[derive(Debug, Clone, Default)]
    pub struct RunnerConfig {
        pub allowed_programs: BTreeSet<String>,
        pub secrets: BTreeMap<String, String>,
    }

    /// Executes actions. Cheap to share (`Arc`); one HTTP client with a connection pool.
    #[derive(Clone)]
    pub struct ActionRunner {
        config: RunnerConfig,
        client: Client<HttpConnector, Full<Bytes>>,
    }

    impl std::fmt::Debug for ActionRunner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ActionRunner")
                .field("allowed_programs", &self.config.allowed_programs)
                .field("secrets", &self.config.secrets.keys().collect::<Vec<_>>())
                .finish()
        }
    }

    enum Attempt {
        Done(String),
        /// Worth retrying (connection error, timeout, 5xx).
        Retry(String),
        Fatal(String),
    }

    impl ActionRunner {
        pub fn new(config: RunnerConfig) -> Self {
            let client = Client::builder(TokioExecutor::new()).build_http();
            ActionRunner { config, client }
        }

        /// Runs `action` for `request` (dry-run when `request.dry_run`). Never panics and
        /// never returns an error: every ending is an [`ActionEvent`] outcome.
        pub async fn execute(&self, request: &ActionRequest, action: &ActionConfig) -> ActionEvent {
            let started = Instant::now();
            let (attempts, outcome) = match action {
                ActionConfig::Recommend => (0, ActionOutcome::Recommended),
                ActionConfig::Webhook(w) if request.dry_run => (
                    0,
                    ActionOutcome::DryRun {
                        would: format!("POST {} ({})", w.url, request.recommendation.summary),
                    },
                ),
                ActionConfig::Command(c) if request.dry_run => (
                    0,
                    ActionOutcome::DryRun {
                        would: format!("run {} {}", c.program, c.args.join(" ")),
                    },
                ),
                ActionConfig::Webhook(w) => self.webhook(w, request).await,
                ActionConfig::Command(c) => self.command(c, request).await,
            };
            ActionEvent {
                resource: request.resource.clone(),
                action: action.kind().to_owned(),
                at_unix_ms: request.at_unix_ms,
                dry_run: request.dry_run,
                attempts,
                duration_ms: started.elapsed().as_millis() as u64,
                recommendation: request.recommendation.clone(),
                outcome,
            }
        }

        async fn webhook(
            &self,
            w: &WebhookAction,
            request: &ActionRequest,
        ) -> (u32, ActionOutcome) {
            let body = Bytes::from(
                serde_json::to_vec(request).expect("an ActionRequest always serializes"),
            );
            let signature = match &w.secret {
                None => None,
                Some(name) => match self.config.secrets.get(name) {
                    Some(secret) => Some(sign(secret.as_bytes(), &body)),
                    None => {
                        let error =
                            format!("signing secret `{name}` is not configured on the server");
                        return (0, ActionOutcome::Failed { error });
                    }
                },
            };
            let timeout = Duration::from_millis(u64::from(w.timeout_ms));
            let mut last = String::new();
            for attempt in 1..=w.max_retries + 1 {
                if attempt > 1 {
                    // Exponential backoff keeps a struggling receiver from being hammered.
                    tokio::time::sleep(Duration::from_millis(100 << (attempt - 2).min(6))).await;
                }
                match self
                    .post_once(&w.url, body.clone(), signature.as_deref(), timeout)
                    .await
                {
                    Attempt::Done(detail) => return (attempt, ActionOutcome::Succeeded { detail }),
                    Attempt::Fatal(error) => return (attempt, ActionOutcome::Failed { error }),
                    Attempt::Retry(error) => last = error,
                }
            }
            let error = format!("{last} (after {} attempts)", w.max_retries + 1);
            (w.max_retries + 1, ActionOutcome::Failed { error })
        }

        async fn post_once(
            &self,
            url: &str,
            body: Bytes,
            signature: Option<&str>,
            timeout: Duration,
        ) -> Attempt {
            let mut req = http::Request::post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, "perfpilot");
            if let Some(sig) = signature {
                req = req.header(SIGNATURE_HEADER, format!("sha256={sig}"));
            }
            let req = match req.body(Full::new(body)) {
                Ok(r) => r,
                Err(e) => return Attempt::Fatal(format!("invalid request to {url}: {e}")),
            };
            let exchange = async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = resp.status();
                let text = match Limited::new(resp.into_body(), MAX_RESPONSE).collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(_) => String::new(),
                };
                Ok::<_, String>((status, text))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Err(_) => Attempt::Retry(format!(
                    "POST {url}: no response within {} ms",
                    timeout.as_millis()
                )),
                Ok(Err(e)) => Attempt::Retry(e),
                Ok(Ok((status, text))) => {
                    let detail = format!("HTTP {}{}", status.as_u16(), excerpt(&text));
                    if status.is_success() {
                        Attempt::Done(detail)
                    } else if status.is_server_error()
                        || status == http::StatusCode::TOO_MANY_REQUESTS
                    {
                        Attempt::Retry(detail)
                    } else {
                        Attempt::Fatal(detail)
                    }
                }
            }
        }

        async fn command(
            &self,
            c: &CommandAction,
            request: &ActionRequest,
        ) -> (u32, ActionOutcome) {
            if !self.config.allowed_programs.contains(&c.program) {
                let error = format!(
                    "program `{}` is not in the server's command allow-list",
                    c.program
                );
                return (0, ActionOutcome::Failed { error });
            }
            let r = &request.recommendation;
            let mut cmd = tokio::process::Command::new(&c.program);
            // A clean environment: the server's own variables (tokens, DSNs) are not the
            // program's business. PATH is kept so the program can find its tools.
            cmd.args(&c.args)
                .env_clear()
                .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
                .envs(
                    env_of(request)
                        .into_iter()
                        .map(|(k, v)| (std::ffi::OsString::from(k), std::ffi::OsString::from(v))),
                )
                .env("PERFPILOT_DESIRED_REPLICAS", r.desired_replicas.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    return (
                        1,
                        ActionOutcome::Failed {
                            error: format!("could not start {}: {e}", c.program),
                        },
                    )
                }
            };
            let timeout = Duration::from_millis(u64::from(c.timeout_ms));
            // On timeout the future (and with it the child, kill_on_drop) is dropped.
            let outcome = match tokio::time::timeout(timeout, child.wait_with_output()).await {
                Err(_) => ActionOutcome::Failed {
                    error: format!(
                        "{} timed out after {} ms and was killed",
                        c.program, c.timeout_ms
                    ),
                },
                Ok(Err(e)) => ActionOutcome::Failed {
                    error: format!("{}: {e}", c.program),
                },
                Ok(Ok(out)) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    if out.status.success() {
                        ActionOutcome::Succeeded {
                            detail: format!("{}{}", out.status, excerpt(&stdout)),
                        }
                    } else {
                        ActionOutcome::Failed {
                            error: format!("{}{}", out.status, excerpt(&stderr)),
                        }
                    }
                }
            };
            (1, outcome)
        }
    }

    /// The PERFPILOT_* variables a command receives.
    fn env_of(r: &ActionRequest) -> Vec<(&'static str, String)> {
        vec![
            ("PERFPILOT_RESOURCE", r.resource.to_string()),
            ("PERFPILOT_RESOURCE_TYPE", r.resource_type.to_string()),
            ("PERFPILOT_METRIC", r.metric.clone()),
            ("PERFPILOT_OBSERVED", r.observed.to_string()),
            ("PERFPILOT_TARGET", r.target.value.to_string()),
            (
                "PERFPILOT_COMPARATOR",
                serde_json::to_value(r.target.comparator)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            (
                "PERFPILOT_STATISTIC",
                r.target.statistic.as_str().to_owned(),
            ),
            (
                "PERFPILOT_CURRENT_REPLICAS",
                r.recommendation.current_replicas.to_string(),
            ),
        ]
    }

    fn excerpt(text: &str) -> String {
        let t = text.trim();
        if t.is_empty() {
            return String::new();
        }
        let mut end = t.len().min(MAX_DETAIL);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!(": {}", &t[..end])
    }

    /// Hex HMAC-SHA256 of `body` under `secret`.
    pub fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(feature = "runtime")]
pub use runner::sign as sign_body;

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
