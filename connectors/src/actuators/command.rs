//! The command actuator: runs an allow-listed program (no shell, a clean environment plus
//! `PERFPILOT_*` variables describing the breach) and, when configured, a rollback program
//! the same way. A program's state cannot be read, so the capture is empty and the
//! read-back is its exit status.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::CommandAction;
use engine::source::BoxFuture;

use super::{excerpt, RunnerConfig};

pub struct Command {
    action: CommandAction,
    config: Arc<RunnerConfig>,
}

impl Command {
    pub fn new(action: CommandAction, config: Arc<RunnerConfig>) -> Command {
        Command { action, config }
    }

    async fn run(
        &self,
        program: &str,
        args: &[String],
        phase: &str,
        request: &ActionRequest,
    ) -> Result<Done, StepError> {
        if !self.config.allowed_programs.contains(program) {
            return Err(StepError {
                error: format!("program `{program}` is not in the server's command allow-list"),
                attempts: 0,
            });
        }
        let mut cmd = tokio::process::Command::new(program);
        // A clean environment: the server's own variables (tokens, DSNs) are not the
        // program's business. PATH is kept so the program can find its tools.
        cmd.args(args)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(env_of(request))
            .env("PERFPILOT_PHASE", phase)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| StepError::new(format!("could not start {program}: {e}")))?;
        let timeout = Duration::from_millis(u64::from(self.action.timeout_ms));
        // On timeout the future (and with it the child, kill_on_drop) is dropped.
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => Err(StepError::new(format!(
                "{program} timed out after {} ms and was killed",
                self.action.timeout_ms
            ))),
            Ok(Err(e)) => Err(StepError::new(format!("{program}: {e}"))),
            Ok(Ok(out)) if out.status.success() => Ok(Done {
                detail: format!(
                    "{}{}",
                    out.status,
                    excerpt(&String::from_utf8_lossy(&out.stdout))
                ),
                attempts: 1,
            }),
            Ok(Ok(out)) => Err(StepError::new(format!(
                "{}{}",
                out.status,
                excerpt(&String::from_utf8_lossy(&out.stderr))
            ))),
        }
    }
}

impl Actuator for Command {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn describe(&self, _: &ActionRequest) -> String {
        format!("run {} {}", self.action.program, self.action.args.join(" "))
            .trim_end()
            .to_owned()
    }

    fn capture<'a>(&'a self, _: &'a ActionRequest) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async { Ok(Captured::nothing("a program's effect cannot be read")) })
    }

    fn apply<'a>(
        &'a self,
        request: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(self.run(&self.action.program, &self.action.args, "apply", request))
    }

    fn read_back<'a>(
        &'a self,
        _: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        let detail = match expect {
            Expect::Applied(done) => format!("the program succeeded ({})", done.detail),
            Expect::Restored(_) => "the rollback program succeeded".to_owned(),
        };
        Box::pin(async move {
            Ok(Done {
                detail,
                attempts: 0,
            })
        })
    }

    fn can_roll_back(&self) -> bool {
        self.action.rollback.is_some()
    }

    fn roll_back<'a>(
        &'a self,
        request: &'a ActionRequest,
        _: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            match &self.action.rollback {
                Some(rollback) => {
                    self.run(&rollback.program, &rollback.args, "rollback", request)
                        .await
                }
                None => Err(StepError::new("no rollback command is configured")),
            }
        })
    }
}

/// The PERFPILOT_* variables a command receives.
fn env_of(r: &ActionRequest) -> Vec<(&'static str, String)> {
    let mut env = vec![];
    if let Some(worst) = r.hosts.first() {
        // A fleet's action: the worst host, and every host past its target.
        env.push(("PERFPILOT_HOST", worst.instance.clone()));
        env.push(("PERFPILOT_HOST_METRIC", worst.metric.clone()));
        env.push((
            "PERFPILOT_HOSTS",
            r.hosts
                .iter()
                .map(|h| h.instance.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    if let Some(verdict) = &r.verdict {
        // A rollback: why the change is undone, with the verdict's evidence.
        env.push(("PERFPILOT_VERDICT", verdict.why.clone()));
    }
    env.extend([
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
        (
            "PERFPILOT_DESIRED_REPLICAS",
            r.recommendation.desired_replicas.to_string(),
        ),
    ]);
    env
}
