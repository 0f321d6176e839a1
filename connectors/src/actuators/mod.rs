//! Actuators: one module per way the optimizer can act, each an [`engine::actuator`]
//! going through the shared lifecycle (capture → apply → read back → verify → keep or
//! roll back).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use engine::actions::{ActionEvent, ActionOutcome, ActionRequest};
use engine::actuator::{Actuator, Applied, Captured, Journal, Journaled, Step, StepRecord};
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
    /// Where applies and rollbacks are written before they run (`None`: nowhere).
    journal: Option<Arc<dyn Journal>>,
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
            journal: None,
        }
    }

    /// These actuators, writing every apply and rollback into `journal` before it runs.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Actuators {
        self.journal = Some(journal);
        self
    }

    /// These actuators without a journal (work that leaves nothing to undo).
    pub fn without_journal(mut self) -> Actuators {
        self.journal = None;
        self
    }

    fn journaled<'a>(
        &'a self,
        action: &'a ActionConfig,
        source: Option<&'a SourceSpec>,
    ) -> Option<Journaled<'a>> {
        self.journal.as_deref().map(|journal| Journaled {
            journal,
            action,
            source,
        })
    }

    /// What the actuators share with the running sources (a fleet's breaching hosts).
    pub fn registries(&self) -> &crate::Registries {
        &self.registries
    }

    /// The actuator of `action` on a resource whose configured source is `source`:
    /// `Ok(None)` for recommend-only, which never acts; a webhook or a command acts
    /// anywhere; every other action is its source kind's ([`ConfiguredKind::actuator`]),
    /// and an error says why the source cannot take it (refused when the action was
    /// saved, so only a source that changed since gets here).
    ///
    /// [`ConfiguredKind::actuator`]: crate::sources::ConfiguredKind::actuator
    pub fn for_action(
        &self,
        action: &ActionConfig,
        source: Option<&SourceSpec>,
    ) -> Result<Option<Arc<dyn Actuator>>, String> {
        match action {
            ActionConfig::Recommend => Ok(None),
            ActionConfig::Webhook(w) => Ok(Some(Arc::new(webhook::Webhook::new(
                w.clone(),
                self.http.clone(),
                &self.config.secrets,
            )))),
            ActionConfig::Command(c) => Ok(Some(Arc::new(command::Command::new(
                c.clone(),
                self.config.clone(),
            )))),
            _ => kind_actuator(action, source, &self.registries)
                .map(Some)
                .map_err(|refusal| refusal.rule),
        }
    }
}

/// The actuator `source`'s kind makes for `action`, refused (naming `settings.action`)
/// when the kind takes no such action.
fn kind_actuator(
    action: &ActionConfig,
    source: Option<&SourceSpec>,
    registries: &crate::Registries,
) -> Result<Arc<dyn Actuator>, crate::Refusal> {
    let configured = source
        .map(crate::sources::Configured::from_spec)
        .transpose()?;
    let found = configured
        .as_ref()
        .and_then(|configured| configured.actuator(action, registries));
    found.unwrap_or_else(|| {
        let source = match &configured {
            Some(configured) => format!(
                "its source is a {} ({})",
                configured.noun(),
                configured.kind()
            ),
            None => "it has no configured source".to_owned(),
        };
        Err(crate::Refusal::new(
            "settings.action",
            format!(
                "a {} action cannot act on this resource: {source}, which takes no such action",
                action.kind()
            ),
        ))
    })
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
        let actuator = match self.for_action(action, source) {
            Ok(Some(actuator)) => actuator,
            Ok(None) => {
                return Execution {
                    event: finish(ActionOutcome::Recommended, Vec::new()),
                    captured: None,
                }
            }
            Err(error) => {
                return Execution {
                    event: finish(
                        ActionOutcome::Failed {
                            error,
                            rolled_back: None,
                        },
                        Vec::new(),
                    ),
                    captured: None,
                }
            }
        };
        if request.dry_run {
            let would = actuator.describe(request);
            return Execution {
                event: finish(ActionOutcome::DryRun { would }, Vec::new()),
                captured: None,
            };
        }
        let journaled = self.journaled(action, source);
        match engine::actuator::apply_journaled(actuator.as_ref(), request, journaled).await {
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
            Ok(Some(actuator)) if actuator.can_roll_back() => {
                let journaled = self.journaled(action, source);
                let back = engine::actuator::roll_back_journaled(
                    actuator.as_ref(),
                    request,
                    captured,
                    journaled,
                )
                .await;
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
            .is_ok_and(|a| a.is_some_and(|a| a.can_roll_back()))
    }
}

/// Checks an action against the resource it is saved on, beyond what the engine checks:
/// the resource's source kind must take it, by its own rules. The refusal names the field
/// and the rule.
pub fn validate(action: &ActionConfig, source: Option<&SourceSpec>) -> Result<(), crate::Refusal> {
    match action {
        ActionConfig::Recommend | ActionConfig::Webhook(_) | ActionConfig::Command(_) => Ok(()),
        _ => kind_actuator(action, source, &crate::Registries::default()).map(drop),
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

#[cfg(test)]
mod tests {
    use engine::model::{CacheSettingAction, DatabaseSettingAction};

    use super::*;

    fn spec(kind: &str, settings: serde_json::Value) -> SourceSpec {
        SourceSpec {
            kind: kind.into(),
            settings,
        }
    }

    #[test]
    fn a_service_action_is_its_source_kinds_and_refused_elsewhere_naming_the_field() {
        let setting = |parameter: &str, value: &str| {
            ActionConfig::DatabaseSetting(DatabaseSettingAction {
                parameter: parameter.into(),
                value: value.into(),
            })
        };
        let postgres = spec(
            "postgres",
            serde_json::json!({"url": "postgresql://perf@127.0.0.1/app"}),
        );
        let mysql = spec(
            "mysql",
            serde_json::json!({"url": "mysql://perf@127.0.0.1/app"}),
        );
        let redis = spec(
            "redis",
            serde_json::json!({"url": "redis://127.0.0.1:6379"}),
        );
        assert_eq!(
            validate(&setting("work_mem", "8MB"), Some(&postgres)),
            Ok(())
        );
        assert_eq!(
            validate(&setting("max_connections", "200"), Some(&mysql)),
            Ok(())
        );
        // The kind's own allow-list decides, not a list kept here.
        let off_list = validate(
            &setting("innodb_flush_log_at_trx_commit", "0"),
            Some(&mysql),
        )
        .unwrap_err();
        assert_eq!(off_list.field, "settings.action.parameter");
        for (source, says) in [
            (Some(&redis), "its source is a cache (redis)"),
            (None, "it has no configured source"),
        ] {
            let refused = validate(&setting("work_mem", "8MB"), source).unwrap_err();
            assert_eq!(refused.field, "settings.action");
            assert!(refused.rule.contains("database_setting"), "{refused}");
            assert!(refused.rule.contains(says), "{refused}");
        }
        let cache = ActionConfig::CacheSetting(CacheSettingAction {
            parameter: "maxmemory".into(),
            value: "64mb".into(),
        });
        assert_eq!(validate(&cache, Some(&redis)), Ok(()));
        assert_eq!(
            validate(&cache, Some(&postgres)).unwrap_err().field,
            "settings.action"
        );
        // Acting elsewhere than the source is every resource's.
        assert_eq!(validate(&ActionConfig::Recommend, None), Ok(()));
    }

    #[tokio::test]
    async fn a_misplaced_action_fails_in_words_when_it_runs() {
        let actuators = Actuators::new(RunnerConfig::default(), crate::Registries::default());
        let action =
            ActionConfig::LbWeights(serde_json::from_value(serde_json::json!({})).unwrap());
        let nginx = spec(
            "nginx",
            serde_json::json!({"url": "http://127.0.0.1/status"}),
        );
        let error = actuators.for_action(&action, Some(&nginx)).err().unwrap();
        assert!(
            error.contains("lb_weights") && error.contains("(nginx)"),
            "{error}"
        );
        assert!(!actuators.can_roll_back(&action, Some(&nginx)));
        assert!(actuators
            .for_action(&ActionConfig::Recommend, None)
            .unwrap()
            .is_none());
    }
}
