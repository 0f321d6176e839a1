//! Actuators: the optimizer's hands, and the one lifecycle every one of them goes through.
//!
//! ```text
//! capture the prior state → apply → read back that it took effect
//!     → verify over the window (the before/after; guardrails watched meanwhile)
//!     → keep (Optimized)  or  roll back to the captured state → read back (Failed, "rolled back")
//! ```
//!
//! An actuator implements the steps; [`apply`] and [`roll_back`] run them in order and
//! record each one ([`StepRecord`]) for the audit log and `/metrics`. A read-back that
//! fails rolls back at once: a change that cannot be shown to have taken effect is not
//! kept. Verification itself belongs to the monitor, which has the history.
//!
//! Webhooks and allow-listed commands are actuators whose state cannot be read: their
//! capture is empty, their read-back is the receiver's answer, and their rollback is an
//! optional second call the operator configures. Database settings and cache memory are
//! actuators whose state can be read, captured and restored exactly.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::actions::ActionRequest;
use crate::source::BoxFuture;

/// The state an actuator found before changing anything; what a rollback restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captured {
    /// A person's reading of it: `work_mem = 4MB`, or `nothing to capture (webhook)`.
    pub summary: String,
    /// The actuator's own record of it (`null` when nothing can be read).
    #[serde(default)]
    pub state: serde_json::Value,
}

impl Captured {
    /// For actuators with no readable state.
    pub fn nothing(why: &str) -> Captured {
        Captured {
            summary: format!("nothing to capture ({why})"),
            state: serde_json::Value::Null,
        }
    }
}

/// A step that worked: what it did, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub detail: String,
    pub attempts: u32,
}

/// A step that failed: why, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub error: String,
    pub attempts: u32,
}

impl StepError {
    pub fn new(error: impl Into<String>) -> StepError {
        StepError {
            error: error.into(),
            attempts: 1,
        }
    }
}

/// What a read-back checks.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// That the applied change is in effect.
    Applied(&'a Done),
    /// That the captured state is back.
    Restored(&'a Captured),
}

pub trait Actuator: Send + Sync + 'static {
    /// `webhook`, `command`, `postgres_setting`, …
    fn kind(&self) -> &'static str;
    /// What applying would do, for dry runs and the audit log.
    fn describe(&self, request: &ActionRequest) -> String;
    fn capture<'a>(
        &'a self,
        request: &'a ActionRequest,
    ) -> BoxFuture<'a, Result<Captured, StepError>>;
    fn apply<'a>(
        &'a self,
        request: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>>;
    /// Reads the state again and checks it against `expect`; the answer is the evidence.
    fn read_back<'a>(
        &'a self,
        request: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>>;
    /// Whether [`Actuator::roll_back`] can restore what was captured; without it a change
    /// that verifies badly stays applied and the status says so.
    fn can_roll_back(&self) -> bool;
    fn roll_back<'a>(
        &'a self,
        request: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>>;
    /// The change verified well and stays: make it outlive a restart where that is a
    /// separate step (Redis' `CONFIG REWRITE`). `None` when there is nothing to do.
    fn kept<'a>(
        &'a self,
        _request: &'a ActionRequest,
    ) -> BoxFuture<'a, Option<Result<Done, StepError>>> {
        Box::pin(async { None })
    }
}

/// The lifecycle's steps, as the audit log and `/metrics` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Capture,
    Apply,
    ReadBack,
    RollBack,
    ReadBackRollBack,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Capture,
        Step::Apply,
        Step::ReadBack,
        Step::RollBack,
        Step::ReadBackRollBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Capture => "capture",
            Step::Apply => "apply",
            Step::ReadBack => "read_back",
            Step::RollBack => "roll_back",
            Step::ReadBackRollBack => "read_back_roll_back",
        }
    }
}

/// One step as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub ok: bool,
    /// The step's detail, or its error.
    pub detail: String,
    pub attempts: u32,
    pub duration_ms: u64,
    /// When the step started: each step is audited at its own time.
    #[serde(default)]
    pub at_unix_ms: i64,
}

/// How [`apply`] ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// Applied and read back: the verify window may start. Keep `captured` for a rollback.
    InEffect {
        captured: Captured,
        steps: Vec<StepRecord>,
    },
    /// Not in effect: nothing was changed, or what was changed was rolled back
    /// (`rolled_back` says whether that worked).
    Failed {
        error: String,
        rolled_back: Option<bool>,
        steps: Vec<StepRecord>,
    },
}

/// A step that changes the service, as the journal is told before it runs: what a
/// successor needs to find the change and undo it.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    /// [`Step::Apply`] or [`Step::RollBack`].
    pub step: Step,
    pub request: &'a ActionRequest,
    pub action: &'a crate::model::ActionConfig,
    pub source: Option<&'a crate::model::SourceSpec>,
    pub captured: &'a Captured,
}

/// Where every step that changes a service is written down before it runs (the action
/// journal of the shared store). Refusing stops the step: a replica that no longer leads
/// must not apply or undo anything, and a change nobody wrote down must not happen.
pub trait Journal: Send + Sync {
    fn before<'a>(&'a self, entry: JournalEntry<'a>) -> BoxFuture<'a, Result<(), String>>;
}

/// The journal and the action a lifecycle run writes into it.
#[derive(Clone, Copy)]
pub struct Journaled<'a> {
    pub journal: &'a dyn Journal,
    pub action: &'a crate::model::ActionConfig,
    pub source: Option<&'a crate::model::SourceSpec>,
}

impl Journaled<'_> {
    async fn before(
        &self,
        step: Step,
        request: &ActionRequest,
        captured: &Captured,
    ) -> Result<(), String> {
        self.journal
            .before(JournalEntry {
                step,
                request,
                action: self.action,
                source: self.source,
                captured,
            })
            .await
    }
}

/// Runs capture → apply → read back. A failed apply or read-back rolls back at once when
/// the actuator can.
pub async fn apply(actuator: &dyn Actuator, request: &ActionRequest) -> Applied {
    apply_journaled(actuator, request, None).await
}

/// [`apply`], writing the apply (and any rollback) into `journaled` before it runs; a
/// refused entry fails the action without touching the service.
pub async fn apply_journaled(
    actuator: &dyn Actuator,
    request: &ActionRequest,
    journaled: Option<Journaled<'_>>,
) -> Applied {
    let mut steps = Vec::new();
    let captured = match timed(&mut steps, Step::Capture, actuator.capture(request), |c| {
        c.summary.clone()
    })
    .await
    {
        Ok(captured) => captured,
        Err(err) => {
            return Applied::Failed {
                error: format!("could not capture the current state: {}", err.error),
                rolled_back: None,
                steps,
            }
        }
    };
    if let Some(journaled) = journaled {
        if let Err(why) = journaled.before(Step::Apply, request, &captured).await {
            return Applied::Failed {
                error: format!("not applied: {why}"),
                rolled_back: None,
                steps,
            };
        }
    }
    let applied = match timed(
        &mut steps,
        Step::Apply,
        actuator.apply(request, &captured),
        |d| d.detail.clone(),
    )
    .await
    {
        Ok(done) => done,
        Err(err) => {
            // An apply that errored may still have half-happened (a timeout after the
            // receiver acted): restore what was captured where that is possible.
            let rolled_back = if actuator.can_roll_back() && !captured.state.is_null() {
                Some(run_roll_back(actuator, request, &captured, &mut steps, journaled).await)
            } else {
                None
            };
            return Applied::Failed {
                error: err.error,
                rolled_back,
                steps,
            };
        }
    };
    let read = timed(
        &mut steps,
        Step::ReadBack,
        actuator.read_back(request, Expect::Applied(&applied)),
        |d| d.detail.clone(),
    )
    .await;
    match read {
        Ok(_) => Applied::InEffect { captured, steps },
        Err(err) => {
            let rolled_back = if actuator.can_roll_back() {
                Some(run_roll_back(actuator, request, &captured, &mut steps, journaled).await)
            } else {
                None
            };
            Applied::Failed {
                error: format!("the change did not take effect: {}", err.error),
                rolled_back,
                steps,
            }
        }
    }
}

/// How [`roll_back`] ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolledBack {
    /// True when the rollback ran and its read-back showed the captured state again.
    pub restored: bool,
    pub steps: Vec<StepRecord>,
}

/// Runs roll back → read back (that the captured state is back).
pub async fn roll_back(
    actuator: &dyn Actuator,
    request: &ActionRequest,
    captured: &Captured,
) -> RolledBack {
    roll_back_journaled(actuator, request, captured, None).await
}

/// [`roll_back`], written into `journaled` before it runs; a refused entry leaves the
/// change as it is (not restored), for whoever may act to undo.
pub async fn roll_back_journaled(
    actuator: &dyn Actuator,
    request: &ActionRequest,
    captured: &Captured,
    journaled: Option<Journaled<'_>>,
) -> RolledBack {
    let mut steps = Vec::new();
    let restored = run_roll_back(actuator, request, captured, &mut steps, journaled).await;
    RolledBack { restored, steps }
}

async fn run_roll_back(
    actuator: &dyn Actuator,
    request: &ActionRequest,
    captured: &Captured,
    steps: &mut Vec<StepRecord>,
    journaled: Option<Journaled<'_>>,
) -> bool {
    if let Some(journaled) = journaled {
        if let Err(why) = journaled.before(Step::RollBack, request, captured).await {
            steps.push(StepRecord {
                step: Step::RollBack,
                ok: false,
                detail: format!("not rolled back here: {why}"),
                attempts: 0,
                duration_ms: 0,
                at_unix_ms: 0,
            });
            return false;
        }
    }
    if timed(
        steps,
        Step::RollBack,
        actuator.roll_back(request, captured),
        |d| d.detail.clone(),
    )
    .await
    .is_err()
    {
        return false;
    }
    timed(
        steps,
        Step::ReadBackRollBack,
        actuator.read_back(request, Expect::Restored(captured)),
        |d| d.detail.clone(),
    )
    .await
    .is_ok()
}

/// Runs one step and records it.
async fn timed<T>(
    steps: &mut Vec<StepRecord>,
    step: Step,
    work: BoxFuture<'_, Result<T, StepError>>,
    detail: impl FnOnce(&T) -> String,
) -> Result<T, StepError>
where
    T: HasAttempts,
{
    let started = Instant::now();
    // The wall clock (`crate::time` is not in the browser build; this never runs there).
    let at_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let result = work.await;
    let duration_ms = started.elapsed().as_millis() as u64;
    steps.push(match &result {
        Ok(value) => StepRecord {
            step,
            ok: true,
            detail: detail(value),
            attempts: value.attempts(),
            duration_ms,
            at_unix_ms,
        },
        Err(err) => StepRecord {
            step,
            ok: false,
            detail: err.error.clone(),
            attempts: err.attempts,
            duration_ms,
            at_unix_ms,
        },
    });
    result
}

trait HasAttempts {
    fn attempts(&self) -> u32;
}

impl HasAttempts for Done {
    fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl HasAttempts for Captured {
    fn attempts(&self) -> u32 {
        1
    }
}

// The guardrail is configuration (a resource's settings hold it): it lives in the model,
// named here too where the lifecycle that watches it is.
pub use crate::model::{default_floor, Guardrail, GUARDRAIL_HOLD_TICKS};

impl Guardrail {
    /// The one-line form the settings form shows: `memory/utilization > 90`,
    /// `p95_ms > 2x baseline`, or both bounds joined by ` or `.
    pub fn to_line(&self) -> String {
        let series = match &self.resource {
            Some(resource) => format!("{resource}/{}", self.metric),
            None => self.metric.clone(),
        };
        let mut bounds = Vec::new();
        if let Some(max) = self.max {
            bounds.push(format!("{series} > {max}"));
        }
        if let Some(factor) = self.max_factor {
            bounds.push(format!("{series} > {factor}x baseline"));
        }
        bounds.join(" or ")
    }

    /// Parses [`Guardrail::to_line`]'s form; the error names the rule broken.
    pub fn parse_line(line: &str) -> Result<Guardrail, String> {
        let mut guardrail: Option<Guardrail> = None;
        for part in line.split(" or ") {
            let (series, bound) = part.split_once('>').ok_or_else(|| {
                format!(
                    "`{}`: write `metric > value` or `metric > 2x baseline`",
                    part.trim()
                )
            })?;
            let series = series.trim();
            let (resource, metric) = match series.rsplit_once('/') {
                Some((resource, metric)) => (Some(resource.trim().to_owned()), metric.trim()),
                None => (None, series),
            };
            if metric.is_empty() {
                return Err(format!("`{}`: the metric is missing", part.trim()));
            }
            let bound = bound.trim();
            let entry = guardrail.get_or_insert_with(|| Guardrail {
                resource: resource.clone(),
                metric: metric.to_owned(),
                max: None,
                max_factor: None,
                floor: None,
                hold: None,
            });
            if entry.resource != resource || entry.metric != metric {
                return Err(format!(
                    "`{}`: both bounds of one line must watch the same metric",
                    line.trim()
                ));
            }
            let number = |text: &str| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("`{}`: `{}` is not a number", part.trim(), text.trim()))
            };
            match bound.strip_suffix("baseline") {
                Some(factor) => {
                    let factor = factor.trim();
                    let factor = factor
                        .strip_suffix(['x', '×'])
                        .ok_or_else(|| format!("`{}`: write `2x baseline`", part.trim()))?;
                    entry.max_factor = Some(number(factor)?);
                }
                None => entry.max = Some(number(bound)?),
            }
        }
        guardrail.ok_or_else(|| "an empty guardrail".to_owned())
    }

    /// Parses one guardrail per non-empty line; errors name the line.
    pub fn parse_lines(text: &str) -> Result<Vec<Guardrail>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                Guardrail::parse_line(line)
                    .map_err(|err| format!("settings.guardrails line {}: {err}", i + 1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A settable value with scripted failures, to drive the lifecycle.
    struct Knob {
        value: Mutex<i64>,
        fail_read_back: bool,
        fail_apply: bool,
    }

    fn request() -> ActionRequest {
        let cpu = crate::model::Resource::new(
            crate::model::ResourceId::new("cpu").unwrap(),
            crate::model::ResourceType::Cpu,
            "CPU",
        );
        ActionRequest::new(&cpu, &[90.0], 90.0, 0).unwrap()
    }

    impl Actuator for Knob {
        fn kind(&self) -> &'static str {
            "knob"
        }
        fn describe(&self, _: &ActionRequest) -> String {
            "set the knob to 2".into()
        }
        fn capture<'a>(
            &'a self,
            _: &'a ActionRequest,
        ) -> BoxFuture<'a, Result<Captured, StepError>> {
            let v = *self.value.lock().unwrap();
            Box::pin(async move {
                Ok(Captured {
                    summary: format!("knob = {v}"),
                    state: serde_json::json!(v),
                })
            })
        }
        fn apply<'a>(
            &'a self,
            _: &'a ActionRequest,
            _: &'a Captured,
        ) -> BoxFuture<'a, Result<Done, StepError>> {
            Box::pin(async move {
                *self.value.lock().unwrap() = 2;
                if self.fail_apply {
                    return Err(StepError::new("timed out"));
                }
                Ok(Done {
                    detail: "knob = 2".into(),
                    attempts: 1,
                })
            })
        }
        fn read_back<'a>(
            &'a self,
            _: &'a ActionRequest,
            expect: Expect<'a>,
        ) -> BoxFuture<'a, Result<Done, StepError>> {
            Box::pin(async move {
                let v = *self.value.lock().unwrap();
                let wanted = match expect {
                    Expect::Applied(_) if self.fail_read_back => -1,
                    Expect::Applied(_) => 2,
                    Expect::Restored(c) => c.state.as_i64().unwrap(),
                };
                if v == wanted {
                    Ok(Done {
                        detail: format!("knob = {v}"),
                        attempts: 1,
                    })
                } else {
                    Err(StepError::new(format!("knob = {v}, expected {wanted}")))
                }
            })
        }
        fn can_roll_back(&self) -> bool {
            true
        }
        fn roll_back<'a>(
            &'a self,
            _: &'a ActionRequest,
            captured: &'a Captured,
        ) -> BoxFuture<'a, Result<Done, StepError>> {
            Box::pin(async move {
                *self.value.lock().unwrap() = captured.state.as_i64().unwrap();
                Ok(Done {
                    detail: "restored".into(),
                    attempts: 1,
                })
            })
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The knob never waits, so one poll finishes every step.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the test actuator never waits"),
        }
    }

    #[test]
    fn a_change_that_reads_back_is_in_effect_and_can_be_rolled_back() {
        let knob = Knob {
            value: Mutex::new(1),
            fail_read_back: false,
            fail_apply: false,
        };
        let Applied::InEffect { captured, steps } = block_on(apply(&knob, &request())) else {
            panic!("expected in effect");
        };
        let names: Vec<_> = steps.iter().map(|s| s.step).collect();
        assert_eq!(names, [Step::Capture, Step::Apply, Step::ReadBack]);
        assert_eq!(*knob.value.lock().unwrap(), 2);
        let back = block_on(roll_back(&knob, &request(), &captured));
        assert!(back.restored);
        assert_eq!(*knob.value.lock().unwrap(), 1, "the captured value is back");
    }

    #[test]
    fn a_change_that_does_not_read_back_is_rolled_back_at_once() {
        let knob = Knob {
            value: Mutex::new(7),
            fail_read_back: true,
            fail_apply: false,
        };
        match block_on(apply(&knob, &request())) {
            Applied::Failed {
                error,
                rolled_back,
                steps,
            } => {
                assert!(
                    error.starts_with("the change did not take effect"),
                    "{error}"
                );
                assert_eq!(rolled_back, Some(true));
                assert_eq!(steps.last().unwrap().step, Step::ReadBackRollBack);
            }
            other => panic!("expected failed, got {other:?}"),
        }
        assert_eq!(*knob.value.lock().unwrap(), 7);
    }

    #[test]
    fn a_failed_apply_restores_what_it_may_have_changed() {
        let knob = Knob {
            value: Mutex::new(3),
            fail_read_back: false,
            fail_apply: true,
        };
        let Applied::Failed { rolled_back, .. } = block_on(apply(&knob, &request())) else {
            panic!("expected failed");
        };
        assert_eq!(rolled_back, Some(true));
        assert_eq!(*knob.value.lock().unwrap(), 3);
    }

    #[test]
    fn guardrail_lines_round_trip_and_bad_ones_say_why() {
        let text = "memory/utilization > 90\np95_ms > 2x baseline or p95_ms > 500\n\n";
        let parsed = Guardrail::parse_lines(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].resource.as_deref(), Some("memory"));
        assert_eq!(
            (parsed[1].max, parsed[1].max_factor),
            (Some(500.0), Some(2.0))
        );
        let lines: Vec<String> = parsed.iter().map(Guardrail::to_line).collect();
        assert_eq!(
            lines,
            [
                "memory/utilization > 90",
                "p95_ms > 500 or p95_ms > 2x baseline"
            ]
        );
        assert_eq!(Guardrail::parse_lines(&lines.join("\n")).unwrap(), parsed);
        let err = Guardrail::parse_lines("ok > 1\nlatency < 3").unwrap_err();
        assert!(err.starts_with("settings.guardrails line 2:"), "{err}");
        assert!(Guardrail::parse_line("p95 > lots")
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn guardrails_trip_on_an_absolute_or_relative_bound() {
        let memory = Guardrail {
            resource: Some("memory".into()),
            metric: "utilization".into(),
            max: Some(90.0),
            max_factor: None,
            floor: None,
            hold: None,
        };
        assert_eq!(memory.tripped("cpu", 89.0, None, 1.0), None);
        let why = memory.tripped("cpu", 93.0, None, 1.0).unwrap();
        assert_eq!(
            why,
            "guardrail: memory/utilization at 93 (median) is above 90"
        );
        let latency = Guardrail {
            resource: None,
            metric: "p95_ms".into(),
            max: None,
            max_factor: Some(2.0),
            floor: None,
            hold: None,
        };
        assert_eq!(
            latency.tripped("database:main", 500.0, None, 1.0),
            None,
            "no baseline, no bound"
        );
        assert_eq!(
            latency.tripped("database:main", 150.0, Some(80.0), 1.0),
            None
        );
        let why = latency
            .tripped("database:main", 170.0, Some(80.0), 1.0)
            .unwrap();
        assert!(
            why.contains("database:main/p95_ms") && why.contains("2× its baseline median 80"),
            "{why}"
        );
        assert_eq!(latency.hold(), GUARDRAIL_HOLD_TICKS);
        assert!(latency.validate("g").is_ok());
        let bad = Guardrail {
            max_factor: Some(0.5),
            ..latency.clone()
        };
        assert!(bad
            .validate("settings.guardrails[0]")
            .unwrap_err()
            .to_string()
            .contains("max_factor"));
        let none = Guardrail {
            max_factor: None,
            ..latency
        };
        assert!(none.validate("g").is_err());
    }

    /// A sub-millisecond probe whose median triples is still within a millisecond of its
    /// baseline: the floor keeps "3×" from tripping on noise; a real rise trips.
    #[test]
    fn a_relative_bound_never_sits_closer_than_its_floor() {
        let ping = Guardrail {
            resource: None,
            metric: "latency_p99".into(),
            max: None,
            max_factor: Some(3.0),
            floor: None,
            hold: Some(3),
        };
        assert_eq!(ping.limit(Some(0.2), 1.0), Some(1.2));
        assert_eq!(ping.tripped("cache:s", 0.9, Some(0.2), 1.0), None);
        let why = ping.tripped("cache:s", 1.5, Some(0.2), 1.0).unwrap();
        assert!(why.contains("baseline median 0.2 + 1"), "{why}");
        // Far above the floor the factor rules.
        assert_eq!(ping.limit(Some(10.0), 1.0), Some(30.0));
        let own = Guardrail {
            floor: Some(5.0),
            ..ping.clone()
        };
        assert_eq!(own.limit(Some(0.2), 1.0), Some(5.2));
        assert_eq!(ping.hold(), 3);
        assert_eq!(
            default_floor(crate::model::MetricKind::Latency),
            1.0,
            "a millisecond"
        );
    }
}
