//! Actuators: one module per way the optimizer can act, each an [`engine::actuator`]
//! going through the shared lifecycle (capture → apply → read back → verify → keep or
//! roll back).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use engine::actions::{ActionEvent, ActionOutcome, ActionRequest};
use engine::actuator::{Actuator, Applied, Captured, Step, StepRecord};
use engine::model::{ActionConfig, SourceSpec};

pub mod cache_setting;
pub mod command;
pub mod lb_weights;
pub mod mysql_setting;
pub mod postgres_setting;
pub mod webhook;

/// Server-side configuration no API user can change: which programs may run and the
/// webhook signing secrets, by name.
#[derive(Debug, Clone, Default)]
pub struct RunnerConfig {
    pub allowed_programs: BTreeSet<String>,
    pub secrets: BTreeMap<String, String>,
}

/// Makes the actuator of a resource's configured action. Cheap to share; one HTTP client
/// (with its connection pool) serves every webhook.
#[derive(Clone)]
pub struct Actuators {
    config: Arc<RunnerConfig>,
    http: webhook::Client,
    registries: crate::Registries,
}

impl std::fmt::Debug for Actuators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actuators")
            .field("allowed_programs", &self.config.allowed_programs)
            .field("secrets", &self.config.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Actuators {
    /// Actuators acting with `registries`, the ones the running sources share.
    pub fn new(config: RunnerConfig, registries: crate::Registries) -> Actuators {
        Actuators {
            config: Arc::new(config),
            http: webhook::client(),
            registries,
        }
    }

    /// What the actuators share with the running sources (a fleet's breaching hosts).
    pub fn registries(&self) -> &crate::Registries {
        &self.registries
    }

    /// The actuator of `action` on a resource whose configured source is `source`; `None`
    /// for recommend-only, which never acts.
    pub fn for_action(
        &self,
        action: &ActionConfig,
        source: Option<&SourceSpec>,
    ) -> Option<Arc<dyn Actuator>> {
        match action {
            ActionConfig::DatabaseSetting(d) if is_mysql(source) => Some(Arc::new(
                mysql_setting::MysqlSetting::new(d.clone(), mysql_settings(source)),
            )),
            ActionConfig::DatabaseSetting(d) => Some(Arc::new(
                postgres_setting::PostgresSetting::new(d.clone(), database_settings(source)),
            )),
            ActionConfig::CacheSetting(c) => Some(Arc::new(cache_setting::CacheSetting::new(
                c.clone(),
                cache_setting::Cache::of(source),
            ))),
            ActionConfig::LbWeights(w) => Some(Arc::new(lb_weights::LbWeights::new(
                w.clone(),
                lb_weights::pool_of(source),
                self.registries.lb.clone(),
            ))),
            ActionConfig::Recommend => None,
            ActionConfig::Webhook(w) => Some(Arc::new(webhook::Webhook::new(
                w.clone(),
                self.http.clone(),
                &self.config.secrets,
            ))),
            ActionConfig::Command(c) => Some(Arc::new(command::Command::new(
                c.clone(),
                self.config.clone(),
            ))),
        }
    }
}

/// One execution of an action: what happened, and (when the change is in effect) what
/// was captured before it, for a rollback after a bad verification.
#[derive(Debug)]
pub struct Execution {
    pub event: ActionEvent,
    pub captured: Option<Captured>,
}

impl Actuators {
    /// Runs `action` for `request`: recommend-only and dry runs describe and change
    /// nothing; otherwise the actuator's capture → apply → read back. Never panics and
    /// never errors: every ending is an outcome.
    pub async fn execute(
        &self,
        request: &ActionRequest,
        action: &ActionConfig,
        source: Option<&SourceSpec>,
    ) -> Execution {
        let started = Instant::now();
        let finish = |outcome, steps: Vec<StepRecord>| ActionEvent {
            resource: request.resource.clone(),
            action: action.kind().to_owned(),
            at_unix_ms: request.at_unix_ms,
            dry_run: request.dry_run,
            attempts: attempts_of(&steps, Step::Apply),
            duration_ms: started.elapsed().as_millis() as u64,
            recommendation: request.recommendation.clone(),
            outcome,
            steps,
        };
        let Some(actuator) = self.for_action(action, source) else {
            return Execution {
                event: finish(ActionOutcome::Recommended, Vec::new()),
                captured: None,
            };
        };
        if request.dry_run {
            let would = actuator.describe(request);
            return Execution {
                event: finish(ActionOutcome::DryRun { would }, Vec::new()),
                captured: None,
            };
        }
        match engine::actuator::apply(actuator.as_ref(), request).await {
            Applied::InEffect { captured, steps } => {
                let detail = steps
                    .iter()
                    .find(|s| s.step == Step::Apply)
                    .map(|s| s.detail.clone())
                    .unwrap_or_default();
                Execution {
                    event: finish(ActionOutcome::Succeeded { detail }, steps),
                    captured: Some(captured),
                }
            }
            Applied::Failed {
                error,
                rolled_back,
                steps,
            } => Execution {
                event: finish(ActionOutcome::Failed { error, rolled_back }, steps),
                captured: None,
            },
        }
    }

    /// Undoes an execution that is in effect (`why`: the verdict or the guardrail) and
    /// reads back that the captured state is there again.
    pub async fn roll_back(
        &self,
        request: &ActionRequest,
        action: &ActionConfig,
        source: Option<&SourceSpec>,
        captured: &Captured,
        why: String,
    ) -> ActionEvent {
        let started = Instant::now();
        // The rollback's own time, not the apply's: the audit and `since=` find it there.
        let at_unix_ms = engine::time::unix_now_ms();
        let (restored, steps) = match self.for_action(action, source) {
            Some(actuator) if actuator.can_roll_back() => {
                let back = engine::actuator::roll_back(actuator.as_ref(), request, captured).await;
                (back.restored, back.steps)
            }
            _ => (false, Vec::new()),
        };
        ActionEvent {
            resource: request.resource.clone(),
            action: action.kind().to_owned(),
            at_unix_ms,
            dry_run: false,
            attempts: attempts_of(&steps, Step::RollBack),
            duration_ms: started.elapsed().as_millis() as u64,
            recommendation: request.recommendation.clone(),
            outcome: ActionOutcome::RolledBack {
                reason: why,
                restored,
            },
            steps,
        }
    }

    /// Whether `action`'s actuator can undo what it applied.
    pub fn can_roll_back(&self, action: &ActionConfig, source: Option<&SourceSpec>) -> bool {
        self.for_action(action, source)
            .is_some_and(|a| a.can_roll_back())
    }
}

/// The database a resource's source describes, for actuators that act on it.
/// A database setting is tuned by the client of the database's kind.
fn is_mysql(source: Option<&SourceSpec>) -> bool {
    source.is_some_and(|spec| spec.kind == crate::sources::mysql::KIND)
}

fn mysql_settings(
    source: Option<&SourceSpec>,
) -> Result<crate::sources::mysql::MysqlSettings, String> {
    match source {
        Some(spec) => crate::sources::mysql::MysqlSettings::from_spec(spec).map_err(String::from),
        None => Err("this resource is not a MySQL database".into()),
    }
}

fn database_settings(
    source: Option<&SourceSpec>,
) -> Result<crate::sources::postgres::PostgresSettings, String> {
    match source {
        Some(spec) if spec.kind == crate::sources::postgres::KIND => {
            crate::sources::postgres::PostgresSettings::from_spec(spec).map_err(String::from)
        }
        _ => Err(
            "this resource is not a PostgreSQL or MySQL database; a database setting cannot be tuned here"
                .into(),
        ),
    }
}

/// Checks an action against the resource it is saved on, beyond what the engine checks;
/// the refusal names the field and the rule.
pub fn validate(action: &ActionConfig, source: Option<&SourceSpec>) -> Result<(), crate::Refusal> {
    // An action that does not fit the resource at all is the action's fault as a whole.
    let misplaced = |rule: String| crate::Refusal::new("settings.action", rule);
    match action {
        ActionConfig::DatabaseSetting(d) if is_mysql(source) => {
            mysql_settings(source).map_err(misplaced)?;
            mysql_setting::validate(d)
        }
        ActionConfig::DatabaseSetting(d) => {
            database_settings(source).map_err(misplaced)?;
            postgres_setting::validate(d)
        }
        ActionConfig::CacheSetting(c) => {
            let cache = cache_setting::Cache::of(source).map_err(misplaced)?;
            cache_setting::validate(c, &cache)
        }
        ActionConfig::LbWeights(_) => lb_weights::pool_of(source).map(drop).map_err(misplaced),
        _ => Ok(()),
    }
}

/// Attempts of `step` (deliveries of a webhook, starts of a program): what "attempts" has
/// always counted.
fn attempts_of(steps: &[StepRecord], step: Step) -> u32 {
    steps
        .iter()
        .filter(|s| s.step == step)
        .map(|s| s.attempts)
        .sum()
}

/// The start of `text` (at most 512 bytes, on a character boundary) after `": "`, or
/// nothing when it is blank: the detail kept from a response or a program's output.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_DETAIL: usize = 512;
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
